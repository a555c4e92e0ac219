"""Adam's descendants since 2020: ADOPT, AdEMAMix, Simplified AdEMAMix, LaProp, StableAdamW and
ACProp.

As in ``adam_like``: each validates its arguments, then hands its numeric hyperparameters to
``live`` with a ``build`` function returning one short chain (preconditioner, decay, rate); the
preconditioners are in ``gradtx/_transforms/adam_descendants.py`` and (ADOPT's, ACProp's)
``asynchronous_moments.py``.
"""

from __future__ import annotations

from typing import Any

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._optimizers.adam_like import with_weight_decay
from gradtx._transforms.adam_descendants import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
    _scale_by_ademamix,
    _scale_by_laprop,
    _scale_by_simplified_ademamix,
    _scale_by_stable_adamw,
)
from gradtx._transforms.asynchronous_moments import (
    ScaleByAdoptState,
    _scale_by_acprop,
    _scale_by_adopt,
    quarter_root,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def adopt(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.9999,
    eps: ScalarOrSchedule = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: ScalarOrSchedule = quarter_root,
) -> GradientTransformation:
    r"""ADOPT: Adam that normalizes by the previous second moment, before the momentum.

    ``chain(scale_by_adopt(...), scale_by_learning_rate(learning_rate))``:

    .. math::
      v_0 = g_0^2, \quad
      m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
      \operatorname{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_t\right), \quad
      \theta_t = \theta_{t-1} - \eta\, m_t, \quad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2

    Dividing by :math:`v_{t-1}`, which does not depend on :math:`g_t`, removes the
    correlation that makes Adam diverge for some β₂; normalizing before the momentum keeps
    the step bounded. The first update only gathers :math:`v_0` (it is 0). The clipping
    :math:`c_t = t^{1/4}` is the paper's stable variant, with ``clip_value_fn`` a function of
    the count of updates so far, as in optax and the authors' code (t = 1 at the first real
    step). pytorch-optimizer's ``ADOPT`` counts the gathering step too, i.e. :math:`c =
    (t+1)^{1/4}`: ``clip_value_fn=lambda count: (count + 1.0) ** 0.25`` reproduces it.
    Complex params: one real second moment of :math:`|g|^2` for both parts (the Adam family's
    form; the authors' code keeps one per part), the clipping applied to each part.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.9999 (the paper's).
      eps: ε >= 0, the floor of :math:`\sqrt{v}`. Default 1e-6 (the paper's).
      mu_dtype: dtype of the first moment (default: the params' dtype).
      nesterov: use :math:`\beta_1 m_t + (1-\beta_1)\,\text{clip}(\dots)` (optax's flag).
      use_clipping: clip the normalized gradient. Default True (the paper's and optax's).
      clip_value_fn: :math:`c_t` >= 0, a function of the int32 count of updates (live: shown by
        ``hyperparams``, fixed by ``set_hyperparams``) or a float. Default ``count ** 0.25``.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adopt(0.1)
      >>> g = jnp.array([2.0])
      >>> u, state = tx.update(g, tx.init(g))  # gathers v_0
      >>> u, state = tx.update(g, state)
      >>> round(float(u[0]), 4)  # -lr (1 - b1) clip(g / |g_0|, 1)
      -0.01

    References:
      Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama, Suzuki, Iwasawa and
      Matsuo, *ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal Rate*, NeurIPS
      2024, Algorithm 2 and section 5.
    """
    nesterov = check_flag("adopt", "nesterov", nesterov)
    use_clipping = check_flag("adopt", "use_clipping", use_clipping)
    mu_dtype = check_dtype("adopt", "mu_dtype", mu_dtype)

    def build(learning_rate, b1, b2, eps, clip_value_fn):
        core = _scale_by_adopt(b1, b2, eps, clip_value_fn, nesterov=nesterov, mu_dtype=mu_dtype)
        return with_weight_decay(core, None, False, learning_rate)

    return live(
        "adopt",
        build,
        optional=("clip_value_fn",),
        ranges=ScaleByAdoptState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        clip_value_fn=clip_value_fn if use_clipping else None,
    )


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    r"""AdEMAMix: Adam with a second, slow average of the gradients mixed into the step.

    ``chain(scale_by_ademamix(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta \left(\frac{\hat m^{(1)}_t + \alpha\, m^{(2)}_t}
      {\sqrt{\hat v_t + \epsilon_{root}} + \epsilon} + \lambda \theta_{t-1}\right)

    with :math:`m^{(2)}` the average of decay β₃ (see :func:`scale_by_ademamix`). A slow
    average (β₃ = 0.9999 remembers ~10k steps) keeps old gradients useful. The paper warms α
    and β₃ up over :math:`T` steps; here they are schedules like any hyperparameter (optax
    takes them as schedules too, of the count of updates so far)::

      alpha = gradtx.linear_schedule(0.0, 5.0, T)
      def b3(count):  # the paper's: half-life grows linearly from b1's to b3's
          s = jnp.minimum(count / T, 1.0)
          lo, hi = jnp.log(0.9), jnp.log(0.9999)
          return jnp.exp(lo * hi / ((1 - s) * hi + s * lo))

    The authors' code and pytorch-optimizer's ``AdEMAMix(t_alpha_beta3=T)`` evaluate both at
    the 1-based step, i.e. at ``count + 1`` (the torch row tests that shift); with
    ``weight_decouple=True`` pytorch-optimizer's decay is this one (its default adds λθ to the
    gradient).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      b3: β₃ in [0, 1), the slow average's decay. Default 0.9999 (the paper's).
      alpha: α >= 0, the slow average's weight. Default 5 (optax's and pytorch-optimizer's).
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the two first moments (default: the params' dtype).
      weight_decay: λ >= 0, decoupled. Default 0 (optax's).
      mask: decay only where this tree of bools (or function of the params) is True.

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.ademamix(0.1, alpha=0.0)
      >>> params = jnp.array([1.0])
      >>> round(float(tx.update(params, tx.init(params), params)[0][0]), 4)  # Adam's first
      -0.1

    References:
      Pagliardini, Ablin and Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR
      2025 (arXiv:2409.03137), Algorithm 1 and section 3 (schedulers).
    """
    mu_dtype = check_dtype("ademamix", "mu_dtype", mu_dtype)
    check_mask("ademamix", "mask", mask)

    def build(learning_rate, b1, b2, b3, alpha, eps, eps_root, weight_decay):
        core = _scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype=mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "ademamix",
        build,
        ranges=ScaleByAdemamixState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        b3=b3,
        alpha=alpha,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )


def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.99,
    b2: ScalarOrSchedule = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Simplified AdEMAMix: one heavy-ball momentum plus α times the current gradient.

    ``chain(scale_by_simplified_ademamix(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      m_t = \beta_1 m_{t-1} + g_t, \qquad
      \theta_t = \theta_{t-1} - \eta \left(\frac{m_t + \alpha g_t}{\sqrt{\hat v_t
      + \epsilon_{root}} + \epsilon} + \lambda \theta_{t-1}\right)

    AdEMAMix's two averages become one (the authors show the slow one alone, with the
    gradient added, is an accelerated SGD). These are the authors' code's and optax's numbers;
    their β₁ warmup is a schedule of ``b1`` here. pytorch-optimizer's ``SimplifiedAdEMAMix``
    is not this algorithm: it averages (weighs :math:`g` by :math:`1-\beta_1`) and divides by
    :math:`1-\beta_2^t` where the authors multiply by its root; it is not a reference here.

    Args:
      learning_rate: η >= 0, a float or a schedule (the sum grows to :math:`g/(1-\beta_1)`:
        the authors scale Adam's rate by about :math:`\sqrt{(1-0.9)(1-\beta_1)}`).
      b1: β₁ in [0, 1). Default 0.99 (the authors').
      b2: β₂ in [0, 1). Default 0.95 (the authors').
      alpha: α >= 0. Default 0 (the authors').
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      weight_decay: λ >= 0, decoupled. Default 0.
      mask: decay only where this tree of bools (or function of the params) is True.
      mu_dtype: dtype of the momentum (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.simplified_ademamix(0.1)
      >>> params = jnp.array([1.0])
      >>> round(float(tx.update(params, tx.init(params), params)[0][0]), 4)  # -lr g / |g|
      -0.1

    References:
      Morwani, Vyas, Zhang and Kakade, *Connections between Schedule-Free Optimizers,
      AdEMAMix, and Accelerated SGD Variants*, 2025 (arXiv:2502.02431), section 4.
    """
    mu_dtype = check_dtype("simplified_ademamix", "mu_dtype", mu_dtype)
    check_mask("simplified_ademamix", "mask", mask)

    def build(learning_rate, b1, b2, alpha, eps, eps_root, weight_decay):
        core = _scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root, mu_dtype=mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "simplified_ademamix",
        build,
        ranges=ScaleBySimplifiedAdEMAMixState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        alpha=alpha,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )


def laprop(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-15,
    eps_root: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""LaProp: momentum on the gradient already normalized by its second moment.

    ``chain(scale_by_laprop(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1)\, \frac{g_t}{\sqrt{\hat v_t + \epsilon_{root}}
      + \epsilon}, \qquad
      \theta_t = \theta_{t-1} - \eta \left(\frac{m_t}{1-\beta_1^t} + \lambda\theta_{t-1}\right)

    The paper's algorithm, with the rate outside the momentum. The authors' code (and
    pytorch-optimizer's ``LaProp``) fold the rate into the momentum and debias by an average
    of past rates: the same numbers at a constant rate, a smoother response to a scheduled
    one. pytorch-optimizer adds ε (and 1e-15 inside the root) before debiasing
    :math:`\sqrt{v}`: at ε = 1e-15 a difference of 1e-9 relative over 50 steps. Both decays
    shrink the params after the step (pytorch-optimizer's by :math:`\eta\lambda`, the
    authors' by λ); here it is AdamW's, of :math:`\theta_{t-1}`.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-15 (the authors').
      eps_root: ε >= 0 inside the root. Default 0.
      weight_decay: λ >= 0, decoupled. Default 0.
      mask: decay only where this tree of bools (or function of the params) is True.
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.laprop(0.1)
      >>> params = jnp.array([3.0])
      >>> round(float(tx.update(params, tx.init(params), params)[0][0]), 4)  # -lr g / |g|
      -0.1

    References:
      Ziyin, Wang and Ueda, *LaProp: Separating Momentum and Adaptivity in Adam*, 2020
      (arXiv:2002.04839), Algorithm 1.
    """
    mu_dtype = check_dtype("laprop", "mu_dtype", mu_dtype)
    check_mask("laprop", "mask", mask)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay):
        core = _scale_by_laprop(b1, b2, eps, eps_root, mu_dtype=mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "laprop",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )


def stable_adamw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    mask: Any = None,
    *,
    axis_name: Any = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""StableAdamW: AdamW whose step is capped per leaf by the RMS of :math:`g^2 / \hat v`.

    ``chain(scale_by_stable_adamw(...), scale_by_learning_rate(learning_rate))``:

    .. math::
      \eta_t = \frac{\eta}{\max\left(1, \sqrt{\operatorname{mean}_{\text{leaf}}\, g_t^2 /
      \max(\hat v_t, \epsilon^2)}\right)}, \qquad
      \theta_t = \theta_{t-1} - \eta_t \left(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
      + \lambda \theta_{t-1}\right)

    Where the second moment lags a sudden large gradient (:math:`g^2 \gg \hat v`), Adam's step
    spikes; AdaFactor's update clipping, applied to the learning rate of that leaf, removes
    the loss spikes the paper traces to it. The paper's debiased decays
    :math:`\hat\beta_t = \beta (1-\beta^{t-1})/(1-\beta^t)` give Adam's debiased moments,
    which is how they are kept here. pytorch-optimizer's ``StableAdamW`` is this (its Kahan
    summation applies to 16-bit params only).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.99 (pytorch-optimizer's; the paper tunes 0.95-0.99).
      eps: ε >= 0 outside the root (:math:`\epsilon^2` floors :math:`\hat v` in the RMS).
        Default 1e-8.
      weight_decay: λ >= 0, decoupled and capped with the step. Default 1e-2
        (pytorch-optimizer's).
      mask: decay only where this tree of bools (or function of the params) is True.
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along,
        for the mean over each whole leaf (as :func:`gradtx.lamb`'s).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.stable_adamw(0.1, weight_decay=0.0)
      >>> params = jnp.array([1.0, 1.0])
      >>> state = tx.init(params)
      >>> u, state = tx.update(jnp.array([1.0, 1.0]), state, params)
      >>> u, state = tx.update(jnp.array([100.0, 1.0]), state, params)  # a spike
      >>> u.round(4)  # Adam's -0.1 (0.7491, 1.0), divided by RMS 1.2227
      Array([-0.0613, -0.0818], dtype=float32)

    References:
      Wortsman, Dettmers, Zettlemoyer, Morcos, Farhadi and Schmidt, *Stable and low-precision
      training for large-scale vision-language models*, NeurIPS 2023, Algorithm 2.
    """
    mu_dtype = check_dtype("stable_adamw", "mu_dtype", mu_dtype)
    check_mask("stable_adamw", "mask", mask)
    axes = _tree.axis_names("stable_adamw", axis_name)

    def build(learning_rate, b1, b2, eps, weight_decay):
        core = _scale_by_stable_adamw(b1, b2, eps, weight_decay, mask, axes=axes, mu_dtype=mu_dtype)
        return chain(core, _scale_by_learning_rate(learning_rate))

    return live(
        "stable_adamw",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
    )


def acprop(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-16,
    eps_root: ScalarOrSchedule = 1e-16,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    lagged_mean: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""ACProp: the gradient over the previous step's variance around its mean.

    ``chain(scale_by_acprop(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      s_t = \beta_2 s_{t-1} + (1-\beta_2) |g_t - m_t|^2 + \epsilon_{root}, \qquad
      \theta_t = \theta_{t-1} - \eta \left(\frac{g_t}{\sqrt{s_{t-1} / (1-\beta_2^{t-1})}
      + \epsilon} + \lambda\theta_{t-1}\right)

    with :math:`m_t` the gradients' average (see :func:`scale_by_acprop`). Centering
    (AdaBelief's variance around the mean) plus asynchrony (the denominator of the previous
    step, independent of :math:`g_t`, as in ADOPT). The paper and the authors' code centre on
    the new mean :math:`m_t`; optax 0.2.8 centres on :math:`m_{t-1}` (its docstring says
    :math:`m_t`): ``lagged_mean=True`` reproduces it.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-16 (optax's).
      eps_root: ε >= 0 added to :math:`s_t` each step. Default 1e-16 (optax's).
      weight_decay: λ >= 0, decoupled. Default 0 (optax's).
      mask: decay only where this tree of bools (or function of the params) is True.
      lagged_mean: centre on :math:`m_{t-1}` (optax 0.2.8's code).
      mu_dtype: dtype of the mean (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.acprop(0.1)
      >>> params = jnp.array([2.0])
      >>> round(float(tx.update(params, tx.init(params), params)[0][0]), 4)  # -lr g
      -0.2

    References:
      Zhuang, Ding, Tang, Tatikonda, Dvornek, Papademetris and Duncan, *Momentum Centering
      and Asynchronous Update for Adaptive Gradient Methods*, NeurIPS 2021, Algorithm 2.
    """
    lagged_mean = check_flag("acprop", "lagged_mean", lagged_mean)
    mu_dtype = check_dtype("acprop", "mu_dtype", mu_dtype)
    check_mask("acprop", "mask", mask)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay):
        core = _scale_by_acprop(b1, b2, eps, eps_root, lagged_mean=lagged_mean, mu_dtype=mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "acprop",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )
