"""Rows of PSGD Kron (gradtx/_optimizers/psgd.py, gradtx/_transforms/psgd.py) in the shared
test tables.

On the shared test tree kron fits triangular factors to the (4, 3) and (2, 2) matrices,
diagonal ones to the vectors, a number to the scalar, and passes the (0, 3) leaf a zero update.
Its probes are drawn with jax.random from its key; the NumPy reference draws the same ones
(tests/reference/numpy_psgd.py), so both are deterministic and compared to 1e-10 (float64) and
1e-5 (float32). The rows cover the refit counter (p = 1 and p = 0.5 with a schedule), the
random refit (``deterministic_update=False``), the diagonal modes and the gradient fit. Kron
has no complex form: every row is in REAL_ONLY. psgd-jax's own trajectories: tests/test_psgd.py.
"""

from __future__ import annotations

import dataclasses

import gradtx
from tests.cases import Bad, Case, Sched
from tests.reference import numpy_psgd

REFERENCES = dict(numpy_psgd.REFERENCES)


@dataclasses.dataclass(frozen=True)
class ProbSched(Sched):
    """:func:`gradtx.precond_update_prob_schedule` with ``args``, and its NumPy twin."""

    def for_gradtx(self):
        return gradtx.precond_update_prob_schedule(*self.args)

    def for_numpy(self):
        return numpy_psgd.precond_update_prob_schedule(*self.args)


OPTIMIZERS = [
    Case("kron", "kron", {"learning_rate": 0.01}),
    Case(
        "kron_annealed_decay_one_diag",
        "kron",
        {
            "learning_rate": Sched("linear_schedule", (0.02, 0.005, 80)),
            "b1": 0.5,
            "weight_decay": 0.1,
            # p = 1 for 20 updates, then down to 0.4: refits become a counter's every 2nd, 3rd
            "preconditioner_update_probability": ProbSched("", (1.0, 0.4, 0.02, 20)),
            "memory_save_mode": "one_diag",
            "preconditioner_lr": 0.3,
            "preconditioner_init_scale": 2.0,
        },
    ),
    Case(
        "kron_random_refit_gradient_fit",
        "kron",
        {
            "learning_rate": 0.01,
            "preconditioner_update_probability": 0.5,
            "deterministic_update": False,
            "momentum_into_precond_update": False,
            "max_size_triangular": 3,
            "max_rms": None,
            "key": 3,
        },
    ),
]

ELEMENTARY = [
    Case(
        "scale_by_kron_all_diag",
        "scale_by_kron",
        {"memory_save_mode": "all_diag", "b1": 0.0, "preconditioner_update_probability": 0.5},
    ),
]

REAL_ONLY = [case.id for case in OPTIMIZERS + ELEMENTARY]

PROPERTIES = {"kron": (lambda: gradtx.kron(0.01), "kron")}
PROPERTIES_REAL_ONLY = ["kron"]
PROPERTIES_NO_COMPLEX_FORM = {"kron": "kron has no complex form"}

HYPERPARAM_KEYS = {
    "kron": (
        gradtx.kron(0.1),
        {
            "learning_rate",
            "b1",
            "weight_decay",
            "preconditioner_update_probability",
            "preconditioner_lr",
            "preconditioner_init_scale",
            "max_rms",
        },
    ),
}

BAD = {
    "kron_lr_string": Bad(
        gradtx.kron, dict(learning_rate="0.1"), TypeError, ("kron", "learning_rate")
    ),
    "kron_b1_one": Bad(gradtx.kron, dict(b1=1.0), names=("kron", "b1")),
    "kron_probability_above_one": Bad(
        gradtx.kron,
        dict(preconditioner_update_probability=1.5),
        names=("kron", "preconditioner_update_probability"),
    ),
    "kron_memory_save_mode_unknown": Bad(
        gradtx.kron, dict(memory_save_mode="some_diag"), names=("kron", "memory_save_mode")
    ),
    "kron_max_size_float": Bad(
        gradtx.kron, dict(max_size_triangular=8.0), TypeError, ("kron", "max_size_triangular")
    ),
    "kron_key_string": Bad(gradtx.kron, dict(key="seed"), TypeError, ("kron", "key")),
    "kron_precision_unknown": Bad(
        gradtx.kron, dict(precond_update_precision="fast"), names=("kron", "precision")
    ),
    "scale_by_kron_init_scale_zero": Bad(
        gradtx.scale_by_kron,
        dict(preconditioner_init_scale=0.0),
        names=("scale_by_kron", "preconditioner_init_scale"),
    ),
    "scale_by_kron_lr_negative": Bad(
        gradtx.scale_by_kron,
        dict(preconditioner_lr=-0.1),
        names=("scale_by_kron", "preconditioner_lr"),
    ),
    "scale_by_kron_max_rms_zero": Bad(
        gradtx.scale_by_kron, dict(max_rms=0.0), names=("scale_by_kron", "max_rms")
    ),
    "scale_by_kron_flag_string": Bad(
        gradtx.scale_by_kron,
        dict(deterministic_update="yes"),
        TypeError,
        ("scale_by_kron", "deterministic_update"),
    ),
    "precond_update_prob_schedule_min_above_max": Bad(
        gradtx.precond_update_prob_schedule,
        dict(max_prob=0.5, min_prob=0.6),
        names=("precond_update_prob_schedule", "min_prob"),
    ),
    "precond_update_prob_schedule_flat_start_float": Bad(
        gradtx.precond_update_prob_schedule,
        dict(flat_start=5.0),
        TypeError,
        ("precond_update_prob_schedule", "flat_start"),
    ),
    "precond_update_prob_schedule_decay_string": Bad(
        gradtx.precond_update_prob_schedule,
        dict(decay="0.1"),
        TypeError,
        ("precond_update_prob_schedule", "decay"),
    ),
}

TRANSFORMATIONS = {
    "kron": lambda: gradtx.kron(0.01),
    "scale_by_kron": lambda: gradtx.scale_by_kron(),
}

# issue 14's rows: 50 steps, eager in float32 only (tests/test_reference.py)
HEAVY = [case.id for case in OPTIMIZERS + ELEMENTARY]
