"""Checking a checkpointed optimizer state against the optimizer it is restored into.

An optimizer state is a pytree of arrays (NamedTuples, dicts, tuples), so any pytree
checkpointer saves it: Orbax's ``StandardCheckpointer`` or ``flax.serialization.to_bytes``.
What those libraries do not say clearly is *how* a checkpoint differs from the optimizer it is
restored into: Flax's msgpack restore accepts an array of another shape or dtype silently, and
Orbax reports a changed chain as "list vs dict". :func:`check_state` compares the two leaf by
leaf, by path, and names every difference; :func:`restore_state` does that and then puts the
checkpoint's arrays into the optimizer's own state structure.

Paths are those of :func:`gradtx.hyperparams` error messages: ``0/inner_state/0/mu/w`` is
the leaf ``w`` of the ``mu`` field of ... of the first link of a chain. A checkpoint read back
without a target (Orbax's ``restore(path)``, Flax's ``msgpack_restore``) holds the same data in
plain dicts and lists (a NamedTuple's fields become dict keys, a tuple a list): its paths are
the same, so it can be compared and restored too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import hyper as _hyper
from gradtx._core import tree as _tree
from gradtx._core.base import OptState, PyTree
from gradtx._core.masking import MaskedState
from gradtx._core.multi_transform import MultiTransformState

_EARLIER_FIELDS = ("value", "residual", "manual")  # a hyperparameter's leaves before the table


def _leaf_spec(leaf: Any) -> tuple[tuple[int, ...], Any]:
    """A leaf's shape and dtype; the leaf may be an array, a ShapeDtypeStruct or array metadata
    (anything with ``shape`` and ``dtype``)."""
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), np.dtype(leaf.dtype)
    return tuple(np.shape(leaf)), np.asarray(leaf).dtype


def _parts(tree: PyTree) -> dict[tuple[str, ...], Any]:
    """The leaves of ``tree`` by key path, each key as a string."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(_tree.path_str((key,)) for key in path): leaf for path, leaf in leaves}


def _absent_subtrees(paths: list[tuple[str, ...]], other: dict[tuple[str, ...], Any]) -> list[str]:
    """The smallest subtrees holding ``paths`` that ``other`` has nothing of: a missing
    transformation's inner state is one path (``inner_state/0``), not its leaves."""
    present = {q[:i] for q in other for i in range(len(q) + 1)}
    roots: list[str] = []
    for path in paths:
        cut = next((i for i in range(1, len(path) + 1) if path[:i] not in present), len(path))
        root = "/".join(path[:cut]) or "<root>"
        if root not in roots:
            roots.append(root)
    return roots


def _nodes(tree: PyTree, kind: type, inside: str, prefix: tuple[str, ...] = ()):
    """Each node of type ``kind`` in ``tree``, nested ones too (under their field ``inside``),
    with its path (as in _parts)."""
    found = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, kind))[0]
    for path, node in found:
        if isinstance(node, kind):
            at = prefix + tuple(_tree.path_str((key,)) for key in path)
            yield at, node
            if inside:
                yield from _nodes(getattr(node, inside), kind, inside, at + (inside,))


def _hyper_states(tree: PyTree):
    """Each :class:`HyperState` in ``tree``, nested ones too, with its path (as in _parts)."""
    return _nodes(tree, _hyper.HyperState, "inner_state")


def _masked_wrappers(tree: PyTree, prefix: tuple[str, ...] = ()):
    """The paths (as in _parts) of the :class:`MaskedState` of each :func:`gradtx.masked` and
    :func:`gradtx.freeze` in ``tree``, outer ones first. The groups of a
    :class:`MultiTransformState`, in optax's layout from the start, are not among them."""
    kinds = (MaskedState, MultiTransformState)
    found = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, kinds))[0]
    for path, node in found:
        at = prefix + tuple(_tree.path_str((key,)) for key in path)
        if isinstance(node, MaskedState):
            yield at
            yield from _masked_wrappers(node.inner_state, at + ("inner_state",))
        elif isinstance(node, MultiTransformState):
            groups = jax.tree_util.tree_flatten_with_path(
                node.inner_states, is_leaf=lambda x: isinstance(x, MaskedState)
            )[0]
            for key, group in groups:
                where = at + ("inner_states",) + tuple(_tree.path_str((k,)) for k in key)
                yield from _masked_wrappers(group.inner_state, where + ("inner_state",))


