"""float64 NumPy references of the Adam family: NAdam (with PyTorch's momentum schedule),
AMSGrad, Adamax, RAdam, AdaBelief, Yogi and Adan.

Written from the papers' formulas (cited per function), in the conventions of
``numpy_reference``: leaves are lists of arrays, the update is what gets added to the params,
``t`` is 1 at the first update, complex leaves keep complex first moments and real second
moments of ``|g|**2`` (``|g|`` in Adamax's maximum).
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import (
    Ref,
    _abs_sq,
    _real_full,
    add_decayed_weights,
    chain,
    scale_by_adam,
    scale_by_learning_rate,
)


def _with_decay(core: Ref, learning_rate, weight_decay, decoupled: bool) -> Ref:
    """core, then -lr; lambda*p added to the gradient (coupled) or to the step (decoupled)."""
    if weight_decay is None:
        return chain(core, scale_by_learning_rate(learning_rate))
    if decoupled:
        return chain(core, add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))
    return chain(add_decayed_weights(weight_decay), core, scale_by_learning_rate(learning_rate))


def _nesterov_or_debiased(m, g, b1, t, nesterov):
    """Dozat (2016): b1 m / (1 - b1**(t+1)) + (1 - b1) g / (1 - b1**t); else m / (1 - b1**t)."""
    if nesterov:
        return b1 * m / (1.0 - b1 ** (t + 1)) + (1.0 - b1) * g / (1.0 - b1**t)
    return m / (1.0 - b1**t)


# ---- NAdam with PyTorch's momentum schedule (Dozat 2016, Algorithm 2) ---------------------------


def scale_by_nadam_scheduled(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, momentum_decay=4e-3):
    """mu_t = b1 (1 - 0.5 * 0.96**(t psi)), P_t = prod_{i<=t} mu_i; m, v Adam's EMAs;
    out = ((1 - mu_t) / (1 - P_t) g + mu_{t+1} / (1 - P_t mu_{t+1}) m) / (sqrt(vhat + eps_root)
    + eps)."""

    def init(params):
        return 0, 1.0, [np.zeros_like(p) for p in params], [_real_full(p, 0.0) for p in params]

    def update(gs, state, ps):
        count, product, ms, vs = state
        t = count + 1
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        product = product * mu
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1.0 - b2) * _abs_sq(g) for v, g in zip(vs, gs)]
        out = [
            ((1.0 - mu) / (1.0 - product) * g + mu_next / (1.0 - product * mu_next) * m)
            / (np.sqrt(v / (1.0 - b2**t) + eps_root) + eps)
            for g, m, v in zip(gs, ms, vs)
        ]
        return out, (t, product, ms, vs)

    return Ref(init, update)


def nadam(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    momentum_decay=None,
    weight_decay=None,
    decoupled_weight_decay=False,
) -> Ref:
    """chain([wd], NAdam's preconditioner, [wd], -lr)."""
    if momentum_decay is None:
        core = scale_by_adam(b1, b2, eps, eps_root, nesterov=True)
    else:
        core = scale_by_nadam_scheduled(b1, b2, eps, eps_root, momentum_decay)
    return _with_decay(core, learning_rate, weight_decay, decoupled_weight_decay)


def nadamw(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4, momentum_decay=None
) -> Ref:
    """NAdam with decoupled weight decay."""
    return nadam(learning_rate, b1, b2, eps, eps_root, momentum_decay, weight_decay, True)


# ---- AMSGrad (Reddi, Kale and Kumar 2018, Algorithm 2) -------------------------------------------


def scale_by_amsgrad(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    bias_correction_mu=True,
    bias_correction_nu=True,
) -> Ref:
    """m, v Adam's EMAs; vmax = max(vmax, vhat) (vhat = v / (1 - b2**t) if
    bias_correction_nu, else v); out = mhat / (sqrt(vmax + eps_root) + eps).
    (PyTorch's form, the maximum of v debiased after, is checked against PyTorch itself.)"""

    def init(params):
        zeros = [_real_full(p, 0.0) for p in params]
        return 0, [np.zeros_like(p) for p in params], zeros, list(zeros)

    def update(gs, state, ps):
        count, ms, vs, vmax = state
        t = count + 1
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1.0 - b2) * _abs_sq(g) for v, g in zip(vs, gs)]
        mh = [m / (1.0 - b1**t) if bias_correction_mu else m for m in ms]
        vh = [v / (1.0 - b2**t) if bias_correction_nu else v for v in vs]
        vmax = [np.maximum(a, v) for a, v in zip(vmax, vh)]
        out = [m / (np.sqrt(v + eps_root) + eps) for m, v in zip(mh, vmax)]
        return out, (t, ms, vs, vmax)

    return Ref(init, update)


