"""optax's tree math: leaf-by-leaf arithmetic, reductions and norms (the moment updates are in
:mod:`gradtx._core.tree_moments`).

optax's functions (``optax.tree_utils``), with its signatures, defaults, values and result
dtypes, re-exported by :mod:`gradtx.tree_utils` and :mod:`gradtx.tree`. Where they differ:

* leaves combine under JAX's standard promotion, as optax's do, also where the caller set
  strict promotion (the library never relies on implicit promotion);
* reductions accumulate in at least float32 and round once (a bfloat16 leaf's terms are not
  rounded one by one); :func:`tree_norm` is :func:`gradtx.global_norm`'s, overflow-safe, with
  slope 0 at 0; an empty tree's infinity norm is 0 (optax: ``-inf``); empty reductions give
  arrays (optax: Python numbers);
* trees that do not match, and leaves that fail, raise errors naming the function and the path.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import PyTree

_standard = functools.partial(jax.numpy_dtype_promotion, "standard")
_INF_ORDS = ("inf", "infinity")


def _map(
    owner: str,
    fn: Callable,
    tree: PyTree,
    *rest: PyTree,
    names: tuple[str, ...] = ("tree_x", "tree_y"),
    none_is_leaf: bool = False,
) -> PyTree:
    """``jax.tree.map(fn, tree, *rest)`` under standard promotion; ``rest`` must have ``tree``'s
    structure (or ``tree`` as a prefix): a mismatch, or a leaf ``fn`` fails on, raises an error
    naming ``owner`` and the path."""
    is_leaf = (lambda x: x is None) if none_is_leaf else None
    treedef = jax.tree.structure(tree, is_leaf=is_leaf)
    for other, name in zip(rest, names[1:]):
        try:
            treedef.flatten_up_to(other)
        except (TypeError, ValueError):
            problem = _tree.mismatch(tree, other, names[0], name) or "different containers"
            raise ValueError(f"{owner}: the trees do not match: {problem}") from None

    def leaf(path, *xs):
        try:
            return fn(*xs)
        except (TypeError, ValueError) as err:
            if type(err) not in (TypeError, ValueError):
                raise
            raise type(err)(f"{owner}: leaf {_tree.path_str(path)!r}: {err}") from None

    with _standard():
        return jax.tree_util.tree_map_with_path(leaf, tree, *rest, is_leaf=is_leaf)


def _arrays(tree: PyTree) -> list[jax.Array]:
    return [jnp.asarray(x) for x in jax.tree.leaves(tree)]


def _kind(x: jax.Array) -> tuple[str, bool]:
    return jnp.dtype(x.dtype).name, bool(jax.typeof(x).weak_type)


# The result dtype of each reduction, as optax's formula gives it (its value is computed here in
# another way): evaluated abstractly, once per set of leaf dtypes.
_RULES: dict[str, Callable] = {
    "sum": lambda xs: functools.reduce(operator.add, [jnp.sum(x) for x in xs], 0),
    "max": lambda xs: functools.reduce(jnp.maximum, [jnp.max(x) for x in xs], -np.inf),
    "squares": lambda xs: _RULES["sum"]([jnp.square(x.real) + jnp.square(x.imag) for x in xs]),
    "norm": lambda xs: jnp.sqrt(_RULES["squares"](xs)),
    "abs_sum": lambda xs: _RULES["sum"]([jnp.abs(x) for x in xs]),
    "abs_max": lambda xs: _RULES["max"]([jnp.abs(x) for x in xs]),
    "vdot": lambda xs: _RULES["sum"]([jnp.conj(a) * b for a, b in zip(xs[::2], xs[1::2])]),
}


@functools.cache
def _rule_dtype(rule: str, kinds: tuple[tuple[str, bool], ...], x64: bool) -> np.dtype:
    del x64  # in the key: the dtypes differ with 64-bit mode
    leaves = [jax.ShapeDtypeStruct((), jnp.dtype(d), weak_type=w) for d, w in kinds]
    with _standard():
        return jnp.dtype(jax.eval_shape(_RULES[rule], leaves).dtype)


def _result_dtype(rule: str, leaves: list[jax.Array], others: list[jax.Array] = ()) -> np.dtype:
    """The dtype of ``rule`` for these leaves (for "vdot": the pairs of ``leaves``, ``others``).
    Results are joined: the order and repeats of the leaves' dtypes do not matter."""
    if rule == "vdot":
        pairs = sorted({(_kind(a), _kind(b)) for a, b in zip(leaves, others)})
        kinds = tuple(k for pair in pairs for k in pair)
    else:
        kinds = tuple(sorted({_kind(x) for x in leaves}))
    return _rule_dtype(rule, kinds, bool(jax.config.jax_enable_x64))


