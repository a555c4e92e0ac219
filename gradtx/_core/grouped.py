"""Many-leaf models: an elementwise chain run on one buffer per dtype instead of leaf by leaf.

Why the offsets are data: XLA compiles one kernel per distinct fused computation and reuses it
for identical ones. Slicing leaf *i* out of a group's buffer at a constant offset makes every
leaf's kernel distinct (thousands of LLVM compilations for thousands of leaves: on the 2-core
machine 1000 leaves took 30 s, as long as the per-leaf chain). With the offset a runtime scalar,
all leaves of one shape share one kernel, and the concatenation that builds the buffers is a
single op; the compiled step has a handful of kernels whatever the number of leaves.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, Params, PyTree, Updates, with_extra_args
from gradtx._core.checks import check_flag

_SHOWN = 5  # leaves listed per buffer in an error message


class GroupedState(NamedTuple):
    """The state of :func:`grouped`."""

    offsets: tuple[jax.Array, ...]  # int32 [] per leaf, in flattening order: the leaf's start
    #   in its dtype group's buffer (data, not a constant: see the module note)
    inner_state: Any  # the wrapped transformation's state for {dtype name: 1-D buffer}


class _Layout(NamedTuple):
    treedef: Any
    shapes: tuple[tuple[int, ...], ...]  # per leaf
    sizes: tuple[int, ...]  # per leaf
    members: dict[str, tuple[int, ...]]  # buffer key -> leaf indices, in flattening order
    alone: frozenset[str]  # the keys of leaves kept as they are (larger than max_grouped_size)


def _layout(tree: PyTree, max_grouped_size: int) -> _Layout:
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
    shapes = tuple(tuple(np.shape(x)) for _, x in with_paths)
    sizes = tuple(int(np.prod(s, dtype=np.int64)) for s in shapes)
    members: dict[str, list[int]] = {}
    alone = []
    for i, (path, x) in enumerate(with_paths):
        if sizes[i] > max_grouped_size:
            key = "leaf:" + _tree.path_str(path)
            alone.append(key)
        else:
            key = jnp.result_type(x).name
        members.setdefault(key, []).append(i)
    return _Layout(
        treedef,
        shapes,
        sizes,
        {k: tuple(v) for k, v in sorted(members.items())},
        frozenset(alone),
    )


def _offsets(layout: _Layout) -> list[int]:
    """Each leaf's start in its group's buffer (0 for a leaf kept alone)."""
    starts = [0] * len(layout.sizes)
    for key, idx in layout.members.items():
        total = 0
        for i in idx:
            starts[i] = total
            total += layout.sizes[i]
        if total > _tree.INT32_MAX and key not in layout.alone:
            raise ValueError(
                f"grouped: the {key} leaves hold {total} elements together, more than an int32 "
                f"offset can address; lower max_grouped_size"
            )
    return starts


def _concat(layout: _Layout, leaves: list[Any], what: str) -> dict[str, jax.Array]:
    """One 1-D buffer per dtype group, the leaves raveled in flattening order; large leaves as
    they are (no copy)."""
    buffers = {}
    for key, idx in layout.members.items():
        if key in layout.alone:
            buffers[key] = leaves[idx[0]]
            continue
        dtypes = {jnp.result_type(leaves[i]).name for i in idx}
        if len(dtypes) > 1:
            raise ValueError(
                f"grouped: the {what} of the {key} updates have several dtypes "
                f"{sorted(dtypes)}; a param and its gradient must share one dtype"
            )
        buffers[key] = jnp.concatenate([jnp.ravel(leaves[i]) for i in idx])
    return buffers


def _split(layout: _Layout, buffers: dict[str, jax.Array], offsets) -> PyTree:
    leaves: list[Any] = [None] * len(layout.shapes)
    for key, idx in layout.members.items():
        if key in layout.alone:
            leaves[idx[0]] = buffers[key]
            continue
        for i in idx:
            piece = jax.lax.dynamic_slice(buffers[key], (offsets[i],), (layout.sizes[i],))
            leaves[i] = piece.reshape(layout.shapes[i])
    return jax.tree.unflatten(layout.treedef, leaves)


def _members(layout: _Layout, tree: PyTree) -> str:
    """Which leaves (paths and shapes) make up each buffer, for an error message: without params
    a wrongly shaped gradient shows only as a buffer of another size."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    described = [f"{_tree.path_str(path)!r} {np.shape(x)}" for path, x in leaves]
    groups = []
    for key, idx in layout.members.items():
        shown = ", ".join(described[i] for i in idx[:_SHOWN])
        more = len(idx) - _SHOWN
        groups.append(f"{key}: {shown}" + (f" and {more} more" if more > 0 else ""))
    return "; ".join(groups)


