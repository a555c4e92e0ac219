"""The matrix-aware optimizers against AdamW: convergence on an ill-conditioned matrix least
squares problem, and the cost of a step and of the state.

Run from the repository root: ``python -m benchmarks.zoo_matrix`` (``--smoke``, ``--only
muon,adamw``, ``--matrix N``, ``--out PATH``). It writes a Markdown report to
``benchmarks/ZOO_MATRIX.md`` (``--out``) and prints it. The digits MLP rows of the same
optimizers are in ``benchmarks/ZOO_DIGITS.md`` (``python -m benchmarks.zoo_digits``).

Convergence: ``min_W ½ ||X W - Y||_F² / n`` for a 256 x 64 design ``X`` whose singular values
are log-spaced over [1e-2, 1] (condition number 100) and a 64 x 32 ``W``, from ``W = 0``, with
``Y = X W*`` (minimum 0). Every optimizer gets the same budget: three learning rates (its grid,
in the table) and, for each, a cosine decay of the rate to 0 over the step budget (orthogonal
and sign-like updates keep their size at a constant rate and cannot settle otherwise). Reported:
the fewest steps at which the loss fell below ``1e-6`` of its initial value, at the best rate,
and the final loss of that run.

Cost: one jitted step's median time and the state's bytes per parameter, on the transformer-shaped
tree of ``benchmarks.trees`` (1000 leaves, 5.2M params) and on one N x N matrix (``--matrix``,
default 1024: 4096, the issue's size, takes minutes per Muon step on a 2-core CPU; use it on an
accelerator), each beside AdamW measured in the same process. Optimizers that refresh a
preconditioner every k steps report the refresh step apart from the others.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from benchmarks import trees

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "ZOO_MATRIX.md"
BUDGET = 2000
TARGET = 1e-6


@dataclass(frozen=True)
class Entry:
    """An optimizer of the comparison: ``build(learning_rate)``, its grid, and the period of its
    preconditioner refresh (None: none)."""

    build: Callable[[object], gradtx.GradientTransformation]
    grid: tuple[float, ...]
    refresh_every: int | None = None


ENTRIES: dict[str, Entry] = {
    "adamw": Entry(lambda lr: gradtx.adamw(lr, weight_decay=0.0), (3e-3, 1e-2, 3e-2)),
    # every matrix to Muon (the head too: this problem has one matrix)
    "muon": Entry(lambda lr: gradtx.muon(lr, adam_learning_rate=3e-3), (1e-2, 3e-2, 0.1)),
}


# ---- convergence -------------------------------------------------------------------------------


def least_squares(seed: int = 0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(256, 64)))
    v, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    x = (u * np.geomspace(1.0, 1e-2, 64)) @ v.T * np.sqrt(256)
    w_star = rng.normal(size=(64, 32))
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(x @ w_star, jnp.float32)

    def loss(params):
        r = x @ params["w"] - y
        return 0.5 * jnp.sum(r * r) / x.shape[0]

    return loss, {"w": jnp.zeros((64, 32), jnp.float32)}


def converge(entry: Entry, lr: float, steps: int) -> tuple[int | None, float]:
    loss, params = least_squares()
    tx = entry.build(gradtx.cosine_decay_schedule(lr, steps))

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return (gradtx.apply_updates(params, updates), state), value

    (params, _), losses = jax.jit(
        lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
    )(params)
    losses = np.asarray(losses)
    final = float(loss(params))
    hits = np.nonzero(losses <= TARGET * losses[0])[0]
    return (int(hits[0]) if hits.size else None), final


# ---- cost --------------------------------------------------------------------------------------


def _bytes_per_param(state, n: int) -> float:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)) / n


def cost(entry: Entry, params, grads, repeats: int) -> dict[str, float]:
    tx = entry.build(1e-3)
    state = jax.jit(tx.init)(params)
    step = jax.jit(lambda p, s: tx.update(grads, s, p))
    jax.block_until_ready(step(params, state))  # compile
    plain, refresh = [], []
    for i in range(repeats):
        start = time.perf_counter()
        updates, state = jax.block_until_ready(step(params, state))
        elapsed = time.perf_counter() - start
        is_refresh = entry.refresh_every is not None and (i + 1) % entry.refresh_every == 0
        (refresh if is_refresh else plain).append(elapsed)
    n = sum(x.size for x in jax.tree.leaves(params))
    out = {"step_ms": 1e3 * float(np.median(plain)), "bytes": _bytes_per_param(state, n)}
    if refresh:
        out["refresh_ms"] = 1e3 * float(np.median(refresh))
    return out


def trees_for(matrix: int, smoke: bool = False):
    spec = trees.transformer(2, 8, 64, 16) if smoke else trees.transformer()
    tree_params, tree_grads = trees.values(spec)
    rng = np.random.default_rng(0)
    big = {"w": jnp.asarray(0.02 * rng.normal(size=(matrix, matrix)), jnp.float32)}
    big_grads = {"w": jnp.asarray(0.01 * rng.normal(size=(matrix, matrix)), jnp.float32)}
    as_jax = lambda t: {k: jnp.asarray(v) for k, v in t.items()}  # noqa: E731
    size = f"{len(spec)} leaves, {trees.n_params(spec) / 1e6:.1f}M"
    return {
        f"transformer ({size})": (as_jax(tree_params), as_jax(tree_grads)),
        f"one {matrix} x {matrix} matrix": (big, big_grads),
    }


# ---- report ------------------------------------------------------------------------------------


def report(
    names: Sequence[str], matrix: int, steps: int, repeats: int, log, smoke: bool = False
) -> str:
    lines = [
        "# Matrix optimizers against AdamW",
        "",
        f"`python -m benchmarks.zoo_matrix` on {platform.machine()} "
        f"({jax.devices()[0].platform}, jax {jax.__version__}); the method is in the module's "
        "docstring.",
        "",
        f"## Least squares, condition number 100: steps to {TARGET:g} of the initial loss "
        f"(budget {steps}, cosine decay)",
        "",
        "| optimizer | learning-rate grid | best rate | steps to target | final loss |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        entry = ENTRIES[name]
        runs = {lr: converge(entry, lr, steps) for lr in entry.grid[: 1 if smoke else None]}
        best = min(runs, key=lambda lr: (runs[lr][0] is None, runs[lr][0] or 0, runs[lr][1]))
        hit, final = runs[best]
        grid = ", ".join(f"{lr:g}" for lr in entry.grid)
        lines.append(
            f"| {name} | {grid} | {best:g} | {hit if hit is not None else '—'} | {final:.2e} |"
        )
        log(lines[-1])
    lines += [
        "",
        "## Cost of a step and of the state (median step time; ratio to AdamW in the same run)",
        "",
        "| tree | optimizer | step (ms) | × AdamW | refresh step (ms) | state bytes / param |",
        "|---|---|---|---|---|---|",
    ]
    for tree_name, (params, grads) in trees_for(matrix, smoke).items():
        base = cost(ENTRIES["adamw"], params, grads, repeats)
        for name in names:
            c = base if name == "adamw" else cost(ENTRIES[name], params, grads, repeats)
            refresh = f"{c['refresh_ms']:.2f}" if "refresh_ms" in c else "—"
            ratio = c["step_ms"] / base["step_ms"]
            lines.append(
                f"| {tree_name} | {name} | {c['step_ms']:.2f} | {ratio:.2f} "
                f"| {refresh} | {c['bytes']:.1f} |"
            )
            log(lines[-1])
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names (default: all)")
    parser.add_argument("--matrix", type=int, default=1024, help="the big matrix's size")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the tests")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(ENTRIES)
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        parser.error(f"unknown optimizers {unknown}; known: {sorted(ENTRIES)}")
    names = ["adamw"] + [n for n in names if n != "adamw"]
    matrix, steps, repeats = (64, 20, 3) if args.smoke else (args.matrix, BUDGET, 20)
    text = report(
        names, matrix, steps, repeats, lambda line: print(line, file=sys.stderr), args.smoke
    )
    if not args.smoke:
        pathlib.Path(args.out).write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
