"""Measurements of the updates kept in the state, as links of a chain: a snapshot of a measure
taken where the link stands, and its exponential moving average (optax's ``snapshot`` and
``measure_with_ema``; :func:`gradtx.monitor` wraps a whole optimizer instead)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core.base import (
    GradientTransformation,
    PyTree,
    _is_pair,
    stateless,
    with_extra_args,
)
from gradtx._core.checks import _float_dtype, check_dtype, check_flag
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, Value, live
from gradtx._transforms.momentum import _ema

# ---- snapshot ----------------------------------------------------------------------------


class SnapshotState(NamedTuple):
    """The state of :func:`snapshot` (optax's field name)."""

    measurement: dict[str, Any]  # {measure_name: what measure returned}: of the updates this
    #   link saw last (of the params after init), in the shapes and dtypes measure gives


def _check_measure(owner: str, measure: Any) -> None:
    if not callable(measure):
        raise TypeError(
            f"{owner}: measure must be a function of the updates, got {type(measure).__name__}"
        )


def snapshot(measure_name: str, measure: Callable[[PyTree], PyTree]) -> GradientTransformation:
    r"""Records ``measure(updates)`` in the state, under ``measure_name``; the updates pass.

    .. math:: u \leftarrow g, \qquad s \leftarrow \{\text{name}: f(g)\}

    A probe for a chain: placed between two links, it keeps what the updates look like there
    (their norm before clipping, say), to read from the state after the step, for example with
    ``optax.tree.get(state, measure_name)``. ``init`` records ``measure(params)``, so ``measure``
    must give the same shapes and dtypes for the params as for the updates (a ``jit``-ted
    step, or ``lax.scan``, needs the state's to stay the same).

    Args:
      measure_name: the key of the measurement in the state.
      measure: a function of the updates (a tree) returning a tree of arrays.

    Returns:
      A :class:`GradientTransformation` with :class:`SnapshotState` state; its updates are the
      incoming ones, unchanged.

    Raises:
      TypeError: if ``measure_name`` is not a string or ``measure`` not callable.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.chain(
      ...     gradtx.snapshot("norm_before_clip", gradtx.global_norm),
      ...     gradtx.clip_by_global_norm(1.0),
      ... )
      >>> g = {"w": jnp.array([3.0, 4.0])}
      >>> updates, state = tx.update(g, tx.init(g))
      >>> state[0].measurement["norm_before_clip"], updates["w"]
      (Array(5., dtype=float32), Array([0.6, 0.8], dtype=float32))
    """
    owner = "snapshot"
    if not isinstance(measure_name, str):
        raise TypeError(f"{owner}: measure_name must be a string, got {measure_name!r}")
    _check_measure(owner, measure)

    def init(params):
        return SnapshotState(measurement={measure_name: measure(params)})

    def update(updates, state, params=None, **extra):
        del state, params, extra
        return updates, SnapshotState(measurement={measure_name: measure(updates)})

    return GradientTransformation(init, update)


# ---- measure_with_ema --------------------------------------------------------------------


def _as_float(tree: PyTree) -> PyTree:
    """Each leaf as an array, a bool or integer one as the default float (an average of
    ``norm > c`` is the fraction of steps where it held)."""

    def leaf(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(_float_dtype())

    return jax.tree.map(leaf, tree)


def _measure_with_ema(
    decay: Value, *, measure: Callable, debias: bool, accumulator_dtype: Any
) -> GradientTransformation:
    average = _ema(decay, debias=debias, accumulator_dtype=accumulator_dtype)
    measured = lambda tree: _as_float(measure(tree))  # noqa: E731
    # the average is shaped like the measurement, not like the params
    of_measurement = GradientTransformation(
        lambda params: average.init(measured(params)), average.update
    )
    return chain(stateless(lambda updates, params: measured(updates)), of_measurement)


def measure_with_ema(
    measure: Callable[[PyTree], PyTree],
    decay: ScalarOrSchedule,
    debias: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""The exponential moving average of ``measure(updates)``, returned in place of the updates.

    .. math:: m_t = \beta m_{t-1} + (1 - \beta) f(g_t), \quad m_0 = 0, \qquad
       \hat m_t = m_t / (1 - \beta^t) \text{ (debias)}

    Its "updates" are the averaged measurement, so it is not a link to put in the path of the
    updates: optax uses it as a measure of ``optax.monitor``'s dictionary (gradtx's
    :func:`monitor` wraps a whole optimizer instead; read this one's state). A bool or integer
    measurement (``norm > c``) is averaged as a float: the average is then the recent fraction
    of steps where it held. It is :func:`gradtx.ema` of the measurement, ``decay`` live.

    Args:
      measure: a function of the updates returning a tree of arrays.
      decay: β in [0, 1), a float or a schedule (no default, as in optax).
      debias: divide by :math:`1 - \beta^t`. Default ``True`` (optax's).
      accumulator_dtype: the dtype of the stored average (default ``None``: the measurement's).

    Returns:
      A :class:`GradientTransformation` whose ``update`` returns the (debiased) average of the
      measurements; its state holds the average, shaped like ``measure(params)``.

    Raises:
      TypeError: if ``measure`` is not callable, ``decay`` not a number or a schedule,
        ``debias`` not a bool or ``accumulator_dtype`` not a floating dtype.
      ValueError: if ``decay`` is not in [0, 1).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.measure_with_ema(gradtx.global_norm, decay=0.5, debias=False)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> for g in (4.0, 8.0):
      ...     average, state = tx.update({"w": jnp.array([g, 0.0])}, state)
      ...     print(float(average))
      2.0
      5.0
    """
    owner = "measure_with_ema"
    _check_measure(owner, measure)
    debias = check_flag(owner, "debias", debias)
    accumulator_dtype = check_dtype(owner, "accumulator_dtype", accumulator_dtype)
    build = functools.partial(
        _measure_with_ema, measure=measure, debias=debias, accumulator_dtype=accumulator_dtype
    )
    return live(owner, build, decay=decay)


# ---- monitor's dictionary of measures ------------------------------------------------------


class MonitorState(NamedTuple):
    """The state of :func:`gradtx.monitor` given a dictionary of measures: optax's
    ``MonitorState`` (``MeasuresState`` for a day; the state of ``monitor`` wrapping an
    optimizer is :class:`gradtx.MonitoredState`)."""

    measurements: dict[str, Any]  # {name: the measure's last result}: zeros shaped as the
    #   measure's result until the first update
    measure_states: tuple[Any, ...]  # each measure's state, in the dictionary's order


def measures_link(owner: str, measures: Any) -> GradientTransformation:
    """The link that records each of ``measures`` (name -> function of the updates, or a
    transformation whose "updates" are the measurement, as :func:`measure_with_ema`) in the
    state; the updates pass unchanged."""
    links = {}
    for name, measure in measures.items():
        if not isinstance(name, str):
            raise TypeError(f"{owner}: the measures' names must be strings, got {name!r}")
        if _is_pair(measure):
            links[name] = with_extra_args(measure)
        elif callable(measure):
            links[name] = stateless(lambda updates, params, m=measure: m(updates))
        else:
            raise TypeError(
                f"{owner}: the measure {name!r} must be a function of the updates or a "
                f"transformation, got {type(measure).__name__}"
            )

    def init(params):
        states = tuple(link.init(params) for link in links.values())
        # zeros shaped as each measurement, so that the state's structure never changes (a
        # jitted step or a scan carries it)
        shapes = {
            name: jax.eval_shape(lambda s, link=link: link.update(params, s, params)[0], state)
            for (name, link), state in zip(links.items(), states)
        }
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return MonitorState(measurements=zeros, measure_states=states)

    def update(updates, state, params=None, **extra):
        if not isinstance(state, MonitorState) or len(state.measure_states) != len(links):
            raise ValueError(
                f"{owner}: the state must be the MonitorState that init made, got "
                f"{type(state).__name__}"
            )
        measurements, states = {}, []
        for (name, link), inner in zip(links.items(), state.measure_states):
            measurements[name], new = link.update(updates, inner, params, **extra)
            states.append(new)
        return updates, MonitorState(measurements=measurements, measure_states=tuple(states))

    return GradientTransformation(init, update)
