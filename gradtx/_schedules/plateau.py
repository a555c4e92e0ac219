"""Reducing the step size when a monitored value stops improving: optax's reduce_on_plateau, and
PyTorch's ReduceLROnPlateau decisions (``rule="pytorch"``), in optax's state layout."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import UNIT, MissingArgumentError, _float_dtype, check_count
from gradtx._core.hyper import ScalarOrSchedule, Value, live, one_minus, value_as

_RULES = ("optax", "pytorch")
_NEGLIGIBLE = 1e-8  # PyTorch's eps: a smaller reduction is float noise at the floor, not a step


class ReduceLROnPlateauState(NamedTuple):
    """optax's ``ReduceLROnPlateauState``, field for field (names, order and dtypes)."""

    scale: jax.Array  # float [] (the params' lowest float dtype): multiplies the updates (1 first)
    best_value: jax.Array  # float [] (the params' highest float dtype): best average (+inf first)
    plateau_count: jax.Array  # int32 []: averages without improvement, since the best or a cut
    cooldown_count: jax.Array  # int32 []: averages left that do not count toward a plateau
    count: jax.Array  # int32 []: values in the running average (0 to accumulation_size - 1)
    avg_value: jax.Array  # like best_value: the mean of those values (0 when count is 0)

    # rtol is 1 - (the fraction of the best an average must fall to), so it stays below 1
    live_ranges = {"rtol": UNIT}


def _state_dtypes(params: Any) -> tuple[Any, Any]:
    """(lowest, highest) real float dtype of the params' leaves, as optax picks them (the default
    float dtype for no leaves; where no leaf's dtype promotes to all others, the promoted one)."""
    dtypes = []
    for x in jax.tree.leaves(params):
        dtype = jnp.dtype(x.dtype) if hasattr(x, "dtype") else jnp.asarray(x).dtype
        if jnp.issubdtype(dtype, jnp.inexact):
            dtypes.append(jnp.dtype(jnp.finfo(dtype).dtype))  # a complex leaf's real part
    if not dtypes:
        return _float_dtype(), _float_dtype()
    with jax.numpy_dtype_promotion("standard"):
        highest = functools.reduce(jnp.promote_types, dtypes)
        lower = (d for d in dtypes if all(jnp.promote_types(d, e) == e for e in dtypes))
        return next(lower, highest), highest


