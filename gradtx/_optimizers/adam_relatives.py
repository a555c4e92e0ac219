"""Adam's later relatives: MADGRAD, MARS and Adam-mini.

Each validates its arguments, then hands its numeric hyperparameters to ``live`` with a
``build`` function returning one short chain of the pairs in ``_transforms/adam_relatives``
and ``_transforms/block_moments``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.combine import chain, check_mask, partition
from gradtx._core.hyper import Live, ScalarOrSchedule, live, scalar, value_as
from gradtx._transforms.adam_relatives import _scale_by_madgrad, _scale_by_mars
from gradtx._transforms.block_moments import (
    AdamMiniBlocks,
    _scale_by_adam_mini,
    adam_mini_decay_mask,
    check_blocks,
)
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.step_size import _scale_by_learning_rate


def _decoupled_madgrad_decay(learning_rate, eps, weight_decay) -> Live:
    """``-(η + ε) λ``: the authors' decoupled decay uses MADGRAD's own ``η + ε``."""
    dtype = scalar(learning_rate).dtype
    rate = -(scalar(learning_rate) + value_as(eps, dtype)) * scalar(weight_decay).astype(dtype)
    return Live(rate, jnp.zeros_like(rate))


def madgrad(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule = 0.9,
    weight_decay: ScalarOrSchedule = 0.0,
    eps: ScalarOrSchedule = 1e-6,
    *,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""MADGRAD: momentumized, adaptive, dual-averaged gradient descent.

    ``chain(add_decayed_weights(λ), scale_by_madgrad(η, momentum, eps))`` (optax's chain):

    .. math::
      z_{k+1} = x_0 - \frac{\sum_{i \le k} \lambda_i g_i}
      {(\sum_{i \le k} \lambda_i g_i^2)^{1/3} + \epsilon}, \quad
      x_{k+1} = \beta x_k + (1 - \beta) z_{k+1}

    with :math:`\lambda_i = (\eta_i + \epsilon)\sqrt{i + 1}` and :math:`g` the gradient plus
    :math:`\lambda\theta` (see :func:`gradtx.scale_by_madgrad`). The numbers are the
    authors' and pytorch-optimizer's ``MADGRAD``'s (which takes no step at η = 0, where the
    authors' code and optax step with ε), and optax.contrib's up to its rounding: optax 0.2.8
    forms :math:`\sqrt{k + 1}` from its int32 count in float32 even under x64, 5e-8 off in
    float64 over 100 steps (gradtx: 1e-14).

    Args:
      learning_rate: η >= 0, a float or a schedule (the paper suggests 1e-2 for vision).
      momentum: β in [0, 1), the weight of the previous iterate. Default 0.9 (the paper's).
      weight_decay: λ >= 0, added to the gradient (L2, optax's). Default 0.
      eps: ε >= 0. Default 1e-6 (the paper's).
      decoupled_weight_decay: subtract :math:`(\eta + \epsilon)\lambda x_k` from the step
        instead (the authors' ``decouple_decay``, pytorch-optimizer's ``weight_decouple``).

    Returns:
      A :class:`GradientTransformation`; its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.madgrad(0.1, momentum=0.0, eps=0.0)
      >>> p = jnp.array([1.0])
      >>> u, state = tx.update(jnp.array([8.0]), tx.init(p), p)
      >>> round(float(u[0]), 4)  # -(0.1 * 8) / (0.1 * 64) ** (1/3)
      -0.4309

    References:
      Defazio and Jelassi, *Adaptivity without Compromise: A Momentumized, Adaptive, Dual
      Averaged Gradient Method for Stochastic Optimization*, JMLR 2022 (arXiv:2101.11075).
    """
    decoupled = check_flag("madgrad", "decoupled_weight_decay", decoupled_weight_decay)

    def build(learning_rate, momentum, weight_decay, eps):
        core = _scale_by_madgrad(learning_rate, momentum, eps)
        if decoupled:
            rate = _decoupled_madgrad_decay(learning_rate, eps, weight_decay)
            return chain(core, _add_decayed_weights(rate))
        return chain(_add_decayed_weights(weight_decay), core)

    return live(
        "madgrad",
        build,
        learning_rate=learning_rate,
        momentum=momentum,
        weight_decay=weight_decay,
        eps=eps,
    )


