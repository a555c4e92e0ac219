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


def _optax_adam_state():
    import optax  # a test dependency, not gradtx's

    return optax.adam(0.1).init({"w": jnp.ones(2)})


BAD.update(
    {
        "from_optax_state_not_a_transformation": Bad(
            gradtx.from_optax_state,
            args=("adam", (), {"w": 1.0}),
            error=TypeError,
            names=("from_optax_state", "tx"),
        ),
        "from_optax_state_other_algorithm": Bad(
            gradtx.from_optax_state,
            late=lambda: (
                (gradtx.sgd(0.1), _optax_adam_state(), {"w": jnp.ones(2)}),
                {},
            ),
            names=("from_optax_state", "mu"),
        ),
        "to_optax_state_not_a_transformation": Bad(
            gradtx.to_optax_state,
            args=(3, (), {"w": 1.0}),
            error=TypeError,
            names=("to_optax_state", "optax_tx"),
        ),
        "to_optax_state_other_algorithm": Bad(
            gradtx.to_optax_state,
            late=lambda: (
                (gradtx.sgd(0.1), gradtx.adam(0.1).init({"w": jnp.ones(2)}), {"w": jnp.ones(2)}),
                {},
            ),
            names=("to_optax_state",),
        ),
    }
)

BAD.update(
    {
        "tree_map_params_not_initable": Bad(
            gradtx.tree_map_params,
            late=lambda: ((3, lambda x: x, gradtx.adam(0.1).init({"w": jnp.ones(2)})), {}),
            error=TypeError,
            names=("tree_map_params", "initable"),
        ),
        "tree_map_params_state_of_another_optimizer": Bad(
            gradtx.tree_map_params,
            late=lambda: (
                (gradtx.adam(0.1), lambda x: x, gradtx.sgd(0.1, 0.9).init({"w": jnp.ones(2)})),
                {},
            ),
            names=("tree_map_params", "state"),
        ),
    }
)

NO_ARGUMENTS = {
    "StatefulSchedule": "a protocol (optax's name for it): isinstance checks, not calls",
}
BAD["as_optax_not_a_pair"] = Bad(
    gradtx.as_optax, args=(gradtx.adam,), error=TypeError, names=("as_optax", "tx")
)

NO_RANGE = {
    "WrappedSchedule": "any function of the step count",
    "as_optax": "only a transformation",
}
