"""Norms that neither overflow nor underflow, over leaves, trees and shards.

A fast sum of squares, checked, and a sum rescaled by a power of two only where the fast one
under- or overflows; clipping factors and trust ratios applied as (root, exponent) pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree

# ---- why and how ------------------------------------------------
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


def _factors(e: jax.Array, real_dtype: Any) -> tuple[jax.Array, jax.Array]:
    """``2**e`` as two exact factors of ``real_dtype`` (``2**e`` alone may not be a normal
    number); beyond what two factors reach (|e| > 252) a product is 0 or inf anyway, and ``e``
    is clamped."""
    info = jnp.finfo(real_dtype)
    e = jnp.clip(e, 2 * (info.minexp + 1), 2 * (info.maxexp - 1))  # two normal factors
    half = e // 2
    return _pow2(half, real_dtype), _pow2(e - half, real_dtype)


def _times_factors(x: jax.Array, factor: tuple[jax.Array, jax.Array]) -> jax.Array:
    if jnp.iscomplexobj(x):
        return jax.lax.complex(x.real * factor[0] * factor[1], x.imag * factor[0] * factor[1])
    return x * factor[0] * factor[1]


def _scaled_by(x: jax.Array, e: jax.Array) -> jax.Array:
    """``x * 2**e``, exact wherever the result is a normal number."""
    return _times_factors(x, _factors(e, x.real.dtype))


def _wide(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    return x.astype(_tree.accumulation_dtype(x.dtype))


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


def _scaled_squares(wide: jax.Array, e: jax.Array, axis=None, factors=None) -> jax.Array:
    """The sum of squares of ``wide * 2**-e``; ``factors``: ``2**-e`` as :func:`_factors` gives
    it, when the caller computed it once for many leaves."""
    factors = _factors(-e, wide.real.dtype) if factors is None else factors
    scaled = _times_factors(wide, factors)
    return jnp.sum(_tree.abs_sq(scaled), axis=axis, keepdims=axis is not None)


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


class Ratio(NamedTuple):
    """The scalars of ``g * numerator / (root * 2**e)`` for every ``g`` of one dtype."""

    dtype: Any  # the dtype the product is formed in: the wider of g's and root's
    factors: tuple[jax.Array, jax.Array]  # 2**-(e + k) in two exact factors
    quotient: jax.Array  # numerator / m, with root = m 2**k and m in [0.5, 1)


def ratio(numerator: jax.Array, root: jax.Array, e: jax.Array, dtype: Any) -> Ratio:
    """The scalars of :func:`times_ratio` for values of ``dtype``: computed once, they serve
    every leaf of that dtype (a global norm's clipping factor is the same for all)."""
    dtype = _tree.wider(dtype, root.dtype)
    real = jnp.finfo(dtype).dtype
    k = jax.lax.stop_gradient(jnp.frexp(root)[1])
    mantissa = _scaled_by(root, -k)  # exact, and differentiable unlike frexp's
    return Ratio(
        dtype, _factors(-(e + k).astype(jnp.int32), real), (numerator / mantissa).astype(real)
    )


def times(g: jax.Array, r: Ratio) -> jax.Array:
    """``g`` times the ratio ``r`` stands for, cast back to ``g``'s dtype."""
    return _tree.times(_times_factors(g.astype(r.dtype), r.factors), r.quotient).astype(g.dtype)


def times_ratio(g: jax.Array, numerator: jax.Array, root: jax.Array, e: jax.Array) -> jax.Array:
    """``g * numerator / (root * 2**e)`` in at least float32, cast back to ``g``'s dtype, exact
    to rounding wherever the result is a normal number, even where the factor
    ``numerator / (root * 2**e)`` itself is not one (a clipping factor of 1e-40, a trust ratio
    of 1e60): ``root = m 2**k`` with ``m`` in [0.5, 1), and ``g * 2**-(e + k)`` times
    ``numerator / m``."""
    return times(g, ratio(numerator, root, e, g.dtype))


def _fast_path_holds(squares: jax.Array) -> jax.Array:
    """Whether sums of squares are exact to rounding: finite and not near underflow (an exact
    0 included: the squares of tiny values may have rounded to it)."""
    return jnp.all(jnp.isfinite(squares) & (squares >= np.sqrt(jnp.finfo(squares.dtype).tiny)))


_SELECT_UP_TO = 1 << 16  # elements: below, both paths cost less than a conditional's call
# leaves: above, a select's compile time grows with the square of their number. XLA copies the
# chains of cheap scalar operations that combine the leaves' sums and maxima into each leaf's
# computation that reads the selected scalars (clipping and AdamW on 200 leaves of 10 params
# compiled in 46 s, optax's in 0.9 s); a conditional's outputs are computed once.
_SELECT_LEAVES_UP_TO = 8


def _selects(size: int, count: int) -> bool:
    """Whether :func:`choose` computes both paths and selects for ``count`` leaves of ``size``
    elements in all."""
    return size <= _SELECT_UP_TO and count <= _SELECT_LEAVES_UP_TO and jax.device_count() == 1


def choose(fast_ok: jax.Array, fast: Callable[[], Any], slow: Callable[[], Any], leaves=()) -> Any:
    """``fast()`` if ``fast_ok`` else ``slow()``: a Python branch on concrete values, else a
    ``lax.cond`` (under ``vmap``, a select: both are computed). For at most
    ``_SELECT_LEAVES_UP_TO`` ``leaves`` of at most ``_SELECT_UP_TO`` elements in all, in a
    process with one device, both are computed and selected: on XLA:CPU a conditional costs
    more than the slow path's two passes over a small model (a 650-param AdamW step with
    clipping took 1.7x optax's time with the cond). With
    several devices the leaves may be sharded, and the slow path's reductions would add
    collectives to every step (two all-reduces where the conditional keeps one)."""
    if not isinstance(fast_ok, jax.core.Tracer):
        return fast() if bool(fast_ok) else slow()
    if leaves and _selects(sum(np.size(x) for x in leaves), len(leaves)):
        return jax.tree.map(lambda a, b: jnp.where(fast_ok, a, b), fast(), slow())
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
    squares = [_tree.shard_sum([_tree.sum_of_squares(x)], [x], axes) for x in leaves]
    ok = _all_hold(squares, leaves)
    if ok is None:
        return [_unscaled(sqrt(s)) for s in squares]

    def slow():
        out = []
        for x in leaves:
            wide = _wide(x)
            largest = _tree.shard_max([_largest(wide)], [x], axes)
            e = _exponent(largest)
            out.append(_rescued(largest, _tree.shard_sum([_scaled_squares(wide, e)], [x], axes), e))
        return out

    return choose(ok, lambda: [_unscaled(sqrt(s)) for s in squares], slow, leaves)


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
    squares = [
        jnp.sum(_tree.abs_sq(w), axis=a, keepdims=a is not None) for w, a in zip(wides, unit_axes)
    ]
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

    return choose(ok, lambda: [_unscaled(sqrt(s)) for s in squares], slow, leaves)


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
            unit = _tree.divide(
                _scaled_by(_wide(x), -e), jnp.where(positive, root, jnp.ones_like(root))
            )
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


def global_norm(tree: _tree.PyTree, axes: tuple[str, ...] | None = None) -> jax.Array:
    """The Euclidean norm of all leaves together, as one vector, in at least float32 (over
    their shards along ``axes``, inside ``shard_map``/``pmap``); exact to rounding for every
    finite float, complex leaves by ``|x|``."""
    return from_scaled(*scaled_global_norm(tree, axes))


def scaled_example_norms(leaves: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """The global norm of each example of ``leaves`` (their shared leading axis) as ``(root,
    e)`` arrays of one value per example (see :func:`scaled_norms`). One pass over the leaves
    where every example's plain sum of squares holds; the rescaled sums of ``vmap`` of
    :func:`scaled_global_norm` only where one does not (one predicate for the whole batch, not
    one select per example, which would compute both paths for every example)."""
    leaves = [jnp.asarray(x) for x in leaves]
    squares = functools.reduce(jnp.add, [jax.vmap(_tree.sum_of_squares)(x) for x in leaves])

    def slow():
        return jax.vmap(scaled_global_norm)(leaves)

    return choose(_fast_path_holds(squares), lambda: _unscaled(jnp.sqrt(squares)), slow, leaves)


def _concatenated(wides: Sequence[jax.Array]) -> list[jax.Array]:
    """The values of ``wides`` as one flat buffer per real dtype (complex leaves as their real
    and imaginary parts), for the rescaled path of a global norm: its maximum and its scaled sum
    are then two reductions whatever the number of leaves, where per leaf they made the branch's
    program, compiled whether or not it runs, grow by two reductions and their scalars per leaf.
    One process-local copy of the leaves, made only when the branch runs (after an overflow or
    underflow); with several devices the leaves may be sharded and stay apart."""
    groups: dict[Any, list[jax.Array]] = {}
    for w in wides:
        parts = (w.real, w.imag) if jnp.iscomplexobj(w) else (w,)
        groups.setdefault(w.real.dtype, []).extend(p.ravel() for p in parts)
    return [jnp.concatenate(g) for g in groups.values()]


def scaled_global_norm(
    tree: _tree.PyTree, axes: tuple[str, ...] | None = None, then: Callable | None = None
) -> Any:
    """:func:`global_norm` as a ``(root, e)`` pair (see :func:`scaled_norms`); with ``then``,
    ``then(root, e)`` (arrays), computed inside the branch that computes the norm.

    ``then`` is for scalars that every leaf reads (a clipping factor): XLA copies chains of
    cheap scalar operations into each computation that reads their result, so scalars made
    after the branch are made again in every leaf's computation (a few dozen operations each:
    clipping made a 1000-leaf step take three times optax's time to compile), while a
    conditional's results are computed once."""
    finish = (lambda pair: pair) if then is None else (lambda pair: then(*pair))
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    squares = _tree.shard_sum([_tree.sum_of_squares(x) for x in leaves], leaves, axes)
    if not any(x.size for x in leaves):
        return finish(_unscaled(jnp.sqrt(squares)))

    def slow():
        wides = [_wide(x) for x in leaves]
        if axes is None and jax.device_count() == 1:
            wides = _concatenated(wides)
        largest = _tree.shard_max([_largest(w) for w in wides], leaves, axes)
        e = _exponent(largest)
        factors = {dtype: _factors(-e, dtype) for dtype in {w.real.dtype for w in wides}}
        parts = [_scaled_squares(w, e, factors=factors[w.real.dtype]) for w in wides]
        return finish(_rescued(largest, _tree.shard_sum(parts, leaves, axes), e))

    fast = lambda: finish(_unscaled(jnp.sqrt(squares)))  # noqa: E731
    return choose(_fast_path_holds(squares), fast, slow, leaves)
