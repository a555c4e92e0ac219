"""Long runs: every int32 step counter saturates at 2**31 - 1 instead of wrapping negative.

Each test starts the counters of a state near the int32 maximum (the leaves whose key path ends
in a counter's name are replaced by ``2**31 - 4``), runs 10 jitted steps, and checks that the
counters climb to ``2**31 - 1`` and stay there, and that the updates stay finite and equal the
update rule at that step, computed in float64 NumPy: bias corrections ``1 - b**t`` are 1 there,
schedules are evaluated at the saturated count, the gradient noise has the variance of that
count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._core import hyper as _hyper
from gradtx._core import tree as _tree

TOP = 2**31 - 1
START = TOP - 3
STEPS = 10
COUNTERS = ("count", "gradient_step", "notfinite_count", "total_notfinite")

PARAMS = {"w": jnp.asarray([[0.5, -1.0, 2.0], [1.5, 0.0, -0.25]]), "b": jnp.asarray([0.3, -0.7])}


def grads_at(step: int):
    """A different gradient tree each step (deterministic)."""
    rng = np.random.default_rng(step)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), PARAMS)


def _name(key) -> str:
    return str(getattr(key, "name", getattr(key, "key", key)))


def _is_counter(path) -> bool:
    return bool(path) and _name(path[-1]) in COUNTERS


def _is_table(path) -> bool:
    """A live transformation's table: its row 0 is the step count (see gradtx._core.hyper)."""
    return any(_name(key) == "table" for key in path)


def near_max(state, start: int = START):
    """``state`` with every int32 counter (by key path) and table count set to ``start``."""

    def replace(path, x):
        if _is_table(path):
            return x.at[..., 0, :].set(_hyper._count_row(jnp.asarray(start, jnp.int32), x.dtype))
        if _is_counter(path):
            assert x.dtype == jnp.int32, (_tree.path_str(path), x.dtype)
            return jnp.full_like(x, start)
        return x

    return jax.tree_util.tree_map_with_path(replace, state)


def counters(state) -> dict[str, int]:
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    found = {_tree.path_str(p): int(x) for p, x in flat if _is_counter(p)}
    tables = {
        _tree.path_str(p) + "/count": int(_hyper._count_of(x)) for p, x in flat if _is_table(p)
    }
    return found | tables


def run(tx, *, params=PARAMS, grads=None, start=START, steps=STEPS):
    """``steps`` jitted updates from a state whose counters start at ``start``; the updates and
    the counters after each step (params are not moved: the rule is checked step by step)."""
    grads = grads or [grads_at(k) for k in range(steps)]
    state = near_max(tx.init(params), start)
    assert counters(state), "no counter found in the state"
    update = jax.jit(tx.update)
    updates, seen = [], []
    for g in grads:
        u, state = update(g, state, params)
        updates.append(u)
        seen.append(counters(state))
    assert update._cache_size() == 1
    return updates, seen, state


def assert_saturated(seen, *, every_step=True):
    """Counters never below the start, never decreasing, and at the maximum at the end."""
    previous = {k: START for k in seen[0]}
    for step in seen:
        for k, v in step.items():
            assert START <= v <= TOP, (k, v)
            assert v >= previous[k], (k, v, previous[k])
        previous = step
    if every_step:
        assert all(v == TOP for v in seen[-1].values()), seen[-1]


def leaves64(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def assert_rule(updates, expected, rtol=2e-6):
    for got, want in zip(updates, expected):
        for g, w in zip(leaves64(got), want):
            assert np.isfinite(g).all()
            np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-7 * np.max(np.abs(w), initial=1))


def adam_rule(b1, b2, eps, lr, *, nesterov=False, decay=0.0):
    """Adam from zero moments with every bias correction 1 (the count is ~2**31)."""
    m = [np.zeros(x.shape) for x in leaves64(PARAMS)]
    v = [np.zeros(x.shape) for x in leaves64(PARAMS)]
    out = []
    for k in range(STEPS):
        g = leaves64(grads_at(k))
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi**2 for vi, gi in zip(v, g)]
        first = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)] if nesterov else m
        out.append(
            [
                -lr * (fi / (np.sqrt(vi) + eps) + decay * p)
                for fi, vi, p in zip(first, v, leaves64(PARAMS))
            ]
        )
    return out


# ---- every transformation with a counter: saturation, finite updates -------------------------

