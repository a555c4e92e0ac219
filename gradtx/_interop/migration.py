"""Optimizer states between optax and gradtx: a run trained with one resumes under the other.

Where the algorithm is the same, gradtx keeps optax's buffers, mostly in optax's state classes
under optax's names (see ``state_names``), beside the small tables of its live hyperparameters,
whose step count schedules read; optax keeps a separate step count for a scheduled learning rate
(``ScaleByScheduleState``). The conversion walks the two states side by side, gradtx's tables
left out:

* two states of the same class name pair field by field, by name (in whatever order each keeps
  them); elsewhere (gradtx's own layouts, such as Adamax's, Yogi's and RAdam's moments kept in
  pieces) the arrays pair in order;
* a step count only one library keeps is set from the other's step count (the largest count in
  the optax state; the tables' in the gradtx state); a zero-size placeholder only one keeps
  (optax's, for the leaves GaLore does not project) is left as it is; integer counters may
  differ in width, and PRNG keys in form (optax's typed keys, gradtx's raw key data);
* where two states of the same name differ in more than that, a rule for that state converts
  one into the other (``migration_rules``): L-BFGS's ring of pairs (turned, so that the slot
  written next is where each library expects it), lookahead's slow weights (in gradtx's state
  with plain params, in optax's ``LookaheadParams``), DoG's first-step flag and initial
  distance, Prodigy's largest estimate, schedule-free's step count from 1, and MultiSteps'
  gradients, which convert at the end of a cycle only (within one, optax keeps their mean or
  their sum, and its state does not say which).

Anything else one state holds and the other does not, or arrays whose shapes or dtypes differ
(another algorithm, or a layout that differs), is refused, naming the paths; so are states of
the same name whose algorithms differ (rprop's).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import hyper, hyper_access
from gradtx._core.base import GradientTransformation, OptState, Params
from gradtx._core.tree import path_str
from gradtx._interop import migration_rules as rules

_COUNT_NAMES = ("count", "t")  # optax's Adan calls its step count t


def _name(path) -> Any:
    last = path[-1] if path else None
    return getattr(last, "name", getattr(last, "key", None))


def _is_counter(leaf) -> bool:
    return np.ndim(leaf) == 0 and jnp.issubdtype(jnp.result_type(leaf), jnp.integer)


def _is_count(path, leaf) -> bool:
    return _name(path) in _COUNT_NAMES and _is_counter(leaf)


def _is_record(x: Any) -> bool:
    """A NamedTuple: a state class, which pairs by field names with one of the same name."""
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class _Leaf(NamedTuple):
    path: tuple
    value: Any


class _Record(NamedTuple):
    path: tuple
    node: Any  # a NamedTuple with at least one array

    @property
    def name(self) -> str:
        return type(self.node).__name__

    def fields(self) -> dict[str, Any]:
        return dict(zip(self.node._fields, self.node))


def _units(tree: Any, prefix: tuple, gradtx_side: bool) -> list[_Leaf | _Record]:
    """``tree``'s arrays in order, each NamedTuple kept whole as a record; on gradtx's side a
    HyperState is seen through (its table is gradtx's own)."""
    if gradtx_side and isinstance(tree, hyper.HyperState):
        inner = (*prefix, jax.tree_util.GetAttrKey("inner_state"))
        return _units(tree.inner_state, inner, gradtx_side)
    if _is_record(tree):
        return [_Record(prefix, tree)] if jax.tree.leaves(tree) else []
    found = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: x is not tree and _is_record(x)
    )[0]
    units: list[_Leaf | _Record] = []
    for path, child in found:
        if _is_record(child):
            units.extend(_units(child, (*prefix, *path), gradtx_side))
        else:
            units.append(_Leaf((*prefix, *path), child))
    return units


def _is_key(leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key)


def _same_kind(source, target) -> bool:
    if _is_key(source) != _is_key(target):  # a typed key and its raw data
        key, data = (source, target) if _is_key(source) else (target, source)
        raw = jax.random.key_data(key)
        return np.shape(data) == raw.shape and jnp.result_type(data) == raw.dtype
    if np.shape(source) != np.shape(target):
        return False
    a, b = jnp.result_type(source), jnp.result_type(target)
    return a == b or (jnp.issubdtype(a, jnp.integer) and jnp.issubdtype(b, jnp.integer))


def _converted(source, target) -> jax.Array:
    if _is_key(target) and not _is_key(source):
        return jax.random.wrap_key_data(source, impl=jax.random.key_impl(target))
    if _is_key(source) and not _is_key(target):
        return jax.random.key_data(source)
    return jnp.asarray(source, jnp.result_type(target))


def _describe(unit: _Leaf | None) -> str:
    if unit is None:
        return "nothing"
    leaf = unit.value
    return f"{path_str(unit.path)} {jnp.result_type(leaf).name}{list(np.shape(leaf))}"


