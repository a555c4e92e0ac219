"""Microbatching: a function of a batch evaluated one slice of the batch at a time.

optax's ``optax.microbatching`` (``microbatch``, ``micro_vmap``, ``micro_grad``,
``reshape_batch_axis``, ``Accumulator``, ``AccumulationType``), written for gradtx. A batch too
large for device memory is split into microbatches, which a ``lax.fori_loop`` evaluates in turn;
an accumulator (a sum, a mean, a concatenation, or one of your own) combines their results. Where
:class:`gradtx.MultiSteps` accumulates gradients across optimizer steps, these accumulate within
one step, before the optimizer sees the gradient. The accumulators and the split of the batch
axis are in :mod:`gradtx._wrappers.microbatch_parts`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import PyTree
from gradtx._core.checks import check_flag
from gradtx._wrappers.microbatch_parts import (
    AccumulationType,
    _accumulator,
    _combined,
    _int,
    _size,
    _split,
)

Function = Callable[..., Any]


class IndividualOutputs(NamedTuple):
    """The per-example outputs of a :func:`micro_grad` function (optax's ``Aux``)."""

    values: Any  # fun's value for each example, stacked on axis 0
    metrics: Any  # metrics_fn of each example's gradient, stacked on axis 0
    aux: Any  # fun's auxiliary output for each example (None without has_aux)


# ---- argument checks -----------------------------------------------------------------------


def _ints(owner: str, name: str, value: Any) -> tuple[int, ...]:
    """An int or a sequence of ints, as a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{owner}: {name} must be an int or a sequence of ints, got {value!r}")
    return tuple(_int(owner, f"{name}[{i}]", v) for i, v in enumerate(value))


def _names(owner: str, name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{owner}: {name} must be a str or a sequence of str, got {value!r}")
    return tuple(value)


def _function(owner: str, name: str, value: Any) -> Function:
    if not callable(value):
        raise TypeError(f"{owner}: {name} must be a function, got {value!r}")
    return value


def _real_count(owner: str, value: Any) -> Any:
    """``num_real_microbatches``: None, an int >= 0, or an integer array (traced or not)."""
    if value is None or isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        if np.ndim(value) != 0 or not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(
                f"{owner}: num_real_microbatches must be an int or a scalar integer array, "
                f"got {value!r}"
            )
        value = int(value)
    value = _int(owner, "num_real_microbatches", value)
    if value < 0:
        raise ValueError(f"{owner}: num_real_microbatches must be >= 0, got {value!r}")
    return value


# ---- the transformations -------------------------------------------------------------------


def microbatch(
    fun: Function,
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: Any = AccumulationType.SUM,
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches: int | jax.Array | None = None,
) -> Function:
    r"""``fun`` evaluated on microbatches of its batch arguments in turn, the results accumulated.

    The batch arguments (the positional ones in ``argnums`` and the keyword ones in
    ``argnames``) are split on their batch axes as :func:`reshape_batch_axis` splits them, into
    :math:`N = B / m` microbatches; a ``lax.fori_loop`` calls ``fun`` on each with the other
    arguments as given, and the accumulator combines the results. With ``SUM`` (the default)
    the result is :math:`\sum_i f(x_i)`, equal to ``fun`` on the whole batch when ``fun`` sums
    over the batch; ``MEAN`` fits a ``fun`` that averages, and ``CONCAT`` one that returns a row
    per example. Peak memory is that of one microbatch.

    Args:
      fun: any function of arrays.
      argnums: the positions of the batch arguments (an int or a sequence of ints).
      microbatch_size: the rows :math:`m` of each microbatch (>= 1, dividing the batch size),
        or None to return ``fun`` itself.
      accumulator: an :class:`AccumulationType`, an :class:`Accumulator`, or a tree of them
        that is a prefix of ``fun``'s result (one per part of it).
      argnames: the names of the keyword batch arguments (a str or a sequence of str).
      in_axes: the batch axis of each batch argument (``argnums`` first, then ``argnames``),
        or one int for all.
      num_real_microbatches: stop after this many microbatches (an int, or an integer array,
        traced or not, to vary it without compiling again); None runs all of them.

    Returns:
      A function taking ``fun``'s arguments. It raises ValueError when the batch arguments'
      batch axes differ in size or ``microbatch_size`` does not divide them.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fun = lambda x: (x + 1, jnp.sum(3 * x))
      >>> accumulator = (gradtx.microbatching.AccumulationType.CONCAT,
      ...                gradtx.microbatching.AccumulationType.SUM)
      >>> gradtx.microbatch(fun, 0, 2, accumulator)(jnp.array([1, 2, 3, 4]))
      (Array([2, 3, 4, 5], dtype=int32), Array(30, dtype=int32))
    """
    return _microbatch(
        "microbatch",
        fun,
        argnums,
        microbatch_size,
        accumulator,
        argnames=argnames,
        in_axes=in_axes,
        num_real_microbatches=num_real_microbatches,
    )


def _microbatch(
    owner, fun, argnums, microbatch_size, accumulator, *, argnames, in_axes, num_real_microbatches
):
    fun = _function(owner, "fun", fun)
    argnums = _ints(owner, "argnums", argnums)
    argnames = _names(owner, "argnames", argnames)
    accumulator = _accumulator(owner, accumulator)
    count = len(argnums) + len(argnames)
    if isinstance(in_axes, numbers.Integral) and not isinstance(in_axes, bool):
        in_axes = (int(in_axes),) * count
    else:
        in_axes = _ints(owner, "in_axes", in_axes)
        if len(in_axes) != count:
            raise ValueError(
                f"{owner}: in_axes must have one axis per batch argument (argnums, then "
                f"argnames: {count}), got {len(in_axes)}"
            )
    real = _real_count(owner, num_real_microbatches)
    if microbatch_size is None:
        return fun
    size = _size(owner, microbatch_size)

    def microbatched(*args, **kwargs):
        args, kwargs = list(args), dict(kwargs)
        batch = []  # (where the argument is, its name in errors, its batch axis)
        for i, axis in zip(argnums, in_axes):
            if not -len(args) <= i < len(args):
                raise ValueError(f"{owner}: argnums has {i}, but only {len(args)} were given")
            batch.append((args, i % len(args), f"argument {i % len(args)}", axis))
        for name, axis in zip(argnames, in_axes[len(argnums) :]):
            if name not in kwargs:
                raise ValueError(f"{owner}: argnames has {name!r}, not given as a keyword")
            batch.append((kwargs, name, f"argument {name!r}", axis))
        rows = {}
        for where, key, name, axis in batch:
            for path, x in jax.tree_util.tree_flatten_with_path(where[key])[0]:
                leaf = f"{name} at {_tree.path_str(path)!r}" if path else name
                shape = np.shape(x)
                if not -len(shape) <= axis < len(shape):
                    raise ValueError(f"{owner}: {leaf} has no batch axis {axis}: shape {shape}")
                rows[leaf] = shape[axis]
        if len(set(rows.values())) > 1:
            raise ValueError(
                f"{owner}: the batch arguments' batch axes must have one size, got {rows}"
            )
        total = next(iter(rows.values()), size)
        if total % size:
            raise ValueError(
                f"{owner}: the batch size {total} must be divisible by microbatch_size={size}"
            )
        n = total // size
        if isinstance(real, int) and real > n:
            raise ValueError(
                f"{owner}: num_real_microbatches={real} is more than the {n} microbatches"
            )
        for where, key, name, axis in batch:
            where[key] = _split(owner, where[key], size, axis, name)
        combined = _combined(owner, accumulator, n)

        def one(index):
            a, kw = list(args), dict(kwargs)
            for where, key, _, axis in batch:
                part = (a if where is args else kw)[key]
                # the leaf has the split's extra axis: its batch axis counts from the original rank
                taken = jax.tree.map(
                    lambda x, ax=axis: jax.lax.dynamic_index_in_dim(
                        x, index, ax % (x.ndim - 1), keepdims=False
                    ),
                    part,
                )
                (a if where is args else kw)[key] = taken
            return fun(*a, **kw)

        def body(index, carry):
            return combined.update(carry, one(index), index)

        carry = combined.init(jax.eval_shape(one, 0))
        carry = jax.lax.fori_loop(0, n if real is None else real, body, carry)
        return combined.finalize(carry)

    return microbatched


def micro_vmap(
    fun: Function,
    in_axes: int | Sequence[int | None] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable[..., Function] = jax.vmap,
    accumulator: Any = AccumulationType.CONCAT,
    num_real_microbatches: int | jax.Array | None = None,
) -> Function:
    r"""``jax.vmap`` of ``fun``, evaluated one microbatch of rows at a time.

    Each microbatch of rows is mapped with ``vmap_fn(fun, in_axes, 0)`` and reduced over its
    rows by the accumulator's ``aggregate``; the microbatches' results are then accumulated as
    in :func:`microbatch`. With ``CONCAT`` (the default) the result is ``jax.vmap(fun,
    in_axes)``'s, each row in its place; ``SUM`` and ``MEAN`` reduce over the rows without
    ever holding the mapped output of the whole batch. Keyword arguments are mapped over their
    axis 0, as ``jax.vmap`` maps them.

    Args:
      fun: the function to map.
      in_axes: the mapped axis of each positional argument (None: not mapped), or one int for
        all of them (``jax.vmap``'s meaning; optax's maps only the first argument then).
      out_axes: must be 0.
      microbatch_size: the rows per microbatch, or None for one ``vmap`` of the whole batch.
      vmap_fn: a function with ``jax.vmap``'s signature (to pass it more options, say).
      accumulator: as in :func:`microbatch`, a prefix of ``fun``'s result.
      num_real_microbatches: as in :func:`microbatch`.

    Returns:
      A function taking ``fun``'s arguments with the mapped axes added.

    Raises:
      NotImplementedError: for ``out_axes`` other than 0.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.microbatching.micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(6))
      Array([ 0,  1,  4,  9, 16, 25], dtype=int32)
    """
    owner = "micro_vmap"
    fun = _function(owner, "fun", fun)
    vmap_fn = _function(owner, "vmap_fn", vmap_fn)
    if not (isinstance(out_axes, numbers.Integral) and out_axes == 0):
        raise NotImplementedError(f"{owner}: out_axes must be 0, got {out_axes!r}")
    axes = _axes(owner, in_axes)
    accumulator = _accumulator(owner, accumulator)
    if microbatch_size is not None:
        _size(owner, microbatch_size)
    _real_count(owner, num_real_microbatches)

    def mapped(*args, **kwargs):
        each = (axes,) * len(args) if isinstance(axes, int) else axes
        if len(each) != len(args):
            raise ValueError(
                f"{owner}: in_axes has {len(each)} axes for {len(args)} positional arguments"
            )

        def reduced(*args, kwargs):
            out = vmap_fn(fun, each, 0)(*args, **kwargs)
            rows = jax.tree.leaves(out)[0].shape[0] if jax.tree.leaves(out) else 1
            return _combined(owner, accumulator, rows).aggregate(out)

        batched = tuple(i for i, axis in enumerate(each) if axis is not None)
        return _microbatch(
            owner,
            reduced,
            batched,
            microbatch_size,
            accumulator,
            argnames=("kwargs",),
            in_axes=tuple(each[i] for i in batched) + (0,),
            num_real_microbatches=num_real_microbatches,
        )(*args, kwargs=kwargs)

    return mapped


def _axes(owner: str, in_axes: Any) -> int | tuple[int | None, ...]:
    if isinstance(in_axes, numbers.Integral) and not isinstance(in_axes, bool):
        return int(in_axes)
    if isinstance(in_axes, (str, bytes)) or not isinstance(in_axes, Sequence):
        raise TypeError(
            f"{owner}: in_axes must be an int, None or a sequence of them, got {in_axes!r}"
        )
    return tuple(
        None if a is None else _int(owner, f"in_axes[{i}]", a) for i, a in enumerate(in_axes)
    )


def micro_grad(
    fun: Function,
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: Any = AccumulationType.SUM,
    transform_fn: Callable[[PyTree], PyTree] = lambda grad: grad,
    metrics_fn: Callable[[PyTree], PyTree] = lambda grad: None,
    num_real_microbatches: int | jax.Array | None = None,
) -> Function:
    r"""Per-example gradients of ``fun``, transformed and accumulated, one microbatch at a time.

    For each example :math:`j` of the batch arguments, :math:`g_j = \nabla f(\theta; x_j)`
    (``jax.value_and_grad`` with respect to ``argnums``); the result is the accumulation of
    ``transform_fn(g_j)`` over the examples (a sum by default), computed by
    :func:`micro_vmap` in microbatches. Per-example clipping (as in DP-SGD) or per-example
    statistics of the gradient are a ``transform_fn``.

    Args:
      fun: the loss, a scalar function (returning ``(loss, aux)`` with ``has_aux``).
      has_aux: whether ``fun`` returns ``(loss, aux)``.
      argnums: the arguments to differentiate with respect to.
      batch_argnums: the arguments with a batch axis (axis 0); the others are shared.
      keep_batch_dim: give ``fun`` each example with a batch axis of size 1 (True), or without
        it (False).
      microbatch_size: the examples per microbatch, or None for all at once.
      accumulator: how the transformed gradients combine (a prefix of ``transform_fn``'s
        result).
      transform_fn: applied to each example's gradient before accumulating.
      metrics_fn: applied to each example's gradient; returned per example.
      num_real_microbatches: as in :func:`microbatch`.

    Returns:
      A function of ``fun``'s arguments returning ``(accumulated, aux)``, where ``aux`` is
      :class:`IndividualOutputs` ``(values, metrics, aux)``: ``fun``'s value, ``metrics_fn``'s
      result and ``fun``'s aux for each example, stacked on axis 0.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
      >>> fn = gradtx.microbatching.micro_grad(
      ...     loss, batch_argnums=(1, 2), microbatch_size=2, metrics_fn=jnp.linalg.norm)
      >>> grad, aux = fn(jnp.zeros(1), jnp.ones((4, 1)), jnp.array([0.0, 1.0, 2.0, 3.0]))
      >>> grad, aux.metrics  # the sum of the per-example gradients, and their norms
      (Array([-6.], dtype=float32), Array([0., 1., 2., 3.], dtype=float32))
    """
    owner = "micro_grad"
    fun = _function(owner, "fun", fun)
    has_aux = check_flag(owner, "has_aux", has_aux)
    _ints(owner, "argnums", argnums)
    batch_argnums = _ints(owner, "batch_argnums", batch_argnums)
    if not batch_argnums:
        raise ValueError(f"{owner}: batch_argnums must name at least one argument")
    keep_batch_dim = check_flag(owner, "keep_batch_dim", keep_batch_dim)
    transform_fn = _function(owner, "transform_fn", transform_fn)
    metrics_fn = _function(owner, "metrics_fn", metrics_fn)
    value_and_grad = jax.value_and_grad(
        fun if has_aux else lambda *a, **k: (fun(*a, **k), None), argnums, has_aux=True
    )

    def per_example(*args, **kwargs):
        (value, aux), grad = value_and_grad(*args, **kwargs)
        return transform_fn(grad), IndividualOutputs(value, metrics_fn(grad), aux)

    def computed(*args, **kwargs):
        batch = {i % len(args) for i in batch_argnums if -len(args) <= i < len(args)}
        if len(batch) != len(batch_argnums):
            raise ValueError(
                f"{owner}: batch_argnums {batch_argnums} name arguments not given "
                f"({len(args)} positional arguments)"
            )
        if keep_batch_dim:  # each example a batch of one
            args = tuple(
                jax.tree.map(lambda x: jnp.expand_dims(x, 1), a) if i in batch else a
                for i, a in enumerate(args)
            )
        return micro_vmap(
            per_example,
            in_axes=tuple(0 if i in batch else None for i in range(len(args))),
            accumulator=(accumulator, AccumulationType.CONCAT),
            microbatch_size=microbatch_size,
            num_real_microbatches=num_real_microbatches,
        )(*args, **kwargs)

    _accumulator(owner, accumulator)
    if microbatch_size is not None:
        _size(owner, microbatch_size)
    _real_count(owner, num_real_microbatches)
    return computed
