"""The leaderboard: every gradtx optimizer on the same three small problems.

Run from the repository root (the ``demo`` extra installed): ``python -m benchmarks.zoo``.
Options: ``--only adam,lion`` (a subset of optimizers), ``--tasks mlp,lm`` (a subset of the
tasks), ``--steps N`` (every task's step count), ``--out DIR`` (default
``benchmarks/results/``), ``--smoke`` (two optimizers, a few steps, a small text: what the test
suite runs), ``--limit S`` (an optimizer still running on a task after S seconds, 600 by default,
stops the run with its name: a deadlock inside XLA raises nothing). It shows a progress bar,
prints the tables, and writes ``zoo.json`` (every number), ``zoo.png`` (the loss curves, one
panel per family and task) and ``ZOO.md`` to ``--out``; a complete run (no option but ``--out``
and ``--limit``) also writes ``benchmarks/ZOO.md`` and ``benchmarks/zoo.png``, which the README
shows.

The tasks are in :mod:`benchmarks.zoo_tasks` (the digits MLP of :mod:`gradtx.demo`, a small
CNN on the same digits, a character-level transformer on Python's own standard library), and
how each optimizer is run in :mod:`benchmarks.zoo_specs` (its family, learning-rate grid,
arguments, what its update needs, the params it is evaluated at).

For each optimizer and task:

1. The learning rate: the spec's three rates and one more at each end (the same ratio), all
   trained in one compiled program: :func:`gradtx.sweep` stacks one optimizer state per rate,
   and ``jax.vmap`` of the training step runs them together, from the same initial weights
   (seed 0) on the same mini-batches. The rate with the lowest final held-out loss is kept
   (diverged runs count as infinite).
2. The chosen rate is trained again from five other seeds (1 to 5: initial weights and
   mini-batch order), by the same compiled program, and these five runs are what the tables
   report; seed 0 only chose the rate.

Columns: ``val loss`` and ``val acc``, the held-out cross-entropy and accuracy after the last
step, mean ± standard deviation over the five seeds (the language model's accuracy is that of
its next-character predictions); ``steps to X%``, the median over the seeds of the first
evaluation (every chunk of steps) at which the held-out accuracy reached the task's target
("—": not reached by half the seeds or more); ``ms/step``, the wall time of the seeds' program
per step, over every chunk of steps but the first (whose first call pays one-time costs), divided
by the five models it trains; ``state B/param``, the
bytes of one optimizer state over the number of params; ``lr``, the chosen rate (``*``: at an
end of the grid). Every optimizer runs at its defaults but the learning rate (and the few
arguments its spec sets, listed in ``ZOO.md``), without a schedule. The overall table ranks each
optimizer on each task by mean held-out loss.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import pathlib
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from benchmarks import zoo_specs, zoo_tasks
from benchmarks.zoo_specs import EXCLUDED, FAMILIES, SPECS, Spec
from gradtx import demo
from gradtx._core.hyper import Hyperparam

ROOT = zoo_specs.ROOT
OUT = ROOT / "benchmarks" / "results"
GRID_SEED = 0
SMOKE = ("adam", "sgd")


def seeds_for(grid: Sequence[float]) -> tuple[int, ...]:
    """The seeds the chosen rate is trained from: as many as the grid has values, so that the
    sweep's compiled program (that many copies at once) runs them too. Compiling is most of an
    optimizer's time here; fewer seeds would need a program of their own and save little."""
    return tuple(range(GRID_SEED + 1, GRID_SEED + 1 + len(grid)))


def _nice(x: float) -> float:
    """The number of the form 1, 2, 3 or 5 times a power of ten nearest to ``x`` (in ratio)."""
    exponent = math.floor(math.log10(x))
    candidates = [m * 10.0**e for m in (1, 2, 3, 5) for e in (exponent - 1, exponent, exponent + 1)]
    return float(f"{min(candidates, key=lambda c: abs(math.log(c / x))):.1g}")


