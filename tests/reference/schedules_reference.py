"""Independent float64 references for gradtx's schedules, written from the formulas.

Plain Python floats (no jax, optax, torch or gradtx): each factory takes the same arguments as
the gradtx schedule of the same name and returns ``step -> float`` for an int step >= 0. They
follow the formulas as written in the docstrings, in the most direct form (no care for
cancellation: double precision has ample room for a float32 comparison), and where a schedule
is defined by a process (PyTorch's warm restarts) they run the process.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Ref = Callable[[int], float]


def constant_schedule(value) -> Ref:
    return lambda t: float(value)


def polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0):
    def schedule(t):
        if transition_steps == 0:
            return float(init_value)
        done = min(max(t - transition_begin, 0), transition_steps)
        return end_value + (init_value - end_value) * (1 - done / transition_steps) ** power

    return schedule


def linear_schedule(init_value, end_value, transition_steps, transition_begin=0):
    return polynomial_schedule(init_value, end_value, 1.0, transition_steps, transition_begin)


def piecewise_constant_schedule(init_value, boundaries_and_scales=None):
    def schedule(t):
        value = float(init_value)
        for boundary, scale in (boundaries_and_scales or {}).items():
            if t >= boundary:
                value *= scale
        return value

    return schedule


def exponential_decay(
    init_value, transition_steps, decay_rate, transition_begin=0, staircase=False, end_value=None
):
    def schedule(t):
        p = max(t - transition_begin, 0) / transition_steps
        if staircase:
            p = math.floor(p)
        try:
            value = init_value * decay_rate**p
        except OverflowError:
            value = math.copysign(math.inf, init_value)
        if end_value is not None:
            value = max(value, end_value) if decay_rate < 1 else min(value, end_value)
        return value

    return schedule


def _half_cosine(x: float) -> float:
    """(1 + cos(pi x)) / 2: 1 at x = 0, 0 at x = 1.

    Written as sin(pi (1 - x) / 2) ** 2, the same value, so that it keeps its relative precision
    near x = 1 (a warm-restart cycle of 2**30 steps ends at 2e-18, which 1 + cos rounds to 0).
    """
    return math.sin(math.pi * (1 - x) / 2) ** 2


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    def schedule(t):
        x = min(t, decay_steps) / decay_steps
        return init_value * ((1 - alpha) * _half_cosine(x) ** exponent + alpha)

    return schedule


def warmup_constant_schedule(init_value, peak_value, warmup_steps):
    def schedule(t):
        if t >= warmup_steps:
            return float(peak_value)
        return init_value + (peak_value - init_value) * t / warmup_steps

    return schedule


def warmup_cosine_decay_schedule(
    init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0
):
    def schedule(t):
        if t < warmup_steps:
            return init_value + (peak_value - init_value) * t / warmup_steps
        x = min(t - warmup_steps, decay_steps - warmup_steps) / (decay_steps - warmup_steps)
        return end_value + (peak_value - end_value) * _half_cosine(x) ** exponent

    return schedule


def warmup_exponential_decay_schedule(
    init_value,
    peak_value,
    warmup_steps,
    transition_steps,
    decay_rate,
    transition_begin=0,
    staircase=False,
    end_value=None,
):
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )

    def schedule(t):
        if t < warmup_steps:
            return init_value + (peak_value - init_value) * t / warmup_steps
        return decay(t - warmup_steps)

    return schedule


def join_schedules(schedules, boundaries):
    def schedule(t):
        index, start = 0, 0
        for i, boundary in enumerate(boundaries):
            if t >= boundary:
                index, start = i + 1, boundary
        return float(schedules[index](t - start))

    return schedule


def sgdr_schedule(cosine_kwargs):
    def schedule(t):
        start = 0
        for i, kwargs in enumerate(cosine_kwargs):
            last = i == len(cosine_kwargs) - 1
            if t < start + kwargs["decay_steps"] or last:
                return warmup_cosine_decay_schedule(**kwargs)(t - start)
            start += kwargs["decay_steps"]

    return schedule


def inverse_sqrt_schedule(peak_value, warmup_steps=0):
    def schedule(t):
        if warmup_steps == 0:
            return peak_value / math.sqrt(max(t, 1))
        if t < warmup_steps:
            return peak_value * t / warmup_steps
        return peak_value * math.sqrt(warmup_steps / t)

    return schedule


def cosine_warm_restarts_schedule(init_value, first_period, period_mult=1, min_value=0.0):
    """PyTorch's process: the step within the cycle grows by one and wraps at the period."""

    def schedule(t):
        if period_mult == 1:
            within, period = t % first_period, first_period
        else:
            within, period = t, first_period
            while within >= period:
                within, period = within - period, period * period_mult
        return min_value + (init_value - min_value) * _half_cosine(within / period)

    return schedule