def _grouped(tx: GradientTransformation, max_grouped_size: int) -> GradientTransformation:
    def init(params: Params) -> GroupedState:
        _tree.check_leaves("grouped", params, "params")
        layout = _layout(params, max_grouped_size)
        offsets = tuple(jnp.asarray(o, jnp.int32) for o in _offsets(layout))
        inner = tx.init(_concat(layout, jax.tree.leaves(params), "params"))
        return GroupedState(offsets=offsets, inner_state=inner)

    def update(updates: Updates, state: GroupedState, params: Params | None = None, **extra):
        _tree.check_leaves("grouped", updates, "updates")
        layout = _layout(updates, max_grouped_size)
        if not isinstance(state, GroupedState) or len(state.offsets) != len(layout.sizes):
            got = (
                f"a GroupedState for {len(state.offsets)} leaves"
                if isinstance(state, GroupedState)
                else f"a {type(state).__name__}"
            )
            raise ValueError(
                f"grouped: the state must be the GroupedState that init made for these "
                f"{len(layout.sizes)} leaves, got {got}"
            )
        flat_params = None
        if params is not None:
            _tree.check_match("grouped", (updates, params), ("updates", "params"))
            flat_params = _concat(layout, jax.tree.leaves(params), "params")
        flat = _concat(layout, jax.tree.leaves(updates), "updates")
        try:
            new, inner = tx.update(flat, state.inner_state, flat_params, **extra)
        except ValueError as err:
            raise ValueError(
                f"grouped: {err} (the wrapped transformation sees one buffer per dtype, keyed "
                f"{sorted(flat)}, of the leaves {_members(layout, updates)}; was the state made "
                f"by this transformation's init, for leaves of these shapes?)"
            ) from None
        return _split(layout, new, state.offsets), GroupedState(state.offsets, inner)

    return GradientTransformation(init, update)


def _probe_trees() -> tuple[PyTree, list[PyTree]]:
    """Params and gradients with leaves of several sizes and ranks, one of them large enough
    for 8-bit moments (size-dependent storage must show up as a difference)."""
    rng = np.random.default_rng(0)
    shapes = {"a": (3, 4), "b": (5,), "c": (2, 2, 3), "d": (), "e": (64, 65)}

    def draw(scale):
        return {
            k: jnp.asarray(scale * rng.standard_normal(s), jnp.float32) for k, s in shapes.items()
        }

    return draw(1.0), [draw(0.1 * (k + 1)) for k in range(3)]


def _check_elementwise(tx: GradientTransformation, wrapped: GradientTransformation) -> None:
    """Raises unless ``tx`` gives the same updates leaf by leaf and on concatenated leaves."""
    params, grads = _probe_trees()
    try:
        ref_state, flat_state = tx.init(params), wrapped.init(params)
        for step, g in enumerate(grads):
            ref, ref_state = tx.update(g, ref_state, params)
            got, flat_state = wrapped.update(g, flat_state, params)
            _tree.check_match("grouped", (ref, got), ("per-leaf updates", "grouped updates"))
            for r, u in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
                r, u = np.asarray(r, np.float64), np.asarray(u, np.float64)
                scale = max(float(np.max(np.abs(r), initial=0.0)), 1e-30)
                if not np.allclose(u, r, rtol=1e-5, atol=1e-5 * scale):
                    raise _NotElementwise(step)
    except _NotElementwise as err:
        raise ValueError(
            f"grouped: tx does not act leaf-independently: on a probe tree its updates at step "
            f"{err.args[0]} differ when the leaves are concatenated. Per-leaf norms "
            f"(clip_by_norm, scale_by_trust_ratio, lamb, lars, adaptive_grad_clip), low-memory "
            f"moments (8-bit blocks, stochastically rounded bfloat16), masks and partitions "
            f"that depend on leaf shapes or paths cannot be grouped: group the "
            f"elementwise part only (e.g. partition(...) with grouped inner transformations), or "
            f"pass check=False if the difference is intended"
        ) from None
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"grouped: could not check tx on a probe tree ({err}); a transformation that needs "
            f"extra arguments or a particular tree can be wrapped with check=False"
        ) from None


class _NotElementwise(Exception):
    pass


