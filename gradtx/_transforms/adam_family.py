"""Adam's relatives: Adamax, AMSGrad, RAdam, and NAdam with PyTorch's momentum schedule.

Each is Adam's preconditioner (a debiased first moment over a root of a second one) with one
piece changed: the second-moment rule (an infinity norm, a running maximum, an additive
update, the variance of the prediction error), a rectification of the step, or a third
moment. The pieces Adam already has (``_ema``, ``_second_moment``, ``root_scale_step``) are
reused; only the new math is written here.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.combine import chain, join
from gradtx._core.hyper import ScalarOrSchedule, Value, live, one_minus, per_dtype, scalar, value_as
from gradtx._transforms.moment_storage import _in_gradient_dtypes, _widened
from gradtx._transforms.momentum import (
    BiasCorrectionState,
    EmaState,
    _bias_correction,
    _ema,
    ema_step,
)
from gradtx._transforms.second_moments import (
    _computed_dtype,
    _relayout,
    _second_moment,
    root_scale_step,
)

# ---- shared pieces -----------------------------------------------------------------------


def first_moment(b1: Value, mu_dtype: Any, **kwargs: Any) -> GradientTransformation:
    """Adam's debiased first moment, stored in ``mu_dtype`` (fed in at least float32 then)."""
    tx = _ema(b1, accumulator_dtype=mu_dtype, **kwargs)
    return tx if mu_dtype is None else _widened(tx)


def in_gradient_dtypes(tx: GradientTransformation, mu_dtype: Any) -> GradientTransformation:
    """With a ``mu_dtype``, the update rounded once to each gradient's dtype, as Adam does."""
    return tx if mu_dtype is None else _in_gradient_dtypes(tx)


def _divide_step(m: jax.Array, u: jax.Array) -> jax.Array:
    """``m / u`` for a positive real ``u``, computed in at least float32, in ``m``'s dtype."""
    dtype = _computed_dtype(m.dtype, u.dtype)
    out = _tree.divide(_tree.cast(m, dtype), _tree.cast(u, _tree.real_dtype(dtype)))
    return _tree.cast(out, m.dtype)


# ---- Adamax ------------------------------------------------------------------------------


class InfinityMomentState(NamedTuple):
    nu: Any  # like the params' real parts: the decayed running maximum of |g|


def _infinity_moment(b2: Value, eps: Value) -> GradientTransformation:
    """``u_t = max(b2 u_{t-1}, |g_t| + eps)``, in at least float32 (in float16 ``eps`` is 0)."""

    def init(params):
        return InfinityMomentState(_tree.zeros_like(_tree.real_like(params)))

    def update(updates, state, params=None, **extra):
        scalars = per_dtype(lambda dtype: (value_as(b2, dtype), value_as(eps, dtype)))

        def step(g, u):
            dtype = _tree.accumulation_dtype(_tree.wider(_tree.real_dtype(g.dtype), u.dtype))
            decay, e = scalars(dtype)
            return jnp.maximum(decay * _tree.cast(u, dtype), jnp.abs(g).astype(dtype) + e)

        nu = _tree.map(step, updates, state.nu, owner="scale_by_adamax")
        return nu, InfinityMomentState(_tree.cast_like(nu, state.nu))

    return GradientTransformation(init, update)


def _scale_by_adamax(b1, b2, eps, *, mu_dtype=None):
    moments = join(_divide_step, first_moment(b1, mu_dtype), _infinity_moment(b2, eps))
    return in_gradient_dtypes(moments, mu_dtype)


