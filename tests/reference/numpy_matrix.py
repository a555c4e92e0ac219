"""Float64 NumPy references of the matrix-aware optimizers (gradtx/_optimizers/matrix.py).

Written from the papers' formulas, in the conventions of ``numpy_reference`` (``Ref(init,
update)`` on lists of leaves, *t* = 1 at the first update, hyperparameters numbers or
callables of the count). Complex leaves use the conjugate transpose.

Muon (Jordan et al., 2024, kellerjordan.github.io/posts/muon; optax.contrib's debiased
momentum): per matrix, m_t = b m + (1 - b) g; u = b m_t / (1 - b^(t+1)) + (1 - b) g / (1 - b^t)
(Nesterov) or m_t / (1 - b^t); O = NS(u), five quintic Newton-Schulz steps from u / (||u||_F +
eps); out = s O with s = sqrt(max(1, cols / rows)) or rho sqrt(max(rows, cols)). The leaves
that are not matrices (rank != 2) take an AdamW step.

The other first scalings of Newton-Schulz, on the wide orientation X (rows <= cols): the spectral
norm, X / (s_max + eps); the Schatten-4 norm (Grishina et al., 2025), X / max((sum s_i^4)^(1/4),
eps), its singular values from an SVD; AOL (Prach and Lampert, 2022), D X with D_ii = 1 /
max(sqrt(sum_j |X X^H|_ij), eps).
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import Ref, _value, scale_by_adam

MUON_COEFFS = (3.4445, -4.7750, 2.0315)
# Dion's five per-step rows (Ahn et al., 2025), optax's ns_coeffs="dion"
DION_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
NAMED_COEFFS = {"standard": MUON_COEFFS, "dion": DION_COEFFS}


def coefficient_table(ns_coeffs, ns_steps) -> np.ndarray:
    if isinstance(ns_coeffs, str):
        ns_coeffs = NAMED_COEFFS[ns_coeffs]
    table = np.asarray(ns_coeffs, np.float64)
    return np.tile(table, (ns_steps, 1)) if table.ndim == 1 else table[len(table) - ns_steps :]


def first_scaling(y, eps=1e-8, preconditioning="frobenius") -> np.ndarray:
    """X_0 of a wide (rows <= cols) non-empty matrix y (module docstring)."""
    if preconditioning == "aol":
        rows = np.sqrt(np.abs(y @ y.conj().T).sum(axis=1))
        return y / np.maximum(rows, eps)[:, None]
    s = np.linalg.svd(y, compute_uv=False)
    if preconditioning == "schatten":
        return y / max(np.sum(s**4) ** 0.25, eps)
    norm = s.max() if preconditioning == "spectral" else np.linalg.norm(y)
    return y / (norm + eps)


def newton_schulz(x, table, eps=1e-8, preconditioning="frobenius") -> np.ndarray:
    """X_0 as :func:`first_scaling`; X_k = a X + (b A + c A^2) X with A = X X^H; a tall
    matrix is iterated transposed (the same polynomial of the singular values)."""
    tall = x.shape[0] > x.shape[1]
    y = x.T if tall else x
    if y.size == 0:
        return np.array(x)
    y = first_scaling(y, eps, preconditioning)
    for a, b, c in table:
        gram = y @ y.conj().T
        y = a * y + (b * gram + c * gram @ gram) @ y
    return y.T if tall else y


def shape_scale(shape, consistent_rms) -> float:
    rows, cols = shape
    if consistent_rms is None:
        return math.sqrt(max(1.0, cols / rows)) if rows else 1.0
    return consistent_rms * math.sqrt(max(rows, cols))


def scale_by_muon(
    ns_coeffs=MUON_COEFFS,
    ns_steps=5,
    beta=0.95,
    eps=1e-8,
    nesterov=True,
    adaptive=False,
    preconditioning="frobenius",
    bias_correction=True,
) -> Ref:
    """Every leaf a matrix (rank 2)."""
    table = coefficient_table(ns_coeffs, ns_steps)

    def init(params):
        return (0, [np.zeros_like(p) for p in params])

    def update(gs, state, ps):
        count, ms = state
        t = count + 1
        b, e = _value(beta, count), _value(eps, count)
        ms = [b * m + (1.0 - b) * g for m, g in zip(ms, gs)]
        now = (1.0 - b**t) if bias_correction else 1.0
        ahead = (1.0 - b ** (t + 1)) if bias_correction else 1.0
        if nesterov:
            us = [b * m / ahead + (1.0 - b) * g / now for m, g in zip(ms, gs)]
        else:
            us = [m / now for m in ms]
        out = []
        for u in us:
            o = newton_schulz(u, table, e, preconditioning)
            if adaptive:
                o = float(np.sum((u.conj() * o).real)) * o
            out.append(o)
        return out, (t, ms)

    return Ref(init, update)


def muon(
    learning_rate,
    ns_coeffs=MUON_COEFFS,
    ns_steps=5,
    beta=0.95,
    eps=1e-8,
    weight_decay=0.0,
    nesterov=True,
    adaptive=False,
    preconditioning="frobenius",
    adam_b1=0.9,
    adam_b2=0.999,
    adam_eps_root=0.0,
    adam_weight_decay=0.0,
    adam_learning_rate=None,
    consistent_rms=None,
    bias_correction=True,
) -> Ref:
    """Rank-2 leaves: -lr (s NS(u) + wd p); the others: AdamW (Nesterov if ``nesterov``)."""
    matrix = scale_by_muon(
        ns_coeffs, ns_steps, beta, eps, nesterov, adaptive, preconditioning, bias_correction
    )
    adam = scale_by_adam(adam_b1, adam_b2, eps, adam_eps_root, nesterov)

    def split(leaves):
        pick = [p.ndim == 2 for p in leaves]
        return (
            pick,
            [x for x, k in zip(leaves, pick) if k],
            [x for x, k in zip(leaves, pick) if not k],
        )

    def init(params):
        _, mats, rest = split(params)
        return (0, matrix.init(mats), adam.init(rest))

    def update(gs, state, ps):
        count, ms, adam_state = state
        pick, g_mat, g_rest = split(gs)
        _, p_mat, p_rest = split(ps)
        o, ms = matrix.update(g_mat, ms, p_mat)
        a, adam_state = adam.update(g_rest, adam_state, p_rest)
        lr = _value(learning_rate, count)
        lr_adam = lr if adam_learning_rate is None else _value(adam_learning_rate, count)
        wd, wd_adam = _value(weight_decay, count), _value(adam_weight_decay, count)
        rms = None if consistent_rms is None else _value(consistent_rms, count)
        mats = iter(-lr * (shape_scale(p.shape, rms) * u + wd * p) for u, p in zip(o, p_mat))
        rest = iter(-lr_adam * (u + wd_adam * p) for u, p in zip(a, p_rest))
        return [next(mats) if k else next(rest) for k in pick], (count + 1, ms, adam_state)

    return Ref(init, update)


REFERENCES = {"muon": muon}
