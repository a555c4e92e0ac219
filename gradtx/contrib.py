"""optax.contrib's names, for code written against optax: ``from gradtx import contrib``.

A thin namespace: each name is gradtx's own (``gradtx.contrib.muon is gradtx.muon``); the
code lives by concern in gradtx's private modules.
"""

from gradtx._curvature.sophia import HutchinsonState as HutchinsonState
from gradtx._curvature.sophia import SophiaState as SophiaState
from gradtx._curvature.sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from gradtx._curvature.sophia import sophia as sophia
from gradtx._interop.state_names import GaLoreState as GaLoreState
from gradtx._interop.state_names import MadgradState as MadgradState
from gradtx._interop.state_names import MuonState as MuonState
from gradtx._interop.state_names import NormalizeState as NormalizeState
from gradtx._interop.state_names import ScaleByAdemamixState as ScaleByAdemamixState
from gradtx._interop.state_names import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from gradtx._linalg.view import MuonDimensionNumbers as MuonDimensionNumbers
from gradtx._optimizers.adam_descendants import acprop as acprop
from gradtx._optimizers.adam_descendants import ademamix as ademamix
from gradtx._optimizers.adam_descendants import adopt as adopt
from gradtx._optimizers.adam_descendants import simplified_ademamix as simplified_ademamix
from gradtx._optimizers.adam_relatives import madgrad as madgrad
from gradtx._optimizers.low_rank import galore as galore
from gradtx._optimizers.lr_free import cocob as cocob
from gradtx._optimizers.lr_free import dadapt_adamw as dadapt_adamw
from gradtx._optimizers.lr_free import prodigy as prodigy
from gradtx._optimizers.lr_free_steps import dog as dog
from gradtx._optimizers.lr_free_steps import dowg as dowg
from gradtx._optimizers.lr_free_steps import momo as momo
from gradtx._optimizers.lr_free_steps import momo_adam as momo_adam
from gradtx._optimizers.matrix import muon as muon
from gradtx._optimizers.privacy import dpsgd as dpsgd
from gradtx._optimizers.schedule_free import schedule_free_adamw as schedule_free_adamw
from gradtx._optimizers.schedule_free import schedule_free_sgd as schedule_free_sgd
from gradtx._schedules.plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from gradtx._schedules.plateau import reduce_on_plateau as reduce_on_plateau
from gradtx._transforms.adam_descendants import scale_by_ademamix as scale_by_ademamix
from gradtx._transforms.adam_descendants import (
    scale_by_simplified_ademamix as scale_by_simplified_ademamix,
)
from gradtx._transforms.adam_relatives import scale_by_madgrad as scale_by_madgrad
from gradtx._transforms.asynchronous_moments import scale_by_acprop as scale_by_acprop
from gradtx._transforms.asynchronous_moments import scale_by_adopt as scale_by_adopt
from gradtx._transforms.gradient_processing import normalize as normalize
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
from gradtx._transforms.orthogonal import scale_by_muon as scale_by_muon
from gradtx._transforms.privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from gradtx._transforms.privacy import (
    differentially_private_aggregate as differentially_private_aggregate,
)
from gradtx._wrappers.complex_pairs import SplitRealAndImaginaryState as SplitRealAndImaginaryState
from gradtx._wrappers.complex_pairs import split_real_and_imaginary as split_real_and_imaginary
from gradtx._wrappers.mechanic import MechanicState as MechanicState
from gradtx._wrappers.mechanic import mechanize as mechanize
from gradtx._wrappers.sam import SAMState as SAMState
from gradtx._wrappers.sam import sam as sam
from gradtx._wrappers.schedule_free import ScheduleFreeState as ScheduleFreeState
from gradtx._wrappers.schedule_free import schedule_free as schedule_free
from gradtx._wrappers.schedule_free import schedule_free_eval_params as schedule_free_eval_params

__all__ = [
    "GaLoreState",
    "MadgradState",
    "MuonState",
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "COCOBState",
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "DoGState",
    "DoWGState",
    "GaLoreDimensionNumbers",
    "HutchinsonState",
    "MechanicState",
    "MomoAdamState",
    "MomoState",
    "MuonDimensionNumbers",
    "NormalizeState",
    "ProdigyState",
    "SAMState",
    "ScheduleFreeState",
    "SophiaState",
    "SplitRealAndImaginaryState",
    "acprop",
    "ademamix",
    "adopt",
    "cocob",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dog",
    "dowg",
    "dpsgd",
    "galore",
    "hutchinson_estimator_diag_hessian",
    "madgrad",
    "mechanize",
    "momo",
    "momo_adam",
    "muon",
    "normalize",
    "prodigy",
    "ReduceLROnPlateauState",
    "reduce_on_plateau",
    "sam",
    "scale_by_acprop",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_cocob",
    "scale_by_galore",
    "scale_by_madgrad",
    "scale_by_muon",
    "scale_by_simplified_ademamix",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "simplified_ademamix",
    "sophia",
    "split_real_and_imaginary",
]
