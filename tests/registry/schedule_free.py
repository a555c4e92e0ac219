"""Rows of schedule-free learning (gradtx/_wrappers/schedule_free.py,
gradtx/_optimizers/schedule_free.py) in the shared test tables.

The references disagree on warmup only: the paper and the authors' code (the schedulefree
package, tests/test_schedule_free.py) take the rate γ min(1, t / T) at step t = 1, 2, ... both
for z's step and for the average's weights, as gradtx's ``warmup_steps`` does; optax's
aliases give their base optimizer the same schedule one step behind (0 at the first update).
The ``schedule_free_optax_warmup`` row reproduces optax's with the wrapper and a schedule
shifted by one step; optax's aliases without warmup are compared directly.

The wrapper's rows build their base transformation on each side (:class:`Sides`). The
evaluation params x, the live b1 and the sharded state are tested in
tests/test_schedule_free.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

import gradtx
from tests.cases import Bad, Case, Sched, references
from tests.reference import numpy_reference as R
from tests.reference import numpy_schedule_free
from tests.reference.schedules_reference import warmup_constant_schedule as np_warmup

REFERENCES = dict(numpy_schedule_free.REFERENCES)

LR = 0.05
WARMUP = 8


@dataclasses.dataclass(frozen=True)
class Sides:
    """An argument built for each side: gradtx, the NumPy reference, optax."""

    gradtx: Callable[[], Any]
    numpy: Callable[[], Any]
    optax: Callable[[], Any] | None = None


def _pick(kwargs: dict, side: str) -> dict:
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, Sides):
            v = getattr(v, side)()
        elif isinstance(v, Sched):
            v = v.for_gradtx() if side == "gradtx" else v.for_numpy()
        out[k] = v
    return out


@dataclasses.dataclass(frozen=True)
class ScheduleFreeCase(Case):
    """A :class:`Case` whose arguments may be :class:`Sides`, and whose optax counterpart is
    ``optax.contrib.<name>``."""

    def gradtx(self):
        return getattr(gradtx, self.name)(**_pick(self.kwargs, "gradtx"))

    def reference(self):
        return references()[self.name](**_pick(self.kwargs, "numpy"))

    def optax_transformation(self):
        import optax.contrib

        return getattr(optax.contrib, self.name)(**_pick(self.optax, "optax"))


def _optax_warmup(count):
    """optax's warmup_constant_schedule(0, LR, WARMUP) in the default float dtype (optax's own
    is float32 whatever the x64 flag: 4e-8 off in float64)."""
    return LR * jnp.clip(jnp.asarray(count, float) / WARMUP, 0, 1)


def _optax_sgd():
    import optax

    return optax.sgd(_optax_warmup)


def _optax_warmup_sides() -> tuple[Sides, Sides]:
    """The base SGD of optax's schedule_free_sgd(LR, warmup_steps=WARMUP) and its wrapper's
    learning rate, one step ahead of the base's: for gradtx, NumPy and optax (whose alias is
    this wrapper around ``optax.sgd`` with the schedule given to both)."""
    base = Sides(
        gradtx=lambda: gradtx.sgd(gradtx.warmup_constant_schedule(0.0, LR, WARMUP)),
        numpy=lambda: R.sgd(np_warmup(0.0, LR, WARMUP)),
        optax=_optax_sgd,
    )
    ahead = Sides(
        gradtx=lambda: lambda c: gradtx.warmup_constant_schedule(0.0, LR, WARMUP)(c + 1),
        numpy=lambda: lambda c: np_warmup(0.0, LR, WARMUP)(c + 1),
        optax=lambda: _optax_warmup,
    )
    return base, ahead


_BASE, _AHEAD = _optax_warmup_sides()

OPTIMIZERS = [
    ScheduleFreeCase(
        "schedule_free_sgd",
        "schedule_free_sgd",
        {"learning_rate": LR, "weight_decay": 0.1},
        optax={"learning_rate": LR, "weight_decay": 0.1},
    ),
    ScheduleFreeCase(
        "schedule_free_adamw",
        "schedule_free_adamw",
        {"learning_rate": LR, "b1": 0.95, "b2": 0.99, "weight_decay": 0.1},
        optax={"learning_rate": LR, "b1": 0.95, "b2": 0.99, "weight_decay": 0.1},
    ),
    # the paper's warmup, a scheduled b1 (x recovered with the b1 that formed y), r = 1
    ScheduleFreeCase(
        "schedule_free_adamw_warmup_b1_scheduled",
        "schedule_free_adamw",
        {
            "learning_rate": LR,
            "warmup_steps": WARMUP,
            "b1": Sched("linear_schedule", (0.9, 0.5, 60)),
            "weight_lr_power": 1.0,
            "eps": 1e-3,
        },
    ),
    # the wrapper around gradtx's SGD: optax's schedule_free_sgd with warmup (its wrapper's
    # learning rate one step ahead of its base's)
    ScheduleFreeCase(
        "schedule_free_optax_warmup",
        "schedule_free",
        {"base_optimizer": _BASE, "learning_rate": _AHEAD},
        optax={"base_optimizer": _BASE, "learning_rate": _AHEAD},
    ),
]


# optax recovers x by dividing by b1 and forms its update as the difference of two params: in
# float32 its trajectories are 5e-6 to 1e-5 off the exact ones, gradtx's 1e-6
# (tests/test_schedule_free.py shows gradtx is the closer one)
OPTAX_OWN_F32_ERROR = ["schedule_free_sgd", "schedule_free_adamw", "schedule_free_optax_warmup"]

# linear in the params and gradients: the complex form is the real problem on (re, im) pairs
COMPLEX_PAIR_IDS = ["schedule_free_sgd"]

PROPERTIES = {
    "schedule_free_sgd": (
        lambda: gradtx.schedule_free_sgd(0.1, warmup_steps=3, weight_decay=0.01),
        "schedule_free_sgd",
    ),
    "schedule_free_adamw": (
        lambda: gradtx.schedule_free_adamw(0.01, weight_decay=0.01, state_dtype=jnp.float32),
        "schedule_free_adamw",
    ),
    "schedule_free": (
        lambda: gradtx.schedule_free(gradtx.adam(0.01, b1=0.0), 0.01, b1=0.95),
        "schedule_free",
    ),
}

_SF_KEYS = {"learning_rate", "b1", "weight_lr_power"}
HYPERPARAM_KEYS = {
    "schedule_free_sgd": (
        gradtx.schedule_free_sgd(0.1, weight_decay=0.01),
        _SF_KEYS | {"weight_decay"},
    ),
    "schedule_free_adamw": (
        gradtx.schedule_free_adamw(0.1),
        _SF_KEYS | {"b2", "eps", "weight_decay"},
    ),
    # the base optimizer's hyperparameters, live in the nested state, qualified where they
    # share a name with the wrapper's
    "schedule_free": (
        gradtx.schedule_free(gradtx.sgd(0.1), 0.1),
        _SF_KEYS | {"base_optimizer_state/learning_rate"},
    ),
}

GOOD = {
    "schedule_free_sgd_b1_one": (
        gradtx.schedule_free_sgd,
        lambda: dict(learning_rate=0.1, b1=1.0),
        {"b1": 1.0},
    ),
    "schedule_free_adamw_uniform_average": (
        gradtx.schedule_free_adamw,
        lambda: dict(learning_rate=0.1, weight_lr_power=0.0),
        {"weight_lr_power": 0.0},
    ),
    "schedule_free_warmup_from_zero": (
        gradtx.schedule_free,
        lambda: dict(base_optimizer=gradtx.sgd(0.1), learning_rate=0.0),
        {"learning_rate": 0.0},
    ),
}


BAD = {
    "schedule_free_base_string": Bad(
        gradtx.schedule_free,
        dict(base_optimizer="sgd", learning_rate=0.1),
        TypeError,
        ("schedule_free", "base_optimizer"),
    ),
    "schedule_free_b1_zero": Bad(
        gradtx.schedule_free,
        dict(base_optimizer=gradtx.sgd(0.1), learning_rate=0.1, b1=0.0),
        names=("schedule_free", "b1"),
    ),
    "schedule_free_power_negative": Bad(
        gradtx.schedule_free,
        dict(base_optimizer=gradtx.sgd(0.1), learning_rate=0.1, weight_lr_power=-1.0),
        names=("schedule_free", "weight_lr_power"),
    ),
    "schedule_free_state_dtype_int": Bad(
        gradtx.schedule_free,
        dict(base_optimizer=gradtx.sgd(0.1), learning_rate=0.1, state_dtype="int32"),
        TypeError,
        ("schedule_free", "state_dtype"),
    ),
    "schedule_free_sgd_lr_negative": Bad(
        gradtx.schedule_free_sgd,
        dict(learning_rate=-0.1),
        names=("schedule_free_sgd", "learning_rate"),
    ),
    "schedule_free_sgd_b1_above_one": Bad(
        gradtx.schedule_free_sgd, dict(b1=1.5), names=("schedule_free_sgd", "b1")
    ),
    "schedule_free_sgd_warmup_zero": Bad(
        gradtx.schedule_free_sgd, dict(warmup_steps=0), names=("schedule_free_sgd", "warmup_steps")
    ),
    "schedule_free_sgd_warmup_float": Bad(
        gradtx.schedule_free_sgd,
        dict(warmup_steps=10.0),
        TypeError,
        ("schedule_free_sgd", "warmup_steps"),
    ),
    "schedule_free_sgd_decay_string": Bad(
        gradtx.schedule_free_sgd,
        dict(weight_decay="0.1"),
        TypeError,
        ("schedule_free_sgd", "weight_decay"),
    ),
    "schedule_free_adamw_b2_one": Bad(
        gradtx.schedule_free_adamw, dict(b2=1.0), names=("schedule_free_adamw", "b2")
    ),
    "schedule_free_adamw_eps_string": Bad(
        gradtx.schedule_free_adamw, dict(eps="1e-8"), TypeError, ("schedule_free_adamw", "eps")
    ),
    "schedule_free_adamw_b1_zero": Bad(
        gradtx.schedule_free_adamw, dict(b1=0.0), names=("schedule_free_adamw", "b1")
    ),
    "schedule_free_eval_params_no_state": Bad(
        gradtx.schedule_free_eval_params,
        dict(state=gradtx.sgd(0.1).init({"w": np.zeros(3, np.float32)}), params={}),
        names=("schedule_free_eval_params", "schedule-free state"),
    ),
    "schedule_free_eval_params_wrong_params": Bad(
        gradtx.schedule_free_eval_params,
        dict(params={"v": np.zeros(3, np.float32)}),
        names=("schedule_free_eval_params", "params"),
        late=lambda: (
            (),
            {"state": gradtx.schedule_free_sgd().init({"w": np.zeros(3, np.float32)})},
        ),
    ),
}

NO_WRONG_TYPE = {
    "schedule_free_eval_params": (
        "any object is a pytree: a state without schedule_free is a ValueError, params not "
        "shaped like its z another"
    ),
}

TRANSFORMATIONS = {
    "schedule_free_sgd": lambda: gradtx.schedule_free_sgd(0.1),
    "schedule_free_adamw": lambda: gradtx.schedule_free_adamw(0.1),
    "schedule_free": lambda: gradtx.schedule_free(gradtx.sgd(0.1), 0.1),
}
READS_PARAMS = {"schedule_free_sgd", "schedule_free_adamw", "schedule_free"}
NEED_PARAMS = dict(TRANSFORMATIONS)
