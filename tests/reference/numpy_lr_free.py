"""Float64 NumPy references of the learning-rate-free optimizers (gradtx/_optimizers/lr_free.py,
gradtx/_wrappers/mechanic.py), from the papers and the authors' code.

In the conventions of ``numpy_reference`` (``Ref(init, update)`` on lists of leaves,
hyperparameters numbers or callables of the count of updates before the current one). Each
keeps the scalars the papers keep (Prodigy's and D-Adaptation's d, Mechanic's s_i) as Python
floats, with sums and inner products over all leaves together; complex leaves use ``|g|**2``,
``Re(conj(a) b)`` and ``|s|`` (the modulus).

* Prodigy: Mishchenko and Defazio, arXiv:2306.06101, the Adam version, as the authors'
  package ``prodigyopt`` 1.1.2 computes it: r and s weighted by (d / d0) d lr (a common factor
  of r and s cancels in d_hat), eps times the new d, and ``step`` returning early, changing
  nothing, when lr is 0 or the sum of |s| is 0.
* D-Adapt AdamW: Defazio and Mishchenko, arXiv:2301.07733, the Adam variant, as
  ``dadaptation.DAdaptAdam(decouple=True)`` 3.2 computes it (the same early return).
* Mechanic: Cutkosky, Defazio and Mehta, arXiv:2306.00144, Algorithm 1, with the
  implementation's choices (optax.contrib.mechanize, contributed by an author): Delta
  recovered from the params as (x - x0) / (S + eps), h clipped by the previous maximum, eps
  added to |h| in m, x0 the params of the first update.
* COCOB-Backprop: Orabona and Tommasi, arXiv:1705.07795, Algorithm 2, with L starting at eps.
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import REFERENCES as CORE
from tests.reference.numpy_reference import Ref, _abs_sq, _value


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum((np.conj(a) * b).real))


def _l1(xs) -> float:
    return float(sum(np.sum(np.abs(x)) for x in xs))


def _bias_correction(b1: float, b2: float, k: int) -> float:
    return math.sqrt(1 - b2**k) / (1 - b1**k)


def prodigy(
    learning_rate=1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    estim_lr0=1e-6,
    estim_lr_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup=False,
    use_bias_correction=True,
    growth_rate=None,
    mu_dtype=None,
) -> Ref:
    del mu_dtype  # the reference keeps every moment in float64

    def init(params):
        d0 = _value(estim_lr0, 0)
        return dict(
            count=0,  # updates done (the schedules' step)
            k=0,  # steps taken (the bias correction's)
            m=[np.zeros_like(p) for p in params],
            v=[np.zeros(p.shape) for p in params],
            s=[np.zeros_like(p) for p in params],
            x0=[p.copy() for p in params],
            d=d0,
            d_max=d0,
            r=0.0,
        )

    def update(gs, st, ps):
        n = st["count"]
        lr = _value(learning_rate, n)
        b1, b2 = _value(betas[0], n), _value(betas[1], n)
        b3 = math.sqrt(b2) if beta3 is None else _value(beta3, n)
        d0, d = _value(estim_lr0, n), st["d"]
        bc = _bias_correction(b1, b2, st["k"] + 1) if use_bias_correction else 1.0
        dlr = d * lr * bc
        skipped = (
            [np.zeros_like(g) for g in gs],
            {**st, "count": n + 1},
        )
        if lr == 0:
            return skipped
        numerator = b3 * st["r"]
        numerator += sum((d / d0) * dlr * _dot(g, x0 - p) for g, x0, p in zip(gs, st["x0"], ps))
        m = [b1 * m + (1 - b1) * d * g for m, g in zip(st["m"], gs)]
        v = [b2 * v + (1 - b2) * d * d * _abs_sq(g) for v, g in zip(st["v"], gs)]
        weight = (d / d0) * (d if safeguard_warmup else dlr)
        s = [b3 * s + weight * g for s, g in zip(st["s"], gs)]
        denominator = _l1(s)
        if denominator == 0:
            return skipped
        d_hat = _value(estim_lr_coef, n) * numerator / denominator
        new_d = max(d, d_hat) if d == d0 else d
        d_max = max(st["d_max"], d_hat)
        growth = math.inf if growth_rate is None else _value(growth_rate, n)
        new_d = min(d_max, new_d * growth)
        wd, e = _value(weight_decay, n), _value(eps, n)
        out = [-dlr * wd * p - dlr * m / (np.sqrt(v) + new_d * e) for m, v, p in zip(m, v, ps)]
        new = dict(
            count=n + 1, k=st["k"] + 1, m=m, v=v, s=s, x0=st["x0"], d=new_d, d_max=d_max,
            r=numerator,
        )  # fmt: skip
        return out, new

    return Ref(init, update)


def dadapt_adamw(
    learning_rate=1.0,
    betas=(0.9, 0.999),
    eps=1e-8,
    estim_lr0=1e-6,
    weight_decay=0.0,
    use_bias_correction=True,
    growth_rate=None,
    mu_dtype=None,
) -> Ref:
    del mu_dtype

    def init(params):
        return dict(
            count=0,
            k=0,
            m=[np.zeros_like(p) for p in params],
            v=[np.zeros(p.shape) for p in params],
            s=[np.zeros_like(p) for p in params],
            d=_value(estim_lr0, 0),
            r=0.0,
        )

    def update(gs, st, ps):
        n = st["count"]
        lr = _value(learning_rate, n)
        b1, b2 = _value(betas[0], n), _value(betas[1], n)
        e, d = _value(eps, n), st["d"]
        root = math.sqrt(b2)
        bc = _bias_correction(b1, b2, st["k"] + 1) if use_bias_correction else 1.0
        dlr = d * lr * bc
        skipped = ([np.zeros_like(g) for g in gs], {**st, "count": n + 1})
        if lr == 0:
            return skipped
        acc = sum(dlr * _dot(g, s / (np.sqrt(v) + e)) for g, s, v in zip(gs, st["s"], st["v"]))
        m = [b1 * m + dlr * (1 - b1) * g for m, g in zip(st["m"], gs)]
        v = [b2 * v + (1 - b2) * _abs_sq(g) for v, g in zip(st["v"], gs)]
        s = [root * s + dlr * (1 - root) * g for s, g in zip(st["s"], gs)]
        numerator = root * st["r"] + (1 - root) * acc
        l1 = _l1(s)
        if l1 == 0:
            return skipped
        d_hat = numerator / ((1 - root) * l1)
        growth = math.inf if growth_rate is None else _value(growth_rate, n)
        new_d = max(d, min(d_hat, d * growth))
        wd = _value(weight_decay, n)
        out = [-wd * dlr * p - m / (np.sqrt(v) + e) for m, v, p in zip(m, v, ps)]
        new = dict(count=n + 1, k=st["k"] + 1, m=m, v=v, s=s, d=new_d, r=numerator)
        return out, new

    return Ref(init, update)


def scale_by_cocob(alpha=100.0, eps=1e-8) -> Ref:
    def init(params):
        return dict(
            count=0,
            w1=[p.copy() for p in params],
            theta=[np.zeros_like(p) for p in params],
            L=[np.full(p.shape, _value(eps, 0)) for p in params],
            G=[np.zeros(p.shape) for p in params],
            reward=[np.zeros(p.shape) for p in params],
        )

    def update(gs, st, ps):
        a = _value(alpha, st["count"])
        new = {k: [] for k in ("theta", "L", "G", "reward")}
        out = []
        for g, w1, theta, big_l, big_g, reward, w in zip(
            gs, st["w1"], st["theta"], st["L"], st["G"], st["reward"], ps
        ):
            big_l = np.maximum(big_l, np.abs(g))
            big_g = big_g + np.abs(g)
            reward = np.maximum(reward - (np.conj(g) * (w - w1)).real, 0)
            theta = theta - g
            w_next = w1 + theta / (big_l * np.maximum(big_g + big_l, a * big_l)) * (big_l + reward)
            out.append(w_next - w)
            for key, x in zip(new, (theta, big_l, big_g, reward)):
                new[key].append(x)
        return out, {**st, **new, "count": st["count"] + 1}

    return Ref(init, update)


def cocob(learning_rate=1.0, alpha=100.0, eps=1e-8, weight_decay=0.0) -> Ref:
    inner = scale_by_cocob(alpha, eps)

    def update(gs, st, ps):
        n, inner_state = st
        lr, wd = _value(learning_rate, n), _value(weight_decay, n)
        coins = [lr * (g + wd * p) for g, p in zip(gs, ps)]
        out, inner_state = inner.update(coins, inner_state, ps)
        return out, (n + 1, inner_state)

    return Ref(lambda params: (0, inner.init(params)), update)


def mechanize(base_optimizer, weight_decay=1e-2, eps=1e-8, s_init=1e-6, num_betas=6) -> Ref:
    betas = [1 - 0.1**i for i in range(1, num_betas + 1)]

    def init(params):
        zeros = [0.0] * num_betas
        return dict(
            count=0,
            base=base_optimizer.init(params),
            r=zeros,
            m=zeros,
            v=zeros,
            s=[_value(s_init, 0)] * num_betas,
            x0=[p.copy() for p in params],
        )

    def update(gs, st, ps):
        n = st["count"]
        lam, e, s0 = _value(weight_decay, n), _value(eps, n), _value(s_init, n)
        steps, base = base_optimizer.update(gs, st["base"], ps)
        x0 = [p.copy() for p in ps] if n == 0 else st["x0"]
        scale = sum(st["s"])
        g_norm = math.sqrt(sum(float(np.sum(_abs_sq(g))) for g in gs))
        p_norm = math.sqrt(sum(float(np.sum(_abs_sq(p))) for p in ps))
        decayed = [g + lam * scale * g_norm / (p_norm + e) * p for g, p in zip(gs, ps)]
        delta = [(p - x) / (scale + e) for p, x in zip(ps, x0)]  # Delta_t = (x_t - x0) / S_t
        h = -sum(_dot(g, dl) for g, dl in zip(decayed, delta))
        new = dict(r=[], m=[], v=[], s=[])
        for b, r, m, v, s in zip(betas, st["r"], st["m"], st["v"], st["s"]):
            clipped = min(max(h, -m), m)
            m_new = max(b * m, abs(h) + e)
            v_new = b * b * v + h * h
            r_new = b * r + clipped * s
            wealth = s0 / num_betas * m_new + max(r_new, 0.0)
            for key, x in zip(new, (r_new, m_new, v_new, wealth / (math.sqrt(v_new) + e))):
                new[key].append(x)
        new_scale = sum(new["s"])
        # x_{t+1} = x0 + S_{t+1} (Delta_t + u_t), as a step from x_t (the difference of the
        # float64 params would round away the small steps' last digits)
        out = [
            (x - p) * (1 - new_scale / (scale + e)) + new_scale * u
            for x, p, u in zip(x0, ps, steps)
        ]
        return out, {**st, **new, "count": n + 1, "base": base, "x0": x0}

    return Ref(init, update)


REFERENCES = {
    "prodigy": prodigy,
    "dadapt_adamw": dadapt_adamw,
    "cocob": cocob,
    "scale_by_cocob": scale_by_cocob,
    "mechanize": mechanize,
}

# the bases mechanize's rows wrap, by name (tests/registry/lr_free.py)
BASES = {name: CORE[name] for name in ("sgd", "adam")}
