"""Any leaf as a batch of matrices: which axes are the rows, which the columns, which a batch.

A weight used as ``x @ W`` has its rows on the reduction (input) axis and its columns on the
output axis. Stacked layers (``nnx.scan``'s leading layer axis), attention kernels of shape
(d_model, heads, head_dim) and convolution kernels (h, w, in, out) are matrices once their axes
are named: :class:`MatrixDimensionNumbers` names them, every axis it does not name is a batch
axis, and :func:`as_matrices` gives the (batch, rows, columns) array and the function that
undoes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np


class MatrixDimensionNumbers(NamedTuple):
    """Which axes of a leaf are its matrix's rows and columns; every other axis is a batch.

    Attributes:
      reduction_axis: the axis or axes whose sizes multiply into the rows (a weight's input
        axes, the ones ``x @ W`` sums over). Negative axes count from the end. Default 0.
      output_axis: the axis or axes whose sizes multiply into the columns. Default 1.

    The same fields as optax.contrib's ``MuonDimensionNumbers`` (an alias of this class):
    ``MatrixDimensionNumbers(reduction_axis=(0, 1), output_axis=2)`` views an attention kernel
    (d_model, heads, head_dim) as one d_model·heads × head_dim matrix, and
    ``MatrixDimensionNumbers(-2, -1)`` a stack of layers (layers, d_in, d_out) as ``layers``
    matrices.
    """

    reduction_axis: int | Sequence[int] = 0
    output_axis: int | Sequence[int] = 1


MuonDimensionNumbers = MatrixDimensionNumbers


def _axes(owner: str, name: str, value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        axes = (value,)
    elif isinstance(value, (tuple, list)):
        axes = tuple(value)
    else:
        raise TypeError(f"{owner}: {name} must be an int or a sequence of ints, got {value!r}")
    out = []
    for axis in axes:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{owner}: {name} must be ints, got {value!r}")
        if not -ndim <= axis < ndim:
            raise ValueError(f"{owner}: {name} {axis} is out of range for a leaf of rank {ndim}")
        out.append(int(axis) % ndim)
    if not out:
        raise ValueError(f"{owner}: {name} must name at least one axis, got {value!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{owner}: {name} names an axis twice: {value!r}")
    return tuple(out)


def matrix_axes(
    shape: Sequence[int],
    dimension_numbers: MatrixDimensionNumbers | None = None,
    owner: str = "as_matrices",
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The (batch, row, column) axes of a leaf of ``shape``, each in increasing order of the
    leaf's axes (the row and column axes in the order the dimension numbers give them)."""
    ndim = len(shape)
    if dimension_numbers is None:
        if ndim != 2:
            raise ValueError(
                f"{owner}: a leaf of rank {ndim} (shape {tuple(shape)}) needs dimension_numbers "
                f"(MatrixDimensionNumbers) to be viewed as matrices; only rank 2 has a default"
            )
        dimension_numbers = MatrixDimensionNumbers()
    if not isinstance(dimension_numbers, MatrixDimensionNumbers):
        raise TypeError(
            f"{owner}: dimension_numbers must be a MatrixDimensionNumbers or None, "
            f"got {dimension_numbers!r}"
        )
    rows = _axes(owner, "reduction_axis", dimension_numbers.reduction_axis, ndim)
    cols = _axes(owner, "output_axis", dimension_numbers.output_axis, ndim)
    if set(rows) & set(cols):
        raise ValueError(
            f"{owner}: reduction_axis {rows} and output_axis {cols} must not share an axis"
        )
    batch = tuple(a for a in range(ndim) if a not in rows and a not in cols)
    return batch, rows, cols


def matrix_shape(
    shape: Sequence[int], dimension_numbers: MatrixDimensionNumbers | None = None
) -> tuple[int, int, int]:
    """``(batch, rows, columns)`` of the matrices a leaf of ``shape`` is viewed as.

    Args:
      shape: the leaf's shape.
      dimension_numbers: which axes are rows and columns (None: a rank-2 leaf's own).

    Returns:
      The number of matrices and each one's rows and columns: products of the sizes of the
      batch, reduction and output axes.

    Example:
      >>> import gradtx
      >>> gradtx.matrix_shape((4, 8, 16), gradtx.MatrixDimensionNumbers((0, 1), 2))
      (1, 32, 16)
    """
    batch, rows, cols = matrix_axes(shape, dimension_numbers, "matrix_shape")
    size = lambda axes: math.prod(shape[a] for a in axes)  # noqa: E731
    return size(batch), size(rows), size(cols)


