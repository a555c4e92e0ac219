"""Schedule-free optimizers: SGD and AdamW inside :func:`gradtx.schedule_free`.

Each is one live state: the learning rate (with its warmup) moves z through the base chain and
weights the average x, so one value in ``hyperparams`` drives both.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradtx._core.base import GradientTransformation, identity
from gradtx._core.checks import _float_dtype, check_count, check_dtype
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.second_moments import _scale_by_rms
from gradtx._transforms.step_size import _scale_by_learning_rate
from gradtx._wrappers.schedule_free import ScheduleFreeState, _schedule_free


def _warmed_up(learning_rate: Any, warmup_steps: int | None) -> Any:
    """The paper's linear warmup γ min(1, t / T) at step t = count + 1 (the first update's rate
    is γ / T, not 0), on a constant or a scheduled γ."""
    if warmup_steps is None:
        return learning_rate

    def schedule(count):
        dtype = _float_dtype()
        ramp = jnp.minimum(1, (jnp.asarray(count).astype(dtype) + 1) / warmup_steps)
        base = learning_rate(count) if callable(learning_rate) else learning_rate
        return jnp.asarray(base).astype(dtype) * ramp

    return schedule


def _arguments(owner: str, learning_rate: Any, warmup_steps: Any, state_dtype: Any):
    if warmup_steps is not None:
        warmup_steps = check_count(owner, "warmup_steps", warmup_steps)
    return _warmed_up(learning_rate, warmup_steps), check_dtype(owner, "state_dtype", state_dtype)


def schedule_free_sgd(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    warmup_steps: int | None = None,
    b1: ScalarOrSchedule = 0.9,
    weight_decay: ScalarOrSchedule | None = None,
    weight_lr_power: ScalarOrSchedule = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-free SGD: :func:`gradtx.schedule_free` around SGD without momentum.

    .. math::
      z_{t+1} = z_t - \gamma_t (g_t + \lambda y_t), \quad
      x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \quad
      y_{t+1} = \beta_1 x_{t+1} + (1 - \beta_1) z_{t+1},

    with :math:`g_t` the gradient at the params y, :math:`\gamma_t = \gamma \min(1, t/T)`
    (T = ``warmup_steps``), :math:`c_{t+1} = w_t / \sum_{i \le t} w_i` and
    :math:`w_t = (\max_{i \le t} \gamma_i)^r`. The weight decay is an L2 term at y, as in
    the paper and the authors' ``SGDScheduleFree``. Evaluate at x:
    :func:`gradtx.schedule_free_eval_params`.

    Warmup follows the paper and the authors' code (the first update's rate is γ / T).
    optax.contrib.schedule_free_sgd takes its base SGD's rate one step behind (0 at the first
    update) while its average weights follow the paper's; ``schedule_free(sgd(s), learning_rate=
    lambda count: s(count + 1))`` with s = ``warmup_constant_schedule(0, γ, T)`` reproduces it.

    Args:
      learning_rate: γ >= 0, a float or a schedule. Default 1.0 (optax's and the authors').
      warmup_steps: T >= 1, the length of the linear warmup (a Python int), or None for none.
      b1: β₁ in (0, 1], the interpolation between x and z. Default 0.9.
      weight_decay: λ >= 0, or None (the default, as in optax) for no decay.
      weight_lr_power: r >= 0. Default 2.0.
      state_dtype: the dtype of z (default: each param's).

    Returns:
      A :class:`GradientTransformation` whose update needs the params; its hyperparameters
      are ``learning_rate`` (with the warmup: set it and the warmup stops), ``b1``,
      ``weight_lr_power`` and ``weight_decay`` if given.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda p: jnp.sum(p ** 2)
      >>> tx = gradtx.schedule_free_sgd(0.25)
      >>> params = jnp.array([1.0, 2.0])
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> float(f(gradtx.schedule_free_eval_params(state, params))) < 1e-6  # f(x) at 100 steps
      True

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, *The Road Less Scheduled*,
      NeurIPS 2024 (arXiv:2405.15682).
    """
    owner = "schedule_free_sgd"
    learning_rate, state_dtype = _arguments(owner, learning_rate, warmup_steps, state_dtype)

    def build(learning_rate, b1, weight_decay, weight_lr_power):
        decay = identity() if weight_decay is None else _add_decayed_weights(weight_decay)
        base = chain(decay, _scale_by_learning_rate(learning_rate))
        return _schedule_free(
            learning_rate, b1, weight_lr_power, base_optimizer=base, state_dtype=state_dtype
        )

    return live(
        owner,
        build,
        optional=("weight_decay",),
        ranges=ScheduleFreeState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        weight_decay=weight_decay,
        weight_lr_power=weight_lr_power,
    )


