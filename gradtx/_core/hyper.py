"""Live hyperparameters: values and schedules kept in the state, read and changed without retracing.

Every public factory hands its numeric hyperparameters to :func:`live`. They are validated there,
on concrete Python values, and stored in the state as arrays, so that:

* changing one (:func:`gradtx.set_hyperparams`) changes data, not the trace: no recompilation;
* a hyperparameter may follow a schedule (a function of the step count) with the same state
  structure as a float, so checkpoints and jitted steps do not care which it is;
* :func:`gradtx.hyperparams` reads the values the next update will use, in ``jit`` or out.

The update math itself lives in private "build" functions that take the current values and
return a plain :class:`GradientTransformation`; :func:`live` rebuilds it at trace time from the
values in the state.

Float32 exactness: an exponential average needs ``1 - decay``. optax computes it from the Python
float in double precision and rounds once; a float32 array of ``0.9`` gives a ``1 - decay`` one
float32 ulp away. Each value is therefore stored with its rounding residual (``value`` plus
``residual`` is the exact Python float), and :func:`one_minus` uses both, which reproduces the
once-rounded complement: gradtx's live hyperparameters give the same float32 numbers as
constants baked into the trace.

Storage: one array per transformation. A jitted call pays for every buffer passed in and out
(about 2 µs each on XLA:CPU, more than a small model's whole update), so the step count and
every hyperparameter's value, residual and "set by hand" flag share one small float array, the
state's ``table``: row 0 holds the step count split in two halves that float32 holds exactly
(``count // 65536`` and ``count % 65536``), row ``1 + i`` the value, residual and flag (0 or 1)
of the ``i``-th name, in the factory's argument order. The array is the value of a one-entry
dict whose key is the names, comma-separated, so the names are in the tree structure and in
checkpoints and cost nothing per call. :func:`gradtx.hyperparams` and
:func:`gradtx.set_hyperparams` (:mod:`gradtx._core.hyper_access`) and the state's ``count`` and
``hyperparams`` properties read and write it; :func:`gradtx.state_sharding`
replicates it; :func:`gradtx.restore_state` converts a checkpoint written in the earlier layout
(a count and three arrays per hyperparameter).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation, OptState
from gradtx._core.checks import (
    _float_dtype,
    check_hyperparam,
)

Schedule = Callable[[jax.Array], jax.typing.ArrayLike]
ScalarOrSchedule = float | jax.Array | Schedule


class Hyperparam(NamedTuple):
    """One live hyperparameter, as :attr:`HyperState.hyperparams` shows it (a view of the table).

    All three fields have the state's batch shape (``[]``, or ``[N]`` for a swept state)."""

    value: jax.Array  # float32 (float64 with x64): the value the next update uses
    residual: jax.Array  # same dtype: the exact value minus ``value`` (0 unless given a float)
    manual: jax.Array  # bool: set by set_hyperparams; a schedule no longer overwrites ``value``


_HALF = 65536  # the count is stored as (count // _HALF, count % _HALF): both exact in float32
_VALUE, _RESIDUAL, _MANUAL = 0, 1, 2  # the columns of a hyperparameter's row


class HyperState(NamedTuple):
    """The state of a transformation with live hyperparameters.

    ``table`` is a one-entry dict: its key lists the hyperparameters' names in row order,
    comma-separated (so that the names are part of the tree structure, and a checkpoint, which
    keeps dict keys, records which row is which), its value the array of the module note. Read
    it with :func:`gradtx.hyperparams`, ``state.count`` and ``state.hyperparams``.
    """

    table: dict[str, jax.Array]  # {"b1,b2,...": float [1 + n, 3]}: the count, then n rows
    inner_state: OptState  # the state of the transformation built from the values

    @property
    def names(self) -> tuple[str, ...]:
        """The hyperparameters' names, in row order (the factory's argument order)."""
        (key,) = self.table
        return tuple(key.split(",")) if key else ()

    @property
    def array(self) -> jax.Array:
        """The table's array: row 0 the count, row ``1 + i`` the ``i``-th name's."""
        (array,) = self.table.values()
        return array

    @property
    def count(self) -> jax.Array:
        """int32: updates taken so far (the step schedules see), saturating at int32 max."""
        return _count_of(self.array)

    @property
    def hyperparams(self) -> dict[str, Hyperparam]:
        """Each hyperparameter's value, residual and flag, by name."""
        t = self.array
        return {
            k: Hyperparam(
                t[..., 1 + i, _VALUE], t[..., 1 + i, _RESIDUAL], t[..., 1 + i, _MANUAL] > 0
            )
            for i, k in enumerate(self.names)
        }

    def __getitem__(self, index: Any) -> Any:
        # Positions are the state's inside: code written for optax indexes optimizer states
        # (``opt_state[0].mu`` of Adam's, ``state[-1]`` of a chain's last link), and there the
        # table is not a position. The table and inner state are reached by name; iterating
        # and ``len`` stay the pair's (what pytrees and serialization use).
        if isinstance(self.inner_state, tuple):
            return self.inner_state[index]
        raise TypeError(
            f"{type(self).__name__}: the state inside ({type(self.inner_state).__name__}) has "
            f"no positions; read .table and .inner_state"
        )

    def __getattr__(self, name: str) -> Any:
        # the fields of the state inside (``state.mu`` of Adam's), as code written for optax's
        # states reads them
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(self.inner_state, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} (and the state inside it, "
                f"{type(self.inner_state).__name__}) has no attribute {name!r}"
            ) from None

    def with_array(self, array: jax.Array) -> HyperState:
        """This state with the table's array replaced."""
        (key,) = self.table
        return self._replace(table={key: array})


