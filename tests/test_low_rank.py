"""GaLore beyond the shared tables (tests/registry/low_rank.py): another inner optimizer
against optax, a stacked leaf against its matrices as separate leaves, abstract init, bfloat16
params, one compilation across refreshing and ordinary steps, and align_signs against a
reference whose SVD flips random singular vectors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from tests import helpers


def _tree(rng, dtype=jnp.float32):
    arr = lambda *s: jnp.asarray(rng.normal(size=s), dtype)  # noqa: E731
    return {"w": arr(3, 5), "v": arr(6, 4), "b": arr(4)}


def test_lion_inside_matches_optax():
    import optax
    import optax.contrib

    params = _tree(np.random.default_rng(0))
    grads = helpers.gradient_sequence(params, 12, seed=1)
    ours = gradtx.galore(0.05, rank=2, update_proj_gap=4, base_optimizer=gradtx.scale_by_lion())
    theirs = optax.contrib.galore(
        0.05, rank=2, update_proj_gap=4, base_optimizer=optax.scale_by_lion()
    )
    got = helpers.run_gradtx(ours, params, grads, jit=True)
    with jax.numpy_dtype_promotion("standard"):
        want = helpers.run_optax(theirs, params, grads, jit=True)
    assert helpers.deviation(got, want) < 1e-6


def test_a_stack_of_matrices_is_its_matrices():
    rng = np.random.default_rng(2)
    stack = jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)
    grads = [jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32) for _ in range(6)]
    kwargs = dict(learning_rate=0.1, rank=2, update_proj_gap=3, align_signs=True)
    stacked = gradtx.galore(**kwargs, weight_dimension_numbers=gradtx.MatrixDimensionNumbers(1, 2))
    apart = gradtx.galore(**kwargs)
    got = helpers.run_gradtx(stacked, stack, grads, jit=True)
    want = helpers.run_gradtx(apart, list(stack), [list(g) for g in grads], jit=True)
    for step_got, step_want in zip(got[1], want[1]):
        np.testing.assert_allclose(step_got[0], np.stack(step_want), atol=1e-6)


def test_abstract_init_bfloat16_and_one_compile():
    params = _tree(np.random.default_rng(3), jnp.bfloat16)
    tx = gradtx.galore(0.01, rank=2, update_proj_gap=2)
    abstract = tx.init(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params))
    state = tx.init(params)
    assert jax.tree.map(jax.typeof, abstract) == jax.tree.map(jax.typeof, state)
    inner = state.inner_state[0]
    assert inner.projector["w"].shape == (5, 2) and inner.projector["w"].dtype == jnp.float32
    assert inner.projector["v"].shape == (6, 2) and inner.projector["b"] is None
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    for g in helpers.gradient_sequence(params, 5, seed=4):  # refreshes at steps 0, 2, 4
        params, state = step(params, state, g)
    assert len(traces) == 1
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
    assert all(bool(jnp.isfinite(x.astype(jnp.float32)).all()) for x in jax.tree.leaves(params))


def test_aligned_signs_make_the_svds_sign_choices_irrelevant(monkeypatch):
    """The reference's SVD flips random singular vectors (u_j and v_j together, still an SVD):
    with align_signs gradtx still follows it; without, the flips change the trajectory."""
    from tests.reference import numpy_low_rank

    decompose = numpy_low_rank._decompose
    rng = np.random.default_rng(5)

    def flipped(x, svd_dtype):
        u, s, vh = decompose(x, svd_dtype)
        signs = rng.choice([-1.0, 1.0], size=s.shape)
        return u * signs, s, vh * signs[:, None]

    monkeypatch.setattr(numpy_low_rank, "_decompose", flipped)
    params = _tree(np.random.default_rng(6))
    grads = helpers.gradient_sequence(params, 30, seed=7)
    for align in (True, False):
        kwargs = dict(learning_rate=0.01, rank=2, update_proj_gap=3, align_signs=align)
        want = helpers.run_reference(numpy_low_rank.galore(**kwargs), params, grads)
        got = helpers.run_gradtx(gradtx.galore(**kwargs), params, grads, jit=True)
        assert (helpers.deviation(got, want) < 1e-5) == align
