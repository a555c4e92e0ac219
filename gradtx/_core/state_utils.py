"""optax's state tools: values of an optimizer state found and replaced by name, and functions
mapped over the parts of a state that are shaped like the params.

:func:`tree_get`, :func:`tree_set` and :func:`tree_get_all_with_path` search a tree for a key: a
dict key, a NamedTuple field or a NamedTuple's class name, as optax's do (with the same paths,
orders, errors and ``filtering``). They also see gradtx's live hyperparameters: a
:class:`gradtx.HyperState` shows each of its hyperparameters by name, at the path
``(..., NamedTupleKey("HyperState", "hyperparams"), DictKey(name))`` (a view of its ``table``,
which is never searched itself), and its step count at ``(..., NamedTupleKey("HyperState",
"count"))``. A view is hidden where the state already holds the same quantity, so that a name is
found once:

* the count, where the transformation's own state has a ``count`` (Adam's
  ``ScaleByAdamState.count``): setting that count sets the table's too, so that schedules follow;
* a hyperparameter or the count, inside the inner state of a wrapper that holds them itself (a
  NamedTuple with a ``hyperparams`` dict and an ``inner_state``, as :func:`inject_hyperparams`'s):
  the wrapper's values are the ones its next update uses.

Setting a hyperparameter is :func:`gradtx.set_hyperparams`'s: checked against its range, used
from the next update on (over a schedule too), with no recompilation.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import hyper as _hyper
from gradtx._core import hyper_access as _hyper_access
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState, PyTree
from gradtx._core.hyper import HyperState

KeyPath = tuple[Any, ...]
Filtering = Callable[[KeyPath, Any], bool]


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A path entry for a NamedTuple's field that names the NamedTuple's class too.

    The paths of :func:`tree_get_all_with_path` use it where JAX's would use a ``GetAttrKey``,
    so that a ``filtering`` function can tell fields of the same name apart by their state
    (``path[-1].tuple_name == "ScaleByAdamState"``).

    Attributes:
      tuple_name: the NamedTuple's class name.
      name: the field's name.
    """

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


def _is_named_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _key_of(entry: Any) -> Any:
    """The plain key (dict key, field name or index) of a path entry."""
    for attribute in ("key", "name", "idx"):
        if hasattr(entry, attribute):
            return getattr(entry, attribute)
    raise KeyError(f"path entry {entry!r} of type {type(entry).__name__} has no key")


def _injected(node: Any) -> frozenset[str]:
    """The names a wrapper (a NamedTuple with a ``hyperparams`` dict and an ``inner_state``)
    holds itself for its inner state: its hyperparameters, and ``count`` if it has one."""
    if not (_is_named_tuple(node) and {"hyperparams", "inner_state"} <= set(node._fields)):
        return frozenset()
    if not isinstance(node.hyperparams, dict):
        return frozenset()
    return frozenset(node.hyperparams) | ({"count"} & set(node._fields))


# ---- the search -------------------------------------------------------------------------------
#
# A search walks the tree down to the nodes that hold the key, JAX's children order, reports each
# such node's value (optax's order: all of them first), then searches inside each of them.
# ``shadow`` holds the names that the enclosing wrappers hold themselves.


class _Search:
    def __init__(self) -> None:
        self.counts: dict[int, tuple[HyperState, bool]] = {}  # id -> (the state, has a count)

    def _own_count(self, node: HyperState, shadow: frozenset[str]) -> bool:
        """Whether a HyperState's inner state holds a count of its own."""
        seen = self.counts.get(id(node))
        if seen is None or seen[0] is not node:  # the state kept: its id is not reused
            found = self.find(node.inner_state, "count", (), shadow)
            seen = self.counts[id(node)] = (node, bool(found))
        return seen[1]

    def shows(self, node: HyperState, key: Any, shadow: frozenset[str]) -> bool:
        """Whether a HyperState shows ``key`` beyond its fields (a hyperparameter, its count)."""
        if not isinstance(key, str) or key in shadow:
            return False
        return key in node.names or (key == "count" and not self._own_count(node, shadow))

    def holds(self, node: Any, key: Any, shadow: frozenset[str]) -> bool:
        if _is_named_tuple(node):
            if key == type(node).__name__ or key in node._fields:
                return True
            return isinstance(node, HyperState) and self.shows(node, key, shadow)
        try:
            return isinstance(node, dict) and key in node
        except TypeError:  # an unhashable key
            return False

    def find(self, node: Any, key: Any, path: KeyPath, shadow: frozenset[str]) -> list:
        holders: list[tuple[KeyPath, Any, frozenset[str]]] = []
        self._holders(node, key, path, shadow, holders)
        found = [_value(p, n, key) for p, n, _ in holders]
        for p, n, s in holders:
            for entry, child, child_shadow in _fields(n, s, jax_order=False):
                found += self.find(child, key, (*p, entry), child_shadow)
        return found

    def _holders(self, node, key, path, shadow, out) -> None:
        if self.holds(node, key, shadow):
            out.append((path, node, shadow))
            return
        for entry, child, child_shadow in _fields(node, shadow, jax_order=True):
            self._holders(child, key, (*path, entry), child_shadow, out)


