"""Line searches: the shared pieces, backtracking (Armijo), reusing the last evaluation.

A line search is the last link of a chain. It receives a direction ``u`` (the updates of the
links before it, e.g. ``-H g`` from L-BFGS) and chooses a step size ``eta`` along it, evaluating
the objective at trial points ``params + eta * u``. The zoom search (strong Wolfe) is in
:mod:`gradtx._curvature.zoom`. The objective reaches it through ``update``'s
extra arguments, as in optax::

    tx.update(grads, state, params, value=value, grad=grads, value_fn=fn, **fn_kwargs)

``value`` and ``grad`` are ``fn`` and its gradient at ``params``; every other extra argument is
passed on to ``fn`` (``fn(params, **fn_kwargs)``: a batch, say). The search keeps the value (and
gradient) at the point it accepted, so the next step need not evaluate them again: see
:func:`value_and_grad_from_state`. Each search runs in one ``lax.while_loop``; nothing syncs with
the host. The objective's value and the slopes are computed in at least float32 (float64 for
float64 params).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree
from gradtx._core.checks import MissingArgumentError, check_count, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as

_RESERVED = ("value", "grad", "value_fn")


# ---- shared pieces -------------------------------------------------------------------------


def failure_error(gap: jax.Array) -> jax.Array:
    """By how much a condition the search needs was missed: ``gap`` (the value minus its bound)
    where it is positive, else inf (a NaN value or slope, or a trial refused for a reason the
    gap does not show)."""
    return jnp.where(gap > 0, gap, jnp.inf).astype(gap.dtype)


class BacktrackingLinesearchInfo(NamedTuple):
    """What the last backtracking search did, as optax's (its ``decrease_error``: 0 when a step
    met the sufficient decrease condition, positive when none did)."""

    num_linesearch_steps: jax.Array  # int32 []: trial points evaluated by the last update
    decrease_error: jax.Array  # [] scalar dtype: 0, or how much the last trial missed the
    # condition by (its value minus the bound; inf for a NaN value; inf before the first search)

    @property
    def succeeded(self) -> jax.Array:
        """bool: the step taken meets the sufficient decrease condition."""
        return self.decrease_error == 0


class ZoomLinesearchInfo(NamedTuple):
    """What the last zoom search did, as optax's: both errors 0 when the step taken meets the
    search's conditions, and a positive one names the condition it misses."""

    num_linesearch_steps: jax.Array  # int32 []: trial points evaluated by the last update
    decrease_error: jax.Array  # [] scalar dtype: 0 when the step taken decreases sufficiently;
    # else (no step taken) how much the last trial missed that by (inf for a NaN value)
    curvature_error: jax.Array  # [] scalar dtype: 0 when the step taken meets the curvature
    # condition; else how much it (or with no step taken, the last trial) missed it by

    @property
    def succeeded(self) -> jax.Array:
        """bool: the step taken meets the strong Wolfe (or approximate Wolfe) conditions."""
        return (self.decrease_error == 0) & (self.curvature_error == 0)


def scalar_dtype(params: PyTree) -> Any:
    """The dtype of objective values and step sizes: the params' widest real float (float32 for
    complex64 params), at least float32."""
    leaves = [jnp.asarray(x).dtype for x in jax.tree.leaves(params)]
    wide = _tree.accumulation_dtype(_tree.wider(*leaves) if leaves else jnp.float32)
    return _tree.real_dtype(wide)


def value_and_update_grad(fn: Callable[..., jax.Array]) -> Callable[..., tuple[Any, PyTree]]:
    """``jax.value_and_grad(fn)`` with the gradient as ``update`` takes it: for complex params
    the conjugate of JAX's (``d/d re + i d/d im``, the steepest-ascent direction, as optax's
    convention), so that inner products with it are directional derivatives."""
    value_and_grad = jax.value_and_grad(fn)

    def evaluate(*args, **kwargs):
        value, grad = value_and_grad(*args, **kwargs)
        return value, jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, grad)

    return evaluate


def value_fn_of(owner: str, params: PyTree, extra: dict[str, Any], at: str) -> Callable:
    """``extra["value_fn"]``; ValueError naming ``owner`` if it or ``params`` is missing."""
    value_fn = extra.get("value_fn")
    if not callable(value_fn):
        raise MissingArgumentError(
            f"{owner}: update needs the objective as value_fn=fn (a function of the params), "
            f"got {value_fn!r}"
        )
    if params is None:
        raise MissingArgumentError(f"{owner}: update needs params ({at})")
    return value_fn


