"""optax.transforms' names, for code written against optax: ``from gradtx import transforms``.

A thin namespace: each name is gradtx's own (``gradtx.transforms.clip is gradtx.clip``); the
code lives by concern in gradtx's private modules.
"""

from gradtx._core.combine import chain as chain
from gradtx._core.combine import freeze as freeze
from gradtx._core.combine import masked as masked
from gradtx._core.combine import named_chain as named_chain
from gradtx._core.combine import partition as partition
from gradtx._core.multi_transform import MaskedNode as MaskedNode
from gradtx._core.multi_transform import MaskedState as MaskedState
from gradtx._core.multi_transform import selective_transform as selective_transform
from gradtx._interop.state_names import PartitionState as PartitionState
from gradtx._transforms.block_norms import clip_by_block_rms as clip_by_block_rms
from gradtx._transforms.clipping import adaptive_grad_clip as adaptive_grad_clip
from gradtx._transforms.clipping import clip as clip
from gradtx._transforms.clipping import clip_by_global_norm as clip_by_global_norm
from gradtx._transforms.constraining import NonNegativeParamsState as NonNegativeParamsState
from gradtx._transforms.constraining import ZeroNansState as ZeroNansState
from gradtx._transforms.constraining import keep_params_nonnegative as keep_params_nonnegative
from gradtx._transforms.constraining import zero_nans as zero_nans
from gradtx._transforms.decay import add_decayed_weights as add_decayed_weights
from gradtx._transforms.gradient_processing import AddNoiseState as AddNoiseState
from gradtx._transforms.gradient_processing import add_noise as add_noise
from gradtx._transforms.momentum import EmaState as EmaState
from gradtx._transforms.momentum import TraceState as TraceState
from gradtx._transforms.momentum import ema as ema
from gradtx._transforms.momentum import trace as trace
from gradtx._transforms.monitoring import MonitorState as MonitorState
from gradtx._transforms.monitoring import SnapshotState as SnapshotState
from gradtx._transforms.monitoring import measure_with_ema as measure_with_ema
from gradtx._transforms.monitoring import snapshot as snapshot
from gradtx._wrappers.accumulation import ApplyIfFiniteState as ApplyIfFiniteState
from gradtx._wrappers.accumulation import MultiSteps as MultiSteps
from gradtx._wrappers.accumulation import MultiStepsState as MultiStepsState
from gradtx._wrappers.accumulation import ShouldSkipUpdateFunction as ShouldSkipUpdateFunction
from gradtx._wrappers.accumulation import apply_if_finite as apply_if_finite
from gradtx._wrappers.accumulation import skip_large_updates as skip_large_updates
from gradtx._wrappers.accumulation import skip_not_finite as skip_not_finite
from gradtx._wrappers.conditional import ConditionallyMaskState as ConditionallyMaskState
from gradtx._wrappers.conditional import ConditionallyTransformState as ConditionallyTransformState
from gradtx._wrappers.conditional import conditionally_mask as conditionally_mask
from gradtx._wrappers.conditional import conditionally_transform as conditionally_transform
from gradtx._wrappers.layout import flatten as flatten
from gradtx._wrappers.monitor import MonitoredState as MonitoredState
from gradtx._wrappers.monitor import monitor as monitor

__all__ = [
    "AddNoiseState",
    "ApplyIfFiniteState",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "EmaState",
    "MaskedNode",
    "MaskedState",
    "MonitoredState",
    "MultiSteps",
    "MultiStepsState",
    "NonNegativeParamsState",
    "PartitionState",
    "ShouldSkipUpdateFunction",
    "MonitorState",
    "SnapshotState",
    "TraceState",
    "ZeroNansState",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "apply_if_finite",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_mask",
    "conditionally_transform",
    "ema",
    "flatten",
    "freeze",
    "keep_params_nonnegative",
    "masked",
    "measure_with_ema",
    "monitor",
    "named_chain",
    "partition",
    "selective_transform",
    "skip_large_updates",
    "skip_not_finite",
    "snapshot",
    "trace",
    "zero_nans",
]
