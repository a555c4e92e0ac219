"""monitor and step_stats: norms, learning rate and skipped steps, read inside jit and scan.

Each value is checked against a float64 NumPy computation (norms of the gradients given, norms
of the reference optimizer's updates, the schedule's value at the step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.reference import numpy_reference as ref

PARAMS = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.1, -0.1, 0.7])}


def gradients(steps, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(scale * rng.normal(size=p.shape), p.dtype), PARAMS)
        for _ in range(steps)
    ]


def norm64(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in tree)))


def leaves64(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def run_reference(reference, grads):
    """The float64 reference's updates for each gradient (params evolving as it says)."""
    params = leaves64(PARAMS)
    state = reference.init(params)
    all_updates = []
    for g in grads:
        updates, state = reference.update(leaves64(g), state, params)
        params = [p + u for p, u in zip(params, updates)]
        all_updates.append(updates)
    return all_updates


def test_norms_and_scheduled_learning_rate_match_numpy_under_jit():
    schedule = gradtx.linear_schedule(0.1, 0.01, 10)
    tx = gradtx.monitor(gradtx.sgd(schedule, momentum=0.9))
    grads = gradients(12)
    want_updates = run_reference(ref.sgd(ref.linear_schedule(0.1, 0.01, 10), momentum=0.9), grads)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return gradtx.apply_updates(params, updates), state, updates, gradtx.step_stats(state)

    params, state = PARAMS, tx.init(PARAMS)
    for t, g in enumerate(grads):
        params, state, updates, stats = step(params, state, g)
        assert sorted(stats) == ["grad_norm", "learning_rate", "update_norm"]
        assert all(v.shape == () for v in stats.values())
        np.testing.assert_allclose(stats["grad_norm"], norm64(leaves64(g)), rtol=1e-6)
        np.testing.assert_allclose(stats["update_norm"], norm64(leaves64(updates)), rtol=1e-6)
        np.testing.assert_allclose(stats["update_norm"], norm64(want_updates[t]), rtol=1e-6)
        # the rate this update used: the schedule at step t (0 for the first update)
        np.testing.assert_allclose(
            stats["learning_rate"], ref.linear_schedule(0.1, 0.01, 10)(t), rtol=1e-6
        )
    assert step._cache_size() == 1


def test_monitor_leaves_the_updates_bitwise_unchanged():
    plain, monitored = gradtx.adam(0.1), gradtx.monitor(gradtx.adam(0.1))
    a, b = plain.init(PARAMS), monitored.init(PARAMS)
    for g in gradients(3):
        ua, a = plain.update(g, a, PARAMS)
        ub, b = monitored.update(g, b, PARAMS)
        assert all(
            np.asarray(x).tobytes() == np.asarray(y).tobytes()
            for x, y in zip(jax.tree.leaves(ua), jax.tree.leaves(ub))
        )
    assert jax.tree.all(jax.tree.map(jnp.array_equal, a, b.inner_state))


