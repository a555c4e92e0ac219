"""Float64 NumPy references of the factored and layer-wise transformations and optimizers.

Pure NumPy, written from the papers' formulas (no jax, optax, torch or gradtx), in the
conventions of ``numpy_reference`` (whose helpers they reuse): lists of leaves, updates that
are added to the params, ``t`` = 1 on the first update, complex leaves in their natural form
(second moments and norms of ``|g|``, first moments complex).
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import (
    Ref,
    _abs_sq,
    _need,
    _norm,
    _stateless,
    _value,
    add_decayed_weights,
    chain,
    scale,
    scale_by_learning_rate,
    scale_by_trust_ratio,
)


def _rms(x: np.ndarray) -> float:
    """sqrt(mean |x|**2); 0 for an empty leaf."""
    return _norm(x) / math.sqrt(max(x.size, 1))


# --------------------------------------------------------------------------- #
# Block norms
# --------------------------------------------------------------------------- #
def scale_by_param_block_norm(min_scale=1e-3) -> Ref:
    """out = g * max(||p||, min_scale), per leaf."""
    return _stateless(lambda g, p: g * max(_norm(_need(p, "param_block_norm")), min_scale))


def scale_by_param_block_rms(min_scale=1e-3) -> Ref:
    """out = g * max(RMS(p), min_scale), per leaf (Adafactor's relative step, Shazeer and
    Stern 2018, Algorithm 4: alpha_t = max(eps2, RMS(X_{t-1})) rho_t)."""
    return _stateless(lambda g, p: g * max(_rms(_need(p, "param_block_rms")), min_scale))


def clip_by_block_rms(threshold) -> Ref:
    """out = g / max(1, RMS(g) / d), per leaf (Shazeer and Stern 2018, section 6)."""
    return _stateless(lambda g, p: g / max(1.0, _rms(g) / threshold))


def normalize_by_update_norm(scale_factor=1.0, eps=1e-6) -> Ref:
    """out = s * g / (||g|| + eps), ||g|| over all leaves; 0 when ||g|| + eps is 0."""

    def update(gs, state, ps):
        d = math.sqrt(sum(float(np.sum(_abs_sq(g))) for g in gs)) + eps
        return [g * (scale_factor / d) if d > 0 else 0.0 * g for g in gs], state

    return Ref(lambda params: (), update)


def scale_by_novograd(b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0) -> Ref:
    """Ginsburg et al. 2019, Algorithm 1, per leaf l:
    v_1 = ||g_1||**2, v_t = b2 v + (1 - b2) ||g_t||**2;
    m_t = b1 m + g / (sqrt(v_t + eps_root) + eps) + wd * p  (m_0 = 0); out = m_t."""

    def init(params):
        return (0, [np.zeros_like(p) for p in params], [0.0 for _ in params])

    def update(gs, state, ps):
        count, ms, vs = state
        ps = _need(ps, "scale_by_novograd")
        new_ms, new_vs = [], []
        for g, m, v, p in zip(gs, ms, vs, ps):
            square = float(np.sum(_abs_sq(g)))
            v = square if count == 0 else b2 * v + (1.0 - b2) * square
            d = math.sqrt(v + eps_root) + eps
            step = (g / d if d > 0 else 0.0 * g) + weight_decay * p
            new_ms.append(b1 * m + step)
            new_vs.append(v)
        return new_ms, (count + 1, new_ms, new_vs)

    return Ref(init, update)


def novograd(learning_rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0) -> Ref:
    """chain(scale_by_novograd(...), -lr)."""
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def fromage(learning_rate, min_norm=1e-6) -> Ref:
    """Bernstein et al. 2020, Algorithm 1: p <- (p - lr ||p|| / ||g|| g) / sqrt(1 + lr**2)
    per leaf (norms floored at min_norm, ratio 1 if a norm is 0), as updates:
    out = -lr / sqrt(1 + lr**2) * ratio * g + (1 / sqrt(1 + lr**2) - 1) * p."""
    mult = 1.0 / math.sqrt(1.0 + learning_rate**2)
    return chain(
        scale_by_trust_ratio(min_norm=min_norm),
        scale_by_learning_rate(learning_rate * mult),
        add_decayed_weights(mult - 1.0),
    )


# --------------------------------------------------------------------------- #
# Adafactor (Shazeer and Stern 2018)
# --------------------------------------------------------------------------- #
def _factored_dims(shape, factored, min_dim_size_to_factor, variant):
    """(d_col, d_row): the two largest axes (optax's rule; torch: the last two), if the
    smaller has at least min_dim_size_to_factor elements; else None."""
    if not factored or len(shape) < 2:
        return None
    if variant == "torch":
        dims = (len(shape) - 2, len(shape) - 1)
    else:
        order = np.argsort(shape)
        dims = (int(order[-2]), int(order[-1]))
    return dims if min(shape[d] for d in dims) >= min_dim_size_to_factor else None


def scale_by_factored_rms(
    factored=True,
    decay_rate=0.8,
    step_offset=0,
    min_dim_size_to_factor=128,
    epsilon=1e-30,
    decay_rate_fn=None,
    variant="optax",
) -> Ref:
    """Algorithm 4 with beta_t = 1 - t**-decay_rate, t = max(count + 1 - step_offset, 1):
    factored leaves: R = beta R + (1 - beta) mean_row(|g|**2 + eps),
    C = beta C + (1 - beta) mean_col(|g|**2 + eps), V = R C / mean_col(R);
    others: V = beta V + (1 - beta) (|g|**2 + eps); out = g / sqrt(V).
    variant "torch": no eps added to |g|**2; V = max(R C / max(mean_col(R), eps), eps**2)
    (full: max(V, eps**2))."""
    assert decay_rate_fn is None

    def init(params):
        return (0, [None] * len(params))

    def update(gs, state, ps):
        count, stats = state
        t = max(count + 1 - step_offset, 1)
        new = float(t) ** -decay_rate
        old = 1.0 - new
        out, new_stats = [], []
        for g, s in zip(gs, stats):
            sq = _abs_sq(g) + (epsilon if variant == "optax" else 0.0)
            dims = _factored_dims(g.shape, factored, min_dim_size_to_factor, variant)
            if dims is None:
                v = new * sq if s is None else old * s + new * sq
                est = v if variant == "optax" else np.maximum(v, epsilon**2)
                out.append(g / np.sqrt(est))
                new_stats.append(v)
                continue
            d_col, d_row = dims
            r_new, c_new = np.mean(sq, axis=d_row), np.mean(sq, axis=d_col)
            r, c = (
                (new * r_new, new * c_new)
                if s is None
                else (
                    old * s[0] + new * r_new,
                    old * s[1] + new * c_new,
                )
            )
            full_r = np.expand_dims(r, d_row)
            full_c = np.expand_dims(c, d_col)
            mean = np.mean(full_r, axis=d_col, keepdims=True)
            if variant == "torch":
                est = np.maximum(full_r * full_c / np.maximum(mean, epsilon), epsilon**2)
            else:
                est = full_r * full_c / mean
            out.append(g / np.sqrt(est))
            new_stats.append((r, c))
        return out, (count + 1, new_stats)

    return Ref(init, update)


def _relative_step(learning_rate) -> Ref:
    """out = min(lr, 1/sqrt(t)) * g (1/sqrt(t) if lr is None)."""

    def update(gs, count, ps):
        rho = 1.0 / math.sqrt(count + 1)
        if learning_rate is not None:
            rho = min(_value(learning_rate, count), rho)
        return [rho * g for g in gs], count + 1

    return Ref(lambda params: 0, update)


def _momentum(decay) -> Ref:
    """m = decay * m + (1 - decay) * g (no bias correction); out = m."""

    def update(gs, ms, ps):
        ms = [decay * m + (1.0 - decay) * g for m, g in zip(ms, gs)]
        return ms, ms

    return Ref(lambda params: [np.zeros_like(p) for p in params], update)


def adafactor(
    learning_rate=None,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale=True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum=None,
    weight_decay_rate=None,
    eps=1e-30,
    factored=True,
    weight_decay_mask=None,
    relative_step=False,
    min_scale=1e-3,
    maximize=False,
    variant="optax",
) -> Ref:
    """[-1 if maximize], scale_by_factored_rms, [clip_by_block_rms(d)], [lr or min(lr,
    1/sqrt(t))], [* max(min_scale, RMS(p))], [momentum], [+ wd p (torch: + lr wd p)], -1."""
    assert weight_decay_mask is None
    del dtype_momentum  # float64 throughout
    links = [scale(-1.0)] if maximize else []
    links.append(
        scale_by_factored_rms(
            factored, decay_rate, decay_offset, min_dim_size_to_factor, eps, variant=variant
        )
    )
    if clipping_threshold is not None:
        links.append(clip_by_block_rms(clipping_threshold))
    if relative_step:
        links.append(_relative_step(learning_rate))
    elif learning_rate is not None:
        links.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        links.append(scale_by_param_block_rms(min_scale))
    if momentum is not None:
        links.append(_momentum(momentum))
    if weight_decay_rate is not None:
        torch_decay = variant == "torch" and learning_rate is not None
        links.append(
            add_decayed_weights(
                learning_rate * weight_decay_rate if torch_decay else weight_decay_rate
            )
        )
    links.append(scale(-1.0))
    return chain(*links)


# --------------------------------------------------------------------------- #
# SM3 (Anil et al. 2019)
# --------------------------------------------------------------------------- #
def scale_by_sm3(b1=0.9, b2=1.0, eps=1e-8, mu_dtype=None) -> Ref:
    """SM3-II (Algorithm 3) with one cover set per index of each axis (rank <= 1: one per
    element): nu(i) = c |g(i)|**2 + b2 * min_a mu_a(i_a), c = 1 if b2 == 1 else 1 - b2;
    mu_a(j) = max over i with i_a = j of nu(i);
    m = b1 m + (1 - b1) * (g / sqrt(nu + eps) where nu > 0, else 0); out = m."""
    del mu_dtype
    c = 1.0 if b2 == 1.0 else 1.0 - b2

    def init(params):
        mus = [
            [np.zeros(p.shape)] if p.ndim < 2 else [np.zeros(n) for n in p.shape] for p in params
        ]
        return (mus, [np.zeros_like(p) for p in params])

    def update(gs, state, ps):
        mus, ms = state
        out_m, out_mu = [], []
        for g, mu, m in zip(gs, mus, ms):
            if g.ndim < 2:
                smallest = mu[0]
            else:
                smallest = np.full(g.shape, np.inf)
                for axis, a in enumerate(mu):
                    shape = [1] * g.ndim
                    shape[axis] = g.shape[axis]
                    smallest = np.minimum(smallest, a.reshape(shape))
            nu = c * _abs_sq(g) + b2 * smallest
            pos = nu > 0
            scaled = np.where(pos, g / np.sqrt(np.where(pos, nu, 1.0) + eps), 0.0)
            m = b1 * m + (1.0 - b1) * scaled
            if g.ndim < 2:
                new_mu = [nu]
            else:
                new_mu = []
                for axis in range(g.ndim):
                    others = tuple(i for i in range(g.ndim) if i != axis)
                    new_mu.append(np.max(nu, axis=others, initial=0.0))
            out_m.append(m)
            out_mu.append(new_mu)
        return out_m, (out_mu, out_m)

    return Ref(init, update)


def sm3(learning_rate, momentum=0.9, b2=1.0, eps=1e-8, mu_dtype=None) -> Ref:
    """chain(scale_by_sm3(momentum, b2, eps), -lr)."""
    del mu_dtype
    return chain(scale_by_sm3(momentum, b2, eps), scale_by_learning_rate(learning_rate))


REFERENCES = {
    "scale_by_param_block_norm": scale_by_param_block_norm,
    "scale_by_param_block_rms": scale_by_param_block_rms,
    "clip_by_block_rms": clip_by_block_rms,
    "normalize_by_update_norm": normalize_by_update_norm,
    "scale_by_novograd": scale_by_novograd,
    "novograd": novograd,
    "fromage": fromage,
    "scale_by_factored_rms": scale_by_factored_rms,
    "adafactor": adafactor,
    "scale_by_sm3": scale_by_sm3,
    "sm3": sm3,
}


# --------------------------------------------------------------------------- #
# CAME (Luo et al. 2023, Algorithm 1)
# --------------------------------------------------------------------------- #
def _row_col(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column means of the last two axes (the paper's sums over n and m)."""
    return x.mean(axis=-1), x.mean(axis=-2)


def _rebuilt_rsqrt(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """1 / sqrt(r c / mean(r)): the factored estimate's inverse root."""
    return 1.0 / np.sqrt(r[..., :, None] * c[..., None, :] / r.mean(axis=-1)[..., None, None])


def scale_by_came(b1=0.9, b2=0.999, b3=0.9999, eps1=1e-30, eps2=1e-16, clipping_threshold=1.0):
    """Leaves of rank >= 2 with both last axes nonempty are factored over them:
    R, C = b2 (R, C) + (1 - b2) (row, col means of |g|**2 + eps1); u = g / sqrt(R C / mean R);
    u /= max(1, RMS(u) / d); m = b1 m + (1 - b1) u; U = |u - m|**2 + eps2;
    R', C' the same averages of U with b3; out = m / sqrt(R' C' / mean R').
    Other leaves: v = b2 v + (1 - b2)(|g|**2 + eps1); u = g / sqrt(v); clipped; out = m."""

    def factored(p):
        return p.ndim >= 2 and min(p.shape[-2:]) >= 1

    def init(params):
        stats = []
        for p in params:
            if factored(p):
                r, c = _row_col(np.zeros(p.shape))
                stats.append([r, c, r.copy(), c.copy()])
            else:
                stats.append([np.zeros(p.shape)])
        return ([np.zeros_like(p) for p in params], stats)

    def update(gs, state, ps):
        ms, stats = state
        out, new_m, new_stats = [], [], []
        for g, m, st in zip(gs, ms, stats):
            square = _abs_sq(g) + eps1
            if len(st) == 4:
                r, c, rr, cc = st
                row, col = _row_col(square)
                r, c = b2 * r + (1 - b2) * row, b2 * c + (1 - b2) * col
                u = g * _rebuilt_rsqrt(r, c)
            else:
                v = b2 * st[0] + (1 - b2) * square
                u = g / np.sqrt(v)
            u = u / max(1.0, _rms(u) / clipping_threshold)
            m = b1 * m + (1 - b1) * u
            if len(st) == 4:
                row, col = _row_col(_abs_sq(u - m) + eps2)
                rr, cc = b3 * rr + (1 - b3) * row, b3 * cc + (1 - b3) * col
                out.append(m * _rebuilt_rsqrt(rr, cc))
                new_stats.append([r, c, rr, cc])
            else:
                out.append(m.copy())
                new_stats.append([v])
            new_m.append(m)
        return out, (new_m, new_stats)

    return Ref(init, update)


def came(
    learning_rate,
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    eps1=1e-30,
    eps2=1e-16,
    clipping_threshold=1.0,
    weight_decay=0.0,
    mu_dtype=None,
) -> Ref:
    """chain(scale_by_came, + wd * p, -lr): p -= lr (m / sqrt(S) + wd p)."""
    return chain(
        scale_by_came(b1, b2, b3, eps1, eps2, clipping_threshold),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