def objective(owner: str, params: PyTree, extra: dict[str, Any]):
    """The objective from ``update``'s extras: ``(value_fn, value, grad, fn_kwargs)``.

    Raises ValueError naming ``owner`` when one is missing or ``grad`` does not fit the params.
    """
    value_fn = value_fn_of(owner, params, extra, "the point the search starts from")
    for name in ("value", "grad"):
        if extra.get(name) is None:
            raise MissingArgumentError(
                f"{owner}: update needs {name}=..., the objective's "
                f"{'value' if name == 'value' else 'gradient'} at params"
            )
    value = extra["value"]
    if jnp.ndim(value) != 0:
        raise ValueError(f"{owner}: value must be a scalar, got shape {jnp.shape(value)}")
    _tree.check_match(owner, (params, extra["grad"]), ("params", "grad"))
    fn_kwargs = {k: v for k, v in extra.items() if k not in _RESERVED}
    _check_takes(owner, value_fn, fn_kwargs)
    return value_fn, value, extra["grad"], fn_kwargs


def _check_takes(owner: str, value_fn: Callable, fn_kwargs: dict[str, Any]) -> None:
    """TypeError naming the extra arguments ``value_fn`` does not take (every extra argument of
    ``update`` but the reserved ones goes to it): an argument meant for it but misspelt, or one
    meant for another link of the chain, fails here rather than inside the search."""
    try:
        parameters = inspect.signature(value_fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or C function: let the call tell
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    named = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unexpected = sorted(set(fn_kwargs) - named)
    if unexpected:
        raise TypeError(
            f"{owner}: Unexpected keyword arguments {unexpected} for value_fn, which takes "
            f"{sorted(named)}: every extra argument of update but {sorted(_RESERVED)} is passed "
            f"to value_fn"
        )


def _as_like(tree: PyTree, like: PyTree) -> PyTree:
    return jax.tree.map(lambda x, p: jnp.asarray(x).astype(jnp.asarray(p).dtype), tree, like)


class ScaleByZoomLinesearchState(NamedTuple):
    """The state of :func:`gradtx.scale_by_zoom_linesearch`, as optax's."""

    learning_rate: jax.Array  # [] scalar dtype: the step size taken last (1 before the first)
    value: jax.Array  # [] scalar dtype: the objective at params + updates (inf before a step)
    grad: PyTree  # like params: its gradient
    info: ZoomLinesearchInfo


ZoomLinesearchState = ScaleByZoomLinesearchState  # gradtx's earlier name


# ---- backtracking --------------------------------------------------------------------------


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """The state of :func:`scale_by_backtracking_linesearch`, as optax's."""

    learning_rate: jax.Array  # [] scalar dtype: the last step size tried; the next guess grows it
    value: jax.Array  # [] scalar dtype: the objective at params + updates (inf before a step)
    grad: PyTree | None  # like params: its gradient (None unless store_grad)
    info: BacktrackingLinesearchInfo


BacktrackingLinesearchState = ScaleByBacktrackingLinesearchState  # gradtx's earlier name


def _backtracking(
    slope_rtol: Value,
    decrease_factor: Value,
    increase_factor: Value,
    max_learning_rate: Value,
    atol: Value,
    rtol: Value,
    *,
    max_backtracking_steps: int,
    store_grad: bool,
    verbose: bool,
) -> GradientTransformation:
    owner = "scale_by_backtracking_linesearch"

    def init(params):
        dtype = scalar_dtype(params)
        return ScaleByBacktrackingLinesearchState(
            learning_rate=value_as(max_learning_rate, dtype),
            value=jnp.full([], jnp.inf, dtype),
            grad=_tree.zeros_like(params) if store_grad else None,
            info=BacktrackingLinesearchInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, dtype)),
        )

    def update(updates, state, params=None, **extra):
        value_fn, value, grad, fn_kwargs = objective(owner, params, extra)
        _tree.check_match(owner, (params, updates), ("params", "updates"))
        if store_grad:  # the state keeps a gradient like the params: check they still fit
            _tree.check_match(owner, (state.grad, params), ("state", "params"))
        dtype = state.value.dtype
        f0 = jnp.asarray(value).astype(dtype)
        slope = _tree.vdot(updates, grad).astype(dtype)
        c1 = value_as(slope_rtol, dtype)
        bound = f0 + value_as(atol, dtype) + value_as(rtol, dtype) * jnp.abs(f0)
        guess = jnp.minimum(
            state.learning_rate * value_as(increase_factor, dtype),
            value_as(max_learning_rate, dtype),
        )
        fn = functools.partial(value_fn, **fn_kwargs)
        evaluate = value_and_update_grad(fn) if store_grad else lambda x: (fn(x), None)
        zero_grad = _as_like(grad, params) if store_grad else None

        def cond(carry):
            it, _, ok, *_ = carry
            return ~ok & (it < max_backtracking_steps)

        def body(carry):
            it, step, ok, _, f_best, g_best, _ = carry
            f, g = evaluate(_tree.add_scaled(params, step, updates))
            f = jnp.asarray(f).astype(dtype)
            threshold = bound + c1 * step * slope
            armijo = f <= threshold
            g = _as_like(g, params) if store_grad else None
            next_step = jnp.where(armijo, step, step * value_as(decrease_factor, dtype))
            pick = functools.partial(jnp.where, armijo)
            g_best = jax.tree.map(pick, g, g_best) if store_grad else None
            return it + 1, next_step, armijo, step, pick(f, f_best), g_best, f - threshold

        inf = jnp.full([], jnp.inf, dtype)
        start = (jnp.zeros([], jnp.int32), guess, jnp.zeros([], bool), guess, f0, zero_grad, inf)
        it, _, ok, tried, f_new, g_new, gap = jax.lax.while_loop(cond, body, start)
        step = jnp.where(ok, tried, jnp.zeros_like(tried))
        if verbose:
            jax.lax.cond(
                ok,
                lambda: None,
                lambda: jax.debug.print(
                    f"{owner}: no step met the sufficient decrease condition in "
                    f"{max_backtracking_steps} trials; the params are left unchanged"
                ),
            )
        out = jax.tree.map(lambda u: (step.astype(u.dtype) * u).astype(u.dtype), updates)
        error = jnp.where(ok, jnp.zeros_like(gap), failure_error(gap))
        new_state = ScaleByBacktrackingLinesearchState(
            learning_rate=tried,
            value=f_new,
            grad=g_new,
            info=BacktrackingLinesearchInfo(num_linesearch_steps=it, decrease_error=error),
        )
        return out, new_state

    return GradientTransformation(init, update)


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: ScalarOrSchedule = 1e-4,
    decrease_factor: ScalarOrSchedule = 0.8,
    increase_factor: ScalarOrSchedule = 1.5,
    max_learning_rate: ScalarOrSchedule = 1.0,
    atol: ScalarOrSchedule = 0.0,
    rtol: ScalarOrSchedule = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> GradientTransformation:
    r"""Backtracking line search: the first step size of a shrinking sequence with enough decrease.

    Trial steps :math:`\eta_j = \eta_0 \rho^j` (:math:`\rho` = ``decrease_factor``), starting from
    :math:`\eta_0 = \min(\gamma\, \eta_{prev}, \eta_{max})`, until the sufficient decrease
    (Armijo) condition holds:

    .. math::
      f(w + \eta u) \le f(w) + c_1 \eta \langle u, \nabla f(w) \rangle
        + \epsilon_{abs} + \epsilon_{rel} |f(w)|

    with :math:`c_1` = ``slope_rtol``. The output is :math:`\eta u`. Defaults are optax's.

    If no trial meets the condition within ``max_backtracking_steps`` (a direction that does
    not descend, or a decrease below the float precision), the update is zero: the params stay
    where they are, never NaN; ``state.info.decrease_error`` is positive (how much the last
    trial missed the condition by; ``state.info.succeeded`` is False) and the next search starts
    from the smallest step tried. A trial whose value is NaN or infinite counts as failing.

    Args:
      max_backtracking_steps: the most trial points evaluated per update (>= 1).
      slope_rtol: :math:`c_1` in (0, 1).
      decrease_factor: :math:`\rho` in (0, 1).
      increase_factor: :math:`\gamma \ge 1`, growth of the first guess from the last step taken
        (1 keeps it; ``math.inf`` starts every search at ``max_learning_rate``).
      max_learning_rate: :math:`\eta_{max} > 0`, the largest step tried.
      atol: :math:`\epsilon_{abs} \ge 0`.
      rtol: :math:`\epsilon_{rel} \ge 0` (relative to :math:`|f(w)|`; optax multiplies
        :math:`f(w)` itself, the same for a positive objective).
      store_grad: evaluate the gradient with each trial and keep the accepted point's, so that
        :func:`value_and_grad_from_state` can reuse it.
      verbose: print (``jax.debug.print``) when a search fails.

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs ``value``, ``grad`` and
      ``value_fn`` (see the module notes); its state (inside the table's
      :class:`gradtx.HyperState`) is optax's :class:`gradtx.ScaleByBacktrackingLinesearchState`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(x ** 2)
      >>> tx = gradtx.chain(gradtx.sgd(1.0),
      ...                   gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=15))
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> state = tx.init(x)
      >>> value, grad = jax.value_and_grad(fn)(x)
      >>> updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
      >>> float(state[1].inner_state.learning_rate)  # 1 fails, 0.8 decreases enough
      0.800000011920929
      >>> round(float(fn(gradtx.apply_updates(x, updates))), 2)
      5.04

    References:
      Armijo, *Minimization of functions having Lipschitz continuous first partial derivatives*,
      Pacific Journal of Mathematics, 1966; Nocedal and Wright, *Numerical Optimization*, 2nd ed.,
      2006, Algorithm 3.1.
    """
    owner = "scale_by_backtracking_linesearch"
    max_backtracking_steps = check_count(owner, "max_backtracking_steps", max_backtracking_steps)
    store_grad = check_flag(owner, "store_grad", store_grad)
    verbose = check_flag(owner, "verbose", verbose)
    # Ranges are checked by live (the table in _hyper), here and in set_hyperparams.
    if increase_factor == math.inf:
        increase_factor = float(jnp.finfo(jnp.float32).max)  # any guess then exceeds the cap
    build = functools.partial(
        _backtracking,
        max_backtracking_steps=max_backtracking_steps,
        store_grad=store_grad,
        verbose=verbose,
    )
    return live(
        owner,
        build,
        slope_rtol=slope_rtol,
        decrease_factor=decrease_factor,
        increase_factor=increase_factor,
        max_learning_rate=max_learning_rate,
        atol=atol,
        rtol=rtol,
    )


