"""Masks and labels: checked as given, fitted to the params, and the holes left for the leaves
routed away.

:func:`gradtx.masked`, :func:`gradtx.freeze`, :func:`gradtx.multi_transform` and
:func:`gradtx.selective_transform` give their inner transformation the params and updates with a
:class:`MaskedNode` in place of each subtree they leave out, where optax puts one: a mask leaf
that leaves a whole subtree out (``{"decoder": False}``) is one placeholder. Their states are
optax's :class:`MaskedState`. :func:`gradtx.partition` leaves ``None`` in place of each leaf
instead. Both are holes: empty subtrees, in which the inner transformation sees no leaf and
allocates no state.

A mask or a tree of labels given to a wrapper nested in another still describes the whole
params tree. Where the outer wrapper left a hole, it may go deeper than the tree the nested
wrapper is given (``{"decoder": {"w": True, "b": False}}`` where the outer one left
``"decoder"`` out): :func:`fit` cuts it there, since a hole holds no leaf to route.

A mask or labels argument is checked when the transformation is built if it is a tree (each
leaf a bool, or a hashable label; static), and when it is called if it is a function of the
params; a misfit with the params is a ValueError naming the paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import PyTree


class MaskedNode(NamedTuple):
    """The placeholder of a subtree left out of a wrapper's params, updates and state.

    An empty container: ``jax.tree.map`` and the other tree functions see no leaf in it, so the
    inner transformation allocates no state there. ``isinstance(x, gradtx.MaskedNode)`` picks
    the placeholders out of the states of :func:`gradtx.masked`, :func:`gradtx.freeze`,
    :func:`gradtx.multi_transform` and :func:`gradtx.selective_transform`
    (:func:`gradtx.partition` leaves ``None`` there instead).
    """


class MaskedState(NamedTuple):
    """The state of :func:`gradtx.masked` and :func:`gradtx.freeze`, and of one group of a
    :func:`gradtx.multi_transform` (optax's ``MaskedState``)."""

    inner_state: Any  # the inner transformation's state, MaskedNode() where leaves were left out


def is_hole(x: Any) -> bool:
    """Whether ``x`` is a subtree left out by a wrapper: ``None`` or a :class:`MaskedNode`."""
    return x is None or isinstance(x, MaskedNode)


class Misfit(Exception):
    """Raised by :func:`fit` for a spec that is not a prefix of the tree (callers name the
    paths)."""


def fit(spec: PyTree, tree: PyTree, fill: Any) -> PyTree:
    """``spec`` as a prefix of ``tree``: each of its subtrees where ``tree`` has a hole
    replaced by ``fill``.

    Args:
      spec: a mask or a tree of labels: ``tree``'s structure or a prefix of it, except that it
        may go on below a hole of ``tree``.
      tree: the params or updates, with holes where an outer wrapper left leaves out.
      fill: the leaf put in place of a subtree of ``spec`` cut at a hole (it covers no leaf).

    Returns:
      ``spec`` itself when it is a prefix of ``tree`` already, else the cut copy.

    Raises:
      Misfit: when ``spec`` differs from ``tree`` elsewhere than below a hole.
    """
    try:
        jax.tree.structure(spec).flatten_up_to(tree)
        return spec
    except (ValueError, TypeError):
        return _cut(spec, tree, fill)


def _level(node: Any) -> tuple[list[Any], Any] | None:
    """``node``'s children and its one-level structure; None for a leaf."""
    children, treedef = jax.tree.flatten(node, is_leaf=lambda x: x is not node)
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:
        return None
    return children, treedef


def _cut(spec: PyTree, tree: PyTree, fill: Any) -> PyTree:
    level = _level(spec)
    if level is None:
        return spec  # one leaf of spec covers the whole subtree
    if is_hole(tree):
        return fill
    children, treedef = level
    tree_level = _level(tree)
    if tree_level is None or tree_level[1] != treedef:
        raise Misfit
    return treedef.unflatten([_cut(s, t, fill) for s, t in zip(children, tree_level[0])])


def masked_out(tree: PyTree, keep: PyTree) -> PyTree:
    """``tree`` with a :class:`MaskedNode` in place of each subtree whose ``keep`` leaf is False.

    ``keep`` is a tree of bools with ``tree``'s structure or a prefix of it (fitted before).
    """
    return jax.tree.map(lambda k, sub: sub if k else MaskedNode(), keep, tree)


# ---- masks and labels as given: checked, static, fitted to the params -------------------------


def _describe(x: Any) -> str:
    if isinstance(x, (np.ndarray, jax.Array)):
        return f"an array of shape {np.shape(x)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def as_flag(owner: str, where: str, leaf: Any, name: str = "mask") -> bool:
    """A mask leaf as a Python bool: bools and concrete scalar bool arrays are accepted."""
    if isinstance(leaf, (bool, np.bool_)):
        return bool(leaf)
    if isinstance(leaf, jax.core.Tracer):
        raise TypeError(
            f"{owner}: the {name} must be static, but {where!r} is a traced value; build it from "
            f"the params' structure and shapes, not their values"
        )
    if isinstance(leaf, (np.ndarray, jax.Array)) and leaf.dtype == np.bool_ and leaf.ndim == 0:
        return bool(leaf)
    raise TypeError(f"{owner}: {name} leaves must be bools, got {_describe(leaf)} at {where!r}")


def as_label(owner: str, where: str, leaf: Any, name: str = "param_labels") -> Any:
    """A label leaf, checked to be a static hashable value."""
    try:
        hash(leaf)
    except TypeError:
        raise TypeError(
            f"{owner}: labels must be hashable values such as strings, got {_describe(leaf)} "
            f"at {where!r} of {name}"
        ) from None
    if isinstance(leaf, jax.core.Tracer):
        raise TypeError(f"{owner}: labels must be static, but {where!r} of {name} is traced")
    return leaf


def static_tree(
    owner: str, tree: Any, convert: Callable[[str, str, Any, str], Any], name: str
) -> PyTree:
    """``tree`` (the argument ``name``) with every leaf checked and converted by
    ``convert(owner, path, leaf, name)``."""
    if tree is None:
        raise TypeError(
            f"{owner}: expected a tree (or a function of the params) as {name}, got None"
        )
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: convert(owner, _tree.path_str(path), leaf, name), tree
    )


