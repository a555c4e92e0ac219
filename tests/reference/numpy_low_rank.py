"""Float64 NumPy reference of GaLore (gradtx/_optimizers/low_rank.py), from the paper.

Zhao et al., *GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection*, ICML
2024, Algorithm 2 (GaLore-AdamW), in the conventions of ``numpy_reference`` (``Ref(init,
update)`` on lists of leaves, hyperparameters numbers or callables of the count). Each rank-2
leaf G (m x n; transposed first for ``weight_dimension_numbers=MatrixDimensionNumbers(1, 0)``)
with r = min(rank, m, n): at counts t = 0, T, 2T, ... P = U[:, :r] of G = U S V^H when m >= n,
else V[:, :r]; R = P^H G or G P; N = Adam(R) (its moments carried across refreshes); out =
scale * (P N or N P^H). Other leaves: N = Adam(g), unscaled. Update: -lr (out + wd * p).

Singular vectors are unique up to sign (a phase if complex), so the reference states where
its decomposition comes from:

* ``svd_dtype=None``: ``np.linalg.svd`` in float64 (complex128), independent of JAX. gradtx
  runs the SVD in float32 for float32 params, where a sign can come out differently (2% of
  random 4x3 matrices); rows that refresh more than once therefore use ``align_signs=True``
  (each new vector turned towards the one it replaces, here as in gradtx), which makes the
  trajectory independent of every sign the SVD picks.
* ``svd_dtype="float32"`` (optax's choice): the decomposition is ``jax.numpy.linalg.svd`` of
  the gradient rounded to float32 (complex64), the routine gradtx and optax call on the same
  input, so the three agree bit for bit on the projector, raw signs included; everything else
  is float64.
"""

from __future__ import annotations

import numpy as np

from tests.reference.numpy_reference import Ref, _value, scale_by_adam


def _decompose(x: np.ndarray, svd_dtype):
    if svd_dtype is None:
        return np.linalg.svd(x, full_matrices=False)
    import jax.numpy as jnp

    narrow = np.complex64 if np.iscomplexobj(x) else np.float32
    u, s, vh = jnp.linalg.svd(x.astype(narrow), full_matrices=False)
    wide = np.complex128 if np.iscomplexobj(x) else np.float64
    return np.asarray(u, wide), np.asarray(s, np.float64), np.asarray(vh, wide)


def _projector(x, old, rank, svd_dtype, align_signs):
    m, n = x.shape
    u, _, vh = _decompose(x, svd_dtype)
    p = u[:, :rank] if m >= n else vh[:rank, :].conj().T
    if align_signs:
        d = np.sum(old.conj() * p, axis=0)
        size = np.abs(d)
        p = p * np.where(size > 0, d.conj() / np.where(size > 0, size, 1.0), 1.0)
    return p


def galore(
    learning_rate,
    rank=128,
    update_proj_gap=200,
    scale=1.0,
    weight_decay=0.0,
    weight_dimension_numbers=None,
    svd_dtype=None,
    align_signs=False,
) -> Ref:
    transposed = weight_dimension_numbers is not None and weight_dimension_numbers[0] == 1
    adam = scale_by_adam()

    def view(x):
        return x.T if transposed else x

    def init(params):
        projectors, proxies = [], []
        for p in params:
            if p.ndim == 2:
                m, n = view(p).shape
                r = min(rank, m, n)
                projectors.append(np.zeros((m if m >= n else n, r), p.dtype))
                proxies.append(np.zeros((r, n) if m >= n else (m, r), p.dtype))
            else:
                projectors.append(None)
                proxies.append(p)
        return (0, projectors, adam.init(proxies))

    def update(gs, state, ps):
        count, projectors, adam_state = state
        projected, new_projectors = [], []
        for g, p in zip(gs, projectors):
            if p is None:
                projected.append(g)
                new_projectors.append(None)
                continue
            x = view(g)
            if count % update_proj_gap == 0 and x.size and p.shape[1]:
                p = _projector(x, p, p.shape[1], svd_dtype, align_signs)
            new_projectors.append(p)
            projected.append(p.conj().T @ x if x.shape[0] >= x.shape[1] else x @ p)
        outs, adam_state = adam.update(projected, adam_state, None)
        lr, wd = _value(learning_rate, count), _value(weight_decay, count)
        alpha = _value(scale, count)
        updates = []
        for g, o, p, w in zip(gs, outs, new_projectors, ps):
            if p is not None:
                x = view(g)
                full = p @ o if x.shape[0] >= x.shape[1] else o @ p.conj().T
                o = alpha * view(full)
            updates.append(-lr * (o + wd * w))
        return updates, (count + 1, new_projectors, adam_state)

    return Ref(init, update)


REFERENCES = {"galore": galore}
