"""A leaf as blocks of matrices, as Shampoo preconditions it: small axes merged, large ones cut
into blocks of at most ``block_size``, the blocks of equal shape batched; the Gram matrices of
a block along each axis and the mode products with a matrix per axis."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp

# ---- the layout of a leaf: merged axes, blocks, exponent ---------------------------------------


def merge_small_dims(shape: tuple[int, ...], max_dim: int) -> tuple[int, ...]:
    """Adjacent axes merged while their product stays at most ``max_dim``; axes of size 1
    disappear (an all-ones shape is ``(1,)``). ``(1, 2, 512, 1, 2048, 1, 3, 4)`` with 1024:
    ``(1024, 2048, 12)``. The reference's ``merge_small_dims``."""
    if shape and all(d == 1 for d in shape):
        return (1,)
    merged: list[int] = []
    product = 1
    for d in shape:
        if product * d <= max_dim:
            product *= d
        else:
            if product > 1:
                merged.append(product)
            product = d
    if product > 1:
        merged.append(product)
    return tuple(merged)


def _segments(d: int, block_size: int) -> tuple[tuple[int, int, int], ...]:
    """An axis of ``d`` cut into blocks of ``block_size`` and a remainder, as ``(start, size,
    count)`` runs of equal blocks (the reference's split: blocks of ``block_size`` from the
    start, the last one shorter)."""
    if not 0 < block_size < d:
        return ((0, d, 1),)
    count = (d - 1) // block_size
    last = d - count * block_size
    if last == block_size:
        return ((0, block_size, count + 1),)
    return ((0, block_size, count), (count * block_size, last, 1))


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one leaf is preconditioned.

    ``merged``: the shape the leaf is viewed as (None: not preconditioned, the graft's step);
    ``classes``: per class of equal blocks, one ``(start, size, count)`` per axis;
    ``exponent``: p of the inverse p-th roots.
    """

    merged: tuple[int, ...] | None
    classes: tuple[tuple[tuple[int, int, int], ...], ...] = ()
    exponent: int = 0

    def statistic_shapes(self) -> tuple[tuple[tuple[int, int, int], ...], ...]:
        """Per class, per axis: ``(number of blocks, size, size)``."""
        return tuple(
            tuple((math.prod(n for _, _, n in cls), b, b) for _, b, _ in cls)
            for cls in self.classes
        )


@functools.lru_cache(maxsize=4096)
def layout(
    shape: tuple[int, ...],
    *,
    block_size: int,
    best_effort_shape_interpretation: bool,
    merge_small_dims_block_size: int,
    skip_preconditioning_dim_size_gt: int,
    skip_preconditioning_rank_lt: int,
    exponent_override: int,
) -> Layout:
    """The :class:`Layout` of a leaf of ``shape`` (the reference's rules, and: an empty leaf is
    not preconditioned)."""
    if (
        math.prod(shape) == 0
        or len(shape) < skip_preconditioning_rank_lt
        or any(d > skip_preconditioning_dim_size_gt for d in shape)
    ):
        return Layout(None)
    merged = (
        merge_small_dims(tuple(shape), merge_small_dims_block_size)
        if best_effort_shape_interpretation
        else tuple(shape)
    )
    if not merged:  # a scalar, kept: no statistic, the direction is the gradient
        return Layout((), (), 0)
    classes = tuple(itertools.product(*(_segments(d, block_size) for d in merged)))
    exponent = exponent_override if exponent_override else 2 * len(merged)
    return Layout(merged, classes, exponent)


def _layout_of(shape, fixed) -> Layout:
    return layout(
        tuple(shape),
        block_size=fixed["block_size"],
        best_effort_shape_interpretation=fixed["best_effort_shape_interpretation"],
        merge_small_dims_block_size=fixed["merge_small_dims_block_size"],
        skip_preconditioning_dim_size_gt=fixed["skip_preconditioning_dim_size_gt"],
        skip_preconditioning_rank_lt=fixed["skip_preconditioning_rank_lt"],
        exponent_override=fixed["exponent_override"],
    )


# ---- blocks ------------------------------------------------------------------------------------


def _blocks(x: jax.Array, cls) -> jax.Array:
    """The blocks of one class of ``x`` (merged shape) as a batch ``(N, b_0, ..., b_{k-1})``."""
    k = len(cls)
    sub = x[tuple(slice(s, s + b * n) for s, b, n in cls)]
    sub = sub.reshape(tuple(itertools.chain.from_iterable((n, b) for _, b, n in cls)))
    sub = sub.transpose(tuple(range(0, 2 * k, 2)) + tuple(range(1, 2 * k, 2)))
    return sub.reshape((math.prod(n for _, _, n in cls),) + tuple(b for _, b, _ in cls))


def _unblocks(blocks: jax.Array, cls) -> jax.Array:
    """The inverse of :func:`_blocks`: the class's region of the merged leaf."""
    k = len(cls)
    x = blocks.reshape(tuple(n for _, _, n in cls) + tuple(b for _, b, _ in cls))
    x = x.transpose(tuple(itertools.chain.from_iterable((i, k + i) for i in range(k))))
    return x.reshape(tuple(b * n for _, b, n in cls))


def _gram(x: jax.Array, axis: int, precision: Any) -> jax.Array:
    """``G_(i) G_(i)^H`` of every block of the batch ``x``: ``(N, b_i, b_i)``."""
    y = jnp.moveaxis(x, 1 + axis, 1)
    y = y.reshape(y.shape[0], y.shape[1], -1)
    yh = jnp.swapaxes(y.conj() if jnp.iscomplexobj(y) else y, 1, 2)
    return jnp.matmul(y, yh, precision=precision)


def _mode_product(x: jax.Array, p: jax.Array, axis: int, precision: Any) -> jax.Array:
    """``x`` times ``p`` (per block, ``(N, b_i, b_i)``) along block axis ``axis``:
    ``sum_j p[n, a, j] x[n, ..., j, ...]``."""
    y = jnp.moveaxis(x, 1 + axis, 1)
    shape = y.shape
    y = jnp.matmul(p, y.reshape(shape[0], shape[1], -1), precision=precision)
    return jnp.moveaxis(y.reshape(shape), 1, 1 + axis)


def _precondition(g: jax.Array, lay: Layout, preconditioners, precision: Any) -> jax.Array:
    """The gradient (in the preconditioners' dtype) preconditioned block by block."""
    if not lay.classes:
        return g
    x = g.reshape(lay.merged)
    pieces = []
    for cls, ps in zip(lay.classes, preconditioners):
        blocks = _blocks(x, cls)
        for axis, p in enumerate(ps):
            blocks = _mode_product(blocks, p, axis, precision)
        pieces.append(_unblocks(blocks, cls))
    if len(pieces) == 1:
        out = pieces[0]
    else:
        out = jnp.zeros(lay.merged, pieces[0].dtype)
        for cls, piece in zip(lay.classes, pieces):
            out = out.at[tuple(slice(s, s + b * n) for s, b, n in cls)].set(piece)
    return out.reshape(g.shape)
