"""Independent float64 NumPy references for gradtx gradient transformations.

Pure NumPy, written directly from the formulas in the docstrings (no jax, optax,
torch or gradtx). Every factory returns a ``Ref`` with

    init(params) -> state
    update(grads, state, params) -> (updates, new_state)

operating on a Python list of arrays (the leaves of a pytree; any shape,
including 0-d and zero-size). ``updates`` is what gets ADDED to the params.
Inputs are never mutated; all arithmetic is float64. The step count ``t``
is 1 for the first update. A "schedulable" hyperparameter may be a number or
a callable ``count -> float``, evaluated at ``count`` = number of updates done
before the current one (0 on the first update).

Complex leaves are computed in complex128, in the natural complex form of each algorithm
(optax's where optax has one): the gradient of a complex param is ``df/dRe + i df/dIm``;
second moments and sums of squares are of ``|g|**2 = Re(g)**2 + Im(g)**2`` (real, one per
element; a first moment stays complex); norms are of ``|g|`` (the norm of the (real,
imaginary) pairs); ``clip`` clips the real and imaginary parts each. Real leaves give the same
numbers as before complex support.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Leaves = list[np.ndarray]


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _f64(x) -> np.ndarray:
    """Fresh float64 ndarray, complex128 for complex x (never a numpy scalar, never an alias of
    x)."""
    x = np.asarray(x)
    return np.array(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64)


def _leaves(xs) -> Leaves:
    return [_f64(x) for x in xs]


def _value(h, count: int) -> float:
    """Hyperparameter value at ``count``: h(count) if callable, else h."""
    return float(h(count)) if callable(h) else float(h)


def _abs_sq(x: np.ndarray) -> np.ndarray:
    """|x|**2, real: x*x for real x, Re(x)**2 + Im(x)**2 for complex x."""
    if np.iscomplexobj(x):
        return x.real * x.real + x.imag * x.imag
    return x * x


def _real_full(p: np.ndarray, value) -> np.ndarray:
    """A real (float64) array shaped like p filled with value: a state of magnitudes."""
    return np.full(p.shape, value, np.float64)


def _norm(x: np.ndarray) -> float:
    """Euclidean (Frobenius) norm over the whole leaf (of |x| for complex x); 0 for
    zero-size."""
    return math.sqrt(float(np.sum(_abs_sq(x))))


class Ref:
    """Generic reference transformation built from init/update functions."""

    def __init__(self, init_fn: Callable, update_fn: Callable):
        self._init_fn = init_fn
        self._update_fn = update_fn

    def init(self, params) -> Any:
        return self._init_fn(_leaves(params))

    def update(self, grads, state, params=None) -> tuple[Leaves, Any]:
        p = None if params is None else _leaves(params)
        updates, new_state = self._update_fn(_leaves(grads), state, p)
        return [_f64(u) for u in updates], new_state


def _stateless(fn: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> Ref:
    """Elementwise per-leaf transformation with no state: out = fn(g, p)."""

    def update(gs, state, ps):
        ps = ps if ps is not None else [None] * len(gs)
        return [fn(g, p) for g, p in zip(gs, ps)], state

    return Ref(lambda params: (), update)


def _counted(fn: Callable[[Leaves, Leaves | None, int], Leaves]) -> Ref:
    """Stateless except for the update count; out = fn(gs, ps, count)."""

    def update(gs, count, ps):
        return fn(gs, ps, count), count + 1

    return Ref(lambda params: 0, update)


def _need(ps, name):
    if ps is None:
        raise ValueError(f"{name} requires params")
    return ps


def chain(*refs: Ref) -> Ref:
    """Apply refs in order; each link's updates feed the next. State: tuple."""

    def init(params):
        return tuple(r.init(params) for r in refs)

    def update(gs, states, ps):
        new_states = []
        for r, s in zip(refs, states):
            gs, s = r.update(gs, s, ps)
            new_states.append(s)
        return gs, tuple(new_states)

    return Ref(init, update)


# --------------------------------------------------------------------------- #
# Elementary transformations
# --------------------------------------------------------------------------- #
def identity() -> Ref:
    """out = g."""
    return _stateless(lambda g, p: g)


def set_to_zero() -> Ref:
    """out = 0 * g."""
    return _stateless(lambda g, p: 0.0 * g)


def scale(step_size) -> Ref:
    """out = step_size * g   (step_size schedulable)."""
    return _counted(lambda gs, ps, c: [_value(step_size, c) * g for g in gs])


