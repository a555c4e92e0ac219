"""Rows of Shampoo (gradtx/_optimizers/shampoo.py) and its pair scale_by_shampoo
(gradtx/_transforms/kronecker.py) in the shared test tables, and the optax-shampoo rows of
tests/test_shampoo.py.

On the shared test tree ((3,), (4, 3), (2, 2), (), (5,), (0, 3)) the default shape
interpretation merges each matrix into a vector (4 * 3 <= 4096): full-matrix AdaGrad per
block; the rows with ``best_effort_shape_interpretation=False`` keep the (4, 3) and (2, 2)
leaves as matrices (two statistics, exponent 4), ``block_size`` 2 or 3 cuts them into blocks
of two shapes, and the scalar and the empty leaf take the graft's step. The float32 rows are
compared at the 1e-4 of iterative matrix functions (ITERATIVE): an inverse root multiplies an
input's rounding along the statistics' smallest eigenvalues by up to ``matrix_epsilon^(-1/p)``
(measured: 2e-6 to 1.1e-5 on these rows, 1e-15 in float64).
"""

from __future__ import annotations

import numpy as np

import gradtx
from tests.cases import Bad, Case, Sched
from tests.reference import numpy_shampoo
from tests.reference.optax_shampoo import ShampooRow

LR = 0.02

REFERENCES = dict(numpy_shampoo.REFERENCES)

OPTIMIZERS = [
    # the reference's defaults: SGD graft, Nesterov, preconditioning from the sixth step
    Case("shampoo", "shampoo", {"learning_rate": LR}),
    # matrices kept, cut into blocks; the RMSProp graft clipped by its RMS; coupled decay
    Case(
        "shampoo_blocks_rmsprop_decay",
        "shampoo",
        {
            "learning_rate": LR,
            "block_size": 2,
            "best_effort_shape_interpretation": False,
            "graft_type": "rmsprop",
            "clip_by_scaled_gradient_norm": 0.5,
            "weight_decay": 0.1,
        },
    ),
    # the Adam graft, decoupled decay, plain momentum as an EMA
    Case(
        "shampoo_adam_decoupled",
        "shampoo",
        {
            "learning_rate": LR,
            "block_size": 3,
            "best_effort_shape_interpretation": False,
            "graft_type": "adam",
            "weight_decay": 0.1,
            "decoupled_weight_decay": True,
            "nesterov": False,
            "moving_average_for_momentum": True,
        },
    ),
    # statistics every 2 steps, roots every 3, Shampoo from the first step, p = 8
    Case(
        "shampoo_intervals_adagrad",
        "shampoo",
        {
            "learning_rate": LR,
            "graft_type": "adagrad_normalized",
            "statistics_compute_steps": 2,
            "preconditioning_compute_steps": 3,
            "start_preconditioning_step": 0,
            "exponent_override": 8,
            "matrix_epsilon": 1e-4,
        },
    ),
    # the paper's Algorithm 1: sums (beta2 = 1), no grafting, no momentum, an absolute ridge
    Case(
        "shampoo_paper",
        "shampoo",
        {
            "learning_rate": LR,
            "beta1": 0.0,
            "beta2": 1.0,
            "graft_type": "none",
            "start_preconditioning_step": 0,
            "best_effort_shape_interpretation": False,
            "matrix_epsilon": 1e-3,
            "relative_matrix_epsilon": False,
        },
    ),
    # the diagonal fallback: (4, 3) and (5,) above skip_preconditioning_dim_size_gt, vectors
    # below skip_preconditioning_rank_lt; the sign graft
    Case(
        "shampoo_sqrt_n_diagonal",
        "shampoo",
        {
            "learning_rate": LR,
            "graft_type": "sqrt_n",
            "skip_preconditioning_dim_size_gt": 4,
            "skip_preconditioning_rank_lt": 2,
        },
    ),
    # live schedules of the learning rate and the momentum; the AdaGrad graft
    Case(
        "shampoo_scheduled",
        "shampoo",
        {
            "learning_rate": Sched("linear_schedule", (0.05, 0.01, 60)),
            "beta1": Sched("linear_schedule", (0.5, 0.9, 40)),
            "beta2": 0.99,
            "graft_type": "adagrad",
            "block_size": 4,
        },
    ),
]

ELEMENTARY = [
    # the pair alone: coupled decay (it reads the params), the normalized RMSProp graft
    Case(
        "scale_by_shampoo",
        "scale_by_shampoo",
        {"block_size": 2, "weight_decay": 0.01, "beta1": 0.5, "graft_type": "rmsprop_normalized"},
    ),
]

ITERATIVE = [case.id for case in OPTIMIZERS + ELEMENTARY]

PROPERTIES = {
    "shampoo": (
        lambda: gradtx.shampoo(LR, block_size=2, start_preconditioning_step=0),
        "shampoo",
    ),
}

