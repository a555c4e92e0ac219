"""PSGD: preconditioned SGD with a fitted preconditioner (Li, 2018 and 2024). Kron: one
Kronecker factor per axis (:mod:`gradtx._transforms.psgd`)."""

from __future__ import annotations

import functools
from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.psgd import (
    ScaleByKronState,
    _scale_by_kron,
    kron_arguments,
    precond_update_prob_schedule,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def kron(
    learning_rate: ScalarOrSchedule = 0.001,
    b1: ScalarOrSchedule = 0.9,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    preconditioner_update_probability: ScalarOrSchedule | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    preconditioner_lr: ScalarOrSchedule = 0.1,
    preconditioner_init_scale: ScalarOrSchedule = 1.0,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    precond_update_precision: Any = "tensorfloat32",
    precond_grads_precision: Any = None,
    *,
    max_rms: ScalarOrSchedule | None = 1.1,
    key: Any = 5318008,
    deterministic_update: bool = True,
) -> GradientTransformation:
    r"""PSGD Kron: momentum preconditioned by fitted Kronecker factors, decoupled weight decay.

    ``chain(scale_by_kron(...), add_decayed_weights(λ, weight_decay_mask),
    scale_by_learning_rate(η))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta_t \left( \mathrm{clip}_{\rho}(Q^T Q\, \hat m_t)
      + \lambda\, \theta_{t-1} \right),

    with :math:`Q = Q_1 \otimes \dots \otimes Q_k` fitted to whiten the momentum (see
    :func:`gradtx.scale_by_kron`) and :math:`\mathrm{clip}_\rho` the cap of each leaf's RMS at
    ρ = ``max_rms``. The names, defaults and random probes are those of ``psgd_jax.kron``;
    gradtx fits the factors in float64 for float64 params (psgd-jax: the default float dtype)
    and balances them at every refit (psgd-jax: at random, one refit in a hundred), which
    changes only roundings.

    Args:
      learning_rate: η >= 0. Default 0.001.
      b1: β₁ in [0, 1), the momentum's decay. Default 0.9.
      weight_decay: λ >= 0, decoupled. Default 0.
      weight_decay_mask: which leaves decay, as :func:`gradtx.add_decayed_weights`'s mask.
      preconditioner_update_probability: p in [0, 1] or a schedule; None (default):
        :func:`gradtx.precond_update_prob_schedule` ().
      max_size_triangular: an axis longer than this gets a diagonal factor. Default 8192.
      min_ndim_triangular: a leaf with fewer axes gets diagonal factors. Default 2.
      memory_save_mode: None (default), ``"one_diag"`` or ``"all_diag"``.
      momentum_into_precond_update: fit to the momentum (default) or the gradient.
      preconditioner_lr: μ >= 0, the fit's step. Default 0.1.
      preconditioner_init_scale: the initial :math:`Q = sI`, s > 0. Default 1.
      mu_dtype: dtype of the momentum (default: the params').
      precond_dtype: dtype of the factors (default: the leaf's, at least float32).
      precond_update_precision: the fit's matmul precision. Default ``"tensorfloat32"``.
      precond_grads_precision: the preconditioning's matmul precision. Default None.
      max_rms: the cap ρ > 0 on each leaf's RMS before the decay, or None. Default 1.1.
      key: an int seed or a ``jax.random`` key. Default 5318008 (psgd-jax's).
      deterministic_update: refit on a counter (default) or at random with probability p.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> loss = lambda p: jnp.sum((jnp.array([[10.0], [1.0]]) * p["w"]) ** 2)
      >>> params = {"w": jnp.ones((2, 3))}
      >>> tx = gradtx.kron(learning_rate=0.05)
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(jax.grad(loss)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(loss(params) < 1e-2 * 303.0)
      True

    References:
      Li, *Preconditioned Stochastic Gradient Descent*, IEEE TNNLS 29(5), 2018; Li,
      *Stochastic Hessian Fittings with Lie Groups*, 2024 (arXiv:2402.11858).
    """
    owner = "kron"
    fixed = kron_arguments(
        owner,
        key,
        max_size_triangular,
        min_ndim_triangular,
        memory_save_mode,
        momentum_into_precond_update,
        mu_dtype,
        precond_dtype,
        precond_update_precision,
        precond_grads_precision,
        deterministic_update,
    )
    check_mask(owner, "weight_decay_mask", weight_decay_mask)
    if preconditioner_update_probability is None:
        preconditioner_update_probability = precond_update_prob_schedule()

    def build(
        learning_rate,
        b1,
        weight_decay,
        preconditioner_update_probability,
        preconditioner_lr,
        preconditioner_init_scale,
        max_rms,
    ):
        return chain(
            _scale_by_kron(
                b1,
                preconditioner_update_probability,
                preconditioner_lr,
                preconditioner_init_scale,
                max_rms,
                **fixed,
            ),
            _add_decayed_weights(weight_decay, weight_decay_mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        functools.partial(build),
        optional=("max_rms",),
        ranges=ScaleByKronState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        weight_decay=weight_decay,
        preconditioner_update_probability=preconditioner_update_probability,
        preconditioner_lr=preconditioner_lr,
        preconditioner_init_scale=preconditioner_init_scale,
        max_rms=max_rms,
    )
