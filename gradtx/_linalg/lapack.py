"""Batched factorizations that call LAPACK one matrix at a time on CPU.

jaxlib 0.10's CPU LAPACK kernels cut a batched call into pieces for XLA's intra-op thread pool
and block their own pool thread until the pieces are done. A compiled step with many
independent batched calls (one per leaf of a model, or one per leaf of a ``vmap``-ped sweep)
has the thunk executor run them side by side: once as many calls run as the pool has threads,
every thread waits for pieces that no thread is left to run, and the program hangs. Batched
``eigh``, ``qr``, triangular solves (and ``cholesky``, unused here) were seen to hang so with
jaxlib 0.10.2; ``svd``'s kernels cut batches too, though no program of ours hung on them. A
call on one matrix runs in place. The functions here take a batch of matrices (leading axes)
and, under ``vmap`` too, make one LAPACK call per matrix on CPU (a loop, ``lax.map``) and one
batched call elsewhere; each matrix's results are those of the batched call, bit for bit
(jax-ml/jax commit 859992407d, after jaxlib 0.11.0, stops cutting batches in the open-source
builds).

They are differentiable as their ``jnp`` counterparts. ``eigh``'s derivative is written out
and keeps the per-matrix calls (``matrix_inverse_pth_root`` is differentiable under ``vmap``);
the others take ``jnp``'s derivative, which recomputes the primal values by the batched call,
so a program that differentiates through them keeps the hazard (no optimizer's step does).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax


def _one_at_a_time(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a function of single matrices), batched by ``vmap`` as a loop over the matrices
    on CPU and as ``vmap(fn)`` elsewhere."""
    call = jax.custom_batching.custom_vmap(fn)

    @call.def_vmap
    def _batched(axis_size, in_batched, *args):
        if not any(in_batched):
            out = call(*args)
            return out, jax.tree.map(lambda _: False, out)
        args = tuple(
            x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, batched in zip(args, in_batched)
        )
        out = lax.platform_dependent(
            *args, cpu=lambda *xs: lax.map(lambda x: call(*x), xs), default=jax.vmap(fn)
        )
        return out, jax.tree.map(lambda _: True, out)

    return call


def _with_jnp_derivative(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`_one_at_a_time` of ``fn``, differentiated as ``fn``."""
    call = jax.custom_jvp(_one_at_a_time(fn))
    call.defjvp(lambda primals, tangents: jax.jvp(fn, primals, tangents))
    return call


def _over_batch(fn: Callable[..., Any], *matrices: jax.Array) -> Any:
    """``fn`` of single matrices applied to (..., m, n) batches sharing their leading axes."""
    batch = matrices[0].shape[:-2]
    if not batch:
        return fn(*matrices)
    size = math.prod(batch)
    flat = [x.reshape((size, *x.shape[-2:])) for x in matrices]
    out = jax.vmap(fn)(*flat)
    return jax.tree.map(lambda x: x.reshape(batch + x.shape[1:]), out)


# ---- eigh ---------------------------------------------------------------------------------------


@jax.custom_jvp
def _eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _eigh_call(a)


def _eigh_single(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    eigenvalues, vectors = jnp.linalg.eigh(a)
    return eigenvalues, vectors


_eigh_call = _one_at_a_time(_eigh_single)


@_eigh.defjvp
def _eigh_jvp(primals, tangents):
    # first-order perturbation theory for distinct eigenvalues (Magnus, 1985): with
    # S = V^H dA V, dw = diag(S) and dV = V (F * S), F_ij = 1 / (w_j - w_i) off the diagonal;
    # written out (not jnp's rule) so that the primal keeps its one call per matrix
    (a,), (da,) = primals, tangents
    eigenvalues, vectors = _eigh(a)
    da = (da + da.conj().T) / 2  # eigh reads the Hermitian part of its input
    highest = lax.Precision.HIGHEST
    s = jnp.matmul(jnp.matmul(vectors.conj().T, da, precision=highest), vectors, precision=highest)
    eye = jnp.eye(s.shape[-1], dtype=s.dtype)
    w = eigenvalues.astype(s.dtype)
    f = 1 / (eye + w[None, :] - w[:, None]) - eye
    d_vectors = jnp.matmul(vectors, f * s, precision=highest)
    d_eigenvalues = jnp.real(jnp.diagonal(s)).astype(eigenvalues.dtype)
    return (eigenvalues, vectors), (d_eigenvalues, d_vectors)


def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``jnp.linalg.eigh`` of each Hermitian matrix of ``a`` (..., n, n): the eigenvalues in
    ascending order (..., n) and the eigenvectors as columns (..., n, n)."""
    return _over_batch(_eigh, a)


# ---- qr, svd, triangular solve ------------------------------------------------------------------


def _qr_single(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    q, r = jnp.linalg.qr(a)
    return q, r


_qr = _with_jnp_derivative(_qr_single)


def qr(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``jnp.linalg.qr`` (reduced) of each matrix of ``a`` (..., m, n): ``(q, r)``."""
    return _over_batch(_qr, a)


@functools.cache
def _svd(full_matrices: bool, compute_uv: bool) -> Callable[..., Any]:
    def single(a):
        out = jnp.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)
        return tuple(out) if compute_uv else out

    return _with_jnp_derivative(single)


def svd(a: jax.Array, *, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """``jnp.linalg.svd`` of each matrix of ``a`` (..., m, n): ``(u, s, vh)``, or ``s`` alone
    without ``compute_uv``."""
    return _over_batch(_svd(bool(full_matrices), bool(compute_uv)), a)


@functools.cache
def _solve_triangular(trans: Any, lower: bool) -> Callable[..., Any]:
    def single(a, b):
        return jax.scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower)

    return _with_jnp_derivative(single)


def solve_triangular(a: jax.Array, b: jax.Array, *, trans: Any = 0, lower: bool = False):
    """``jax.scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower)`` for each matrix of
    ``a`` (..., n, n) and right-hand sides ``b`` (..., n, k) with the same leading axes."""
    return _over_batch(_solve_triangular(trans, bool(lower)), a, b)
