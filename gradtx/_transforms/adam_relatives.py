"""Adam's later relatives: MADGRAD's dual averaging and MARS's variance-reduced gradient.

MADGRAD keeps sums of the gradients and of their squares weighted by a growing step and moves
the params towards ``x_0`` minus the sum over its cube root; MARS feeds Adam a gradient
corrected by a scaled difference of consecutive gradients. Adam-mini's block-shared second
moment is in ``block_moments``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import MissingArgumentError, check_dtype, check_flag
from gradtx._core.hyper import (
    ScalarOrSchedule,
    live,
    one_minus,
    one_minus_power,
    per_dtype,
    scalar,
    value_as,
)
from gradtx._transforms.adam_family import in_gradient_dtypes
from gradtx._transforms.momentum import debias_step, ema_step
from gradtx._transforms.second_moments import root_scale_step

# ---- MADGRAD -----------------------------------------------------------------------------


class MadgradState(NamedTuple):
    """The state of :func:`gradtx.contrib.scale_by_madgrad`, as optax's."""

    count: jax.Array  # int32 []: updates taken so far
    grad_sum_sq: Any  # like the params' real parts, at least float32: sum of lambda_k |g_k|**2
    s: Any  # like the params, at least float32: sum of lambda_k g_k
    x0: Any  # like the params: the params of the first update (the dual averaging's origin)


def _scale_by_madgrad(learning_rate, momentum, eps):
    owner = "scale_by_madgrad"

    def init(params):
        wide = lambda x: jnp.zeros_like(x, _tree.accumulation_dtype(jnp.result_type(x)))  # noqa: E731
        return MadgradState(
            _tree.zero_count(),
            jax.tree.map(wide, _tree.real_like(params)),
            jax.tree.map(wide, params),
            _tree.zeros_like(params),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the step moves towards z from them)"
            )
        _tree.check_match(owner, (updates, state.x0, params), ("updates", "state", "params"))
        dtype = scalar(learning_rate).dtype
        # lambda_k = (lr + eps) sqrt(k + 1), k the updates before this one
        lam = (scalar(learning_rate) + value_as(eps, dtype)) * jnp.sqrt(
            state.count.astype(dtype) + 1
        )
        lam_as = per_dtype(lambda d: lam.astype(d))
        eps_as = per_dtype(lambda d: value_as(eps, d))
        weight = per_dtype(lambda d: one_minus(momentum, d))
        first = state.count == 0

        def leaf(g, total_sq, total, x0, p):
            dtype = _tree.wider(g.dtype, total.dtype, p.dtype)
            real = _tree.real_dtype(dtype)
            g, p = _tree.cast(g, dtype), _tree.cast(p, dtype)
            x0 = jnp.where(first, p, _tree.cast(x0, dtype))
            total_sq = total_sq + lam_as(real) * _tree.abs_sq(g)
            total = total + _tree.times(g, lam_as(real))
            sigma = jnp.cbrt(total_sq) + eps_as(real)
            # sigma = 0 only where nothing was accumulated (eps = 0): no step there
            empty = sigma == 0
            safe = jnp.where(empty, jnp.ones_like(sigma), sigma)
            z = jnp.where(empty, x0, x0 - _tree.divide(_tree.cast(total, dtype), safe))
            step = _tree.times(z - p, weight(real))
            return step, total_sq, total, x0

        out = jax.tree.map(leaf, updates, state.grad_sum_sq, state.s, state.x0, params)
        pick = lambda i: jax.tree.map(lambda _, r: r[i], updates, out)  # noqa: E731
        new = MadgradState(
            _tree.saturating_increment(state.count),
            _tree.cast_like(pick(1), state.grad_sum_sq),
            _tree.cast_like(pick(2), state.s),
            _tree.cast_like(pick(3), state.x0),
        )
        return _tree.cast_like(pick(0), updates), new

    return GradientTransformation(init, update)


