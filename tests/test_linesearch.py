"""Line searches: the conditions they promise, checked directly in float64; scipy and optax too.

The zoom search is checked for the strong Wolfe conditions on Moré and Thuente's 1-D test
functions (from several initial steps) and on n-D problems, and its step compared with
``scipy.optimize.line_search`` (the same Nocedal and Wright algorithm; both start at 1 and
double while bracketing, so where no zoom is needed the steps are equal; in the zoom, the
interpolation safeguards differ, and only the conditions are compared). The backtracking search
is checked against a float64 NumPy loop written from the Armijo rule and against optax.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import gradtx
from gradtx._curvature.linesearch import BacktrackingLinesearchInfo, ZoomLinesearchInfo

C1, C2 = 1e-4, 0.9

# ---- test functions: JAX for the search, float64 NumPy (hand derivatives) for the checks -----
# Moré and Thuente (1994), section 5, functions of the step alpha.
B2, B3, L3, B4 = 0.004, 0.01, 39, 0.001
G4 = math.sqrt(1 + B4 * B4) - B4


def mt1(a, xp=jnp):
    return -a / (a * a + 2.0)


def mt2(a, xp=jnp):
    return (a + B2) ** 5 - 2 * (a + B2) ** 4


def mt3(a, xp=jnp):
    phi0 = xp.where(
        a <= 1 - B3, 1 - a, xp.where(a >= 1 + B3, a - 1, (a - 1) ** 2 / (2 * B3) + B3 / 2)
    )
    return phi0 + 2 * (1 - B3) / (L3 * math.pi) * xp.sin(L3 * math.pi / 2 * a)


def mt4(a, xp=jnp):
    return G4 * xp.sqrt((1 - a) ** 2 + B4 * B4) + G4 * xp.sqrt(a * a + B4 * B4)


SLOPES = {
    "mt1": lambda a: (a * a - 2) / (a * a + 2) ** 2,
    "mt2": lambda a: 5 * (a + B2) ** 4 - 8 * (a + B2) ** 3,
    "mt3": lambda a: (
        np.where(a <= 1 - B3, -1.0, np.where(a >= 1 + B3, 1.0, (a - 1) / B3))
        + (1 - B3) * np.cos(L3 * math.pi / 2 * a)
    ),
    "mt4": lambda a: (
        G4 * (a - 1) / np.sqrt((1 - a) ** 2 + B4 * B4) + G4 * a / np.sqrt(a * a + B4 * B4)
    ),
}
ONE_D = {"mt1": mt1, "mt2": mt2, "mt3": mt3, "mt4": mt4}


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def rosenbrock_np(x):
    value = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    grad = np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])
    return value, grad


def quadratic(x):
    c = jnp.logspace(0, 2, x.shape[0], dtype=x.dtype)
    return 0.5 * jnp.sum(c * (x - 1) ** 2)


def quadratic_np(x):
    c = np.logspace(0, 2, x.shape[0])
    return 0.5 * np.sum(c * (x - 1) ** 2), c * (x - 1)


def wolfe(value_and_grad, x, u, step, c1=C1, c2=C2):
    """(sufficient decrease, strong curvature) at ``step``, from float64 NumPy values."""
    x, u = np.asarray(x, np.float64), np.asarray(u, np.float64)
    f0, g0 = value_and_grad(x)
    f, g = value_and_grad(x + step * u)
    d0, d = float(np.dot(g0, u)), float(np.dot(g, u))
    return f <= f0 + c1 * step * d0, abs(d) <= c2 * abs(d0)


def one_d_np(name):
    return lambda x: (ONE_D[name](x[0], xp=np), np.array([SLOPES[name](x[0])]))


def searcher(tx, fn):
    """A jitted ``(x, u) -> (state after one search, updates)`` for the line search ``tx``."""

    @jax.jit
    def run(x, u):
        value, grad = jax.value_and_grad(fn)(x)
        out, state = tx.update(u, tx.init(x), x, value=value, grad=grad, value_fn=fn)
        return state.inner_state, out

    return run


def search(tx, fn, x, u, **fn_kwargs):
    """One eager update of the line search ``tx`` at ``x`` along ``u``: (its state, updates)."""
    value, grad = jax.value_and_grad(fn)(x, **fn_kwargs)
    out, state = tx.update(u, tx.init(x), x, value=value, grad=grad, value_fn=fn, **fn_kwargs)
    return state.inner_state, out


def scipy_step(value_and_grad, x, u):
    """scipy.optimize.line_search's step, or None where it reports no convergence."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.optimize._linesearch.LineSearchWarning)
        return scipy.optimize.line_search(
            lambda z: value_and_grad(z)[0],
            lambda z: value_and_grad(z)[1],
            np.asarray(x, np.float64),
            np.asarray(u, np.float64),
            c1=C1,
            c2=C2,
            maxiter=30,
        )[0]


