"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2024).

A matrix-aware optimizer as a short chain: its scaling is :func:`gradtx.scale_by_soap`
(:mod:`gradtx._transforms.eigenbasis`), then AdamW's decoupled decay and the learning rate.
"""

from __future__ import annotations

import functools
from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.eigenbasis import ScaleBySoapState, _scale_by_soap, soap_arguments
from gradtx._transforms.step_size import _scale_by_learning_rate


def soap(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.95,
    b2: ScalarOrSchedule = 0.95,
    shampoo_beta: ScalarOrSchedule | None = None,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    mu_dtype: Any = None,
    *,
    weight_decay_mask: Any = None,
    precondition_1d: bool = False,
    bias_correction: bool = True,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""SOAP: Adam in the eigenbasis of Shampoo's factors, with decoupled weight decay.

    ``chain(scale_by_soap(b1, b2, shampoo_beta, eps, ...), add_decayed_weights(λ),
    scale_by_learning_rate(η))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta_t \left( u_t + \lambda\, \theta_{t-1} \right),

    with :math:`u_t` the update of :func:`gradtx.scale_by_soap` (zero at the first update, which
    only gathers the statistics). Every matrix (a rank-2 leaf, or as
    ``weight_dimension_numbers`` says) is rotated by the eigenvectors of its two factor
    statistics; vectors (unless ``precondition_1d``) and scalars take AdamW's step.

    The authors' SOAP (and pytorch-optimizer's) decays after its step and not at the first
    update, :math:`\theta_t = (1 - \eta\lambda)(\theta_{t-1} - \eta u_t)`; this decays
    :math:`\theta_{t-1}` as AdamW does. Their order is ``chain(scale_by_soap(...), scale(1 -
    η λ), add_decayed_weights(schedule that is 0 at count 0, then λ), scale_by_learning_rate(η))``
    for a constant η.

    Args:
      learning_rate: η >= 0 (no default, as in optax; the authors' is 3e-3).
      b1: β₁ in [0, 1). Default 0.95, the authors'.
      b2: β₂ in [0, 1). Default 0.95, the authors'.
      shampoo_beta: the statistics' decay in [0, 1), or None (default) for ``b2``.
      eps: ε >= 0 added to Adam's denominator. Default 1e-8.
      weight_decay: λ >= 0, decoupled. Default 0.01, the authors'.
      precondition_frequency: Adam steps between refreshes of the bases. Default 10.
      max_precond_dim: the longest side given a basis; longer ones keep the identity. Default
        10000.
      mu_dtype: dtype of the first moment (default: the params').
      weight_decay_mask: which leaves decay, as :func:`gradtx.add_decayed_weights`'s mask.
      precondition_1d: give vectors a basis too. Default False.
      bias_correction: debias Adam's moments. Default True.
      weight_dimension_numbers: which axes are each leaf's matrices' rows and columns, as in
        :func:`gradtx.scale_by_soap`.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
      >>> tx = gradtx.soap(learning_rate=3e-3, weight_decay=0.0)
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), "b": jnp.ones(3)}
      >>> updates, state = tx.update(grads, state, params)  # gathers the statistics only
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"].round(4)  # -η (±1 in the eigenbasis, rotated back)
      Array([[-0.003, -0.   , -0.   ],
             [-0.   , -0.003, -0.   ]], dtype=float32)
      >>> updates["b"].round(4)  # a vector takes Adam's step
      Array([-0.003, -0.003, -0.003], dtype=float32)

    References:
      Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson and Kakade, *SOAP: Improving and
      Stabilizing Shampoo using Adam*, 2024 (arXiv:2409.11321).
    """
    owner = "soap"
    fixed = soap_arguments(
        owner, precondition_frequency, max_precond_dim, precondition_1d, bias_correction, mu_dtype
    )
    check_mask(owner, "weight_decay_mask", weight_decay_mask)
    scaling = functools.partial(_scale_by_soap, dimension_numbers=weight_dimension_numbers, **fixed)

    def build(learning_rate, b1, b2, shampoo_beta, eps, weight_decay):
        return chain(
            scaling(b1, b2, shampoo_beta, eps),
            _add_decayed_weights(weight_decay, weight_decay_mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        optional=("shampoo_beta",),
        ranges=ScaleBySoapState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        shampoo_beta=shampoo_beta,
        eps=eps,
        weight_decay=weight_decay,
    )
