"""The gradient-transformation pair and the transformations that do (almost) nothing."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import sharding as _sharding
from gradtx._core import tree as _tree

PyTree = Any
Params = PyTree
Updates = PyTree
OptState = PyTree


class InitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class UpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra: Any
    ) -> tuple[Updates, OptState]: ...


TransformInitFn = InitFn  # optax's names for the two functions' types
TransformUpdateFn = UpdateFn


class _Pair(NamedTuple):
    init: InitFn
    update: UpdateFn


def _abstract_aware(init: InitFn) -> InitFn:
    """``init`` that, given ``jax.ShapeDtypeStruct`` params, returns the abstract state."""
    if getattr(init, "_abstract_aware", False):
        return init

    def wrapped(params: Params) -> OptState:
        if _sharding.has_abstract_leaves(params):
            return _sharding.abstract_init(init, params)
        return init(params)

    wrapped._abstract_aware = True  # type: ignore[attr-defined]
    wrapped.__wrapped__ = init  # type: ignore[attr-defined]
    return wrapped


def _is_pair(obj: Any) -> bool:
    """Whether ``obj`` is an ``(init, update)`` NamedTuple: gradtx's, optax's, or another's."""
    return isinstance(obj, tuple) and getattr(type(obj), "_fields", None) == ("init", "update")


class _PairMeta(type):
    """``isinstance(tx, GradientTransformation)`` holds for every ``(init, update)`` NamedTuple,
    optax's included: gradtx takes optax's transformations wherever it takes its own (in
    ``chain``, the wrappers, ``with_extra_args_support``), so the type is the pair's shape, as a
    protocol would say. optax's check of its own class cannot be answered from here:
    :func:`gradtx.as_optax` gives a transformation that passes it."""

    def __instancecheck__(cls, obj: Any) -> bool:
        if type.__instancecheck__(cls, obj):
            return True
        return cls is GradientTransformation and _is_pair(obj)


class GradientTransformation(_Pair, metaclass=_PairMeta):
    """A pair of pure functions ``(init, update)``.

    ``init(params) -> state`` builds the state for a tree of params;
    ``update(updates, state, params=None, **extra) -> (updates, state)`` transforms a tree of
    updates (at the head of a chain: the gradients) and returns the new state. Extra keyword
    arguments (a loss value, say) are passed down a chain to every link that accepts them.

    ``init`` also takes ``jax.ShapeDtypeStruct`` params (a large model not yet allocated) and
    then returns the state as ``jax.ShapeDtypeStruct`` leaves, with shardings derived from the
    params' as in :func:`gradtx.state_sharding`; nothing is allocated.

    Being a NamedTuple with the same two fields as optax's, a gradtx transformation is accepted
    as the ``tx`` of ``flax.training.train_state.TrainState`` and ``flax.nnx.Optimizer``.
    """

    __slots__ = ()

    def __new__(cls, init: InitFn, update: UpdateFn):
        return super().__new__(cls, _abstract_aware(init), update)


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


