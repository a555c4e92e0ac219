"""Build time (trace, lower, compile) of the suite's steps, gradtx against optax, in one process.

Run from the repository root: ``python -m benchmarks.builds`` (``--trees transformer
uniform:200:10``, ``--opts adam adamw_clip``, ``--passes 2``). Each step is the suite's
(``jax_bench.compiled_step``: update and apply in one ``jax.jit``, params and state donated),
built anew in alternating order (gradtx, optax, then optax, gradtx, ...), and the faster of its
builds is reported, with the ratio to optax's same-named step: a build is seconds of one core,
so the two libraries' builds are compared side by side rather than from separate runs. Trees:
``transformer`` (``benchmarks.trees``' 1000-leaf tree) or ``uniform:N:SIZE`` (N leaves of SIZE
params). No timing is asserted anywhere; ``tests/test_numerics.py`` checks that programs grow
linearly with the leaf count (a count of the compiled program's lines).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from benchmarks import jax_bench, optimizers, trees

LIBS = ("gradtx", "optax")


def spec_of(name: str) -> trees.Spec:
    if name == "transformer":
        return trees.transformer()
    kind, n, size = name.split(":")
    if kind != "uniform":
        raise SystemExit(f"unknown tree {name!r}: transformer or uniform:N:SIZE")
    return trees.uniform(int(n), int(size))


def build_seconds(lib: str, opt: str, params, grads) -> float:
    tx = optimizers.make_jax(lib, opt)
    state = tx.init(params)
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        _, times = jax_bench.compiled_step(lib, tx, params, state, grads)
    return sum(times.values())


def measure(tree: str, opts: Sequence[str], passes: int) -> list[dict]:
    params_np, grads_np = trees.values(spec_of(tree))
    params = {k: jnp.asarray(v) for k, v in params_np.items()}
    grads = {k: jnp.asarray(v) for k, v in grads_np.items()}
    rows = []
    for opt in opts:
        seconds: dict[str, list[float]] = {lib: [] for lib in LIBS}
        for i in range(passes):
            for lib in LIBS if i % 2 == 0 else reversed(LIBS):
                seconds[lib].append(build_seconds(lib, opt, params, grads))
        best = {lib: min(s) for lib, s in seconds.items()}
        rows.append({"tree": tree, "opt": opt, **best, "ratio": best["gradtx"] / best["optax"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| tree | step | gradtx build s | optax build s | ×optax |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['tree']} | {r['opt']} | {r['gradtx']:.2f} | {r['optax']:.2f} | {r['ratio']:.2f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", default=["transformer"])
    parser.add_argument("--opts", nargs="+", default=list(optimizers.OPTIMIZERS))
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    for tree in args.trees:
        rows += measure(tree, args.opts, args.passes)
        print(table(rows[-len(args.opts) :]), file=sys.stderr)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
