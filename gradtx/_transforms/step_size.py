"""Step sizes: a constant factor, the learning rate, and the layer-wise trust ratio (LARS/LAMB)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation, identity, stateless
from gradtx._core.checks import MissingArgumentError, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as


def _times(factor: Callable[[Any], jax.Array]) -> GradientTransformation:
    """Multiplies each leaf by ``factor(its dtype)``, formed once per dtype and update."""

    def update(updates, params):
        as_dtype = per_dtype(factor)
        return jax.tree.map(lambda g: as_dtype(g.dtype) * g, updates)

    return stateless(update)


def _scale(step_size: Value) -> GradientTransformation:
    return _times(lambda dtype: value_as(step_size, dtype))


def scale(step_size: ScalarOrSchedule) -> GradientTransformation:
    r"""Multiplies the updates by ``step_size`` (a float or a schedule).

    .. math:: u \leftarrow s \, g

    No sign is flipped and any sign is allowed: ``scale(-lr)`` is a descent step, as is
    :func:`scale_by_learning_rate` ``(lr)``, which also checks that ``lr`` >= 0.

    Args:
      step_size: the factor *s*, a float or a schedule of the step count. No default, as in
        optax.

    Returns:
      A :class:`GradientTransformation` whose state holds only the step count and the live
      ``step_size``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale(0.5)
      >>> g = {"w": jnp.ones(2)}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([0.5, 0.5], dtype=float32)
    """
    return live("scale", _scale, step_size=step_size)


class ScaleByScheduleState(NamedTuple):
    """The state of :func:`scale_by_schedule` (beside its table), as optax's."""

    count: jax.Array  # int32 []: updates so far, saturating (the table's count too)


def _scale_by_schedule(step_size_fn: Value) -> GradientTransformation:
    scale = _scale(step_size_fn)

    def init(params):
        return ScaleByScheduleState(_tree.zero_count())

    def update(updates, state, params=None, **extra):
        out, _ = scale.update(updates, EmptyState(), params)
        return out, ScaleByScheduleState(_tree.saturating_increment(state.count))

    return GradientTransformation(init, update)


def scale_by_schedule(step_size_fn: Callable[[jax.Array], Any]) -> GradientTransformation:
    r"""Multiplies the updates by a schedule's value at the step count.

    .. math:: u_t \leftarrow s(t) \, g_t, \qquad t = 0, 1, 2, \dots

    the count of updates before this one, as every schedule in gradtx is read. The same as
    :func:`scale` given a schedule; kept under optax's name, which only takes a schedule. No
    sign is flipped: :func:`scale_by_learning_rate` is the descent step.

    Args:
      step_size_fn: the schedule *s*, a callable from the step count to a number (any of
        ``gradtx``'s schedules, or your own function of a JAX integer). Live: it shows in
        :func:`gradtx.hyperparams` as ``step_size_fn`` and :func:`gradtx.set_hyperparams` can
        replace its value.

    Returns:
      A :class:`gradtx.GradientTransformation`; its state holds the step count and the live
      value, and inside, optax's :class:`gradtx.ScaleByScheduleState` (the step count).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_schedule(gradtx.linear_schedule(1.0, 0.0, 4))
      >>> g = {"w": jnp.ones(2)}
      >>> state = tx.init(g)
      >>> for _ in range(2):
      ...     u, state = tx.update(g, state)
      >>> u["w"]  # s(1) = 0.75
      Array([0.75, 0.75], dtype=float32)
    """
    if not callable(step_size_fn) or isinstance(step_size_fn, jax.Array):
        raise TypeError(
            "scale_by_schedule: step_size_fn must be a schedule (a callable of the step count), "
            f"got {type(step_size_fn).__name__}; for a constant factor use gradtx.scale"
        )
    return live("scale_by_schedule", _scale_by_schedule, step_size_fn=step_size_fn)


def _scale_by_learning_rate(learning_rate: Value, *, flip_sign: bool = True):
    if learning_rate is None:
        return identity()
    sign = -1 if flip_sign else 1
    return _times(lambda dtype: sign * value_as(learning_rate, dtype))


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None, *, flip_sign: bool = True
) -> GradientTransformation:
    r"""Multiplies the updates by ``-learning_rate`` (gradient descent), or by ``+learning_rate``.

    .. math:: u \leftarrow -\eta \, g \quad (\text{or } {+\eta} \, g \text{ without the flip})

    The last link of most optimizers: the links before it form a direction, this one turns it
    into a descent step of size η.

    Args:
      learning_rate: η >= 0, a float or a schedule; ``None`` means no scaling (as in optax).
        Required here: optax's defaults to ``None``.
      flip_sign: multiply by ``-η`` (the default, optax's) rather than ``η``; keyword-only.

    Returns:
      A :class:`GradientTransformation` whose state holds only the step count and the live
      ``learning_rate`` (the identity when it is ``None``).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> g = {"w": jnp.array([1.0, -2.0])}
      >>> tx = gradtx.scale_by_learning_rate(0.1)
      >>> tx.update(g, tx.init(g))[0]["w"]  # against the gradient
      Array([-0.1,  0.2], dtype=float32)
      >>> tx = gradtx.scale_by_learning_rate(0.1, flip_sign=False)
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([ 0.1, -0.2], dtype=float32)
    """
    flip_sign = check_flag("scale_by_learning_rate", "flip_sign", flip_sign)
    build = functools.partial(_scale_by_learning_rate, flip_sign=flip_sign)
    return live(
        "scale_by_learning_rate", build, optional=("learning_rate",), learning_rate=learning_rate
    )


