"""Helpers of optax's public surface: a saturating counter, the global norm, norms and RMS with a
floor and a finite gradient at 0, a gradient scaler, and the averaging and periodic updates of
target params."""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import PyTree
from gradtx._core.checks import check_flag


def safe_increment(count: jax.typing.ArrayLike) -> jax.Array:
    """``count + 1``, staying at the largest value of ``count``'s dtype instead of wrapping.

    For step counters kept in any integer or floating dtype (gradtx's own are int32 and saturate
    this way). A float counter above ``2**(mantissa bits + 1)`` no longer grows, as ``x + 1``.

    Args:
      count: a counter: an integer or floating scalar or array.

    Returns:
      The counter plus one, in its dtype, or the dtype's largest value where it already is.

    Raises:
      TypeError: for a value that is not a number or a numeric array.
      ValueError: for a boolean or complex counter, naming its dtype.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.safe_increment(jnp.asarray(1, jnp.int32))
      Array(2, dtype=int32)
      >>> gradtx.safe_increment(jnp.asarray(2**31 - 1, jnp.int32))
      Array(2147483647, dtype=int32)
    """
    wrong = TypeError(
        f"safe_increment: count must be a number or a numeric array, got "
        f"{type(count).__name__} {count!r}"
    )
    if isinstance(count, (str, bytes)):
        raise wrong
    try:
        count = jnp.asarray(count)
    except TypeError:
        raise wrong from None
    dtype = count.dtype
    if jnp.issubdtype(dtype, jnp.integer):
        largest = jnp.iinfo(dtype).max
    elif jnp.issubdtype(dtype, jnp.floating):
        largest = jnp.finfo(dtype).max
    else:
        raise ValueError(
            f"safe_increment: count must have an integer or floating dtype, got {dtype}"
        )
    largest = jnp.asarray(largest, dtype)
    return jnp.where(count < largest, count + jnp.ones((), dtype), largest)


safe_int32_increment = safe_increment  # optax's earlier name, kept by optax as an alias


def global_norm(updates: PyTree) -> jax.Array:
    """The Euclidean norm of all leaves of ``updates`` together, as one vector.

    optax's ``global_norm``, computed in at least float32 and without overflow or underflow: the
    norm of ``[1e30, 1e30]`` is ``1.41e30`` (``sqrt(sum(x**2))`` gives ``inf``), that of
    ``[1e-30]`` is ``1e-30`` (not 0), and complex leaves count by ``|x|``. Inside
    ``shard_map``/``pmap`` the leaves are this device's shards; see :func:`clip_by_global_norm`'s
    ``axis_name`` for the norm of whole leaves.

    Args:
      updates: a tree of arrays (gradients, updates, params).

    Returns:
      A scalar: float32, or float64 if a leaf is.

    Raises:
      TypeError: for a leaf that is not an array, naming its path.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])})
      Array(5., dtype=float32)
      >>> gradtx.global_norm({"big": jnp.array([1e30, 1e30])})
      Array(1.4142135e+30, dtype=float32)
    """
    _tree.check_leaves("global_norm", updates, "updates")
    return _norms.global_norm(updates)


def _check_number(owner: str, name: str, x, integer: bool = False) -> None:
    """TypeError unless ``x`` is a real (``integer``: an integer) number or numeric array,
    concrete or traced."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(x, kind) and not isinstance(x, bool):
        return
    dtype = None if isinstance(x, (str, bytes)) else getattr(x, "dtype", None)
    kinds = (jnp.integer,) if integer else (jnp.integer, jnp.floating)
    if dtype is None or not any(jnp.issubdtype(dtype, k) for k in kinds):
        what = "an integer" if integer else "a real number or array"
        raise TypeError(f"{owner}: {name} must be {what}, got {x!r}")


def check_non_negative(owner: str, name: str, x: Any) -> None:
    """TypeError unless ``x`` is a real number or array; ValueError where a concrete (Python or
    NumPy) value is negative or NaN (infinity passes: a bound that is never reached). A JAX
    array is not read: that would wait for the device inside a step."""
    _check_number(owner, name, x)
    if isinstance(x, jax.Array):
        return
    values = np.asarray(x, np.float64)
    if np.any(np.isnan(values)) or np.any(values < 0):
        shown = float(values) if values.ndim == 0 else values.tolist()
        raise ValueError(f"{owner}: {name} must be >= 0, got {shown!r}")


def _check_array(owner: str, name: str, x: Any) -> jax.Array:
    """``x`` as an array; TypeError unless it is a number or a numeric (not boolean) array."""
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return jnp.asarray(x)
    dtype = None if isinstance(x, (str, bytes)) else getattr(x, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.number):
        raise TypeError(f"{owner}: {name} must be a numeric array, got {type(x).__name__}")
    return jnp.asarray(x)


def _promoted_dtype(*values: Any) -> Any:
    """The dtype optax's arithmetic on ``values`` gives: JAX's standard promotion, in which a
    Python scalar takes the array's dtype (the tests run under strict promotion, which has no
    rule for ``bfloat16`` with ``float32``)."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*values)


