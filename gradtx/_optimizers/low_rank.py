"""Low-rank optimizers: GaLore.

The inner optimizer runs on each matrix's gradient projected to low rank
(:mod:`gradtx._transforms.low_rank`); decoupled weight decay and the learning rate act on the
full update, after it is projected back.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.low_rank import GaLoreState, _scale_by_galore, galore_arguments
from gradtx._transforms.step_size import _scale_by_learning_rate


def galore(
    learning_rate: ScalarOrSchedule,
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: ScalarOrSchedule = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    weight_dimension_numbers: Any = None,
    *,
    svd_dtype: Any = None,
    align_signs: bool = False,
) -> GradientTransformation:
    r"""GaLore: Adam (or another inner optimizer) on low-rank projections of the gradients.

    ``chain(scale_by_galore(rank, update_proj_gap, scale, base_optimizer, ...),
    add_decayed_weights(λ, mask), scale_by_learning_rate(η))``: for a projected matrix,

    .. math::
      \theta_t = \theta_{t-1} - \eta_t \left( \alpha\, P_t\, \rho(P_t^H G_t) + \lambda\,
      \theta_{t-1} \right) \quad (m \ge n; \text{ else } \rho(G_t P_t) P_t^H),

    with :math:`P_t` the leading ``rank`` singular vectors of the gradient, refreshed every
    ``update_proj_gap`` steps (:func:`gradtx.scale_by_galore`), and :math:`\rho` the inner
    optimizer, Adam by default: the paper's GaLore-AdamW when ``weight_decay`` > 0. The other
    leaves take the inner optimizer's step on their whole gradient, unscaled. The arguments,
    defaults and numbers are optax.contrib.galore's (see ``svd_dtype`` for float64 params).

    Args:
      learning_rate: η >= 0 (no default, as in optax).
      rank: the rank of each projection (capped at the matrix's smaller side). Default 128.
      update_proj_gap: the steps between refreshes of the projectors. Default 200.
      scale: α >= 0, the factor on the projected-back updates. Default 1.0.
      base_optimizer: the inner optimizer, one that needs no params. Default
        :func:`gradtx.scale_by_adam` (its b1, b2, eps, eps_root live in the state).
      weight_decay: λ >= 0, decoupled, on the full params. Default 0.
      mask: which leaves decay, as :func:`gradtx.add_decayed_weights`'s mask.
      weight_dimension_numbers: which leaves are projected and how, as in
        :func:`gradtx.scale_by_galore` (default: every rank-2 leaf).
      svd_dtype: the dtype of the SVD (default: at least float32, the params' if wider;
        ``"float32"`` is optax's choice).
      align_signs: turn each refreshed singular vector towards the one it replaces, for a
        trajectory independent of the SVD's sign choices. Default False (optax's numbers).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = gradtx.galore(learning_rate=0.1, rank=1)
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"].round(3)  # Adam's first step on the leading direction only
      Array([[-0.1, -0. ],
             [-0. , -0. ],
             [-0. , -0. ]], dtype=float32)
      >>> updates["b"].round(3)  # not a matrix: a whole Adam step
      Array([-0.1, -0.1], dtype=float32)

    References:
      Zhao, Zhang, Chen, Wang, Anandkumar and Tian, *GaLore: Memory-Efficient LLM Training by
      Gradient Low-Rank Projection*, ICML 2024 (arXiv:2403.03507), Algorithms 1 and 2.
    """
    owner = "galore"
    fixed = galore_arguments(
        owner,
        rank,
        update_proj_gap,
        base_optimizer,
        weight_dimension_numbers,
        svd_dtype,
        align_signs,
    )
    check_mask(owner, "mask", mask)

    def build(learning_rate, scale, weight_decay):
        return chain(
            _scale_by_galore(scale, **fixed),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        ranges=GaLoreState.live_ranges,
        learning_rate=learning_rate,
        scale=scale,
        weight_decay=weight_decay,
    )
