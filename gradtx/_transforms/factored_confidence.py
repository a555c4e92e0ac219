"""CAME's scaling: Adafactor's factored second moment, then momentum weighted by a factored
confidence (the inverse root of the averaged instability ``(u - m)**2``).

The row and column statistics are Adafactor's (:mod:`gradtx._transforms.factored`); the
instability is factored the same way. Statistics are real and kept in at least float32.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype
from gradtx._core.hyper import ScalarOrSchedule, live, per_dtype, value_as
from gradtx._transforms.factored import (
    _PLACEHOLDER,
    _stats_dtype,
    factored_average,
    factored_dims,
    factored_rsqrt,
)
from gradtx._transforms.momentum import ema_step

_NON_NEGATIVE = (">= 0", lambda v: v >= 0)


def came_dims(shape):
    """CAME factors every leaf of rank >= 2 over its last two axes (the authors' code)."""
    return factored_dims(shape, True, 1, "torch")


class ScaleByCameState(NamedTuple):
    mu: Any  # like the params (mu_dtype if given): the average of the clipped scaled updates
    v_row: Any  # per leaf: the shape without its last axis if factored, else (1,); >= float32
    v_col: Any  # per leaf: the shape without its second-last axis if factored, else (1,)
    v: Any  # per leaf: the leaf's shape if not factored, else (1,); >= float32
    r_row: Any  # like v_row: the row statistics of the instability
    r_col: Any  # like v_col: its column statistics

    # eps1 and eps2 are CAME's names, not in the shared table of ranges
    live_ranges = {"eps1": _NON_NEGATIVE, "eps2": _NON_NEGATIVE}


def _shapes(shape):
    """(row, column, full) statistics' shapes of a leaf."""
    dims = came_dims(shape)
    if dims is None:
        return _PLACEHOLDER, _PLACEHOLDER, tuple(shape)
    return tuple(shape[:-1]), tuple(shape[:-2]) + tuple(shape[-1:]), _PLACEHOLDER


def _scale_by_came(b1, b2, b3, eps1, eps2, clipping_threshold, *, mu_dtype):
    owner = "scale_by_came"

    def init(params):
        def stats(p):
            dtype = _stats_dtype(jnp.result_type(p))
            row, col, full = _shapes(np.shape(p))
            return tuple(jnp.zeros(s, dtype) for s in (row, col, full, row, col))

        leaves = jax.tree.map(stats, params)
        pick = lambda i: jax.tree.map(lambda _, s: s[i], params, leaves)  # noqa: E731
        return ScaleByCameState(_tree.zeros_like(params, mu_dtype), *(pick(i) for i in range(5)))

    def update(updates, state, params=None, **extra):
        _tree.check_match(owner, (updates, state.mu), ("updates", "state"))
        ema1, ema2, ema3 = ema_step(b1), ema_step(b2), ema_step(b3)
        e1, e2, d = (
            per_dtype(lambda t, h=h: value_as(h, t)) for h in (eps1, eps2, clipping_threshold)
        )

        def leaf(g, m, v_row, v_col, v, r_row, r_col):
            stats = _stats_dtype(g.dtype)
            work = _tree.wider(g.dtype, stats)
            x = _tree.cast(g, work)
            square = _tree.abs_sq(x) + e1(stats)
            dims = came_dims(g.shape)
            if dims is None:
                v = ema2(square, v)
                u = _tree.times(x, jax.lax.rsqrt(v))
            else:
                v_row, v_col = factored_average(square, v_row, v_col, dims, ema2)
                u = _tree.times(x, factored_rsqrt(v_row, v_col, dims))
            rms = jnp.sqrt(jnp.sum(_tree.abs_sq(u)) / max(u.size, 1))
            u = _tree.divide(u, jnp.maximum(rms / d(stats), jnp.ones_like(rms)))
            m = ema1(u, m)
            if dims is None:
                out = m
            else:
                instability = _tree.abs_sq(u - _tree.cast(m, work)) + e2(stats)
                r_row, r_col = factored_average(instability, r_row, r_col, dims, ema3)
                out = _tree.times(m, factored_rsqrt(r_row, r_col, dims))
            return out.astype(g.dtype), m, v_row, v_col, v, r_row, r_col

        fields = (state.mu, state.v_row, state.v_col, state.v, state.r_row, state.r_col)
        results = jax.tree.map(leaf, updates, *fields)
        pick = lambda i: jax.tree.map(lambda _, r: r[i], updates, results)  # noqa: E731
        new = ScaleByCameState(*(_tree.cast_like(pick(i + 1), f) for i, f in enumerate(fields)))
        return pick(0), new

    return GradientTransformation(init, update)


def scale_by_came(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    eps1: ScalarOrSchedule = 1e-30,
    eps2: ScalarOrSchedule = 1e-16,
    clipping_threshold: ScalarOrSchedule = 1.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""CAME's scaling: Adafactor's factored step with confidence-weighted momentum.

    For a leaf of rank >= 2, factored over its last two axes (rows r, columns c):

    .. math::
      R_t = \beta_2 R_{t-1} + (1-\beta_2)\,\mathrm{mean}_c(g_t^2 + \epsilon_1), \quad
      C_t = \beta_2 C_{t-1} + (1-\beta_2)\,\mathrm{mean}_r(g_t^2 + \epsilon_1), \quad
      u_t = g_t \Big/ \sqrt{R_t C_t / \mathrm{mean}_r(R_t)},

    .. math::
      \hat u_t = u_t / \max(1, \mathrm{RMS}(u_t) / d), \quad
      m_t = \beta_1 m_{t-1} + (1-\beta_1) \hat u_t, \quad
      U_t = (\hat u_t - m_t)^2 + \epsilon_2,

    .. math::
      R'_t, C'_t = \text{the same averages of } U_t \text{ with } \beta_3, \qquad
      \text{out}_t = m_t \Big/ \sqrt{R'_t C'_t / \mathrm{mean}_r(R'_t)}

    (Luo et al., 2023, Algorithm 1: the update is large where it is stable). Other leaves keep
    the full average :math:`V_t` of :math:`g_t^2 + \epsilon_1` and take :math:`m_t`
    itself, as the authors' code does. No bias correction. Complex leaves: :math:`|g|^2`.

    Args:
      b1: β₁ in [0, 1), the momentum. Default 0.9 (the paper's).
      b2: β₂ in [0, 1), of the squared gradients. Default 0.999 (the paper's).
      b3: β₃ in [0, 1), of the instability. Default 0.9999 (the paper's).
      eps1: ε₁ >= 0 added to the squared gradients. Default 1e-30 (the paper's).
      eps2: ε₂ >= 0 added to the instability. Default 1e-16 (the paper's).
      clipping_threshold: d > 0, the largest RMS of a leaf's scaled update. Default 1.
      mu_dtype: dtype of the momentum (default: the params'); the update comes from the
        unrounded one, in each gradient's dtype.

    Returns:
      A :class:`GradientTransformation`. Its state keeps, per leaf, the momentum and the row
      and column statistics of the squares and of the instability (or full squares).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_came()
      >>> g = {"w": jnp.ones((2, 3))}
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["w"].round(2)  # u = 1 after clipping, m = 0.1, S = (1 - b3) 0.81: m / sqrt(S)
      Array([[11.11, 11.11, 11.11],
             [11.11, 11.11, 11.11]], dtype=float32)

    References:
      Luo, Ren, Zheng, Jiang, Jiang and You, *CAME: Confidence-guided Adaptive Memory
      Efficient Optimization*, ACL 2023 (arXiv:2307.02047), Algorithm 1.
    """
    owner = "scale_by_came"
    build = functools.partial(_scale_by_came, mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype))
    return live(
        owner,
        build,
        ranges=ScaleByCameState.live_ranges,
        b1=b1,
        b2=b2,
        b3=b3,
        eps1=eps1,
        eps2=eps2,
        clipping_threshold=clipping_threshold,
    )