def _reduce_on_plateau(
    factor: Value,
    rtol: Value,
    atol: Value,
    min_scale: Value,
    *,
    patience: int,
    cooldown: int,
    accumulation_size: int,
    rule: str,
):
    pytorch = rule == "pytorch"

    def init(params):
        lowest, highest = _state_dtypes(params)
        return ReduceLROnPlateauState(
            scale=jnp.ones([], lowest),
            best_value=jnp.full([], jnp.inf, highest),
            plateau_count=_tree.zero_count(),
            cooldown_count=_tree.zero_count(),
            count=_tree.zero_count(),
            avg_value=jnp.zeros([], highest),
        )

    def decide(state):
        """The state after judging the average of its values (count and average reset)."""
        best, scale, average = state.best_value, state.scale, state.avg_value
        dtype, scale_dtype = best.dtype, scale.dtype
        # rtol is relative to |best|: for a negative best, optax's and PyTorch's (1 - rtol) * best
        # lies above it, and a worse average would count as an improvement
        bar = jnp.where(
            best >= 0, best * one_minus(rtol, dtype), best * (1 + value_as(rtol, dtype))
        ) - value_as(atol, dtype)
        improved = average < bar
        cooling = state.cooldown_count > 0
        bad = jnp.where(improved | cooling, 0, _tree.saturating_increment(state.plateau_count))
        cut = scale * value_as(factor, scale_dtype)
        floor = value_as(min_scale, scale_dtype)
        if pytorch:
            reduce = bad > patience
            smaller = jnp.maximum(cut, floor)
            scale = jnp.where(reduce & (scale - smaller > _NEGLIGIBLE), smaller, scale)
        else:
            # optax tests ``bad == patience``: with patience 0 that holds right after an
            # improvement, so it cuts the scale on improvements only; here never on one
            reduce = bad >= max(patience, 1)
            # as optax: outside a cooldown the scale is held at min_scale or above
            scale = jnp.where(cooling, scale, jnp.maximum(jnp.where(reduce, cut, scale), floor))
        return ReduceLROnPlateauState(
            scale=scale,
            best_value=jnp.where(improved, average, best),
            plateau_count=jnp.where(reduce, 0, bad),
            cooldown_count=jnp.where(
                reduce, cooldown, jnp.where(cooling, state.cooldown_count - 1, 0)
            ).astype(jnp.int32),
            count=_tree.zero_count(),
            avg_value=jnp.zeros([], dtype),
        )

    def update(updates, state, params=None, *, loss=None, value=None, **extra):
        del params, extra
        # value= is optax's name for it; in a chain where a line search also takes value= (its
        # objective), loss= is the monitored one
        name, monitored = ("value", value) if loss is None else ("loss", loss)
        if monitored is None:
            raise MissingArgumentError(
                "reduce_on_plateau: update needs the monitored loss, as update(..., value=v) "
                "(optax's name) or update(..., loss=v)"
            )
        if jnp.ndim(monitored) != 0:
            raise ValueError(
                f"reduce_on_plateau: {name} must be a scalar, got shape {jnp.shape(monitored)}"
            )
        dtype = state.avg_value.dtype
        count = _tree.saturating_increment(state.count)
        total = state.count.astype(dtype) * state.avg_value + jnp.asarray(monitored).astype(dtype)
        accumulated = state._replace(count=count, avg_value=total / count.astype(dtype))
        judge = count >= accumulation_size
        new_state = jax.tree.map(
            functools.partial(jnp.where, judge), decide(accumulated), accumulated
        )
        # optax's new scale applies to this update; PyTorch's scheduler, stepped after the
        # optimizer, changes the rate from the next step on
        applied = state.scale if pytorch else new_state.scale
        return jax.tree.map(lambda g: g * applied.astype(g.dtype), updates), new_state

    return GradientTransformation(init, update)


