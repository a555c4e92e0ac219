"""Adam's relatives with other or more moments: AdaBelief, Yogi and Adan.

Each keeps Adam's debiased first moment and root scaling (see ``adam_family``) and changes the
second moment: the variance around the first moment (AdaBelief), an additive update (Yogi), or
the square of a Nesterov-extrapolated gradient with a third average, of the gradients'
differences (Adan).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_constant, check_dtype, check_flag, check_range
from gradtx._core.combine import join
from gradtx._core.hyper import ScalarOrSchedule, Value, live, one_minus, per_dtype, value_as
from gradtx._transforms.adam_family import first_moment, in_gradient_dtypes
from gradtx._transforms.momentum import EmaState, debias_step, ema_step
from gradtx._transforms.second_moments import root_scale_step

# ---- AdaBelief ---------------------------------------------------------------------------


class ScaleByBeliefState(NamedTuple):
    """The state of :func:`scale_by_belief`, as optax's."""

    count: jax.Array  # int32 []: updates so far (both moments' bias correction), saturating
    mu: Any  # like the params (mu_dtype if given): the first moment
    nu: Any  # like the params' real parts: the average of |g - m|**2, eps_root included


def _scale_by_belief(b1, b2, eps, eps_root, *, nesterov, mu_dtype):
    first = first_moment(b1, mu_dtype, nesterov=nesterov)
    scale = root_scale_step(eps, eps_in_sqrt=False)

    def init(params):
        mu = first.init(params)
        return ScaleByBeliefState(mu.count, mu.ema, _tree.zeros_like(_tree.real_like(params)))

    def update(updates, state, params=None, **extra):
        m_hat, mu = first.update(updates, EmaState(state.count, state.mu), params)
        average, debias = ema_step(b2), debias_step(b2, mu.count)
        eps_root_as = per_dtype(lambda dtype: value_as(eps_root, dtype))

        def belief(g, m, s):
            dtype = _tree.wider(g.dtype, m.dtype)
            surprise = _tree.abs_sq(_tree.cast(g, dtype) - _tree.cast(m, dtype))
            s = average(surprise, s)
            return s + eps_root_as(s.dtype)

        s = _tree.map(belief, updates, mu.ema, state.nu, owner="scale_by_belief")
        out = jax.tree.map(lambda m, s: scale(m, debias(s)), m_hat, s)
        return out, ScaleByBeliefState(mu.count, mu.ema, _tree.cast_like(s, state.nu))

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_belief(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-16,
    eps_root: ScalarOrSchedule = 1e-16,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdaBelief's preconditioner: Adam's, with the variance of the gradient around its EMA.

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
      s_t = \beta_2 s_{t-1} + (1-\beta_2) |g_t - m_t|^2 + \epsilon_{root}, \quad
      \text{out}_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{s_t / (1-\beta_2^t)} + \epsilon}

    The step is large where the gradient agrees with its prediction :math:`m_t` ("belief")
    and small where it does not. The paper adds one ε in both places (Algorithm 2); optax
    names the inner one ``eps_root``. The prediction error is the stored :math:`m_t` (in
    ``mu_dtype`` when given). Complex params: :math:`|g - m|^2`, real.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-16 (optax's; the paper's code uses 1e-16 in
        both places for its PyTorch version).
      eps_root: ε >= 0 added to :math:`s_t` each step. Default 1e-16 (optax's).
      nesterov: use NAdam's first moment (as :func:`scale_by_adam`).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its state is optax's :class:`gradtx.ScaleByBeliefState`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_belief()
      >>> g = {"w": jnp.array([1.0])}
      >>> u, state = tx.update(g, tx.init(g))  # s = (1 - b2) (g - g / 10)**2, debiased 0.81
      >>> u["w"].round(4)  # 1 / sqrt(0.81), where Adam's first step is 1
      Array([1.1111], dtype=float32)

    References:
      Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris and Duncan, *AdaBelief Optimizer:
      Adapting Stepsizes by the Belief in Observed Gradients*, NeurIPS 2020, Algorithm 2.
    """
    owner = "scale_by_belief"
    build = functools.partial(
        _scale_by_belief,
        nesterov=check_flag(owner, "nesterov", nesterov),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)


# ---- Yogi --------------------------------------------------------------------------------


def _yogi_second_moment(b2: Value, initial_value: float) -> GradientTransformation:
    """``v_t = v_{t-1} - (1 - b2) sign(v_{t-1} - g**2) g**2``, debiased like Adam's."""

    def init(params):
        return EmaState(_tree.zero_count(), _tree.full_like(_tree.real_like(params), initial_value))

    def update(updates, state, params=None, **extra):
        weight = per_dtype(lambda dtype: one_minus(b2, dtype))

        def step(g, v):
            dtype = _tree.wider(_tree.real_dtype(g.dtype), v.dtype)
            g2, v = _tree.cast(_tree.abs_sq(g), dtype), _tree.cast(v, dtype)
            return v - weight(dtype) * jnp.sign(v - g2) * g2

        v = _tree.map(step, updates, state.ema, owner="scale_by_yogi")
        count = _tree.saturating_increment(state.count)
        return jax.tree.map(debias_step(b2, count), v), EmaState(
            count, _tree.cast_like(v, state.ema)
        )

    return GradientTransformation(init, update)


def _scale_by_yogi(b1, b2, eps, eps_root, *, initial_accumulator_value, mu_dtype):
    # optax starts the first moment at initial_accumulator_value too, and debiases both
    first = first_moment(b1, mu_dtype, initial_value=initial_accumulator_value)
    second = _yogi_second_moment(b2, initial_accumulator_value)
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)
    return in_gradient_dtypes(join(scale, first, second), mu_dtype)


