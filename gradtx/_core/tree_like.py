"""New trees like a given one: filled, broadcast, cast or drawn at random; a tree's dtype.

optax's ``tree_zeros_like``, ``tree_ones_like``, ``tree_full_like``, ``tree_batch_shape``,
``tree_cast``, ``tree_cast_like``, ``tree_dtype``, ``tree_split_key_like``, ``tree_random_like``
and ``tree_unwrap_random_key_data``, with optax's signatures and results, re-exported by
:mod:`gradtx.tree_utils` and :mod:`gradtx.tree`. Bad arguments and trees that do not match
raise errors naming the function and the argument or path.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import PyTree
from gradtx._core.tree_math import _map, _standard


def _check_dtype(owner: str, dtype: Any) -> None:
    if dtype is not None:
        try:
            jnp.dtype(dtype)
        except TypeError:
            raise TypeError(f"{owner}: dtype must be None or a dtype, got {dtype!r}") from None


def _astype(x: Any, dtype: Any) -> Any:
    return x.astype(dtype) if hasattr(x, "astype") else jnp.asarray(x).astype(dtype)


# ---- filled and broadcast ----------------------------------------------------------------------


def tree_zeros_like(tree: PyTree, dtype: jax.typing.DTypeLike | None = None) -> PyTree:
    """Zeros shaped (and sharded) like each leaf.

    Args:
      tree: the tree.
      dtype: the dtype of every new leaf; None: each leaf's own.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_zeros_like({"a": jnp.ones(2)}, dtype=jnp.int32)
      {'a': Array([0, 0], dtype=int32)}
    """
    _check_dtype("tree_zeros_like", dtype)
    return _map("tree_zeros_like", lambda x: jnp.zeros_like(x, dtype), tree, names=("tree",))


def tree_ones_like(tree: PyTree, dtype: jax.typing.DTypeLike | None = None) -> PyTree:
    """Ones shaped (and sharded) like each leaf.

    Args:
      tree: the tree.
      dtype: the dtype of every new leaf; None: each leaf's own.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_ones_like({"a": jnp.zeros(2)})
      {'a': Array([1., 1.], dtype=float32)}
    """
    _check_dtype("tree_ones_like", dtype)
    return _map("tree_ones_like", lambda x: jnp.ones_like(x, dtype), tree, names=("tree",))


def tree_full_like(
    tree: PyTree, fill_value: jax.typing.ArrayLike, dtype: jax.typing.DTypeLike | None = None
) -> PyTree:
    """``fill_value`` shaped (and sharded) like each leaf.

    Args:
      tree: the tree.
      fill_value: the value of every element.
      dtype: the dtype of every new leaf; None: each leaf's own.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_full_like({"a": jnp.zeros(2)}, 7.0)
      {'a': Array([7., 7.], dtype=float32)}
    """
    _check_dtype("tree_full_like", dtype)
    fill = lambda x: jnp.full_like(x, fill_value, dtype)  # noqa: E731
    return _map("tree_full_like", fill, tree, names=("tree",))


def tree_batch_shape(tree: PyTree, shape: tuple[int, ...] = ()) -> PyTree:
    """Every leaf broadcast to leading batch dimensions ``shape``.

    Args:
      tree: the tree.
      shape: the batch dimensions put in front of each leaf's shape.

    Returns:
      A tree of ``tree``'s structure, leaves of shape ``(*shape, *leaf.shape)``.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_batch_shape({"a": jnp.ones(2)}, (3,))["a"].shape
      (3, 2)
    """
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"tree_batch_shape: shape must be a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"tree_batch_shape: shape must not be negative, got {shape}")
    batch = lambda x: jnp.broadcast_to(x, (*shape, *np.shape(x)))  # noqa: E731
    return _map("tree_batch_shape", batch, tree, names=("tree",))


# ---- dtypes -------------------------------------------------------------------------------------


def tree_cast(tree: PyTree, dtype: jax.typing.DTypeLike | None) -> PyTree:
    """Every leaf cast to ``dtype``; the tree itself if ``dtype`` is None.

    Args:
      tree: the tree.
      dtype: the dtype, or None to leave the tree as it is.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_cast({"a": jnp.array([1.7])}, jnp.int32)
      {'a': Array([1], dtype=int32)}
    """
    if dtype is None:
        return tree
    _check_dtype("tree_cast", dtype)
    return _map("tree_cast", lambda x: _astype(x, dtype), tree, names=("tree",))


def tree_cast_like(tree: PyTree, other_tree: PyTree) -> PyTree:
    """Every leaf cast to the dtype of ``other_tree``'s leaf (kept where that has none).

    Args:
      tree: the tree to cast.
      other_tree: a tree of the same structure whose leaves' dtypes are taken.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_cast_like({"a": jnp.array(2.0)}, {"a": jnp.array(1, jnp.bfloat16)})
      {'a': Array(2, dtype=bfloat16)}
    """
    fn = lambda x, o: _astype(x, o.dtype) if hasattr(o, "dtype") else x  # noqa: E731
    return _map("tree_cast_like", fn, tree, other_tree, names=("tree", "other_tree"))


def _order(owner: str, a: Any, b: Any, highest: bool) -> Any:
    with _standard():  # JAX's promotion table, whatever promotion the caller set
        joined = jnp.promote_types(a, b)
    if joined not in (a, b):
        raise ValueError(
            f"{owner}: neither {a} nor {b} promotes to the other, so the leaves have no "
            f"{'highest' if highest else 'lowest'} dtype; use mixed_dtype_handler='promote'"
        )
    return joined if highest else (b if joined == a else a)


def tree_dtype(tree: PyTree, mixed_dtype_handler: str | None = None) -> jax.typing.DTypeLike:
    """The dtype of the tree's leaves (JAX's default float dtype for an empty tree).

    Args:
      tree: the tree.
      mixed_dtype_handler: what to do with several dtypes: None (an error), ``'promote'``
        (their promoted dtype), ``'highest'`` or ``'lowest'`` (the one all others promote
        to, or that promotes to all others; an error if there is none).

    Returns:
      A NumPy dtype.

    Raises:
      ValueError: for leaves of several dtypes (without a handler), dtypes that have no
        highest or lowest one, or an unknown handler.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tree = {"a": jnp.ones(1, jnp.bfloat16), "b": jnp.ones(1)}
      >>> tu.tree_dtype(tree, "lowest"), tu.tree_dtype(tree, "highest")
      (dtype(bfloat16), dtype('float32'))
    """
    owner = "tree_dtype"
    if mixed_dtype_handler not in (None, "promote", "highest", "lowest"):
        raise ValueError(
            f"{owner}: mixed_dtype_handler must be None, 'promote', 'highest' or 'lowest', got "
            f"{mixed_dtype_handler!r}"
        )
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    dtypes = [x.dtype if isinstance(x, jax.Array) else jnp.asarray(x).dtype for _, x in paths]
    if not dtypes:
        return jnp.asarray([]).dtype
    if mixed_dtype_handler is None:
        odd = [(_tree.path_str(p), d) for (p, _), d in zip(paths, dtypes) if d != dtypes[0]]
        if odd:
            shown = ", ".join(f"{p!r} is {d.name}" for p, d in odd[:5])
            raise ValueError(
                f"{owner}: the leaves' dtypes differ: the first is {dtypes[0].name}, {shown}; "
                f"pass mixed_dtype_handler='promote', 'highest' or 'lowest'"
            )
        return dtypes[0]
    if mixed_dtype_handler == "promote":
        with _standard():
            return functools.reduce(jnp.promote_types, dtypes)
    highest = mixed_dtype_handler == "highest"
    return functools.reduce(lambda a, b: _order(owner, a, b, highest), dtypes)


# ---- random trees -------------------------------------------------------------------------------


def tree_split_key_like(rng_key: jax.Array, target_tree: PyTree) -> PyTree:
    """``rng_key`` split into one key per leaf of ``target_tree``, in a tree of its structure.

    Args:
      rng_key: a PRNG key (typed, or raw ``uint32``).
      target_tree: the tree whose structure the keys take.

    Returns:
      A tree of keys: leaf ``i`` is ``jax.random.split(rng_key, n)[i]``.

    Example:
      >>> import gradtx.tree_utils as tu, jax
      >>> keys = tu.tree_split_key_like(jax.random.key(0), {"a": 1.0, "b": (2.0, 3.0)})
      >>> jax.tree.structure(keys)
      PyTreeDef({'a': *, 'b': (*, *)})
    """
    treedef = jax.tree.structure(target_tree)
    try:
        keys = jax.random.split(rng_key, treedef.num_leaves)
    except (TypeError, ValueError) as err:
        raise type(err)(f"tree_split_key_like: rng_key: {err}") from None
    return jax.tree.unflatten(treedef, [keys[i] for i in range(treedef.num_leaves)])


def _takes_sharding(sampler: Callable) -> bool:
    try:
        return "out_sharding" in inspect.signature(sampler).parameters
    except (TypeError, ValueError):
        return False


def tree_random_like(
    rng_key: jax.Array,
    target_tree: PyTree,
    sampler: Callable = jax.random.normal,
    dtype: jax.typing.DTypeLike | None = None,
) -> PyTree:
    """Random arrays shaped (and sharded) like the leaves of ``target_tree``, one key per leaf.

    Args:
      rng_key: a PRNG key, split as :func:`tree_split_key_like` does.
      target_tree: a tree of arrays.
      sampler: ``sampler(key, shape, dtype)`` (and ``out_sharding=`` where it takes one), as
        ``jax.random.normal`` (the default), ``uniform`` or ``rademacher`` (integer dtypes).
      dtype: the dtype of every leaf; None: each target leaf's own.

    Returns:
      A tree of ``target_tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax, jax.numpy as jnp
      >>> noise = tu.tree_random_like(jax.random.key(0), {"w": jnp.zeros((2, 3))})
      >>> noise["w"].shape, noise["w"].dtype
      ((2, 3), dtype('float32'))
    """
    if not callable(sampler):
        raise TypeError(f"tree_random_like: sampler must be callable, got {sampler!r}")
    _check_dtype("tree_random_like", dtype)
    keys = tree_split_key_like(rng_key, target_tree)
    sharded = _takes_sharding(sampler)

    def draw(leaf, key):
        aval = jax.typeof(leaf)
        leaf_dtype = dtype if dtype is not None else aval.dtype
        if sharded:
            return sampler(key, aval.shape, leaf_dtype, out_sharding=aval.sharding)
        return sampler(key, aval.shape, leaf_dtype)

    return _map("tree_random_like", draw, target_tree, keys, names=("target_tree", "keys"))


def tree_unwrap_random_key_data(input_tree: PyTree) -> PyTree:
    """Every typed PRNG key leaf replaced by its raw data (``jax.random.key_data``).

    For comparing states that hold keys (keys themselves have no arithmetic).

    Args:
      input_tree: a tree of arrays, some of them typed keys.

    Returns:
      A tree of ``input_tree``'s structure, the keys as ``uint32`` arrays.

    Example:
      >>> import gradtx.tree_utils as tu, jax
      >>> tu.tree_unwrap_random_key_data({"key": jax.random.key(0), "x": 1.0})
      {'key': Array([0, 0], dtype=uint32), 'x': 1.0}
    """

    def unwrap(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(unwrap, input_tree)
