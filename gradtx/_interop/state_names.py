"""optax's names for optimizer states, where gradtx keeps the same state.

A gradtx transformation with live hyperparameters keeps its state inside a
:class:`gradtx.HyperState` (``state.inner_state``; its fields and positions are also reached on
the HyperState itself). Where that inner state has optax's fields and meaning, it is exported
under optax's name, so that ``isinstance`` checks and annotations written for optax hold; the
transformations whose state is empty keep :class:`gradtx.EmptyState`, which optax's names of
their states alias (as optax's do). States whose layout differs from optax's are not named here.
A few keep a field optax has no use for after optax's (:class:`ScaleByRpropState`'s
``learning_rate``, :class:`ScaleByLBFGSState`'s ``next_slot``, :class:`LookaheadState`'s
``slow``): optax's fields come first, in optax's order. The states optax keeps under
``optax.contrib`` (:class:`GaLoreState`, :class:`MadgradState`, :class:`MuonState`,
:class:`ScaleByAdemamixState`, :class:`ScaleBySimplifiedAdEMAMixState`) are here too.
"""

from __future__ import annotations

from gradtx._core.base import EmptyState
from gradtx._core.multi_transform import MultiTransformState
from gradtx._curvature.lbfgs import ScaleByLBFGSState as ScaleByLBFGSState
from gradtx._curvature.linesearch import (
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)
from gradtx._curvature.linesearch import ScaleByZoomLinesearchState as ScaleByZoomLinesearchState
from gradtx._curvature.linesearch import ZoomLinesearchInfo as ZoomLinesearchInfo
from gradtx._curvature.sophia import HutchinsonState as HutchinsonState
from gradtx._curvature.sophia import SophiaState as SophiaState
from gradtx._transforms.adam_descendants import ScaleByAdemamixState as ScaleByAdemamixState
from gradtx._transforms.adam_descendants import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from gradtx._transforms.adam_family import ScaleByAmsgradState as ScaleByAmsgradState
from gradtx._transforms.adam_family_moments import ScaleByAdanState as ScaleByAdanState
from gradtx._transforms.adam_family_moments import ScaleByBeliefState as ScaleByBeliefState
from gradtx._transforms.adam_relatives import MadgradState as MadgradState
from gradtx._transforms.block_norms import ScaleByNovogradState as ScaleByNovogradState
from gradtx._transforms.factored import FactoredState as FactoredState
from gradtx._transforms.factored import ScaleBySM3State as ScaleBySM3State
from gradtx._transforms.gradient_processing import AddNoiseState as AddNoiseState
from gradtx._transforms.low_rank import GaLoreState as GaLoreState
from gradtx._transforms.momentum import EmaState as EmaState
from gradtx._transforms.momentum import TraceState as TraceState
from gradtx._transforms.orthogonal import MuonState as MuonState
from gradtx._transforms.second_moments import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from gradtx._transforms.second_moments import ScaleByRmsState as ScaleByRmsState
from gradtx._transforms.second_moments import ScaleByRssState as ScaleByRssState
from gradtx._transforms.second_moments import ScaleByRStdDevState as ScaleByRStdDevState
from gradtx._transforms.sign import ScaleByLionState as ScaleByLionState
from gradtx._transforms.sign import ScaleByRpropState as ScaleByRpropState
from gradtx._transforms.step_size import ScaleByScheduleState as ScaleByScheduleState
from gradtx._wrappers.averaging import LookaheadState as LookaheadState

# the states of stateless transformations (beside their tables), as in optax
AdaptiveGradClipState = EmptyState
AddDecayedWeightsState = EmptyState
ClipByGlobalNormState = EmptyState
ClipState = EmptyState
NormalizeState = EmptyState
ScaleByTrustRatioState = EmptyState
ScaleState = EmptyState

# optax's name of multi_transform's state (MultiTransformState is its alias there)
PartitionState = MultiTransformState
