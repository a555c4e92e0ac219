"""Newton–Schulz orthogonalization: the polar factor of a matrix, approximately, by matmuls.

For ``X = U S V^H`` (its SVD), an odd polynomial ``p`` applied as
``p(X) = a X + b (X X^H) X + c (X X^H)^2 X = U p(S) V^H`` acts on the singular values alone.
Iterating it from ``X / ||X||_F`` (singular values in (0, 1]) pushes every singular value
towards 1, i.e. ``X`` towards ``U V^H``. Muon's coefficients (a, b, c) = (3.4445, -4.7750,
2.0315) maximise the slope at 0 at the price of not converging exactly: after 5 steps the
singular values of a full-rank matrix lie in about [0.68, 1.13] instead of at 1 (Jordan et al.,
2024), which does not hurt Muon's updates.

Dividing by the Frobenius norm is safe but puts the small singular values far below 1 for a
matrix of high rank. Three other first scalings put them higher while keeping the spectral
norm at most 1: the spectral norm itself (an SVD), the Schatten-4 norm
``(sum s_i^4)^(1/4) = ||X X^H||_F^(1/2)`` (Grishina et al., 2025), and AOL's diagonal rescaling
``D X`` with ``D_ii = (sum_j |X X^H|_ij)^(-1/2)`` (Prach and Lampert, 2022; Boissin et al., 2025).
The last two are read off the Gram matrix ``X X^H`` that the first step forms anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.checks import check_count, check_dtype
from gradtx._linalg import lapack as _lapack
from gradtx._linalg.view import MatrixDimensionNumbers, as_matrices

MUON_COEFFS = (3.4445, -4.7750, 2.0315)
# one row per step, the first the steepest (Ahn et al., 2025: Dion's Newton-Schulz)
DION_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
# the names optax.contrib.muon accepts for ns_coeffs
NS_COEFFS_PRESETS = {"standard": MUON_COEFFS, "dion": DION_COEFFS}
_PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")


def check_coefficients(owner: str, ns_coeffs: Any, ns_steps: Any) -> np.ndarray:
    """The coefficients as a float64 (steps, 3) array: one row repeated ``ns_steps`` times, or
    the last ``ns_steps`` rows of a per-step table; a name in :data:`NS_COEFFS_PRESETS` stands
    for its coefficients."""
    steps = check_count(owner, "ns_steps", ns_steps, minimum=0)
    name = None
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS_PRESETS:
            raise ValueError(
                f"{owner}: ns_coeffs must be one of the names {tuple(NS_COEFFS_PRESETS)}, 3 "
                f"numbers (a, b, c) or a table of them, got {ns_coeffs!r}"
            )
        name, ns_coeffs = ns_coeffs, NS_COEFFS_PRESETS[ns_coeffs]
    try:
        table = np.asarray(ns_coeffs, np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: ns_coeffs must be 3 numbers (a, b, c) or a table of them, one row per "
            f"step, got {ns_coeffs!r}"
        ) from None
    if table.ndim not in (1, 2) or table.shape[-1] != 3:
        raise ValueError(
            f"{owner}: ns_coeffs must have shape (3,) or (steps, 3), got {table.shape}"
        )
    if not np.all(np.isfinite(table)):
        raise ValueError(f"{owner}: ns_coeffs must be finite, got {ns_coeffs!r}")
    if table.ndim == 1:
        return np.tile(table, (steps, 1))
    if table.shape[0] < steps:
        given = "ns_coeffs" if name is None else f"ns_coeffs {name!r}"
        raise ValueError(
            f"{owner}: {given} has {table.shape[0]} rows, fewer than ns_steps = {steps}"
        )
    return table[table.shape[0] - steps :]


def check_preconditioning(owner: str, preconditioning: Any) -> str:
    if preconditioning not in _PRECONDITIONINGS:
        raise ValueError(
            f"{owner}: preconditioning must be one of {_PRECONDITIONINGS}, got {preconditioning!r}"
        )
    return preconditioning


def compute_dtype(dtype: Any, requested: Any = None) -> Any:
    """The dtype the iteration runs in: ``requested``, else at least float32 (bfloat16 and
    float16 matrices are orthogonalized in float32), complex for complex matrices."""
    if requested is None:
        return _tree.wider(dtype, jnp.float32)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return _tree.wider(requested, jnp.complex64)
    return jnp.dtype(requested)


def _reciprocal_root(squares: jax.Array, eps: jax.Array) -> jax.Array:
    """``1 / max(sqrt(squares), eps)``, and 0 where ``squares`` is 0 (a zero row or matrix
    stays zero, even with ``eps = 0``, and the derivative stays finite)."""
    positive = squares > 0
    root = jnp.sqrt(jnp.where(positive, squares, 1))
    return jnp.where(positive, 1 / jnp.maximum(root, eps), 0)


def _gram(x: jax.Array) -> jax.Array:
    return x @ jnp.swapaxes(x, -1, -2).conj()


def _iterate(x: jax.Array, table: np.ndarray, preconditioning: str, eps: Any) -> jax.Array:
    """The iteration on a (batch, rows, columns) array with rows <= columns, in its dtype."""
    real = x.real.dtype
    eps = jnp.asarray(eps, real)
    gram = None
    if preconditioning == "frobenius":
        norm = _norms.unit_norms([x], [(1, 2)])[0]
        x = _tree.divide(x, norm.astype(real) + eps)
    elif preconditioning == "spectral":
        norm = jnp.max(_lapack.svd(x, compute_uv=False), axis=-1, initial=0)[:, None, None]
        x = _tree.divide(x, norm.astype(real) + eps)
    else:
        # both scalings are read off A = X X^H, which becomes the first step's D A D
        gram = _gram(x)
        if preconditioning == "aol":
            # AOL: row i of X divided by the root of row i's absolute sum in A; then
            # ||D X||_2 <= 1 (Prach and Lampert, 2022, Theorem 1, for X^H)
            scale = _reciprocal_root(jnp.sum(jnp.abs(gram), axis=-1, keepdims=True), eps)
            gram = _tree.times(gram, scale * jnp.swapaxes(scale, -1, -2))
        else:
            # ||X||_S4^2 = ||A||_F, and ||X||_2 <= ||X||_S4 <= ||X||_F
            scale = _reciprocal_root(_norms.unit_norms([gram], [(1, 2)])[0].astype(real), eps)
            gram = _tree.times(gram, scale * scale)
        x = _tree.times(x, scale)
    for row in table:
        a, b, c = (jnp.asarray(k, x.dtype) for k in row)
        gram = _gram(x) if gram is None else gram
        x = a * x + (b * gram + c * (gram @ gram)) @ x
        gram = None
    return x


def newton_schulz(
    matrices: jax.Array,
    table: np.ndarray,
    preconditioning: str,
    eps: Any,
) -> jax.Array:
    """The iteration on a (batch, rows, columns) array, in its dtype; ``table`` as from
    :func:`check_coefficients`, ``eps`` a scalar: added to each matrix's Frobenius or
    spectral norm, the floor of its Schatten-4 norm or AOL row scales."""
    return newton_schulz_many([matrices], table, preconditioning, eps)[0]


def newton_schulz_many(
    batches: list[jax.Array], table: jax.Array, preconditioning: str, eps: Any
) -> list[jax.Array]:
    """:func:`newton_schulz` of each (batch, rows, columns) array, the arrays of one shape
    (after turning each wide: X X^H the smaller) and dtype iterated as one batch: a model's
    hundreds of same-shaped matrices are a few batched matrix products, not hundreds."""
    wide = [jnp.swapaxes(m, -1, -2) if m.shape[-2] > m.shape[-1] else m for m in batches]
    groups: dict[Any, list[int]] = {}
    for i, m in enumerate(wide):
        groups.setdefault((m.shape[1:], m.dtype), []).append(i)
    out: list[Any] = [None] * len(batches)
    for members in groups.values():
        stacked = [wide[i] for i in members]
        joined = stacked[0] if len(stacked) == 1 else jnp.concatenate(stacked)
        result = _iterate(joined, table, preconditioning, eps)
        offsets = np.cumsum([0] + [m.shape[0] for m in stacked])
        for i, start, stop in zip(members, offsets[:-1], offsets[1:]):
            part = result if len(stacked) == 1 else result[start:stop]
            tall = batches[i].shape[-2] > batches[i].shape[-1]
            out[i] = jnp.swapaxes(part, -1, -2) if tall else part
    return out


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: str | Sequence[float] | Sequence[Sequence[float]] = MUON_COEFFS,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: float = 1e-8,
    dimension_numbers: MatrixDimensionNumbers | None = None,
    *,
    dtype: Any = None,
) -> jax.Array:
    r"""Newton–Schulz orthogonalization: each matrix of ``x`` pushed towards its polar factor.

    With :math:`X_0` the scaled matrix (below) and, for :math:`k = 1, \dots, K`,

    .. math::
      A_k = X_{k-1} X_{k-1}^H, \qquad
      X_k = a_k X_{k-1} + (b_k A_k + c_k A_k^2)\, X_{k-1},

    the result is :math:`X_K = U\, p_K(\dots p_1(S_0))\, V^H` for :math:`X_0 = U S_0 V^H`.
    A matrix with more rows than columns is iterated transposed (the same result, a smaller
    :math:`A`), so below :math:`X` has at most as many rows as columns. Complex matrices use
    the conjugate transpose. The work is three matrix products per step. The first scaling,
    each keeping :math:`\|X_0\|_2 \le 1`:

    .. math::
      \texttt{"frobenius"}:\ X_0 = \frac{X}{\|X\|_F + \epsilon}, \qquad
      \texttt{"spectral"}:\ X_0 = \frac{X}{\|X\|_2 + \epsilon}, \qquad
      \texttt{"schatten"}:\ X_0 = \frac{X}{\max(\|X\|_{S_4}, \epsilon)},
      \quad \|X\|_{S_4} = \Big(\sum_i s_i^4\Big)^{1/4} = \|X X^H\|_F^{1/2},

    .. math::
      \texttt{"aol"}:\ X_0 = D X, \qquad
      D_{ii} = 1 \Big/ \max\Big(\big(\textstyle\sum_j |(X X^H)_{ij}|\big)^{1/2}, \epsilon\Big).

    The Schatten-4 norm lies between the spectral and the Frobenius norm, so the small
    singular values start higher than after ``"frobenius"``; AOL's diagonal (Prach and
    Lampert, 2022, Theorem 1, applied to :math:`X^H`) bounds :math:`\|DX\|_2 \le 1` and
    equalises the rows, which lifts the small singular values further. Both are read off
    :math:`X X^H`, which then serves as the first step's :math:`A_1 = D (X X^H) D`, so they
    cost no extra matrix product and, unlike ``"spectral"``, no SVD.

    Args:
      x: a matrix, or any array with ``dimension_numbers`` saying which axes are rows and
        columns (every other axis is a batch of independent matrices).
      ns_coeffs: (a, b, c) for every step (default Muon's (3.4445, -4.7750, 2.0315)), a
        table of them, one row per step (its last ``ns_steps`` rows are used), or the name of
        one of optax's sets: ``"standard"`` (Muon's) or ``"dion"`` (five per-step rows, Ahn
        et al., 2025).
      ns_steps: the number of steps K >= 0. Default 5.
      preconditioning: the first scaling, ``"frobenius"`` (default), ``"spectral"`` (the
        largest singular value at 1, an SVD per matrix), ``"schatten"`` or ``"aol"``.
      eps: ε >= 0 (a zero matrix stays zero). Default 1e-8, optax's. Added to the Frobenius
        or spectral norm; PyTorch's Muon divides by ``max(||X||, 1e-7)`` instead, which
        differs only for norms near ε. For ``"schatten"`` and ``"aol"`` the floor of the
        norm or of each row's scale: optax floors their squares at 1e-8 whatever ``eps``
        is, the same numbers for roots above 1e-4; below, optax stops normalising (a 4096 x
        4096 gradient with entries near 1e-7 is there) and this does not.
      dimension_numbers: a :class:`MatrixDimensionNumbers`; None for a rank-2 ``x``.
      dtype: the dtype the iteration runs in. Default: ``x``'s, at least float32 (bfloat16
        and float16 matrices are orthogonalized in float32, then rounded back once).

    Returns:
      An array of ``x``'s shape and dtype.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> x = jnp.array([[3.0, 0.0], [0.0, 0.5]])
      >>> q = gradtx.orthogonalize_via_newton_schulz(x)
      >>> jnp.linalg.svd(q, compute_uv=False).round(2)  # both singular values near 1
      Array([1.04, 0.71], dtype=float32)

    References:
      Jordan, Jin, Boza, You, Cesista, Newhouse and Bernstein, *Muon: An optimizer for hidden
      layers in neural networks*, 2024 (kellerjordan.github.io/posts/muon); Bernstein and
      Newhouse, *Old Optimizer, New Norm: An Anthology*, 2024; Prach and Lampert,
      *Almost-Orthogonal Layers for Efficient General-Purpose Lipschitz Networks*, ECCV 2022;
      Grishina et al., *Accelerating Newton-Schulz Iteration for
      Orthogonalization via Chebyshev-type Polynomials*, 2025; Boissin et al., *Turbo-Muon:
      Accelerating Orthogonality-Based Optimization with Pre-Conditioning*, 2025; Ahn et al.,
      *Dion: Distributed Orthonormalized Updates*, 2025.
    """
    owner = "orthogonalize_via_newton_schulz"
    table = check_coefficients(owner, ns_coeffs, ns_steps)
    preconditioning = check_preconditioning(owner, preconditioning)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise TypeError(f"{owner}: x must be a float or complex array, got dtype {x.dtype}")
    inner = compute_dtype(x.dtype, check_dtype(owner, "dtype", dtype))
    matrices, restore = as_matrices(x, dimension_numbers)
    out = newton_schulz(matrices.astype(inner), table, preconditioning, eps)
    return restore(out).astype(x.dtype)