def test_clip_adam_and_apply_if_finite_in_lax_scan():
    """The chain the issue names, with a NaN at step 3 and an Inf at step 5, scanned."""
    lr, max_norm = 1e-2, 1.0
    tx = gradtx.monitor(
        gradtx.apply_if_finite(
            gradtx.chain(gradtx.clip_by_global_norm(max_norm), gradtx.adam(lr)),
            max_consecutive_errors=3,
        )
    )
    grads = gradients(8, seed=1, scale=2.0)  # norms around 5: clipping is active
    grads[3] = {"w": grads[3]["w"].at[0, 1].set(np.nan), "b": grads[3]["b"]}
    grads[5] = {"w": grads[5]["w"], "b": grads[5]["b"].at[2].set(np.inf)}
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)

    def step(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        return (gradtx.apply_updates(params, updates), state), gradtx.step_stats(state)

    _, stats = jax.jit(lambda c, gs: jax.lax.scan(step, c, gs))((PARAMS, tx.init(PARAMS)), stacked)
    assert stats["grad_norm"].shape == (8,)

    good = [g for i, g in enumerate(grads) if i not in (3, 5)]
    want = iter(run_reference(ref.chain(ref.clip_by_global_norm(max_norm), ref.adam(lr)), good))
    assert stats["skipped_steps"].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert stats["learning_rate"].tolist() == pytest.approx([lr] * 8)
    for t, g in enumerate(grads):
        if t == 3:
            assert np.isnan(stats["grad_norm"][t])
        elif t == 5:
            assert np.isposinf(stats["grad_norm"][t])
        else:
            np.testing.assert_allclose(stats["grad_norm"][t], norm64(leaves64(g)), rtol=1e-6)
        if t in (3, 5):
            assert stats["update_norm"][t] == 0.0
        else:
            np.testing.assert_allclose(stats["update_norm"][t], norm64(next(want)), rtol=1e-6)


def test_bfloat16_gradients_give_float32_norms(x64):
    params = {"h": jnp.asarray([1.0, 2.0, 3.0], jnp.bfloat16), "d": jnp.ones(2, jnp.float64)}
    half = gradtx.monitor(gradtx.sgd(0.5))
    state = half.init({"h": params["h"]})
    assert state.grad_norm.dtype == jnp.float32
    g = {"h": jnp.asarray([300.0, -400.0, 1.5], jnp.bfloat16)}  # squares overflow no float32
    _, state = jax.jit(half.update)(g, state)
    np.testing.assert_allclose(state.grad_norm, norm64(leaves64(g)), rtol=1e-7)
    mixed = gradtx.monitor(gradtx.sgd(0.5))
    state = mixed.init(params)
    assert state.grad_norm.dtype == jnp.float64 == state.update_norm.dtype
    _, state = mixed.update(params, state)
    assert state.grad_norm.dtype == jnp.float64


def test_micro_steps_of_multisteps_show_a_zero_update_norm():
    tx = gradtx.monitor(gradtx.MultiSteps(gradtx.sgd(0.1), every_k_schedule=3))
    state = tx.init(PARAMS)
    update = jax.jit(tx.update)
    grads = gradients(6)
    for t, g in enumerate(grads):
        updates, state = update(g, state, PARAMS)
        stats = gradtx.step_stats(state)
        np.testing.assert_allclose(stats["grad_norm"], norm64(leaves64(g)), rtol=1e-6)
        if t % 3 == 2:
            mean = [sum(x) / 3 for x in zip(*(leaves64(h) for h in grads[t - 2 : t + 1]))]
            np.testing.assert_allclose(stats["update_norm"], 0.1 * norm64(mean), rtol=1e-6)
        else:
            assert float(stats["update_norm"]) == 0.0


def test_a_learning_rate_set_by_hand_is_reported_without_retracing():
    tx = gradtx.monitor(gradtx.adam(1e-3))
    state = tx.init(PARAMS)

    @jax.jit
    def step(state, g):
        _, state = tx.update(g, state, PARAMS)
        return state, gradtx.step_stats(state)

    state, stats = step(state, gradients(1)[0])
    assert float(stats["learning_rate"]) == pytest.approx(1e-3)
    state = gradtx.set_hyperparams(state, learning_rate=0.25)
    state, stats = step(state, gradients(1)[0])
    assert float(stats["learning_rate"]) == 0.25
    assert step._cache_size() == 1


def test_a_vmapped_sweep_reports_each_rate():
    tx = gradtx.monitor(gradtx.sgd(0.1))
    rates = np.asarray([0.1, 0.2, 0.4], np.float32)
    states = gradtx.sweep(tx.init(PARAMS), learning_rate=rates)
    g = gradients(1)[0]

    def step(state):
        _, state = tx.update(g, state, PARAMS)
        return gradtx.step_stats(state)

    stats = jax.jit(jax.vmap(step))(states)
    np.testing.assert_array_equal(stats["learning_rate"], rates)
    np.testing.assert_allclose(stats["update_norm"], rates * norm64(leaves64(g)), rtol=1e-6)


def test_learning_rate_keys():
    no_rate = gradtx.monitor(gradtx.clip(1.0))
    assert sorted(gradtx.step_stats(no_rate.init(PARAMS))) == ["grad_norm", "update_norm"]
    two = gradtx.monitor(
        gradtx.named_chain(("opt", gradtx.sgd(0.1)), ("extra", gradtx.scale_by_learning_rate(0.5)))
    )
    stats = gradtx.step_stats(two.init(PARAMS))
    assert sorted(stats) == [
        "extra/learning_rate",
        "grad_norm",
        "opt/learning_rate",
        "update_norm",
    ]
    # one guard per group of params: a NaN in each group is skipped by each guard
    two_guards = gradtx.monitor(
        gradtx.chain(
            gradtx.masked(gradtx.apply_if_finite(gradtx.sgd(1.0), 2), {"w": True, "b": False}),
            gradtx.masked(gradtx.apply_if_finite(gradtx.sgd(1.0), 2), {"w": False, "b": True}),
        )
    )
    state = two_guards.init(PARAMS)
    _, state = two_guards.update(jax.tree.map(lambda p: p * np.float32(np.nan), PARAMS), state)
    assert int(gradtx.step_stats(state)["skipped_steps"]) == 2  # summed over both


def test_step_stats_and_monitor_report_misuse():
    with pytest.raises(ValueError, match="step_stats: the state holds no monitor state"):
        gradtx.step_stats(gradtx.adam(0.1).init(PARAMS))
    twice = gradtx.chain(gradtx.monitor(gradtx.clip(1.0)), gradtx.monitor(gradtx.sgd(0.1)))
    with pytest.raises(ValueError, match="step_stats: the state holds several monitor states"):
        gradtx.step_stats(twice.init(PARAMS))
    with pytest.raises(TypeError, match="monitor: tx must be a GradientTransformation"):
        gradtx.monitor(0.1)
    tx = gradtx.monitor(gradtx.sgd(0.1))
    with pytest.raises(ValueError, match="monitor: the state must be the MonitoredState"):
        tx.update(PARAMS, gradtx.sgd(0.1).init(PARAMS))