def is_params_fn(spec: Any) -> bool:
    """Whether a mask or labels argument is a function of the params rather than a tree.

    optax's rule for masks: a tree whose leaves are all callable (a plain function is one such
    leaf), so that a callable pytree with bool or label leaves, such as an Equinox module, is a
    tree; and the argument itself callable (a dict of functions is a tree, of wrong leaves).
    """
    leaves = jax.tree.leaves(spec)
    return callable(spec) and bool(leaves) and all(callable(leaf) for leaf in leaves)


def check_mask(owner: str, name: str, mask: Any) -> Any:
    """Checks a mask argument when the transformation is built (a tree of bools: every leaf; a
    function of the params: only that it is one); returns it unchanged. ``None`` (no mask)
    passes."""
    if mask is not None and not is_params_fn(mask):
        static_tree(owner, mask, as_flag, name)
    return mask


def _key_parts(path: Any) -> tuple[str, ...]:
    return tuple(_tree.path_str((key,)) for key in path)


def _prefix_problem(params: PyTree, tree: PyTree, what: str) -> str:
    """Why ``tree`` is not a prefix of ``params``, as the paths it leaves uncovered or adds
    (below a hole of ``params``, any path is allowed)."""
    spots = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_hole)[0]
    param_paths = [_key_parts(path) for path, _ in spots]
    holes = [_key_parts(path) for path, x in spots if is_hole(x)]
    given = {_key_parts(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}
    prefixes = {q[:i] for q in param_paths for i in range(len(q) + 1)}
    below_hole = {p for p in given for h in holes if p[: len(h)] == h}
    uncovered = [
        "/".join(q) or "<root>"
        for q in param_paths
        if not any(q[:i] in given for i in range(len(q) + 1))
        and not (q in holes and any(p[: len(q)] == q for p in below_hole))
    ]
    unknown = sorted("/".join(p) or "<root>" for p in given - below_hole if p not in prefixes)
    lines = []
    if uncovered:
        lines.append(f"params not covered by the {what}: {_tree._listing(uncovered)}")
    if unknown:
        lines.append(f"in the {what} but not in params: {_tree._listing(unknown)}")
    if not lines:
        lines.append(
            f"the containers differ: {jax.tree.structure(tree)} is not a prefix of "
            f"{jax.tree.structure(params)}"
        )
    return "; ".join(lines)


def fitted(owner: str, what: str, spec: PyTree, params: PyTree, fill: Any) -> PyTree:
    """:func:`fit` ``(spec, params, fill)``, raising a ValueError that names the paths where
    ``spec`` (the argument ``what`` of ``owner``) does not fit."""
    try:
        return fit(spec, params, fill)
    except Misfit:
        problem = _prefix_problem(params, spec, what)
        verb = "do" if what.endswith("s") else "does"
        raise ValueError(f"{owner}: the {what} {verb} not fit the params: {problem}") from None


def per_leaf(owner: str, what: str, spec: PyTree, params: PyTree) -> list[Any]:
    """The mask or label of each leaf of ``params``; ``spec`` is the params' tree or a prefix."""
    spec = fitted(owner, what, spec, params, fill=False)  # the fill covers no leaf
    covered = jax.tree.structure(spec).flatten_up_to(params)
    return [x for x, sub in zip(jax.tree.leaves(spec), covered) for _ in jax.tree.leaves(sub)]


def check_labels(owner: str, labels: PyTree, groups: Mapping[Any, Any], name: str) -> None:
    """Raises ValueError naming each label of ``labels`` that ``groups`` has no entry for."""
    missing: dict[Any, str] = {}
    for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
        if label not in groups:
            missing.setdefault(label, _tree.path_str(path))
    if missing:
        shown = ", ".join(f"{label!r} (at {where!r})" for label, where in missing.items())
        raise ValueError(
            f"{owner}: no transformation for the label(s) {shown} of {name}; "
            f"transforms has {list(groups)}"
        )