def _floored(root: jax.Array, e: jax.Array, floor: jax.Array):
    """``max(root 2**e, floor)`` as a ``(root, e)`` pair."""
    below = _norms.from_scaled(root, e) < floor
    return jnp.where(below, floor, root), jnp.where(below, jnp.zeros_like(e), e)


def trust_ratio_leaf(g, p_norm, g_norm, min_norm: Value, trust_coefficient: Value, eps: Value):
    """``g * c ||p|| / (||g|| + eps)``, norms floored at ``min_norm``; ratio 1 if a norm is 0.

    The norms come as ``(root, e)`` pairs (``root * 2**e``, see
    :func:`gradtx._core.norms.scaled_norms`) and the ratio is applied without being formed: a
    ratio of 1e60 or 1e-60, or of two norms beyond float32's largest value, is no float32, but
    the update ``g c ||p|| / ||g||`` (of norm ``c ||p||``) is."""
    dtype = p_norm[0].dtype
    floor = value_as(min_norm, dtype)
    (p_root, p_e), (g_root, g_e) = _floored(*p_norm, floor), _floored(*g_norm, floor)
    keep = (p_root == 0) | (g_root == 0)
    eps = value_as(eps, dtype)
    plus_eps = _norms.from_scaled(g_root, g_e) + eps  # only eps > 0 changes the pair
    take = (eps > 0) & jnp.isfinite(plus_eps)
    g_root, g_e = jnp.where(take, plus_eps, g_root), jnp.where(take, jnp.zeros_like(g_e), g_e)
    numerator = value_as(trust_coefficient, dtype) * p_root
    return jnp.where(keep, g, _norms.times_ratio(g, numerator, g_root, g_e - p_e))


def _scale_by_trust_ratio(min_norm, trust_coefficient, eps, *, axes=None):
    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(
                "scale_by_trust_ratio: update needs params (the trust ratio uses them)"
            )
        _tree.check_match("scale_by_trust_ratio", (updates, params), ("updates", "params"))
        grads, treedef = jax.tree.flatten(updates)
        params = jax.tree.leaves(params)
        norms = _norms.scaled_norms(params + grads, axes)
        scaled = [
            trust_ratio_leaf(g, pn, gn, min_norm, trust_coefficient, eps)
            for g, pn, gn in zip(grads, norms[: len(grads)], norms[len(grads) :])
        ]
        return treedef.unflatten(scaled), state

    return GradientTransformation(identity().init, update)


def scale_by_trust_ratio(
    min_norm: ScalarOrSchedule = 0.0,
    trust_coefficient: ScalarOrSchedule = 1.0,
    eps: ScalarOrSchedule = 0.0,
    *,
    axis_name=None,
) -> GradientTransformation:
    r"""Scales each tensor's update by its trust ratio (LARS, LAMB).

    .. math::
      u_l \leftarrow u_l \cdot \frac{c \,\max(\|\theta_l\|, n_0)}{\max(\|u_l\|, n_0) + \epsilon}

    per tensor *l*, with the ratio taken as 1 when either norm is 0 (a zero-initialised layer
    still moves). Norms are taken in at least float32.

    Args:
      min_norm: :math:`n_0` >= 0, a floor for both norms. Default 0, optax's.
      trust_coefficient: *c* > 0 (LARS uses 0.001, LAMB 1). Default 1, optax's.
      eps: ε >= 0 added to the update norm. Default 0, optax's.
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along,
        so each tensor's norms are those of the whole tensor; see
        :func:`gradtx.clip_by_global_norm`. Default ``None`` (optax has no such argument).

    Returns:
      A :class:`GradientTransformation` whose state holds only the step count and the live
      hyperparameters; its ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_trust_ratio()
      >>> params = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
      >>> grads = {"w": jnp.array([0.6, 0.8]), "b": jnp.array([0.5, 0.5])}
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> updates["w"]  # norms 5 (params) and 1 (update): scaled by 5
      Array([3., 4.], dtype=float32)
      >>> updates["b"]  # zero params: ratio 1
      Array([0.5, 0.5], dtype=float32)

    References:
      You, Gitman and Ginsburg, *Large Batch Training of Convolutional Networks*, 2017;
      You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*,
      ICLR 2020 (arXiv 2019).
    """
    axes = _tree.axis_names("scale_by_trust_ratio", axis_name)
    return live(
        "scale_by_trust_ratio",
        functools.partial(_scale_by_trust_ratio, axes=axes),
        min_norm=min_norm,
        trust_coefficient=trust_coefficient,
        eps=eps,
    )
