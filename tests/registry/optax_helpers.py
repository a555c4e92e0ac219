"""optax's transformations and helpers that gradtx took over (rows of the validation tables;
the behaviour is tested in ``tests/test_optax_helpers.py``)."""

from __future__ import annotations

import numpy as np

import gradtx
from tests.cases import Bad

# NumPy arrays: the rows are built when the registry is imported, and JAX's arrays wait for
# the tests' configuration
_ONES = {"w": np.ones((2, 3), np.float32)}
_VECTOR = np.ones(3, np.float32)


BAD = {
    # numerics
    "safe_norm_ord_list": Bad(
        gradtx.safe_norm,
        args=(_VECTOR, 1.0),
        kwargs=dict(ord=[2]),
        error=TypeError,
        names=("safe_norm", "ord"),
    ),
    "safe_norm_x_string": Bad(
        gradtx.safe_norm, args=("x", 1.0), error=TypeError, names=("safe_norm", "x")
    ),
    "safe_norm_negative_floor": Bad(
        gradtx.safe_norm, args=(_VECTOR, -1.0), names=("safe_norm", "min_norm")
    ),
    "safe_norm_unknown_ord": Bad(
        gradtx.safe_norm, args=(_VECTOR, 1.0, "max"), names=("safe_norm", "ord")
    ),
    "safe_norm_matrix_ord_for_a_vector": Bad(
        gradtx.safe_norm, args=(_VECTOR, 1.0, "nuc"), names=("safe_norm", "ord", "axis")
    ),
    "safe_root_mean_squares_floor_string": Bad(
        gradtx.safe_root_mean_squares,
        args=(_VECTOR, "0.1"),
        error=TypeError,
        names=("safe_root_mean_squares", "min_rms"),
    ),
    "safe_root_mean_squares_nan_floor": Bad(
        gradtx.safe_root_mean_squares,
        args=(_VECTOR, float("nan")),
        names=("safe_root_mean_squares", "min_rms"),
    ),
    # per-example and unit-wise clipping
    "per_example_global_norm_clip_bound_string": Bad(
        gradtx.per_example_global_norm_clip,
        args=(_ONES, "1.0"),
        error=TypeError,
        names=("per_example_global_norm_clip", "l2_norm_clip"),
    ),
    "per_example_global_norm_clip_negative_bound": Bad(
        gradtx.per_example_global_norm_clip,
        args=(_ONES, -1.0),
        names=("per_example_global_norm_clip", "l2_norm_clip"),
    ),
    "per_example_global_norm_clip_scalar_leaf": Bad(
        gradtx.per_example_global_norm_clip,
        args=({"w": np.ones((), np.float32)}, 1.0),
        names=("per_example_global_norm_clip", "grads"),
    ),
    "per_example_layer_norm_clip_uniform_int": Bad(
        gradtx.per_example_layer_norm_clip,
        args=(_ONES, 1.0),
        kwargs=dict(uniform=1),
        error=TypeError,
        names=("per_example_layer_norm_clip", "uniform"),
    ),
    "per_example_layer_norm_clip_negative_bound": Bad(
        gradtx.per_example_layer_norm_clip,
        args=(_ONES, -0.5),
        names=("per_example_layer_norm_clip", "global_l2_norm_clip"),
    ),
    "unitwise_norm_axis_float": Bad(
        gradtx.unitwise_norm,
        args=(_ONES["w"], 0.5),
        error=TypeError,
        names=("unitwise_norm", "axis"),
    ),
    "unitwise_norm_rank_6_without_axis": Bad(
        gradtx.unitwise_norm, args=(np.ones((1, 2) * 3),), names=("unitwise_norm", "axis")
    ),
    "unitwise_norm_axis_out_of_range": Bad(
        gradtx.unitwise_norm, args=(_ONES["w"], 2), names=("unitwise_norm", "axis")
    ),
    "unitwise_clip_g_norm_string": Bad(
        gradtx.unitwise_clip,
        args=("g", _VECTOR, _VECTOR),
        error=TypeError,
        names=("unitwise_clip", "g_norm"),
    ),
    "unitwise_clip_shapes_differ": Bad(
        gradtx.unitwise_clip,
        args=(_VECTOR, _VECTOR, np.ones(2, np.float32)),
        names=("unitwise_clip", "grad"),
    ),
    "unitwise_clip_negative_div_eps": Bad(
        gradtx.unitwise_clip,
        args=(_VECTOR, _VECTOR, _VECTOR, -1e-6),
        names=("unitwise_clip", "div_eps"),
    ),
    # transformations
    "apply_every_k_string": Bad(
        gradtx.apply_every, args=("2",), error=TypeError, names=("apply_every", "k")
    ),
    "apply_every_k_zero": Bad(gradtx.apply_every, args=(0,), names=("apply_every", "k")),
    "apply_every_k_fraction": Bad(gradtx.apply_every, args=(2.5,), names=("apply_every", "k")),
    "apply_every_k_past_int32": Bad(gradtx.apply_every, args=(2**31,), names=("apply_every", "k")),
    "snapshot_name_int": Bad(
        gradtx.snapshot,
        args=(0, gradtx.global_norm),
        error=TypeError,
        names=("snapshot", "measure_name"),
    ),
    "snapshot_measure_not_callable": Bad(
        gradtx.snapshot, args=("norm", 1.0), error=TypeError, names=("snapshot", "measure")
    ),
    "measure_with_ema_measure_not_callable": Bad(
        gradtx.measure_with_ema,
        args=("norm", 0.9),
        error=TypeError,
        names=("measure_with_ema", "measure"),
    ),
    "measure_with_ema_decay_one": Bad(
        gradtx.measure_with_ema,
        args=(gradtx.global_norm, 1.0),
        names=("measure_with_ema", "decay"),
    ),
    # wrappers
    "conditionally_mask_inner_none": Bad(
        gradtx.conditionally_mask,
        args=(None, lambda step: True),
        error=TypeError,
        names=("conditionally_mask", "inner"),
    ),
    "conditionally_mask_fn_not_callable": Bad(
        gradtx.conditionally_mask,
        args=(gradtx.sgd(0.1), True),
        error=TypeError,
        names=("conditionally_mask", "should_transform_fn"),
    ),
    "conditionally_transform_inner_none": Bad(
        gradtx.conditionally_transform,
        args=(None, lambda step: True),
        error=TypeError,
        names=("conditionally_transform", "inner"),
    ),
    "conditionally_transform_forward_not_bool": Bad(
        gradtx.conditionally_transform,
        args=(gradtx.sgd(0.1), lambda step: True, "yes"),
        error=TypeError,
        names=("conditionally_transform", "forward_extra_args"),
    ),
    "flatten_inner_string": Bad(
        gradtx.flatten, args=("sgd",), error=TypeError, names=("flatten", "inner")
    ),
    "with_extra_args_support_not_a_transformation": Bad(
        gradtx.with_extra_args_support,
        args=(3,),
        error=TypeError,
        names=("with_extra_args_support",),
    ),
    # MultiSteps' skip functions
    "skip_not_finite_leaf_string": Bad(
        gradtx.skip_not_finite,
        args=(["g"], 0, None),
        error=TypeError,
        names=("skip_not_finite", "updates"),
    ),
    "skip_not_finite_step_float": Bad(
        gradtx.skip_not_finite,
        args=(_ONES, 0.5, None),
        error=TypeError,
        names=("skip_not_finite", "gradient_step"),
    ),
    "skip_not_finite_negative_step": Bad(
        gradtx.skip_not_finite, args=(_ONES, -1, None), names=("skip_not_finite", "gradient_step")
    ),
    "skip_large_updates_bound_string": Bad(
        gradtx.skip_large_updates,
        args=(_ONES, 0, None, "100"),
        error=TypeError,
        names=("skip_large_updates", "max_squared_norm"),
    ),
    "skip_large_updates_negative_bound": Bad(
        gradtx.skip_large_updates,
        args=(_ONES, 0, None, -1.0),
        names=("skip_large_updates", "max_squared_norm"),
    ),
}

