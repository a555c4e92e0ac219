"""Float64 NumPy reference of PSGD Kron (gradtx/_optimizers/psgd.py), written from Li's papers.

Li, *Preconditioned Stochastic Gradient Descent* (IEEE TNNLS, 2018) and *Stochastic Hessian
Fittings with Lie Groups* (2024): P = Q^T Q with Q = Q_1 ⊗ ... ⊗ Q_k, one factor per axis
(upper triangular, or diagonal for a vector, a scalar, an axis of size 1 or one longer than
``max_size_triangular``), fitted to E[h^T P h + v^T P^{-1} v]: with A = Q h and B = Q^{-T} v
(here by explicit Kronecker-free mode products and ``np.linalg.solve``, no triangular solver),
Q_i <- Q_i - mu / ||A_i A_i^T + B_i B_i^T|| triu(A_i A_i^T - B_i B_i^T) Q_i, the norm Li's lower
bound on the spectral norm (the largest entry for a diagonal factor). The factors are not
rebalanced (that changes nothing but roundings). The update is P m_hat, its RMS capped.

The probes v are not NumPy's: they are drawn with ``jax.random.normal`` from the same key and
by the same splits as gradtx (and psgd-jax), in JAX's default float dtype (float32, float64
under x64, which is the dtype the tests' params have), then taken to float64, so that the
reference and gradtx fit to the same vectors. Everything else is float64 NumPy.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from tests.reference.numpy_reference import Ref, _value

DAMPING = math.sqrt(float(np.finfo(np.float32).eps))


def precond_update_prob_schedule(max_prob=1.0, min_prob=0.03, decay=0.001, flat_start=500):
    """p at the t-th update (called with t - 1): min(max(max_prob e^{-decay (t - t0)}, min_prob),
    max_prob)."""
    return lambda n: min(
        max(max_prob * math.exp(-decay * (n + 1 - flat_start)), min_prob), max_prob
    )


def kinds(shape, max_size, min_ndim, mode):
    if not shape:
        return [False]
    largest = max(range(len(shape)), key=lambda i: (shape[i], i))
    out = []
    for i, n in enumerate(shape):
        diagonal = n == 1 or n > max_size or len(shape) < min_ndim or mode == "all_diag"
        out.append(not (diagonal or (mode == "one_diag" and i == largest)))
    return out


def mode_product(m, x, axis):
    return np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)


def scale_axis(x, d, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    return x * d.reshape(shape)


def apply(qs, ks, x, transpose=False):
    if x.ndim == 0:
        return x * qs[0]
    for i, (q, tri) in enumerate(zip(qs, ks)):
        x = mode_product(q.T if transpose else q, x, i) if tri else scale_axis(x, q, i)
    return x


def inverse_transpose(qs, ks, v):
    if v.ndim == 0:
        return v / qs[0]
    for i, (q, tri) in enumerate(zip(qs, ks)):
        v = (
            mode_product(np.linalg.solve(q.T, np.eye(len(q))), v, i)
            if tri
            else (scale_axis(v, 1 / q, i))
        )
    return v


def contract(x, axis, tri):
    if x.ndim == 0:
        return x * x
    rows = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return rows @ rows.T if tri else np.sum(rows**2, axis=1)


def norm_lower_bound(h):
    """||h^2 c|| / ||h c|| for the column c of h of largest norm (h symmetric PSD)."""
    if not np.any(h):
        return 0.0
    c = h[:, np.argmax(np.sum(h**2, axis=0))]
    x = h @ c
    return float(np.linalg.norm(h @ x) / np.linalg.norm(x))


def fit(qs, ks, h, v, lr):
    a, b = apply(qs, ks, h), inverse_transpose(qs, ks, v)
    tiny = np.finfo(np.float64).tiny
    out = []
    for i, (q, tri) in enumerate(zip(qs, ks)):
        ta, tb = contract(a, i, tri), contract(b, i, tri)
        if tri:
            out.append(q - lr / (norm_lower_bound(ta + tb) + tiny) * np.triu(ta - tb) @ q)
        else:
            out.append(q - lr / (np.max(np.abs(ta + tb)) + tiny) * (ta - tb) * q)
    return out


def probes(key, count, shapes, dtype):
    """psgd-jax's splits: fold_in(key, count) -> (draw, s1); s1 -> (s2, _); s2 -> (_, s3);
    one key per leaf from s3."""
    step = jax.random.fold_in(jax.random.key(key), count)
    draw, fit_key = jax.random.split(step)
    fit_key, _ = jax.random.split(fit_key)
    _, vectors = jax.random.split(fit_key)
    keys = jax.random.split(vectors, len(shapes)) if shapes else []
    vs = [np.asarray(jax.random.normal(k, s, dtype), np.float64) for k, s in zip(keys, shapes)]
    return float(jax.random.uniform(draw, (), dtype)), vs


def scale_by_kron(
    b1=0.9,
    preconditioner_update_probability=None,
    max_size_triangular=8192,
    min_ndim_triangular=2,
    memory_save_mode=None,
    momentum_into_precond_update=True,
    preconditioner_lr=0.1,
    preconditioner_init_scale=1.0,
    max_rms=1.1,
    key=5318008,
    deterministic_update=True,
) -> Ref:
    prob = preconditioner_update_probability
    prob = precond_update_prob_schedule() if prob is None else prob

    def init(params):
        s = _value(preconditioner_init_scale, 0)
        qs = []
        for p in params:
            ks = kinds(p.shape, max_size_triangular, min_ndim_triangular, memory_save_mode)
            if p.ndim == 0:
                qs.append([np.asarray(s)])
                continue
            f = s ** (1 / p.ndim)
            qs.append([f * (np.eye(n) if tri else np.ones(n)) for n, tri in zip(p.shape, ks)])
        return (0, 0, [np.zeros_like(p) for p in params], qs)

    def update(gs, state, ps):
        count, counter, ms, qss = state
        t = count + 1
        b = _value(b1, count)
        ms = [b * m + (1 - b) * g for m, g in zip(ms, gs)]
        mhat = [m / (1 - b**t) for m in ms]
        p = _value(prob, count)
        draw, vs = probes(key, count, [g.shape for g in gs], jnp.asarray(0.0).dtype)
        counter += 1
        now = counter >= 1 / p if p > 0 else False
        if not deterministic_update:
            now = draw < p
        if now:
            counter = 0
            lr = _value(preconditioner_lr, count)
            fitted = mhat if momentum_into_precond_update else gs
            new = []
            for qs, g, v in zip(qss, fitted, vs):
                if g.size == 0:
                    new.append(qs)
                    continue
                h = g + DAMPING * np.mean(np.abs(g)) * v
                ks = kinds(g.shape, max_size_triangular, min_ndim_triangular, memory_save_mode)
                new.append(fit(qs, ks, h, v, lr))
            qss = new
        out = []
        for qs, m in zip(qss, mhat):
            ks = kinds(m.shape, max_size_triangular, min_ndim_triangular, memory_save_mode)
            if m.size == 0:
                out.append(np.zeros_like(m))
                continue
            u = apply(qs, ks, apply(qs, ks, m), transpose=True)
            if max_rms is not None:
                u = u / max(1.0, np.sqrt(np.mean(u**2)) / _value(max_rms, count))
            out.append(u)
        return out, (t, counter, ms, qss)

    return Ref(init, update)


def kron(
    learning_rate=0.001, b1=0.9, weight_decay=0.0, preconditioner_update_probability=None, **kw
) -> Ref:
    """-lr (scale_by_kron + wd p)."""
    inner = scale_by_kron(b1, preconditioner_update_probability, **kw)

    def init(params):
        return (0, inner.init(params))

    def update(gs, state, ps):
        count, s = state
        u, s = inner.update(gs, s, ps)
        lr, wd = _value(learning_rate, count), _value(weight_decay, count)
        return [-lr * (x + wd * p) for x, p in zip(u, ps)], (count + 1, s)

    return Ref(init, update)


REFERENCES = {"kron": kron, "scale_by_kron": scale_by_kron}
