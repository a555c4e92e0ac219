"""Periodic application: the updates summed over ``k`` steps and emitted on the ``k``-th."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.hyper import ScalarOrSchedule, Value, live, scalar

# k is a whole number of steps; stored with the other live values as a float, it is read back
# rounded (a float32 table holds every int up to 2**24 exactly, and a period beyond 2**30 never
# comes round in practice)
_PERIOD = (
    "a positive int",
    lambda v: (v >= 1) & (v <= _tree.INT32_MAX) & (v % 1 == 0),
)


class ApplyEvery(NamedTuple):
    """The state of :func:`apply_every` (optax's name and fields), inside the live state."""

    count: jax.Array  # int32 []: the position in the cycle, in [0, k)
    grad_acc: Any  # like the params, each leaf in its param's dtype: this cycle's sum so far

    live_ranges = {"k": _PERIOD}


def _period(k: Value) -> jax.Array:
    return jnp.clip(jnp.round(scalar(k)), 1, 2**30).astype(jnp.int32)


def _apply_every(k: Value) -> GradientTransformation:
    def init(params):
        return ApplyEvery(count=_tree.zero_count(), grad_acc=_tree.zeros_like(params))

    def update(updates, state, params=None, **extra):
        del params, extra
        period = _period(k)
        position = state.count % period
        first, last = position == 0, position == period - 1

        def add(g, acc):
            dtype = _tree.wider(g.dtype, acc.dtype)
            g = g.astype(dtype)
            # a new cycle starts from this step's updates alone (optax multiplies the old sum
            # by 0, which keeps a NaN or an infinity from the last cycle for ever)
            return jnp.where(first, g, acc.astype(dtype) + g)

        sums = _tree.map(add, updates, state.grad_acc, owner="apply_every")
        # -0.0 between emissions: apply_updates leaves the params bitwise unchanged
        out = jax.tree.map(lambda s: jnp.where(last, s, jnp.full_like(s, -0.0)), sums)
        new_state = ApplyEvery(
            count=(position + 1) % period, grad_acc=_tree.cast_like(sums, state.grad_acc)
        )
        return out, new_state

    return GradientTransformation(init, update)


def apply_every(k: ScalarOrSchedule = 1) -> GradientTransformation:
    r"""Sums the updates over ``k`` steps and emits the sum on every ``k``-th step, zeros between.

    .. math:: u_t = \begin{cases} \sum_{s=t-k+1}^{t} g_s & \text{if } t \equiv 0 \pmod k \\
       0 & \text{otherwise} \end{cases} \qquad (t = 1, 2, \ldots)

    Only this link holds the step back: in a chain, the transformations before it still see
    every step's gradients and update their state at each one, so ``apply_every`` after Adam
    is not Adam on batches *k* times larger. For that, wrap the whole optimizer in
    :class:`MultiSteps`. The zeros are ``-0.0``, which :func:`apply_updates` adds without
    changing any param's bits. The sum is kept in the params' dtypes.

    Args:
      k: the period, a positive int (optax's default 1: every step); a live hyperparameter (a
        schedule, or :func:`set_hyperparams`, may change it; the cycle then continues from the
        step count modulo the new period).

    Returns:
      A :class:`GradientTransformation`; its state holds :class:`ApplyEvery` and the live ``k``.

    Raises:
      TypeError: if ``k`` is not a number or a schedule.
      ValueError: if ``k`` is not a positive int.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.apply_every(k=2)
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> for g in (1.0, 2.0, 3.0, 4.0):
      ...     updates, state = tx.update({"w": jnp.array([g])}, state)
      ...     print(float(updates["w"][0]))
      -0.0
      3.0
      -0.0
      7.0
    """
    owner = "apply_every"
    if isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, bool):
        if int(k) > _tree.INT32_MAX:
            raise ValueError(f"{owner}: k must be <= {_tree.INT32_MAX} (an int32), got {k}")
    return live(owner, _apply_every, ranges=ApplyEvery.live_ranges, k=k)
