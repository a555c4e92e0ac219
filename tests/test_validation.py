"""Bad input gets a clear error naming the function and the argument; valid edge values pass.

Three tables: bad factory arguments (checked when the transformation is built, before anything
is traced), bad ``set_hyperparams`` values, and gradient trees that do not match the tree the
state was made for (checked at ``update``, eagerly and under ``jit``). A fourth table lists
edge values that must be accepted.
"""

from __future__ import annotations

import inspect
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import registry
from tests.cases import Bad


def _names(message: str, word: str) -> bool:
    """Whether ``word`` occurs in ``message`` as a whole name (``adam`` is not in ``adamw``)."""
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", message) is not None


# ---- bad factory arguments ---------------------------------------------------------------


def _b1_out_of_range(count):
    return 1.5 + 0.0 * count.astype(jnp.float32)


def _vector_schedule(count):
    return jnp.full((3,), 1e-3, jnp.float32) + 0.0 * count.astype(jnp.float32)


def _forgot_to_return(count):
    del count  # a schedule whose author forgot the ``return``


def _adam_state():
    return gradtx.adam(1e-3).init({"w": jnp.zeros(3)})


def _sum_of_squares(params):
    return sum(jnp.sum(x * x) for x in jax.tree.leaves(params))


def _identity_matvec(x):
    return x