def _as(value: Any, dtype: Any) -> jax.Array:
    """``value`` in ``dtype``, a Python number rounded once."""
    if isinstance(value, numbers.Number):
        return jnp.asarray(value, dtype)
    return jnp.asarray(value).astype(dtype)


def _norm_axis(owner: str, axis: Any) -> int | tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, tuple) and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis
    ):
        return tuple(int(a) for a in axis)
    raise TypeError(f"{owner}: axis must be None, an int or a tuple of ints, got {axis!r}")


def safe_norm(
    x: jax.typing.ArrayLike,
    min_norm: jax.typing.ArrayLike,
    ord: int | float | str | None = None,  # noqa: A002 - numpy's and optax's name
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
) -> jax.Array:
    r"""``max(norm(x), min_norm)`` whose gradient is finite where the norm is at most the floor.

    .. math:: \max(\|x\|, m), \qquad \frac{\partial}{\partial x} = 0 \text{ where }
       \|x\| \le m

    ``jnp.maximum(jnp.linalg.norm(x), m)`` has a NaN gradient at ``x = 0`` (the norm's slope is
    0/0 there, and ``maximum`` differentiates both sides). Here the norm is taken again of
    ``x`` with the floored units replaced by ones, which has a finite slope, and that slope is
    dropped: the gradient is 0 wherever the floor is returned, for every ``ord`` (the nuclear
    and spectral norms too). The values are ``jnp.linalg.norm``'s, in the dtype optax's gives.

    Args:
      x: an array.
      min_norm: *m* >= 0, the floor (a number, or an array that broadcasts against the norm).
      ord: the order of the norm, as in ``jnp.linalg.norm``: ``None`` (2-norm, Frobenius for
        a matrix), a number, ``inf``, ``-inf``, ``"fro"`` or ``"nuc"``.
      axis: ``None`` (the whole array; a matrix norm for a 2-D one with ``ord``), an int (vector
        norms along it) or a pair of ints (matrix norms over those axes).
      keepdims: keep the reduced axes with size 1.

    Returns:
      The floored norm(s): a scalar, or an array over the axes not reduced.

    Raises:
      TypeError: for an ``x``, ``min_norm``, ``ord`` or ``axis`` of the wrong type.
      ValueError: for a negative or NaN ``min_norm``, or an ``ord`` that does not fit ``axis``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> gradtx.safe_norm(jnp.array([3.0, 4.0]), 1.0)
      Array(5., dtype=float32)
      >>> jax.grad(gradtx.safe_norm)(jnp.zeros(2), 1.0)  # 0, not NaN
      Array([0., 0.], dtype=float32)
    """
    owner = "safe_norm"
    x = _check_array(owner, "x", x)
    check_non_negative(owner, "min_norm", min_norm)
    if isinstance(ord, str):
        if ord not in ("fro", "nuc"):
            raise ValueError(f"{owner}: ord must be None, a number, 'fro' or 'nuc', got {ord!r}")
    elif ord is not None and (
        isinstance(ord, bool) or not isinstance(ord, (numbers.Real, np.integer, np.floating))
    ):
        raise TypeError(f"{owner}: ord must be None, a number, 'fro' or 'nuc', got {ord!r}")
    axis = _norm_axis(owner, axis)
    keepdims = check_flag(owner, "keepdims", keepdims)
    try:
        norm = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    except ValueError as err:
        raise ValueError(
            f"{owner}: ord={ord!r} and axis={axis!r} do not fit x of shape {x.shape}: {err}"
        ) from None
    dtype = _promoted_dtype(norm, min_norm)
    floor = _as(min_norm, dtype)
    small = norm.astype(dtype) <= floor
    safe = jnp.linalg.norm(jnp.where(small, jnp.ones_like(x), x), ord, axis, keepdims)
    if not keepdims:
        small = jnp.squeeze(small, axis=axis)
    return jnp.where(small, floor, safe.astype(dtype))


def safe_root_mean_squares(x: jax.typing.ArrayLike, min_rms: jax.typing.ArrayLike) -> jax.Array:
    r"""``max(rms(x), min_rms)`` whose gradient is 0, not NaN, where the floor is returned.

    .. math:: \max\Big(\sqrt{\tfrac{1}{n} \textstyle\sum_i |x_i|^2},\ m\Big)

    As :func:`safe_norm`, for the root mean square of all elements (complex ones by
    :math:`|x_i|`).

    Args:
      x: an array.
      min_rms: *m* >= 0, the floor.

    Returns:
      A scalar, in the dtype optax's gives.

    Raises:
      TypeError: for an ``x`` or ``min_rms`` of the wrong type.
      ValueError: for a negative or NaN ``min_rms``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> gradtx.safe_root_mean_squares(jnp.array([1.0, -1.0, 1.0, -1.0]), 0.1)
      Array(1., dtype=float32)
      >>> jax.grad(gradtx.safe_root_mean_squares)(jnp.zeros(3), 0.1)
      Array([0., 0., 0.], dtype=float32)
    """
    owner = "safe_root_mean_squares"
    x = _check_array(owner, "x", x)
    check_non_negative(owner, "min_rms", min_rms)

    def rms(v):
        return jnp.sqrt(jnp.mean(_tree.abs_sq(v)))

    value = rms(x)
    dtype = _promoted_dtype(value, min_rms)
    floor = _as(min_rms, dtype)
    small = value.astype(dtype) <= floor
    safe = rms(jnp.where(small, jnp.ones_like(x), x)).astype(dtype)
    return jnp.where(small, floor, safe)


