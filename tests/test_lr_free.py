"""The learning-rate-free optimizers' one scalar for the whole tree, and what the shared tables
cannot say: the estimate is the same however the params are split into leaves, across a sweep's
copies, on 8 devices (jit with shardings, shard_map with axis_name), and a step that cannot
estimate (a learning rate of 0, zero gradients) changes nothing where optax's estimate is NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

STEPS = 8

OPTIMIZERS = {
    "prodigy": lambda **kw: gradtx.prodigy(estim_lr0=1e-2, weight_decay=0.1, **kw),
    "dadapt_adamw": lambda **kw: gradtx.dadapt_adamw(estim_lr0=1e-2, **kw),
    "mechanize": lambda **kw: gradtx.mechanize(gradtx.adam(0.1), s_init=0.1, **kw),
}


def grad_fn(params, t):
    """The gradient of sum(c (p - 0.1 t)**2) with c in [0, 2] per element (elementwise, so a
    shard computes its own)."""
    return jax.tree.map(lambda p: 2 * (1 + jnp.cos(p)) * (p - 0.1 * t), params)


def train(tx, params, steps=STEPS):
    def body(t, carry):
        params, state = carry
        updates, state = tx.update(grad_fn(params, t.astype(jnp.float32)), state, params)
        return gradtx.apply_updates(params, updates), state

    return jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))


def assert_close(got, want, tol=1e-6):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.max(np.abs(a - b)) <= tol * max(1.0, float(np.max(np.abs(b))))


def _params():
    return {
        "w": jax.random.normal(jax.random.key(0), (16, 4)),
        "b": jax.random.normal(jax.random.key(1), (4,)),
    }


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_estimate_for_the_whole_tree_however_it_is_split(name):
    # the estimate's sums are over the tree: the same numbers as one leaf split in three
    x = jax.random.normal(jax.random.key(2), (12,))
    whole, _ = jax.jit(lambda p: train(OPTIMIZERS[name](), p))({"x": x})
    split, _ = jax.jit(lambda p: train(OPTIMIZERS[name](), p))(
        {"a": x[:2], "b": x[2:3], "c": x[3:].reshape(3, 3)}
    )
    joined = jnp.concatenate([split["a"], split["b"], split["c"].ravel()])
    assert_close(joined, whole["x"])
    assert not np.allclose(np.asarray(whole["x"]), np.asarray(x), atol=1e-3)  # it moved


def test_a_sweep_runs_each_copy_with_its_own_estimate():
    tx = OPTIMIZERS["prodigy"]()
    params = _params()
    rates = [0.5, 1.0, 2.0]
    states = gradtx.sweep(tx.init(params), learning_rate=rates)
    stacked = jax.tree.map(lambda p: jnp.stack([p] * len(rates)), params)

    def step(params, state):
        updates, state = tx.update(grad_fn(params, 0.0), state, params)
        return gradtx.apply_updates(params, updates), state

    swept = jax.jit(jax.vmap(step))
    for _ in range(STEPS):
        stacked, states = swept(stacked, states)
    estimates = states.inner_state.estim_lr
    one = jax.jit(step)
    for i, rate in enumerate(rates):
        p, s = params, gradtx.set_hyperparams(tx.init(params), learning_rate=rate)
        for _ in range(STEPS):
            p, s = one(p, s)
        assert_close(jax.tree.map(lambda x, i=i: x[i], stacked), p)
        assert float(estimates[i]) == pytest.approx(float(s.inner_state.estim_lr), rel=1e-6)
    assert len(set(np.asarray(estimates).tolist())) == len(rates)  # three estimates


needs_8 = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (conftest)")
SPECS = {"w": P("data"), "b": P()}


def _placed(mesh):
    return jax.tree.map(
        lambda p, s: jax.device_put(p, NamedSharding(mesh, s)),
        _params(),
        SPECS,
        is_leaf=lambda x: isinstance(x, P),
    )


# D-Adapt AdamW's sums are reduced by the same code as Prodigy's
SHARDED = ["prodigy", "mechanize"]


@needs_8
@pytest.mark.parametrize("name", SHARDED)
def test_sharded_under_jit_equals_one_device_with_the_state_laid_out_like_the_params(name):
    mesh = jax.make_mesh((8,), ("data",))
    tx = OPTIMIZERS[name]()
    expected, _ = jax.jit(lambda p: train(tx, p))(jax.device_put(_params(), jax.devices()[0]))
    params = _placed(mesh)
    shardings = gradtx.state_sharding(tx, params)
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    inner = state.inner_state
    like_w = inner.params0["w"] if name == "prodigy" else inner.x0["w"]
    assert like_w.sharding.is_equivalent_to(params["w"].sharding, 2)
    scalar = inner.s if name == "mechanize" else inner.estim_lr
    assert scalar.sharding.is_fully_replicated
    sharded, _ = jax.jit(lambda p: train(tx, p))(params)
    assert_close(sharded, expected)


@needs_8
@pytest.mark.parametrize("name", SHARDED)
def test_shard_map_with_axis_name_equals_one_device(name):
    mesh = jax.make_mesh((8,), ("data",))
    expected, _ = jax.jit(lambda p: train(OPTIMIZERS[name](), p))(_params())
    tx = OPTIMIZERS[name](axis_name="data")
    sharded = jax.jit(
        jax.shard_map(lambda p: train(tx, p)[0], mesh=mesh, in_specs=(SPECS,), out_specs=SPECS)
    )(_placed(mesh))
    assert_close(sharded, expected)
    # without axis_name each shard estimates alone (JAX then tracks the estimate as varying
    # between devices, which a fori_loop's carry refuses unless check_vma is off): other numbers
    alone = jax.jit(
        jax.shard_map(
            lambda p: train(OPTIMIZERS[name](), p)[0],
            mesh=mesh,
            in_specs=(SPECS,),
            out_specs=SPECS,
            check_vma=False,
        )
    )(_placed(mesh))
    assert not np.allclose(np.asarray(alone["w"]), np.asarray(expected["w"]), rtol=1e-4)


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw"])
def test_a_step_without_an_estimate_changes_nothing_where_optax_gives_nan(name):
    import optax.contrib

    params = {"w": jnp.ones(3)}
    zeros = {"w": jnp.zeros(3)}
    for tx, grads in [
        (getattr(gradtx, name)(), zeros),  # every gradient so far 0: sum |s| = 0
        (getattr(gradtx, name)(learning_rate=0.0), {"w": jnp.ones(3)}),  # a warmup from 0
    ]:
        state = tx.init(params)
        updates, new = jax.jit(tx.update)(grads, state, params)
        assert np.all(np.asarray(updates["w"]) == 0)
        assert jax.tree.all(
            jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.inner_state, new.inner_state)
        )
    theirs = getattr(optax.contrib, name)()
    with jax.numpy_dtype_promotion("standard"):
        _, optax_state = theirs.update(zeros, theirs.init(params), params)
    assert np.isnan(float(optax_state.estim_lr))


def test_mechanize_starts_from_the_params_of_its_first_update():
    # a model loaded after init: the reference point is what the first update sees
    tx = gradtx.mechanize(gradtx.sgd(0.1))
    state = tx.init({"w": jnp.zeros(2)})
    loaded = {"w": jnp.array([1.0, -1.0])}
    _, state = tx.update({"w": jnp.ones(2)}, state, loaded)
    np.testing.assert_array_equal(state.inner_state.x0["w"], loaded["w"])