def scale_by_madgrad(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-6,
) -> GradientTransformation:
    r"""MADGRAD's step: dual averaging with a cube-root scaling, momentum as an average.

    With :math:`\lambda_k = (\eta_k + \epsilon)\sqrt{k + 1}` (k = 0 at the first update) and
    :math:`x_0` the params of the first update:

    .. math::
      G_{k+1} = G_k + \lambda_k |g_k|^2, \quad s_{k+1} = s_k + \lambda_k g_k, \quad
      z_{k+1} = x_0 - \frac{s_{k+1}}{G_{k+1}^{1/3} + \epsilon},

    .. math::
      x_{k+1} = \beta x_k + (1 - \beta) z_{k+1}, \qquad \text{out}_k = x_{k+1} - x_k

    (Defazio and Jelassi, 2021, Algorithm 1; momentum β = 1 - c of the paper, and the ε
    added to the learning rate as the authors' code and optax do). The output is the whole
    step, learning rate included: chain nothing that rescales it. Complex params:
    :math:`|g|^2`, real. Sums are kept in at least float32.

    Args:
      learning_rate: η >= 0, a float or a schedule (no default, as in optax).
      momentum: β in [0, 1), the weight of the previous iterate. Default 0.9 (the paper's).
      eps: ε >= 0 on the learning rate and the denominator. Default 1e-6 (the paper's).

    Returns:
      A :class:`GradientTransformation`; its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_madgrad(0.1, eps=0.0)
      >>> p = jnp.array([1.0])
      >>> u, state = tx.update(jnp.array([8.0]), tx.init(p), p)
      >>> u.round(4)  # (1 - 0.9) * (-(0.1 * 8) / (0.1 * 64) ** (1/3))
      Array([-0.0431], dtype=float32)

    References:
      Defazio and Jelassi, *Adaptivity without Compromise: A Momentumized, Adaptive, Dual
      Averaged Gradient Method for Stochastic Optimization*, JMLR 2022 (arXiv:2101.11075),
      Algorithm 1.
    """
    return live(
        "scale_by_madgrad",
        _scale_by_madgrad,
        learning_rate=learning_rate,
        momentum=momentum,
        eps=eps,
    )


# ---- MARS --------------------------------------------------------------------------------


class ScaleByMarsState(NamedTuple):
    count: jax.Array  # int32 []: updates taken so far
    mu: Any  # like the params (mu_dtype if given): the average of the corrected gradients
    nu: Any  # like the params' real parts: the average of their squares
    grad: Any  # like the params: the previous gradient (zeros before the first); () for
    #            the leaves MARS gives to AdamW


