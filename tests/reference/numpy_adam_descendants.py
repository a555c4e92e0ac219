"""float64 NumPy references of Adam's recent descendants: ADOPT, AdEMAMix, Simplified AdEMAMix,
LaProp, StableAdamW and ACProp.

Written from the papers' algorithms (cited per function), in the conventions of
``numpy_reference``: leaves are lists of arrays, the update is what gets added to the params,
hyperparameters are numbers or callables of the count of updates so far, complex leaves keep
complex first moments and real second moments of ``|g|**2``.
"""

from __future__ import annotations

import numpy as np

from tests.reference.numpy_reference import (
    Ref,
    _abs_sq,
    _real_full,
    _value,
    add_decayed_weights,
    chain,
    scale_by_learning_rate,
)


def _decoupled(core: Ref, learning_rate, weight_decay) -> Ref:
    """core, + weight_decay * p, then -lr."""
    return chain(core, add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))


def _zeros(params, n_first: int):
    firsts = [[np.zeros_like(p) for p in params] for _ in range(n_first)]
    return (0, *firsts, [_real_full(p, 0.0) for p in params])


def _clip(x, c):
    if np.iscomplexobj(x):
        return np.clip(x.real, -c, c) + 1j * np.clip(x.imag, -c, c)
    return np.clip(x, -c, c)


# ---- ADOPT (Taniguchi et al. 2024, Algorithm 2 with the clipping of section 5) -----------------


def scale_by_adopt(
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    nesterov=False,
    use_clipping=True,
    clip_value_fn=lambda count: count**0.25,
) -> Ref:
    """t = 0: v = |g|**2, out = 0. Then n = clip(g / max(sqrt(v), eps), c(count)) (per part if
    complex); m = b1 m + (1 - b1) n; out = m (or b1 m + (1 - b1) n); v = b2 v + (1 - b2)|g|**2."""

    def init(params):
        return _zeros(params, 1)

    def update(gs, state, ps):
        count, ms, vs = state
        if count == 0:
            return [np.zeros_like(g) for g in gs], (1, ms, [_abs_sq(g) for g in gs])
        c1, c2, e = (_value(h, count) for h in (b1, b2, eps))
        ns = [g / np.maximum(np.sqrt(v), e) for g, v in zip(gs, vs)]
        if use_clipping:
            ns = [_clip(n, _value(clip_value_fn, count)) for n in ns]
        ms = [c1 * m + (1.0 - c1) * n for m, n in zip(ms, ns)]
        out = [c1 * m + (1.0 - c1) * n for m, n in zip(ms, ns)] if nesterov else ms
        vs = [c2 * v + (1.0 - c2) * _abs_sq(g) for v, g in zip(vs, gs)]
        return out, (count + 1, ms, vs)

    return Ref(init, update)


def adopt(learning_rate, b1=0.9, b2=0.9999, eps=1e-6, **flags) -> Ref:
    return chain(scale_by_adopt(b1, b2, eps, **flags), scale_by_learning_rate(learning_rate))


# ---- AdEMAMix (Pagliardini, Ablin and Grangier 2024, Algorithm 1) ------------------------------


def scale_by_ademamix(b1=0.9, b2=0.999, b3=0.9999, alpha=6.0, eps=1e-8, eps_root=0.0) -> Ref:
    """m1 = b1 m1 + (1 - b1) g; m2 = b3 m2 + (1 - b3) g; v = b2 v + (1 - b2)|g|**2;
    out = (m1 / (1 - b1**t) + alpha m2) / (sqrt(v / (1 - b2**t) + eps_root) + eps)."""

    def init(params):
        return _zeros(params, 2)

    def update(gs, state, ps):
        count, m1s, m2s, vs = state
        t = count + 1
        c1, c2, c3, a, e, er = (_value(h, count) for h in (b1, b2, b3, alpha, eps, eps_root))
        m1s = [c1 * m + (1.0 - c1) * g for m, g in zip(m1s, gs)]
        m2s = [c3 * m + (1.0 - c3) * g for m, g in zip(m2s, gs)]
        vs = [c2 * v + (1.0 - c2) * _abs_sq(g) for v, g in zip(vs, gs)]
        out = [
            (m1 / (1.0 - c1**t) + a * m2) / (np.sqrt(v / (1.0 - c2**t) + er) + e)
            for m1, m2, v in zip(m1s, m2s, vs)
        ]
        return out, (t, m1s, m2s, vs)

    return Ref(init, update)


def ademamix(
    learning_rate,
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    alpha=5.0,
    eps=1e-8,
    eps_root=0.0,
    weight_decay=0.0,
) -> Ref:
    core = scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root)
    return _decoupled(core, learning_rate, weight_decay)


# ---- Simplified AdEMAMix (Morwani, Vyas, Zhang and Kakade 2025) --------------------------------


def scale_by_simplified_ademamix(b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0) -> Ref:
    """m = b1 m + g; v = b2 v + (1 - b2)|g|**2;
    out = (m + alpha g) / (sqrt(v / (1 - b2**t) + eps_root) + eps)."""

    def init(params):
        return _zeros(params, 1)

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        c1, c2, a, e, er = (_value(h, count) for h in (b1, b2, alpha, eps, eps_root))
        ms = [c1 * m + g for m, g in zip(ms, gs)]
        vs = [c2 * v + (1.0 - c2) * _abs_sq(g) for v, g in zip(vs, gs)]
        out = [(m + a * g) / (np.sqrt(v / (1.0 - c2**t) + er) + e) for m, g, v in zip(ms, gs, vs)]
        return out, (t, ms, vs)

    return Ref(init, update)