def _summing_matvec(x):
    # (1,) for a (3,) vector: would broadcast against b without the check
    return {"w": jnp.sum(x["w"], keepdims=True)}


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
    # finite as a Python float, inf in the float32 the state stores it in
    "adam_lr_beyond_float32": Bad(
        gradtx.adam, dict(learning_rate=1e39), names=("adam", "learning_rate", "float32")
    ),
    "sgd_lr_schedule_beyond_float32": Bad(
        gradtx.sgd,
        dict(learning_rate=lambda count: 1e39),
        names=("sgd", "learning_rate", "float32"),
    ),
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
    "scale_by_schedule_float": Bad(
        gradtx.scale_by_schedule,
        args=(0.1,),
        error=TypeError,
        names=("scale_by_schedule", "step_size_fn"),
    ),
    "scale_by_schedule_inf": Bad(
        gradtx.scale_by_schedule,
        args=(lambda count: float("inf"),),
        names=("scale_by_schedule", "step_size_fn"),
    ),
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
    "linear_schedule_nan_init": Bad(
        gradtx.linear_schedule,
        dict(init_value=float("nan"), end_value=0.0, transition_steps=3),
        names=("linear_schedule", "init_value"),
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
    # ---- every public callable: a wrong type and an out-of-range value ----------------------
    # optimizers: a wrong type for each (the ranges are above)
    "adamw_lr_string": Bad(
        gradtx.adamw, dict(learning_rate="0.1"), TypeError, names=("adamw", "learning_rate")
    ),
    "adamw_mask_string": Bad(
        gradtx.adamw, dict(learning_rate=0.1, mask="bias"), TypeError, names=("adamw", "mask")
    ),
    "rmsprop_centered_string": Bad(
        gradtx.rmsprop,
        dict(learning_rate=0.1, centered="yes"),
        TypeError,
        names=("rmsprop", "centered"),
    ),
    "adadelta_rho_string": Bad(
        gradtx.adadelta, dict(rho="0.9"), TypeError, names=("adadelta", "rho")
    ),
    "adadelta_weight_decay_mask_list": Bad(
        gradtx.adadelta,
        dict(weight_decay=0.1, weight_decay_mask=[0.5]),
        TypeError,
        names=("adadelta", "weight_decay_mask"),
    ),
    "lamb_b1_none": Bad(
        gradtx.lamb, dict(learning_rate=0.1, b1=None), TypeError, names=("lamb", "b1")
    ),
    "lamb_mask_float": Bad(
        gradtx.lamb, dict(learning_rate=0.1, mask=0.5), TypeError, names=("lamb", "mask")
    ),
    "lars_nesterov_int": Bad(
        gradtx.lars, dict(learning_rate=0.1, nesterov=1), TypeError, names=("lars", "nesterov")
    ),
    "lars_weight_decay_mask_string": Bad(
        gradtx.lars,
        dict(learning_rate=0.1, weight_decay_mask="kernel"),
        TypeError,
        names=("lars", "weight_decay_mask"),
    ),
    "lars_trust_ratio_mask_float": Bad(
        gradtx.lars,
        dict(learning_rate=0.1, trust_ratio_mask=1.0),
        TypeError,
        names=("lars", "trust_ratio_mask"),
    ),
    "lbfgs_memory_size_string": Bad(
        gradtx.lbfgs, dict(memory_size="10"), TypeError, names=("lbfgs", "memory_size")
    ),
    "lbfgs_memory_size_zero": Bad(
        gradtx.lbfgs, dict(memory_size=0), names=("lbfgs", "memory_size")
    ),
    "lbfgs_linesearch_string": Bad(
        gradtx.lbfgs, dict(linesearch="zoom"), TypeError, names=("lbfgs", "linesearch")
    ),
    "newton_cg_damping_list": Bad(
        gradtx.newton_cg, dict(damping=[0.1]), TypeError, names=("newton_cg", "damping")
    ),
    "newton_cg_max_cg_steps_zero": Bad(
        gradtx.newton_cg, dict(max_cg_steps=0), names=("newton_cg", "max_cg_steps")
    ),
    "newton_cg_tol_negative": Bad(gradtx.newton_cg, dict(tol=-1e-3), names=("newton_cg", "tol")),
    # elementary transformations: a wrong type for each (most ranges are above)
    "clip_list": Bad(gradtx.clip, args=([1.0],), error=TypeError, names=("clip", "max_delta")),
    "clip_by_norm_none": Bad(
        gradtx.clip_by_norm, args=(None,), error=TypeError, names=("clip_by_norm", "max_norm")
    ),
    "clip_by_global_norm_string": Bad(
        gradtx.clip_by_global_norm,
        args=("1.0",),
        error=TypeError,
        names=("clip_by_global_norm", "max_norm"),
    ),
    "adaptive_grad_clip_none": Bad(
        gradtx.adaptive_grad_clip,
        args=(None,),
        error=TypeError,
        names=("adaptive_grad_clip", "clipping"),
    ),
    "adaptive_grad_clip_zero": Bad(
        gradtx.adaptive_grad_clip, args=(0.0,), names=("adaptive_grad_clip", "clipping")
    ),
    "adaptive_grad_clip_axis_float": Bad(
        gradtx.adaptive_grad_clip,
        dict(clipping=0.1, axis=1.5),
        TypeError,
        names=("adaptive_grad_clip", "axis"),
    ),
    "trace_nesterov_string": Bad(
        gradtx.trace, dict(decay=0.9, nesterov="no"), TypeError, names=("trace", "nesterov")
    ),
    "ema_debias_none": Bad(
        gradtx.ema, dict(decay=0.9, debias=None), TypeError, names=("ema", "debias")
    ),
    "ema_params_decay_none": Bad(
        gradtx.ema_params, dict(decay=None), TypeError, names=("ema_params", "decay")
    ),
    "ema_params_decay_one": Bad(gradtx.ema_params, dict(decay=1.0), names=("ema_params", "decay")),
    "bias_correction_list": Bad(
        gradtx.bias_correction, args=([0.9],), error=TypeError, names=("bias_correction", "decay")
    ),
    # a transformation where a number is expected
    "scale_transformation": Bad(
        gradtx.scale, args=(gradtx.identity(),), error=TypeError, names=("scale", "step_size")
    ),
    "scale_by_learning_rate_flip_sign_string": Bad(
        gradtx.scale_by_learning_rate,
        dict(learning_rate=0.1, flip_sign="yes"),
        TypeError,
        names=("scale_by_learning_rate", "flip_sign"),
    ),
    "add_decayed_weights_transformation": Bad(
        gradtx.add_decayed_weights,
        args=(gradtx.identity(),),
        error=TypeError,
        names=("add_decayed_weights", "weight_decay"),
    ),
    "add_decayed_weights_mask_string": Bad(
        gradtx.add_decayed_weights,
        dict(weight_decay=0.1, mask="bias"),
        TypeError,
        names=("add_decayed_weights", "mask"),
    ),
    "add_noise_eta_string": Bad(
        gradtx.add_noise, dict(eta="0.1", gamma=0.55, seed=0), TypeError, names=("add_noise", "eta")
    ),
    "add_noise_gamma_negative": Bad(
        gradtx.add_noise, dict(eta=0.1, gamma=-0.5, seed=0), names=("add_noise", "gamma")
    ),
    "add_noise_seed_float": Bad(
        gradtx.add_noise,
        dict(eta=0.1, gamma=0.55, seed=1.5),
        TypeError,
        names=("add_noise", "seed"),
    ),
    "centralize_unit_axis_string": Bad(
        gradtx.centralize, dict(unit_axis="0"), TypeError, names=("centralize", "unit_axis")
    ),
    "scale_by_trust_ratio_eps_string": Bad(
        gradtx.scale_by_trust_ratio, dict(eps="0"), TypeError, names=("scale_by_trust_ratio", "eps")
    ),
    "scale_by_rms_eps_in_sqrt_none": Bad(
        gradtx.scale_by_rms,
        dict(eps_in_sqrt=None),
        TypeError,
        names=("scale_by_rms", "eps_in_sqrt"),
    ),
    "scale_by_stddev_bias_correction_int": Bad(
        gradtx.scale_by_stddev,
        dict(bias_correction=1),
        TypeError,
        names=("scale_by_stddev", "bias_correction"),
    ),
    "scale_by_rss_initial_string": Bad(
        gradtx.scale_by_rss,
        dict(initial_accumulator_value="0.1"),
        TypeError,
        names=("scale_by_rss", "initial_accumulator_value"),
    ),
    "scale_by_adadelta_eps_list": Bad(
        gradtx.scale_by_adadelta, dict(eps=[1e-6]), TypeError, names=("scale_by_adadelta", "eps")
    ),
    "scale_by_adam_b2_above_1": Bad(
        gradtx.scale_by_adam, dict(b2=1.5), names=("scale_by_adam", "b2")
    ),
    "scale_by_adam_min_8bit_size_negative": Bad(
        gradtx.scale_by_adam, dict(min_8bit_size=-1), names=("scale_by_adam", "min_8bit_size")
    ),
    "scale_by_adam_optim_bits_string": Bad(
        gradtx.scale_by_adam, dict(optim_bits="8"), TypeError, names=("scale_by_adam", "optim_bits")
    ),
    "scale_by_lbfgs_memory_size_zero": Bad(
        gradtx.scale_by_lbfgs, dict(memory_size=0), names=("scale_by_lbfgs", "memory_size")
    ),
    "scale_by_lbfgs_scale_init_precond_none": Bad(
        gradtx.scale_by_lbfgs,
        dict(scale_init_precond=None),
        TypeError,
        names=("scale_by_lbfgs", "scale_init_precond"),
    ),
    "scale_by_newton_cg_damping_negative": Bad(
        gradtx.scale_by_newton_cg, dict(damping=-1.0), names=("scale_by_newton_cg", "damping")
    ),
    "scale_by_newton_cg_max_cg_steps_float": Bad(
        gradtx.scale_by_newton_cg,
        dict(max_cg_steps=2.5),
        TypeError,
        names=("scale_by_newton_cg", "max_cg_steps"),
    ),
    "backtracking_steps_zero": Bad(
        gradtx.scale_by_backtracking_linesearch,
        dict(max_backtracking_steps=0),
        names=("scale_by_backtracking_linesearch", "max_backtracking_steps"),
    ),
    "backtracking_decrease_factor_one": Bad(
        gradtx.scale_by_backtracking_linesearch,
        dict(max_backtracking_steps=10, decrease_factor=1.0),
        names=("scale_by_backtracking_linesearch", "decrease_factor"),
    ),
    "backtracking_store_grad_string": Bad(
        gradtx.scale_by_backtracking_linesearch,
        dict(max_backtracking_steps=10, store_grad="yes"),
        TypeError,
        names=("scale_by_backtracking_linesearch", "store_grad"),
    ),
    "zoom_curv_rtol_one": Bad(
        gradtx.scale_by_zoom_linesearch,
        dict(max_linesearch_steps=10, curv_rtol=1.0),
        names=("scale_by_zoom_linesearch", "curv_rtol"),
    ),
    "zoom_initial_guess_strategy_none": Bad(
        gradtx.scale_by_zoom_linesearch,
        dict(max_linesearch_steps=10, initial_guess_strategy=None),
        TypeError,
        names=("scale_by_zoom_linesearch", "initial_guess_strategy"),
    ),
    "zoom_steps_string": Bad(
        gradtx.scale_by_zoom_linesearch,
        dict(max_linesearch_steps="10"),
        TypeError,
        names=("scale_by_zoom_linesearch", "max_linesearch_steps"),
    ),
    "reduce_on_plateau_factor_one": Bad(
        gradtx.reduce_on_plateau, dict(factor=1.0), names=("reduce_on_plateau", "factor")
    ),
    "reduce_on_plateau_patience_negative": Bad(
        gradtx.reduce_on_plateau, dict(patience=-1), names=("reduce_on_plateau", "patience")
    ),
    "reduce_on_plateau_cooldown_float": Bad(
        gradtx.reduce_on_plateau,
        dict(cooldown=2.5),
        TypeError,
        names=("reduce_on_plateau", "cooldown"),
    ),
    "reduce_on_plateau_rtol_one": Bad(
        gradtx.reduce_on_plateau, dict(rtol=1.0), names=("reduce_on_plateau", "rtol")
    ),
    "reduce_on_plateau_atol_negative": Bad(
        gradtx.reduce_on_plateau, dict(atol=-0.1), names=("reduce_on_plateau", "atol")
    ),
    "reduce_on_plateau_accumulation_size_zero": Bad(
        gradtx.reduce_on_plateau,
        dict(accumulation_size=0),
        names=("reduce_on_plateau", "accumulation_size"),
    ),
    "reduce_on_plateau_rule_unknown": Bad(
        gradtx.reduce_on_plateau, dict(rule="torch"), names=("reduce_on_plateau", "rule")
    ),
    # wrappers and combinators: a non-transformation where one is expected, bad numbers
    "MultiSteps_opt_string": Bad(
        gradtx.MultiSteps,
        dict(opt="adam", every_k_schedule=2),
        TypeError,
        names=("MultiSteps", "opt"),
    ),
    "MultiSteps_every_k_zero": Bad(
        gradtx.MultiSteps,
        dict(opt=gradtx.identity(), every_k_schedule=0),
        names=("MultiSteps", "every_k_schedule"),
    ),
    "MultiSteps_every_k_float": Bad(
        gradtx.MultiSteps,
        dict(opt=gradtx.identity(), every_k_schedule=2.5),
        TypeError,
        names=("MultiSteps", "every_k_schedule"),
    ),
    "apply_if_finite_inner_none": Bad(
        gradtx.apply_if_finite,
        dict(inner=None, max_consecutive_errors=3),
        TypeError,
        names=("apply_if_finite", "inner"),
    ),
    "apply_if_finite_max_errors_negative": Bad(
        gradtx.apply_if_finite,
        dict(inner=gradtx.identity(), max_consecutive_errors=-1),
        names=("apply_if_finite", "max_consecutive_errors"),
    ),
    "lookahead_fast_optimizer_none": Bad(
        gradtx.lookahead,
        dict(fast_optimizer=None, sync_period=5, slow_step_size=0.5),
        TypeError,
        names=("lookahead", "fast_optimizer"),
    ),
    "lookahead_sync_period_zero": Bad(
        gradtx.lookahead,
        dict(fast_optimizer=gradtx.identity(), sync_period=0, slow_step_size=0.5),
        names=("lookahead", "sync_period"),
    ),
    "lookahead_slow_step_size_above_1": Bad(
        gradtx.lookahead,
        dict(fast_optimizer=gradtx.identity(), sync_period=5, slow_step_size=1.5),
        names=("lookahead", "slow_step_size"),
    ),
    "grouped_tx_none": Bad(gradtx.grouped, args=(None,), error=TypeError, names=("grouped", "tx")),
    "grouped_max_size_string": Bad(
        gradtx.grouped,
        args=(gradtx.identity(),),
        kwargs=dict(max_grouped_size="64"),
        error=TypeError,
        names=("grouped", "max_grouped_size"),
    ),
    "grouped_max_size_negative": Bad(
        gradtx.grouped,
        args=(gradtx.identity(),),
        kwargs=dict(max_grouped_size=-1),
        names=("grouped", "max_grouped_size"),
    ),
    "masked_inner_none": Bad(
        gradtx.masked, args=(None, True), error=TypeError, names=("masked", "inner")
    ),
    "masked_mask_string": Bad(
        gradtx.masked, args=(gradtx.identity(), "bias"), error=TypeError, names=("masked", "mask")
    ),
    "freeze_mask_none": Bad(gradtx.freeze, args=(None,), error=TypeError, names=("freeze", "mask")),
    "freeze_inner_string": Bad(
        gradtx.freeze,
        args=(True,),
        kwargs=dict(inner="adam"),
        error=TypeError,
        names=("freeze", "inner"),
    ),
    "partition_transforms_list": Bad(
        gradtx.partition,
        args=([gradtx.identity()], "a"),
        error=TypeError,
        names=("partition", "transforms"),
    ),
    "partition_param_labels_none": Bad(
        gradtx.partition,
        args=({"a": gradtx.identity()}, None),
        error=TypeError,
        names=("partition", "param_labels"),
    ),
    "partition_transforms_empty": Bad(
        gradtx.partition, args=({}, "a"), names=("partition", "transforms")
    ),
    "partition_param_labels_unknown": Bad(
        gradtx.partition,
        args=({"a": gradtx.identity()}, {"w": "a", "b": "bias"}),
        names=("partition", "param_labels", "bias"),
    ),
    "monitor_tx_none": Bad(gradtx.monitor, args=(None,), error=TypeError, names=("monitor", "tx")),
    "monitor_measures_split_along_an_axis": Bad(
        gradtx.monitor,
        args=({"norm": gradtx.global_norm},),
        kwargs=dict(axis_name="batch"),
        names=("monitor", "axis_name"),
    ),
    "checked_tx_none": Bad(gradtx.checked, args=(None,), error=TypeError, names=("checked", "tx")),
    "stateless_not_callable": Bad(
        gradtx.stateless, args=(0.5,), error=TypeError, names=("stateless", "fn")
    ),
    "value_and_grad_from_state_not_callable": Bad(
        gradtx.value_and_grad_from_state,
        args=("loss",),
        error=TypeError,
        names=("value_and_grad_from_state", "value_fn"),
    ),
    "named_chain_not_a_pair": Bad(
        gradtx.named_chain, args=(gradtx.identity(),), error=TypeError, names=("named_chain",)
    ),
    # schedules: a wrong type and an out-of-range value each
    "constant_schedule_string": Bad(
        gradtx.constant_schedule,
        args=("1.0",),
        error=TypeError,
        names=("constant_schedule", "value"),
    ),
    "constant_schedule_inf": Bad(
        gradtx.constant_schedule, args=(INF,), names=("constant_schedule", "value")
    ),
    "linear_schedule_init_string": Bad(
        gradtx.linear_schedule,
        dict(init_value="1", end_value=0.0, transition_steps=10),
        TypeError,
        names=("linear_schedule", "init_value"),
    ),
    "cosine_decay_steps_float": Bad(
        gradtx.cosine_decay_schedule,
        dict(init_value=1.0, decay_steps=10.5),
        TypeError,
        names=("cosine_decay_schedule", "decay_steps"),
    ),
    "cosine_warm_restarts_period_mult_string": Bad(
        gradtx.cosine_warm_restarts_schedule,
        dict(init_value=1.0, first_period=10, period_mult="2"),
        TypeError,
        names=("cosine_warm_restarts_schedule", "period_mult"),
    ),
    "cosine_warm_restarts_first_period_zero": Bad(
        gradtx.cosine_warm_restarts_schedule,
        dict(init_value=1.0, first_period=0),
        names=("cosine_warm_restarts_schedule", "first_period"),
    ),
    "exponential_decay_staircase_string": Bad(
        gradtx.exponential_decay,
        dict(init_value=1.0, transition_steps=10, decay_rate=0.5, staircase="yes"),
        TypeError,
        names=("exponential_decay", "staircase"),
    ),
    "exponential_decay_negative_rate": Bad(
        gradtx.exponential_decay,
        dict(init_value=1.0, transition_steps=2, decay_rate=-0.5),
        names=("exponential_decay", "decay_rate"),
    ),
    "inverse_sqrt_peak_string": Bad(
        gradtx.inverse_sqrt_schedule,
        dict(peak_value="1"),
        TypeError,
        names=("inverse_sqrt_schedule", "peak_value"),
    ),
    "inverse_sqrt_warmup_negative": Bad(
        gradtx.inverse_sqrt_schedule,
        dict(peak_value=1.0, warmup_steps=-1),
        names=("inverse_sqrt_schedule", "warmup_steps"),
    ),
    "join_schedules_schedules_none": Bad(
        gradtx.join_schedules,
        dict(schedules=None, boundaries=[]),
        TypeError,
        names=("join_schedules", "schedules"),
    ),
    "join_schedules_schedules_transformation": Bad(
        gradtx.join_schedules,
        dict(schedules=gradtx.identity(), boundaries=[5]),
        TypeError,
        names=("join_schedules", "schedules"),
    ),
    "join_schedules_boundary_negative": Bad(
        gradtx.join_schedules,
        dict(schedules=[gradtx.constant_schedule(1.0)] * 2, boundaries=[-1]),
        names=("join_schedules", "boundaries[0]"),
    ),
    "one_cycle_peak_none": Bad(
        gradtx.one_cycle_schedule,
        dict(transition_steps=100, peak_value=None),
        TypeError,
        names=("one_cycle_schedule", "peak_value"),
    ),
    "one_cycle_pct_start_above_1": Bad(
        gradtx.one_cycle_schedule,
        dict(transition_steps=100, peak_value=1.0, pct_start=1.5),
        names=("one_cycle_schedule", "pct_start"),
    ),
    "one_cycle_momentum_base_string": Bad(
        gradtx.one_cycle_momentum_schedule,
        dict(transition_steps=100, base_momentum="0.85"),
        TypeError,
        names=("one_cycle_momentum_schedule", "base_momentum"),
    ),
    "one_cycle_momentum_steps_zero": Bad(
        gradtx.one_cycle_momentum_schedule,
        dict(transition_steps=0),
        names=("one_cycle_momentum_schedule", "transition_steps"),
    ),
    "piecewise_constant_boundaries_list": Bad(
        gradtx.piecewise_constant_schedule,
        dict(init_value=1.0, boundaries_and_scales=[10, 0.5]),
        TypeError,
        names=("piecewise_constant_schedule", "boundaries_and_scales"),
    ),
    "piecewise_constant_boundary_negative": Bad(
        gradtx.piecewise_constant_schedule,
        dict(init_value=1.0, boundaries_and_scales={-1: 0.5}),
        names=("piecewise_constant_schedule", "boundaries_and_scales"),
    ),
    "polynomial_power_string": Bad(
        gradtx.polynomial_schedule,
        dict(init_value=1.0, end_value=0.0, power="2", transition_steps=10),
        TypeError,
        names=("polynomial_schedule", "power"),
    ),
    "polynomial_power_zero": Bad(
        gradtx.polynomial_schedule,
        dict(init_value=1.0, end_value=0.0, power=0.0, transition_steps=3),
        names=("polynomial_schedule", "power"),
    ),
    "sgdr_cosine_kwargs_none": Bad(
        gradtx.sgdr_schedule,
        args=(None,),
        error=TypeError,
        names=("sgdr_schedule", "cosine_kwargs"),
    ),
    "sgdr_decay_steps_zero": Bad(
        gradtx.sgdr_schedule,
        args=([dict(init_value=0.0, peak_value=1.0, warmup_steps=0, decay_steps=0)],),
        names=("sgdr_schedule", "cosine_kwargs[0]", "decay_steps"),
    ),
    "warmup_constant_steps_string": Bad(
        gradtx.warmup_constant_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps="5"),
        TypeError,
        names=("warmup_constant_schedule", "warmup_steps"),
    ),
    "warmup_constant_steps_negative": Bad(
        gradtx.warmup_constant_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=-1),
        names=("warmup_constant_schedule", "warmup_steps"),
    ),
    "warmup_cosine_decay_steps_none": Bad(
        gradtx.warmup_cosine_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=None),
        TypeError,
        names=("warmup_cosine_decay_schedule", "decay_steps"),
    ),
    "warmup_cosine_peak_nan": Bad(
        gradtx.warmup_cosine_decay_schedule,
        dict(init_value=0.0, peak_value=NAN, warmup_steps=5, decay_steps=20),
        names=("warmup_cosine_decay_schedule", "peak_value"),
    ),
    "warmup_exponential_rate_string": Bad(
        gradtx.warmup_exponential_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=5, transition_steps=10, decay_rate="0.5"),
        TypeError,
        names=("warmup_exponential_decay_schedule", "decay_rate"),
    ),
    "warmup_exponential_rate_negative": Bad(
        gradtx.warmup_exponential_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=5, transition_steps=10, decay_rate=-0.5),
        names=("warmup_exponential_decay_schedule", "decay_rate"),
    ),
    "warmup_stable_decay_type_none": Bad(
        gradtx.warmup_stable_decay_schedule,
        dict(peak_value=1.0, warmup_steps=5, stable_steps=5, decay_steps=5, decay_type=None),
        TypeError,
        names=("warmup_stable_decay_schedule", "decay_type"),
    ),
    "warmup_stable_stable_steps_negative": Bad(
        gradtx.warmup_stable_decay_schedule,
        dict(peak_value=1.0, warmup_steps=5, stable_steps=-1, decay_steps=5),
        names=("warmup_stable_decay_schedule", "stable_steps"),
    ),
    # counts past int32: steps are counted in int32, so these are never reached, and the
    # comparison with the int32 counter overflowed at the first update
    "lookahead_sync_period_past_int32": Bad(
        gradtx.lookahead,
        dict(fast_optimizer=gradtx.identity(), sync_period=2**40, slow_step_size=0.5),
        names=("lookahead", "sync_period"),
    ),
    "reduce_on_plateau_patience_past_int32": Bad(
        gradtx.reduce_on_plateau, dict(patience=2**40), names=("reduce_on_plateau", "patience")
    ),
    "backtracking_steps_past_int32": Bad(
        gradtx.scale_by_backtracking_linesearch,
        dict(max_backtracking_steps=2**40),
        names=("scale_by_backtracking_linesearch", "max_backtracking_steps"),
    ),
    "newton_cg_max_cg_steps_past_int32": Bad(
        gradtx.newton_cg, dict(max_cg_steps=2**40), names=("newton_cg", "max_cg_steps")
    ),
    "MultiSteps_every_k_past_int32": Bad(
        gradtx.MultiSteps,
        dict(opt=gradtx.identity(), every_k_schedule=2**40),
        names=("MultiSteps", "every_k_schedule"),
    ),
    "apply_if_finite_max_errors_past_int32": Bad(
        gradtx.apply_if_finite,
        dict(inner=gradtx.identity(), max_consecutive_errors=2**40),
        names=("apply_if_finite", "max_consecutive_errors"),
    ),
    # functions of states and trees (arguments made when the test runs)
    "apply_updates_wrong_shape": Bad(
        gradtx.apply_updates,
        late=lambda: (({"w": jnp.ones(3)}, {"w": jnp.ones((3, 1))}), {}),
        names=("apply_updates", "w"),
    ),
    "apply_updates_string_leaf": Bad(
        gradtx.apply_updates,
        late=lambda: (({"w": jnp.ones(3)}, {"w": np.asarray(["a", "b", "c"])}), {}),
        error=TypeError,
        names=("apply_updates", "updates", "w"),
    ),
    "safe_increment_bool": Bad(
        gradtx.safe_increment,
        late=lambda: ((jnp.asarray(True),), {}),
        names=("safe_increment", "count", "bool"),
    ),
    "safe_increment_string": Bad(
        gradtx.safe_increment, args=("a",), error=TypeError, names=("safe_increment", "count")
    ),
    "global_norm_string_leaf": Bad(
        gradtx.global_norm,
        args=({"w": "a"},),
        error=TypeError,
        names=("global_norm", "updates", "w"),
    ),
    "stateless_with_tree_map_not_callable": Bad(
        gradtx.stateless_with_tree_map,
        args=(3,),
        error=TypeError,
        names=("stateless_with_tree_map", "fn"),
    ),
    "scale_gradient_string_scale": Bad(
        gradtx.scale_gradient,
        args=(1.0, "a"),
        error=TypeError,
        names=("scale_gradient", "scale"),
    ),
    "incremental_update_string_step": Bad(
        gradtx.incremental_update,
        late=lambda: (({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, "a"), {}),
        error=TypeError,
        names=("incremental_update", "step_size"),
    ),
    "periodic_update_float_period": Bad(
        gradtx.periodic_update,
        late=lambda: (({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, 1, 2.5), {}),
        error=TypeError,
        names=("periodic_update", "update_period"),
    ),
    "periodic_update_zero_period": Bad(
        gradtx.periodic_update,
        late=lambda: (({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, 1, 0), {}),
        names=("periodic_update", "update_period"),
    ),
    "set_hyperparams_lr_string": Bad(
        gradtx.set_hyperparams,
        late=lambda: ((_adam_state(),), dict(learning_rate="0.1")),
        error=TypeError,
        names=("set_hyperparams", "learning_rate"),
    ),
    "set_hyperparams_b1_one": Bad(
        gradtx.set_hyperparams,
        late=lambda: ((_adam_state(),), dict(b1=1.0)),
        names=("set_hyperparams", "b1"),
    ),
    "sweep_string": Bad(
        gradtx.sweep,
        late=lambda: ((_adam_state(),), dict(learning_rate=["0.1", "0.2"])),
        error=TypeError,
        names=("sweep", "learning_rate"),
    ),
    "sweep_negative": Bad(
        gradtx.sweep,
        late=lambda: ((_adam_state(),), dict(learning_rate=[0.1, -0.1])),
        names=("sweep", "learning_rate"),
    ),
    "check_state_wrong_shape": Bad(
        gradtx.check_state,
        late=lambda: ((_adam_state(), gradtx.adam(1e-3).init({"w": jnp.zeros((3, 1))})), {}),
        names=("check_state", "inner_state/0/mu/w"),
    ),
    "restore_state_wrong_shape": Bad(
        gradtx.restore_state,
        late=lambda: ((_adam_state(), gradtx.adam(1e-3).init({"w": jnp.zeros(4)})), {}),
        names=("restore_state", "inner_state/0/mu/w"),
    ),
    "slow_params_not_lookahead": Bad(
        gradtx.slow_params, late=lambda: ((_adam_state(),), {}), names=("slow_params", "lookahead")
    ),
    "step_stats_not_monitored": Bad(
        gradtx.step_stats, late=lambda: ((_adam_state(),), {}), names=("step_stats", "monitor")
    ),
    "hvp_not_callable": Bad(
        gradtx.hvp,
        late=lambda: ((None, {"w": jnp.ones(3)}, {"w": jnp.ones(3)}), {}),
        error=TypeError,
        names=("hvp", "fn"),
    ),
    "hvp_wrong_shape": Bad(
        gradtx.hvp,
        late=lambda: ((_sum_of_squares, {"w": jnp.ones(3)}, {"w": jnp.ones((3, 1))}), {}),
        names=("hvp", "w", "v"),
    ),
    "conjugate_gradient_matvec_not_callable": Bad(
        gradtx.conjugate_gradient,
        kwargs=dict(max_steps=3),
        late=lambda: (("A", jnp.ones(3)), {}),
        error=TypeError,
        names=("conjugate_gradient", "matvec"),
    ),
    "conjugate_gradient_steps_zero": Bad(
        gradtx.conjugate_gradient,
        kwargs=dict(max_steps=0),
        late=lambda: ((_identity_matvec, jnp.ones(3)), {}),
        names=("conjugate_gradient", "max_steps"),
    ),
    "conjugate_gradient_tol_negative": Bad(
        gradtx.conjugate_gradient,
        kwargs=dict(max_steps=3, tol=-1e-5),
        late=lambda: ((_identity_matvec, jnp.ones(3)), {}),
        names=("conjugate_gradient", "tol"),
    ),
    "state_sharding_zero_axis_int": Bad(
        gradtx.state_sharding,
        kwargs=dict(zero_axis=0),
        late=lambda: ((gradtx.adam(1e-3), {"w": jnp.zeros(4)}), {}),
        error=TypeError,
        names=("state_sharding", "zero_axis"),
    ),
    "state_sharding_zero_axis_without_mesh": Bad(
        gradtx.state_sharding,
        kwargs=dict(zero_axis="data"),
        late=lambda: ((gradtx.adam(1e-3), {"w": jnp.zeros(4)}), {}),
        names=("state_sharding", "zero_axis"),
    ),
    "state_sharding_tx_string": Bad(
        gradtx.state_sharding,
        late=lambda: (("adam", {"w": jnp.zeros(4)}), {}),
        error=TypeError,
        names=("state_sharding", "tx"),
    ),
    # A v of another shape than b broadcast in the residual and corrupted the solve silently
    "conjugate_gradient_matvec_wrong_shape": Bad(
        gradtx.conjugate_gradient,
        kwargs=dict(max_steps=3),
        late=lambda: ((_summing_matvec, {"w": jnp.ones(3)}), {}),
        names=("conjugate_gradient", "w", "matvec(x)"),
    ),
}
BAD.update(registry.entries("BAD"))


# Rows that fail today for want of a fix in a file this test's author does not own.
NEEDS_FIX: dict[str, str] = {}


def _bad_params():
    for name, case in BAD.items():
        marks = (
            [pytest.mark.xfail(strict=True, reason=NEEDS_FIX[name])] if name in NEEDS_FIX else []
        )
        yield pytest.param(case, id=name, marks=marks)


@pytest.mark.parametrize("case", list(_bad_params()))
def test_bad_argument_raises_naming_function_and_argument(case):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    missing = [name for name in case.names if not _names(message, name)]
    assert not missing, f"the message does not name {missing}: {message!r}"


# ---- coverage: every public callable has its rows ------------------------------------------

# Public callables with no row at all: none of their arguments can be wrong.
NO_ARGUMENTS = {
    "identity": "takes no arguments",
    "set_to_zero": "takes no arguments",
    "hyperparams": (
        "reads any pytree: a state without live hyperparameters (a stateless chain, or no "
        "optimizer state at all) has none, so {} is the answer, not an error"
    ),
}
NO_ARGUMENTS.update(
    {
        name: "a type (optax's name for it): annotations, not calls"
        for name in (
            "OptState",
            "Params",
            "Updates",
            "Schedule",
            "TransformInitFn",
            "TransformUpdateFn",
        )
    }
)
NO_ARGUMENTS["init_empty_state"] = "any params: the state is EmptyState() whatever they are"
NO_ARGUMENTS.update(registry.entries("NO_ARGUMENTS"))

# Public callables without an argument that has a range: a wrong-type row only.
NO_RANGE = {
    "chain": "only transformations; a non-transformation is the wrong-type row",
    "checked": "only a transformation (the values it checks are tested in test_checked)",
    "masked": "a transformation and a mask of bools (a mask that does not fit: test_partition)",
    "freeze": "a mask of bools and an optional transformation",
    "stateless": "only a function",
    "global_norm": "a tree of arrays: any values have a norm",
    "stateless_with_tree_map": "only a function",
    "scale_gradient": "any real scale: 0 stops the gradient, a negative one reverses it",
    "incremental_update": "any step_size: outside [0, 1] it extrapolates, as optax's does",
    "value_and_grad_from_state": "only a function",
    "centralize": "unit_axis is any int; it is checked against each leaf's rank in update",
}
NO_RANGE.update(registry.entries("NO_RANGE"))

# Public callables taking a state or a tree, where any object is a pytree: a wrong one is a
# ValueError saying what the state or tree lacks; an out-of-range row only.
NO_WRONG_TYPE = {
    "check_state": "any object is a pytree: a wrong checkpoint is a ValueError naming paths",
    "restore_state": "any object is a pytree: a wrong checkpoint is a ValueError naming paths",
    "slow_params": "any object is a pytree: a state without lookahead is a ValueError",
    "step_stats": "any object is a pytree: a state without monitor is a ValueError",
}
NO_WRONG_TYPE.update(registry.entries("NO_WRONG_TYPE"))


def _public_callables() -> list[str]:
    """Every name in gradtx.__all__ a user calls: functions, and classes that are not NamedTuples
    (states and the transformation pair are data, not factories)."""
    names = []
    for name in gradtx.__all__:
        obj = getattr(gradtx, name)
        if isinstance(obj, type) and issubclass(obj, tuple):
            continue
        if callable(obj):
            names.append(name)
    return names


def _rows_by_public_name() -> dict[str, set[type[Exception]]]:
    found: dict[str, set[type[Exception]]] = {name: set() for name in _public_callables()}
    for case in BAD.values():
        for name in found:
            if getattr(gradtx, name) is case.factory:
                found[name].add(case.error)
    return found


def test_every_public_callable_has_a_wrong_type_and_an_out_of_range_row():
    found = _rows_by_public_name()
    missing = {}
    for name, errors in found.items():
        if name in NO_ARGUMENTS:
            continue
        need = set()
        if name not in NO_WRONG_TYPE:
            need.add(TypeError)
        if name not in NO_RANGE:
            need.add(ValueError)
        if need - errors:
            missing[name] = sorted(e.__name__ for e in need - errors)
    assert not missing, f"public callables without a bad-argument row of these kinds: {missing}"
    assert len(found) >= 70, f"only {len(found)} public callables found: {sorted(found)}"


def test_exemptions_are_public_names_with_a_reason():
    public = set(_public_callables())
    for table in (NO_ARGUMENTS, NO_RANGE, NO_WRONG_TYPE):
        assert set(table) <= public, set(table) - public
        assert all(reason.strip() for reason in table.values())
    assert not (set(NO_RANGE) & set(NO_WRONG_TYPE))
    for name in ("identity", "set_to_zero"):
        assert not inspect.signature(getattr(gradtx, name)).parameters


def test_no_argument_callables_really_have_no_rows():
    # an exempted callable with rows would hide a stale exemption
    found = _rows_by_public_name()
    assert not [name for name in NO_ARGUMENTS if found[name]]


def test_hyperparams_of_a_state_without_any_is_empty():
    assert gradtx.hyperparams(gradtx.sgd(0.1).init({"w": jnp.zeros(3)})) != {}
    assert gradtx.hyperparams(gradtx.identity().init({"w": jnp.zeros(3)})) == {}
    assert gradtx.hyperparams(None) == {}


def test_jax_array_hyperparameter_must_be_a_scalar():
    # not in the table, which is built at import: JAX arrays are made when the tests run
    with pytest.raises(ValueError) as info:
        gradtx.adam(learning_rate=jnp.ones(3))
    message = str(info.value)
    assert _names(message, "adam") and _names(message, "learning_rate"), message
    assert "(3,)" in message


# ---- set_hyperparams ---------------------------------------------------------------------


ADAM_NAMES = ("learning_rate", "b1", "b2", "eps", "eps_root")


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
        ({"learning_rate": 1e39}, ValueError, "float32"),
        ({"eps": np.float64(-1e300)}, ValueError, "eps"),
    ],
    ids=[
        "b1_above_1",
        "lr_nan",
        "lr_negative",
        "b2_one",
        "lr_string",
        "lr_vector",
        "schedule",
        "lr_beyond_float32",
        "eps_beyond_float32",
    ],
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


# ---- wrong-shaped leaves, every transformation ------------------------------------------
#
# A leaf of another shape than the state's would broadcast silently in a plain tree map:
# (3, 1) against (3,) gives (3, 3), (1,) against () gives (1,) and a count of elements the
# state never had. Each transformation below must refuse each kind, eagerly and under jit,
# with a message naming the path.


def _objective(params, **extra):
    del extra  # the extra arguments of update reach value_fn too
    return sum(jnp.sum(x * x) for x in jax.tree.leaves(params))


def _shape_params():
    return {"w": jnp.ones((3,), jnp.float32), "b": jnp.ones((), jnp.float32), "s": jnp.ones((3,))}


def _reshaped(path: str, shape: tuple[int, ...]):
    def make(params):
        return {**params, path: jnp.ones(shape, jnp.float32)}

    return make


# kind -> (the bad tree from the good one, the path the message must name)
SHAPE_KINDS = {
    "column_for_vector": (_reshaped("w", (3, 1)), "w"),
    "vector_for_scalar": (_reshaped("b", (1,)), "b"),
    "longer_vector": (_reshaped("s", (4,)), "s"),
}

_LABELS = {"w": "adam", "b": "sgd", "s": "adam"}
_MASK = {"w": True, "b": False, "s": True}

# Every transformation the library makes: optimizers, elementary links, wrappers.
TRANSFORMATIONS = {
    "sgd": lambda: gradtx.sgd(0.1),
    "sgd_momentum": lambda: gradtx.sgd(0.1, momentum=0.9),
    "sgd_scheduled": lambda: gradtx.sgd(gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 2, 10)),
    "adam": lambda: gradtx.adam(0.1),
    "adam_bf16_moments": lambda: gradtx.adam(0.1, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16),
    "adam_8bit_moments": lambda: gradtx.adam(0.1, optim_bits=8, min_8bit_size=1),
    "adamw": lambda: gradtx.adamw(0.1),
    "rmsprop": lambda: gradtx.rmsprop(0.1),
    "rmsprop_centered": lambda: gradtx.rmsprop(0.1, centered=True, momentum=0.9),
    "adagrad": lambda: gradtx.adagrad(0.1),
    "adadelta": lambda: gradtx.adadelta(),
    "lamb": lambda: gradtx.lamb(0.1),
    "lars": lambda: gradtx.lars(0.1),
    "lbfgs": lambda: gradtx.lbfgs(),
    "newton_cg": lambda: gradtx.newton_cg(),
    "trace": lambda: gradtx.trace(0.9),
    "ema": lambda: gradtx.ema(0.9),
    "ema_params": lambda: gradtx.ema_params(0.9),
    "bias_correction": lambda: gradtx.bias_correction(0.9),
    "scale": lambda: gradtx.scale(0.5),
    "scale_by_learning_rate": lambda: gradtx.scale_by_learning_rate(0.1),
    "scale_by_adam": lambda: gradtx.scale_by_adam(),
    "scale_by_rms": lambda: gradtx.scale_by_rms(),
    "scale_by_stddev": lambda: gradtx.scale_by_stddev(),
    "scale_by_rss": lambda: gradtx.scale_by_rss(),
    "scale_by_adadelta": lambda: gradtx.scale_by_adadelta(),
    "scale_by_trust_ratio": lambda: gradtx.scale_by_trust_ratio(),
    "scale_by_lbfgs": lambda: gradtx.scale_by_lbfgs(),
    "scale_by_newton_cg": lambda: gradtx.scale_by_newton_cg(),
    "scale_by_backtracking_linesearch": lambda: gradtx.scale_by_backtracking_linesearch(5),
    "scale_by_zoom_linesearch": lambda: gradtx.scale_by_zoom_linesearch(5),
    "backtracking_store_grad": lambda: gradtx.scale_by_backtracking_linesearch(5, store_grad=True),
    "add_decayed_weights": lambda: gradtx.add_decayed_weights(0.1),
    "add_noise": lambda: gradtx.add_noise(0.1, 0.55, seed=0),
    "centralize": lambda: gradtx.centralize(),
    "clip": lambda: gradtx.clip(1.0),
    "clip_by_norm": lambda: gradtx.clip_by_norm(1.0),
    "clip_by_global_norm": lambda: gradtx.clip_by_global_norm(1.0),
    "adaptive_grad_clip": lambda: gradtx.adaptive_grad_clip(0.1),
    "reduce_on_plateau": lambda: gradtx.reduce_on_plateau(),
    "chain": lambda: gradtx.chain(gradtx.clip(1.0), gradtx.scale_by_adam(), gradtx.scale(-0.1)),
    "named_chain": lambda: gradtx.named_chain(
        ("adam", gradtx.scale_by_adam()), ("lr", gradtx.scale(-0.1))
    ),
    "MultiSteps": lambda: gradtx.MultiSteps(gradtx.adam(0.1), 2),
    "MultiSteps_sgd": lambda: gradtx.MultiSteps(gradtx.sgd(0.1), 2),
    "lookahead": lambda: gradtx.lookahead(gradtx.adam(0.1), 2, 0.5),
    "apply_if_finite": lambda: gradtx.apply_if_finite(gradtx.adam(0.1), 3),
    "apply_if_finite_sgd": lambda: gradtx.apply_if_finite(gradtx.sgd(0.1), 3),
    "grouped": lambda: gradtx.grouped(gradtx.adam(0.1), check=False),
    "grouped_sgd": lambda: gradtx.grouped(gradtx.sgd(0.1), check=False),
    "partition": lambda: gradtx.partition(
        {"adam": gradtx.adam(0.1), "sgd": gradtx.sgd(0.1)}, _LABELS
    ),
    "masked": lambda: gradtx.masked(gradtx.adam(0.1), _MASK),
    "freeze": lambda: gradtx.freeze(_MASK, inner=gradtx.adam(0.1)),
    "monitor": lambda: gradtx.monitor(gradtx.adam(0.1)),
}
TRANSFORMATIONS.update(registry.entries("TRANSFORMATIONS"))