def _hyper_state(names: tuple[str, ...], array: jax.Array, inner_state: OptState) -> HyperState:
    return HyperState({",".join(names): array}, inner_state)


def _count_of(table: jax.Array) -> jax.Array:
    high = table[..., 0, 0].astype(jnp.int32)
    low = table[..., 0, 1].astype(jnp.int32)
    return high * _HALF + low


def _count_row(count: jax.Array, dtype: Any) -> jax.Array:
    # the count is >= 0: its halves are a shift and a mask (``//`` and ``%`` also handle
    # negative numbers, a dozen more operations in every step)
    high, low = jnp.right_shift(count, 16), jnp.bitwise_and(count, _HALF - 1)
    return jnp.stack([high, low, jnp.zeros_like(count)], -1).astype(dtype)


def _pairs(table: jax.Array) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """Every hyperparameter's (value, residual), in row order."""
    rows = range(table.shape[-2] - 1)  # a swept table, stacked, is refused later, naming the leaf
    return tuple((table[1 + i, _VALUE], table[1 + i, _RESIDUAL]) for i in rows)


def _next_count(table: jax.Array) -> jax.Array:
    return _tree.saturating_increment(_count_of(table))


def _advanced(table: jax.Array, count: jax.Array, new: tuple, scheduled: tuple[int, ...]):
    """The table of the next update: its count, and the schedules' values ``new`` in the rows
    ``scheduled`` (1 + their index), unless a value there was set by hand."""
    rows = table[1:]
    if scheduled:
        at = np.asarray(scheduled)
        held = rows[at, _MANUAL] > 0
        new = jnp.stack([jnp.asarray(x) for x in new]).astype(table.dtype)
        rows = rows.at[at, _VALUE].set(jnp.where(held, rows[at, _VALUE], new))
        rows = rows.at[at, _RESIDUAL].set(jnp.where(held, rows[at, _RESIDUAL], 0))
    return jnp.concatenate([_count_row(count, table.dtype)[None], rows])


_COMPILED = {
    _pairs: jax.jit(_pairs),
    _next_count: jax.jit(_next_count),
    _advanced: jax.jit(_advanced, static_argnums=3),
}


def _on_table(fn: Callable, table: jax.Array, *args: Any) -> Any:
    """``fn(table, *args)``: traced as it is inside a trace, and as one compiled program on
    concrete arrays (an eager update would otherwise run a dozen small operations on the table
    at each call, each compiled on its first use for that table's shape)."""
    if isinstance(table, jax.core.Tracer) or any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args)
    ):
        return fn(table, *args)
    return _COMPILED[fn](table, *args)


class Live(NamedTuple):
    """A hyperparameter's current value as a build function receives it."""

    value: jax.Array
    residual: jax.Array


Value = float | Live


def value_as(h: Value, dtype: Any) -> jax.Array:
    """The hyperparameter as a scalar of ``dtype`` (what a Python float would become)."""
    if isinstance(h, Live):
        return h.value.astype(dtype)
    return jnp.asarray(h, dtype)


def one_minus(h: Value, dtype: Any) -> jax.Array:
    """``1 - h`` as a scalar of ``dtype``, rounded once from the exact value."""
    if isinstance(h, Live):
        return ((1 - h.value) - h.residual).astype(dtype)
    return jnp.asarray(1 - h, dtype)


