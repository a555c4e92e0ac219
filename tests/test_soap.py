"""What SOAP's registry rows (tests/registry/soap.py) cannot say: leaves of rank 3 through
dimension numbers, and the state built from shapes alone.

A stack of layers (layers, rows, columns) seen as ``layers`` matrices must step each layer
exactly as SOAP steps that layer alone; an attention-like kernel whose rows are two axes must
step as its reshaped matrix. ``init`` on ``jax.ShapeDtypeStruct`` gives the state ``init`` on
arrays gives, the statistics and bases in float32 for a bfloat16 leaf; a vmapped sweep of
learning rates steps as each copy alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

MDN = gradtx.MatrixDimensionNumbers
STEPS = 12  # the eigendecomposition and three power steps at frequency 3


def _run(tx, params, grads):
    update = jax.jit(tx.update)
    state = tx.init(params)
    for g in grads:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
    return params


def test_stacked_and_multi_axis_leaves_step_as_their_matrices(x64):
    rng = np.random.default_rng(0)
    stack = jnp.asarray(rng.normal(size=(2, 4, 3)))
    kernel = jnp.asarray(rng.normal(size=(3, 2, 4)))  # (d_model, heads, head_dim)
    grads = [
        {
            "stack": jnp.asarray(rng.normal(size=(2, 4, 3))),
            "kernel": jnp.asarray(rng.normal(size=(3, 2, 4))),
        }
        for _ in range(STEPS)
    ]
    numbers = {"stack": MDN(1, 2), "kernel": MDN((0, 1), 2)}
    kwargs = dict(learning_rate=0.02, precondition_frequency=3)
    got = _run(
        gradtx.soap(**kwargs, weight_dimension_numbers=numbers),
        {"stack": stack, "kernel": kernel},
        grads,
    )
    alone_tx = gradtx.soap(**kwargs)  # one program for both layers
    for layer in range(2):
        alone = _run(alone_tx, stack[layer], [g["stack"][layer] for g in grads])
        np.testing.assert_allclose(got["stack"][layer], alone, rtol=1e-12, atol=1e-12)
    flat = _run(
        gradtx.soap(**kwargs), kernel.reshape(6, 4), [g["kernel"].reshape(6, 4) for g in grads]
    )
    np.testing.assert_allclose(got["kernel"].reshape(6, 4), flat, rtol=1e-12, atol=1e-12)


def test_init_on_shapes_gives_the_state_of_arrays():
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.zeros(3), "s": jnp.zeros(())}
    tx = gradtx.soap(1e-3, precondition_1d=True)
    real = tx.init(params)
    abstract = tx.init(jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params))
    assert jax.tree.structure(abstract) == jax.tree.structure(real)
    assert [(a.shape, a.dtype) for a in jax.tree.leaves(abstract)] == [
        (r.shape, r.dtype) for r in jax.tree.leaves(real)
    ]
    inner = real.inner_state[0]  # chain: scale_by_soap's state first
    # leaves in flatten order b, s, w: the vector's one side, nothing for the scalar
    assert [f is None for f in inner.left] == [True, True, False]
    assert [f is None for f in inner.right] == [False, True, False]
    assert inner.left[2].stats.dtype == jnp.float32 and inner.mu["w"].dtype == jnp.bfloat16


def test_a_vmapped_sweep_steps_as_each_copy():
    # the sweep batches the step count too, so the bases' lax.switch runs batched (as a select)
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    tx = gradtx.soap(0.02, precondition_frequency=3)
    rng = np.random.default_rng(0)
    grads = [
        {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "b": jnp.ones(3)}
        for _ in range(STEPS)
    ]
    states = gradtx.sweep(tx.init(params), learning_rate=jnp.array([0.01, 0.02]))
    one = gradtx.set_hyperparams(tx.init(params), learning_rate=0.02)
    swept = jax.jit(jax.vmap(lambda s, g: tx.update(g, s, params), in_axes=(0, None)))
    single = jax.jit(tx.update)
    for g in grads:
        updates, states = swept(states, g)
        alone, one = single(g, one, params)
    np.testing.assert_allclose(updates["w"][1], alone["w"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(updates["w"][0], alone["w"] / 2, rtol=1e-5, atol=1e-7)