FIRST_STEPS = [1e-3, 1e-1, 1.0, 10.0, 1e3]


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", sorted(ONE_D))
def test_zoom_meets_strong_wolfe_on_more_thuente_functions(name):
    fn = lambda x: ONE_D[name](x[0])
    reference = one_d_np(name)
    # mt2's acceptable steps lie within 2e-8 of its minimiser (its slope at 0 is -5e-7): the
    # default stepsize_precision (1e-5, absolute) would stop the zoom before reaching them.
    strict = searcher(
        gradtx.scale_by_zoom_linesearch(
            max_linesearch_steps=30,
            initial_guess_strategy="one",
            approx_dec_rtol=None,
            stepsize_precision=0.0,
        ),
        fn,
    )
    x = jnp.zeros(1)
    for first in FIRST_STEPS:  # step 1 along u is alpha = first
        u = jnp.full(1, first)
        inner, out = strict(x, u)
        step = float(inner.learning_rate)
        assert bool(inner.info.succeeded), (first, step, inner.info)
        np.testing.assert_allclose(np.asarray(out), step * np.asarray(u), rtol=1e-15)
        assert all(wolfe(reference, x, u, step)), (first, step)
        # scipy's line_search (Nocedal and Wright's zoom too) from the same first step 1.
        ref = scipy_step(reference, x, u)
        if ref is not None:
            assert all(wolfe(reference, x, u, ref))
            if int(inner.info.num_linesearch_steps) == 1:  # accepted at once: scipy too
                assert step == ref


@pytest.mark.usefixtures("x64")
def test_zoom_default_accepts_strong_or_approximate_wolfe():
    # approx_dec_rtol = 1e-6 (the default): Hager and Zhang's approximate conditions may accept.
    tx = gradtx.scale_by_zoom_linesearch(
        max_linesearch_steps=30, initial_guess_strategy="one", stepsize_precision=0.0
    )
    x = jnp.zeros(1)
    for name in ONE_D:
        run = searcher(tx, lambda z, name=name: ONE_D[name](z[0]))
        reference = one_d_np(name)
        for first in (1e-3, 1e3):
            u = jnp.full(1, first)
            inner, _ = run(x, u)
            step = float(inner.learning_rate)
            (f0, g0), (f, g) = reference(np.zeros(1)), reference(step * np.asarray(u))
            d0, d = float(g0[0]) * first, float(g[0]) * first
            strong = all(wolfe(reference, x, u, step))
            approx = f <= f0 + 1e-6 * abs(f0) and C2 * d0 <= d <= (2 * C1 - 1) * d0
            assert bool(inner.info.succeeded) and (strong or approx), (name, first, step)


@pytest.mark.usefixtures("x64")
def test_zoom_meets_strong_wolfe_on_rosenbrock():
    run = searcher(
        gradtx.scale_by_zoom_linesearch(
            max_linesearch_steps=30, initial_guess_strategy="one", approx_dec_rtol=None
        ),
        rosenbrock,
    )
    same = 0
    for where in ([-1.2, 1.0], [0.5, 0.3], [0.99, 0.97], [2.0, 1.0]):
        x = jnp.asarray(where)
        _, g = rosenbrock_np(np.asarray(where))
        h = np.asarray(jax.hessian(rosenbrock)(x))
        for u in (-g, -np.linalg.solve(h, g)):  # steepest descent, Newton
            u = jnp.asarray(u)
            inner, _ = run(x, u)
            step = float(inner.learning_rate)
            assert bool(inner.info.succeeded)
            assert all(wolfe(rosenbrock_np, x, u, step)), (where, step)
            ref = scipy_step(rosenbrock_np, x, u)
            assert ref is not None and all(wolfe(rosenbrock_np, x, u, ref))
            if int(inner.info.num_linesearch_steps) == 1:
                assert step == ref
                same += 1
    assert same >= 2  # the Newton steps near the minimum take step 1 at once, as scipy does


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zoom_float32_and_float64_jit_no_retrace(dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    dtype = jnp.dtype(dtype)
    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=20)
    x = jnp.zeros(6, dtype)
    state = tx.init(x)
    update = jax.jit(tx.update, static_argnames=("value_fn",))
    losses = [float(quadratic(x))]
    for _ in range(3):
        value, grad = jax.value_and_grad(quadratic)(x)
        out, state = update(-grad, state, x, value=value, grad=grad, value_fn=quadratic)
        assert out.dtype == dtype and state.inner_state.value.dtype == dtype
        step = float(state.inner_state.learning_rate)
        assert all(wolfe(quadratic_np, x, -grad, step)), step
        x = gradtx.apply_updates(x, out)
        losses.append(float(quadratic(x)))
    assert update._cache_size() == 1
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_zoom_passes_extra_arguments_to_value_fn(x64):
    def fn(x, target):
        return jnp.sum((x - target) ** 2)

    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=10)
    target = jnp.asarray([3.0, -1.0])
    x = jnp.zeros(2)
    g = jax.grad(fn)(x, target)
    inner, out = search(tx, fn, x, -g, target=target)
    np.testing.assert_allclose(np.asarray(x + out), np.asarray(target), rtol=1e-12)
    assert float(inner.value) == pytest.approx(0.0, abs=1e-20)
    np.testing.assert_allclose(np.asarray(inner.grad), 0.0, atol=1e-12)


