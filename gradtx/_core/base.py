"""The gradient-transformation pair and the transformations that do (almost) nothing."""

from __future__ import annotations

import inspect
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


class GradientTransformation(_Pair):
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
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def with_extra_args(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` with an ``update`` that accepts ``**extra`` (dropping it if ``tx`` takes none)."""
    if accepts_extra_args(tx.update):
        return tx

    def update(updates, state, params=None, **extra):
        del extra
        return tx.update(updates, state, params)

    return GradientTransformation(tx.init, update)


def _empty_init(params: Params) -> EmptyState:
    del params
    return EmptyState()


def stateless(fn: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    """A transformation without state: ``update`` returns ``fn(updates, params)``.

    Args:
      fn: a function of the updates tree and the params (``None`` when not given).

    Returns:
      A :class:`GradientTransformation` whose state is :class:`EmptyState`.

    Example:
      >>> import gradtx, jax.numpy as jnp
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


def identity() -> GradientTransformation:
    """Passes updates through unchanged."""
    return stateless(lambda updates, params: updates)


def set_to_zero() -> GradientTransformation:
    """Replaces every update by zeros of the same shape and dtype (for frozen parameters)."""
    return stateless(lambda updates, params: jax.tree.map(jnp.zeros_like, updates))


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns ``params + updates``, leaf by leaf, each result in its param's dtype.

    The sum is formed in the wider of the two dtypes (so a bf16 param gets an f32 update added
    at f32 precision) and then cast back to the param's dtype. ``None`` leaves stay ``None``,
    and a ``float0`` update (the gradient of an integer leaf, from ``jax.grad(...,
    allow_int=True)``, passed through :func:`gradtx.freeze`) leaves its param unchanged.
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

    return _tree.map(add, params, updates, owner="apply_updates", names=("params", "updates"))