def scale_gradient(inputs: PyTree, scale: jax.typing.ArrayLike) -> PyTree:
    """``inputs`` unchanged, with their gradient multiplied by ``scale`` in the backward pass.

    For a loss ``f(scale_gradient(x, s))`` the gradient with respect to ``x`` is ``s`` times
    that of ``f(x)``: ``s = 0`` stops it, ``s = -1`` reverses it (adversarial training).

    Args:
      inputs: a tree of arrays.
      scale: a real scalar (or an array that broadcasts against every leaf).

    Returns:
      ``inputs``, as the forward pass sees them.

    Raises:
      TypeError: if ``scale`` is not a real number or array.

    Example:
      >>> import gradtx, jax
      >>> float(jax.grad(lambda x: gradtx.scale_gradient(x, 0.5) ** 2)(3.0))  # 0.5 * 2 * 3
      3.0
    """
    _check_number("scale_gradient", "scale", scale)

    @jax.custom_vjp
    def identity(x):
        return x

    def forward(x):
        return x, None

    def backward(_, cotangent):
        return (jax.tree.map(lambda c: (c * scale).astype(c.dtype), cotangent),)

    identity.defvjp(forward, backward)
    return identity(inputs)


def incremental_update(
    new_tensors: PyTree, old_tensors: PyTree, step_size: jax.typing.ArrayLike
) -> PyTree:
    """``step_size * new + (1 - step_size) * old``, leaf by leaf (Polyak averaging of params).

    Args:
      new_tensors: the new values.
      old_tensors: the current average, a tree of the same structure and shapes.
      step_size: the weight of the new values (1: take them; a value outside [0, 1]
        extrapolates, as in optax).

    Returns:
      The updated average, each leaf in its old leaf's dtype.

    Raises:
      TypeError: if ``step_size`` is not a real number or array.
      ValueError: if the two trees differ, naming the paths.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.incremental_update({"w": jnp.full(2, 2.0)}, {"w": jnp.ones(2)}, 0.25)["w"]
      Array([1.25, 1.25], dtype=float32)
    """
    _check_number("incremental_update", "step_size", step_size)
    old_tensors = _tree.masked_by_none(new_tensors, old_tensors)
    _tree.check_match(
        "incremental_update", (old_tensors, new_tensors), ("old_tensors", "new_tensors")
    )

    def average(new, old):
        return (step_size * new + (1 - step_size) * old).astype(jnp.result_type(old))

    return jax.tree.map(average, new_tensors, old_tensors)


def periodic_update(
    new_tensors: PyTree,
    old_tensors: PyTree,
    steps: jax.typing.ArrayLike,
    update_period: jax.typing.ArrayLike,
) -> PyTree:
    """``new_tensors`` at every ``update_period``-th step (``steps % update_period == 0``), else
    ``old_tensors`` (a target network's refresh).

    Args:
      new_tensors: the new values.
      old_tensors: the current values, a tree of the same structure and shapes.
      steps: the step count (an int or an int array, traced or not).
      update_period: a positive int: how many steps apart the updates are.

    Returns:
      ``new_tensors`` or ``old_tensors``, leaf by leaf in the old leaves' dtypes.

    Raises:
      TypeError: if ``steps`` or ``update_period`` is not an integer.
      ValueError: if ``update_period`` is a concrete int below 1, or the trees differ.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> new, old = {"w": jnp.ones(2)}, {"w": jnp.zeros(2)}
      >>> [float(gradtx.periodic_update(new, old, t, 3)["w"][0]) for t in range(4)]
      [1.0, 0.0, 0.0, 1.0]
    """
    _check_number("periodic_update", "steps", steps, integer=True)
    _check_number("periodic_update", "update_period", update_period, integer=True)
    if not isinstance(update_period, jax.core.Tracer) and int(update_period) < 1:
        raise ValueError(
            f"periodic_update: update_period must be a positive int, got {update_period!r}"
        )
    _tree.check_match("periodic_update", (old_tensors, new_tensors), ("old_tensors", "new_tensors"))
    now = jnp.asarray(steps) % update_period == 0
    return jax.tree.map(
        lambda new, old: jnp.where(now, new, old).astype(jnp.result_type(old)),
        new_tensors,
        old_tensors,
    )
