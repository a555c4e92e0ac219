"""Complex parameters: every optimizer and pair on complex64 and complex128 trees.

Convention (optax's): the gradient a transformation is given for a complex param ``z`` is
``df/dRe z + i df/dIm z``, the conjugate of what ``jax.grad`` returns; every test here
conjugates ``jax.grad``'s output before ``update``. Under it, each complex element is the pair
(Re, Im) of the equivalent real problem.

What is tested, each case jitted with one compile:

* Registry (helpers.OPTIMIZERS + helpers.ELEMENTARY), complex64 and complex128: 20 steps on a
  tree like helpers.sample_tree's (nesting, a scalar, a None, empty subtrees, a zero-size leaf)
  with random real and imaginary parts, against the complex float64 NumPy reference
  (tests/reference/numpy_reference.py: second moments of ``|g|**2``, norms of ``|g|``,
  ``clip`` per part); tolerances those of tests/test_reference.py (1e-5 relative for
  complex64, 1e-10 for complex128). Updates keep the params' dtypes.
* Real pairs: the transformations whose natural complex form uses only linear operations,
  norms and real inner products (sgd, trace, ema, scale, clipping, trust ratios, lars,
  adaptive_grad_clip, centralize, monitor's norms) give on complex params the numbers of the
  same transformation on the real problem, where each complex leaf ``z`` is replaced by the
  real leaf ``concatenate((Re z, Im z))`` (a scalar by ``stack``); 10 steps, complex64 against
  float32 and complex128 against float64, within 16 roundings of the dtype.
* Line searches (backtracking, zoom), L-BFGS (its default zoom line search and the
  backtracking one), Newton-CG and conjugate gradient on complex objectives against the real
  problem on the pairs: tests/problems.py's quadratic and Rosenbrock with ``x = (Re z, Im z)``,
  and optax's test_lbfgs_complex objective ``sum |M z|**1.5``; within 64 roundings.
* By hand: ``monitor`` reports the real norm 2.5 of ``[1.5+2j]``, ``clip_by_global_norm(1)``
  makes it ``[0.6+0.8j]``, ``clip`` clips each part, ``add_noise`` adds complex noise whose
  real and imaginary parts each have the variance of the real problem's noise.

Measured worst deviations when written (relative to each leaf's largest magnitude):

=========================  ==================================  ===============================
check                      complex64                           complex128
=========================  ==================================  ===============================
registry vs NumPy          5.5e-6 (scale_by_stddev_debiased:   1.5e-14 (the same)
                           its v - |m|**2 cancels)
real pairs                 2.3e-7 (lars)                       3.5e-16 (monitor_clip_sgd)
solvers vs real pairs      1.1e-6 (newton_cg_zoom, abs15)      3.1e-15 (lbfgs, rosenbrock)
conjugate gradient         3.3e-7                              2.7e-16
=========================  ==================================  ===============================
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import helpers, problems, registry

COMPLEX = {"complex64": jnp.complex64, "complex128": jnp.complex128}
REAL_OF = {jnp.complex64: jnp.float32, jnp.complex128: jnp.float64}

# As tests/test_reference.py: relative to each leaf's largest magnitude over the run.
REFERENCE_TOLERANCE = {jnp.complex64: 1e-5, jnp.complex128: 1e-10}
# Complex against the real pairs in the same precision: only the order of the additions in
# norms and inner products differs; 16 roundings of the real dtype.
PAIR_TOLERANCE = {jnp.complex64: 16 * 2.0**-23, jnp.complex128: 16 * 2.0**-52}
# Line searches and solvers: each step a function of the last, so roundings add up over the
# steps compared; 64 roundings.
SOLVER_TOLERANCE = {jnp.complex64: 64 * 2.0**-23, jnp.complex128: 64 * 2.0**-52}

REFERENCE_STEPS = 20
PAIR_STEPS = 10


@pytest.fixture(params=list(COMPLEX), ids=list(COMPLEX))
def dtype(request):
    """complex64, or complex128 with 64-bit floats enabled."""
    if request.param == "complex128":
        request.getfixturevalue("x64")
    return COMPLEX[request.param]


# ---- trees and their real pairs ----------------------------------------------------------------


def complex_tree(seed: int, dtype) -> object:
    """A tree like helpers.sample_tree (nesting, a scalar, empty subtrees, a None, a zero-size
    leaf) with complex leaves of random real and imaginary parts. Three leaves, not six: the
    compile time of the 200 programs here grows with the leaves."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype)

    return {
        "dense": {"w": arr(4, 3)},
        "layers": [{"scale": arr()}],
        "pair": (None,),
        "empty": {},
        "nothing": (),
        "zero_size": arr(0, 3),
    }


