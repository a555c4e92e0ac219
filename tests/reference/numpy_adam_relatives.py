"""Float64 NumPy references of MADGRAD, MARS and Adam-mini, written from their papers.

Pure NumPy (no jax, optax, torch or gradtx), in the conventions of ``numpy_reference``: lists
of leaves, updates that are added to the params, ``t`` = 1 on the first update, complex leaves
in their natural form (second moments and norms of ``|g|``, first moments complex).
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import (
    Ref,
    _abs_sq,
    _need,
    _value,
    add_decayed_weights,
    chain,
)


# --------------------------------------------------------------------------- #
# MADGRAD (Defazio and Jelassi 2021, Algorithm 1)
# --------------------------------------------------------------------------- #
def scale_by_madgrad(learning_rate, momentum=0.9, eps=1e-6) -> Ref:
    """k = 0, 1, ...: lam_k = (lr_k + eps) sqrt(k + 1); x0 = the params at k = 0;
    G += lam_k |g|**2; s += lam_k g; z = x0 - s / (G**(1/3) + eps);
    x_{k+1} = momentum x_k + (1 - momentum) z; out = x_{k+1} - x_k."""

    def init(params):
        return (0, [np.zeros(p.shape) for p in params], [np.zeros_like(p) for p in params], None)

    def update(gs, state, ps):
        k, big_g, s, x0 = state
        ps = _need(ps, "scale_by_madgrad")
        x0 = [p.copy() for p in ps] if x0 is None else x0
        lam = (_value(learning_rate, k) + eps) * math.sqrt(k + 1)
        c = _value(momentum, k)
        big_g = [a + lam * _abs_sq(g) for a, g in zip(big_g, gs)]
        s = [a + lam * g for a, g in zip(s, gs)]
        out = []
        for a, b, x, p in zip(big_g, s, x0, ps):
            z = x - b / (np.cbrt(a) + eps)
            out.append(c * p + (1 - c) * z - p)
        return out, (k + 1, big_g, s, x0)

    return Ref(init, update)


def madgrad(
    learning_rate, momentum=0.9, weight_decay=0.0, eps=1e-6, decoupled_weight_decay=False
) -> Ref:
    """Coupled: chain(+ wd * p, scale_by_madgrad). Decoupled (the authors' decouple_decay):
    scale_by_madgrad's step minus (lr + eps) * wd * p."""
    core = scale_by_madgrad(learning_rate, momentum, eps)
    if not decoupled_weight_decay:
        return chain(add_decayed_weights(weight_decay), core)

    def decay(gs, state, ps):
        count, inner = state
        out, inner = core.update(gs, inner, ps)
        rate = (_value(learning_rate, count) + eps) * weight_decay
        return [u - rate * p for u, p in zip(out, _need(ps, "madgrad"))], (count + 1, inner)

    return Ref(lambda params: (0, core.init(params)), decay)


# --------------------------------------------------------------------------- #
# MARS (Yuan et al. 2024, Algorithm 2, MARS-AdamW, approximate)
# --------------------------------------------------------------------------- #
def _adam_step(m, v, t, b1, b2, eps, eps_root):
    return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t) + eps_root) + eps)


def scale_by_mars(b1=0.95, b2=0.99, eps=1e-8, gamma=0.025, eps_root=0.0) -> Ref:
    """g_0 = 0; c = g + gamma b1 / (1 - b1) (g - g_prev); c /= max(1, ||c||) per leaf;
    Adam's moments of c; out = mhat / (sqrt(vhat + eps_root) + eps)."""

    def init(params):
        zeros = [np.zeros_like(p) for p in params]
        return (0, zeros, [np.zeros(p.shape) for p in params], zeros)

    def update(gs, state, ps):
        count, ms, vs, prev = state
        t = count + 1
        out, new_m, new_v = [], [], []
        for g, m, v, h in zip(gs, ms, vs, prev):
            c = g + gamma * b1 / (1 - b1) * (g - h)
            c = c / max(1.0, math.sqrt(float(np.sum(_abs_sq(c)))))
            m = b1 * m + (1 - b1) * c
            v = b2 * v + (1 - b2) * _abs_sq(c)
            out.append(_adam_step(m, v, t, b1, b2, eps, eps_root))
            new_m.append(m)
            new_v.append(v)
        return out, (t, new_m, new_v, [g.copy() for g in gs])

    return Ref(init, update)