def simplified_ademamix(
    learning_rate, b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0, weight_decay=0.0
) -> Ref:
    core = scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root)
    return _decoupled(core, learning_rate, weight_decay)


# ---- LaProp (Ziyin, Wang and Ueda 2020, Algorithm 1) -------------------------------------------


def scale_by_laprop(b1=0.9, b2=0.999, eps=1e-15, eps_root=0.0) -> Ref:
    """v = b2 v + (1 - b2)|g|**2; m = b1 m + (1 - b1) g / (sqrt(v / (1 - b2**t) + eps_root)
    + eps); out = m / (1 - b1**t)."""

    def init(params):
        return _zeros(params, 1)

    def update(gs, state, ps):
        count, ms, vs = state
        t = count + 1
        c1, c2, e, er = (_value(h, count) for h in (b1, b2, eps, eps_root))
        vs = [c2 * v + (1.0 - c2) * _abs_sq(g) for v, g in zip(vs, gs)]
        ns = [g / (np.sqrt(v / (1.0 - c2**t) + er) + e) for g, v in zip(gs, vs)]
        ms = [c1 * m + (1.0 - c1) * n for m, n in zip(ms, ns)]
        return [m / (1.0 - c1**t) for m in ms], (t, ms, vs)

    return Ref(init, update)


def laprop(learning_rate, b1=0.9, b2=0.999, eps=1e-15, eps_root=0.0, weight_decay=0.0) -> Ref:
    return _decoupled(scale_by_laprop(b1, b2, eps, eps_root), learning_rate, weight_decay)


# ---- StableAdamW (Wortsman et al. 2023, Algorithm 2) -------------------------------------------


def scale_by_stable_adamw(b1=0.9, b2=0.99, eps=1e-8, weight_decay=None) -> Ref:
    """The paper's form: debiased decays bh = b (1 - b**(t-1)) / (1 - b**t), so that
    u = bh1 u + (1 - bh1) g and w = bh2 w + (1 - bh2)|g|**2 are the debiased moments;
    rms = sqrt(mean(|g|**2 / max(w, eps**2))) per leaf (0 if empty);
    out = (u / (sqrt(w) + eps) + weight_decay p) / max(1, rms)."""

    def init(params):
        return _zeros(params, 1)

    def update(gs, state, ps):
        count, us, ws = state
        t = count + 1
        c1, c2, e = (_value(h, count) for h in (b1, b2, eps))
        h1 = c1 * (1.0 - c1 ** (t - 1)) / (1.0 - c1**t)
        h2 = c2 * (1.0 - c2 ** (t - 1)) / (1.0 - c2**t)
        us = [h1 * u + (1.0 - h1) * g for u, g in zip(us, gs)]
        ws = [h2 * w + (1.0 - h2) * _abs_sq(g) for w, g in zip(ws, gs)]
        out = []
        for i, (g, u, w) in enumerate(zip(gs, us, ws)):
            step = u / (np.sqrt(w) + e)
            if weight_decay is not None:
                step = step + _value(weight_decay, count) * ps[i]
            rms = np.sqrt(np.sum(_abs_sq(g) / np.maximum(w, e * e)) / max(g.size, 1))
            out.append(step / max(1.0, rms))
        return out, (t, us, ws)

    return Ref(init, update)


def stable_adamw(learning_rate, b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-2) -> Ref:
    core = scale_by_stable_adamw(b1, b2, eps, weight_decay)
    return chain(core, scale_by_learning_rate(learning_rate))


# ---- ACProp (Zhuang et al. 2021, Algorithm 2) --------------------------------------------------


def scale_by_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, lagged_mean=False) -> Ref:
    """out = g / (sqrt(s / (1 - b2**(t-1))) + eps) with the previous s (1 in place of the
    debiased s at t = 1); then m_new = b1 m + (1 - b1) g;
    s = b2 s + (1 - b2)|g - (m if lagged_mean else m_new)|**2 + eps_root."""

    def init(params):
        return _zeros(params, 1)

    def update(gs, state, ps):
        count, ms, ss = state
        c1, c2, e, er = (_value(h, count) for h in (b1, b2, eps, eps_root))
        s_hat = [np.ones_like(s) if count == 0 else s / (1.0 - c2**count) for s in ss]
        out = [g / (np.sqrt(sh) + e) for g, sh in zip(gs, s_hat)]
        new_ms = [c1 * m + (1.0 - c1) * g for m, g in zip(ms, gs)]
        centres = ms if lagged_mean else new_ms
        ss = [c2 * s + (1.0 - c2) * _abs_sq(g - c) + er for s, g, c in zip(ss, gs, centres)]
        return out, (count + 1, new_ms, ss)

    return Ref(init, update)


def acprop(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-16,
    eps_root=1e-16,
    weight_decay=0.0,
    lagged_mean=False,
) -> Ref:
    core = scale_by_acprop(b1, b2, eps, eps_root, lagged_mean)
    return _decoupled(core, learning_rate, weight_decay)


REFERENCES = {
    "scale_by_adopt": scale_by_adopt,
    "adopt": adopt,
    "scale_by_ademamix": scale_by_ademamix,
    "ademamix": ademamix,
    "scale_by_simplified_ademamix": scale_by_simplified_ademamix,
    "simplified_ademamix": simplified_ademamix,
    "scale_by_laprop": scale_by_laprop,
    "laprop": laprop,
    "scale_by_stable_adamw": scale_by_stable_adamw,
    "stable_adamw": stable_adamw,
    "scale_by_acprop": scale_by_acprop,
    "acprop": acprop,
}
