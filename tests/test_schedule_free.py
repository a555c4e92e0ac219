"""Schedule-free learning beyond the shared tables: the evaluation params x against the paper's
formula and the NumPy reference's x, a live b1, the state found inside any state, a sharded
state, and the authors' PyTorch optimizers (tests/reference/schedulefree_torch.py's fixture,
re-recorded live when schedulefree is installed)."""

from __future__ import annotations

import functools
import importlib.util
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import helpers
from tests.reference import numpy_schedule_free as N
from tests.reference import schedulefree_torch as T

FIXTURE = json.loads(T.FIXTURE.read_text())
HAS_SCHEDULEFREE = all(importlib.util.find_spec(m) for m in ("torch", "schedulefree"))


def _warmup(lr, steps):
    return lambda count: lr * jnp.minimum(1.0, (jnp.asarray(count).astype(float) + 1) / steps)


def _paper_adamw(lr, b2, eps, weight_decay, warmup):
    """The paper's Algorithm 1 (the authors' AdamWScheduleFreePaper) through the wrapper:
    Adam's bias correction sqrt(1 - b2^t) in the learning rate, and so in the weights."""

    def rate(count):
        t = jnp.asarray(count).astype(float) + 1
        return _warmup(lr, warmup)(count) * jnp.sqrt(1 - b2**t)

    base = gradtx.chain(
        gradtx.scale_by_rms(b2, eps, eps_in_sqrt=False),
        gradtx.add_decayed_weights(weight_decay),
        gradtx.scale_by_learning_rate(rate),
    )
    return gradtx.schedule_free(base, learning_rate=rate)


# the fixture's rows (tests/reference/schedulefree_torch.py) -> the gradtx call that must match
GRADTX = {
    "sgd_warmup_decay": lambda: gradtx.schedule_free_sgd(
        0.1, warmup_steps=5, b1=0.9, weight_decay=0.01
    ),
    "adamw_warmup_decay": lambda: gradtx.schedule_free_adamw(
        0.01,
        warmup_steps=10,
        b1=0.95,
        b2=0.99,
        eps=1e-6,
        weight_decay=0.1,
        weight_lr_power=1.5,
    ),
    "adamw_paper": lambda: _paper_adamw(0.01, 0.999, 1e-8, 0.05, 10),
}


def _run(tx, params, grads):
    """y after every step, and the final x, jitted."""
    update = jax.jit(tx.update)
    state = tx.init(params)
    ys = []
    for g in grads:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        ys.append([np.asarray(p) for p in jax.tree.leaves(params)])
    x = gradtx.schedule_free_eval_params(state, params)
    return ys, [np.asarray(p) for p in jax.tree.leaves(x)], state, params


def test_every_torch_row_is_in_the_fixture():
    assert set(GRADTX) == set(T.ROWS) <= set(FIXTURE["rows"])


@pytest.mark.parametrize("name", sorted(T.ROWS))
def test_matches_the_authors_pytorch_optimizers(name, x64):
    recorded = FIXTURE["rows"][name]
    cls, kwargs = T.ROWS[name]
    assert (recorded["optimizer"], recorded["kwargs"]) == (cls, json.loads(json.dumps(kwargs)))
    params, grads = T.problem()
    ys, x, _, _ = _run(
        GRADTX[name](),
        [jnp.asarray(p) for p in params],
        [[jnp.asarray(g) for g in s] for s in grads],
    )
    want = [[np.asarray(p) for p in step] for step in recorded["trajectory"]]
    assert helpers.max_relative_deviation(ys, want) < 1e-6
    assert helpers.max_relative_deviation([x], [[np.asarray(p) for p in recorded["eval"]]]) < 1e-6


@pytest.mark.skipif(not HAS_SCHEDULEFREE, reason="torch or schedulefree is not installed")
@pytest.mark.parametrize("name", sorted(T.ROWS))
def test_fixture_is_what_schedulefree_gives_now(name):
    ys, x = T.trajectory(name)
    recorded = FIXTURE["rows"][name]
    want = [[np.asarray(p) for p in step] for step in recorded["trajectory"]]
    assert helpers.max_relative_deviation(ys, want) < 1e-12
    assert helpers.max_relative_deviation([x], [[np.asarray(p) for p in recorded["eval"]]]) < 1e-12


def _b1_schedule(count):
    return 0.9 - 0.4 * jnp.minimum(jnp.asarray(count).astype(float) / 30, 1.0)