def amsgrad(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    bias_correction_mu=True,
    bias_correction_nu=True,
) -> Ref:
    core = scale_by_amsgrad(b1, b2, eps, eps_root, bias_correction_mu, bias_correction_nu)
    return chain(core, scale_by_learning_rate(learning_rate))


# ---- Adamax (Kingma and Ba 2015, Algorithm 2) ----------------------------------------------------


def scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8) -> Ref:
    """m = b1 m + (1 - b1) g; u = max(b2 u, |g| + eps); out = m / ((1 - b1**t) u)."""

    def init(params):
        return 0, [np.zeros_like(p) for p in params], [_real_full(p, 0.0) for p in params]

    def update(gs, state, ps):
        count, ms, us = state
        t = count + 1
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        us = [np.maximum(b2 * u, np.abs(g) + eps) for u, g in zip(us, gs)]
        return [m / ((1.0 - b1**t) * u) for m, u in zip(ms, us)], (t, ms, us)

    return Ref(init, update)


def adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8) -> Ref:
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamaxw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4) -> Ref:
    return _with_decay(scale_by_adamax(b1, b2, eps), learning_rate, weight_decay, True)


# ---- RAdam (Liu et al. 2020, eq. 6 and Algorithm 2) ----------------------------------------------


def scale_by_radam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, nesterov=False):
    """rho_inf = 2 / (1 - b2) - 1; rho_t = rho_inf - 2 t b2**t / (1 - b2**t);
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t));
    out = r_t mhat / (sqrt(vhat + eps_root) + eps) if rho_t >= threshold else mhat."""

    def init(params):
        return 0, [np.zeros_like(p) for p in params], [_real_full(p, 0.0) for p in params]

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1.0 - b2) * _abs_sq(g) for v, g in zip(vs, gs)]
        mh = [_nesterov_or_debiased(m, g, b1, t, nesterov) for m, g in zip(ms, gs)]
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho = rho_inf - 2.0 * t * b2**t / (1.0 - b2**t)
        if rho >= threshold:
            r = math.sqrt(
                (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)
            )
            out = [r * m / (np.sqrt(v / (1.0 - b2**t) + eps_root) + eps) for m, v in zip(mh, vs)]
        else:
            out = mh
        return out, (t, ms, vs)

    return Ref(init, update)


def radam(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    threshold=5.0,
    nesterov=False,
    weight_decay=None,
    decoupled_weight_decay=False,
) -> Ref:
    core = scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov)
    return _with_decay(core, learning_rate, weight_decay, decoupled_weight_decay)


# ---- AdaBelief (Zhuang et al. 2020, Algorithm 2) -------------------------------------------------


def scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False) -> Ref:
    """m = b1 m + (1 - b1) g; s = b2 s + (1 - b2) |g - m|**2 + eps_root;
    out = mhat / (sqrt(s / (1 - b2**t)) + eps)."""

    def init(params):
        return 0, [np.zeros_like(p) for p in params], [_real_full(p, 0.0) for p in params]

    def update(gs, state, ps):
        count, ms, ss = state
        t = count + 1
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        ss = [b2 * s + (1.0 - b2) * _abs_sq(g - m) + eps_root for s, g, m in zip(ss, gs, ms)]
        mh = [_nesterov_or_debiased(m, g, b1, t, nesterov) for m, g in zip(ms, gs)]
        out = [m / (np.sqrt(s / (1.0 - b2**t)) + eps) for m, s in zip(mh, ss)]
        return out, (t, ms, ss)

    return Ref(init, update)