# The inverse root of a statistic with eigenvalues from lambda_max down to its ridge
# matrix_epsilon * lambda_max multiplies a rounding-size component along the smallest by up to
# matrix_epsilon^(-1/p) = 1e3 (p = 2, a vector) relative to the largest.
AMPLIFICATION = {"shampoo": 1e3}

_SHAMPOO_KEYS = {
    "learning_rate",
    "beta1",
    "beta2",
    "diagonal_epsilon",
    "matrix_epsilon",
    "weight_decay",
    "inverse_failure_threshold",
}
HYPERPARAM_KEYS = {
    "shampoo": (gradtx.shampoo(0.1), _SHAMPOO_KEYS),
    "shampoo_clip": (
        gradtx.shampoo(0.1, graft_type="rmsprop", clip_by_scaled_gradient_norm=1.0),
        _SHAMPOO_KEYS | {"clip_by_scaled_gradient_norm"},
    ),
}

BAD = {
    "shampoo_lr_string": Bad(
        gradtx.shampoo, dict(learning_rate="0.1"), TypeError, ("shampoo", "learning_rate")
    ),
    "shampoo_beta1_one": Bad(
        gradtx.shampoo, dict(learning_rate=0.1, beta1=1.0), names=("shampoo", "beta1")
    ),
    "shampoo_beta2_above_one": Bad(
        gradtx.shampoo, dict(learning_rate=0.1, beta2=1.5), names=("shampoo", "beta2")
    ),
    "shampoo_matrix_epsilon_negative": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, matrix_epsilon=-1e-6),
        names=("shampoo", "matrix_epsilon"),
    ),
    "shampoo_block_size_float": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, block_size=128.0),
        TypeError,
        ("shampoo", "block_size"),
    ),
    "shampoo_block_size_negative": Bad(
        gradtx.shampoo, dict(learning_rate=0.1, block_size=-1), names=("shampoo", "block_size")
    ),
    "shampoo_graft_unknown": Bad(
        gradtx.shampoo, dict(learning_rate=0.1, graft_type="lamb"), names=("shampoo", "graft_type")
    ),
    "shampoo_graft_code_out_of_range": Bad(
        gradtx.shampoo, dict(learning_rate=0.1, graft_type=7), names=("shampoo", "graft_type")
    ),
    "shampoo_graft_float": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, graft_type=1.0),
        TypeError,
        ("shampoo", "graft_type"),
    ),
    "shampoo_compute_steps_zero": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, preconditioning_compute_steps=0),
        names=("shampoo", "preconditioning_compute_steps"),
    ),
    "shampoo_root_method_unknown": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, root_method="svd"),
        names=("shampoo", "root_method"),
    ),
    "shampoo_decoupled_string": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, decoupled_weight_decay="yes"),
        TypeError,
        ("shampoo", "decoupled_weight_decay"),
    ),
    "shampoo_precision_int": Bad(
        gradtx.shampoo, dict(learning_rate=0.1, precision=3), TypeError, ("shampoo", "precision")
    ),
    "shampoo_threshold_zero": Bad(
        gradtx.shampoo,
        dict(learning_rate=0.1, inverse_failure_threshold=0.0),
        names=("shampoo", "inverse_failure_threshold"),
    ),
    "scale_by_shampoo_beta2_string": Bad(
        gradtx.scale_by_shampoo, dict(beta2="0.999"), TypeError, ("scale_by_shampoo", "beta2")
    ),
    "scale_by_shampoo_clip_negative": Bad(
        gradtx.scale_by_shampoo,
        dict(clip_by_scaled_gradient_norm=-1.0),
        names=("scale_by_shampoo", "clip_by_scaled_gradient_norm"),
    ),
    "scale_by_shampoo_exponent_negative": Bad(
        gradtx.scale_by_shampoo,
        dict(exponent_override=-2),
        names=("scale_by_shampoo", "exponent_override"),
    ),
    "scale_by_shampoo_nesterov_int": Bad(
        gradtx.scale_by_shampoo, dict(nesterov=1), TypeError, ("scale_by_shampoo", "nesterov")
    ),
}

GOOD = {
    # beta2 = 1: the original Shampoo's sums (and AdaGrad's); matrix_epsilon 0: no ridge
    "shampoo_beta2_one": (
        gradtx.shampoo,
        lambda: dict(learning_rate=0.1, beta2=1.0, matrix_epsilon=0.0, beta1=0.0),
        {"beta2": 1.0, "matrix_epsilon": 0.0, "beta1": 0.0},
    ),
    "shampoo_graft_code": (
        gradtx.shampoo,
        lambda: dict(learning_rate=0.1, graft_type=np.int64(3), start_preconditioning_step=0),
        {"learning_rate": 0.1},
    ),
}

TRANSFORMATIONS = {
    "shampoo": lambda: gradtx.shampoo(0.1),
    "scale_by_shampoo": lambda: gradtx.scale_by_shampoo(),
    "scale_by_shampoo_decay": lambda: gradtx.scale_by_shampoo(weight_decay=0.01),
}
READS_PARAMS = ["shampoo", "scale_by_shampoo_decay"]
NEED_PARAMS = {
    "shampoo": lambda: gradtx.shampoo(0.1),
    "scale_by_shampoo": lambda: gradtx.scale_by_shampoo(weight_decay=0.01),
}

