"""The preconditioners of Adam's recent descendants: AdEMAMix (and its simplified form), LaProp
and StableAdamW (ADOPT and ACProp, whose denominator is the previous step's, are in
``asynchronous_moments``).

Each changes one thing in Adam's recipe: how many first moments are mixed (a fast and a slow
one: AdEMAMix), what the momentum averages (the normalized gradient: LaProp), or a per-leaf cap
on the step (StableAdamW). Complex params: first moments complex, second moments real, of
``|g|**2``. The helpers here (moment dtypes, per-leaf maps) serve both modules.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype
from gradtx._core.combine import check_mask
from gradtx._core.hyper import ScalarOrSchedule, live, per_dtype, value_as
from gradtx._transforms.adam_family import in_gradient_dtypes
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.momentum import debias_step, ema_step, trace_step
from gradtx._transforms.second_moments import root_scale_step

_NON_NEGATIVE = (">= 0", lambda v: v >= 0)


def _moment_dtype(g: jax.Array, m: jax.Array, mu_dtype: Any) -> Any:
    """The dtype a first moment is updated in: the wider of the gradient's and the moment's,
    at least float32 when the moment is stored narrow (``mu_dtype``)."""
    dtype = _tree.wider(g.dtype, m.dtype)
    return dtype if mu_dtype is None else _tree.wider(dtype, jnp.float32)


def _map_moments(owner: str, step, updates, moments: tuple, n_out: int = 1):
    """``step(g, *moments) -> (*outputs, *new moments)`` leaf by leaf, after checking the trees
    match: the outputs as trees, then the new moments cast to their stored dtypes."""
    _tree.check_match(owner, (updates, *moments), ("updates",) + ("state",) * len(moments))
    out = jax.tree.map(step, updates, *moments)
    parts = [
        jax.tree.map(lambda _, o, i=i: o[i], updates, out) for i in range(n_out + len(moments))
    ]
    return *parts[:n_out], *(_tree.cast_like(x, old) for x, old in zip(parts[n_out:], moments))


def _init_moments(params, mu_dtype, n_first: int = 1):
    """Zero first moments (in ``mu_dtype``) and a zero real second moment."""
    firsts = [_tree.zeros_like(params, mu_dtype) for _ in range(n_first)]
    return (_tree.zero_count(), *firsts, _tree.zeros_like(_tree.real_like(params)))


# ---- AdEMAMix ----------------------------------------------------------------------------


class ScaleByAdemamixState(NamedTuple):
    """The state of :func:`scale_by_ademamix`, as optax's."""

    count: jax.Array  # int32 []: updates so far (the fast average's and nu's bias correction)
    count_m2: jax.Array  # int32 []: the slow average's updates so far (optax reads b3's and
    # alpha's schedules at it; gradtx at the table's count, the same number)
    m1: Any  # like the params (mu_dtype if given): the fast average of the gradients (b1)
    m2: Any  # like the params (mu_dtype if given): the slow average of the gradients (b3)
    nu: Any  # like the params' real parts: the average of |g|**2

    # the weight of the slow average: >= 0
    live_ranges = {"alpha": _NON_NEGATIVE}


