"""``gradtx.inject_hyperparams``: optax's interface over gradtx's live hyperparameters.

The reference is ``optax.inject_hyperparams`` around optax's optimizer of the same algorithm:
the same numbers (to float32 rounding), the same ``hyperparams`` dict, values assigned in the
dict used by the next update. optax runs under standard dtype promotion (its code relies on it);
gradtx under the suite's strict promotion.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

PARAMS = {"w": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "b": jnp.array([0.5, -0.25])}


def _grads(i):
    return {
        "w": jnp.array([[0.3, -0.1], [0.2, 0.05]]) * (1.0 + 0.1 * i),
        "b": jnp.array([-0.4, 0.1]) * (1.0 - 0.05 * i),
    }


# name, arguments, assignments {step: {name: value}} made in the dict before that step
CASES = {
    "sgd_momentum": ("sgd", dict(learning_rate=0.1, momentum=0.9), {3: {"learning_rate": 0.0}}),
    "adam": ("adam", dict(learning_rate=0.1, b1=0.8), {3: {"learning_rate": 0.02, "b1": 0.5}}),
    "adamw_schedule": (
        "adamw",
        dict(learning_rate=optax.linear_schedule(0.1, 0.01, 5), weight_decay=0.1),
        {4: {"weight_decay": 0.0}},
    ),
    "rmsprop": ("rmsprop", dict(learning_rate=0.05), {2: {"decay": 0.5}}),
    "adagrad": ("adagrad", dict(learning_rate=0.1), {5: {"learning_rate": 0.3}}),
    "lamb": ("lamb", dict(learning_rate=0.01), {3: {"weight_decay": 0.1}}),
    "lion": ("lion", dict(learning_rate=0.01), {3: {"b2": 0.9}}),
    "nadamw": ("nadamw", dict(learning_rate=0.01), {2: {"eps": 1e-3}}),
    "adamax": ("adamax", dict(learning_rate=0.01), {3: {"b1": 0.0}}),
}
STEPS = 7


def _run(lib, name, kwargs, assignments, jit):
    tx = lib.inject_hyperparams(getattr(lib, name))(**kwargs)
    params, state = PARAMS, tx.init(PARAMS)
    update = jax.jit(tx.update) if jit else tx.update
    seen = []
    for i in range(STEPS):
        for key, value in assignments.get(i, {}).items():
            old = state.hyperparams[key]
            state.hyperparams[key] = jnp.asarray(value, old.dtype)
        updates, state = update(_grads(i), state, params)
        params = lib.apply_updates(params, updates)
        seen.append({k: float(v) for k, v in state.hyperparams.items()})
    return params, state, seen


@pytest.mark.parametrize("case", sorted(CASES))
def test_injected_values_and_assignments_give_optaxs_numbers(case):
    name, kwargs, assignments = CASES[case]
    with jax.numpy_dtype_promotion("standard"):
        expected, expected_state, expected_seen = _run(optax, name, kwargs, assignments, True)
    params, state, seen = _run(gradtx, name, kwargs, assignments, True)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-7)
    assert seen == [{k: d[k] for k in d if k in s} for d, s in zip(expected_seen, seen)]
    assert set(state.hyperparams) <= set(expected_state.hyperparams)
    assert int(state.count) == int(expected_state.count) == STEPS


def test_a_learning_rate_of_zero_assigned_in_the_dict_stops_the_steps():
    # the case optax's suite found: the assigned value used to be ignored
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
    state = tx.init(PARAMS)
    state.hyperparams["learning_rate"] = jnp.asarray(0.0)
    updates, state = jax.jit(tx.update)(_grads(0), state, PARAMS)
    assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(updates))
    assert float(gradtx.hyperparams(state.inner_state)["learning_rate"]) == 0.0


def test_arguments_optax_turns_into_arrays_stay_what_gradtx_needs():
    # optim_bits and the initial accumulators are sizes and initial values gradtx keeps fixed:
    # they are passed to the factory as given, and are not in the dict
    for factory, kwargs, fixed in [
        (
            gradtx.scale_by_adam,
            dict(optim_bits=8, min_8bit_size=4),
            {"optim_bits", "min_8bit_size"},
        ),
        (gradtx.rmsprop, dict(learning_rate=0.1, initial_scale=0.5), {"initial_scale"}),
        (gradtx.adagrad, dict(learning_rate=0.1, initial_accumulator_value=0.2), set()),
    ]:
        tx = gradtx.inject_hyperparams(factory)(**kwargs)
        state = tx.init(PARAMS)
        assert not fixed & set(state.hyperparams), factory.__name__
        updates, state = jax.jit(tx.update)(_grads(0), state, PARAMS)
        plain = factory(**kwargs)
        want, _ = plain.update(_grads(0), plain.init(PARAMS), PARAMS)
        for got, ref in zip(jax.tree.leaves(updates), jax.tree.leaves(want)):
            np.testing.assert_array_equal(got, ref)


def test_the_injected_adam_is_gradtx_adam_bit_for_bit():
    # the values in the dict are float32 arrays; a value equal to the stored one keeps the
    # stored row and its rounding residual, so 1 - b1 is the once-rounded one (optax's injected
    # Adam differs from its plain Adam there)
    kwargs = dict(learning_rate=1e-3, b1=0.9, b2=0.999)
    injected = gradtx.inject_hyperparams(gradtx.adam)(**kwargs)
    plain = gradtx.adam(**kwargs)
    s1, s2, p1, p2 = injected.init(PARAMS), plain.init(PARAMS), PARAMS, PARAMS
    for i in range(20):
        u1, s1 = jax.jit(injected.update)(_grads(i), s1, p1)
        u2, s2 = jax.jit(plain.update)(_grads(i), s2, p2)
        p1, p2 = gradtx.apply_updates(p1, u1), gradtx.apply_updates(p2, u2)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(a, b)


def test_a_scheduled_value_is_reported_and_assigning_it_has_no_effect():
    schedule = optax.linear_schedule(1.0, 0.0, 4)
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=schedule)
    state = tx.init(PARAMS)
    rates = []
    for _ in range(5):
        state.hyperparams["learning_rate"] = jnp.asarray(123.0)
        updates, state = tx.update(_grads(0), state, PARAMS)
        rates.append(float(state.hyperparams["learning_rate"]))
        np.testing.assert_allclose(updates["b"], -rates[-1] * _grads(0)["b"], rtol=1e-6)
    np.testing.assert_allclose(rates, [1.0, 0.75, 0.5, 0.25, 0.0])
    assert int(state.hyperparams_states["learning_rate"].count) == 5


class _LossDriven:
    """An optax-style stateful schedule: halves the rate whenever the loss given rises."""

    def init(self):
        return {"rate": jnp.asarray(1.0), "last": jnp.asarray(jnp.inf)}

    def update(self, state, loss=None, **extra):
        del extra
        rate = jnp.where(loss > state["last"], state["rate"] / 2, state["rate"])
        return {"rate": rate, "last": jnp.asarray(loss, jnp.float32)}

    def __call__(self, state, **extra):
        del extra
        return state["rate"]


def test_stateful_schedules_see_the_extra_arguments():
    kwargs = dict(learning_rate=_LossDriven(), momentum=0.5)
    mine = gradtx.inject_hyperparams(gradtx.sgd)(**kwargs)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.inject_hyperparams(optax.sgd)(**kwargs)
        s2 = theirs.init(PARAMS)
    s1 = mine.init(PARAMS)
    for loss in [3.0, 2.0, 2.5, 1.0, 1.5]:
        u1, s1 = jax.jit(mine.update)(_grads(0), s1, PARAMS, loss=jnp.asarray(loss))
        with jax.numpy_dtype_promotion("standard"):
            u2, s2 = theirs.update(_grads(0), s2, PARAMS, loss=jnp.asarray(loss))
        np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)
        assert float(s1.hyperparams["learning_rate"]) == float(s2.hyperparams["learning_rate"])
    assert float(s1.hyperparams["learning_rate"]) == 0.5  # halved once; the last rise counts next


def test_an_optax_factory_inside_is_built_again_each_step_as_optax_does():
    with jax.numpy_dtype_promotion("standard"):
        expected, _, _ = _run(optax, "adam", dict(learning_rate=0.1), {3: {"b1": 0.5}}, True)
        tx = gradtx.inject_hyperparams(optax.adam)(learning_rate=0.1)
        params, state = PARAMS, tx.init(PARAMS)
        for i in range(STEPS):
            if i == 3:
                state.hyperparams["b1"] = jnp.asarray(0.5)
            updates, state = jax.jit(tx.update)(_grads(i), state, params)
            params = optax.apply_updates(params, updates)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(got, want)


def test_assigning_a_name_that_is_not_injectable_is_an_error_not_ignored():
    tx = gradtx.inject_hyperparams(gradtx.rmsprop)(learning_rate=0.1, initial_scale=0.5)
    state = tx.init(PARAMS)
    state.hyperparams["initial_scale"] = jnp.asarray(2.0)
    with pytest.raises(ValueError, match=r"inject_hyperparams: .*'initial_scale'"):
        tx.update(_grads(0), state, PARAMS)
    state = tx.init(PARAMS)
    state.hyperparams["momentum"] = jnp.asarray(0.9)
    with pytest.raises(ValueError, match=r"inject_hyperparams: .*'momentum'"):
        tx.update(_grads(0), state, PARAMS)


def test_an_assigned_value_out_of_range_is_refused_by_name():
    tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=0.1)
    state = tx.init(PARAMS)
    state.hyperparams["b1"] = 1.5
    with pytest.raises(ValueError, match=r"b1 must be in \[0, 1\), got 1.5"):
        tx.update(_grads(0), state, PARAMS)


def test_assignments_do_not_recompile():
    tx = gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=0.1, weight_decay=1e-2)
    traces = []

    @jax.jit
    def step(state, params):
        traces.append(1)
        return tx.update(_grads(0), state, params)

    state = tx.init(PARAMS)
    for value in [0.1, 0.05, 0.0]:
        state.hyperparams["learning_rate"] = jnp.asarray(value)
        _, state = step(state, PARAMS)
    assert len(traces) == 1


def test_hyperparam_dtype_and_the_params_dtype_set_the_dicts_floats():
    tx = gradtx.inject_hyperparams(gradtx.sgd, hyperparam_dtype=jnp.bfloat16)(learning_rate=0.1)
    assert tx.init(PARAMS).hyperparams["learning_rate"].dtype == jnp.bfloat16
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
    half = jax.tree.map(lambda x: x.astype(jnp.float16), PARAMS)
    assert tx.init(half).hyperparams["learning_rate"].dtype == jnp.float16


def test_optax_code_reads_the_state_as_optaxs():
    tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=optax.constant_schedule(0.1))
    state = tx.init(PARAMS)
    assert type(state).__name__ == "InjectStatefulHyperparamsState"
    assert state._fields == optax.InjectStatefulHyperparamsState._fields
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    assert isinstance(
        state.hyperparams_states["learning_rate"],
        gradtx.WrappedSchedule(lambda c: c).init().__class__,
    )


def test_a_random_key_argument_is_passed_as_it_is_not_injected():
    tx = gradtx.inject_hyperparams(gradtx.noisy_sgd)(learning_rate=0.1, key=jax.random.key(3))
    state = tx.init(PARAMS)
    assert "key" not in state.hyperparams and "learning_rate" in state.hyperparams
    updates, _ = jax.jit(tx.update)(_grads(0), state, PARAMS)
    assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates))