# ---- distributed_shampoo (optax-shampoo 0.0.6) in float64: tests/test_shampoo.py ----------------

# its GraftingType values
SGD, ADAGRAD, RMSPROP, RMSPROP_NORMALIZED, SQRT_N, ADAGRAD_NORMALIZED = range(1, 7)

OPTAX_SHAMPOO = {
    # its defaults (every leaf here merges into a vector: full-matrix AdaGrad of 3, 20, 18)
    "defaults": ShampooRow(
        {"learning_rate": 0.1, "block_size": 128}, lambda: gradtx.shampoo(0.1, 128)
    ),
    # matrices kept (merging up to 16 only): L^-1/4 G R^-1/4 in blocks of 3; RMSProp graft
    # clipped by its RMS; coupled decay
    "blocks_rmsprop_decay": ShampooRow(
        {
            "learning_rate": 0.05,
            "block_size": 3,
            "graft_type": RMSPROP,
            "weight_decay": 0.01,
            "clip_by_scaled_gradient_norm": 0.5,
            "merge_small_dims_block_size": 16,
        },
        lambda: gradtx.shampoo(
            0.05,
            3,
            graft_type="rmsprop",
            weight_decay=0.01,
            clip_by_scaled_gradient_norm=0.5,
            merge_small_dims_block_size=16,
        ),
    ),
    # AdaGrad graft, statistics every 2 steps, roots every 3, the EMA momentum without
    # Nesterov, an absolute ridge, p = 2 for every root
    "adagrad_intervals": ShampooRow(
        {
            "learning_rate": 0.05,
            "block_size": 4,
            "beta2": 0.99,
            "graft_type": ADAGRAD,
            "statistics_compute_steps": 2,
            "preconditioning_compute_steps": 3,
            "start_preconditioning_step": 2,
            "nesterov": False,
            "moving_average_for_momentum": True,
            "relative_matrix_epsilon": False,
            "exponent_override": 2,
            "best_effort_shape_interpretation": False,
        },
        lambda: gradtx.shampoo(
            0.05,
            4,
            beta2=0.99,
            graft_type="adagrad",
            statistics_compute_steps=2,
            preconditioning_compute_steps=3,
            start_preconditioning_step=2,
            nesterov=False,
            moving_average_for_momentum=True,
            relative_matrix_epsilon=False,
            exponent_override=2,
            best_effort_shape_interpretation=False,
        ),
    ),
    # the normalized grafts and the sign graft; (4, 5) above skip_preconditioning_dim_size_gt
    "rmsprop_normalized_skip": ShampooRow(
        {
            "learning_rate": 0.05,
            "block_size": 5,
            "graft_type": RMSPROP_NORMALIZED,
            "skip_preconditioning_dim_size_gt": 4,
            "best_effort_shape_interpretation": False,
        },
        lambda: gradtx.shampoo(
            0.05,
            5,
            graft_type="rmsprop_normalized",
            skip_preconditioning_dim_size_gt=4,
            best_effort_shape_interpretation=False,
        ),
    ),
    "adagrad_normalized": ShampooRow(
        {"learning_rate": 0.05, "block_size": 4, "graft_type": ADAGRAD_NORMALIZED, "beta1": 0.5},
        lambda: gradtx.shampoo(0.05, 4, beta1=0.5, graft_type="adagrad_normalized"),
    ),
    "sqrt_n": ShampooRow(
        {"learning_rate": 0.01, "block_size": 4, "graft_type": SQRT_N, "beta2": 0.9},
        lambda: gradtx.shampoo(0.01, 4, beta2=0.9, graft_type="sqrt_n"),
    ),
    # its decoupled decay is lr * (step + lr * wd * p): gradtx's decoupled decay with lr * wd
    "decoupled_decay": ShampooRow(
        {
            "learning_rate": 0.1,
            "block_size": 4,
            "weight_decay": 0.2,
            "decoupled_weight_decay": True,
            "best_effort_shape_interpretation": False,
        },
        lambda: gradtx.shampoo(
            0.1,
            4,
            weight_decay=0.1 * 0.2,
            decoupled_weight_decay=True,
            best_effort_shape_interpretation=False,
        ),
    ),
    # its coupled Newton iteration on both sides
    "newton": ShampooRow(
        {"learning_rate": 0.05, "block_size": 3, "best_effort_shape_interpretation": False},
        lambda: gradtx.shampoo(
            0.05, 3, best_effort_shape_interpretation=False, root_method="newton"
        ),
    ),
}

# issue 14's rows: 50 steps, eager in float32 only (tests/test_reference.py)
HEAVY = [case.id for case in OPTIMIZERS + ELEMENTARY]