def mars(
    learning_rate,
    b1=0.95,
    b2=0.99,
    eps=1e-8,
    gamma=0.025,
    weight_decay=0.0,
    eps_root=0.0,
    optimize_1d=False,
    adam_learning_rate=None,
    adam_b1=0.9,
    adam_b2=0.95,
    adam_weight_decay=0.1,
) -> Ref:
    """MARS-AdamW on leaves of rank >= 2 (all with optimize_1d), AdamW with the adam_*
    arguments on the others (the authors' code): p -= lr (step + wd p)."""
    mars_core = scale_by_mars(b1, b2, eps, gamma, eps_root)

    def is_mars(p):
        return optimize_1d or p.ndim >= 2

    def init(params):
        return (
            0,
            mars_core.init([p for p in params if is_mars(p)]),
            [(np.zeros_like(p), np.zeros(p.shape)) for p in params],
        )

    def update(gs, state, ps):
        count, inner, adam = state
        ps = _need(ps, "mars")
        t = count + 1
        lr = _value(learning_rate, count)
        lr_1d = lr if adam_learning_rate is None else _value(adam_learning_rate, count)
        picked = [i for i, p in enumerate(ps) if is_mars(p)]
        steps, inner = mars_core.update([gs[i] for i in picked], inner, None)
        by_leaf = dict(zip(picked, steps))
        out, new_adam = [], []
        for i, (g, p, (m, v)) in enumerate(zip(gs, ps, adam)):
            if i in by_leaf:
                out.append(-lr * (by_leaf[i] + weight_decay * p))
                new_adam.append((m, v))
                continue
            m = adam_b1 * m + (1 - adam_b1) * g
            v = adam_b2 * v + (1 - adam_b2) * _abs_sq(g)
            step = _adam_step(m, v, t, adam_b1, adam_b2, eps, eps_root)
            out.append(-lr_1d * (step + adam_weight_decay * p))
            new_adam.append((m, v))
        return out, (t, inner, new_adam)

    return Ref(init, update)


# --------------------------------------------------------------------------- #
# Adam-mini (Zhang et al. 2024, Algorithm 1)
# --------------------------------------------------------------------------- #
def _blocks_view(spec, shape):
    """(view shape, averaged axes) of an AdamMiniBlocks-like spec (``axes``, ``shape``)."""
    view = shape if spec.shape is None else np.empty(shape).reshape(spec.shape).shape
    axes = (spec.axes,) if isinstance(spec.axes, int) else tuple(spec.axes)
    kept = {a % len(view) for a in axes}
    return view, tuple(a for a in range(len(view)) if a not in kept)


def adam_mini(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, blocks=None) -> Ref:
    """Per block B of a leaf: v_B = b2 v_B + (1 - b2) mean_{i in B} |g_i|**2;
    m = b1 m + (1 - b1) g; p -= lr (mhat / (sqrt(vhat_B) + eps) + wd p) (every leaf decays:
    the test trees' names have no norm, ln or bias in them).

    ``blocks(path, shape)`` gives each leaf's blocks; the reference has no paths, so it is
    called with ``""``; None: one block per leaf (the default for names the package does not
    know)."""

    def view_of(p):
        if blocks is None:
            return p.shape, tuple(range(p.ndim))
        return _blocks_view(blocks("", p.shape), p.shape)

    def init(params):
        vs = []
        for p in params:
            view, averaged = view_of(p)
            vs.append(np.zeros(tuple(1 if i in averaged else n for i, n in enumerate(view))))
        return (0, [np.zeros_like(p) for p in params], vs)

    def update(gs, state, ps):
        count, ms, vs = state
        ps = _need(ps, "adam_mini")
        t = count + 1
        lr = _value(learning_rate, count)
        out, new_m, new_v = [], [], []
        for g, m, v, p in zip(gs, ms, vs, ps):
            view, averaged = view_of(p)
            m = b1 * m + (1 - b1) * g
            square = _abs_sq(g.reshape(view))
            size = math.prod(view[i] for i in averaged)
            mean = np.sum(square, axis=averaged, keepdims=True) / max(size, 1)
            v = b2 * v + (1 - b2) * mean
            step = (m.reshape(view) / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            out.append(-lr * (step.reshape(p.shape) + weight_decay * p))
            new_m.append(m)
            new_v.append(v)
        return out, (t, new_m, new_v)

    return Ref(init, update)