# Without state shaped like the params (and without reading the params) a transformation
# cannot tell a wrong shape: it hands the leaf on unchanged in shape, and the training step's
# apply_updates refuses it, naming the path, before any param changes.
PASS_THROUGH = {
    "sgd",
    "sgd_scheduled",
    "bias_correction",
    "scale",
    "scale_by_learning_rate",
    "add_noise",
    "centralize",
    "clip",
    "clip_by_norm",
    "clip_by_global_norm",
    "reduce_on_plateau",
    "apply_if_finite_sgd",
}
PASS_THROUGH |= set(registry.rows("PASS_THROUGH"))

# Transformations that read the params: a wrongly shaped param is refused too.
READS_PARAMS = {
    "adamw",
    "adadelta",
    "lamb",
    "lars",
    "lbfgs",
    "newton_cg",
    "scale_by_trust_ratio",
    "scale_by_lbfgs",
    "scale_by_newton_cg",
    "scale_by_backtracking_linesearch",
    "backtracking_store_grad",
    "scale_by_zoom_linesearch",
    "add_decayed_weights",
    "adaptive_grad_clip",
    "lookahead",
    "grouped",
    "grouped_sgd",
    "partition",
    "masked",
    "freeze",
}
READS_PARAMS |= set(registry.rows("READS_PARAMS"))


