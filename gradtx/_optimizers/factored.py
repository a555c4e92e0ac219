"""Memory-lean adaptive optimizers: factored (Adafactor, CAME) and cover-set (SM3) statistics.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag, check_range
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.block_norms import _clip_by_block_rms, _scale_by_param_block_rms
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.factored import (
    ScaleBySM3State,
    _scale_by_factored_rms,
    _scale_by_sm3,
    check_factored_arguments,
    check_variant,
    product,
    relative_step_size,
)
from gradtx._transforms.factored_confidence import ScaleByCameState, _scale_by_came
from gradtx._transforms.momentum import _ema
from gradtx._transforms.step_size import _scale, _scale_by_learning_rate


def _adafactor(
    learning_rate,
    decay_rate,
    decay_offset,
    clipping_threshold,
    momentum,
    weight_decay_rate,
    eps,
    min_scale,
    *,
    factored,
    min_dim_size_to_factor,
    multiply_by_parameter_scale,
    dtype_momentum,
    weight_decay_mask,
    relative,
    maximize,
    variant,
):
    links = [_scale(-1.0)] if maximize else []
    links.append(
        _scale_by_factored_rms(
            decay_rate,
            decay_offset,
            eps,
            factored=factored,
            min_dim_size_to_factor=min_dim_size_to_factor,
            decay_rate_fn=None,
            variant=variant,
        )
    )
    if clipping_threshold is not None:
        links.append(_clip_by_block_rms(clipping_threshold))
    if relative:
        links.append(relative_step_size(learning_rate))
    elif learning_rate is not None:
        links.append(_scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        links.append(_scale_by_param_block_rms(min_scale))
    if momentum is not None:
        links.append(_ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        # PyTorch decays by lr * weight_decay (its decoupled form), optax by weight_decay alone
        torch_decay = variant == "torch" and learning_rate is not None
        rate = product(learning_rate, weight_decay_rate) if torch_decay else weight_decay_rate
        links.append(_add_decayed_weights(rate, weight_decay_mask))
    links.append(_scale(-1.0))
    return _in_at_least_float32(chain(*links))


def _in_at_least_float32(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` computed in at least float32, its updates rounded once to each gradient's dtype
    (a bfloat16 step rounded after each of the chain's links would lose digits at each)."""

    def update(updates, state, params=None, **extra):
        wide = jax.tree.map(lambda g: _tree.cast(g, _tree.accumulation_dtype(g.dtype)), updates)
        out, state = tx.update(wide, state, params, **extra)
        return jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates), state

    return GradientTransformation(tx.init, update)


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: ScalarOrSchedule = 0.8,
    decay_offset: ScalarOrSchedule = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: ScalarOrSchedule | None = 1.0,
    momentum: ScalarOrSchedule | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: ScalarOrSchedule = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
    *,
    relative_step: bool = False,
    min_scale: ScalarOrSchedule = 1e-3,
    maximize: bool = False,
    variant: str = "optax",
) -> GradientTransformation:
    r"""Adafactor: a factored second moment, update clipping and a step relative to the params.

    ``chain(scale_by_factored_rms, clip_by_block_rms(clipping_threshold),
    scale_by_learning_rate(η), scale_by_param_block_rms, [ema(momentum)],
    [add_decayed_weights(weight_decay_rate)], scale(-1))``, optax's order. Per leaf:

    .. math::
      \hat u_t = g_t / \sqrt{\hat V_t}, \quad
      \bar u_t = \hat u_t / \max(1, \mathrm{RMS}(\hat u_t) / d), \quad
      \theta_t = \theta_{t-1} - \eta\, \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\, \bar u_t

    with :math:`\hat V_t` the factored estimate of :func:`gradtx.scale_by_factored_rms`
    (Shazeer and Stern, 2018, Algorithm 4; the learning rate η replaces the paper's
    :math:`\rho_t` unless ``relative_step``). With ``momentum`` the scaled step is averaged
    (:math:`m_t = \beta_1 m_{t-1} + (1 - \beta_1) s_t`, not debiased) before the decay
    :math:`\lambda \theta` is added.

    PyTorch's ``torch.optim.Adafactor(lr, beta2_decay, eps=(eps1, eps2), d, weight_decay,
    maximize)`` is ``adafactor(lr, min_dim_size_to_factor=1, decay_rate=-beta2_decay,
    clipping_threshold=d, weight_decay_rate=weight_decay (None for 0), eps=eps1,
    relative_step=True, min_scale=eps2, maximize=maximize, variant="torch")``, with eps1 the
    params' machine epsilon where PyTorch's is None (``jnp.finfo(dtype).eps``).

    Args:
      learning_rate: η >= 0, or None for no scaling (optax's default: the parameter scale
        and the clipping set the step then).
      min_dim_size_to_factor: factor leaves whose second largest axis has at least this many
        elements. Default 128, optax's.
      decay_rate: *c* >= 0 in :math:`\hat\beta_{2t} = 1 - t^{-c}`. Default 0.8, the paper's.
      decay_offset: steps subtracted from the count for the decay schedule (fine-tuning).
      multiply_by_parameter_scale: multiply by :math:`\max(\epsilon_2, \mathrm{RMS}(\theta))`
        (the paper's relative step). Default True.
      clipping_threshold: *d* > 0, the largest RMS of a leaf's scaled update, or None for no
        clipping. Default 1, the paper's.
      momentum: β₁ in [0, 1) of an (undebiased) average of the steps, or None (the paper's
        default: no first moment).
      dtype_momentum: dtype of the momentum (None: the params'). Default float32, optax's.
      weight_decay_rate: λ >= 0 or None: adds :math:`\lambda\theta` to the step (times η in
        the torch variant).
      eps: :math:`\epsilon_1 >= 0` of the second moment. Default 1e-30, the paper's.
      factored: factor the second moment where the shapes allow. Default True.
      weight_decay_mask: a tree of bools (or a function of the params giving one) selecting
        the leaves to decay.
      relative_step: multiply by :math:`\rho_t = \min(\eta, 1/\sqrt t)` instead of η (the
        paper's decaying step, PyTorch's rule; :math:`1/\sqrt t` if η is None).
      min_scale: :math:`\epsilon_2 >= 0`, the floor of the parameter scale. Default 1e-3,
        the paper's (PyTorch's ``eps[1]``).
      maximize: ascend the objective (PyTorch's flag): the gradients are negated first.
      variant: ``"optax"`` or ``"torch"``: which rule the second moment and the decay follow
        (see :func:`gradtx.scale_by_factored_rms`; the torch variant also multiplies the
        decay by η).

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params`` for the parameter scale
      and the decay. The chain is computed in at least float32 and each update rounded once
      to its gradient's dtype (bfloat16 params get bfloat16 updates, whatever
      ``dtype_momentum``).

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.adafactor(learning_rate=0.1, min_dim_size_to_factor=2)
      >>> params = {"w": jnp.full((2, 3), 2.0)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones((2, 3))}, state, params)
      >>> updates["w"][0, 0]  # -0.1 * RMS(w) * g / sqrt(g**2)
      Array(-0.2, dtype=float32)

    References:
      Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
      ICML 2018.
    """
    owner = "adafactor"
    arguments = check_factored_arguments(
        owner, decay_rate, ("eps", eps), min_dim_size_to_factor, factored
    )
    check_range(owner, "clipping_threshold", clipping_threshold, "> 0", lambda v: v > 0)
    check_range(owner, "weight_decay_rate", weight_decay_rate, ">= 0", lambda v: v >= 0)
    check_mask(owner, "weight_decay_mask", weight_decay_mask)
    build = functools.partial(
        _adafactor,
        **arguments,
        multiply_by_parameter_scale=check_flag(
            owner, "multiply_by_parameter_scale", multiply_by_parameter_scale
        ),
        dtype_momentum=check_dtype(owner, "dtype_momentum", dtype_momentum),
        weight_decay_mask=weight_decay_mask,
        relative=check_flag(owner, "relative_step", relative_step),
        maximize=check_flag(owner, "maximize", maximize),
        variant=check_variant(owner, variant),
    )
    return live(
        owner,
        build,
        optional=("learning_rate", "clipping_threshold", "momentum", "weight_decay_rate"),
        learning_rate=learning_rate,
        decay_rate=decay_rate,
        decay_offset=decay_offset,
        clipping_threshold=clipping_threshold,
        momentum=momentum,
        weight_decay_rate=weight_decay_rate,
        eps=eps,
        min_scale=min_scale,
    )


