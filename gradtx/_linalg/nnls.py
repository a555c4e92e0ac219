"""Non-negative least squares by Polyak's fast projected gradient."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax import lax

from gradtx._core import tree as _tree
from gradtx._core.checks import check_count

_HIGHEST = lax.Precision.HIGHEST  # the products feed an iteration: no reduced-precision passes


def _spectral_bound(q: jax.Array) -> jax.Array:
    """An upper bound on the largest eigenvalue of the PSD matrix ``q``: the smaller of its
    Frobenius and 1-norms (each bounds the spectral radius; 0 for an empty matrix)."""
    if q.size == 0:
        return jnp.zeros([], q.dtype)
    return jnp.minimum(jnp.sqrt(jnp.sum(q * q)), jnp.max(jnp.sum(jnp.abs(q), axis=0)))


def nnls(
    A: jax.Array,
    b: jax.Array,
    iters: int,
    unroll: int | bool = 1,
    L: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Non-negative least squares by Polyak's fast projected gradient (FPG).

    Solves :math:`\min_{x \ge 0} \|A x - b\|_2`. With :math:`Q = A^\top A`,
    :math:`q = A^\top b` and :math:`L \ge \lambda_{\max}(Q)`, from :math:`x_0 = y_1 = 0` and
    :math:`t_1 = 1`:

    .. math::
      x_k = \max\big(0,\; y_k - (Q y_k - q) / L\big), \quad
      t_{k+1} = \tfrac{1}{2}\big(1 + \sqrt{1 + 4 t_k^2}\big), \quad
      y_{k+1} = x_k + \frac{t_k - 1}{t_{k+1}} (x_k - x_{k-1})

    a projected gradient step from an extrapolated point (Nesterov's momentum, as FISTA): the
    objective's excess falls as :math:`O(1/k^2)`. Each of ``iters`` iterations is one product
    with :math:`Q` (formed once, :math:`N \times N`). optax's ``nnls`` starts its momentum
    sequence at :math:`t = 0`, whose first extrapolation returns to 0, so that its second
    iteration repeats its first: its result after ``iters + 1`` iterations is this one's after
    ``iters``.

    Args:
      A: the matrix, shape ``(M, N)``.
      b: the right-hand side, shape ``(M,)``, or ``(M, K)`` for ``K`` problems at once (one
        column each).
      iters: the number of iterations (>= 0; 0 returns zeros).
      unroll: passed to :func:`jax.lax.scan` (how many iterations per loop step).
      L: an upper bound on the largest eigenvalue of :math:`A^\top A`. Default: the smaller of
        its Frobenius and 1-norms. A tighter bound takes longer steps.

    Returns:
      ``x >= 0`` of shape ``(N,)`` (or ``(N, K)``), in the wider of ``A``'s and ``b``'s float
      dtypes.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> A = jnp.array([[1.0, 2.0], [3.0, 4.0]])
      >>> b = jnp.array([5.0, 6.0])  # unconstrained, x = (-4, 4.5); here x_1 = 0, x_2 = 34 / 20
      >>> [round(v, 4) for v in gradtx.nnls(A, b, 500).tolist()]
      [0.0, 1.7]

    References:
      Polyak, *Projected gradient method for non-negative least square*, Contemporary
      Mathematics 636, 2015; Beck and Teboulle, *A Fast Iterative Shrinkage-Thresholding
      Algorithm for Linear Inverse Problems*, SIAM J. Imaging Sciences, 2009.
    """
    owner = "nnls"
    A, b = jnp.asarray(A), jnp.asarray(b)
    if A.ndim != 2:
        raise ValueError(f"{owner}: A must be a matrix (2 dimensions), got shape {A.shape}")
    if b.ndim not in (1, 2):
        raise ValueError(f"{owner}: b must have 1 or 2 dimensions, got shape {b.shape}")
    if b.shape[0] != A.shape[0]:
        raise ValueError(
            f"{owner}: b must have as many rows as A ({A.shape[0]}), got shape {b.shape}"
        )
    iters = check_count(owner, "iters", iters, minimum=0)
    if not isinstance(unroll, numbers.Integral) or (not isinstance(unroll, bool) and unroll < 1):
        raise ValueError(f"{owner}: unroll must be an int >= 1 or a bool, got {unroll!r}")
    dtype = _tree.wider(A.dtype, b.dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{owner}: A and b must be real, got {A.dtype} and {b.dtype}")
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    A, b = A.astype(dtype), b.astype(dtype)
    Q = jnp.matmul(A.T, A, precision=_HIGHEST)
    q = jnp.matmul(A.T, b, precision=_HIGHEST)
    bound = _spectral_bound(Q) if L is None else jnp.asarray(L).astype(dtype)
    step = 1 / jnp.where(bound > 0, bound, jnp.ones_like(bound))  # A = 0: any step, x stays 0

    def iteration(carry, _):
        x, y, t = carry
        x_new = jnp.maximum(y - step * (jnp.matmul(Q, y, precision=_HIGHEST) - q), 0)
        t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        y_new = x_new + ((t - 1) / t_new) * (x_new - x)
        return (x_new, y_new, t_new), None

    zero = jnp.zeros(A.shape[1:] + b.shape[1:], dtype)
    (x, _, _), _ = lax.scan(
        iteration, (zero, zero, jnp.ones([], dtype)), length=iters, unroll=unroll
    )
    return x
