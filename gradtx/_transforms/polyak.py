"""Polyak's step size: the step from the loss value, its lower bound and the gradient's norm."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation
from gradtx._core.checks import MissingArgumentError
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as

_VARIANTS = ("sps", "sps+")


def polyak_step(
    value: Any,
    squared_norm: jax.Array,
    f_min: Value,
    max_learning_rate: Value,
    eps: Value,
    *,
    positive_gap: bool,
) -> jax.Array:
    """``min((value - f_min) / (squared_norm + eps), max_learning_rate)``, 0 where the
    denominator is 0 (no gradient: nothing to scale, and 0/0 would be NaN)."""
    dtype = squared_norm.dtype
    gap = jnp.asarray(value).astype(dtype) - value_as(f_min, dtype)
    if positive_gap:
        gap = jnp.maximum(gap, jnp.zeros_like(gap))
    denominator = squared_norm + value_as(eps, dtype)
    safe = jnp.where(denominator > 0, denominator, jnp.ones_like(denominator))
    step = jnp.minimum(gap / safe, value_as(max_learning_rate, dtype))
    return jnp.where(denominator > 0, step, jnp.zeros_like(step))


def _scale_by_polyak(
    f_min, max_learning_rate, eps, *, variant="sps", owner="scale_by_polyak", descent=None
):
    """With ``descent`` s, Polyak's step of the direction ``-s g`` (``||-s g||**2`` as
    ``s (s ||g||**2)``), which is polyak_sgd: the same numbers as scaling the updates first
    (bit for bit at s = 1), without writing the scaled gradient for its norm (on XLA:CPU a
    leaf scaled by a runtime scalar that two computations read is written out: a pass over
    memory that optax's constant scale does not make)."""

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, *, value=None, **extra):
        if value is None:
            raise MissingArgumentError(
                f"{owner}: update needs the loss at the current params: "
                f"update(grads, state, params, value=loss)"
            )
        if np.ndim(value) != 0:
            raise ValueError(f"{owner}: value must be a scalar loss, got shape {np.shape(value)}")
        leaves, treedef = jax.tree.flatten(updates)
        squares = [_tree.sum_of_squares(x) for x in leaves]
        dtype = _tree.wider(jnp.float32, *(s.dtype for s in squares))
        total = sum((s.astype(dtype) for s in squares), jnp.zeros([], dtype))
        if descent is not None:
            s = value_as(descent, dtype)
            total = s * (s * total)
        step = polyak_step(
            value, total, f_min, max_learning_rate, eps, positive_gap=variant == "sps+"
        )
        if descent is not None:
            step = -s * step
        scaled = [
            _tree.times(g.astype(_tree.wider(g.dtype, dtype)), step).astype(g.dtype) for g in leaves
        ]
        return treedef.unflatten(scaled), state

    return GradientTransformation(init, update)


def check_variant(owner: str, variant: Any) -> str:
    if not isinstance(variant, str):
        raise TypeError(f"{owner}: variant must be one of {_VARIANTS}, got {variant!r}")
    if variant not in _VARIANTS:
        raise ValueError(f"{owner}: variant must be one of {_VARIANTS}, got {variant!r}")
    return variant


def scale_by_polyak(
    f_min: ScalarOrSchedule = 0.0,
    max_learning_rate: ScalarOrSchedule = 1.0,
    eps: ScalarOrSchedule = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    r"""Scales the updates by Polyak's step size, from the loss given to ``update``.

    .. math::
      \gamma_t = \min\left\{\frac{f(\theta_t) - f^\star}{\|g_t\|^2 + \epsilon},\
      \gamma_{\max}\right\}, \qquad u_t = \gamma_t\, g_t

    with :math:`\|g_t\|^2` over all leaves together (``|g|**2`` for complex leaves), and
    :math:`\gamma_t = 0` where the denominator is 0. ``variant="sps+"`` uses the positive part
    of the gap, :math:`(f(\theta_t) - f^\star)_+`. The loss comes as ``update``'s keyword
    argument ``value`` (as in optax): ``tx.update(grads, state, params, value=loss)``; a
    ``chain`` passes it down.

    Args:
      f_min: :math:`f^\star`, a lower bound on the loss (optax's 0: models that interpolate
        their data reach it).
      max_learning_rate: :math:`\gamma_{\max}`, a cap on the step size (optax's 1; the
        SPS_max of Loizou et al.).
      eps: ε added to the denominator (optax's 0).
      variant: ``"sps"`` (the paper's) or ``"sps+"`` (Garrigos et al., 2023).

    Returns:
      A stateless :class:`GradientTransformation` whose ``update`` needs ``value=``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.scale_by_polyak()
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> x = jnp.array([1.0, 2.0])
      >>> value, grad = jax.value_and_grad(f)(x)
      >>> tx.update(grad, tx.init(x), x, value=value)[0]  # 5 / 20 * grad
      Array([0.5, 1. ], dtype=float32)

    References:
      Polyak, *Introduction to Optimization*, 1987, section 5.3; Loizou, Vaswani, Laradji and
      Lacoste-Julien, *Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate for Fast
      Convergence*, AISTATS 2021, eq. 5 (SPS_max); Garrigos, Gower and Schaipp, *Function
      value learning: Adaptive learning rates based on the Polyak stepsize and function
      splitting in ERM*, 2023.
    """
    owner = "scale_by_polyak"
    build = functools.partial(_scale_by_polyak, variant=check_variant(owner, variant), owner=owner)
    return live(owner, build, f_min=f_min, max_learning_rate=max_learning_rate, eps=eps)
