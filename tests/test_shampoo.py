"""Shampoo against distributed_shampoo (optax-shampoo), and its pieces.

The trajectories of ``distributed_shampoo`` (the authors' optax implementation, PyPI
``optax-shampoo`` 0.0.6) were recorded in float64 by tests/reference/optax_shampoo.py into a
JSON fixture; where optax-shampoo is importable each row is also recorded live and must equal
the fixture. gradtx runs the same gradients in float64 (``root_method="eigh"``: exact roots,
where the reference's coupled Newton iteration stops at an error of 1e-6; one row runs
gradtx's Newton iteration) and must stay within each row's tolerance, relative to each leaf's
largest magnitude. The shared tables (tests/registry/shampoo.py) compare it with the float64
NumPy reference; here: the layout of blocks and merged axes, the exponent of the roots, blocks
against separate leaves, the diagonal fallback, kept roots, and steps under scan and vmap.
"""

from __future__ import annotations

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._linalg import blocks as kronecker_blocks
from tests import helpers
from tests.reference import numpy_shampoo
from tests.reference import optax_shampoo as O

ROWS = O.rows()
FIXTURE = json.loads(O.FIXTURE.read_text()) if O.FIXTURE.exists() else {"rows": {}}
HAS_OPTAX_SHAMPOO = importlib.util.find_spec("optax_shampoo") is not None


def _gradtx_trajectory(row: O.ShampooRow) -> list[list[np.ndarray]]:
    params, grads = O.problem(row)
    tx = row.gradtx()
    params = [jnp.asarray(p) for p in params]
    update = jax.jit(tx.update)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = update([jnp.asarray(x) for x in g], state, params)
        params = gradtx.apply_updates(params, updates)
        out.append([np.asarray(p) for p in params])
    return out


# ---- distributed_shampoo -----------------------------------------------------------------------


def test_every_row_is_in_the_fixture():
    assert set(ROWS) <= set(FIXTURE["rows"]), "run python -m tests.reference.optax_shampoo"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_matches_distributed_shampoo(name, x64):
    row = ROWS[name]
    recorded = FIXTURE["rows"][name]
    assert recorded["kwargs"] == row.kwargs
    assert [tuple(s) for s in recorded["shapes"]] == list(row.shapes)
    want = [[np.asarray(p) for p in step] for step in recorded["trajectory"]]
    got = _gradtx_trajectory(row)
    assert helpers.max_relative_deviation(got, want) < row.tolerance


@pytest.mark.skipif(not HAS_OPTAX_SHAMPOO, reason="optax-shampoo is not installed")
@pytest.mark.parametrize("name", sorted(ROWS))
def test_fixture_is_what_distributed_shampoo_gives_now(name):
    live = O.shampoo_trajectory(ROWS[name])
    recorded = FIXTURE["rows"][name]["trajectory"]
    want = [[np.asarray(p) for p in step] for step in recorded]
    assert helpers.max_relative_deviation(live, want) < 1e-12


# ---- layout: merged axes and blocks -----------------------------------------------------------


def test_merge_small_dims_follows_the_reference_docstring():
    merge = kronecker_blocks.merge_small_dims
    assert merge((1, 2, 512, 1, 2048, 1, 3, 4), 1024) == (1024, 2048, 12)
    assert merge((1, 2, 768, 1, 2048), 1024) == (2, 768, 2048)
    assert merge((1, 1), 4096) == (1,) and merge((), 4096) == ()
    assert merge((3, 3, 64, 128), 4096) == (576, 128)  # a convolution kernel: a matrix
    for shape in [(2, 3, 4), (1, 5, 1), (7,), (4096, 2), (3, 1, 4096)]:
        assert kronecker_blocks.merge_small_dims(shape, 64) == tuple(
            numpy_shampoo.merge_small_dims(list(shape), 64)
        )


def _layout(shape, **kwargs):
    fixed = dict(
        block_size=128,
        best_effort_shape_interpretation=True,
        merge_small_dims_block_size=4096,
        skip_preconditioning_dim_size_gt=4096,
        skip_preconditioning_rank_lt=1,
        exponent_override=0,
    )
    return kronecker_blocks.layout(tuple(shape), **(fixed | kwargs))