def widen(grid: Sequence[float]) -> tuple[float, ...]:
    """The spec's grid with one more value at each end, about a step of the same ratio."""
    return (_nice(grid[0] ** 2 / grid[1]), *grid, _nice(grid[-1] ** 2 / grid[-2]))


def grid_for(name: str, smoke: bool) -> tuple[float, ...]:
    """The learning rates tried: the spec's three (the smoke run), widened to five."""
    return SPECS[name].grid if smoke else widen(SPECS[name].grid)


# --- one optimizer on one task ---


@functools.cache
def _model(task: zoo_tasks.Task):
    """The task's model as a function: its graph (for ``nnx.merge``) and the number of params."""
    from flax import nnx

    graphdef, state = nnx.split(nnx.eval_shape(lambda: task.build(0)))
    return graphdef, sum(x.size for x in jax.tree.leaves(state))


@functools.cache
def _initializer(task: zoo_tasks.Task):
    """``seed -> the model's initial weights``, a plain dict of arrays, compiled once (built
    eagerly, every initializer of every shape would compile on its own)."""
    from flax import nnx

    return jax.jit(lambda seed: nnx.to_pure_dict(nnx.split(task.build(jax.random.key(seed)))[1]))


@functools.cache
def initial_params(task: zoo_tasks.Task, seed: int):
    return _initializer(task)(seed)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _evaluator(task: zoo_tasks.Task, eval_params: str | None, axes=None):
    """The held-out loss and accuracy of stacked copies, ``(params, states, x, y) -> (loss,
    accuracy)``, at the params ``eval_params(state, params)`` gives (the states' leaves batched
    as ``axes`` says), or at the params themselves (None)."""
    from flax import nnx

    graphdef, _ = _model(task)

    def evaluate(params, state, x_val, y_val):
        if eval_params:
            params = getattr(gradtx, eval_params)(state, params)
        logits = nnx.merge(graphdef, params)(x_val)
        return demo.cross_entropy(logits, y_val), zoo_tasks.accuracy(logits, y_val)

    if eval_params:
        return jax.jit(jax.vmap(evaluate, (0, _vmap_axes(axes), None, None)))
    only_params = jax.jit(jax.vmap(lambda p, x, y: evaluate(p, None, x, y), (0, None, None)))
    return lambda params, states, x, y: only_params(params, x, y)


@functools.cache
def _shared_evaluator(task: zoo_tasks.Task):
    """The evaluation of every optimizer without a rule of its own: compiled once per task."""
    return _evaluator(task, None)


# Where the copies of a state may share a leaf. Under ``vmap`` a ``lax.cond`` on a batched
# predicate becomes a select that runs both branches: a preconditioner refreshed every k steps
# (GaLore's SVD, Shampoo's roots, Sophia's Hessian estimate) would be refreshed at every step,
# tens of times slower. The step count and the hyperparameters that are not swept are the same in
# every copy and depend on nothing but the count, so they are passed once, unbatched, and the
# refresh stays a branch taken every k steps.


def _same(x) -> bool:
    return bool(np.all(np.asarray(x) == np.asarray(x)[0]))


def _shared(states):
    """Per leaf of the stacked states: -1 where one value serves every copy (an integer or
    boolean leaf, or a hyperparameter, equal in every copy), else 0 (stacked on axis 0)."""

    def leaf(x, in_hyperparam):
        countable = in_hyperparam or jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == bool
        return -1 if countable and _same(x) else 0

    def node(x):
        if isinstance(x, Hyperparam):
            return Hyperparam(*(leaf(v, True) for v in x))
        return leaf(x, False) if hasattr(x, "dtype") else 0

    return jax.tree.map(node, states, is_leaf=lambda x: isinstance(x, Hyperparam))


def _unstack(states, axes):
    return jax.tree.map(lambda x, a: x[0] if a < 0 else x, states, axes)


