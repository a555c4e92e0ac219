"""Momentum and averages: trace (heavy ball, Nesterov), ema, bias correction."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import CLOSED_UNIT, check_dtype, check_flag
from gradtx._core.hyper import (
    ScalarOrSchedule,
    Value,
    live,
    one_minus,
    one_minus_power,
    per_dtype,
    value_as,
)

# ---- the math, for one array -------------------------------------------------------------


def ema_step(decay: Value) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(x, avg) -> (1 - decay) * x + decay * avg``, in the wider of the two dtypes.

    The two weights are formed once per dtype (see :func:`per_dtype`); make one per update.
    """
    weights = per_dtype(lambda dtype: (one_minus(decay, dtype), value_as(decay, dtype)))

    def step(x: jax.Array, avg: jax.Array) -> jax.Array:
        dtype = _tree.wider(x.dtype, avg.dtype)
        new, old = weights(dtype)
        return new * _tree.cast(x, dtype) + old * _tree.cast(avg, dtype)

    return step


def debias_step(decay: Value, count: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """``x -> x / (1 - decay**count)``; make one per update.

    The divisor is formed accurately in the hyperparameter's dtype, once; each leaf is
    multiplied by its reciprocal, taken once per dtype. (XLA rewrites a division by a broadcast
    scalar into that product in some programs and not in others, e.g. batched by ``vmap`` or
    not: written as a product, every program rounds the same way.)
    """
    divisor = one_minus_power(decay, count)
    reciprocal = per_dtype(lambda dtype: 1 / _tree.cast(divisor, dtype))
    return lambda x: x * reciprocal(x.dtype)


def trace_step(decay: Value) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(x, velocity) -> x + decay * velocity``, in the wider of the two dtypes; make one per
    update."""
    weight = per_dtype(lambda dtype: value_as(decay, dtype))

    def step(x: jax.Array, velocity: jax.Array) -> jax.Array:
        dtype = _tree.wider(x.dtype, velocity.dtype)
        return _tree.cast(x, dtype) + weight(dtype) * _tree.cast(velocity, dtype)

    return step


# ---- trace -------------------------------------------------------------------------------


class TraceState(NamedTuple):
    trace: Any  # like the params (accumulator_dtype if given): the velocity

    # decay = 1 is a plain running sum of the updates (optax accepts it too)
    live_ranges = {"decay": CLOSED_UNIT}


def _trace(decay: Value, *, nesterov: bool, accumulator_dtype: Any) -> GradientTransformation:
    def init(params):
        return TraceState(trace=_tree.zeros_like(params, accumulator_dtype))

    def update(updates, state, params=None, **extra):
        step = trace_step(decay)
        velocity = _tree.map(step, updates, state.trace, owner="trace")
        out = jax.tree.map(step, updates, velocity) if nesterov else velocity
        return out, TraceState(trace=_tree.cast_like(velocity, state.trace))

    return GradientTransformation(init, update)


def trace(
    decay: ScalarOrSchedule,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Heavy-ball momentum: a decaying sum of past updates.

    .. math::
      v_t = \beta v_{t-1} + g_t, \qquad
      u_t = v_t \;\text{(heavy ball)} \quad\text{or}\quad u_t = g_t + \beta v_t \;\text{(Nesterov)}

    This is PyTorch's and optax's convention (no ``1 - β`` on the gradient); the Nesterov form
    needs no look-ahead gradient.

    Args:
      decay: β, the momentum, in [0, 1] (1: a plain running sum): a float or a schedule.
      nesterov: use Nesterov's accelerated gradient.
      accumulator_dtype: dtype of the velocity (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its state keeps one velocity per param.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.trace(0.9)
      >>> g = {"w": jnp.ones(2)}
      >>> u, s = tx.update(g, tx.init(g))
      >>> u, s = tx.update(g, s)
      >>> u["w"]
      Array([1.9, 1.9], dtype=float32)

    References:
      Polyak, 1964; Sutskever et al., *On the importance of initialization and momentum in
      deep learning*, 2013.
    """
    nesterov = check_flag("trace", "nesterov", nesterov)
    accumulator_dtype = check_dtype("trace", "accumulator_dtype", accumulator_dtype)
    build = functools.partial(_trace, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    return live("trace", build, ranges=TraceState.live_ranges, decay=decay)


# ---- ema ---------------------------------------------------------------------------------


class EmaState(NamedTuple):
    count: jax.Array  # int32 []: updates averaged so far (for bias correction)
    ema: Any  # like the params (accumulator_dtype if given): the biased average


def _ema(
    decay: Value,
    *,
    debias: bool = True,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
    initial_value: float = 0.0,
) -> GradientTransformation:
    """The exponential moving average of the incoming updates (shared by ema, rms and adam)."""

    def init(params):
        return EmaState(
            count=_tree.zero_count(),
            ema=_tree.full_like(params, initial_value, accumulator_dtype),
        )

    def update(updates, state, params=None, **extra):
        average = _tree.map(ema_step(decay), updates, state.ema, owner="ema")
        count = _tree.saturating_increment(state.count)
        if nesterov:
            # Nesterov (Dozat, 2016): the average one step ahead plus this step's gradient;
            # without debiasing, PyTorch's Muon's b m_t + (1 - b) g_t
            ahead = _tree.saturating_increment(count)
            identity = lambda x: x  # noqa: E731
            debias_ahead = debias_step(decay, ahead) if debias else identity
            debias_now = debias_step(decay, count) if debias else identity
            weights = per_dtype(lambda dtype: (value_as(decay, dtype), one_minus(decay, dtype)))

            def out_leaf(m, g):
                m = debias_ahead(m)
                g = debias_now(_tree.cast(g, m.dtype))
                old, new = weights(m.dtype)
                return old * m + new * g

            out = jax.tree.map(out_leaf, average, updates)
        elif debias:
            out = jax.tree.map(debias_step(decay, count), average)
        else:
            out = average
        return out, EmaState(count=count, ema=_tree.cast_like(average, state.ema))

    return GradientTransformation(init, update)


def ema(
    decay: ScalarOrSchedule,
    debias: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Exponentially weighted average of the updates, optionally bias-corrected.

    .. math::
      v_t = \beta v_{t-1} + (1 - \beta)\, g_t, \quad v_0 = 0, \qquad
      \hat v_t = \frac{v_t}{1 - \beta^t} \;\text{(debias)}

    It averages over about :math:`1 / (1 - \beta)` steps; without the correction the first
    values are biased towards 0.

    Args:
      decay: β in [0, 1): a float or a schedule (no default, as in optax).
      debias: divide by :math:`1 - \beta^t`. Default ``True`` (optax's).
      accumulator_dtype: dtype of the stored average (default ``None``: the params' dtype).

    Returns:
      A :class:`GradientTransformation` returning the (debiased) average.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.ema(0.9)
      >>> g = {"w": jnp.full(2, 5.0)}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # debiased: the average of one 5 is 5
      Array([5., 5.], dtype=float32)

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 3 (the
      bias correction of a zero-started average).
    """
    debias = check_flag("ema", "debias", debias)
    accumulator_dtype = check_dtype("ema", "accumulator_dtype", accumulator_dtype)
    build = functools.partial(_ema, debias=debias, accumulator_dtype=accumulator_dtype)
    return live("ema", build, decay=decay)


# ---- bias correction ---------------------------------------------------------------------


class BiasCorrectionState(NamedTuple):
    count: jax.Array  # int32 []: updates seen so far


def _bias_correction(decay: Value) -> GradientTransformation:
    def init(params):
        del params
        return BiasCorrectionState(count=_tree.zero_count())

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        out = jax.tree.map(debias_step(decay, count), updates)
        return out, BiasCorrectionState(count=count)

    return GradientTransformation(init, update)


def bias_correction(decay: ScalarOrSchedule) -> GradientTransformation:
    r"""Divides the updates by :math:`1 - \beta^t`: the bias correction of a zero-started average.

    Placed after an ``ema(decay, debias=False)`` it gives the same result as
    ``ema(decay, debias=True)``.

    .. math:: u_t = g_t / (1 - \beta^t), \quad t = 1, 2, \ldots

    Args:
      decay: β in [0, 1) of the average being corrected, a float or a schedule (no default).

    Returns:
      A :class:`GradientTransformation` whose state holds ``decay`` and the step count.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.bias_correction(0.5)
      >>> g = {"w": jnp.ones(1)}
      >>> tx.update(g, tx.init(g))[0]["w"]  # 1 / (1 - 0.5)
      Array([2.], dtype=float32)

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, 2014, section 3.
    """
    return live("bias_correction", _bias_correction, decay=decay)