# ---- reusing the last evaluation -----------------------------------------------------------

_STATES = (ScaleByBacktrackingLinesearchState, ScaleByZoomLinesearchState)


def _find_linesearch_states(state: PyTree) -> list[Any]:
    found = []

    def visit(node):
        if isinstance(node, _STATES):
            found.append(node)
        return node

    jax.tree.map(visit, state, is_leaf=lambda x: isinstance(x, _STATES))
    return found


def value_and_grad_from_state(
    value_fn: Callable[..., jax.Array],
) -> Callable[..., tuple[jax.Array, PyTree]]:
    r""":func:`jax.value_and_grad` of ``value_fn`` that reuses what a line search computed.

    The returned function, called as ``f(params, *args, state=opt_state, **kwargs)``, returns
    the value and gradient the line search in ``opt_state`` stored for the point it accepted,
    which is ``params`` when the last updates were applied. Before the first step (the stored
    value is infinite) or after a non-finite value, it evaluates ``value_fn`` instead (selected
    by ``lax.cond``: no host sync). So an L-BFGS step whose first trial is accepted costs one
    evaluation of the objective and its gradient. For complex params the gradient is the
    conjugate of ``jax.grad``'s, as ``update`` takes it (see :func:`value_and_update_grad`).

    Args:
      value_fn: the objective, a scalar function of the params (and further arguments).

    Returns:
      ``f(params, *args, state, **kwargs) -> (value, grad)``.

    Raises:
      ValueError: (when called) if ``state`` holds no line search or several, or a
        backtracking search built without ``store_grad=True``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(x ** 2)
      >>> tx, x = gradtx.lbfgs(), jnp.array([1.0, 2.0])
      >>> state = tx.init(x)
      >>> value_and_grad = gradtx.value_and_grad_from_state(fn)
      >>> value, grad = value_and_grad(x, state=state)  # evaluated: nothing stored yet
      >>> updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
      >>> x = gradtx.apply_updates(x, updates)
      >>> value, grad = value_and_grad(x, state=state)  # the line search's, not re-evaluated
      >>> round(float(value), 4), round(float(fn(x)), 4)
      (1.5279, 1.5279)

    References:
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, section 3.5: the line
      search evaluates :math:`f` and :math:`\nabla f` at the step it accepts, which is the next
      iterate.
    """
    if not callable(value_fn):
        raise TypeError(f"value_and_grad_from_state: value_fn must be callable, got {value_fn!r}")
    owner = "value_and_grad_from_state"

    def value_and_grad(params, *args, state, **kwargs):
        found = _find_linesearch_states(state)
        if len(found) != 1:
            # several are a lookup that is ambiguous: KeyError, as gradtx.tree.get's and optax's
            error = ValueError if not found else KeyError
            raise error(
                f"{owner}: the state must hold exactly one line search "
                "(scale_by_zoom_linesearch or scale_by_backtracking_linesearch), "
                f"found {len(found)}"
            )
        search = found[0]
        if search.grad is None:
            raise ValueError(
                f"{owner}: the backtracking line search keeps no gradient; build it with "
                f"store_grad=True"
            )
        _tree.check_match(owner, (params, search.grad), ("params", "stored grad"))
        evaluate = value_and_update_grad(value_fn)
        out = jax.eval_shape(evaluate, params, *args, **kwargs)

        def stored():
            value = search.value.astype(out[0].dtype)
            return value, jax.tree.map(lambda g, s: g.astype(s.dtype), search.grad, out[1])

        def compute():
            return evaluate(params, *args, **kwargs)

        return jax.lax.cond(jnp.isfinite(search.value), stored, compute)

    return value_and_grad
