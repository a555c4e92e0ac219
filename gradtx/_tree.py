"""Per-leaf math lifted to trees once: checked maps, zeros, norms, counters."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

_INT32_MAX = np.iinfo(np.int32).max
_SHOWN = 5  # paths listed in an error before "and N more"


def path_str(path: Sequence[Any]) -> str:
    """``('params', 'dense', 0)``-like key paths as ``params/dense/0``."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    return "/".join(parts) or "<root>"


def _listing(paths: Sequence[str]) -> str:
    shown = ", ".join(repr(p) for p in paths[:_SHOWN])
    more = len(paths) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _leaves_by_path(tree: PyTree) -> dict[str, Any]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {path_str(path): leaf for path, leaf in leaves}


def mismatch(reference: PyTree, other: PyTree, ref_name: str, other_name: str) -> str | None:
    """Describes how ``other`` differs from ``reference`` in structure or leaf shapes, or None."""
    if jax.tree.structure(reference) == jax.tree.structure(other):
        ref_leaves, other_leaves = jax.tree.leaves(reference), jax.tree.leaves(other)
        if all(np.shape(a) == np.shape(b) for a, b in zip(ref_leaves, other_leaves)):
            return None
    ref, oth = _leaves_by_path(reference), _leaves_by_path(other)
    missing = [p for p in ref if p not in oth]
    extra = [p for p in oth if p not in ref]
    if missing or extra:
        lines = [f"the {other_name} tree does not match the {ref_name} tree"]
        if missing:
            lines.append(f"missing from {other_name}: {_listing(missing)}")
        if extra:
            lines.append(f"not in {ref_name}: {_listing(extra)}")
        return "; ".join(lines)
    shapes = [
        f"{p!r} has shape {np.shape(oth[p])} in {other_name} but {np.shape(ref[p])} in {ref_name}"
        for p in ref
        if np.shape(ref[p]) != np.shape(oth[p])
    ]
    if shapes:
        return "leaf shapes differ: " + "; ".join(shapes[:_SHOWN])
    return (
        f"the {other_name} and {ref_name} trees have the same leaves but different containers: "
        f"{jax.tree.structure(other)} vs {jax.tree.structure(reference)}"
    )


def check_match(owner: str, trees: Sequence[PyTree], names: Sequence[str]) -> None:
    """Raises ValueError naming the paths where ``trees[1:]`` differ from ``trees[0]``."""
    for tree, name in zip(trees[1:], names[1:]):
        problem = mismatch(trees[0], tree, names[0], name)
        if problem is not None:
            raise ValueError(f"{owner}: {problem}")


def map(  # noqa: A001 - the tree-level map of this module
    fn: Callable[..., Any],
    tree: PyTree,
    *rest: PyTree,
    owner: str,
    names: Sequence[str] = ("updates", "state"),
) -> PyTree:
    """``jax.tree.map`` that first checks the trees match, leaf shapes included.

    A mismatch raises ``ValueError`` naming ``owner`` and the offending paths (instead of a bare
    treedef dump, or a silent broadcast of a wrong-shaped leaf).
    """
    check_match(owner, (tree, *rest), names)
    return jax.tree.map(fn, tree, *rest)


def zeros_like(tree: PyTree, dtype: Any = None) -> PyTree:
    return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), dtype or jnp.result_type(x)), tree)


def full_like(tree: PyTree, value: Any, dtype: Any = None) -> PyTree:
    return jax.tree.map(lambda x: jnp.full(jnp.shape(x), value, dtype or jnp.result_type(x)), tree)


def cast_like(tree: PyTree, like: PyTree) -> PyTree:
    """``tree`` cast leaf by leaf to the dtypes of ``like`` (a state keeps its dtypes)."""
    return jax.tree.map(lambda x, old: x.astype(old.dtype), tree, like)


def wider(*dtypes: Any) -> Any:
    """The dtype two or more operands are computed in: JAX's standard promotion, made explicitly
    (the library never relies on implicit promotion, so it runs under strict promotion too)."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*(jnp.dtype(d) for d in dtypes))


def accumulation_dtype(dtype: Any) -> Any:
    """Sums of squares are taken in at least float32 (bf16/f16 sums lose too much)."""
    return wider(dtype, jnp.float32)


def sum_of_squares(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    wide = x.astype(accumulation_dtype(x.dtype))
    return jnp.sum(wide * wide)


def norm(x: jax.Array) -> jax.Array:
    """The Euclidean (Frobenius) norm of one leaf, in at least float32."""
    return jnp.sqrt(sum_of_squares(x))


def global_norm(tree: PyTree) -> jax.Array:
    """The Euclidean norm of all leaves together, as one vector, in at least float32."""
    squares = [sum_of_squares(x) for x in jax.tree.leaves(tree)]
    if not squares:
        return jnp.zeros([], jnp.float32)
    wide = wider(*(s.dtype for s in squares))
    return jnp.sqrt(builtins.sum(s.astype(wide) for s in squares))


def vdot(a: PyTree, b: PyTree) -> jax.Array:
    """``sum_i <a_i, b_i>`` over all leaves, in at least float32."""
    terms = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        dtype = accumulation_dtype(wider(x.dtype, y.dtype))
        terms.append(jnp.sum(x.astype(dtype) * y.astype(dtype)))
    if not terms:
        return jnp.zeros([], jnp.float32)
    dtype = wider(*(t.dtype for t in terms))
    return builtins.sum((t.astype(dtype) for t in terms), jnp.zeros([], dtype))


def add_scaled(params: PyTree, step: jax.Array, direction: PyTree) -> PyTree:
    """``params + step * direction``, each leaf formed in the wider dtype, kept in its param's."""

    def leaf(p, u):
        wide = wider(p.dtype, u.dtype, step.dtype)
        return (p.astype(wide) + step.astype(wide) * u.astype(wide)).astype(p.dtype)

    return jax.tree.map(leaf, params, direction)


def saturating_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` for an int32 step counter, staying at the int32 maximum instead of wrapping."""
    return jnp.where(count < _INT32_MAX, count + 1, count)


def zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)