def complex_gradients(params, steps: int, seed: int) -> list:
    """Random complex gradients shaped like ``params``, one tree per step."""
    rng = np.random.default_rng(seed)

    def draw(p):
        return jnp.asarray(rng.normal(size=p.shape) + 1j * rng.normal(size=p.shape), p.dtype)

    return [jax.tree.map(draw, params) for _ in range(steps)]


def to_pairs(x, axis: int = 0):
    """A complex leaf as a real one: ``concatenate((Re x, Im x), axis)``, a scalar stacked.

    Axis 0 keeps whole-leaf norms and adaptive_grad_clip's default units (columns of a kernel
    hold the real and imaginary parts of a complex column); axis -1 keeps centralize's units
    apart (the real and imaginary parts of a unit are separate units, each centred).
    """
    xp = jnp if isinstance(x, jax.Array) else np
    if x.ndim == 0:
        return xp.stack([x.real, x.imag])
    return xp.concatenate([x.real, x.imag], axis=axis)


def from_pairs(x):
    """The complex vector of a real vector laid out as to_pairs lays one out."""
    half = x.shape[0] // 2
    return jax.lax.complex(x[:half], x[half:])


def tree_to_pairs(tree, axis: int = 0):
    return jax.tree.map(functools.partial(to_pairs, axis=axis), tree)


# ---- runs ----------------------------------------------------------------------------------


def _numpy_leaves(tree) -> list[np.ndarray]:
    return [
        np.asarray(x).astype(np.complex128 if jnp.iscomplexobj(x) else np.float64)
        for x in jax.tree.leaves(tree)
    ]


_apply_updates = jax.jit(gradtx.apply_updates)  # compiled once per tree and dtype, for all


def run(tx, *problems):
    """Runs ``tx`` on each ``(params, grads)`` problem side by side, the updates of all in one
    jitted program (one compile: a complex problem and its real pairs compile together).

    Returns, for each problem, the params after every step and the updates of every step (lists
    of NumPy leaf lists) and, where the state has a monitor, step_stats after every step.
    """
    update = jax.jit(lambda gs, ss, ps: [tx.update(g, s, p) for g, s, p in zip(gs, ss, ps)])
    params = [p for p, _ in problems]
    states = [tx.init(p) for p in params]
    out = [([], [], []) for _ in problems]
    for grads in zip(*(g for _, g in problems)):
        results = update(list(grads), states, params)
        states = [state for _, state in results]
        for i, (updates, state) in enumerate(results):
            # each update keeps its param's dtype: complex stays complex, of the same precision
            assert [u.dtype for u in jax.tree.leaves(updates)] == [
                p.dtype for p in jax.tree.leaves(params[i])
            ]
            params[i] = _apply_updates(params[i], updates)
            trajectory, all_updates, stats = out[i]
            trajectory.append(_numpy_leaves(params[i]))
            all_updates.append(_numpy_leaves(updates))
            if isinstance(state, gradtx.MonitoredState):
                stats.append({k: np.asarray(v) for k, v in gradtx.step_stats(state).items()})
    assert update._cache_size() == 1
    return out