def _wide(dtype: Any) -> Any:
    """Where a sum of ``dtype`` values accumulates: at least float32 for floats."""
    return _tree.accumulation_dtype(dtype) if jnp.issubdtype(dtype, jnp.inexact) else dtype


def _total(parts: list[jax.Array], dtype: Any, pairwise: bool = False) -> jax.Array:
    """The sum of scalar ``parts`` accumulated in :func:`_wide` ``dtype``, rounded to ``dtype``."""
    wide = _wide(dtype)
    parts = [p.astype(wide) for p in parts]
    if pairwise:
        return jnp.sum(jnp.stack(parts)).astype(dtype)
    return functools.reduce(operator.add, parts).astype(dtype)


# ---- arithmetic ---------------------------------------------------------------------------------


def tree_add(tree_x: PyTree, tree_y: PyTree, *other_trees: PyTree) -> PyTree:
    """The leaf-by-leaf sum of two or more trees of the same structure.

    Args:
      tree_x: the first tree.
      tree_y: the second tree.
      *other_trees: more trees to add.

    Returns:
      A tree of ``tree_x``'s structure: ``x + y + ...`` at each leaf.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_add({"a": jnp.ones(2)}, {"a": jnp.array([1.0, 2.0])}, {"a": jnp.ones(2)})
      {'a': Array([3., 4.], dtype=float32)}
    """
    trees = (tree_x, tree_y, *other_trees)
    names = ("tree_x", "tree_y", *(f"other_trees[{i}]" for i in range(len(other_trees))))
    add = lambda *xs: functools.reduce(operator.add, xs)  # noqa: E731
    return _map("tree_add", add, *trees, names=names)


