"""PSGD's Kronecker-factored preconditioner (Li, 2018 and 2024): the fit and its use.

A leaf of shape ``(n_1, ..., n_k)`` is preconditioned by ``P = Q^T Q`` with ``Q = Q_1 ⊗ ... ⊗
Q_k``, one factor per axis: an upper-triangular ``n_i x n_i`` matrix, or a diagonal (a vector)
where the axis is large, of size 1, or the leaf has few axes. A scalar leaf has one factor, a
number. Applying a factor along an axis is a mode product (the leaf's other axes stay put).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import CLOSED_UNIT, UNIT, check_count, check_dtype, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as
from gradtx._linalg import lapack as _lapack
from gradtx._linalg.roots import _check_precision
from gradtx._transforms.gradient_processing import _key_data
from gradtx._transforms.momentum import debias_step, ema_step

_NO_COMPLEX = "kron has no complex form (its factors are fitted to real gradients)"
_MEMORY_SAVE_MODES = (None, "one_diag", "all_diag")
# the damping added to the fitted gradient, relative to its mean magnitude: sqrt of float32's
# machine epsilon whatever the dtype, as Li's and psgd-jax's code use
_DAMPING = math.sqrt(float(np.finfo(np.float32).eps))
_NON_NEGATIVE = (">= 0", lambda v: v >= 0)
_POSITIVE = ("> 0", lambda v: v > 0)


def precond_update_prob_schedule(
    max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 0.001, flat_start: int = 500
):
    r"""The probability of a preconditioner update, annealed from ``max_prob`` to ``min_prob``.

    At the *t*-th update (*t* = 1 first, the schedule being called with the count *t* - 1):

    .. math::
      p_t = \min\bigl(\max(p_{\max}\, e^{-d\,(t - t_0)},\ p_{\min}),\ p_{\max}\bigr),

    1 for the first ``flat_start`` updates with the defaults, then decaying to 0.03 by about
    the 4000th: a new preconditioner is fitted at every step while it is far off, then rarely.
    The defaults and the step at which *t* is read are psgd-jax's.

    Args:
      max_prob: :math:`p_{\max}` in (0, 1]. Default 1.
      min_prob: :math:`p_{\min}` in (0, ``max_prob``]. Default 0.03.
      decay: *d* >= 0. Default 0.001.
      flat_start: :math:`t_0`, an int >= 0. Default 500.

    Returns:
      A schedule: a function of the update count.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.precond_update_prob_schedule()
      >>> [round(float(schedule(n)), 4) for n in (0, 499, 1500, 10_000)]
      [1.0, 1.0, 0.3675, 0.03]

    References:
      Li, *Stochastic Hessian Fittings with Lie Groups*, 2024 (arXiv:2402.11858); psgd-jax
      (github.com/evanatyourservice/psgd_jax).
    """
    owner = "precond_update_prob_schedule"
    for name, value in (("max_prob", max_prob), ("min_prob", min_prob), ("decay", decay)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    if not 0 < max_prob <= 1:
        raise ValueError(f"{owner}: max_prob must be in (0, 1], got {max_prob!r}")
    if not 0 < min_prob <= max_prob:
        raise ValueError(f"{owner}: min_prob must be in (0, max_prob], got {min_prob!r}")
    if not (math.isfinite(decay) and decay >= 0):
        raise ValueError(f"{owner}: decay must be >= 0, got {decay!r}")
    flat_start = check_count(owner, "flat_start", flat_start, minimum=0)

    def schedule(count):
        t = jnp.asarray(count).astype(jnp.asarray(0.0).dtype) + 1
        p = max_prob * jnp.exp(-decay * (t - flat_start))
        return jnp.minimum(jnp.maximum(p, min_prob), max_prob)

    return schedule


# ---- the per-leaf math ------------------------------------------------------------------------


def factor_kinds(
    shape: tuple[int, ...], max_size_triangular: int, min_ndim_triangular: int, mode: Any
) -> tuple[bool, ...]:
    """Per axis of a leaf, whether its factor is triangular (True) or diagonal (False); a
    scalar has one diagonal factor. ``"one_diag"`` makes the largest axis (the last of equal
    ones) diagonal, ``"all_diag"`` every axis."""
    if not shape:
        return (False,)
    largest = max(range(len(shape)), key=lambda i: (shape[i], i))
    return tuple(
        n != 1
        and n <= max_size_triangular
        and len(shape) >= min_ndim_triangular
        and mode != "all_diag"
        and not (mode == "one_diag" and i == largest)
        for i, n in enumerate(shape)
    )


def _along(q: jax.Array, axis: int, ndim: int) -> jax.Array:
    """A diagonal factor shaped to broadcast along ``axis`` of a rank-``ndim`` array."""
    return q.reshape([-1 if j == axis else 1 for j in range(ndim)]) if ndim else q


def _mode_product(m: jax.Array, x: jax.Array, axis: int, precision: Any) -> jax.Array:
    """``m`` applied along ``axis`` of ``x``: ``y[.., a, ..] = sum_k m[a, k] x[.., k, ..]``."""
    return jnp.moveaxis(jnp.tensordot(m, x, axes=((1,), (axis,)), precision=precision), 0, axis)


def _apply(qs, kinds, x, precision, transpose=False):
    """``(Q_1 ⊗ ... ⊗ Q_k) x`` (or with each factor transposed), as mode products."""
    for i, (q, triangular) in enumerate(zip(qs, kinds)):
        if triangular:
            x = _mode_product(q.T if transpose else q, x, i, precision)
        else:
            x = x * _along(q, i, x.ndim)
    return x


def _solve_transposed(qs, kinds, v):
    """``(Q_1 ⊗ ... ⊗ Q_k)^{-T} v``: per axis, a triangular solve with ``Q_i^T``."""
    for i, (q, triangular) in enumerate(zip(qs, kinds)):
        if triangular:
            moved = jnp.moveaxis(v, i, 0)
            solved = _lapack.solve_triangular(
                q, moved.reshape(moved.shape[0], -1), trans="T", lower=False
            )
            v = jnp.moveaxis(solved.reshape(moved.shape), 0, i)
        else:
            v = v / _along(q, i, v.ndim)
    return v


def _gram(x: jax.Array, axis: int, triangular: bool, precision: Any) -> jax.Array:
    """``x`` contracted with itself over every axis but ``axis``: a matrix, or its diagonal."""
    if x.ndim == 0:
        return x * x
    rows = jnp.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    if triangular:
        return jnp.matmul(rows, rows.T, precision=precision)
    return jnp.sum(rows * rows, axis=1)


def spectral_lower_bound(h: jax.Array, precision: Any = None) -> jax.Array:
    """A lower bound on the spectral norm of a symmetric positive semi-definite ``h``.

    Two power-iteration steps from ``h``'s column of largest norm ``c``: ``||h^2 c|| / ||h c||``
    (Li's estimate; within about a factor sqrt(2) of the norm in practice). Formed on ``h``
    divided by its largest entry, so that it neither overflows nor underflows; 0 for ``h = 0``.
    """
    largest = jnp.max(jnp.abs(h))
    scale = jnp.where(largest > 0, largest, 1)
    a = h / scale
    c = jnp.take(a, jnp.argmax(jnp.sum(a * a, axis=0)), axis=1)
    x = jnp.matmul(a, c, precision=precision)
    norm_x = jnp.linalg.norm(x)
    y = jnp.matmul(a, x / jnp.where(norm_x > 0, norm_x, 1), precision=precision)
    return jnp.where(largest > 0, largest * jnp.linalg.norm(y), 0)


def _fit(qs, kinds, h, v, lr, precision):
    """One step of every factor towards ``E[h^T P h + v^T P^{-1} v]``'s minimum, on the Lie
    group of triangular (or diagonal) matrices: with ``A = Q h`` and ``B = Q^{-T} v``,
    ``Q_i <- Q_i - lr / ||A_i A_i^T + B_i B_i^T|| triu(A_i A_i^T - B_i B_i^T) Q_i``."""
    a = _apply(qs, kinds, h, precision)
    b = _solve_transposed(qs, kinds, v)
    out = []
    for i, (q, triangular) in enumerate(zip(qs, kinds)):
        if q.size == 0:
            out.append(q)
            continue
        ta, tb = _gram(a, i, triangular, precision), _gram(b, i, triangular, precision)
        tiny = jnp.finfo(q.dtype).tiny
        if triangular:
            step = lr / (spectral_lower_bound(ta + tb, precision) + tiny)
            out.append(q - step * jnp.matmul(jnp.triu(ta - tb), q, precision=precision))
        else:
            step = lr / (jnp.max(jnp.abs(ta + tb)) + tiny)
            out.append(q - step * (ta - tb) * q)
    return tuple(out)


def _balance(qs):
    """Each factor rescaled to the geometric mean of their largest entries: ``Q`` and so ``P``
    are unchanged (the scales multiply to 1), but no factor drifts to overflow or underflow."""
    if len(qs) < 2 or any(q.size == 0 for q in qs):
        return qs
    norms = jnp.stack([jnp.max(jnp.abs(q)) for q in qs])
    ok = jnp.all(norms > 0)
    norms = jnp.where(ok, norms, 1)
    mean = jnp.exp(jnp.mean(jnp.log(norms)))
    return tuple(q * (mean / n) for q, n in zip(qs, norms))


def _clip_rms(u: jax.Array, max_rms: jax.Array) -> jax.Array:
    """``u / max(1, rms(u) / max_rms)``."""
    rms = jnp.sqrt(jnp.mean(u * u))
    return u / jnp.maximum(1, rms / max_rms)


# ---- scale_by_kron ----------------------------------------------------------------------------


class ScaleByKronState(NamedTuple):
    count: jax.Array  # int32 []: updates so far (the momentum's bias correction, the key's step)
    key: jax.Array  # uint32 key data: the step key is fold_in(key, count)
    update_counter: jax.Array  # int32 []: updates since the preconditioner was last fitted
    mu: Any  # like the params (mu_dtype if given): the momentum
    # per leaf (jax.tree.leaves order; not a tree like the params, whose places Flax NNX would
    # take for params) a tuple of factors, one per axis ((n, n) upper triangular or (n,)
    # diagonal; a scalar leaf: one [] factor), in precond_dtype (default: the leaf's, at least
    # float32)
    preconditioners: tuple

    live_ranges = {
        "preconditioner_update_probability": CLOSED_UNIT,
        "preconditioner_lr": _NON_NEGATIVE,
        "preconditioner_init_scale": _POSITIVE,
        "max_rms": _POSITIVE,
        "b1": UNIT,
    }


def _factor_dtype(leaf_dtype: Any, precond_dtype: Any) -> Any:
    return precond_dtype or _tree.wider(leaf_dtype, jnp.float32)


def _step_keys(key: jax.Array, count: jax.Array, n: int):
    """The step's draw key and one key per leaf for its probe vectors: the splits psgd-jax
    makes from its seed, so that the same seed gives the same vectors."""
    step = jax.random.fold_in(key, count)
    draw, fit = jax.random.split(step)
    fit, _ = jax.random.split(fit)
    _, vectors = jax.random.split(fit)
    return draw, list(jax.random.split(vectors, n)) if n else []


def _scale_by_kron(
    b1: Value,
    preconditioner_update_probability: Value,
    preconditioner_lr: Value,
    preconditioner_init_scale: Value,
    max_rms: Value | None,
    *,
    key_data: np.ndarray,
    impl: Any,
    max_size_triangular: int,
    min_ndim_triangular: int,
    memory_save_mode: Any,
    momentum_into_precond_update: bool,
    mu_dtype: Any,
    precond_dtype: Any,
    precond_update_precision: Any,
    precond_grads_precision: Any,
    deterministic_update: bool,
    owner: str,
) -> GradientTransformation:
    kinds_of = functools.partial(
        factor_kinds,
        max_size_triangular=max_size_triangular,
        min_ndim_triangular=min_ndim_triangular,
        mode=memory_save_mode,
    )

    def init(params):
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)

        def factors(x):
            dtype = _factor_dtype(x.dtype, precond_dtype)
            scale = value_as(preconditioner_init_scale, dtype)
            kinds = kinds_of(tuple(x.shape))
            if not x.shape:
                return (scale,)
            scale = scale ** (1 / len(x.shape))
            return tuple(
                scale * (jnp.eye(n, dtype=dtype) if tri else jnp.ones(n, dtype))
                for n, tri in zip(x.shape, kinds)
            )

        return ScaleByKronState(
            count=_tree.zero_count(),
            key=jnp.asarray(key_data),
            update_counter=_tree.zero_count(),
            mu=_tree.zeros_like(params, mu_dtype),
            preconditioners=tuple(factors(x) for x in jax.tree.leaves(params)),
        )

    def update(updates, state, params=None, **extra):
        _tree.check_match(owner, (state.mu, updates), ("state", "updates"))
        count = _tree.saturating_increment(state.count)
        mu = _tree.map(ema_step(b1), updates, state.mu, owner=owner)
        momentum = jax.tree.map(debias_step(b1, count), mu)
        flat_g, treedef = jax.tree.flatten(updates)
        flat_m = treedef.flatten_up_to(momentum)
        flat_q = list(state.preconditioners)
        fitted = treedef.flatten_up_to(momentum) if momentum_into_precond_update else flat_g
        kinds = [kinds_of(tuple(g.shape)) for g in flat_g]
        dtypes = [q[0].dtype for q in flat_q]
        draw, keys = _step_keys(
            jax.random.wrap_key_data(state.key, impl=impl), state.count, len(flat_g)
        )

        p = value_as(preconditioner_update_probability, jnp.asarray(0.0).dtype)
        counter = _tree.saturating_increment(state.update_counter)
        if deterministic_update:
            fit_now = counter.astype(p.dtype) >= 1 / p
        else:
            fit_now = jax.random.uniform(draw, (), p.dtype) < p
        counter = jnp.where(fit_now, 0, counter)

        def fit_all(qs):
            out = []
            for q, kind, g, k, dtype in zip(qs, kinds, fitted, keys, dtypes):
                if g.size == 0:
                    out.append(q)
                    continue
                g = _tree.cast(g, dtype)
                v = jax.random.normal(k, g.shape, dtype)
                h = g + _DAMPING * jnp.mean(jnp.abs(g)) * v
                lr = value_as(preconditioner_lr, dtype)
                out.append(_fit(_balance(q), kind, h, v, lr, precond_update_precision))
            return out

        if isinstance(fit_now, jax.core.Tracer):
            flat_q = lax.cond(fit_now, fit_all, lambda qs: list(qs), list(flat_q))
        elif fit_now:  # eager: the branch taken, without compiling both
            flat_q = fit_all(flat_q)

        def precondition(m, q, kind, g):
            if g.size == 0:
                return jnp.zeros_like(g)
            x = _tree.cast(m, q[0].dtype)
            precision = precond_grads_precision
            u = _apply(q, kind, _apply(q, kind, x, precision), precision, transpose=True)
            if max_rms is not None:
                u = _clip_rms(u, value_as(max_rms, u.dtype))
            return u.astype(g.dtype)

        out = [precondition(*args) for args in zip(flat_m, flat_q, kinds, flat_g)]
        new_state = ScaleByKronState(
            count=count,
            key=state.key,
            update_counter=counter,
            mu=_tree.cast_like(mu, state.mu),
            preconditioners=tuple(tuple(q) for q in flat_q),
        )
        return treedef.unflatten(out), new_state

    return GradientTransformation(init, update)


def kron_arguments(
    owner: str,
    key: Any,
    max_size_triangular: Any,
    min_ndim_triangular: Any,
    memory_save_mode: Any,
    momentum_into_precond_update: Any,
    mu_dtype: Any,
    precond_dtype: Any,
    precond_update_precision: Any,
    precond_grads_precision: Any,
    deterministic_update: Any,
) -> dict[str, Any]:
    """The validated arguments of scale_by_kron that are fixed when it is built."""
    if memory_save_mode not in _MEMORY_SAVE_MODES:
        raise ValueError(
            f"{owner}: memory_save_mode must be one of {_MEMORY_SAVE_MODES}, "
            f"got {memory_save_mode!r}"
        )
    key_data, impl = _key_data(owner, key)
    return dict(
        key_data=key_data,
        impl=impl,
        max_size_triangular=check_count(owner, "max_size_triangular", max_size_triangular, 0),
        min_ndim_triangular=check_count(owner, "min_ndim_triangular", min_ndim_triangular, 0),
        memory_save_mode=memory_save_mode,
        momentum_into_precond_update=check_flag(
            owner, "momentum_into_precond_update", momentum_into_precond_update
        ),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        precond_dtype=check_dtype(owner, "precond_dtype", precond_dtype),
        precond_update_precision=_check_precision(owner, precond_update_precision),
        precond_grads_precision=_check_precision(owner, precond_grads_precision),
        deterministic_update=check_flag(owner, "deterministic_update", deterministic_update),
        owner=owner,
    )


def scale_by_kron(
    b1: ScalarOrSchedule = 0.9,
    preconditioner_update_probability: ScalarOrSchedule | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    preconditioner_lr: ScalarOrSchedule = 0.1,
    preconditioner_init_scale: ScalarOrSchedule = 1.0,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    precond_update_precision: Any = "tensorfloat32",
    precond_grads_precision: Any = None,
    *,
    max_rms: ScalarOrSchedule | None = 1.1,
    key: Any = 5318008,
    deterministic_update: bool = True,
) -> GradientTransformation:
    r"""PSGD's Kronecker-factored preconditioner applied to the momentum.

    Per leaf, with :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t` and
    :math:`\hat m_t = m_t / (1 - \beta_1^t)`, the output is :math:`P \hat m_t` with
    :math:`P = Q^T Q`, :math:`Q = Q_1 \otimes \dots \otimes Q_k` (one factor per axis,
    triangular or diagonal), scaled down to RMS ``max_rms`` if above it. When the
    preconditioner is refitted (see below), first, with :math:`h = \hat m_t + \delta v` (or
    :math:`g_t + \delta v` without ``momentum_into_precond_update``), :math:`v` a standard
    normal probe and :math:`\delta = \sqrt{\epsilon_{32}}\, \mathrm{mean}|h|`, every factor
    takes a step on the criterion :math:`E[h^T P h + v^T P^{-1} v]`:

    .. math::
      A = Q h, \quad B = Q^{-T} v, \qquad
      Q_i \leftarrow Q_i - \frac{\mu}{\lVert A_i A_i^T + B_i B_i^T \rVert}
      \mathrm{triu}(A_i A_i^T - B_i B_i^T)\, Q_i ,

    where :math:`A_i A_i^T` contracts every axis but the *i*-th, the norm is a lower bound on
    the spectral norm (the largest entry for a diagonal factor, whose step is elementwise), and
    the factors are first rescaled to equal largest entries (which leaves :math:`P` as it is).
    Its fixed point :math:`P\,E[hh^T]\,P = E[vv^T]` makes :math:`P` the inverse of the
    gradient's covariance square root, the whitening of Li (2018, 2024).

    The refit happens when the update counter reaches :math:`1/p_t` (``deterministic_update``:
    every ``round(1/p)`` steps on average, psgd-jax's way) or, without it, with probability
    :math:`p_t` at each step (a uniform draw, Li's way). The randomness is that of
    ``psgd_jax.kron``: the step key is ``fold_in(key, t - 1)`` and the same seed gives the same
    probes. The factors are stored and fitted in ``precond_dtype`` (default: the leaf's dtype,
    at least float32, so bfloat16 and float16 params get float32 matrix math); the update is
    cast back to the gradient's dtype. Zero-size leaves get zero updates. Real params only.

    Args:
      b1: β₁ in [0, 1), the momentum's decay. Default 0.9 (psgd-jax's, as are the others).
      preconditioner_update_probability: p in [0, 1], or a schedule; None (default) is
        :func:`gradtx.precond_update_prob_schedule` ().
      max_size_triangular: an axis longer than this gets a diagonal factor. Default 8192.
      min_ndim_triangular: a leaf with fewer axes gets diagonal factors. Default 2 (vectors
        diagonal).
      memory_save_mode: None (default), ``"one_diag"`` (the largest axis diagonal) or
        ``"all_diag"``.
      momentum_into_precond_update: fit to the debiased momentum (default) or the gradient.
      preconditioner_lr: μ >= 0, the fit's step. Default 0.1.
      preconditioner_init_scale: :math:`Q_0 = s I` overall (each factor :math:`s^{1/k}`),
        > 0, read at init. Default 1.
      mu_dtype: dtype of the momentum (default: the params').
      precond_dtype: dtype of the factors (default: the leaf's, at least float32).
      precond_update_precision: the matmul precision of the fit, a ``jax.lax.Precision`` or
        its name (default ``"tensorfloat32"``, psgd-jax's; it matters on accelerators only).
      precond_grads_precision: the matmul precision of :math:`P \hat m` (default None).
      max_rms: the largest RMS of a leaf's output (> 0), or None for no cap. Default 1.1,
        psgd-jax's.
      key: an int seed or a ``jax.random`` key for the probes (and the draws without
        ``deterministic_update``). Default 5318008, psgd-jax's fixed seed.
      deterministic_update: refit on a counter (default) or at random.

    Returns:
      A :class:`GradientTransformation`; the updates have the gradients' dtypes.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.scale_by_kron()
      >>> g = {"w": jnp.array([[40.0, 0.0], [0.0, 10.0]]), "b": jnp.array([20.0, 2.0])}
      >>> updates, state = tx.update(g, tx.init(g))
      >>> [round(float(jnp.sqrt(jnp.mean(u**2))), 4) for u in jax.tree.leaves(updates)]
      [1.1, 1.1]
      >>> [q.shape for q in jax.tree.leaves(state.inner_state.preconditioners)]  # b, w
      [(2,), (2, 2), (2, 2)]

    References:
      Li, *Preconditioned Stochastic Gradient Descent*, IEEE TNNLS 29(5), 2018; Li,
      *Stochastic Hessian Fittings with Lie Groups*, 2024 (arXiv:2402.11858).
    """
    owner = "scale_by_kron"
    fixed = kron_arguments(
        owner,
        key,
        max_size_triangular,
        min_ndim_triangular,
        memory_save_mode,
        momentum_into_precond_update,
        mu_dtype,
        precond_dtype,
        precond_update_precision,
        precond_grads_precision,
        deterministic_update,
    )
    if preconditioner_update_probability is None:
        preconditioner_update_probability = precond_update_prob_schedule()
    return live(
        owner,
        functools.partial(_scale_by_kron, **fixed),
        optional=("max_rms",),
        ranges=ScaleByKronState.live_ranges,
        b1=b1,
        preconditioner_update_probability=preconditioner_update_probability,
        preconditioner_lr=preconditioner_lr,
        preconditioner_init_scale=preconditioner_init_scale,
        max_rms=max_rms,
    )
