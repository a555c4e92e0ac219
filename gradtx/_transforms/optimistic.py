"""Optimistic gradients: the current gradient extrapolated along its last change."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as


class ScaleByOptimisticGradientState(NamedTuple):
    is_initial_step: jax.Array  # bool []: no gradient seen yet
    previous_gradient: Any  # like the params: the last incoming update


def optimistic_step(alpha: Value, beta: Value):
    """``(g, g_prev) -> (alpha + beta) g - beta g_prev``, in the wider dtype; make one per
    update."""
    weights = per_dtype(
        lambda dtype: (value_as(alpha, dtype) + value_as(beta, dtype), value_as(beta, dtype))
    )

    def step(g, prev):
        dtype = _tree.wider(g.dtype, prev.dtype)
        now, before = weights(_tree.real_dtype(dtype))
        g, prev = _tree.cast(g, dtype), _tree.cast(prev, dtype)
        return _tree.times(g, now) - _tree.times(prev, before)

    return step


def _scale_by_optimistic_gradient(alpha, beta, *, owner="scale_by_optimistic_gradient"):
    def init(params):
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.ones([], bool), previous_gradient=_tree.zeros_like(params)
        )

    def update(updates, state, params=None, **extra):
        step = optimistic_step(alpha, beta)

        def leaf(g, prev):
            # at the first step there is no previous gradient: g stands in for it
            prev = jnp.where(state.is_initial_step, _tree.cast(g, prev.dtype), prev)
            return step(g, prev).astype(g.dtype)

        out = _tree.map(leaf, updates, state.previous_gradient, owner=owner)
        new_state = ScaleByOptimisticGradientState(
            is_initial_step=jnp.zeros([], bool),
            previous_gradient=_tree.cast_like(updates, state.previous_gradient),
        )
        return out, new_state

    return GradientTransformation(init, update)


def scale_by_optimistic_gradient(
    alpha: ScalarOrSchedule = 1.0, beta: ScalarOrSchedule = 1.0
) -> GradientTransformation:
    r"""Optimistic (extrapolated) gradients: the gradient plus a multiple of its last change.

    .. math:: u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1}, \qquad g_0 := g_1

    With α = β = 1 this is :math:`g_t + (g_t - g_{t-1})`, optimistic gradient descent's
    look-ahead; β = 0 is plain gradient descent. At the first step the missing previous
    gradient is the current one (optax's convention), so :math:`u_1 = \alpha g_1`. Linear in
    the updates, so complex params are the real problem on the (real, imaginary) pairs.

    Args:
      alpha: α, the weight of the current gradient (optax's 1).
      beta: β, the weight of the change since the last gradient (optax's 1).

    Returns:
      A :class:`GradientTransformation`; its state keeps the previous update.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_optimistic_gradient()
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.array([1.0, 2.0]), state)
      >>> u, state = tx.update(jnp.array([2.0, 2.0]), state)
      >>> u  # 2 g_2 - g_1
      Array([3., 2.], dtype=float32)

    References:
      Popov, *A modification of the Arrow-Hurwicz method for search of saddle points*, 1980;
      Daskalakis, Ilyas, Syrgkanis and Zeng, *Training GANs with Optimism*, ICLR 2018, eq. 5;
      Mokhtari, Ozdaglar and Pattathil, *A Unified Analysis of Extra-gradient and Optimistic
      Gradient Methods for Saddle Point Problems: Proximal Point Approach*, AISTATS 2020,
      eq. 8 (the generalized form with α and β).
    """
    return live(
        "scale_by_optimistic_gradient", _scale_by_optimistic_gradient, alpha=alpha, beta=beta
    )
