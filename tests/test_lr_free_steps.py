"""DoG, DoWG, MoMo and MoMo-Adam where the shared tables cannot reach them.

* The authors' MoMo (momo-opt), whose ``step`` takes the loss: trajectories recorded by
  tests/reference/torch_lr_free_steps.py, re-recorded live when momo-opt is installed.
* Their step sizes are scalars summed over the whole tree: a vmapped sweep of learning rates
  (one program) equals the separate runs, and a jitted step on params sharded over 8 devices,
  with the state laid out by ``state_sharding``, equals the unsharded one.
"""

from __future__ import annotations

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx
from tests import helpers
from tests.reference import torch_lr_free_steps as T
from tests.registry.sgd_like import given_loss, half_square

FIXTURE = json.loads(T.FIXTURE.read_text())
HAS_MOMO = all(importlib.util.find_spec(m) is not None for m in ("torch", "momo"))


def _gradtx_trajectory(name: str) -> list[list[np.ndarray]]:
    _, _, factory, kwargs = T.ROWS[name]
    tx = given_loss(getattr(gradtx, factory)(**kwargs))
    params, grads = T.problem()
    params = [jnp.asarray(p) for p in params]
    update = jax.jit(tx.update)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = update([jnp.asarray(x) for x in g], state, params)
        params = gradtx.apply_updates(params, updates)
        out.append([np.asarray(p) for p in params])
    return out


def _recorded(name: str) -> list[list[np.ndarray]]:
    return [[np.asarray(p) for p in step] for step in FIXTURE["rows"][name]["trajectory"]]


def test_every_row_is_in_the_fixture():
    assert set(T.ROWS) == set(FIXTURE["rows"]), "run python -m tests.reference.torch_lr_free_steps"


@pytest.mark.parametrize("name", sorted(T.ROWS))
def test_matches_the_authors_momo(name, x64):
    cls, kwargs, _, _ = T.ROWS[name]
    row = FIXTURE["rows"][name]
    assert (row["optimizer"], row["kwargs"]) == (cls, json.loads(json.dumps(kwargs)))
    assert helpers.max_relative_deviation(_gradtx_trajectory(name), _recorded(name)) < 1e-6


@pytest.mark.skipif(not HAS_MOMO, reason="PyTorch or momo-opt is not installed")
@pytest.mark.parametrize("name", sorted(T.ROWS))
def test_fixture_is_what_momo_opt_gives_now(name):
    assert helpers.max_relative_deviation(T.trajectory(name), _recorded(name)) < 1e-12


# ---- one scalar step size per tree: vmap and sharding ---------------------------------------

SPECS = {"kernel": P("data"), "embed": P("data"), "bias": P()}


def _sharded_loss(params):
    """½‖θ‖² inside shard_map over "data": the split leaves' squares summed over the axis."""
    split = sum(jnp.sum(params[k] ** 2) for k in ("kernel", "embed"))
    return 0.5 * (jax.lax.psum(split, "data") + jnp.sum(params["bias"] ** 2))


def _momo(factory, *args, loss=half_square, **kwargs):
    return given_loss(factory(*args, **kwargs), loss)


OPTIMIZERS = {
    "dog": lambda **kw: gradtx.dog(init_step=("distance", 0.1), weight_decay=0.01, **kw),
    "dowg": lambda **kw: gradtx.dowg(**kw),
    "momo": lambda **kw: _momo(gradtx.momo, 0.5, adapt_lower_bound=True, weight_decay=0.01, **kw),
    "momo_adam": lambda **kw: _momo(gradtx.momo_adam, 0.05, weight_decay=0.01, **kw),
}


def _params():
    keys = jax.random.split(jax.random.key(0), 3)
    return {
        "kernel": jax.random.normal(keys[0], (16, 4)),
        "embed": jax.random.normal(keys[1], (8, 2)),
        "bias": jax.random.normal(keys[2], (3,)),
    }


def _step(tx, params, state, t):
    # the gradient of a quadratic that moves with t, away from 0 (half_square's minimum)
    grads = jax.tree.map(lambda p: p - 0.3 * jnp.sin(p + t), params)
    updates, state = tx.update(grads, state, params)
    return gradtx.apply_updates(params, updates), state


def _run(tx, params, steps=6):
    state = tx.init(params)
    step = jax.jit(lambda p, s, t: _step(tx, p, s, t))
    out = []
    for t in range(steps):
        params, state = step(params, state, jnp.float32(t))
        out.append(params)
    return out


# one of each pair of transformations per test (DoG's and DoWG's sums are the same code, and
# MoMo's and MoMo-Adam's)
@pytest.mark.parametrize("name", ["dog", "momo"])
def test_a_swept_learning_rate_equals_separate_runs(name):
    tx = OPTIMIZERS[name]()
    params = _params()
    rates = [0.3, 1.0]
    states = gradtx.sweep(tx.init(params), learning_rate=rates)
    stacked = jax.tree.map(lambda p: jnp.stack([p] * len(rates)), params)
    step = jax.jit(jax.vmap(lambda p, s, t: _step(tx, p, s, t), in_axes=(0, 0, None)))
    for t in range(6):
        stacked, states = step(stacked, states, jnp.float32(t))
    alone = jax.jit(lambda p, s, t: _step(tx, p, s, t))
    for i, rate in enumerate(rates):
        p, single = params, gradtx.set_hyperparams(tx.init(params), learning_rate=rate)
        for t in range(6):
            p, single = alone(p, single, jnp.float32(t))
        for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(p)):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py)")
@pytest.mark.parametrize("name", ["dowg", "momo_adam"])
def test_sharded_steps_equal_unsharded_with_the_state_laid_out_like_the_params(name):
    tx = OPTIMIZERS[name]()
    expected = _run(tx, _params())
    mesh = jax.make_mesh((8,), ("data",))
    params = {k: jax.device_put(v, NamedSharding(mesh, SPECS[k])) for k, v in _params().items()}
    shardings = gradtx.state_sharding(tx, params)
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    param_shardings = jax.tree.map(lambda p: p.sharding, params)
    step = jax.jit(lambda p, s, t: _step(tx, p, s, t), out_shardings=(param_shardings, shardings))
    for t, want in enumerate(expected):
        params, state = step(params, state, jnp.float32(t))
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the param-shaped state (x_0, the moments) is split as its param; the scalars replicated
    split = [x for x in jax.tree.leaves(state) if not x.sharding.is_fully_replicated]
    assert len(split) >= 2
    assert all(x.shape in ((16, 4), (8, 2)) for x in split)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py)")
@pytest.mark.parametrize("name", ["dog", "momo"])
def test_shard_map_with_axis_name_equals_unsharded(name):
    """The split leaves' sums are taken over the axis, the replicated bias's once."""
    expected = _run(OPTIMIZERS[name](), _params())[-1]
    extra = {"loss": _sharded_loss} if name.startswith("momo") else {}
    tx = OPTIMIZERS[name](axis_name="data", **extra)

    def train(params):
        state = tx.init(params)
        for t in range(6):
            params, state = _step(tx, params, state, jnp.float32(t))
        return params

    mesh = jax.make_mesh((8,), ("data",))
    params = {k: jax.device_put(v, NamedSharding(mesh, SPECS[k])) for k, v in _params().items()}
    run = jax.shard_map(train, mesh=mesh, in_specs=(SPECS,), out_specs=SPECS)
    for a, b in zip(jax.tree.leaves(jax.jit(run)(params)), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
