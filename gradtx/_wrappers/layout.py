"""Layouts: a transformation run on all leaves concatenated into one flat vector."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree
from gradtx._wrappers.accumulation import _check_tx


def _flat(tree: PyTree) -> jax.Array:
    """Every leaf of ``tree`` raveled and concatenated, in the widest of their dtypes."""
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.zeros((0,), jnp.float32)
    dtype = _tree.wider(*(x.dtype for x in leaves))
    return jnp.concatenate([x.astype(dtype).ravel() for x in leaves])


def _unflat(flat: jax.Array, like: PyTree) -> PyTree:
    """``flat`` cut into the leaves of ``like``, each reshaped and cast to its leaf's dtype."""
    leaves, treedef = jax.tree.flatten(like)
    out, start = [], 0
    for x in leaves:
        size = math.prod(jnp.shape(x))
        piece = flat[start : start + size]
        start += size
        if jnp.iscomplexobj(piece) and not jnp.iscomplexobj(x):
            piece = piece.real  # a real leaf concatenated with complex ones
        out.append(piece.reshape(jnp.shape(x)).astype(jnp.result_type(x)))
    return treedef.unflatten(out)


def flatten(inner: GradientTransformation) -> GradientTransformation:
    r"""Runs ``inner`` on one flat vector: all leaves of the updates (and params) concatenated.

    .. math:: u = \operatorname{unflatten}\big(T(\operatorname{concat}_l \operatorname{vec}
       g_l)\big)

    For a tree of many small leaves, one vector makes the inner transformation a few large
    operations instead of many small ones (at the cost of a copy of the tree). The vector has
    the widest of the leaves' dtypes; each piece of ``inner``'s result is cast back to its
    update leaf's dtype. A transformation whose math is per leaf (clipping by each leaf's
    norm, a per-tensor trust ratio) sees one leaf here, so gives other numbers; element-wise
    ones (SGD, Adam) give the same.

    Args:
      inner: the transformation to run on the flat vector.

    Returns:
      A :class:`GradientTransformation` whose state is ``inner``'s, made for the flat vector.

    Raises:
      TypeError: if ``inner`` is not a transformation.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.flatten(gradtx.clip_by_norm(1.0))  # one norm, over all the leaves
      >>> g = {"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}
      >>> updates, _ = tx.update(g, tx.init(g))
      >>> updates["a"], updates["b"]
      (Array([0.6], dtype=float32), Array([[0.8]], dtype=float32))
    """
    tx = _check_tx("flatten", "inner", inner)

    def init(params):
        return tx.init(_flat(params))

    def update(updates, state, params=None, **extra):
        _tree.check_leaves("flatten", updates, "updates")
        if params is not None:
            _tree.check_match("flatten", (updates, params), ("updates", "params"))
            params = _flat(params)
        out, state = tx.update(_flat(updates), state, params, **extra)
        return _unflat(out, updates), state

    return GradientTransformation(init, update)
