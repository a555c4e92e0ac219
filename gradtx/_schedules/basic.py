"""Schedules: pure functions ``step -> value`` for any hyperparameter.

A schedule takes the number of updates done so far (a Python int or an integer array, traced or
not, under ``jit``, ``vmap`` and ``lax.scan`` alike; an array of steps gives an array of values)
and returns float values in the default precision (float32, or float64 with x64). The first
update uses ``schedule(0)``. A float step is taken as is where the schedule is continuous in the
step and rounded down where it jumps at whole steps.

Steps of any size: a concrete Python or NumPy integer past the range of JAX's integers (int32,
or int64 with x64) neither overflows nor wraps around. A schedule gives its value there (past
its last boundary, its end value), and a periodic one its value in its cycle, found exactly.
A traced step is read in its own dtype: the optimizer's int32 count, which saturates at the
largest int32, is read as before.

Precision: every value is a few roundings from the exact formula, to 1e-6 relative in float32,
also where the naive formulas cancel (``1 - t/T`` and ``1 + cos(pi t/T)`` near the end of a
decay to 0, ``decay_rate ** p`` with a rounded base). Each moving stretch is written as an
interpolation from ``start`` to ``end`` whose two weights are formed from the steps done and
the steps left, anchored at the end point of smaller magnitude, so the small weight never comes
from a difference of large ones; and it ends exactly at ``end``, under ``jit`` too (where XLA
computes ``t / T`` as ``t * (1 / T)``, and optax's ``1 - t/T`` can end 1 ulp below 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from gradtx._core.checks import _float_dtype, check_flag
from gradtx._schedules.steps import (
    _boundaries,
    _count,
    _finite,
    _fit,
    _non_negative,
    _positive,
    _reachable,
    _reached,
    _sequence,
    _step,
    _steps,
    _whole,
)

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


# Moving stretches.


def _weights(shape: str, done, left, length):
    """``(w, 1 - w)``: the weight of the start after ``done`` of ``length`` steps, and of the end.

    Both are formed without cancellation: ``w`` from the steps left, ``1 - w`` from the steps
    done (``done + left == length``).
    """
    if shape == "linear":
        return left / length, done / length
    if shape == "cos":
        # (1 + cos(pi x)) / 2 == sin^2(pi (1 - x) / 2): no cancellation near x == 1
        half_pi = math.pi / 2
        return jnp.sin(half_pi * left / length) ** 2, jnp.sin(half_pi * done / length) ** 2
    root = jnp.sqrt(done / length)
    # 1 - sqrt(x) == (1 - x) / (1 + sqrt(x)): no cancellation near x == 1
    return (left / length) / (1 + root), root


def _anneal(start: float, end: float, done, left, length, shape: str, exponent: float = 1.0):
    r"""``end + (start - end) w^p``: from ``start`` (at ``done == 0``) to ``end`` (``left == 0``).

    ``w`` is the start's weight in ``shape`` (:func:`_weights`). The value is anchored at the
    end point of smaller magnitude, so the added term has the anchor's sign; it is ``end``
    exactly at the end either way.
    """
    w, one_minus_w = _weights(shape, done, left, length)
    # XLA divides by a constant as a product with its reciprocal: a weight may be 1 ulp past 1
    w, one_minus_w = jnp.clip(w, 0, 1), jnp.clip(one_minus_w, 0, 1)
    if abs(end) <= abs(start):
        return end + (start - end) * (w if exponent == 1 else w**exponent)
    if exponent == 1:
        rest = one_minus_w
    else:
        rest = -jnp.expm1(exponent * jnp.log1p(-one_minus_w))  # 1 - w^p
    return jnp.where(left == 0, end, start + (end - start) * rest)


def _exp(k: jax.Array, c: float) -> jax.Array:
    """``exp(k * c)`` for a whole-number float ``k`` and a Python float ``c``, to a few ulps.

    ``c`` is split as ``hi + lo`` with ``hi`` on 8 significant bits, so that ``k * hi`` is exact
    (for ``k < 2**16`` in float32) and the rounding of the exponent, which would cost
    ``|k c|`` ulps of the result, is left to the small ``k * lo``.
    """
    if c == 0:
        return jnp.ones_like(k)
    mantissa, exponent = math.frexp(c)
    hi = math.ldexp(round(mantissa * 256), exponent - 8)
    head = jnp.exp(k * hi)
    exact = head + head * jnp.expm1(k * (c - hi))
    # past float range (head 0 or inf) the small part cannot bring it back
    return jnp.where(jnp.isfinite(head) & (head != 0), exact, head)


def constant_schedule(value: float) -> Schedule:
    r"""A constant: :math:`\eta_t = v`.

    Args:
      value: the value at every step.

    Returns:
      A schedule ``step -> value``. Matches optax's ``constant_schedule`` (which returns the
      Python value itself; gradtx returns an array in the default float dtype).

    Example:
      >>> import gradtx
      >>> float(gradtx.constant_schedule(0.5)(1000))
      0.5
    """
    value = _finite("constant_schedule", "value", value)
    return lambda count: jnp.full(jnp.shape(count), value, _float_dtype())


def _linear(init_value: float, end_value: float, steps: int, begin: int) -> Schedule:
    def schedule(count):
        done = jnp.clip(_step(count) - float(begin), 0, float(steps))
        # step counts as Python floats: an int past int32 would overflow in the array math
        return _anneal(init_value, end_value, done, float(steps) - done, float(steps), "linear")

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Linear interpolation from ``init_value`` to ``end_value`` (linear warmup or decay).

    .. math::
      \eta_t = \eta_0 + (\eta_1 - \eta_0)\, \frac{\operatorname{clip}(t - t_b, 0, T)}{T}

    Args:
      init_value: the value up to step ``transition_begin``.
      end_value: the value from step ``transition_begin + transition_steps`` on.
      transition_steps: the length :math:`T` of the line; 0 or less gives a constant
        ``init_value`` (as optax does).
      transition_begin: the step :math:`t_b` where the line starts, >= 0.

    Returns:
      A schedule ``step -> value``. Matches optax's ``linear_schedule`` (optax also accepts a
      ``transition_begin < 0`` counts from 0, as optax's does) and PyTorch's
      ``LinearLR(start_factor, end_factor, total_iters)``, which is this line with
      ``init_value = lr * start_factor`` and ``end_value = lr * end_factor``.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.linear_schedule(0.0, 1.0, transition_steps=4)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

    References:
      Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*,
      arXiv:1706.02677, 2017, section 2.2: the linear warmup this is most often used for.
    """
    owner = "linear_schedule"
    init_value = _finite(owner, "init_value", init_value)
    end_value = _finite(owner, "end_value", end_value)
    transition_steps = _steps(owner, "transition_steps", transition_steps, None)
    transition_begin = max(_steps(owner, "transition_begin", transition_begin, None), 0)
    if transition_steps <= 0:
        return constant_schedule(init_value)
    return _linear(init_value, end_value, transition_steps, transition_begin)


