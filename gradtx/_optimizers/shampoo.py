"""Shampoo: a Kronecker-factored preconditioner per block, grafted onto a first-order step.

Its transformation is :func:`gradtx.scale_by_shampoo` (:mod:`gradtx._transforms.kronecker`);
the inverse roots are :func:`gradtx.matrix_inverse_pth_root`'s.
"""

from __future__ import annotations

import functools

from jax import lax

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_flag
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.kronecker import ScaleByShampooState, _scale_by_shampoo
from gradtx._transforms.shampoo_arguments import shampoo_arguments
from gradtx._transforms.step_size import _scale_by_learning_rate


def shampoo(
    learning_rate: ScalarOrSchedule,
    block_size: int = 128,
    beta1: ScalarOrSchedule = 0.9,
    beta2: ScalarOrSchedule = 0.999,
    diagonal_epsilon: ScalarOrSchedule = 1e-10,
    matrix_epsilon: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    statistics_compute_steps: int = 1,
    best_effort_shape_interpretation: bool = True,
    graft_type: str | int = "sgd",
    nesterov: bool = True,
    exponent_override: int = 0,
    *,
    moving_average_for_momentum: bool = False,
    inverse_failure_threshold: ScalarOrSchedule = 0.1,
    skip_preconditioning_dim_size_gt: int = 4096,
    clip_by_scaled_gradient_norm: ScalarOrSchedule | None = None,
    precision: lax.Precision | str | None = lax.Precision.HIGHEST,
    tensordot_precision: lax.Precision | str | None = None,
    relative_matrix_epsilon: bool = True,
    merge_small_dims_block_size: int = 4096,
    skip_preconditioning_rank_lt: int = 1,
    decoupled_weight_decay: bool = False,
    root_method: str = "eigh",
) -> GradientTransformation:
    r"""Shampoo (scalable, blocked and grafted): second-order statistics per axis of each block.

    ``chain(scale_by_shampoo(...), scale_by_learning_rate(η))``, with the weight decay
    coupled (default, the reference's) or decoupled:

    .. math::
      \theta_t = \theta_{t-1} - \eta_t\, u_t \quad\text{or}\quad
      \theta_t = \theta_{t-1} - \eta_t\, (u_t + \lambda \theta_{t-1}),

    where :math:`u_t` is :func:`gradtx.scale_by_shampoo`'s step: per block of each leaf
    (``block_size``) the direction :math:`L^{-1/4} G R^{-1/4}` (for a matrix; an order-k
    block: the mode products with :math:`H_i^{-1/(2k)}`), its statistics decayed by
    :math:`\beta_2` and its inverse roots recomputed every ``preconditioning_compute_steps``
    steps; the direction takes per leaf the norm of the ``graft_type`` step (SGD by default),
    then momentum :math:`\beta_1` (Nesterov by default); before ``start_preconditioning_step``
    the graft's own step is taken. Leaves above ``skip_preconditioning_dim_size_gt`` or of
    rank below ``skip_preconditioning_rank_lt`` take the graft's (diagonal) step throughout.
    Coupled, :math:`\lambda\theta` is added to both steps before the momentum.

    The arguments and defaults are those of ``distributed_shampoo`` (the optax-shampoo
    package, the authors' implementation), which this matches in float64 on its choices; not
    taken over: its sharding and quantization options, ``decoupled_learning_rate=False``,
    LOBPCG and one-sided preconditioning. Its ``decoupled_weight_decay=True`` scales the decay
    by the learning rate twice (:math:`\eta(u + \eta\lambda\theta)`): with a constant rate
    that is this function's decoupled decay with :math:`\lambda \eta`; here, as in AdamW and
    pytorch-optimizer's ``ScalableShampoo``, the decay is :math:`\eta\lambda\theta`.

    Args:
      learning_rate: η >= 0 (no default).
      block_size: the largest block along an axis (0: no blocks). Default 128, the
        reference's advice (it has no default).
      beta1: :math:`\beta_1` in [0, 1), the momentum. Default 0.9.
      beta2: :math:`\beta_2` in [0, 1], the statistics' and RMSProp graft's decay (1: sums,
        the original Shampoo and AdaGrad). Default 0.999.
      diagonal_epsilon: ε >= 0 of the AdaGrad, RMSProp and Adam grafts. Default 1e-10.
      matrix_epsilon: ε >= 0: the statistics start at ε I and the roots' ridge is ε times
        the largest eigenvalue. Default 1e-6.
      weight_decay: λ >= 0. Default 0.
      start_preconditioning_step: the first step (from 0) taking the Shampoo direction.
        Default 5.
      preconditioning_compute_steps: steps between inverse roots. Default 1.
      statistics_compute_steps: steps between statistics updates. Default 1.
      best_effort_shape_interpretation: merge small adjacent axes (a convolution kernel
        (3, 3, 64, 128) is a (576, 128) matrix). Default True.
      graft_type: ``"sgd"`` (default), ``"adagrad"``, ``"rmsprop"``, ``"rmsprop_normalized"``,
        ``"sqrt_n"``, ``"adagrad_normalized"`` (or the reference's ``GraftingType`` 1 to 6),
        ``"adam"`` or ``"none"``; see :func:`gradtx.scale_by_shampoo`.
      nesterov: Nesterov momentum. Default True.
      exponent_override: p of every inverse root, or 0 (default) for twice the order.
      moving_average_for_momentum: the momentum as an EMA (weight :math:`1 - \beta_1`).
        Default False.
      inverse_failure_threshold: the largest error of a Newton root that is used. Default 0.1.
      skip_preconditioning_dim_size_gt: the longest axis preconditioned. Default 4096.
      clip_by_scaled_gradient_norm: the RMSProp and Adam grafts' RMS bound, or None.
      precision: the roots' matrix product precision. Default HIGHEST.
      tensordot_precision: the statistics' and preconditioning products' precision. Default
        None.
      relative_matrix_epsilon: the ridge relative to the largest eigenvalue. Default True.
      merge_small_dims_block_size: the largest merged axis. Default 4096.
      skip_preconditioning_rank_lt: the lowest rank preconditioned. Default 1.
      decoupled_weight_decay: decay as AdamW (:math:`\eta\lambda\theta`, outside the
        momentum) instead of coupled. Default False, the reference's.
      root_method: ``"eigh"`` (default) or ``"newton"``, see
        :func:`gradtx.matrix_inverse_pth_root`. On CPU each eigendecomposition is its own
        LAPACK call (jaxlib 0.10's batched calls, run side by side in a step with many roots,
        could wait on each other forever).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params (the weight decay).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = gradtx.shampoo(
      ...     0.1, beta1=0.0, start_preconditioning_step=0, best_effort_shape_interpretation=False
      ... )
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.array([[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]]), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"].round(2)  # -0.1 ||g|| L^-1/4 g R^-1/4 / ||L^-1/4 g R^-1/4||
      Array([[-0.29, -0.  ],
             [-0.  , -0.29],
             [-0.  , -0.  ]], dtype=float32)
      >>> updates["b"].round(3)  # a vector: L^-1/2 g, full-matrix AdaGrad, the norm of -0.1 g
      Array([-0.1, -0.1], dtype=float32)

    References:
      Gupta, Koren and Singer, *Shampoo: Preconditioned Stochastic Tensor Optimization*, ICML
      2018; Anil, Gupta, Koren, Regan and Singer, *Scalable Second Order Optimization for Deep
      Learning*, 2020 (arXiv:2002.09018).
    """
    owner = "shampoo"
    fixed = shampoo_arguments(
        owner,
        block_size=block_size,
        start_preconditioning_step=start_preconditioning_step,
        preconditioning_compute_steps=preconditioning_compute_steps,
        statistics_compute_steps=statistics_compute_steps,
        best_effort_shape_interpretation=best_effort_shape_interpretation,
        graft_type=graft_type,
        nesterov=nesterov,
        exponent_override=exponent_override,
        moving_average_for_momentum=moving_average_for_momentum,
        skip_preconditioning_dim_size_gt=skip_preconditioning_dim_size_gt,
        precision=precision,
        tensordot_precision=tensordot_precision,
        relative_matrix_epsilon=relative_matrix_epsilon,
        merge_small_dims_block_size=merge_small_dims_block_size,
        skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
        root_method=root_method,
    )
    decoupled = check_flag(owner, "decoupled_weight_decay", decoupled_weight_decay)
    scale = functools.partial(_scale_by_shampoo, **fixed)

    def build(
        learning_rate,
        beta1,
        beta2,
        diagonal_epsilon,
        matrix_epsilon,
        weight_decay,
        inverse_failure_threshold,
        clip_by_scaled_gradient_norm,
    ):
        links = [
            scale(
                beta1,
                beta2,
                diagonal_epsilon,
                matrix_epsilon,
                None if decoupled else weight_decay,
                inverse_failure_threshold,
                clip_by_scaled_gradient_norm,
            )
        ]
        if decoupled:
            links.append(_add_decayed_weights(weight_decay))
        links.append(_scale_by_learning_rate(learning_rate))
        return chain(*links)

    return live(
        owner,
        build,
        optional=("clip_by_scaled_gradient_norm",),
        ranges=ScaleByShampooState.live_ranges,
        learning_rate=learning_rate,
        beta1=beta1,
        beta2=beta2,
        diagonal_epsilon=diagonal_epsilon,
        matrix_epsilon=matrix_epsilon,
        weight_decay=weight_decay,
        inverse_failure_threshold=inverse_failure_threshold,
        clip_by_scaled_gradient_norm=clip_by_scaled_gradient_norm,
    )
