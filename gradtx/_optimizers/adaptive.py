"""Per-coordinate adaptive optimizers without a first moment: AdaGrad, AdaDelta, RMSProp.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation, identity
from gradtx._core.checks import check_constant, check_flag
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
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
    r"""AdaGrad: each coordinate's step shrinks with the sum of its past squared gradients.

    ``chain(scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      s_t = s_{t-1} + |g_t|^2, \quad s_0 = \text{initial\_accumulator\_value}, \qquad
      \theta_t = \theta_{t-1} - \eta\, g_t / \sqrt{s_t + \epsilon}

    (ε outside the root, :math:`g_t / (\sqrt{s_t} + \epsilon)`, with ``eps_in_sqrt=False``).
    PyTorch's ``Adagrad(lr)`` is ``adagrad(lr, initial_accumulator_value=0.0, eps=1e-10,
    eps_in_sqrt=False)``.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      initial_accumulator_value: :math:`s_0 >= 0`, fixed when the state is built. Default 0.1
        (optax's; PyTorch's is 0).
      eps: ε >= 0. Default 1e-7 (optax's; PyTorch's is 1e-10, outside the root).
      eps_in_sqrt: ε inside the root (optax) or outside it (PyTorch, ``False``).

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adagrad(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(2 * params, tx.init(params))
      >>> [round(u, 4) for u in updates.tolist()]  # -0.1 * g / sqrt(0.1 + g**2)
      [-0.0988, 0.0997]

    References:
      Duchi, Hazan and Singer, *Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization*, JMLR 2011, Figure 1 (diagonal AdaGrad).
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
    r"""Adadelta: a step in the units of the params, from running averages of g² and Δx².

    ``chain(add_decayed_weights(weight_decay, weight_decay_mask), scale_by_adadelta(rho, eps),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      g_t \leftarrow g_t + \lambda \theta_{t-1}, \quad
      E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
      \Delta x_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}
      g_t, \\
      E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) \Delta x_t^2, \quad
      \theta_t = \theta_{t-1} - \eta \Delta x_t

    The weight decay is coupled (added to the gradient), as in PyTorch's ``Adadelta``.

    Args:
      learning_rate: η >= 0, a float or a schedule. ``None`` (the default) means 1.0: Zeiler's
        rule has no learning rate, and PyTorch's default is 1.0. (optax's ``adadelta()`` with
        its default ``None`` leaves out the sign flip and so ascends; gradtx descends.)
      rho: ρ in [0, 1), the decay of both averages. Default 0.9 (optax's; the paper's 0.95,
        PyTorch's 0.9).
      eps: ε >= 0. Default 1e-6 (optax's and PyTorch's; the paper's 1e-6 too).
      weight_decay: λ >= 0, coupled L2 decay. Default 0 (optax's and PyTorch's).
      weight_decay_mask: a pytree of bools like the params (or a function of the params
        returning one): where ``False``, no decay. Default ``None``: decay every leaf.

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters (the
      params must be passed to ``update`` when ``weight_decay`` is used).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adadelta()
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(2 * params, tx.init(params), params)
      >>> [round(u, 5) for u in updates.tolist()]  # the first step is about sqrt(eps / 0.1)
      [-0.00316, 0.00316]

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, arXiv:1212.5701, 2012,
      Algorithm 1.
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
    r"""RMSProp: each coordinate's step divided by the root of a running average of g².

    ``chain(scale_by_rms(...) or scale_by_stddev(...) if centered,
    scale_by_learning_rate(learning_rate), trace(momentum, nesterov))``:

    .. math::
      s_t = \gamma s_{t-1} + (1-\gamma) |g_t|^2, \quad
      u_t = -\eta\, g_t / \sqrt{s_t + \epsilon}, \quad
      b_t = \mu b_{t-1} + u_t, \quad \theta_t = \theta_{t-1} + b_t

    Centred (``centered=True``): :math:`s_t - |m_t|^2` in the root, with
    :math:`m_t = \gamma m_{t-1} + (1-\gamma) g_t`. The momentum :math:`b` follows the
    learning-rate scaling, as in optax and PyTorch. PyTorch's ``RMSprop(lr, alpha, eps,
    momentum, centered)`` is ``rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False,
    momentum=momentum or None, centered=centered)``.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      decay: γ in [0, 1). Default 0.9 (optax's and Hinton's lecture; PyTorch's ``alpha`` 0.99).
      eps: ε >= 0. Default 1e-8 (optax's and PyTorch's; PyTorch's is outside the root).
      initial_scale: :math:`s_0 >= 0`, fixed when the state is built. Default 0 (optax's and
        PyTorch's; TensorFlow's is 1).
      eps_in_sqrt: ε inside the root (optax) or outside it (PyTorch, ``False``).
      centered: divide by the root of a variance estimate instead (Graves 2013).
      momentum: μ in [0, 1), or ``None`` (the default, optax's) for no momentum.
      nesterov: Nesterov's form of the momentum.
      bias_correction: debias :math:`s` (and :math:`m`) as Adam does. Default ``False``.

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.rmsprop(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(2 * params, tx.init(params))
      >>> [round(u, 4) for u in updates.tolist()]  # -0.1 * g / sqrt(0.1 g**2)
      [-0.3162, 0.3162]

    References:
      Tieleman and Hinton, *Lecture 6.5 - RMSProp*, COURSERA: Neural Networks for Machine
      Learning, 2012; Graves, *Generating Sequences With Recurrent Neural Networks*,
      arXiv:1308.0850, 2013, eq. 38-45 (centred).
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
