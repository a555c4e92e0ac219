"""optax's ``inject_hyperparams``, over gradtx's live hyperparameters.

optax makes a factory's hyperparameters injectable by building the transformation again at
every step from values kept in the wrapper's state. A gradtx transformation already keeps its
hyperparameters in its own state and reads them from there, so rebuilding it would change
nothing: here the wrapper builds it once, from the values given, and at every step writes the
values of its ``hyperparams`` dict (which code written for optax reads and assigns) into the
inner state's tables before the update. Plain schedules stay gradtx's own (evaluated inside the
inner update from its step count; the dict reports their value, as in optax, and assigning them
has no effect). A value equal to the stored one keeps the stored row, so a float32 ``1 - b1`` is
still the once-rounded one (optax's injected float32 arrays lose that).

A factory that is not gradtx's (an optax one, whose state has no live tables) is handled as
optax does: built again at every step from the current values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import hyper, hyper_access
from gradtx._core.base import GradientTransformation, OptState, with_extra_args
from gradtx._core.numerics import safe_increment


class InjectStatefulHyperparamsState(NamedTuple):
    """The state of :func:`inject_hyperparams` (optax's fields)."""

    count: jax.Array  # int32 []: updates so far
    hyperparams: dict[str, jax.Array]  # name -> []: the values the last update used
    hyperparams_states: dict[str, Any]  # name -> the state of that hyperparameter's schedule
    inner_state: OptState


class InjectHyperparamsState(NamedTuple):
    """optax's earlier state of ``inject_hyperparams``, without schedule states (kept for
    code that names it; :func:`inject_hyperparams` returns
    :class:`InjectStatefulHyperparamsState`)."""

    count: jax.Array  # int32 []
    hyperparams: dict[str, jax.Array]
    inner_state: OptState


@runtime_checkable
class StatefulSchedule(Protocol):
    """A schedule with a state of its own: ``init()``, ``update(state, **extra)`` and
    ``__call__(state, **extra)`` (the value for this step), as in optax."""

    def init(self) -> Any: ...

    def update(self, state: Any, **extra: Any) -> Any: ...

    def __call__(self, state: Any, **extra: Any) -> jax.typing.ArrayLike: ...


class WrappedScheduleState(NamedTuple):
    """The state of a :class:`WrappedSchedule`."""

    count: jax.Array  # int32 []: the step the schedule is at


class WrappedSchedule:
    """A plain schedule (a function of the step count) as a :class:`StatefulSchedule`."""

    def __init__(self, schedule_fn: Callable[[jax.Array], jax.typing.ArrayLike]):
        if not callable(schedule_fn):
            raise TypeError(
                f"WrappedSchedule: schedule_fn must be a function of the step count, got "
                f"{type(schedule_fn).__name__}"
            )
        self.schedule_fn = schedule_fn

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(count=jnp.zeros([], jnp.int32))

    def update(self, state: WrappedScheduleState, **extra: Any) -> WrappedScheduleState:
        del extra
        return WrappedScheduleState(count=safe_increment(state.count))

    def __call__(self, state: WrappedScheduleState, **extra: Any) -> jax.typing.ArrayLike:
        del extra
        return self.schedule_fn(state.count)


def _is_number(x: Any) -> bool:
    """A number or numeric array (not a bool, nor a random key: optax keeps those fixed)."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.number, np.ndarray, jax.Array)):
        return False
    return not (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key))


def _as_dtype(x: Any, dtype: Any) -> Any:
    """optax's rule: a JAX array of a dtype of its own stays as it is; other floats (Python
    floats, weakly typed or NumPy float arrays) are cast to ``dtype``; integers stay."""
    if isinstance(x, jax.Array) and not x.weak_type:
        return x
    if jnp.issubdtype(jnp.result_type(x), jnp.floating):
        return jnp.asarray(x, dtype)
    return jnp.asarray(x)


def _float_dtype_of(tree: Any) -> Any:
    """The widest floating dtype of the tree's leaves (float32 when there are none)."""
    dtypes = [
        jnp.result_type(x)
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    if not dtypes:
        return jnp.result_type(float)
    return max(dtypes, key=lambda d: jnp.finfo(d).bits)


def live_names(state: OptState) -> set[str]:
    """The plain names of every live hyperparameter in ``state`` (shared ones once)."""
    return set(hyper_access._catalogue(state).values())


def take_changed_values(state: OptState, source: OptState) -> OptState:
    """``state`` with each hyperparameter's row taken from ``source`` where the values differ.

    ``source`` is a state of the same transformation built again from other values (its tables
    in the same order); the step counts stay ``state``'s. A value equal to the stored one keeps
    the stored row, whose residual makes ``1 - b1`` exact in float32. For
    :func:`gradtx.inject_hyperparams`, which builds the transformation again at every step.
    """
    tables = iter(node for _, node in hyper_access._hyper_states(source))

    def replace(prefix, node):
        other = next(tables, None)
        if other is None or other.names != node.names:
            raise ValueError(
                f"the transformation built again has other hyperparameters at "
                f"{prefix or 'the root'} ({None if other is None else other.names} instead of "
                f"{node.names})"
            )
        old, new = node.array[..., 1:, :], other.array[..., 1:, :].astype(node.array.dtype)
        same = (old[..., hyper._VALUE] == new[..., hyper._VALUE])[..., None]
        return node.with_array(node.array.at[..., 1:, :].set(jnp.where(same, old, new)))

    return hyper_access._map_hyper_states(state, replace)


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """optax's ``inject_hyperparams``: a factory whose hyperparameters are in the state.

    ``inject_hyperparams(gradtx.adam)(learning_rate=0.1)`` is Adam with a state
    ``InjectStatefulHyperparamsState(count, hyperparams, hyperparams_states, inner_state)``:
    ``state.hyperparams`` maps each numeric argument to its value, and a value assigned there
    (``state.hyperparams["learning_rate"] = 0.01``) is used by the next update. Arguments given
    as schedules (functions of the step count, or optax-style stateful schedules) are
    evaluated at every step; the dict shows the value the last update used, and assigning it
    has no effect. Booleans, ``None``, the ``static_args`` and numbers that the gradtx factory
    keeps fixed (integer sizes such as ``memory_size``) are not in the dict: assigning one is an
    error at the next update, not silently ignored.

    gradtx's own optimizers need no wrapper (:func:`gradtx.hyperparams` and
    :func:`gradtx.set_hyperparams` do this on any state); this is for code written for optax.

    Args:
      inner_factory: a function returning a transformation (gradtx's or optax's).
      static_args: the name or names of callable arguments that are not schedules.
      hyperparam_dtype: the dtype of the float values in the dict; by default the widest
        floating dtype of the params (of the updates when ``update`` gets no params).

    Returns:
      A function taking ``inner_factory``'s arguments and returning the transformation.

    Raises:
      ValueError: if ``static_args`` names an argument ``inner_factory`` does not have.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> state.hyperparams["learning_rate"] = jnp.asarray(0.0)
      >>> updates, state = tx.update(jnp.ones(2), state)
      >>> updates.tolist()
      [-0.0, -0.0]
    """
    owner = "inject_hyperparams"
    if not callable(inner_factory):
        raise TypeError(
            f"{owner}: inner_factory must be a function returning a transformation, got "
            f"{type(inner_factory).__name__}"
        )
    if isinstance(static_args, str):
        static = {static_args}
    elif isinstance(static_args, Iterable) and all(isinstance(a, str) for a in static_args):
        static = set(static_args)
    else:
        raise TypeError(f"{owner}: static_args must be a name or names, got {static_args!r}")
    if hyperparam_dtype is not None and not jnp.issubdtype(hyperparam_dtype, jnp.floating):
        raise ValueError(
            f"{owner}: hyperparam_dtype must be a floating dtype, got {hyperparam_dtype!r}"
        )
    signature = inspect.signature(inner_factory)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(
            f"{owner}: static_args {sorted(unknown)} are not arguments of "
            f"{getattr(inner_factory, '__name__', inner_factory)!r}; it takes "
            f"{list(signature.parameters)}"
        )

    def wrapped(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"{owner}: give {name!r}'s arguments by keyword")
            else:
                arguments[name] = value
        fixed, numbers, schedules = {}, {}, {}
        for name, value in arguments.items():
            if name in static or isinstance(value, bool) or value is None:
                fixed[name] = value
            elif isinstance(value, StatefulSchedule):
                schedules[name] = value
            elif callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
                schedules[name] = WrappedSchedule(value)
            elif _is_number(value):
                numbers[name] = value
            else:
                fixed[name] = value
        first = {k: f(f.init()) for k, f in schedules.items()}
        inner = inner_factory(**fixed, **numbers, **first)
        # the numbers the factory keeps fixed (sizes, initial values it needs as Python
        # numbers), found once by building it with a traced value in their place
        kept_fixed: dict[str, Any] = {}

        def decide(params):
            if "names" in kept_fixed:
                return kept_fixed["names"]
            live = live_names(inner.init(params))
            names = set()
            for name in numbers:
                if name in live:
                    continue
                try:
                    jax.eval_shape(
                        lambda v, name=name: inner_factory(
                            **fixed, **{**numbers, name: v}, **first
                        ).init(params),
                        jnp.asarray(numbers[name]),
                    )
                except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
                    names.add(name)
            kept_fixed["names"] = frozenset(names)
            return kept_fixed["names"]

        def dtype_of(params, updates):
            if hyperparam_dtype is not None:
                return hyperparam_dtype
            return _float_dtype_of(params if params is not None else updates)

        def init(params):
            not_injected = decide(params)
            dtype = dtype_of(params, None)
            states = {k: f.init() for k, f in schedules.items()}
            values = {k: _as_dtype(v, dtype) for k, v in numbers.items() if k not in not_injected}
            values.update({k: _as_dtype(f(states[k]), dtype) for k, f in schedules.items()})
            return InjectStatefulHyperparamsState(
                count=jnp.zeros([], jnp.int32),
                hyperparams=values,
                hyperparams_states=states,
                inner_state=inner.init(params),
            )

        def update(updates, state, params=None, **extra):
            not_injected = decide(params if params is not None else updates)
            unexpected = sorted(set(state.hyperparams) - (set(numbers) | set(schedules)))
            unexpected += sorted(set(state.hyperparams) & not_injected)
            if unexpected:
                raise ValueError(
                    f"{owner}: state.hyperparams has {unexpected}, which this transformation "
                    f"does not take as injected hyperparameters (booleans, None, static_args and "
                    f"the numbers the factory keeps fixed are not injectable)"
                )
            dtype = dtype_of(params, updates)
            values = {k: _as_dtype(v, dtype) for k, v in state.hyperparams.items() if k in numbers}
            values.update(
                {
                    k: _as_dtype(f(state.hyperparams_states[k], **extra), dtype)
                    for k, f in schedules.items()
                }
            )
            new_states = {
                k: f.update(state.hyperparams_states[k], **extra) for k, f in schedules.items()
            }
            rest = {k: v for k, v in numbers.items() if k in not_injected}
            tx = inner_factory(**fixed, **rest, **values)
            inner_state = state.inner_state
            if live_names(inner_state):
                # gradtx reads its hyperparameters from its state: take the values of the
                # tables the factory builds from the new values (whatever it computes from them)
                rebuilt = tx.init(params if params is not None else updates)
                inner_state = take_changed_values(inner_state, rebuilt)
            updates, inner_state = with_extra_args(tx).update(updates, inner_state, params, **extra)
            return updates, InjectStatefulHyperparamsState(
                count=safe_increment(state.count),
                hyperparams=values,
                hyperparams_states=new_states,
                inner_state=inner_state,
            )

        return GradientTransformation(init, update)

    return wrapped


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """optax's earlier name of :func:`inject_hyperparams`, which takes stateful schedules too.

    Args:
      inner_factory: a function returning a transformation.
      static_args: the name or names of callable arguments that are not schedules.
      hyperparam_dtype: the dtype of the float values in the dict.

    Returns:
      The same as :func:`inject_hyperparams`.

    Example:
      >>> import gradtx
      >>> tx = gradtx.inject_stateful_hyperparams(gradtx.adam)(learning_rate=1e-3)
    """
    return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
