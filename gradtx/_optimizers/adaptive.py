"""Per-coordinate adaptive optimizers without a first moment: AdaGrad, AdaDelta, RMSProp.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation, identity
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, check_constant, check_flag, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.momentum import _trace
from gradtx._transforms.second_moments import (
    _scale_by_adadelta,
    _scale_by_rms,
    _scale_by_rss,
    _scale_by_stddev,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """AdaGrad: ``chain(scale_by_rss(...), scale_by_learning_rate(learning_rate))``.

    Defaults are optax's. PyTorch's ``Adagrad`` is ``adagrad(lr, initial_accumulator_value=0.0,
    eps=1e-10, eps_in_sqrt=False)``.
    """
    initial = check_constant("adagrad", "initial_accumulator_value", initial_accumulator_value)
    eps_in_sqrt = check_flag("adagrad", "eps_in_sqrt", eps_in_sqrt)

    def build(learning_rate, eps):
        return chain(
            _scale_by_rss(eps, initial_accumulator_value=initial, eps_in_sqrt=eps_in_sqrt),
            _scale_by_learning_rate(learning_rate),
        )

    return live("adagrad", build, learning_rate=learning_rate, eps=eps)


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adadelta: ``chain(add_decayed_weights, scale_by_adadelta, scale_by_learning_rate)``.

    ``learning_rate=None`` means 1.0, Zeiler's rule without a learning rate (and PyTorch's
    default). optax's ``adadelta()`` with its default ``None`` skips the sign flip and so
    ascends; gradtx descends. Coupled weight decay (added to the gradient), as in PyTorch.
    """

    check_mask("adadelta", "weight_decay_mask", weight_decay_mask)

    def build(learning_rate, rho, eps, weight_decay):
        return chain(
            _add_decayed_weights(weight_decay, weight_decay_mask),
            _scale_by_adadelta(rho, eps),
            _scale_by_learning_rate(learning_rate),
        )

    learning_rate = 1.0 if learning_rate is None else learning_rate
    return live(
        "adadelta", build, learning_rate=learning_rate, rho=rho, eps=eps, weight_decay=weight_decay
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp: ``chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate, trace)``.

    Defaults are optax's. PyTorch's ``RMSprop(lr, alpha, eps, momentum, centered)`` is
    ``rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, momentum=momentum or None,
    centered=centered)`` (PyTorch: decay 0.99, ε outside the root). The momentum follows the
    learning-rate scaling, as in optax and PyTorch.
    """
    owner = "rmsprop"
    flags = dict(
        initial_scale=check_constant(owner, "initial_scale", initial_scale),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
    )
    centered = check_flag(owner, "centered", centered)
    nesterov = check_flag(owner, "nesterov", nesterov)

    def build(learning_rate, decay, eps, momentum):
        precondition = _scale_by_stddev if centered else _scale_by_rms
        return chain(
            precondition(decay, eps, **flags),
            _scale_by_learning_rate(learning_rate),
            identity()
            if momentum is None
            else _trace(momentum, nesterov=nesterov, accumulator_dtype=None),
        )

    return live(
        owner,
        build,
        optional=("momentum",),
        learning_rate=learning_rate,
        decay=decay,
        eps=eps,
        momentum=momentum,
    )