def polynomial_schedule(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Polynomial decay from ``init_value`` to ``end_value``.

    .. math::
      \eta_t = \eta_1 + (\eta_0 - \eta_1) \left(1 - \frac{\operatorname{clip}(t - t_b, 0, T)}{T}
      \right)^{p}

    Args:
      init_value: the value up to step ``transition_begin``.
      end_value: the value from step ``transition_begin + transition_steps`` on.
      power: the exponent :math:`p`, > 0 (1 is :func:`linear_schedule`).
      transition_steps: the length :math:`T` of the decay; 0 or less gives a constant
        ``init_value`` (as optax does).
      transition_begin: the step :math:`t_b` where the decay starts (a negative one counts
        from 0, as optax's does).

    Returns:
      A schedule ``step -> value``. Matches optax's ``polynomial_schedule`` (optax accepts any
      ``power``; gradtx rejects a power <= 0, whose value at the end is 1 or infinite) and,
      with ``end_value = 0``, PyTorch's ``PolynomialLR(total_iters=transition_steps, power=power)``.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.polynomial_schedule(1.0, 0.0, power=2, transition_steps=4)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]

    References:
      Chen, Papandreou, Kokkinos, Murphy and Yuille, *DeepLab: Semantic Image Segmentation with
      Deep Convolutional Nets, Atrous Convolution, and Fully Connected CRFs*, TPAMI 2018
      (arXiv:1606.00915, 2016), section 4.1: the "poly" learning-rate policy.
    """
    owner = "polynomial_schedule"
    init_value = _finite(owner, "init_value", init_value)
    end_value = _finite(owner, "end_value", end_value)
    power = _positive(owner, "power", power)
    transition_steps = _steps(owner, "transition_steps", transition_steps, None)
    transition_begin = max(_steps(owner, "transition_begin", transition_begin, None), 0)
    if transition_steps <= 0:
        return constant_schedule(init_value)

    def schedule(count):
        done = jnp.clip(_step(count) - float(transition_begin), 0, float(transition_steps))
        left = float(transition_steps) - done
        return _anneal(init_value, end_value, done, left, float(transition_steps), "linear", power)

    return schedule


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    r"""Step decay: ``init_value`` times every scale whose boundary has been reached.

    .. math::
      \eta_t = \eta_0 \prod_{i:\ b_i \le t} s_i

    Args:
      init_value: the value before the first boundary.
      boundaries_and_scales: ``{step: scale}``; from ``step`` on (inclusive) the value is
        multiplied by ``scale``. Steps are ints >= 0, scales finite and >= 0. ``None`` or ``{}``
        gives a constant.

    Returns:
      A schedule ``step -> value``. Matches optax's ``piecewise_constant_schedule``; PyTorch's
      ``MultiStepLR(milestones, gamma)`` is ``{m: gamma for m in milestones}`` and
      ``StepLR(step_size, gamma)`` is ``{k * step_size: gamma for k = 1, 2, ...}``. Each value
      is the product formed in double precision and rounded once.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.piecewise_constant_schedule(1.0, {3: 0.1, 5: 0.5})
      >>> [round(float(schedule(t)), 4) for t in range(7)]
      [1.0, 1.0, 1.0, 0.1, 0.1, 0.05, 0.05]

    References:
      He, Zhang, Ren and Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016,
      section 4.2 (the learning rate divided by 10 at fixed iterations).
    """
    owner = "piecewise_constant_schedule"
    init_value = _finite(owner, "init_value", init_value)
    pairs = _boundaries(owner, boundaries_and_scales)
    boundaries = [b for b, _ in pairs]
    values = [init_value]
    for _, scale in pairs:
        values.append(values[-1] * scale)

    def schedule(count):
        table = jnp.asarray(values, _float_dtype())
        return table[_reached(_whole(count), boundaries)]

    return schedule


def _exponential(
    owner: str,
    init_value,
    transition_steps,
    decay_rate,
    transition_begin,
    staircase,
    end_value,
) -> Schedule:
    init_value = _finite(owner, "init_value", init_value)
    transition_steps = _steps(owner, "transition_steps", transition_steps, None)
    decay_rate = _non_negative(owner, "decay_rate", decay_rate)
    transition_begin = max(_steps(owner, "transition_begin", transition_begin, None), 0)
    staircase = check_flag(owner, "staircase", staircase)
    if end_value is not None:
        end_value = _finite(owner, "end_value", end_value)
    if transition_steps <= 0 or decay_rate == 0:
        # optax's reading of these: the decay is off
        return constant_schedule(init_value)
    log_rate = math.log(decay_rate)

    def schedule(count):
        if staircase:
            t = _whole(count)
            periods = jnp.maximum((t - _fit(t, transition_begin)) // _fit(t, transition_steps), 0)
            value = init_value * _exp(periods.astype(_float_dtype()), log_rate)
        else:
            done = jnp.maximum(_step(count) - float(transition_begin), 0)
            value = init_value * _exp(done, log_rate / transition_steps)
        if end_value is None:
            return value
        bound = jnp.maximum if decay_rate < 1 else jnp.minimum
        return bound(value, end_value)

    return schedule


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    r"""Exponential decay: ``init_value`` times ``decay_rate`` every ``transition_steps`` steps.

    .. math::
      \eta_t = \eta_0\, r^{p}, \quad p = \frac{\max(t - t_b, 0)}{T}
      \ \left(\text{staircase: } \left\lfloor \frac{\max(t - t_b, 0)}{T} \right\rfloor\right),

    then bounded below by ``end_value`` when :math:`r < 1` (above when :math:`r \ge 1`).

    Args:
      init_value: the value up to step ``transition_begin``.
      transition_steps: the number of steps :math:`T` per factor of ``decay_rate``; 0 or less
        turns the decay off (a constant ``init_value``, as in optax).
      decay_rate: the factor :math:`r`, >= 0 (> 1 grows; 0 turns the decay off, as in optax).
      transition_begin: the step :math:`t_b` where the decay starts (a negative one counts
        from 0, as optax's does).
      staircase: decay in whole periods of ``transition_steps`` (a step function).
      end_value: the bound, or ``None`` for none.

    Returns:
      A schedule ``step -> value``. Matches optax's ``exponential_decay``. PyTorch's
      ``ExponentialLR(gamma)`` is
      ``exponential_decay(lr, 1, gamma)`` and ``StepLR(step_size, gamma)`` is
      ``exponential_decay(lr, step_size, gamma, staircase=True)``. The power is formed as
      ``exp(p log r)`` from the double-precision logarithm, to a few ulps (optax's
      ``r ** p`` of a float32 ``r`` is off by about ``p`` times r's rounding).

    Example:
      >>> import gradtx
      >>> schedule = gradtx.exponential_decay(1.0, transition_steps=2, decay_rate=0.5)
      >>> [round(float(schedule(t)), 4) for t in range(5)]
      [1.0, 0.7071, 0.5, 0.3536, 0.25]

    References:
      Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke and Rabinovich, *Going
      Deeper with Convolutions*, CVPR 2015, section 6 (a staircase exponential decay: the
      learning rate lowered by 4% every 8 epochs).
    """
    return _exponential(
        "exponential_decay",
        init_value,
        transition_steps,
        decay_rate,
        transition_begin,
        staircase,
        end_value,
    )


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    r"""Cosine annealing from ``init_value`` to ``alpha * init_value`` over ``decay_steps``.

    .. math::
      \eta_t = \eta_0 \left((1 - \alpha)\left(\tfrac12\left(1 + \cos\tfrac{\pi \min(t, T)}{T}
      \right)\right)^{p} + \alpha\right)

    Args:
      init_value: the value at step 0.
      decay_steps: the length :math:`T` of the decay, >= 1.
      alpha: the final value as a fraction of ``init_value``.
      exponent: the exponent :math:`p` of the cosine factor, > 0.

    Returns:
      A schedule ``step -> value``, constant at ``alpha * init_value`` from ``decay_steps`` on.
      Matches optax; equals PyTorch's ``CosineAnnealingLR(T_max=decay_steps,
      eta_min=alpha * init_value)`` for ``t <= T`` (PyTorch goes on along the cosine, back up,
      after ``T_max``; gradtx, like optax, stays at the end value).

    Example:
      >>> import gradtx
      >>> schedule = gradtx.cosine_decay_schedule(1.0, decay_steps=4, alpha=0.1)
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [1.0, 0.8682, 0.55, 0.2318, 0.1, 0.1]

    References:
      Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*,
      ICLR 2017, eq. 5 (one period, without restarts).
    """
    owner = "cosine_decay_schedule"
    init_value = _finite(owner, "init_value", init_value)
    decay_steps = _steps(owner, "decay_steps", decay_steps, 1)
    alpha = _finite(owner, "alpha", alpha)
    exponent = _positive(owner, "exponent", exponent)
    end_value = alpha * init_value

    def schedule(count):
        done = jnp.clip(_step(count), 0, float(decay_steps))
        left = float(decay_steps) - done
        return _anneal(init_value, end_value, done, left, float(decay_steps), "cos", exponent)

    return schedule


def join_schedules(schedules: list[Schedule], boundaries: list[int]) -> Schedule:
    r"""One schedule after another: from ``boundaries[i]`` on, ``schedules[i + 1]`` takes over.

    .. math::
      \eta_t = s_k(t - b_{k-1}), \quad k = \#\{i : b_i \le t\}, \quad b_{-1} = 0

    Each schedule counts its steps from its own start: at ``t == boundaries[i]`` the next one
    is called with 0.

    Args:
      schedules: the schedules, in order (at least one).
      boundaries: ``len(schedules) - 1`` non-decreasing ints >= 0 (with equal boundaries the
        later schedule wins).

    Returns:
      A schedule ``step -> value`` (each piece's value cast to the default float dtype).
      Matches optax's ``join_schedules`` (which checks nothing, and also calls a schedule with
      the negative steps before its start, whose values it then discards; gradtx calls it
      with 0 there).

    Example:
      >>> import gradtx
      >>> schedule = gradtx.join_schedules(
      ...     [gradtx.constant_schedule(1.0), gradtx.linear_schedule(1.0, 0.0, 2)], [3])
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [1.0, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    owner = "join_schedules"
    schedules = _sequence(owner, "schedules", schedules, "schedules")
    boundaries = _sequence(owner, "boundaries", boundaries, "ints")
    if not schedules:
        raise ValueError(f"{owner}: schedules must not be empty")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(f"{owner}: schedules[{i}] must be a schedule (a function), got {s!r}")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{owner}: boundaries must have len(schedules) - 1 = {len(schedules) - 1} entries, "
            f"got {len(boundaries)}"
        )
    for i, b in enumerate(boundaries):
        _steps(owner, f"boundaries[{i}]", b, 0)
        if i and b < boundaries[i - 1]:
            raise ValueError(
                f"{owner}: boundaries must be non-decreasing, got {boundaries[i - 1]} then {b} "
                f"at boundaries[{i}]"
            )
    boundaries = [int(b) for b in boundaries]

    def schedule(count):
        count = _count(count)
        dtype = _float_dtype()
        value = jnp.asarray(schedules[0](count)).astype(dtype)
        for boundary, s in zip(_reachable(count, boundaries), schedules[1:]):
            after = jnp.asarray(s(jnp.maximum(count - boundary, 0))).astype(dtype)
            value = jnp.where(count >= boundary, after, value)
        return value

    return schedule


def inverse_sqrt_schedule(peak_value: float, warmup_steps: int = 0) -> Schedule:
    r"""Linear warmup from 0 to ``peak_value``, then decay as the inverse square root of the step.

    .. math::
      \eta_t = \begin{cases}
        \eta_{peak}\, t / W & t < W \\
        \eta_{peak} \sqrt{W / t} & t \ge W \ge 1 \\
        \eta_{peak} / \sqrt{\max(t, 1)} & W = 0
      \end{cases}

    With ``warmup_steps == 0`` there is no warmup and the decay is :math:`1/\sqrt{t}` with step 0
    taken as step 1: the first two updates both use ``peak_value``. With a warmup, the first
    update uses 0.

    Args:
      peak_value: the value at step ``warmup_steps`` (at steps 0 and 1 without a warmup).
      warmup_steps: the length :math:`W` of the warmup, >= 0.

    Returns:
      A schedule ``step -> value``. Neither optax nor PyTorch has it; it is the Transformer's
      schedule (Vaswani et al., 2017: :math:`d^{-1/2} \min(t^{-1/2}, t\, W^{-3/2})` with
      ``peak_value`` :math:`= (d W)^{-1/2}`, counting steps from 1).

    Example:
      >>> import gradtx
      >>> schedule = gradtx.inverse_sqrt_schedule(1.0, warmup_steps=4)
      >>> [round(float(schedule(t)), 4) for t in (0, 2, 4, 16, 64)]
      [0.0, 0.5, 1.0, 0.5, 0.25]

    References:
      Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser and Polosukhin, *Attention Is
      All You Need*, NeurIPS 2017, section 5.3, eq. 3.
    """
    owner = "inverse_sqrt_schedule"
    peak_value = _finite(owner, "peak_value", peak_value)
    warmup_steps = _steps(owner, "warmup_steps", warmup_steps, 0)
    scale = float(max(warmup_steps, 1))

    def schedule(count):
        t = jnp.maximum(_step(count), 0)
        decay = peak_value * jnp.sqrt(scale / jnp.maximum(t, 1))
        if warmup_steps == 0:
            return decay
        return jnp.where(t < float(warmup_steps), peak_value * (t / float(warmup_steps)), decay)

    return schedule