def _update_fn(tx, *, apply: bool, jit: bool):
    def step(grads, state, params):
        extra = dict(value=_objective(params), grad=grads, value_fn=_objective)
        extra["loss"] = extra["value"]
        updates, state = tx.update(grads, state, params, **extra)
        return (gradtx.apply_updates(params, updates) if apply else updates), state

    return jax.jit(step) if jit else step


def _refusal(step, grads, state, params, path: str) -> str:
    with pytest.raises(ValueError) as info:
        step(grads, state, params)
    message = str(info.value)
    assert f"'{path}'" in message, f"the message does not name {path!r}: {message!r}"
    assert "PyTreeDef" not in message and "pytree structure error" not in message, message
    return message


@pytest.mark.parametrize("name", TRANSFORMATIONS)
def test_wrong_shaped_gradient_is_refused_naming_the_path(name):
    tx = TRANSFORMATIONS[name]()
    params = _shape_params()
    # 8-bit moments built eagerly compile a dozen small quantization ops (3 s); one program here
    state = (jax.jit(tx.init) if name == "adam_8bit_moments" else tx.init)(params)
    # the stateful ones refuse in update itself; the others when the step applies the updates
    apply = name in PASS_THROUGH
    for jit in (False, True):
        step = _update_fn(tx, apply=apply, jit=jit)
        for make, path in SHAPE_KINDS.values():
            _refusal(step, make(params), state, params, path)


