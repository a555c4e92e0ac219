"""Layer-wise adaptive optimizers: per-leaf (per-layer) norms set the step (LAMB, LARS,
NovoGrad, Fromage).

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.combine import chain, check_mask, masked
from gradtx._core.hyper import Live, ScalarOrSchedule, live, scalar
from gradtx._transforms.block_norms import _scale_by_novograd
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

    ``chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate)``;
    per leaf (layer) *l*:

    .. math::
      r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon} + \lambda \theta,
      \qquad \theta_l \leftarrow \theta_l - \eta \frac{\|\theta_l\|}{\|r_l\|} r_l

    with the ratio taken as 1 when either norm is 0 (You et al., 2019, Algorithm 2).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9, the paper's.
      b2: β₂ in [0, 1). Default 0.999, the paper's.
      eps: ε >= 0 outside the root. Default 1e-6, the paper's (and optax's).
      eps_root: ε >= 0 inside the root.
      weight_decay: λ >= 0, decoupled (added to Adam's direction before the trust ratio).
      mask: optional tree of bools (or a function of the params giving one) selecting the
        leaves to decay.
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along,
        so the trust ratios use whole-tensor norms (see :func:`gradtx.clip_by_global_norm`).

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.lamb(learning_rate=0.1)
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, state = tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)
      >>> updates["w"].round(4)  # Adam's first step is sign(g); scaled to lr * ||w||
      Array([-0.3536, -0.3536], dtype=float32)

    References:
      You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*,
      ICLR 2020 (arXiv 2019).
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
    scale_by_learning_rate, trace(momentum))``, optax's order; per leaf (layer) *l*:

    .. math::
      d_l = g_l + \lambda \theta_l, \quad
      v_l \leftarrow \mu v_l - \eta \frac{c \|\theta_l\|}{\|d_l\| + \epsilon} d_l, \quad
      \theta_l \leftarrow \theta_l + v_l

    with the ratio taken as 1 when either norm is 0 (You, Gitman and Ginsburg, 2017,
    Algorithm 1).

    Args:
      learning_rate: η >= 0, a float or a schedule (large: the trust ratio is small).
      weight_decay: λ >= 0, added to the gradient before the trust ratio.
      weight_decay_mask: a tree of bools (or a function of the params) selecting the leaves
        to decay; True: all.
      trust_coefficient: *c* > 0. Default 0.001, the paper's.
      eps: ε >= 0 added to the update's norm.
      trust_ratio_mask: a tree of bools selecting the leaves the trust ratio scales (biases
        and norm scales are often left out); True: all.
      momentum: μ in [0, 1). Default 0.9, the paper's.
      nesterov: Nesterov's momentum.
      axis_name: as in :func:`gradtx.lamb`.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.lars(learning_rate=1.0)
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, state = tx.update({"w": jnp.array([0.6, 0.8])}, tx.init(params), params)
      >>> updates["w"]  # -lr * 0.001 * ||w|| / ||g|| * g
      Array([-0.003, -0.004], dtype=float32)

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


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.25,
    eps: ScalarOrSchedule = 1e-6,
    eps_root: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""NovoGrad: momentum on gradients normalized per layer by a running average of their norm.

    ``chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay), scale_by_learning_rate)``;
    per leaf (layer):

    .. math::
      v_t = \beta_2 v_{t-1} + (1 - \beta_2) \|g_t\|^2 \;(v_1 = \|g_1\|^2), \quad
      m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{v_t + \epsilon_{root}} + \epsilon}
      + \lambda \theta_t, \quad \theta_{t+1} = \theta_t - \eta\, m_t

    (Ginsburg et al., 2019, Algorithm 1). Half of Adam's memory: one scalar per layer
    replaces the per-element second moment.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9, the paper's.
      b2: β₂ in [0, 1). Default 0.25, optax's.
      eps: ε >= 0 outside the root. Default 1e-6, optax's.
      eps_root: ε >= 0 inside the root.
      weight_decay: λ >= 0, added to the normalized gradient.
      mu_dtype: dtype of the first moment (default: the params'), as in
        :func:`gradtx.scale_by_novograd`.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.novograd(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     grads = jax.grad(lambda p: (p ** 2).sum())(params)
      ...     updates, state = tx.update(grads, state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(jnp.abs(params).max() < 0.1)
      True

    References:
      Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments for
      Training of Deep Networks*, 2019.
    """
    mu_dtype = check_dtype("novograd", "mu_dtype", mu_dtype)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay):
        return chain(
            _scale_by_novograd(b1, b2, eps, eps_root, weight_decay, mu_dtype=mu_dtype),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "novograd",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )


def _fromage_factors(learning_rate) -> tuple[Live, Live]:
    """``(lr / sqrt(1 + lr**2), 1 / sqrt(1 + lr**2) - 1)`` in the hyperparameter's dtype; the
    second as ``-lr**2 / (r (1 + r))``, ``r = sqrt(1 + lr**2)``, which does not cancel."""
    lr = scalar(learning_rate)
    root = jnp.sqrt(1 + lr * lr)
    step, shrink = lr / root, -(lr * lr) / (root * (1 + root))
    return Live(step, jnp.zeros_like(step)), Live(shrink, jnp.zeros_like(shrink))


def fromage(learning_rate: ScalarOrSchedule, min_norm: ScalarOrSchedule = 1e-6):
    r"""Fromage: a step of relative size η per layer, then a shrink that keeps norms in check.

    ``chain(scale_by_trust_ratio(min_norm), scale_by_learning_rate(η / sqrt(1 + η²)),
    add_decayed_weights(1 / sqrt(1 + η²) - 1))``; per leaf (layer) *l*:

    .. math::
      \theta_l \leftarrow \frac{1}{\sqrt{1 + \eta^2}} \left(\theta_l - \eta
      \frac{\|\theta_l\|}{\|g_l\|} g_l\right)

    (Bernstein et al., 2020, Algorithm 1: the gradient step changes each layer by η of its
    norm, and the :math:`1/\sqrt{1 + \eta^2}` factor undoes the norm's growth), with both norms
    floored at ``min_norm`` and the ratio taken as 1 when either is 0.

    Args:
      learning_rate: η >= 0, a float or a schedule (the paper recommends 0.01).
      min_norm: floor of both norms. Default 1e-6, optax's.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.fromage(learning_rate=0.75)
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, state = tx.update({"w": jnp.array([-3.0, -4.0])}, tx.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"].round(4)  # (w + 0.75 w) / 1.25
      Array([4.2, 5.6], dtype=float32)

    References:
      Bernstein, Vahdat, Yue and Liu, *On the distance between two neural networks and the
      stability of learning*, NeurIPS 2020.
    """

    def build(learning_rate, min_norm):
        step, shrink = _fromage_factors(learning_rate)
        return chain(
            _scale_by_trust_ratio(min_norm, 1.0, 0.0),
            _scale_by_learning_rate(step),
            _add_decayed_weights(shrink),
        )

    return live("fromage", build, learning_rate=learning_rate, min_norm=min_norm)