def as_matrices(
    x: jax.Array, dimension_numbers: MatrixDimensionNumbers | None = None
) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """``x`` as a batch of matrices, and the function that turns such a batch back into ``x``'s
    layout.

    Args:
      x: an array of rank >= 2.
      dimension_numbers: which axes are the rows (``reduction_axis``) and the columns
        (``output_axis``); the others are batch axes. None: ``x`` is one matrix (rank 2 only).

    Returns:
      ``(matrices, restore)``: ``matrices`` has shape (batch, rows, columns), the batch axes
      moved to the front and flattened, as are the row axes and the column axes; ``restore``
      maps an array of that shape back to ``x``'s shape and axis order.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> stack = jnp.arange(24.0).reshape(2, 3, 4)  # two layers of 3x4 weights
      >>> m, restore = gradtx.as_matrices(stack, gradtx.MatrixDimensionNumbers(1, 2))
      >>> m.shape, bool((restore(m) == stack).all())
      ((2, 3, 4), True)
    """
    shape = tuple(np.shape(x))
    batch, rows, cols = matrix_axes(shape, dimension_numbers)
    order = batch + rows + cols
    moved_shape = tuple(shape[a] for a in order)
    inverse = tuple(int(i) for i in np.argsort(order))
    flat = matrix_shape(shape, dimension_numbers)

    explicit = _explicit_sharding(x)
    if explicit is None:

        def restore(m: jax.Array) -> jax.Array:
            return m.reshape(moved_shape).transpose(inverse)

        return x.transpose(order).reshape(flat), restore

    # Explicit sharding: a reshape that merges a sharded axis has no sharding of its own; the
    # matrices are gathered (replicated) and the result resharded as ``x`` was.
    replicated = jax.sharding.PartitionSpec()

    def restore_explicit(m: jax.Array) -> jax.Array:
        out = jax.lax.reshape(m, moved_shape, out_sharding=replicated).transpose(inverse)
        return jax.sharding.reshard(out, explicit)

    moved = jax.sharding.reshard(x.transpose(order), replicated)
    return jax.lax.reshape(moved, flat, out_sharding=replicated), restore_explicit


def _explicit_sharding(x: Any) -> Any:
    """The PartitionSpec of ``x`` if it is sharded over explicit mesh axes, else None."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    spec, mesh = getattr(sharding, "spec", None), getattr(sharding, "mesh", None)
    if spec is None or mesh is None or not any(p is not None for p in spec):
        return None
    explicit = jax.sharding.AxisType.Explicit
    return spec if any(t == explicit for t in getattr(mesh, "axis_types", ())) else None


def _is_spec(x: Any) -> bool:
    return x is None or isinstance(x, MatrixDimensionNumbers)


def leaf_dimension_numbers(owner: str, name: str, spec: Any, tree: Any) -> list[Any]:
    """The dimension numbers of each leaf of ``tree`` (``jax.tree.leaves`` order), from
    ``spec``: None or one :class:`MatrixDimensionNumbers` for every leaf, a tree of them (None
    where a leaf has none) with ``tree``'s structure, or a function of ``tree`` returning
    either."""
    if callable(spec) and not _is_spec(spec):
        spec = spec(tree)
    count = len(jax.tree.leaves(tree))
    if _is_spec(spec):
        return [spec] * count
    flat, treedef = jax.tree.flatten(tree, is_leaf=lambda x: x is None)
    try:
        specs = treedef.flatten_up_to(spec)
    except (ValueError, TypeError):
        raise ValueError(
            f"{owner}: {name} must be None, a MatrixDimensionNumbers, a tree of them (None for a "
            f"leaf that has none) with the params' structure, or a function of the params "
            f"returning one; got {jax.tree.structure(spec, is_leaf=_is_spec)} for params "
            f"{jax.tree.structure(tree)}"
        ) from None
    for s in specs:
        if not _is_spec(s):
            raise TypeError(f"{owner}: {name} must hold MatrixDimensionNumbers or None, got {s!r}")
    return [s for x, s in zip(flat, specs) if x is not None]
