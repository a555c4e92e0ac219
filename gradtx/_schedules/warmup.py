"""Warmup schedules: a linear warmup to a peak, then constant, cosine, exponential or
warmup-stable-decay.

Built from the pieces in :mod:`gradtx._schedules.basic`, with the same conventions: a pure
function of the number of updates done so far, float values of the default precision, arguments
checked when the schedule is built.
"""

from __future__ import annotations

import jax.numpy as jnp

from gradtx._schedules.basic import (
    Schedule,
    _anneal,
    _exponential,
    _linear,
    constant_schedule,
)
from gradtx._schedules.steps import (
    _choice,
    _count,
    _finite,
    _fit,
    _positive,
    _step,
    _steps,
)


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    r"""Linear warmup from ``init_value`` to ``peak_value``, then constant.

    .. math::
      \eta_t = \eta_0 + (\eta_{peak} - \eta_0) \frac{\min(t, W)}{W}

    Args:
      init_value: the value at step 0.
      peak_value: the value from step ``warmup_steps`` on.
      warmup_steps: the length :math:`W` of the warmup, >= 0; 0 gives ``peak_value`` from step
        0 on (optax gives a constant ``init_value`` there).

    Returns:
      A schedule ``step -> value``. Matches optax's ``warmup_constant_schedule`` for
      ``warmup_steps > 0``.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.warmup_constant_schedule(0.0, 1.0, warmup_steps=2)
      >>> [round(float(schedule(t)), 4) for t in range(4)]
      [0.0, 0.5, 1.0, 1.0]

    References:
      Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*,
      arXiv:1706.02677, 2017, section 2.2 (gradual warmup).
    """
    owner = "warmup_constant_schedule"
    init_value = _finite(owner, "init_value", init_value)
    peak_value = _finite(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps, 0)
    if warmup_steps == 0:
        return constant_schedule(peak_value)
    return _linear(init_value, peak_value, warmup_steps, 0)


def _after_warmup(init_value: float, peak_value: float, warmup_steps: int, decay: Schedule):
    """Linear warmup over ``warmup_steps``, then ``decay`` counted from the warmup's end."""
    if warmup_steps == 0:
        return decay
    warmup = _linear(init_value, peak_value, warmup_steps, 0)

    def schedule(count):
        count = _count(count)
        steps = _fit(count, warmup_steps)
        return jnp.where(count < steps, warmup(count), decay(jnp.maximum(count - steps, 0)))

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    r"""Linear warmup from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    .. math::
      \eta_t = \begin{cases}
        \eta_0 + (\eta_{peak} - \eta_0)\, t / W & t < W \\
        \eta_{end} + (\eta_{peak} - \eta_{end}) \left(\tfrac12\left(1 + \cos\tfrac{\pi
          \min(t - W, D - W)}{D - W}\right)\right)^{p} & t \ge W
      \end{cases}

    Args:
      init_value: the value at step 0.
      peak_value: the value at step ``warmup_steps``.
      warmup_steps: the length :math:`W` of the warmup, >= 0.
      decay_steps: the total length :math:`D` of the schedule *including* the warmup
        (optax's meaning), > ``warmup_steps``.
      end_value: the value from step ``decay_steps`` on.
      exponent: the exponent :math:`p` of the cosine factor, > 0.

    Returns:
      A schedule ``step -> value``. Matches optax's ``warmup_cosine_decay_schedule``, except
      with ``peak_value == 0``, where optax ignores ``end_value`` (its decay is relative to the
      peak) and gradtx still ends at ``end_value``.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 2, 6, end_value=0.1)
      >>> [round(float(schedule(t)), 4) for t in range(8)]
      [0.0, 0.5, 1.0, 0.8682, 0.55, 0.2318, 0.1, 0.1]

    References:
      Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*,
      arXiv:1706.02677, 2017, section 2.2 (gradual warmup);
      Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*,
      ICLR 2017, eq. 5 (the cosine decay).
    """
    owner = "warmup_cosine_decay_schedule"
    init_value = _finite(owner, "init_value", init_value)
    peak_value = _finite(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps, 0)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"{owner}: decay_steps must be > warmup_steps (it counts the warmup too), "
            f"got decay_steps={decay_steps} and warmup_steps={warmup_steps}"
        )
    end_value = _finite(owner, "end_value", end_value)
    exponent = _positive(owner, "exponent", exponent)
    length = decay_steps - warmup_steps

    def decay(count):
        done = jnp.clip(_step(count), 0, float(length))
        left = float(length) - done
        return _anneal(peak_value, end_value, done, left, float(length), "cos", exponent)

    return _after_warmup(init_value, peak_value, warmup_steps, decay)