def scale_by_yogi(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-3,
    eps_root: ScalarOrSchedule = 0.0,
    initial_accumulator_value: float = 1e-6,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Yogi's preconditioner: Adam's, with an additive second-moment update.

    .. math::
      v_t = v_{t-1} - (1-\beta_2)\, \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2, \qquad
      \text{out}_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}}
      + \epsilon}

    Adam's :math:`v_t - v_{t-1} = -(1-\beta_2)(v_{t-1} - g_t^2)` moves by a fraction of the
    gap; Yogi's moves by :math:`(1-\beta_2) g_t^2` in the gap's direction, so a burst of large
    gradients cannot shrink the effective learning rate as fast (paper, eq. 2 and Algorithm 2).
    As optax does, both moments start at ``initial_accumulator_value`` and are debiased.
    Complex params: :math:`|g|^2`, real.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-3 (the paper's and optax's).
      eps_root: ε >= 0 inside the root.
      initial_accumulator_value: :math:`m_0 = v_0`, >= 0. Default 1e-6 (the paper's).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_yogi()
      >>> g = {"w": jnp.array([1.0])}
      >>> round(float(tx.update(g, tx.init(g))[0]["w"][0]), 3)  # ~ 1 / (1 + eps)
      0.999

    References:
      Zaheer, Reddi, Sachan, Kale and Kumar, *Adaptive Methods for Nonconvex Optimization*,
      NeurIPS 2018, Algorithm 2.
    """
    owner = "scale_by_yogi"
    build = functools.partial(
        _scale_by_yogi,
        initial_accumulator_value=check_constant(
            owner, "initial_accumulator_value", initial_accumulator_value
        ),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)


# ---- Adan --------------------------------------------------------------------------------


class ScaleByAdanState(NamedTuple):
    """The state of :func:`scale_by_adan`, as optax's (the step count last, named ``t``)."""

    m: Any  # like the params (mu_dtype if given): the average of the gradients
    v: Any  # like the params (mu_dtype if given): the average of the gradients' differences
    n: Any  # like the params' real parts: the average of |g + b2 (g - g_prev)|**2
    g: Any  # like the params: the previous gradient
    t: jax.Array  # int32 []: updates so far, saturating


def _scale_by_adan(b1, b2, b3, eps, eps_root, *, mu_dtype):
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def init(params):
        first = _tree.zeros_like(params, mu_dtype)
        real = _tree.zeros_like(_tree.real_like(params))
        return ScaleByAdanState(first, first, real, _tree.zeros_like(params), _tree.zero_count())

    def update(updates, state, params=None, **extra):
        _tree.check_match("scale_by_adan", (updates, state.g), ("updates", "state"))
        count = _tree.saturating_increment(state.t)
        ema1, ema2, ema3 = ema_step(b1), ema_step(b2), ema_step(b3)
        debias1, debias2, debias3 = (debias_step(b, count) for b in (b1, b2, b3))
        b2_as = per_dtype(lambda dtype: value_as(b2, dtype))
        first_step = state.t == 0

        def step(g, m, v, n, g_prev):
            dtype = _tree.wider(g.dtype, g_prev.dtype)
            if mu_dtype is not None:
                dtype = _tree.wider(dtype, jnp.float32)
            g = _tree.cast(g, dtype)
            # no difference before the second gradient (Algorithm 1 sets g_0 = g_1)
            diff = jnp.where(first_step, jnp.zeros_like(g), g - _tree.cast(g_prev, dtype))
            m, v = ema1(g, m), ema2(diff, v)
            n = ema3(_tree.abs_sq(g + b2_as(dtype) * diff), n)
            direction = debias1(m) + b2_as(m.dtype) * debias2(v)
            return scale(direction, debias3(n)), m, v, n

        out = jax.tree.map(step, updates, state.m, state.v, state.n, state.g)
        parts = [jax.tree.map(lambda _, o, i=i: o[i], updates, out) for i in range(4)]
        new = ScaleByAdanState(
            _tree.cast_like(parts[1], state.m),
            _tree.cast_like(parts[2], state.v),
            _tree.cast_like(parts[3], state.n),
            _tree.cast_like(updates, state.g),
            count,
        )
        return parts[0], new

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_adan(
    b1: ScalarOrSchedule = 0.98,
    b2: ScalarOrSchedule = 0.92,
    b3: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adan's preconditioner: averages of the gradients, of their differences, and of the
    squared Nesterov-extrapolated gradient.

    .. math::
      \Delta_t = g_t - g_{t-1} \;(\Delta_1 = 0), \quad
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) \Delta_t,

      n_t = \beta_3 n_{t-1} + (1-\beta_3) |g_t + \beta_2 \Delta_t|^2, \qquad
      \text{out}_t = \frac{\hat m_t + \beta_2 \hat v_t}{\sqrt{\hat n_t + \epsilon_{root}}
      + \epsilon}

    with hats for Adam's bias corrections. The β's here are optax's decays: the paper's
    :math:`\beta_k` is :math:`1 - b_k` (its Algorithm 1 weighs the difference by
    :math:`1 - \beta_2`, i.e. by ``b2``, as the authors' code does). optax 0.2.8 weighs it by
    ``1 - b2`` instead (its pull request 1715); with ``b2 = 0.5`` the two agree.

    Args:
      b1: decay of the gradients' average, in [0, 1). Default 0.98 (the paper's 0.02).
      b2: decay of the differences' average, in [0, 1). Default 0.92 (the paper's 0.08).
      b3: decay of the squares' average, in [0, 1). Default 0.99 (the paper's 0.01).
      eps: ε >= 0 outside the root. Default 1e-8 (the paper's).
      eps_root: ε >= 0 inside the root.
      mu_dtype: dtype of the two first moments :math:`m, v` (default: the params').

    Returns:
      A :class:`GradientTransformation`; its state is optax's :class:`gradtx.ScaleByAdanState`
      (the previous gradient too).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_adan()
      >>> g = {"w": jnp.array([3.0])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # the first step is g / |g|
      Array([1.], dtype=float32)

    References:
      Xie, Zhou, Li, Lin and Yan, *Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models*, 2022 (TPAMI 2024), Algorithm 1.
    """
    check_range("scale_by_adan", "b3", b3, "in [0, 1)", lambda x: 0 <= x < 1)
    build = functools.partial(
        _scale_by_adan, mu_dtype=check_dtype("scale_by_adan", "mu_dtype", mu_dtype)
    )
    return live("scale_by_adan", build, b1=b1, b2=b2, b3=b3, eps=eps, eps_root=eps_root)
