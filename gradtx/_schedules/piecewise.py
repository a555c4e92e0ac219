"""Piecewise interpolated schedules: optax's ``piecewise_interpolate_schedule`` and the two
one-cycle schedules it defines (``linear_onecycle_schedule``, ``cosine_onecycle_schedule``).

The step-decay :func:`gradtx.piecewise_constant_schedule` is in :mod:`gradtx._schedules.basic`;
PyTorch's one-cycle policy (:func:`gradtx.one_cycle_schedule`) is in
:mod:`gradtx._schedules.cyclic`. The conventions are those of :mod:`gradtx._schedules.basic`:
a pure function of the number of updates done so far, float values of the default precision,
arguments checked when the schedule is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax.numpy as jnp

from gradtx._core.checks import _float_dtype
from gradtx._schedules.basic import Schedule, _weights
from gradtx._schedules.steps import (
    _boundaries,
    _finite,
    _positive,
    _reached,
    _step,
    _steps,
    _whole,
)

_SHAPES = {"linear": "linear", "cosine": "cos"}


def _interpolated(init_value: float, pairs: list[tuple[int, float]], shape: str) -> Schedule:
    """The schedule through the points ``(0, v_0), (b_1, v_1), ...``, ``v_i = v_{i-1} s_i``.

    Segment ``k`` (the one of a step with ``k`` boundaries at or before it) runs from ``v_k``
    at ``b_k`` to ``v_{k+1}`` at ``b_{k+1}``; past the last boundary a segment from the last
    value to itself holds it. Each segment is anchored at its end point of smaller magnitude,
    as :func:`gradtx._schedules.basic._anneal` does, so the small weight never comes from a
    difference of large ones.
    """
    boundaries = [b for b, _ in pairs]
    values = [init_value]
    for _, scale in pairs:
        values.append(values[-1] * scale)  # in double precision, rounded once in the table
    begins = [0, *boundaries]
    ends = [*values[1:], values[-1]]
    # an empty first segment (a boundary at step 0) is never used: its length is any positive
    lengths = [max(b - a, 1) for a, b in zip(begins, boundaries)] + [1]
    anchor_at_end = [abs(end) <= abs(start) for start, end in zip(values, ends)]

    def schedule(count):
        dtype = _float_dtype()
        t = jnp.maximum(_step(count), 0)
        k = _reached(jnp.maximum(_whole(count), 0), boundaries)
        begin = jnp.asarray([float(b) for b in begins], dtype)[k]
        length = jnp.asarray([float(n) for n in lengths], dtype)[k]
        start = jnp.asarray(values, dtype)[k]
        end = jnp.asarray(ends, dtype)[k]
        done = jnp.clip(t - begin, 0, length)
        w, one_minus_w = _weights(shape, done, length - done, length)
        w, one_minus_w = jnp.clip(w, 0, 1), jnp.clip(one_minus_w, 0, 1)
        return jnp.where(
            jnp.asarray(anchor_at_end)[k],
            end + (start - end) * w,
            start + (end - start) * one_minus_w,
        )

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: float,
    boundaries_and_scales: Mapping[int, float] | None = None,
) -> Schedule:
    r"""Scales accumulated at boundaries, joined by linear or cosine interpolation.

    With the boundaries sorted, :math:`b_0 = 0` and :math:`v_0` = ``init_value``, each
    boundary multiplies the value by its scale, :math:`v_i = v_{i-1} s_i`, and between two
    boundaries the value moves from :math:`v_i` to :math:`v_{i+1}`:

    .. math::
      \eta_t = v_{i+1} + (v_i - v_{i+1})\, w(x), \qquad
      x = \frac{t - b_i}{b_{i+1} - b_i}, \quad b_i \le t < b_{i+1},

    with :math:`w(x) = 1 - x` (``"linear"``) or :math:`\tfrac12 (1 + \cos \pi x)`
    (``"cosine"``), and :math:`\eta_t = v_n` from the last boundary on. The interpolation is
    between the accumulated values, not between the scales: ``{4: 0.1}`` goes from
    ``init_value`` at step 0 to ``0.1 * init_value`` at step 4.

    Args:
      interpolate_type: ``"linear"`` or ``"cosine"``.
      init_value: the value :math:`v_0` at step 0.
      boundaries_and_scales: ``{step: scale}``, steps ints >= 0 and scales finite and >= 0;
        ``None`` or ``{}`` gives a constant. A boundary at step 0 makes the value at step 0
        ``init_value`` times its scale.

    Returns:
      A schedule ``step -> value``. Matches optax's ``piecewise_interpolate_schedule`` (which
      also accepts negative steps as boundaries and gives 0 before step 0; gradtx rejects the
      former and gives the value at step 0 before it). The values :math:`v_i` are formed in
      double precision and rounded once.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
      >>> [round(float(schedule(t)), 4) for t in range(0, 11, 2)]
      [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001]
    """
    owner = "piecewise_interpolate_schedule"
    if isinstance(interpolate_type, str) and interpolate_type in _SHAPES:
        shape = _SHAPES[interpolate_type]
    else:
        # optax raises ValueError for any other value, a non-string included
        raise ValueError(
            f"{owner}: interpolate_type must be 'linear' or 'cosine', got {interpolate_type!r}"
        )
    init_value = _finite(owner, "init_value", init_value)
    pairs = _boundaries(owner, boundaries_and_scales)
    return _interpolated(init_value, pairs, shape)


def _onecycle_arguments(owner: str, transition_steps, peak_value, div_factor, final_div_factor):
    transition_steps = _steps(owner, "transition_steps", transition_steps, 1)
    peak_value = _finite(owner, "peak_value", peak_value)
    div_factor = _positive(owner, "div_factor", div_factor)
    final_div_factor = _positive(owner, "final_div_factor", final_div_factor)
    return transition_steps, peak_value, div_factor, final_div_factor


def _fraction(owner: str, name: str, value, low: float = 0.0) -> float:
    value = _finite(owner, name, value)
    if not low <= value <= 1:
        raise ValueError(f"{owner}: {name} must be in [{low:g}, 1], got {value!r}")
    return value


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    r"""optax's linear one-cycle schedule: three straight lines, up, back down, and down further.

    With :math:`\eta_0 = \eta_{peak} / \text{div\_factor}` and :math:`T` =
    ``transition_steps``, :func:`piecewise_interpolate_schedule` ``("linear", ...)`` through

    .. math::
      (0, \eta_0) \to (\lfloor p_s T \rfloor, \eta_{peak}) \to (\lfloor p_f T \rfloor, \eta_0)
      \to (T, \eta_0 / \text{final\_div\_factor}),

    holding the last value after step :math:`T`.

    Args:
      transition_steps: the length :math:`T` of the cycle, >= 1.
      peak_value: the largest value, at step :math:`\lfloor p_s T \rfloor`.
      pct_start: the fraction :math:`p_s` of the cycle spent going up, in [0, 1].
      pct_final: the fraction :math:`p_f` of the cycle at whose end the value is back at
        :math:`\eta_0`, in [``pct_start``, 1].
      div_factor: :math:`\eta_0` = ``peak_value / div_factor``; > 0.
      final_div_factor: the last value is :math:`\eta_0` divided by this; > 0.

    Returns:
      A schedule ``step -> value``. Matches optax's ``linear_onecycle_schedule``, its
      boundaries included: where two of them fall on the same step, the later one's scale
      replaces the earlier one's, as in optax (so ``pct_final = 1`` ends at ``peak_value /
      final_div_factor``). It differs from PyTorch's ``OneCycleLR(anneal_strategy="linear",
      three_phase=True)``, which is :func:`gradtx.one_cycle_schedule`.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.linear_onecycle_schedule(
      ...     10, 1.0, pct_start=0.3, pct_final=0.7, div_factor=10.0, final_div_factor=100.0)
      >>> [round(float(schedule(t)), 4) for t in range(0, 12, 2)]
      [0.1, 0.7, 0.775, 0.325, 0.067, 0.001]

    References:
      Smith and Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large
      Learning Rates*, 2017.
    """
    owner = "linear_onecycle_schedule"
    transition_steps, peak_value, div_factor, final_div_factor = _onecycle_arguments(
        owner, transition_steps, peak_value, div_factor, final_div_factor
    )
    pct_start = _fraction(owner, "pct_start", pct_start)
    pct_final = _fraction(owner, "pct_final", pct_final)
    if pct_final < pct_start:
        raise ValueError(
            f"{owner}: pct_final must be in [pct_start, 1] = [{pct_start!r}, 1], got {pct_final!r}"
        )
    # a dict, as optax builds it: a later boundary on the same step replaces an earlier one
    scales = {
        math.floor(pct_start * transition_steps): div_factor,
        math.floor(pct_final * transition_steps): 1.0 / div_factor,
        transition_steps: 1.0 / final_div_factor,
    }
    return _interpolated(peak_value / div_factor, sorted(scales.items()), "linear")


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    r"""optax's cosine one-cycle schedule: a cosine up to ``peak_value``, then a cosine down.

    With :math:`\eta_0 = \eta_{peak} / \text{div\_factor}` and :math:`T` =
    ``transition_steps``, :func:`piecewise_interpolate_schedule` ``("cosine", ...)`` through

    .. math::
      (0, \eta_0) \to (\lfloor p T \rfloor, \eta_{peak})
      \to (T, \eta_0 / \text{final\_div\_factor}),

    holding the last value after step :math:`T`.

    Args:
      transition_steps: the length :math:`T` of the cycle, >= 1.
      peak_value: the largest value, at step :math:`\lfloor p T \rfloor`.
      pct_start: the fraction :math:`p` of the cycle spent going up, in [0, 1].
      div_factor: :math:`\eta_0` = ``peak_value / div_factor``; > 0.
      final_div_factor: the last value is :math:`\eta_0` divided by this; > 0.

    Returns:
      A schedule ``step -> value``. Matches optax's ``cosine_onecycle_schedule`` (with
      ``pct_start = 1`` both boundaries fall on step :math:`T`, and as in optax the value goes
      from :math:`\eta_0` straight down to the last one). PyTorch's ``OneCycleLR`` places its
      phases otherwise: that is :func:`gradtx.one_cycle_schedule`.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.cosine_onecycle_schedule(
      ...     5, 1.0, pct_start=0.4, div_factor=10.0, final_div_factor=100.0)
      >>> [round(float(schedule(t)), 4) for t in range(7)]
      [0.1, 0.55, 1.0, 0.7503, 0.2508, 0.001, 0.001]

    References:
      Smith and Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large
      Learning Rates*, 2017.
    """
    owner = "cosine_onecycle_schedule"
    transition_steps, peak_value, div_factor, final_div_factor = _onecycle_arguments(
        owner, transition_steps, peak_value, div_factor, final_div_factor
    )
    pct_start = _fraction(owner, "pct_start", pct_start)
    scales = {
        math.floor(pct_start * transition_steps): div_factor,
        transition_steps: 1.0 / (div_factor * final_div_factor),
    }
    return _interpolated(peak_value / div_factor, sorted(scales.items()), "cos")
