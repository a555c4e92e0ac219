"""Every gradtx optimizer on the demo's digits MLP: final validation accuracy, each at its best
learning rate of a small grid, with optax's optimizer of the same name beside it.

Run from the repository root (the ``demo`` extra installed): ``python -m benchmarks.zoo_digits``
(``--steps N``, ``--out PATH``, ``--only adam,lion``, ``--smoke``). It writes a Markdown table
to ``benchmarks/ZOO_DIGITS.md`` (``--out``) and prints it.

Training is :func:`gradtx.demo.train` itself: the same MLP (64-128-128-10, the same initial
weights), the same train/validation split of scikit-learn's digits, the same sequence of
mini-batches of 128, seed 0, and by default the demo's 1500 steps. Each optimizer runs with its
own defaults except the learning rate, which takes each value of a grid of three around the
method's usual default (the grid is in the table); the value with the best final validation
accuracy is kept (ties: the lower final training loss). optax's optimizer of the same name then
runs once, with the same arguments and the chosen learning rate.

Columns: ``val acc`` the accuracy on the 359 held-out digits after the last step; ``train loss``
the cross-entropy on the whole training set after the last step; ``steps to 90%`` the first
step at which the validation accuracy reached 90%, at the resolution of the demo's chunks of
steps (50 by default), or "—"; ``optax val acc`` optax's accuracy at the same learning rate.

How each optimizer is built (its grid, its arguments beyond the learning rate, what its update
needs) comes from the table shared with the leaderboard, ``benchmarks/zoo_specs.py``.
Optimizers whose update needs the loss value (``polyak_sgd``) get the mini-batch's loss as
``value=`` (``demo.train(..., pass_value=True)``), optax's too; Sophia gets it as a function
of the params, ``obj_fn=`` (``pass_objective=True``). ``sam`` is SAM around AdamW (a builder in
the table): its calls alternate between the ascent and the real step, so the same number of
gradients makes half as many real steps. Not in the table (see ``LEFT_OUT``): optimizers whose
update needs more than the gradient and the loss value, per-example gradients or evaluation at
other params, which the demo's training loop does not provide, and those the shared table
excludes.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax

import gradtx
from benchmarks import zoo_specs
from benchmarks.zoo_specs import EXCLUDED, SEED, SPECS, machine, source, versions
from gradtx import demo

ROOT = zoo_specs.ROOT
OUT = ROOT / "benchmarks" / "ZOO_DIGITS.md"
TARGET = 0.9  # the validation accuracy whose first step is reported

# what demo.train can give an update beyond the gradient (pass_value, pass_objective)
_DEMO_EXTRAS = {"value", "obj_fn"}


def _left_out_reason(name: str) -> str | None:
    """Why demo.train cannot run ``name`` (None: it can)."""
    spec = SPECS[name]
    if name in EXCLUDED:
        return EXCLUDED[name]
    other = [e for e in spec.extras if e not in _DEMO_EXTRAS]
    if other:
        wanted = "; ".join(f"{e} ({zoo_specs.EXTRAS[e]})" for e in other)
        return f"its update needs {wanted}, which the demo's training loop does not pass"
    if spec.per_example:
        return "its update needs per-example gradients, which the demo's loop does not compute"
    if spec.eval_params:
        return f"it is evaluated at `{spec.eval_params}`, which the demo's loop does not call"
    return None


# The learning-rate grids (three values around the method's usual default), the factories'
# other arguments and the builders of wrappers are those of the shared table
# (benchmarks/zoo_specs.py).
LEFT_OUT = {n: why for n in SPECS if (why := _left_out_reason(n)) is not None}
GRIDS: dict[str, tuple[float, ...]] = {n: s.grid for n, s in SPECS.items() if n not in LEFT_OUT}
# updates that need the loss value at the params (``update(..., value=loss)``)
PASS_VALUE = {n for n in GRIDS if "value" in SPECS[n].extras}
# updates that need the loss as a function of the params (``update(..., obj_fn=fn)``)
PASS_OBJECTIVE = {n for n in GRIDS if "obj_fn" in SPECS[n].extras}
# where gradtx's optimizer and optax's of the same name differ by design (their docstrings)
DIFFERENCES = {
    "adan": "gradtx follows the paper's Algorithm 1; optax 0.2.8 weighs the gradient "
    "differences' average by 1 - b2",
    "rprop": "gradtx is PyTorch's Rprop; optax 0.2.8 applies each step one step late",
}
SMOKE = ("adam", "sgd")
SMOKE_STEPS = 20
zoo_optimizers = zoo_specs.zoo_optimizers


def uncovered() -> list[str]:
    """gradtx optimizers neither in the shared table nor left out: each should get a spec."""
    return [n for n in zoo_specs.uncovered() if n not in LEFT_OUT]


@dataclass
class Row:
    name: str
    grid: dict[float, demo.Result]
    lr: float
    best: demo.Result
    optax: demo.Result | None
    error: str = ""  # why the row has no numbers: an exception from building or training


class _Quiet:
    """demo.train's progress bar, switched off."""

    def update(self, n):
        pass

    def set_postfix_str(self, s):
        pass


