"""Schedules against their written formulas (float64), optax and PyTorch; jit, vmap, scan; errors.

Tolerance: float32 values against float64 ones to rtol 1e-6 (a few float32 roundings; float32's
epsilon is 1.2e-7), and to float32's smallest normal number where the exact value underflows.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.reference import schedules_reference as ref

RTOL = 1e-6
TINY = float(np.finfo(np.float32).tiny)
LARGE = (10**4, 10**6, 2**31 - 1)  # long after the end; the last is the saturated step count


class S:
    """A schedule by name and arguments, built from gradtx, the reference, or optax."""

    def __init__(self, name, *args, **kwargs):
        self.name, self.args, self.kwargs = name, args, kwargs

    def build(self, module):
        def resolve(x):
            if isinstance(x, S):
                return x.build(module)
            if isinstance(x, list):
                return [resolve(v) for v in x]
            return x

        args = [resolve(a) for a in self.args]
        kwargs = {k: resolve(v) for k, v in self.kwargs.items()}
        return getattr(module, self.name)(*args, **kwargs)

    def __repr__(self):
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(args)})"


def _cycle(init, peak, warmup, decay, **kwargs):
    return dict(init_value=init, peak_value=peak, warmup_steps=warmup, decay_steps=decay, **kwargs)


# (schedule, horizon, extra steps): compared at steps 0 .. horizon - 1, the extra steps and LARGE.
# optax=False where optax has no such schedule or defines these arguments otherwise.
CASES = [
    (S("constant_schedule", 0.3), 5, ()),
    (S("linear_schedule", 1.0, 0.1, 10, 5), 25, ()),
    (S("linear_schedule", 0.0, 0.1, 30), 40, ()),
    (S("linear_schedule", 1.0, 0.0, 100), 110, ()),
    (S("linear_schedule", 2.0, 0.0, 0), 5, ()),
    (S("polynomial_schedule", 1.0, 0.0, 2.0, 100), 110, ()),
    (S("polynomial_schedule", 0.5, 0.01, 0.5, 40, 10), 60, ()),
    (S("polynomial_schedule", 0.0, 1.0, 3.0, 50), 60, ()),
    (S("polynomial_schedule", 1.0, 0.1, 1.5, 0), 5, ()),
    (S("piecewise_constant_schedule", 1.0, {100: 0.1, 200: 0.01}), 30, (99, 100, 101, 199, 200)),
    (S("piecewise_constant_schedule", 0.5, {3: 2.0, 10: 0.5, 11: 0.25, 0: 0.9}), 20, ()),
    (S("piecewise_constant_schedule", 0.7), 5, ()),
    (S("exponential_decay", 1.0, 10, 0.5), 60, ()),
    (S("exponential_decay", 0.1, 7, 0.9, 5, True), 60, ()),
    (S("exponential_decay", 1.0, 1, 0.9), 200, ()),
    (S("exponential_decay", 1e-3, 5, 1.1, 0, False, 0.01), 150, ()),
    (S("exponential_decay", 1.0, 3, 0.5, 2, False, 0.05), 30, ()),
    (S("cosine_decay_schedule", 0.05, 60, 0.1), 70, ()),
    (S("cosine_decay_schedule", 1.0, 100), 110, ()),
    (S("cosine_decay_schedule", 2.0, 10, 0.0, 2.0), 20, ()),
    (S("cosine_decay_schedule", 1.0, 7, 0.5, 0.5), 20, ()),
    (S("warmup_constant_schedule", 0.0, 1.0, 10), 20, ()),
    (S("warmup_cosine_decay_schedule", 0.0, 1.0, 10, 100), 110, ()),
    (S("warmup_cosine_decay_schedule", 1e-4, 1e-3, 0, 50, 1e-5), 60, ()),
    (S("warmup_cosine_decay_schedule", 0.0, 1.0, 5, 30, 0.1, 2.0), 40, ()),
    (S("warmup_cosine_decay_schedule", 0.0, 0.1, 5, 25, 1.0), 30, ()),
    (S("warmup_cosine_decay_schedule", 0.0, 0.1, 5, 25, 1.0, 2.0), 30, ()),
    (S("warmup_exponential_decay_schedule", 0.0, 1.0, 10, 5, 0.8), 60, ()),
    (S("warmup_exponential_decay_schedule", 0.1, 1.0, 3, 4, 0.5, 5, True, 0.01), 50, ()),
    (S("warmup_exponential_decay_schedule", 0.0, 0.5, 0, 1, 0.9), 60, ()),
    (
        S(
            "join_schedules",
            [
                S("linear_schedule", 0.0, 1.0, 10),
                S("constant_schedule", 1.0),
                S("cosine_decay_schedule", 1.0, 20),
            ],
            [10, 30],
        ),
        60,
        (),
    ),
    (
        S(
            "join_schedules",
            [
                S("constant_schedule", 1.0),
                S("constant_schedule", 2.0),
                S("linear_schedule", 3.0, 0.5, 10),
            ],
            [5, 5],
        ),
        20,
        (),
    ),
    (
        S(
            "sgdr_schedule",
            [
                _cycle(0.0, 1.0, 5, 20),
                _cycle(0.5, 0.8, 0, 10, end_value=0.1),
                _cycle(0.0, 0.3, 2, 30, exponent=2.0),
            ],
        ),
        70,
        (),
    ),
    (S("inverse_sqrt_schedule", 1e-3), 30, (100, 10**4 - 1)),
    (S("inverse_sqrt_schedule", 1.0, 100), 130, (400, 10**4 - 1)),
    (S("inverse_sqrt_schedule", 0.5, 1), 10, ()),
    (S("cosine_warm_restarts_schedule", 0.1, 10), 50, (10**6 - 1, 2**31 - 2)),
    (
        S("cosine_warm_restarts_schedule", 1.0, 5, 2, 0.01),
        160,
        (5 * (2**20 - 1) - 1, 5 * (2**20 - 1), 5 * (2**20 - 1) + 1, 5 * (2**28 - 1)),
    ),
    (S("cosine_warm_restarts_schedule", 0.5, 3, 3), 130, (3 * (3**15 - 1) // 2,)),
    (S("cosine_warm_restarts_schedule", 1.0, 1), 5, ()),
    (S("cosine_warm_restarts_schedule", 1.0, 1, 2), 40, (2**30 - 1, 2**30)),
    (S("warmup_stable_decay_schedule", 1.0, 10, 20, 30), 70, ()),
    (S("warmup_stable_decay_schedule", 1e-3, 5, 0, 17, 1e-4, 1e-5, "cosine"), 30, ()),
    (S("warmup_stable_decay_schedule", 0.5, 0, 10, 40, 0.0, 0.0, "sqrt"), 60, ()),
    (S("warmup_stable_decay_schedule", 1.0, 3, 4, 10, 0.2, 2.0, "linear"), 25, ()),
    (S("warmup_stable_decay_schedule", 1.0, 3, 4, 10, 0.2, 0.1, "sqrt"), 25, ()),
    (S("one_cycle_schedule", 100, 0.1), 110, ()),
    (S("one_cycle_schedule", 37, 1.0, 0.25, 10.0, 100.0, "linear", True), 45, ()),
    (S("one_cycle_schedule", 7, 0.5, 0.3, 5.0, 10.0, "cos", True), 12, ()),
    (S("one_cycle_schedule", 10, 1.0, 0.1), 12, ()),
    (S("one_cycle_schedule", 100, 0.05, 0.29, 25.0, 1e3, "linear"), 110, ()),
    (S("one_cycle_schedule", 3, 1.0, 0.3, three_phase=True), 5, ()),
    (S("one_cycle_schedule", 1, 1.0), 3, ()),
    (S("one_cycle_momentum_schedule", 100), 110, ()),
    (S("one_cycle_momentum_schedule", 37, 0.8, 0.9, 0.25, "linear", True), 45, ()),
    (S("one_cycle_momentum_schedule", 7, 0.9, 0.99, 0.3, "cos", True), 12, ()),
    (S("one_cycle_momentum_schedule", 10, 0.85, 0.95, 0.1), 12, ()),
    (S("piecewise_interpolate_schedule", "linear", 200.0, {5: 1.5, 10: 0.25}), 15, ()),
    (S("piecewise_interpolate_schedule", "cosine", 400.0, {5: 1.2, 3: 0.6, 7: 1.0}), 10, ()),
    (S("piecewise_interpolate_schedule", "linear", 13.0, {0: 2.0, 5: 3.0}), 8, ()),
    (S("piecewise_interpolate_schedule", "cosine", -2.0, {4: 0.0, 9: 5.0, 150: 0.5}), 160, ()),
    (S("piecewise_interpolate_schedule", "linear", 17.0), 3, ()),
    (S("linear_onecycle_schedule", 10, 1000.0, 0.3, 0.7, 10.0, 100.0), 12, ()),
    (S("linear_onecycle_schedule", 100, 1e-3), 110, ()),
    # boundaries on one step (10 and 10; 0, 0 and 1): the later scale replaces, as in optax
    (S("linear_onecycle_schedule", 10, 1.0, 0.3, 1.0), 12, ()),
    (S("linear_onecycle_schedule", 1, 1.0), 3, ()),
    (S("cosine_onecycle_schedule", 5, 1000.0, 0.4, 10.0, 100.0), 7, ()),
    (S("cosine_onecycle_schedule", 200, 1e-3), 205, ()),
    (S("cosine_onecycle_schedule", 10, 1.0, 1.0), 12, ()),
    (S("cosine_onecycle_schedule", 10, 1.0, 0.0), 12, ()),
]
IDS = [repr(case[0]) for case in CASES]
SCHEDULES = [case[0] for case in CASES]
# Every schedule is compared at every step of one grid: 0 .. 209, each case's extra steps, LARGE.
GRID = np.array(sorted(set(range(210)).union(*(extra for _, _, extra in CASES), LARGE)))

OPTAX_NAMES = {
    "constant_schedule",
    "linear_schedule",
    "polynomial_schedule",
    "piecewise_constant_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "join_schedules",
    "sgdr_schedule",
    "piecewise_interpolate_schedule",
    "linear_onecycle_schedule",
    "cosine_onecycle_schedule",
}
OPTAX_CASES = [i for i, case in enumerate(SCHEDULES) if case.name in OPTAX_NAMES]


def _all_ways(schedules, steps):
    """Each schedule at each step: under vmap, called with the array, and inside lax.scan.

    One jitted program for all the schedules (compiling one program per schedule would take
    most of this file's time).
    """

    def run(steps):
        by_vmap = [jax.vmap(s)(steps) for s in schedules]
        by_array = [s(steps) for s in schedules]
        _, by_scan = jax.lax.scan(lambda c, t: (c, [s(t) for s in schedules]), None, steps)
        return by_vmap, by_array, by_scan

    return [[np.asarray(v) for v in way] for way in jax.jit(run)(steps)]


def _values(schedule, steps):
    """One schedule at each step, in one jitted vmap."""
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))


def _reference(case, steps):
    reference = case.build(ref)
    return np.array([reference(int(t)) for t in steps])


@functools.cache
def _float32_values():
    schedules = [case.build(gradtx) for case in SCHEDULES]
    return _all_ways(schedules, jnp.asarray(GRID, jnp.int32))


@functools.cache
def _reference_values():
    return [np.array([case.build(ref)(int(t)) for t in GRID]) for case in SCHEDULES]


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_matches_the_formula_under_vmap_scan_and_on_arrays(index):
    want = _reference_values()[index]
    for way in _float32_values():
        got = way[index]
        assert got.dtype == np.float32 and got.shape == GRID.shape
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=TINY)


def _few_steps(horizon, extra):
    """Steps for the eager Python-int calls: the start, the middle, the end, past it."""
    picked = {0, 1, horizon // 2, horizon - 1, horizon, *extra, LARGE[-1]}
    return sorted(t for t in picked if t >= 0)


@pytest.mark.parametrize("case, horizon, extra", CASES, ids=IDS)
def test_python_ints(case, horizon, extra):
    schedule = case.build(gradtx)
    reference = case.build(ref)
    for t in _few_steps(horizon, extra):
        value = schedule(t)
        assert value.dtype == np.float32 and value.shape == ()
        np.testing.assert_allclose(value, reference(t), rtol=RTOL, atol=TINY, err_msg=f"step {t}")


def test_jit_with_a_traced_int32_step():
    schedules = [case.build(gradtx) for case in SCHEDULES]
    jitted = jax.jit(lambda t: [s(t) for s in schedules])
    by_vmap = _float32_values()[0]
    for t in (0, 7, 2**31 - 1):
        values = jitted(jnp.int32(t))
        (at,) = np.flatnonzero(GRID == t)
        for case, value, expected in zip(SCHEDULES, values, by_vmap):
            assert value.dtype == np.float32 and value.shape == ()
            np.testing.assert_allclose(
                value, expected[at], rtol=RTOL, atol=TINY, err_msg=repr(case)
            )
    assert jitted._cache_size() == 1  # one trace for every step


def test_matches_the_formula_in_float64(x64):
    schedules = [case.build(gradtx) for case in SCHEDULES]
    ways = _all_ways(schedules, jnp.asarray(GRID, jnp.int64))
    wrong = []
    for index, case in enumerate(SCHEDULES):
        want = _reference_values()[index]
        for got in (way[index] for way in ways):
            assert got.dtype == np.float64
            if not np.allclose(got, want, rtol=1e-11, atol=1e-300):
                wrong.append(repr(case))
    assert not wrong


OPTAX_GRID = GRID[GRID < 210]
# Jitted, XLA turns optax's 1 - t/T into 1 - t * (1/T), -1 ulp at the end: NaN for power 0.5.
OPTAX_NAN = "polynomial_schedule(0.5, 0.01, 0.5, 40, 10)"


@functools.cache
def _optax_values():
    with jax.numpy_dtype_promotion("standard"):  # optax mixes dtypes
        schedules = [SCHEDULES[i].build(optax) for i in OPTAX_CASES]
        run = jax.jit(lambda t: [jax.vmap(s)(t).astype(jnp.float32) for s in schedules])
        return [np.asarray(v) for v in run(jnp.asarray(OPTAX_GRID, jnp.int32))]


@pytest.mark.parametrize("index", OPTAX_CASES, ids=[IDS[i] for i in OPTAX_CASES])
def test_matches_optax(index):
    """Equal to optax to rtol 1e-6, except where optax's own float32 rounding is the larger error.

    optax forms ``1 - t/T``, ``1 + cos(pi t/T)`` and ``r ** p`` directly, which cancel (or
    carry the rounding of ``r``): on these cases it is off the exact value by up to 6e-5
    relative near the end of a decay to 0 (and by an ulp of the start where the exact value is
    0); gradtx stays within 1e-6. At every step the two agree to rtol 1e-6, or optax is farther
    from the float64 formula than gradtx and the two still agree to a few float32 ulps of the
    schedule's largest value.
    """
    on_grid = GRID < 210
    got = _float32_values()[0][index][on_grid].astype(np.float64)
    exact = _reference_values()[index][on_grid]
    theirs = _optax_values()[OPTAX_CASES.index(index)].astype(np.float64)
    nan = np.isnan(theirs)
    assert not nan.any() or IDS[index] == OPTAX_NAN
    got, exact, theirs = got[~nan], exact[~nan], theirs[~nan]
    close = np.abs(got - theirs) <= RTOL * np.abs(theirs)
    optax_error = np.abs(theirs - exact) > np.abs(got - exact)
    near = np.abs(got - theirs) <= 8 * np.finfo(np.float32).eps * np.max(np.abs(exact))
    assert np.all(close | (optax_error & near)), OPTAX_GRID[~nan][~(close | (optax_error & near))]


TORCH = json.loads(
    (pathlib.Path(__file__).parent / "reference" / "torch_schedules.json").read_text()
)["records"]


def _torch_id(record):
    kwargs = ",".join(f"{k}={v}" for k, v in record["kwargs"].items())
    return f"{record['scheduler']}({kwargs})"


def _for_torch(record):
    """The gradtx schedules equal to a PyTorch scheduler, with the steps where they are equal."""
    lr, kw, steps = record["base_lr"], record["kwargs"], len(record["lr"])
    name = record["scheduler"]
    if name == "StepLR":
        size, gamma = kw["step_size"], kw["gamma"]
        return steps, [
            gradtx.exponential_decay(lr, size, gamma, staircase=True),
            gradtx.piecewise_constant_schedule(lr, {k * size: gamma for k in range(1, steps)}),
        ]
    if name == "MultiStepLR":
        return steps, [
            gradtx.piecewise_constant_schedule(lr, dict.fromkeys(kw["milestones"], kw["gamma"]))
        ]
    if name == "ExponentialLR":
        return steps, [gradtx.exponential_decay(lr, 1, kw["gamma"])]
    if name == "CosineAnnealingLR":
        # PyTorch goes back up along the cosine after T_max; gradtx stays at eta_min
        t_max, eta_min = kw["T_max"], kw["eta_min"]
        return t_max + 1, [
            gradtx.cosine_decay_schedule(lr, t_max, alpha=eta_min / lr),
            gradtx.warmup_cosine_decay_schedule(lr, lr, 0, t_max, end_value=eta_min),
        ]
    if name == "CosineAnnealingWarmRestarts":
        t0, mult, eta_min = kw["T_0"], kw["T_mult"], kw["eta_min"]
        lengths = [t0 * mult**k for k in range(steps)]
        lengths = lengths[: 1 + sum(np.cumsum(lengths) < steps)]  # enough cycles for the steps
        cycles = [_cycle(lr, lr, 0, n, end_value=eta_min) for n in lengths]
        return steps, [
            gradtx.cosine_warm_restarts_schedule(lr, t0, mult, eta_min),
            gradtx.sgdr_schedule(cycles),
        ]
    if name == "PolynomialLR":
        return steps, [gradtx.polynomial_schedule(lr, 0.0, kw["power"], kw["total_iters"])]
    if name == "LinearLR":
        start, end = lr * kw["start_factor"], lr * kw["end_factor"]
        return steps, [gradtx.linear_schedule(start, end, kw["total_iters"])]
    assert name == "OneCycleLR"
    shared = {k: kw[k] for k in ("pct_start", "anneal_strategy", "three_phase")}
    return steps, [
        gradtx.one_cycle_schedule(
            kw["total_steps"],
            kw["max_lr"],
            div_factor=kw["div_factor"],
            final_div_factor=kw["final_div_factor"],
            **shared,
        )
    ]


@functools.cache
def _torch_values():
    """Every gradtx schedule matched with a PyTorch record, at steps 0 .. 120, in one program."""
    schedules = [[*_for_torch(record)[1], *_torch_momentum(record)] for record in TORCH]
    flat = [s for group in schedules for s in group]
    run = jax.jit(lambda t: [jax.vmap(s)(t) for s in flat])
    values = iter(np.asarray(v) for v in run(jnp.arange(121, dtype=jnp.int32)))
    return [[next(values) for _ in group] for group in schedules]


def _torch_momentum(record):
    if record["scheduler"] != "OneCycleLR":
        return []
    kw = record["kwargs"]
    return [
        gradtx.one_cycle_momentum_schedule(
            kw["total_steps"],
            kw["base_momentum"],
            kw["max_momentum"],
            kw["pct_start"],
            kw["anneal_strategy"],
            kw["three_phase"],
        )
    ]


@pytest.mark.parametrize("index", range(len(TORCH)), ids=[_torch_id(r) for r in TORCH])
def test_matches_pytorch(index):
    record = TORCH[index]
    steps, lr_schedules = _for_torch(record)
    values = _torch_values()[index]
    for got in values[: len(lr_schedules)]:
        np.testing.assert_allclose(got[:steps], record["lr"][:steps], rtol=RTOL, atol=0)
    if record["scheduler"] == "OneCycleLR":
        np.testing.assert_allclose(values[-1][:steps], record["momentum"], rtol=RTOL, atol=0)


def test_pytorch_records_cover_every_scheduler():
    names = {r["scheduler"] for r in TORCH}
    assert names == {
        "StepLR",
        "MultiStepLR",
        "ExponentialLR",
        "CosineAnnealingLR",
        "CosineAnnealingWarmRestarts",
        "OneCycleLR",
        "PolynomialLR",
        "LinearLR",
    }
    one_cycle = [r["kwargs"] for r in TORCH if r["scheduler"] == "OneCycleLR"]
    assert {(k["anneal_strategy"], k["three_phase"]) for k in one_cycle} == {
        ("cos", False),
        ("cos", True),
        ("linear", False),
        ("linear", True),
    }
    assert {r["optimizer"] for r in TORCH if r["scheduler"] == "OneCycleLR"} == {"SGD", "Adam"}
    restarts = {
        r["kwargs"]["T_mult"] for r in TORCH if r["scheduler"] == "CosineAnnealingWarmRestarts"
    }
    assert {1, 2} <= restarts


def test_pytorch_records_are_current():
    pytest.importorskip("torch")
    from tests.reference import torch_schedules

    assert json.loads(json.dumps(torch_schedules.records())) == TORCH


def test_pytorch_one_cycle_divides_by_zero_where_gradtx_starts_at_the_peak():
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    with pytest.raises(ZeroDivisionError):
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10, pct_start=0.1)
    assert float(gradtx.one_cycle_schedule(10, 1.0, pct_start=0.1)(0)) == 1.0


# Schedules of one optimizer's own hyperparameter, tested with that optimizer's rows.
TESTED_WITH_THEIR_OPTIMIZER = {
    # PSGD Kron's refit probability: tests/registry/psgd.py's rows against NumPy and psgd-jax
    "precond_update_prob_schedule",
}


def test_every_public_schedule_is_tested():
    # scale_by_schedule is a transformation (tested with the pairs), not a schedule.
    public = {
        name
        for name in gradtx.__all__
        if (name.endswith("_schedule") and not name.startswith("scale_by_"))
        or name in ("exponential_decay", "join_schedules")
    } - TESTED_WITH_THEIR_OPTIMIZER
    tested = {case[0].name for case in CASES}
    assert public == tested == set(ref.SCHEDULES)


def test_inverse_sqrt_without_warmup_takes_step_0_as_step_1():
    schedule = gradtx.inverse_sqrt_schedule(2.0)
    values = _values(schedule, [0, 1, 4, 100])
    np.testing.assert_allclose(values, [2.0, 2.0, 1.0, 0.2], rtol=RTOL)


def test_inverse_sqrt_warmup_starts_at_0_and_peaks_at_its_end():
    schedule = gradtx.inverse_sqrt_schedule(1.0, warmup_steps=4)
    assert [float(schedule(t)) for t in (0, 1, 4, 16)] == [0.0, 0.25, 1.0, 0.5]


def test_no_warmup_starts_at_the_peak():
    for schedule in (
        gradtx.warmup_constant_schedule(0.1, 1.0, 0),
        gradtx.warmup_cosine_decay_schedule(0.1, 1.0, 0, 10),
        gradtx.warmup_exponential_decay_schedule(0.1, 1.0, 0, 5, 0.5),
        gradtx.warmup_stable_decay_schedule(1.0, 0, 0, 10, init_value=0.1),
    ):
        assert float(schedule(0)) == 1.0
    # optax's warmup_constant_schedule stays at init_value without a warmup
    assert optax.warmup_constant_schedule(0.1, 1.0, 0)(0) == 0.1


def test_warmup_cosine_decay_ends_at_end_value_even_with_zero_peak():
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, 0.0, 2, 10, end_value=0.5)
    assert float(schedule(10)) == 0.5
    with jax.numpy_dtype_promotion("standard"):  # optax's decay is relative to the peak
        assert float(optax.warmup_cosine_decay_schedule(0.0, 0.0, 2, 10, end_value=0.5)(10)) == 0.0


def test_piecewise_constant_scales_from_the_boundary_on():
    schedule = gradtx.piecewise_constant_schedule(1.0, {3: 0.5})
    assert [float(schedule(t)) for t in (2, 3, 4)] == [1.0, 0.5, 0.5]


def test_join_counts_each_schedule_from_its_boundary():
    seen = []

    def probe(count):
        seen.append(count)
        return jnp.asarray(count, jnp.float32)

    schedule = gradtx.join_schedules([gradtx.constant_schedule(-1.0), probe], [3])
    values = _values(schedule, np.arange(6))
    np.testing.assert_array_equal(values, [-1.0, -1.0, -1.0, 0.0, 1.0, 2.0])
    # a schedule gets its own steps (0 before its start), a Python float is cast
    mixed = gradtx.join_schedules([lambda t: 1.5, lambda t: jnp.asarray(t, jnp.int32)], [2])
    np.testing.assert_array_equal(_values(mixed, np.arange(4)), [1.5, 1.5, 0.0, 1.0])


def test_one_cycle_holds_its_last_values_after_the_end():
    lr = gradtx.one_cycle_schedule(20, 1.0, anneal_strategy="linear")
    momentum = gradtx.one_cycle_momentum_schedule(20, anneal_strategy="linear")
    steps = np.array([19, 20, 21, 1000, 2**31 - 1])
    np.testing.assert_allclose(_values(lr, steps), 1.0 / 25 / 1e4, rtol=RTOL)
    np.testing.assert_array_equal(_values(momentum, steps), np.float32(0.95))


def test_warm_restarts_restart_at_init_value():
    schedule = gradtx.cosine_warm_restarts_schedule(0.5, 3, 2, 0.1)
    restarts = np.array([0, 3, 9, 21, 45, 3 * (2**29 - 1)])
    np.testing.assert_array_equal(_values(schedule, restarts), np.float32(0.5))
    np.testing.assert_array_less(0.1, _values(schedule, restarts - 1)[1:])


def test_decays_to_zero_keep_relative_precision_to_the_last_step():
    # the naive float32 formulas lose up to 1e-4 relative here (optax: see test_matches_optax)
    steps = np.arange(990, 1000)
    for case in (
        S("cosine_decay_schedule", 1.0, 1000),
        S("linear_schedule", 1.0, 0.0, 1000),
        S("polynomial_schedule", 1.0, 0.0, 2.0, 1000),
        S("warmup_stable_decay_schedule", 1.0, 0, 0, 1000, decay_type="sqrt"),
    ):
        got = _values(case.build(gradtx), steps)
        np.testing.assert_allclose(got, _reference(case, steps), rtol=RTOL, err_msg=repr(case))


@pytest.mark.parametrize(
    "schedule, end, end_value",
    [
        (gradtx.linear_schedule(0.1, 0.0, 30), 30, 0.0),
        (gradtx.linear_schedule(0.0, 0.3, 7), 7, 0.3),
        (gradtx.polynomial_schedule(1.0, 0.0, 2.0, 7), 7, 0.0),
        (gradtx.cosine_decay_schedule(1.0, 30, alpha=0.1), 30, 0.1),
        (gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 3, 30, 0.01, 2.0), 30, 0.01),
        (gradtx.warmup_stable_decay_schedule(1.0, 3, 3, 7, decay_type="sqrt"), 13, 0.0),
        (gradtx.one_cycle_schedule(30, 1.0, three_phase=True), 29, 1.0 / 25 / 1e4),
        (gradtx.one_cycle_momentum_schedule(30, 0.8, 0.9), 29, 0.9),
    ],
)
def test_ends_exactly_at_the_end_value_under_jit(schedule, end, end_value):
    # optax's jitted linear_schedule(0.1, 0.0, 30) ends at -5e-9: XLA computes its 1 - t/T as
    # 1 - t * (1/T), 1 ulp below 0
    values = _values(schedule, [end, end + 1, 10**6])
    np.testing.assert_array_equal(values, np.float32(end_value))


def test_fractional_power_stays_finite_after_the_end_under_jit():
    # optax's (1 - t/T) ** 0.5 is NaN here under jit: 1 - t * (1/T) is -1 ulp at t == T
    schedule = jax.jit(gradtx.polynomial_schedule(0.5, 0.01, 0.5, 40, 10))
    values = np.array([schedule(jnp.int32(t)) for t in (49, 50, 51, 1000)])
    assert np.all(np.isfinite(values)) and np.all(values[1:] == np.float32(0.01))


def test_float_steps():
    linear = gradtx.linear_schedule(0.0, 1.0, 4)
    assert float(linear(jnp.float32(1.5))) == 0.375  # continuous schedules take the float as is
    staircase = gradtx.piecewise_constant_schedule(1.0, {2: 0.5})
    assert float(staircase(jnp.float32(1.9))) == 1.0  # jumps happen at whole steps


def test_schedules_drive_an_optimizer():
    lr = gradtx.one_cycle_schedule(12, 0.1, three_phase=True)
    momentum = gradtx.one_cycle_momentum_schedule(12, three_phase=True)
    tx = gradtx.sgd(lr, momentum=momentum)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)

    @jax.jit
    def step(state):
        _, state = tx.update(params, state, params)
        return state, gradtx.hyperparams(state)

    for t in range(1, 15):  # the state holds the values for the next update, step t
        state, values = step(state)
        np.testing.assert_allclose(values["learning_rate"], lr(t), rtol=RTOL)
        np.testing.assert_allclose(values["momentum"], momentum(t), rtol=RTOL)
    assert step._cache_size() == 1


def _scheduled_run(tx, grads):
    params = {"w": jnp.zeros(grads.shape[1], jnp.float32)}
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
        out.append(np.asarray(updates["w"], np.float64))
    return np.stack(out)


def test_one_cycle_momentum_drives_sgd_momentum_step_by_step():
    steps, lr = 30, 0.1
    momentum = gradtx.one_cycle_momentum_schedule(steps, base_momentum=0.8, max_momentum=0.95)
    grads = np.random.default_rng(0).normal(size=(steps, 5))
    # float64 reference: v_t = beta_t v_{t-1} + g_t, u_t = -lr v_t, beta_t = momentum(t - 1).
    velocity, expected = np.zeros(5), []
    for t, g in enumerate(grads):
        velocity = float(momentum(t)) * velocity + g
        expected.append(-lr * velocity)
    got = _scheduled_run(gradtx.sgd(lr, momentum=momentum), grads)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-5, atol=1e-6)
    # a constant momentum would give something else: the schedule is really used
    constant = _scheduled_run(gradtx.sgd(lr, momentum=0.95), grads)
    assert np.max(np.abs(constant - got)) > 1e-2


def test_one_cycle_momentum_drives_adam_b1_step_by_step():
    steps, lr, b2, eps = 30, 1e-2, 0.999, 1e-8
    b1 = gradtx.one_cycle_momentum_schedule(steps)
    grads = np.random.default_rng(1).normal(size=(steps, 5))
    # float64 reference with the scheduled beta_1 (bias correction by 1 - beta_1(t)^t, as in
    # optax.inject_hyperparams(optax.adam)).
    m, v, expected = np.zeros(5), np.zeros(5), []
    for t, g in enumerate(grads, start=1):
        beta = float(b1(t - 1))
        m = beta * m + (1 - beta) * g
        v = b2 * v + (1 - b2) * g * g
        expected.append(-lr * (m / (1 - beta**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    got = _scheduled_run(gradtx.adam(lr, b1=b1, b2=b2, eps=eps), grads)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-5, atol=1e-7)
    # optax with the same schedule injected agrees (to optax's own float32 error, 2e-5)
    reference = optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2, eps=eps)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes float32 and int32
        from_optax = _scheduled_run(reference, grads)
    np.testing.assert_allclose(from_optax, got, rtol=2e-5, atol=1e-7)
    constant = _scheduled_run(gradtx.adam(lr, b1=0.95, b2=b2, eps=eps), grads)
    assert np.max(np.abs(constant - got)) > 1e-4


# Step counts past int32 (the range of JAX's integers without x64), and as Python ints past int64.
# A schedule gives its value there: its end value, a continuous one's value at the step, or a
# periodic one's value in its cycle. Each is whole in float32, so float steps too. (The steps of
# one kind share a shape and dtype, so that the eager calls compile few operations.)
HUGE = (2**31, 2**33, 2**40, 2**62)
PAST_INT64 = (2**63, 2**64, 2**70)


@functools.cache
def _huge_reference(index):
    return np.array([SCHEDULES[index].build(ref)(t) for t in HUGE + PAST_INT64])


def _check_huge(got, want, kind, rtol, atol, dtype):
    got = np.asarray(got)
    assert got.dtype == dtype and got.shape == np.shape(want), kind
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=kind)


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_steps_past_int32(index):
    # before: a Python int past int32 overflowed in jnp.asarray, a NumPy int64 wrapped around
    # (2**33 to 0: the value at step 0), a float step of a periodic schedule saturated
    schedule = SCHEDULES[index].build(gradtx)
    want = _huge_reference(index)
    huge = want[: len(HUGE)]

    def check(got, want, kind):
        _check_huge(got, want, kind, RTOL, TINY, np.float32)

    for t, value in zip(HUGE + PAST_INT64, want):
        check(schedule(t), value, f"Python int {t}")
    for t, value in zip(HUGE, huge):
        check(schedule(np.int64(t)), value, f"np.int64({t})")
    check(schedule(np.array(HUGE, np.int64)), huge, "np.int64 array")
    check(schedule(np.array(HUGE, np.float64)), huge, "np.float64 array")
    check(schedule(jnp.asarray(HUGE, jnp.float32)), huge, "jnp.float32 array")
    # with steps that fit int32 in the same array
    mixed = np.array([0, HUGE[2], 7, HUGE[3]], np.int64)
    small = _reference(SCHEDULES[index], [0, 7])
    check(schedule(mixed), [small[0], huge[2], small[1], huge[3]], "mixed np.int64 array")


def test_float_steps_past_int32_under_jit():
    # a traced float step is whole where it is read in integers: as one past int32 it would
    # saturate (before: cosine_warm_restarts_schedule(0.1, 10) gave its value at 2**31 - 1)
    schedules = [case.build(gradtx) for case in SCHEDULES]
    values = jax.jit(lambda t: [s(t) for s in schedules])(jnp.asarray(HUGE, jnp.float32))
    for index, (case, got) in enumerate(zip(SCHEDULES, values)):
        want = _huge_reference(index)[: len(HUGE)]
        _check_huge(got, want, repr(case), RTOL, TINY, np.float32)


def test_steps_past_int64_with_x64(x64):
    # int64 holds the steps to 2**62; before, a Python int past int64 overflowed in jnp.asarray.
    # One test for every schedule: switching x64 on and off for each would recompile each time.
    for index, case in enumerate(SCHEDULES):
        schedule = case.build(gradtx)
        want = _huge_reference(index)
        huge = want[: len(HUGE)]

        def check(got, want, kind, case=case):
            _check_huge(got, want, f"{case!r}: {kind}", 1e-11, 1e-300, np.float64)

        for t, value in zip(PAST_INT64, want[len(HUGE) :]):
            check(schedule(t), value, f"Python int {t}")
        check(schedule(jnp.asarray(HUGE, jnp.int64)), huge, "jnp.int64 array")
        check(schedule(np.array(HUGE, np.int64)), huge, "np.int64 array")


# Arguments optax reads in a documented way (a decay of no length or of rate 0 is off; a
# negative start counts from 0): gradtx reads them the same, not as errors.
OPTAX_READINGS = [
    ("linear_schedule", dict(init_value=1.0, end_value=0.0, transition_steps=-1)),
    (
        "linear_schedule",
        dict(init_value=1.0, end_value=0.0, transition_steps=4, transition_begin=-2),
    ),
    ("polynomial_schedule", dict(init_value=1.0, end_value=0.0, power=2.0, transition_steps=-1)),
    ("polynomial_schedule", dict(init_value=1.0, end_value=0.0, power=2.0, transition_steps=0)),
    ("exponential_decay", dict(init_value=2.0, transition_steps=0, decay_rate=0.5)),
    ("exponential_decay", dict(init_value=2.0, transition_steps=-3, decay_rate=0.5)),
    ("exponential_decay", dict(init_value=2.0, transition_steps=2, decay_rate=0.0)),
    (
        "exponential_decay",
        dict(init_value=2.0, transition_steps=2, decay_rate=0.5, transition_begin=-1),
    ),
    (
        "warmup_exponential_decay_schedule",
        dict(init_value=0.0, peak_value=1.0, warmup_steps=2, transition_steps=0, decay_rate=0.5),
    ),
    (
        "warmup_exponential_decay_schedule",
        dict(init_value=0.0, peak_value=1.0, warmup_steps=2, transition_steps=3, decay_rate=0.0),
    ),
]


@pytest.mark.parametrize("name, kwargs", OPTAX_READINGS)
def test_arguments_optax_reads_as_a_switched_off_decay_give_optaxs_values(name, kwargs):
    mine = getattr(gradtx, name)(**kwargs)
    theirs = getattr(optax, name)(**kwargs)
    steps = jnp.arange(8)
    with jax.numpy_dtype_promotion("standard"):
        expected = np.asarray([theirs(t) for t in steps], np.float32)
    np.testing.assert_allclose([mine(t) for t in steps], expected, rtol=1e-6)


# Valid arguments for each schedule; each row of BAD changes one of them.
_ONE = gradtx.constant_schedule(1.0)
VALID = {
    "constant_schedule": dict(value=0.1),
    "linear_schedule": dict(init_value=1.0, end_value=0.0, transition_steps=5),
    "polynomial_schedule": dict(init_value=1.0, end_value=0.0, power=2.0, transition_steps=5),
    "piecewise_constant_schedule": dict(init_value=1.0, boundaries_and_scales={5: 0.1}),
    "exponential_decay": dict(init_value=1.0, transition_steps=3, decay_rate=0.5),
    "cosine_decay_schedule": dict(init_value=1.0, decay_steps=10),
    "warmup_constant_schedule": dict(init_value=0.0, peak_value=1.0, warmup_steps=5),
    "warmup_cosine_decay_schedule": dict(
        init_value=0.0, peak_value=1.0, warmup_steps=1, decay_steps=10
    ),
    "warmup_exponential_decay_schedule": dict(
        init_value=0.0, peak_value=1.0, warmup_steps=1, transition_steps=5, decay_rate=0.5
    ),
    "join_schedules": dict(schedules=[_ONE, _ONE, _ONE], boundaries=[2, 5]),
    "sgdr_schedule": dict(cosine_kwargs=[_cycle(0.0, 1.0, 0, 10)]),
    "inverse_sqrt_schedule": dict(peak_value=1.0, warmup_steps=5),
    "cosine_warm_restarts_schedule": dict(init_value=1.0, first_period=5),
    "warmup_stable_decay_schedule": dict(
        peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=5
    ),
    "one_cycle_schedule": dict(transition_steps=10, peak_value=1.0),
    "one_cycle_momentum_schedule": dict(transition_steps=10),
    "piecewise_interpolate_schedule": dict(
        interpolate_type="linear", init_value=1.0, boundaries_and_scales={5: 0.1}
    ),
    "linear_onecycle_schedule": dict(transition_steps=10, peak_value=1.0),
    "cosine_onecycle_schedule": dict(transition_steps=10, peak_value=1.0),
}
NAN, INF = float("nan"), float("inf")
# (schedule, argument, bad value, error, what the message names if not the argument)
BAD = [
    ("constant_schedule", "value", NAN, ValueError),
    ("constant_schedule", "value", "0.1", TypeError),
    ("linear_schedule", "transition_steps", 2.5, TypeError),
    ("linear_schedule", "init_value", NAN, ValueError),
    ("linear_schedule", "end_value", INF, ValueError),
    ("polynomial_schedule", "power", 0.0, ValueError),
    ("polynomial_schedule", "power", NAN, ValueError),
    ("piecewise_constant_schedule", "boundaries_and_scales", {-1: 0.5}, ValueError),
    ("piecewise_constant_schedule", "boundaries_and_scales", {1.5: 0.5}, TypeError),
    ("piecewise_constant_schedule", "boundaries_and_scales", {10: -0.1}, ValueError),
    ("piecewise_constant_schedule", "boundaries_and_scales", {10: NAN}, ValueError),
    ("piecewise_constant_schedule", "boundaries_and_scales", [(10, 0.5)], TypeError),
    ("piecewise_constant_schedule", "init_value", INF, ValueError),
    ("exponential_decay", "decay_rate", -0.5, ValueError),
    ("exponential_decay", "staircase", "yes", TypeError),
    ("exponential_decay", "end_value", NAN, ValueError),
    ("cosine_decay_schedule", "decay_steps", 0, ValueError),
    ("cosine_decay_schedule", "decay_steps", -1, ValueError),
    ("cosine_decay_schedule", "decay_steps", 10.0, TypeError),
    ("cosine_decay_schedule", "alpha", NAN, ValueError),
    ("cosine_decay_schedule", "exponent", 0.0, ValueError),
    ("warmup_constant_schedule", "warmup_steps", -1, ValueError),
    ("warmup_constant_schedule", "peak_value", NAN, ValueError),
    ("warmup_cosine_decay_schedule", "warmup_steps", -1, ValueError),
    ("warmup_cosine_decay_schedule", "decay_steps", 0, ValueError),
    ("warmup_cosine_decay_schedule", "decay_steps", 1, ValueError),  # == warmup_steps
    ("warmup_cosine_decay_schedule", "end_value", INF, ValueError),
    ("warmup_cosine_decay_schedule", "exponent", -1.0, ValueError),
    ("warmup_exponential_decay_schedule", "warmup_steps", -1, ValueError),
    ("join_schedules", "boundaries", [5, 2], ValueError),
    ("join_schedules", "boundaries", [2.5, 5], TypeError, "boundaries[0]"),
    ("join_schedules", "boundaries", [-1, 5], ValueError, "boundaries[0]"),
    ("join_schedules", "boundaries", [2], ValueError),
    ("join_schedules", "schedules", [_ONE, 0.5, _ONE], TypeError, "schedules[1]"),
    ("join_schedules", "schedules", [], ValueError),
    ("sgdr_schedule", "cosine_kwargs", [], ValueError),
    ("sgdr_schedule", "cosine_kwargs", _cycle(0.0, 1.0, 0, 10), TypeError),
    (
        "sgdr_schedule",
        "cosine_kwargs",
        [_cycle(0.0, 1.0, 0, 10), _cycle(0.0, 1.0, 0, 0)],
        ValueError,
        "cosine_kwargs[1]",
    ),
    (
        "sgdr_schedule",
        "cosine_kwargs",
        [dict(init_value=0.0, peak_value=1.0, warmup_steps=0)],
        TypeError,
        "cosine_kwargs[0]",
    ),
    ("inverse_sqrt_schedule", "warmup_steps", -1, ValueError),
    ("inverse_sqrt_schedule", "warmup_steps", 1.5, TypeError),
    ("inverse_sqrt_schedule", "peak_value", NAN, ValueError),
    ("cosine_warm_restarts_schedule", "first_period", 0, ValueError),
    ("cosine_warm_restarts_schedule", "first_period", -2, ValueError),
    ("cosine_warm_restarts_schedule", "first_period", 2.5, TypeError),
    ("cosine_warm_restarts_schedule", "period_mult", 0, ValueError),
    ("cosine_warm_restarts_schedule", "period_mult", 1.5, TypeError),
    ("cosine_warm_restarts_schedule", "min_value", NAN, ValueError),
    ("cosine_warm_restarts_schedule", "init_value", INF, ValueError),
    ("warmup_stable_decay_schedule", "warmup_steps", -1, ValueError),
    ("warmup_stable_decay_schedule", "stable_steps", -1, ValueError),
    ("warmup_stable_decay_schedule", "decay_steps", 0, ValueError),
    ("warmup_stable_decay_schedule", "decay_type", "exp", ValueError),
    ("warmup_stable_decay_schedule", "init_value", NAN, ValueError),
    ("warmup_stable_decay_schedule", "end_value", -INF, ValueError),
    ("warmup_stable_decay_schedule", "peak_value", NAN, ValueError),
    ("one_cycle_schedule", "transition_steps", 0, ValueError),
    ("one_cycle_schedule", "pct_start", 0.0, ValueError),
    ("one_cycle_schedule", "pct_start", 1.0, ValueError),
    ("one_cycle_schedule", "pct_start", -0.1, ValueError),
    ("one_cycle_schedule", "div_factor", 0.0, ValueError),
    ("one_cycle_schedule", "div_factor", -25.0, ValueError),
    ("one_cycle_schedule", "final_div_factor", 0.0, ValueError),
    ("one_cycle_schedule", "anneal_strategy", "cosine", ValueError),
    ("one_cycle_schedule", "three_phase", "no", TypeError),
    ("one_cycle_schedule", "peak_value", NAN, ValueError),
    ("one_cycle_momentum_schedule", "transition_steps", 0, ValueError),
    ("one_cycle_momentum_schedule", "pct_start", 1.5, ValueError),
    ("one_cycle_momentum_schedule", "anneal_strategy", "exp", ValueError),
    ("one_cycle_momentum_schedule", "base_momentum", NAN, ValueError),
    ("one_cycle_momentum_schedule", "max_momentum", INF, ValueError),
    # optax raises ValueError for any interpolate_type but its two, a non-string included
    ("piecewise_interpolate_schedule", "interpolate_type", "cos", ValueError),
    ("piecewise_interpolate_schedule", "interpolate_type", None, ValueError),
    ("piecewise_interpolate_schedule", "init_value", NAN, ValueError),
    (
        "piecewise_interpolate_schedule",
        "boundaries_and_scales",
        {5: -3.0},
        ValueError,
        "boundaries_and_scales[5]",
    ),
    ("piecewise_interpolate_schedule", "boundaries_and_scales", {-1: 0.5}, ValueError),
    ("piecewise_interpolate_schedule", "boundaries_and_scales", {1.5: 0.5}, TypeError),
    ("linear_onecycle_schedule", "transition_steps", 0, ValueError),
    ("linear_onecycle_schedule", "transition_steps", 10.0, TypeError),
    ("linear_onecycle_schedule", "pct_start", 1.5, ValueError),
    ("linear_onecycle_schedule", "pct_final", 0.2, ValueError),  # before pct_start
    ("linear_onecycle_schedule", "div_factor", 0.0, ValueError),
    ("linear_onecycle_schedule", "final_div_factor", -1.0, ValueError),
    ("linear_onecycle_schedule", "peak_value", NAN, ValueError),
    ("cosine_onecycle_schedule", "transition_steps", -5, ValueError),
    ("cosine_onecycle_schedule", "pct_start", -0.1, ValueError),
    ("cosine_onecycle_schedule", "div_factor", -25.0, ValueError),
    ("cosine_onecycle_schedule", "peak_value", "1.0", TypeError),
]


def _bad_id(row):
    """A stable test id (function reprs carry addresses, which differ between processes)."""
    value = re.sub(r" at 0x[0-9a-f]+", "", repr(row[2]))
    return f"{row[0]}-{row[1]}-{value}"


@pytest.mark.parametrize("row", BAD, ids=[_bad_id(r) for r in BAD])
def test_bad_arguments(row):
    name, argument, value, error = row[:4]
    named = row[4] if len(row) > 4 else argument
    getattr(gradtx, name)(**VALID[name])  # the valid arguments are valid
    with pytest.raises(error, match=re.escape(f"{name}: {named}")):
        getattr(gradtx, name)(**{**VALID[name], argument: value})


def test_every_schedule_has_bad_argument_rows():
    assert {r[0] for r in BAD} == set(VALID) == {case[0].name for case in CASES}
