"""Adam's relatives with other or more moments: RAdam, AdaBelief, Yogi and Adan.

As in ``adam_like``: each validates its arguments, then hands its numeric hyperparameters to
``live`` with a ``build`` function returning one short chain.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag, check_range
from gradtx._core.combine import check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._optimizers.adam_like import with_weight_decay
from gradtx._transforms.adam_family import _scale_by_radam
from gradtx._transforms.adam_family_moments import _scale_by_adan, _scale_by_belief, _scale_by_yogi


def radam(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    threshold: ScalarOrSchedule = 5.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule | None = None,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""RAdam: Adam whose step is rectified until the adaptive rate's variance is tractable.

    ``chain(scale_by_radam(...), scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta \begin{cases} r_t\, \hat m_t / (\sqrt{\hat v_t
      + \epsilon_{root}} + \epsilon) & \rho_t \ge \text{threshold} \\ \hat m_t &
      \text{otherwise} \end{cases}

    with :math:`\rho_t, r_t` as in :func:`scale_by_radam`. ``torch.optim.RAdam(lr, betas, eps,
    weight_decay, decoupled_weight_decay)`` is ``radam(lr, b1, b2, eps,
    weight_decay=weight_decay, decoupled_weight_decay=...)`` (to 1e-8 relative: PyTorch adds
    ε before debiasing :math:`\sqrt{v}`).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      threshold: rectify from :math:`\rho_t \ge` this. Default 5 (optax's and PyTorch's).
      nesterov: use NAdam's first moment.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      weight_decay: λ >= 0 of an L2 term added to the gradient (PyTorch's ``weight_decay``), or
        with ``decoupled_weight_decay`` to the step. Default None: none (optax has none).
      decoupled_weight_decay: decouple the decay (PyTorch's flag of the same name).

    Returns:
      A :class:`GradientTransformation`; with ``weight_decay`` its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.radam(0.1)
      >>> g = jnp.array([2.0])
      >>> round(float(tx.update(g, tx.init(g))[0][0]), 4)  # not yet rectified: -lr * m_hat
      -0.2

    References:
      Liu, Jiang, He, Chen, Liu, Gao and Han, *On the Variance of the Adaptive Learning Rate
      and Beyond*, ICLR 2020, Algorithm 2.
    """
    nesterov = check_flag("radam", "nesterov", nesterov)
    mu_dtype = check_dtype("radam", "mu_dtype", mu_dtype)
    decoupled = check_flag("radam", "decoupled_weight_decay", decoupled_weight_decay)

    def build(learning_rate, b1, b2, eps, eps_root, threshold, weight_decay):
        core = _scale_by_radam(
            b1, b2, eps, eps_root, threshold, nesterov=nesterov, mu_dtype=mu_dtype
        )
        return with_weight_decay(core, weight_decay, decoupled, learning_rate)

    return live(
        "radam",
        build,
        optional=("weight_decay",),
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        threshold=threshold,
        weight_decay=weight_decay,
    )


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-16,
    eps_root: ScalarOrSchedule = 1e-16,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdaBelief: Adam scaled by the variance of the gradient around its prediction.

    ``chain(scale_by_belief(...), scale_by_learning_rate(learning_rate))``:

    .. math::
      s_t = \beta_2 s_{t-1} + (1-\beta_2) |g_t - m_t|^2 + \epsilon_{root}, \qquad
      \theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-16 (optax's; the paper's text says 1e-8).
      eps_root: ε >= 0 added to :math:`s_t` each step. Default 1e-16 (optax's).
      nesterov: use NAdam's first moment.
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adabelief(0.1)
      >>> g = jnp.array([1.0, -1.0])
      >>> tx.update(g, tx.init(g))[0].round(4)  # step 1: s = (1 - b2) |g - m|^2, m = g / 10
      Array([-0.1111,  0.1111], dtype=float32)

    References:
      Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
      Gradients*, NeurIPS 2020, Algorithm 2.
    """
    nesterov = check_flag("adabelief", "nesterov", nesterov)
    mu_dtype = check_dtype("adabelief", "mu_dtype", mu_dtype)

    def build(learning_rate, b1, b2, eps, eps_root):
        core = _scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, mu_dtype=mu_dtype)
        return with_weight_decay(core, None, False, learning_rate)

    return live(
        "adabelief",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
    )


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-3,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Yogi: Adam with an additive, sign-controlled second-moment update.

    ``chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))``:

    .. math::
      v_t = v_{t-1} - (1-\beta_2)\, \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2, \qquad
      \theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

    Both moments start at 1e-6 (the paper's and optax's ``initial_accumulator_value``).

    Args:
      learning_rate: η >= 0, a float or a schedule (the paper suggests 1e-2).
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-3 (the paper's).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.yogi(0.1)
      >>> g = jnp.array([1.0])
      >>> round(float(tx.update(g, tx.init(g))[0][0]), 4)  # -lr g / (|g| + eps)
      -0.0999

    References:
      Zaheer, Reddi, Sachan, Kale and Kumar, *Adaptive Methods for Nonconvex Optimization*,
      NeurIPS 2018, Algorithm 2.
    """
    mu_dtype = check_dtype("yogi", "mu_dtype", mu_dtype)

    def build(learning_rate, b1, b2, eps):
        core = _scale_by_yogi(b1, b2, eps, 0.0, initial_accumulator_value=1e-6, mu_dtype=mu_dtype)
        return with_weight_decay(core, None, False, learning_rate)

    return live("yogi", build, learning_rate=learning_rate, b1=b1, b2=b2, eps=eps)


def adan(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.98,
    b2: ScalarOrSchedule = 0.92,
    b3: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adan: adaptive Nesterov momentum from averages of gradients and their differences.

    ``chain(scale_by_adan(b1, b2, b3, eps, eps_root), add_decayed_weights(weight_decay,
    mask), scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta \left(\frac{\hat m_t + \beta_2 \hat v_t}
      {\sqrt{\hat n_t + \epsilon_{root}} + \epsilon} + \lambda \theta_{t-1}\right)

    with :math:`m, v, n` as in :func:`scale_by_adan` (the paper's Algorithm 1; optax 0.2.8
    weighs :math:`v` by :math:`1-\beta_2` instead, see there). The decay is AdamW's, as in
    optax; the paper's proximal form divides by :math:`1 + \eta\lambda` instead.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: decay of the gradients' average, in [0, 1). Default 0.98 (the paper's 1 - 0.02).
      b2: decay of the differences' average, in [0, 1). Default 0.92 (the paper's 1 - 0.08).
      b3: decay of the squares' average, in [0, 1). Default 0.99 (the paper's 1 - 0.01).
      eps: ε >= 0 outside the root. Default 1e-8 (the paper's).
      eps_root: ε >= 0 inside the root. Default 1e-8 (optax's).
      weight_decay: λ >= 0. Default 0 (optax's).
      mask: decay only where this tree of bools (or function of the params) is True.
      mu_dtype: dtype of the first moments :math:`m, v` (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adan(0.1)
      >>> params = jnp.array([1.0])
      >>> round(float(tx.update(params, tx.init(params), params)[0][0]), 4)  # -lr g / |g|
      -0.1

    References:
      Xie, Zhou, Li, Lin and Yan, *Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models*, 2022 (TPAMI 2024), Algorithm 1.
    """
    check_range("adan", "b3", b3, "in [0, 1)", lambda x: 0 <= x < 1)
    mu_dtype = check_dtype("adan", "mu_dtype", mu_dtype)
    check_mask("adan", "mask", mask)

    def build(learning_rate, b1, b2, b3, eps, eps_root, weight_decay):
        core = _scale_by_adan(b1, b2, b3, eps, eps_root, mu_dtype=mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "adan",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        b3=b3,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )
