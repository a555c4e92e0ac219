"""sam and adaptive_normalize: against float64 NumPy written from the papers, and optax.

The reference is Foret et al.'s Algorithm 1 generalised to ``k - 1`` ascent steps: from the real
weights w, climb by the perturbation (SAM's ρ g/‖g‖, or ASAM's ρ T² g/‖T g‖ with T = |w| + η)
at each step, then let the outer optimizer step from w with the gradient at the last perturbed
point. The problem is a small tree of a matrix, a vector and a scalar under a non-quadratic
loss, so that the gradient at the perturbed point differs from the one at w.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.reference import numpy_reference as ref

CURVATURE = {"b": np.array([0.5, 3.0]), "s": np.array(2.0), "w": np.array([[1.0, 4.0, 0.2]] * 2)}
START = {"b": np.array([0.3, -0.7]), "s": np.array(1.3), "w": np.array([[-0.4, 0.9, 1.5]] * 2)}
START["w"] = START["w"] * np.array([[1.0], [-0.5]])


def grad_np(leaves):
    """∇ of Σ c x²/2 + x⁴/10 (leaves in the order of jax.tree.leaves: b, s, w)."""
    return [c * x + 0.4 * x**3 for c, x in zip(jax.tree.leaves(CURVATURE), leaves)]


def grad_jax(params):
    def leaf(x, c):
        return jnp.asarray(c, x.dtype) * x + jnp.asarray(0.4, x.dtype) * x**3

    return jax.tree.map(leaf, params, CURVATURE)


def start(dtype):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), START)


def sam_perturbation(rho):
    def perturb(g, w):
        norm = np.sqrt(sum(np.sum(x * x) for x in g))
        return [rho * x / norm for x in g]

    return perturb


def asam_perturbation(rho, eta):
    def perturb(g, w):
        t = [np.abs(x) + eta for x in w]
        norm = np.sqrt(sum(np.sum(np.abs(ti * x) ** 2) for ti, x in zip(t, g)))
        return [rho * ti**2 * x / norm for ti, x in zip(t, g)]

    return perturb


def sam_reference(outer, perturb, k, calls):
    """The params after each call of a transparent-mode SAM (float64 leaves)."""
    w = [np.asarray(x, np.float64) for x in jax.tree.leaves(START)]
    state, point, run = outer.init(w), w, []
    for t in range(calls):
        g = grad_np(point)
        if t % k < k - 1:  # ascent: climb from where the cycle has got to
            point = [x + e for x, e in zip(point, perturb(g, point))]
        else:  # the real step, from w, with the gradient at the perturbed point
            u, state = outer.update(g, state, w)
            w = [x + du for x, du in zip(w, u)]
            point = w
        run.append(point)
    return run


def run_gradtx(tx, dtype, calls, *, opaque=False, lib=gradtx):
    """The params after each call, under jit (one update per real step with ``opaque``)."""
    kwargs = {"grad_fn": lambda p, i: grad_jax(p)} if opaque else {}

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad_jax(params), state, params, **kwargs)
        return lib.apply_updates(params, updates), state

    params = start(dtype)
    state = tx.init(params)
    run = []
    for _ in range(calls):
        params, state = step(params, state)
        run.append([np.asarray(x, np.float64) for x in jax.tree.leaves(params)])
    assert step._cache_size() == 1
    return run


def deviation(run, expected):
    scale = max(np.max(np.abs(x)) for step in expected for x in step)
    return max(np.max(np.abs(a - b)) for sa, sb in zip(run, expected) for a, b in zip(sa, sb)) / (
        scale
    )


def sam_ascent(rho):
    return gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.sgd(rho))


CASES = {
    # the paper's SAM: one normalized ascent step, then momentum SGD
    "sam_k2_momentum": (
        lambda: gradtx.sam(gradtx.sgd(0.05, momentum=0.9), sam_ascent(0.1)),
        ref.sgd(0.05, momentum=0.9),
        sam_perturbation(0.1),
        2,
    ),
    # ASAM with two ascent steps per cycle (T from the point the step climbs from), then Adam
    "asam_k3_adam": (
        lambda: gradtx.sam(
            gradtx.adam(0.02),
            gradtx.chain(gradtx.adaptive_normalize(0.05), gradtx.sgd(0.3)),
            sync_period=3,
        ),
        ref.adam(0.02),
        asam_perturbation(0.3, 0.05),
        3,
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_the_paper(case, dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    make, outer, perturb, k = CASES[case]
    calls = 60
    got = run_gradtx(make(), dtype, calls)
    err = deviation(got, sam_reference(outer, perturb, k, calls))
    print(f"reference {case} {dtype}: {err:.2e}")
    assert err <= (1e-9 if dtype == "float64" else 1e-4), err


def _optax_pair(k, reset, opaque):
    ours = gradtx.sam(
        gradtx.adam(1e-2),
        gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.adam(0.05)),
        sync_period=k,
        reset_state=reset,
        opaque_mode=opaque,
    )
    theirs = optax.contrib.sam(
        optax.adam(1e-2),
        optax.chain(optax.contrib.normalize(), optax.adam(0.05)),
        sync_period=k,
        reset_state=reset,
        opaque_mode=opaque,
    )
    return ours, theirs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opaque", [False, True], ids=["transparent", "opaque"])
def test_same_numbers_as_optax(dtype, opaque, request):
    # an adversary with state (Adam) and three steps a cycle, so that reset_state matters
    if dtype == "float64":
        request.getfixturevalue("x64")
    calls = 20 if opaque else 60  # an opaque call is a whole cycle
    runs = {}
    # reset_state=False too once, where the adversary's state lives across cycles
    both = dtype == "float64" and not opaque
    for reset in (True, False) if both else (True,):
        ours, theirs = _optax_pair(3, reset, opaque)
        got = run_gradtx(ours, dtype, calls, opaque=opaque)
        with jax.numpy_dtype_promotion("standard"):  # optax promotes weakly typed scalars
            expected = run_gradtx(theirs, dtype, calls, opaque=opaque, lib=optax)
        err = deviation(got, expected)
        print(f"optax {dtype} opaque={opaque} reset={reset}: {err:.2e}")
        assert err <= (1e-10 if dtype == "float64" else 1e-5), (reset, err)
        runs[reset] = got
    if len(runs) == 2:
        assert deviation(runs[True], runs[False]) > 1e-4  # the comparison saw the reset


def test_sync_period_one_is_the_outer_optimizer():
    # no ascent step: both modes are Adam (to XLA's fusion-dependent last bit; optax's
    # transparent mode is not: its real step starts from the params of the call before)
    adam = gradtx.adam(0.1)
    ascent = sam_ascent(0.1)
    plain = gradtx.sam(adam, ascent, sync_period=1)
    opaque = gradtx.sam(adam, ascent, sync_period=1, opaque_mode=True)

    @jax.jit
    def three_steps(params):
        out = []
        for tx, kwargs in ((adam, {}), (plain, {}), (opaque, {"grad_fn": None})):
            p, state = params, tx.init(params)
            for _ in range(3):
                extra = {"grad_fn": lambda q, i: grad_jax(q)} if kwargs else {}
                updates, state = tx.update(grad_jax(p), state, p, **extra)
                p = gradtx.apply_updates(p, updates)
            out.append(p)
        return out

    reference, *wrapped = three_steps(start("float32"))
    for got in wrapped:
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(reference)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_adaptive_normalize_is_the_asam_formula(x64):
    rho, eta = 0.7, 0.05
    params = start("float64")
    grads = grad_jax(params)
    tx = gradtx.chain(gradtx.adaptive_normalize(eta), gradtx.sgd(rho))
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    w, g = (list(map(np.asarray, jax.tree.leaves(t))) for t in (params, grads))
    expected = asam_perturbation(rho, eta)(g, w)  # ε = ρ T² g / ‖T g‖, T = |w| + η
    for u, e in zip(jax.tree.leaves(updates), expected):
        np.testing.assert_allclose(-np.asarray(u), e, rtol=1e-14, atol=0)
    # complex leaves: T = |w| + η from the modulus, the norm of (re, im) pairs
    w_c = jnp.array([1 + 2j, -0.5j]), jnp.array([0.3, -2.0])
    g_c = jnp.array([0.2 - 1j, 3 + 0j]), jnp.array([1.0, 0.5])
    got = jax.jit(tx.update)(g_c, tx.init(w_c), w_c)[0]
    expected = asam_perturbation(rho, eta)(
        [np.asarray(x) for x in g_c], [np.asarray(x) for x in w_c]
    )
    for u, e in zip(got, expected):
        np.testing.assert_allclose(-np.asarray(u), e, rtol=1e-14, atol=0)
    # a zero weight with eta = 0, or no gradient at all: no perturbation, not 0/0
    zero = gradtx.adaptive_normalize(0.0)
    update = jax.jit(zero.update)
    state = zero.init(jnp.ones(2))
    got = update(jnp.array([1.0, 2.0]), state, jnp.array([0.0, 0.5]))[0]
    np.testing.assert_array_equal(got, [0.0, 0.5])
    got = update(jnp.zeros(2), state, jnp.ones(2))[0]
    np.testing.assert_array_equal(got, [0.0, 0.0])


def test_one_program_for_the_cycle_and_live_hyperparameters():
    tx = gradtx.sam(
        gradtx.sgd(0.05), gradtx.chain(gradtx.adaptive_normalize(0.01), gradtx.sgd(0.1))
    )
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        updates, state = tx.update(grad_jax(params), state, params)
        return gradtx.apply_updates(params, updates), state

    params = start("float32")
    state = tx.init(params)
    keys = set(gradtx.hyperparams(state))
    assert "eta" in keys and len([k for k in keys if k.endswith("learning_rate")]) == 2, keys
    rho_key = next(k for k in keys if k.startswith("adv_state") and k.endswith("learning_rate"))
    params, state = step(params, state)  # ascent with rho = 0.1
    moved = params
    state = gradtx.set_hyperparams(state, eta=0.0, **{rho_key: 0.2})
    for _ in range(3):  # real step, then an ascent with the new values, then a real step
        params, state = step(params, state)
    assert len(traces) == 1
    assert float(gradtx.hyperparams(state)[rho_key]) == np.float32(0.2)
    assert not all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(moved))
    )


@pytest.mark.parametrize("opaque", [False, True], ids=["transparent", "opaque"])
def test_low_precision_params_and_abstract_init(opaque):
    tx = gradtx.sam(gradtx.adam(0.01), sam_ascent(0.05), opaque_mode=opaque)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), START)
    params["s"] = params["s"].astype(jnp.float16)
    abstract = tx.init(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params))
    state = tx.init(params)
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), abstract) == jax.tree.map(
        lambda x: (x.shape, x.dtype), state
    )
    kwargs = {"grad_fn": lambda p, i: grad_jax(p)} if opaque else {}

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad_jax(params), state, params, **kwargs)
        return gradtx.apply_updates(params, updates), state

    for _ in range(4):
        new_params, new_state = step(params, state)
        assert jax.tree.map(lambda x: x.dtype, new_params) == jax.tree.map(
            lambda x: x.dtype, params
        )
        assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
        params, state = new_params, new_state
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))
    assert float(params["s"]) < START["s"]  # the loss falls: the scalar moves towards 0


def test_batch_axis_name_averages_the_ascent_gradients():
    # examples with losses a_i L: averaged over the batch axis they are L (mean a_i = 1)
    tx = gradtx.sam(gradtx.sgd(0.1), sam_ascent(0.2), opaque_mode=True, batch_axis_name="batch")
    alone = gradtx.sam(gradtx.sgd(0.1), sam_ascent(0.2), opaque_mode=True)
    params = start("float32")

    def scaled(a):
        return lambda p, i: jax.tree.map(lambda g: a * g, grad_jax(p))

    def step(a):
        grads = jax.lax.pmean(scaled(a)(params, 0), "batch")
        return tx.update(grads, tx.init(params), params, grad_fn=scaled(a))[0]

    batched = jax.jit(jax.vmap(step, axis_name="batch"))(jnp.array([0.5, 1.5], jnp.float32))
    expected = jax.jit(lambda p: alone.update(grad_jax(p), alone.init(p), p, grad_fn=scaled(1.0)))(
        params
    )[0]
    for got, want in zip(jax.tree.leaves(batched), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, jnp.stack([want, want]), rtol=1e-6, atol=1e-7)


def test_update_errors_name_sam_and_the_argument():
    params = start("float32")
    opaque = gradtx.sam(gradtx.sgd(0.1), sam_ascent(0.1), opaque_mode=True)
    with pytest.raises(ValueError, match=r"^sam: .*grad_fn"):
        opaque.update(params, opaque.init(params), params)
    plain = gradtx.sam(gradtx.sgd(0.1), sam_ascent(0.1))
    with pytest.raises(ValueError, match=r"^sam: .*state"):
        plain.update(params, opaque.init(params), params)
    with pytest.raises(ValueError, match=r"^sam: .*params"):
        plain.update(params, plain.init(params))
