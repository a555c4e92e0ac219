"""Combinators: chain, named_chain, masked, and join (several transformations of one input)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx import _tree
from gradtx._base import GradientTransformation, PyTree, with_extra_args


def _check_links(owner: str, transforms: tuple[Any, ...]) -> tuple[GradientTransformation, ...]:
    for i, tx in enumerate(transforms):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"{owner}: link {i} must be a GradientTransformation (init, update), "
                f"got {type(tx).__name__}"
            )
    return tuple(with_extra_args(tx) for tx in transforms)


def _check_state(owner: str, state: Any, expected: int) -> None:
    if not isinstance(state, tuple) or len(state) != expected:
        got = f"a {type(state).__name__}" + (
            f" of {len(state)}" if isinstance(state, (tuple, list)) else ""
        )
        raise ValueError(
            f"{owner}: the state must be the tuple of {expected} link states that init made, "
            f"got {got}"
        )


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Applies transformations one after the other; the state is the tuple of their states.

    Extra keyword arguments given to ``update`` reach every link (links from libraries whose
    ``update`` takes none, like optax's plain transformations, are called without them).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.scale(-0.1))
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, state = tx.update(params, tx.init(params))
      >>> updates["w"].round(4)  # the norm 5 is clipped to 1, then scaled by -0.1
      Array([-0.06, -0.08], dtype=float32)
    """
    links = _check_links("chain", transforms)

    def init(params):
        return tuple(tx.init(params) for tx in links)

    def update(updates, state, params=None, **extra):
        _check_state("chain", state, len(links))
        new_state = []
        for tx, link_state in zip(links, state):
            updates, link_state = tx.update(updates, link_state, params, **extra)
            new_state.append(link_state)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def named_chain(*named: tuple[str, GradientTransformation]) -> GradientTransformation:
    """:func:`chain` whose state is a dict keyed by the links' names.

    Names show in :func:`gradtx.hyperparams` keys when two links share a hyperparameter name.

    Example:
      >>> import gradtx
      >>> tx = gradtx.named_chain(("clip", gradtx.clip(1.0)), ("sgd", gradtx.sgd(0.1)))
    """
    for i, pair in enumerate(named):
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"named_chain: argument {i} must be a (name, transformation) pair")
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: names must be unique, got {names}")
    links = dict(zip(names, _check_links("named_chain", tuple(tx for _, tx in named))))

    def init(params):
        return {name: tx.init(params) for name, tx in links.items()}

    def update(updates, state, params=None, **extra):
        if not isinstance(state, dict) or list(state) != names:
            got = list(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"named_chain: the state must be a dict with keys {names}, got {got}")
        new_state = {}
        for name, tx in links.items():
            updates, new_state[name] = tx.update(updates, state[name], params, **extra)
        return updates, new_state

    return GradientTransformation(init, update)


def join(
    combine: Callable[..., jax.Array], *transforms: GradientTransformation
) -> GradientTransformation:
    """Feeds the same updates to each transformation and combines their outputs leaf by leaf.

    ``combine(out_1, ..., out_n)`` takes one leaf of each transformation's output. Adam is
    ``join(lambda m, v: m / (sqrt(v) + eps), ema(b1), second_moment(b2))``.
    """
    links = _check_links("join", transforms)

    def init(params):
        return tuple(tx.init(params) for tx in links)

    def update(updates, state, params=None, **extra):
        _check_state("join", state, len(links))
        outputs, new_state = [], []
        for tx, link_state in zip(links, state):
            out, link_state = tx.update(updates, link_state, params, **extra)
            outputs.append(out)
            new_state.append(link_state)
        return jax.tree.map(combine, *outputs), tuple(new_state)

    return GradientTransformation(init, update)


def _mask_tree(owner: str, mask: Any, params: PyTree) -> PyTree:
    """The mask as a full tree of bools matching ``params`` (a prefix mask is broadcast)."""
    tree = mask(params) if callable(mask) else mask
    try:
        full = jax.tree.broadcast(tree, params)
    except (ValueError, TypeError) as err:
        problem = _tree.mismatch(params, tree, "params", "mask") or str(err)
        raise ValueError(f"{owner}: the mask does not fit the params: {problem}") from None
    for leaf in jax.tree.leaves(full):
        if not isinstance(leaf, bool) and getattr(leaf, "dtype", None) != jnp.bool_:
            raise TypeError(f"{owner}: mask leaves must be Python bools, got {leaf!r}")
    return full


def _select(tree: PyTree, mask: PyTree, keep: bool) -> PyTree:
    """``tree`` with the leaves whose mask is not ``keep`` replaced by None (no leaf)."""
    return jax.tree.map(lambda x, m: x if bool(m) == keep else None, tree, mask)


def masked(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """Applies ``inner`` to the leaves where ``mask`` is True; passes the others through.

    Args:
      inner: the transformation for the selected leaves. Its state holds those leaves only.
      mask: a tree of Python bools with the params' structure (or a prefix of it, so ``True``
        selects everything), or a function of the params returning one.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> no_bias_decay = gradtx.masked(gradtx.add_decayed_weights(0.1),
      ...                               lambda p: {"w": True, "b": False})
    """
    inner = _check_links("masked", (inner,))[0]

    def init(params):
        mask_tree = _mask_tree("masked", mask, params)
        return inner.init(_select(params, mask_tree, True))

    def update(updates, state, params=None, **extra):
        if callable(mask) and params is None:
            raise ValueError("masked: update needs params when the mask is a function of them")
        if params is not None:
            _tree.check_match("masked", (params, updates), ("params", "updates"))
        mask_tree = _mask_tree("masked", mask, updates if params is None else params)
        chosen = None if params is None else _select(params, mask_tree, True)
        new, state = inner.update(_select(updates, mask_tree, True), state, chosen, **extra)
        flat, treedef = jax.tree.flatten(updates)
        keep = treedef.flatten_up_to(mask_tree)
        flat_new = treedef.flatten_up_to(new)
        merged = [n if bool(m) else u for u, m, n in zip(flat, keep, flat_new)]
        return treedef.unflatten(merged), state

    return GradientTransformation(init, update)
