"""Sign-based optimizers: signSGD, Signum, Lion, Rprop.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names. None has a complex form: ``init`` refuses complex params.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_range
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.momentum import _ema
from gradtx._transforms.sign import (
    _scale_by_lion,
    _scale_by_rprop,
    _scale_by_sign,
    check_rprop,
)
from gradtx._transforms.step_size import _scale, _scale_by_learning_rate


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    r"""signSGD: a step of the learning rate along the sign of each gradient element.

    ``chain(scale_by_sign(), scale_by_learning_rate(learning_rate))``:

    .. math:: \theta_{t+1} = \theta_t - \eta_t \operatorname{sign}(g_t)

    Args:
      learning_rate: η >= 0, a float or a schedule (no default, as in optax).

    Returns:
      A :class:`GradientTransformation`. Real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.sign_sgd(0.1)
      >>> params = jnp.array([1.0, -2.0, 0.0])
      >>> updates, _ = tx.update(jnp.array([3.0, -0.01, 0.0]), tx.init(params))
      >>> updates
      Array([-0.1,  0.1, -0. ], dtype=float32)

    References:
      Bernstein, Wang, Azizzadenesheli and Anandkumar, *signSGD: Compressed Optimisation for
      Non-Convex Problems*, ICML 2018, algorithm 1.
    """

    def build(learning_rate):
        return chain(_scale_by_sign("sign_sgd"), _scale_by_learning_rate(learning_rate))

    return live("sign_sgd", build, learning_rate=learning_rate)


def signum(
    learning_rate: ScalarOrSchedule,
    beta: ScalarOrSchedule = 0.9,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Signum: signSGD on an exponential moving average of the gradients.

    ``chain(ema(beta, debias=False), scale_by_sign(), scale_by_learning_rate(learning_rate))``:

    .. math::
      m_t = \beta m_{t-1} + (1 - \beta) g_t, \quad m_0 = 0, \qquad
      \theta_{t+1} = \theta_t - \eta_t \operatorname{sign}(m_t)

    The average is not debiased: a positive factor does not change a sign.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      beta: β in [0, 1), the decay of the average (0.9, optax's and the paper's).
      accumulator_dtype: dtype of the average (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`. Real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.signum(0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.array([1.0, 1.0]), state)
      >>> updates, state = tx.update(jnp.array([-2.0, -0.01]), state)
      >>> updates  # the average changed sign in the first element only
      Array([ 0.1, -0.1], dtype=float32)

    References:
      Bernstein, Wang, Azizzadenesheli and Anandkumar, *signSGD: Compressed Optimisation for
      Non-Convex Problems*, ICML 2018, algorithm 3 (Signum).
    """
    accumulator_dtype = check_dtype("signum", "accumulator_dtype", accumulator_dtype)
    check_range("signum", "beta", beta, "in [0, 1)", lambda v: 0 <= v < 1)

    def build(learning_rate, beta):
        return chain(
            _ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
            _scale_by_sign("signum"),
            _scale_by_learning_rate(learning_rate),
        )

    return live("signum", build, learning_rate=learning_rate, beta=beta)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    r"""Lion: the sign of an interpolated momentum, with decoupled weight decay.

    ``chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_{t+1} = \theta_t - \eta_t \big(\operatorname{sign}(\beta_1 m_{t-1}
      + (1 - \beta_1) g_t) + \lambda \theta_t\big), \qquad
      m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t

    Its steps have unit size per element, so its learning rate is typically 3-10x smaller
    than AdamW's, and its weight decay larger by as much (the paper's advice).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1) (0.9, the paper's and optax's).
      b2: β₂ in [0, 1) (0.99, the paper's and optax's).
      mu_dtype: dtype of the momentum (default: the params' dtype).
      weight_decay: λ >= 0 (optax's 1e-3).
      mask: which params are decayed, as in :func:`gradtx.add_decayed_weights`.

    Returns:
      A :class:`GradientTransformation`; its state keeps one momentum. Real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.lion(learning_rate=0.1, weight_decay=0.0)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, _ = tx.update(jnp.array([0.3, -5.0]), tx.init(params), params)
      >>> updates
      Array([-0.1,  0.1], dtype=float32)

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023, algorithm 2.
    """
    mu_dtype = check_dtype("lion", "mu_dtype", mu_dtype)
    check_mask("lion", "mask", mask)

    def build(learning_rate, b1, b2, weight_decay):
        return chain(
            _scale_by_lion(b1, b2, mu_dtype=mu_dtype, owner="lion"),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live("lion", build, learning_rate=learning_rate, b1=b1, b2=b2, weight_decay=weight_decay)


def rprop(
    learning_rate: ScalarOrSchedule,
    eta_minus: ScalarOrSchedule = 0.5,
    eta_plus: ScalarOrSchedule = 1.2,
    min_step_size: ScalarOrSchedule = 1e-6,
    max_step_size: ScalarOrSchedule = 50.0,
) -> GradientTransformation:
    r"""Rprop: steps of a per-element size that grows while the gradient keeps its sign.

    ``chain(scale_by_rprop(...), scale(-1))``: :math:`\theta_{t+1} = \theta_t - \Delta_t
    \operatorname{sign}(g_t)`, with the step sizes :math:`\Delta_t` of
    :func:`gradtx.scale_by_rprop` (iRprop⁻: no step, and no second shrink, after a sign
    change). This is ``torch.optim.Rprop(params, lr=learning_rate, etas=(eta_minus,
    eta_plus), step_sizes=(min_step_size, max_step_size))``; optax 0.2.8's ``rprop`` has the
    same arguments but applies each step one step late (see :func:`gradtx.scale_by_rprop`).

    Args:
      learning_rate: :math:`\Delta_0` > 0, the initial step size (PyTorch's ``lr``).
      eta_minus: η⁻ in (0, 1] (0.5, the paper's, optax's and PyTorch's).
      eta_plus: η⁺ >= 1 (1.2, likewise).
      min_step_size: :math:`\Delta_{\min}` >= 0 (1e-6, likewise).
      max_step_size: :math:`\Delta_{\max}` > 0 (50, likewise).

    Returns:
      A :class:`GradientTransformation`. Real params only; full-batch gradients (a sign
      method on noisy gradients shrinks its steps to nothing).

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.rprop(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(60):
      ...     grads = jax.grad(lambda p: jnp.sum(p ** 2))(params)
      ...     updates, state = tx.update(grads, state)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(jnp.abs(params).max() < 1e-3)
      True

    References:
      Riedmiller and Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: The
      RPROP Algorithm*, 1993; Igel and Hüsken, *Empirical evaluation of the improved Rprop
      learning algorithms*, Neurocomputing 2003 (iRprop⁻).
    """
    check_range("rprop", "learning_rate", learning_rate, "> 0", lambda v: v > 0)
    check_rprop("rprop", eta_minus, eta_plus, min_step_size, max_step_size)

    def build(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size):
        return chain(
            _scale_by_rprop(
                learning_rate,
                eta_minus,
                eta_plus,
                min_step_size,
                max_step_size,
                owner="rprop",
            ),
            _scale(-1.0),
        )

    return live(
        "rprop",
        build,
        learning_rate=learning_rate,
        eta_minus=eta_minus,
        eta_plus=eta_plus,
        min_step_size=min_step_size,
        max_step_size=max_step_size,
    )