_LEAVES = (jax.Array, np.ndarray, np.generic, int, float, complex, str, bytes)


def _one_level(node: Any) -> tuple[list[tuple[Any, Any]], Any] | None:
    """``node``'s children with their path entries and its one-level treedef; None for a leaf."""
    if isinstance(node, _LEAVES):
        return None
    pairs, treedef = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    if len(pairs) == 1 and pairs[0][0] == () and pairs[0][1] is node:
        return None
    return [(path[0], child) for path, child in pairs], treedef


def _fields(node: Any, shadow: frozenset[str], jax_order: bool, table: bool = False) -> list:
    """The children searched inside ``node``, as (entry, child, shadow): a NamedTuple's fields
    (as :class:`NamedTupleKey`; a HyperState's table only if ``table``), a dict's items (in
    insertion order, or JAX's sorted order), other nodes' children as JAX names them."""
    if _is_named_tuple(node):
        name, inner = type(node).__name__, shadow | _injected(node)
        return [
            (NamedTupleKey(name, f), getattr(node, f), inner if f == "inner_state" else shadow)
            for f in node._fields
            if table or not (isinstance(node, HyperState) and f == "table")
        ]
    if isinstance(node, dict) and not jax_order:
        return [(jax.tree_util.DictKey(k), v, shadow) for k, v in node.items()]
    level = _one_level(node)
    return [] if level is None else [(entry, child, shadow) for entry, child in level[0]]


def _view(node: HyperState, key: str) -> tuple[KeyPath, Any]:
    """The path suffix and value of a HyperState's view ``key``."""
    if key in node.names:
        row = 1 + node.names.index(key)
        path = (NamedTupleKey("HyperState", "hyperparams"), jax.tree_util.DictKey(key))
        return path, node.array[..., row, 0]
    return (NamedTupleKey("HyperState", "count"),), node.count


def _value(path: KeyPath, node: Any, key: Any) -> tuple[KeyPath, Any]:
    """The path and value of ``key`` in a node that holds it."""
    if _is_named_tuple(node):
        if key == type(node).__name__:
            return path, node
        if key in node._fields:
            return (*path, NamedTupleKey(type(node).__name__, key)), getattr(node, key)
        suffix, value = _view(node, key)
        return (*path, *suffix), value
    return (*path, jax.tree_util.DictKey(key)), node[key]


def tree_get_all_with_path(
    tree: PyTree, key: Any, filtering: Filtering | None = None
) -> list[tuple[KeyPath, Any]]:
    """Every value of ``tree`` found under ``key``, with its path.

    ``key`` is a dict key, a NamedTuple field or a NamedTuple class name; in a gradtx state also
    a live hyperparameter's name or ``"count"`` (see the module note). A value found is searched
    too (``{"a": {"a": 1}}`` has two ``"a"``). Paths are tuples of JAX's key entries, with
    :class:`NamedTupleKey` for NamedTuple fields; ``jax.tree_util.keystr`` prints them.

    Args:
      tree: the tree to search (an optimizer state, say).
      key: what to look for.
      filtering: ``filtering(path, value) -> bool``: keep only the values it accepts.

    Returns:
      A list of ``(path, value)``, empty if nothing matches.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> from gradtx import tree_utils
      >>> state = gradtx.adam(0.1).init(jnp.zeros(2))
      >>> [(jax.tree_util.keystr(p), v) for p, v in tree_utils.tree_get_all_with_path(
      ...     state, "learning_rate")]
      [("HyperState.hyperparams['learning_rate']", Array(0.1, dtype=float32))]
    """
    found = _Search().find(tree, key, (), frozenset())
    if filtering is not None:
        found = [(path, value) for path, value in found if filtering(path, value)]
    return found


