"""Wrappers that run a transformation only at the steps a condition picks: the other steps pass
the updates through (``conditionally_transform``) or replace them by zeros
(``conditionally_mask``), the inner state held either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState
from gradtx._core.checks import check_flag
from gradtx._wrappers.accumulation import _check_tx, _run_or_hold


class ConditionFn(Protocol):
    """optax's type of ``should_transform_fn``: the step count (and, when forwarded, the extra
    arguments of ``update``) to a bool scalar, whether the inner transformation runs."""

    def __call__(self, step: jax.Array, **extra_args: Any) -> jax.typing.ArrayLike: ...


def _check_condition(owner: str, should_transform_fn: Any, forward_extra_args: Any) -> bool:
    if not callable(should_transform_fn):
        raise TypeError(
            f"{owner}: should_transform_fn must be a function of the step count, "
            f"got {type(should_transform_fn).__name__}"
        )
    return check_flag(owner, "forward_extra_args", forward_extra_args)


def _decide(owner: str, fn: Callable, step: jax.Array, extra: dict[str, Any]) -> jax.Array:
    """``fn(step, **extra)`` as a bool scalar (an integer one is true where nonzero, as
    ``lax.cond`` takes it)."""
    run = jnp.asarray(fn(step, **extra))
    if run.shape != ():
        raise ValueError(
            f"{owner}: should_transform_fn must return a scalar, got shape {run.shape}"
        )
    if not (run.dtype == jnp.bool_ or jnp.issubdtype(run.dtype, jnp.integer)):
        raise TypeError(f"{owner}: should_transform_fn must return a bool, got dtype {run.dtype}")
    return run != 0 if run.dtype != jnp.bool_ else run


def _wrapper(owner, inner, should_transform_fn, forward_extra_args, state_type, held):
    """The transformation both wrappers are: ``held(run, tx, updates, inner_state, params,
    extra)`` gives the updates and the inner state of a step."""
    tx = _check_tx(owner, "inner", inner)
    forward = _check_condition(owner, should_transform_fn, forward_extra_args)

    def init(params):
        return state_type(step=_tree.zero_count(), inner_state=tx.init(params))

    def update(updates, state, params=None, **extra):
        if not isinstance(state, state_type):
            raise ValueError(
                f"{owner}: the state must be the {state_type.__name__} that init made, "
                f"got {type(state).__name__}"
            )
        run = _decide(owner, should_transform_fn, state.step, extra if forward else {})
        out, inner_state = held(run, tx, updates, state.inner_state, params, extra)
        step = _tree.saturating_increment(state.step)
        return out, state_type(step=step, inner_state=inner_state)

    return GradientTransformation(init, update)


# ---- conditionally_transform -------------------------------------------------------------


class ConditionallyTransformState(NamedTuple):
    """The state of :func:`conditionally_transform` (optax's fields, in optax's order)."""

    inner_state: OptState  # the inner transformation's state; unchanged on the steps it skips
    step: jax.Array  # int32 []: updates so far (the count the condition sees), saturating


def _run_or_pass(run: jax.Array, tx, updates, inner_state, params, extra):
    """``tx.update(...)`` where ``run`` is True; else the updates as they are (in the dtypes
    the inner update would give them, so that both branches agree) and ``inner_state``."""

    def apply(_):
        return tx.update(updates, inner_state, params, **extra)

    def hold(_):
        shapes, _ = jax.eval_shape(apply, None)
        if jax.tree.structure(shapes) != jax.tree.structure(updates):
            return updates, inner_state
        return jax.tree.map(lambda u, s: jnp.asarray(u).astype(s.dtype), updates, shapes), (
            inner_state
        )

    if not isinstance(run, jax.core.Tracer):  # eagerly: a Python branch (see _run_or_hold)
        return apply(None) if bool(run) else hold(None)
    return jax.lax.cond(run, apply, hold, None)


def conditionally_transform(
    inner: GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    r"""Runs ``inner`` only at the steps where ``should_transform_fn`` says so; the other steps
    pass the updates through unchanged.

    .. math:: u_t = \begin{cases} T(g_t) & \text{if } f(t) \\ g_t & \text{otherwise}
       \end{cases}, \qquad t = 0, 1, \ldots \text{ (updates before this one)}

    ``inner``'s state is held as it is on the steps it does not run. Under ``jit`` the choice
    is a ``lax.cond``: ``inner`` is computed only at the steps it runs.
    :func:`conditionally_mask` gives zeros at the other steps instead.

    Args:
      inner: the transformation to run.
      should_transform_fn: ``f(step) -> bool`` scalar, with ``step`` the int32 count of the
        updates before this one (0 first); with ``forward_extra_args``, ``f(step, **extra)``.
      forward_extra_args: pass ``update``'s extra keyword arguments (a loss, say) on to
        ``should_transform_fn`` (they reach ``inner`` either way). Default ``False``.

    Returns:
      A :class:`GradientTransformation` with :class:`ConditionallyTransformState` state.

    Raises:
      TypeError: if ``inner`` is not a transformation, ``should_transform_fn`` not callable or
        ``forward_extra_args`` not a bool; at update, if the condition is not a bool.
      ValueError: at update, if the condition is not a scalar.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.conditionally_transform(gradtx.scale(2.0), lambda step: step < 2)
      >>> state = tx.init(jnp.zeros(1))
      >>> for _ in range(3):
      ...     updates, state = tx.update(jnp.ones(1), state)
      ...     print(float(updates[0]))
      2.0
      2.0
      1.0
    """
    return _wrapper(
        "conditionally_transform",
        inner,
        should_transform_fn,
        forward_extra_args,
        ConditionallyTransformState,
        _run_or_pass,
    )


# ---- conditionally_mask ------------------------------------------------------------------


class ConditionallyMaskState(NamedTuple):
    """The state of :func:`conditionally_mask` (optax's fields, in optax's order)."""

    step: jax.Array  # int32 []: updates so far (the count the condition sees), saturating
    inner_state: OptState  # the inner transformation's state; unchanged on the steps it skips


def conditionally_mask(
    inner: GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    r"""Runs ``inner`` only at the steps where ``should_transform_fn`` says so; the other steps
    give zero updates.

    .. math:: u_t = \begin{cases} T(g_t) & \text{if } f(t) \\ 0 & \text{otherwise}
       \end{cases}, \qquad t = 0, 1, \ldots \text{ (updates before this one)}

    ``inner``'s state is held as it is on the steps it does not run, and the zeros are
    ``-0.0``, which :func:`apply_updates` adds without changing any param's bits. Under
    ``jit`` the choice is a ``lax.cond``: ``inner`` is computed only at the steps it runs.
    :func:`conditionally_transform` passes the updates through instead.

    Args:
      inner: the transformation to run (typically a whole optimizer).
      should_transform_fn: ``f(step) -> bool`` scalar, with ``step`` the int32 count of the
        updates before this one (0 first); with ``forward_extra_args``, ``f(step, **extra)``.
      forward_extra_args: pass ``update``'s extra keyword arguments (a loss, say) on to
        ``should_transform_fn`` (they reach ``inner`` either way). Default ``False``.

    Returns:
      A :class:`GradientTransformation` with :class:`ConditionallyMaskState` state.

    Raises:
      TypeError: if ``inner`` is not a transformation, ``should_transform_fn`` not callable or
        ``forward_extra_args`` not a bool; at update, if the condition is not a bool.
      ValueError: at update, if the condition is not a scalar.

    Example:
      Train only while the loss is above 0.1:

      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.conditionally_mask(
      ...     gradtx.sgd(0.5), lambda step, loss: loss > 0.1, forward_extra_args=True
      ... )
      >>> state = tx.init(jnp.zeros(1))
      >>> tx.update(jnp.ones(1), state, loss=1.0)[0], tx.update(jnp.ones(1), state, loss=0.0)[0]
      (Array([-0.5], dtype=float32), Array([-0.], dtype=float32))
    """
    return _wrapper(
        "conditionally_mask",
        inner,
        should_transform_fn,
        forward_extra_args,
        ConditionallyMaskState,
        _run_or_hold,
    )