@pytest.mark.parametrize("name", sorted(READS_PARAMS))
def test_wrong_shaped_param_is_refused_naming_the_path(name):
    tx = TRANSFORMATIONS[name]()
    params = _shape_params()
    state = tx.init(params)
    for jit in (False, True):
        step = _update_fn(tx, apply=False, jit=jit)
        for make, path in SHAPE_KINDS.values():
            _refusal(step, params, state, make(params), path)


# Transformations whose state holds nothing shaped like a leaf (or, for grouped, one flat
# buffer per dtype): gradients and params of a new shape, consistent with each other, give a
# correct update for them, and the state cannot tell. All others keep per-leaf state and must
# refuse a state made for other shapes.
NO_PER_LEAF_STATE = PASS_THROUGH | {
    "add_decayed_weights",
    "adaptive_grad_clip",
    "scale_by_trust_ratio",
    "scale_by_backtracking_linesearch",
    "scale_by_newton_cg",
    "newton_cg",
    "grouped",
    "grouped_sgd",
    # the leaves routed to sgd, left unmasked or frozen keep no state; the others do
    "partition",
    "masked",
    "freeze",
}
NO_PER_LEAF_STATE |= set(registry.rows("NO_PER_LEAF_STATE"))


@pytest.mark.parametrize("name", sorted(set(TRANSFORMATIONS) - NO_PER_LEAF_STATE))
def test_state_made_for_other_shapes_is_refused_naming_the_path(name):
    # gradients and params agree with each other; the state is from the model before a change
    tx = TRANSFORMATIONS[name]()
    params = _shape_params()
    state = (jax.jit(tx.init) if name == "adam_8bit_moments" else tx.init)(params)
    for jit in (False, True):
        step = _update_fn(tx, apply=False, jit=jit)
        for make, path in SHAPE_KINDS.values():
            _refusal(step, make(params), state, make(params), path)