def _scale_by_mars(b1, b2, eps, eps_root, gamma, *, mu_dtype, debias_eps, corrected=True):
    """MARS's preconditioner; ``corrected=False``: Adam's on the raw gradient (MARS's leaves
    of rank < 2), with the same ``debias_eps``, keeping no previous gradient."""
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def init(params):
        return ScaleByMarsState(
            _tree.zero_count(),
            _tree.zeros_like(params, mu_dtype),
            _tree.zeros_like(_tree.real_like(params)),
            _tree.zeros_like(params) if corrected else (),
        )

    def update(updates, state, params=None, **extra):
        _tree.check_match("scale_by_mars", (updates, state.mu), ("updates", "state"))
        count = _tree.saturating_increment(state.count)
        ema1, ema2 = ema_step(b1), ema_step(b2)
        debias1, debias2 = debias_step(b1, count), debias_step(b2, count)
        # gamma b1 / (1 - b1), from the once-rounded 1 - b1
        dtype = scalar(b1).dtype
        coef = value_as(gamma, dtype) * value_as(b1, dtype) / one_minus(b1, dtype)
        coef_as = per_dtype(lambda d: coef.astype(d))
        root_bc2 = per_dtype(lambda d: jnp.sqrt(one_minus_power(b2, count)).astype(d))
        eps_as = per_dtype(lambda d: value_as(eps, d))
        eps_root_as = per_dtype(lambda d: value_as(eps_root, d))

        def leaf(g, m, v, g_prev=None):
            dtype = g.dtype if g_prev is None else _tree.wider(g.dtype, g_prev.dtype)
            if mu_dtype is not None:
                dtype = _tree.wider(dtype, jnp.float32)
            c = _tree.cast(g, dtype)
            if corrected:
                real = _tree.real_dtype(dtype)
                c = c + _tree.times(c - _tree.cast(g_prev, dtype), coef_as(real))
                norm = jnp.sqrt(jnp.sum(_tree.abs_sq(c)))
                c = _tree.divide(c, jnp.maximum(norm, jnp.ones_like(norm)))
            m, v = ema1(c, m), ema2(_tree.abs_sq(c), v)
            if not debias_eps:
                return scale(debias1(m), debias2(v)), m, v
            # pytorch-optimizer's: (sqrt(v + eps_root) + eps) / sqrt(1 - b2^t)
            work = _tree.accumulation_dtype(_tree.wider(m.dtype, v.dtype))
            real = _tree.real_dtype(work)
            root = jnp.sqrt(_tree.cast(v, real) + eps_root_as(real)) + eps_as(real)
            out = _tree.divide(_tree.cast(debias1(m), work), root / root_bc2(real))
            return _tree.cast(out, _tree.wider(m.dtype, v.dtype)), m, v

        rest = (state.grad,) if corrected else ()
        out = jax.tree.map(leaf, updates, state.mu, state.nu, *rest)
        pick = lambda i: jax.tree.map(lambda _, r: r[i], updates, out)  # noqa: E731
        new = ScaleByMarsState(
            count,
            _tree.cast_like(pick(1), state.mu),
            _tree.cast_like(pick(2), state.nu),
            _tree.cast_like(updates, state.grad) if corrected else (),
        )
        return pick(0), new

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_mars(
    b1: ScalarOrSchedule = 0.95,
    b2: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    gamma: ScalarOrSchedule = 0.025,
    eps_root: ScalarOrSchedule = 0.0,
    *,
    debias_eps: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""MARS's preconditioner: Adam's, fed a variance-reduced gradient.

    Per leaf, with :math:`g_0 = 0`:

    .. math::
      c_t = g_t + \gamma \frac{\beta_1}{1 - \beta_1} (g_t - g_{t-1}), \quad
      \tilde c_t = \frac{c_t}{\max(1, \|c_t\|)},

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) \tilde c_t, \quad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) |\tilde c_t|^2, \qquad
      \text{out}_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}}
      + \epsilon}

    (Yuan et al., 2024, Algorithm 2, MARS-AdamW with the approximate correction, which reuses
    the previous step's gradient instead of a second gradient evaluation; the norm is the
    leaf's, as in the authors' code). timm starts with :math:`c_1 = g_1`; the authors' code
    and pytorch-optimizer, followed here, with :math:`g_0 = 0`.

    Args:
      b1: β₁ in [0, 1). Default 0.95 (the paper's).
      b2: β₂ in [0, 1). Default 0.99 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-8.
      gamma: γ >= 0, the weight of the gradient correction. Default 0.025 (the paper's).
      eps_root: ε >= 0 inside the root. Default 0 (the authors').
      debias_eps: add both ε's before the second moment's bias correction, i.e. divide by
        :math:`(\sqrt{v_t + \epsilon_{root}} + \epsilon) / \sqrt{1-\beta_2^t}`
        (pytorch-optimizer's ``MARS``, with its ``eps_root`` of 1e-15). Default False (the
        authors' code, Adam's form above).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its state keeps the previous gradient.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_mars()
      >>> g = {"w": jnp.array([0.3, -0.4])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # ||c_1|| = 0.5 * 1.475 < 1: Adam's step
      Array([ 1., -1.], dtype=float32)

    References:
      Yuan, Liu, Wu, Zhou and Gu, *MARS: Unleashing the Power of Variance Reduction for
      Training Large Models*, ICML 2025 (arXiv:2411.10438), Algorithm 2.
    """
    owner = "scale_by_mars"
    build = functools.partial(
        _scale_by_mars,
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        debias_eps=check_flag(owner, "debias_eps", debias_eps),
    )
    return live("scale_by_mars", build, b1=b1, b2=b2, eps=eps, eps_root=eps_root, gamma=gamma)