def adabelief(learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False):
    core = scale_by_belief(b1, b2, eps, eps_root, nesterov)
    return chain(core, scale_by_learning_rate(learning_rate))


# ---- Yogi (Zaheer et al. 2018, Algorithm 2) ------------------------------------------------------


def scale_by_yogi(b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6):
    """m0 = v0 = initial_accumulator_value; m = b1 m + (1 - b1) g;
    v = v - (1 - b2) sign(v - |g|**2) |g|**2; out = mhat / (sqrt(vhat + eps_root) + eps)
    (both debiased, as optax)."""

    def init(params):
        ms = [np.full(p.shape, initial_accumulator_value, p.dtype) for p in params]
        return 0, ms, [_real_full(p, initial_accumulator_value) for p in params]

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        vs = [v - (1.0 - b2) * np.sign(v - _abs_sq(g)) * _abs_sq(g) for v, g in zip(vs, gs)]
        out = [
            m / (1.0 - b1**t) / (np.sqrt(v / (1.0 - b2**t) + eps_root) + eps)
            for m, v in zip(ms, vs)
        ]
        return out, (t, ms, vs)

    return Ref(init, update)


def yogi(learning_rate, b1=0.9, b2=0.999, eps=1e-3) -> Ref:
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))


# ---- Adan (Xie et al. 2022, Algorithm 1; optax's decays b_k = 1 - beta_k) ---------------------


def scale_by_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0) -> Ref:
    """d = g - g_prev (0 at t = 1); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) d;
    n = b3 n + (1 - b3) |g + b2 d|**2; out = (mhat + b2 vhat) / (sqrt(nhat + eps_root) + eps),
    hats the bias corrections by b1, b2, b3."""

    def init(params):
        zeros = [np.zeros_like(p) for p in params]
        return 0, zeros, list(zeros), [_real_full(p, 0.0) for p in params], list(zeros)

    def update(gs, state, ps):
        count, ms, vs, ns, prev = state
        t = count + 1
        ds = [np.zeros_like(g) if t == 1 else g - q for g, q in zip(gs, prev)]
        ms = [b1 * m + (1.0 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1.0 - b2) * d for v, d in zip(vs, ds)]
        ns = [b3 * n + (1.0 - b3) * _abs_sq(g + b2 * d) for n, g, d in zip(ns, gs, ds)]
        out = [
            (m / (1.0 - b1**t) + b2 * v / (1.0 - b2**t))
            / (np.sqrt(n / (1.0 - b3**t) + eps_root) + eps)
            for m, v, n in zip(ms, vs, ns)
        ]
        return out, (t, ms, vs, ns, list(gs))

    return Ref(init, update)


def adan(
    learning_rate, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=1e-8, weight_decay=0.0
) -> Ref:
    return _with_decay(scale_by_adan(b1, b2, b3, eps, eps_root), learning_rate, weight_decay, True)


REFERENCES = {
    "nadam": nadam,
    "nadamw": nadamw,
    "scale_by_amsgrad": scale_by_amsgrad,
    "amsgrad": amsgrad,
    "scale_by_adamax": scale_by_adamax,
    "adamax": adamax,
    "adamaxw": adamaxw,
    "scale_by_radam": scale_by_radam,
    "radam": radam,
    "scale_by_belief": scale_by_belief,
    "adabelief": adabelief,
    "scale_by_yogi": scale_by_yogi,
    "yogi": yogi,
    "scale_by_adan": scale_by_adan,
    "adan": adan,
}
