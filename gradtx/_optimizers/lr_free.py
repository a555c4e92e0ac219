"""Learning-rate-free optimizers: Prodigy, D-Adapt AdamW and COCOB.

Prodigy and D-Adapt AdamW are AdamW whose step size is an estimate d of the distance from the
initial params to the solution, learnt as they go (:mod:`gradtx._transforms.lr_free`); their
``learning_rate`` is a factor on d, 1 by default, for a schedule (a warmup, a decay) with 1 as
its peak. COCOB bets on each coordinate (no step size at all). Mechanic, which learns the scale
of any optimizer's steps, is a wrapper: :func:`gradtx.mechanize`.
"""

from __future__ import annotations

import functools
from typing import Any

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import UNIT, check_dtype, check_flag, check_hyperparam
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.lr_free import (
    COCOBState,
    DAdaptAdamWState,
    ProdigyState,
    _dadapt_adamw,
    _prodigy,
    _scale_by_cocob,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def _betas(owner: str, betas: Any) -> tuple[Any, Any]:
    """``betas`` as optax takes them, a pair (β₁, β₂) of floats or schedules, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{owner}: betas must be a pair (b1, b2), got {betas!r}")
    return tuple(check_hyperparam(owner, f"betas[{i}]", b, UNIT) for i, b in enumerate(betas))


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    beta3: ScalarOrSchedule | None = None,
    eps: ScalarOrSchedule = 1e-8,
    estim_lr0: ScalarOrSchedule = 1e-6,
    estim_lr_coef: ScalarOrSchedule = 1.0,
    weight_decay: ScalarOrSchedule = 0.0,
    safeguard_warmup: bool = False,
    *,
    use_bias_correction: bool = True,
    growth_rate: ScalarOrSchedule | None = None,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""Prodigy: AdamW whose step size is a running estimate of the distance to the solution.

    With γ the learning rate, c the bias correction :math:`\sqrt{1-\beta_2^{k+1}} /
    (1-\beta_1^{k+1})` (1 with ``use_bias_correction=False``), :math:`d_k` the estimate
    (:math:`d_0` = ``estim_lr0``) and :math:`\lambda_k = d_k γ c`, one step over the whole tree:

    .. math::
      m &\leftarrow \beta_1 m + (1-\beta_1)\, d_k g, \qquad
      v \leftarrow \beta_2 v + (1-\beta_2)\, d_k^2 g^2, \\
      r &\leftarrow \beta_3 r + \tfrac{d_k}{d_0} \lambda_k \langle g, x_0 - x \rangle, \qquad
      s \leftarrow \beta_3 s + \tfrac{d_k}{d_0} \lambda_k\, g
      \quad (\tfrac{d_k}{d_0} d_k\, g \text{ with } \texttt{safeguard\_warmup}), \\
      \hat d &= \kappa\, r / \lVert s \rVert_1, \qquad
      d_{k+1} = \max(d_k, \hat d) \quad (\text{see } \texttt{growth\_rate}), \\
      x &\leftarrow x - \lambda_k \left( \frac{m}{\sqrt v + d_{k+1} \epsilon}
      + \text{wd}\, x \right),

    with :math:`\kappa` = ``estim_lr_coef``, :math:`\beta_3 = \sqrt{\beta_2}` by default,
    :math:`\langle\cdot,\cdot\rangle` and :math:`\lVert\cdot\rVert_1` over every leaf (one
    scalar d for the tree). r and s are weighted by :math:`(d_k / d_0) \lambda_k`, as the
    authors' code weights them (the paper's weight has :math:`d_k^2` and a constant factor:
    any common factor of r and s cancels in :math:`\hat d`; dividing by :math:`d_0` keeps the
    sums away from underflow), and ε is multiplied by the new estimate, as in their code.

    The numbers are those of the authors' ``prodigyopt.Prodigy`` (1.1.2; ``d0``, ``d_coef``
    are ``estim_lr0``, ``estim_lr_coef``; its ``decouple=True``, the default) and of
    optax.contrib.prodigy, where they agree. Where they do not:

    * bias correction: optax always applies it (these defaults give optax's numbers); the
      authors' default is off: ``use_bias_correction=False`` gives ``Prodigy()``'s.
    * a step with γ = 0 (a warmup from 0), or whose :math:`\lVert s \rVert_1` is 0 (every
      gradient so far 0): the authors' code returns without a step and without changing its
      state; so does this one (optax's decays r and s there, and where the sum is 0, at a
      first step with γ = 0 or zero gradients, its estimate is 0 / 0 = NaN).
    * ``growth_rate`` (the authors', not optax's): bounds the growth of d per step,
      :math:`d_{k+1} = \min(d^{max}_{k+1}, \delta\, d'_k)` with :math:`d^{max}` the largest
      estimate so far and :math:`d'_k = \max(d_k, \hat d)` while :math:`d_k = d_0`, else
      :math:`d_k` (their rule, letting the first estimate jump). None: unbounded, the
      formula above.
    * the authors' coupled decay (``decouple=False``) is
      ``chain(add_decayed_weights(wd), prodigy(...))``; their ``slice_p`` (r and s over every
      p-th element only, to save memory) and ``fsdp_in_use`` are left out: gradtx keeps x₀ and
      s whole, and its sums are over the whole arrays under ``jit`` with sharded params.

    Complex params: :math:`|g|^2` in v, :math:`\mathrm{Re}\langle g, x_0 - x\rangle`, and
    :math:`\lVert s\rVert_1 = \sum |s_i|`.

    Args:
      learning_rate: γ >= 0, a factor on d (a schedule with peak 1, as the paper
        recommends). Default 1.0 (optax's and the authors').
      betas: (β₁, β₂), each in [0, 1). Default (0.9, 0.999). Live as ``b1`` and ``b2``.
      beta3: β₃ in [0, 1), the discount of r and s. Default None: :math:`\sqrt{\beta_2}`.
      eps: ε >= 0, multiplied by d in the denominator. Default 1e-8.
      estim_lr0: d₀ > 0, the initial (under)estimate. Default 1e-6.
      estim_lr_coef: κ > 0, a factor on every estimate. Default 1.0.
      weight_decay: wd >= 0, decoupled, multiplied by :math:`\lambda_k`. Default 0.
      safeguard_warmup: leave γ and c out of s (the authors' advice for a warmup).
        Default False.
      use_bias_correction: Adam's bias correction in the step size. Default True (optax's);
        the authors' is False.
      growth_rate: δ > 0, the largest factor by which d grows in one step. Default None
        (unbounded, the authors' ``inf``).
      mu_dtype: dtype of m (default: the params').
      axis_name: inside ``shard_map`` or ``pmap``, the mesh axis (or tuple of axes) the
        leaves are split along: the estimate's sums are added across the shards (one
        ``psum`` of a few scalars), as they are by XLA under ``jit`` with shardings, where it
        stays None. Default None (optax's function has no such argument).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.prodigy()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> for _ in range(50):
      ...     updates, state = tx.update(params, state, params)  # f = |x|² / 2
      ...     params = gradtx.apply_updates(params, updates)
      >>> float(state.inner_state.estim_lr) > 0.5  # from 1e-6 towards |x₀ - x*| = 2.2
      True

    References:
      Mishchenko and Defazio, *Prodigy: An Expeditiously Adaptive Parameter-Free Learner*,
      ICML 2024 (arXiv:2306.06101), the Adam version; the authors' code, ``prodigyopt``.
    """
    owner = "prodigy"
    b1, b2 = _betas(owner, betas)
    build = functools.partial(
        _prodigy,
        safeguard_warmup=check_flag(owner, "safeguard_warmup", safeguard_warmup),
        use_bias_correction=check_flag(owner, "use_bias_correction", use_bias_correction),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        axes=_tree.axis_names(owner, axis_name),
        owner=owner,
    )
    return live(
        owner,
        build,
        optional=("beta3", "growth_rate"),
        ranges=ProdigyState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        beta3=beta3,
        eps=eps,
        estim_lr0=estim_lr0,
        estim_lr_coef=estim_lr_coef,
        weight_decay=weight_decay,
        growth_rate=growth_rate,
    )


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    eps: ScalarOrSchedule = 1e-8,
    estim_lr0: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    use_bias_correction: bool = True,
    growth_rate: ScalarOrSchedule | None = None,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""D-Adapt AdamW: AdamW whose step size is D-Adaptation's estimate of the distance to the
    solution (in the infinity norm).

    With γ the learning rate, c the bias correction :math:`\sqrt{1-\beta_2^{k+1}} /
    (1-\beta_1^{k+1})` (1 with ``use_bias_correction=False``), :math:`d_k` the estimate
    (:math:`d_0` = ``estim_lr0``), :math:`\lambda_k = d_k γ c` and :math:`\rho = \sqrt{\beta_2}`,
    one step over the whole tree:

    .. math::
      r &\leftarrow \rho\, r + (1-\rho) \lambda_k \left\langle g,
      \frac{s}{\sqrt v + \epsilon} \right\rangle \quad (s, v \text{ before this step}), \\
      m &\leftarrow \beta_1 m + (1-\beta_1) \lambda_k g, \quad
      v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
      s \leftarrow \rho\, s + (1-\rho) \lambda_k g, \\
      d_{k+1} &= \max\left(d_k, \frac{r}{(1-\rho) \lVert s \rVert_1}\right), \qquad
      x \leftarrow x - \frac{m}{\sqrt v + \epsilon} - \lambda_k \text{wd}\, x,

    :math:`\langle\cdot,\cdot\rangle` and :math:`\lVert\cdot\rVert_1` over every leaf (one
    scalar d for the tree).

    The numbers are those of the authors' ``dadaptation.DAdaptAdam(..., decouple=True)``
    (3.2; ``d0`` is ``estim_lr0``) and of optax.contrib.dadapt_adamw, where they agree. Where
    they do not:

    * bias correction: optax always applies it (these defaults give optax's numbers); the
      authors' default is off: ``use_bias_correction=False`` gives theirs.
    * a step with γ = 0, or whose :math:`\lVert s\rVert_1` is 0: no step and no change of
      state, as the authors' code (optax's decays r and s there, and where the sum is 0 its
      estimate is 0 / 0 = NaN).
    * ``growth_rate`` (the authors', not optax's): :math:`d_{k+1} = \max(d_k, \min(\hat d,
      \delta d_k))`. None: unbounded.
    * ``DAdaptAdam``'s default, coupled decay (``decouple=False``), is
      ``chain(add_decayed_weights(wd), dadapt_adamw(...))``; its per-group ``layer_scale``
      is a :func:`gradtx.partition` of two of these (each then has its own d).

    Complex params: :math:`|g|^2` in v, real inner products, :math:`\sum |s_i|`.

    Args:
      learning_rate: γ >= 0, a factor on d (a schedule with peak 1). Default 1.0.
      betas: (β₁, β₂), each in [0, 1). Default (0.9, 0.999). Live as ``b1`` and ``b2``.
      eps: ε >= 0. Default 1e-8.
      estim_lr0: d₀ > 0, the initial (under)estimate. Default 1e-6.
      weight_decay: wd >= 0, decoupled, multiplied by :math:`\lambda_k`. Default 0.
      use_bias_correction: Adam's bias correction in the step size. Default True (optax's);
        the authors' is False.
      growth_rate: δ > 0, the largest factor by which d grows in one step. Default None.
      mu_dtype: dtype of m (default: the params').
      axis_name: inside ``shard_map`` or ``pmap``, the mesh axis (or tuple of axes) the
        leaves are split along: the estimate's sums are added across the shards (one
        ``psum`` of a few scalars), as they are by XLA under ``jit`` with shardings, where it
        stays None. Default None (optax's function has no such argument).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.dadapt_adamw()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> for _ in range(30):
      ...     updates, state = tx.update(params, state, params)  # f = |x|² / 2
      ...     params = gradtx.apply_updates(params, updates)
      >>> float(state.inner_state.estim_lr) > 0.5  # from 1e-6 towards |x₀ - x*|_∞ = 2
      True

    References:
      Defazio and Mishchenko, *Learning-Rate-Free Learning by D-Adaptation*, ICML 2023
      (arXiv:2301.07733), the Adam variant; the authors' code, ``dadaptation``.
    """
    owner = "dadapt_adamw"
    b1, b2 = _betas(owner, betas)
    build = functools.partial(
        _dadapt_adamw,
        use_bias_correction=check_flag(owner, "use_bias_correction", use_bias_correction),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        axes=_tree.axis_names(owner, axis_name),
        owner=owner,
    )
    return live(
        owner,
        build,
        optional=("growth_rate",),
        ranges=DAdaptAdamWState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        estim_lr0=estim_lr0,
        weight_decay=weight_decay,
        growth_rate=growth_rate,
    )


def cocob(
    learning_rate: ScalarOrSchedule = 1.0,
    alpha: ScalarOrSchedule = 100.0,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    r"""COCOB-Backprop: coin betting on each coordinate, without a learning rate.

    ``chain(add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate,
    flip_sign=False), scale_by_cocob(alpha, eps))``, optax.contrib.cocob's chain: the
    gradient, with the L2 term and multiplied by ``learning_rate``, is the coin outcome of
    :func:`gradtx.scale_by_cocob`.

    Args:
      learning_rate: a factor >= 0 on the gradients (1 is the paper's method; a schedule
        here changes the coin outcomes, not a step size). Default 1.0 (optax's).
      alpha: α > 0, the bet's cap (see :func:`gradtx.scale_by_cocob`). Default 100.
      eps: ε > 0, the initial :math:`L`. Default 1e-8.
      weight_decay: λ >= 0, an L2 term added to the gradient. Default 0.
      mask: which leaves decay, as :func:`gradtx.add_decayed_weights`'s mask.

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.cocob()
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = tx.update(params, tx.init(params), params)  # f = |x|² / 2
      >>> updates["w"]  # -g L / (L · 100 L): the first bet is 1% of |g| / L = 1 each
      Array([-0.01,  0.01], dtype=float32)

    References:
      Orabona and Tommasi, *Training Deep Networks without Learning Rates Through Coin
      Betting*, NeurIPS 2017 (arXiv:1705.07795), Algorithm 2.
    """
    owner = "cocob"
    check_mask(owner, "mask", mask)

    def build(learning_rate, alpha, eps, weight_decay):
        return chain(
            _add_decayed_weights(weight_decay, mask),
            _scale_by_learning_rate(learning_rate, flip_sign=False),
            _scale_by_cocob(alpha, eps, owner=owner),
        )

    return live(
        owner,
        build,
        ranges=COCOBState.live_ranges,
        learning_rate=learning_rate,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
    )
