"""optax's moment updates on trees: exponential averages of powers, of the infinity norm and of
per-element norms, and their bias correction, re-exported by :mod:`gradtx.tree_utils` and
:mod:`gradtx.tree`. :func:`tree_bias_correction` computes ``1 - decay**count`` without
cancellation, as gradtx's Adam does.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import PyTree
from gradtx._core.tree_math import _map, _standard


def tree_update_moment(updates: PyTree, moments: PyTree, decay: Any, order: Any) -> PyTree:
    """The exponential average of the ``order``-th power: ``(1 - decay) g**order + decay m``.

    Args:
      updates: the new values ``g`` (None leaves give None).
      moments: the averages ``m``, of ``updates``' structure.
      decay: the averaging decay.
      order: the power of ``g`` (for complex ``g`` the complex power, as in optax).

    Returns:
      The new averages, of ``updates``' structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_update_moment({"a": jnp.array([2.0])}, {"a": jnp.array([1.0])}, 0.5, 2)
      {'a': Array([2.5], dtype=float32)}
    """
    fn = lambda g, m: None if g is None else (1 - decay) * (g**order) + decay * m  # noqa: E731
    names = ("updates", "moments")
    return _map("tree_update_moment", fn, updates, moments, names=names, none_is_leaf=True)


def tree_update_infinity_moment(updates: PyTree, moments: PyTree, decay: Any, eps: Any) -> PyTree:
    """The decayed maximum of ``|g|``: ``max(|g| + eps, decay m)`` (Adamax's second moment).

    Args:
      updates: the new values ``g`` (None leaves give None).
      moments: the maxima ``m``, of ``updates``' structure.
      decay: the decay of the old maximum.
      eps: added to ``|g|``.

    Returns:
      The new maxima, of ``updates``' structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_update_infinity_moment(jnp.array([-3.0, 1.0]), jnp.array([2.0, 4.0]), 0.5, 0.0)
      Array([3., 2.], dtype=float32)
    """
    fn = lambda g, m: None if g is None else jnp.maximum(jnp.abs(g) + eps, decay * m)  # noqa: E731
    names = ("updates", "moments")
    return _map("tree_update_infinity_moment", fn, updates, moments, names=names, none_is_leaf=True)


def tree_update_moment_per_elem_norm(
    updates: PyTree, moments: PyTree, decay: Any, order: Any
) -> PyTree:
    """The exponential average of ``|g|**order``: ``(1 - decay) |g|**order + decay m``.

    Real ``g`` is raised as it is (``g**order``, as in optax); complex ``g`` by its modulus.

    Args:
      updates: the new values ``g`` (None leaves give None).
      moments: the averages ``m`` (real for complex ``g``), of ``updates``' structure.
      decay: the averaging decay.
      order: the power.

    Returns:
      The new averages, of ``updates``' structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_update_moment_per_elem_norm(jnp.array([3 + 4j]), jnp.array([0.0]), 0.5, 2)
      Array([12.5], dtype=float32)
    """

    def power(g):
        if not jnp.iscomplexobj(g):
            return g**order
        half = order / 2
        half = int(half) if isinstance(half, float) and half.is_integer() else half
        return (g.real * g.real + g.imag * g.imag) ** half

    fn = lambda g, m: None if g is None else (1 - decay) * power(g) + decay * m  # noqa: E731
    owner, names = "tree_update_moment_per_elem_norm", ("updates", "moments")
    return _map(owner, fn, updates, moments, names=names, none_is_leaf=True)


def tree_bias_correction(moment: PyTree, decay: Any, count: Any) -> PyTree:
    """An exponential average divided by ``1 - decay**count``, undoing its bias towards 0.

    ``1 - decay**count`` is computed without cancellation, from ``1 - decay`` in double
    precision for a Python float ``decay`` (optax rounds ``decay`` to float32 first: 1.3e-5
    relative off for ``decay = 0.999`` at step 1); the division is in each leaf's dtype.

    Args:
      moment: the averages.
      decay: the averaging decay.
      count: the number of values averaged.

    Returns:
      The corrected averages, each leaf in its dtype.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_bias_correction({"m": jnp.array([0.875])}, 0.75, 2)  # 0.875 / (1 - 0.75**2)
      {'m': Array([2.], dtype=float32)}
    """
    complement = 1 - decay  # a Python float's in double precision
    with _standard():
        dtype = _tree.accumulation_dtype(jnp.result_type(complement))
        log_decay = jnp.log1p(-jnp.asarray(complement, dtype))
        correction = -jnp.expm1(jnp.asarray(count).astype(dtype) * log_decay)
    divide = lambda t: t / correction.astype(t.dtype)  # noqa: E731
    return _map("tree_bias_correction", divide, moment, names=("moment",))