def per_dtype(compute: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``compute(dtype)``, evaluated once per dtype and then reused.

    The scalars an update derives from its hyperparameters (a cast, ``1 - decay``, a bias
    correction) are the same for every leaf of a dtype: traced once, they are a few scalar ops
    in the program instead of a few per leaf, which keeps a model with thousands of leaves quick
    to trace and compile. Make one per update call (the values are that update's tracers).
    """
    cache: dict[Any, Any] = {}

    def get(dtype: Any) -> Any:
        key = jnp.dtype(dtype)
        if key not in cache:
            cache[key] = compute(key)
        return cache[key]

    return get


def one_minus_power(h: Value, count: jax.Array) -> jax.Array:
    """``1 - h**count`` to a few ulps, in the hyperparameter's precision.

    Formed as ``-expm1(count * log1p(-(1 - h)))`` from the once-rounded complement. The direct
    ``1 - h**count`` from a float32 ``h`` cancels: for Adam's ``b2 = 0.999`` at step 1 it is off
    by 1.3e-5 relative (float32 0.999 is not 0.999), an error that reaches the update.
    """
    dtype = scalar(h).dtype
    log_h = jnp.log1p(-one_minus(h, dtype))
    return -jnp.expm1(count.astype(dtype) * log_h)


def scalar(h: Value) -> jax.Array:
    """The hyperparameter as a scalar array in its stored (or the default float) dtype."""
    return h.value if isinstance(h, Live) else jnp.asarray(h, _float_dtype())


def _row(x: Any, dtype: Any, manual: bool = False) -> jax.Array:
    """A hyperparameter's row (value, residual, flag) from a Python float (with its rounding
    residual) or a scalar array (without)."""
    if isinstance(x, float):
        value = jnp.asarray(x, dtype)
        residual = jnp.asarray(np.float64(x) - np.float64(np.asarray(x, dtype)), dtype)
    else:
        value = jnp.asarray(x).astype(dtype)
        residual = jnp.zeros_like(value)
    return jnp.stack([value, residual, jnp.full(value.shape, float(manual), dtype)], -1)


def _naming(owner: str, errors: tuple[type[Exception], ...], fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, its ``errors`` prefixed with the name of the transformation the
    user called (then the piece's own name, if it gave one)."""
    try:
        return fn(*args, **kwargs)
    except errors as err:
        if str(err).startswith(f"{owner}:"):
            raise
        raise type(err)(f"{owner}: {err}") from None


def live(
    owner: str,
    build: Callable[..., GradientTransformation],
    /,
    *,
    optional: tuple[str, ...] = (),
    ranges: Mapping[str, tuple[str, Callable[[Any], Any]]] | None = None,
    **hyper: Any,
):
    """A transformation whose numeric hyperparameters live in its state.

    Args:
      owner: the public name, used in error messages (``"adam"``).
      build: ``build(**values) -> GradientTransformation``; each value is a :class:`Live` at run
        time. It must build the same state structure whatever the values.
      optional: the names that may be ``None`` (the feature is off, e.g. ``momentum``); ``None``
        is passed on to ``build`` as is. Any other ``None`` is a TypeError.
      ranges: ranges that replace the shared ones of :func:`gradtx._core.checks.constraint` for
        this transformation, ``{name: (text, test)}``. The type of the state ``build`` makes
        must list them too, as its ``live_ranges``, for set_hyperparams and checked.
      **hyper: each hyperparameter by name: a float, a scalar array, or a schedule.

    Returns:
      A :class:`GradientTransformation` with :class:`HyperState` state. Its ``update`` also
      takes a state without the table, when no value is a schedule: the inner state alone, or
      optax's state of the same algorithm (the same field names, leaf for leaf), updated with
      the values given here and handed back in its own classes; and, where the table is all it
      keeps, ``None`` or an empty state, as optax's stateless transformations do.
    """
    for k, v in hyper.items():
        if v is None and k not in optional:
            raise TypeError(
                f"{owner}: {k} must be a float or a schedule (a function of the step count), "
                f"got None"
            )
    fixed = {k: v for k, v in hyper.items() if v is None}
    ranges = dict(ranges or {})
    given = {
        k: check_hyperparam(owner, k, v, ranges.get(k)) for k, v in hyper.items() if v is not None
    }
    schedules = {k: v for k, v in given.items() if callable(v)}
    names = tuple(given)
    scheduled = [i for i, k in enumerate(names) if k in schedules]

    def values(table: jax.Array) -> dict[str, Any]:
        rows = {k: Live(*pair) for k, pair in zip(names, _on_table(_pairs, table))}
        return rows | fixed

    def init(params):
        _tree.check_leaves(owner, params, "params")
        dtype = _float_dtype()
        start = _START.get()
        count = _tree.zero_count() if start is None else jnp.asarray(start, jnp.int32)
        rows = [_row(schedules[k](count) if k in schedules else given[k], dtype) for k in names]
        table = jnp.stack([_count_row(count, dtype), *rows])
        inner = _naming(owner, (TypeError, ValueError), build(**values(table)).init, params)
        return _hyper_state(names, table, inner)

    def update(updates, state, params=None, **extra):
        if state is None or isinstance(state, EmptyState) or _no_leaves(state):
            return _without_state(updates, state, params, **extra)
        if not isinstance(state, HyperState):
            return _without_table(updates, state, params, **extra)
        if state.names != names:
            raise ValueError(
                f"{owner}: the state was not made by this transformation's init "
                f"(expected hyperparameters {list(names)}, got {list(state.names)})"
            )
        _tree.check_leaves(owner, updates, "updates")
        table = state.array
        tx = build(**values(table))
        updates, inner = _naming(
            owner, (ValueError,), tx.update, updates, state.inner_state, params, **extra
        )
        count = _on_table(_next_count, table)
        new = tuple(schedules[names[i]](count) for i in scheduled)
        table = _on_table(_advanced, table, count, new, tuple(scheduled))
        return updates, _hyper_state(names, table, inner)

    def _without_state(updates, given, params, **extra):
        # optax's stateless transformations take update(updates, None): so do gradtx's whose
        # table is all they keep, when no value is a schedule (without a state there is no
        # step count); the state handed in is handed back
        fresh = init(updates)
        if schedules or jax.tree.leaves(fresh.inner_state):
            why = (
                f"{sorted(schedules)} follow schedules, which need the step count"
                if schedules
                else "it keeps a state"
            )
            raise ValueError(f"{owner}: update needs the state made by init, got {given!r}: {why}")
        updates, _ = update(updates, fresh, params, **extra)
        return updates, given

    def _without_table(updates, given, params, **extra):
        # a state without the table: optax's state of the same algorithm, or this
        # transformation's inner state built by hand (the same field names, leaf for leaf). It
        # is updated with the values given when built, and comes back in its own classes
        fresh = init(updates)
        if _leaf_paths(given) != _leaf_paths(fresh.inner_state):
            raise ValueError(
                f"{owner}: the state was not made by this transformation's init (expected "
                f"hyperparameters {list(names)} and its inner state, got {type(given).__name__})"
            )
        if schedules:
            raise ValueError(
                f"{owner}: a {type(given).__name__} without gradtx's table of live "
                f"hyperparameters has no step count for {sorted(schedules)}, which follow "
                f"schedules; pass the state init made"
            )
        made, treedef = jax.tree.flatten(fresh.inner_state)
        leaves = [_as_made(x, m) for x, m in zip(jax.tree.leaves(given), made)]
        updates, new = update(
            updates, fresh._replace(inner_state=treedef.unflatten(leaves)), params, **extra
        )
        return updates, jax.tree.structure(given).unflatten(jax.tree.leaves(new.inner_state))

    return GradientTransformation(init, update)


def _leaf_paths(tree: Any) -> list[str]:
    """Each leaf's path by field names and keys: the same for two classes with the same fields."""
    return [_tree.path_str(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _as_made(given: Any, made: Any) -> Any:
    """A leaf of a state given without its table, in the dtype ``init`` makes where it is a
    Python number or an integer of another width (a hand-built count); other arrays as given."""
    made_dtype = jnp.result_type(made)
    if not isinstance(given, (jax.Array, np.ndarray, np.generic)):
        return jnp.asarray(given, made_dtype)
    both_integers = jnp.issubdtype(given.dtype, jnp.integer) and jnp.issubdtype(
        made_dtype, jnp.integer
    )
    return given.astype(made_dtype) if both_integers else given


_START: contextvars.ContextVar = contextvars.ContextVar("gradtx_start_count", default=None)


@contextlib.contextmanager
def starting_at(count: Any):
    """Inside this block, ``init`` builds live tables at step ``count`` (their step count, and
    each schedule's value at it) instead of 0: for a state that continues a run of another
    library (:func:`gradtx.from_optax_state`)."""
    token = _START.set(count)
    try:
        yield
    finally:
        _START.reset(token)


def _no_leaves(state: Any) -> bool:
    """An empty container (``{}``, ``()``) given as a state: optax's stateless transformations
    ignore their state, and code written for them passes such things."""
    return not isinstance(state, HyperState) and not jax.tree.leaves(state)
