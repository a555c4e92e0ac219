"""Per-leaf math lifted to trees once: checked maps, zeros, casts, sums across shards, counters.

The overflow-safe norms built on these are in :mod:`gradtx._core.norms`.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

INT32_MAX = int(np.iinfo(np.int32).max)
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


def masked_by_none(first: PyTree, second: PyTree) -> PyTree:
    """``second`` with ``None`` wherever ``first`` is ``None`` (a masked-out param: optax's
    ``apply_updates`` and ``incremental_update`` leave it ``None`` whatever the other tree
    holds there). Trees that do not match elsewhere are returned as they are, for the caller's
    check to name the paths."""
    try:
        return jax.tree.map(
            lambda a, b: None if a is None else b, first, second, is_leaf=lambda x: x is None
        )
    except (ValueError, TypeError):
        return second


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


def storage_dtype(leaf_dtype: Any, dtype: Any = None) -> Any:
    """The dtype a state keeps for a leaf: ``dtype`` if given (an accumulator or moment dtype),
    else the leaf's. A real ``dtype`` for a complex leaf gives the complex dtype of at least
    its precision (complex64 for bfloat16 or float32): an imaginary part is never dropped."""
    if dtype is None:
        return jnp.result_type(leaf_dtype)
    if jnp.issubdtype(leaf_dtype, jnp.complexfloating) and not jnp.issubdtype(
        dtype, jnp.complexfloating
    ):
        return wider(dtype, jnp.complex64)
    return dtype


def zeros_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Zeros shaped like each leaf (in :func:`storage_dtype`); a sharded array's zeros carry its
    sharding (eagerly, and under ``jit`` on a mesh with explicit axes)."""
    return jax.tree.map(lambda x: jnp.zeros_like(x, storage_dtype(jnp.result_type(x), dtype)), tree)


def full_like(tree: PyTree, value: Any, dtype: Any = None) -> PyTree:
    return jax.tree.map(
        lambda x: jnp.full_like(x, value, storage_dtype(jnp.result_type(x), dtype)), tree
    )


def real_like(tree: PyTree) -> PyTree:
    """Each complex leaf replaced by its real part: what a state of magnitudes (a second
    moment of ``|g|**2``, a sum of squares) is shaped and typed after."""
    return jax.tree.map(lambda x: x.real if jnp.iscomplexobj(x) else x, tree)


def cast_like(tree: PyTree, like: PyTree) -> PyTree:
    """``tree`` cast leaf by leaf to the dtypes of ``like`` (a state keeps its dtypes)."""
    return jax.tree.map(lambda x, old: x.astype(old.dtype), tree, like)


def wider(*dtypes: Any) -> Any:
    """The dtype two or more operands are computed in: JAX's standard promotion, made explicitly
    (the library never relies on implicit promotion, so it runs under strict promotion too)."""
    return _promoted(*(jnp.dtype(d) for d in dtypes))


@functools.cache
def _promoted(*dtypes: np.dtype) -> np.dtype:  # asked once per leaf: cached
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*dtypes)


def cast(x: jax.Array, dtype: Any) -> jax.Array:
    """``x.astype(dtype)``, or ``x`` itself when it already has that dtype (no traced op)."""
    return x if x.dtype == dtype else x.astype(dtype)


def accumulation_dtype(dtype: Any) -> Any:
    """Sums of squares are taken in at least float32 (bf16/f16 sums lose too much)."""
    return wider(dtype, jnp.float32)


def real_dtype(dtype: Any) -> Any:
    """The real counterpart of a dtype (float32 for complex64), the dtype of ``|x|``."""
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else dtype


def check_leaves(owner: str, tree: PyTree, name: str) -> None:
    """Raises TypeError naming the first leaf of ``tree`` that is not a floating or complex
    array (an integer, a bool, a string), with the remedy.

    Integer and boolean leaves have no gradient step: an update rounded to an integer is 0 or
    wrong, and moments and hyperparameters are floats. They are refused rather than passed
    through, so that nothing is silently left untrained.
    """
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(x, (float, complex)):
            continue
        dtype = getattr(x, "dtype", None)
        if dtype is None and isinstance(x, (int, np.integer, bool, np.bool_)):
            dtype = np.asarray(x).dtype
        where = f"{owner}: {name} leaf {path_str(path)!r}"
        if dtype is None:
            raise TypeError(f"{where} is a {type(x).__name__}, not an array")
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{where} has dtype {jnp.dtype(dtype).name}: only floating and complex leaves "
                f"can be optimized; keep the others out of the optimizer, e.g. with "
                f"gradtx.freeze(mask, inner=tx) (mask True for them)"
            )