def mars(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.95,
    b2: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    gamma: ScalarOrSchedule = 0.025,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    eps_root: ScalarOrSchedule = 0.0,
    debias_eps: bool = False,
    optimize_1d: bool = False,
    adam_learning_rate: ScalarOrSchedule | None = None,
    adam_b1: ScalarOrSchedule = 0.9,
    adam_b2: ScalarOrSchedule = 0.95,
    adam_weight_decay: ScalarOrSchedule = 0.1,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""MARS: AdamW on a variance-reduced gradient (MARS-AdamW, approximate).

    Leaves of rank >= 2 (every leaf with ``optimize_1d``): ``chain(scale_by_mars(b1, b2, eps,
    gamma, eps_root), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``,

    .. math::
      c_t = g_t + \gamma \tfrac{\beta_1}{1 - \beta_1} (g_t - g_{t-1}), \quad
      \theta_t = \theta_{t-1} - \eta \left( \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
      + \lambda \theta_{t-1} \right)

    with :math:`m, v` Adam's moments of :math:`c_t / \max(1, \|c_t\|)`
    (:func:`gradtx.scale_by_mars`). The other leaves take AdamW with ``adam_b1``,
    ``adam_b2``, ``adam_weight_decay`` and ``adam_learning_rate``, as the authors' code does
    (its ``optimize_1d=False`` default, ``betas_1d``, ``weight_decay_1d``, ``lr_1d``).

    pytorch-optimizer's ``MARS(lr, betas, gamma, weight_decay=wd, lr_1d, betas_1d,
    weight_decay_1d, eps)`` adds its ε before dividing by :math:`\sqrt{1 - \beta_2^t}` (an ε
    of :math:`\epsilon / \sqrt{1 - \beta_2^t}`) and 1e-15 under the root: the authors'
    placement, Adam's, is followed here (4e-7 relative from pytorch-optimizer over 50 steps at
    ε = 1e-8), and ``mars(lr, *betas, eps, gamma, wd, eps_root=1e-15, debias_eps=True,
    adam_learning_rate=lr_1d, adam_b1=betas_1d[0], adam_b2=betas_1d[1],
    adam_weight_decay=weight_decay_1d)`` is pytorch-optimizer's, to 1e-15.

    Args:
      learning_rate: η >= 0, a float or a schedule (the paper's 3e-3 for GPT-2 small).
      b1: β₁ in [0, 1). Default 0.95 (the paper's).
      b2: β₂ in [0, 1). Default 0.99 (the paper's).
      eps: ε >= 0 outside the root. Default 1e-8.
      gamma: γ >= 0, the weight of the gradient correction. Default 0.025 (the paper's).
      weight_decay: λ >= 0, decoupled, of the MARS leaves. Default 0.
      mask: decay only where this tree of bools (or function of the params) is True.
      eps_root: ε >= 0 inside the root. Default 0.
      debias_eps: add the ε's before the second moment's bias correction, as
        pytorch-optimizer does (see :func:`gradtx.scale_by_mars`). Default False.
      optimize_1d: MARS for every leaf, not only those of rank >= 2.
      adam_learning_rate: η of the AdamW leaves; None (default): ``learning_rate``.
      adam_b1: β₁ of the AdamW leaves. Default 0.9 (the authors').
      adam_b2: β₂ of the AdamW leaves. Default 0.95 (the authors').
      adam_weight_decay: λ >= 0 of the AdamW leaves. Default 0.1 (the authors').
      mu_dtype: dtype of the first moments (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params (for the decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.mars(0.1)
      >>> params = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
      >>> g = {"w": jnp.full((2, 2), 0.1), "b": jnp.ones(2)}
      >>> u, state = tx.update(g, tx.init(params), params)
      >>> round(float(u["w"][0, 0]), 4), round(float(u["b"][0]), 4)  # both -lr sign(g)
      (-0.1, -0.1)

    References:
      Yuan, Liu, Wu, Zhou and Gu, *MARS: Unleashing the Power of Variance Reduction for
      Training Large Models*, ICML 2025 (arXiv:2411.10438), Algorithm 2.
    """
    owner = "mars"
    everywhere = check_flag(owner, "optimize_1d", optimize_1d)
    debias_eps = check_flag(owner, "debias_eps", debias_eps)
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)
    check_mask(owner, "mask", mask)

    def labels(tree):
        return jax.tree.map(lambda x: "mars" if everywhere or np.ndim(x) >= 2 else "adam", tree)

    def build(
        learning_rate,
        b1,
        b2,
        eps,
        gamma,
        weight_decay,
        eps_root,
        adam_learning_rate,
        adam_b1,
        adam_b2,
        adam_weight_decay,
    ):
        fixed = {"mu_dtype": mu_dtype, "debias_eps": debias_eps}
        matrices = chain(
            _scale_by_mars(b1, b2, eps, eps_root, gamma, **fixed),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_learning_rate(learning_rate),
        )
        others = chain(
            _scale_by_mars(adam_b1, adam_b2, eps, eps_root, 0.0, corrected=False, **fixed),
            _add_decayed_weights(adam_weight_decay, mask),
            _scale_by_learning_rate(
                learning_rate if adam_learning_rate is None else adam_learning_rate
            ),
        )
        return partition({"adam": others, "mars": matrices}, labels)

    return live(
        owner,
        build,
        optional=("adam_learning_rate",),
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        gamma=gamma,
        weight_decay=weight_decay,
        eps_root=eps_root,
        adam_learning_rate=adam_learning_rate,
        adam_b1=adam_b1,
        adam_b2=adam_b2,
        adam_weight_decay=adam_weight_decay,
    )


def adam_mini(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    blocks: Callable[[str, tuple[int, ...]], AdamMiniBlocks] | None = None,
    num_heads: int | None = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam-mini: AdamW with one second moment per block (head, neuron, leaf) of the params.

    ``chain(scale_by_adam_mini(b1, b2, eps, blocks), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``: for an element *i* of block *B*,

    .. math::
      \theta_{t,i} = \theta_{t-1,i} - \eta \left(\frac{\hat m_{t,i}}{\sqrt{\hat v_{B,t}}
      + \epsilon} + \lambda \theta_{t-1,i}\right), \quad
      v_{B,t} = \beta_2 v_{B,t-1} + (1-\beta_2)\, \mathrm{mean}_{i \in B}\, g_{t,i}^2

    The default blocks are the adam-mini package's, by name (:func:`gradtx.adam_mini_blocks`:
    per head of a query or key, per output neuron of the value, attention output and MLP, per
    token of the embedding and output head, per element of a bias, per leaf otherwise), and so
    is the default decay mask (no decay where the path has ``norm``, ``ln`` or ``bias``). The
    package's ``Adam_mini(named_parameters, lr, betas, eps, weight_decay, dim, n_heads)`` is
    ``adam_mini(lr, *betas, eps, weight_decay, num_heads=n_heads)`` on params named as its
    module's (keys such as ``"layers.0.attn.q_proj.weight"``).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the package's).
      eps: ε >= 0 outside the root. Default 1e-8 (the package's).
      weight_decay: λ >= 0, decoupled. Default 0.
      mask: decay only where this tree of bools (or function of the params) is True. Default
        None: the package's rule, every leaf whose lowercased path has none of ``norm``,
        ``ln``, ``bias`` in it.
      blocks: ``(path, shape) -> AdamMiniBlocks`` per leaf; default
        :func:`gradtx.adam_mini_blocks` with ``num_heads``.
      num_heads: attention heads, for the default blocks of a query or key matrix.
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; with weight decay its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"embed": {"weight": jnp.zeros((2, 2))}, "norm": {"weight": jnp.zeros(2)}}
      >>> tx = gradtx.adam_mini(0.1)
      >>> g = {"embed": {"weight": jnp.array([[3.0, 4.0], [1.0, 1.0]])},
      ...      "norm": {"weight": jnp.array([3.0, 4.0])}}
      >>> u, state = tx.update(g, tx.init(params), params)
      >>> [[round(x, 4) for x in row] for row in u["embed"]["weight"].tolist()]  # per token
      [[-0.0849, -0.1131], [-0.1, -0.1]]
      >>> state.inner_state[0].nu["norm"]["weight"].shape  # one for the whole leaf
      (1,)

    References:
      Zhang, Chen, Li, Ding, Chen, Ye, Luo and Sun, *Adam-mini: Use Fewer Learning Rates To Gain
      More*, ICLR 2025 (arXiv:2406.16793), Algorithm 1.
    """
    owner = "adam_mini"
    block_fn = check_blocks(owner, blocks, num_heads)
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)
    check_mask(owner, "mask", mask)
    decay_mask = adam_mini_decay_mask if mask is None else mask

    def build(learning_rate, b1, b2, eps, weight_decay):
        return chain(
            _scale_by_adam_mini(b1, b2, eps, blocks=block_fn, mu_dtype=mu_dtype),
            _add_decayed_weights(weight_decay, decay_mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
    )
