"""Steps of several optimizers on one tree, timed interleaved in one process.

    python -m benchmarks.interleaved [--tree transformer|cnn|two|uniform:LEAVES:SIZE]
        [--rounds 10] [--per 3] [--opts adam adamw_clip ...] [--libs gradtx optax] [--json PATH]

The timing suite runs every job in a worker process of its own; on the shared 2-core machine
two processes timed one after the other differ by up to ±30% (their bandwidth floors do too),
which is larger than the differences between the optimizers themselves. Here all steps are
compiled in one process and timed in rounds: each round calls every step ``--per`` times, in
alternating order, after one warm-up round. Reported per step: median wall time, the median
process CPU time (all threads; less sensitive to other processes), and both as ratios to
optax's step of the optimizer it is compared with (``benchmarks.optimizers.REFERENCE``: the
same-named one; ``adam`` for the grouped and low-memory Adams). The tree floor (``p + g`` leaf by
leaf, p donated) is timed in the same rounds. Trees: ``transformer`` (1000 leaves, 5.2M params),
``cnn`` (50 leaves, 0.93M), ``two`` (a 2-leaf linear classifier) and ``uniform:N:SIZE``; for the
small trees, where a step takes tens of microseconds, use many calls (``--rounds 30 --per 30``).

Optimizers and steps are those of the suite (:mod:`benchmarks.optimizers`,
:func:`benchmarks.jax_bench._step_fn`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from benchmarks import jax_bench, optimizers, trees


def _tree(spec_text: str) -> trees.Spec:
    named = {"transformer": trees.transformer, "cnn": trees.cnn, "two": trees.two_leaves}
    if spec_text in named:
        return named[spec_text]()
    kind, leaves, size = (spec_text.split(":") + ["", ""])[:3]
    if kind != "uniform":
        raise ValueError(
            f"interleaved: --tree must be one of {sorted(named)} or 'uniform:N:SIZE', "
            f"got {spec_text!r}"
        )
    return trees.uniform(int(leaves), int(size))


def _compiled(lib: str, opt: str, params, grads):
    """(step, donated arguments) for one library and optimizer; the floor as lib 'floor'."""
    if lib == "floor":
        return jax_bench.tree_floor_program(params, grads), [params]
    tx = optimizers.make_jax(lib, opt)
    state = tx.init(params)
    step = jax.jit(jax_bench._step_fn(lib, tx), donate_argnums=(0, 1))
    return step.lower(params, state, grads).compile(), [params, state]


def run(spec: trees.Spec, opts: list[str], libs: list[str], rounds: int, per: int) -> dict:
    p0, g0 = trees.values(spec)
    grads = {k: jnp.asarray(v) for k, v in g0.items()}
    variants = {}
    for opt in opts:
        for lib in libs:
            if lib != "gradtx" and opt in optimizers.GRADTX_ONLY:
                continue
            params = {k: jnp.asarray(v) for k, v in p0.items()}
            variants[f"{lib} {opt}"] = _compiled(lib, opt, params, grads)
    variants["tree floor"] = _compiled(
        "floor", "", {k: jnp.asarray(v) for k, v in p0.items()}, grads
    )

    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds + 1):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            compiled, args = variants[name]
            for _ in range(per):
                t0, c0 = time.perf_counter(), time.process_time()
                out = compiled(*args, grads)
                out = out if isinstance(out, tuple) else (out,)
                jax.block_until_ready(out)
                t1, c1 = time.perf_counter(), time.process_time()
                args[:] = list(out)
                if r > 0:
                    wall[name].append(t1 - t0)
                    cpu[name].append(c1 - c0)
    result = {
        "n_params": trees.n_params(spec),
        "n_leaves": len(spec),
        "rounds": rounds,
        "per": per,
        "steps": {},
        **jax_bench.device_info(),
    }
    for name in names:
        result["steps"][name] = {
            "wall_ms": 1e3 * statistics.median(wall[name]),
            "cpu_ms": 1e3 * statistics.median(cpu[name]),
        }
    return result


def table(result: dict) -> str:
    steps = result["steps"]

    def reference(name: str) -> str | None:
        family = optimizers.REFERENCE[name.split(" ", 1)[1]]
        return f"optax {family}" if f"optax {family}" in steps else None

    lines = [
        "| step | median ms | CPU ms | ×optax (median) | ×optax (CPU) | ×tree floor (median) |",
        "|---|---|---|---|---|---|",
    ]
    floor = steps["tree floor"]["wall_ms"]
    for name, s in steps.items():
        ref = None if name == "tree floor" else reference(name)
        ratios = [f"{s[k] / steps[ref][k]:.2f}" if ref else "" for k in ("wall_ms", "cpu_ms")]
        lines.append(
            f"| {name} | {s['wall_ms']:.3f} | {s['cpu_ms']:.3f} | {ratios[0]} | {ratios[1]} | "
            f"{s['wall_ms'] / floor:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.interleaved", description=__doc__)
    parser.add_argument("--tree", default="transformer")
    parser.add_argument(
        "--opts", nargs="+", default=["adam", "adam_grouped", "adamw_clip", "adamw_clip_grouped"]
    )
    parser.add_argument("--libs", nargs="+", default=["gradtx", "optax"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for opt in args.opts:
        if opt not in optimizers.ALL + optimizers.SMALL_MODEL:
            parser.error(f"--opts: {opt!r} is not one of {optimizers.ALL + optimizers.SMALL_MODEL}")
    spec = _tree(args.tree)
    result = run(spec, args.opts, args.libs, args.rounds, args.per)
    result["tree"] = args.tree
    print(f"{args.tree}: {result['n_leaves']} leaves, {result['n_params']} params")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
