"""Per-leaf math lifted to trees once: checked maps, zeros, norms, counters."""

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


def _shard_reduce(parts, leaves, axes, combine, collective) -> jax.Array:
    """``parts`` combined locally by the mesh axes their leaves vary along, then across those
    axes by ``collective``, then together."""
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
        local = functools.reduce(combine, group)
        term = collective(local, key) if key else local
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


def shard_max(
    parts: Sequence[jax.Array], leaves: Sequence[Any], axes: tuple[str, ...] | None
) -> jax.Array:
    """``max(parts)`` over every shard, as :func:`shard_sum` (``parts`` non-empty)."""
    return _shard_reduce(parts, leaves, axes, jnp.maximum, jax.lax.pmax)


# ---- norms that neither overflow nor underflow ------------------------------------------------
#
# ``sqrt(sum x**2)`` in float32 overflows for |x| above ~1.8e19 (the norm of [1e30, 1e30] comes
# out inf, and a clipping factor of 0) and loses everything below ~1e-19 (the squares of 1e-25
# are 0, and a zero norm). Such sums are detected after the fact (not finite, or below the root
# of the smallest normal number, which also catches an exact 0) and only then computed again,
# scaled by a power of two taken from the largest magnitude: ``|x| * 2**-e <= 1``. Powers of two
# scale exactly, so the slow path agrees with the fast one wherever the fast one is exact, and
# the common case costs one comparison and one branch per norm computation, not a second pass.


def _pow2(k: jax.Array, dtype: Any) -> jax.Array:
    """``2.0**k`` exactly, for integer ``k`` within the normal exponents of ``dtype``."""
    info = jnp.finfo(dtype)
    bits = jnp.int32 if info.bits == 32 else jnp.int64
    return jax.lax.bitcast_convert_type(
        (k.astype(bits) + (info.maxexp - 1)) << info.nmant, info.dtype
    )


def _scaled_by(x: jax.Array, e: jax.Array) -> jax.Array:
    """``x * 2**e`` in two exact factors (``2**e`` alone may not be a normal number); beyond
    what two factors reach (|e| > 252) the product is 0 or inf anyway, and ``e`` is clamped."""
    info = jnp.finfo(x.real.dtype)
    e = jnp.clip(e, 2 * (info.minexp + 1), 2 * (info.maxexp - 1))  # two normal factors
    half = e // 2
    factor = _pow2(half, x.real.dtype), _pow2(e - half, x.real.dtype)
    if jnp.iscomplexobj(x):
        return jax.lax.complex(x.real * factor[0] * factor[1], x.imag * factor[0] * factor[1])
    return x * factor[0] * factor[1]