def _scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, *, mu_dtype):
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def init(params):
        count, m1, m2, nu = _init_moments(params, mu_dtype, 2)
        return ScaleByAdemamixState(count, _tree.zero_count(), m1, m2, nu)

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        count_m2 = _tree.saturating_increment(state.count_m2)
        ema1, ema2, ema3 = ema_step(b1), ema_step(b2), ema_step(b3)
        debias1, debias2 = debias_step(b1, count), debias_step(b2, count)
        alpha_as = per_dtype(lambda dtype: value_as(alpha, dtype))

        def step(g, m1, m2, v):
            dtype = _moment_dtype(g, m1, mu_dtype)
            m1, m2 = ema1(_tree.cast(g, dtype), m1), ema3(_tree.cast(g, dtype), m2)
            v = ema2(_tree.abs_sq(g), v)
            mix = debias1(m1) + _tree.times(m2, alpha_as(_tree.real_dtype(dtype)))
            return scale(mix, debias2(v)), m1, m2, v

        moments = (state.m1, state.m2, state.nu)
        direction, m1, m2, nu = _map_moments("scale_by_ademamix", step, updates, moments)
        return direction, ScaleByAdemamixState(count, count_m2, m1, m2, nu)

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_ademamix(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdEMAMix's preconditioner: Adam's, with a slow average of the gradients mixed in.

    .. math::
      m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t, \quad
      m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t, \quad
      \text{out}_t = \frac{\hat m^{(1)}_t + \alpha\, m^{(2)}_t}
      {\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with Adam's debiased :math:`\hat m^{(1)}, \hat v`; the slow average is not debiased. See
    :func:`gradtx.ademamix` for the warmup schedules of α and β₃.

    Args:
      b1: β₁ in [0, 1), the fast average's decay. Default 0.9.
      b2: β₂ in [0, 1). Default 0.999.
      b3: β₃ in [0, 1), the slow average's decay. Default 0.9999 (the paper's).
      alpha: α >= 0, the slow average's weight. Default 6.0 (optax's for this function; its
        ``ademamix`` uses 5.0).
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the two first moments (default: the params'); optax stores the
        second moment in it too, gradtx in the params' (real) dtype.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_ademamix(alpha=5.0)
      >>> g = {"w": jnp.array([1.0])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # 1 + alpha (1 - b3)
      Array([1.0005], dtype=float32)

    References:
      Pagliardini, Ablin and Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR
      2025 (arXiv:2409.03137), Algorithm 1.
    """
    build = functools.partial(
        _scale_by_ademamix, mu_dtype=check_dtype("scale_by_ademamix", "mu_dtype", mu_dtype)
    )
    return live(
        "scale_by_ademamix",
        build,
        ranges=ScaleByAdemamixState.live_ranges,
        b1=b1,
        b2=b2,
        b3=b3,
        alpha=alpha,
        eps=eps,
        eps_root=eps_root,
    )


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """The state of :func:`scale_by_simplified_ademamix`, as optax's."""

    t: jax.Array  # int32 []: updates so far (the bias correction's step), saturating
    m: Any  # like the params (mu_dtype if given): the heavy-ball sum of the gradients
    n: Any  # like the params' real parts: the average of |g|**2

    live_ranges = {"alpha": _NON_NEGATIVE}


def _scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root, *, mu_dtype):
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def init(params):
        return ScaleBySimplifiedAdEMAMixState(*_init_moments(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.t)
        heavy_ball, ema2, debias2 = trace_step(b1), ema_step(b2), debias_step(b2, count)
        alpha_as = per_dtype(lambda dtype: value_as(alpha, dtype))

        def step(g, m, v):
            dtype = _moment_dtype(g, m, mu_dtype)
            g = _tree.cast(g, dtype)
            m = heavy_ball(g, m)
            v = ema2(_tree.abs_sq(g), v)
            return scale(m + _tree.times(g, alpha_as(_tree.real_dtype(dtype))), debias2(v)), m, v

        owner = "scale_by_simplified_ademamix"
        direction, m, nu = _map_moments(owner, step, updates, (state.m, state.n))
        return direction, ScaleBySimplifiedAdEMAMixState(count, m, nu)

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_simplified_ademamix(
    b1: ScalarOrSchedule = 0.99,
    b2: ScalarOrSchedule = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Simplified AdEMAMix's preconditioner: one heavy-ball momentum plus α times the gradient.

    .. math::
      m_t = \beta_1 m_{t-1} + g_t, \qquad
      \text{out}_t = \frac{m_t + \alpha g_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with Adam's debiased :math:`\hat v`; the momentum is a sum, not an average (the authors'
    default, "theory style", without its bias correction). See
    :func:`gradtx.simplified_ademamix`.

    Args:
      b1: β₁ in [0, 1). Default 0.99 (the authors').
      b2: β₂ in [0, 1). Default 0.95 (the authors').
      alpha: α >= 0, the weight of the current gradient. Default 0 (the authors').
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the momentum (default: the params'; optax has no such argument).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_simplified_ademamix(alpha=1.0)
      >>> g = {"w": jnp.array([3.0])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # (g + alpha g) / |g|
      Array([2.], dtype=float32)

    References:
      Morwani, Vyas, Zhang and Kakade, *Connections between Schedule-Free
      Optimizers, AdEMAMix, and Accelerated SGD Variants*, 2025 (arXiv:2502.02431), section 4.
    """
    owner = "scale_by_simplified_ademamix"
    build = functools.partial(
        _scale_by_simplified_ademamix, mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype)
    )
    return live(
        owner,
        build,
        ranges=ScaleBySimplifiedAdEMAMixState.live_ranges,
        b1=b1,
        b2=b2,
        alpha=alpha,
        eps=eps,
        eps_root=eps_root,
    )


# ---- LaProp ------------------------------------------------------------------------------


class ScaleByLapropState(NamedTuple):
    count: jax.Array  # int32 []: updates so far
    mu: Any  # like the params (mu_dtype if given): the average of the normalized gradients
    nu: Any  # like the params' real parts: the average of |g|**2


def _scale_by_laprop(b1, b2, eps, eps_root, *, mu_dtype):
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)

    def init(params):
        return ScaleByLapropState(*_init_moments(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        ema1, ema2 = ema_step(b1), ema_step(b2)
        debias1, debias2 = debias_step(b1, count), debias_step(b2, count)

        def step(g, m, v):
            v = ema2(_tree.abs_sq(g), v)
            normed = _tree.cast(scale(g, debias2(v)), _moment_dtype(g, m, mu_dtype))
            m = ema1(normed, m)
            return debias1(m), m, v

        direction, mu, nu = _map_moments("scale_by_laprop", step, updates, (state.mu, state.nu))
        return direction, ScaleByLapropState(count, mu, nu)

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_laprop(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-15,
    eps_root: ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""LaProp's preconditioner: the momentum of the gradient normalized by its second moment.

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1)\, \frac{g_t}{\sqrt{\hat v_t + \epsilon_{root}}
      + \epsilon}, \qquad \text{out}_t = \frac{m_t}{1-\beta_1^t}

    Adam normalizes the momentum; LaProp takes the momentum of normalized gradients, so that
    β₁ and β₂ no longer need :math:`\beta_1 < \sqrt{\beta_2}`. See :func:`gradtx.laprop`.

    Args:
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-15 (the authors' and pytorch-optimizer's).
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_laprop()
      >>> g = {"w": jnp.array([-4.0])}
      >>> tx.update(g, tx.init(g))[0]["w"].round(4)  # the first step is g / |g|
      Array([-1.], dtype=float32)

    References:
      Ziyin, Wang and Ueda, *LaProp: Separating Momentum and Adaptivity in Adam*, 2020
      (arXiv:2002.04839), Algorithm 1.
    """
    build = functools.partial(
        _scale_by_laprop, mu_dtype=check_dtype("scale_by_laprop", "mu_dtype", mu_dtype)
    )
    return live("scale_by_laprop", build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)


# ---- StableAdamW -------------------------------------------------------------------------


class ScaleByStableAdamwState(NamedTuple):
    count: jax.Array  # int32 []: updates so far
    mu: Any  # like the params (mu_dtype if given): the average of the gradients
    nu: Any  # like the params' real parts: the average of |g|**2
    decay: Any  # the weight decay's state (empty, or a mask's); () without a decay


def _update_cap(g: jax.Array, total: jax.Array, axes: tuple[str, ...] | None) -> jax.Array:
    """``max(1, sqrt(mean(...)))`` of a leaf from this shard's ``total`` of the ratios, the
    sum and the count taken over the shards of ``axes`` (an empty leaf's mean is 0)."""
    total = _tree.shard_sum([total], [g], axes)
    count = _tree.shard_sum([jnp.asarray(g.size, total.dtype)], [g], axes)
    return jnp.maximum(jnp.sqrt(total / jnp.maximum(count, 1)), 1)


def _scale_by_stable_adamw(b1, b2, eps, weight_decay, mask, *, axes, mu_dtype):
    scale = root_scale_step(eps, eps_in_sqrt=False)
    decay = None if weight_decay is None else _add_decayed_weights(weight_decay, mask)

    def init(params):
        decay_state = () if decay is None else decay.init(params)
        return ScaleByStableAdamwState(*_init_moments(params, mu_dtype), decay_state)

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        ema1, ema2 = ema_step(b1), ema_step(b2)
        debias1, debias2 = debias_step(b1, count), debias_step(b2, count)
        floor = per_dtype(lambda dtype: value_as(eps, dtype) ** 2)

        def step(g, m, v):
            m = ema1(_tree.cast(g, _moment_dtype(g, m, mu_dtype)), m)
            v = ema2(_tree.abs_sq(g), v)
            v_hat = debias2(v)
            calc = _tree.accumulation_dtype(v_hat.dtype)
            e2 = floor(calc)
            ratio = _tree.cast(_tree.abs_sq(g), calc) / jnp.maximum(_tree.cast(v_hat, calc), e2)
            return scale(debias1(m), v_hat), jnp.sum(ratio), m, v

        moments = (state.mu, state.nu)
        direction, total, mu, nu = _map_moments("scale_by_stable_adamw", step, updates, moments, 2)
        factor = jax.tree.map(lambda g, t: _update_cap(g, t, axes), updates, total)
        decay_state = state.decay
        if decay is not None:
            direction, decay_state = decay.update(direction, decay_state, params)

        def clipped(d, f):
            return _tree.cast(_tree.divide(d, _tree.cast(f, _tree.real_dtype(d.dtype))), d.dtype)

        new = ScaleByStableAdamwState(count, mu, nu, decay_state)
        return jax.tree.map(clipped, direction, factor), new

    return in_gradient_dtypes(GradientTransformation(init, update), mu_dtype)


def scale_by_stable_adamw(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule | None = None,
    mask: Any = None,
    *,
    axis_name: Any = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""StableAdamW's step before the learning rate: AdamW's, divided per leaf by the RMS of
    :math:`g^2 / \hat v` where that exceeds 1.

    .. math::
      \text{RMS}_t = \sqrt{\operatorname{mean}_{\text{leaf}}\, g_t^2 / \max(\hat v_t,
      \epsilon^2)}, \qquad
      \text{out}_t = \frac{1}{\max(1, \text{RMS}_t)} \left(\frac{\hat m_t}{\sqrt{\hat v_t}
      + \epsilon} + \lambda \theta_{t-1}\right)

    The decay is inside the cap (the paper scales the learning rate, which multiplies both),
    so it is an argument here rather than a separate :func:`add_decayed_weights`. See
    :func:`gradtx.stable_adamw`.

    Args:
      b1: β₁ in [0, 1). Default 0.9.
      b2: β₂ in [0, 1). Default 0.99 (pytorch-optimizer's).
      eps: ε >= 0 outside the root, and :math:`\epsilon^2` the floor of :math:`\hat v` in the
        RMS. Default 1e-8.
      weight_decay: λ >= 0 (decoupled), or None for none. Default None here (the update
        needs no params then), 1e-2 in :func:`gradtx.stable_adamw`.
      mask: decay only where this tree of bools (or function of the params) is True.
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along,
        for the mean over each whole leaf (as :func:`gradtx.lamb`'s).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; with a decay its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_stable_adamw()
      >>> g = jnp.array([1.0, -1.0])
      >>> tx.update(g, tx.init(g))[0].round(4)  # RMS = 1 at the first step: Adam's
      Array([ 1., -1.], dtype=float32)

    References:
      Wortsman, Dettmers, Zettlemoyer, Morcos, Farhadi and Schmidt, *Stable and low-precision
      training for large-scale vision-language models*, NeurIPS 2023, Algorithm 2.
    """
    owner = "scale_by_stable_adamw"
    check_mask(owner, "mask", mask)
    build = functools.partial(
        _scale_by_stable_adamw,
        mask=mask,
        axes=_tree.axis_names(owner, axis_name),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
    )
    return live(
        owner, build, optional=("weight_decay",), b1=b1, b2=b2, eps=eps, weight_decay=weight_decay
    )