def tree_get(
    tree: PyTree, key: Any, default: Any = None, filtering: Filtering | None = None
) -> Any:
    """The one value of ``tree`` found under ``key``, or ``default``.

    The search is :func:`tree_get_all_with_path`'s: on a gradtx state ``tree_get(state,
    "learning_rate")`` is the learning rate the next update uses, ``tree_get(state, "count")``
    the step count.

    Args:
      tree: the tree to search.
      key: what to look for.
      default: what to return if nothing matches.
      filtering: ``filtering(path, value) -> bool``: consider only the values it accepts.

    Returns:
      The value found, or ``default``.

    Raises:
      KeyError: if several values match, listing their paths.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> from gradtx import tree_utils
      >>> state = gradtx.adam(0.1).init(jnp.zeros(2))
      >>> tree_utils.tree_get(state, "learning_rate"), tree_utils.tree_get(state, "count")
      (Array(0.1, dtype=float32), Array(0, dtype=int32))
      >>> tree_utils.tree_get(state, "momentum", default=0.0)
      0.0
    """
    found = tree_get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = ", ".join(jax.tree_util.keystr(path) or "<root>" for path, _ in found)
        raise KeyError(
            f"tree_get: {len(found)} values match {key!r}, at {paths}; pass filtering to pick one"
        )
    return found[0][1] if found else default


def tree_set(tree: PyTree, filtering: Filtering | None = None, /, **kwargs: Any) -> PyTree:
    """A copy of ``tree`` with the values found under each keyword replaced by its value.

    Every value :func:`tree_get_all_with_path` finds (and ``filtering`` accepts) is replaced,
    except those inside a value replaced (optax's misses some of them). On a gradtx state a live
    hyperparameter is set as :func:`gradtx.set_hyperparams` sets it (checked, used by the next
    update, also over a schedule), and a ``count`` sets the step count the schedules read too
    (the next update still uses the values scheduled for the old count, the ones after it the
    schedule's values from the new count on). Other values are put in as given, as optax does.

    Args:
      tree: the tree (an optimizer state, say).
      filtering: ``filtering(path, value) -> bool``: replace only the values it accepts.
      **kwargs: the new value of each key.

    Returns:
      The new tree.

    Raises:
      KeyError: if a key matches nothing (that ``filtering`` accepts).
      ValueError: for a hyperparameter value out of its range, or a count that is not a whole
        number in [0, 2**31 - 1].

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> from gradtx import tree_utils
      >>> tx = gradtx.sgd(0.1)
      >>> state = tree_utils.tree_set(tx.init(jnp.ones(2)), learning_rate=0.5)
      >>> tx.update(jnp.ones(2), state)[0]
      Array([-0.5, -0.5], dtype=float32)
    """
    for key in kwargs:
        if not tree_get_all_with_path(tree, key, filtering):
            which = " that the filtering accepts" if filtering is not None else ""
            raise KeyError(f"tree_set: no value{which} is found under {key!r}")
    return _Setter(kwargs, filtering).set(tree, (), frozenset())


class _Setter(_Search):
    def __init__(self, values: dict[str, Any], filtering: Filtering | None) -> None:
        super().__init__()
        self.values, self.filtering = values, filtering
        self.hits: collections.Counter = collections.Counter()  # key -> values replaced
        self.wrapper_count_set = False  # inside a wrapper whose own count was set

    def accepts(self, path: KeyPath, value: Any) -> bool:
        return self.filtering is None or bool(self.filtering(path, value))

    def set(self, node: Any, path: KeyPath, shadow: frozenset[str]) -> Any:
        held = any(self.holds(node, k, shadow) for k in self.values)
        name = type(node).__name__
        if held and _is_named_tuple(node) and name in self.values and self.accepts(path, node):
            self.hits[name] += 1
            return self.values[name]
        counted, outer = self.hits["count"], self.wrapper_count_set
        new = {}
        for entry, child, child_shadow in _fields(node, shadow, jax_order=False, table=True):
            key, child_path = _key_of(entry), (*path, entry)
            if held and key in self.values and self.accepts(child_path, child):
                self.hits[key] += 1
                new[key] = self.values[key]
            elif not (isinstance(node, HyperState) and key == "table"):
                inner = key == "inner_state" and "count" in new and "count" in _injected(node)
                self.wrapper_count_set = outer or inner
                replaced = self.set(child, child_path, child_shadow)
                self.wrapper_count_set = outer
                if replaced is not child:
                    new[key] = replaced
        if new:
            node = _rebuild(node, new)
        if isinstance(node, HyperState):
            node = self._set_views(node, path, shadow, self.hits["count"] > counted)
        return node

    def _set_views(self, node: HyperState, path: KeyPath, shadow, count_set: bool) -> HyperState:
        table, ranges = node.array, _hyper_access._own_ranges(node)
        for key in self.values:
            if key != "count" and self.shows(node, key, shadow):
                suffix, value = _view(node, key)
                if self.accepts((*path, *suffix), value):
                    self.hits[key] += 1
                    i = node.names.index(key)
                    row = _renamed(
                        _hyper_access._new_row, key, self.values[key], table, i, ranges.get(key)
                    )
                    table = table.at[..., 1 + i, :].set(row)
        if "count" in self.values:
            if "count" in shadow or self._own_count(node, shadow):
                # a count that stands for this one (its own state's, or its wrapper's) was set
                follow = count_set or ("count" in shadow and self.wrapper_count_set)
            else:
                suffix, value = _view(node, "count")
                follow = self.accepts((*path, *suffix), value)
                self.hits["count"] += follow
            if follow:
                table = _with_count(table, self.values["count"])
        return node if table is node.array else node.with_array(table)