def tree_sub(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The leaf-by-leaf difference ``tree_x - tree_y``.

    Args:
      tree_x: the first tree.
      tree_y: the tree subtracted, of the same structure.

    Returns:
      A tree of ``tree_x``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_sub((jnp.ones(2), 3.0), (jnp.array([1.0, 2.0]), 1.0))
      (Array([ 0., -1.], dtype=float32), 2.0)
    """
    return _map("tree_sub", operator.sub, tree_x, tree_y)


def tree_mul(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The leaf-by-leaf product ``tree_x * tree_y``.

    Args:
      tree_x: the first tree.
      tree_y: the second tree, of the same structure.

    Returns:
      A tree of ``tree_x``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_mul({"a": jnp.array([2.0, 3.0])}, {"a": jnp.array([4.0, 5.0])})
      {'a': Array([ 8., 15.], dtype=float32)}
    """
    return _map("tree_mul", operator.mul, tree_x, tree_y)


def tree_div(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The leaf-by-leaf quotient ``tree_x / tree_y``.

    Args:
      tree_x: the dividend.
      tree_y: the divisor, of the same structure.

    Returns:
      A tree of ``tree_x``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_div({"a": jnp.array([1.0, 3.0])}, {"a": jnp.array([2.0, 4.0])})
      {'a': Array([0.5 , 0.75], dtype=float32)}
    """
    return _map("tree_div", operator.truediv, tree_x, tree_y)


def tree_scale(scalar: jax.typing.ArrayLike, tree: PyTree) -> PyTree:
    """Every leaf multiplied by ``scalar``: ``scalar * tree``.

    Args:
      scalar: a number or an array that broadcasts against every leaf.
      tree: the tree.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_scale(0.5, {"a": jnp.array([2.0, 4.0])})
      {'a': Array([1., 2.], dtype=float32)}
    """
    return _map("tree_scale", lambda x: scalar * x, tree, names=("tree",))


def tree_add_scale(tree_x: PyTree, scalar: jax.typing.ArrayLike, tree_y: PyTree) -> PyTree:
    """``tree_x + scalar * tree_y``, leaf by leaf; a None leaf of ``tree_x`` stays None.

    Args:
      tree_x: the tree added to (its None leaves are kept).
      scalar: a number or an array that broadcasts against every leaf.
      tree_y: the tree scaled, of ``tree_x``'s structure.

    Returns:
      A tree of ``tree_x``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_add_scale({"a": jnp.ones(2)}, 0.5, {"a": jnp.array([2.0, 4.0])})
      {'a': Array([2., 3.], dtype=float32)}
    """
    scalar = jnp.asarray(scalar)
    fn = lambda x, y: None if x is None else x + scalar * y  # noqa: E731
    return _map("tree_add_scale", fn, tree_x, tree_y, none_is_leaf=True)


def tree_conj(tree: PyTree) -> PyTree:
    """The complex conjugate of every leaf (real leaves unchanged, as arrays).

    Args:
      tree: the tree.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_conj({"z": jnp.array([1 + 2j])})
      {'z': Array([1.-2.j], dtype=complex64)}
    """
    return _map("tree_conj", jnp.conj, tree, names=("tree",))


def tree_real(tree: PyTree) -> PyTree:
    """The real part of every leaf.

    Args:
      tree: the tree.

    Returns:
      A tree of ``tree``'s structure, complex leaves replaced by their (real dtype) real parts.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_real({"z": jnp.array([1 + 2j])})
      {'z': Array([1.], dtype=float32)}
    """
    return _map("tree_real", jnp.real, tree, names=("tree",))


def tree_clip(
    tree: PyTree,
    min_value: jax.typing.ArrayLike | None = None,
    max_value: jax.typing.ArrayLike | None = None,
) -> PyTree:
    """Every leaf clipped to ``[min_value, max_value]``.

    Args:
      tree: the tree.
      min_value: the lower bound, or None for none.
      max_value: the upper bound, or None for none.

    Returns:
      A tree of ``tree``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_clip({"a": jnp.array([-2.0, 0.5, 3.0])}, -1.0, 1.0)
      {'a': Array([-1. ,  0.5,  1. ], dtype=float32)}
    """
    return _map("tree_clip", lambda x: jnp.clip(x, min_value, max_value), tree, names=("tree",))


def tree_where(condition: jax.typing.ArrayLike, tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """``tree_x``'s leaves where ``condition`` holds, ``tree_y``'s elsewhere (``jnp.where``).

    Args:
      condition: a boolean scalar, or an array that broadcasts against every leaf.
      tree_x: the tree chosen where ``condition`` is True.
      tree_y: the tree chosen where it is False, of the same structure.

    Returns:
      A tree of ``tree_x``'s structure.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_where(jnp.array(False), {"a": jnp.ones(2)}, {"a": jnp.zeros(2)})
      {'a': Array([0., 0.], dtype=float32)}
    """
    return _map("tree_where", lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


# ---- reductions and norms ---------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=2)
def _dot(a: jax.Array, b: jax.Array, preferred: Any) -> jax.Array:
    """``vdot(a, b)`` of two arrays of one shape, as ``jnp.vdot`` computes it (one compiled
    program: eagerly too, the conjugate is fused into the product), without flattening them (a
    reshape of a sharded array would move data)."""
    a = jnp.conj(a) if jnp.iscomplexobj(a) else a
    mesh = jax.typeof(a).sharding.mesh
    whole = jax.sharding.NamedSharding(mesh, jax.P()) if mesh.are_all_axes_explicit else None
    highest = jax.lax.Precision.HIGHEST
    return jnp.tensordot(
        a, b, a.ndim, precision=highest, preferred_element_type=preferred, out_sharding=whole
    )


def tree_vdot(tree_x: PyTree, tree_y: PyTree) -> jax.Array:
    """The inner product ``sum_i vdot(x_i, y_i)`` of two trees (``x`` conjugated if complex).

    At the highest matmul precision, floats accumulating in at least float32, in optax's dtype.

    Args:
      tree_x: the first tree (conjugated).
      tree_y: the second tree, of the same structure and leaf shapes.

    Returns:
      A scalar array (0 for empty trees).

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_vdot({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, -1.0])})
      Array(1., dtype=float32)
    """

    def leaf(a, b):
        a, b = jnp.asarray(a), jnp.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"the leaves' shapes differ: {a.shape} and {b.shape}")
        dtype = _result_dtype("vdot", [a], [b])
        wide = _wide(dtype)
        return _dot(a, b, wide if wide != dtype else None)

    dots = jax.tree.leaves(_map("tree_vdot", leaf, tree_x, tree_y))
    if not dots:
        return jnp.asarray(0)
    return _total(dots, _result_dtype("vdot", _arrays(tree_x), _arrays(tree_y)))


def tree_sum(tree: PyTree, associative_reduction: bool = False) -> jax.Array:
    """The sum of all elements of all leaves.

    Args:
      tree: the tree.
      associative_reduction: add the leaves' sums as one reduction rather than one by one:
        faster to compile for trees of many leaves; the order of the additions differs.

    Returns:
      A scalar array in optax's dtype (the leaves' sums' promoted dtype), 0 for an empty tree.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_sum({"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)})
      Array(6., dtype=float32)
    """
    leaves = _arrays(tree)
    if not leaves:
        return jnp.asarray(0)
    with _standard():
        dtype = _result_dtype("sum", leaves)
        sums = [
            jnp.sum(x, dtype=_wide(x.dtype)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.sum(x)
            for x in leaves
        ]
        return _total(sums, dtype, associative_reduction)


def _extreme(tree: PyTree, largest: bool, absolute: bool = False) -> jax.Array:
    leaves = [jnp.abs(x) if absolute else x for x in _arrays(tree)]
    leaves = [x for x in leaves if x.size]  # as optax: empty leaves take no part
    if not leaves:
        return jnp.asarray(-np.inf if largest else np.inf)
    with _standard():
        dtype = _result_dtype("max", leaves)
        pick = jnp.maximum if largest else jnp.minimum
        parts = [(jnp.max(x) if largest else jnp.min(x)).astype(dtype) for x in leaves]
        return functools.reduce(pick, parts)


def tree_max(tree: PyTree) -> jax.Array:
    """The largest element of all leaves (empty leaves are skipped).

    Args:
      tree: the tree.

    Returns:
      A scalar array, ``-inf`` for a tree without elements. Its dtype is optax's: the leaves'
      promoted with a Python float, so an integer tree gives a float32 maximum.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_max({"a": jnp.array([1.0, 5.0]), "b": jnp.array(-2.0), "c": jnp.ones(0)})
      Array(5., dtype=float32)
    """
    return _extreme(tree, largest=True)


def tree_min(tree: PyTree) -> jax.Array:
    """The smallest element of all leaves (empty leaves are skipped).

    Args:
      tree: the tree.

    Returns:
      A scalar array, ``inf`` for a tree without elements; the dtype as :func:`tree_max`'s.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_min({"a": jnp.array([1.0, 5.0]), "b": jnp.array(-2.0)})
      Array(-2., dtype=float32)
    """
    return _extreme(tree, largest=False)


def _norm_order(ord: Any) -> int | float:  # noqa: A002 - optax's name
    if ord is None or (not isinstance(ord, str) and ord == 2):
        return 2
    if not isinstance(ord, str) and ord == 1:
        return 1
    if ord in _INF_ORDS or (not isinstance(ord, str) and ord == np.inf):
        return np.inf
    raise ValueError(f"tree_norm: ord must be None, 1, 2, inf, 'inf' or 'infinity', got {ord!r}")


def tree_norm(
    tree: PyTree,
    ord: int | str | float | None = None,  # noqa: A002 - optax's name
    squared: bool = False,
) -> jax.Array:
    """The vector norm of all leaves together: ``ord`` 2 (Euclidean), 1 or infinity.

    optax's value in optax's dtype (the leaves' real dtype; for integer leaves float32, except
    the integer ``ord=1`` norm and squared Euclidean norm), computed in at least float32 and
    rounded once. The Euclidean norm is :func:`gradtx.global_norm`'s: it neither overflows nor
    underflows (``[1e30, 1e30]`` has norm ``1.41e30``; optax: ``inf``) and its slope at 0 is 0
    (optax: NaN). Complex leaves count by their modulus. An empty tree's norms are 0.

    Args:
      tree: the tree.
      ord: None or 2 (Euclidean), 1 (sum of moduli), or ``jnp.inf``, ``'inf'``,
        ``'infinity'`` (largest modulus).
      squared: return the square of the norm.

    Returns:
      A scalar array.

    Raises:
      ValueError: for another ``ord``.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tree = {"a": jnp.array([3.0, 0.0]), "b": jnp.array(-4.0)}
      >>> tu.tree_norm(tree), tu.tree_norm(tree, ord=1), tu.tree_norm(tree, ord="inf")
      (Array(5., dtype=float32), Array(7., dtype=float32), Array(4., dtype=float32))
      >>> tu.tree_norm({"big": jnp.array([1e30, 1e30])})
      Array(1.4142135e+30, dtype=float32)
    """
    order = _norm_order(ord)
    leaves = _arrays(tree)
    with _standard():
        if order == 2:
            dtype = _result_dtype("squares" if squared else "norm", leaves)
            if squared and not jnp.issubdtype(dtype, jnp.inexact):  # integers: exact
                return _total([jnp.sum(x * x) for x in leaves] or [jnp.asarray(0)], dtype)
            if squared:
                squares = [_tree.sum_of_squares(x) for x in leaves]
                return _total(squares or [jnp.asarray(0.0)], dtype)
            return _norms.global_norm(leaves).astype(dtype)
        if order == 1:
            dtype = _result_dtype("abs_sum", leaves)
            wide = _wide(dtype)
            sums = [jnp.sum(jnp.abs(x), dtype=wide) for x in leaves]
            value = _total(sums or [jnp.asarray(0)], wide)
        else:
            nonempty = [x for x in leaves if x.size]
            dtype = _result_dtype("abs_max", nonempty)
            value = _extreme(nonempty, largest=True, absolute=True) if nonempty else 0
            value = jnp.asarray(value).astype(_wide(dtype))
        return (value * value if squared else value).astype(dtype)


def tree_size(tree: PyTree) -> int:
    """The number of elements of all leaves together.

    Args:
      tree: the tree.

    Returns:
      A Python int.

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> tu.tree_size({"a": jnp.ones((2, 3)), "b": 1.0})
      7
    """
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def tree_allclose(
    a: PyTree,
    b: PyTree,
    rtol: jax.typing.ArrayLike = 1e-05,
    atol: jax.typing.ArrayLike = 1e-08,
    equal_nan: bool = False,
) -> jax.Array:
    """Whether every leaf of ``a`` is close to ``b``'s, as :func:`jax.numpy.allclose` tells.

    Args:
      a: a tree.
      b: a tree of the same structure.
      rtol: the relative tolerance.
      atol: the absolute tolerance.
      equal_nan: whether NaNs compare equal.

    Returns:
      A boolean scalar array (True for empty trees).

    Example:
      >>> import gradtx.tree_utils as tu, jax.numpy as jnp
      >>> bool(tu.tree_allclose({"a": jnp.ones(2)}, {"a": jnp.ones(2) + 1e-7}))
      True
    """
    close = lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)  # noqa: E731
    verdicts = jax.tree.leaves(_map("tree_allclose", close, a, b, names=("a", "b")))
    return functools.reduce(jnp.logical_and, verdicts, jnp.asarray(True))
