"""Shampoo's arguments that are fixed when it is built: their names and ranges, checked.

``scale_by_shampoo`` and ``shampoo`` take the reference's (optax-shampoo's) arguments; this
module turns them into the validated values that ``gradtx._transforms.kronecker`` builds its
program from, each error naming the function and the argument.
"""

from __future__ import annotations

import numbers
from typing import Any

from jax import lax

from gradtx._core.checks import check_count, check_flag

# graft_type: the reference's GraftingType codes (1 to 6), then gradtx's additions
GRAFT_TYPES = (
    "sgd",
    "adagrad",
    "rmsprop",
    "rmsprop_normalized",
    "sqrt_n",
    "adagrad_normalized",
    "adam",
    "none",
)
_GRAFT_CODES = {i + 1: name for i, name in enumerate(GRAFT_TYPES[:6])}
_ROOT_METHODS = ("eigh", "newton")


# ---- validation of the fixed arguments ---------------------------------------------------------


def check_graft_type(owner: str, graft_type: Any) -> str:
    """A name of :data:`GRAFT_TYPES`, or the reference's ``GraftingType`` value (an int 1-6)."""
    if isinstance(graft_type, str):
        if graft_type in GRAFT_TYPES:
            return graft_type
    elif isinstance(graft_type, numbers.Integral) and not isinstance(graft_type, bool):
        if int(graft_type) in _GRAFT_CODES:
            return _GRAFT_CODES[int(graft_type)]
    else:
        raise TypeError(
            f"{owner}: graft_type must be one of {GRAFT_TYPES} or a GraftingType value (1 to 6), "
            f"got {graft_type!r}"
        )
    raise ValueError(
        f"{owner}: graft_type must be one of {GRAFT_TYPES} or a GraftingType value (1 to 6), "
        f"got {graft_type!r}"
    )


def _check_precision(owner: str, name: str, precision: Any) -> Any:
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    if isinstance(precision, str):
        try:
            return lax.Precision(precision)
        except ValueError:
            pass
    raise (ValueError if isinstance(precision, str) else TypeError)(
        f"{owner}: {name} must be a jax.lax.Precision, its name or None, got {precision!r}"
    )


def _check_method(owner: str, method: Any) -> str:
    if not isinstance(method, str):
        raise TypeError(f"{owner}: root_method must be one of {_ROOT_METHODS}, got {method!r}")
    if method not in _ROOT_METHODS:
        raise ValueError(f"{owner}: root_method must be one of {_ROOT_METHODS}, got {method!r}")
    return method


def shampoo_arguments(
    owner: str,
    *,
    block_size: Any,
    start_preconditioning_step: Any,
    preconditioning_compute_steps: Any,
    statistics_compute_steps: Any,
    best_effort_shape_interpretation: Any,
    graft_type: Any,
    nesterov: Any,
    exponent_override: Any,
    moving_average_for_momentum: Any,
    skip_preconditioning_dim_size_gt: Any,
    precision: Any,
    tensordot_precision: Any,
    relative_matrix_epsilon: Any,
    merge_small_dims_block_size: Any,
    skip_preconditioning_rank_lt: Any,
    root_method: Any,
) -> dict[str, Any]:
    """The validated arguments of scale_by_shampoo that are fixed when it is built."""
    return dict(
        block_size=check_count(owner, "block_size", block_size, minimum=0),
        start_preconditioning_step=check_count(
            owner, "start_preconditioning_step", start_preconditioning_step, minimum=0
        ),
        preconditioning_compute_steps=check_count(
            owner, "preconditioning_compute_steps", preconditioning_compute_steps
        ),
        statistics_compute_steps=check_count(
            owner, "statistics_compute_steps", statistics_compute_steps
        ),
        best_effort_shape_interpretation=check_flag(
            owner, "best_effort_shape_interpretation", best_effort_shape_interpretation
        ),
        graft_type=check_graft_type(owner, graft_type),
        nesterov=check_flag(owner, "nesterov", nesterov),
        exponent_override=check_count(owner, "exponent_override", exponent_override, minimum=0),
        moving_average_for_momentum=check_flag(
            owner, "moving_average_for_momentum", moving_average_for_momentum
        ),
        skip_preconditioning_dim_size_gt=check_count(
            owner, "skip_preconditioning_dim_size_gt", skip_preconditioning_dim_size_gt, minimum=0
        ),
        precision=_check_precision(owner, "precision", precision),
        tensordot_precision=_check_precision(owner, "tensordot_precision", tensordot_precision),
        relative_matrix_epsilon=check_flag(
            owner, "relative_matrix_epsilon", relative_matrix_epsilon
        ),
        merge_small_dims_block_size=check_count(
            owner, "merge_small_dims_block_size", merge_small_dims_block_size
        ),
        skip_preconditioning_rank_lt=check_count(
            owner, "skip_preconditioning_rank_lt", skip_preconditioning_rank_lt, minimum=0
        ),
        root_method=_check_method(owner, root_method),
        owner=owner,
    )
