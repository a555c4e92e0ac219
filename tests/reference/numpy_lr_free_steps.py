"""Float64 NumPy references of DoG, DoWG, MoMo and MoMo-Adam (gradtx/_optimizers/lr_free_steps.py),
written from the papers, in the conventions of ``numpy_reference`` (``Ref(init, update)`` on
lists of leaves, hyperparameters numbers or callables of the count, complex leaves as the real
problem on their (re, im) pairs: ``|x|**2`` and ``Re(conj(a) b)``).

* DoG (Ivgi, Hinder and Carmon, 2023): ``x_{t+1} = x_t - c eta_t g_t`` with
  ``eta_t = rbar_t / sqrt(G_t + eps)``, ``rbar_t = max(r_eps, max_{i<=t} ||x_i - x_0||)``,
  ``G_t = sum_{i<=t} ||g_i||**2`` (``eps``: the authors' code); ``init_step`` as optax's.
* DoWG (Khaled, Mishchenko and Jin, 2023, Algorithm 1): ``rbar_t**2 = max(r_eps**2,
  max_i ||x_i - x_0||**2)``, ``v_t = v_{t-1} + rbar_t**2 ||g_t||**2``, ``x_{t+1} = x_t - c
  rbar_t**2 / (sqrt(v_t) + eps) g_t`` (optax's ``eps``; r_eps**2 = eps unless given).
* MoMo and MoMo-Adam (Schaipp et al., 2023, with the online estimate of the lower
  bound), with the loss ``value(params)`` given to the factory; three forms of weight decay.

Weight decay (``weight_decay``, not None) in DoG and DoWG is an L2 term added to the gradient
before everything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tests.reference.numpy_reference import Ref, _abs_sq, _value


def _sq(xs) -> float:
    return float(sum(np.sum(_abs_sq(x)) for x in xs))


def _dot(a, b) -> float:
    return float(sum(np.sum((np.conj(x) * y).real) for x, y in zip(a, b)))


def _with_decay(gs, ps, weight_decay, count):
    if weight_decay is None:
        return gs
    wd = _value(weight_decay, count)
    return [g + wd * p for g, p in zip(gs, ps)]


def dog(learning_rate=1.0, init_step=("heuristic", 1e-6), eps=1e-8, weight_decay=None) -> Ref:
    kind, first = init_step

    def init(params):
        return 0, [p.copy() for p in params], 0.0, 0.0

    def update(gs, state, ps):
        count, x0, max_dist, total = state
        gs = _with_decay(gs, ps, weight_decay, count)
        max_dist = max(max_dist, math.sqrt(_sq([p - q for p, q in zip(ps, x0)])))
        total += _sq(gs)
        v = _value(first, count)
        r_eps = {"distance": v, "heuristic": v * (1 + math.sqrt(_sq(x0))), "learning_rate": 0}
        eta = max(max_dist, r_eps[kind]) / math.sqrt(total + _value(eps, count))
        if kind == "learning_rate" and count == 0:
            eta = v
        c = _value(learning_rate, count)
        return [-c * eta * g for g in gs], (count + 1, x0, max_dist, total)

    return Ref(init, update)


def dowg(learning_rate=1.0, init_estim_sq_dist=None, eps=1e-4, weight_decay=None) -> Ref:
    def init(params):
        return 0, [p.copy() for p in params], 0.0, 0.0

    def update(gs, state, ps):
        count, x0, max_sq, weighted = state
        gs = _with_decay(gs, ps, weight_decay, count)
        e = _value(eps, count)
        floor = e if init_estim_sq_dist is None else _value(init_estim_sq_dist, count)
        max_sq = max(max_sq, _sq([p - q for p, q in zip(ps, x0)]))
        rbar_sq = max(max_sq, floor)
        weighted += rbar_sq * _sq(gs)
        eta = rbar_sq / (math.sqrt(weighted) + e)
        c = _value(learning_rate, count)
        return [-c * eta * g for g in gs], (count + 1, x0, max_sq, weighted)

    return Ref(init, update)


def _step(barf, gamma, m_dot_x, norm_sq, lb, floor, alpha, wd, rho, adapt):
    """tau and the next lower bound: the model's Polyak step, capped by alpha / rho."""
    grow = 1 + alpha * wd
    if adapt:
        cap = grow * (barf - gamma) + m_dot_x
        if cap < grow * rho * lb:
            lb = max(cap / (2 * rho * grow), floor)
    gap = max(grow * (barf - rho * lb - gamma) + m_dot_x, 0.0)
    tau = min(alpha / rho, gap / norm_sq if norm_sq > 0 else 0.0)
    if adapt:
        lb = max((barf + m_dot_x - gamma - 0.5 * tau * norm_sq) / rho, floor)
    return tau, lb


