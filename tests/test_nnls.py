"""Non-negative least squares (``gradtx._linalg.nnls``) against scipy's active-set solver.

scipy.optimize.nnls (Lawson and Hanson's active-set method) is exact up to rounding; the fast
projected gradient converges as O(1/k^2) in the objective, so after a few thousand iterations
on these well-conditioned problems it agrees to about 1e-10 in float64. Where the solution is
not unique (fewer rows than columns) the objectives are compared instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

scipy_optimize = pytest.importorskip("scipy.optimize")

from gradtx._linalg.nnls import nnls  # noqa: E402


def _problem(m, n, k=(), seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(m, n), rng.randn(m, *k)


def _scipy(a, b):
    if b.ndim == 1:
        return scipy_optimize.nnls(a, b)[0]
    return np.stack([scipy_optimize.nnls(a, b[:, j])[0] for j in range(b.shape[1])], 1)


@pytest.mark.parametrize(("m", "n", "k"), [(20, 10, ()), (40, 6, (3,)), (8, 8, ())])
def test_matches_scipy_in_float64(m, n, k, x64):
    a, b = _problem(m, n, k)
    ours = np.asarray(nnls(jnp.asarray(a), jnp.asarray(b), 5000))
    want = _scipy(a, b)
    assert ours.dtype == np.float64 and ours.shape == (n, *k)
    assert (ours >= 0).all() and 0 < (want > 0).sum() < want.size  # some bounds are active
    np.testing.assert_allclose(ours, want, atol=1e-10)


def test_an_underdetermined_problem_reaches_scipy_s_objective(x64):
    a, b = _problem(10, 20)
    ours = np.asarray(nnls(jnp.asarray(a), jnp.asarray(b), 20_000))
    want = _scipy(a, b)
    residual = lambda x: np.linalg.norm(a @ x - b)  # noqa: E731
    assert (ours >= 0).all()
    assert residual(ours) == pytest.approx(residual(want), abs=1e-6)


def test_the_objective_falls_and_zero_iterations_give_zero():
    a, b = map(jnp.asarray, _problem(12, 5, (2,), seed=1))
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    losses = []
    for iters in range(6):
        x = nnls(a, b, iters)
        assert x.dtype == jnp.float32 and x.shape == (5, 2) and bool(jnp.all(x >= 0))
        losses.append(np.asarray(jnp.sum((a @ x - b) ** 2, 0)))
    np.testing.assert_array_equal(losses[0], np.sum(np.asarray(b) ** 2, 0))
    assert (losses[-1] < losses[0]).all()


def test_a_given_bound_jit_vmap_and_unroll():
    a, b = (x.astype(np.float32) for x in _problem(15, 4, (3,), seed=2))
    bound = float(np.linalg.eigvalsh(a.T @ a).max())
    x = nnls(jnp.asarray(a), jnp.asarray(b), 300, L=bound)
    jitted = jax.jit(nnls, static_argnames=("iters", "unroll"))
    np.testing.assert_allclose(
        jitted(jnp.asarray(a), jnp.asarray(b), iters=300, unroll=4, L=bound), x, rtol=1e-5
    )
    columns = jax.vmap(lambda c: nnls(jnp.asarray(a), c, 300, L=bound), 1, 1)(jnp.asarray(b))
    np.testing.assert_allclose(columns, x, rtol=1e-5, atol=1e-7)


def test_a_zero_matrix_gives_zero():
    np.testing.assert_array_equal(nnls(jnp.zeros((3, 2)), jnp.ones(3), 10), 0.0)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((jnp.ones(3), jnp.ones(3), 5), ValueError, r"nnls: A must be a matrix .* shape \(3,\)"),
        ((jnp.ones((3, 2)), jnp.ones((3, 2, 1)), 5), ValueError, "nnls: b must have 1 or 2"),
        ((jnp.ones((3, 2)), jnp.ones(4), 5), ValueError, r"nnls: b must have as many rows .*3"),
        ((jnp.ones((3, 2)), jnp.ones(3), -1), ValueError, "nnls: iters must be >= 0"),
        ((jnp.ones((3, 2)), jnp.ones(3), 2.5), TypeError, "nnls: iters must be an int"),
        ((jnp.ones((3, 2)), jnp.ones(3), 5, 0), ValueError, "nnls: unroll must be an int >= 1"),
        (
            (jnp.ones((3, 2), jnp.complex64), jnp.ones(3), 5),
            TypeError,
            "nnls: A and b must be real",
        ),
    ],
)
def test_errors_name_the_argument(args, error, message):
    with pytest.raises(error, match=message):
        nnls(*args)
