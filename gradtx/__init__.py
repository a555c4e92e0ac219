"""gradtx: composable gradient transformations for JAX.

A transformation is a pair of pure functions ``(init, update)``; small ones (momentum, averages,
second-moment scaling, weight decay, clipping, learning rates) compose with :func:`chain` into
SGD, RMSProp, Adam, AdamW, LAMB and the rest. Every numeric hyperparameter is a float or a
schedule and lives in the state: read it with :func:`hyperparams`, change it with
:func:`set_hyperparams`, without recompiling.

Every factory validates the hyperparameters it is given as concrete numbers, when it is called.
It cannot validate values traced inside ``jit`` or ``vmap`` (a learning rate that is an argument
of a jitted function), nor what a schedule returns after step 0: wrap the optimizer in
:func:`checked` to check those at run time, inside the compiled step.
"""

from gradtx import contrib as contrib
from gradtx import microbatching as microbatching
from gradtx import schedules as schedules
from gradtx import second_order as second_order
from gradtx import transforms as transforms
from gradtx import tree as tree
from gradtx import tree_utils as tree_utils
from gradtx._core.base import EmptyState as EmptyState
from gradtx._core.base import GradientTransformation as GradientTransformation
from gradtx._core.base import GradientTransformationExtraArgs as GradientTransformationExtraArgs
from gradtx._core.base import OptState as OptState
from gradtx._core.base import Params as Params
from gradtx._core.base import TransformInitFn as TransformInitFn
from gradtx._core.base import TransformUpdateExtraArgsFn as TransformUpdateExtraArgsFn
from gradtx._core.base import TransformUpdateFn as TransformUpdateFn
from gradtx._core.base import Updates as Updates
from gradtx._core.base import apply_updates as apply_updates
from gradtx._core.base import identity as identity
from gradtx._core.base import init_empty_state as init_empty_state
from gradtx._core.base import set_to_zero as set_to_zero
from gradtx._core.base import stateless as stateless
from gradtx._core.base import stateless_with_tree_map as stateless_with_tree_map
from gradtx._core.base import with_extra_args_support as with_extra_args_support
from gradtx._core.checkpoint import check_state as check_state
from gradtx._core.checkpoint import restore_state as restore_state
from gradtx._core.combine import chain as chain
from gradtx._core.combine import freeze as freeze
from gradtx._core.combine import masked as masked
from gradtx._core.combine import named_chain as named_chain
from gradtx._core.combine import partition as partition
from gradtx._core.distributions import multi_normal as multi_normal
from gradtx._core.grouped import GroupedState as GroupedState
from gradtx._core.grouped import grouped as grouped
from gradtx._core.hyper import Hyperparam as Hyperparam
from gradtx._core.hyper import HyperState as HyperState
from gradtx._core.hyper import ScalarOrSchedule as ScalarOrSchedule
from gradtx._core.hyper import Schedule as Schedule
from gradtx._core.hyper_access import hyperparams as hyperparams
from gradtx._core.hyper_access import set_hyperparams as set_hyperparams
from gradtx._core.hyper_access import sweep as sweep
from gradtx._core.multi_transform import MaskedNode as MaskedNode
from gradtx._core.multi_transform import MaskedState as MaskedState
from gradtx._core.multi_transform import MaskOrFn as MaskOrFn
from gradtx._core.multi_transform import MultiTransformState as MultiTransformState
from gradtx._core.multi_transform import multi_transform as multi_transform
from gradtx._core.multi_transform import selective_transform as selective_transform
from gradtx._core.numerics import global_norm as global_norm
from gradtx._core.numerics import incremental_update as incremental_update
from gradtx._core.numerics import periodic_update as periodic_update
from gradtx._core.numerics import safe_increment as safe_increment
from gradtx._core.numerics import safe_int32_increment as safe_int32_increment
from gradtx._core.numerics import safe_norm as safe_norm
from gradtx._core.numerics import safe_root_mean_squares as safe_root_mean_squares
from gradtx._core.numerics import scale_gradient as scale_gradient
from gradtx._core.sharding import state_sharding as state_sharding
from gradtx._core.state_utils import tree_map_params as tree_map_params
from gradtx._curvature.lbfgs import lbfgs as lbfgs
from gradtx._curvature.lbfgs import scale_by_lbfgs as scale_by_lbfgs
from gradtx._curvature.linesearch import (
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
)
from gradtx._curvature.linesearch import value_and_grad_from_state as value_and_grad_from_state
from gradtx._curvature.newton import conjugate_gradient as conjugate_gradient
from gradtx._curvature.newton import hvp as hvp
from gradtx._curvature.newton import newton_cg as newton_cg
from gradtx._curvature.newton import scale_by_newton_cg as scale_by_newton_cg
from gradtx._curvature.sophia import (
    gauss_newton_bartlett_estimator_diag_hessian as gauss_newton_bartlett_estimator_diag_hessian,
)
from gradtx._curvature.sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from gradtx._curvature.sophia import scale_by_sophia as scale_by_sophia
from gradtx._curvature.sophia import sophia as sophia
from gradtx._curvature.zoom import scale_by_zoom_linesearch as scale_by_zoom_linesearch
from gradtx._interop.as_optax import as_optax as as_optax
from gradtx._interop.inject import InjectHyperparamsState as InjectHyperparamsState
from gradtx._interop.inject import (
    InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
)
from gradtx._interop.inject import StatefulSchedule as StatefulSchedule
from gradtx._interop.inject import WrappedSchedule as WrappedSchedule
from gradtx._interop.inject import inject_hyperparams as inject_hyperparams
from gradtx._interop.inject import inject_stateful_hyperparams as inject_stateful_hyperparams
from gradtx._interop.migration import from_optax_state as from_optax_state
from gradtx._interop.migration import to_optax_state as to_optax_state
from gradtx._interop.state_names import AdaptiveGradClipState as AdaptiveGradClipState
from gradtx._interop.state_names import AddDecayedWeightsState as AddDecayedWeightsState
from gradtx._interop.state_names import AddNoiseState as AddNoiseState
from gradtx._interop.state_names import ClipByGlobalNormState as ClipByGlobalNormState
from gradtx._interop.state_names import ClipState as ClipState
from gradtx._interop.state_names import EmaState as EmaState
from gradtx._interop.state_names import FactoredState as FactoredState
from gradtx._interop.state_names import GaLoreState as GaLoreState
from gradtx._interop.state_names import HutchinsonState as HutchinsonState
from gradtx._interop.state_names import LookaheadState as LookaheadState
from gradtx._interop.state_names import MadgradState as MadgradState
from gradtx._interop.state_names import MuonState as MuonState
from gradtx._interop.state_names import NormalizeState as NormalizeState
from gradtx._interop.state_names import PartitionState as PartitionState
from gradtx._interop.state_names import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from gradtx._interop.state_names import ScaleByAdanState as ScaleByAdanState
from gradtx._interop.state_names import ScaleByAdemamixState as ScaleByAdemamixState
from gradtx._interop.state_names import ScaleByAmsgradState as ScaleByAmsgradState
from gradtx._interop.state_names import (
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)
from gradtx._interop.state_names import ScaleByBeliefState as ScaleByBeliefState
from gradtx._interop.state_names import ScaleByLBFGSState as ScaleByLBFGSState
from gradtx._interop.state_names import ScaleByLionState as ScaleByLionState
from gradtx._interop.state_names import ScaleByNovogradState as ScaleByNovogradState
from gradtx._interop.state_names import ScaleByRmsState as ScaleByRmsState
from gradtx._interop.state_names import ScaleByRpropState as ScaleByRpropState
from gradtx._interop.state_names import ScaleByRssState as ScaleByRssState
from gradtx._interop.state_names import ScaleByRStdDevState as ScaleByRStdDevState
from gradtx._interop.state_names import ScaleByScheduleState as ScaleByScheduleState
from gradtx._interop.state_names import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from gradtx._interop.state_names import ScaleBySM3State as ScaleBySM3State
from gradtx._interop.state_names import ScaleByTrustRatioState as ScaleByTrustRatioState
from gradtx._interop.state_names import ScaleByZoomLinesearchState as ScaleByZoomLinesearchState
from gradtx._interop.state_names import ScaleState as ScaleState
from gradtx._interop.state_names import SophiaState as SophiaState
from gradtx._interop.state_names import TraceState as TraceState
from gradtx._interop.state_names import ZoomLinesearchInfo as ZoomLinesearchInfo
from gradtx._linalg.newton_schulz import (
    orthogonalize_via_newton_schulz as orthogonalize_via_newton_schulz,
)
from gradtx._linalg.nnls import nnls as nnls
from gradtx._linalg.roots import matrix_inverse_pth_root as matrix_inverse_pth_root
from gradtx._linalg.roots import power_iteration as power_iteration
from gradtx._linalg.view import MatrixDimensionNumbers as MatrixDimensionNumbers
from gradtx._linalg.view import MuonDimensionNumbers as MuonDimensionNumbers
from gradtx._linalg.view import as_matrices as as_matrices
from gradtx._linalg.view import matrix_shape as matrix_shape
from gradtx._optimizers.adam_descendants import acprop as acprop
from gradtx._optimizers.adam_descendants import ademamix as ademamix
from gradtx._optimizers.adam_descendants import adopt as adopt
from gradtx._optimizers.adam_descendants import laprop as laprop
from gradtx._optimizers.adam_descendants import simplified_ademamix as simplified_ademamix
from gradtx._optimizers.adam_descendants import stable_adamw as stable_adamw
from gradtx._optimizers.adam_like import adam as adam
from gradtx._optimizers.adam_like import adamax as adamax
from gradtx._optimizers.adam_like import adamaxw as adamaxw
from gradtx._optimizers.adam_like import adamw as adamw
from gradtx._optimizers.adam_like import amsgrad as amsgrad
from gradtx._optimizers.adam_like import nadam as nadam
from gradtx._optimizers.adam_like import nadamw as nadamw
from gradtx._optimizers.adam_relatives import adam_mini as adam_mini
from gradtx._optimizers.adam_relatives import madgrad as madgrad
from gradtx._optimizers.adam_relatives import mars as mars
from gradtx._optimizers.adam_variants import adabelief as adabelief
from gradtx._optimizers.adam_variants import adan as adan
from gradtx._optimizers.adam_variants import radam as radam
from gradtx._optimizers.adam_variants import yogi as yogi
from gradtx._optimizers.adaptive import adadelta as adadelta
from gradtx._optimizers.adaptive import adagrad as adagrad
from gradtx._optimizers.adaptive import rmsprop as rmsprop
from gradtx._optimizers.factored import adafactor as adafactor
from gradtx._optimizers.factored import came as came
from gradtx._optimizers.factored import sm3 as sm3
from gradtx._optimizers.layerwise import fromage as fromage
from gradtx._optimizers.layerwise import lamb as lamb
from gradtx._optimizers.layerwise import lars as lars
from gradtx._optimizers.layerwise import novograd as novograd
from gradtx._optimizers.low_rank import galore as galore
from gradtx._optimizers.lr_free import cocob as cocob
from gradtx._optimizers.lr_free import dadapt_adamw as dadapt_adamw
from gradtx._optimizers.lr_free import prodigy as prodigy
from gradtx._optimizers.lr_free_steps import dog as dog
from gradtx._optimizers.lr_free_steps import dowg as dowg
from gradtx._optimizers.lr_free_steps import momo as momo
from gradtx._optimizers.lr_free_steps import momo_adam as momo_adam
from gradtx._optimizers.matrix import EMBEDDING_OR_HEAD as EMBEDDING_OR_HEAD
from gradtx._optimizers.matrix import muon as muon
from gradtx._optimizers.matrix import muon_dimension_numbers as muon_dimension_numbers
from gradtx._optimizers.optimistic import optimistic_adam as optimistic_adam
from gradtx._optimizers.optimistic import optimistic_adam_v2 as optimistic_adam_v2
from gradtx._optimizers.optimistic import (
    optimistic_gradient_descent as optimistic_gradient_descent,
)
from gradtx._optimizers.privacy import dpsgd as dpsgd
from gradtx._optimizers.psgd import kron as kron
from gradtx._optimizers.schedule_free import schedule_free_adamw as schedule_free_adamw
from gradtx._optimizers.schedule_free import schedule_free_sgd as schedule_free_sgd
from gradtx._optimizers.sgd_like import asgd as asgd
from gradtx._optimizers.sgd_like import asgd_averaged_params as asgd_averaged_params
from gradtx._optimizers.sgd_like import noisy_sgd as noisy_sgd
from gradtx._optimizers.sgd_like import polyak_sgd as polyak_sgd
from gradtx._optimizers.sgd_like import sgd as sgd
from gradtx._optimizers.shampoo import shampoo as shampoo
from gradtx._optimizers.sign_based import lion as lion
from gradtx._optimizers.sign_based import rprop as rprop
from gradtx._optimizers.sign_based import sign_sgd as sign_sgd
from gradtx._optimizers.sign_based import signum as signum
from gradtx._optimizers.soap import soap as soap
from gradtx._schedules.basic import constant_schedule as constant_schedule
from gradtx._schedules.basic import cosine_decay_schedule as cosine_decay_schedule
from gradtx._schedules.basic import exponential_decay as exponential_decay
from gradtx._schedules.basic import inverse_sqrt_schedule as inverse_sqrt_schedule
from gradtx._schedules.basic import join_schedules as join_schedules
from gradtx._schedules.basic import linear_schedule as linear_schedule
from gradtx._schedules.basic import piecewise_constant_schedule as piecewise_constant_schedule
from gradtx._schedules.basic import polynomial_schedule as polynomial_schedule
from gradtx._schedules.cyclic import (
    cosine_warm_restarts_schedule as cosine_warm_restarts_schedule,
)
from gradtx._schedules.cyclic import (
    one_cycle_momentum_schedule as one_cycle_momentum_schedule,
)
from gradtx._schedules.cyclic import one_cycle_schedule as one_cycle_schedule
from gradtx._schedules.cyclic import sgdr_schedule as sgdr_schedule
from gradtx._schedules.piecewise import cosine_onecycle_schedule as cosine_onecycle_schedule
from gradtx._schedules.piecewise import linear_onecycle_schedule as linear_onecycle_schedule
from gradtx._schedules.piecewise import (
    piecewise_interpolate_schedule as piecewise_interpolate_schedule,
)
from gradtx._schedules.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradtx._schedules.plateau import reduce_on_plateau as reduce_on_plateau
from gradtx._schedules.warmup import warmup_constant_schedule as warmup_constant_schedule
from gradtx._schedules.warmup import (
    warmup_cosine_decay_schedule as warmup_cosine_decay_schedule,
)
from gradtx._schedules.warmup import (
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
)
from gradtx._schedules.warmup import (
    warmup_stable_decay_schedule as warmup_stable_decay_schedule,
)
from gradtx._transforms.adam_descendants import scale_by_ademamix as scale_by_ademamix
from gradtx._transforms.adam_descendants import scale_by_laprop as scale_by_laprop
from gradtx._transforms.adam_descendants import (
    scale_by_simplified_ademamix as scale_by_simplified_ademamix,
)
from gradtx._transforms.adam_descendants import scale_by_stable_adamw as scale_by_stable_adamw
from gradtx._transforms.adam_family import scale_by_adamax as scale_by_adamax
from gradtx._transforms.adam_family import scale_by_amsgrad as scale_by_amsgrad
from gradtx._transforms.adam_family import scale_by_radam as scale_by_radam
from gradtx._transforms.adam_family_moments import scale_by_adan as scale_by_adan
from gradtx._transforms.adam_family_moments import scale_by_belief as scale_by_belief
from gradtx._transforms.adam_family_moments import scale_by_yogi as scale_by_yogi
from gradtx._transforms.adam_relatives import scale_by_madgrad as scale_by_madgrad
from gradtx._transforms.adam_relatives import scale_by_mars as scale_by_mars
from gradtx._transforms.asynchronous_moments import scale_by_acprop as scale_by_acprop
from gradtx._transforms.asynchronous_moments import scale_by_adopt as scale_by_adopt
from gradtx._transforms.block_moments import AdamMiniBlocks as AdamMiniBlocks
from gradtx._transforms.block_moments import adam_mini_blocks as adam_mini_blocks
from gradtx._transforms.block_moments import scale_by_adam_mini as scale_by_adam_mini
from gradtx._transforms.block_norms import clip_by_block_rms as clip_by_block_rms
from gradtx._transforms.block_norms import normalize_by_update_norm as normalize_by_update_norm
from gradtx._transforms.block_norms import scale_by_novograd as scale_by_novograd
from gradtx._transforms.block_norms import scale_by_param_block_norm as scale_by_param_block_norm
from gradtx._transforms.block_norms import scale_by_param_block_rms as scale_by_param_block_rms
from gradtx._transforms.clipping import adaptive_grad_clip as adaptive_grad_clip
from gradtx._transforms.clipping import clip as clip
from gradtx._transforms.clipping import clip_by_global_norm as clip_by_global_norm
from gradtx._transforms.clipping import clip_by_norm as clip_by_norm
from gradtx._transforms.clipping import unitwise_clip as unitwise_clip
from gradtx._transforms.clipping import unitwise_norm as unitwise_norm
from gradtx._transforms.constraining import NonNegativeParamsState as NonNegativeParamsState
from gradtx._transforms.constraining import ZeroNansState as ZeroNansState
from gradtx._transforms.constraining import keep_params_nonnegative as keep_params_nonnegative
from gradtx._transforms.constraining import zero_nans as zero_nans
from gradtx._transforms.decay import add_decayed_weights as add_decayed_weights
from gradtx._transforms.eigenbasis import scale_by_soap as scale_by_soap
from gradtx._transforms.factored import scale_by_factored_rms as scale_by_factored_rms
from gradtx._transforms.factored import scale_by_sm3 as scale_by_sm3
from gradtx._transforms.factored_confidence import scale_by_came as scale_by_came
from gradtx._transforms.gradient_processing import add_noise as add_noise
from gradtx._transforms.gradient_processing import centralize as centralize
from gradtx._transforms.gradient_processing import normalize as normalize
from gradtx._transforms.kronecker import scale_by_shampoo as scale_by_shampoo
from gradtx._transforms.low_rank import GaLoreDimensionNumbers as GaLoreDimensionNumbers
from gradtx._transforms.low_rank import scale_by_galore as scale_by_galore
from gradtx._transforms.lr_free import COCOBState as COCOBState
from gradtx._transforms.lr_free import DAdaptAdamWState as DAdaptAdamWState
from gradtx._transforms.lr_free import ProdigyState as ProdigyState
from gradtx._transforms.lr_free import scale_by_cocob as scale_by_cocob
from gradtx._transforms.lr_free_steps import DoGState as DoGState
from gradtx._transforms.lr_free_steps import DoWGState as DoWGState
from gradtx._transforms.lr_free_steps import MomoAdamState as MomoAdamState
from gradtx._transforms.lr_free_steps import MomoState as MomoState
from gradtx._transforms.momentum import bias_correction as bias_correction
from gradtx._transforms.momentum import ema as ema
from gradtx._transforms.momentum import trace as trace
from gradtx._transforms.monitoring import MonitorState as MonitorState
from gradtx._transforms.monitoring import SnapshotState as SnapshotState
from gradtx._transforms.monitoring import measure_with_ema as measure_with_ema
from gradtx._transforms.monitoring import snapshot as snapshot
from gradtx._transforms.optimistic import (
    scale_by_optimistic_gradient as scale_by_optimistic_gradient,
)
from gradtx._transforms.orthogonal import scale_by_muon as scale_by_muon
from gradtx._transforms.orthogonal import scale_by_shape as scale_by_shape
from gradtx._transforms.periodic import ApplyEvery as ApplyEvery
from gradtx._transforms.periodic import apply_every as apply_every
from gradtx._transforms.polyak import scale_by_polyak as scale_by_polyak
from gradtx._transforms.privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from gradtx._transforms.privacy import (
    differentially_private_aggregate as differentially_private_aggregate,
)
from gradtx._transforms.privacy import per_example_global_norm_clip as per_example_global_norm_clip
from gradtx._transforms.privacy import per_example_layer_norm_clip as per_example_layer_norm_clip
from gradtx._transforms.psgd import precond_update_prob_schedule as precond_update_prob_schedule
from gradtx._transforms.psgd import scale_by_kron as scale_by_kron
from gradtx._transforms.quantized import QuantizedArray as QuantizedArray
from gradtx._transforms.second_moments import ScaleByAdamState as ScaleByAdamState
from gradtx._transforms.second_moments import scale_by_adadelta as scale_by_adadelta
from gradtx._transforms.second_moments import scale_by_adam as scale_by_adam
from gradtx._transforms.second_moments import scale_by_rms as scale_by_rms
from gradtx._transforms.second_moments import scale_by_rss as scale_by_rss
from gradtx._transforms.second_moments import scale_by_stddev as scale_by_stddev
from gradtx._transforms.sign import scale_by_lion as scale_by_lion
from gradtx._transforms.sign import scale_by_rprop as scale_by_rprop
from gradtx._transforms.sign import scale_by_sign as scale_by_sign
from gradtx._transforms.step_size import scale as scale
from gradtx._transforms.step_size import scale_by_learning_rate as scale_by_learning_rate
from gradtx._transforms.step_size import scale_by_schedule as scale_by_schedule
from gradtx._transforms.step_size import scale_by_trust_ratio as scale_by_trust_ratio
from gradtx._wrappers.accumulation import ApplyIfFiniteState as ApplyIfFiniteState
from gradtx._wrappers.accumulation import MultiSteps as MultiSteps
from gradtx._wrappers.accumulation import MultiStepsState as MultiStepsState
from gradtx._wrappers.accumulation import ShouldSkipUpdateFunction as ShouldSkipUpdateFunction
from gradtx._wrappers.accumulation import apply_if_finite as apply_if_finite
from gradtx._wrappers.accumulation import skip_large_updates as skip_large_updates
from gradtx._wrappers.accumulation import skip_not_finite as skip_not_finite
from gradtx._wrappers.averaging import LookaheadParams as LookaheadParams
from gradtx._wrappers.averaging import ema_params as ema_params
from gradtx._wrappers.averaging import lookahead as lookahead
from gradtx._wrappers.averaging import slow_params as slow_params
from gradtx._wrappers.cautious import CautiousState as CautiousState
from gradtx._wrappers.cautious import cautious as cautious
from gradtx._wrappers.checked import checked as checked
from gradtx._wrappers.complex_pairs import RealImaginaryPair as RealImaginaryPair
from gradtx._wrappers.complex_pairs import (
    SplitRealAndImaginaryState as SplitRealAndImaginaryState,
)
from gradtx._wrappers.complex_pairs import split_real_and_imaginary as split_real_and_imaginary
from gradtx._wrappers.conditional import ConditionallyMaskState as ConditionallyMaskState
from gradtx._wrappers.conditional import ConditionallyTransformState as ConditionallyTransformState
from gradtx._wrappers.conditional import conditionally_mask as conditionally_mask
from gradtx._wrappers.conditional import conditionally_transform as conditionally_transform
from gradtx._wrappers.layout import flatten as flatten
from gradtx._wrappers.mechanic import MechanicState as MechanicState
from gradtx._wrappers.mechanic import mechanize as mechanize
from gradtx._wrappers.microbatching import microbatch as microbatch
from gradtx._wrappers.monitor import MonitoredState as MonitoredState
from gradtx._wrappers.monitor import monitor as monitor
from gradtx._wrappers.monitor import step_stats as step_stats
from gradtx._wrappers.sam import SAMState as SAMState
from gradtx._wrappers.sam import adaptive_normalize as adaptive_normalize
from gradtx._wrappers.sam import sam as sam
from gradtx._wrappers.schedule_free import ScheduleFreeState as ScheduleFreeState
from gradtx._wrappers.schedule_free import schedule_free as schedule_free
from gradtx._wrappers.schedule_free import schedule_free_eval_params as schedule_free_eval_params

__version__ = "0.1.0"

# Every name bound above is public: each is imported "as" itself (the explicit re-export), and
# listing them again here only let the two lists drift apart.
__all__ = sorted(name for name in globals() if not name.startswith("_"))
