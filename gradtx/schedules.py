"""optax.schedules' names, for code written against optax: ``from gradtx import schedules``.

A thin namespace: each name is gradtx's own (``gradtx.schedules.cosine_decay_schedule is
gradtx.cosine_decay_schedule``); the code lives in ``gradtx/_schedules``.
"""

from gradtx._core.hyper import Schedule as Schedule
from gradtx._interop.inject import InjectHyperparamsState as InjectHyperparamsState
from gradtx._interop.inject import InjectStatefulHyperparamsState as InjectStatefulHyperparamsState
from gradtx._interop.inject import StatefulSchedule as StatefulSchedule
from gradtx._interop.inject import WrappedSchedule as WrappedSchedule
from gradtx._interop.inject import inject_hyperparams as inject_hyperparams
from gradtx._interop.inject import inject_stateful_hyperparams as inject_stateful_hyperparams
from gradtx._schedules.basic import constant_schedule as constant_schedule
from gradtx._schedules.basic import cosine_decay_schedule as cosine_decay_schedule
from gradtx._schedules.basic import exponential_decay as exponential_decay
from gradtx._schedules.basic import join_schedules as join_schedules
from gradtx._schedules.basic import linear_schedule as linear_schedule
from gradtx._schedules.basic import piecewise_constant_schedule as piecewise_constant_schedule
from gradtx._schedules.basic import polynomial_schedule as polynomial_schedule
from gradtx._schedules.cyclic import sgdr_schedule as sgdr_schedule
from gradtx._schedules.piecewise import cosine_onecycle_schedule as cosine_onecycle_schedule
from gradtx._schedules.piecewise import linear_onecycle_schedule as linear_onecycle_schedule
from gradtx._schedules.piecewise import (
    piecewise_interpolate_schedule as piecewise_interpolate_schedule,
)
from gradtx._schedules.warmup import warmup_constant_schedule as warmup_constant_schedule
from gradtx._schedules.warmup import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from gradtx._schedules.warmup import (
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
)

__all__ = [
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "Schedule",
    "StatefulSchedule",
    "WrappedSchedule",
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