def scale_by_schedule(step_size_fn) -> Ref:
    """out = step_size_fn(count) * g."""
    return scale(step_size_fn)


def scale_by_learning_rate(learning_rate, flip_sign: bool = True) -> Ref:
    """out = -lr * g if flip_sign else lr * g   (lr schedulable)."""
    sign = -1.0 if flip_sign else 1.0
    return _counted(lambda gs, ps, c: [sign * _value(learning_rate, c) * g for g in gs])


def trace(decay, nesterov: bool = False) -> Ref:
    """v0 = 0; v = decay*v + g; out = g + decay*v if nesterov else v (decay schedulable)."""

    def update(gs, state, ps):
        count, vs = state
        d = _value(decay, count)
        vs = [d * v + g for v, g in zip(vs, gs)]
        out = [g + d * v for g, v in zip(gs, vs)] if nesterov else vs
        return out, (count + 1, vs)

    return Ref(lambda params: (0, [np.zeros_like(p) for p in params]), update)


def ema(decay, debias: bool = True) -> Ref:
    """m0 = 0; m = decay*m + (1-decay)*g; out = m/(1-decay_t**t) if debias else m.

    decay is schedulable; bias correction uses the current decay value decay_t.
    """

    def update(gs, state, ps):
        count, ms = state
        d, t = _value(decay, count), count + 1
        ms = [d * m + (1.0 - d) * g for m, g in zip(ms, gs)]
        out = [m / (1.0 - d**t) for m in ms] if debias else ms
        return out, (t, ms)

    return Ref(lambda params: (0, [np.zeros_like(p) for p in params]), update)


def bias_correction(decay: float) -> Ref:
    """out = g / (1 - decay**t)."""
    return _counted(lambda gs, ps, c: [g / (1.0 - decay ** (c + 1)) for g in gs])


def scale_by_rms(
    decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False
) -> Ref:
    """v0 = initial_scale; v = decay*v + (1-decay)*|g|**2;
    vhat = v/(1-decay**t) if bias_correction else v;
    out = g/sqrt(vhat+eps) if eps_in_sqrt else g/(sqrt(vhat)+eps)."""

    def update(gs, state, ps):
        count, vs = state
        t = count + 1
        vs = [decay * v + (1.0 - decay) * _abs_sq(g) for v, g in zip(vs, gs)]
        vh = [v / (1.0 - decay**t) for v in vs] if bias_correction else vs
        if eps_in_sqrt:
            out = [g / np.sqrt(v + eps) for g, v in zip(gs, vh)]
        else:
            out = [g / (np.sqrt(v) + eps) for g, v in zip(gs, vh)]
        return out, (t, vs)

    return Ref(lambda params: (0, [_real_full(p, initial_scale) for p in params]), update)


def scale_by_stddev(
    decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False
) -> Ref:
    """m0 = 0, v0 = initial_scale; m = decay*m+(1-decay)*g; v = decay*v+(1-decay)*|g|**2;
    mhat, vhat = (m, v)/(1-decay**t) if bias_correction else (m, v);
    out = g/sqrt(vhat - |mhat|**2 + eps) if eps_in_sqrt else g/(sqrt(vhat - |mhat|**2)+eps)."""

    def init(params):
        return (
            0,
            [np.zeros_like(p) for p in params],
            [_real_full(p, initial_scale) for p in params],
        )

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        ms = [decay * m + (1.0 - decay) * g for m, g in zip(ms, gs)]
        vs = [decay * v + (1.0 - decay) * _abs_sq(g) for v, g in zip(vs, gs)]
        c = (1.0 - decay**t) if bias_correction else 1.0
        var = [v / c - _abs_sq(m / c) for m, v in zip(ms, vs)]
        if eps_in_sqrt:
            out = [g / np.sqrt(s + eps) for g, s in zip(gs, var)]
        else:
            out = [g / (np.sqrt(s) + eps) for g, s in zip(gs, var)]
        return out, (t, ms, vs)

    return Ref(init, update)


def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True) -> Ref:
    """s0 = initial_accumulator_value; s = s + |g|**2;
    eps_in_sqrt: out = g/sqrt(s+eps) where s > 0, 0 where s == 0;
    else:        out = g/(sqrt(s)+eps)."""

    def leaf(g, s):
        if not eps_in_sqrt:
            return g / (np.sqrt(s) + eps)
        pos = s > 0
        return np.where(pos, g / np.sqrt(np.where(pos, s, 1.0) + eps), 0.0)

    def update(gs, ss, ps):
        ss = [s + _abs_sq(g) for s, g in zip(ss, gs)]
        return [leaf(g, s) for g, s in zip(gs, ss)], ss

    return Ref(lambda params: [_real_full(p, initial_accumulator_value) for p in params], update)