@pytest.mark.parametrize("make", ["zoom", "backtracking"])
def test_failure_leaves_params_and_is_never_nan(make):
    tx = (
        gradtx.scale_by_zoom_linesearch(max_linesearch_steps=8)
        if make == "zoom"
        else gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=15, store_grad=True)
    )
    x = jnp.asarray([1.0, 2.0])
    # An ascent direction: no step decreases the function.
    inner, out = searcher(tx, quadratic)(x, jax.grad(quadratic)(x))
    np.testing.assert_array_equal(np.asarray(out), 0.0)
    assert not bool(inner.info.succeeded)
    assert 0 < float(inner.info.decrease_error) < np.inf  # how much the last trial missed by
    assert float(inner.value) == float(quadratic(x))
    # A function that is NaN beyond a point: the search shrinks into the finite region.
    nan_beyond = lambda z: jnp.where(z[0] > 0.3, jnp.nan, jnp.sum((z - 1) ** 2))
    z = jnp.zeros(2)
    inner, out = searcher(tx, nan_beyond)(z, -jax.grad(nan_beyond)(z))
    assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.isfinite(inner.value))
    assert float(inner.value) < float(nan_beyond(z))


# optax's info: each error 0 for a condition the step taken meets, positive for one it misses
# (optax's linesearch_test: test_failure_descent_direction, test_failure_not_enough_iter and
# test_high_smaller_than_low, on the same functions)


def _squared_norm(w):
    return jnp.dot(w, w)


def test_zoom_info_when_the_direction_ascends():
    # phi(s) = (60 + s)**2 grows from s = 0: nothing decreases, no step is taken
    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=18, curv_rtol=0.5)
    inner, out = search(tx, _squared_norm, jnp.asarray([60.0, 0.0]), jnp.asarray([1.0, 0.0]))
    np.testing.assert_array_equal(np.asarray(out), 0.0)
    assert float(inner.info.decrease_error) > 0 and not bool(inner.info.succeeded)


@pytest.mark.parametrize("steps", [5, 30])
def test_zoom_info_when_the_steps_run_out(steps):
    # phi(s) = (s - 60)**2, slope -120 at 0: curvature needs |2 (s - 60)| <= 60, s in [30, 90];
    # the steps 1, 2, 4, 8, 16 all decrease, and 16 misses curvature by 88 - 60
    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=steps, curv_rtol=0.5)
    inner, _ = search(tx, _squared_norm, jnp.asarray([-60.0, 0.0]), jnp.asarray([1.0, 0.0]))
    if steps == 5:
        assert float(inner.learning_rate) == 16.0
        assert float(inner.info.decrease_error) == 0.0
        assert float(inner.info.curvature_error) == 28.0
        assert not bool(inner.info.succeeded)
    else:
        assert float(inner.learning_rate) >= 30.0
        assert float(inner.info.decrease_error) == float(inner.info.curvature_error) == 0.0
        assert bool(inner.info.succeeded)


