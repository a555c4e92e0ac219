"""Build time and step time of every gradtx optimizer against optax's same-named one.

Run from the repository root: ``python -m benchmarks.zoo_cost``. Options: ``--only muon,adam``
(a subset of ``zoo_specs.SPECS``), ``--trees leaf,transformer`` (a subset of the trees),
``--smoke`` (tiny trees, one round: what ``tests/test_zoo_cost.py`` runs), ``--out DIR``
(default ``benchmarks/results/``), ``--cap S`` (each configuration's time limit), ``--budget S``
(the whole run's, 1500 by default), ``--merge`` (keep the rows of ``--out``'s ``zoo_cost.json``
that this run does not measure), ``--report`` (measure nothing: rewrite the report from that
file). It writes ``ZOO_COST.md`` and ``zoo_cost.json`` to ``--out``, and
``benchmarks/ZOO_COST.md`` too when the report has a row for every optimizer and tree.

Every optimizer of ``zoo_specs.SPECS``, built by its spec at the middle rate of its grid, is
compared with a reference: optax's optimizer of the same name (``optax`` or ``optax.contrib``,
built by the same spec) where optax has one, else ``optax.adamw`` at the same rate. Two trees,
fp32: one 4472 x 4472 matrix (20.0M params; one 2-D leaf for every optimizer, so that the
matrix optimizers precondition it) and the transformer-shaped tree of ``benchmarks.trees``
(1000 leaves, 5.2M params).

A step is ``params, state = step(params, state, data)``: the update and the library's
``apply_updates`` in one ``jax.jit``, params and state donated, ``data`` (the gradients) an
argument, never a constant XLA could fold. Build time: ``trace`` + ``lower``, and ``compile``,
timed apart. Step time: after two warm-up calls of each, the two steps are called in
alternating rounds (``interleaved.py``'s method: the ratio of two steps timed side by side is
what survives the load of a shared machine), in two passes of rounds fitted to a few seconds;
the step is the median of its calls, the ratio gradtx / reference is given for each pass, whose
spread is the noise, and overall as their geometric mean. A row is flagged "slower" where
gradtx's ratio to optax's same-named optimizer is above 1 in both passes and larger than the
passes' ratios are to each other. A step of seconds (Muon's on the matrix) is called the
fewest times: its first call is the first pass, and one more call makes the second, or none
where the reference is AdamW (no verdict needs it). The builds: twice each on the leaf (gradtx,
reference, reference, gradtx; a pass is a pair), once each on the transformer (its builds take
5 to 60 s), and there a second pass in the other order only where the first found gradtx
slower than optax's same-named one; the times shown are of the faster builds. An AdamW
reference is built once per tree and worker process and shared by the optimizers compared with
it.

Optimizers that refresh a preconditioner every k steps (Shampoo, SOAP, Kron, GaLore, Sophia;
SAM's ascent and descent steps alternate likewise) run at k = 2, optax's same-named ones too, so
that plain and refresh steps alternate: the calls are grouped by their position modulo 2, the
slower group is the refresh step, reported apart (``zoo_matrix.py``'s method), and every round
calls a step twice in a row. Shampoo also preconditions axes up to 4472 long (its default
leaves axes over 4096 to the graft). Optimizers whose update needs the loss (``value``,
``grad``, ``value_fn``, ``obj_fn``) get the ill-conditioned quadratic ``½ Σ exp(d / 0.01) p²``,
``d`` the data (0.01 N(0, 1) values, so curvatures from about e^-5 to e^5): the step computes
its value and gradient, in the reference's step too. Per-example optimizers (``dpsgd``) get the
gradients stacked 4 times, scaled by 0.5 to 2, as a batch axis.

Each configuration (optimizer and tree) runs in a worker process under a time limit (``--cap``;
420 s on the leaf, 240 s on the transformer); one past it is recorded "over budget" with the
build times it reached, and a new worker takes the rest (a step that deadlocks inside XLA raises
nothing). A run measures the zoo issues' optimizers that optax has first (the issue's
criterion), then the zoo's others, then the classics; what is left when it has spent
``--budget`` seconds is recorded as skipped, and a later ``--only ... --merge`` run can fill it
in (each row's ratios are measured within one process, so rows of different runs combine).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import pathlib
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from benchmarks import zoo_matrix, zoo_specs
from benchmarks.zoo_specs import SPECS

OUT = zoo_specs.ROOT / "benchmarks" / "results"
REPORT = "ZOO_COST.md"
RESULTS = "zoo_cost.json"
TREES = ("leaf", "transformer")
LEAF_SIDE = 4472  # 4472² = 19,998,784 params
SMOKE_SIDE = 64
FIRST_ZOO = "muon"  # SPECS lists the classics, then the zoo issues' optimizers from Muon on
PERIOD = 2
# measured with their refresh every PERIOD steps, in both libraries
REFRESH: dict[str, dict] = {
    "shampoo": {"preconditioning_compute_steps": PERIOD, "skip_preconditioning_dim_size_gt": 4472},
    "soap": {"precondition_frequency": PERIOD},
    "kron": {"preconditioner_update_probability": 1 / PERIOD},  # a counter: every 2nd step
    "galore": {"update_proj_gap": PERIOD},
    "sophia": {"update_interval": PERIOD},
    "sam": {},  # the spec's sync_period is 2
}
# what the transformer tree needs: its attention kernels are (d_model, d_model) matrices that
# Adam-mini splits into heads (4 of 16); the leaf is no attention kernel, and has no heads
SHAPE_ARGS: dict[str, dict] = {"adam_mini": {"num_heads": 4}}
BATCH = 4  # per-example gradients
DATA_SCALE = 0.01  # the trees' gradients are 0.01 N(0, 1)
SLOW_CALL_S = 2.0
PASSES = 2
MAX_ROUNDS = 6
FAST_CALL_S = 0.02  # steps faster than this are called 3 times in a row per round
TIMING_S = {"leaf": 4.0, "transformer": 3.0}  # what a configuration's timed rounds aim at
CAP_S = {"leaf": 420.0, "transformer": 240.0}
SMOKE_CAP_S = 60.0
STARTUP_S = 60.0  # a worker's imports and trees, on top of its first configuration's cap
BUDGET_S = 1500.0
LINE = "zoo_cost row: "


# ---- the optimizers --------------------------------------------------------------------------


def zoo_first(names: Sequence[str]) -> list[str]:
    """``names`` in ``SPECS``'s order, the zoo issues' optimizers before the classics."""
    order = list(SPECS)
    first = order.index(FIRST_ZOO)
    return sorted(names, key=lambda n: (order.index(n) < first, order.index(n)))


def run_order(names: Sequence[str]) -> list[str]:
    """The order a run measures ``names`` in, so that what its budget leaves out matters least:
    the zoo issues' optimizers that optax has, the zoo's others, then the classics."""
    group = lambda n: (not is_zoo(n), reference_name(n) != n)  # noqa: E731
    return sorted(zoo_first(names), key=group)


def is_zoo(name: str) -> bool:
    return list(SPECS).index(name) >= list(SPECS).index(FIRST_ZOO)


def learning_rate(name: str) -> float:
    return SPECS[name].grid[len(SPECS[name].grid) // 2]


def make(module, name: str):
    """``module``'s optimizer ``name`` as measured (refresh every PERIOD steps), or None."""
    spec = dataclasses.replace(
        SPECS[name], budget={**REFRESH.get(name, {}), **SHAPE_ARGS.get(name, {})}
    )
    return zoo_specs.make(module, name, spec, learning_rate(name), budget=True)


def reference_name(name: str) -> str:
    """``name`` where optax has it, else ``adamw``."""
    return name if make(optax, name) is not None else "adamw"


# ---- the step ----------------------------------------------------------------------------------


def quadratic(params, data):
    """½ Σ exp(d / 0.01) p²: curvatures from about e^-5 to e^5 over the data's values, so
    that a quasi-Newton method does not solve it in the few steps timed."""
    leaves = zip(jax.tree.leaves(params), jax.tree.leaves(data))
    return sum(0.5 * jnp.sum(jnp.exp(d / DATA_SCALE) * p * p) for p, d in leaves)


def step_function(module, tx, from_loss: bool, extras: Sequence[str]) -> Callable:
    """``(params, state, data) -> (params, state)``; with ``from_loss`` the gradient is that of
    :func:`quadratic` at the params, and ``extras`` are given to ``update`` by name."""

    def step(params, state, data):
        grads, available = data, {}
        if from_loss:
            value, grads = jax.value_and_grad(quadratic)(params, data)
            loss = lambda p: quadratic(p, data)  # noqa: E731
            available = {"value": value, "grad": grads, "value_fn": loss, "obj_fn": loss}
        updates, state = tx.update(grads, state, params, **{k: available[k] for k in extras})
        return module.apply_updates(params, updates), state

    return step