def accepts_extra_args(update: Callable[..., Any]) -> bool:
    """Whether ``update`` takes ``**extra`` keyword arguments (optax's plain ones do not)."""
    if isinstance(update, types.FunctionType) and not hasattr(update, "__wrapped__"):
        # read from the code object: inspect.signature took a third of an eager update's
        # time, as every update of a live transformation builds its chain again
        return bool(update.__code__.co_flags & inspect.CO_VARKEYWORDS)
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def with_extra_args(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` with an ``update`` that accepts ``**extra`` (dropping it if ``tx`` takes none)."""
    if accepts_extra_args(tx.update):
        return tx
    return GradientTransformation(tx.init, _dropping_extra(tx.update))


# optax's name for the type of an ``update`` that takes extra keyword arguments: gradtx's
# ``UpdateFn`` already does
TransformUpdateExtraArgsFn = UpdateFn


def _dropping_extra(update: Callable[..., Any]) -> UpdateFn:
    def with_extra(updates, state, params=None, **extra):
        del extra
        return update(updates, state, params)

    return with_extra


class _ExtraArgsMeta(_PairMeta):
    """``isinstance(tx, GradientTransformationExtraArgs)`` says whether ``tx``'s ``update``
    takes extra keyword arguments: what optax's subclass promises of its instances, and true of
    every transformation gradtx makes (a chain of optax's plain ones included)."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, GradientTransformation) and accepts_extra_args(obj.update)


class GradientTransformationExtraArgs(GradientTransformation, metaclass=_ExtraArgsMeta):
    """A :class:`GradientTransformation` whose ``update`` takes extra keyword arguments.

    optax's name. Built from an ``update`` without ``**extra``, it wraps it so that the extra
    arguments are accepted and dropped; ``isinstance`` holds for any gradtx transformation whose
    ``update`` takes them (all of gradtx's own do, so ``chain(...)`` is one, as in optax).
    """

    __slots__ = ()

    def __new__(cls, init: InitFn, update: UpdateFn):
        if not accepts_extra_args(update):
            update = _dropping_extra(update)
        return super().__new__(cls, init, update)


def with_extra_args_support(tx: GradientTransformation) -> GradientTransformationExtraArgs:
    """``tx`` with an ``update`` that accepts (and, if ``tx`` takes none, drops) extra arguments.

    optax's name for wrapping a plain transformation so that a caller may pass extra keyword
    arguments (a loss, say) to every transformation alike. gradtx's transformations already
    take them and are returned as they are.

    Args:
      tx: a transformation (gradtx's or optax's).

    Returns:
      ``tx`` itself if it is a gradtx transformation whose ``update`` takes ``**extra``; else a
      :class:`GradientTransformationExtraArgs` of ``tx.init`` and ``tx.update``.

    Raises:
      TypeError: if ``tx`` is not an ``(init, update)`` pair.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> plain = gradtx.GradientTransformation(lambda p: (), lambda u, s, p=None: (u, s))
      >>> tx = gradtx.with_extra_args_support(plain)
      >>> isinstance(plain, gradtx.GradientTransformationExtraArgs)
      False
      >>> isinstance(tx, gradtx.GradientTransformationExtraArgs)
      True
      >>> tx.update(jnp.ones(2), (), loss=0.5)[0]  # the loss is dropped
      Array([1., 1.], dtype=float32)
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            "with_extra_args_support: tx must be a GradientTransformation (init, update), "
            f"got {type(tx).__name__}"
        )
    if isinstance(tx, GradientTransformationExtraArgs):
        return tx
    return GradientTransformationExtraArgs(tx.init, tx.update)


def _empty_init(params: Params) -> EmptyState:
    del params
    return EmptyState()


def stateless(fn: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    r"""A transformation without state: ``update`` returns ``fn(updates, params)``.

    .. math:: u \leftarrow f(g, \theta)

    Args:
      fn: a function of the updates tree and the params (``None`` when not given).

    Returns:
      A :class:`GradientTransformation` whose state is :class:`EmptyState`.

    Raises:
      TypeError: if ``fn`` is not callable.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> double = gradtx.stateless(lambda u, p: jax.tree.map(lambda x: 2 * x, u))
      >>> double.update({"w": jnp.ones(2)}, double.init(None))[0]["w"]
      Array([2., 2.], dtype=float32)
    """
    if not callable(fn):
        raise TypeError(f"stateless: fn must be a function of (updates, params), got {fn!r}")

    def update(updates, state, params=None, **extra):
        del extra
        return fn(updates, params), state

    return GradientTransformation(_empty_init, update)


def init_empty_state(params: Params) -> EmptyState:
    """The ``init`` of a transformation without state: :class:`EmptyState`, whatever the params.

    Args:
      params: the params (not read).

    Returns:
      ``EmptyState()``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.init_empty_state({"w": jnp.ones(2)})
      EmptyState()
    """
    del params
    return EmptyState()


def stateless_with_tree_map(
    fn: Callable[[jax.Array, jax.Array | None], jax.Array],
) -> GradientTransformation:
    r"""A transformation without state applying ``fn(update, param)`` to each leaf.

    .. math:: u_i \leftarrow f(g_i, \theta_i)

    :func:`stateless` with ``fn`` mapped over the leaves; ``param`` is ``None`` when ``update``
    is called without params.

    Args:
      fn: a function of one update leaf and its param leaf (or ``None``).

    Returns:
      A :class:`GradientTransformation` whose state is :class:`EmptyState`.

    Raises:
      TypeError: if ``fn`` is not callable.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> decay = gradtx.stateless_with_tree_map(lambda g, p: g + 0.1 * p)
      >>> params = {"w": jnp.ones(2)}
      >>> decay.update({"w": jnp.zeros(2)}, decay.init(params), params)[0]["w"]
      Array([0.1, 0.1], dtype=float32)
    """
    if not callable(fn):
        raise TypeError(
            f"stateless_with_tree_map: fn must be a function of (update, param), got {fn!r}"
        )

    def each(updates, params):
        if params is None:
            return jax.tree.map(lambda g: fn(g, None), updates)
        _tree.check_match("stateless_with_tree_map", (updates, params), ("updates", "params"))
        return jax.tree.map(fn, updates, params)

    return stateless(each)


def identity() -> GradientTransformation:
    r"""Passes updates through unchanged.

    .. math:: u \leftarrow g

    A placeholder where a transformation is expected: the link of a group that needs no
    processing, or the default of an optional step.

    Returns:
      A stateless :class:`GradientTransformation` (its state is :class:`EmptyState`).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.identity()
      >>> g = {"w": jnp.array([1.0, -2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([ 1., -2.], dtype=float32)
    """
    return stateless(lambda updates, params: updates)


def set_to_zero() -> GradientTransformation:
    r"""Replaces every update by zeros of the same shape and dtype (for frozen parameters).

    .. math:: u \leftarrow 0

    Inside :func:`partition` it freezes a group of params; :func:`freeze` does the same from a
    mask and keeps the frozen leaves out of the optimizer's state as well.

    Returns:
      A stateless :class:`GradientTransformation` (its state is :class:`EmptyState`).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.set_to_zero()
      >>> g = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3], jnp.bfloat16)}
      >>> updates, _ = tx.update(g, tx.init(g))
      >>> updates["w"], updates["b"]
      (Array([0., 0.], dtype=float32), Array([0], dtype=bfloat16))
    """
    return stateless(lambda updates, params: jax.tree.map(jnp.zeros_like, updates))


def apply_updates(params: Params, updates: Updates) -> Params:
    r"""Returns ``params + updates``, leaf by leaf, each result in its param's dtype.

    .. math:: \theta_i \leftarrow \operatorname{cast}_{\theta_i}(\theta_i + u_i)

    The sum is formed in the wider of the two dtypes (so a bf16 param gets an f32 update added
    at f32 precision) and then cast back to the param's dtype. ``None`` params stay ``None``
    (whatever ``updates`` holds there, as in optax), and a ``float0`` update (the gradient of
    an integer leaf, from ``jax.grad(..., allow_int=True)``, passed through
    :func:`gradtx.freeze`) leaves its param unchanged.

    Args:
      params: the tree of params.
      updates: a tree of the params' structure and shapes, as a transformation's ``update``
        returns it (the learning rate and the descent sign already applied).

    Returns:
      The new params, a tree of the params' structure with each leaf in its param's dtype.

    Raises:
      TypeError: for an update leaf that is not numeric, naming its path.
      ValueError: when the two trees' structures or leaf shapes differ, naming the paths.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.array([1.0, 2.0], jnp.bfloat16)}
      >>> updates = {"w": jnp.array([0.5, -0.5])}  # float32
      >>> gradtx.apply_updates(params, updates)["w"]  # added in float32, stored as bfloat16
      Array([1.5, 1.5], dtype=bfloat16)
    """

    for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]:
        dtype = np.asarray(u).dtype if isinstance(u, (str, bytes)) else getattr(u, "dtype", None)
        if dtype is not None and not (
            jnp.issubdtype(dtype, jnp.number) or dtype in (np.bool_, jax.dtypes.float0)
        ):
            raise TypeError(
                f"apply_updates: updates must be numeric arrays, got dtype {dtype} at "
                f"{_tree.path_str(path)!r}"
            )

    def add(p, u):
        if getattr(u, "dtype", None) == jax.dtypes.float0:
            return p  # the gradient of an integer leaf (jax.grad(..., allow_int=True)): no step
        p, u = jnp.asarray(p), jnp.asarray(u)
        wide = _tree.wider(p.dtype, u.dtype)
        return (p.astype(wide) + u.astype(wide)).astype(p.dtype)

    updates = _tree.masked_by_none(params, updates)
    return _tree.map(add, params, updates, owner="apply_updates", names=("params", "updates"))