def _ok(r: demo.Result) -> bool:
    return math.isfinite(r.train_loss)


def _key(r: demo.Result):
    # diverged runs last; then the best accuracy; then the lower loss
    return (_ok(r), r.val_accuracy, -r.train_loss if _ok(r) else -math.inf)


def steps_to(r: demo.Result, target: float = TARGET) -> int | None:
    return next((s for s, a in zip(r.steps, r.accuracies) if a >= target), None)


def flat_state(tx):
    """``tx`` with its state kept as a flat tuple of arrays, the same math.

    ``flax.nnx.Optimizer`` stores a state's subtrees shaped like the params as variables; SM3
    keeps a list of accumulators per param (one per axis), which it turns into a different tree
    on the way out of the update, so the demo's ``lax.scan`` rejects the carry (``optax.sm3``
    fails the same way). Flattening the state around ``tx`` hides that structure from nnx.
    """
    treedef = []

    def init(params):
        from flax import nnx

        # the update sees the params as plain arrays (nnx.as_pure), init as nnx variables
        leaves, tree = jax.tree.flatten(tx.init(nnx.as_pure(params)))
        treedef[:] = [tree]
        return tuple(leaves)

    def update(updates, state, params=None, **extra):
        updates, state = tx.update(updates, jax.tree.unflatten(treedef[0], state), params, **extra)
        return updates, tuple(jax.tree.leaves(state))

    return gradtx.GradientTransformation(init, update)


FLAT_STATE = {"sm3"}


def _tx(module, name: str, lr: float):
    tx = zoo_specs.make(module, name, SPECS[name], lr)
    return flat_state(tx) if tx is not None and name in FLAT_STATE else tx


def run_one(name: str, grid, data, indices, log: Callable[[str], None]) -> Row:
    def train(label, tx):
        return demo.train(
            label,
            tx,
            data,
            indices,
            seed=SEED,
            progress=_Quiet(),
            pass_value=name in PASS_VALUE,
            pass_objective=name in PASS_OBJECTIVE,
        )

    results = {}
    for lr in grid:
        tx = _tx(gradtx, name, lr)
        if tx is None:
            raise AttributeError(f"gradtx has no optimizer {name}")
        results[lr] = train(name, tx)
    lr = max(results, key=lambda v: _key(results[v]))
    best = results[lr]
    import optax

    tx = _tx(optax, name, lr)
    reference = None if tx is None else train(f"optax {name}", tx)
    row = Row(name, results, lr, best, reference)
    log(
        f"{name:28s} lr {lr:g}: val {_pct(best)}, loss {_loss(best)}"
        + (f"; optax {_pct(reference)}" if reference else "")
    )
    return row


def _pct(r: demo.Result) -> str:
    return f"{r.val_accuracy:.1%}" if _ok(r) else "diverged"


def _loss(r: demo.Result) -> str:
    return f"{r.train_loss:.2e}" if _ok(r) else "nan"


