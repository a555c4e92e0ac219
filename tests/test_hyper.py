"""Live hyperparameters: reading, setting, schedules, no retracing, float32 exactness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._core import hyper as _hyper
from tests import registry

PARAMS = {"w": jnp.ones((3,)), "b": jnp.zeros(())}
GRADS = {"w": jnp.ones((3,)), "b": jnp.ones(())}

ALIAS_KEYS = {
    "sgd": (gradtx.sgd(0.1, momentum=0.9), {"learning_rate", "momentum"}),
    "adagrad": (gradtx.adagrad(0.1), {"learning_rate", "eps"}),
    "adadelta": (gradtx.adadelta(), {"learning_rate", "rho", "eps", "weight_decay"}),
    "rmsprop": (gradtx.rmsprop(0.1, momentum=0.9), {"learning_rate", "decay", "eps", "momentum"}),
    "adam": (gradtx.adam(0.1), {"learning_rate", "b1", "b2", "eps", "eps_root"}),
    "adamw": (gradtx.adamw(0.1), {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"}),
    "lamb": (gradtx.lamb(0.1), {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"}),
    "lars": (
        gradtx.lars(0.1),
        {"learning_rate", "weight_decay", "trust_coefficient", "eps", "momentum"},
    ),
}

ALIAS_KEYS.update(registry.entries("HYPERPARAM_KEYS"))


@pytest.mark.parametrize("name", ALIAS_KEYS)
def test_aliases_expose_their_arguments(name):
    tx, keys = ALIAS_KEYS[name]
    values = gradtx.hyperparams(tx.init(PARAMS))
    assert set(values) == keys
    assert float(values["learning_rate"]) == pytest.approx(1.0 if name == "adadelta" else 0.1)


def test_set_hyperparams_changes_the_next_step():
    tx = gradtx.sgd(0.1)
    state = tx.init(PARAMS)
    updates, state = tx.update(GRADS, state)
    assert np.allclose(updates["w"], -0.1)
    state = gradtx.set_hyperparams(state, learning_rate=0.5)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == 0.5
    updates, state = tx.update(GRADS, state)
    assert np.allclose(updates["w"], -0.5)


def _counting_step(tx):
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        updates, state = tx.update(GRADS, state, params)
        return gradtx.apply_updates(params, updates), state

    return step, traces


@pytest.mark.parametrize("name", ALIAS_KEYS)
def test_no_retrace_on_second_step_or_new_values(name):
    tx, _ = ALIAS_KEYS[name]
    step, traces = _counting_step(tx)
    params, state = step(PARAMS, tx.init(PARAMS))
    params, state = step(params, state)
    state = gradtx.set_hyperparams(state, learning_rate=0.05)
    params, state = step(params, state)
    assert len(traces) == 1


def test_scheduled_hyperparameters_never_retrace():
    schedule = gradtx.cosine_decay_schedule(0.1, 10)
    tx = gradtx.sgd(schedule, momentum=gradtx.linear_schedule(0.5, 0.9, 10))
    step, traces = _counting_step(tx)
    params, state = PARAMS, tx.init(PARAMS)
    for _ in range(5):
        params, state = step(params, state)
    assert len(traces) == 1


def test_schedule_drives_each_step():
    schedule = gradtx.linear_schedule(1.0, 0.0, 10)
    tx = gradtx.sgd(schedule)
    state = tx.init(PARAMS)
    for t in range(12):
        assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(
            float(schedule(t))
        )
        updates, state = tx.update(GRADS, state)
        assert np.allclose(updates["w"], -float(schedule(t)))


def test_set_hyperparams_overrides_a_schedule_for_good():
    tx = gradtx.sgd(gradtx.linear_schedule(1.0, 0.0, 10))
    state = gradtx.set_hyperparams(tx.init(PARAMS), learning_rate=0.25)
    for _ in range(3):
        updates, state = tx.update(GRADS, state)
        assert np.allclose(updates["w"], -0.25)


def test_state_structure_is_the_same_for_float_and_schedule():
    constant = gradtx.adamw(1e-3, b1=0.9, weight_decay=1e-2).init(PARAMS)
    scheduled = gradtx.adamw(
        gradtx.cosine_decay_schedule(1e-3, 100),
        b1=gradtx.constant_schedule(0.9),
        weight_decay=gradtx.linear_schedule(0.0, 1e-2, 10),
    ).init(PARAMS)
    assert jax.tree.structure(constant) == jax.tree.structure(scheduled)
    assert jax.tree.map(jnp.shape, constant) == jax.tree.map(jnp.shape, scheduled)


def test_shared_names_are_qualified_by_position_or_name():
    state = gradtx.chain(gradtx.trace(0.9), gradtx.trace(0.5)).init(PARAMS)
    assert set(gradtx.hyperparams(state)) == {"0/decay", "1/decay"}
    with pytest.raises(ValueError, match="several hyperparameters"):
        gradtx.set_hyperparams(state, decay=0.1)
    state = gradtx.set_hyperparams(state, **{"1/decay": 0.25})
    assert float(gradtx.hyperparams(state)["1/decay"]) == 0.25
    assert float(gradtx.hyperparams(state)["0/decay"]) == pytest.approx(0.9)

    named = gradtx.named_chain(("fast", gradtx.ema(0.5)), ("slow", gradtx.ema(0.99)))
    assert set(gradtx.hyperparams(named.init(PARAMS))) == {"fast/decay", "slow/decay"}


def test_unique_names_stay_plain_in_a_chain():
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(1e-3))
    values = gradtx.hyperparams(tx.init(PARAMS))
    assert {"max_norm", "learning_rate", "b1"} <= set(values)


def test_hyperparams_inside_jit():
    tx = gradtx.adam(gradtx.linear_schedule(0.0, 1.0, 4))

    @jax.jit
    def step(state):
        _, state = tx.update(GRADS, state, PARAMS)
        return state, gradtx.hyperparams(state)["learning_rate"]

    state = tx.init(PARAMS)
    for t in range(1, 4):
        state, lr = step(state)
        assert float(lr) == pytest.approx(t / 4)


def test_vmapped_learning_rate_sweep_in_one_program():
    tx = gradtx.adam(1e-3)
    rates = jnp.array([1e-3, 1e-2, 1e-1])

    def train(learning_rate):
        state = gradtx.set_hyperparams(tx.init(PARAMS), learning_rate=learning_rate)
        params = PARAMS
        for _ in range(5):
            grads = jax.tree.map(lambda p: 2 * p - 1, params)
            updates, state = tx.update(grads, state, params)
            params = gradtx.apply_updates(params, updates)
        return params

    swept = jax.jit(jax.vmap(train))(rates)
    for i, rate in enumerate([1e-3, 1e-2, 1e-1]):
        single = train(jnp.float32(rate))
        np.testing.assert_allclose(swept["w"][i], single["w"], rtol=1e-6)


@pytest.mark.parametrize("beta", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 0.5, 0.1, 0.0])
def test_live_complement_is_rounded_once(beta):
    """1 - beta from the live value equals float32(1 - beta) formed in double precision."""
    value, residual, _ = _hyper._row(beta, jnp.float32)
    live = _hyper.Live(value, residual)
    assert _hyper.one_minus(live, jnp.float32) == np.float32(1 - beta)
    # value + residual carries beta to double precision, which float32 alone cannot.
    assert float(value) + float(residual) == pytest.approx(beta, abs=1e-15)


def test_live_ema_step_is_bitwise_the_constant_formula():
    tx = gradtx.ema(0.9, debias=False)
    x = {"w": jnp.linspace(-3, 3, 101)}
    out, state = tx.update(x, tx.init(x))
    expected = np.float32(1 - 0.9) * np.asarray(x["w"])  # optax's baked-in constant
    np.testing.assert_array_equal(np.asarray(out["w"]), expected)
    state = gradtx.set_hyperparams(state, decay=0.95)
    zero = {"w": jnp.zeros(101)}
    out, _ = tx.update(zero, state)
    np.testing.assert_array_equal(np.asarray(out["w"]), np.float32(0.95) * expected)


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
@pytest.mark.parametrize("t", [1, 2, 10, 1000, 100000])
def test_bias_correction_divisor_is_accurate_in_float32(beta, t):
    value, residual, _ = _hyper._row(beta, jnp.float32)
    live = _hyper.Live(value, residual)
    got = float(_hyper.one_minus_power(live, jnp.asarray(t, jnp.int32)))
    assert got == pytest.approx(1 - beta**t, rel=4e-7)


def test_step_counter_saturates():
    tx = gradtx.sgd(gradtx.linear_schedule(1.0, 0.5, 10))
    state = tx.init(PARAMS)
    top = np.iinfo(np.int32).max
    almost = _hyper._count_row(jnp.asarray(top - 1, jnp.int32), state.array.dtype)
    state = state.with_array(state.array.at[0].set(almost))
    for _ in range(3):
        _, state = tx.update(GRADS, state)
    assert int(state.count) == top
    adam = gradtx.adam(0.1)
    state = adam.init(PARAMS)
    state = jax.tree.map(lambda x: jnp.full_like(x, top - 1) if x.dtype == jnp.int32 else x, state)
    updates, state = adam.update(GRADS, state)
    updates, state = adam.update(GRADS, state)
    assert all(bool(jnp.isfinite(u).all()) for u in jax.tree.leaves(updates))
    assert all(int(c) == top for c in jax.tree.leaves(state) if c.dtype == jnp.int32)


def test_a_schedule_through_1000_steps_compiles_once():
    tx = gradtx.adamw(
        gradtx.cosine_decay_schedule(1e-2, 800, alpha=0.01),
        b1=gradtx.linear_schedule(0.85, 0.95, 500),
    )
    step, traces = _counting_step(tx)
    params, state = PARAMS, tx.init(PARAMS)
    for i in range(1000):
        if i == 500:
            state = gradtx.set_hyperparams(state, weight_decay=1e-3)
        params, state = step(params, state)
    assert len(traces) == 1 and step._cache_size() == 1
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(1e-4, rel=1e-4)


# Ranges that set_hyperparams checks as the factory does: each row is (factory, its other
# arguments, the key, an edge value the range includes, a value just outside it).
LIVE_RANGES = {
    "rprop_eta_minus": (gradtx.rprop, dict(learning_rate=1e-2), "eta_minus", 1.0, 0.0),
    "rprop_eta_plus": (gradtx.rprop, dict(learning_rate=1e-2), "eta_plus", 1.0, 0.99),
    "rprop_min_step_size": (gradtx.rprop, dict(learning_rate=1e-2), "min_step_size", 0.0, -1e-6),
    "scale_by_rprop_max_step_size": (
        gradtx.scale_by_rprop,
        dict(learning_rate=1e-2),
        "max_step_size",
        1e-6,
        0.0,
    ),
    "scale_by_lion_smooth_beta": (
        gradtx.scale_by_lion,
        dict(mode="smooth"),
        "smooth_beta",
        1e-3,
        0.0,
    ),
    "adafactor_clipping_threshold": (gradtx.adafactor, {}, "clipping_threshold", 1e-3, 0.0),
    "adafactor_decay_rate": (gradtx.adafactor, {}, "decay_rate", 0.0, -0.1),
    "scale_by_factored_rms_decay_rate": (gradtx.scale_by_factored_rms, {}, "decay_rate", 0.0, -0.1),
    # SM3's b2 includes 1 (the paper's sums), which Adam's excludes
    "sm3_b2": (gradtx.sm3, dict(learning_rate=0.1), "b2", 1.0, 1.001),
    "scale_by_sm3_b2": (gradtx.scale_by_sm3, {}, "b2", 1.0, -0.1),
    "adam_b2": (gradtx.adam, dict(learning_rate=0.1), "b2", 0.0, 1.0),
}


@pytest.mark.parametrize("case", LIVE_RANGES)
def test_set_hyperparams_checks_the_range_the_factory_checks(case):
    factory, kwargs, key, edge, outside = LIVE_RANGES[case]
    with pytest.raises(ValueError, match=rf"^{factory.__name__}: {key} must be "):
        factory(**kwargs, **{key: outside})
    state = factory(**kwargs, **{key: edge}).init(PARAMS)
    state = gradtx.set_hyperparams(state, **{key: edge})
    assert float(gradtx.hyperparams(state)[key]) == np.float32(edge)
    with pytest.raises(ValueError, match=rf"^set_hyperparams: {key} must be "):
        gradtx.set_hyperparams(state, **{key: outside})


def _small_model_configs(m):
    """The configurations issue 16 measures, built from ``m`` (gradtx or optax)."""
    schedule = m.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000)
    return {
        "sgd": m.sgd(1e-2),
        "sgd_momentum": m.sgd(1e-2, momentum=0.9),
        "adam": m.adam(1e-3),
        "adamw": m.adamw(1e-3, weight_decay=1e-4),
        "clip_adamw_schedule": m.chain(
            m.clip_by_global_norm(1.0), m.adamw(schedule, weight_decay=1e-4)
        ),
    }


@pytest.mark.parametrize("name", sorted(_small_model_configs(gradtx)))
def test_live_hyperparameters_add_only_their_tables_to_optax_state(name):
    """Every array of a state is a buffer a jitted step passes in and out (about 2 µs each on
    XLA:CPU): live hyperparameters cost one table per transformation, not arrays per value,
    and nothing else is added (Adam keeps one step count for both moments, as optax's)."""
    optax = pytest.importorskip("optax")
    params = {"kernel": jnp.zeros((64, 10)), "bias": jnp.zeros(10)}
    ours = len(jax.tree.leaves(_small_model_configs(gradtx)[name].init(params)))
    theirs = len(jax.tree.leaves(_small_model_configs(optax)[name].init(params)))
    one_per_transformation = {"clip_adamw_schedule": 2}.get(name, 1)
    assert ours <= theirs + one_per_transformation, (ours, theirs)
    tables = [
        x
        for x in jax.tree.leaves(
            _small_model_configs(gradtx)[name].init(params),
            is_leaf=lambda x: isinstance(x, _hyper.HyperState),
        )
        if isinstance(x, _hyper.HyperState)
    ]
    assert len(tables) == one_per_transformation


# A state given without gradtx's table (optax's state of the same algorithm, or the inner state
# built by hand): updated with the values the transformation was built with, and handed back in
# its own classes; optax's stateless ones' (EmptyState(), ...) where the table is all gradtx keeps.
WITHOUT_TABLE = {
    "scale_by_adam": lambda lib: lib.scale_by_adam(b1=0.8),
    "trace": lambda lib: lib.trace(decay=0.9, nesterov=True),
    "scale_by_amsgrad": lambda lib: lib.scale_by_amsgrad(),
    "adam": lambda lib: lib.adam(0.1),
    "sgd": lambda lib: lib.sgd(0.1),
}


@pytest.mark.parametrize("name", sorted(WITHOUT_TABLE))
def test_a_state_without_the_table_is_updated_in_its_own_classes(name):
    import optax

    tx, theirs = WITHOUT_TABLE[name](gradtx), WITHOUT_TABLE[name](optax)
    ours = tx.init(PARAMS)
    for bare in (jax.tree.map(lambda x: x, _inner(ours)), theirs.init(PARAMS)):
        updates, new = tx.update(GRADS, bare, PARAMS)
        want_updates, want = tx.update(GRADS, ours, PARAMS)
        assert jax.tree.structure(new) == jax.tree.structure(bare)
        jax.tree.map(np.testing.assert_array_equal, updates, want_updates)
        jax.tree.map(
            np.testing.assert_array_equal, jax.tree.leaves(new), jax.tree.leaves(_inner(want))
        )


def _inner(state):
    return jax.tree.map(
        lambda x: x.inner_state if isinstance(x, _hyper.HyperState) else x,
        state,
        is_leaf=lambda x: isinstance(x, _hyper.HyperState),
    )


def test_a_state_without_the_table_is_refused_when_it_is_another_s_or_values_are_scheduled():
    tx = gradtx.scale_by_adam()
    other = gradtx.trace(0.9).init(PARAMS).inner_state
    with pytest.raises(ValueError, match=r"scale_by_adam: the state was not made .*TraceState"):
        tx.update(GRADS, other, PARAMS)
    scheduled = gradtx.scale_by_adam(b1=gradtx.constant_schedule(0.9))
    bare = scheduled.init(PARAMS).inner_state
    with pytest.raises(ValueError, match=r"scale_by_adam: a ScaleByAdamState .*\['b1'\]"):
        scheduled.update(GRADS, bare, PARAMS)
