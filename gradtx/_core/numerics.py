"""Helpers of optax's public surface: a saturating counter, the global norm, a gradient scaler,
and the averaging and periodic updates of target params."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import PyTree


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
