"""Adam with fp32, bf16 and 8-bit moments against optax's fp32 Adam, before and after a change.

    python -m benchmarks.low_memory [--n 20000000] [--rounds 12] [--before REV] [--json PATH]
    python -m benchmarks.low_memory --exhaustive

Every variant is the step of ``benchmarks/jax_bench.py`` (``update`` then ``apply_updates``, one
jit, params and state donated) on one leaf of ``n`` fp32 params. ``--before REV`` also builds
gradtx as it was at git revision ``REV`` (extracted to a temporary package ``gradtx_before``), so
that old and new run in the same process. The variants are timed interleaved: each round calls
every variant ``--per`` times, in alternating order, after one warm-up round; reported are the
median and the minimum of the wall time and the median of the process CPU time (all threads),
which is less sensitive to other processes on a shared machine. Ratios are to optax's fp32 Adam
in the same run.

Each compiled step is also read for its passes over memory: the fusions and copies of the
optimized HLO that touch at least ``n`` bytes, with the bytes each reads and writes per param, and
whether XLA split it over threads (``outer_dimension_partitions``).

``--exhaustive`` checks the 8-bit code lookup (``gradtx._transforms.quantized._nearest_code``)
against ``searchsorted`` over the float32 midpoints on every float32 in [-1, 1] (and a little
beyond), for both maps: about 2 minutes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

_BYTES = {"f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "u8": 1, "s8": 1, "pred": 1}
_BYTES |= {"f64": 8, "s64": 8, "u64": 8, "s16": 2, "u16": 2}


def _shape_bytes(text: str) -> int:
    total = 0
    for dtype, dims in re.findall(r"\b([a-z]+\d*)\[([\d,]*)\]", text):
        if dtype in _BYTES:
            total += int(np.prod([int(d) for d in dims.split(",") if d])) * _BYTES[dtype]
    return total


def passes(hlo: str, n: int) -> list[dict]:
    """The fusions and copies of the ENTRY computation moving at least ``n`` bytes."""
    entry = hlo[hlo.index("\nENTRY") :]
    shapes, out = {}, []
    for line in entry.splitlines()[1:]:
        m = re.match(r"\s*(?:ROOT )?%(\S+) = (.+?) ([\w-]+)\((.*)$", line)
        if not m:
            continue
        name, shape, op, rest = m.groups()
        shapes[name] = shape
        if op in ("parameter", "tuple", "get-tuple-element", "constant", "bitcast"):
            continue
        operands = re.findall(r"%([\w.\-]+)", rest.split("), ")[0])
        read = sum(_shape_bytes(shapes.get(o, "")) for o in operands)
        write = _shape_bytes(shape)
        if read + write >= n:
            threads = re.search(r'outer_dimension_partitions":\["(\d+)', line)
            out.append(
                {
                    "name": name,
                    "op": op,
                    "read_B_per_param": read / n,
                    "write_B_per_param": write / n,
                    "threads": int(threads.group(1)) if threads else 1,
                }
            )
    return out


def _before_package(rev: str) -> str:
    """gradtx at ``rev`` as the package ``gradtx_before`` (imports renamed); returns its name."""
    root = Path(tempfile.mkdtemp(prefix="gradtx_before_"))
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", rev, "gradtx"], cwd=repo, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "gradtx").rename(root / "gradtx_before")
    for path in (root / "gradtx_before").glob("*.py"):
        path.write_text(re.sub(r"\bgradtx\b", "gradtx_before", path.read_text()))
    sys.path.insert(0, str(root))
    return "gradtx_before"


def _variant(module, kwargs: dict, n: int):
    if module is None:
        import optax

        tx, apply = optax.adam(1e-3), optax.apply_updates
    else:
        tx, apply = module.adam(1e-3, **kwargs), module.apply_updates

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    rng = np.random.default_rng(0)
    params = jnp.asarray(0.02 * rng.standard_normal(n, dtype=np.float32))
    grads = jnp.asarray(0.01 * rng.standard_normal(n, dtype=np.float32))
    state = tx.init(params)
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    build = time.perf_counter() - t0
    return {"compiled": compiled, "args": [params, state], "grads": grads, "build_s": build}


STORAGE = {
    "fp32": {},
    "bf16": {"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16},
    "8bit": {"optim_bits": 8},
}


def run(n: int, rounds: int, per: int, before: str | None) -> dict:
    import gradtx

    libraries = {"after": gradtx}
    if before:
        libraries["before"] = importlib.import_module(_before_package(before))
    variants = {"optax fp32": _variant(None, {}, n)}
    for storage, kwargs in STORAGE.items():
        for when, module in libraries.items():
            variants[f"gradtx {storage} ({when})"] = _variant(module, kwargs, n)
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for r in range(rounds + 1):
        order = list(variants.items())
        for name, v in order if r % 2 else order[::-1]:
            for _ in range(per):
                t0, c0 = time.perf_counter(), time.process_time()
                v["args"] = list(jax.block_until_ready(v["compiled"](*v["args"], v["grads"])))
                if r:
                    wall[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
    ref_wall, ref_min = statistics.median(wall["optax fp32"]), min(wall["optax fp32"])
    ref_cpu = statistics.median(cpu["optax fp32"])
    results = {}
    for name, v in variants.items():
        hlo = passes(v["compiled"].as_text(), n)
        results[name] = {
            "median_ms": 1e3 * statistics.median(wall[name]),
            "min_ms": 1e3 * min(wall[name]),
            "cpu_median_ms": 1e3 * statistics.median(cpu[name]),
            "x_optax_median": statistics.median(wall[name]) / ref_wall,
            "x_optax_min": min(wall[name]) / ref_min,
            "x_optax_cpu": statistics.median(cpu[name]) / ref_cpu,
            "build_s": v["build_s"],
            "passes": hlo,
            "B_per_param": sum(p["read_B_per_param"] + p["write_B_per_param"] for p in hlo),
        }
    return results


def table(results: dict) -> str:
    lines = [
        "| step | median ms | min ms | CPU ms | ×optax (median) | ×optax (min) | ×optax (CPU) "
        "| passes | B/param moved | passes (B/param, threads) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        detail = " ".join(
            f"{p['read_B_per_param'] + p['write_B_per_param']:.0f}"
            + ("" if p["op"] == "fusion" else f" {p['op']}")
            + f"/{p['threads']}"
            for p in r["passes"]
        )
        lines.append(
            f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['cpu_median_ms']:.1f} "
            f"| {r['x_optax_median']:.2f} | {r['x_optax_min']:.2f} | {r['x_optax_cpu']:.2f} "
            f"| {len(r['passes'])} | {r['B_per_param']:.0f} | {detail} |"
        )
    return "\n".join(lines)


def exhaustive() -> dict:
    """Mismatches of the code lookup against searchsorted on all float32 in [-(1 + e), 1 + e]."""
    from gradtx._transforms import quantized as _quantized

    chunk = 1 << 24
    one = int(np.float32(1.0).view(np.uint32))
    counts = {}
    for signed in (True, False):
        midpoints = _quantized._thresholds(signed)[1:-1]
        codes = jax.jit(
            lambda start, signed=signed: _quantized._nearest_code(
                jax.lax.bitcast_convert_type(start + jax.lax.iota(jnp.uint32, chunk), jnp.float32),
                signed,
            )
        )
        bad = checked = 0
        for base in (0, 0x80000000):
            for start in range(base, base + one + chunk, chunk):
                y = (np.uint32(start) + np.arange(chunk, dtype=np.uint32)).view(np.float32)
                got = np.asarray(codes(jnp.uint32(start)))
                ref = np.searchsorted(midpoints, y, side="left")
                bad += int(np.sum((got != ref) & ~np.isnan(y)))
                checked += chunk
        counts["signed" if signed else "unsigned"] = {"checked": checked, "mismatches": bad}
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000_000)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per", type=int, default=3)
    parser.add_argument("--before", default=None, help="a git revision of gradtx to compare")
    parser.add_argument("--json", default=None, help="write the results there")
    parser.add_argument("--exhaustive", action="store_true")
    args = parser.parse_args(argv)
    if args.exhaustive:
        print(json.dumps(exhaustive()))
        return
    results = run(args.n, args.rounds, args.per, args.before)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
