"""Sophia's refresh: one compiled step for refresh and plain steps, the period live."""

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from tests.registry.curvature import coupled_cosine


def _steps(tx, n, params):
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        grads = jax.grad(coupled_cosine)(params)
        updates, state = tx.update(grads, state, params, obj_fn=coupled_cosine)
        return gradtx.apply_updates(params, updates), state

    state = tx.init(params)
    keys = []
    for _ in range(n):
        params, state = step(params, state)
        keys.append(np.asarray(state.inner_state[0].hessian_fn_state.key))
    return traces, keys, state


def test_refresh_every_k_steps_in_one_compiled_step():
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    traces, keys, state = _steps(gradtx.sophia(0.01, update_interval=3), 7, params)
    assert len(traces) == 1
    # the key moves on only at the refreshes: after steps 1, 4 and 7
    moved = [not np.array_equal(a, b) for a, b in zip(keys, keys[1:])]
    assert moved == [False, False, True, False, False, True]


def test_update_interval_is_live():
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    tx = gradtx.sophia(0.01, update_interval=3)
    state = gradtx.set_hyperparams(tx.init(params), update_interval=1)
    assert float(gradtx.hyperparams(state)["update_interval"]) == 1.0
    grads = jax.grad(coupled_cosine)(params)
    _, state = tx.update(grads, state, params, obj_fn=coupled_cosine)
    key = np.asarray(state.inner_state[0].hessian_fn_state.key)
    _, state = tx.update(grads, state, params, value_fn=coupled_cosine)
    assert not np.array_equal(key, state.inner_state[0].hessian_fn_state.key)


def test_init_on_shape_dtype_structs():
    tx = gradtx.sophia(0.01)
    abstract = {"w": jax.ShapeDtypeStruct((4, 3), jnp.bfloat16)}
    state = tx.init(abstract)
    concrete = tx.init({"w": jnp.zeros((4, 3), jnp.bfloat16)})
    assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == jax.tree.map(
        lambda x: (x.shape, x.dtype), concrete
    )