def grouped(
    tx: GradientTransformation, *, max_grouped_size: int = 65536, check: bool = True
) -> GradientTransformation:
    r"""Runs ``tx`` on one concatenated buffer per dtype instead of on each leaf.

    Each update, the leaves of the gradients (and of the params, when given) are raveled and
    concatenated into one 1-D buffer per dtype; ``tx`` transforms these buffers, its state
    (moments...) is kept in the same flat form, and the result is cut back into the tree's
    leaves. For every element the arithmetic is the per-leaf arithmetic, so an elementwise chain
    gives the numbers of ``tx`` itself: most elements bitwise, the others within an ulp or two
    where XLA compiles the same formula differently for another shape (as it does between the
    per-leaf program run eagerly and under ``jit``). Reductions over all leaves (the global norm
    of :func:`clip_by_global_norm`) are summed in another order, equal to a few float32 ulps.

    Leaves with more than ``max_grouped_size`` elements are not copied: each is handed to
    ``tx`` as it is, under its own key. Concatenating costs one extra pass over the gradients
    and the params and splitting one over the updates; for a large leaf that bandwidth costs
    more than its per-leaf kernels cost to compile, for a small one it is the other way round.

    Why: a model with thousands of leaves makes the per-leaf program thousands of small loops,
    slow to trace and compile. Grouped, the compiled step has a few kernels for the whole chain
    plus one shared slicing kernel per distinct leaf shape; trace and compile time no longer grow
    with the number of leaves the same way.

    ``tx`` must treat the elements independently of the leaf they sit in: elementwise links
    (``scale_by_adam``, ``trace``, ``scale_by_rms``, ``add_decayed_weights`` without a mask,
    ``scale_by_learning_rate``, schedules, ``clip``) and reductions over all leaves together
    (``clip_by_global_norm``). Per-leaf norms (``clip_by_norm``, ``scale_by_trust_ratio``,
    ``lamb``, ``lars``, ``adaptive_grad_clip``), low-memory moments (``optim_bits=8``: blocks
    would span leaves and small leaves would be quantized; bfloat16 moments: their stochastic
    rounding depends on the position) and masks or labels given as trees of the params cannot be
    grouped. With ``check`` (the default), ``grouped`` runs ``tx`` for three steps on a
    probe tree, leaf by leaf and grouped, and raises if the updates differ; a transformation
    that needs extra ``update`` arguments, or a mask tree, fails that check and must be wrapped
    with ``check=False`` (your responsibility then). To combine grouping with per-leaf parts, use
    ``grouped`` inside :func:`partition`.

    On a mesh, :func:`state_sharding` lays the state of each large leaf out like its param and
    replicates the buffer of the small ones (or splits it, with ``zero_axis``).

    Gradients must have one dtype per params dtype group (as ``jax.grad`` returns them).
    :func:`hyperparams` and :func:`set_hyperparams` reach ``tx``'s hyperparameters through the
    state as before.

    Args:
      tx: the transformation to run on the concatenated buffers.
      max_grouped_size: leaves with more elements keep their own buffer, keyed
        ``"leaf:<path>"`` (default 65536, 256 KiB of float32: on a 1000-leaf transformer-shaped
        tree it keeps the embeddings and the head out of the copies; grouping them too made
        the step several times slower on the 2-core CPU machine, for no compile-time gain).
      check: probe ``tx`` for leaf independence when called (keyword-only). Default True.

    Returns:
      A :class:`GradientTransformation` with :class:`GroupedState` state.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2))
      >>> fast = gradtx.grouped(tx)
      >>> params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3, jnp.bfloat16)}
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> state = fast.init(params)
      >>> sorted(state.inner_state[1].inner_state[0].mu)  # one moment buffer per dtype
      ['bfloat16', 'float32']
      >>> updates, state = fast.update(grads, state, params)
      >>> reference, _ = tx.update(grads, tx.init(params), params)
      >>> all(bool((a == b).all()) for a, b in zip(jax.tree.leaves(updates),
      ...                                          jax.tree.leaves(reference)))
      True
    """
    check = check_flag("grouped", "check", check)
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"grouped: tx must be a GradientTransformation (init, update), got {type(tx).__name__}"
        )
    tx = with_extra_args(tx)
    if not isinstance(max_grouped_size, (int, np.integer)) or isinstance(max_grouped_size, bool):
        raise TypeError(f"grouped: max_grouped_size must be an int, got {max_grouped_size!r}")
    if max_grouped_size < 0:
        raise ValueError(f"grouped: max_grouped_size must be an int >= 0, got {max_grouped_size!r}")
    wrapped = _grouped(tx, int(max_grouped_size))
    if check:  # all probe leaves concatenated, whatever max_grouped_size
        _check_elementwise(tx, _grouped(tx, _tree.INT32_MAX))
    return wrapped
