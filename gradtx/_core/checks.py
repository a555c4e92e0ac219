"""Validation of hyperparameter values, shared by the factories, set_hyperparams and checked.

One table gives the range of each argument name (the same name means the same thing in every
transformation); the ``check_*`` functions raise errors that name the function and the argument.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree


class MissingArgumentError(TypeError, ValueError):
    """An ``update`` called without an argument its transformation needs (params, a loss, an
    objective). A TypeError, as Python's own for a missing argument (and optax's), and a
    ValueError, as gradtx raised before."""


# Validation by argument name: the same name means the same thing in every transformation, so
# the factories, set_hyperparams and gradtx.checked share one table. Each test is written with
# ``&`` so that it applies to Python floats and to arrays (inside jit) alike.
_UNIT = ("in [0, 1)", lambda v: (v >= 0) & (v < 1))
_OPEN_UNIT = ("in (0, 1)", lambda v: (v > 0) & (v < 1))
_NON_NEGATIVE = (">= 0", lambda v: v >= 0)
_POSITIVE = ("> 0", lambda v: v > 0)
_AT_MOST_ONE = ("in (0, 1]", lambda v: (v > 0) & (v <= 1))
_AT_LEAST_ONE = (">= 1", lambda v: v >= 1)
# for a transformation whose argument allows 1 where the shared range does not (SM3's b2: 1 is
# the paper's running sum); such a transformation's state type lists it in ``live_ranges``
CLOSED_UNIT = ("in [0, 1]", lambda v: (v >= 0) & (v <= 1))
UNIT = _UNIT
_CONSTRAINTS = {
    "learning_rate": _NON_NEGATIVE,
    "b1": _UNIT,
    "b2": _UNIT,
    "decay": _UNIT,
    "rho": _UNIT,
    "momentum": _UNIT,
    "eps": _NON_NEGATIVE,
    "eps_root": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "min_norm": _NON_NEGATIVE,
    "initial_scale": _NON_NEGATIVE,
    "initial_accumulator_value": _NON_NEGATIVE,
    "max_norm": _POSITIVE,
    "max_delta": _POSITIVE,
    "trust_coefficient": _POSITIVE,
    "factor": _OPEN_UNIT,
    "threshold": _NON_NEGATIVE,
    "min_scale": _NON_NEGATIVE,
    # line searches and Newton-CG
    "slope_rtol": _UNIT,  # 0: any decrease is enough (optax accepts it)
    "curv_rtol": _OPEN_UNIT,
    "decrease_factor": _OPEN_UNIT,
    "increase_factor": _POSITIVE,  # below 1 the next search starts lower (optax allows it)
    "max_learning_rate": _POSITIVE,
    "tol": _NON_NEGATIVE,
    "atol": _NON_NEGATIVE,
    "rtol": _NON_NEGATIVE,
    "stepsize_precision": _NON_NEGATIVE,
    "approx_dec_rtol": _NON_NEGATIVE,
    "damping": _NON_NEGATIVE,
    "slow_step_size": CLOSED_UNIT,  # 0: the slow weights stay (optax allows it)
    "clipping": _POSITIVE,
    "eta": _NON_NEGATIVE,
    "gamma": _NON_NEGATIVE,
    # the zoo: names whose range is the same in every function that has them
    "b3": _UNIT,
    "momentum_decay": _NON_NEGATIVE,
    "lambd": _NON_NEGATIVE,
    "weight_decay_rate": _NON_NEGATIVE,
    "min_step_size": _NON_NEGATIVE,
    "epsilon": _NON_NEGATIVE,
    # Rprop's step-size factors and bound, Lion's smooth sign, Adafactor's update clipping and
    # the exponent c of its decay 1 - t^-c (a schedule's decay_rate, a factor r > 0, is not
    # live and is checked by the schedule)
    "eta_minus": _AT_MOST_ONE,
    "eta_plus": _AT_LEAST_ONE,
    "max_step_size": _POSITIVE,
    "smooth_beta": _POSITIVE,
    "clipping_threshold": _POSITIVE,
    "decay_rate": _NON_NEGATIVE,
    # the matrix optimizers: muon's AdamW for the leaves that are not matrices, its RMS match
    "adam_b1": _UNIT,
    "adam_b2": _UNIT,
    "adam_eps_root": _NON_NEGATIVE,
    "adam_weight_decay": _NON_NEGATIVE,
    "adam_learning_rate": _NON_NEGATIVE,
    "consistent_rms": _NON_NEGATIVE,
}


def constraint(name: str) -> tuple[str, Callable[[Any], Any]] | None:
    """``(text, test)`` of the range a hyperparameter ``name`` must be in, or None."""
    return _CONSTRAINTS.get(name)


def check_number(
    owner: str,
    name: str,
    value: float,
    where: str = "",
    dtype: Any = None,
    rule: tuple[str, Callable[[Any], Any]] | None = None,
) -> None:
    """Raises ValueError unless ``value`` is finite in ``dtype`` (the default float dtype, where
    live hyperparameters are stored) and meets ``rule`` (default: ``name``'s shared range)."""
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}{where}")
    largest = float(jnp.finfo(dtype or _float_dtype()).max)
    if abs(value) > largest:
        stored = jnp.dtype(dtype or _float_dtype()).name
        raise ValueError(
            f"{owner}: {name} must be finite in {stored} (|x| <= {largest:.7g}), "
            f"got {value!r}{where}"
        )
    constraint = rule or _CONSTRAINTS.get(name)
    if constraint is not None and not constraint[1](value):
        raise ValueError(f"{owner}: {name} must be {constraint[0]}, got {value!r}{where}")