def test_the_pass_through_and_reads_params_tables_name_transformations():
    assert PASS_THROUGH <= set(TRANSFORMATIONS) and READS_PARAMS <= set(TRANSFORMATIONS)
    assert NO_PER_LEAF_STATE <= set(TRANSFORMATIONS)
    assert not PASS_THROUGH & READS_PARAMS


WRAPPERS_WITHOUT_PARAMS = (
    "MultiSteps",
    "apply_if_finite",
    "grouped",
    "partition",
    "masked",
    "freeze",
    "monitor",
)


@pytest.mark.parametrize("name", WRAPPERS_WITHOUT_PARAMS)
def test_wrapper_without_params_refuses_a_wrong_shape_before_params_change(name):
    # Without params to compare with, a leaf routed to a stateless part (sgd in the partition,
    # an unmasked leaf), or one of grouped's buffers with the same number of elements, passes
    # update in its own shape; apply_updates refuses it, so no param and no state is committed.
    tx = TRANSFORMATIONS[name]()
    params = _shape_params()
    state = tx.init(params)

    def step(grads, state, params):
        updates, state = tx.update(grads, state, None)
        return gradtx.apply_updates(params, updates), state

    for jit in (False, True):
        for make, path in SHAPE_KINDS.values():
            _refusal(jax.jit(step) if jit else step, make(params), state, params, path)


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_apply_updates_refuses_a_wrong_shaped_update(kind):
    make, path = SHAPE_KINDS[kind]
    params = _shape_params()
    for jit in (False, True):
        apply = jax.jit(gradtx.apply_updates) if jit else gradtx.apply_updates
        with pytest.raises(ValueError) as info:
            apply(params, make(params))
        message = str(info.value)
        assert _names(message, "apply_updates") and f"'{path}'" in message, message


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("reduce_on_plateau", "loss"),
        ("scale_by_backtracking_linesearch", "value"),
        ("scale_by_zoom_linesearch", "value"),
        ("lbfgs", "value"),
    ],
)
def test_non_scalar_objective_is_refused_naming_the_argument(name, argument):
    # a per-example loss vector would otherwise broadcast into the comparisons of the search
    tx = TRANSFORMATIONS[name]()
    params = _shape_params()
    state = tx.init(params)

    def step(grads, state, params):
        value = jnp.ones(3)
        return tx.update(
            grads, state, params, value=value, loss=value, grad=grads, value_fn=_objective
        )

    for jit in (False, True):
        with pytest.raises(ValueError) as info:
            (jax.jit(step) if jit else step)(params, state, params)
        message = str(info.value)
        assert _names(message, name) and _names(message, argument) and "(3,)" in message