def warmup_exponential_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    r"""Linear warmup from ``init_value`` to ``peak_value``, then :func:`exponential_decay`.

    .. math::
      \eta_t = \begin{cases}
        \eta_0 + (\eta_{peak} - \eta_0)\, t / W & t < W \\
        \operatorname{exponential\_decay}(\eta_{peak}, T, r, t_b, \text{staircase},
          \eta_{end})(t - W) & t \ge W
      \end{cases}

    Args:
      init_value: the value at step 0.
      peak_value: the value at step ``warmup_steps``.
      warmup_steps: the length :math:`W` of the warmup, >= 0.
      transition_steps: as in :func:`exponential_decay`, counted from the warmup's end.
      decay_rate: as in :func:`exponential_decay`.
      transition_begin: steps after the warmup at ``peak_value`` before the decay starts.
      staircase: as in :func:`exponential_decay`.
      end_value: as in :func:`exponential_decay`.

    Returns:
      A schedule ``step -> value``. Matches optax's ``warmup_exponential_decay_schedule``
      (with :func:`exponential_decay`'s stricter argument checks).

    Example:
      >>> import gradtx
      >>> schedule = gradtx.warmup_exponential_decay_schedule(0.0, 1.0, 2, 1, 0.5)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [0.0, 0.5, 1.0, 0.5, 0.25, 0.125]

    References:
      Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*,
      arXiv:1706.02677, 2017, section 2.2 (gradual warmup); Szegedy et al., *Going Deeper with
      Convolutions*, CVPR 2015, section 6 (exponential decay).
    """
    owner = "warmup_exponential_decay_schedule"
    init_value = _finite(owner, "init_value", init_value)
    peak_value = _finite(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps, 0)
    decay = _exponential(
        owner, peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return _after_warmup(init_value, peak_value, warmup_steps, decay)


def warmup_stable_decay_schedule(
    peak_value: float,
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
    decay_type: str = "linear",
) -> Schedule:
    r"""Warmup-stable-decay (WSD): linear warmup, a constant stretch, then a decay to the end.

    With :math:`x = \operatorname{clip}(t - W - S, 0, D) / D` the progress of the decay:

    .. math::
      \eta_t = \begin{cases}
        \eta_0 + (\eta_{peak} - \eta_0)\, t / W & t < W \\
        \eta_{end} + (\eta_{peak} - \eta_{end})\, f(x) & t \ge W
      \end{cases}
      \qquad f(x) = \begin{cases}
        1 - x & \text{linear} \\ \tfrac12 (1 + \cos \pi x) & \text{cosine} \\
        1 - \sqrt{x} & \text{sqrt}
      \end{cases}

    so the value is ``peak_value`` from step :math:`W` to :math:`W + S` and ``end_value`` from
    step :math:`W + S + D` on.

    Args:
      peak_value: the value of the stable stretch.
      warmup_steps: the length :math:`W` of the warmup, >= 0.
      stable_steps: the length :math:`S` of the stable stretch, >= 0.
      decay_steps: the length :math:`D` of the decay, >= 1.
      init_value: the value at step 0.
      end_value: the value after the decay.
      decay_type: ``"linear"``, ``"cosine"`` or ``"sqrt"`` (the shape :math:`f`).

    Returns:
      A schedule ``step -> value``. Neither optax nor PyTorch has it.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.warmup_stable_decay_schedule(1.0, 2, 2, 4, decay_type="sqrt")
      >>> [round(float(schedule(t)), 4) for t in range(10)]
      [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.2929, 0.134, 0.0, 0.0]

    References:
      Hu et al., *MiniCPM: Unveiling the Potential of Small Language Models with Scalable
      Training Strategies*, 2024; Hägele et al., *Scaling Laws and Compute-Optimal Training
      Beyond Fixed Training Durations*, 2024 (the ``"sqrt"`` decay).
    """
    owner = "warmup_stable_decay_schedule"
    peak_value = _finite(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps, 0)
    stable_steps = _steps(owner, "stable_steps", stable_steps, 0)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1)
    init_value = _finite(owner, "init_value", init_value)
    end_value = _finite(owner, "end_value", end_value)
    shape = _choice(owner, "decay_type", decay_type, ("linear", "cosine", "sqrt"))
    shape = "cos" if shape == "cosine" else shape

    def decay(count):
        done = jnp.clip(_step(count) - float(stable_steps), 0, float(decay_steps))
        left = float(decay_steps) - done
        return _anneal(peak_value, end_value, done, left, float(decay_steps), shape)

    return _after_warmup(init_value, peak_value, warmup_steps, decay)