NO_ARGUMENTS = {
    "zero_nans": "takes no arguments",
    "keep_params_nonnegative": "takes no arguments",
    "ShouldSkipUpdateFunction": "a protocol (optax's name for it): annotations, not calls",
    "TransformUpdateExtraArgsFn": "a protocol (optax's name for it): annotations, not calls",
}
NO_RANGE = {
    "snapshot": "a name (any string) and any function of the updates",
    "conditionally_mask": (
        "a transformation, a function and a flag (a condition that is not a bool scalar is "
        "refused at update: test_optax_helpers)"
    ),
    "conditionally_transform": (
        "a transformation, a function and a flag (a condition that is not a bool scalar is "
        "refused at update: test_optax_helpers)"
    ),
    "flatten": "only a transformation",
    "with_extra_args_support": "only a transformation",
}

# the shape tables of test_validation
TRANSFORMATIONS = {
    "zero_nans": lambda: gradtx.zero_nans(),
    "keep_params_nonnegative": lambda: gradtx.keep_params_nonnegative(),
    "apply_every": lambda: gradtx.apply_every(2),
    "snapshot": lambda: gradtx.snapshot("norm", gradtx.global_norm),
    "conditionally_mask": lambda: gradtx.conditionally_mask(gradtx.adam(0.1), lambda s: s < 1),
    "conditionally_transform": lambda: gradtx.conditionally_transform(
        gradtx.adam(0.1), lambda s: s < 1
    ),
    "flatten": lambda: gradtx.flatten(gradtx.adam(0.1)),
}
PASS_THROUGH = {"zero_nans", "snapshot"}
READS_PARAMS = {"keep_params_nonnegative", "flatten"}
# flatten's state is shaped like the one flat vector: a leaf reshaped to the same size gives the
# same, correct, element-wise update
NO_PER_LEAF_STATE = {"keep_params_nonnegative", "flatten"}
NEED_PARAMS = {"keep_params_nonnegative": lambda: gradtx.keep_params_nonnegative()}