def scale_by_adadelta(rho=0.9, eps=1e-6) -> Ref:
    """Eg0 = Ex0 = 0; Eg = rho*Eg + (1-rho)*|g|**2;
    d = sqrt(Ex_prev+eps)/sqrt(Eg+eps)*g; Ex = rho*Ex_prev + (1-rho)*|d|**2; out = d."""

    def update(gs, state, ps):
        egs, exs = state
        egs = [rho * eg + (1.0 - rho) * _abs_sq(g) for eg, g in zip(egs, gs)]
        ds = [np.sqrt(ex + eps) / np.sqrt(eg + eps) * g for ex, eg, g in zip(exs, egs, gs)]
        exs = [rho * ex + (1.0 - rho) * _abs_sq(d) for ex, d in zip(exs, ds)]
        return ds, (egs, exs)

    return Ref(
        lambda params: ([_real_full(p, 0.0) for p in params], [_real_full(p, 0.0) for p in params]),
        update,
    )


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, nesterov=False) -> Ref:
    """m = b1*m+(1-b1)*g; v = b2*v+(1-b2)*|g|**2 (m0 = v0 = 0);
    mhat = m/(1-b1**t), or if nesterov b1*m/(1-b1**(t+1)) + (1-b1)*g/(1-b1**t);
    vhat = v/(1-b2**t); out = mhat/(sqrt(vhat+eps_root)+eps)."""

    def init(params):
        return (0, [np.zeros_like(p) for p in params], [_real_full(p, 0.0) for p in params])

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1.0 - b2) * _abs_sq(g) for v, g in zip(vs, gs)]
        if nesterov:
            mh = [
                b1 * m / (1.0 - b1 ** (t + 1)) + (1.0 - b1) * g / (1.0 - b1**t)
                for m, g in zip(ms, gs)
            ]
        else:
            mh = [m / (1.0 - b1**t) for m in ms]
        vh = [v / (1.0 - b2**t) for v in vs]
        out = [m / (np.sqrt(v + eps_root) + eps) for m, v in zip(mh, vh)]
        return out, (t, ms, vs)

    return Ref(init, update)


def add_decayed_weights(weight_decay=0.0) -> Ref:
    """out = g + weight_decay * p   (weight_decay schedulable)."""

    def fn(gs, ps, c):
        wd = _value(weight_decay, c)
        return [g + wd * p for g, p in zip(gs, _need(ps, "add_decayed_weights"))]

    return _counted(fn)


def scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0) -> Ref:
    """Per leaf: pn = max(||p||, min_norm); un = max(||g||, min_norm);
    ratio = trust_coefficient*pn/(un+eps), or 1 if pn == 0 or un == 0; out = ratio*g."""

    def leaf(g, p):
        pn = max(_norm(_need(p, "scale_by_trust_ratio")), min_norm)
        un = max(_norm(g), min_norm)
        ratio = 1.0 if (pn == 0.0 or un == 0.0) else trust_coefficient * pn / (un + eps)
        return ratio * g

    return _stateless(leaf)


def clip(max_delta) -> Ref:
    """out = clip(g, -max_delta, max_delta); for complex g, Re(g) and Im(g) clipped each."""

    def leaf(g, p):
        if np.iscomplexobj(g):
            return leaf(g.real, p) + 1j * leaf(g.imag, p)
        return np.clip(g, -max_delta, max_delta)

    return _stateless(leaf)


def clip_by_norm(max_norm) -> Ref:
    """Per leaf: n = ||g||; out = g if n <= max_norm else g*max_norm/n."""

    def leaf(g, p):
        n = _norm(g)
        return g if n <= max_norm else g * (max_norm / n)

    return _stateless(leaf)


def clip_by_global_norm(max_norm) -> Ref:
    """N = sqrt(sum over all leaves of sum(|g|**2)); out = g if N <= max_norm else g*max_norm/N."""

    def update(gs, state, ps):
        n = math.sqrt(sum(float(np.sum(_abs_sq(g))) for g in gs))
        if n <= max_norm:
            return gs, state
        return [g * (max_norm / n) for g in gs], state

    return Ref(lambda params: (), update)


