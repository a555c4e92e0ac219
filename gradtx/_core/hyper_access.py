"""Reading and setting the live hyperparameters of a state: :func:`hyperparams`,
:func:`set_hyperparams` and :func:`sweep`, over every :class:`HyperState` a state holds (their
names qualified by position or name where two transformations share one), with the ranges each
transformation's factory checks.

The tables themselves, and :func:`gradtx._core.hyper.live`, which makes them, are in
:mod:`gradtx._core.hyper`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import PyTree
from gradtx._core.checks import _concrete_float, _is_real_number, check_number, constraint
from gradtx._core.hyper import _VALUE, HyperState, _row


def _is_hyper_state(x: Any) -> bool:
    return isinstance(x, HyperState)


def _prefix(path: tuple[Any, ...]) -> str:
    return "" if not path else _tree.path_str(path) + "/"


def _map_hyper_states(state: PyTree, fn: Callable[[str, HyperState], HyperState], at: str = ""):
    """Applies ``fn(prefix, hyper_state)`` to every HyperState in ``state``, nested ones first."""

    def visit(path, node):
        if not isinstance(node, HyperState):
            return node
        prefix = at + _prefix(path)
        inner = _map_hyper_states(node.inner_state, fn, prefix)
        return fn(prefix, node._replace(inner_state=inner))

    return jax.tree_util.tree_map_with_path(visit, state, is_leaf=_is_hyper_state)


def _hyper_states(state: PyTree) -> list[tuple[str, HyperState]]:
    """Every HyperState in ``state`` with its prefix, nested ones first (as
    :func:`_map_hyper_states` visits them)."""
    found: list[tuple[str, HyperState]] = []

    def collect(prefix, node):
        found.append((prefix, node))
        return node

    _map_hyper_states(state, collect)
    return found


def _own_ranges(node: HyperState) -> dict[str, Any]:
    """The ranges particular to ``node``'s transformation: the ``live_ranges`` of the state
    types inside its inner state (not inside a nested HyperState, which has its own)."""
    found: dict[str, Any] = {}

    def stop(x):
        declared = getattr(type(x), "live_ranges", None)
        if declared is not None:
            found.update(declared)
        return isinstance(x, HyperState) or declared is not None

    jax.tree_util.tree_leaves(node.inner_state, is_leaf=stop)
    return found


def _rules(state: PyTree) -> dict[str, Any]:
    """Maps each hyperparameter's qualified name to its range ``(text, test)``, or None."""
    found: dict[str, Any] = {}
    for prefix, node in _hyper_states(state):
        own = _own_ranges(node)
        for name in node.names:
            found[prefix + name] = own.get(name) or constraint(name)
    return found


def _catalogue(state: PyTree) -> dict[str, str]:
    """Maps each hyperparameter's qualified name (path/name) to its plain name."""
    return {prefix + name: name for prefix, node in _hyper_states(state) for name in node.names}


def _public_names(catalogue: dict[str, str]) -> dict[str, str]:
    """Qualified name -> the key users see: the plain name where it is unique."""
    counts: dict[str, int] = {}
    for name in catalogue.values():
        counts[name] = counts.get(name, 0) + 1
    return {q: (n if counts[n] == 1 else q) for q, n in catalogue.items()}


def hyperparams(state: PyTree) -> dict[str, jax.Array]:
    """The current hyperparameters of an optimizer state, as a flat dict.

    The values are those the next update will use (for a schedule: its value at the current
    step count). Keys are the argument names (``"learning_rate"``, ``"b1"``, ...); where two
    transformations of a chain share a name, their keys are qualified by the position in the
    chain or the ``named_chain`` name (``"0/decay"``, ``"clip/max_norm"``). Works inside ``jit``.

    Args:
      state: an optimizer state (as from ``tx.init``), or any pytree holding one.

    Returns:
      A dict from each hyperparameter's key to its current value, a scalar array.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> state = gradtx.adam(1e-3).init({"w": jnp.zeros(3)})
      >>> float(gradtx.hyperparams(state)["learning_rate"])
      0.0010000000474974513
    """
    public = _public_names(_catalogue(state))
    return {
        public[prefix + name]: node.array[..., 1 + i, _VALUE]
        for prefix, node in _hyper_states(state)
        for i, name in enumerate(node.names)
    }


def _new_row(name: str, x: Any, table: jax.Array, i: int, rule: Any) -> jax.Array:
    """The row of hyperparameter ``i`` set to ``x`` by hand, after checking ``x``."""
    owner = "set_hyperparams"
    if callable(x) and not isinstance(x, (jax.Array, np.ndarray)):
        raise TypeError(
            f"{owner}: {name} must be a number or an array; a schedule is fixed when the "
            f"optimizer is built"
        )
    concrete = _concrete_float(owner, name, x) if np.ndim(x) == 0 else None
    shape = table.shape[:-2]
    if np.shape(x) != shape:
        raise ValueError(f"{owner}: {name} must have shape {shape}, got {np.shape(x)}")
    if concrete is not None:
        check_number(owner, name, concrete, dtype=table.dtype, rule=rule)
    return _row(concrete if _is_real_number(x) else x, table.dtype, manual=True)


def set_hyperparams(state: PyTree, **new_values: Any) -> PyTree:
    """Returns ``state`` with hyperparameters replaced, used from the next update on.

    Keys are as in :func:`hyperparams`. Values are numbers or scalar arrays (traced ones too, so
    a ``vmap`` over learning rates works). A value set here also replaces a schedule: that
    hyperparameter keeps the new value from then on. Nothing is recompiled.

    Args:
      state: an optimizer state (as from ``tx.init``), or any pytree holding one.
      **new_values: the new value of each hyperparameter to change, by its key.

    Returns:
      A state of the same structure, shapes and dtypes: a jitted step takes it without
      recompiling.

    Raises:
      ValueError: for an unknown or ambiguous name, or a value out of the argument's range.
      TypeError: for a value that is not a real number or array.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adam(gradtx.linear_schedule(1e-3, 0.0, 100))
      >>> state = gradtx.set_hyperparams(tx.init(jnp.zeros(2)), learning_rate=0.5, b1=0.8)
      >>> sorted((k, round(float(v), 4)) for k, v in gradtx.hyperparams(state).items())
      [('b1', 0.8), ('b2', 0.999), ('eps', 0.0), ('eps_root', 0.0), ('learning_rate', 0.5)]
      >>> gradtx.set_hyperparams(state, b1=1.5)
      Traceback (most recent call last):
      ...
      ValueError: set_hyperparams: b1 must be in [0, 1), got 1.5
    """
    catalogue = _catalogue(state)
    public = _public_names(catalogue)
    by_key = {key: q for q, key in public.items()}
    targets: dict[str, Any] = {}
    for key, x in new_values.items():
        if key in by_key:
            targets[by_key[key]] = x
        elif key in catalogue:
            targets[key] = x
        else:
            shared = sorted(q for q, n in catalogue.items() if n == key)
            if shared:
                raise ValueError(
                    f"set_hyperparams: {key!r} names several hyperparameters; use one of {shared}"
                )
            raise ValueError(
                f"set_hyperparams: no hyperparameter named {key!r}; this state has {sorted(by_key)}"
            )

    def replace(prefix, node):
        table = node.array
        own = _own_ranges(node)
        for i, name in enumerate(node.names):
            if prefix + name in targets:
                row = _new_row(name, targets[prefix + name], table, i, own.get(name))
                table = table.at[..., 1 + i, :].set(row)
        return node.with_array(table)

    return _map_hyper_states(state, replace)


def sweep(state: PyTree, **values: Any) -> PyTree:
    """N copies of ``state`` stacked on a new leading axis, copy *i* using ``values[name][i]``.

    This is the way to train N models with different hyperparameters in one compiled program:
    hyperparameters are data in the state, so ``jax.vmap`` of an ordinary training step over
    the stacked states (and stacked params) runs all N at once.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.adam(1e-3)
      >>> params = {"w": jnp.ones(3)}
      >>> rates = jnp.array([1e-3, 1e-2, 1e-1])
      >>> states = gradtx.sweep(tx.init(params), learning_rate=rates)
      >>> stacked = jax.tree.map(lambda p: jnp.stack([p] * 3), params)
      >>> def step(params, state):
      ...     updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
      ...     return gradtx.apply_updates(params, updates), state
      >>> stacked, states = jax.jit(jax.vmap(step))(stacked, states)
      >>> [round(w, 4) for w in stacked["w"][:, 0].tolist()]  # one Adam step of each rate
      [0.999, 0.99, 0.9]

    Args:
      state: an optimizer state (as from ``tx.init``).
      **values: 1-D arrays or sequences of equal length N, keyed as in :func:`set_hyperparams`.

    Returns:
      The stacked state: every leaf gains a leading axis of size N.
    """
    if not values:
        raise ValueError("sweep: give at least one hyperparameter to sweep")
    columns = {}
    for name, column in values.items():
        if isinstance(column, jax.core.Tracer):
            raise ValueError(f"sweep: {name} must be concrete values, not traced")
        column = np.asarray(column)
        if not (
            np.issubdtype(column.dtype, np.floating) or np.issubdtype(column.dtype, np.integer)
        ):
            raise TypeError(f"sweep: {name} must be real numbers, got dtype {column.dtype}")
        if column.ndim != 1 or column.size == 0:
            raise ValueError(
                f"sweep: {name} must be a non-empty 1-D sequence, got shape {column.shape}"
            )
        columns[name] = column
    sizes = {name: column.size for name, column in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"sweep: the swept values must have one length, got {sizes}")
    copies = []
    for i in range(next(iter(sizes.values()))):
        try:
            copies.append(
                set_hyperparams(
                    state, **{name: column[i].item() for name, column in columns.items()}
                )
            )
        except (TypeError, ValueError) as err:  # name the call the user made, and the copy
            raise type(err)(f"sweep: copy {i}: {err}") from None
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *copies)