def _wide(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    return x.astype(accumulation_dtype(x.dtype))


def _largest(wide: jax.Array, axis=None) -> jax.Array:
    """``max |x|`` over ``axis`` (kept), over real and imaginary parts; 0 for an empty leaf."""
    parts = (wide.real, wide.imag) if jnp.iscomplexobj(wide) else (wide,)
    keep = axis is not None
    peaks = [jnp.max(jnp.abs(p), axis=axis, keepdims=keep, initial=0) for p in parts]
    return functools.reduce(jnp.maximum, peaks)


def _exponent(largest: jax.Array) -> jax.Array:
    """``e`` with ``largest * 2**-e`` in [0.5, 1); 0 for 0, inf and NaN."""
    e = jnp.frexp(largest)[1]
    return jnp.where((largest > 0) & jnp.isfinite(largest), e, jnp.zeros_like(e))


def _scaled_squares(wide: jax.Array, e: jax.Array, axis=None) -> jax.Array:
    return jnp.sum(abs_sq(_scaled_by(wide, -e)), axis=axis, keepdims=axis is not None)


def _rescued(largest: jax.Array, squares: jax.Array, e: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The norm as ``(root, e)``, ``root * 2**e``, from the sum of squares of ``x * 2**-e``;
    ``(largest, 0)`` where ``largest`` is inf or NaN."""
    finite = jnp.isfinite(largest)
    root = jnp.where(finite, sqrt(squares), largest.astype(squares.dtype))
    return root, jnp.where(finite, e, jnp.zeros_like(e))


def _unscaled(root: jax.Array) -> tuple[jax.Array, jax.Array]:
    return root, jnp.zeros_like(root, jnp.int32)  # like root's: shard_map's varying axes too


def from_scaled(root: jax.Array, e: jax.Array) -> jax.Array:
    """``root * 2**e`` (inf beyond the dtype's largest value)."""
    return _scaled_by(root, e)


def times_ratio(g: jax.Array, numerator: jax.Array, root: jax.Array, e: jax.Array) -> jax.Array:
    """``g * numerator / (root * 2**e)`` in at least float32, cast back to ``g``'s dtype, exact
    to rounding wherever the result is a normal number, even where the factor
    ``numerator / (root * 2**e)`` itself is not one (a clipping factor of 1e-40, a trust ratio
    of 1e60): ``root = m 2**k`` with ``m`` in [0.5, 1), and ``g * 2**-(e + k)`` times
    ``numerator / m``."""
    dtype = wider(g.dtype, root.dtype)
    k = jax.lax.stop_gradient(jnp.frexp(root)[1])
    mantissa = _scaled_by(root, -k)  # exact, and differentiable unlike frexp's
    shifted = _scaled_by(g.astype(dtype), -(e + k).astype(jnp.int32))
    return times(shifted, (numerator / mantissa).astype(shifted.real.dtype)).astype(g.dtype)


def _fast_path_holds(squares: jax.Array) -> jax.Array:
    """Whether sums of squares are exact to rounding: finite and not near underflow (an exact
    0 included: the squares of tiny values may have rounded to it)."""
    return jnp.all(jnp.isfinite(squares) & (squares >= np.sqrt(jnp.finfo(squares.dtype).tiny)))


def _choose(fast_ok: jax.Array, fast: Callable[[], Any], slow: Callable[[], Any]) -> Any:
    """``fast()`` if ``fast_ok`` else ``slow()``: a Python branch on concrete values, else a
    ``lax.cond`` (under ``vmap``, a select: both are computed)."""
    if not isinstance(fast_ok, jax.core.Tracer):
        return fast() if bool(fast_ok) else slow()
    return jax.lax.cond(fast_ok, fast, slow)


def _all_hold(squares: Sequence[jax.Array], leaves: Sequence[jax.Array]) -> jax.Array | None:
    """Whether the fast sums hold for every non-empty leaf; None if there is none."""
    checked = [_fast_path_holds(s) for s, x in zip(squares, leaves) if x.size]
    return functools.reduce(jnp.logical_and, checked) if checked else None


@jax.custom_jvp
def sqrt(x: jax.Array) -> jax.Array:
    """``jnp.sqrt`` whose derivative at 0 is 0 rather than infinite.

    A norm or a second moment is 0 only where every value under it is 0, so its tangent there
    is 0 too: with the true slope, ``0 * inf`` would put NaN into gradients taken through
    ``update`` (meta-learning a learning rate, say). The value is ``jnp.sqrt``'s, bit for bit.
    """
    return jnp.sqrt(x)


@sqrt.defjvp
def _sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = jnp.sqrt(x)
    positive = x > 0
    return y, jnp.where(positive, dx / (2 * jnp.where(positive, y, 1)), jnp.zeros_like(dx))


def norms(leaves: Sequence[jax.Array], axes: tuple[str, ...] | None = None) -> list[jax.Array]:
    """The Euclidean (Frobenius) norm of each leaf, in at least float32, over its shards along
    ``axes``; exact to rounding for every finite float, complex leaves by ``|x|``, slope 0 at 0."""
    return [from_scaled(r, e) for r, e in scaled_norms(leaves, axes)]


def scaled_norms(
    leaves: Sequence[jax.Array], axes: tuple[str, ...] | None = None
) -> list[tuple[jax.Array, jax.Array]]:
    """:func:`norms` as ``(root, e)`` pairs, the norm ``root * 2**e``: finite even where the
    norm is beyond the dtype's largest value (see :func:`times_ratio`)."""
    leaves = [jnp.asarray(x) for x in leaves]
    if axes is None:
        return scaled_unit_norms(leaves, [None] * len(leaves))
    squares = [shard_sum([sum_of_squares(x)], [x], axes) for x in leaves]
    ok = _all_hold(squares, leaves)
    if ok is None:
        return [_unscaled(sqrt(s)) for s in squares]

    def slow():
        out = []
        for x in leaves:
            wide = _wide(x)
            largest = shard_max([_largest(wide)], [x], axes)
            e = _exponent(largest)
            out.append(_rescued(largest, shard_sum([_scaled_squares(wide, e)], [x], axes), e))
        return out

    return _choose(ok, lambda: [_unscaled(sqrt(s)) for s in squares], slow)


def unit_norms(leaves: Sequence[jax.Array], unit_axes: Sequence[Any]) -> list[jax.Array]:
    """The norm of each unit of each leaf: over ``unit_axes[i]`` of ``leaves[i]`` (None: the
    whole leaf), dims kept; as :func:`norms` (one branch for all leaves), with slope 0 at 0."""
    return [from_scaled(r, e) for r, e in scaled_unit_norms(leaves, unit_axes)]


def scaled_unit_norms(
    leaves: Sequence[jax.Array], unit_axes: Sequence[Any]
) -> list[tuple[jax.Array, jax.Array]]:
    """:func:`unit_norms` as ``(root, e)`` pairs (see :func:`scaled_norms`)."""
    leaves = [jnp.asarray(x) for x in leaves]
    unit_axes = tuple(tuple(a) if isinstance(a, list) else a for a in unit_axes)
    if not leaves or not any(isinstance(x, jax.core.Tracer) for x in leaves):
        return _unit_norms_one_branch(leaves, unit_axes)
    return _traced_unit_norms(unit_axes)(leaves)


# Under ``vmap`` the one branch shared by all leaves becomes a select per leaf on one predicate
# that depends on every leaf, and XLA's compile time grows with the square of the leaf count
# (100 leaves: 0.5 s with a predicate per leaf, 30 s with the shared one). The batched program
# therefore gives each leaf its own predicate (``custom_vmap``); unbatched leaves keep the one
# branch. The derivative is written out (``custom_jvp``: reverse mode cannot go through
# ``custom_vmap``): d||x|| = Re<x / ||x||, dx>, 0 where the norm is 0; for ``root = ||x|| 2**-e``
# that is Re<u, dx> 2**-e with the unit vector u = x 2**-e / root.


def _unit_norms_one_branch(leaves: Sequence[jax.Array], unit_axes: Sequence[Any]) -> list:
    wides = [_wide(x) for x in leaves]
    squares = [jnp.sum(abs_sq(w), axis=a, keepdims=a is not None) for w, a in zip(wides, unit_axes)]
    ok = _all_hold(squares, leaves)
    if ok is None:
        return [_unscaled(sqrt(s)) for s in squares]

    def slow():
        out = []
        for w, a in zip(wides, unit_axes):
            largest = _largest(w, a)
            e = _exponent(largest)
            out.append(_rescued(largest, _scaled_squares(w, e, a), e))
        return out

    return _choose(ok, lambda: [_unscaled(sqrt(s)) for s in squares], slow)


def _unit_norm_own_branch(x: jax.Array, axis: Any) -> tuple[jax.Array, jax.Array]:
    return _unit_norms_one_branch([x], [axis])[0]


@functools.cache
def _traced_unit_norms(unit_axes: tuple[Any, ...]) -> Callable[[list], list]:
    @jax.custom_batching.custom_vmap
    def one_branch(leaves):
        return _unit_norms_one_branch(leaves, unit_axes)

    @one_branch.def_vmap
    def own_branches(axis_size, in_batched, leaves):
        del axis_size
        (batched,) = in_batched
        fixed = [i for i, b in enumerate(batched) if not b]
        out = {}
        if fixed:
            shared = _traced_unit_norms(tuple(unit_axes[i] for i in fixed))
            out.update(zip(fixed, shared([leaves[i] for i in fixed])))
        for i, b in enumerate(batched):
            if b:
                own = functools.partial(_unit_norm_own_branch, axis=unit_axes[i])
                out[i] = jax.vmap(own)(leaves[i])
        return [out[i] for i in range(len(leaves))], [(b, b) for b in batched]

    @jax.custom_jvp
    def scaled_unit_norms(leaves):
        return one_branch(leaves)

    @scaled_unit_norms.defjvp
    def _jvp(primals, tangents):
        (leaves,), (dleaves,) = primals, tangents
        out = scaled_unit_norms(leaves)
        slopes = []
        for x, dx, (root, e), a in zip(leaves, dleaves, out, unit_axes):
            positive = (root > 0) & jnp.isfinite(root)
            unit = divide(_scaled_by(_wide(x), -e), jnp.where(positive, root, jnp.ones_like(root)))
            dx = _wide(dx)
            inner = (
                unit.real * dx.real + unit.imag * dx.imag if jnp.iscomplexobj(unit) else unit * dx
            )
            slope = _scaled_by(jnp.sum(inner, axis=a, keepdims=a is not None), -e)
            slope = jnp.where(positive, slope, jnp.zeros_like(slope))
            slopes.append((slope, np.zeros(e.shape, jax.dtypes.float0)))
        return out, slopes

    return scaled_unit_norms


def norm(x: jax.Array, axes: tuple[str, ...] | None = None) -> jax.Array:
    """The Euclidean (Frobenius) norm of one leaf; see :func:`norms`."""
    return norms([x], axes)[0]


def global_norm(tree: PyTree, axes: tuple[str, ...] | None = None) -> jax.Array:
    """The Euclidean norm of all leaves together, as one vector, in at least float32 (over
    their shards along ``axes``, inside ``shard_map``/``pmap``); exact to rounding for every
    finite float, complex leaves by ``|x|``."""
    return from_scaled(*scaled_global_norm(tree, axes))


def scaled_global_norm(
    tree: PyTree, axes: tuple[str, ...] | None = None
) -> tuple[jax.Array, jax.Array]:
    """:func:`global_norm` as a ``(root, e)`` pair (see :func:`scaled_norms`)."""
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    squares = shard_sum([sum_of_squares(x) for x in leaves], leaves, axes)
    if not any(x.size for x in leaves):
        return _unscaled(jnp.sqrt(squares))

    def slow():
        wides = [_wide(x) for x in leaves]
        largest = shard_max([_largest(w) for w in wides], leaves, axes)
        e = _exponent(largest)
        parts = [_scaled_squares(w, e) for w in wides]
        return _rescued(largest, shard_sum(parts, leaves, axes), e)

    return _choose(_fast_path_holds(squares), lambda: _unscaled(jnp.sqrt(squares)), slow)


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
