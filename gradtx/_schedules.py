"""Schedules: pure functions ``step -> value`` for any hyperparameter.

A schedule takes the number of updates done so far (a Python int or an int32 array, traced or
not, under ``jit``, ``vmap`` and ``lax.scan`` alike) and returns a float scalar array.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gradtx._hyper import check_number

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def _step(count: jax.typing.ArrayLike) -> jax.Array:
    """The step as a float of the default precision."""
    return jnp.asarray(count).astype(jnp.asarray(0.0).dtype)


def _finite(owner: str, name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    check_number(owner, name, float(value))
    return float(value)


def _steps(owner: str, name: str, value, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def constant_schedule(value: float) -> Schedule:
    """``step -> value``."""
    value = _finite("constant_schedule", "value", value)
    return lambda count: jnp.full(jnp.shape(count), value, jnp.asarray(0.0).dtype)


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Linear interpolation from ``init_value`` to ``end_value`` (linear warmup or decay).

    .. math::
      \eta_t = \eta_0 + (\eta_1 - \eta_0)\, \frac{\operatorname{clip}(t - t_b, 0, T)}{T}

    ``init_value`` before ``transition_begin``, ``end_value`` after ``transition_begin +
    transition_steps``. With ``transition_steps == 0`` it is constant at ``init_value``, as in
    optax. Matches optax's ``linear_schedule``; PyTorch's ``LinearLR`` is the same line with
    factors instead of values.
    """
    owner = "linear_schedule"
    init_value = _finite(owner, "init_value", init_value)
    end_value = _finite(owner, "end_value", end_value)
    transition_steps = _steps(owner, "transition_steps", transition_steps, 0)
    transition_begin = _steps(owner, "transition_begin", transition_begin, 0)
    if transition_steps == 0:
        return constant_schedule(init_value)

    def schedule(count):
        done = jnp.clip(_step(count) - transition_begin, 0, transition_steps)
        frac = 1 - done / transition_steps
        return (init_value - end_value) * frac + end_value

    return schedule


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    r"""Cosine annealing from ``init_value`` to ``alpha * init_value`` over ``decay_steps``.

    .. math::
      \eta_t = \eta_0 \left((1 - \alpha)\left(\tfrac12\left(1 + \cos\tfrac{\pi \min(t, T)}{T}
      \right)\right)^{p} + \alpha\right)

    Constant at ``alpha * init_value`` after ``decay_steps``. Matches optax; equals PyTorch's
    ``CosineAnnealingLR(T_max=decay_steps, eta_min=alpha * init_value)`` for ``t <= T``.

    References:
      Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, 2016.
    """
    owner = "cosine_decay_schedule"
    init_value = _finite(owner, "init_value", init_value)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1)
    alpha = _finite(owner, "alpha", alpha)
    exponent = _finite(owner, "exponent", exponent)

    def schedule(count):
        t = jnp.minimum(_step(count), decay_steps)
        cosine = 0.5 * (1 + jnp.cos(math.pi * t / decay_steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule
