"""Bad input gets a clear error naming the function and the argument; valid edge values pass.

Three tables: bad factory arguments (checked when the transformation is built, before anything
is traced), bad ``set_hyperparams`` values, and gradient trees that do not match the tree the
state was made for (checked at ``update``, eagerly and under ``jit``). A fourth table lists
edge values that must be accepted.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def _names(message: str, word: str) -> bool:
    """Whether ``word`` occurs in ``message`` as a whole name (``adam`` is not in ``adamw``)."""
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", message) is not None


# ---- bad factory arguments ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bad:
    """A call that must raise ``error`` with a message naming each of ``names``."""

    factory: Callable[..., Any]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: type[Exception] = ValueError
    names: tuple[str, ...] = ()
    args: tuple[Any, ...] = ()

    def call(self):
        return self.factory(*self.args, **self.kwargs)


def _b1_out_of_range(count):
    return 1.5 + 0.0 * count.astype(jnp.float32)


def _vector_schedule(count):
    return jnp.full((3,), 1e-3, jnp.float32) + 0.0 * count.astype(jnp.float32)


def _forgot_to_return(count):
    del count  # a schedule whose author forgot the ``return``


NAN, INF = float("nan"), float("inf")

BAD = {
    # adam's numeric hyperparameters: ranges, finiteness
    "adam_b1_above_1": Bad(gradtx.adam, dict(learning_rate=0.1, b1=1.5), names=("adam", "b1")),
    "adam_b1_negative": Bad(gradtx.adam, dict(learning_rate=0.1, b1=-0.1), names=("adam", "b1")),
    "adam_b2_one": Bad(gradtx.adam, dict(learning_rate=0.1, b2=1.0), names=("adam", "b2")),
    "adam_eps_negative": Bad(
        gradtx.adam, dict(learning_rate=0.1, eps=-1e-8), names=("adam", "eps")
    ),
    "adam_eps_root_negative": Bad(
        gradtx.adam, dict(learning_rate=0.1, eps_root=-1.0), names=("adam", "eps_root")
    ),
    "adam_lr_nan": Bad(gradtx.adam, dict(learning_rate=NAN), names=("adam", "learning_rate")),
    "adam_lr_inf": Bad(gradtx.adam, dict(learning_rate=INF), names=("adam", "learning_rate")),
    "adam_lr_negative": Bad(gradtx.adam, dict(learning_rate=-0.1), names=("adam", "learning_rate")),
    # learning_rate is required: None would silently drop the sign flip and ascend
    "adam_lr_none": Bad(
        gradtx.adam, dict(learning_rate=None), TypeError, names=("adam", "learning_rate")
    ),
    "adam_lr_bool": Bad(
        gradtx.adam, dict(learning_rate=True), TypeError, names=("adam", "learning_rate")
    ),
    "adamw_weight_decay_negative": Bad(
        gradtx.adamw, dict(learning_rate=0.1, weight_decay=-1.0), names=("adamw", "weight_decay")
    ),
    # sgd: types and the momentum range
    "sgd_lr_string": Bad(
        gradtx.sgd, dict(learning_rate="0.1"), TypeError, names=("sgd", "learning_rate")
    ),
    "sgd_momentum_one": Bad(
        gradtx.sgd, dict(learning_rate=0.1, momentum=1.0), names=("sgd", "momentum")
    ),
    "sgd_nesterov_string": Bad(
        gradtx.sgd, dict(learning_rate=0.1, nesterov="yes"), TypeError, names=("sgd", "nesterov")
    ),
    "sgd_accumulator_dtype_int": Bad(
        gradtx.sgd,
        dict(learning_rate=0.1, accumulator_dtype="int8"),
        TypeError,
        names=("sgd", "accumulator_dtype"),
    ),
    # the other optimizers
    "rmsprop_decay_above_1": Bad(
        gradtx.rmsprop, dict(learning_rate=0.1, decay=1.2), names=("rmsprop", "decay")
    ),
    "rmsprop_initial_scale_negative": Bad(
        gradtx.rmsprop,
        dict(learning_rate=0.1, initial_scale=-1),
        names=("rmsprop", "initial_scale"),
    ),
    "rmsprop_momentum_one": Bad(
        gradtx.rmsprop, dict(learning_rate=0.1, momentum=1.0), names=("rmsprop", "momentum")
    ),
    "adagrad_initial_accumulator_negative": Bad(
        gradtx.adagrad,
        dict(learning_rate=0.1, initial_accumulator_value=-1),
        names=("adagrad", "initial_accumulator_value"),
    ),
    "adagrad_eps_in_sqrt_int": Bad(
        gradtx.adagrad,
        dict(learning_rate=0.1, eps_in_sqrt=1),
        TypeError,
        names=("adagrad", "eps_in_sqrt"),
    ),
    "adadelta_rho_one": Bad(gradtx.adadelta, dict(rho=1.0), names=("adadelta", "rho")),
    "lamb_eps_negative": Bad(gradtx.lamb, dict(learning_rate=0.1, eps=-1), names=("lamb", "eps")),
    "lars_trust_coefficient_zero": Bad(
        gradtx.lars,
        dict(learning_rate=0.1, trust_coefficient=0),
        names=("lars", "trust_coefficient"),
    ),
    "lars_momentum_negative": Bad(
        gradtx.lars, dict(learning_rate=0.1, momentum=-0.5), names=("lars", "momentum")
    ),
    # the elementary transformations
    "clip_zero": Bad(gradtx.clip, args=(0.0,), names=("clip", "max_delta")),
    "clip_negative": Bad(gradtx.clip, args=(-1.0,), names=("clip", "max_delta")),
    "clip_by_norm_zero": Bad(gradtx.clip_by_norm, args=(0.0,), names=("clip_by_norm", "max_norm")),
    "clip_by_global_norm_zero": Bad(
        gradtx.clip_by_global_norm, args=(0.0,), names=("clip_by_global_norm", "max_norm")
    ),
    "clip_by_global_norm_nan": Bad(
        gradtx.clip_by_global_norm, args=(NAN,), names=("clip_by_global_norm", "max_norm")
    ),
    "trace_decay_2": Bad(gradtx.trace, dict(decay=2.0), names=("trace", "decay")),
    "ema_decay_negative": Bad(gradtx.ema, dict(decay=-0.5), names=("ema", "decay")),
    "bias_correction_one": Bad(
        gradtx.bias_correction, args=(1.0,), names=("bias_correction", "decay")
    ),
    "scale_inf": Bad(gradtx.scale, args=(INF,), names=("scale", "step_size")),
    "scale_by_learning_rate_negative": Bad(
        gradtx.scale_by_learning_rate,
        args=(-1.0,),
        names=("scale_by_learning_rate", "learning_rate"),
    ),
    "add_decayed_weights_negative": Bad(
        gradtx.add_decayed_weights, args=(-1.0,), names=("add_decayed_weights", "weight_decay")
    ),
    "scale_by_trust_ratio_min_norm_negative": Bad(
        gradtx.scale_by_trust_ratio, dict(min_norm=-1.0), names=("scale_by_trust_ratio", "min_norm")
    ),
    "scale_by_rms_decay_one": Bad(
        gradtx.scale_by_rms, dict(decay=1.0), names=("scale_by_rms", "decay")
    ),
    "scale_by_stddev_eps_negative": Bad(
        gradtx.scale_by_stddev, dict(eps=-1.0), names=("scale_by_stddev", "eps")
    ),
    "scale_by_rss_initial_negative": Bad(
        gradtx.scale_by_rss,
        dict(initial_accumulator_value=-1.0),
        names=("scale_by_rss", "initial_accumulator_value"),
    ),
    "scale_by_adadelta_rho_negative": Bad(
        gradtx.scale_by_adadelta, dict(rho=-0.1), names=("scale_by_adadelta", "rho")
    ),
    "scale_by_adam_mu_dtype_int": Bad(
        gradtx.scale_by_adam, dict(mu_dtype="int32"), TypeError, names=("scale_by_adam", "mu_dtype")
    ),
    "scale_by_adam_mu_dtype_nonsense": Bad(
        gradtx.scale_by_adam,
        dict(mu_dtype="nonsense"),
        TypeError,
        names=("scale_by_adam", "mu_dtype"),
    ),
    # schedules and arrays as hyperparameters
    "adam_b1_schedule_out_of_range": Bad(
        gradtx.adam, dict(learning_rate=0.1, b1=_b1_out_of_range), names=("adam", "b1")
    ),
    "adam_b1_linear_schedule_out_of_range": Bad(
        gradtx.adam,
        dict(learning_rate=0.1, b1=gradtx.linear_schedule(1.5, 0.5, transition_steps=10)),
        names=("adam", "b1"),
    ),
    "adam_lr_schedule_not_scalar": Bad(
        gradtx.adam, dict(learning_rate=_vector_schedule), names=("adam", "learning_rate")
    ),
    "adam_b1_schedule_returns_none": Bad(
        gradtx.adam, dict(learning_rate=0.1, b1=_forgot_to_return), TypeError, names=("adam", "b1")
    ),
    "adam_lr_vector": Bad(
        gradtx.adam, dict(learning_rate=np.ones(3, np.float32)), names=("adam", "learning_rate")
    ),
    # the schedules themselves
    "linear_schedule_negative_steps": Bad(
        gradtx.linear_schedule,
        dict(init_value=1.0, end_value=0.0, transition_steps=-1),
        names=("linear_schedule", "transition_steps"),
    ),
    "cosine_decay_zero_steps": Bad(
        gradtx.cosine_decay_schedule,
        dict(init_value=1.0, decay_steps=0),
        names=("cosine_decay_schedule", "decay_steps"),
    ),
    "cosine_decay_alpha_nan": Bad(
        gradtx.cosine_decay_schedule,
        dict(init_value=1.0, decay_steps=10, alpha=NAN),
        names=("cosine_decay_schedule", "alpha"),
    ),
    # combinators
    "named_chain_duplicate_names": Bad(
        gradtx.named_chain,
        args=(("clip", gradtx.clip(1.0)), ("clip", gradtx.clip(2.0))),
        names=("named_chain", "clip"),
    ),
    "chain_not_a_transformation": Bad(
        gradtx.chain, args=(gradtx.identity(), object()), error=TypeError, names=("chain", "link 1")
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_argument_raises_naming_function_and_argument(case):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    missing = [name for name in case.names if not _names(message, name)]
    assert not missing, f"the message does not name {missing}: {message!r}"


def test_jax_array_hyperparameter_must_be_a_scalar():
    # not in the table, which is built at import: JAX arrays are made when the tests run
    with pytest.raises(ValueError) as info:
        gradtx.adam(learning_rate=jnp.ones(3))
    message = str(info.value)
    assert _names(message, "adam") and _names(message, "learning_rate"), message
    assert "(3,)" in message


# ---- set_hyperparams ---------------------------------------------------------------------


ADAM_NAMES = ("learning_rate", "b1", "b2", "eps", "eps_root")


def _adam_state():
    return gradtx.adam(1e-3).init({"w": jnp.zeros(3)})


@pytest.mark.parametrize(
    ("values", "error", "name"),
    [
        ({"b1": 1.5}, ValueError, "b1"),
        ({"learning_rate": NAN}, ValueError, "learning_rate"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"b2": np.float32(1.0)}, ValueError, "b2"),
        ({"learning_rate": "0.1"}, TypeError, "learning_rate"),
        ({"learning_rate": np.ones(3, np.float32)}, ValueError, "learning_rate"),
        ({"learning_rate": lambda count: 0.1}, TypeError, "learning_rate"),
    ],
    ids=["b1_above_1", "lr_nan", "lr_negative", "b2_one", "lr_string", "lr_vector", "schedule"],
)
def test_set_hyperparams_bad_value_names_function_and_argument(values, error, name):
    state = _adam_state()
    with pytest.raises(error) as info:
        gradtx.set_hyperparams(state, **values)
    message = str(info.value)
    assert _names(message, "set_hyperparams") and _names(message, name), message


def test_set_hyperparams_unknown_name_lists_the_available_names():
    with pytest.raises(ValueError) as info:
        gradtx.set_hyperparams(_adam_state(), lr=0.1)
    message = str(info.value)
    assert _names(message, "set_hyperparams") and "'lr'" in message, message
    missing = [name for name in ADAM_NAMES if f"'{name}'" not in message]
    assert not missing, f"available names {missing} not listed: {message!r}"


def test_set_hyperparams_failure_leaves_the_state_alone():
    state = _adam_state()
    with pytest.raises(ValueError):
        gradtx.set_hyperparams(state, learning_rate=0.5, b1=1.5)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == np.float32(1e-3)


# ---- tree mismatch at update -------------------------------------------------------------


def _params():
    return {
        "dense": {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.ones((2,), jnp.float32)},
        "out": jnp.ones((2,), jnp.float32),
    }


def _missing_out(p):
    return {"dense": p["dense"]}


def _extra_key(p):
    return {**p, "head": jnp.ones((4,), jnp.float32)}


def _wrong_shape(p):
    return {"dense": {"w": p["dense"]["w"], "b": jnp.ones((3,), jnp.float32)}, "out": p["out"]}


def _broadcastable(p):
    # (1,) where (2,) was initialised would broadcast silently in a plain tree_map
    return {"dense": {"w": p["dense"]["w"], "b": jnp.ones((1,), jnp.float32)}, "out": p["out"]}


# kind -> (gradients from params, the path the message must name)
MISMATCHES = {
    "missing_leaf": (_missing_out, "out"),
    "extra_leaf": (_extra_key, "head"),
    "wrong_shape": (_wrong_shape, "dense/b"),
    "broadcastable_shape": (_broadcastable, "dense/b"),
}

# name the user called -> factory
MISMATCH_OPTIMIZERS = {
    "adam": lambda: gradtx.adam(1e-3),
    "adamw": lambda: gradtx.adamw(1e-3),
    "sgd": lambda: gradtx.sgd(0.1),
    "sgd_momentum": lambda: gradtx.sgd(0.1, momentum=0.9),
    "rmsprop": lambda: gradtx.rmsprop(1e-3),
    "rmsprop_centered": lambda: gradtx.rmsprop(1e-3, centered=True, momentum=0.9),
    "adagrad": lambda: gradtx.adagrad(0.1),
    "adadelta": lambda: gradtx.adadelta(),
    "lamb": lambda: gradtx.lamb(1e-3),
    "lars": lambda: gradtx.lars(0.1),
    "clip_by_global_norm": lambda: gradtx.clip_by_global_norm(1.0),
}


# Stateless transformations keep no copy of the tree init saw, so they cannot tell a mismatch
# in update; the training step's apply_updates catches it, naming the paths, before any param
# changes. The others catch it in update and name the optimizer the user called.
STATELESS = {"sgd", "clip_by_global_norm"}


def _function_name(optimizer: str) -> str:
    if optimizer in STATELESS:
        return "apply_updates"
    return {"sgd_momentum": "sgd", "rmsprop_centered": "rmsprop"}.get(optimizer, optimizer)


def _mismatch_error(optimizer: str, kind: str, jit: bool) -> ValueError:
    tx = MISMATCH_OPTIMIZERS[optimizer]()
    params = _params()
    state = tx.init(params)
    grads = MISMATCHES[kind][0](params)

    def train_step(grads, state, params):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(train_step) if jit else train_step
    with pytest.raises(ValueError) as info:
        step(grads, state, params)
    return info.value


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kind", MISMATCHES)
@pytest.mark.parametrize("optimizer", MISMATCH_OPTIMIZERS)
def test_tree_mismatch_is_a_value_error_naming_the_path(optimizer, kind, jit):
    message = str(_mismatch_error(optimizer, kind, jit))
    path = MISMATCHES[kind][1]
    assert _names(message, path), f"the message does not name {path!r}: {message!r}"
    # a library message, not JAX's structure dump
    assert "PyTreeDef" not in message and "pytree structure error" not in message, message


@pytest.mark.parametrize("optimizer", MISMATCH_OPTIMIZERS)
def test_tree_mismatch_error_names_the_function_called(optimizer):
    name = _function_name(optimizer)
    wrong = {}
    for kind in MISMATCHES:
        message = str(_mismatch_error(optimizer, kind, jit=False))
        if not _names(message, name):
            wrong[kind] = message
    assert not wrong, f"{name}.update errors that do not name {name!r}: {wrong}"


def test_apply_updates_rejects_a_mismatch_naming_the_path():
    params = _params()
    for kind, (make, path) in MISMATCHES.items():
        with pytest.raises(ValueError) as info:
            gradtx.apply_updates(params, make(params))
        message = str(info.value)
        assert _names(message, "apply_updates") and _names(message, path), (kind, message)


NEED_PARAMS = {
    "add_decayed_weights": lambda: gradtx.add_decayed_weights(1e-4),
    "scale_by_trust_ratio": lambda: gradtx.scale_by_trust_ratio(),
    "lamb": lambda: gradtx.lamb(1e-3),
    "adamw": lambda: gradtx.adamw(1e-3),
    "lars": lambda: gradtx.lars(0.1),
}


def _no_params_error(name: str) -> ValueError:
    tx = NEED_PARAMS[name]()
    params = _params()
    with pytest.raises(ValueError) as info:
        tx.update(params, tx.init(params))
    return info.value


@pytest.mark.parametrize("name", NEED_PARAMS)
def test_update_without_params_says_params_are_needed(name):
    message = str(_no_params_error(name))
    assert _names(message, "params"), message


@pytest.mark.parametrize("name", NEED_PARAMS)
def test_update_without_params_names_the_function_called(name):
    message = str(_no_params_error(name))
    assert _names(message, name), f"does not name {name!r}: {message!r}"


# ---- valid edge values -------------------------------------------------------------------


# name -> (factory, kwargs (built at run time: some are JAX arrays), {hyperparameter: value})
GOOD = {
    "adam_b1_zero": (gradtx.adam, lambda: dict(learning_rate=0.1, b1=0.0), {"b1": 0.0}),
    "adam_eps_zero": (gradtx.adam, lambda: dict(learning_rate=0.1, eps=0.0), {"eps": 0.0}),
    "sgd_momentum_zero": (
        gradtx.sgd,
        lambda: dict(learning_rate=0.1, momentum=0.0),
        {"momentum": 0.0, "learning_rate": 0.1},
    ),
    "sgd_lr_zero": (gradtx.sgd, lambda: dict(learning_rate=0.0), {"learning_rate": 0.0}),
    "sgd_lr_int": (gradtx.sgd, lambda: dict(learning_rate=1), {"learning_rate": 1.0}),
    "adam_lr_int": (gradtx.adam, lambda: dict(learning_rate=1), {"learning_rate": 1.0}),
    "adam_jnp_float32": (
        gradtx.adam,
        lambda: dict(learning_rate=jnp.float32(0.1), b1=jnp.float32(0.9)),
        {"learning_rate": 0.1, "b1": 0.9},
    ),
    "adam_np_float32": (
        gradtx.adam,
        lambda: dict(learning_rate=np.float32(0.1)),
        {"learning_rate": 0.1},
    ),
    "adam_np_float64": (
        gradtx.adam,
        lambda: dict(learning_rate=np.float64(0.1), b2=np.float64(0.99)),
        {"learning_rate": 0.1, "b2": 0.99},
    ),
    "adam_jnp_int_array": (
        gradtx.adam,
        lambda: dict(learning_rate=jnp.asarray(1, jnp.int32)),
        {"learning_rate": 1.0},
    ),
    "sgd_np_bool_flag": (
        gradtx.sgd,
        lambda: dict(learning_rate=0.1, momentum=0.9, nesterov=np.bool_(True)),
        {"momentum": 0.9},
    ),
    "rmsprop_initial_scale_int": (
        gradtx.rmsprop,
        lambda: dict(learning_rate=0.1, initial_scale=1),
        {"learning_rate": 0.1},
    ),
    "adagrad_initial_accumulator_zero": (
        gradtx.adagrad,
        lambda: dict(learning_rate=0.1, initial_accumulator_value=0.0),
        {"learning_rate": 0.1},
    ),
    "lars_tiny_trust_coefficient": (
        gradtx.lars,
        lambda: dict(learning_rate=0.1, trust_coefficient=1e-12),
        {"trust_coefficient": 1e-12},
    ),
    "adam_b1_schedule_in_range": (
        gradtx.adam,
        lambda: dict(learning_rate=0.1, b1=gradtx.linear_schedule(0.0, 0.9, transition_steps=10)),
        {"b1": 0.0},
    ),
    "clip_tiny": (gradtx.clip, lambda: dict(max_delta=1e-30), {"max_delta": 1e-30}),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", GOOD)
def test_valid_edge_value_is_accepted(case, jit):
    factory, kwargs, expected = GOOD[case]
    tx = factory(**kwargs())
    params = {"w": jnp.asarray([1.0, -2.0, 3.0], jnp.float32)}
    grads = {"w": jnp.asarray([0.5, -0.25, 1.0], jnp.float32)}
    state = tx.init(params)
    values = gradtx.hyperparams(state)
    for name, value in expected.items():
        assert values[name].dtype == jnp.float32
        assert float(values[name]) == float(np.float32(value)), (name, values[name])
    update = jax.jit(tx.update) if jit else tx.update
    updates, state = update(grads, state, params)
    updates, state = update(grads, state, params)
    assert updates["w"].dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(updates["w"])))


def test_int_learning_rate_gives_the_float_step():
    tx = gradtx.sgd(learning_rate=1)
    grads = {"w": jnp.asarray([0.5, -0.25], jnp.float32)}
    updates, _ = tx.update(grads, tx.init(grads))
    np.testing.assert_array_equal(updates["w"], np.asarray([-0.5, 0.25], np.float32))


def test_zero_momentum_is_plain_sgd():
    grads = {"w": jnp.asarray([0.5, -0.25], jnp.float32)}
    plain, heavy = gradtx.sgd(0.1), gradtx.sgd(0.1, momentum=0.0)
    plain_state, heavy_state = plain.init(grads), heavy.init(grads)
    for _ in range(3):
        expected, plain_state = plain.update(grads, plain_state)
        got, heavy_state = heavy.update(grads, heavy_state)
        np.testing.assert_array_equal(got["w"], expected["w"])


def test_nan_and_inf_are_rejected_as_numpy_scalars_too():
    for value in (np.float64(math.nan), np.float32(math.inf)):
        with pytest.raises(ValueError) as info:
            gradtx.adam(learning_rate=value)
        assert _names(str(info.value), "learning_rate"), str(info.value)
