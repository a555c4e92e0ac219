"""Combinators: chain, named_chain, join (several transformations of one input), and the
wrappers that route leaves: masked, freeze, partition (parameter groups)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree, identity, with_extra_args
from gradtx._core.checks import check_flag
from gradtx._core.masking import (
    MaskedState,
    as_flag,
    as_label,
    check_labels,
    fitted,
    is_params_fn,
    masked_out,
    per_leaf,
    static_tree,
)
from gradtx._core.masking import check_mask as check_mask
from gradtx._core.state_utils import _Params


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
    r"""Applies transformations one after the other; the state is the tuple of their states.

    .. math:: u \leftarrow T_n(\cdots T_2(T_1(g)))

    Each link gets the updates the previous one returned, and the same params. Extra keyword
    arguments given to ``update`` reach every link (links from libraries whose ``update`` takes
    none, like optax's plain transformations, are called without them).

    Args:
      *transforms: the links :math:`T_1, \dots, T_n`, applied in the order given (gradtx's or
        optax's transformations). Without any, the updates pass unchanged.

    Returns:
      A :class:`GradientTransformation` whose state is the tuple of the links' states, in
      order.

    Raises:
      TypeError: for a link that is not a transformation, naming its position.

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

    The updates go through the links in the order given, as in :func:`chain`. Names show in
    :func:`gradtx.hyperparams` keys when two links share a hyperparameter name.

    Args:
      *named: ``(name, transformation)`` pairs, in the order the links are applied; the names
        are unique strings.

    Returns:
      A :class:`GradientTransformation` whose state is ``{name: link state}``.

    Raises:
      TypeError: for an argument that is not a ``(str, transformation)`` pair.
      ValueError: for a name given twice.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.named_chain(("clip", gradtx.clip(1.0)), ("sgd", gradtx.sgd(0.1)))
      >>> params = {"w": jnp.array([3.0, -0.5])}
      >>> state = tx.init(params)
      >>> list(state)
      ['clip', 'sgd']
      >>> tx.update(params, state, params)[0]["w"]  # clipped to [1, -0.5], times -0.1
      Array([-0.1 ,  0.05], dtype=float32)
      >>> two = gradtx.named_chain(("a", gradtx.sgd(0.1)), ("b", gradtx.sgd(0.2)))
      >>> sorted(gradtx.hyperparams(two.init(params)))  # a shared name, qualified
      ['a/learning_rate', 'b/learning_rate']
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
        # a dict comes back from jit with its keys sorted: the order is not part of the check
        if not isinstance(state, dict) or sorted(state) != sorted(names):
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


# ---- routing leaves: masked, freeze, partition ---------------------------------------------
#
# A wrapper that sends some leaves to an inner transformation gives it the whole tree with holes
# in place of the other leaves (gradtx._core.masking): masked and freeze put optax's MaskedNode
# where optax does and keep the inner state in optax's MaskedState; partition puts None in place
# of each leaf and keeps the inner states bare. A hole is an empty subtree: the inner
# transformation sees no leaf and allocates no state there, while the tree keeps the params'
# containers, so that a mask or label tree written for the whole model also fits what a nested
# wrapper sees (cut at the holes by masking.fit).


def _holes(tree: PyTree, keep: list[bool]) -> PyTree:
    """``tree`` with None in place of the leaves not kept."""
    flat, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([x if k else None for x, k in zip(flat, keep)])


def _restrict_extra(extra: dict[str, Any], treedef: Any, keep: list[bool]) -> dict[str, Any]:
    """Extra arguments shaped like the updates get the same holes; others pass unchanged."""
    return {
        name: _holes(value, keep) if jax.tree.structure(value) == treedef else value
        for name, value in extra.items()
    }


def _flat_output(owner: str, treedef: Any, new: PyTree) -> list[Any]:
    try:
        return treedef.flatten_up_to(new)
    except (ValueError, TypeError):
        raise ValueError(
            f"{owner}: the inner transformation returned updates with another tree structure "
            f"than it was given: {jax.tree.structure(new)} vs {treedef}"
        ) from None


def _check_tx(owner: str, name: str, tx: Any) -> GradientTransformation:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"{owner}: {name} must be a GradientTransformation (init, update), "
            f"got {type(tx).__name__}"
        )
    return with_extra_args(tx)


def _masked(
    owner: str,
    inner: Any,
    mask: Any,
    *,
    select: bool,
    others: Callable[[jax.Array], jax.Array] | None,
    mask_compatible_extra_args: bool,
) -> GradientTransformation:
    """``inner`` on the leaves whose mask is ``select``; the rest mapped by ``others`` (or kept).

    ``inner`` sees the tree with a :class:`MaskedNode` in place of each subtree whose mask leaf
    is not ``select``; the state is ``MaskedState(inner_state)``.
    """
    inner = _check_tx(owner, "inner", inner)
    check_flag(owner, "mask_compatible_extra_args", mask_compatible_extra_args)
    static = None if is_params_fn(mask) else static_tree(owner, mask, as_flag, "mask")
    rest = (lambda sub: sub) if others is None else (lambda sub: jax.tree.map(others, sub))

    def kept(tree):
        """A tree of bools, a prefix of ``tree``: True for the subtrees ``inner`` gets."""
        spec = static_tree(owner, mask(tree), as_flag, "mask") if static is None else static
        # a subtree of the mask below a hole of the tree (a nested wrapper's) keeps the hole
        return jax.tree.map(lambda flag: flag == select, fitted(owner, "mask", spec, tree, select))

    def init(params):
        if isinstance(params, _Params):  # tree_map_params' placeholder: no tree to mask
            return MaskedState(inner.init(params))
        return MaskedState(inner.init(masked_out(params, kept(params))))

    def update(updates, state, params=None, **extra):
        if not isinstance(state, MaskedState):
            raise ValueError(
                f"{owner}: the state must be the MaskedState that init made, got "
                f"{type(state).__name__} (a checkpoint of gradtx's earlier layout, the inner "
                f"state alone, is converted by gradtx.restore_state)"
            )
        if params is not None:
            _tree.check_match(owner, (params, updates), ("params", "updates"))
        keep = kept(updates if params is None else params)
        if mask_compatible_extra_args:
            structure = jax.tree.structure(updates)
            extra = {
                name: masked_out(value, keep) if jax.tree.structure(value) == structure else value
                for name, value in extra.items()
            }
        new, inner_state = inner.update(
            masked_out(updates, keep),
            state.inner_state,
            None if params is None else masked_out(params, keep),
            **extra,
        )
        try:
            merged = jax.tree.map(lambda k, n, o: n if k else rest(o), keep, new, updates)
        except (ValueError, TypeError):
            merged = None
        if merged is None or jax.tree.structure(merged) != jax.tree.structure(updates):
            raise ValueError(
                f"{owner}: the inner transformation returned updates with another tree "
                f"structure than it was given: {jax.tree.structure(new)} vs "
                f"{jax.tree.structure(masked_out(updates, keep))}"
            )
        return merged, MaskedState(inner_state)

    return GradientTransformation(init, update)


def masked(
    inner: GradientTransformation, mask: Any, *, mask_compatible_extra_args: bool = False
) -> GradientTransformation:
    r"""Applies ``inner`` to the leaves where ``mask`` is True; passes the others through.

    .. math::
      u_i \leftarrow \begin{cases} T(u_M)_i & m_i = \text{True} \\ u_i & m_i = \text{False}
      \end{cases}

    where :math:`T` is ``inner`` and :math:`u_M` the selected leaves only. ``inner`` sees the
    updates (and params) tree with a :class:`MaskedNode` in place of each subtree left out, as
    optax's ``masked`` gives it (one placeholder for a whole subtree that a mask leaf leaves
    out), so its state holds the selected leaves only, and tree-wide quantities (a global norm)
    cover those leaves only.

    Args:
      inner: the transformation for the selected leaves.
      mask: a tree of bools with the params' structure, or a prefix of it (``True`` selects
        everything, ``{"encoder": True, "decoder": False}`` whole subtrees); or a function of the
        params returning one (told apart as optax does: a tree whose leaves are all callable;
        a callable pytree with bool leaves, such as an Equinox module, is a mask tree). The
        function is called by ``init`` on the params and by ``update`` on the params, or on the
        updates when no params are given (same structure and shapes). The mask must be static:
        built from the structure, names and shapes, not from traced values. Nested inside
        another ``masked``, a :func:`freeze` or a :func:`partition`, a mask still describes the
        whole params tree: where the outer wrapper left leaves out (a :class:`MaskedNode` or
        ``None`` there), it may go on below, and that part of it is not used.
      mask_compatible_extra_args: also restrict extra arguments of ``update`` whose tree
        structure is the updates' to the selected leaves. Default False, optax's.

    Returns:
      A :class:`GradientTransformation` whose state is optax's :class:`MaskedState`
      ``(inner_state)``, ``inner``'s state for the selected leaves (:func:`gradtx.hyperparams`
      finds ``inner``'s hyperparameters under their own names).

    Raises:
      TypeError: for a mask leaf that is not a bool (checked when built if the mask is a tree).
      ValueError: when the mask does not fit the params, naming the paths.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
      >>> not_bias = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
      >>> tx = gradtx.masked(gradtx.add_decayed_weights(0.5), not_bias)
      >>> updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
      >>> updates["w"][0], updates["b"]
      (Array([0.5, 0.5], dtype=float32), Array([0., 0.], dtype=float32))
      >>> momentum = gradtx.masked(gradtx.trace(0.9), {"w": True, "b": False})
      >>> momentum.init(params).inner_state.trace["b"]  # no momentum for the bias
      MaskedNode()
    """
    return _masked(
        "masked",
        inner,
        mask,
        select=True,
        others=None,
        mask_compatible_extra_args=mask_compatible_extra_args,
    )


def freeze(mask: Any, *, inner: GradientTransformation | None = None) -> GradientTransformation:
    r"""Zeroes the updates of frozen leaves (``mask`` True), keeping them out of any state.

    .. math::
      u_i \leftarrow \begin{cases} 0 & m_i = \text{True (frozen)} \\ T(u_F)_i & m_i =
      \text{False} \end{cases}

    With ``inner=None``, :math:`T` is the identity: optax's ``freeze``, with its state
    ``MaskedState(inner_state=EmptyState())``. Given an optimizer as ``inner``, it is applied to
    the trainable leaves only (:math:`u_F`), which it sees with a :class:`MaskedNode` in place of
    each frozen subtree, as :func:`masked` gives them, and its state holds no moment for a
    frozen leaf: ``freeze(mask, inner=adam(lr))`` is ``partition({"train": adam(lr), "frozen":
    freeze(True)}, labels)`` without writing the labels, and its inner state is that of the
    ``"train"`` group of optax's ``selective_transform(adam(lr), freeze_mask=mask)``. Placing a
    plain ``freeze(mask)`` before an optimizer in a chain instead would still give the optimizer
    state for the frozen leaves, and decoupled weight decay would move them.

    Args:
      mask: a tree of bools (True: frozen) with the params' structure or a prefix of it, or a
        function of the params returning one; as in :func:`masked`.
      inner: optional transformation for the trainable leaves.

    Returns:
      A :class:`GradientTransformation` whose state is :class:`MaskedState` ``(inner_state)``:
      :class:`EmptyState` without ``inner``, else ``inner``'s state for the trainable leaves.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"embed": jnp.ones(3), "head": jnp.ones(2)}
      >>> tx = gradtx.freeze({"embed": True, "head": False}, inner=gradtx.sgd(0.1, momentum=0.9))
      >>> state = tx.init(params)
      >>> state.inner_state[0].trace  # momentum for the trainable leaves only
      {'embed': MaskedNode(), 'head': Array([0., 0.], dtype=float32)}
      >>> updates, state = tx.update(params, state, params)
      >>> updates["embed"], updates["head"]
      (Array([0., 0., 0.], dtype=float32), Array([-0.1, -0.1], dtype=float32))

    References:
      Yosinski et al., *How transferable are features in deep neural networks?*, 2014 (frozen
      versus fine-tuned layers).
    """
    return _masked(
        "freeze",
        identity() if inner is None else inner,
        mask,
        select=False,
        others=jnp.zeros_like,
        mask_compatible_extra_args=False,
    )


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    r"""Parameter groups: each leaf goes to the transformation of its label.

    .. math::
      u_i \leftarrow T_{\ell_i}(u_{\ell_i})_i, \qquad
      u_\ell = \{u_j : \ell_j = \ell\}

    Each group's transformation runs on its own leaves only, with its own state and
    hyperparameters: the result equals running each transformation separately on its part of
    the params. Typical uses: no weight decay on biases and norm scales, a lower learning rate
    for an embedding, frozen layers (a group with :func:`freeze` ``(True)``).

    Labels: ``param_labels`` is a tree of labels with the params' structure, or a prefix of it
    (``{"encoder": "frozen", "decoder": "train"}`` labels whole subtrees), or a function of the
    params returning one, called as in :func:`masked`. A label is a string or another hashable,
    non-container value. Every label must have a transformation: a missing one is an error
    naming it (when built, for a label tree). A transformation whose label no leaf carries is
    allowed, so that one set of groups serves models with and without, say, frozen layers: its
    state is that of an empty tree.

    Hyperparameters: the state is a dict keyed by label, so :func:`gradtx.hyperparams` qualifies
    a name shared by groups with the label (``"decay/learning_rate"``) and
    :func:`gradtx.set_hyperparams` changes one group only.

    Args:
      transforms: a mapping from label to transformation. Labels must be of one sortable type
        (strings, usually), since states are dicts keyed by them.
      param_labels: the labels, as above.
      mask_compatible_extra_args: also restrict extra arguments of ``update`` whose tree
        structure is the updates' to each group's leaves.

    Returns:
      A :class:`GradientTransformation` whose state is ``{label: group state}``.

    Raises:
      TypeError: for a transformation, label or mapping of the wrong type.
      ValueError: for a label without a transformation, or labels that do not fit the params.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> params = {"dense": {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}}
      >>> labels = lambda p: jax.tree.map(lambda x: "decay" if x.ndim > 1 else "no_decay", p)
      >>> tx = gradtx.partition(
      ...     {"decay": gradtx.adamw(1e-3, weight_decay=0.1), "no_decay": gradtx.adam(1e-3)},
      ...     labels,
      ... )
      >>> state = tx.init(params)
      >>> [k for k in gradtx.hyperparams(state) if k.endswith("learning_rate")]
      ['decay/learning_rate', 'no_decay/learning_rate']
      >>> state = gradtx.set_hyperparams(state, **{"no_decay/learning_rate": 0.0})
      >>> updates, state = tx.update(params, state, params)
      >>> float(abs(updates["dense"]["b"]).max())  # that group's learning rate is now 0
      0.0

    References:
      Howard and Ruder, *Universal Language Model Fine-tuning for Text Classification*, 2018
      (a learning rate per layer group).
    """
    owner = "partition"
    if not isinstance(transforms, Mapping):
        raise TypeError(
            f"{owner}: transforms must be a mapping from label to transformation, "
            f"got {type(transforms).__name__}"
        )
    if not transforms:
        raise ValueError(f"{owner}: transforms must have at least one label")
    try:
        sorted(transforms)
    except TypeError:
        raise TypeError(
            f"{owner}: the labels of transforms must be of one sortable type (strings, usually), "
            f"got {list(transforms)}"
        ) from None
    groups = {
        label: _check_tx(owner, f"transforms[{label!r}]", tx) for label, tx in transforms.items()
    }
    check_flag(owner, "mask_compatible_extra_args", mask_compatible_extra_args)

    def checked(spec):
        labels = static_tree(owner, spec, as_label, "param_labels")
        check_labels(owner, labels, groups, "param_labels")
        return labels

    static = None if is_params_fn(param_labels) else checked(param_labels)

    def labels_of(tree):
        spec = checked(param_labels(tree)) if static is None else static
        return per_leaf(owner, "labels", spec, tree)

    def init(params):
        labels = labels_of(params)
        return {
            group: tx.init(_holes(params, [label == group for label in labels]))
            for group, tx in groups.items()
        }

    def update(updates, state, params=None, **extra):
        if not isinstance(state, Mapping) or set(state) != set(groups):
            got = list(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"{owner}: the state must be the dict of group states that init made, with "
                f"keys {list(groups)}, got {got}"
            )
        if params is not None:
            _tree.check_match(owner, (params, updates), ("params", "updates"))
        labels = labels_of(updates if params is None else params)
        flat, treedef = jax.tree.flatten(updates)
        out, new_state = list(flat), {}
        for group, tx in groups.items():
            keep = [label == group for label in labels]
            group_extra = (
                _restrict_extra(extra, treedef, keep) if mask_compatible_extra_args else extra
            )
            group_params = None if params is None else _holes(params, keep)
            new, new_state[group] = tx.update(
                _holes(updates, keep), state[group], group_params, **group_extra
            )
            for i, (k, n) in enumerate(zip(keep, _flat_output(owner, treedef, new))):
                if k:
                    out[i] = n
        return treedef.unflatten(out), new_state

    return GradientTransformation(init, update)
