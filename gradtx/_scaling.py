"""Second-moment scaling: RMSProp, centred RMSProp, AdaGrad, Adadelta, and Adam's preconditioner."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import _tree
from gradtx._base import GradientTransformation, identity, stateless
from gradtx._combine import chain, join
from gradtx._hyper import (
    ScalarOrSchedule,
    Value,
    check_constant,
    check_dtype,
    check_flag,
    live,
    value_as,
)
from gradtx._momentum import _ema, ema_leaf

# ---- the math, for one array -------------------------------------------------------------


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2``, real for complex ``x``."""
    return x * x if not jnp.iscomplexobj(x) else (x.conj() * x).real


def root_scale(g: jax.Array, v: jax.Array, eps: Value, eps_in_sqrt: bool) -> jax.Array:
    """``g / sqrt(v + eps)`` or ``g / (sqrt(v) + eps)``."""
    dtype = _tree.wider(g.dtype, v.dtype)
    g, v, eps = g.astype(dtype), v.astype(dtype), value_as(eps, v.real.dtype)
    if eps_in_sqrt:
        return g * jax.lax.rsqrt(v + eps)
    return g / (jnp.sqrt(v) + eps)


def _second_moment(decay: Value, *, debias: bool, initial_value: float = 0.0):
    """The exponential moving average of the squared updates."""
    square = stateless(lambda updates, params: jax.tree.map(abs_sq, updates))
    return chain(square, _ema(decay, debias=debias, initial_value=initial_value))


# ---- RMSProp -----------------------------------------------------------------------------


def _scale_by_rms(decay, eps, *, initial_scale, eps_in_sqrt, bias_correction):
    scale = functools.partial(root_scale, eps=eps, eps_in_sqrt=eps_in_sqrt)
    moment = _second_moment(decay, debias=bias_correction, initial_value=initial_scale)
    return join(scale, identity(), moment)


