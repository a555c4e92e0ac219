"""The parts of microbatching: accumulators, and the split of a batch axis into microbatches.

:func:`gradtx.microbatch` and its relatives (:mod:`gradtx._wrappers.microbatching`) are built on
them. The batch axis of size :math:`B = N m` is split column-major into :math:`N` microbatches of
:math:`m` rows: microbatch :math:`i` holds rows :math:`i, i + N, i + 2N, \\dots`. A sharded batch
axis so keeps its sharding on the :math:`m` rows of each microbatch (on a mesh of explicit axes
the reshape says so), and ``CONCAT`` puts the rows back in their order.
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import PyTree


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How the results of the microbatches combine into one, as four functions.

    For the results :math:`x_0, \\dots, x_{N-1}` of the microbatches, :func:`microbatch`
    computes ``carry = init(shape of x_0)``, then ``carry = update(carry, x_i, i)`` for each
    :math:`i` in a ``lax.fori_loop``, and returns ``finalize(carry)``. :func:`micro_vmap` also
    reduces the rows of one microbatch with ``aggregate(values)`` (the values stacked on axis
    0) before they are accumulated.

    Attributes:
      init: ``init(value_shapes) -> carry``, given the tree of ``jax.ShapeDtypeStruct`` of one
        microbatch's result.
      update: ``update(carry, value, index) -> carry`` (``index`` an int32 array).
      finalize: ``finalize(carry) -> result``.
      aggregate: ``aggregate(stacked_values) -> value``, the reduction over axis 0.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> largest = gradtx.microbatching.Accumulator(
      ...     init=lambda s: jnp.full(s.shape, -jnp.inf, s.dtype),
      ...     update=lambda carry, value, index: jnp.maximum(carry, value),
      ...     finalize=lambda carry: carry,
      ...     aggregate=lambda values: values.max(axis=0),
      ... )
      >>> fn = gradtx.microbatch(jnp.max, argnums=0, microbatch_size=2, accumulator=largest)
      >>> fn(jnp.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0]))
      Array(9., dtype=float32)
    """

    init: Callable[[PyTree], PyTree]
    update: Callable[[PyTree, PyTree, jax.Array], PyTree]
    finalize: Callable[[PyTree], PyTree]
    aggregate: Callable[[PyTree], PyTree]


class AccumulationType(enum.Enum):
    """The built-in accumulators, by name."""

    MEAN = enum.auto()
    """The mean of the microbatches' results (over all of them, run or not)."""
    SUM = enum.auto()
    """The sum of the microbatches' results."""
    RUNNING_MEAN = enum.auto()
    """The mean over the microbatches run (``num_real_microbatches`` of them)."""
    CONCAT = enum.auto()
    """The results concatenated on axis 0, rows in the batch's order."""


# ---- the accumulators ----------------------------------------------------------------------


def _per_leaf(owner: str, name: str, init, update, finalize, aggregate) -> Accumulator:
    """An accumulator of one array lifted to trees; ``name`` for its errors."""

    def checked_init(shapes):
        def one(shape):
            if name in ("MEAN", "RUNNING_MEAN") and not jnp.issubdtype(shape.dtype, jnp.inexact):
                raise ValueError(
                    f"{owner}: the {name} accumulator needs floating-point results, got "
                    f"{jnp.dtype(shape.dtype).name}"
                )
            return init(shape)

        return jax.tree.map(one, shapes)

    return Accumulator(
        checked_init,
        lambda carry, value, index: jax.tree.map(lambda c, v: update(c, v, index), carry, value),
        lambda carry: jax.tree.map(finalize, carry),
        lambda values: jax.tree.map(aggregate, values),
    )


def _zeros(shape: jax.ShapeDtypeStruct) -> jax.Array:
    """Zeros of ``shape``'s shape and dtype, laid out as its sharding says (explicit axes)."""
    return jnp.zeros_like(shape)


def _built_in(owner: str, kind: AccumulationType, count: int) -> Accumulator:
    """The accumulator ``kind`` for ``count`` microbatches."""
    if kind is AccumulationType.SUM:
        return _per_leaf(
            owner,
            "SUM",
            _zeros,
            lambda carry, value, _: carry + value,
            lambda carry: carry,
            lambda values: jnp.sum(values, axis=0),
        )
    if kind is AccumulationType.MEAN:
        return _per_leaf(
            owner,
            "MEAN",
            _zeros,
            lambda carry, value, _: carry + value,
            lambda carry: carry / count,
            lambda values: jnp.mean(values, axis=0),
        )
    if kind is AccumulationType.RUNNING_MEAN:

        def running(carry, value, index):
            # the mean of the first index + 1 results, updated without forming their sum
            return carry + (value - carry) / (index + 1).astype(carry.dtype)

        return _per_leaf(
            owner,
            "RUNNING_MEAN",
            _zeros,
            running,
            lambda carry: carry,
            lambda values: jnp.mean(values, axis=0),
        )

    def init(shape):
        return jnp.broadcast_to(_zeros(shape), (count, *shape.shape))

    def finalize(carry):
        # (count, rows, ...) back to the batch's row order: row r of microbatch i is row
        # i + r * count of the batch (the inverse of the split)
        return _reshaped(carry, (-1, *carry.shape[2:]), _merged_spec)

    return _per_leaf(
        owner,
        "CONCAT",
        init,
        lambda carry, value, index: carry.at[index].set(value),
        finalize,
        lambda values: values,
    )


def _accumulator(owner: str, accumulator: Any) -> PyTree:
    """``accumulator`` checked: a tree of :class:`Accumulator` and :class:`AccumulationType`."""
    leaves = jax.tree.leaves(accumulator)
    if not leaves:
        raise TypeError(
            f"{owner}: accumulator must be an Accumulator, an AccumulationType or a tree of "
            f"them, got {accumulator!r}"
        )
    for leaf in leaves:
        if not isinstance(leaf, (Accumulator, AccumulationType)):
            raise TypeError(
                f"{owner}: accumulator must be an Accumulator, an AccumulationType or a tree of "
                f"them, got {leaf!r} in it"
            )
    return accumulator


def _combined(owner: str, accumulators: PyTree, count: int) -> Accumulator:
    """One accumulator from a tree of them (a prefix of the results' tree)."""
    tree = jax.tree.map(
        lambda a: a if isinstance(a, Accumulator) else _built_in(owner, a, count), accumulators
    )

    def over(method):
        return lambda first, *rest: jax.tree.map(
            lambda acc, *xs: getattr(acc, method)(*xs), tree, first, *rest
        )

    init, finalize, aggregate = over("init"), over("finalize"), over("aggregate")

    def update(carry, value, index):
        return jax.tree.map(lambda acc, c, v: acc.update(c, v, index), tree, carry, value)

    return Accumulator(init, update, finalize, aggregate)


# ---- splitting the batch -------------------------------------------------------------------


def _explicit_sharding(x: jax.Array):
    """``x``'s NamedSharding on a mesh whose axes are all explicit, or None."""
    typeof = getattr(jax, "typeof", None)
    sharding = getattr(typeof(x), "sharding", None) if typeof is not None else None
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or not mesh.axis_names or not mesh.are_all_axes_explicit:
        return None
    return sharding


def _split_spec(spec: tuple, axis: int) -> tuple:
    return (*spec[:axis], None, spec[axis], *spec[axis + 1 :])


def _merged_spec(spec: tuple, axis: int) -> tuple:
    del axis
    return spec[1:]


def _reshaped(x: jax.Array, shape: tuple, spec_of, axis: int = 0) -> jax.Array:
    """``x.reshape(shape, order="F")``, its sharding carried over on a mesh of explicit axes."""
    sharding = _explicit_sharding(x)
    if sharding is None:
        return jnp.reshape(x, shape, order="F")
    spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
    out = jax.sharding.NamedSharding(
        sharding.mesh, jax.sharding.PartitionSpec(*spec_of(spec, axis))
    )
    return jnp.reshape(x, shape, order="F", out_sharding=out)


def reshape_batch_axis(tree: PyTree, microbatch_size: int, axis: int = 0) -> PyTree:
    r"""Splits the batch axis of every leaf into ``(num_microbatches, microbatch_size)``.

    Column-major: for a batch axis of :math:`N m` rows, entry ``[i, r]`` of the two new axes is
    row :math:`i + r N`, so microbatch ``i`` (``take(i, axis)``) is every :math:`N`-th row from
    row ``i``. A batch axis sharded over a mesh of explicit axes keeps its sharding on the new
    ``microbatch_size`` axis; the ``num_microbatches`` axis is replicated.

    Args:
      tree: a pytree of arrays, each with the batch axis.
      microbatch_size: the rows per microbatch :math:`m`, >= 1; it divides each batch axis.
      axis: the batch axis (negative counts from the end).

    Returns:
      The tree with each leaf's batch axis replaced by the two axes.

    Raises:
      ValueError: for a batch axis that ``microbatch_size`` does not divide, or that a leaf
        does not have.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.microbatching.reshape_batch_axis(jnp.arange(6), 3)
      Array([[0, 2, 4],
             [1, 3, 5]], dtype=int32)
    """
    owner = "reshape_batch_axis"
    microbatch_size = _size(owner, microbatch_size)
    axis = _int(owner, "axis", axis)
    return _split(owner, tree, microbatch_size, axis, "tree")


def _split(owner: str, tree: PyTree, size: int, axis: int, name: str) -> PyTree:
    def one(path, x):
        x = jnp.asarray(x)
        where = f"{name}/{_tree.path_str(path)}" if path else name
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(
                f"{owner}: {where} has no axis {axis} to split (its shape is {x.shape})"
            )
        at = axis % x.ndim
        rows = x.shape[at]
        if rows % size:
            raise ValueError(
                f"{owner}: the batch axis of {where} ({rows} rows) must be divisible by "
                f"microbatch_size={size}"
            )
        sharding = _explicit_sharding(x)
        if sharding is not None:
            shards = rows // sharding.shard_shape(x.shape)[at]
            if size % shards:
                raise ValueError(
                    f"{owner}: microbatch_size={size} must be a multiple of the {shards} shards "
                    f"of the batch axis of {where}"
                )
        return _reshaped(x, (*x.shape[:at], -1, size, *x.shape[at + 1 :]), _split_spec, at)

    return jax.tree_util.tree_map_with_path(one, tree)


def _int(owner: str, name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    return int(value)


def _size(owner: str, value: Any) -> int:
    value = _int(owner, "microbatch_size", value)
    if value < 1:
        raise ValueError(f"{owner}: microbatch_size must be >= 1 (or None), got {value!r}")
    return value