TRANSFORMATIONS = {
    "adam": lambda: gradtx.adam(1e-2),
    "adam_nesterov": lambda: gradtx.adam(1e-2, nesterov=True),
    "adamw": lambda: gradtx.adamw(1e-2, weight_decay=0.1),
    "lamb": lambda: gradtx.lamb(1e-2),
    "adam_nu_bf16": lambda: gradtx.adam(1e-2, nu_dtype=jnp.bfloat16),
    "adam_8bit": lambda: gradtx.adam(1e-2, optim_bits=8, min_8bit_size=4),
    "rmsprop_debiased": lambda: gradtx.rmsprop(1e-2, bias_correction=True),
    "rmsprop_centered_debiased": lambda: gradtx.rmsprop(
        1e-2, centered=True, bias_correction=True, eps=0.1
    ),
    "ema": lambda: gradtx.ema(0.9),
    "bias_correction": lambda: gradtx.bias_correction(0.9),
    "sgd_scheduled": lambda: gradtx.sgd(gradtx.cosine_decay_schedule(0.1, 100, alpha=0.1), 0.9),
    "lbfgs": lambda: gradtx.lbfgs(0.1, memory_size=2, linesearch=None),
    "monitor_grouped_adam": lambda: gradtx.monitor(gradtx.grouped(gradtx.adam(1e-2), check=False)),
}


@pytest.mark.parametrize("name", TRANSFORMATIONS)
def test_counters_saturate_and_updates_stay_finite(name):
    updates, seen, _ = run(TRANSFORMATIONS[name]())
    assert_saturated(seen)
    for u in updates:
        assert all(np.isfinite(x).all() for x in leaves64(u))


# ---- the update rule at the saturated count ----------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True], ids=["adam", "nadam"])
def test_adam_bias_corrections_are_one(nesterov):
    updates, seen, _ = run(gradtx.adam(1e-2, nesterov=nesterov))
    assert_saturated(seen)
    assert_rule(updates, adam_rule(0.9, 0.999, 1e-8, 1e-2, nesterov=nesterov))


def test_adamw_decay_at_the_saturated_count():
    updates, seen, _ = run(gradtx.adamw(1e-2, weight_decay=0.1))
    assert_saturated(seen)
    assert_rule(updates, adam_rule(0.9, 0.999, 1e-8, 1e-2, decay=0.1))


def test_ema_and_bias_correction_are_the_plain_average():
    for tx in (
        gradtx.ema(0.8),
        gradtx.chain(gradtx.ema(0.8, debias=False), gradtx.bias_correction(0.8)),
    ):
        updates, seen, _ = run(tx)
        assert_saturated(seen)
        avg = [np.zeros(x.shape) for x in leaves64(PARAMS)]
        expected = []
        for k in range(STEPS):
            avg = [0.8 * a + 0.2 * g for a, g in zip(avg, leaves64(grads_at(k)))]
            expected.append(avg)
        assert_rule(updates, expected)


def _ramp(count):
    """A learning rate that changes with every step near the top: 0.01 * (count - (TOP - 9))."""
    return 0.01 * jnp.clip(count - (TOP - 9), 0, 9).astype(jnp.float32)


def test_a_schedule_is_evaluated_at_the_saturated_count():
    tx = gradtx.sgd(_ramp)
    updates, seen, state = run(tx)
    assert_saturated(seen)
    # The first update uses the value stored by init (schedule at 0); update k (from 0) after
    # that uses the schedule at the count before it: min(START + k, TOP).
    rates = [0.0] + [0.01 * min(min(START + k, TOP) - (TOP - 9), 9) for k in range(1, STEPS)]
    expected = [[-lr * g for g in leaves64(grads_at(k))] for k, lr in enumerate(rates)]
    assert_rule(updates, expected)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(0.09, rel=1e-6)


def test_a_library_schedule_at_the_saturated_count():
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, 10, 1000, end_value=0.003)
    updates, seen, state = run(gradtx.sgd(schedule))
    assert_saturated(seen)
    lr = float(gradtx.hyperparams(state)["learning_rate"])
    assert lr == pytest.approx(0.003, rel=1e-6)
    expected = [[-lr * g for g in leaves64(grads_at(k))] for k in range(1, STEPS)]
    assert_rule(updates[1:], expected)


def test_multisteps_gradient_step_saturates():
    inner = gradtx.sgd(0.1)
    updates, seen, state = run(gradtx.MultiSteps(inner, every_k_schedule=2))
    # gradient_step climbs on every second micro-step; the inner count on every inner step
    assert_saturated(seen)
    assert int(state.mini_step) == 0
    expected = []
    for k in range(STEPS):
        if k % 2 == 0:
            expected.append([np.zeros(x.shape) for x in leaves64(PARAMS)])
        else:
            mean = [(a + b) / 2 for a, b in zip(leaves64(grads_at(k - 1)), leaves64(grads_at(k)))]
            expected.append([-0.1 * m for m in mean])
    assert_rule(updates, expected)