def per_example(grads):
    """The gradients stacked BATCH times along a new first axis, scaled by 0.5 to 2."""
    scales = jnp.linspace(0.5, 2.0, BATCH)
    return jax.tree.map(lambda g: scales.reshape((BATCH,) + (1,) * g.ndim) * g[None], grads)


def build(step: Callable, params, state, data) -> tuple[object, dict]:
    """The compiled step and its build times (trace + lower, compile)."""
    jitted = jax.jit(step, donate_argnums=(0, 1))
    began = time.perf_counter()
    lowered = jitted.trace(params, state, data).lower()
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    return compiled, {"trace_lower_s": traced - began, "compile_s": done - traced}


class Program:
    """One side of a comparison: a compiled step (built here, or shared) and the builds'
    times."""

    def __init__(self, module, tx, from_loss: bool, extras: Sequence[str]):
        self.module, self.tx, self.from_loss, self.extras = module, tx, from_loss, extras
        self.builds: list[dict] = []
        self.compiled = None

    def build(self, params, data) -> None:
        state = jax.jit(self.tx.init)(params)  # as the runners' (same types, weak or not)
        step = step_function(self.module, self.tx, self.from_loss, self.extras)
        self.compiled, times = build(step, params, state, data)
        self.builds.append(times)


class Runner:
    """A program's own donated params and state, and the time of each call."""

    def __init__(self, program: Program, params):
        self.program = program
        self.params = jax.tree.map(jnp.copy, params)
        self.state = jax.block_until_ready(jax.jit(program.tx.init)(self.params))
        self.state_bytes = zoo_matrix._bytes_per_param(self.state, _size(params))
        self.calls = 0
        self.timed: list[tuple[int, int, float]] = []  # (pass, call index, seconds)
        self.warmup: list[tuple[None, int, float]] = []

    def call(self, data, timed_pass: int | None = None) -> float:
        """One step; its time counts in ``timed_pass`` (None: a warm-up call)."""
        began = time.perf_counter()
        out = self.program.compiled(self.params, self.state, data)
        self.params, self.state = jax.block_until_ready(out)
        seconds = time.perf_counter() - began
        (self.warmup if timed_pass is None else self.timed).append(
            (timed_pass, self.calls, seconds)
        )
        self.calls += 1
        return seconds

    def count_warmup_as_pass(self, timed_pass: int) -> None:
        self.timed += [(timed_pass, i, seconds) for _, i, seconds in self.warmup]
        self.warmup = []