def test_eval_params_are_the_papers_x_and_the_formula(x64):
    """x from the params y and the state's z is (y - (1 - b1) z) / b1, and it is the x the
    NumPy reference keeps as its own sequence, with b1 following a schedule (the b1 that
    formed y, not the next update's) and set by hand between steps."""
    params = helpers.sample_tree(np.random.default_rng(0), jnp.float64)
    grads = helpers.gradient_sequence(params, 20, seed=3)
    tx = gradtx.schedule_free_adamw(0.05, warmup_steps=5, b1=_b1_schedule, weight_decay=0.1)
    ref = N.schedule_free_adamw(
        0.05, warmup_steps=5, b1=lambda c: float(_b1_schedule(c)), weight_decay=0.1
    )
    update = jax.jit(tx.update)
    state = tx.init(params)
    leaves = [np.asarray(p) for p in jax.tree.leaves(params)]
    ref_state = ref.init(leaves)
    for g in grads:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        ref_updates, ref_state = ref.update(
            [np.asarray(x) for x in jax.tree.leaves(g)], ref_state, leaves
        )
        leaves = [p + u for p, u in zip(leaves, ref_updates)]
    x = gradtx.schedule_free_eval_params(state, params)
    assert helpers.max_relative_deviation([jax.tree.leaves(x)], [N.eval_params(ref_state)]) < 1e-10
    inner = state.inner_state
    b1 = float(inner.b1)
    assert b1 == pytest.approx(float(_b1_schedule(19)))  # the last update's, not the next one's
    formula = jax.tree.map(lambda y, z: (y - (1 - b1) * z) / b1, params, inner.z)
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(formula)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_b1_set_by_hand_keeps_x_on_the_papers_sequence(x64):
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}
    grads = helpers.gradient_sequence(params, 6, seed=4)
    tx = gradtx.schedule_free_sgd(0.1)
    ref = N.schedule_free_sgd(0.1, b1=lambda c: 0.9 if c < 3 else 0.6)
    state, ref_state = tx.init(params), ref.init([np.asarray(params["w"])])
    y = [np.asarray(params["w"])]
    for t, g in enumerate(grads):
        if t == 3:
            state = gradtx.set_hyperparams(state, b1=0.6)
        updates, state = jax.jit(tx.update)(g, state, params)
        params = gradtx.apply_updates(params, updates)
        ref_updates, ref_state = ref.update([np.asarray(g["w"])], ref_state, y)
        y = [y[0] + ref_updates[0]]
        np.testing.assert_allclose(params["w"], y[0], rtol=1e-12)
    x = gradtx.schedule_free_eval_params(state, params)
    np.testing.assert_allclose(x["w"], N.eval_params(ref_state)[0], rtol=1e-12)


def test_eval_params_find_the_state_inside_a_chain_and_under_jit():
    params = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.schedule_free_adamw(0.1))
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(3):
        updates, state = update(params, state, params)
        params = gradtx.apply_updates(params, updates)
    eager = gradtx.schedule_free_eval_params(state, params)
    jitted = jax.jit(gradtx.schedule_free_eval_params)(state, params)
    assert jax.tree.structure(eager) == jax.tree.structure(params)
    for a, b, p in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), jax.tree.leaves(params)):
        assert a.dtype == p.dtype
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # x differs from y once the average lags z
    assert not np.allclose(eager["w"], params["w"])
    two = (state, state)
    with pytest.raises(ValueError, match="exactly one schedule-free state, found 2"):
        gradtx.schedule_free_eval_params(two, params)


def test_optax_aliases_with_warmup_take_their_base_rate_one_step_behind():
    """What the registry's ``schedule_free_optax_warmup`` row reproduces, on optax's own alias:
    its first update moves nothing (its SGD's rate is 0 at count 0), gradtx's moves by γ/T."""
    import optax.contrib

    params = jnp.asarray([1.0, -1.0])
    grads = jnp.asarray([1.0, 1.0])
    theirs = optax.contrib.schedule_free_sgd(0.5, warmup_steps=4)
    updates, _ = theirs.update(grads, theirs.init(params), params)
    assert np.allclose(updates, 0.0)
    ours = gradtx.schedule_free_sgd(0.5, warmup_steps=4)
    updates, _ = ours.update(grads, ours.init(params), params)
    assert np.allclose(updates, -0.5 / 4)