class _Walk:
    """Pairs a source state's arrays with the positions of a target state, as the module note
    says: ``values`` maps a target position to its new value; ``counts`` lists the target's
    step counts that the source does not keep."""

    def __init__(self, owner: str, from_optax: bool, target: Any, context: rules.Context):
        self.owner = owner
        self.from_optax = from_optax
        self.context = context
        flat = jax.tree_util.tree_flatten_with_path(target)[0]
        self.positions = {path: k for k, (path, _) in enumerate(flat)}
        self.values: dict[int, Any] = {}
        self.counts: list[_Leaf] = []

    def units(self, tree: Any, prefix: tuple, source: bool) -> list[_Leaf | _Record]:
        return _units(tree, prefix, gradtx_side=source != self.from_optax)

    def sequence(self, source: list, target: list) -> None:
        source, target = list(source), list(target)
        i = j = 0
        while i < len(source) or j < len(target):
            s = source[i] if i < len(source) else None
            t = target[j] if j < len(target) else None
            if isinstance(s, _Record) and isinstance(t, _Record) and s.name == t.name:
                self.record(s, t)
                i, j = i + 1, j + 1
            elif isinstance(s, _Record):  # no record of its name here: its arrays, in order
                source[i : i + 1] = self.fields_in_order(s, source=True)
            elif isinstance(t, _Record):
                target[j : j + 1] = self.fields_in_order(t, source=False)
            elif s is not None and t is not None and _same_kind(s.value, t.value):
                self.values[self.positions[t.path]] = _converted(s.value, t.value)
                i, j = i + 1, j + 1
            elif s is not None and _is_count(s.path, s.value):
                i += 1
            elif t is not None and _is_count(t.path, t.value):
                self.counts.append(t)
                j += 1
            elif s is not None and np.size(s.value) == 0:
                i += 1
            elif t is not None and np.size(t.value) == 0:
                j += 1
            else:
                self.refuse(s, t)

    def fields_in_order(self, record: _Record, source: bool) -> list[_Leaf | _Record]:
        units: list[_Leaf | _Record] = []
        for name, value in record.fields().items():
            path = (*record.path, jax.tree_util.GetAttrKey(name))
            units.extend(self.units(value, path, source))
        return units

    def record(self, s: _Record, t: _Record) -> None:
        """Two states of the same class: field by field, by name, through its rule if any."""
        optax_path = s.path if self.from_optax else t.path
        if s.name in rules.REFUSED:
            raise ValueError(
                f"{self.owner}: {s.name} at {path_str(optax_path)}: {rules.REFUSED[s.name]}"
            )
        source, target = s.fields(), t.fields()
        rule = rules.RULES.get(s.name)
        if rule is not None:
            convert = rule.from_optax if self.from_optax else rule.to_optax
            source = convert(source, target, self.context, optax_path)
        for name in (*target, *(name for name in source if name not in target)):
            key = jax.tree_util.GetAttrKey(name)
            self.sequence(
                self.units(source.get(name), (*s.path, key), source=True),
                self.units(target.get(name), (*t.path, key), source=False),
            )

    def refuse(self, s: _Leaf | None, t: _Leaf | None):
        optax, mine = (s, t) if self.from_optax else (t, s)
        raise ValueError(
            f"{self.owner}: the states do not hold the same buffers (another algorithm, or a "
            f"layout that differs): optax's {_describe(optax)} meets gradtx's {_describe(mine)}"
        )


def _optax_step(state: Any) -> jax.Array | None:
    """The largest step count in an optax state (one counted from 1 less 1), or None."""
    counts = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if _is_count(path, leaf):
            counts.append(jnp.asarray(leaf, jnp.int32))
        elif _name(path) in rules.ONE_BASED and _is_counter(leaf):
            counts.append(jnp.asarray(leaf, jnp.int32) - 1)
    return jnp.max(jnp.stack(counts)) if counts else None


def _tables_step(state: OptState) -> jax.Array | None:
    """The largest step count of a gradtx state's tables (nested ones too), or None."""
    counts = [node.count for _, node in hyper_access._hyper_states(state)]
    return jnp.max(jnp.stack(counts)) if counts else None


def _replaced(tree: Any, values: dict[int, Any]) -> Any:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([values.get(k, leaf) for k, leaf in enumerate(leaves)])


