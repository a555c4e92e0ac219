"""Layer-wise adaptive optimizers: a per-leaf trust ratio over an inner step (LAMB, LARS).

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.combine import chain, check_mask, masked
from gradtx._core.hyper import ScalarOrSchedule, check_flag, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.momentum import _trace
from gradtx._transforms.second_moments import (
    _scale_by_adam,
)
from gradtx._transforms.step_size import _scale_by_learning_rate, _scale_by_trust_ratio


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-6,
    eps_root: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""LAMB: AdamW's direction rescaled per layer by its trust ratio.

    ``chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate)``:
    :math:`r = \hat m / (\sqrt{\hat v} + \epsilon) + \lambda\theta,\ \theta_l \leftarrow
    \theta_l - \eta \frac{\|\theta_l\|}{\|r_l\|} r_l`.

    ``axis_name``: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split
    along, so the trust ratios use whole-tensor norms (see :func:`gradtx.clip_by_global_norm`).

    References:
      You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*, 2019.
    """

    axes = _tree.axis_names("lamb", axis_name)
    check_mask("lamb", "mask", mask)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay):
        return chain(
            _scale_by_adam(b1, b2, eps, eps_root),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_trust_ratio(0.0, 1.0, 0.0, axes=axes),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "lamb",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: ScalarOrSchedule = 0.001,
    eps: ScalarOrSchedule = 0.0,
    trust_ratio_mask: Any = True,
    momentum: ScalarOrSchedule = 0.9,
    nesterov: bool = False,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""LARS: SGD with momentum whose per-layer step is scaled by the trust ratio.

    ``chain(add_decayed_weights, scale_by_trust_ratio(trust_coefficient, eps),
    scale_by_learning_rate, trace(momentum))``, with optax's defaults. ``axis_name`` as in
    :func:`lamb`.

    References:
      You, Gitman and Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.
    """
    nesterov = check_flag("lars", "nesterov", nesterov)
    axes = _tree.axis_names("lars", axis_name)
    check_mask("lars", "weight_decay_mask", weight_decay_mask)
    check_mask("lars", "trust_ratio_mask", trust_ratio_mask)

    def build(learning_rate, weight_decay, trust_coefficient, eps, momentum):
        trust = _scale_by_trust_ratio(0.0, trust_coefficient, eps, axes=axes)
        return chain(
            _add_decayed_weights(weight_decay, weight_decay_mask),
            masked(trust, trust_ratio_mask),
            _scale_by_learning_rate(learning_rate),
            _trace(momentum, nesterov=nesterov, accumulator_dtype=None),
        )

    return live(
        "lars",
        build,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        trust_coefficient=trust_coefficient,
        eps=eps,
        momentum=momentum,
    )