def test_zoom_info_when_the_first_trial_overshoots():
    # x**2 from -1 along 1.95: the first trial decreases with a slope of the other sign, so the
    # bracket's high end is below its low end (jax issue 16236)
    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=20)
    inner, _ = search(tx, lambda x: x**2, jnp.asarray(-1.0), jnp.asarray(1.95))
    assert float(inner.info.decrease_error) == float(inner.info.curvature_error) == 0.0


def test_zoom_info_is_nan_free_and_inf_for_a_nan_objective():
    # NaN everywhere but at the start: every trial fails, as a NaN value
    nan_off_zero = lambda z: jnp.where(jnp.all(z == 0), 0.0, jnp.nan) + jnp.sum(z**2)
    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=4)
    inner, out = search(tx, nan_off_zero, jnp.zeros(2), -jnp.ones(2))
    np.testing.assert_array_equal(np.asarray(out), 0.0)
    assert float(inner.info.decrease_error) == np.inf


# ---- backtracking -------------------------------------------------------------------------


def armijo_reference(fn, x, u, guess, *, c1, rho, max_steps):
    """Float64: the first of guess * rho**j (j < max_steps) meeting the Armijo condition."""
    f = lambda z: float(jax.jit(fn)(jnp.asarray(z)))
    x, u = np.asarray(x, np.float64), np.asarray(u, np.float64)
    f0 = f(x)
    slope = float(np.dot(np.asarray(jax.grad(fn)(jnp.asarray(x)), np.float64), u))
    step = guess
    for j in range(max_steps):
        if f(x + step * u) <= f0 + c1 * step * slope:
            return step, j + 1
        step *= rho
    return None, max_steps


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("store_grad", [False, True])
def test_backtracking_matches_the_armijo_rule_over_steps(store_grad):
    tx = gradtx.scale_by_backtracking_linesearch(
        max_backtracking_steps=40, decrease_factor=0.5, increase_factor=1.5, store_grad=store_grad
    )
    x = jnp.asarray([-1.2, 1.0])
    state = tx.init(x)
    update = jax.jit(tx.update, static_argnames=("value_fn",))
    previous = 1.0  # max_learning_rate: the first guess is min(1.5 * 1, 1)
    for _ in range(8):
        value, grad = jax.value_and_grad(rosenbrock)(x)
        out, state = update(-grad, state, x, value=value, grad=grad, value_fn=rosenbrock)
        inner = state.inner_state
        expected, trials = armijo_reference(
            rosenbrock, x, -grad, min(1.5 * previous, 1.0), c1=1e-4, rho=0.5, max_steps=40
        )
        assert float(inner.learning_rate) == pytest.approx(expected, rel=1e-14)
        assert int(inner.info.num_linesearch_steps) == trials
        np.testing.assert_allclose(np.asarray(out), -expected * np.asarray(grad), rtol=1e-14)
        x_new = x + out
        assert float(inner.value) == pytest.approx(float(rosenbrock(x_new)), rel=1e-14)
        if store_grad:
            np.testing.assert_allclose(inner.grad, jax.grad(rosenbrock)(x_new), rtol=1e-12)
        else:
            assert inner.grad is None
        previous, x = expected, x_new
    assert update._cache_size() == 1
    assert float(rosenbrock(x)) < 24.2


@pytest.mark.parametrize(
    "extra",
    [{}, dict(slope_rtol=0.0), dict(increase_factor=0.5)],
    ids=["defaults", "slope_rtol_0_any_decrease", "increase_factor_below_1"],
)
def test_backtracking_matches_optax(extra):
    import optax

    def fn(x):
        return jnp.sum(jnp.asarray([1.0, 4.0, 9.0]) * (x - 0.5) ** 2) + 0.1 * jnp.sum(x**4)

    kwargs = dict(max_backtracking_steps=15, decrease_factor=0.7, store_grad=True, **extra)
    ours = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_backtracking_linesearch(**kwargs))
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(**kwargs))
    runs = []
    for tx, vag, promotion in [
        (ours, gradtx.value_and_grad_from_state(fn), "strict"),
        (theirs, optax.value_and_grad_from_state(fn), "standard"),
    ]:
        with jax.numpy_dtype_promotion(promotion):

            @jax.jit
            def step(x, state, tx=tx, vag=vag):
                value, grad = vag(x, state=state)
                out, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
                return x + out, state

            x = jnp.asarray([2.0, -1.0, 0.0])
            state, path = tx.init(x), []
            for _ in range(10):
                x, state = step(x, state)
                path.append(np.asarray(x, np.float64))
        runs.append(np.stack(path))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6, atol=1e-7)