def from_optax_state(
    tx: GradientTransformation, optax_state: Any, params: Params, *, slow_params: Any = None
) -> OptState:
    """The state of gradtx's ``tx`` that continues a run whose optax state is ``optax_state``.

    ``tx`` is gradtx's optimizer of the same algorithm (``gradtx.adamw(...)`` for a run of
    ``optax.adamw(...)``, with the same hyperparameters). Its moments, accumulators and step
    counts are optax's (paired as the module note says); its live tables, and any step count
    gradtx keeps where optax keeps none, are set to optax's step count (the largest ``count`` in
    the optax state; 0 if it has none), so schedules and bias corrections continue where they
    were.

    A lookahead (``optax.lookahead``) keeps its slow weights in optax's ``LookaheadParams``, not
    in its state. Give that pair as ``params`` to continue with it (gradtx's lookahead takes
    it); for gradtx's way, plain params, give ``params=pair.fast`` and ``slow_params=pair.slow``
    (the state then holds them).

    Args:
      tx: the gradtx transformation that continues the run.
      optax_state: the optax state (as from ``optax_tx.init``/``update``, or a checkpoint).
      params: the params of the run (or ``jax.ShapeDtypeStruct``s of them).
      slow_params: a lookahead's slow weights, for a ``tx`` whose lookahead is given plain
        params (keyword-only; None otherwise).

    Returns:
      A state of ``tx`` whose next update is the one optax's would have been.

    Raises:
      ValueError: where the two states' buffers differ in number, shape or dtype, naming them;
        where the algorithms differ though the states share a name (rprop's); for a MultiSteps
        state within a cycle; where a lookahead with plain params gets no ``slow_params``, or
        ``slow_params`` finds no such lookahead.

    Example:
      >>> import gradtx, optax, jax.numpy as jnp
      >>> params = {"w": jnp.ones(3)}
      >>> state = optax.adam(1e-2).init(params)  # or the state of a run, 1000 steps in
      >>> state = (state[0]._replace(count=jnp.asarray(1000, jnp.int32)),) + state[1:]
      >>> mine = gradtx.from_optax_state(gradtx.adam(1e-2), state, params)
      >>> int(gradtx.tree.get(mine, "count"))
      1000
    """
    owner = "from_optax_state"
    if not isinstance(tx, GradientTransformation):
        raise TypeError(f"{owner}: tx must be a gradtx transformation, got {type(tx).__name__}")
    step = _optax_step(optax_state)
    with hyper.starting_at(0 if step is None else step):
        target = tx.init(params)
    context = rules.Context(owner, step, params, slow_params=slow_params)
    walk = _Walk(owner, True, target, context)
    walk.sequence(_units(optax_state, (), False), _units(target, (), True))
    for count in walk.counts:  # a count gradtx keeps apart: optax's step count
        walk.values[walk.positions[count.path]] = _converted(
            0 if step is None else step, count.value
        )
    if slow_params is not None and not context.slow_taken:
        raise ValueError(
            f"{owner}: slow_params is given, but tx's state holds no lookahead made for plain "
            f"params"
        )
    return _replaced(target, walk.values)


def to_optax_state(optax_tx: Any, state: OptState, params: Params) -> Any:
    """The state of ``optax_tx`` that continues a run whose gradtx state is ``state``.

    The reverse of :func:`from_optax_state`: ``optax_tx`` is optax's optimizer of the same
    algorithm; a step count optax keeps apart (a scheduled learning rate's) is set to the
    gradtx tables' step count. A lookahead's slow weights, which gradtx keeps in the state when
    given plain params, go to optax's params: continue with
    ``optax.LookaheadParams(params, gradtx.slow_params(state))``.

    Args:
      optax_tx: the optax transformation that continues the run (anything with optax's
        ``init``; gradtx does not import optax).
      state: the gradtx state.
      params: the params of the run.

    Returns:
      A state of ``optax_tx`` whose next update is the one gradtx's would have been.

    Raises:
      ValueError: where the two states' buffers differ in number, shape or dtype, naming them;
        where the algorithms differ though the states share a name (rprop's); for a MultiSteps
        state within a cycle.

    Example:
      >>> import gradtx, optax, jax.numpy as jnp
      >>> params = {"w": jnp.ones(3)}
      >>> state = gradtx.adam(1e-2).init(params)
      >>> theirs = gradtx.to_optax_state(optax.adam(1e-2), state, params)
      >>> type(theirs[0]).__name__
      'ScaleByAdamState'
    """
    owner = "to_optax_state"
    if not callable(getattr(optax_tx, "init", None)):
        raise TypeError(
            f"{owner}: optax_tx must be an optax transformation, got {type(optax_tx).__name__}"
        )
    target = optax_tx.init(params)
    step = _tables_step(state)
    context = rules.Context(owner, step, params, optax_tx=optax_tx)
    walk = _Walk(owner, False, target, context)
    walk.sequence(_units(state, (), True), _units(target, (), False))
    for count in walk.counts:  # a count optax keeps apart: the tables' step count
        if step is None:
            raise ValueError(
                f"{owner}: optax's {path_str(count.path)} has no counterpart in the gradtx state"
            )
        walk.values[walk.positions[count.path]] = _converted(step, count.value)
    return _replaced(target, walk.values)