def run_reference(reference, params, grads):
    """helpers.run_reference for complex leaves (kept complex128)."""
    leaves = _numpy_leaves(params)
    state = reference.init(leaves)
    trajectory, all_updates = [], []
    for g in grads:
        updates, state = reference.update(_numpy_leaves(g), state, leaves)
        leaves = [p + u for p, u in zip(leaves, updates)]
        trajectory.append(leaves)
        all_updates.append(updates)
    return trajectory, all_updates


def as_pairs(steps, axis: int = 0):
    """Each step's complex NumPy leaves laid out as to_pairs lays them out."""
    return [[to_pairs(x, axis) for x in leaves] for leaves in steps]


# ---- the registry against the complex NumPy reference --------------------------------------


REAL_ONLY = set(registry.rows("REAL_ONLY"))
# as in tests/test_reference.py: iterative matrix functions meet 1e-4 in complex64
ITERATIVE = set(registry.rows("ITERATIVE"))


@pytest.mark.parametrize(
    "case", [c for c in helpers.ALL_CASES if c.id not in REAL_ONLY], ids=lambda c: c.id
)
def test_registry_matches_complex_numpy_reference(case, dtype):
    params = complex_tree(0, dtype)
    grads = complex_gradients(params, REFERENCE_STEPS, seed=1)
    ((trajectory, updates, _),) = run(case.gradtx(), (params, grads))
    want = run_reference(case.reference(), params, grads)
    bound = 1e-4 if dtype == jnp.complex64 and case.id in ITERATIVE else REFERENCE_TOLERANCE[dtype]
    assert helpers.deviation((trajectory, updates), want) < bound


@pytest.mark.parametrize(
    "case", [c for c in helpers.ALL_CASES if c.id in REAL_ONLY], ids=lambda c: c.id
)
def test_methods_without_a_complex_form_refuse_complex_params_at_init(case):
    # sign methods: the sign of a complex number is not a direction of steepest descent of
    # any real problem; init refuses, naming the function and the leaf
    tx = case.gradtx()
    with pytest.raises(TypeError, match=case.name):
        tx.init(complex_tree(0, jnp.complex64))


def test_real_only_ids_are_registry_cases():
    assert REAL_ONLY <= {c.id for c in helpers.ALL_CASES}


# ---- the real pairs: linear operations, norms and real inner products ----------------------

# Second-moment methods (adagrad, rmsprop, adadelta, adam, adamw, lamb and their pairs) keep
# one |g|**2 per complex element, shared by its two parts: not the real problem on the pairs;
# they are checked against the complex NumPy reference above.
# The natural complex form of these is the real problem on the pairs (the registry's other
# linear rows, the scheduled and the trivial ones, are as linear and checked above).
PAIR_IDS = [
    "sgd",
    "sgd_momentum",
    "sgd_nesterov",
    "trace",
    "trace_nesterov",
    "ema",
    "ema_biased",
    "scale",
    "scale_by_learning_rate",
    "add_decayed_weights",
    "clip",
    "clip_by_norm",
    "clip_by_global_norm",
    "scale_by_trust_ratio",
    "scale_by_trust_ratio_floor",
    "lars",
    "lars_decay_nesterov",
] + registry.rows("COMPLEX_PAIR_IDS")
PAIR_CASES = [
    pytest.param(case.gradtx, 0, id=case.id) for case in helpers.ALL_CASES if case.id in PAIR_IDS
] + [
    pytest.param(lambda: gradtx.adaptive_grad_clip(0.5), 0, id="adaptive_grad_clip"),
    pytest.param(gradtx.centralize, -1, id="centralize"),
    pytest.param(
        lambda: gradtx.monitor(
            gradtx.chain(gradtx.clip_by_global_norm(3.0), gradtx.sgd(0.1, momentum=0.9))
        ),
        0,
        id="monitor_clip_sgd",
    ),
]


