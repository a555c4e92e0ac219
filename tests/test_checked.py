"""gradtx.checked: run-time checks of every live hyperparameter value, inside jit (checkify).

The issue's cases, each silently accepted before (and still, without ``checked``): a learning
rate schedule that returns NaN, a ``b1`` schedule that returns 1.5, a factory called inside jit
with traced values (lr = -0.1, b1 = 1.5), ``set_hyperparams`` with a traced NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import gradtx

PARAMS = {"w": jnp.ones(3)}


def _run(tx, state=None, steps=1):
    """The error of each of ``steps`` checkified, jitted updates (None where none failed)."""
    update = jax.jit(checkify.checkify(tx.update))
    state = tx.init(PARAMS) if state is None else state
    errors = []
    for _ in range(steps):
        err, (_, state) = update(PARAMS, state, PARAMS)
        errors.append(err.get())
    return errors


def test_a_schedule_returning_nan_is_caught_at_the_step_that_uses_it():
    lr = lambda count: jnp.where(count < 2, 1e-3, jnp.nan)
    errors = _run(gradtx.checked(gradtx.adam(lr)), steps=3)
    assert errors[:2] == [None, None]
    assert errors[2].startswith("checked: learning_rate must be finite, got nan"), errors[2]


def test_a_momentum_schedule_leaving_its_range_is_caught():
    b1 = lambda count: jnp.where(count < 1, 0.9, 1.5)
    errors = _run(gradtx.checked(gradtx.adam(1e-3, b1=b1)), steps=2)
    assert errors[0] is None
    assert errors[1].startswith("checked: b1 must be in [0, 1), got 1.5"), errors[1]


def test_factories_called_with_traced_values_are_checked_at_run_time():
    @jax.jit
    def first_step(lr, b1):
        tx = gradtx.checked(gradtx.adam(lr, b1=b1))  # adam cannot check tracers
        err, _ = checkify.checkify(tx.update)(PARAMS, tx.init(PARAMS), PARAMS)
        return err

    message = first_step(-0.1, 1.5).get()
    assert message.startswith("checked: learning_rate must be >= 0, got -0.1"), message
    assert first_step(0.1, 0.5).get() is None


def test_a_traced_nan_set_with_set_hyperparams_is_caught():
    tx = gradtx.checked(gradtx.sgd(0.1, momentum=0.9))

    @jax.jit
    def step(lr):
        state = gradtx.set_hyperparams(tx.init(PARAMS), learning_rate=lr)
        err, _ = checkify.checkify(tx.update)(PARAMS, state, PARAMS)
        return err

    assert step(jnp.float32(np.nan)).get().startswith("checked: learning_rate must be finite")
    assert step(jnp.float32(0.5)).get() is None


def test_qualified_names_and_every_range_of_a_chain():
    tx = gradtx.checked(
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.trace(0.9), gradtx.trace(0.5))
    )
    # traced values: set_hyperparams checks concrete ones itself
    state = jax.jit(lambda v: gradtx.set_hyperparams(tx.init(PARAMS), max_norm=v))(0.0)
    assert _run(tx, state)[0].startswith("checked: max_norm must be > 0, got 0.0")
    state = jax.jit(lambda v: gradtx.set_hyperparams(tx.init(PARAMS), **{"2/decay": v}))(-0.5)
    assert _run(tx, state)[0].startswith("checked: 2/decay must be in [0, 1], got -0.5")


def test_updates_and_state_are_the_wrapped_transformations_bit_for_bit():
    plain = gradtx.adamw(gradtx.cosine_decay_schedule(1e-2, 10), weight_decay=0.1)
    tx = gradtx.checked(plain)
    state, plain_state = tx.init(PARAMS), plain.init(PARAMS)
    update = jax.jit(checkify.checkify(tx.update))
    grads = {"w": jnp.asarray([0.3, -1.0, 2.0])}
    for _ in range(3):
        err, (updates, state) = update(grads, state, PARAMS)
        expected, plain_state = jax.jit(plain.update)(grads, plain_state, PARAMS)
        assert err.get() is None
        np.testing.assert_array_equal(np.asarray(updates["w"]), np.asarray(expected["w"]))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(plain_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_eager_steps_raise_at_once():
    tx = gradtx.checked(gradtx.sgd(lambda count: jnp.where(count < 1, 0.1, jnp.nan)))
    _, state = tx.update(PARAMS, tx.init(PARAMS), PARAMS)
    with pytest.raises(Exception, match="checked: learning_rate must be finite"):
        tx.update(PARAMS, state, PARAMS)


def test_without_checkify_a_jitted_step_says_what_to_do():
    tx = gradtx.checked(gradtx.sgd(0.1))
    with pytest.raises(ValueError, match="checkify"):
        jax.jit(tx.update)(PARAMS, tx.init(PARAMS), PARAMS)


def test_a_range_particular_to_one_transformation_is_that_ones():
    """SM3's b2 is in [0, 1] (1: the paper's sums) where Adam's is in [0, 1)."""
    b2 = lambda count: jnp.where(count < 1, 1.0, 1.5)
    errors = _run(gradtx.checked(gradtx.sm3(0.1, b2=b2)), steps=2)
    assert errors[0] is None
    assert errors[1].startswith("checked: b2 must be in [0, 1], got 1.5"), errors[1]
    adam_b2 = lambda count: jnp.where(count < 1, 0.999, 1.0)
    errors = _run(gradtx.checked(gradtx.adam(0.1, b2=adam_b2)), steps=2)
    assert errors[1].startswith("checked: b2 must be in [0, 1), got 1.0"), errors[1]