def _vmap_axes(axes):
    """``_shared``'s axes as ``vmap`` takes them (None: not batched)."""
    return jax.tree.map(lambda a: None if a < 0 else a, axes)


def chunk_size(steps: int) -> int:
    """Steps per compiled call: the largest divisor of ``steps`` up to a twelfth of it, so that
    every curve has a dozen points or more and one program runs every chunk."""
    return max(d for d in range(1, max(1, steps // 12) + 1) if steps % d == 0)


class Program:
    """The vmapped training chunk and evaluation of one optimizer on one task, compiled once
    per number of copies and chunk length."""

    def __init__(self, task: zoo_tasks.Task, spec: Spec, tx):
        self.task, self.spec, self.tx = task, spec, tx
        (x_train, y_train), (x_val, y_val) = task.data
        self.train_data = (jnp.asarray(x_train), jnp.asarray(y_train))
        self.val_data = (jnp.asarray(x_val), jnp.asarray(y_val))
        self.compile_seconds = 0.0
        self._compiled = {}
        self._evaluators = {}
        self._axes = None  # how the states' leaves are batched (see _shared)

    def loss(self, params, x, y):
        from flax import nnx

        graphdef, _ = _model(self.task)
        return demo.cross_entropy(nnx.merge(graphdef, params)(x), y)

    def _gradient(self, params, x, y):
        """The mini-batch's loss and the gradient the update takes (per example if asked)."""
        if not self.spec.per_example:
            return jax.value_and_grad(self.loss)(params, x, y)
        one = lambda p, xi, yi: self.loss(p, xi[None], yi[None])
        return self.loss(params, x, y), jax.vmap(jax.grad(one), (None, 0, 0))(params, x, y)

    # The data are arguments, not closed-over constants: XLA would fold constants at compile time.
    def _chunk_one(self, params, state, indices, x_train, y_train):
        def step(carry, idx):
            params, state = carry
            x, y = x_train[idx], y_train[idx]
            value, grads = self._gradient(params, x, y)
            fn = lambda p: self.loss(p, x, y)
            available = {"value": value, "grad": grads, "value_fn": fn, "obj_fn": fn}
            extra = {name: available[name] for name in self.spec.extras}
            updates, state = self.tx.update(grads, state, params, **extra)
            return (gradtx.apply_updates(params, updates), state), value

        (params, state), losses = jax.lax.scan(step, (params, state), indices)
        return params, state, jnp.mean(losses)

    def compiled(self, params, states, indices, axes):
        """The chunk of steps for these shapes, ``(params, states, indices) -> (params,
        states, mean mini-batch losses)``, the states' leaves batched as ``axes`` says;
        compiled on first use."""
        key = (indices.shape[:2], tuple(jax.tree.leaves(axes)))
        if key not in self._compiled:
            began = time.perf_counter()
            in_axes = (0, _vmap_axes(axes), 0, None, None)
            out_axes = (0, _vmap_axes(axes), 0)
            program = jax.jit(jax.vmap(self._chunk_one, in_axes, out_axes))
            lowered = program.lower(params, states, indices, *self.train_data)
            self._compiled[key] = lowered.compile()
            self.compile_seconds += time.perf_counter() - began
        run = self._compiled[key]
        return lambda params, states, indices: run(params, states, indices, *self.train_data)

    def evaluate(self, params, states, axes):
        if self.spec.eval_params:
            key = tuple(jax.tree.leaves(axes))
            if key not in self._evaluators:
                self._evaluators[key] = _evaluator(self.task, self.spec.eval_params, axes)
            evaluate = self._evaluators[key]
        else:
            evaluate = _shared_evaluator(self.task)
        loss, accuracy = evaluate(params, states, *self.val_data)
        return np.asarray(loss, np.float64), np.asarray(accuracy, np.float64)

    def train(self, params, states, seeds: Sequence[int], progress) -> dict:
        """Trains the stacked copies (one per entry of ``seeds``, whose mini-batches they
        take); returns their curves: per chunk, the mean mini-batch loss and the held-out loss
        and accuracy of each copy, and the steps and seconds of each chunk run (not
        compiling)."""
        task = self.task
        indices = np.stack(
            [demo.batch_indices(task.n_train, task.steps, task.batch_size, s) for s in seeds]
        )
        curves = {"steps": [], "loss": [], "val_loss": [], "val_accuracy": [], "timed": []}
        size = chunk_size(task.steps)
        if self._axes is None:  # the sweep's: the seeds' runs keep them, and with as many
            # copies as the grid (the smoke run's) their compiled program
            axes = _shared(states)
            try:
                self.compiled(params, _unstack(states, axes), indices[:, :size], axes)
            except ValueError:  # a leaf taken as shared differs per copy after a step
                axes = jax.tree.map(lambda _: 0, axes)
            self._axes = axes
        axes = self._axes
        states = _unstack(states, axes)
        for start in range(0, task.steps, size):
            chunk = jnp.asarray(indices[:, start : start + size])
            if curves["loss"] and not np.isfinite(curves["loss"][-1]).any():
                losses = np.full(len(seeds), np.nan)  # every copy diverged: skip the work
                val_loss, val_accuracy = losses, losses
            else:
                run = self.compiled(params, states, chunk, axes)  # compiling is not timed
                began = time.perf_counter()
                params, states, losses = run(params, states, chunk)
                losses = np.asarray(losses, np.float64)  # waits for the chunk
                curves["timed"].append((chunk.shape[1], time.perf_counter() - began))
                val_loss, val_accuracy = self.evaluate(params, states, axes)
            curves["steps"].append(start + chunk.shape[1])
            for name, values in (
                ("loss", losses),
                ("val_loss", val_loss),
                ("val_accuracy", val_accuracy),
            ):
                curves[name].append(np.where(np.isfinite(values), values, np.nan))
            progress.update(chunk.shape[1])
        for name in ("loss", "val_loss", "val_accuracy"):
            curves[name] = np.stack(curves[name], axis=1)  # [copies, chunks]
        return curves


def _ms_per_step(timed: list[tuple[int, float]]) -> float:
    """Milliseconds per step over the chunks after the first, whose first call also pays
    one-time costs (the first chunk alone if it is the only one)."""
    timed = timed[1:] or timed
    return 1e3 * sum(t for _, t in timed) / max(1, sum(n for n, _ in timed))


def _steps_to(curves: dict, target: float) -> list[int | None]:
    reached = []
    for accuracies in curves["val_accuracy"]:
        hits = np.flatnonzero(np.nan_to_num(accuracies) >= target)
        reached.append(int(curves["steps"][hits[0]]) if hits.size else None)
    return reached


def _median_steps(reached: list[int | None]) -> int | None:
    ordered = sorted(math.inf if r is None else r for r in reached)
    middle = ordered[len(ordered) // 2]
    return None if middle == math.inf else int(middle)


def _state_bytes(state) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state) if hasattr(x, "dtype"))


def run_one(name: str, task: zoo_tasks.Task, grid: Sequence[float], progress) -> dict:
    """One leaderboard entry: the sweep over ``grid`` at seed 0, then the best rate over
    ``seeds_for(grid)``."""
    spec = SPECS[name]
    began, cpu = time.perf_counter(), time.process_time()
    tx = zoo_specs.make(gradtx, name, spec, grid[0], budget=True)
    program = Program(task, spec, tx)
    _, n_params = _model(task)
    progress.set_postfix_str(f"{task.name} {name}")

    # The stacked states and params are built in compiled functions: built eagerly, each small
    # operation on each shape would compile on its own.
    first = initial_params(task, GRID_SEED)
    sweep_states = lambda p: gradtx.sweep(tx.init(p), **{spec.key: np.asarray(grid)})
    params, states = jax.jit(lambda p: (_stack([p] * len(grid)), sweep_states(p)))(first)
    sweep = program.train(params, states, [GRID_SEED] * len(grid), progress)
    final = sweep["val_loss"][:, -1]
    best = int(np.argmin(np.where(np.isfinite(final), final, np.inf)))
    lr = grid[best]

    at_lr = lambda p: gradtx.set_hyperparams(tx.init(p), **{spec.key: lr})
    params, states = jax.jit(lambda ps: (_stack(ps), _stack([at_lr(p) for p in ps])))(
        [initial_params(task, s) for s in seeds_for(grid)]
    )
    seeds = program.train(params, states, seeds_for(grid), progress)
    return {
        "optimizer": name,
        "family": spec.family,
        "task": task.name,
        "grid": {f"{v:g}": _number(x) for v, x in zip(grid, final)},
        "lr": lr,
        "lr_at_edge": best in (0, len(grid) - 1),
        "seeds": list(seeds_for(grid)),
        "val_loss": [_number(x) for x in seeds["val_loss"][:, -1]],
        "val_accuracy": [_number(x) for x in seeds["val_accuracy"][:, -1]],
        "steps_to_target": _steps_to(seeds, task.target),
        "ms_per_step": _ms_per_step(seeds["timed"]) / len(grid),
        "compile_s": program.compile_seconds,
        "state_bytes_per_param": _state_bytes(jax.eval_shape(tx.init, first)) / n_params,
        "curve": {
            "steps": seeds["steps"],
            "loss": [[_number(x) for x in row] for row in seeds["loss"]],
            "val_loss": [[_number(x) for x in row] for row in seeds["val_loss"]],
        },
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - cpu,  # less sensitive than seconds to other load
        "error": "",
    }


def _number(x) -> float | None:
    """A JSON number, or None for a diverged (non-finite) value."""
    x = float(x)
    return x if math.isfinite(x) else None


# --- the tables ---


def _mean_sd(values: list[float | None]) -> tuple[float, float]:
    """Mean and standard deviation over the seeds; NaN if any diverged."""
    if any(v is None for v in values) or not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values))