def test_float32_is_closer_to_the_exact_trajectory_than_optax():
    """Why the registry's rows allow optax its own float32 error (OPTAX_OWN_F32_ERROR)."""
    from tests.registry.schedule_free import OPTIMIZERS

    case = next(c for c in OPTIMIZERS if c.id == "schedule_free_adamw")
    params = helpers.sample_tree(np.random.default_rng(0), jnp.float32)
    grads = helpers.gradient_sequence(params, 100, seed=1)
    exact = helpers.run_reference(case.reference(), params, grads)
    ours = helpers.deviation(helpers.run_gradtx(case.gradtx(), params, grads, jit=True), exact)
    with jax.numpy_dtype_promotion("standard"):
        theirs = helpers.run_optax(case.optax_transformation(), params, grads, jit=True)
    assert ours < 2e-6
    assert helpers.deviation(theirs, exact) > 3 * ours


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py)")
def test_state_sharding_lays_z_out_like_the_params_and_the_step_keeps_it():
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((8,), ("data",))
    specs = {"kernel": P("data"), "bias": P(), "scale": P()}
    params = {
        "kernel": jnp.arange(32 * 4, dtype=jnp.float32).reshape(32, 4) / 100,
        "bias": jnp.ones(4),
        "scale": jnp.asarray(1.5),
    }
    params = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in params.items()}
    tx = gradtx.schedule_free_adamw(0.01, warmup_steps=2, weight_decay=0.01)
    shardings = gradtx.state_sharding(tx, params)
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    z = state.inner_state.z
    for k in params:
        assert z[k].sharding.is_equivalent_to(params[k].sharding, z[k].ndim)
    nu = state.inner_state.base_optimizer_state[0].nu
    assert nu["kernel"].sharding.is_equivalent_to(params["kernel"].sharding, 2)
    for leaf in (state.inner_state.b1, state.inner_state.weight_sum, state.count):
        assert leaf.sharding.is_fully_replicated
    param_shardings = jax.tree.map(lambda p: p.sharding, params)
    step = jax.jit(
        lambda p, s: (lambda u, s: (gradtx.apply_updates(p, u), s))(*tx.update(p, s, p)),
        out_shardings=(param_shardings, shardings),
    )
    unsharded = jax.device_get(params)
    ref_state = tx.init(unsharded)
    ref_update = jax.jit(tx.update)
    for _ in range(3):
        params, state = step(params, state)
        u, ref_state = ref_update(unsharded, ref_state, unsharded)
        unsharded = gradtx.apply_updates(unsharded, u)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(unsharded)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert math.isfinite(float(state.inner_state.weight_sum))


def test_swept_hyperparameters_reach_the_weights_of_the_average():
    """Swept over, the wrapper's weight_lr_power and learning_rate give the runs built with
    each value (a constant learning rate weights every step alike whatever its value; 0 keeps
    x at the start)."""
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}
    grads = {"w": jnp.asarray([0.5, 0.5, -1.0])}
    warm = gradtx.linear_schedule(0.02, 0.1, 4)

    def build(weight_lr_power=2.0, learning_rate=warm):
        return gradtx.schedule_free(
            gradtx.sgd(warm), learning_rate, weight_lr_power=weight_lr_power
        )

    def steps(tx, state, n=4):
        def body(carry, _):
            p, state = carry
            updates, state = tx.update(grads, state, p)
            return (gradtx.apply_updates(p, updates), state), None

        return jax.lax.scan(body, (params, state), None, length=n)[0][0]["w"]

    tx = build()
    for name, values in (("weight_lr_power", [0.0, 1.0, 3.0]), ("learning_rate", [0.0, 0.1])):
        states = gradtx.sweep(tx.init(params), **{name: values})
        swept = jax.jit(jax.vmap(lambda s: steps(tx, s)))(states)
        for i, value in enumerate(values):
            alone = build(**{name: value})
            want = jax.jit(functools.partial(steps, alone))(alone.init(params))
            np.testing.assert_allclose(swept[i], want, rtol=1e-6)
        assert not np.allclose(swept[0], swept[1])
    # learning_rate 0: x stays at the start, y moves by (1 - b1) of z's steps (0.02 + ... + 0.08)
    np.testing.assert_allclose(swept[0], params["w"] - 0.1 * 0.2 * grads["w"], rtol=1e-6)
