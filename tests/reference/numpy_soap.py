"""Float64 NumPy reference of SOAP (gradtx/_optimizers/soap.py, gradtx/_transforms/eigenbasis.py).

Written from Vyas et al., *SOAP: Improving and Stabilizing Shampoo using Adam* (2024),
Algorithms 1-3, in the conventions of ``numpy_reference`` (``Ref(init, update)`` on lists of
leaves, hyperparameters numbers or callables of the count). Real leaves of rank <= 2.

Per matrix G (a vector: one row; a scalar: 1 x 1): L = sb L + (1 - sb) G G^T, R = sb R +
(1 - sb) G^T G. The first update gathers L, R, sets Q_L, Q_R to their eigenvectors by
decreasing eigenvalue and returns 0. Then, with s = t - 1 and G' = Q_L^T G Q_R: M = b1 M +
(1 - b1) G (the paper keeps M in the gradients' basis), V = b2 V + (1 - b2) G'^2,
u = Q_L [(Q_L^T M Q_R) / (1 - b1^s)] / (sqrt(V / (1 - b2^s)) + eps) Q_R^T; then L, R take G,
and when s % f == 0 each Q is replaced by QR(S Q P), P ordering Q's columns by decreasing
diag(Q^T S Q), and V's coordinates are permuted by P. A side of size 1 or above
max_precond_dim, and a vector's side unless precondition_1d, has Q = I.
"""

from __future__ import annotations

import numpy as np

from tests.reference.numpy_reference import Ref, _value


def _as_matrix(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 2 else x.reshape(1, x.size)


def _sides(p: np.ndarray, precondition_1d: bool, max_precond_dim: int) -> tuple[bool, bool]:
    rows, cols = _as_matrix(p).shape
    fits = lambda n: 1 < n <= max_precond_dim  # noqa: E731
    return fits(rows), fits(cols) and (p.ndim == 2 or precondition_1d)


def scale_by_soap(
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    precondition_frequency=10,
    max_precond_dim=10000,
    precondition_1d=False,
    bias_correction=True,
) -> Ref:
    def init(params):
        leaves = []
        for p in params:
            rows, cols = _as_matrix(p).shape
            left, right = _sides(p, precondition_1d, max_precond_dim)
            leaves.append(
                dict(
                    m=np.zeros((rows, cols)),
                    v=np.zeros((rows, cols)),
                    L=np.zeros((rows, rows)) if left else None,
                    R=np.zeros((cols, cols)) if right else None,
                    QL=np.eye(rows),
                    QR=np.eye(cols),
                )
            )
        return (0, leaves)

    def power_step(s, q):
        product = s @ q
        order = np.argsort(-np.sum(q * product, axis=0), kind="stable")
        return np.linalg.qr(product[:, order])[0], order

    def update(gs, state, ps):
        count, leaves = state
        t = count + 1
        a, b = _value(b1, count), _value(b2, count)
        sb = b if shampoo_beta is None else _value(shampoo_beta, count)
        e = _value(eps, count)
        out, new = [], []
        for g0, leaf in zip(gs, leaves):
            g = _as_matrix(g0)
            leaf = dict(leaf)
            if leaf["L"] is not None:
                leaf["L"] = sb * leaf["L"] + (1 - sb) * g @ g.T
            if leaf["R"] is not None:
                leaf["R"] = sb * leaf["R"] + (1 - sb) * g.T @ g
            if t == 1:
                for side in ("L", "R"):
                    if leaf[side] is not None:
                        leaf["Q" + side] = np.linalg.eigh(leaf[side])[1][:, ::-1]
                out.append(np.zeros_like(g0))
                new.append(leaf)
                continue
            s = t - 1
            ql, qr = leaf["QL"], leaf["QR"]
            rotated = ql.T @ g @ qr
            leaf["m"] = a * leaf["m"] + (1 - a) * g
            leaf["v"] = b * leaf["v"] + (1 - b) * rotated**2
            c1, c2 = (1 - a**s, 1 - b**s) if bias_correction else (1.0, 1.0)
            step = (ql.T @ leaf["m"] @ qr / c1) / (np.sqrt(leaf["v"] / c2) + e)
            out.append((ql @ step @ qr.T).reshape(g0.shape))
            if s % precondition_frequency == 0:
                if leaf["L"] is not None:
                    leaf["QL"], order = power_step(leaf["L"], ql)
                    leaf["v"] = leaf["v"][order, :]
                if leaf["R"] is not None:
                    leaf["QR"], order = power_step(leaf["R"], qr)
                    leaf["v"] = leaf["v"][:, order]
            new.append(leaf)
        return out, (t, new)

    return Ref(init, update)


def soap(
    learning_rate,
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    weight_decay=0.01,
    precondition_frequency=10,
    max_precond_dim=10000,
    precondition_1d=False,
    bias_correction=True,
) -> Ref:
    """-lr (u + wd p), u from :func:`scale_by_soap`."""
    inner = scale_by_soap(
        b1,
        b2,
        shampoo_beta,
        eps,
        precondition_frequency,
        max_precond_dim,
        precondition_1d,
        bias_correction,
    )

    def update(gs, state, ps):
        count, inner_state = state
        us, inner_state = inner.update(gs, inner_state, ps)
        lr, wd = _value(learning_rate, count), _value(weight_decay, count)
        return [-lr * (u + wd * p) for u, p in zip(us, ps)], (count + 1, inner_state)

    return Ref(lambda params: (0, inner.init(params)), update)


REFERENCES = {"soap": soap}
