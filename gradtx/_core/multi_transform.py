"""optax's parameter groups, in optax's state layout: multi_transform, selective_transform.

:func:`gradtx.partition` (:mod:`gradtx._core.combine`) routes leaves with ``None`` in place of
the leaves left out and keeps the inner states bare (``{label: state}``). The names here are
optax's and keep optax's layout, for code and checkpoints written against it, as
:func:`gradtx.masked` and :func:`gradtx.freeze` do: the state is
``MultiTransformState(inner_states={label: MaskedState(inner_state)})``, and each group's inner
state holds a :class:`MaskedNode` where another group's subtree is, exactly where optax puts
one (:mod:`gradtx._core.masking`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax

from gradtx._core import combine as _combine
from gradtx._core import masking as _masking
from gradtx._core.base import GradientTransformation, Params, PyTree, set_to_zero
from gradtx._core.checks import check_flag
from gradtx._core.masking import MaskedNode as MaskedNode
from gradtx._core.masking import MaskedState as MaskedState
from gradtx._core.masking import masked_out as _masked_out

MaskOrFn = Any | Callable[[Params], Any] | None
"""A mask argument: a tree of bools (or a prefix of the params' tree), a function of the params
returning one, or ``None``; optax's name for the type."""


_NO_GROUP = object()  # the label of a hole's subtree (a nested wrapper's): in no group


class MultiTransformState(NamedTuple):
    """The state of :func:`multi_transform` (optax's ``PartitionState``)."""

    inner_states: Mapping[Hashable, MaskedState]  # label -> that group's MaskedState


def _merged(mask: PyTree, new: PyTree, old: PyTree) -> PyTree:
    return jax.tree.map(lambda keep, n, o: n if keep else o, mask, new, old)


def multi_transform(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    r"""Parameter groups in optax's state layout: each leaf goes to the transformation of its label.

    .. math::
      u_i \leftarrow T_{\ell_i}(u_{\ell_i})_i, \qquad u_\ell = \{u_j : \ell_j = \ell\}

    optax's ``multi_transform`` (its older name for ``optax.transforms.partition``): the same
    groups as :func:`gradtx.partition`, with optax's state, for code and checkpoints written
    against optax. Each group's transformation sees the params and updates with a
    :class:`MaskedNode` in place of every subtree of another label (a subtree given one label
    by a prefix of the labels tree is one placeholder), and keeps state for its own leaves only.

    Labels are read as optax reads them: ``param_labels`` (or its value on the params in
    ``init``, on the updates in ``update``) must be a tree of hashable labels with the params'
    structure or a prefix of it, every label must have a transformation (both checked by
    ``init``, a ``ValueError`` naming the labels or the paths), and a transformation whose
    label no leaf carries keeps the state of an empty tree.

    Args:
      transforms: a mapping from label to transformation.
      param_labels: a tree of labels with the params' structure or a prefix of it, or a function
        of the params (or updates) returning one. The labels must be static.
      mask_compatible_extra_args: also give each group its part of the extra arguments of
        ``update`` whose tree structure is the updates'. Default False, optax's.

    Returns:
      A :class:`GradientTransformation` whose state is :class:`MultiTransformState`
      ``(inner_states={label: MaskedState(inner_state)})``.

    Raises:
      TypeError: for transforms that is not a mapping of transformations, a flag that is not a
        bool, or a label that is not hashable (when built, for a tree of labels).
      ValueError: by ``init``, for a label without a transformation or labels that do not fit
        the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(1)}
      >>> tx = gradtx.multi_transform(
      ...     {"sgd": gradtx.sgd(0.1), "frozen": gradtx.set_to_zero()}, {"w": "sgd", "b": "frozen"})
      >>> state = tx.init(params)
      >>> updates, state = tx.update(params, state, params)
      >>> updates["w"], updates["b"]
      (Array([-0.1, -0.1], dtype=float32), Array([0.], dtype=float32))
      >>> type(state).__name__, list(state.inner_states)
      ('MultiTransformState', ['sgd', 'frozen'])
    """
    return _groups(
        "multi_transform",
        transforms,
        param_labels,
        "param_labels",
        mask_compatible_extra_args=mask_compatible_extra_args,
    )


def _groups(
    owner: str,
    transforms: Any,
    param_labels: Any,
    labels_name: str,
    *,
    mask_compatible_extra_args: Any,
) -> GradientTransformation:
    """:func:`multi_transform`, its errors naming ``owner`` and the labels as ``labels_name``."""
    if not isinstance(transforms, Mapping):
        raise TypeError(
            f"{owner}: transforms must be a mapping from label to transformation, "
            f"got {type(transforms).__name__}"
        )
    groups = {
        label: _combine._check_tx(owner, f"transforms[{label!r}]", tx)
        for label, tx in transforms.items()
    }
    mask_compatible_extra_args = check_flag(
        owner, "mask_compatible_extra_args", mask_compatible_extra_args
    )

    def checked(spec: PyTree) -> PyTree:
        return _masking.static_tree(owner, spec, _masking.as_label, labels_name)

    static = None if _masking.is_params_fn(param_labels) else checked(param_labels)

    def labels_of(tree: PyTree) -> tuple[PyTree, PyTree]:
        """The labels as given, and fitted to ``tree`` (a prefix of it, cut at its holes)."""
        labels = checked(param_labels(tree)) if static is None else static
        return labels, _masking.fitted(owner, labels_name, labels, tree, fill=_NO_GROUP)

    def group_mask(labels: PyTree, group: Hashable) -> PyTree:
        return jax.tree.map(lambda label: label == group, labels)

    def init(params):
        given, labels = labels_of(params)
        _masking.check_labels(owner, given, groups, labels_name)
        return MultiTransformState(
            {
                group: MaskedState(tx.init(_masked_out(params, group_mask(labels, group))))
                for group, tx in groups.items()
            }
        )

    def update(updates, state, params=None, **extra):
        inner_states = getattr(state, "inner_states", None)
        if not isinstance(inner_states, Mapping) or set(inner_states) != set(groups):
            got = list(inner_states) if isinstance(inner_states, Mapping) else type(state).__name__
            raise ValueError(
                f"{owner}: the state must be the MultiTransformState that init made, with "
                f"groups {list(groups)}, got {got}"
            )
        _, labels = labels_of(updates)
        structure = jax.tree.structure(updates)
        new_states = {}
        for group, tx in groups.items():
            mask = group_mask(labels, group)
            group_extra = {
                name: _masked_out(value, mask)
                if mask_compatible_extra_args and jax.tree.structure(value) == structure
                else value
                for name, value in extra.items()
            }
            new, inner = tx.update(
                _masked_out(updates, mask),
                inner_states[group].inner_state,
                None if params is None else _masked_out(params, mask),
                **group_extra,
            )
            updates = _merged(mask, new, updates)
            new_states[group] = MaskedState(inner)
        return updates, MultiTransformState(new_states)

    return GradientTransformation(init, update)


def selective_transform(
    optimizer: GradientTransformation, *, freeze_mask: Any
) -> GradientTransformation:
    r"""Trains the leaves where ``freeze_mask`` is False with ``optimizer``; zeroes the others.

    .. math::
      u_i \leftarrow \begin{cases} 0 & m_i = \text{True (frozen)} \\ T(u_F)_i & m_i =
      \text{False} \end{cases}

    optax's ``selective_transform``: :func:`multi_transform` with the groups ``"train"``
    (``optimizer``) and ``"freeze"`` (:func:`gradtx.set_to_zero`), so that ``optimizer`` keeps
    no state for a frozen leaf. :func:`gradtx.freeze` ``(mask, inner=optimizer)`` gives the
    same updates, with the ``"train"`` group's :class:`MaskedState` alone as its state.

    Args:
      optimizer: the transformation of the trainable leaves.
      freeze_mask: a bool (True freezes everything), a tree of bools with the params' structure
        or a prefix of it (True: frozen), or a function of the params returning one (an
        extension: optax's would freeze every leaf; told from a tree as :func:`gradtx.masked`
        tells them). It must be static.

    Returns:
      A :class:`GradientTransformation` whose state is :class:`MultiTransformState` with the
      groups ``"train"`` and ``"freeze"``.

    Raises:
      TypeError: for an optimizer that is not a transformation, or a mask leaf that is not a
        bool (when built, for a tree).
      ValueError: by ``init``, for a mask that does not fit the params.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> params = {"embed": jnp.ones(2), "head": jnp.ones(2)}
      >>> tx = gradtx.selective_transform(
      ...     gradtx.sgd(0.1, momentum=0.9), freeze_mask={"embed": True, "head": False})
      >>> state = tx.init(params)
      >>> is_node = lambda x: isinstance(x, gradtx.MaskedNode)
      >>> train = jax.tree.leaves(state.inner_states["train"], is_leaf=is_node)
      >>> [x for x in train if is_node(x)]  # the momentum the frozen "embed" does not have
      [MaskedNode()]
      >>> updates, state = tx.update(params, state, params)
      >>> updates["embed"], updates["head"]
      (Array([0., 0.], dtype=float32), Array([-0.1, -0.1], dtype=float32))
    """
    owner = "selective_transform"
    optimizer = _combine._check_tx(owner, "optimizer", optimizer)

    def labels_of(mask: PyTree) -> PyTree:
        mask = _masking.static_tree(owner, mask, _masking.as_flag, "freeze_mask")
        return jax.tree.map(lambda frozen: "freeze" if frozen else "train", mask)

    labels: Any
    if _masking.is_params_fn(freeze_mask):

        def labels(params: PyTree) -> PyTree:
            return labels_of(freeze_mask(params))

    else:
        labels = labels_of(freeze_mask)

    return _groups(
        owner,
        {"train": optimizer, "freeze": set_to_zero()},
        labels,
        "freeze_mask",
        mask_compatible_extra_args=False,
    )