def _rebuild(node: Any, new: dict[Any, Any]) -> Any:
    """``node`` with the children under the keys of ``new`` replaced."""
    if _is_named_tuple(node):
        return node._replace(**new)
    if type(node) is dict:
        return {k: new[k] if k in new else v for k, v in node.items()}
    pairs, treedef = _one_level(node)
    return treedef.unflatten([new[k] if (k := _key_of(e)) in new else c for e, c in pairs])


def _renamed(fn: Callable, *args: Any) -> Any:
    """``fn(*args)``, its errors naming tree_set (set_hyperparams' checks name themselves)."""
    try:
        return fn(*args)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("set_hyperparams:", "tree_set:", 1)) from None


def _with_count(table: jax.Array, count: Any) -> jax.Array:
    """``table`` with its step count set to ``count``, checked where it is concrete."""
    if not isinstance(count, jax.core.Tracer):
        concrete = np.asarray(count)
        whole = np.issubdtype(concrete.dtype, np.integer) or (
            np.issubdtype(concrete.dtype, np.floating) and np.all(np.mod(concrete, 1) == 0)
        )
        if not whole or np.any(concrete < 0) or np.any(concrete > _tree.INT32_MAX):
            raise ValueError(
                f"tree_set: count must be a whole number in [0, {_tree.INT32_MAX}], got {count!r}"
            )
    count = jnp.broadcast_to(jnp.asarray(count).astype(jnp.int32), table.shape[:-2])
    return table.at[..., 0, :].set(_hyper._count_row(count, table.dtype))


# ---- mapping over params ------------------------------------------------------------------------


@jax.tree_util.register_pytree_node_class
class _Params:
    """What ``init`` is given in place of the params: a node without leaves, which every
    ``jax.tree.map`` over the params keeps, so that it marks where the state holds params."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux, children
        return cls()


def tree_map_params(
    initable: GradientTransformation | Callable[[PyTree], OptState],
    f: Callable[..., Any],
    state: OptState,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> OptState:
    """``f`` mapped over every part of an optimizer state shaped like the params.

    Which parts those are is learned by calling ``init`` on a placeholder for the params: for
    sharding specs of a state from those of the params, say. gradtx's live hyperparameter
    tables and step counts are not params: ``transform_non_params`` gets them.

    Args:
      initable: a transformation (an object with ``init``) or an init function.
      f: applied to the leaves of each params-shaped part (and the leaves of ``rest``).
      state: the state, as ``initable``'s init made it.
      *rest: trees shaped like the params, whose leaves ``f`` also gets.
      transform_non_params: applied to every other leaf of the state; None keeps them.
      is_leaf: passed to ``jax.tree.map`` over the params-shaped parts.

    Returns:
      The state with ``f``'s results in the params-shaped parts.

    Raises:
      ValueError: if ``state`` is not shaped as ``initable``'s init makes states.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> from gradtx import tree_utils
      >>> tx = gradtx.adam(0.1)
      >>> params = {"w": jnp.ones(2)}
      >>> specs = tree_utils.tree_map_params(
      ...     tx, lambda _, s: s, tx.init(params), {"w": "rows"},
      ...     transform_non_params=lambda _: None)
      >>> specs.inner_state[0].mu, specs.inner_state[0].count
      ({'w': 'rows'}, None)
    """
    init = getattr(initable, "init", initable)
    if not callable(init):
        raise TypeError(
            f"tree_map_params: initable must be a transformation or an init function, got "
            f"{type(initable).__name__}"
        )
    marked = init(_Params())
    is_params = lambda x: isinstance(x, _Params)  # noqa: E731

    def one(mark, value):
        if isinstance(mark, _Params):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        return value if transform_non_params is None else transform_non_params(value)

    try:
        jax.tree.structure(marked, is_leaf=is_params).flatten_up_to(state)
    except (TypeError, ValueError):
        problem = _tree.mismatch(marked, state, "init's", "given") or "different containers"
        raise ValueError(
            f"tree_map_params: state is not a state of initable's init: {problem}"
        ) from None
    return jax.tree.map(one, marked, state, is_leaf=is_params)