@pytest.mark.parametrize(("make", "axis"), PAIR_CASES)
def test_equals_the_real_problem_on_pairs(make, axis, dtype):
    params = complex_tree(0, dtype)
    grads = complex_gradients(params, PAIR_STEPS, seed=1)
    real_grads = [tree_to_pairs(g, axis) for g in grads]
    (trajectory, updates, stats), want = run(
        make(), (params, grads), (tree_to_pairs(params, axis), real_grads)
    )
    got = (as_pairs(trajectory, axis), as_pairs(updates, axis))
    assert helpers.deviation(got, want[:2]) < PAIR_TOLERANCE[dtype]
    assert len(stats) == len(want[2])
    for got_stats, want_stats in zip(stats, want[2]):  # monitor's norms are the pairs' norms
        assert got_stats.keys() == want_stats.keys()
        for key, value in got_stats.items():
            assert value.dtype == want_stats[key].dtype  # real, in the real problem's dtype
            np.testing.assert_allclose(value, want_stats[key], rtol=PAIR_TOLERANCE[dtype])


# ---- line searches, L-BFGS, Newton-CG and CG: complex objectives against the real problem --


def _standard(loss):
    """tests/problems.py's losses hold float32 constants: promote them with float64 params."""

    def fn(x):
        with jax.numpy_dtype_promotion("standard"):
            return loss(x).astype(x.dtype)

    return fn


def objective(name: str, dtype):
    """``(f on complex z, f on the real pairs x, z0, x0, minimum)``.

    tests/problems.py's problems take ``x = (Re z, Im z)``; "abs15" is optax's
    test_lbfgs_complex objective ``sum |M z|**1.5``.
    """
    real = REAL_OF[dtype]
    if name == "abs15":
        mat = jnp.asarray([[1, -2], [3, 4], [-4 + 2j, 5 - 3j], [-2 - 2j, 6]], dtype)

        def f_complex(z):
            return jnp.sum(jnp.abs(mat @ z) ** 1.5)

        z0 = jnp.asarray([1 - 1j, 1j], dtype)
        return f_complex, lambda x: f_complex(from_pairs(x)), z0, to_pairs(z0), 0.0
    problem = problems.get(name)
    f_real = _standard(problem.loss)
    x0 = problem.init.astype(real)
    return lambda z: f_real(to_pairs(z)), f_real, from_pairs(x0), x0, problem.minimum


def solve(tx, steps: int, *problems):
    """Runs ``tx`` on each ``(fn, x0)`` problem side by side for ``steps`` steps, all in one
    jitted program (one compile). The gradient given to ``update`` is the conjugate of
    jax.grad's (optax's convention). Returns, for each problem, the params after every step
    (lists of one NumPy leaf) and the final loss."""

    def step(fn, x, state):
        value, grad = jax.value_and_grad(fn)(x)
        grad = jnp.conj(grad)
        updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
        return gradtx.apply_updates(x, updates), state

    fns = [fn for fn, _ in problems]
    step_all = jax.jit(lambda xs, ss: [step(fn, x, s) for fn, x, s in zip(fns, xs, ss)])
    xs = [x0 for _, x0 in problems]
    states = [tx.init(x) for x in xs]
    trajectories = [[] for _ in problems]
    for _ in range(steps):
        xs, states = (list(t) for t in zip(*step_all(xs, states)))
        for x, (_, x0), trajectory in zip(xs, problems, trajectories):
            assert x.dtype == x0.dtype
            trajectory.append(_numpy_leaves(x))
    assert step_all._cache_size() == 1
    return [(trajectory, float(fn(x))) for trajectory, fn, x in zip(trajectories, fns, xs)]


def _zoom(**kwargs):
    return gradtx.scale_by_zoom_linesearch(max_linesearch_steps=15, **kwargs)


def _backtracking():
    return gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=20)