def test_statistics_per_class_of_equal_blocks():
    # (300, 200) in blocks of 128: rows 128, 128, 44; columns 128, 72: four classes
    lay = _layout((300, 200), best_effort_shape_interpretation=False)
    assert lay.exponent == 4
    assert lay.statistic_shapes() == (
        ((2, 128, 128), (2, 128, 128)),
        ((2, 128, 128), (2, 72, 72)),
        ((1, 44, 44), (1, 128, 128)),
        ((1, 44, 44), (1, 72, 72)),
    )
    # 256 = 2 * 128: one class; an order-3 leaf: p = 6; exponent_override
    assert _layout((256, 10), best_effort_shape_interpretation=False).statistic_shapes() == (
        ((2, 128, 128), (2, 10, 10)),
    )
    assert _layout((5000, 3, 3), best_effort_shape_interpretation=False).merged is None
    assert _layout((30, 40, 50), merge_small_dims_block_size=16).exponent == 6
    assert _layout((30, 40), exponent_override=8).exponent == 8
    # the diagonal fallback: an axis above 4096, a rank below the bound, an empty leaf
    assert _layout((5000,)).merged is None
    assert _layout((3,), skip_preconditioning_rank_lt=2).merged is None
    assert _layout((0, 3)).merged is None
    assert _layout(()).merged is None and _layout((), skip_preconditioning_rank_lt=0).merged == ()


def test_blocks_round_trip():
    x = jnp.arange(7 * 5 * 4, dtype=jnp.float32).reshape(7, 5, 4)
    lay = _layout((7, 5, 4), block_size=3, best_effort_shape_interpretation=False)
    assert len(lay.classes) == 8
    rebuilt = jnp.zeros_like(x)
    seen = 0
    for cls in lay.classes:
        blocks = kronecker_blocks._blocks(x, cls)
        assert blocks.shape == (np.prod([n for _, _, n in cls]),) + tuple(b for _, b, _ in cls)
        seen += blocks.size
        region = tuple(slice(s, s + b * n) for s, b, n in cls)
        rebuilt = rebuilt.at[region].set(kronecker_blocks._unblocks(blocks, cls))
    assert seen == x.size
    np.testing.assert_array_equal(rebuilt, x)


# ---- the direction: exponents, blocks ---------------------------------------------------------


def _direction(g, **kwargs):
    """scale_by_shampoo's first step without grafting or momentum: the preconditioned g."""
    tx = gradtx.scale_by_shampoo(
        beta1=0.0, graft_type="none", start_preconditioning_step=0, **kwargs
    )
    out, _ = tx.update(g, tx.init(g))
    return out


def _root(h, p):
    w, v = np.linalg.eigh(h)
    return (v * w ** (-1.0 / p)) @ v.T


def test_a_matrix_takes_l_to_the_minus_quarter_g_r_to_the_minus_quarter(x64):
    g = np.random.default_rng(0).normal(size=(4, 3))
    eps = 1e-3  # the statistics start at eps I; the absolute ridge adds eps I again
    got = _direction(
        jnp.asarray(g),
        beta2=1.0,
        matrix_epsilon=eps,
        relative_matrix_epsilon=False,
        best_effort_shape_interpretation=False,
    )
    left = _root(g @ g.T + 2 * eps * np.eye(4), 4)
    right = _root(g.T @ g + 2 * eps * np.eye(3), 4)
    np.testing.assert_allclose(got, left @ g @ right, rtol=1e-10)


def test_an_order_three_tensor_takes_the_minus_one_sixth_roots(x64):
    rng = np.random.default_rng(1)
    g = rng.normal(size=(2, 3, 4))
    eps = 1e-2
    got = _direction(
        jnp.asarray(g),
        beta2=1.0,
        matrix_epsilon=eps,
        relative_matrix_epsilon=False,
        best_effort_shape_interpretation=False,
    )
    want = g
    for axis in range(3):
        unfolded = np.moveaxis(g, axis, 0).reshape(g.shape[axis], -1)
        h = unfolded @ unfolded.T + 2 * eps * np.eye(g.shape[axis])  # eps I at init + ridge
        want = np.moveaxis(np.tensordot(_root(h, 6), np.moveaxis(want, axis, 0), 1), 0, axis)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_each_block_is_preconditioned_as_a_leaf_of_its_own(x64):
    g = jnp.asarray(np.random.default_rng(2).normal(size=(4, 6)))
    kwargs = dict(best_effort_shape_interpretation=False, matrix_epsilon=1e-3)
    blocked = _direction({"w": g}, block_size=3, **kwargs)["w"]
    pieces = {
        f"{i}{j}": g[i * 3 : (i + 1) * 3, j * 3 : (j + 1) * 3] for i in (0, 1) for j in (0, 1)
    }
    alone = _direction(pieces, block_size=0, **kwargs)
    for key, piece in alone.items():
        i, j = int(key[0]), int(key[1])
        np.testing.assert_allclose(
            blocked[i * 3 : (i + 1) * 3, j * 3 : (j + 1) * 3], piece, rtol=1e-12
        )


