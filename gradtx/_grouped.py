"""Many-leaf models: run an elementwise chain on a few concatenated buffers instead of per leaf."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._base import GradientTransformation, PyTree, with_extra_args


class GroupedState(NamedTuple):
    """The state of :func:`grouped`: the inner state, built for the concatenated buffers."""

    inner_state: Any  # tx's state for {group key: 1-D buffer of the group's dtype}


class _Layout(NamedTuple):
    treedef: Any
    shapes: tuple[tuple[int, ...], ...]  # per leaf, in flattening order
    keys: tuple[str, ...]  # per leaf: its group's key
    members: dict[str, tuple[int, ...]]  # group key -> leaf indices, in flattening order


def _layout(tree: PyTree) -> _Layout:
    leaves, treedef = jax.tree.flatten(tree)
    shapes = tuple(tuple(np.shape(x)) for x in leaves)
    keys = tuple(jnp.result_type(x).name for x in leaves)
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    return _Layout(treedef, shapes, keys, {k: tuple(v) for k, v in sorted(members.items())})


def _concat(layout: _Layout, leaves: list[Any]) -> dict[str, jax.Array]:
    return {
        key: jnp.concatenate([jnp.ravel(leaves[i]) for i in idx])
        for key, idx in layout.members.items()
    }


def _split(layout: _Layout, buffers: dict[str, jax.Array]) -> PyTree:
    leaves: list[Any] = [None] * len(layout.shapes)
    for key, idx in layout.members.items():
        sizes = [int(np.prod(layout.shapes[i], dtype=np.int64)) for i in idx]
        pieces = jnp.split(buffers[key], np.cumsum(sizes)[:-1].tolist())
        for i, piece in zip(idx, pieces):
            leaves[i] = piece.reshape(layout.shapes[i])
    return jax.tree.unflatten(layout.treedef, leaves)


def grouped(tx: GradientTransformation) -> GradientTransformation:
    """Draft."""
    tx = with_extra_args(tx)

    def init(params):
        layout = _layout(params)
        return GroupedState(tx.init(_concat(layout, jax.tree.leaves(params))))

    def update(updates, state, params=None, **extra):
        layout = _layout(updates)
        flat_updates = _concat(layout, jax.tree.leaves(updates))
        flat_params = None if params is None else _concat(layout, jax.tree.leaves(params))
        new, inner = tx.update(flat_updates, state.inner_state, flat_params, **extra)
        return _split(layout, new), GroupedState(inner)

    return GradientTransformation(init, update)
