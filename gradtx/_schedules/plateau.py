"""Reducing the step size when a monitored loss stops improving (PyTorch's ReduceLROnPlateau)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import _float_dtype, check_count
from gradtx._core.hyper import ScalarOrSchedule, Value, live, one_minus, value_as

_NEGLIGIBLE = 1e-8


class ReduceOnPlateauState(NamedTuple):
    scale: jax.Array  # float []: the factor the next updates are multiplied by (1 at first)
    best: jax.Array  # float []: the best loss seen so far (+inf at first)
    bad_steps: jax.Array  # int32 []: losses without improvement since the best or a reduction
    cooldown_left: jax.Array  # int32 []: steps left in which bad losses are not counted


def _reduce_on_plateau(factor: Value, threshold: Value, min_scale: Value, *, patience, cooldown):
    def init(params):
        del params
        dtype = _float_dtype()
        return ReduceOnPlateauState(
            scale=jnp.ones([], dtype),
            best=jnp.full([], jnp.inf, dtype),
            bad_steps=jnp.zeros([], jnp.int32),
            cooldown_left=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, loss=None, value=None, **extra):
        # value= is optax's name for it; in a chain where a line search also takes value=
        # (the objective), loss= is the monitored one
        loss = value if loss is None else loss
        if loss is None:
            raise ValueError(
                "reduce_on_plateau: update needs the monitored loss, as update(..., loss=value) "
                "(or optax's value=)"
            )
        if jnp.ndim(loss) != 0:
            raise ValueError(
                f"reduce_on_plateau: loss must be a scalar, got shape {jnp.shape(loss)}"
            )
        # This step uses the scale decided by the losses before it, as a PyTorch scheduler
        # stepped after the optimizer does.
        out = jax.tree.map(lambda g: g * state.scale.astype(g.dtype), updates)

        dtype = state.best.dtype
        loss = jnp.asarray(loss).astype(dtype)
        better = loss < state.best * one_minus(threshold, dtype)
        best = jnp.where(better, loss, state.best)
        bad = jnp.where(better, 0, state.bad_steps + 1)
        cooling = state.cooldown_left > 0
        cooldown_left = jnp.where(cooling, state.cooldown_left - 1, state.cooldown_left)
        bad = jnp.where(cooling, 0, bad)
        reduce = bad > patience
        smaller = jnp.maximum(state.scale * value_as(factor, dtype), value_as(min_scale, dtype))
        # As PyTorch: a reduction by less than 1e-8 is float noise at the floor, not a step.
        reduce_scale = reduce & (state.scale - smaller > _NEGLIGIBLE)
        new_state = ReduceOnPlateauState(
            scale=jnp.where(reduce_scale, smaller, state.scale),
            best=best,
            bad_steps=jnp.where(reduce, 0, bad),
            cooldown_left=jnp.where(reduce, cooldown, cooldown_left),
        )
        return out, new_state

    return GradientTransformation(init, update)


def reduce_on_plateau(
    factor: ScalarOrSchedule = 0.1,
    patience: int = 10,
    threshold: ScalarOrSchedule = 1e-4,
    cooldown: int = 0,
    min_scale: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    r"""Multiplies the updates by a scale that drops by ``factor`` when the loss plateaus.

    ``update(updates, state, params, loss=value)`` (or optax's ``value=value``) takes the
    monitored loss (for instance the loss whose gradients are being applied, or a validation
    loss). A loss counts as an
    improvement when :math:`\ell < \ell_{best}(1 - \text{threshold})`; after more than
    ``patience`` losses in a row without one, the scale becomes
    :math:`\max(\text{scale} \cdot \text{factor}, \text{min\_scale})`, and the next
    ``cooldown`` losses are not counted. The decisions are PyTorch's ``ReduceLROnPlateau``
    (``mode="min"``, ``threshold_mode="rel"``) with ``min_lr = min_scale * lr``; like a PyTorch
    scheduler stepped after the optimizer, the new scale applies from the next update on.
    As in PyTorch, a reduction by less than 1e-8 is skipped (here in scale units: PyTorch's
    learning-rate units with a base rate of 1). Place it after the learning rate, e.g.
    ``chain(adam(1e-3), reduce_on_plateau())``; the current scale is
    ``state.inner_state.scale`` of its state.

    Args:
      factor: the multiplier of each reduction, in (0, 1), a float or a schedule. Default 0.1
        (optax's and PyTorch's).
      patience: the number of losses without improvement tolerated before a reduction, an
        int >= 0. Default 10 (optax's and PyTorch's).
      threshold: the relative improvement that counts, >= 0. Default 1e-4 (PyTorch's
        ``threshold``, optax's ``rtol``).
      cooldown: the number of losses ignored after a reduction, an int >= 0. Default 0.
      min_scale: the scale never drops below this, >= 0. Default 0.

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs ``loss=``; its state holds the
      live hyperparameters, the current scale, the best loss and the plateau counters.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.reduce_on_plateau(factor=0.5, patience=1)
      >>> g = {"w": jnp.ones(2)}
      >>> state = tx.init(g)
      >>> for loss in [1.0, 1.0, 1.0]:
      ...     updates, state = tx.update(g, state, loss=loss)
      >>> float(state.inner_state.scale)
      0.5

    References:
      He, Zhang, Ren and Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016,
      section 3.4 ("the learning rate ... is divided by 10 when the error plateaus").
    """
    owner = "reduce_on_plateau"
    build = functools.partial(
        _reduce_on_plateau,
        patience=check_count(owner, "patience", patience, 0),
        cooldown=check_count(owner, "cooldown", cooldown, 0),
    )
    return live(owner, build, factor=factor, threshold=threshold, min_scale=min_scale)