def scale_by_adamax(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adamax's preconditioner: Adam's first moment over a decayed infinity norm.

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
      u_t = \max(\beta_2 u_{t-1},\, |g_t| + \epsilon), \quad
      \text{out}_t = \frac{m_t}{(1-\beta_1^t)\, u_t}

    The paper's :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)` (Algorithm 2) with ε inside the
    maximum, so that a zero gradient never divides by 0: optax's and PyTorch's placement. For
    complex params :math:`|g|` is the modulus and :math:`u` is real.

    Args:
      b1: β₁ in [0, 1), the decay of the first moment. Default 0.9 (the paper's).
      b2: β₂ in [0, 1), the decay of the running maximum. Default 0.999 (the paper's).
      eps: ε >= 0, added to :math:`|g|` inside the maximum. Default 1e-8 (optax's, PyTorch's).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_adamax()
      >>> g = {"w": jnp.array([2.0, -0.5])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # the first step is g / |g|
      Array([ 1., -1.], dtype=float32)

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, 2014, section 7.1 and
      Algorithm 2.
    """
    build = functools.partial(
        _scale_by_adamax, mu_dtype=check_dtype("scale_by_adamax", "mu_dtype", mu_dtype)
    )
    return live("scale_by_adamax", build, b1=b1, b2=b2, eps=eps)


# ---- AMSGrad -----------------------------------------------------------------------------


class ScaleByAmsgradState(NamedTuple):
    """The state of :func:`scale_by_amsgrad`, as optax's: one step count for both moments."""

    count: jax.Array  # int32 []: updates so far (both moments' bias correction), saturating
    mu: Any  # like the params (mu_dtype if given): the first moment
    nu: Any  # like the params' real parts: the second moment of |g|
    nu_max: Any  # like nu: the running maximum of the (debiased, unless debias_after_max) nu


class RunningMaxState(NamedTuple):
    nu_max: Any  # like the incoming (real) moment: its elementwise maximum so far


def _running_max() -> GradientTransformation:
    """The elementwise maximum of everything it has been fed (starting from 0)."""

    def init(params):
        return RunningMaxState(_tree.zeros_like(_tree.real_like(params)))

    def update(updates, state, params=None, **extra):
        def step(v, old):
            dtype = _tree.wider(v.dtype, old.dtype)
            return jnp.maximum(_tree.cast(v, dtype), _tree.cast(old, dtype))

        nu_max = _tree.map(step, updates, state.nu_max, owner="scale_by_amsgrad")
        return nu_max, RunningMaxState(_tree.cast_like(nu_max, state.nu_max))

    return GradientTransformation(init, update)


def _scale_by_amsgrad(
    b1, b2, eps, eps_root, *, mu_dtype, bias_correction_mu, bias_correction_nu, debias_after_max
):
    if debias_after_max:
        # PyTorch: the maximum of the raw second moments, then divided by 1 - b2**t
        nu = chain(_second_moment(b2, debias=False), _running_max(), _bias_correction(b2))
    else:
        nu = chain(_second_moment(b2, debias=bias_correction_nu), _running_max())
    first = first_moment(b1, mu_dtype, debias=bias_correction_mu)
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def unpack(s):
        after = (BiasCorrectionState(s.count),) if debias_after_max else ()
        moment = ((EmptyState(), EmaState(s.count, s.nu)), RunningMaxState(s.nu_max), *after)
        return EmaState(s.count, s.mu), moment

    moments = _relayout(
        join(scale, first, nu),
        ScaleByAmsgradState,
        lambda s: ScaleByAmsgradState(s[0].count, s[0].ema, s[1][0][1].ema, s[1][1].nu_max),
        unpack,
    )
    return in_gradient_dtypes(moments, mu_dtype)


def check_amsgrad_flags(owner, bias_correction_mu, bias_correction_nu, debias_after_max):
    flags = dict(
        bias_correction_mu=check_flag(owner, "bias_correction_mu", bias_correction_mu),
        bias_correction_nu=check_flag(owner, "bias_correction_nu", bias_correction_nu),
        debias_after_max=check_flag(owner, "debias_after_max", debias_after_max),
    )
    if flags["debias_after_max"] and not flags["bias_correction_nu"]:
        raise ValueError(
            f"{owner}: debias_after_max=True debiases the second moment, which "
            f"bias_correction_nu=False turns off; set one of them"
        )
    return flags


def scale_by_amsgrad(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    debias_after_max: bool = False,
) -> GradientTransformation:
    r"""AMSGrad's preconditioner: Adam's, over the running maximum of the second moment.

    .. math::
      \hat v^{\max}_t = \max(\hat v^{\max}_{t-1}, \hat v_t), \qquad
      \text{out}_t = \hat m_t / (\sqrt{\hat v^{\max}_t + \epsilon_{root}} + \epsilon)

    with :math:`\hat m_t, \hat v_t` Adam's moments, debiased unless ``bias_correction_mu`` /
    ``bias_correction_nu`` is False (the paper's Algorithm 2 debiases neither). The maximum
    never lets the step size grow, which restores Adam's convergence proof. With
    ``debias_after_max=True`` the maximum is of the raw :math:`v_t`, divided by
    :math:`1 - \beta_2^t` after: ``torch.optim.Adam(amsgrad=True)``'s form (it differs from
    optax's once :math:`v_t` falls).

    Args:
      b1: β₁ in [0, 1). Default 0.9.
      b2: β₂ in [0, 1). Default 0.999.
      eps: ε >= 0 outside the root. Default 1e-8 (optax's and PyTorch's defaults throughout).
      eps_root: ε >= 0 inside the root.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      bias_correction_mu: debias the first moment.
      bias_correction_nu: debias the second moment before the maximum (optax's form).
      debias_after_max: PyTorch's form (needs ``bias_correction_nu``).

    Returns:
      A :class:`GradientTransformation`; its state is optax's :class:`gradtx.ScaleByAmsgradState`
      (one step count for both moments).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_amsgrad()
      >>> state = tx.init({"w": jnp.zeros(1)})
      >>> u, state = tx.update({"w": jnp.array([10.0])}, state)
      >>> u, state = tx.update({"w": jnp.array([0.1])}, state)
      >>> round(float(u["w"][0]), 4)  # the large first gradient still sets the denominator
      0.4789

    References:
      Reddi, Kale and Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018, Algorithm 2.
    """
    owner = "scale_by_amsgrad"
    build = functools.partial(
        _scale_by_amsgrad,
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        **check_amsgrad_flags(owner, bias_correction_mu, bias_correction_nu, debias_after_max),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)


# ---- RAdam -------------------------------------------------------------------------------


# the series' terms are B_2k x**(2k-1) / (2k)!; from B_12 on they are below 1e-13 relative for
# x < 1/2, where the series is used
_TAIL = (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160, 691 / (2730 * math.factorial(12)))


def _bernoulli_tail(x: jax.Array) -> jax.Array:
    """``1 / expm1(x) - 1 / x + 1/2`` for ``x >= 0``, without the cancellation of that form near
    0 (its Taylor series in the Bernoulli numbers there)."""
    y = x * x
    series = _TAIL[-1]
    for c in reversed(_TAIL[:-1]):  # alternating signs: c0 - y (c1 - y (c2 - ...))
        series = c - y * series
    series = x * series
    return jnp.where(x < 0.5, series, 1 / jnp.expm1(x) - 1 / x + 0.5)


def rectification(b2: Value, count: jax.Array) -> tuple[jax.Array, jax.Array]:
    """RAdam's ``(rho_t, r_t)`` at step ``count``, in the hyperparameter's precision.

    ``rho_t = rho_inf - 2 t b2**t / (1 - b2**t)`` subtracts two numbers near ``2 / (1 - b2)``
    while ``rho_t`` is small: in float32 at ``b2 = 0.999``, ``t = 6`` that form loses 1e-4 of
    ``r_t``. With ``b2 = exp(-L)`` it is ``t + 2 B(L) - 2 t B(t L)``, ``B`` the smooth tail of
    ``1 / expm1``, exact to rounding there; for ``t L >= 1/2`` the plain form no longer cancels.
    """
    dtype = scalar(b2).dtype
    complement = one_minus(b2, dtype)
    log_b2 = -jnp.log1p(-complement)
    t = count.astype(dtype)
    rho_inf = 2 / complement - 1
    x = t * log_b2
    near = t + 2 * _bernoulli_tail(log_b2) - 2 * t * _bernoulli_tail(x)
    far = rho_inf - 2 * t / jnp.expm1(x)
    rho = jnp.where(x < 0.5, near, far)
    r = jnp.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    return rho, r


class ScaleByRadamState(NamedTuple):
    mu: EmaState  # the first moment (its count is the step)
    nu: EmaState  # like the params' real parts: the second moment of |g|**2


def _scale_by_radam(b1, b2, eps, eps_root, threshold, *, nesterov, mu_dtype):
    first = first_moment(b1, mu_dtype, nesterov=nesterov)
    second = _second_moment(b2, debias=True)
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def init(params):
        return ScaleByRadamState(first.init(params), second.init(params))

    def update(updates, state, params=None, **extra):
        m, mu = first.update(updates, state.mu, params)
        v, nu = second.update(updates, state.nu, params)
        rho, r = rectification(b2, mu.count)
        rectified = rho >= value_as(threshold, rho.dtype)
        r_as = per_dtype(lambda dtype: _tree.cast(r, _tree.real_dtype(dtype)))

        def step(m, v):
            adaptive = scale(m, v)
            plain = _tree.cast(m, adaptive.dtype)  # below the threshold: momentum SGD's step
            return jnp.where(rectified, _tree.times(adaptive, r_as(adaptive.dtype)), plain)

        return jax.tree.map(step, m, v), ScaleByRadamState(mu, nu)

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_radam(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    threshold: ScalarOrSchedule = 5.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Rectified Adam's preconditioner: Adam's step, rectified while its variance is intractable.

    .. math::
      \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
      \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t}, \quad
      r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}},
      \qquad
      \text{out}_t = \begin{cases} r_t\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}}
      + \epsilon) & \rho_t \ge \text{threshold} \\ \hat m_t & \text{otherwise}\end{cases}

    (eq. 6 and Algorithm 2 of the paper; :math:`\rho_t` is the length of the approximated
    simple moving average). Below the threshold the step is momentum SGD's: the adaptive
    learning rate's variance is not yet finite. :math:`\rho_t` is formed without cancellation
    (see :func:`rectification`), so float32 gives float64's :math:`r_t` to rounding.

    ``torch.optim.RAdam`` is this with ``threshold=5`` (it compares with ``>``, which differs
    only where :math:`\rho_t` is exactly 5) and ε added to :math:`\sqrt{v_t}` before debiasing,
    i.e. :math:`\epsilon / \sqrt{1-\beta_2^t}` here, a difference below 1e-8 relative for
    gradients of order 1.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root.
      threshold: the :math:`\rho_t` from which the step is rectified, >= 0. Default 5 (the
        paper's code, optax's and PyTorch's; the paper's text says 4).
      nesterov: use NAdam's first moment (as :func:`scale_by_adam`).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_radam()
      >>> g = {"w": jnp.array([2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # step 1: rho_1 = 1: the first moment
      Array([2.], dtype=float32)

    References:
      Liu, Jiang, He, Chen, Liu, Gao and Han, *On the Variance of the Adaptive Learning Rate
      and Beyond*, ICLR 2020, eq. 6 and Algorithm 2.
    """
    owner = "scale_by_radam"
    build = functools.partial(
        _scale_by_radam,
        nesterov=check_flag(owner, "nesterov", nesterov),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root, threshold=threshold)


# ---- NAdam with PyTorch's momentum schedule ----------------------------------------------


class ScheduledNesterovState(NamedTuple):
    count: jax.Array  # int32 []: updates so far
    mu_product: jax.Array  # [] in the default float dtype: the product of the momenta so far
    ema: Any  # like the params (mu_dtype if given): the average of the gradients


def scheduled_nesterov_moment(b1: Value, momentum_decay: Value, mu_dtype: Any = None):
    r"""Dozat's Nesterov first moment with the momentum schedule
    :math:`\mu_t = \beta_1 (1 - \tfrac12 0.96^{t \psi})` (PyTorch's NAdam; ψ is
    ``momentum_decay``): out = :math:`\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i} g_t +
    \frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i} m_t`, with :math:`m_t` the EMA of decay β₁."""

    def init(params):
        return ScheduledNesterovState(
            _tree.zero_count(), jnp.ones([], scalar(b1).dtype), _tree.zeros_like(params, mu_dtype)
        )

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        dtype = state.mu_product.dtype
        t = count.astype(dtype)
        log_decay = math.log(0.96) * value_as(momentum_decay, dtype)
        b = value_as(b1, dtype)
        mu_now = b * (1 - 0.5 * jnp.exp(t * log_decay))
        mu_next = b * (1 - 0.5 * jnp.exp((t + 1) * log_decay))
        product = state.mu_product * mu_now
        weights = per_dtype(
            lambda d: (
                _tree.cast((1 - mu_now) / (1 - product), d),
                _tree.cast(mu_next / (1 - product * mu_next), d),
            )
        )
        average = _tree.map(ema_step(b1), updates, state.ema, owner="momentum schedule")

        def out(g, m):
            now, ahead = weights(m.dtype)
            return now * _tree.cast(g, m.dtype) + ahead * m

        new = ScheduledNesterovState(count, product, _tree.cast_like(average, state.ema))
        return jax.tree.map(out, updates, average), new

    return GradientTransformation(init, update)


def scale_by_nadam_scheduled(b1, b2, eps, eps_root, momentum_decay, *, mu_dtype=None):
    """NAdam's preconditioner with PyTorch's momentum schedule (for :func:`gradtx.nadam`)."""
    first = scheduled_nesterov_moment(b1, momentum_decay, mu_dtype)
    first = first if mu_dtype is None else _widened(first)
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)
    return in_gradient_dtypes(join(scale, first, _second_moment(b2, debias=True)), mu_dtype)