def _new_params(mode, ps, directions, tau, alpha, wd):
    if mode == "proximal":
        return [(p - tau * u) / (1 + alpha * wd) for p, u in zip(ps, directions)]
    if mode == "optax":
        return [p / (1 + alpha * wd) - tau * u for p, u in zip(ps, directions)]
    return [(1 - alpha * wd) * p - tau * u for p, u in zip(ps, directions)]


def momo(
    learning_rate=1.0,
    beta=0.9,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound=False,
    weight_decay_mode="proximal",
    mu_dtype=None,
    *,
    value: Callable[[list[np.ndarray]], float],
) -> Ref:
    del mu_dtype

    def init(params):
        return 0, [np.zeros_like(p) for p in params], 0.0, 0.0, _value(lower_bound, 0)

    def update(gs, state, ps):
        count, d, barf, gamma, lb = state
        rho = 0.0 if count == 0 else _value(beta, count)
        d = [rho * di + (1 - rho) * g for di, g in zip(d, gs)]
        barf = rho * barf + (1 - rho) * float(value(ps))
        gamma = rho * gamma + (1 - rho) * _dot(gs, ps)
        alpha, wd = _value(learning_rate, count), _value(weight_decay, count)
        floor = _value(lower_bound, count)
        tau, lb = _step(
            barf,
            gamma,
            _dot(d, ps),
            _sq(d),
            lb if adapt_lower_bound else floor,
            floor,
            alpha,
            wd,
            1.0,
            adapt_lower_bound,
        )
        new = _new_params(weight_decay_mode, ps, d, tau, alpha, wd)
        return [q - p for q, p in zip(new, ps)], (count + 1, d, barf, gamma, lb)

    return Ref(init, update)


def momo_adam(
    learning_rate=1e-2,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound=False,
    weight_decay_mode="proximal",
    mu_dtype=None,
    *,
    value: Callable[[list[np.ndarray]], float],
) -> Ref:
    del mu_dtype

    def init(params):
        zeros = [np.zeros_like(p) for p in params]
        real = [np.zeros(p.shape) for p in params]
        return 0, zeros, real, 0.0, 0.0, _value(lower_bound, 0)

    def update(gs, state, ps):
        count, m, v, barf, gamma, lb = state
        beta1, beta2 = _value(b1, count), _value(b2, count)
        t = count + 1
        m = [beta1 * mi + (1 - beta1) * g for mi, g in zip(m, gs)]
        v = [beta2 * vi + (1 - beta2) * _abs_sq(g) for vi, g in zip(v, gs)]
        scale = [_value(eps, count) + np.sqrt(vi / (1 - beta2**t)) for vi in v]
        directions = [mi / s for mi, s in zip(m, scale)]
        barf = beta1 * barf + (1 - beta1) * float(value(ps))
        gamma = beta1 * gamma + (1 - beta1) * _dot(gs, ps)
        alpha, wd = _value(learning_rate, count), _value(weight_decay, count)
        floor = _value(lower_bound, count)
        tau, lb = _step(
            barf,
            gamma,
            _dot(m, ps),
            _dot(m, directions),
            lb if adapt_lower_bound else floor,
            floor,
            alpha,
            wd,
            1 - beta1**t,
            adapt_lower_bound,
        )
        new = _new_params(weight_decay_mode, ps, directions, tau, alpha, wd)
        return [q - p for q, p in zip(new, ps)], (count + 1, m, v, barf, gamma, lb)

    return Ref(init, update)


REFERENCES = {"dog": dog, "dowg": dowg, "momo": momo, "momo_adam": momo_adam}