SOLVERS = {
    "lbfgs": lambda: gradtx.lbfgs(),  # its default line search: zoom from a step of 1
    # Armijo backtracking does not keep s'y > 0: L-BFGS-B's rule, as recommended with it
    # (storing every pair, optax's rule and the default, stalls in Rosenbrock's valley)
    "lbfgs_backtracking": lambda: gradtx.lbfgs(
        linesearch=_backtracking(), skip_curvature_failures=True
    ),
    "sgd_zoom": lambda: gradtx.chain(gradtx.sgd(1.0), _zoom()),
    "sgd_backtracking": lambda: gradtx.chain(gradtx.sgd(1.0), _backtracking()),
    "newton_cg_zoom": lambda: gradtx.newton_cg(linesearch=_zoom(initial_guess_strategy="one")),
}

# (solver, problem, steps, steps compared, decrease). The first ``compared`` steps must agree
# within a few roundings. In Rosenbrock's curved valley the roundings in which the two runs
# differ (in the inner products a complex element's two products are added before the sum,
# the pairs' are not) grow by orders of magnitude from step 8 on (float32: 1e-7 at step 8,
# 3e-3 at step 30; L-BFGS takes the same path in exact arithmetic), so there only the first 5
# steps are compared, and then both runs must reach the minimum, as optax's
# test_lbfgs_complex checks. After ``steps`` the loss of both runs is below ``decrease`` times
# the start's (above the minimum): the real run must have gone somewhere for the comparison
# to mean anything.
SOLVER_CASES = [
    ("lbfgs", "abs15", 25, 25, 1e-10),
    ("lbfgs", "rosenbrock", 40, 5, 1e-10),
    ("lbfgs_backtracking", "abs15", 40, 40, 1e-10),
    ("lbfgs_backtracking", "rosenbrock", 48, 5, 1e-10),
    ("sgd_zoom", "quadratic", 10, 10, 0.05),
    ("sgd_backtracking", "quadratic", 10, 10, 0.05),
    ("newton_cg_zoom", "abs15", 12, 12, 1e-10),
]


@pytest.mark.parametrize(
    ("solver", "name", "steps", "compared", "decrease"),
    SOLVER_CASES,
    ids=[f"{s}-{n}" for s, n, *_ in SOLVER_CASES],
)
def test_solver_equals_the_real_problem_on_pairs(solver, name, steps, compared, decrease, dtype):
    f_complex, f_real, z0, x0, minimum = objective(name, dtype)
    (got, complex_loss), (want, real_loss) = solve(
        SOLVERS[solver](), steps, (f_complex, z0), (f_real, x0)
    )
    deviation = helpers.max_relative_deviation(as_pairs(got[:compared]), want[:compared])
    assert deviation < SOLVER_TOLERANCE[dtype]
    start = float(f_real(x0)) - minimum
    assert real_loss - minimum < decrease * start
    assert complex_loss - minimum < decrease * start


def test_conjugate_gradient_on_a_hermitian_system(dtype):
    """CG with the real inner product Re(a^H b) on ``H z = b`` (H Hermitian positive definite)
    is CG on the real system of the pairs, ``[[Re H, -Im H], [Im H, Re H]] x = (Re b, Im b)``."""
    n = 6
    rng = np.random.default_rng(3)
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    h = a.conj().T @ a + n * np.eye(n)
    b = rng.normal(size=n) + 1j * rng.normal(size=n)
    h_real = np.block([[h.real, -h.imag], [h.imag, h.real]])
    hc, bc = jnp.asarray(h, dtype), jnp.asarray(b, dtype)
    hr = jnp.asarray(h_real, REAL_OF[dtype])
    solve_complex = jax.jit(lambda b: gradtx.conjugate_gradient(lambda v: hc @ v, b, max_steps=4))
    solve_real = jax.jit(lambda b: gradtx.conjugate_gradient(lambda v: hr @ v, b, max_steps=4))
    z, info = solve_complex(bc)
    x, real_info = solve_real(to_pairs(bc))
    assert z.dtype == dtype and info.residual_norm.dtype == REAL_OF[dtype]
    assert int(info.num_steps) == int(real_info.num_steps) == 4  # stopped at max_steps
    deviation = helpers.max_relative_deviation([_numpy_leaves(to_pairs(z))], [_numpy_leaves(x)])
    assert deviation < SOLVER_TOLERANCE[dtype]
    # the residual norm (0.1) is small beside |b| (3) and carries roundings of |b|'s size
    np.testing.assert_allclose(
        float(info.residual_norm),
        float(real_info.residual_norm),
        rtol=0,
        atol=SOLVER_TOLERANCE[dtype] * np.linalg.norm(b),
    )
    # and with n steps (H's real form has each eigenvalue twice), the float64 solution
    solve_all = jax.jit(
        lambda b: gradtx.conjugate_gradient(lambda v: hc @ v, b, max_steps=n, tol=0.0)
    )
    z, info = solve_all(bc)
    deviation = helpers.max_relative_deviation([_numpy_leaves(z)], [[np.linalg.solve(h, b)]])
    assert deviation < REFERENCE_TOLERANCE[dtype]


