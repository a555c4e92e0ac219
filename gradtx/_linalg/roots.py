"""Inverse p-th roots of symmetric PSD matrices, and the power iteration that sizes their ridge.

Shampoo preconditions a gradient ``G`` by ``L^{-1/4} G R^{-1/4}`` (and, in general, by
``A^{-1/p}`` for each statistic ``A``). The statistics are sums of ``G G^T``: PSD, often
singular, and in float32 only PSD up to rounding. Both functions take a matrix or a batch of
them (leading axes), run under ``jit`` and ``vmap``, and give finite results for singular and
zero matrices.

Every matrix is first divided by a power of two near its largest entry (exact in binary floating
point): the iterations then see entries of order 1, so norms neither underflow nor overflow for
tiny or huge statistics, and the results are those of the unscaled computation otherwise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradtx._core import tree as _tree
from gradtx._core.checks import check_number
from gradtx._linalg import lapack as _lapack

_METHODS = ("eigh", "newton")
_NON_NEGATIVE = (">= 0", lambda v: v >= 0)
# the ridge is relative to the largest eigenvalue, but at least this much times ridge_epsilon
# (as optax), so that a zero matrix gets a positive ridge
_MIN_EIGENVALUE = 1e-16
# the Newton iteration stops when its error grows by more than this factor in one step: rounding
# has taken over (a transient rise smaller than this is normal in the first steps)
_GROWTH = 1.2


# ---- validation ---------------------------------------------------------------------------------


def _check_matrix(owner: str, matrix: Any) -> jax.Array:
    matrix = jnp.asarray(matrix)
    if not jnp.issubdtype(matrix.dtype, jnp.inexact):
        raise TypeError(
            f"{owner}: matrix must be a float or complex array, got dtype {matrix.dtype}"
        )
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(
            f"{owner}: matrix must be square (shape (..., n, n)), got shape {matrix.shape}"
        )
    if math.prod(matrix.shape) == 0:
        raise ValueError(f"{owner}: matrix must not be empty, got shape {matrix.shape}")
    return matrix


def _check_p(owner: str, p: Any) -> int:
    if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
        raise ValueError(f"{owner}: p must be an int >= 1, got {p!r}")
    return int(p)


def _check_scalar(owner: str, name: str, value: Any, *, integer: bool = False) -> Any:
    """A real scalar >= 0 (an int if ``integer``); a traced one is checked for its type only."""
    kind = "an int" if integer else "a real number"
    dtype = getattr(value, "dtype", None)
    if dtype is not None and isinstance(value, (jax.Array, np.ndarray)):
        ok = jnp.issubdtype(dtype, jnp.integer) or (
            not integer and jnp.issubdtype(dtype, jnp.floating)
        )
        if not ok or value.ndim != 0:
            raise TypeError(
                f"{owner}: {name} must be {kind} (a scalar), got dtype {dtype} shape {value.shape}"
            )
        if isinstance(value, jax.core.Tracer):
            return value
        value = value.item()
    ok = isinstance(value, numbers.Integral if integer else numbers.Real)
    if isinstance(value, bool) or not ok:
        raise TypeError(f"{owner}: {name} must be {kind}, got {value!r}")
    check_number(owner, name, float(value), rule=_NON_NEGATIVE)
    return value


def _check_precision(owner: str, precision: Any) -> Any:
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    try:
        return lax.Precision(precision)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: precision must be a jax.lax.Precision, its name or None, got {precision!r}"
        ) from None


# ---- shared pieces ------------------------------------------------------------------------------


def _compute_dtype(dtype: Any) -> Any:
    """At least float32 (complex64 for complex): bfloat16 and float16 statistics are too coarse
    for an inverse root."""
    return _tree.wider(dtype, jnp.float32)


def _power_of_two_scale(a: jax.Array) -> jax.Array:
    """The exponent ``e`` of ``2^e``, the power of two just above ``max |a_ij|`` (0 for a zero or
    non-finite matrix): dividing by it is exact."""
    largest = jnp.max(jnp.abs(a))
    _, exponent = jnp.frexp(jnp.where(jnp.isfinite(largest), largest, 0))
    return exponent


def _matmul(a: jax.Array, b: jax.Array, precision: Any) -> jax.Array:
    return jnp.matmul(a, b, precision=precision)


def _matrix_power(a: jax.Array, p: int, precision: Any) -> jax.Array:
    """``a^p`` for a static ``p >= 1`` by repeated squaring (``a^4 = (a^2)^2``)."""
    result = None
    while True:
        if p & 1:
            result = a if result is None else _matmul(result, a, precision)
        p >>= 1
        if not p:
            return result
        a = _matmul(a, a, precision)


def _tree_norm(v: Any) -> jax.Array:
    return jnp.sqrt(_tree.vdot(v, v))


def _tree_scale(v: Any, c: jax.Array) -> Any:
    return jax.tree.map(lambda x: _tree.times(x, c.astype(_tree.real_dtype(x.dtype))), v)


def _normalized(v: Any) -> Any:
    norm = _tree_norm(v)
    return _tree_scale(v, 1 / jnp.where(norm > 0, norm, 1))


def _flat_batch(fn: Callable[..., Any], matrix: jax.Array, *args: Any) -> Any:
    """``fn`` applied to each (n, n) matrix of a (..., n, n) batch, outputs given the batch's
    leading axes (``vmap``: each matrix's loop stops on its own); each of ``args`` has the same
    leading axes."""
    batch = matrix.shape[:-2]
    if not batch:
        return fn(matrix, *args)
    size = math.prod(batch)
    flat = [x.reshape((size,) + x.shape[len(batch) :]) for x in (matrix, *args)]
    out = jax.vmap(fn)(*flat)
    return jax.tree.map(lambda x: x.reshape(batch + x.shape[1:]), out)


# ---- power iteration ----------------------------------------------------------------------------


def _power_loop(mvp: Callable[[Any], Any], v0: Any, num_iters: Any, error_tolerance: Any):
    """(eigenvalue, unit eigenvector) by power iteration on the map ``mvp`` from ``v0``."""

    def rayleigh(v):
        w = mvp(v)
        return w, _tree.vdot(v, w)

    def cond(state):
        k, v, w, eig = state
        residual = _tree_norm(jax.tree.map(lambda a, b: a - b, w, _tree_scale(v, eig)))
        tol = jnp.asarray(error_tolerance).astype(eig.dtype) * jnp.abs(eig)
        return (k < num_iters) & (residual > tol)

    def body(state):
        k, _, w, _ = state
        v = _normalized(w)
        w, eig = rayleigh(v)
        return k + 1, v, w, eig

    v = _normalized(v0)
    w, eig = rayleigh(v)
    num_iters = jnp.asarray(num_iters).astype(jnp.int32)
    _, v, _, eig = lax.while_loop(cond, body, (jnp.zeros([], jnp.int32), v, w, eig))
    return eig, v


def _power_matrix(a, v0, num_iters, error_tolerance, precision):
    """Power iteration on one (n, n) matrix in its dtype, scaled by a power of two."""
    exponent = _power_of_two_scale(a)
    scaled = _tree.divide(a, jnp.ldexp(jnp.ones([], a.real.dtype), exponent))
    eig, v = _power_loop(lambda v: _matmul(scaled, v, precision), v0, num_iters, error_tolerance)
    return jnp.ldexp(eig.astype(a.real.dtype), exponent), v


def power_iteration(
    matrix: jax.typing.ArrayLike | Callable[[Any], Any],
    *,
    v0: Any = None,
    num_iters: jax.typing.ArrayLike = 100,
    error_tolerance: jax.typing.ArrayLike = 1e-6,
    precision: lax.Precision | None = lax.Precision.HIGHEST,
    key: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    r"""Power iteration: the dominant eigenvalue of a symmetric PSD matrix, and its eigenvector.

    From :math:`v_0 \leftarrow v_0 / \|v_0\|`, with :math:`w_k = A v_k` and the Rayleigh quotient
    :math:`\lambda_k = \langle v_k, w_k \rangle` (real part, for Hermitian :math:`A`),

    .. math::
      v_{k+1} = w_k / \|w_k\|,

    stopping at the first :math:`k` with :math:`\|w_k - \lambda_k v_k\| \le \text{tol}\,
    |\lambda_k|` (the residual of the returned pair), or at :math:`k` = ``num_iters``; the loop
    is a ``lax.while_loop``. The error in :math:`\lambda` shrinks as
    :math:`(\lambda_2/\lambda_1)^{2k}`, that of :math:`v` as :math:`(\lambda_2/\lambda_1)^k`.
    A zero matrix gives eigenvalue 0 and the normalized ``v0``.

    A batch of matrices (shape (..., n, n)) is iterated as ``vmap`` would: each matrix stops on
    its own, and the default ``v0`` is the same for each. Arrays are computed in at least
    float32 and returned in ``matrix``'s dtype.

    Args:
      matrix: a symmetric (Hermitian) PSD matrix, or a batch of them (shape (..., n, n)); or a
        function computing the product of the matrix with a vector (any pytree, as ``v0``).
      v0: the starting vector, nonzero: shape (n,) or (..., n) for an array ``matrix``, a
        pytree of the function's input for a function (then required). Default: uniform in
        [-1, 1], drawn from ``key``.
      num_iters: the most iterations (matrix-vector products after the first), an int >= 0.
        Default 100, optax's.
      error_tolerance: ``tol`` >= 0 in the stopping rule above. Default 1e-6, optax's.
      precision: the ``jax.lax.Precision`` of the matrix-vector products on an array ``matrix``.
        Default ``HIGHEST`` (full float32 on TPUs and GPUs with TF32).
      key: the PRNG key the default ``v0`` is drawn from. Default ``jax.random.PRNGKey(0)``.

    Returns:
      ``(eigenvalue, eigenvector)``: the Rayleigh quotient (shape (...)) and the unit vector it
      belongs to (shape (..., n), or ``v0``'s pytree), the same values and order as optax's
      ``power_iteration`` (optax returns one further product ``A v / |A v|`` as the vector).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> a = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> eigenvalue, eigenvector = gradtx.power_iteration(a)
      >>> eigenvalue.round(4), jnp.abs(eigenvector).round(4)
      (Array(3., dtype=float32), Array([0.7071, 0.7071], dtype=float32))

    References:
      von Mises and Pollaczek-Geiringer, *Praktische Verfahren der Gleichungsauflösung*, ZAMM,
      1929; Golub and Van Loan, *Matrix Computations*, 4th ed., 2013, section 8.2.1.
    """
    owner = "power_iteration"
    num_iters = _check_scalar(owner, "num_iters", num_iters, integer=True)
    error_tolerance = _check_scalar(owner, "error_tolerance", error_tolerance)
    precision = _check_precision(owner, precision)
    if callable(matrix):
        if v0 is None:
            raise ValueError(
                f"{owner}: v0 is required when matrix is a function (its input's structure)"
            )
        return _power_loop(matrix, v0, num_iters, error_tolerance)
    matrix = _check_matrix(owner, matrix)
    n = matrix.shape[-1]
    dtype = _compute_dtype(matrix.dtype)
    if v0 is None:
        key = jax.random.PRNGKey(0) if key is None else key
        v0 = jax.random.uniform(key, (n,), _tree.real_dtype(dtype), -1.0, 1.0)
    v0 = jnp.asarray(v0)
    if v0.shape not in ((n,), matrix.shape[:-1]):
        raise ValueError(
            f"{owner}: v0 must have shape {(n,)} or {matrix.shape[:-1]} for a matrix of shape "
            f"{matrix.shape}, got {v0.shape}"
        )
    if not jnp.issubdtype(v0.dtype, jnp.number):
        raise TypeError(f"{owner}: v0 must be a numeric array, got dtype {v0.dtype}")
    if v0.ndim == 1:
        v0 = jnp.broadcast_to(v0, matrix.shape[:-1])
    eig, v = _flat_batch(
        lambda a, v: _power_matrix(a, v, num_iters, error_tolerance, precision),
        matrix.astype(dtype),
        v0.astype(dtype),
    )
    return eig.astype(_tree.real_dtype(matrix.dtype)), v.astype(matrix.dtype)


# ---- inverse p-th roots -------------------------------------------------------------------------


def _eye_like(a: jax.Array) -> jax.Array:
    return jnp.eye(a.shape[-1], dtype=a.dtype)


def _max_abs(x: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(x))


def _ridge(largest: jax.Array, exponent: jax.Array, ridge_epsilon: Any) -> jax.Array:
    """``ridge_epsilon * max(lambda_max, 1e-16)`` in the units of the matrix divided by 2^e."""
    floor = jnp.ldexp(jnp.asarray(_MIN_EIGENVALUE, largest.dtype), -exponent)
    return jnp.asarray(ridge_epsilon).astype(largest.dtype) * jnp.maximum(largest, floor)


def _root_eigh(a, p, ridge_epsilon, exponent, precision):
    """(a + ridge I)^(-1/p) by eigendecomposition, eigenvalues clipped at 0; the residual."""
    eigenvalues, vectors = _lapack.eigh(a)
    eigenvalues = jnp.maximum(eigenvalues, 0)
    ridge = _ridge(eigenvalues[-1], exponent, ridge_epsilon)
    roots = (eigenvalues + ridge) ** (-1 / p)
    root = _matmul(_tree.times(vectors, roots), vectors.conj().T, precision)
    damped = a + _tree.times(_eye_like(a), ridge)
    residual = _matmul(_matrix_power(root, p, precision), damped, precision) - _eye_like(a)
    return root, _max_abs(residual)


def _root_newton(a, p, num_iters, ridge_epsilon, error_tolerance, exponent, precision):
    """The coupled Newton iteration for (a + ridge I)^(-1/p); the better iterate and its error."""
    largest, _ = _power_loop(
        lambda v: _matmul(a, v, precision),
        jax.random.uniform(jax.random.PRNGKey(0), a.shape[-1:], a.real.dtype, -1.0, 1.0).astype(
            a.dtype
        ),
        100,
        1e-6,
    )
    ridge = _ridge(largest, exponent, ridge_epsilon)
    eye = _eye_like(a)
    damped = a + _tree.times(eye, ridge)
    real = largest.dtype
    # the Frobenius norm of damped / 2^e: a zero matrix's damped one (ridge 1e-22) would underflow
    norm_exponent = _power_of_two_scale(damped)
    norm = jnp.linalg.norm(_tree.divide(damped, jnp.ldexp(jnp.ones([], real), norm_exponent)))
    z = (1 + p) / (2 * jnp.ldexp(norm.astype(real), norm_exponent))
    m = _tree.times(damped, z)
    x = _tree.times(eye, z ** (1 / p))
    error = _max_abs(m - eye)
    tol = jnp.asarray(error_tolerance).astype(real)
    num_iters = jnp.asarray(num_iters).astype(jnp.int32)

    def cond(state):
        k, _, _, error, improving, _, _ = state
        return (k < num_iters) & (error > tol) & improving

    def body(state):
        k, m, x, error, _, best, best_error = state
        step = _tree.times(eye, 1 + 1 / p) - _tree.times(m, jnp.asarray(1 / p, real))
        m = _matmul(_matrix_power(step, p, precision), m, precision)
        x = _matmul(x, step, precision)
        new_error = _max_abs(m - eye)
        better = new_error < best_error
        best = jnp.where(better, x, best)
        best_error = jnp.where(better, new_error, best_error)
        return k + 1, m, x, new_error, new_error < _GROWTH * error, best, best_error

    state = (jnp.zeros([], jnp.int32), m, x, error, jnp.asarray(True), x, error)
    *_, best, best_error = lax.while_loop(cond, body, state)
    return best, best_error


def _root_matrix(a, p, num_iters, ridge_epsilon, error_tolerance, precision, method):
    """The root of one (n, n) matrix and its error, computed on ``a / 2^e`` and scaled back by
    ``2^(-e/p)``."""
    exponent = _power_of_two_scale(a)
    scaled = _tree.divide(a, jnp.ldexp(jnp.ones([], a.real.dtype), exponent))
    if method == "eigh" or a.shape[-1] == 1:
        root, error = _root_eigh(scaled, p, ridge_epsilon, exponent, precision)
    else:
        root, error = _root_newton(
            scaled, p, num_iters, ridge_epsilon, error_tolerance, exponent, precision
        )
    unscale = jnp.exp2(-exponent.astype(error.dtype) / p)
    return _tree.times(root, unscale), error


def matrix_inverse_pth_root(
    matrix: jax.typing.ArrayLike,
    p: int,
    num_iters: jax.typing.ArrayLike = 100,
    ridge_epsilon: jax.typing.ArrayLike = 1e-6,
    error_tolerance: jax.typing.ArrayLike = 1e-6,
    precision: lax.Precision | None = lax.Precision.HIGHEST,
    *,
    method: str = "eigh",
) -> tuple[jax.Array, jax.Array]:
    r"""The inverse p-th root :math:`(A + rI)^{-1/p}` of a symmetric PSD matrix, with a ridge.

    The ridge is relative to the largest eigenvalue, as in the scalable Shampoo paper:

    .. math::
      r = \epsilon \cdot \max(\lambda_{\max}(A),\ 10^{-16}),

    with :math:`\epsilon` = ``ridge_epsilon`` (the floor gives a zero matrix a positive ridge;
    both as optax). Two methods:

    - ``"eigh"`` (default): :math:`A = V \operatorname{diag}(\lambda) V^H` by ``eigh``,
      :math:`\lambda_i` clipped at 0 (a PSD matrix's rounding can make some slightly negative),
      :math:`\lambda_{\max}` their largest, and the root
      :math:`V \operatorname{diag}\big((\lambda_i + r)^{-1/p}\big) V^H`.
    - ``"newton"``: the coupled Newton iteration, with :math:`\lambda_{\max}` from
      :func:`power_iteration` (100 iterations, tolerance 1e-6, as optax), :math:`B = A + rI`,
      :math:`z = (1 + p) / (2 \|B\|_F)` (:math:`\|B\|_F \ge \|B\|_2` keeps the eigenvalues of
      :math:`M_0` in :math:`(0, (1+p)/2]`, inside the region of convergence :math:`(0, p+1)`),
      :math:`M_0 = z B`, :math:`X_0 = z^{1/p} I` and

      .. math::
        P_k = \big((1 + 1/p) I - M_k / p\big), \qquad
        M_{k+1} = P_k^p M_k, \qquad X_{k+1} = X_k P_k,

      so that :math:`M_k = X_k^p B` while :math:`M_k \to I` and :math:`X_k \to B^{-1/p}`. It
      stops when :math:`\max_{ij} |M_k - I| \le` ``error_tolerance``, after ``num_iters``
      steps, or when the error grows by more than 1.2x in one step (rounding has taken over),
      and returns the iterate with the smallest error. Matrix products only (``log2 p + 2``
      per step): fast on accelerators, but it needs :math:`B` positive definite.

    A 1x1 matrix is computed in closed form by either method. Every matrix is computed in at
    least float32 (float64 for float64 input) and the root is returned in ``matrix``'s dtype.
    A batch (shape (..., n, n)) is computed as ``vmap`` would: each matrix stops on its own.
    On CPU ``"eigh"`` makes one LAPACK call per matrix, batched or not (jaxlib 0.10 shares a
    batched call's work with XLA's thread pool and waits for it on a pool thread: several such
    calls at once in one program could wait forever; see :mod:`gradtx._linalg.lapack`), with
    the numbers of a batched call.

    Args:
      matrix: a symmetric (Hermitian) PSD matrix, or a batch of them (shape (..., n, n)).
      p: the root, an int >= 1 (Shampoo: 4 for a matrix's two statistics, 2k for an order-k
        tensor's).
      num_iters: the most Newton steps, an int >= 0 (``"newton"`` only). Default 100, optax's.
      ridge_epsilon: :math:`\epsilon` >= 0 above. Default 1e-6, optax's. With 0 a singular
        matrix has no inverse root (infinite entries).
      error_tolerance: the Newton iteration's target for :math:`\max_{ij}|M_k - I|`
        (``"newton"`` only). Default 1e-6, optax's.
      precision: the ``jax.lax.Precision`` of the matrix products. Default ``HIGHEST``.
      method: ``"eigh"`` or ``"newton"``, above.

    Returns:
      ``(root, error)``, as optax's ``matrix_inverse_pth_root``: the root, of ``matrix``'s
      shape and dtype, and an error per matrix (shape (...), at least float32). ``"newton"``:
      :math:`\max_{ij}|M_k - I|` of the returned iterate. ``"eigh"``: the residual
      :math:`\max_{ij}|X^p (A + rI) - I|` of the root for the input :math:`A` (``log2 p + 1``
      more matrix products), large where :math:`A` has negative eigenvalues beyond the ridge
      (clipped) or where rounding, amplified by the condition number of :math:`A + rI`,
      dominates. Both errors are those of :math:`A / 2^e`, :math:`2^e` the power of two just
      above its largest entry (the same in exact arithmetic).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> a = jnp.array([[4.0, 0.0], [0.0, 16.0]])
      >>> root, error = gradtx.matrix_inverse_pth_root(a, 2, ridge_epsilon=0.0)
      >>> root.round(4)
      Array([[0.5 , 0.  ],
             [0.  , 0.25]], dtype=float32)
      >>> root, error = gradtx.matrix_inverse_pth_root(a, 2, ridge_epsilon=0.0, method="newton")
      >>> root.round(4), bool(error <= 1e-6)
      (Array([[0.5 , 0.  ],
             [0.  , 0.25]], dtype=float32), True)

    References:
      Guo and Higham, *A Schur–Newton Method for the Matrix p'th Root and its Inverse*, SIAM
      J. Matrix Anal. Appl. 28(3), 2006; Anil, Gupta, Koren, Regan and Singer, *Scalable Second
      Order Optimization for Deep Learning*, 2020 (arXiv:2002.09018), the coupled Newton
      iteration and the relative ridge; Gupta, Koren and Singer, *Shampoo: Preconditioned
      Stochastic Tensor Optimization*, ICML 2018.
    """
    owner = "matrix_inverse_pth_root"
    p = _check_p(owner, p)
    num_iters = _check_scalar(owner, "num_iters", num_iters, integer=True)
    ridge_epsilon = _check_scalar(owner, "ridge_epsilon", ridge_epsilon)
    error_tolerance = _check_scalar(owner, "error_tolerance", error_tolerance)
    precision = _check_precision(owner, precision)
    if method not in _METHODS:
        raise ValueError(f"{owner}: method must be one of {_METHODS}, got {method!r}")
    matrix = _check_matrix(owner, matrix)
    root, error = _flat_batch(
        lambda a: _root_matrix(a, p, num_iters, ridge_epsilon, error_tolerance, precision, method),
        matrix.astype(_compute_dtype(matrix.dtype)),
    )
    return root.astype(matrix.dtype), error
