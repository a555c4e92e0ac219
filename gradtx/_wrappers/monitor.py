"""Monitoring: the numbers to log from a training step, recorded in the optimizer state.

:func:`monitor` wraps an optimizer so that each update records the global norm of the gradients
it received and of the updates it returned, and the learning rate it used; :func:`step_stats`
reads them from a state, together with the count of steps that :func:`gradtx.apply_if_finite`
skipped. The values are arrays computed inside the step (no host sync, nothing recomputed from
the gradients afterwards), so a jitted step can return them for logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState, PyTree, with_extra_args
from gradtx._core.hyper_access import _catalogue, _public_names, hyperparams
from gradtx._transforms.monitoring import measures_link
from gradtx._wrappers.accumulation import ApplyIfFiniteState


class MonitoredState(NamedTuple):
    """The state of :func:`monitor` wrapping an optimizer (``MonitorState`` until December
    2026, a name that is optax's for the state of ``monitor({name: measure})``: see
    :class:`gradtx.MonitorState`). Checkpoints keep field names, not class names: they restore
    as before."""

    grad_norm: jax.Array  # float32 [] (float64 for float64 grads): the last gradients' norm
    update_norm: jax.Array  # float32 [] (as grad_norm): the last updates' global norm
    learning_rate: dict[str, jax.Array]  # float32 [] each: the learning rates the last update
    #   used, keyed as gradtx.hyperparams(inner_state) keys them (usually the one key
    #   "learning_rate"; empty if the optimizer has none)
    inner_state: OptState  # the monitored optimizer's state


def _learning_rates(state: OptState) -> dict[str, jax.Array]:
    """The hyperparameters named ``learning_rate`` in ``state``, keyed as in hyperparams()."""
    public = _public_names(_catalogue(state))
    keys = {public[q] for q, name in _catalogue(state).items() if name == "learning_rate"}
    return {k: v for k, v in hyperparams(state).items() if k in keys}


def _norm_dtype(tree: PyTree) -> Any:
    """float32, or float64 where a leaf is float64 or complex128 (a norm is real)."""
    leaves = jax.tree.leaves(tree)
    return _tree.wider(jnp.float32, *(_tree.real_dtype(jnp.result_type(x)) for x in leaves))


def monitor(tx: Any, *, axis_name: Any = None) -> GradientTransformation:
    r"""Wraps ``tx`` so that its state records what a training step should log; or, given a
    dictionary of measures (optax's form), records them where it stands in a chain.

    Each update stores, in the state:

    * ``grad_norm``: :math:`\|g\|_2` over all leaves of the incoming updates (at the head of
      the optimizer, the raw gradients: before clipping, NaN if they hold a NaN);
    * ``update_norm``: :math:`\|u\|_2` of the updates returned (what ``apply_updates`` adds,
      learning rate included; 0 on a step skipped by :func:`apply_if_finite` or a
      :class:`MultiSteps` micro-step);
    * ``learning_rate``: the learning rate(s) this update used, read with
      :func:`gradtx.hyperparams` from the state before the update (the scheduled value of this
      step, or the value set with :func:`gradtx.set_hyperparams`).

    The norms are summed in float32 (float64 for float64 leaves) whatever the leaves' dtype;
    complex leaves count by their magnitudes.
    They cost one reduction over the gradients and one over the updates, in the same compiled
    step as the update (no second backward pass, no host sync; on XLA:CPU each reduction reads
    its tree once more). Read everything with :func:`step_stats`. Place ``monitor`` outermost
    to see the raw gradients and the final updates.

    optax's form, ``monitor({name: measure, ...})``, is a link of a chain that keeps each
    ``measure(updates)`` of the updates it sees (which pass unchanged) in its state, optax's
    :class:`MonitorState` (``measurements``, ``measure_states``); read one with
    ``gradtx.tree.get(state, name)``. A measure is a function of the updates or a
    transformation whose "updates" are the measurement, such as :func:`gradtx.measure_with_ema`.
    Unlike optax's, the measurements are zeros of their shapes from ``init`` on, so the state's
    structure never changes.

    Args:
      tx: the optimizer to monitor; or a dictionary of measures (optax's form).
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along,
        so the norms are those of the whole arrays (see :func:`gradtx.clip_by_global_norm`).
        Default ``None``: the leaves are whole arrays.

    Returns:
      A :class:`GradientTransformation` with :class:`MonitoredState` state; its updates are
      ``tx``'s, unchanged.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.monitor(gradtx.sgd(0.5))
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
      >>> {k: float(v) for k, v in gradtx.step_stats(state).items()}
      {'grad_norm': 5.0, 'update_norm': 2.5, 'learning_rate': 0.5}
      >>> probe = gradtx.chain(
      ...     gradtx.monitor({"norm_before_clip": gradtx.global_norm}),
      ...     gradtx.clip_by_global_norm(1.0),
      ... )
      >>> _, state = probe.update({"w": jnp.array([3.0, 4.0])}, probe.init(params))
      >>> float(gradtx.tree.get(state, "norm_before_clip"))
      5.0
    """
    if isinstance(tx, Mapping):
        if axis_name is not None:
            raise ValueError("monitor: axis_name applies to a wrapped optimizer, not to measures")
        return measures_link("monitor", tx)
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"monitor: tx must be a GradientTransformation (init, update) or a dictionary of "
            f"measures, got {type(tx).__name__}"
        )
    inner = with_extra_args(GradientTransformation(tx.init, tx.update))
    axes = _tree.axis_names("monitor", axis_name)

    def init(params):
        inner_state = inner.init(params)
        zero = jnp.zeros([], _norm_dtype(params))
        return MonitoredState(
            grad_norm=zero,
            update_norm=zero,
            learning_rate=_learning_rates(inner_state),
            inner_state=inner_state,
        )

    def update(updates, state, params=None, **extra):
        if not isinstance(state, MonitoredState):
            raise ValueError(
                f"monitor: the state must be the MonitoredState that init made, "
                f"got {type(state).__name__}"
            )
        _tree.check_leaves("monitor", updates, "updates")  # before their norm is taken
        rates = _learning_rates(state.inner_state)
        grad_norm = _norms.global_norm(updates, axes)
        out, inner_state = inner.update(updates, state.inner_state, params, **extra)
        new_state = MonitoredState(
            grad_norm=grad_norm.astype(state.grad_norm.dtype),
            update_norm=_norms.global_norm(out, axes).astype(state.update_norm.dtype),
            learning_rate=_tree.cast_like(rates, state.learning_rate),
            inner_state=inner_state,
        )
        return out, new_state

    return GradientTransformation(init, update)


def _find(state: PyTree, cls: type) -> list[tuple[str, Any]]:
    """Every ``cls`` node in ``state`` with its path, nested ones (in ``inner_state``) too."""
    found = []

    def visit(tree, at):
        flat, _ = jax.tree_util.tree_flatten_with_path(
            tree, is_leaf=lambda x: isinstance(x, (MonitoredState, ApplyIfFiniteState))
        )
        for path, node in flat:
            if isinstance(node, (MonitoredState, ApplyIfFiniteState)):
                where = at + _tree.path_str(path)
                if isinstance(node, cls):
                    found.append((where, node))
                visit(node.inner_state, where + "/inner_state/")

    visit(state, "")
    return found


def step_stats(state: OptState) -> dict[str, jax.Array]:
    r"""The numbers to log for the last step, from an optimizer state with a :func:`monitor`.

    The norms are those :func:`monitor` recorded during the last update,
    :math:`\|g\|_2 = \sqrt{\textstyle\sum_l \|g_l\|^2}` over all leaves of the gradients it
    received and likewise for the updates it returned; nothing is recomputed here. Works inside
    ``jit``, ``lax.scan`` and ``vmap``.

    Args:
      state: an optimizer state holding exactly one :class:`MonitoredState` (the state of a
        :func:`monitor`-wrapped optimizer, or any state containing it, such as the
        ``opt_state`` of a Flax ``TrainState``).

    Returns:
      A dict of scalar arrays:

      * ``"grad_norm"``, ``"update_norm"``: the global norms recorded by :func:`monitor`;
      * ``"learning_rate"``: the learning rate the last update used, when the optimizer has
        one (several learning rates keep their :func:`gradtx.hyperparams` keys, e.g.
        ``"opt/learning_rate"``);
      * ``"skipped_steps"``: the steps with non-finite gradients so far, when the optimizer
        has an :func:`apply_if_finite`: its ``total_notfinite`` (summed over several, e.g. one
        per group of params). Steps let through after ``max_consecutive_errors`` bad ones in
        a row are counted too: they were not skipped, but their gradients were not finite
        either.

    Raises:
      ValueError: if ``state`` holds no :func:`monitor` state, or more than one.

    Example:
      A jitted training step returning its statistics for logging:

      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.monitor(gradtx.chain(
      ...     gradtx.clip_by_global_norm(1.0),
      ...     gradtx.apply_if_finite(gradtx.adam(1e-2), max_consecutive_errors=5)))
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> @jax.jit
      ... def step(params, state, x):
      ...     loss, grads = jax.value_and_grad(lambda p: jnp.sum((p["w"] * x) ** 2))(params)
      ...     updates, state = tx.update(grads, state, params)
      ...     return gradtx.apply_updates(params, updates), state, loss, gradtx.step_stats(state)
      >>> params, state, loss, stats = step(params, state, jnp.array([1.0, 1.0]))
      >>> sorted(stats)
      ['grad_norm', 'learning_rate', 'skipped_steps', 'update_norm']
      >>> round(float(stats["grad_norm"]), 4)  # |(2, -4)|, before clipping
      4.4721
      >>> params, state, loss, stats = step(params, state, jnp.array([jnp.nan, 1.0]))
      >>> int(stats["skipped_steps"]), float(stats["update_norm"])
      (1, 0.0)
    """
    monitors = _find(state, MonitoredState)
    if not monitors:
        raise ValueError(
            "step_stats: the state holds no monitor state; build the optimizer with "
            "gradtx.monitor(tx) to record gradient and update norms"
        )
    if len(monitors) > 1:
        raise ValueError(
            "step_stats: the state holds several monitor states, at "
            f"{[path for path, _ in monitors]}; monitor the optimizer once"
        )
    record = monitors[0][1]
    out = {"grad_norm": record.grad_norm, "update_norm": record.update_norm}
    out.update(record.learning_rate)
    skips = [node.total_notfinite for _, node in _find(state, ApplyIfFiniteState)]
    if skips:
        total = skips[0]
        for count in skips[1:]:
            total = total + count
        out["skipped_steps"] = total
    return out
