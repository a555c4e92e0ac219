"""optax's names that gradtx lacked: optax's piecewise-interpolated and one-cycle schedules,
``multi_transform`` and ``selective_transform`` in optax's state layout, ``multi_normal``,
``second_order``'s diagonals and the microbatching utilities (rows of the validation tables;
the behaviour is tested in ``tests/test_optax_surface.py``)."""

from __future__ import annotations

import numpy as np

import gradtx
import gradtx.microbatching
import gradtx.second_order
from tests.cases import Bad


def _loss(params, inputs, targets):
    return (params * inputs - targets) ** 2  # a vector: not a loss


BAD = {
    "piecewise_interpolate_schedule_string_value": Bad(
        gradtx.piecewise_interpolate_schedule,
        args=("linear", "1.0"),
        error=TypeError,
        names=("piecewise_interpolate_schedule", "init_value"),
    ),
    "piecewise_interpolate_schedule_unknown_type": Bad(
        gradtx.piecewise_interpolate_schedule,
        args=("linar", 1.0),
        names=("piecewise_interpolate_schedule", "interpolate_type"),
    ),
    "piecewise_interpolate_schedule_negative_scale": Bad(
        gradtx.piecewise_interpolate_schedule,
        args=("cosine", 1.0, {5: -3.0}),
        names=("piecewise_interpolate_schedule", "boundaries_and_scales[5]"),
    ),
    "linear_onecycle_schedule_float_steps": Bad(
        gradtx.linear_onecycle_schedule,
        args=(10.5, 1.0),
        error=TypeError,
        names=("linear_onecycle_schedule", "transition_steps"),
    ),
    "linear_onecycle_schedule_pct_start": Bad(
        gradtx.linear_onecycle_schedule,
        args=(10, 1.0),
        kwargs=dict(pct_start=1.5),
        names=("linear_onecycle_schedule", "pct_start"),
    ),
    "linear_onecycle_schedule_pct_final_before_start": Bad(
        gradtx.linear_onecycle_schedule,
        args=(10, 1.0),
        kwargs=dict(pct_start=0.5, pct_final=0.4),
        names=("linear_onecycle_schedule", "pct_final"),
    ),
    "cosine_onecycle_schedule_string_peak": Bad(
        gradtx.cosine_onecycle_schedule,
        args=(10, "1.0"),
        error=TypeError,
        names=("cosine_onecycle_schedule", "peak_value"),
    ),
    "cosine_onecycle_schedule_zero_div_factor": Bad(
        gradtx.cosine_onecycle_schedule,
        args=(10, 1.0),
        kwargs=dict(div_factor=0.0),
        names=("cosine_onecycle_schedule", "div_factor"),
    ),
    "cosine_onecycle_schedule_no_steps": Bad(
        gradtx.cosine_onecycle_schedule,
        args=(0, 1.0),
        names=("cosine_onecycle_schedule", "transition_steps"),
    ),
    "multi_transform_list_of_transforms": Bad(
        gradtx.multi_transform,
        args=([gradtx.sgd(0.1)], "a"),
        error=TypeError,
        names=("multi_transform", "transforms"),
    ),
    "multi_transform_not_a_transformation": Bad(
        gradtx.multi_transform,
        args=({"a": 0.1}, "a"),
        error=TypeError,
        names=("multi_transform", "transforms['a']"),
    ),
    "multi_transform_unhashable_label": Bad(
        gradtx.multi_transform,
        args=({"a": gradtx.sgd(0.1)}, {"w": {"a"}}),
        error=TypeError,
        names=("multi_transform", "param_labels"),
    ),
    "selective_transform_not_a_transformation": Bad(
        gradtx.selective_transform,
        args=(0.1,),
        kwargs=dict(freeze_mask=True),
        error=TypeError,
        names=("selective_transform", "optimizer"),
    ),
    "selective_transform_int_mask": Bad(
        gradtx.selective_transform,
        args=(gradtx.sgd(0.1),),
        kwargs=dict(freeze_mask={"w": 1}),
        error=TypeError,
        names=("selective_transform", "freeze_mask"),
    ),
    "multi_normal_string_loc": Bad(
        gradtx.multi_normal, args=("a", 0.0), error=TypeError, names=("multi_normal", "loc")
    ),
    "multi_normal_shapes": Bad(
        gradtx.multi_normal,
        args=(np.zeros((2, 3)), np.zeros((3, 2))),
        names=("multi_normal", "loc", "log_scale"),
    ),
    "microbatch_not_a_function": Bad(
        gradtx.microbatch, args=(3, 0, 2), error=TypeError, names=("microbatch", "fun")
    ),
    "microbatch_zero_size": Bad(
        gradtx.microbatch, args=(np.sum, 0, 0), names=("microbatch", "microbatch_size")
    ),
    "microbatch_in_axes_count": Bad(
        gradtx.microbatch,
        args=(np.sum, (0, 1), 2),
        kwargs=dict(in_axes=(0,)),
        names=("microbatch", "in_axes"),
    ),
    "microbatch_bad_accumulator": Bad(
        gradtx.microbatch,
        args=(np.sum, 0, 2),
        kwargs=dict(accumulator="sum"),
        error=TypeError,
        names=("microbatch", "accumulator"),
    ),
    # the namespaces' callables (not top-level names, so not in the coverage check)
    "micro_vmap_not_a_function": Bad(
        gradtx.microbatching.micro_vmap, args=(3,), error=TypeError, names=("micro_vmap", "fun")
    ),
    "micro_vmap_negative_real_microbatches": Bad(
        gradtx.microbatching.micro_vmap,
        args=(np.sum,),
        kwargs=dict(microbatch_size=2, num_real_microbatches=-1),
        names=("micro_vmap", "num_real_microbatches"),
    ),
    "micro_grad_has_aux_not_a_bool": Bad(
        gradtx.microbatching.micro_grad,
        args=(np.sum, "yes"),
        error=TypeError,
        names=("micro_grad", "has_aux"),
    ),
    "micro_grad_no_batch_argument": Bad(
        gradtx.microbatching.micro_grad,
        args=(np.sum,),
        kwargs=dict(batch_argnums=()),
        names=("micro_grad", "batch_argnums"),
    ),
    "reshape_batch_axis_float_size": Bad(
        gradtx.microbatching.reshape_batch_axis,
        args=(np.zeros(6), 1.5),
        error=TypeError,
        names=("reshape_batch_axis", "microbatch_size"),
    ),
    "reshape_batch_axis_not_divisible": Bad(
        gradtx.microbatching.reshape_batch_axis,
        args=(np.zeros(6), 4),
        names=("reshape_batch_axis", "microbatch_size"),
    ),
    "hessian_diag_not_a_function": Bad(
        gradtx.second_order.hessian_diag,
        args=(3, np.zeros(2), 0.0, 0.0),
        error=TypeError,
        names=("hessian_diag", "loss"),
    ),
    "hessian_diag_vector_loss": Bad(
        gradtx.second_order.hessian_diag,
        args=(_loss, np.zeros(2), np.ones(2), 0.0),
        names=("hessian_diag", "loss"),
    ),
    "fisher_diag_not_a_function": Bad(
        gradtx.second_order.fisher_diag,
        args=(None, np.zeros(2), 0.0, 0.0),
        error=TypeError,
        names=("fisher_diag", "negative_log_likelihood"),
    ),
    "fisher_diag_vector_loss": Bad(
        gradtx.second_order.fisher_diag,
        args=(_loss, np.zeros(2), np.ones(2), 0.0),
        names=("fisher_diag", "negative_log_likelihood"),
    ),
    "second_order_hvp_not_a_function": Bad(
        gradtx.second_order.hvp,
        args=("loss", np.ones(2), np.zeros(2), 0.0, 0.0),
        error=TypeError,
        names=("hvp", "loss"),
    ),
    "second_order_hvp_wrong_size": Bad(
        gradtx.second_order.hvp,
        args=(lambda p, x, y: (p * p).sum(), np.ones(3), np.zeros(2), 0.0, 0.0),
        names=("hvp", "v"),
    ),
}

BAD.update(
    {
        "nnls_iters_float": Bad(
            gradtx.nnls,
            args=(np.ones((3, 2)), np.ones(3), 2.5),
            error=TypeError,
            names=("nnls", "iters"),
        ),
        "nnls_A_not_a_matrix": Bad(
            gradtx.nnls, args=(np.ones(3), np.ones(3), 5), names=("nnls", "A")
        ),
    }
)

NO_RANGE = {
    "multi_transform": (
        "a mapping and a tree of labels: labels without a transformation, or that do not fit "
        "the params, are a ValueError of init, as optax's (test_optax_surface)"
    ),
    "selective_transform": (
        "a transformation and a mask of bools: a mask that does not fit the params is a "
        "ValueError of init (test_optax_surface)"
    ),
}