def test_multisteps_schedule_of_the_saturated_gradient_step():
    # k = 1 from the saturated step on, 3 before it: the schedule sees the saturated value.
    def every_k(step):
        return jnp.where(step >= TOP, 1, 3)

    updates, seen, state = run(gradtx.MultiSteps(gradtx.sgd(0.1), every_k_schedule=every_k))
    assert_saturated(seen)
    # START, +1 after micro-steps 0-2, TOP-2 ... : 3 emits of k = 3 (steps 2) reach TOP after
    # 3 inner steps: micro-steps 0-2 (to TOP-2), 3-5 (TOP-1), 6-8 (TOP), then k = 1: step 9.
    emitted = [k for k, u in enumerate(updates) if any(np.any(x != 0) for x in leaves64(u))]
    assert emitted == [2, 5, 8, 9]
    assert int(state.mini_step) == 0


def test_lookahead_at_the_saturated_count():
    tx = gradtx.lookahead(gradtx.sgd(0.1), sync_period=3, slow_step_size=0.5)
    params = PARAMS
    state = near_max(tx.init(params))
    update = jax.jit(tx.update)
    fast = leaves64(params)
    slow = [x.copy() for x in fast]
    for k in range(STEPS):
        u, state = update(grads_at(k), state, params)
        params = gradtx.apply_updates(params, u)
        new_fast = [f - 0.1 * g for f, g in zip(fast, leaves64(grads_at(k)))]
        if k % 3 == 2:
            slow = [s + 0.5 * (f - s) for s, f in zip(slow, new_fast)]
            new_fast = [s.copy() for s in slow]
        for got, want in zip(leaves64(params), new_fast):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        fast = new_fast
        assert all(v == min(START + k + 1, TOP) for v in counters(state).values())
    for got, want in zip(leaves64(gradtx.slow_params(state)), slow):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_ema_params_debias_is_one():
    tx = gradtx.ema_params(0.9)
    grads = [grads_at(k) for k in range(STEPS)]  # the "params" fed to the average
    state = near_max(tx.init(PARAMS))
    update = jax.jit(tx.update)
    avg = [np.zeros(x.shape) for x in leaves64(PARAMS)]
    for k, p in enumerate(grads):
        out, state = update(p, state)
        avg = [0.9 * a + 0.1 * x for a, x in zip(avg, leaves64(p))]
        for got, want in zip(leaves64(out), avg):
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
        assert int(state.count) == min(START + k + 1, TOP)


def test_add_noise_variance_at_the_saturated_count():
    eta, gamma = 0.3, 0.55
    tx = gradtx.add_noise(eta, gamma, key=7)
    updates, seen, state = run(tx)
    assert_saturated(seen)
    # Replay the draws: the state's key is split into (next key, this step's key), this step's
    # key into one key per leaf; the noise is drawn in float32.
    key = jax.random.key(7)
    for k, u in enumerate(updates):
        key, draw = jax.random.split(key)
        leaves = jax.tree.leaves(grads_at(k))
        keys = jax.random.split(draw, len(leaves))
        t = float(min(START + k + 1, TOP))
        sigma = np.sqrt(eta / np.float64(np.float32(t)) ** gamma)
        for got, g, kk in zip(leaves64(u), leaves, keys):
            noise = np.asarray(jax.random.normal(kk, g.shape, jnp.float32), np.float64)
            np.testing.assert_allclose(got, np.asarray(g, np.float64) + sigma * noise, rtol=1e-5)


def test_apply_if_finite_counts_saturate():
    # A limit that is never exceeded: non-finite steps are always skipped, even saturated.
    tx = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=TOP)
    nan = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), PARAMS)
    grads = [nan] * 6 + [grads_at(6)] + [nan] * 3
    updates, seen, state = run(tx, grads=grads)
    outer = [{k: v for k, v in c.items() if "/" not in k} for c in seen]
    assert outer[5] == {"notfinite_count": TOP, "total_notfinite": TOP}
    assert outer[6] == {"notfinite_count": 0, "total_notfinite": TOP}
    assert outer[-1] == {"notfinite_count": 3, "total_notfinite": TOP}
    assert int(state.inner_state.count) == START + 1  # the inner sgd ran once
    for k, u in enumerate(updates):
        want = [-0.1 * g for g in leaves64(grads_at(6))] if k == 6 else None
        for i, got in enumerate(leaves64(u)):
            assert np.isfinite(got).all()
            if want is None:
                assert np.all(got == 0) and np.all(np.signbit(got))  # -0.0: params unchanged
            else:
                np.testing.assert_allclose(got, want[i], rtol=1e-6)