# --------------------------------------------------------------------------- #
# Optimizers
# --------------------------------------------------------------------------- #
def sgd(learning_rate, momentum=None, nesterov=False) -> Ref:
    """chain(trace(momentum, nesterov) or identity, -lr)."""
    first = trace(momentum, nesterov) if momentum is not None else identity()
    return chain(first, scale_by_learning_rate(learning_rate))


def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True) -> Ref:
    """chain(scale_by_rss(...), -lr)."""
    return chain(
        scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt),
        scale_by_learning_rate(learning_rate),
    )


def adadelta(learning_rate=None, rho=0.9, eps=1e-6, weight_decay=0.0) -> Ref:
    """chain(add_decayed_weights(wd), scale_by_adadelta(rho, eps), -lr); lr None -> 1.0."""
    lr = 1.0 if learning_rate is None else learning_rate
    return chain(
        add_decayed_weights(weight_decay), scale_by_adadelta(rho, eps), scale_by_learning_rate(lr)
    )


def rmsprop(
    learning_rate,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
    bias_correction=False,
) -> Ref:
    """chain(scale_by_stddev(...) if centered else scale_by_rms(...), -lr,
    trace(momentum, nesterov) or identity)  -- momentum AFTER the lr scaling."""
    pre = (scale_by_stddev if centered else scale_by_rms)(
        decay, eps, initial_scale, eps_in_sqrt, bias_correction
    )
    mom = trace(momentum, nesterov) if momentum is not None else identity()
    return chain(pre, scale_by_learning_rate(learning_rate), mom)


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, nesterov=False) -> Ref:
    """chain(scale_by_adam(...), -lr)."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, nesterov), scale_by_learning_rate(learning_rate)
    )


def adamw(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4, nesterov=False
) -> Ref:
    """chain(scale_by_adam(...), add_decayed_weights(wd), -lr)."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, nesterov),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def lamb(learning_rate, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0) -> Ref:
    """chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(wd),
    scale_by_trust_ratio(), -lr)."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate, weight_decay=0.0, trust_coefficient=0.001, eps=0.0, momentum=0.9, nesterov=False
) -> Ref:
    """chain(add_decayed_weights(wd), scale_by_trust_ratio(trust_coefficient=tc, eps=eps),
    -lr, trace(momentum, nesterov))."""
    return chain(
        add_decayed_weights(weight_decay),
        scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov),
    )


# --------------------------------------------------------------------------- #
# Schedules (plain functions of an int step, returning float64)
# --------------------------------------------------------------------------- #
def constant_schedule(value) -> Callable[[int], np.float64]:
    """step -> value."""
    return lambda step: np.float64(value)


def linear_schedule(init_value, end_value, transition_steps, transition_begin=0):
    """step -> init if transition_steps <= 0, else
    init + (end-init) * clip(step - transition_begin, 0, transition_steps) / transition_steps."""

    def schedule(step):
        if transition_steps <= 0:
            return np.float64(init_value)
        s = np.clip(np.float64(step) - transition_begin, 0.0, transition_steps)
        return np.float64(init_value + (end_value - init_value) * s / transition_steps)

    return schedule


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    """step -> init if decay_steps <= 0, else with s = min(step, decay_steps):
    init * ((1-alpha) * (0.5*(1+cos(pi*s/decay_steps)))**exponent + alpha)."""

    def schedule(step):
        if decay_steps <= 0:
            return np.float64(init_value)
        s = min(np.float64(step), np.float64(decay_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / decay_steps))
        return np.float64(init_value * ((1.0 - alpha) * cosine**exponent + alpha))

    return schedule


REFERENCES: dict[str, Callable[..., Ref]] = {
    f.__name__: f
    for f in (
        identity,
        set_to_zero,
        scale,
        scale_by_schedule,
        scale_by_learning_rate,
        trace,
        ema,
        bias_correction,
        scale_by_rms,
        scale_by_stddev,
        scale_by_rss,
        scale_by_adadelta,
        scale_by_adam,
        add_decayed_weights,
        scale_by_trust_ratio,
        clip,
        clip_by_norm,
        clip_by_global_norm,
        sgd,
        adagrad,
        adadelta,
        rmsprop,
        adam,
        adamw,
        lamb,
        lars,
    )
}

SCHEDULES: dict[str, Callable] = {
    f.__name__: f for f in (constant_schedule, linear_schedule, cosine_decay_schedule)
}