def test_the_direction_takes_the_norm_of_the_graft_leaf_by_leaf(x64):
    rng = np.random.default_rng(3)
    g = {"a": jnp.asarray(rng.normal(size=(5, 3))), "b": jnp.asarray(10 * rng.normal(size=4))}
    for graft in ("sgd", "sqrt_n"):
        tx = gradtx.scale_by_shampoo(beta1=0.0, graft_type=graft, start_preconditioning_step=0)
        out, _ = tx.update(g, tx.init(g))
        for key in g:
            graft_step = g[key] if graft == "sgd" else jnp.sign(g[key])
            np.testing.assert_allclose(
                jnp.linalg.norm(out[key]), jnp.linalg.norm(graft_step), rtol=1e-12
            )


def test_leaves_too_large_take_the_graft_step(x64):
    g = {"big": jnp.asarray(np.random.default_rng(4).normal(size=5000))}
    tx = gradtx.scale_by_shampoo(
        beta1=0.0, beta2=0.9, graft_type="rmsprop", start_preconditioning_step=0
    )
    state = tx.init(g)
    assert state.inner_state.statistics == ((),)  # the one leaf's: none
    out, _ = tx.update(g, state)
    want = g["big"] / (jnp.sqrt(0.1 * g["big"] ** 2) + 1e-10)
    np.testing.assert_allclose(out["big"], want, rtol=1e-12)


# ---- kept roots ------------------------------------------------------------------------------


def test_a_root_that_is_not_finite_keeps_the_previous_one():
    g = {"w": jnp.asarray(np.random.default_rng(5).normal(size=(3, 2)), jnp.float32)}
    tx = gradtx.scale_by_shampoo(best_effort_shape_interpretation=False)
    _, state = tx.update(g, tx.init(g))
    before = state.inner_state.preconditioners
    _, state = tx.update({"w": g["w"].at[0, 0].set(jnp.inf)}, state)
    jax.tree.map(np.testing.assert_array_equal, state.inner_state.preconditioners, before)


def test_newton_roots_above_the_failure_threshold_are_not_used():
    g = {"w": jnp.asarray(np.random.default_rng(6).normal(size=(3, 2)), jnp.float32)}
    for threshold, changed in ((1e-30, False), (0.1, True)):
        tx = gradtx.scale_by_shampoo(
            best_effort_shape_interpretation=False,
            root_method="newton",
            inverse_failure_threshold=threshold,
        )
        state = tx.init(g)
        _, new = tx.update(g, state)
        same = jax.tree.map(
            lambda a, b: bool(jnp.array_equal(a, b)),
            new.inner_state.preconditioners,
            state.inner_state.preconditioners,
        )
        assert all(jax.tree.leaves(same)) != changed


def test_roots_are_computed_every_preconditioning_compute_steps():
    g = {"w": jnp.asarray(np.random.default_rng(7).normal(size=(3, 2)), jnp.float32)}
    tx = gradtx.scale_by_shampoo(
        best_effort_shape_interpretation=False, preconditioning_compute_steps=3
    )
    state = tx.init(g)
    roots = []
    update = jax.jit(tx.update)
    for _ in range(7):
        _, state = update(g, state)
        roots.append(state.inner_state.preconditioners[0][0][0])  # leaf w, its rows
    changed = [not bool(jnp.array_equal(a, b)) for a, b in zip(roots, roots[1:])]
    assert changed == [False, False, True, False, False, True]  # at steps 3 and 6 (from 0)


# ---- under scan and vmap ---------------------------------------------------------------------


def test_a_sweep_of_learning_rates_in_one_program():
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = {"w": jnp.asarray([[1.0, 0.5], [0.0, 2.0], [1.0, 1.0]]), "b": jnp.ones(2)}
    tx = gradtx.shampoo(0.1, start_preconditioning_step=0)
    states = gradtx.sweep(tx.init(params), learning_rate=jnp.asarray([0.1, 0.2]))

    def step(state):
        return tx.update(grads, state, params)[0]

    updates = jax.jit(jax.vmap(step))(states)
    one = tx.update(grads, tx.init(params), params)[0]
    np.testing.assert_allclose(updates["w"][0], one["w"], rtol=1e-6)
    np.testing.assert_allclose(updates["w"][1], 2 * one["w"], rtol=1e-6)
