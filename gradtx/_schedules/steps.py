"""What every schedule shares: its arguments checked when it is built, and the step as it reads it.

A step may be a traced int32 count (the optimizer's, read as is), a float, or a concrete Python or
NumPy integer of any size: past the range of JAX's integers it neither overflows nor wraps around.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core.checks import _float_dtype, check_number

# Validation: on concrete Python values, when the schedule is built.


def _finite(owner: str, name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    check_number(owner, name, float(value))
    return float(value)


def _positive(owner: str, name: str, value) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        # before _finite: a name in the live table (decay_rate, Adafactor's exponent >= 0) may
        # mean another thing there than here (a factor > 0)
        if math.isfinite(value) and value <= 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {float(value)!r}")
    return _finite(owner, name, value)


def _non_negative(owner: str, name: str, value) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value) and value < 0:
            raise ValueError(f"{owner}: {name} must be >= 0, got {float(value)!r}")
    return _finite(owner, name, value)


def _boundaries(owner: str, boundaries_and_scales) -> list[tuple[int, float]]:
    """``{step: scale}`` checked (int steps >= 0, finite scales >= 0), as sorted pairs."""
    if boundaries_and_scales is None:
        return []
    if not isinstance(boundaries_and_scales, Mapping):
        raise TypeError(
            f"{owner}: boundaries_and_scales must be a dict {{step: scale}} or None, "
            f"got {type(boundaries_and_scales).__name__}"
        )
    pairs = []
    for boundary, scale in boundaries_and_scales.items():
        if not isinstance(boundary, numbers.Integral) or isinstance(boundary, bool):
            raise TypeError(
                f"{owner}: boundaries_and_scales keys must be ints (steps), got {boundary!r}"
            )
        if boundary < 0:
            raise ValueError(
                f"{owner}: boundaries_and_scales keys must be >= 0 (steps), got {boundary!r}"
            )
        boundary = int(boundary)
        scale = _finite(owner, f"boundaries_and_scales[{boundary}]", scale)
        if scale < 0:
            raise ValueError(
                f"{owner}: boundaries_and_scales[{boundary}] must be >= 0, got {scale!r}"
            )
        pairs.append((boundary, scale))
    return sorted(pairs)


def _steps(owner: str, name: str, value, minimum: int | None) -> int:
    """``value`` as an int, >= ``minimum`` unless that is None (any int)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def _sequence(owner: str, name: str, value, what: str) -> list:
    """``value`` as a list, if it is a sequence of ``what`` (a NamedTuple, such as a
    GradientTransformation, a string or a dict is not, though Python can iterate it)."""
    if (
        isinstance(value, (str, bytes, Mapping))
        or hasattr(value, "_fields")
        or not isinstance(value, Iterable)
    ):
        raise TypeError(f"{owner}: {name} must be a list of {what}, got {type(value).__name__}")
    return list(value)


def _choice(owner: str, name: str, value, options: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{owner}: {name} must be one of the strings {options}, got {value!r}")
    if value not in options:
        raise ValueError(f"{owner}: {name} must be one of {options}, got {value!r}")
    return value


# The step, as the schedules read it.


def _integers(count: jax.typing.ArrayLike) -> np.ndarray | None:
    """A concrete integer step (a Python or NumPy integer, or an array or list of them) as a
    NumPy array of Python ints, exact at any size; None for a JAX array (traced or not) or
    floats."""
    if isinstance(count, jax.Array):
        return None
    steps = np.asarray(count)
    if steps.dtype == object:  # Python ints past uint64
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in steps.flat):
            return None
    elif not np.issubdtype(steps.dtype, np.integer):
        return None
    return steps.astype(object)


def _count(count: jax.typing.ArrayLike) -> jax.Array:
    """The step as a JAX array: the one conversion of the step that every schedule makes.

    A JAX array is taken as it is (the optimizer's traced int32 count reads as before, without
    retracing); so is a concrete step of floats, or of integers in the range of JAX's default
    integer type (int32, or int64 with x64). Concrete integers outside it would overflow (a
    Python int) or wrap around (NumPy's int64 2**33 to int32 0): they become floats of the
    default precision (saturated at its largest), read as any float step is, so that past its
    last boundary a schedule gives its end value. (A periodic schedule places a concrete
    integer step in its cycle itself, exactly: see :func:`_integers`.)
    """
    steps = _integers(count)
    if steps is None:
        return jnp.asarray(count)
    info = jnp.iinfo(jnp.asarray(0).dtype)
    if steps.size == 0 or (info.min <= steps.min() and steps.max() <= info.max):
        return jnp.asarray(count)
    dtype = _float_dtype()
    top = int(jnp.finfo(dtype).max)
    return jnp.asarray(np.asarray(np.clip(steps, -top, top), np.float64), dtype)


def _step(count: jax.typing.ArrayLike) -> jax.Array:
    """The step as a float of the default precision."""
    return _count(count).astype(_float_dtype())


def _whole(count: jax.typing.ArrayLike) -> jax.Array:
    """The step as an integer array (a float step rounded down, saturated at the largest int)."""
    count = _count(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        return count
    dtype = jnp.asarray(0).dtype
    info = jnp.iinfo(dtype)
    # XLA leaves the cast of a float outside the integer range undefined; float(info.max)
    # rounds up to a power of 2, the first float past the range
    whole = jnp.maximum(jnp.floor(count), float(info.min))
    return jnp.where(whole >= float(info.max), info.max, whole.astype(dtype))


def _fit(count: jax.Array, n: int):
    """The step count ``n`` as a constant for ``count``'s dtype (capped at its largest value)."""
    if jnp.issubdtype(count.dtype, jnp.integer):
        return min(n, int(jnp.iinfo(count.dtype).max))
    return float(n)


def _reachable(count: jax.Array, boundaries) -> list[int]:
    """The boundaries an integer step of ``count``'s dtype can reach (the others never apply)."""
    if not jnp.issubdtype(count.dtype, jnp.integer):
        return list(boundaries)
    top = jnp.iinfo(count.dtype).max
    return [b for b in boundaries if b <= top]


def _reached(count: jax.Array, boundaries) -> jax.Array:
    """How many of the sorted ``boundaries`` are <= the step (int32, shaped like the step)."""
    boundaries = _reachable(count, boundaries)
    if not boundaries:
        return jnp.zeros(jnp.shape(count), jnp.int32)
    return jnp.searchsorted(jnp.asarray(boundaries, count.dtype), count, side="right")


def _minus(count: jax.Array, a: float) -> jax.Array:
    """``count - a`` as a float, rounded once (``count`` an integer array, ``a`` any float)."""
    whole = math.floor(a)
    if abs(whole) > jnp.iinfo(count.dtype).max // 2:
        return count.astype(_float_dtype()) - float(a)
    return (count - whole).astype(_float_dtype()) - (a - whole)