def _masked_from_bare(target: OptState, have: dict[tuple[str, ...], Any]) -> dict:
    """``have`` with the states of :func:`gradtx.masked` and :func:`gradtx.freeze` saved in
    the layout before optax's (gradtx until December 2026: the inner state alone, where
    :class:`MaskedState` now holds it as ``inner_state``) moved under ``inner_state``."""
    wrappers = list(_masked_wrappers(target))

    def bare(path: tuple[str, ...]) -> tuple[str, ...]:
        for at in reversed(wrappers):  # the inner ones first: their field lies further in
            if path[: len(at) + 1] == at + ("inner_state",):
                path = path[: len(at)] + path[len(at) + 1 :]
        return path

    moved = [(path, bare(path)) for path in _parts(target)]
    moved = [(path, old) for path, old in moved if path != old]
    have = dict(have)
    if any(path in have for path, _ in moved) or not any(old in have for _, old in moved):
        return have
    for at in wrappers:  # the outer ones first: then a nested one's path is have's already
        for path in [p for p in have if p[: len(at)] == at]:
            have[at + ("inner_state",) + path[len(at) :]] = have.pop(path)
    return have


# Adam's state before it kept one step count for both moments (gradtx until December 2026): the
# join of its two averages, each an EmaState with its own (equal) count.
_EARLIER_ADAM = {("0", "ema"): "mu", ("1", "1", "ema"): "nu", ("0", "count"): "count"}
_EARLIER_ADAM_SECOND_COUNT = ("1", "1", "count")


def _adam_from_two_counts(target: OptState, have: dict[tuple[str, ...], Any]) -> dict:
    """``have`` with each Adam state in the layout before :class:`ScaleByAdamState` (two
    ``EmaState``: ``0/{count,ema}`` and ``1/1/{count,ema}``) converted to ``{count,mu,nu}``."""
    from gradtx._transforms.second_moments import ScaleByAdamState  # a layer above _core

    have = dict(have)
    for at, _ in _nodes(target, ScaleByAdamState, ""):
        old = at + _EARLIER_ADAM_SECOND_COUNT
        if at + ("count",) in have or at + ("0", "count") not in have or old not in have:
            continue
        del have[old]
        for path in list(have):
            for before, after in _EARLIER_ADAM.items():
                cut = len(at) + len(before)
                if path[: len(at)] == at and path[len(at) : cut] == before:
                    have[at + (after,) + path[cut:]] = have.pop(path)
    return have


def _from_earlier_layout(target: OptState, have: dict[tuple[str, ...], Any]) -> dict:
    """``have`` with each live state written before the table (gradtx until December 2026: a
    ``count`` and ``hyperparams/<name>/{value,residual,manual}``) converted to the table."""
    have = dict(have)
    for at, node in _hyper_states(target):
        (key,) = node.table
        count = at + ("count",)
        old = [
            at + ("hyperparams", name, field) for name in node.names for field in _EARLIER_FIELDS
        ]
        if at + ("table", key) in have or count not in have or not all(p in have for p in old):
            continue
        dtype = np.dtype(_leaf_spec(node.array)[1])
        steps = np.asarray(have.pop(count)).astype(np.int64)
        rows = [np.stack([steps // _hyper._HALF, steps % _hyper._HALF, 0 * steps], -1)]
        for name in node.names:
            fields = [np.asarray(have.pop(at + ("hyperparams", name, f))) for f in _EARLIER_FIELDS]
            rows.append(np.stack(fields, -1).astype(np.float64))
        have[at + ("table", key)] = np.stack(rows, -2).astype(dtype)
    return have


def _earlier_layout_hint(target: OptState, have: dict[tuple[str, ...], Any]) -> list[str]:
    """A sentence when ``have`` holds states in one of gradtx's earlier layouts."""
    if set(_masked_from_bare(target, have)) != set(have):
        return [
            "it holds the state of masked or freeze in gradtx's layout before optax's (the inner "
            "state alone, without MaskedState's inner_state): read it without a target and "
            "convert it with gradtx.restore_state"
        ]
    for at, _ in _hyper_states(target):
        if at + ("count",) in have and any(p[: len(at) + 1] == at + ("hyperparams",) for p in have):
            return [
                "it holds hyperparameters in the layout before gradtx kept them in one table "
                "per transformation: read it without a target and convert it with "
                "gradtx.restore_state"
            ]
    from gradtx._interop import earlier_layouts  # a layer above _core
    from gradtx._transforms.second_moments import ScaleByAdamState

    for at, _ in _nodes(target, ScaleByAdamState, ""):
        if at + ("count",) not in have and at + _EARLIER_ADAM_SECOND_COUNT in have:
            return [
                "it holds Adam's moments in the layout before gradtx kept one step count for "
                "both (0/ema and 1/1/ema): read it without a target and convert it with "
                "gradtx.restore_state"
            ]
    _, converted = earlier_layouts.convert(target, have)
    if converted:
        return [
            f"it holds {_tree._listing(sorted(set(converted)))} in gradtx's layout before "
            f"optax's: read it without a target and convert it with gradtx.restore_state"
        ]
    return []


def _differences(want: dict, have: dict) -> list[str]:
    """What differs between two trees' leaves (as from :func:`_parts`), as sentences."""
    problems = []
    missing = _absent_subtrees([p for p in want if p not in have], have)
    extra = _absent_subtrees([p for p in have if p not in want], want)
    if missing:
        problems.append(f"missing from the checkpoint: {_tree._listing(missing)}")
    if extra:
        problems.append(
            f"in the checkpoint but not in the optimizer's state: {_tree._listing(extra)}"
        )
    shapes, dtypes = [], []
    for path in want:
        if path not in have:
            continue
        (want_shape, want_dtype), (have_shape, have_dtype) = (
            _leaf_spec(want[path]),
            _leaf_spec(have[path]),
        )
        name = "/".join(path) or "<root>"
        if want_shape != have_shape:
            shapes.append(f"{name!r} has shape {have_shape} in the checkpoint but {want_shape}")
        elif want_dtype != have_dtype:
            dtypes.append(f"{name!r} has dtype {have_dtype} in the checkpoint but {want_dtype}")
    for kind, found in (("shapes", shapes), ("dtypes", dtypes)):
        if found:
            more = len(found) - _tree._SHOWN
            problems.append(
                f"leaf {kind} differ: "
                + "; ".join(found[: _tree._SHOWN])
                + (f"; and {more} more" if more > 0 else "")
            )
    return problems


def check_state(expected: OptState, saved: PyTree) -> None:
    """Raises ValueError naming every difference between a checkpoint and an optimizer state.

    Leaves are matched by path, so ``saved`` may have the state's own containers (a restored
    state) or plain dicts and lists (a checkpoint read without a target); a container of the
    state that holds no array (an ``EmptyState``, a ``None``) is not compared. Shapes and dtypes
    must be equal: a state of another dtype (``mu_dtype``, x64) is another optimizer.

    Args:
      expected: the state of the optimizer to restore into, typically ``tx.init(params)`` or
        ``jax.eval_shape(tx.init, params)``.
      saved: the checkpoint's tree: arrays, or anything with ``shape`` and ``dtype`` (Orbax's
        array metadata from ``checkpointer.metadata(path)``, ``jax.ShapeDtypeStruct``).

    Returns:
      None, when the checkpoint fits: every leaf of ``expected`` has a leaf of the same shape
      and dtype at the same path in ``saved``, and ``saved`` has no other.

    Raises:
      ValueError: ``check_state: the checkpoint does not fit the optimizer's state: ...`` with
        the paths missing from the checkpoint, the paths it has in excess, and the leaves whose
        shape or dtype differ.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.zeros(3)}
      >>> saved = gradtx.sgd(0.1, momentum=0.9).init(params)
      >>> gradtx.check_state(gradtx.sgd(0.1, momentum=0.9).init(params), saved)  # fits
      >>> gradtx.check_state(gradtx.sgd(0.1).init(params), saved)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: check_state: ... not in the optimizer's state: 'table/learning_rate,momentum', ...
    """
    have = _parts(saved)
    problems = _differences(_parts(expected), have)
    if problems:
        problems += _earlier_layout_hint(expected, have)
        raise ValueError(
            "check_state: the checkpoint does not fit the optimizer's state: " + "; ".join(problems)
        )


def restore_state(target: OptState, restored: PyTree) -> OptState:
    """The checkpoint's arrays in the structure of ``target``, after :func:`check_state`.

    Use it on what a checkpointer read back, with a fresh state of the optimizer as the target:

    * Flax: ``restore_state(tx.init(params), flax.serialization.msgpack_restore(data))``;
    * Orbax: ``restore_state(tx.init(params), checkpointer.restore(path))``, or, to restore onto
      the target's shardings, ``check_state(target, checkpointer.metadata(path).item_metadata)``
      first and then Orbax's own ``restore(path, target)``.

    Every leaf comes back as a JAX array of exactly the saved value (no cast: dtypes are
    checked), so training continues bit for bit. Live hyperparameters come back as saved,
    including values set with :func:`gradtx.set_hyperparams` and the flags that keep a schedule
    from overwriting them. A checkpoint written before gradtx kept each transformation's
    hyperparameters in one table (until December 2026: a ``count`` and ``hyperparams/<name>/``
    ``value``, ``residual`` and ``manual`` beside each ``inner_state``) is converted to it, and
    so is one written before Adam kept one step count for both moments (until December 2026:
    ``0/count``, ``0/ema``, ``1/1/count``, ``1/1/ema`` where :class:`gradtx.ScaleByAdamState`
    has ``count``, ``mu`` and ``nu``), and one written before the states of RMSProp, AMSGrad,
    AdaBelief, Adan, Rprop, the AdEMAMixes, Muon, ``scale_by_schedule`` and the line searches took
    optax's layouts (see :mod:`gradtx._interop.earlier_layouts`), and one of :func:`gradtx.masked`
    or :func:`gradtx.freeze` written before their state was optax's :class:`MaskedState` (until
    December 2026: the inner state alone).

    Args:
      target: the state of the optimizer to restore into (arrays or ``ShapeDtypeStruct``).
      restored: the checkpoint's tree of arrays, in the state's containers or plain dicts/lists.

    Returns:
      A state with ``target``'s tree structure and the checkpoint's values.

    Raises:
      ValueError: when the checkpoint does not fit, naming what differs (see
        :func:`check_state`).

    Example:
      >>> import gradtx, jax, jax.numpy as jnp, numpy as np
      >>> tx = gradtx.adam(gradtx.linear_schedule(0.0, 1e-3, 100))
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = tx.update(params, tx.init(params), params)
      >>> saved = jax.tree.map(np.asarray, state)  # as a checkpointer may give it back
      >>> restored = gradtx.restore_state(tx.init(params), saved)
      >>> int(restored.count), float(gradtx.hyperparams(restored)["learning_rate"])
      (1, 1.0000000656873453e-05)
    """
    from gradtx._interop import earlier_layouts  # a layer above _core

    want = _parts(target)
    have = _masked_from_bare(target, _parts(restored))
    have = _adam_from_two_counts(target, _from_earlier_layout(target, have))
    have, _ = earlier_layouts.convert(target, have)
    problems = _differences(want, have)
    if problems:
        raise ValueError(
            "restore_state: the checkpoint does not fit the optimizer's state: "
            + "; ".join(problems)
        )
    return jax.tree.structure(target).unflatten([jnp.asarray(have[p]) for p in want])