def check_real_leaves(owner: str, tree: PyTree, reason: str, min_size: int = 0) -> None:
    """Raises TypeError naming the first complex leaf of ``tree`` (with at least ``min_size``
    elements): for transformations without a complex form (``reason`` says why), at ``init``."""
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.iscomplexobj(x) and np.size(x) >= min_size:
            raise TypeError(
                f"{owner}: {reason}; the leaf {path_str(path)!r} is {jnp.result_type(x).name}"
            )


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2`` in ``x``'s real dtype: ``x * x``, or ``re**2 + im**2`` for complex ``x``.

    Every square of an update or a parameter in the library is this one (a complex ``x * x`` is
    neither real nor the magnitude), so that complex leaves get their natural form everywhere.
    """
    if jnp.iscomplexobj(x):
        return x.real * x.real + x.imag * x.imag
    return x * x


def times(g: jax.Array, r: jax.Array) -> jax.Array:
    """``g * r`` for a real ``r``: a complex ``g`` part by part (each part as the equivalent
    real problem would compute it, without a complex multiply)."""
    if jnp.iscomplexobj(g):
        return jax.lax.complex(g.real * r, g.imag * r)
    return g * r


def divide(g: jax.Array, d: jax.Array) -> jax.Array:
    """``g / d`` for a real ``d``, a complex ``g`` part by part (as :func:`times`)."""
    if jnp.iscomplexobj(g):
        return jax.lax.complex(g.real / d, g.imag / d)
    return g / d


def sum_of_squares(x: jax.Array) -> jax.Array:
    """``sum |x|**2`` in at least float32 (real for complex ``x``); may under- or overflow: the
    norms below check it and fall back to a scaled sum."""
    x = jnp.asarray(x)
    return jnp.sum(abs_sq(x.astype(accumulation_dtype(x.dtype))))


# ---- sums across shards (inside shard_map / pmap) ---------------------------------------------


def axis_names(owner: str, axis_name: Any) -> tuple[str, ...] | None:
    """``axis_name`` checked at construction: None, a mesh axis name, or a tuple of names."""
    if axis_name is None:
        return None
    names = (axis_name,) if isinstance(axis_name, str) else axis_name
    if not (isinstance(names, tuple) and names and all(isinstance(n, str) and n for n in names)):
        raise TypeError(
            f"{owner}: axis_name must be None, a mesh axis name (str) or a tuple of names, "
            f"got {axis_name!r}"
        )
    return names


def _varying_axes(x: Any) -> frozenset:
    """The manual mesh axes along which JAX tracks ``x`` as differing between devices."""
    aval = jax.typeof(x)
    kind = getattr(aval, "manual_axis_type", None)
    if kind is not None:
        return frozenset(kind.varying)
    return frozenset(getattr(aval, "vma", frozenset()))


def _tracked(axis: str) -> bool:
    """Whether JAX tracks here which values vary along the mapped ``axis``.

    Inside ``shard_map`` (with ``check_vma``, its default) it does, and a leaf replicated along
    ``axis`` is not a shard of it; under ``pmap`` or ``check_vma=False`` it does not, and every
    leaf is taken as a shard.
    """
    try:
        return axis in _varying_axes(jax.lax.axis_index(axis))
    except NameError as error:
        raise ValueError(
            f"axis_name {axis!r} is not a mapped axis here: use it inside shard_map or pmap "
            f"over that axis, or leave axis_name=None under jit with shardings"
        ) from error


def _shard_reduce(parts, leaves, axes, combine, collective, local=None) -> jax.Array:
    """``parts`` combined locally by the mesh axes their leaves vary along (by ``local``, or a
    chain of ``combine``), then across those axes by ``collective``, then together."""
    wide = wider(*(p.dtype for p in parts))
    axes = axes or ()
    tracked = {a: _tracked(a) for a in axes}
    groups: dict[tuple[str, ...], list[jax.Array]] = {}
    for part, leaf in zip(parts, leaves):
        varying = _varying_axes(leaf) if axes else frozenset()
        key = tuple(a for a in axes if not tracked[a] or a in varying)
        groups.setdefault(key, []).append(part.astype(wide))
    total = None
    for key, group in groups.items():
        combined = local(group) if local else functools.reduce(combine, group)
        term = collective(combined, key) if key else combined
        total = term if total is None else combine(total, term)
    return total


def shard_sum(
    parts: Sequence[jax.Array], leaves: Sequence[Any], axes: tuple[str, ...] | None
) -> jax.Array:
    """``sum(parts)`` over every shard, where ``parts[i]`` reduces this device's ``leaves[i]``.

    Leaves split along the same axes are added locally first, so a tree of leaves all sharded
    the same way costs one ``psum`` of a scalar; with ``axes=None`` nothing crosses devices.
    """
    if not parts:
        return jnp.zeros([], jnp.float32)
    return _shard_reduce(parts, leaves, axes, jnp.add, jax.lax.psum)


def _maximum_of(parts: list[jax.Array]) -> jax.Array:
    """The maximum of scalars, NaN if any is: one operation where a chain of ``maximum`` would be
    copied by XLA into every computation that reads the result (cheap scalar operations are;
    a norm's exponent is read by each leaf's computation, which made the compile time grow with
    the square of the leaf count). ``max`` is exact, so it is the chain's value."""
    if len(parts) <= 2:
        return functools.reduce(jnp.maximum, parts)
    return jax.lax.cummax(jnp.stack(parts))[-1]


def shard_max(
    parts: Sequence[jax.Array], leaves: Sequence[Any], axes: tuple[str, ...] | None
) -> jax.Array:
    """``max(parts)`` over every shard, as :func:`shard_sum` (``parts`` non-empty)."""
    return _shard_reduce(parts, leaves, axes, jnp.maximum, jax.lax.pmax, _maximum_of)


def vdot(a: PyTree, b: PyTree) -> jax.Array:
    """The real inner product ``sum_i Re(conj(a_i) . b_i)`` over all leaves, in at least float32.

    For complex leaves this is the inner product of the (real, imaginary) pairs: what a
    directional derivative, a curvature pair ``s'y`` or a norm needs.
    """
    terms = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        dtype = accumulation_dtype(wider(x.dtype, y.dtype))
        x, y = x.astype(dtype), y.astype(dtype)
        if jnp.iscomplexobj(x):
            terms.append(jnp.sum(x.real * y.real + x.imag * y.imag))
        else:
            terms.append(jnp.sum(x * y))
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
    return jnp.where(count < INT32_MAX, count + 1, count)


def zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)