def check_range(owner: str, name: str, value: Any, text: str, test: Callable[[float], Any]) -> None:
    """Raises ValueError unless ``test(value)`` holds; ``text`` says the range (``"> 0"``).

    For a range particular to one function, not in the shared table (:func:`constraint`), e.g.
    rprop's ``learning_rate`` > 0; call it before :func:`live` (set_hyperparams cannot check
    it). A concrete real scalar, or a schedule's value at step 0, is checked; a traced value, a
    non-finite one and anything not a real scalar (``None``, bools) pass, for :func:`live` to
    raise the error that names the argument (or to allow an optional ``None``).
    """
    where = ""
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        value, where = value(_tree.zero_count()), " (the schedule's value at step 0)"
    if isinstance(value, (bool, np.bool_, jax.core.Tracer)):
        return
    if not isinstance(value, (numbers.Real, np.ndarray, np.generic, jax.Array)):
        return
    if np.ndim(value) != 0 or not (
        jnp.issubdtype(jnp.result_type(value), jnp.floating)
        or jnp.issubdtype(jnp.result_type(value), jnp.integer)
    ):
        return
    number = float(value)
    if math.isfinite(number) and not test(number):
        raise ValueError(f"{owner}: {name} must be {text}, got {number!r}{where}")


def check_flag(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a bool, got {value!r}")
    return bool(value)


def check_count(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """An int argument counted against an int32 step counter in the state (a period, a patience,
    a loop bound): at least ``minimum`` and at most the int32 maximum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    if value > _tree.INT32_MAX:
        raise ValueError(f"{owner}: {name} must be <= {_tree.INT32_MAX} (an int32), got {value!r}")
    return int(value)


def check_dtype(owner: str, name: str, value: Any) -> Any:
    """A dtype argument (None for "same as the params") in canonical form."""
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a dtype or None, got {value!r}") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(f"{owner}: {name} must be a floating dtype, got {dtype}")
    return jax.dtypes.canonicalize_dtype(dtype)


def check_constant(owner: str, name: str, value: Any) -> float:
    """A numeric argument used only when the state is built (not a live hyperparameter)."""
    if not _is_real_number(value):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    check_number(owner, name, float(value))
    return float(value)


def _float_dtype() -> Any:
    """float32, or float64 when x64 is enabled."""
    return jnp.asarray(0.0).dtype


def _is_real_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _concrete_float(owner: str, name: str, x: Any) -> float | None:
    """``x`` as a Python float if it is a concrete real scalar; None if it is traced."""
    if _is_real_number(x):
        return float(x)
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        if np.ndim(x) != 0:
            raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(x)}")
        if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
            raise TypeError(f"{owner}: {name} must be a real number, got dtype {x.dtype}")
        if isinstance(x, jax.core.Tracer):
            return None
        return float(x)
    raise TypeError(
        f"{owner}: {name} must be a float or a schedule (a function of the step count), "
        f"got {type(x).__name__}"
    )


def check_hyperparam(
    owner: str, name: str, x: Any, rule: tuple[str, Callable[[Any], Any]] | None = None
) -> Any:
    """Validates a hyperparameter given to a factory; returns it (floats as Python floats).
    ``rule`` replaces ``name``'s shared range (:func:`constraint`) where given.

    A traced value (a factory called inside ``jit``/``vmap``) cannot be checked here, nor a
    schedule's values after step 0: :func:`gradtx.checked` checks them at run time.
    """
    if callable(x) and not isinstance(x, (jax.Array, np.ndarray)):
        first = x(_tree.zero_count())
        if not isinstance(first, (numbers.Real, np.ndarray, np.generic, jax.Array)) or not (
            jnp.issubdtype(jnp.result_type(first), jnp.floating)
            or jnp.issubdtype(jnp.result_type(first), jnp.integer)
        ):
            raise TypeError(
                f"{owner}: the schedule for {name} must return a real number, "
                f"got {type(first).__name__} at step 0"
            )
        if np.ndim(first) != 0:
            raise ValueError(
                f"{owner}: the schedule for {name} must return a scalar, "
                f"got shape {np.shape(first)} at step 0"
            )
        if not isinstance(first, jax.core.Tracer):
            check_number(owner, name, float(first), " (the schedule's value at step 0)", rule=rule)
        return x
    concrete = _concrete_float(owner, name, x)
    if concrete is None:
        return x  # traced (a factory called under jit or vmap): checked by the caller's program
    check_number(owner, name, concrete, rule=rule)
    return concrete if _is_real_number(x) or isinstance(x, (np.ndarray, np.generic)) else x
