"""Adam's descendants that divide by the previous step's second moment: ADOPT and ACProp.

A denominator that does not depend on the current gradient makes the step an unbiased
direction (the correlation between :math:`g_t` and :math:`v_t` is what lets Adam diverge for
some β₂). ADOPT also normalizes before its momentum and clips; ACProp centres its second moment
on the mean (AdaBelief's). Complex params: first moments complex, second moments real, of
``|g|**2`` (ADOPT clips the real and imaginary parts of its normalized gradient each).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.hyper import ScalarOrSchedule, live, one_minus, per_dtype, value_as
from gradtx._core.norms import sqrt
from gradtx._transforms.adam_descendants import (
    _NON_NEGATIVE,
    _init_moments,
    _map_moments,
    _moment_dtype,
)
from gradtx._transforms.adam_family import in_gradient_dtypes
from gradtx._transforms.momentum import debias_step, ema_step
from gradtx._transforms.second_moments import root_scale_step


def quarter_root(count: jax.Array) -> jax.Array:
    """``count ** 0.25``: ADOPT's clipping bound :math:`c_t = t^{1/4}` (optax's default)."""
    return jnp.asarray(count).astype(float) ** 0.25


# ---- ADOPT -------------------------------------------------------------------------------


class ScaleByAdoptState(NamedTuple):
    count: jax.Array  # int32 []: updates so far (the first only gathers the second moment)
    mu: Any  # like the params (mu_dtype if given): the average of the normalized gradients
    nu: Any  # like the params' real parts: the average of |g|**2 up to this update

    # ADOPT's clipping bound c_t (a schedule of the count by default): >= 0
    live_ranges = {"clip_value_fn": _NON_NEGATIVE}


def _clip_parts(x: jax.Array, bound: jax.Array) -> jax.Array:
    """``clip(x, -bound, bound)``, a complex ``x`` part by part (as the real pairs would be)."""
    if jnp.iscomplexobj(x):
        return jax.lax.complex(jnp.clip(x.real, -bound, bound), jnp.clip(x.imag, -bound, bound))
    return jnp.clip(x, -bound, bound)


def _scale_by_adopt(b1, b2, eps, clip_value_fn, *, nesterov, mu_dtype):
    def init(params):
        return ScaleByAdoptState(*_init_moments(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        first = state.count == 0
        ema1, ema2 = ema_step(b1), ema_step(b2)
        eps_as = per_dtype(lambda dtype: value_as(eps, dtype))
        clip_as = per_dtype(lambda dtype: value_as(clip_value_fn, dtype))
        weights = per_dtype(lambda dtype: (value_as(b1, dtype), one_minus(b1, dtype)))

        def step(g, m, v):
            dtype = _moment_dtype(g, m, mu_dtype)
            calc = _tree.accumulation_dtype(dtype)
            real = _tree.real_dtype(calc)
            # the previous step's second moment: independent of g, so the step is unbiased
            scale = jnp.maximum(sqrt(_tree.cast(v, real)), eps_as(real))
            normed = _tree.divide(_tree.cast(g, calc), scale)
            if clip_value_fn is not None:
                normed = _clip_parts(normed, clip_as(real))
            normed = _tree.cast(normed, dtype)
            # the first update only sets v_0 = g_0**2
            new_m = ema1(normed, m)
            new_m = jnp.where(first, _tree.cast(m, new_m.dtype), new_m)
            if nesterov:
                old, new = weights(_tree.real_dtype(dtype))
                out = _tree.times(new_m, old) + _tree.times(normed, new)
            else:
                # the stored moment itself, so that XLA reads it back rather than keeping the
                # normalized gradient in memory for a second use (an extra pass over the leaf)
                out = new_m
            g2 = _tree.abs_sq(g)
            new_v = ema2(g2, v)
            new_v = jnp.where(first, _tree.cast(g2, new_v.dtype), new_v)
            return jnp.where(first, jnp.zeros_like(out), out), new_m, new_v

        moments = (state.mu, state.nu)
        direction, mu, nu = _map_moments("scale_by_adopt", step, updates, moments)
        return direction, ScaleByAdoptState(_tree.saturating_increment(state.count), mu, nu)

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_adopt(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.9999,
    eps: ScalarOrSchedule = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: ScalarOrSchedule = quarter_root,
) -> GradientTransformation:
    r"""ADOPT's preconditioner: momentum of the gradient normalized by the previous second moment.

    .. math::
      v_0 = g_0^2, \quad
      m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
      \operatorname{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_t\right), \quad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \qquad \text{out}_t = m_t

    The first update (count 0) only sets :math:`v_0` and returns 0. See :func:`gradtx.adopt`.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.9999 (the paper's).
      eps: ε >= 0, the floor of :math:`\sqrt{v}`. Default 1e-6 (the paper's).
      mu_dtype: dtype of the first moment (default: the params' dtype).
      nesterov: return :math:`\beta_1 m_t + (1-\beta_1)\,\text{clip}(\dots)` (optax's flag).
      use_clipping: clip the normalized gradient (the paper's stable variant). Default True.
      clip_value_fn: the bound :math:`c_t`, >= 0: a function of the int32 count of updates
        so far (a schedule, live) or a float. Default ``count ** 0.25`` (optax's).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_adopt()
      >>> g = {"w": jnp.array([2.0])}
      >>> u, state = tx.update(g, tx.init(g))  # gathers v_0 = 4
      >>> u, state = tx.update(g, state)
      >>> round(float(u["w"][0]), 4)  # (1 - b1) clip(2 / 2, 1)
      0.1

    References:
      Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama, Suzuki, Iwasawa and
      Matsuo, *ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal Rate*, NeurIPS
      2024, Algorithm 2 and section 5 (clipping).
    """
    owner = "scale_by_adopt"
    use_clipping = check_flag(owner, "use_clipping", use_clipping)
    build = functools.partial(
        _scale_by_adopt,
        nesterov=check_flag(owner, "nesterov", nesterov),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(
        owner,
        build,
        optional=("clip_value_fn",),
        ranges=ScaleByAdoptState.live_ranges,
        b1=b1,
        b2=b2,
        eps=eps,
        clip_value_fn=clip_value_fn if use_clipping else None,
    )


# ---- ACProp ------------------------------------------------------------------------------


class ScaleByAcpropState(NamedTuple):
    count: jax.Array  # int32 []: updates so far
    mu: Any  # like the params (mu_dtype if given): the average of the gradients
    nu: Any  # like the params' real parts: the average of |g - m|**2, eps_root included


def _scale_by_acprop(b1, b2, eps, eps_root, *, lagged_mean, mu_dtype):
    scale = root_scale_step(eps, eps_in_sqrt=False)

    def init(params):
        return ScaleByAcpropState(*_init_moments(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        first = state.count == 0
        ema1, ema2 = ema_step(b1), ema_step(b2)
        # the denominator is the previous step's debiased s (1 before there is one)
        previous = debias_step(b2, jnp.maximum(state.count, 1))
        eps_root_as = per_dtype(lambda dtype: value_as(eps_root, dtype))

        def step(g, m, s):
            s_hat = jnp.where(first, jnp.ones_like(s), previous(s))
            out = scale(g, s_hat)
            dtype = _moment_dtype(g, m, mu_dtype)
            g, old = _tree.cast(g, dtype), _tree.cast(m, dtype)
            m = ema1(g, m)
            s = ema2(_tree.abs_sq(g - (old if lagged_mean else m)), s)
            return out, m, s + eps_root_as(s.dtype)

        direction, mu, nu = _map_moments("scale_by_acprop", step, updates, (state.mu, state.nu))
        return direction, ScaleByAcpropState(_tree.saturating_increment(state.count), mu, nu)

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_acprop(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-16,
    eps_root: ScalarOrSchedule = 1e-16,
    *,
    lagged_mean: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""ACProp's preconditioner: the gradient over the previous step's spread around its mean.

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
      s_t = \beta_2 s_{t-1} + (1-\beta_2) |g_t - m_t|^2 + \epsilon_{root}, \qquad
      \text{out}_t = \frac{g_t}{\sqrt{s_{t-1} / (1-\beta_2^{t-1})} + \epsilon}

    (:math:`\hat s_0 = 1`: the first step is :math:`g_1 / (1 + \epsilon)`). See
    :func:`gradtx.acprop`.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-16 (optax's).
      eps_root: ε >= 0 added to :math:`s_t` each step. Default 1e-16 (optax's).
      lagged_mean: centre on :math:`m_{t-1}` instead of :math:`m_t` (optax 0.2.8's code).
      mu_dtype: dtype of the mean :math:`m` (default: the params'; optax has no such argument).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_acprop()
      >>> g = {"w": jnp.array([2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # the first step is g
      Array([2.], dtype=float32)

    References:
      Zhuang, Ding, Tang, Tatikonda, Dvornek, Papademetris and Duncan, *Momentum Centering
      and Asynchronous Update for Adaptive Gradient Methods*, NeurIPS 2021, Algorithm 2.
    """
    owner = "scale_by_acprop"
    build = functools.partial(
        _scale_by_acprop,
        lagged_mean=check_flag(owner, "lagged_mean", lagged_mean),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