def reduce_on_plateau(
    factor: ScalarOrSchedule = 0.1,
    patience: int = 10,
    rtol: ScalarOrSchedule = 1e-4,
    atol: ScalarOrSchedule = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: ScalarOrSchedule = 0.0,
    *,
    rule: str = "optax",
) -> GradientTransformation:
    r"""Multiplies the updates by a scale that drops by ``factor`` when a monitored value plateaus.

    ``update(updates, state, params, value=v)`` (or ``loss=v``; given both, ``loss`` is the
    monitored one) takes the monitored value: a validation loss, or the training loss of the
    batch, averaged over ``accumulation_size`` updates. Every ``accumulation_size``-th update
    judges the average :math:`\bar v` of the values since the last judgement. It is an
    improvement when

    .. math:: \bar v < v_{best} - \text{rtol}\,|v_{best}| - \text{atol},

    and becomes the new :math:`v_{best}`; any other average adds one to the plateau count.
    When the count reaches ``patience`` the scale becomes
    :math:`\max(\text{scale} \cdot \text{factor}, \text{min\_scale})`, the count restarts, and the
    next ``cooldown`` averages do not count. The new scale applies to this update already.
    Place it after the learning rate, e.g. ``chain(adam(1e-3), reduce_on_plateau())``; the
    current scale is ``state.scale`` (the state is optax's :class:`ReduceLROnPlateauState`
    inside gradtx's table of live hyperparameters).

    These are optax's ``optax.contrib.reduce_on_plateau``'s decisions, defaults and state, but
    for two of optax's bugs, kept out of gradtx's. optax cuts the scale when its count *equals*
    ``patience``: with ``patience=0`` it cuts at every improvement (the count is 0 just after
    one) and never after a bad average, and a count above ``patience`` (a state restored under
    a smaller one) never cuts again; here a cut needs a bad average and a count of at least
    ``patience``, so ``patience=0`` cuts at every bad average, as ``patience=1`` does. And
    optax's bar :math:`(1 - \text{rtol})\,v_{best}` lies *above* a negative best, so a slightly
    worse average counts as an improvement; here rtol is taken of :math:`|v_{best}|` (the same
    numbers for a best >= 0). As optax, outside a cooldown a judgement raises a scale below
    ``min_scale`` to it (a ``min_scale`` raised with :func:`gradtx.set_hyperparams`).

    ``rule="pytorch"`` makes PyTorch's ``ReduceLROnPlateau`` decisions (``mode="min"``) instead,
    with ``min_lr = min_scale * lr``: a cut after *more than* ``patience`` bad averages, the new
    scale from the next update on (as a PyTorch scheduler stepped after the optimizer), and a cut
    by less than 1e-8 skipped (PyTorch's ``eps``, here in scale units). ``rtol`` is PyTorch's
    ``threshold`` with ``threshold_mode="rel"``; ``rtol=0, atol=threshold`` is
    ``threshold_mode="abs"``. The state and the averaging over ``accumulation_size`` are the
    same.

    A :class:`ReduceLROnPlateauState` given to ``update`` without the table (optax's state, or
    one built by hand) is updated with the factory's hyperparameters and handed back in its
    own type; that needs hyperparameters that are not schedules.

    Args:
      factor: the multiplier of each cut, in (0, 1), a float or a schedule. Default 0.1.
      patience: the number of averages without improvement that make a cut (with
        ``rule="pytorch"``, that are tolerated before one), an int >= 0. Default 10.
      rtol: the improvement that counts, relative to the best, in [0, 1). Default 1e-4.
        (optax takes 1 too, which makes no positive average an improvement, and its first
        bar :math:`0 \cdot \infty` NaN.)
      atol: the improvement that counts, absolute, >= 0. Default 0. Unlike optax, ``rtol`` and
        ``atol`` may both be 0 (live values are checked one by one): then any decrease counts.
      cooldown: the number of averages after a cut that do not count, an int >= 0. Default 0.
      accumulation_size: the number of values averaged for one judgement, an int >= 1
        (optax takes 0, and never judges). Default 1 (a validation value each time); more
        smooths the training loss of batches.
      min_scale: the scale is not cut below this, >= 0. Default 0.
      rule: ``"optax"`` (the default) or ``"pytorch"``, keyword-only.

    The defaults are optax's (and PyTorch's, where it has the argument).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs ``value=`` (or ``loss=``); its
      state holds the live hyperparameters and a :class:`ReduceLROnPlateauState`.

    Raises:
      ValueError: for an argument out of its range or an unknown rule, naming it.
      TypeError: for a patience, cooldown or accumulation size that is not an int.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.reduce_on_plateau(factor=0.5, patience=2)
      >>> g = {"w": jnp.ones(2)}
      >>> state = tx.init(g)
      >>> for value in [1.0, 1.0, 1.0]:  # an improvement on +inf, then two without
      ...     updates, state = tx.update(g, state, value=value)
      >>> float(state.scale), updates["w"].tolist()
      (0.5, [0.5, 0.5])

    References:
      He, Zhang, Ren and Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016,
      section 3.4 ("the learning rate ... is divided by 10 when the error plateaus").
    """
    owner = "reduce_on_plateau"
    if rule not in _RULES:
        raise ValueError(f"{owner}: rule must be 'optax' or 'pytorch', got {rule!r}")
    hyper = dict(factor=factor, rtol=rtol, atol=atol, min_scale=min_scale)
    build = functools.partial(
        _reduce_on_plateau,
        patience=check_count(owner, "patience", patience, 0),
        cooldown=check_count(owner, "cooldown", cooldown, 0),
        accumulation_size=check_count(owner, "accumulation_size", accumulation_size, 1),
        rule=rule,
    )
    return live(owner, build, ranges=ReduceLROnPlateauState.live_ranges, **hyper)