def scale_by_rms(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""Divides updates by the root of an exponential average of their squares (RMSProp).

    .. math::
      s_t = \gamma s_{t-1} + (1 - \gamma) g_t^2, \quad s_0 = \text{initial\_scale}, \qquad
      u_t = g_t / \sqrt{\hat s_t + \epsilon} \;\text{or}\; g_t / (\sqrt{\hat s_t} + \epsilon)

    with :math:`\hat s_t = s_t / (1 - \gamma^t)` if ``bias_correction`` else :math:`s_t`.

    Args:
      decay: γ in [0, 1).
      eps: ε >= 0.
      initial_scale: starting value of :math:`s` (TensorFlow uses 1, PyTorch and optax 0).
      eps_in_sqrt: ε inside the root (optax's default) or outside (PyTorch, ``False``).
      bias_correction: debias :math:`s` as Adam does.

    References:
      Tieleman and Hinton, *Lecture 6.5 - RMSProp*, COURSERA: Neural Networks, 2012.
    """
    owner = "scale_by_rms"
    build = functools.partial(
        _scale_by_rms,
        initial_scale=check_constant(owner, "initial_scale", initial_scale),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
    )
    return live(owner, build, decay=decay, eps=eps)


def centred_scale(g, m, v, eps: Value, eps_in_sqrt: bool) -> jax.Array:
    """``g`` over the root of the variance estimate ``v - |m|**2``."""
    return root_scale(g, v - abs_sq(m).astype(v.dtype), eps, eps_in_sqrt)


def _scale_by_stddev(decay, eps, *, initial_scale, eps_in_sqrt, bias_correction):
    scale = functools.partial(centred_scale, eps=eps, eps_in_sqrt=eps_in_sqrt)
    mean = _ema(decay, debias=bias_correction)
    moment = _second_moment(decay, debias=bias_correction, initial_value=initial_scale)
    return join(scale, identity(), mean, moment)


def scale_by_stddev(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""Centred RMSProp: divides updates by the root of a running variance estimate.

    .. math::
      m_t = \gamma m_{t-1} + (1 - \gamma) g_t, \quad
      s_t = \gamma s_{t-1} + (1 - \gamma) g_t^2, \qquad
      u_t = g_t / \sqrt{\hat s_t - \hat m_t^2 + \epsilon}

    (or with ε outside the root). Arguments as :func:`scale_by_rms`.

    References:
      Graves, *Generating Sequences With Recurrent Neural Networks*, 2013, eq. 38-45.
    """
    owner = "scale_by_stddev"
    build = functools.partial(
        _scale_by_stddev,
        initial_scale=check_constant(owner, "initial_scale", initial_scale),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
    )
    return live(owner, build, decay=decay, eps=eps)


# ---- AdaGrad -----------------------------------------------------------------------------


class ScaleByRssState(NamedTuple):
    sum_of_squares: Any  # like the params: the running sum of squared updates


def rss_scale(g: jax.Array, s: jax.Array, eps: Value, eps_in_sqrt: bool) -> jax.Array:
    """``g / sqrt(s + eps)`` (or ``g / (sqrt(s) + eps)``), 0 where ``s`` is 0 (hence g is 0)."""
    return jnp.where(s > 0, root_scale(g, s, eps, eps_in_sqrt), jnp.zeros_like(g))


def _scale_by_rss(eps, *, initial_accumulator_value, eps_in_sqrt):
    def init(params):
        return ScaleByRssState(_tree.full_like(params, initial_accumulator_value))

    def update(updates, state, params=None, **extra):
        add = lambda g, s: s + abs_sq(g).astype(s.dtype)  # noqa: E731
        sums = _tree.map(add, updates, state.sum_of_squares, owner="scale_by_rss")
        scale = functools.partial(rss_scale, eps=eps, eps_in_sqrt=eps_in_sqrt)
        return jax.tree.map(scale, updates, sums), ScaleByRssState(sums)

    return GradientTransformation(init, update)


def scale_by_rss(
    initial_accumulator_value: float = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    r"""AdaGrad's scaling: divides updates by the root of the sum of all past squared updates.

    .. math::
      s_t = s_{t-1} + g_t^2, \qquad u_t = g_t / \sqrt{s_t + \epsilon}
      \;\text{or}\; g_t / (\sqrt{s_t} + \epsilon)

    Args:
      initial_accumulator_value: :math:`s_0` (optax 0.1, PyTorch 0).
      eps: ε >= 0 (optax 1e-7 inside the root; PyTorch 1e-10 outside).
      eps_in_sqrt: ε inside the root (optax) or outside (PyTorch, ``False``).

    References:
      Duchi, Hazan and Singer, *Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization*, JMLR 2011.
    """
    owner = "scale_by_rss"
    build = functools.partial(
        _scale_by_rss,
        initial_accumulator_value=check_constant(
            owner, "initial_accumulator_value", initial_accumulator_value
        ),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
    )
    return live(owner, build, eps=eps)


# ---- Adadelta ----------------------------------------------------------------------------


class ScaleByAdadeltaState(NamedTuple):
    e_g: Any  # like the params: running average of squared gradients, E[g²]
    e_x: Any  # like the params: running average of squared updates, E[Δx²]


def adadelta_step(g: jax.Array, e_g: jax.Array, e_x: jax.Array, eps: Value) -> jax.Array:
    """Δx = sqrt(E[Δx²] + eps) / sqrt(E[g²] + eps) * g, with E[g²] already updated."""
    eps = value_as(eps, e_g.dtype)
    return jnp.sqrt(e_x.astype(e_g.dtype) + eps) / jnp.sqrt(e_g + eps) * g.astype(e_g.dtype)


def _scale_by_adadelta(rho, eps):
    def init(params):
        return ScaleByAdadeltaState(_tree.zeros_like(params), _tree.zeros_like(params))

    def update(updates, state, params=None, **extra):
        square_avg = lambda x, avg: ema_leaf(abs_sq(x), avg, rho)  # noqa: E731
        e_g = _tree.map(square_avg, updates, state.e_g, owner="scale_by_adadelta")
        step = functools.partial(adadelta_step, eps=eps)
        delta = jax.tree.map(step, updates, e_g, state.e_x)
        e_x = jax.tree.map(square_avg, delta, state.e_x)
        new_state = ScaleByAdadeltaState(
            _tree.cast_like(e_g, state.e_g), _tree.cast_like(e_x, state.e_x)
        )
        return delta, new_state

    return GradientTransformation(init, update)


def scale_by_adadelta(rho: ScalarOrSchedule = 0.9, eps: ScalarOrSchedule = 1e-6):
    r"""Adadelta's scaling: a unit-correct step from running averages of g² and Δx².

    .. math::
      E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
      \Delta x_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}} g_t,
      \quad E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) \Delta x_t^2

    Returns :math:`+\Delta x` (a descent direction once scaled by ``-learning_rate``).

    Args:
      rho: ρ in [0, 1), the decay of both averages.
      eps: ε >= 0.

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """
    return live("scale_by_adadelta", _scale_by_adadelta, rho=rho, eps=eps)


# ---- Adam --------------------------------------------------------------------------------


def adam_scale(m: jax.Array, v: jax.Array, eps: Value, eps_root: Value) -> jax.Array:
    """``m / (sqrt(v + eps_root) + eps)``."""
    dtype = _tree.wider(m.dtype, v.dtype)
    m, v = m.astype(dtype), v.astype(dtype)
    real = v.real.dtype
    return m / (jnp.sqrt(v + value_as(eps_root, real)) + value_as(eps, real))


def _scale_by_adam(b1, b2, eps, eps_root, *, mu_dtype=None, nesterov=False):
    scale = functools.partial(adam_scale, eps=eps, eps_root=eps_root)
    first = _ema(b1, debias=True, nesterov=nesterov, accumulator_dtype=mu_dtype)
    second = _second_moment(b2, debias=True)
    return join(scale, first, second)


def scale_by_adam(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Adam's preconditioner: debiased first moment over the root of the debiased second.

    Built from the pieces, not written out: ``join(m / (sqrt(v + eps_root) + eps),
    ema(b1, debias=True), ema(b2, debias=True) of g²)``.

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
      \quad u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}}
      + \epsilon}

    With ``nesterov=True`` the first moment is Dozat's look-ahead (NAdam):
    :math:`\beta_1 m_t / (1-\beta_1^{t+1}) + (1-\beta_1) g_t / (1-\beta_1^t)`.

    Args:
      b1: β₁ in [0, 1). Default 0.9, as in the paper.
      b2: β₂ in [0, 1). Default 0.999, as in the paper.
      eps: ε outside the root. Default 1e-8, as in the paper.
      eps_root: ε inside the root (keeps gradients through the update finite).
      mu_dtype: dtype of the first moment (e.g. ``jnp.bfloat16`` to save memory).
      nesterov: use NAdam's first moment.

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, 2014;
      Dozat, *Incorporating Nesterov Momentum into Adam*, 2016.
    """
    owner = "scale_by_adam"
    build = functools.partial(
        _scale_by_adam,
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        nesterov=check_flag(owner, "nesterov", nesterov),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
