"""What ``gradtx.checked`` adds to a training step, timed interleaved in one process.

    python -m benchmarks.checked [--rounds 15] [--per 20]

For each tree (2 leaves; the transformer tree of the suite) and optimizer of the suite, three
jitted steps on the same donated params and state: the plain step, the same step under
``checkify.checkify`` without ``checked`` (what checkify's error plumbing costs alone), and the
step of ``checked(tx)`` under ``checkify.checkify``. Each round calls every step ``--per``
times in turn, after a warm-up round; reported: the median time per step and the ratios to the
plain step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from jax.experimental import checkify

import gradtx
from benchmarks import optimizers, trees

TREES = {"2 leaves": [("w", (64, 32)), ("b", (32,))], "transformer": trees.transformer()}


def _steps(tx):
    def plain(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    checked = gradtx.checked(tx)

    def guarded(params, state, grads):
        updates, state = checked.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return {
        "plain": jax.jit(plain, donate_argnums=(0, 1)),
        "checkify only": jax.jit(checkify.checkify(plain), donate_argnums=(0, 1)),
        "checked": jax.jit(checkify.checkify(guarded), donate_argnums=(0, 1)),
    }


def run(rounds: int, per: int) -> list[tuple[str, str, str, float, float]]:
    rows = []
    for tree_name, spec in TREES.items():
        p0, g0 = trees.values(spec)
        grads = {k: jnp.asarray(v) for k, v in g0.items()}
        for opt in optimizers.OPTIMIZERS:
            tx = optimizers.make_jax("gradtx", opt)
            steps = _steps(tx)
            carries = {}
            for name in steps:
                params = {n: jnp.asarray(v) for n, v in p0.items()}
                carries[name] = (params, tx.init(params))
            times = {k: [] for k in steps}
            for r in range(rounds + 1):
                for name, step in steps.items():
                    params, state = carries[name]
                    start = time.perf_counter()
                    for _ in range(per):
                        out = step(params, state, grads)
                        params, state = out[-1] if name != "plain" else out
                    jax.block_until_ready(params)
                    if r:
                        times[name].append((time.perf_counter() - start) / per)
                    carries[name] = (params, state)
            base = statistics.median(times["plain"])
            for name in steps:
                t = statistics.median(times[name])
                rows.append((tree_name, opt, name, t * 1e6, t / base))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per", type=int, default=20)
    args = parser.parse_args()
    print("| tree | optimizer | step | median µs | × plain |")
    print("|---|---|---|---|---|")
    for tree_name, opt, name, us, ratio in run(args.rounds, args.per):
        print(f"| {tree_name} | {opt} | {name} | {us:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
