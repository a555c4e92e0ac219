"""Numeric helpers of optax's public surface: a counter that saturates and the global norm."""

from __future__ import annotations

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