def markdown(rows: Sequence[Row], header: dict) -> str:
    n_val = header["n_val"]
    lines = [
        "# Every optimizer on the demo's digits MLP",
        "",
        f"Produced by `{header['command']}` in {header['seconds']:.0f} s "
        "(written by the script; do not edit by hand).",
        "",
        f"- Machine: {header['machine']}",
        f"- Versions: {header['versions']}; gradtx {header['source']}",
        f"- Problem: {header['problem']}",
        f"- Steps: {header['steps']} of {demo.BATCH_SIZE} examples; seed {SEED} for the split, "
        "the batches and the initial weights (the same for every run); accuracies after each "
        f"chunk of {demo.chunk_size(header['steps'])} steps",
        "- Each optimizer: its defaults but the learning rate, the best of the grid by final "
        "validation accuracy (ties: lower training loss); optax's same-named optimizer at that "
        "rate, same arguments. `lr` ends in `*` where the best rate is at an end of the grid.",
        f"- One validation example is {1 / n_val:.2%}: most optimizers end within a few examples "
        "of each other, and a choice between grid values that far apart is within noise. "
        "Where gradtx's and optax's optimizers compute the same thing (see below for those that "
        "do not), float32 rounding still parts their runs by an example or two over many "
        "steps; the training loss shows more of the difference",
        "",
        "| optimizer | grid: val acc per learning rate | lr | val acc | train loss "
        f"| steps to {TARGET:.0%} | optax val acc | optax train loss |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row.error:
            lines.append(f"| {row.name} | failed: {row.error.replace('|', '/')} | | | | | | |")
            continue
        grid = ", ".join(f"{lr:g}: {_pct(r)}" for lr, r in row.grid.items())
        lrs = list(row.grid)
        edge = "*" if len(lrs) > 1 and row.lr in (lrs[0], lrs[-1]) else ""
        reach = steps_to(row.best)
        reference = (
            f"{_pct(row.optax)} | {_loss(row.optax)}" if row.optax else "— (not in optax) | —"
        )
        lines.append(
            f"| {row.name} | {grid} | {row.lr:g}{edge} | {_pct(row.best)} | {_loss(row.best)} "
            f"| {reach if reach is not None else '—'} | {reference} |"
        )
    shown = [name for name in DIFFERENCES if any(r.name == name and r.optax for r in rows)]
    if shown:
        lines += ["", "Where gradtx and optax differ by design (as their docstrings say):", ""]
        lines += [f"- `{name}`: {DIFFERENCES[name]}." for name in shown]
    diverged = [r.name for r in rows if r.grid and not any(_ok(x) for x in r.grid.values())]
    lines += ["", f"Diverged at every grid value: {', '.join(diverged) or 'none'}."]
    lines += ["", "Not in the table:", ""]
    lines += [f"- `{name}`: {why}." for name, why in LEFT_OUT.items()]
    missing = uncovered()
    if missing:
        lines.append(f"- no spec yet (add one to `zoo_specs.SPECS`): {', '.join(missing)}.")
    flat = sorted(FLAT_STATE & {r.name for r in rows})
    if flat:
        lines.append(
            f"\n{', '.join(flat)}: run through `flat_state` (gradtx's and optax's "
            "alike), the same optimizer with its state kept as a flat tuple, because "
            "`flax.nnx.Optimizer` turns the lists SM3 keeps in place of a param (its "
            "accumulators per axis) into its own `State`, which the demo's `lax.scan` "
            "rejects as a different carry."
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.zoo_digits",
        description="Every gradtx optimizer on the demo's digits MLP, with optax's beside it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=None, help=f"default {demo.STEPS}")
    parser.add_argument("--out", default=str(OUT), help="the Markdown table")
    parser.add_argument("--only", default=None, help="a comma list of optimizers")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{', '.join(SMOKE)} only, {SMOKE_STEPS} steps, the grid's middle value",
    )
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = SMOKE_STEPS if args.smoke else demo.STEPS
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    names = list(GRIDS)
    if args.smoke:
        names = list(SMOKE)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in GRIDS]
        if unknown:
            parser.error(f"--only: no grid for {', '.join(unknown)} (known: {', '.join(GRIDS)})")
    args.names = names
    if not pathlib.Path(args.out).resolve().parent.is_dir():
        parser.error(f"--out: the folder of {args.out} does not exist")
    return args


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> list[Row]:
    """Runs the table; returns its rows (also written to ``--out`` and printed)."""
    args = parse_args(argv)
    demo.check_demo_extra()
    began = time.perf_counter()
    commit = source()  # before the run: other work in the checkout may change it meanwhile
    data = demo.load_digits(SEED)
    n_train, n_val = len(data[0][0]), len(data[1][0])
    indices = demo.batch_indices(n_train, args.steps, demo.BATCH_SIZE, SEED)
    problem = f"digits, {n_train} train / {n_val} validation, MLP 64-128-128-10 (gradtx.demo)"
    log(f"{problem}; {args.steps} steps; jax {jax.__version__}")
    rows = []
    for name in args.names:
        grid = GRIDS[name]
        if args.smoke:
            grid = grid[len(grid) // 2 : len(grid) // 2 + 1]
        try:
            rows.append(run_one(name, grid, data, indices, log))
        except Exception as e:  # one broken optimizer must not lose a long run's other rows
            error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            log(f"{name:28s} failed: {error}")
            rows.append(Row(name, {}, math.nan, demo.Result(name), None, error))
    argv_shown = sys.argv[1:] if argv is None else list(argv)
    header = {
        "command": shlex.join(["python", "-m", "benchmarks.zoo_digits", *argv_shown]),
        "seconds": time.perf_counter() - began,
        "machine": machine(),
        "versions": versions(),
        "source": commit,
        "problem": problem,
        "steps": args.steps,
        "n_val": n_val,
    }
    text = markdown(rows, header)
    pathlib.Path(args.out).write_text(text)
    log(text)
    log(f"written to {args.out}")
    return rows


if __name__ == "__main__":
    main()