def test_swept_state_used_without_vmap_is_refused_naming_the_path():
    # a sweep stacks every state leaf on a new axis: without vmap it no longer fits the grads
    tx = gradtx.adam(1e-3)
    params = {"w": jnp.ones(3)}
    states = gradtx.sweep(tx.init(params), learning_rate=[1e-3, 1e-2, 1e-1])
    with pytest.raises(ValueError) as info:
        jax.jit(tx.update)(params, states, params)
    assert "'w'" in str(info.value), str(info.value)


NEED_PARAMS = {
    "add_decayed_weights": lambda: gradtx.add_decayed_weights(1e-4),
    "scale_by_trust_ratio": lambda: gradtx.scale_by_trust_ratio(),
    "lamb": lambda: gradtx.lamb(1e-3),
    "adamw": lambda: gradtx.adamw(1e-3),
    "lars": lambda: gradtx.lars(0.1),
}
NEED_PARAMS.update(registry.entries("NEED_PARAMS"))


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
GOOD.update(registry.entries("GOOD"))


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


_HUGE = 2**40  # a step count past int32: Python ints of this size overflowed in the array math

# name -> (schedule with a huge step count, the range its values lie in)
HUGE_STEPS = {
    "linear_schedule": (lambda: gradtx.linear_schedule(1.0, 0.0, _HUGE), (0.0, 1.0)),
    "cosine_decay_schedule": (lambda: gradtx.cosine_decay_schedule(1.0, _HUGE), (0.0, 1.0)),
    "polynomial_schedule": (lambda: gradtx.polynomial_schedule(1.0, 0.0, 2.0, _HUGE), (0.0, 1.0)),
    "inverse_sqrt_schedule": (lambda: gradtx.inverse_sqrt_schedule(1.0, _HUGE), (0.0, 1.0)),
    "warmup_constant_schedule": (
        lambda: gradtx.warmup_constant_schedule(0.0, 1.0, _HUGE),
        (0.0, 1.0),
    ),
    "warmup_cosine_decay_schedule": (
        lambda: gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 5, _HUGE),
        (0.0, 1.0),
    ),
    "warmup_exponential_decay_schedule": (
        lambda: gradtx.warmup_exponential_decay_schedule(0.0, 1.0, _HUGE, 10, 0.5),
        (0.0, 1.0),
    ),
    "one_cycle_schedule": (lambda: gradtx.one_cycle_schedule(_HUGE, 1.0), (0.0, 1.0)),
    "one_cycle_momentum_schedule": (
        lambda: gradtx.one_cycle_momentum_schedule(_HUGE),
        (0.85, 0.95),
    ),
    "sgdr_schedule": (
        lambda: gradtx.sgdr_schedule(
            [dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=_HUGE)]
        ),
        (0.0, 1.0),
    ),
}


@pytest.mark.parametrize("name", HUGE_STEPS)
def test_step_counts_past_int32_are_valid(name):
    make, (low, high) = HUGE_STEPS[name]
    schedule = make()
    for t in (0, 10, 1000):
        eager = np.float32(schedule(jnp.asarray(t, jnp.int32)))
        assert low - 1e-6 <= eager <= high + 1e-6 and np.isfinite(eager), (t, eager)
        assert np.float32(jax.jit(schedule)(jnp.asarray(t, jnp.int32))) == eager


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