def sm3(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule = 0.9,
    *,
    b2: ScalarOrSchedule = 1.0,
    eps: ScalarOrSchedule = 1e-8,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""SM3: AdaGrad with cover-set accumulators (one per row, column, ...) and momentum.

    ``chain(scale_by_sm3(momentum, b2, eps), scale_by_learning_rate(η))``:

    .. math::
      \nu_t(i) = g_t(i)^2 + \min_a \mu_{a,t-1}(i_a), \quad
      m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t / \sqrt{\nu_t + \epsilon}, \quad
      \theta_t = \theta_{t-1} - \eta\, m_t

    (Anil et al., 2019, SM3-II; see :func:`gradtx.scale_by_sm3`). Memory: one momentum per
    param plus, per leaf, the sum of its axes' sizes (a rank <= 1 leaf: one per element).

    Args:
      learning_rate: η >= 0.
      momentum: β₁ in [0, 1). Default 0.9, optax's.
      b2: β₂ in [0, 1] of :func:`gradtx.scale_by_sm3` (1, the default: the paper's sums).
      eps: ε >= 0 inside the root. Default 1e-8, optax's.
      mu_dtype: dtype of the momentum (default: the params'), as in
        :func:`gradtx.scale_by_sm3`.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.sm3(learning_rate=0.1)
      >>> params = jnp.array([[1.0, -2.0], [3.0, 0.5]])
      >>> updates, state = tx.update(2 * params, tx.init(params))
      >>> updates.round(4)  # -lr (1 - momentum) g / |g| on the first step
      Array([[-0.01,  0.01],
             [-0.01, -0.01]], dtype=float32)

    References:
      Anil, Gupta, Koren and Singer, *Memory-Efficient Adaptive Optimization*, NeurIPS 2019.
    """
    owner = "sm3"
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)

    def build(learning_rate, momentum, b2, eps):
        return chain(
            _scale_by_sm3(momentum, b2, eps, mu_dtype=mu_dtype),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        ranges=ScaleBySM3State.live_ranges,
        learning_rate=learning_rate,
        momentum=momentum,
        b2=b2,
        eps=eps,
    )


def came(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    eps1: ScalarOrSchedule = 1e-30,
    eps2: ScalarOrSchedule = 1e-16,
    clipping_threshold: ScalarOrSchedule = 1.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""CAME: Adafactor's memory with confidence-weighted momentum.

    ``chain(scale_by_came(b1, b2, b3, eps1, eps2, clipping_threshold),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta \left( m_t \big/ \sqrt{S_t} + \lambda \theta_{t-1}
      \right)

    with :math:`m_t` the momentum of the clipped Adafactor step and :math:`S_t` the factored
    average of its instability :math:`(\hat u_t - m_t)^2` (:func:`gradtx.scale_by_came`). The
    decay is decoupled, as in the authors' code (``came_pytorch.CAME(lr, eps=(eps1, eps2),
    clip_threshold, betas, weight_decay)`` is ``came(lr, *betas, eps1, eps2, clip_threshold,
    weight_decay)``, and so is pytorch-optimizer's ``CAME``).

    Args:
      learning_rate: η >= 0, a float or a schedule (the paper's 2e-4 for BERT).
      b1: β₁ in [0, 1), the momentum. Default 0.9 (the paper's).
      b2: β₂ in [0, 1), of the squared gradients. Default 0.999 (the paper's).
      b3: β₃ in [0, 1), of the instability. Default 0.9999 (the paper's).
      eps1: ε₁ >= 0 added to the squared gradients. Default 1e-30 (the paper's).
      eps2: ε₂ >= 0 added to the instability. Default 1e-16 (the paper's).
      clipping_threshold: d > 0, the largest RMS of a leaf's scaled update. Default 1.
      weight_decay: λ >= 0, decoupled. Default 0.
      mask: decay only where this tree of bools (or function of the params) is True.
      mu_dtype: dtype of the momentum (default: the params').

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.came(1e-3)
      >>> params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> state.inner_state[0].r_row["w"].shape  # the instability's row statistics
      (2,)

    References:
      Luo, Ren, Zheng, Jiang, Jiang and You, *CAME: Confidence-guided Adaptive Memory
      Efficient Optimization*, ACL 2023 (arXiv:2307.02047), Algorithm 1.
    """
    owner = "came"
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)
    check_mask(owner, "mask", mask)

    def build(learning_rate, b1, b2, b3, eps1, eps2, clipping_threshold, weight_decay):
        return chain(
            _scale_by_came(b1, b2, b3, eps1, eps2, clipping_threshold, mu_dtype=mu_dtype),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        ranges=ScaleByCameState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        b3=b3,
        eps1=eps1,
        eps2=eps2,
        clipping_threshold=clipping_threshold,
        weight_decay=weight_decay,
    )