def test_backtracking_increase_factor_inf_starts_at_max_learning_rate():
    tx = gradtx.scale_by_backtracking_linesearch(
        max_backtracking_steps=5, increase_factor=math.inf, max_learning_rate=0.25
    )
    x = jnp.asarray([3.0])
    fn = lambda z: jnp.sum(z**2)
    inner, out = search(tx, fn, x, -jax.grad(fn)(x))
    assert float(inner.learning_rate) == 0.25 and float(out[0]) == -1.5


# ---- value_and_grad_from_state, hyperparameters, errors ---------------------------------------


def test_value_and_grad_from_state_reuses_the_stored_point():
    fn = lambda z: jnp.sum(z**2)
    tx = gradtx.chain(gradtx.sgd(0.1), gradtx.scale_by_zoom_linesearch(max_linesearch_steps=5))
    x = jnp.asarray([1.0, -2.0])
    state = tx.init(x)
    vag = gradtx.value_and_grad_from_state(fn)
    value, grad = vag(x, state=state)  # nothing stored: evaluated
    assert float(value) == 5.0 and np.allclose(grad, [2.0, -4.0])
    out, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
    # A different function shows which values come back: the stored ones, not re-evaluated.
    stored_value, stored_grad = gradtx.value_and_grad_from_state(lambda z: 0 * fn(z))(
        x + out, state=state
    )
    np.testing.assert_allclose(stored_value, fn(x + out), rtol=1e-6)
    np.testing.assert_allclose(stored_grad, jax.grad(fn)(x + out), rtol=1e-6)
    jitted = jax.jit(lambda p, s: vag(p, state=s))
    np.testing.assert_allclose(jitted(x + out, state)[0], stored_value)


def test_value_and_grad_from_state_errors():
    fn = lambda z: jnp.sum(z**2)
    x = jnp.ones(2)
    vag = gradtx.value_and_grad_from_state(fn)
    with pytest.raises(ValueError, match="value_and_grad_from_state: the state must hold exactly"):
        vag(x, state=gradtx.sgd(0.1).init(x))
    tx = gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=3)
    with pytest.raises(ValueError, match="store_grad=True"):
        vag(x, state=tx.init(x))
    with pytest.raises(TypeError, match="value_fn must be callable"):
        gradtx.value_and_grad_from_state(3.0)
    # two searches: the lookup is ambiguous (KeyError, as gradtx.tree.get's and optax's)
    two = gradtx.chain(
        gradtx.scale_by_backtracking_linesearch(3, store_grad=True),
        gradtx.scale_by_backtracking_linesearch(3, store_grad=True),
    )
    with pytest.raises(KeyError, match="exactly one line search .* found 2"):
        vag(x, state=two.init(x))


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=5),
        lambda: gradtx.scale_by_zoom_linesearch(max_linesearch_steps=5),
    ],
    ids=["backtracking", "zoom"],
)
def test_an_extra_argument_value_fn_does_not_take_is_named(make):
    """Every extra argument but value, grad and value_fn goes to value_fn: one it does not take
    (misspelt, or meant for another link) is a TypeError naming it, before the search runs."""
    tx = make()
    x = jnp.asarray([1.0, 2.0])
    fn = lambda params, batch: jnp.sum(params * batch)  # noqa: E731
    batch = jnp.ones(2)
    value, grad = jax.value_and_grad(fn)(x, batch)
    state = tx.init(x)
    kwargs = dict(value=value, grad=grad, value_fn=fn, batch=batch)
    tx.update(-grad, state, x, **kwargs)  # the arguments it takes pass
    with pytest.raises(TypeError, match=r"Unexpected keyword arguments \['unused'\] for value_fn"):
        tx.update(-grad, state, x, unused=42, **kwargs)
    with pytest.raises((TypeError, ValueError), match=r"update needs value="):
        tx.update(-grad, state, x, grad=grad, value_fn=fn, batch=batch)


def test_hyperparameters_are_live():
    tx = gradtx.scale_by_zoom_linesearch(max_linesearch_steps=10, curv_rtol=0.5)
    x = jnp.asarray([2.0, 1.0])
    state = tx.init(x)
    hp = gradtx.hyperparams(state)
    assert float(hp["curv_rtol"]) == 0.5 and float(hp["slope_rtol"]) == pytest.approx(1e-4)
    update = jax.jit(tx.update, static_argnames=("value_fn",))
    value, grad = jax.value_and_grad(quadratic)(x)
    update(-grad, state, x, value=value, grad=grad, value_fn=quadratic)
    changed = gradtx.set_hyperparams(state, curv_rtol=0.1)
    update(-grad, changed, x, value=value, grad=grad, value_fn=quadratic)
    assert update._cache_size() == 1
    with pytest.raises(ValueError, match=r"set_hyperparams: curv_rtol must be in \(0, 1\)"):
        gradtx.set_hyperparams(state, curv_rtol=1.5)
    with pytest.raises(ValueError, match="set_hyperparams: tol must be >= 0"):
        gradtx.set_hyperparams(state, tol=-1.0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: gradtx.scale_by_zoom_linesearch(0),
            ValueError,
            "max_linesearch_steps must be >= 1",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(2.5),
            TypeError,
            "max_linesearch_steps must be an int",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(5, slope_rtol=0.5, curv_rtol=0.4),
            ValueError,
            "curv_rtol must be greater than slope_rtol",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(5, curv_rtol=1.5),
            ValueError,
            r"curv_rtol must be in \(0, 1\)",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(5, increase_factor=1.0),
            ValueError,
            "increase_factor must be > 1",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(5, initial_guess_strategy="two"),
            ValueError,
            "initial_guess_strategy",
        ),
        (lambda: gradtx.scale_by_zoom_linesearch(5, tol=-1.0), ValueError, "tol must be >= 0"),
        (
            lambda: gradtx.scale_by_zoom_linesearch(5, max_learning_rate=0.0),
            ValueError,
            "max_learning_rate must be > 0",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(5, slope_rtol=math.nan),
            ValueError,
            "slope_rtol must be finite",
        ),
        (
            lambda: gradtx.scale_by_backtracking_linesearch(0),
            ValueError,
            "max_backtracking_steps must be >= 1",
        ),
        (
            lambda: gradtx.scale_by_backtracking_linesearch(5, decrease_factor=1.0),
            ValueError,
            r"decrease_factor must be in \(0, 1\)",
        ),
        (
            lambda: gradtx.scale_by_backtracking_linesearch(5, increase_factor=0.0),
            ValueError,
            "increase_factor must be > 0",
        ),
        (
            lambda: gradtx.scale_by_backtracking_linesearch(5, store_grad=1),
            TypeError,
            "store_grad must be a bool",
        ),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("make", ["zoom", "backtracking"])
def test_update_names_missing_extras(make):
    owner = f"scale_by_{make}_linesearch"
    tx = getattr(gradtx, owner)(5)
    x = jnp.ones(2)
    fn = lambda z: jnp.sum(z**2)
    state = tx.init(x)
    with pytest.raises(ValueError, match=f"{owner}: update needs the objective as value_fn"):
        tx.update(x, state, x, value=fn(x), grad=x)
    with pytest.raises(ValueError, match=f"{owner}: update needs grad="):
        tx.update(x, state, x, value=fn(x), value_fn=fn)
    with pytest.raises(ValueError, match=f"{owner}: update needs value="):
        tx.update(x, state, x, grad=x, value_fn=fn)
    with pytest.raises(ValueError, match=f"{owner}: update needs params"):
        tx.update(x, state, value=fn(x), grad=x, value_fn=fn)
    with pytest.raises(ValueError, match=f"{owner}: .*grad"):
        tx.update(x, state, x, value=fn(x), grad=jnp.ones(3), value_fn=fn)


def test_info_structure():
    state = gradtx.scale_by_zoom_linesearch(5).init(jnp.ones(2))
    assert isinstance(state.inner_state.info, ZoomLinesearchInfo)
    assert state.inner_state.info.num_linesearch_steps.dtype == jnp.int32
    assert state.inner_state.info.decrease_error.dtype == jnp.float32
    assert not bool(state.inner_state.info.succeeded)  # inf errors before the first search
    state = gradtx.scale_by_backtracking_linesearch(5).init(jnp.ones(2))
    assert isinstance(state.inner_state.info, BacktrackingLinesearchInfo)
    assert float(state.inner_state.info.decrease_error) == np.inf


def test_verbose_reports_a_failed_search(capsys):
    tx = gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=3, verbose=True)
    x = jnp.asarray([1.0, 2.0])
    inner, out = searcher(tx, quadratic)(x, jax.grad(quadratic)(x))  # an ascent direction
    jax.effects_barrier()
    assert "no step met the sufficient decrease condition" in capsys.readouterr().out
    assert not bool(inner.info.succeeded)
