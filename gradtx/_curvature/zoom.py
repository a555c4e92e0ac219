"""The zoom line search: a step meeting the strong Wolfe conditions (Nocedal & Wright 3.5-3.6).

The shared pieces (the objective from ``update``'s extras, the state, the info) are in
:mod:`gradtx._curvature.linesearch`.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_count, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as
from gradtx._curvature.linesearch import (
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    _as_like,
    failure_error,
    objective,
    scalar_dtype,
    value_and_update_grad,
)


def interpolate(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi):
    """The minimiser of the cubic through both ends' values and slopes, safeguarded.

    Nocedal and Wright (3.59); if the cubic has no minimiser inside the interval's middle 80%,
    the quadratic through ``f_lo, d_lo, f_hi``; failing that, the midpoint.
    """
    delta = a_hi - a_lo
    d1 = d_lo + d_hi - 3 * (f_lo - f_hi) / (a_lo - a_hi)
    disc = d1 * d1 - d_lo * d_hi
    d2 = jnp.sign(delta) * jnp.sqrt(jnp.maximum(disc, 0))
    cubic = a_hi - delta * (d_hi + d2 - d1) / (d_hi - d_lo + 2 * d2)
    quadratic = a_lo - d_lo * delta * delta / (2 * (f_hi - f_lo - d_lo * delta))
    low = jnp.minimum(a_lo, a_hi) + 0.1 * jnp.abs(delta)
    high = jnp.maximum(a_lo, a_hi) - 0.1 * jnp.abs(delta)

    def inside(x):
        return jnp.isfinite(x) & (x >= low) & (x <= high)

    middle = a_lo + delta / 2
    return jnp.where(
        (disc >= 0) & inside(cubic), cubic, jnp.where(inside(quadratic), quadratic, middle)
    )


def _zoom(
    slope_rtol: Value,
    curv_rtol: Value,
    increase_factor: Value,
    tol: Value,
    stepsize_precision: Value,
    max_learning_rate: Value | None,
    approx_dec_rtol: Value | None,
    *,
    max_linesearch_steps: int,
    initial_guess_strategy: str,
    verbose: bool,
) -> GradientTransformation:
    owner = "scale_by_zoom_linesearch"

    def init(params):
        dtype = scalar_dtype(params)
        inf = jnp.full([], jnp.inf, dtype)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones([], dtype),
            value=inf,
            grad=_tree.zeros_like(params),
            info=ZoomLinesearchInfo(jnp.zeros([], jnp.int32), inf, inf),
        )

    def update(updates, state, params=None, **extra):
        value_fn, value, grad, fn_kwargs = objective(owner, params, extra)
        _tree.check_match(owner, (params, updates), ("params", "updates"))
        # the state keeps a gradient like the params: params of other shapes would replace it
        # silently (a state of another structure, retraced every step)
        _tree.check_match(owner, (state.grad, params), ("state", "params"))
        dtype = state.value.dtype
        c1, c2 = value_as(slope_rtol, dtype), value_as(curv_rtol, dtype)
        eps = value_as(tol, dtype)
        cap = jnp.asarray(jnp.inf, dtype)
        if max_learning_rate is not None:
            cap = value_as(max_learning_rate, dtype)
        f0 = jnp.asarray(value).astype(dtype)
        g0 = _as_like(grad, params)
        d0 = _tree.vdot(updates, g0).astype(dtype)
        evaluate = value_and_update_grad(functools.partial(value_fn, **fn_kwargs))

        def phi(step):
            f, g = evaluate(_tree.add_scaled(params, step, updates))
            g = _as_like(g, params)
            return jnp.asarray(f).astype(dtype), g, _tree.vdot(updates, g).astype(dtype)

        first = state.learning_rate if initial_guess_strategy == "keep" else jnp.ones([], dtype)
        zero = jnp.zeros([], dtype)
        false = jnp.zeros([], bool)
        # lo: the best point meeting sufficient decrease so far (step 0 at first); hi: the other
        # end of the bracket once one is found (Nocedal and Wright's alpha_lo and alpha_hi).
        inf = jnp.full([], jnp.inf, dtype)
        curvature_bound = c2 * jnp.abs(d0) + eps
        start = dict(
            it=jnp.zeros([], jnp.int32),
            done=false,
            accepted=false,
            zooming=false,
            trial=jnp.minimum(first, cap),
            lo=(zero, f0, d0, g0),
            hi=(zero, f0, d0),
            gaps=(inf, inf),
        )

        def cond(c):
            return ~c["done"] & (c["it"] < max_linesearch_steps)

        def body(c):
            step = c["trial"]
            f, g, d = phi(step)
            a_lo, f_lo, d_lo, g_lo = c["lo"]
            a_hi, f_hi, d_hi = c["hi"]
            armijo_bound = f0 + c1 * step * d0 + eps
            armijo = f <= armijo_bound
            decrease = armijo & ((c["it"] == 0) | (f < f_lo))
            curvature = jnp.abs(d) <= curvature_bound
            accept = decrease & curvature
            if approx_dec_rtol is not None:
                # Hager and Zhang's approximate Wolfe conditions, checkable to machine precision
                # where the Armijo test (a difference of values) no longer is.
                near = f <= f0 + value_as(approx_dec_rtol, dtype) * jnp.abs(f0) + eps
                slope_ok = (d >= c2 * d0 - eps) & (d <= (2 * c1 - 1) * d0 + eps)
                accept = accept | (near & slope_ok & jnp.isfinite(f))
            # Decrease without curvature: a slope pointing back at lo (or, before a bracket,
            # uphill) closes the bracket on the far side: hi becomes the old lo.
            flip = decrease & jnp.where(c["zooming"], d * (a_hi - a_lo) >= 0, d >= 0)
            move_lo = accept | decrease
            move_hi = ~accept & (~decrease | flip)
            new_lo = jax.tree.map(
                functools.partial(jnp.where, move_lo), (step, f, d, g), (a_lo, f_lo, d_lo, g_lo)
            )
            hi_from = jax.tree.map(
                functools.partial(jnp.where, flip), (a_lo, f_lo, d_lo), (step, f, d)
            )
            new_hi = jax.tree.map(
                functools.partial(jnp.where, move_hi), hi_from, (a_hi, f_hi, d_hi)
            )
            zooming = c["zooming"] | move_hi
            extrapolated = jnp.minimum(step * value_as(increase_factor, dtype), cap)
            capped = ~zooming & (step >= cap)  # sufficient decrease at the cap: take it
            narrow = zooming & (
                jnp.abs(new_hi[0] - new_lo[0]) <= value_as(stepsize_precision, dtype)
            )
            trial = jnp.where(zooming, interpolate(*new_lo[:3], *new_hi), extrapolated)
            return dict(
                it=c["it"] + 1,
                done=accept | capped | narrow,
                accepted=accept,
                zooming=zooming,
                trial=trial,
                lo=new_lo,
                hi=new_hi,
                gaps=(f - armijo_bound, jnp.abs(d) - curvature_bound),
            )

        c = jax.lax.while_loop(cond, body, start)
        step, f_new, d_new, g_new = c["lo"]
        # optax's errors: 0 for each condition the step taken meets. A step taken (> 0) met
        # sufficient decrease (the bracket's low end) and, unless accepted, missed curvature;
        # with no step taken, the last trial's misses say why.
        taken, (decrease_gap, curvature_gap) = step > 0, c["gaps"]
        curvature_gap = jnp.where(taken, jnp.abs(d_new) - curvature_bound, curvature_gap)
        missed = taken | ~(curvature_gap <= 0)  # NaN too
        info = ZoomLinesearchInfo(
            num_linesearch_steps=c["it"],
            decrease_error=jnp.where(c["accepted"] | taken, zero, failure_error(decrease_gap)),
            curvature_error=jnp.where(~c["accepted"] & missed, failure_error(curvature_gap), zero),
        )
        if verbose:
            jax.lax.cond(
                c["accepted"],
                lambda: None,
                lambda: jax.debug.print(
                    owner + ": no step met the Wolfe conditions; took step {s}", s=step
                ),
            )
        out = jax.tree.map(lambda u: (step.astype(u.dtype) * u).astype(u.dtype), updates)
        new_state = ScaleByZoomLinesearchState(
            learning_rate=jnp.where(taken, step, state.learning_rate),
            value=f_new,
            grad=g_new,
            info=info,
        )
        return out, new_state

    return GradientTransformation(init, update)


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: ScalarOrSchedule | None = None,
    tol: ScalarOrSchedule = 0.0,
    increase_factor: ScalarOrSchedule = 2.0,
    slope_rtol: ScalarOrSchedule = 1e-4,
    curv_rtol: ScalarOrSchedule = 0.9,
    approx_dec_rtol: ScalarOrSchedule | None = 1e-6,
    stepsize_precision: ScalarOrSchedule = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> GradientTransformation:
    r"""Line search for a step meeting the strong Wolfe conditions (bracketing, then zoom).

    With :math:`\phi(\eta) = f(w + \eta u)`, it looks for :math:`\eta` with

    .. math::
      \phi(\eta) \le \phi(0) + c_1 \eta \phi'(0) + \epsilon, \qquad
      |\phi'(\eta)| \le c_2 |\phi'(0)| + \epsilon

    (:math:`c_1` = ``slope_rtol``, :math:`c_2` = ``curv_rtol``, :math:`\epsilon` = ``tol``).
    Bracketing (Nocedal and Wright, Algorithm 3.5) tries the initial guess, then multiplies the
    step by ``increase_factor`` until a bracket is found; zoom (Algorithm 3.6) then shrinks it,
    each trial the minimiser of the cubic interpolating both ends' values and slopes
    (quadratic, then bisection, as safeguards). Each trial costs one value-and-gradient.

    With ``approx_dec_rtol`` set, a trial is also accepted if it meets Hager and Zhang's
    approximate Wolfe conditions :math:`c_2 \phi'(0) \le \phi'(\eta) \le (2 c_1 - 1) \phi'(0)`
    with :math:`\phi(\eta) \le \phi(0) + \epsilon_{rel} |\phi(0)|`: near a minimum the Armijo
    test compares values that agree to the float precision and would reject good steps.
    ``None`` keeps the strong Wolfe conditions only.

    Failure: when no trial meets the conditions within ``max_linesearch_steps``, or the bracket
    becomes narrower than ``stepsize_precision``, or the step reaches ``max_learning_rate``, the
    step taken is the best trial that met the sufficient decrease condition (the bracket's low
    end); if none did, the step is 0 and the params stay, never NaN. ``state.info`` tells which
    happened, as optax's :class:`gradtx.ZoomLinesearchInfo`: ``decrease_error`` and
    ``curvature_error`` are 0 for each condition the step taken meets, and positive (by how
    much it, or with no step taken the last trial, missed the condition; inf for a NaN) for
    each it misses; ``state.info.succeeded`` is both at 0. A NaN or infinite trial value counts
    as failing sufficient decrease.

    Args:
      max_linesearch_steps: the most trial points evaluated per update (>= 1).
      max_learning_rate: the largest step tried (None: no bound).
      tol: :math:`\epsilon \ge 0`, an absolute slack on both conditions.
      increase_factor: growth of the step while bracketing (> 1).
      slope_rtol: :math:`c_1` in (0, 1); 1e-4 as Nocedal and Wright advise.
      curv_rtol: :math:`c_2` in (``slope_rtol``, 1); 0.9 for (quasi-)Newton directions.
      approx_dec_rtol: :math:`\epsilon_{rel} \ge 0` of the approximate Wolfe test, or None.
      stepsize_precision: stop zooming when the bracket is narrower than this (absolute).
      initial_guess_strategy: ``"keep"`` starts from the last step taken (for gradient
        directions); ``"one"`` starts from 1 (for Newton and quasi-Newton directions).
      verbose: print (``jax.debug.print``) when a search fails.

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs ``value``, ``grad`` and
      ``value_fn``; its state (inside the table's :class:`gradtx.HyperState`) is optax's
      :class:`gradtx.ScaleByZoomLinesearchState`, keeping the accepted point's value and
      gradient.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> tx = gradtx.chain(gradtx.sgd(1.0),
      ...                   gradtx.scale_by_zoom_linesearch(max_linesearch_steps=10))
      >>> x = jnp.zeros(3)
      >>> state = tx.init(x)
      >>> value, grad = jax.value_and_grad(fn)(x)
      >>> updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
      >>> gradtx.apply_updates(x, updates)  # the cubic lands on the minimum along -grad
      Array([1., 1., 1.], dtype=float32)

    References:
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithms 3.5 and 3.6,
      equation (3.59); Hager and Zhang, *A new conjugate gradient method with guaranteed
      descent and an efficient line search*, SIAM J. Optim., 2005.
    """
    owner = "scale_by_zoom_linesearch"
    max_linesearch_steps = check_count(owner, "max_linesearch_steps", max_linesearch_steps)
    verbose = check_flag(owner, "verbose", verbose)
    if not isinstance(initial_guess_strategy, str):
        raise TypeError(
            f"{owner}: initial_guess_strategy must be the string 'keep' or 'one', "
            f"got {initial_guess_strategy!r}"
        )
    if initial_guess_strategy not in ("keep", "one"):
        raise ValueError(
            f"{owner}: initial_guess_strategy must be 'keep' or 'one', "
            f"got {initial_guess_strategy!r}"
        )
    build = functools.partial(
        _zoom,
        max_linesearch_steps=max_linesearch_steps,
        initial_guess_strategy=initial_guess_strategy,
        verbose=verbose,
    )
    tx = live(
        owner,
        build,
        optional=("max_learning_rate", "approx_dec_rtol"),
        slope_rtol=slope_rtol,
        curv_rtol=curv_rtol,
        increase_factor=increase_factor,
        tol=tol,
        stepsize_precision=stepsize_precision,
        max_learning_rate=max_learning_rate,
        approx_dec_rtol=approx_dec_rtol,
    )
    # live checked each range (the table in _hyper); what the table cannot say:
    if isinstance(slope_rtol, numbers.Real) and isinstance(curv_rtol, numbers.Real):
        if not slope_rtol < curv_rtol:
            raise ValueError(
                f"{owner}: curv_rtol must be greater than slope_rtol, got curv_rtol={curv_rtol} "
                f"and slope_rtol={slope_rtol}"
            )
    if isinstance(increase_factor, numbers.Real) and not increase_factor > 1:
        raise ValueError(f"{owner}: increase_factor must be > 1, got {increase_factor!r}")
    return tx
