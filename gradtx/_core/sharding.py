"""Where the optimizer state lives on a mesh: the params' shardings, or ZeRO-1 over an axis.

An optimizer state is mostly trees shaped like the params (moments, traces, averages) plus a
few scalars (counts, hyperparameters). Its leaves are matched to the params by key path: a
state leaf whose path ends with a param's path, and whose shape is that param's, is laid out
like that param, and so is a large leaf that :func:`grouped` keeps in its own buffer (keyed
``"leaf:<param path>"``); every other leaf (scalars, 8-bit blocks, grouped buffers of small
leaves) is replicated. With
``zero_axis`` (ZeRO stage 1), leaves not already split along that mesh axis are split along it
on their first dimension it divides, so each device keeps about ``1/n`` of the state.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gradtx._core import tree as _tree

PyTree = Any


def _mesh_of(owner: str, params: PyTree):
    """The one mesh the params are laid out on (None when none is a ``NamedSharding``)."""
    meshes = []
    for leaf in jax.tree.leaves(params):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding) and sharding.mesh not in meshes:
            meshes.append(sharding.mesh)
    if len(meshes) > 1:
        raise ValueError(
            f"{owner}: the params are laid out on {len(meshes)} different meshes; "
            "put them on one mesh"
        )
    return meshes[0] if meshes else None


def _spec_entries(spec: PartitionSpec, ndim: int) -> list[Any]:
    entries = list(spec) + [None] * (ndim - len(spec))
    return entries[:ndim]


def _uses(entry: Any, axis: str) -> bool:
    return entry == axis or (isinstance(entry, tuple) and axis in entry)


def _split_over(entries: list[Any], shape: tuple[int, ...], axis: str, size: int) -> list[Any]:
    """``entries`` with ``axis`` on the first unsplit dimension ``size`` divides (if any)."""
    if any(_uses(e, axis) for e in entries):
        return entries
    for dim, (entry, extent) in enumerate(zip(entries, shape)):
        if entry is None and extent >= size and extent % size == 0:
            return entries[:dim] + [axis] + entries[dim + 1 :]
    return entries


def _in_hyperparameter_table(path: tuple[Any, ...]) -> bool:
    """Whether ``path`` leads into the ``table`` of live hyperparameters (a HyperState field)."""
    return any(isinstance(k, jax.tree_util.GetAttrKey) and k.name == "table" for k in path)


def derive(
    owner: str, params: PyTree, abstract_state: PyTree, zero_axis: str | None = None
) -> PyTree:
    """The sharding of every leaf of ``abstract_state`` (a state made for ``params``)."""
    mesh = _mesh_of(owner, params)
    if zero_axis is not None:
        if not isinstance(zero_axis, str):
            raise TypeError(f"{owner}: zero_axis must be a mesh axis name, got {zero_axis!r}")
        if mesh is None:
            raise ValueError(
                f"{owner}: zero_axis={zero_axis!r} needs params laid out on a Mesh "
                "(NamedSharding); none of them is"
            )
        if zero_axis not in mesh.axis_names:
            raise ValueError(
                f"{owner}: zero_axis {zero_axis!r} is not an axis of the params' mesh "
                f"{tuple(mesh.axis_names)}"
            )
    if mesh is None:
        shardings = [getattr(x, "sharding", None) for x in jax.tree.leaves(params)]
        single = next((s for s in shardings if s is not None), None)
        if single is None:
            raise ValueError(
                f"{owner}: the params carry no sharding (give jax.Arrays placed on devices, or "
                "jax.ShapeDtypeStruct with sharding=)"
            )
        return jax.tree.map(lambda _: single, abstract_state)

    by_path, grouped_keys = {}, {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        sharding = getattr(leaf, "sharding", None)
        spec = sharding.spec if isinstance(sharding, NamedSharding) else PartitionSpec()
        by_path[tuple(path)] = (tuple(np.shape(leaf)), spec)
        grouped_keys["leaf:" + _tree.path_str(path)] = by_path[tuple(path)]
    longest_first = sorted(by_path, key=len, reverse=True)

    def leaf_sharding(path, leaf):
        if _in_hyperparameter_table(path):  # a few scalars every device reads: replicated
            return NamedSharding(mesh, PartitionSpec())
        shape = tuple(leaf.shape)
        spec = PartitionSpec()
        for param_path in longest_first:
            n = len(param_path)
            if (n == 0 or tuple(path[-n:]) == param_path) and by_path[param_path][0] == shape:
                spec = by_path[param_path][1]
                break
        else:  # a large leaf that grouped keeps whole, under "leaf:<param path>"
            for key in path:
                found = grouped_keys.get(getattr(key, "key", None))
                if found is not None and found[0] == shape:
                    spec = found[1]
                    break
        entries = _spec_entries(spec, len(shape))
        if zero_axis is not None:
            entries = _split_over(entries, shape, zero_axis, mesh.shape[zero_axis])
        while entries and entries[-1] is None:
            entries.pop()
        return NamedSharding(mesh, PartitionSpec(*entries))

    return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def state_sharding(tx: Any, params: PyTree, *, zero_axis: str | None = None) -> PyTree:
    r"""The sharding of each leaf of ``tx.init(params)``, derived from the params' shardings.

    Moments and other param-shaped state are laid out like their param; scalars (counts,
    hyperparameters) and state not shaped like a param are replicated over the params' mesh.
    Give the result as ``out_shardings`` of ``jax.jit(tx.init)`` (under ``jit`` on a mesh with
    ``Auto`` axes XLA does not carry a param's sharding over to the zeros it starts from) and
    of the training step.

    With ``zero_axis`` (ZeRO stage 1), every state leaf not already split along that mesh axis
    is split along it, on its first dimension the axis size divides: with params replicated
    over ``n`` data-parallel devices, each device keeps about ``1/n`` of the moments. The
    trajectory is the same; XLA gathers each step's updates to the replicated params.

    Args:
      tx: the :class:`GradientTransformation`.
      params: the params as placed ``jax.Array``\ s, or ``jax.ShapeDtypeStruct``\ s with
        ``sharding=``, all on one mesh.
      zero_axis: a mesh axis name to shard the state over (ZeRO-1), or ``None`` (the
        default: every state leaf is laid out like its param, or replicated).

    Returns:
      A tree of :class:`jax.sharding.NamedSharding`, structured like ``tx.init(params)``.

    Raises:
      TypeError: if ``tx`` is not a transformation.

    Example:
      A replicated model whose Adam moments are split over 1 "data" device:

      >>> import gradtx, jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("data",))
      >>> params = jax.device_put({"w": jnp.ones((4, 3))}, NamedSharding(mesh, P()))
      >>> tx = gradtx.adam(1e-3)
      >>> shardings = gradtx.state_sharding(tx, params, zero_axis="data")
      >>> state = jax.jit(tx.init, out_shardings=shardings)(params)
      >>> state.inner_state[0].mu["w"].sharding.spec
      P('data',)

    References:
      Rajbhandari, Rasley, Ruwase and He, *ZeRO: Memory Optimizations Toward Training Trillion
      Parameter Models*, SC 2020 (stage 1: the optimizer state partitioned over data-parallel
      devices).
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            "state_sharding: tx must be a GradientTransformation (init, update), "
            f"got {type(tx).__name__}"
        )
    abstract = jax.eval_shape(tx.init, params)
    return derive("state_sharding", params, abstract, zero_axis)


def abstract_init(init: Any, params: PyTree) -> PyTree:
    """``init`` on ``jax.ShapeDtypeStruct`` params: the state's shapes, dtypes and shardings,
    with nothing allocated."""
    abstract = jax.eval_shape(init, params)
    if not any(getattr(x, "sharding", None) is not None for x in jax.tree.leaves(params)):
        return abstract
    shardings = derive("init", params, abstract)
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
    )


def has_abstract_leaves(params: PyTree) -> bool:
    return any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params))