# ---- by hand -------------------------------------------------------------------------------


def test_monitor_reports_the_real_norm(dtype):
    tx = gradtx.monitor(gradtx.sgd(0.5))
    params = {"w": jnp.zeros(1, dtype)}
    _, state = jax.jit(tx.update)({"w": jnp.asarray([1.5 + 2j], dtype)}, tx.init(params))
    stats = gradtx.step_stats(state)
    for key, want in (("grad_norm", 2.5), ("update_norm", 1.25)):
        assert stats[key].dtype == REAL_OF[dtype]  # a norm is real
        np.testing.assert_allclose(stats[key], want, rtol=2 * jnp.finfo(REAL_OF[dtype]).eps)


def test_clipping_by_hand(dtype):
    eps = 2 * float(jnp.finfo(REAL_OF[dtype]).eps)
    g = {"w": jnp.asarray([1.5 + 2j], dtype)}
    for tx in (gradtx.clip_by_global_norm(1.0), gradtx.clip_by_norm(1.0)):
        out, _ = jax.jit(tx.update)(g, tx.init(g))
        assert out["w"].dtype == dtype
        np.testing.assert_allclose(out["w"], [0.6 + 0.8j], rtol=eps)
    tx = gradtx.clip(0.5)  # the real and imaginary parts, each
    g = {"w": jnp.asarray([2 - 0.3j, -1 + 2j, 0.1 - 7j], dtype)}
    out, _ = jax.jit(tx.update)(g, tx.init(g))
    np.testing.assert_array_equal(
        out["w"], np.asarray([0.5 - 0.3j, -0.5 + 0.5j, 0.1 - 0.5j], dtype)
    )
    tx = gradtx.scale_by_trust_ratio()  # ||p|| / ||g|| = |3+4i| / |i| = 5
    p, g = {"w": jnp.asarray([3 + 4j], dtype)}, {"w": jnp.asarray([1j], dtype)}
    out, _ = jax.jit(tx.update)(g, tx.init(p), p)
    np.testing.assert_allclose(out["w"], [5j], rtol=eps)


def test_add_noise_is_complex_with_the_real_problems_variance_in_each_part(dtype):
    """Each part of the noise on a complex element has the variance eta / t**gamma that the
    real problem's noise has, and the parts are uncorrelated (200,000 draws per part: the
    sample standard deviation is within 1% of the true one with overwhelming probability)."""
    n, eta, gamma = 200_000, 0.01, 0.55
    tx = gradtx.add_noise(eta, gamma, key=0)
    g = {"w": jnp.zeros(n, dtype)}
    update = jax.jit(tx.update)
    state = tx.init(g)
    for t in (1, 2):
        noisy, state = update(g, state)
        assert noisy["w"].dtype == dtype
        w = np.asarray(noisy["w"]).astype(np.complex128)
        std = np.sqrt(eta / t**gamma)
        for part in (w.real, w.imag):
            assert abs(np.mean(part)) < 5 * std / np.sqrt(n)
            assert abs(np.std(part) / std - 1) < 0.01
        assert abs(np.corrcoef(w.real, w.imag)[0, 1]) < 5 / np.sqrt(n)
