"""Clipping: by value, by each tensor's norm, by the global norm."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx import _tree
from gradtx._base import GradientTransformation, stateless
from gradtx._hyper import ScalarOrSchedule, Value, live, value_as


def _clip(max_delta: Value) -> GradientTransformation:
    def clip_leaf(g):
        c = value_as(max_delta, g.dtype)
        return jnp.clip(g, -c, c)

    return stateless(lambda updates, params: jax.tree.map(clip_leaf, updates))


def clip(max_delta: ScalarOrSchedule) -> GradientTransformation:
    """Clips every update element to ``[-max_delta, max_delta]``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.clip(1.0)
      >>> g = {"w": jnp.array([-3.0, 0.5, 2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    return live("clip", _clip, max_delta=max_delta)


def shrink(norm: jax.Array, max_norm: Value) -> jax.Array:
    """The factor ``min(1, max_norm / norm)``; exactly 1 when ``norm <= max_norm`` (even 0)."""
    c = value_as(max_norm, norm.dtype)
    return c / jnp.maximum(norm, c)


def _clip_by_norm(max_norm: Value) -> GradientTransformation:
    def clip_leaf(g):
        return g * shrink(_tree.norm(g), max_norm).astype(g.dtype)

    return stateless(lambda updates, params: jax.tree.map(clip_leaf, updates))


def clip_by_norm(max_norm: ScalarOrSchedule) -> GradientTransformation:
    r"""Rescales each tensor whose norm exceeds ``max_norm`` down to that norm.

    .. math:: g_l \leftarrow g_l \cdot \min(1, c / \|g_l\|) \quad \text{for every leaf } l
    """
    return live("clip_by_norm", _clip_by_norm, max_norm=max_norm)


def _clip_by_global_norm(max_norm: Value) -> GradientTransformation:
    def clip_all(updates, params):
        factor = shrink(_tree.global_norm(updates), max_norm)
        return jax.tree.map(lambda g: g * factor.astype(g.dtype), updates)

    return stateless(clip_all)


def clip_by_global_norm(max_norm: ScalarOrSchedule) -> GradientTransformation:
    r"""Rescales all updates together when their global norm exceeds ``max_norm``.

    .. math:: g \leftarrow g \cdot \min(1, c / \|g\|_2), \quad
       \|g\|_2 = \sqrt{\textstyle\sum_l \|g_l\|^2}

    The direction is kept, which is why it is usually preferred to clipping by value.

    References:
      Pascanu, Mikolov and Bengio, *On the difficulty of training recurrent neural networks*,
      2013.
    """
    return live("clip_by_global_norm", _clip_by_global_norm, max_norm=max_norm)