def _adamw_base(learning_rate, b2, eps, weight_decay):
    # Adam without momentum: RMSProp with the bias correction inside the root, eps outside
    moment = _scale_by_rms(b2, eps, initial_scale=0.0, eps_in_sqrt=False, bias_correction=True)
    return chain(moment, _add_decayed_weights(weight_decay), _scale_by_learning_rate(learning_rate))


def schedule_free_adamw(
    learning_rate: ScalarOrSchedule = 0.0025,
    *,
    warmup_steps: int | None = None,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_lr_power: ScalarOrSchedule = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-free AdamW: :func:`gradtx.schedule_free` around Adam without momentum.

    .. math::
      v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
      z_{t+1} = z_t - \gamma_t \Big( \frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
        + \lambda y_t \Big),

    .. math::
      x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \quad
      y_{t+1} = \beta_1 x_{t+1} + (1 - \beta_1) z_{t+1},

    with :math:`g_t` the gradient at the params y, :math:`\gamma_t = \gamma \min(1, t/T)`
    (T = ``warmup_steps``), :math:`c_{t+1} = w_t / \sum_{i \le t} w_i` and
    :math:`w_t = (\max_{i \le t} \gamma_i)^r`. Evaluate at x:
    :func:`gradtx.schedule_free_eval_params`.

    The bias correction is the authors' code's (``AdamWScheduleFree``) and optax's: inside
    the root. The paper's Algorithm 1 puts :math:`\sqrt{1 - \beta_2^t}` into :math:`\gamma_t`
    instead (ε then unscaled, and the weights w built from the corrected rate); the authors
    keep that version as ``AdamWScheduleFreePaper``, noting that it can be unstable. It is
    ``schedule_free(chain(scale_by_rms(b2, eps, eps_in_sqrt=False), add_decayed_weights(λ),
    scale_by_learning_rate(s)), learning_rate=s)`` with
    ``s = lambda count: γ_t * sqrt(1 - b2 ** (count + 1))``.

    Warmup follows the paper and the authors' code (the first update's rate is γ / T).
    optax.contrib.schedule_free_adamw takes its base's rate one step behind (0 at the first
    update); see :func:`gradtx.schedule_free` for the schedule that reproduces it.

    Args:
      learning_rate: γ >= 0, a float or a schedule. Default 0.0025 (optax's and the
        authors').
      warmup_steps: T >= 1, the length of the linear warmup (a Python int), or None for none.
      b1: β₁ in (0, 1], the interpolation between x and z. Default 0.9.
      b2: β₂ in [0, 1), the decay of the second moment. Default 0.999.
      eps: ε >= 0, added to the root. Default 1e-8.
      weight_decay: λ >= 0, decoupled, at y (multiplied by the learning rate). Default 0.
      weight_lr_power: r >= 0. Default 2.0.
      state_dtype: the dtype of z (default: each param's).

    Returns:
      A :class:`GradientTransformation` whose update needs the params; its hyperparameters
      are ``learning_rate`` (with the warmup: set it and the warmup stops), ``b1``, ``b2``,
      ``eps``, ``weight_decay`` and ``weight_lr_power``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda p: jnp.sum(p ** 2)
      >>> tx = gradtx.schedule_free_adamw(0.1, warmup_steps=5)
      >>> params = jnp.array([1.0, 2.0])
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> float(f(gradtx.schedule_free_eval_params(state, params))) < 0.05
      True

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, *The Road Less Scheduled*,
      NeurIPS 2024 (arXiv:2405.15682), Algorithm 1.
    """
    owner = "schedule_free_adamw"
    learning_rate, state_dtype = _arguments(owner, learning_rate, warmup_steps, state_dtype)

    def build(learning_rate, b1, b2, eps, weight_decay, weight_lr_power):
        base = _adamw_base(learning_rate, b2, eps, weight_decay)
        return _schedule_free(
            learning_rate, b1, weight_lr_power, base_optimizer=base, state_dtype=state_dtype
        )

    return live(
        owner,
        build,
        ranges=ScheduleFreeState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
        weight_lr_power=weight_lr_power,
    )
