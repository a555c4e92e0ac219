"""Optimizer states between optax and gradtx: a run trained with one resumes under the other.

Where the algorithm is the same, the two libraries keep the same buffers in the same order
(moments, accumulators, step counts), except that gradtx also keeps each transformation's live
hyperparameters in a small table, whose step count schedules read, and optax keeps a separate
step count for a scheduled learning rate (``ScaleByScheduleState``). The conversion pairs the
two states' arrays in order, after leaving out gradtx's tables and those optax-only counts, and
refuses, naming the paths, where a shape or dtype differs (another algorithm, or a layout that
differs: then there is nothing to pair safely).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import hyper
from gradtx._core.base import GradientTransformation, OptState, Params
from gradtx._core.tree import path_str

_COUNT_NAMES = ("count", "t")  # optax's Adan calls its step count t


def _is_count(path, leaf) -> bool:
    last = path[-1] if path else None
    name = getattr(last, "name", getattr(last, "key", None))
    return (
        name in _COUNT_NAMES
        and np.ndim(leaf) == 0
        and jnp.issubdtype(jnp.result_type(leaf), jnp.integer)
    )


def _gradtx_arrays(state: OptState) -> list[tuple[Any, Any, int]]:
    """(path, leaf, position among all leaves) of every array of a gradtx state but its live
    tables."""
    tables = {id(node.array) for node in _hyper_states(state)}
    return [
        (path, leaf, k)
        for k, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(state)[0])
        if id(leaf) not in tables
    ]


def _optax_arrays(state: Any) -> list[tuple[Any, Any, int]]:
    return [
        (p, leaf, k) for k, (p, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(state)[0])
    ]


def _replaced(tree: Any, values: dict[int, Any]) -> Any:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([values.get(k, leaf) for k, leaf in enumerate(leaves)])


def _same_kind(a, b) -> bool:
    return np.shape(a) == np.shape(b) and jnp.result_type(a) == jnp.result_type(b)


def _describe(path, leaf) -> str:
    return f"{path_str(path) or '<root>'} {jnp.result_type(leaf).name}{list(np.shape(leaf))}"


def _pair(owner: str, optax_leaves, gradtx_leaves):
    """Pairs the two lists in order; a step count kept by one library only pairs with nothing
    (returned apart: optax's, then gradtx's)."""
    pairs, extra_counts, gradtx_counts = [], [], []
    i = j = 0
    while i < len(optax_leaves) or j < len(gradtx_leaves):
        o = optax_leaves[i] if i < len(optax_leaves) else None
        g = gradtx_leaves[j] if j < len(gradtx_leaves) else None
        if o is not None and g is not None and _same_kind(o[1], g[1]):
            pairs.append((o, g))
            i, j = i + 1, j + 1
        elif o is not None and _is_count(o[0], o[1]):
            extra_counts.append(o)
            i += 1
        elif g is not None and _is_count(g[0], g[1]):
            gradtx_counts.append(g)
            j += 1
        else:
            here = "nothing" if o is None else _describe(o[0], o[1])
            there = "nothing" if g is None else _describe(g[0], g[1])
            raise ValueError(
                f"{owner}: the states do not hold the same buffers (another algorithm, or a "
                f"layout that differs): optax's {here} meets gradtx's {there}"
            )
    return pairs, extra_counts, gradtx_counts


def _step_count(leaves) -> Any:
    counts = [leaf for path, leaf, _ in leaves if _is_count(path, leaf)]
    if not counts:
        return None
    return jnp.max(jnp.stack([jnp.asarray(c, jnp.int32) for c in counts]))


def from_optax_state(tx: GradientTransformation, optax_state: Any, params: Params) -> OptState:
    """The state of gradtx's ``tx`` that continues a run whose optax state is ``optax_state``.

    ``tx`` is gradtx's optimizer of the same algorithm (``gradtx.adamw(...)`` for a run of
    ``optax.adamw(...)``, with the same hyperparameters). Its moments, accumulators and step
    counts are optax's; its live tables, and any step count gradtx keeps where optax keeps none,
    are set to optax's step count (the largest ``count`` in the optax state; 0 if it has none),
    so schedules and bias corrections continue where they were.

    Args:
      tx: the gradtx transformation that continues the run.
      optax_state: the optax state (as from ``optax_tx.init``/``update``, or a checkpoint).
      params: the params of the run (or ``jax.ShapeDtypeStruct``s of them).

    Returns:
      A state of ``tx`` whose next update is the one optax's would have been.

    Raises:
      ValueError: where the two states' buffers differ in number, shape or dtype, naming them.

    Example:
      >>> import gradtx, optax, jax.numpy as jnp
      >>> params = {"w": jnp.ones(3)}
      >>> state = optax.adam(1e-2).init(params)  # or the state of a run, 1000 steps in
      >>> state = (state[0]._replace(count=jnp.asarray(1000, jnp.int32)),) + state[1:]
      >>> mine = gradtx.from_optax_state(gradtx.adam(1e-2), state, params)
      >>> int(gradtx.tree.get(mine, "count"))
      1000
    """
    owner = "from_optax_state"
    if not isinstance(tx, GradientTransformation):
        raise TypeError(f"{owner}: tx must be a gradtx transformation, got {type(tx).__name__}")
    optax_leaves = _optax_arrays(optax_state)
    step = _step_count(optax_leaves)
    with hyper.starting_at(0 if step is None else step):
        target = tx.init(params)
    gradtx_leaves = _gradtx_arrays(target)
    pairs, _, gradtx_counts = _pair(owner, optax_leaves, gradtx_leaves)
    values = {g[2]: jnp.asarray(o[1]) for o, g in pairs}
    for _, leaf, k in gradtx_counts:  # a count gradtx keeps apart: optax's step count
        values[k] = jnp.asarray(0 if step is None else step, jnp.result_type(leaf))
    return _replaced(target, values)


def to_optax_state(optax_tx: Any, state: OptState, params: Params) -> Any:
    """The state of ``optax_tx`` that continues a run whose gradtx state is ``state``.

    The reverse of :func:`from_optax_state`: ``optax_tx`` is optax's optimizer of the same
    algorithm; a step count optax keeps apart (a scheduled learning rate's) is set to the
    gradtx tables' step count.

    Args:
      optax_tx: the optax transformation that continues the run (anything with optax's
        ``init``; gradtx does not import optax).
      state: the gradtx state.
      params: the params of the run.

    Returns:
      A state of ``optax_tx`` whose next update is the one gradtx's would have been.

    Raises:
      ValueError: where the two states' buffers differ in number, shape or dtype, naming them.

    Example:
      >>> import gradtx, optax, jax.numpy as jnp
      >>> params = {"w": jnp.ones(3)}
      >>> state = gradtx.adam(1e-2).init(params)
      >>> theirs = gradtx.to_optax_state(optax.adam(1e-2), state, params)
      >>> type(theirs[0]).__name__
      'ScaleByAdamState'
    """
    owner = "to_optax_state"
    if not callable(getattr(optax_tx, "init", None)):
        raise TypeError(
            f"{owner}: optax_tx must be an optax transformation, got {type(optax_tx).__name__}"
        )
    target = optax_tx.init(params)
    pairs, extra_counts, _ = _pair(owner, _optax_arrays(target), _gradtx_arrays(state))
    values = {o[2]: jnp.asarray(g[1]) for o, g in pairs}
    if extra_counts:
        counts = [node.count for node in _hyper_states(state)]
        step = jnp.max(jnp.stack(counts)) if counts else None
        for path, leaf, k in extra_counts:
            if step is None:
                raise ValueError(
                    f"{owner}: optax's {path_str(path)} has no counterpart in the gradtx state"
                )
            values[k] = step.astype(jnp.result_type(leaf))
    return _replaced(target, values)


def _hyper_states(state: OptState) -> list[hyper.HyperState]:
    found: list[hyper.HyperState] = []

    def collect(prefix, node):
        found.append(node)
        return node

    hyper._map_hyper_states(state, collect)
    return found