def _score(entry: dict) -> float:
    mean, _ = _mean_sd(entry["val_loss"]) if not entry["error"] else (math.nan, 0)
    return mean if math.isfinite(mean) else math.inf


def ranked(results: list[dict], task: str) -> list[dict]:
    """The task's entries, best (lowest mean held-out loss) first; diverged and failed last."""
    return sorted((r for r in results if r["task"] == task), key=_score)


def task_table(results: list[dict], task: dict) -> str:
    target = f"steps to {task['target']:.0%}"
    lines = [
        f"| # | optimizer | family | lr | val loss | val acc | {target} | ms/step "
        "| state B/param |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rank, r in enumerate(ranked(results, task["name"]), 1):
        if r["error"]:
            lines.append(f"| | {r['optimizer']} | {r['family']} | failed: {r['error']} | | | | | |")
            continue
        loss, loss_sd = _mean_sd(r["val_loss"])
        acc, acc_sd = _mean_sd(r["val_accuracy"])
        diverged = not math.isfinite(loss)
        steps = _median_steps(r["steps_to_target"])
        lines.append(
            f"| {'' if diverged else rank} | {r['optimizer']} | {r['family']} "
            f"| {r['lr']:g}{'*' if r['lr_at_edge'] else ''} "
            + (
                "| diverged | diverged "
                if diverged
                else f"| {loss:.3f} ± {loss_sd:.3f} | {acc:.1%} ± {acc_sd:.1%} "
            )
            + f"| {'—' if steps is None else steps} | {r['ms_per_step']:.2f} "
            f"| {r['state_bytes_per_param']:.1f} |"
        )
    return "\n".join(lines)


def overall_table(results: list[dict], tasks: list[str]) -> str:
    """Each optimizer's rank on each task and their mean (failed or diverged: last)."""
    ranks: dict[str, dict[str, int]] = {}
    for task in tasks:
        for rank, r in enumerate(ranked(results, task), 1):
            ranks.setdefault(r["optimizer"], {})[task] = rank
    family = {r["optimizer"]: r["family"] for r in results}
    rows = sorted(ranks, key=lambda n: (np.mean(list(ranks[n].values())), n))
    lines = [
        "| optimizer | family | " + " | ".join(f"rank {t}" for t in tasks) + " | mean rank |",
        "| --- | --- | " + " | ".join("---:" for _ in tasks) + " | ---: |",
    ]
    for name in rows:
        cells = " | ".join(str(ranks[name].get(t, "")) for t in tasks)
        mean = np.mean(list(ranks[name].values()))
        lines.append(f"| {name} | {family[name]} | {cells} | {mean:.1f} |")
    return "\n".join(lines)


LIMITS = (
    "Limits: three small problems (tens of thousands of params, a few hundred steps) on a CPU; "
    "one learning-rate grid of five values per optimizer at its other defaults, no schedule, "
    "no tuning of anything else; five seeds. An optimizer that wins here may lose on a large "
    "model trained for long, where schedules, weight decay and its other hyperparameters "
    "matter; one that needs a schedule or many steps (a sign method at a constant rate, a "
    "preconditioner refreshed rarely) is at a disadvantage. Times are of the whole vmapped "
    "step on a CPU, shared by the five models, and not of each optimizer's own cost."
)


def markdown(report: dict) -> str:
    settings = report["settings"]
    lines = [
        "# The gradtx leaderboard",
        "",
        f"Produced by `{report['command']}` on {report['date']} in {report['seconds']:.0f} s "
        "(written by the script; do not edit by hand).",
        "",
        f"- Machine: {report['machine']}",
        f"- Versions: {report['versions']}; gradtx {report['source']}",
        f"- Learning rate: the best of {settings['grid_size']} by held-out loss at seed "
        f"{settings['grid_seed']}, "
        "trained in one vmapped program (`gradtx.sweep`); then that rate over seeds "
        f"{', '.join(map(str, settings['seeds']))}, which the tables report (mean ± sd)",
    ]
    for task in report["tasks"].values():
        lines.append(
            f"- `{task['name']}`: {task['title']}, {task['n_params']} params; "
            f"{task['steps']} steps of {task['batch_size']}; "
            f"{task['n_train']} train / {task['n_val']} held-out examples"
        )
    lines += ["", LIMITS, ""]
    if report["arguments"]:
        lines += ["Run with, besides their defaults and the learning rate:", ""]
        lines += [f"- `{name}`: {text}" for name, text in report["arguments"].items()]
        lines.append("")
    if report["excluded"]:
        lines += ["Not run:", ""]
        lines += [f"- `{name}`: {why}" for name, why in report["excluded"].items()]
        lines.append("")
    names = list(report["tasks"])
    lines += ["## Overall", "", overall_table(report["results"], names), ""]
    for task in report["tasks"].values():
        lines += [f"## {task['name']}: {task['title']}", ""]
        lines += [task_table(report["results"], task), ""]
    lines += ["![loss curves](zoo.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: pathlib.Path) -> None:
    """The seeds' mean training-loss curve of every optimizer: a row per family, a column per
    task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if not r["error"]]
    families = [f for f in FAMILIES if any(r["family"] == f for r in results)]
    tasks = list(report["tasks"])
    fig, axes = plt.subplots(
        len(families),
        len(tasks),
        figsize=(4.2 * len(tasks), 2.6 * len(families)),
        squeeze=False,
    )
    for row, family in enumerate(families):
        for col, task in enumerate(tasks):
            ax = axes[row][col]
            shown = [r for r in results if r["family"] == family and r["task"] == task]
            starts = []
            for i, r in enumerate(shown):
                losses = np.array(r["curve"]["loss"], dtype=np.float64)  # None: NaN
                finite = np.isfinite(losses)
                mean = np.where(finite, losses, 0).sum(0) / np.maximum(finite.sum(0), 1)
                mean = np.where(finite.any(0), mean, np.nan)  # the seeds that did not diverge
                # past ten lines the colours repeat: the line style tells them apart
                style = ("-", "--", ":")[i // 10 % 3]
                ax.plot(r["curve"]["steps"], mean, style, label=r["optimizer"])
                starts.append(mean[0])
            ax.set_yscale("log")
            if np.isfinite(starts).any():  # a diverging run would squash the others
                ax.set_ylim(top=1.5 * np.nanmax(starts))
            ax.grid(alpha=0.3)
            ax.set_title(f"{task}: {family}", fontsize=9)
            if row == len(families) - 1:
                ax.set_xlabel("step")
            if col == 0:
                ax.set_ylabel("training loss")
            if ax.lines:
                ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the command ---


def parse_args(argv: Sequence[str] | None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.zoo",
        description="Every gradtx optimizer on three small problems: the leaderboard.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--only", default=None, help="a comma list of optimizers")
    parser.add_argument("--tasks", default=None, help="a comma list of tasks (mlp, cnn, lm)")
    parser.add_argument("--steps", type=int, default=None, help="every task's steps")
    parser.add_argument("--out", default=str(OUT), help="folder for zoo.json, zoo.png, ZOO.md")
    parser.add_argument(
        "--smoke", action="store_true", help=f"{', '.join(SMOKE)} only, a few steps"
    )
    parser.add_argument(
        "--limit", type=float, default=600.0, help="seconds an optimizer may take on a task"
    )
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    names = list(SMOKE) if args.smoke else list(SPECS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SPECS]
        if unknown:
            parser.error(f"--only: not in zoo_specs.SPECS: {', '.join(unknown)}")
    args.names = names
    known = list(zoo_tasks.TASKS)
    args.task_names = known
    if args.tasks:
        args.task_names = [t.strip() for t in args.tasks.split(",") if t.strip()]
        unknown = [t for t in args.task_names if t not in known]
        if unknown:
            parser.error(f"--tasks: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    args.complete = not (args.smoke or args.only or args.tasks or args.steps)
    if not pathlib.Path(args.out).resolve().is_dir():
        parser.error(f"--out: the folder {args.out} does not exist")
    return args


def check_table(names: Sequence[str], log: Callable[[str], None]) -> list[str]:
    """The names to run: stops on a listed optimizer that gradtx lacks and that is not excluded,
    and on a gradtx optimizer that the table does not list; prints the exclusions."""
    absent = {n: zoo_specs.missing(n) for n in names if n not in EXCLUDED}
    absent = {n: m for n, m in absent.items() if m}
    if absent:
        listed = "; ".join(f"{n} (gradtx has no {', '.join(m)})" for n, m in absent.items())
        raise SystemExit(
            f"zoo: listed in zoo_specs.SPECS but not in gradtx: {listed}. Add them to gradtx, "
            "or exclude them in zoo_specs.EXCLUDED with the reason"
        )
    unlisted = zoo_specs.uncovered()
    if unlisted:
        raise SystemExit(
            f"zoo: gradtx optimizers without a spec in zoo_specs.SPECS: {', '.join(unlisted)}"
        )
    for name in names:
        if name in EXCLUDED:
            landed = EXCLUDED[name] == zoo_specs.NOT_YET and not zoo_specs.missing(name)
            landed = " (in gradtx now: remove the exclusion)" if landed else ""
            log(f"excluded: {name}: {EXCLUDED[name]}{landed}")
    return [n for n in names if n not in EXCLUDED]


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> dict:
    """Runs the leaderboard; returns its report (also written to ``--out`` and printed)."""
    args = parse_args(argv)
    demo.check_demo_extra()
    from tqdm.auto import tqdm

    began = time.perf_counter()
    commit = zoo_specs.source()  # before the run: other work in the checkout may change it
    names = check_table(args.names, log)
    all_tasks = zoo_tasks.tasks(smoke=args.smoke)
    tasks = [all_tasks[t] for t in args.task_names]
    if args.steps:
        tasks = [zoo_tasks.with_steps(t, args.steps) for t in tasks]
    jobs = [(name, task) for task in tasks for name in names]
    total = sum(2 * task.steps for _, task in jobs)
    results = []
    # The bar goes to stderr and switches itself off when that is not a terminal (a log, pytest).
    with tqdm(total=total, file=sys.stderr, disable=None, unit="step") as bar:
        for name, task in jobs:
            grid = grid_for(name, args.smoke)
            watchdog = _watchdog(args.limit, f"{task.name} {name}")
            try:
                results.append(run_one(name, task, grid, bar))
                if bar.disable:  # no bar (a log file): a line per entry instead
                    log(_line(results[-1]))
            except Exception as e:  # one broken optimizer must not lose a long run's other rows
                error = f"{type(e).__name__}: {e}".splitlines()[0][:200].replace("|", "/")
                log(f"{task.name} {name} failed: {error}")
                results.append(_failed(name, task, error))
                bar.update(2 * task.steps)  # what it did not run
            finally:
                watchdog.cancel()
    argv_shown = sys.argv[1:] if argv is None else list(argv)
    report = {
        "command": shlex.join(["python", "-m", "benchmarks.zoo", *argv_shown]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - began,
        "machine": zoo_specs.machine(),
        "versions": zoo_specs.versions(),
        "source": commit,
        "settings": {
            "smoke": args.smoke,
            "grid_size": len(grid_for("adam", args.smoke)),
            "grid_seed": GRID_SEED,
            "seeds": list(seeds_for(grid_for("adam", args.smoke))),
        },
        "tasks": {t.name: _task_info(t) for t in tasks},
        "excluded": {n: EXCLUDED[n] for n in args.names if n in EXCLUDED},
        "arguments": {n: text for n in names if (text := zoo_specs.describe(SPECS[n]))},
        "results": results,
    }
    out = pathlib.Path(args.out)
    (out / "zoo.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, out / "zoo.png")
    text = markdown(report)
    (out / "ZOO.md").write_text(text)
    if args.complete:
        for name in ("ZOO.md", "zoo.png"):
            target = ROOT / "benchmarks" / name
            if (out / name).resolve() != target.resolve():
                shutil.copyfile(out / name, target)
    log(text)
    log(f"written to {out}" + (" and benchmarks/" if args.complete else ""))
    return report


def _watchdog(limit: float, what: str) -> threading.Timer:
    """Ends the process, saying what ran, if ``what`` runs past ``limit`` seconds: a compiled
    step can deadlock inside XLA (jaxlib 0.10.2's batched LAPACK kernels on CPU did), where no
    exception reaches Python, and a leaderboard that never ends would say nothing."""

    def stop():
        sys.stderr.write(f"\nzoo: {what} ran for over {limit:g} s: stopped (hung?)\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(limit, stop)
    timer.daemon = True
    timer.start()
    return timer


def _line(r: dict) -> str:
    loss, sd = _mean_sd(r["val_loss"])
    return (
        f"{r['task']} {r['optimizer']}: lr {r['lr']:g}, val loss {loss:.3f} ± {sd:.3f} "
        f"({r['seconds']:.1f} s, {r['cpu_seconds']:.1f} s of CPU)"
    )


def _failed(name: str, task: zoo_tasks.Task, error: str) -> dict:
    return {
        "optimizer": name,
        "family": SPECS[name].family,
        "task": task.name,
        "error": error,
    }


def _task_info(task: zoo_tasks.Task) -> dict:
    return {
        "name": task.name,
        "title": task.title,
        "steps": task.steps,
        "batch_size": task.batch_size,
        "target": task.target,
        "n_params": _model(task)[1],
        "n_train": task.n_train,
        "n_val": len(task.data[1][0]),
    }


if __name__ == "__main__":
    main()
