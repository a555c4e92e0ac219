"""optax's interfaces over gradtx: ``inject_hyperparams`` and its schedules (rows of the
validation tables; the behaviour is tested in ``tests/test_inject.py``)."""

from __future__ import annotations

import jax.numpy as jnp

import gradtx
from tests.cases import Bad

BAD = {
    "inject_hyperparams_not_a_factory": Bad(
        gradtx.inject_hyperparams, args=(3,), error=TypeError, names=("inject_hyperparams",)
    ),
    "inject_hyperparams_static_args_int": Bad(
        gradtx.inject_hyperparams,
        args=(gradtx.adam, 3),
        error=TypeError,
        names=("inject_hyperparams", "static_args"),
    ),
    "inject_hyperparams_unknown_static_arg": Bad(
        gradtx.inject_hyperparams,
        args=(gradtx.adam, "momentum"),
        names=("inject_hyperparams", "static_args", "momentum"),
    ),
    "inject_hyperparams_integer_dtype": Bad(
        gradtx.inject_hyperparams,
        args=(gradtx.adam,),
        kwargs=dict(hyperparam_dtype=jnp.int32),
        names=("inject_hyperparams", "hyperparam_dtype"),
    ),
    "inject_stateful_hyperparams_not_a_factory": Bad(
        gradtx.inject_stateful_hyperparams,
        args=("adam",),
        error=TypeError,
        names=("inject_hyperparams",),
    ),
    "inject_stateful_hyperparams_unknown_static_arg": Bad(
        gradtx.inject_stateful_hyperparams,
        args=(gradtx.sgd, "b1"),
        names=("inject_hyperparams", "static_args", "b1"),
    ),
    "wrapped_schedule_not_callable": Bad(
        gradtx.WrappedSchedule, args=(0.1,), error=TypeError, names=("WrappedSchedule",)
    ),
}

NO_ARGUMENTS = {
    "StatefulSchedule": "a protocol (optax's name for it): isinstance checks, not calls",
}
NO_RANGE = {
    "WrappedSchedule": "any function of the step count",
}
