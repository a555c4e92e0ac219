"""Differentially private optimizers: DP-SGD."""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation, identity
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.momentum import _trace
from gradtx._transforms.privacy import (
    DifferentiallyPrivateAggregateState,
    _differentially_private_aggregate,
    key_argument,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def dpsgd(
    learning_rate: ScalarOrSchedule,
    l2_norm_clip: ScalarOrSchedule,
    noise_multiplier: ScalarOrSchedule,
    seed: int,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""DP-SGD: SGD on per-example gradients clipped, summed, noised and averaged.

    ``chain(differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed),
    trace(momentum, nesterov), scale_by_learning_rate(learning_rate))``:

    .. math::
      \tilde g_t = \frac1B \Big(\sum_{i=1}^B g_{t,i} \min\big(1, \tfrac{C}{\|g_{t,i}\|_2}\big)
      + \mathcal N(0, \sigma^2 C^2 I)\Big), \qquad
      \theta_{t+1} = \theta_t - \eta_t \tilde g_t

    (with heavy-ball or Nesterov momentum on :math:`\tilde g_t` when ``momentum`` is given).
    The updates must be per-example gradients, each leaf of shape ``(B, *param.shape)`` (as
    ``jax.vmap`` of one example's gradient makes them); see
    :func:`differentially_private_aggregate`, whose draws, with the same seed, are optax's.

    Args:
      learning_rate: η_t >= 0, a float or a schedule.
      l2_norm_clip: *C* >= 0, the bound on each example's gradient norm.
      noise_multiplier: σ >= 0, the noise's standard deviation relative to *C*.
      seed: the int seed of the noise (required, as in optax).
      momentum: the momentum decay in [0, 1), or None (default) for none.
      nesterov: Nesterov's momentum instead of heavy ball.
      accumulator_dtype: the dtype of the momentum (default: the params'), as in
        :func:`gradtx.sgd`.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> loss = lambda params, x: 0.5 * jnp.sum((params["w"] - x) ** 2)  # one example
      >>> params = {"w": jnp.zeros(2)}
      >>> batch = jnp.array([[3.0, 4.0]] * 8)
      >>> grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)  # shape (8, 2)
      >>> tx = gradtx.dpsgd(1.0, l2_norm_clip=2.5, noise_multiplier=0.0, seed=0)
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> updates["w"]  # each example's gradient (-3, -4), of norm 5, clipped to norm 2.5
      Array([1.5, 2. ], dtype=float32)

    References:
      Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar and Zhang, *Deep Learning with
      Differential Privacy*, 2016, Algorithm 1.
    """
    owner = "dpsgd"
    nesterov = check_flag(owner, "nesterov", nesterov)
    accumulator_dtype = check_dtype(owner, "accumulator_dtype", accumulator_dtype)
    if seed is None:
        raise TypeError(f"{owner}: seed is required (an int)")
    key_data, impl = key_argument(owner, None, seed)

    def build(learning_rate, l2_norm_clip, noise_multiplier, momentum):
        return chain(
            _differentially_private_aggregate(
                l2_norm_clip, noise_multiplier, key_data=key_data, impl=impl, owner=owner
            ),
            identity()
            if momentum is None
            else _trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        optional=("momentum",),
        ranges=DifferentiallyPrivateAggregateState.live_ranges,
        learning_rate=learning_rate,
        l2_norm_clip=l2_norm_clip,
        noise_multiplier=noise_multiplier,
        momentum=momentum,
    )
