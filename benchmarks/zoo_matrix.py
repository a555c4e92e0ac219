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

Sophia gets the loss as ``obj_fn`` for its Hessian estimate; SAM (around AdamW) spends every
other gradient on its ascent step, so its budget makes half as many real steps (the losses
recorded at the ascent calls are those of the perturbed weights, which are higher).

Cost: one jitted step's median time and the state's bytes per parameter, on the transformer-shaped
tree of ``benchmarks.trees`` (1000 leaves, 5.2M params) and on one N x N matrix (``--matrix``,
default 1024: at 4096, the issue's size, a Muon step takes 12 s on a 2-core CPU, and the whole
run most of an hour; ZOO_MATRIX.md's 4096 rows come from ``cost_table`` alone), each beside
AdamW measured in the same process. Optimizers that refresh a
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
    """An optimizer of the comparison: ``build(learning_rate)``, its grid, the period of its
    preconditioner refresh (None: none) and, where the cost is measured on another setting
    (one with a fixed refresh period), ``cost_build(learning_rate)``."""

    build: Callable[[object], gradtx.GradientTransformation]
    grid: tuple[float, ...]
    refresh_every: int | None = None
    cost_build: Callable[[object], gradtx.GradientTransformation] | None = None
    # update's extra arguments, from the loss as a function of the params
    extra: Callable[[Callable], dict] = lambda loss: {}


ENTRIES: dict[str, Entry] = {
    "adamw": Entry(lambda lr: gradtx.adamw(lr, weight_decay=0.0), (3e-3, 1e-2, 3e-2)),
    # every matrix to Muon (the head too: this problem has one matrix)
    "muon": Entry(lambda lr: gradtx.muon(lr, adam_learning_rate=3e-3), (1e-2, 3e-2, 0.1)),
    # inverse 4th roots of the block statistics every 10 steps, grafted onto SGD's norm; by
    # coupled Newton (optax-shampoo's method), which ZOO_MATRIX.md was measured with (the eigh
    # roots hung in a many-leaf step on XLA:CPU until they took one LAPACK call per matrix)
    "shampoo": Entry(
        lambda lr: gradtx.shampoo(lr, preconditioning_compute_steps=10, root_method="newton"),
        (1e-2, 3e-2, 0.1),
        10,
    ),
    "soap": Entry(
        lambda lr: gradtx.soap(lr, weight_decay=0.0, precondition_frequency=10),
        (3e-3, 1e-2, 3e-2),
        10,
    ),
    # the refit probability anneals from 1 to 0.03 (convergence); the cost at a fixed 0.1
    "kron": Entry(
        lambda lr: gradtx.kron(lr),
        (1e-3, 3e-3, 1e-2),
        10,
        lambda lr: gradtx.kron(lr, preconditioner_update_probability=0.1),
    ),
    # rank 16 of the 32 columns, the projection refreshed by SVD every 10 steps
    "galore": Entry(
        lambda lr: gradtx.galore(lr, rank=16, update_proj_gap=10), (3e-3, 1e-2, 3e-2), 10
    ),
    # Sophia-H: a Hutchinson estimate of the Hessian's diagonal every 10 steps (the default),
    # one Hessian-vector product of the loss, given as obj_fn
    "sophia": Entry(
        lambda lr: gradtx.sophia(lr, weight_decay=0.0),
        (3e-3, 1e-2, 3e-2),
        10,
        extra=lambda loss: {"obj_fn": loss},
    ),
    # SAM around AdamW (rho 0.05): every other call is the ascent step, so the budget of
    # gradients makes half as many real steps
    "sam": Entry(
        lambda lr: gradtx.sam(
            gradtx.adamw(lr, weight_decay=0.0),
            gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.sgd(0.05)),
        ),
        (3e-3, 1e-2, 3e-2),
    ),
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
        updates, state = tx.update(grads, state, params, **entry.extra(loss))
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
    """The median time of a step; with a refresh period k, the steps are grouped by their
    position modulo k, and the slowest group (the refresh, wherever an optimizer's counter
    puts it) is reported apart from the rest."""
    tx = (entry.cost_build or entry.build)(1e-3)
    state = jax.jit(tx.init)(params)
    # where the update needs the loss (Sophia's Hessian-vector product): a quadratic, whose
    # derivatives cost about what the update's own arithmetic does; a model's are extra
    extra = entry.extra(lambda p: sum(0.5 * jnp.sum(x * x) for x in jax.tree.leaves(p)))
    # the gradients are an argument, not constants of the program: XLA would otherwise fold
    # what depends on them alone (Shampoo's G G^T, Adam's g * g) at compile time
    step = jax.jit(lambda p, s, g: tx.update(g, s, p, **extra))
    jax.block_until_ready(step(params, state, grads))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        updates, state = jax.block_until_ready(step(params, state, grads))
        times.append(time.perf_counter() - start)
    n = sum(x.size for x in jax.tree.leaves(params))
    out = {"bytes": _bytes_per_param(state, n)}
    k = entry.refresh_every
    if k is None or repeats < k:
        return {**out, "step_ms": 1e3 * float(np.median(times))}
    phases = [times[i::k] for i in range(k)]
    slow = max(range(k), key=lambda i: np.median(phases[i]))
    plain = [t for i, ts in enumerate(phases) if i != slow for t in ts]
    return {
        **out,
        "step_ms": 1e3 * float(np.median(plain)),
        "refresh_ms": 1e3 * float(np.median(phases[slow])),
    }


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
    return "\n".join(lines) + "\n" + cost_table(names, trees_for(matrix, smoke), repeats, log)


def cost_table(names: Sequence[str], trees_to_time: dict, repeats: int, log) -> str:
    """The cost section: each tree's rows, AdamW first, each optimizer's ratio to it."""
    lines = [
        "",
        "## Cost of a step and of the state (median step time; ratio to AdamW in the same run)",
        "",
        "| tree | optimizer | step (ms) | × AdamW | refresh step (ms) | state bytes / param |",
        "|---|---|---|---|---|---|",
    ]
    for tree_name, (params, grads) in trees_to_time.items():
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