def _size(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


# ---- one configuration -----------------------------------------------------------------------


def _builds(
    ours: Program,
    ref: Program,
    args: tuple,
    tree: str,
    same_named: bool,
    smoke: bool,
    built: Callable[[], None],
):
    """Builds both programs, calling ``built`` after each build (see the module docstring for
    the order and the second pass; the smoke run makes none on the transformer)."""
    fresh = ref.compiled is None
    order = [ours, ref] if fresh else [ours]
    for program in order:
        program.build(*args)
        built()
    slower = _total(ours.builds[0]) > _total(ref.builds[0])
    if fresh and (tree == "leaf" or (same_named and slower and not smoke)):
        for program in order[::-1]:
            program.build(*args)
            built()


def _total(times: dict) -> float:
    return times["trace_lower_s"] + times["compile_s"]


def _rounds(runners: list[Runner], data, tree: str, period, same_named: bool, smoke: bool):
    """Warm-up, then passes of alternating rounds, each round a block of calls of each step (a
    whole refresh period); returns how they ran. Steps of seconds are called the fewest times:
    the warm-up block is the first pass's only round, and a step compared with AdamW gets one
    pass (no verdict needs the second)."""
    block = period or 1
    first = [statistics.mean(runner.call(data) for _ in range(block)) for runner in runners]
    slow = max(first) > SLOW_CALL_S
    if slow:
        for runner in runners:
            runner.count_warmup_as_pass(0)
        passes, rounds, per, done = (PASSES if same_named else 1), 1, block, 1
    else:
        estimate = [statistics.mean(runner.call(data) for _ in range(block)) for runner in runners]
        per = period or (3 if max(estimate) < FAST_CALL_S else 1)
        round_s = per * sum(estimate)
        fit = TIMING_S[tree] / (PASSES * round_s)
        passes, rounds, done = PASSES, 1 if smoke else int(np.clip(fit, 1, MAX_ROUNDS)), 0
    for p in range(done, passes):
        for r in range(rounds):
            order = runners if (p * rounds + r) % 2 == 0 else runners[::-1]
            for runner in order:
                for _ in range(per):
                    runner.call(data, p)
    return {"passes": passes, "rounds": rounds, "per": per, "slow": slow}


def _phases(timed: list[tuple[int, int, float]], period: int | None) -> tuple[list, list]:
    """The plain calls and the refresh calls (the slowest phase modulo ``period``)."""
    if period is None:
        return timed, []
    phases = [[t for t in timed if t[1] % period == i] for i in range(period)]
    slow = max(range(period), key=lambda i: statistics.median(t[2] for t in phases[i]))
    plain = [t for i, ts in enumerate(phases) if i != slow for t in ts]
    return plain, phases[slow]


def _ms(calls: list) -> tuple[float | None, list[float]]:
    """Median milliseconds over ``calls`` and per pass."""
    if not calls:
        return None, []
    passes = sorted({p for p, _, _ in calls})
    by_pass = [1e3 * statistics.median(s for q, _, s in calls if q == p) for p in passes]
    return 1e3 * statistics.median(s for _, _, s in calls), by_pass


def _side(program: Program, runner: Runner, period: int | None, shared: bool) -> dict:
    plain, refresh = _phases(runner.timed, period)
    step_ms, step_passes = _ms(plain)
    refresh_ms, refresh_passes = _ms(refresh)
    best = min(program.builds, key=_total)
    return {
        "trace_lower_s": best["trace_lower_s"],
        "compile_s": best["compile_s"],
        "build_s": _total(best),
        "builds": program.builds,
        "shared_build": shared,
        "step_ms": step_ms,
        "step_ms_passes": step_passes,
        "refresh_ms": refresh_ms,
        "refresh_ms_passes": refresh_passes,
        "calls": runner.calls,
        "state_bytes_per_param": runner.state_bytes,
        "state_leaves": len(jax.tree.leaves(runner.state)),
    }


def _ratio(a, b):
    return None if a is None or b is None else a / b


def verdict(ratio: float | None, passes: Sequence[float], same_named: bool) -> str:
    """ "slower" where gradtx's ratio to optax's same-named optimizer is above 1 in every pass
    and larger than the passes' ratios are to each other (their spread, as a factor); "slower,
    within noise" where it is above 1 otherwise."""
    if not same_named or ratio is None or ratio <= 1:
        return ""
    if len(passes) > 1 and min(passes) > 1 and ratio > max(passes) / min(passes):
        return "slower"
    return "slower, within noise"


def _overall(passes: Sequence[float], whole: float | None) -> float | None:
    """The geometric mean of the passes' ratios (a load that changes between the passes moves
    both sides of a pass alike), or ``whole`` where there are none."""
    return float(np.exp(np.mean(np.log(passes)))) if passes else whole


def _comparison(row: dict) -> dict:
    """The ratios gradtx / reference and their verdicts."""
    ours, ref, same = row["gradtx_cost"], row["reference_cost"], row["same_named"]
    step_passes = [a / b for a, b in zip(ours["step_ms_passes"], ref["step_ms_passes"])]
    step = _overall(step_passes, _ratio(ours["step_ms"], ref["step_ms"]))
    refresh_passes = [a / b for a, b in zip(ours["refresh_ms_passes"], ref["refresh_ms_passes"])]
    refresh = _overall(refresh_passes, _ratio(ours["refresh_ms"], ref["refresh_ms"]))
    builds = list(zip(ours["builds"], ref["builds"])) if not ref["shared_build"] else []
    build_passes = [_total(a) / _total(b) for a, b in builds]
    build = _overall(build_passes, ours["build_s"] / ref["build_s"])
    return {
        "step_ratio": step,
        "step_ratio_passes": step_passes,
        "step_verdict": verdict(step, step_passes, same),
        "refresh_ratio": refresh,
        "refresh_ratio_passes": refresh_passes,
        "refresh_verdict": verdict(refresh, refresh_passes, same),
        "build_ratio": build,
        "build_ratio_passes": build_passes,
        "build_verdict": verdict(build, build_passes, same),
    }


def describe(name: str, tree: str, label: str | None) -> dict:
    """A row's identity: what is compared on which tree."""
    ref = reference_name(name)
    return {
        "optimizer": name,
        "tree": tree,
        "tree_label": label,
        "zoo": is_zoo(name),
        "reference": f"optax {ref}",
        "same_named": ref == name,
        "period": PERIOD if name in REFRESH else None,
        "settings": zoo_specs.describe(
            dataclasses.replace(SPECS[name], budget=REFRESH.get(name, {}))
        ),
        "per_example_batch": BATCH if SPECS[name].per_example else None,
        "loss": "quadratic" if SPECS[name].extras else None,
    }


def measure(name: str, tree: str, label: str, params, grads, shared: dict, emit, smoke: bool):
    """One configuration's row; ``emit`` gets the row once built (so that a configuration over
    its time keeps its build times) and is what returns it complete."""
    began = time.perf_counter()
    spec = SPECS[name]
    row = describe(name, tree, label)
    data = per_example(grads) if spec.per_example else grads
    from_loss = bool(spec.extras)
    ours = Program(gradtx, make(gradtx, name), from_loss, spec.extras)
    if row["same_named"]:
        ref = Program(optax, make(optax, name), from_loss, spec.extras)
    else:  # one AdamW program per tree and step kind, built once
        key = (tree, from_loss, spec.per_example)
        if key not in shared:
            shared[key] = Program(optax, optax.adamw(learning_rate(name)), from_loss, ())
        ref = shared[key]
    reused = ref.compiled is not None
    built = {**row, "status": "built", "gradtx_builds": ours.builds, "reference_builds": ref.builds}
    _builds(ours, ref, (params, data), tree, row["same_named"], smoke, lambda: emit(built))
    runners = [Runner(ours, params), Runner(ref, params)]
    period = row["period"]
    how = _rounds(runners, data, tree, period, row["same_named"], smoke)
    row["gradtx_cost"] = _side(ours, runners[0], period, shared=False)
    row["reference_cost"] = _side(ref, runners[1], period if row["same_named"] else None, reused)
    row.update(_comparison(row), **how, status="ok")
    row["seconds"] = time.perf_counter() - began
    emit(row)


# ---- the worker ------------------------------------------------------------------------------


def make_trees(smoke: bool) -> dict[str, tuple[str, dict, dict]]:
    """tree -> (label, params, grads): ``zoo_matrix.trees_for``'s transformer and matrix."""
    built = zoo_matrix.trees_for(SMOKE_SIDE if smoke else LEAF_SIDE, smoke)
    labels = dict(zip(("transformer", "leaf"), built))
    return {tree: (label, *built[label]) for tree, label in labels.items()}


def warm_process(params, grads) -> None:
    """Builds and runs a throwaway step of each library first, so that the first configuration
    does not pay the process's one-time costs."""
    for module in (gradtx, optax):
        program = Program(module, module.sgd(0.1), False, ())
        program.build(params, grads)
        Runner(program, params).call(grads)


def worker(job: dict) -> None:
    """Measures ``job["configs"]`` in order, printing each row as a line."""
    trees = make_trees(job["smoke"])
    label, params, grads = trees["leaf"]
    warm_process({"w": params["w"][:8, :8]}, {"w": grads["w"][:8, :8]})
    shared: dict = {}
    emit = lambda row: print(LINE + json.dumps(row), flush=True)  # noqa: E731
    for name, tree in job["configs"]:
        label, params, grads = trees[tree]
        try:
            measure(name, tree, label, params, grads, shared, emit, job["smoke"])
        except Exception as error:  # noqa: BLE001 (recorded in the row, the run goes on)
            emit({**describe(name, tree, label), "status": f"error: {error!r}"})
        gc.collect()


# ---- the parent: workers under time limits -----------------------------------------------------


class Worker:
    """A worker process and the rows it prints, read on a thread."""

    def __init__(self, configs: list[tuple[str, str]], smoke: bool):
        job = json.dumps({"configs": configs, "smoke": smoke})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.zoo_cost", "--worker", job],
            stdout=subprocess.PIPE,
            text=True,
            cwd=zoo_specs.ROOT,
            env={**os.environ, "PYTHONPATH": str(zoo_specs.ROOT)},
        )
        self.rows: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(LINE):
                self.rows.put(json.loads(line[len(LINE) :]))
            else:
                sys.stderr.write(line)
        self.rows.put(None)

    def next_row(self, deadline: float) -> dict | None:
        """The next row, None at the worker's end; raises ``queue.Empty`` past ``deadline``."""
        return self.rows.get(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join()  # the pipe ends with the process
        self.process.stdout.close()


def run_configs(
    configs: list[tuple[str, str]], smoke: bool, cap: float | None, budget: float, log
) -> list[dict]:
    """Every configuration's row, each measured within its cap, the run within ``budget``."""
    rows: dict[tuple[str, str], dict] = {}
    began = time.monotonic()
    pending = list(configs)
    while pending:
        worker = Worker(pending, smoke)
        startup = STARTUP_S
        try:
            while pending and time.monotonic() - began <= budget:
                name, tree = pending.pop(0)
                limit = cap or (SMOKE_CAP_S if smoke else CAP_S[tree])
                partial = describe(name, tree, None)
                row = _finished_row(worker, time.monotonic() + limit + startup, partial)
                startup = 0.0
                if row is None:
                    ended = worker.process.poll() is not None
                    partial["status"] = "worker ended" if ended else f"over budget (> {limit:g} s)"
                rows[name, tree] = row or partial
                log(_line(rows[name, tree]))
                if row is None:
                    break  # a new worker takes the rest
        finally:
            worker.stop()
        if time.monotonic() - began > budget:
            for name, tree in pending:
                skipped = f"skipped (the run's {budget:g} s were spent)"
                rows[name, tree] = {**describe(name, tree, None), "status": skipped}
            pending = []
    return [rows[c] for c in configs]


def _finished_row(worker: Worker, deadline: float, partial: dict) -> dict | None:
    """The worker's next complete row (error rows included); None if it ran past
    ``deadline`` or ended first, ``partial`` then holding what it had said of the row."""
    while True:
        try:
            row = worker.next_row(deadline)
        except queue.Empty:
            return None
        if row is None:
            return None
        if row["status"] != "built":
            return row
        partial.update(row)


def _line(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['optimizer']} on {row['tree']}: {row['status']}"
    ours, ref = row["gradtx_cost"], row["reference_cost"]
    refresh = f", refresh {ours['refresh_ms']:.1f} ms" if ours["refresh_ms"] is not None else ""
    return (
        f"{row['optimizer']} on {row['tree']}: step {ours['step_ms']:.2f} ms vs "
        f"{ref['step_ms']:.2f} ({row['reference']}) x{row['step_ratio']:.2f}{refresh}; build "
        f"{ours['build_s']:.2f} s vs {ref['build_s']:.2f} x{row['build_ratio']:.2f} "
        f"({row['seconds']:.0f} s)"
    )


# ---- the report --------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _ratio_cell(ratio: float | None, passes: Sequence[float]) -> str:
    if ratio is None:
        return "—"
    spread = f" ({' / '.join(f'{p:.2f}' for p in passes)})" if len(passes) > 1 else ""
    return f"{ratio:.2f}{spread}"


def _name_cell(row: dict) -> str:
    return row["optimizer"] if row["zoo"] else f"{row['optimizer']} (classic)"


def _reference_cell(row: dict) -> str:
    return row["reference"] + ("" if row["same_named"] else " (none of the name)")


def step_table(rows: list[dict]) -> list[str]:
    lines = [
        "| optimizer | reference | gradtx ms | reference ms | × (pass 1 / 2) | "
        "gradtx refresh ms | reference refresh ms | refresh × (pass 1 / 2) | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            lines.append(
                f"| {_name_cell(row)} | {_reference_cell(row)} | {row['status']} | | | | | | |"
            )
            continue
        ours, ref = row["gradtx_cost"], row["reference_cost"]
        verdicts = [
            v
            for v in (
                row["step_verdict"],
                row["refresh_verdict"] and f"refresh: {row['refresh_verdict']}",
            )
            if v
        ]
        lines.append(
            f"| {_name_cell(row)} | {_reference_cell(row)} | {_num(ours['step_ms'])} | "
            f"{_num(ref['step_ms'])} | {_ratio_cell(row['step_ratio'], row['step_ratio_passes'])}"
            f" | {_num(ours['refresh_ms'])} | {_num(ref['refresh_ms'])} | "
            f"{_ratio_cell(row['refresh_ratio'], row['refresh_ratio_passes'])} | "
            f"{'; '.join(verdicts)} |"
        )
    return lines


_BUILT = ("gradtx_builds", "reference_builds")  # a partial row's builds


def build_table(rows: list[dict]) -> list[str]:
    lines = [
        "| optimizer | reference | gradtx trace+lower s | gradtx compile s | reference "
        "trace+lower s | reference compile s | × (per pass) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        start = f"| {_name_cell(row)} | {_reference_cell(row)} | "
        if row["status"] == "ok":
            ours, ref = row["gradtx_cost"], row["reference_cost"]
            shared = " (shared)" if ref["shared_build"] else ""
            lines.append(
                f"{start}{ours['trace_lower_s']:.2f} | {ours['compile_s']:.2f} | "
                f"{ref['trace_lower_s']:.2f}{shared} | {ref['compile_s']:.2f}{shared} | "
                f"{_ratio_cell(row['build_ratio'], row['build_ratio_passes'])} | "
                f"{row['build_verdict']} |"
            )
        elif "gradtx_builds" in row:  # built (one side or both), then over its time
            sides = [min(row[k], key=_total) if row[k] else None for k in _BUILT]
            cells = [
                f"{b['trace_lower_s']:.2f} | {b['compile_s']:.2f}" if b else "— | —" for b in sides
            ]
            ratio = _total(sides[0]) / _total(sides[1]) if all(sides) else None
            lines.append(f"{start}{' | '.join(cells)} | {_num(ratio)} | {row['status']} |")
        else:
            lines.append(f"{start}{row['status']} | | | | | |")
    return lines


def headline(rows: list[dict]) -> list[str]:
    """What a reader wants first: the same-named rows where gradtx is slower, the largest
    ratios, and what did not run."""
    ok = [r for r in rows if r["status"] == "ok" and r["same_named"]]
    lines = []
    for what, key in (("step", "step"), ("refresh step", "refresh"), ("build", "build")):
        slower = [r for r in ok if r[f"{key}_verdict"] == "slower"]
        within = [r for r in ok if r[f"{key}_verdict"] == "slower, within noise"]
        lines.append(
            f"- {what.capitalize()} slower than optax's same-named one, beyond noise: "
            + (", ".join(_named_ratio(r, key) for r in slower) or "none")
            + "; within noise: "
            + (", ".join(_named_ratio(r, key) for r in within) or "none")
            + "."
        )
    for key in ("step", "build"):
        rated = [r for r in ok if r[f"{key}_ratio"] is not None]
        if rated:
            top = max(rated, key=lambda r: r[f"{key}_ratio"])
            lines.append(
                f"- Largest {key} ratio to optax's same-named one: {_named_ratio(top, key)}."
            )
    left: dict[str, dict[str, list[str]]] = {}  # status -> tree -> optimizers
    for r in rows:
        if r["status"] != "ok":
            left.setdefault(r["status"], {}).setdefault(r["tree"], []).append(r["optimizer"])
    for status, by_tree in left.items():
        where = "; ".join(f"on the {tree}: {', '.join(names)}" for tree, names in by_tree.items())
        lines.append(f"- Not measured, {status}: {where}.")
    if not left:
        lines.append("- Not measured: none.")
    return lines


def _named_ratio(row: dict, key: str) -> str:
    passes = row[f"{key}_ratio_passes"]
    spread = f" ({' / '.join(f'{p:.2f}' for p in passes)})" if len(passes) > 1 else ""
    return f"{row['optimizer']} on the {row['tree']} ×{row[f'{key}_ratio']:.2f}{spread}"


def markdown(report: dict) -> str:
    rows = report["rows"]
    lines = [
        "# Every optimizer's cost against optax",
        "",
        *(
            f"- `{r['command']}`: {r['date']}, {r['seconds']:.0f} s, gradtx at {r['source']}."
            for r in report["runs"]
        ),
        "",
        f"{report['machine']}; {report['versions']}. How it is measured: the docstring of "
        "`benchmarks/zoo_cost.py`.",
        "",
        "Ratios are gradtx over the reference measured in the same process, in alternating "
        "rounds; in brackets, each pass's (how far apart they are is the noise). The verdict is "
        'given against optax\'s same-named optimizer only: "slower" where every pass says so and '
        "the ratio is larger than the passes' ratio to each other. Steps of seconds have one "
        "call per pass. Optimizers with a refresh step run with it every 2 steps "
        '(both libraries); the refresh step is reported apart. "(classic)": an optimizer that '
        "predates the zoo issues.",
        "",
        "## Headline",
        "",
        *headline(rows),
    ]
    for tree in report["trees"]:
        tree_rows = [r for r in rows if r["tree"] == tree]
        if not tree_rows:
            continue
        label = next((r["tree_label"] for r in tree_rows if r["tree_label"]), tree)
        lines += ["", f"## {label}: step time (median of the timed calls)", ""]
        lines += step_table(tree_rows)
        lines += ["", f"## {label}: build time (the faster of the builds)", ""]
        lines += build_table(tree_rows)
    settings = sorted({(r["optimizer"], r["settings"]) for r in rows if r["settings"]})
    if settings:
        lines += ["", "Settings besides the defaults and the learning rate:", ""]
        lines += [f"- {name}: {text}" for name, text in settings]
    return "\n".join(lines) + "\n"


# ---- the command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.zoo_cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", default="", help="comma-separated optimizers (default: all)")
    parser.add_argument("--trees", default=",".join(TREES), help="leaf,transformer")
    parser.add_argument("--smoke", action="store_true", help="tiny trees, one round per pass")
    parser.add_argument("--out", default=str(OUT), help="the folder of the outputs")
    parser.add_argument("--cap", type=float, help="each configuration's limit in seconds")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="the run's, in seconds")
    parser.add_argument(
        "--merge", action="store_true", help="keep --out's other rows (measured before)"
    )
    parser.add_argument(
        "--report", action="store_true", help="rewrite the report from --out's zoo_cost.json"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        parser.error(f"--only: unknown optimizers {unknown}; known: {sorted(SPECS)}")
    chosen_trees = [t for t in args.trees.split(",") if t]
    if not chosen_trees or any(t not in TREES for t in chosen_trees):
        parser.error(f"--trees: a comma-separated subset of {TREES}, got {args.trees!r}")
    args.names = names or list(SPECS)
    args.tree_list = chosen_trees
    return args


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return {}
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = pathlib.Path(args.out)
    previous = out / RESULTS
    reuse = (args.merge or args.report) and previous.exists()
    earlier = json.loads(previous.read_text()) if reuse else None
    if args.report:
        if earlier is None:
            raise SystemExit(f"zoo_cost: --report: no {previous}")
        report = merged(earlier, None, [], earlier["smoke"])
    else:
        configs = [(name, tree) for name in run_order(args.names) for tree in args.tree_list]
        began = time.monotonic()
        rows = run_configs(configs, args.smoke, args.cap, args.budget, log)
        run = {
            "command": " ".join(["python -m benchmarks.zoo_cost", *(argv or sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "seconds": time.monotonic() - began,
            "source": zoo_specs.source(),
        }
        report = merged(earlier, run, rows, args.smoke)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (out / REPORT).write_text(text)
    if complete(report):
        target = zoo_specs.ROOT / "benchmarks" / REPORT
        if (out / REPORT).resolve() != target.resolve():
            shutil.copyfile(out / REPORT, target)
    log(text)
    return report


def merged(earlier: dict | None, run: dict | None, rows: list[dict], smoke: bool) -> dict:
    """The report of this run's rows, with ``earlier``'s other rows and runs (``--merge``;
    ``--report``: no run, no rows)."""
    new = {(r["optimizer"], r["tree"]) for r in rows}
    kept = [r for r in earlier["rows"] if (r["optimizer"], r["tree"]) not in new] if earlier else []
    order = {name: i for i, name in enumerate(zoo_first(list(SPECS)))}
    every = sorted(kept + rows, key=lambda r: (order[r["optimizer"]], TREES.index(r["tree"])))
    for row in every:  # the verdicts as this version of the module gives them
        if row["status"] == "ok":
            row.update(_comparison(row))
    return {
        "runs": (earlier["runs"] if earlier else []) + ([run] if run else []),
        "machine": zoo_specs.machine(),
        "versions": zoo_specs.versions(),
        "smoke": smoke,
        "trees": [t for t in TREES if any(r["tree"] == t for r in every)],
        "rows": every,
    }


def complete(report: dict) -> bool:
    """Whether the report has a row (measured or not) for every optimizer and tree."""
    have = {(r["optimizer"], r["tree"]) for r in report["rows"]}
    return not report["smoke"] and have >= {(n, t) for n in SPECS for t in TREES}


if __name__ == "__main__":
    main()
