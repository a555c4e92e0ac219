"""Schedules in cycles: SGDR and cosine warm restarts, one-cycle.

Built from the pieces in :mod:`gradtx._schedules.basic` and the warmups of
:mod:`gradtx._schedules.warmup`, with the same conventions: a pure function of the number of
updates done so far, float values of the default precision, arguments checked when the
schedule is built.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from gradtx._core.checks import _float_dtype, check_flag
from gradtx._schedules.basic import (
    Schedule,
    _anneal,
    join_schedules,
)
from gradtx._schedules.steps import (
    _choice,
    _count,
    _finite,
    _fit,
    _integers,
    _minus,
    _positive,
    _reachable,
    _reached,
    _sequence,
    _steps,
    _whole,
)
from gradtx._schedules.warmup import warmup_cosine_decay_schedule


def sgdr_schedule(cosine_kwargs: list[dict]) -> Schedule:
    r"""SGDR: warmup-cosine cycles one after another, each given by its arguments.

    Cycle :math:`k` is :func:`warmup_cosine_decay_schedule` ``(**cosine_kwargs[k])``, run for
    its ``decay_steps`` (warmup included); the cycles are joined with :func:`join_schedules` at
    the running sums of ``decay_steps``, and the last one holds its ``end_value`` after its end.

    .. math::
      \eta_t = c_k(t - B_k), \quad B_k = \sum_{j < k} D_j \le t < B_k + D_k

    Args:
      cosine_kwargs: a non-empty sequence of dicts of :func:`warmup_cosine_decay_schedule`'s
        arguments (``init_value``, ``peak_value``, ``warmup_steps``, ``decay_steps``, and
        optionally ``end_value`` and ``exponent``).

    Returns:
      A schedule ``step -> value``. Matches optax's ``sgdr_schedule``. PyTorch's
      ``CosineAnnealingWarmRestarts`` is the special case of cycles without warmup, whose
      lengths grow geometrically: see :func:`cosine_warm_restarts_schedule`.

    Example:
      >>> import gradtx
      >>> cycle = dict(init_value=1.0, peak_value=1.0, warmup_steps=0, decay_steps=2)
      >>> schedule = gradtx.sgdr_schedule([cycle, cycle])
      >>> [round(float(schedule(t)), 4) for t in range(6)]
      [1.0, 0.5, 1.0, 0.5, 0.0, 0.0]

    References:
      Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, 2016.
    """
    owner = "sgdr_schedule"
    if isinstance(cosine_kwargs, Mapping):
        raise TypeError(f"{owner}: cosine_kwargs must be a sequence of dicts, got one dict")
    cosine_kwargs = _sequence(owner, "cosine_kwargs", cosine_kwargs, "dicts")
    if not cosine_kwargs:
        raise ValueError(f"{owner}: cosine_kwargs must not be empty")
    schedules, boundaries, total = [], [], 0
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"{owner}: cosine_kwargs[{i}] must be a dict, got {kwargs!r}")
        try:
            schedules.append(warmup_cosine_decay_schedule(**kwargs))
        except (TypeError, ValueError) as error:
            raise type(error)(f"{owner}: cosine_kwargs[{i}]: {error}") from None
        total += kwargs["decay_steps"]
        boundaries.append(total)
    return join_schedules(schedules, boundaries[:-1])


def _restarts(first_period: int, period_mult: int) -> tuple[list[int], list[int]]:
    """The start and length of each cycle, up to the largest float64 step."""
    starts, periods = [0], [first_period]
    while starts[-1] + periods[-1] < 2**1024:
        starts.append(starts[-1] + periods[-1])
        periods.append(periods[-1] * period_mult)
    return starts, periods


def cosine_warm_restarts_schedule(
    init_value: float, first_period: int, period_mult: int = 1, min_value: float = 0.0
) -> Schedule:
    r"""Cosine annealing from ``init_value`` to ``min_value``, restarted after each period.

    The periods are :math:`T_k = T_0 m^k` steps long; cycle :math:`k` starts at step
    :math:`B_k = \sum_{j<k} T_j`. With :math:`\tau = t - B_k` the step within the cycle:

    .. math::
      \eta_t = \eta_{min} + (\eta_0 - \eta_{min})\, \tfrac12 \left(1 + \cos \frac{\pi \tau}{T_k}
      \right), \qquad B_k \le t < B_k + T_k

    Each restart (``t == B_k``) gives ``init_value`` again; ``min_value`` itself is never
    reached. The cycle is found in integer arithmetic: exact at every integer step (a Python or
    NumPy integer of any size, an integer array to its dtype's largest value) and every float
    step within the integer range; a float step past it is placed to its own precision.

    Args:
      init_value: the value at the start of each cycle.
      first_period: the length :math:`T_0` of the first cycle, >= 1.
      period_mult: the factor :math:`m` (an int >= 1) by which each cycle is longer than the
        last.
      min_value: the value the cosine tends to at the end of each cycle.

    Returns:
      A schedule ``step -> value``. Equals PyTorch's ``CosineAnnealingWarmRestarts(T_0=
      first_period, T_mult=period_mult, eta_min=min_value)`` stepped once per update (its
      ``lr`` before update ``t`` is this at ``t``). optax's :func:`sgdr_schedule` with cycles
      of ``warmup_steps=0`` and ``end_value=min_value`` gives the same values for as many
      cycles as it is given.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.cosine_warm_restarts_schedule(1.0, first_period=2, period_mult=2)
      >>> [round(float(schedule(t)), 4) for t in range(7)]
      [1.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0]

    References:
      Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, 2016.
    """
    owner = "cosine_warm_restarts_schedule"
    init_value = _finite(owner, "init_value", init_value)
    first_period = _steps(owner, "first_period", first_period, 1)
    period_mult = _steps(owner, "period_mult", period_mult, 1)
    min_value = _finite(owner, "min_value", min_value)
    starts, periods = _restarts(first_period, period_mult) if period_mult > 1 else ([0], [0])

    def phase(n: int) -> tuple[int, int]:
        """Step ``n``'s steps done in its cycle and the cycle's length, in Python ints."""
        n = max(n, 0)
        if period_mult == 1:
            return n % first_period, first_period
        k = bisect.bisect_right(starts, n) - 1
        start, period = starts[k], periods[k]
        while start + period <= n:  # past the cycles tabled
            start, period = start + period, period * period_mult
        return n - start, period

    def in_integers(t):
        # the steps done and left in the cycle counted in integers, exact where a float32 step
        # would not be; a cycle that would end past the largest step has its own float path
        top = int(jnp.iinfo(t.dtype).max)
        dtype = _float_dtype()
        if period_mult == 1:
            period = float(first_period)
            if first_period > top:
                return _anneal(init_value, min_value, t.astype(dtype), period - t, period, "cos")
            done = t % first_period
            left = first_period - done
            return _anneal(
                init_value, min_value, done.astype(dtype), left.astype(dtype), period, "cos"
            )
        reachable = _reachable(t, starts)
        ends = [start + period for start, period in zip(reachable, periods)]
        cycle = _reached(t, reachable) - 1
        done = t - jnp.asarray(reachable, t.dtype)[cycle]
        period = jnp.asarray(periods[: len(reachable)], dtype)[cycle]
        within = jnp.asarray([e <= top for e in ends])[cycle]
        left = jnp.asarray([min(e, top) for e in ends], t.dtype)[cycle] - t
        left = jnp.where(within, left.astype(dtype), period - done.astype(dtype))
        return _anneal(init_value, min_value, done.astype(dtype), left, period, "cos")

    def in_floats(t):
        # a whole float step's cycle in its own precision (its remainder is exact)
        dtype = _float_dtype()
        if period_mult == 1:
            done = t % first_period
            period = float(first_period)
        else:
            largest = float(jnp.finfo(t.dtype).max)
            tabled = [start for start in starts if start <= largest]
            cycle = _reached(t, tabled) - 1
            done = t - jnp.asarray(tabled, t.dtype)[cycle]
            # the last cycle a float can start may be longer than the largest float
            lengths = [min(p, largest) for p in periods[: len(tabled)]]
            period = jnp.asarray(lengths, dtype)[cycle]
        done = done.astype(dtype)
        return _anneal(init_value, min_value, done, period - done, period, "cos")

    def schedule(count):
        steps = _integers(count)
        if steps is not None:
            # a concrete step's cycle is found in Python ints, exact at any size (as an array a
            # step past the integer range would be a float, rounded)
            done, period = np.frompyfunc(phase, 1, 2)(steps)
            done, left, period = (
                jnp.asarray(np.asarray(x, np.float64), _float_dtype())
                for x in (done, period - done, period)
            )
            return _anneal(init_value, min_value, done, left, period, "cos")
        t = _count(count)
        if jnp.issubdtype(t.dtype, jnp.integer):
            return in_integers(jnp.maximum(t, 0))
        # a float step is counted in integers where it fits them, as a float past them (where
        # as an integer it would saturate)
        whole = jnp.maximum(jnp.floor(t), 0)
        fits = whole < float(jnp.iinfo(jnp.asarray(0).dtype).max)
        return jnp.where(fits, in_integers(_whole(whole)), in_floats(whole))

    return schedule


def _one_cycle(owner, transition_steps, pct_start, anneal_strategy, three_phase, values):
    """PyTorch's OneCycleLR phases; ``values(three_phase)`` gives each phase's (start, end)."""
    transition_steps = _steps(owner, "transition_steps", transition_steps, 1)
    pct_start = _finite(owner, "pct_start", pct_start)
    if not 0 < pct_start < 1:
        raise ValueError(f"{owner}: pct_start must be in (0, 1), got {pct_start!r}")
    shape = _choice(owner, "anneal_strategy", anneal_strategy, ("cos", "linear"))
    three_phase = check_flag(owner, "three_phase", three_phase)
    # Phase ends exactly as PyTorch computes them (in double precision, possibly not whole)
    last = transition_steps - 1
    ends = [float(pct_start * transition_steps) - 1]
    if three_phase:
        ends.append(float(2 * pct_start * transition_steps) - 2)
    ends.append(last)
    phases = list(zip([0.0] + ends[:-1], ends, values(three_phase)))

    def schedule(count):
        # clipped to the last step: the final value holds after it
        t = _whole(count)
        t = jnp.clip(t, 0, _fit(t, last))
        pieces = []
        for begin, end, (start_value, end_value) in phases:
            length = end - begin
            if length == 0:  # a phase of no steps is over (PyTorch divides by zero)
                value = jnp.full(t.shape, end_value, _float_dtype())
            else:
                done, left = _minus(t, begin), -_minus(t, end)
                value = _anneal(start_value, end_value, done, left, length, shape)
            pieces.append((math.floor(end), value))
        # the first phase whose end is not passed, as PyTorch's loop picks it
        value = pieces[-1][1]
        for end, piece in reversed(pieces[:-1]):
            value = jnp.where(t <= _fit(t, end), piece, value)
        return value

    return schedule


def one_cycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    r"""The one-cycle learning rate: up from a low value to ``peak_value``, then down far below.

    With :math:`\eta_{init} = \eta_{peak} / \text{div\_factor}`, :math:`\eta_{min} =
    \eta_{init} / \text{final\_div\_factor}`, :math:`T` = ``transition_steps``, :math:`p` =
    ``pct_start``, the phases end at steps :math:`e_1 = pT - 1` and :math:`e_2 = T - 1` (three
    phases: :math:`e_1 = pT - 1`, :math:`e_2 = 2pT - 2`, :math:`e_3 = T - 1`), with
    :math:`e_0 = 0`. Step :math:`t` is in the first phase :math:`i` with :math:`t \le e_i`, at
    progress :math:`x = (t - e_{i-1}) / (e_i - e_{i-1})`, and

    .. math::
      \eta_t = a_i + (b_i - a_i)\, g(x), \qquad
      g(x) = \tfrac12 (1 - \cos \pi x)\ \text{(cos)} \ \text{or}\ x\ \text{(linear)},

    where the phases go :math:`\eta_{init} \to \eta_{peak} \to \eta_{min}` (two phases) or
    :math:`\eta_{init} \to \eta_{peak} \to \eta_{init} \to \eta_{min}` (three phases).

    Args:
      transition_steps: the number of updates :math:`T` in the cycle, >= 1.
      peak_value: the largest value, reached at step :math:`e_1`.
      pct_start: the fraction :math:`p` of the cycle spent going up, in (0, 1).
      div_factor: ``peak_value / div_factor`` is the value at step 0; > 0.
      final_div_factor: the last value is the first one divided by this; > 0.
      anneal_strategy: ``"cos"`` or ``"linear"``, the shape :math:`g`.
      three_phase: go back down to the first value before the final annealing.

    Returns:
      A schedule ``step -> value``, holding the last value (:math:`\eta_{min}`) from step
      :math:`T - 1` on. Equals PyTorch's ``OneCycleLR(max_lr=peak_value,
      total_steps=transition_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
      three_phase)`` at steps 0 to :math:`T - 1`, stepped once per update. PyTorch also gives
      a value at step :math:`T` (past the end of its last phase) and raises after it, and
      divides by zero where :math:`pT = 1` (a first phase of no steps); there gradtx gives
      ``peak_value`` at step 0. optax's one-cycle schedules, :func:`cosine_onecycle_schedule`
      and :func:`linear_onecycle_schedule`, are different ones (other phase boundaries and, for
      the linear one, other phases). Use :func:`one_cycle_momentum_schedule` for the momentum.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.one_cycle_schedule(10, 1.0, pct_start=0.3, anneal_strategy="linear")
      >>> [round(float(schedule(t)), 4) for t in range(11)]
      [0.04, 0.52, 1.0, 0.8571, 0.7143, 0.5714, 0.4286, 0.2857, 0.1429, 0.0, 0.0]

    References:
      Smith and Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large
      Learning Rates*, 2017.
    """
    owner = "one_cycle_schedule"
    peak_value = _finite(owner, "peak_value", peak_value)
    div_factor = _positive(owner, "div_factor", div_factor)
    final_div_factor = _positive(owner, "final_div_factor", final_div_factor)
    first = peak_value / div_factor
    low = first / final_div_factor

    def values(three):
        if three:
            return [(first, peak_value), (peak_value, first), (first, low)]
        return [(first, peak_value), (peak_value, low)]

    return _one_cycle(owner, transition_steps, pct_start, anneal_strategy, three_phase, values)


def one_cycle_momentum_schedule(
    transition_steps: int,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    r"""The momentum of the one-cycle policy: down while the learning rate goes up, and back.

    Same phases and shape as :func:`one_cycle_schedule` with the same ``transition_steps``,
    ``pct_start``, ``anneal_strategy`` and ``three_phase``; the momentum goes
    :math:`\mu_{max} \to \mu_{base} \to \mu_{max}` (two phases) or :math:`\mu_{max} \to
    \mu_{base} \to \mu_{max} \to \mu_{max}` (three phases):

    .. math::
      \mu_t = a_i + (b_i - a_i)\, g(x)

    Args:
      transition_steps: the number of updates in the cycle, >= 1.
      base_momentum: the lowest momentum, at the learning rate's peak.
      max_momentum: the momentum at the start and the end.
      pct_start: as in :func:`one_cycle_schedule`, in (0, 1).
      anneal_strategy: ``"cos"`` or ``"linear"``.
      three_phase: as in :func:`one_cycle_schedule`.

    Returns:
      A schedule ``step -> value`` (for ``sgd``'s ``momentum`` or ``adam``'s ``b1``), holding
      ``max_momentum`` from step ``transition_steps - 1`` on. Equals the momentum (or Adam's
      ``beta1``) that PyTorch's ``OneCycleLR(..., cycle_momentum=True, base_momentum,
      max_momentum)`` sets at steps 0 to ``transition_steps - 1``. optax has no counterpart.

    Example:
      >>> import gradtx
      >>> schedule = gradtx.one_cycle_momentum_schedule(10, anneal_strategy="linear")
      >>> [round(float(schedule(t)), 4) for t in range(0, 11, 2)]
      [0.95, 0.85, 0.8786, 0.9071, 0.9357, 0.95]

    References:
      Smith, *A Disciplined Approach to Neural Network Hyper-Parameters: Part 1*, 2018.
    """
    owner = "one_cycle_momentum_schedule"
    base_momentum = _finite(owner, "base_momentum", base_momentum)
    max_momentum = _finite(owner, "max_momentum", max_momentum)

    def values(three):
        down, up = (max_momentum, base_momentum), (base_momentum, max_momentum)
        return [down, up, (max_momentum, max_momentum)] if three else [down, up]

    return _one_cycle(owner, transition_steps, pct_start, anneal_strategy, three_phase, values)