def warmup_stable_decay_schedule(
    peak_value,
    warmup_steps,
    stable_steps,
    decay_steps,
    init_value=0.0,
    end_value=0.0,
    decay_type="linear",
):
    shapes = {
        "linear": lambda x: 1 - x,
        "cosine": _half_cosine,
        "sqrt": lambda x: 1 - math.sqrt(x),
    }

    def schedule(t):
        if t < warmup_steps:
            return init_value + (peak_value - init_value) * t / warmup_steps
        x = min(max(t - warmup_steps - stable_steps, 0), decay_steps) / decay_steps
        return end_value + (peak_value - end_value) * shapes[decay_type](x)

    return schedule


def _one_cycle(transition_steps, pct_start, anneal_strategy, three_phase, phase_values):
    """The phases end at pct*T - 1 (and 2*pct*T - 2), and T - 1; the last value holds after."""
    ends = [pct_start * transition_steps - 1]
    if three_phase:
        ends.append(2 * pct_start * transition_steps - 2)
    ends.append(transition_steps - 1)

    def anneal(start, end, x):
        if anneal_strategy == "linear":
            return start + (end - start) * x
        return end + (start - end) * _half_cosine(x)

    def schedule(t):
        t = min(t, transition_steps - 1)
        begin = 0.0
        for i, (end, (a, b)) in enumerate(zip(ends, phase_values)):
            if t <= end or i == len(ends) - 1:
                x = 1.0 if end == begin else (t - begin) / (end - begin)
                return anneal(a, b, x)
            begin = end

    return schedule


def one_cycle_schedule(
    transition_steps,
    peak_value,
    pct_start=0.3,
    div_factor=25.0,
    final_div_factor=1e4,
    anneal_strategy="cos",
    three_phase=False,
):
    first = peak_value / div_factor
    low = first / final_div_factor
    if three_phase:
        values = [(first, peak_value), (peak_value, first), (first, low)]
    else:
        values = [(first, peak_value), (peak_value, low)]
    return _one_cycle(transition_steps, pct_start, anneal_strategy, three_phase, values)


def one_cycle_momentum_schedule(
    transition_steps,
    base_momentum=0.85,
    max_momentum=0.95,
    pct_start=0.3,
    anneal_strategy="cos",
    three_phase=False,
):
    down, up = (max_momentum, base_momentum), (base_momentum, max_momentum)
    values = [down, up, (max_momentum, max_momentum)] if three_phase else [down, up]
    return _one_cycle(transition_steps, pct_start, anneal_strategy, three_phase, values)


def _interpolated(init_value, scales, shape):
    """Through (0, v_0), (b_1, v_1), ... with v_i = v_{i-1} s_i; linear or cosine between."""
    points = [(0, float(init_value))]
    for boundary, scale in sorted(scales.items()):
        points.append((boundary, points[-1][1] * scale))

    def schedule(t):
        for (b0, v0), (b1, v1) in zip(points, points[1:]):
            if b0 <= t < b1:
                x = (t - b0) / (b1 - b0)
                w = 1 - x if shape == "linear" else _half_cosine(x)
                return v1 + (v0 - v1) * w
        return points[-1][1]

    return schedule


def piecewise_interpolate_schedule(interpolate_type, init_value, boundaries_and_scales=None):
    return _interpolated(init_value, boundaries_and_scales or {}, interpolate_type)


def linear_onecycle_schedule(
    transition_steps,
    peak_value,
    pct_start=0.3,
    pct_final=0.85,
    div_factor=25.0,
    final_div_factor=1e4,
):
    # a dict literal, as optax's: a later boundary on the same step replaces an earlier one
    scales = {
        int(pct_start * transition_steps): div_factor,
        int(pct_final * transition_steps): 1 / div_factor,
        transition_steps: 1 / final_div_factor,
    }
    return _interpolated(peak_value / div_factor, scales, "linear")


def cosine_onecycle_schedule(
    transition_steps, peak_value, pct_start=0.3, div_factor=25.0, final_div_factor=1e4
):
    scales = {
        int(pct_start * transition_steps): div_factor,
        transition_steps: 1 / (div_factor * final_div_factor),
    }
    return _interpolated(peak_value / div_factor, scales, "cosine")


SCHEDULES: dict[str, Callable[..., Ref]] = {
    f.__name__: f
    for f in (
        constant_schedule,
        linear_schedule,
        polynomial_schedule,
        piecewise_constant_schedule,
        exponential_decay,
        cosine_decay_schedule,
        warmup_constant_schedule,
        warmup_cosine_decay_schedule,
        warmup_exponential_decay_schedule,
        join_schedules,
        sgdr_schedule,
        inverse_sqrt_schedule,
        cosine_warm_restarts_schedule,
        warmup_stable_decay_schedule,
        one_cycle_schedule,
        one_cycle_momentum_schedule,
        piecewise_interpolate_schedule,
        linear_onecycle_schedule,
        cosine_onecycle_schedule,
    )
}
