"""The GPU run: optimizer steps on 100M and 1B params, each as a multiple of the HBM floor.

From the repository root::

    bash benchmarks/gpu.sh                   # a GPU machine: benchmarks/RESULTS_GPU.md, ~6 min
    bash benchmarks/gpu.sh --smoke           # CPU, tiny sizes, every code path: a temp folder
    python -m benchmarks.gpu --plan          # the full run's configurations and memory, no run

``gpu.sh`` sets the environment and a hard time limit and runs ``python -m benchmarks.gpu``;
``--out DIR`` (``gpu.json``, the workers' logs) and ``--md PATH`` put the outputs elsewhere,
``--only`` keeps a subset (optimizer names, libraries, parts of group names: ``--only adam 1B``),
``--budget S`` stretches or shrinks every worker's cap to a run of S seconds (default: their
sum, 390 s; 285 s with ``--smoke``).

What runs, group by group (each group's configurations share one worker process):

- ``100M fp32``: 8 blocks of d_model 1024, each with query, key, value and output matrices
  (1024, 1024) and an MLP (1024, 4096), (4096, 1024): 48 matrices, 100,663,296 params.
- ``1B fp32`` and ``1B bf16``: 20 such blocks of d_model 2048: 120 matrices, 1,006,632,960
  params; bf16: params and gradients in bfloat16, the state in each optimizer's default dtype
  (the params', so bfloat16 moments in both libraries; the table gives the state's dtype).
- ``transformer fp32``: :func:`benchmarks.trees.transformer` (1000 leaves, 5.2M params).

Only matrices in the first three, because Muon needs them; the shapes are a decoder's.
On each: ``adam``, ``adamw_clip`` (:mod:`benchmarks.optimizers`: clip by global norm, AdamW,
warmup-cosine schedule), ``lion``, ``adafactor`` (defaults: factored second moments, parameter
scale, update clipping at 1) and ``muon`` (5 Newton–Schulz steps; every rank-2 leaf a matrix,
optax's default: gradtx's own default leaves embeddings and heads to AdamW, overridden so that
both libraries do the same work), learning rate 1e-3, other hyperparameters their defaults, in
gradtx and optax (``optax.contrib.muon``); and torch's ``Adam(fused=True)`` and
``clip_grad_norm_(foreach=True)`` + ``AdamW(fused=True)`` + ``LambdaLR`` on the same shapes
(CUDA only; on CPU in the smoke run).

A JAX step is :mod:`benchmarks.jax_bench`'s: ``update`` + ``apply_updates`` jitted with params
and state donated and the gradients an argument (a constant would be folded), traced, lowered
and compiled explicitly, called ``warmup`` times, then timed over ``repeats`` calls, each to
``block_until_ready``; the median is reported. Params ~ 0.02 N(0, 1) and gradients ~ 0.01 N(0,
1) are drawn on the device (``jax.random``, torch's generator: NumPy would take ~10 s per 1B),
so not the CPU suite's values; the gradients are drawn once per group, the params anew for each
configuration. ``Δ vs optax`` compares how far gradtx and optax moved the params after the same
number of steps (:func:`benchmarks.report.deviation`, on fingerprints computed on the device).

Floors. The bandwidth floor of a group is ``a += b`` on one buffer of as many values of the
group's dtype, ``a`` donated: 3 x itemsize bytes per value moved; bandwidth = bytes / median
time. The tree floor (:func:`benchmarks.jax_bench.tree_floor`, ``p + g`` leaf by leaf) is given
beside it: on many small leaves launching kernels, not bandwidth, bounds a step. An optimizer's
floor is ``PARAM_PASSES[opt] x P + 2 x S`` bytes per param over that bandwidth, with P the
params' itemsize and S the state's bytes per param as measured (read once and written once):

- ``adam``: 3 passes (read p and g, write p): 28 B per fp32 param with fp32 moments, as
  :data:`benchmarks.optimizers.FLOOR_BYTES_PER_PARAM`;
- ``adamw_clip``: 4 (the global norm reads g once more): 32 B;
- ``lion``: 3, one moment: 20 B;
- ``muon``: 3, one moment: 20 B, the elementwise part only. Newton–Schulz is compute (per
  step and r x c matrix, r <= c, 5 x (4 r² c + 2 r³) flops at JAX's default matmul precision):
  Muon's ``step ×floor`` includes it, so it is no bandwidth efficiency. On bf16 params
  gradtx iterates in float32 (its ``dtype=None``), optax in bfloat16: different work;
- ``adafactor``: 6 (g read three times: its factored statistics, the update's RMS for the
  clipping, the update; p read twice, for its RMS and the update, and written once): 24 B, the
  factored state adding almost nothing.

In bf16, P = 2 and S is what the state holds (bf16 moments by default). torch's rows use
the JAX floor of their group (the same device).

Budget: torch's worker first (45 s), then a worker per group (70, 95, 80, 100 s), each group's
deadline the sum of its cap and those before it (unused time passes on); a configuration not
started by its group's deadline is skipped, and a worker still running ``KILL_GRACE_S`` after
it is killed (its unfinished configurations are recorded as timed out). Memory: before
each configuration the worker prints its params, gradients and state (from ``jax.eval_shape``,
nothing allocated) and skips it if they exceed 90% of the device's limit; an out-of-memory or
any other error is recorded in the table and the worker goes on; no two configurations' buffers
are alive at once. ``gpu.json`` (every record) and the Markdown are rewritten after each
configuration, so a stopped run leaves what it finished.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import math
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from benchmarks import optimizers, report, run, trees

GiB = 2**30
OPTIMIZERS = ("adam", "adamw_clip", "lion", "adafactor", "muon")  # Muon last: slowest to build
JAX_LIBS = ("gradtx", "optax")
SUITE_OPTIMIZERS = ("adam", "adamw_clip")  # built by benchmarks.optimizers, as the suite's
TORCH_OPTIMIZERS = SUITE_OPTIMIZERS
LIBS = (*JAX_LIBS, "torch")
# Passes over param-sized arrays (params and gradients) each optimizer's step needs at least.
PARAM_PASSES = {"adam": 3, "adamw_clip": 4, "lion": 3, "muon": 3, "adafactor": 6}
PARAM_SEED, GRAD_SEED = 0, 1
PARAM_SCALE, GRAD_SCALE = 0.02, 0.01
MEMORY_HEADROOM = 0.9  # skip a configuration expected to need more of the device's memory
KILL_GRACE_S = 20.0  # a worker still running this long after its deadline is killed
MIN_WORKER_S = 10.0  # a worker is not started with less time than this before its deadline
TORCH_CAP_S = 45.0
NO_ACCELERATOR = 3  # a worker's exit status: the full run found no GPU
ITEMSIZE = {"float32": 4, "bfloat16": 2}
EXTRA_PACKAGES = ("flax", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin")
ROOT = run.ROOT


@dataclass(frozen=True)
class Group:
    """Configurations sharing a tree and dtype; timed ``warmup`` + ``repeats`` steps (Muon's
    ``muon_steps`` where its step is long), in a worker allowed ``cap_s`` seconds."""

    name: str
    tree: str  # "blocks" or "transformer"
    args: dict
    dtype: str  # "float32" or "bfloat16"
    warmup: int
    repeats: int
    cap_s: float
    muon_steps: tuple[int, int] | None = None

    def spec(self) -> trees.Spec:
        return blocks(**self.args) if self.tree == "blocks" else trees.transformer(**self.args)

    def steps(self, opt: str) -> tuple[int, int]:
        if opt == "muon" and self.muon_steps is not None:
            return self.muon_steps
        return self.warmup, self.repeats

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]


def blocks(d_model: int, n_layers: int) -> trees.Spec:
    """Decoder blocks' matrices: query, key, value, output (d, d) and an MLP (d, 4d), (4d, d)."""
    d, f = d_model, 4 * d_model
    width = len(str(n_layers - 1))
    spec: trees.Spec = []
    for i in range(n_layers):
        p = f"layer{i:0{width}d}"
        spec += [(f"{p}/attn/{name}", (d, d)) for name in ("query", "key", "value", "out")]
        spec += [(f"{p}/mlp/up", (d, f)), (f"{p}/mlp/down", (f, d))]
    return spec


BIG = {"d_model": 2048, "n_layers": 20}
FULL_GROUPS = (
    Group("100M fp32", "blocks", {"d_model": 1024, "n_layers": 8}, "float32", 3, 10, 70.0),
    Group("1B fp32", "blocks", BIG, "float32", 2, 5, 95.0, muon_steps=(1, 3)),
    Group("1B bf16", "blocks", BIG, "bfloat16", 2, 5, 80.0, muon_steps=(1, 3)),
    Group("transformer fp32", "transformer", {}, "float32", 3, 20, 100.0),
)
# The same code paths on CPU; 128 x 512 matrices so that Adafactor factors them.
SMOKE_GROUPS = (
    Group("small fp32", "blocks", {"d_model": 32, "n_layers": 2}, "float32", 1, 2, 60.0),
    Group("large fp32", "blocks", {"d_model": 128, "n_layers": 1}, "float32", 1, 2, 60.0),
    Group("large bf16", "blocks", {"d_model": 128, "n_layers": 1}, "bfloat16", 1, 2, 60.0),
    Group(
        "transformer fp32",
        "transformer",
        {"n_layers": 2, "d_model": 16, "vocab": 256, "max_len": 32},
        "float32",
        1,
        2,
        60.0,
    ),
)


def _log(line: str) -> None:
    print(line, flush=True)


# --- the plan --------------------------------------------------------------------------------


def jobs(group: Group, only: list[str] | None) -> list[tuple[str, str]]:
    """The (library, optimizer) pairs of ``group`` that ``only`` keeps (None: all).

    ``only`` holds optimizer names, library names and parts of group names; a pair is kept if
    it matches one of each kind given.
    """
    tokens = only or []
    opts = [t for t in tokens if t in OPTIMIZERS]
    libs = [t for t in tokens if t in LIBS]
    parts = [t for t in tokens if t not in OPTIMIZERS and t not in LIBS]
    if parts and not any(p in group.name for p in parts):
        return []
    pairs = [(lib, opt) for opt in OPTIMIZERS for lib in LIBS]
    pairs = [(lib, opt) for lib, opt in pairs if lib != "torch" or opt in TORCH_OPTIMIZERS]
    return [
        (lib, opt) for lib, opt in pairs if (not opts or opt in opts) and (not libs or lib in libs)
    ]


def plan(smoke: bool, only: list[str] | None) -> list[dict]:
    """The groups to run, with their jobs, sizes and caps."""
    groups = SMOKE_GROUPS if smoke else FULL_GROUPS
    if only:
        known = [g.name for g in groups]
        for t in only:
            if t not in OPTIMIZERS and t not in LIBS and not any(t in n for n in known):
                raise ValueError(
                    f"benchmarks.gpu: --only {t!r} is no optimizer {OPTIMIZERS}, library {LIBS}"
                    f" or part of a group name {known}"
                )
    out = []
    for g in groups:
        pairs = jobs(g, only)
        if pairs:
            spec = g.spec()
            out.append(
                {
                    "group": g.name,
                    "dtype": g.dtype,
                    "n_params": trees.n_params(spec),
                    "n_leaves": len(spec),
                    "cap_s": g.cap_s,
                    "jobs": pairs,
                }
            )
    if not out:
        raise ValueError(f"benchmarks.gpu: --only {only} selects nothing")
    return out


def group_named(name: str, smoke: bool) -> Group:
    return next(g for g in (SMOKE_GROUPS if smoke else FULL_GROUPS) if g.name == name)


# --- records: gpu.json and the Markdown, rewritten after each one ----------------------------


@dataclass(frozen=True)
class Outputs:
    json_path: pathlib.Path
    md_path: pathlib.Path

    def load(self) -> dict:
        return json.loads(self.json_path.read_text())

    def save(self, data: dict) -> None:
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(self.json_path)
        self.md_path.write_text(markdown(data))

    def add(self, record: dict) -> None:
        data = self.load()
        data["results"].append(record)
        self.save(data)


def _find(results: list[dict], kind: str, group: str, lib: str = "", opt: str = "") -> dict | None:
    for r in results:
        if r["kind"] == kind and r.get("group") == group:
            if kind != "step" or (r["lib"] == lib and r["opt"] == opt):
                return r
    return None


# --- the JAX worker --------------------------------------------------------------------------

_LEAF_PROGRAMS: dict = {}  # (shape, dtype) -> compiled (seed, index, scale) -> leaf
_DELTA_PROGRAMS: dict = {}  # (shape, dtype) -> compiled (leaf, seed, index, scale) -> delta


def _leaf_fn(shape, dtype):
    import jax
    import jax.numpy as jnp

    def leaf(seed, index, scale):
        key = jax.random.fold_in(jax.random.key(seed), index)
        return (scale * jax.random.normal(key, shape, jnp.float32)).astype(dtype)

    return leaf


def _scalar_args():
    import jax
    import jax.numpy as jnp

    i32 = jax.ShapeDtypeStruct((), jnp.int32)
    return i32, i32, jax.ShapeDtypeStruct((), jnp.float32)


def _leaf_program(shape, dtype):
    """Draws one leaf on the device, compiled ahead of time (``jax.clear_caches`` keeps it)."""
    import jax

    key = (shape, dtype.name)
    if key not in _LEAF_PROGRAMS:
        _LEAF_PROGRAMS[key] = jax.jit(_leaf_fn(shape, dtype)).lower(*_scalar_args()).compile()
    return _LEAF_PROGRAMS[key]


def _leaf_args(seed: int, index: int, scale: float):
    import numpy as np

    return np.int32(seed), np.int32(index), np.float32(scale)


def make_tree(spec: trees.Spec, dtype, seed: int, scale: float) -> dict:
    """``scale`` N(0, 1) leaves of ``spec`` in ``dtype``, drawn on the device, leaf i from
    ``fold_in(key(seed), i)``."""
    return {
        name: _leaf_program(shape, dtype)(*_leaf_args(seed, i, scale))
        for i, (name, shape) in enumerate(spec)
    }


def _delta_program(shape, dtype):
    """``(sum |p - p0|, the first values of p - p0)`` for a leaf ``p`` drawn as ``p0`` was."""
    import jax
    import jax.numpy as jnp

    key = (shape, dtype.name)
    if key not in _DELTA_PROGRAMS:
        leaf = _leaf_fn(shape, dtype)

        def delta(p, seed, index, scale):
            d = p.astype(jnp.float32) - leaf(seed, index, scale).astype(jnp.float32)
            return jnp.abs(d).sum(), d.reshape(-1)[: trees.FINGERPRINT_VALUES]

        arg = jax.ShapeDtypeStruct(shape, dtype)
        _DELTA_PROGRAMS[key] = jax.jit(delta).lower(arg, *_scalar_args()).compile()
    return _DELTA_PROGRAMS[key]


def fingerprint(spec: trees.Spec, params: dict, dtype) -> dict:
    """:func:`benchmarks.trees.fingerprint` of the params (drawn with ``PARAM_SEED``), computed
    on the device: the summed |params - initial params| and a few values of sampled leaves."""
    import jax
    import numpy as np

    sampled = set(np.linspace(0, len(spec) - 1, trees.FINGERPRINT_LEAVES).round().astype(int))
    sums, firsts = [], []
    for i, (name, shape) in enumerate(spec):
        total, first = _delta_program(shape, dtype)(
            params[name], *_leaf_args(PARAM_SEED, i, PARAM_SCALE)
        )
        sums.append(total)
        if i in sampled:
            firsts.append(first)
    sums, firsts = jax.device_get((sums, firsts))
    sample = [float(x) for first in firsts for x in first]
    return {"sample": sample, "abs_sum": float(np.sum(np.asarray(sums, np.float64)))}


def make_tx(lib: str, opt: str):
    """The transformation of ``lib`` for ``opt`` (see the module docstring)."""
    if opt in SUITE_OPTIMIZERS:
        return optimizers.make_jax(lib, opt)
    lr = optimizers.LEARNING_RATE
    if lib == "gradtx":
        import gradtx as m
    else:
        import optax as m
    if opt == "lion":
        return m.lion(lr)
    if opt == "adafactor":
        return m.adafactor(lr)
    if lib == "gradtx":
        every_matrix = lambda p: m.muon_dimension_numbers(p, exclude=None)
        return m.muon(lr, muon_weight_dimension_numbers=every_matrix)
    import optax.contrib

    return optax.contrib.muon(lr)


def _nbytes(tree) -> int:
    import jax

    return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _main_dtype(tree) -> str:
    """The dtype holding most of the bytes of ``tree``."""
    import jax

    by_dtype: dict[str, int] = {}
    for x in jax.tree.leaves(tree):
        by_dtype[x.dtype.name] = (
            by_dtype.get(x.dtype.name, 0) + math.prod(x.shape) * x.dtype.itemsize
        )
    return max(by_dtype, key=by_dtype.get) if by_dtype else "none"


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def _bytes_limit() -> int | None:
    """The device allocator's limit in bytes (None where JAX does not say: CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")


def expected_bytes(params, grads, state) -> dict:
    """The bytes of params, gradients and state (arrays, or their ``jax.eval_shape``)."""
    out = {"params": _nbytes(params), "grads": _nbytes(grads), "state": _nbytes(state)}
    out["total"] = sum(out.values())
    return out


def measure_floor(group: Group, spec: trees.Spec, grads) -> dict:
    """The bandwidth floor (``a += b``) and the tree floor of ``group``, in its dtype."""
    import jax.numpy as jnp

    from benchmarks import jax_bench

    dtype = jnp.dtype(group.dtype)
    n = trees.n_params(spec)
    a = jnp.zeros((n,), dtype)
    b = jnp.full((n,), 1e-3, dtype)
    program = jax_bench.floor_program(a, b)
    times, _ = jax_bench._timed(lambda a, b: (program(a, b), b), (a, b), 3, 20)
    del a, b
    seconds = statistics.median(times)
    params = make_tree(spec, dtype, PARAM_SEED, PARAM_SCALE)
    tree = jax_bench.tree_floor(params, grads, warmup=3, repeats=20)
    return {
        "kind": "floor",
        "group": group.name,
        "dtype": group.dtype,
        "n": n,
        "n_leaves": len(spec),
        "seconds": seconds,
        "bytes_per_s": 3 * dtype.itemsize * n / seconds,
        "tree_floor_s": tree["seconds"],
    }


def measure_step(lib: str, opt: str, group: Group, spec: trees.Spec, grads) -> dict:
    """Builds and times one configuration's step (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_bench

    dtype = jnp.dtype(group.dtype)
    label = f"{group.name} {opt} {lib}"
    tx = make_tx(lib, opt)
    params = make_tree(spec, dtype, PARAM_SEED, PARAM_SCALE)
    expected = expected_bytes(params, grads, jax.eval_shape(tx.init, params))
    limit = _bytes_limit()
    _log(
        f"  {label}: params {_gb(expected['params'])} + grads {_gb(expected['grads'])}"
        f" + state {_gb(expected['state'])} = {_gb(expected['total'])}"
        + (f" of {_gb(limit)}" if limit else "")
    )
    if limit and expected["total"] > MEMORY_HEADROOM * limit:
        reason = f"needs {_gb(expected['total'])} of {_gb(limit)}"
        return {"status": "skipped", "reason": reason, "expected_bytes": expected}
    state = jax.block_until_ready(tx.init(params))
    state_bytes = _nbytes(state)
    state_dtype = _main_dtype(state)
    compiled, build = jax_bench.compiled_step(lib, tx, params, state, grads)
    warmup, repeats = group.steps(opt)
    times, (params, state, _) = jax_bench._timed(
        lambda p, s, g: (*compiled(p, s, g), g), (params, state, grads), warmup, repeats
    )
    n = trees.n_params(spec)
    return {
        "n_params": n,
        **build,
        "step_s": statistics.median(times),
        "step_min_s": min(times),
        "warmup": warmup,
        "repeats": repeats,
        "memory": jax_bench.memory(compiled),
        "expected_bytes": expected,
        "state_bytes_per_param": state_bytes / n,
        "state_dtype": state_dtype,
        "fingerprint": fingerprint(spec, params, dtype),
    }


def _error(err: BaseException) -> dict:
    text = f"{type(err).__name__}: {err}".strip()
    return {"status": "error", "error": text[-2000:]}


def jax_worker(group: Group, pairs: list, outputs: Outputs, deadline: float, smoke: bool) -> None:
    """Runs the JAX configurations of ``group`` in this process, recording each."""
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_bench

    device = jax.devices()[0]
    if device.platform == "cpu" and not smoke:
        _log("benchmarks.gpu: JAX sees no accelerator (use --smoke on a CPU)")
        raise SystemExit(NO_ACCELERATOR)
    outputs.add(
        {
            "kind": "device",
            "lib": "jax",
            **jax_bench.device_info(),
            "bytes_limit": _bytes_limit(),
            "matmul_precision": str(jax.config.jax_default_matmul_precision),
        }
    )
    spec = group.spec()
    grads = make_tree(spec, jnp.dtype(group.dtype), GRAD_SEED, GRAD_SCALE)
    try:
        floor = measure_floor(group, spec, grads)
        _log(f"  {group.name} floor: {floor['bytes_per_s'] / 1e9:.0f} GB/s")
    except Exception as err:  # recorded, and the steps still run
        floor = {"kind": "floor", "group": group.name, **_error(err)}
        _log(f"  {group.name} floor: {floor['error'][:200]}")
    outputs.add(floor)
    _free()
    for lib, opt in pairs:
        if lib == "torch":
            continue
        if time.time() > deadline:
            r = {"status": "skipped", "reason": "the group's time was spent"}
        else:
            try:
                r = measure_step(lib, opt, group, spec, grads)
            except Exception as err:  # an OOM or a failure is a row of the table
                r = _error(err)
        outputs.add({"kind": "step", "group": group.name, "lib": lib, "opt": opt, **r})
        _log(f"  {group.name} {opt} {lib}: {report.short(r)}")
        _free()


def _free() -> None:
    """Drops what the last configuration left: its executables and unreferenced buffers."""
    import jax

    gc.collect()
    jax.clear_caches()


# --- the torch worker ------------------------------------------------------------------------


def _torch_step(opt: str, params: list):
    """The step of :mod:`benchmarks.torch_bench` (fused Adam; or clip, fused AdamW, LambdaLR)."""
    import torch

    lr = optimizers.LEARNING_RATE
    if opt == "adam":
        optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        return optimizer, optimizer.step
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=optimizers.WEIGHT_DECAY, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, optimizers.torch_schedule)

    def step():
        torch.nn.utils.clip_grad_norm_(params, optimizers.MAX_NORM, foreach=True)
        optimizer.step()
        scheduler.step()

    return optimizer, step


def measure_torch(opt: str, group: Group, device) -> dict:
    """Times torch's step on ``group``'s shapes and dtype."""
    import torch

    from benchmarks import torch_bench

    dtype = getattr(torch, group.dtype)
    gen = torch.Generator(device=device).manual_seed(PARAM_SEED)
    spec = group.spec()
    params = []
    for _, shape in spec:
        p = torch.randn(shape, generator=gen, device=device).mul_(PARAM_SCALE).to(dtype)
        params.append(torch.nn.Parameter(p))
        params[-1].grad = (
            torch.randn(shape, generator=gen, device=device).mul_(GRAD_SCALE).to(dtype)
        )
    optimizer, step = _torch_step(opt, params)
    warmup, repeats = group.steps(opt)
    for _ in range(warmup):
        step()
    torch_bench._sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        torch_bench._sync(device)
        times.append(time.perf_counter() - t0)
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    n = trees.n_params(spec)
    big = max(state, key=lambda v: v.numel()) if state else None
    return {
        "n_params": n,
        "step_s": statistics.median(times),
        "step_min_s": min(times),
        "warmup": warmup,
        "repeats": repeats,
        "state_bytes_per_param": sum(v.numel() * v.element_size() for v in state) / n,
        "state_dtype": str(big.dtype).removeprefix("torch.") if big is not None else "none",
        "fused": True,
    }


def torch_worker(stages: list[dict], outputs: Outputs, deadline: float, smoke: bool) -> None:
    """Runs torch's configurations of every group in this process (one never importing jax)."""
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    info = {"kind": "device", "lib": "torch", "platform": device.type, "cuda": torch.version.cuda}
    if cuda:
        props = torch.cuda.get_device_properties(device)
        info.update(device_kind=props.name, total_memory=props.total_memory)
    outputs.add(info)
    for stage in stages:
        group = group_named(stage["group"], smoke)
        for lib, opt in stage["jobs"]:
            if lib != "torch":
                continue
            if not cuda and not smoke:
                r = {"status": "skipped", "reason": "torch has no CUDA"}
            elif time.time() > deadline:
                r = {"status": "skipped", "reason": "torch's time was spent"}
            else:
                try:
                    r = measure_torch(opt, group, device)
                except Exception as err:  # recorded, as in the JAX worker
                    r = _error(err)
            outputs.add({"kind": "step", "group": group.name, "lib": lib, "opt": opt, **r})
            _log(f"  {group.name} {opt} torch: {report.short(r)}")
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()


# --- the orchestrator ------------------------------------------------------------------------


def machine() -> dict:
    """:func:`benchmarks.run.machine` and the versions of flax and JAX's CUDA plugin."""
    info = run.machine()
    for pkg in EXTRA_PACKAGES:
        try:
            info["versions"][pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return info


def _worker_command(args, stage: str, outputs: Outputs, deadline: float) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--worker", stage]
    cmd += ["--json", str(outputs.json_path), "--md", str(outputs.md_path)]
    cmd += ["--deadline", repr(deadline)]
    if args.smoke:
        cmd.append("--smoke")
    if args.only:
        cmd += ["--only", *args.only]
    return cmd


def _run_worker(args, stage: str, outputs: Outputs, deadline: float) -> dict | None:
    """Runs one worker (a subprocess, or inline with ``--inline``); for the jobs it did not
    record, the status to record (None: it ended normally)."""
    if args.inline:
        worker_main(args, stage, outputs, deadline)
        return None
    log_path = outputs.json_path.parent / f"gpu_{stage.replace(' ', '_')}.log"
    cmd = _worker_command(args, stage, outputs, deadline)
    timeout = max(1.0, deadline + KILL_GRACE_S - time.time())
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, cwd=ROOT, stderr=log, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "timeout_s": timeout}
    if proc.returncode == NO_ACCELERATOR:
        raise SystemExit("benchmarks.gpu: JAX sees no GPU; run `bash benchmarks/gpu.sh --smoke`")
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().strip().splitlines()[-5:])
        return {"status": "error", "error": f"worker exit {proc.returncode}: {tail}"}
    return None


def _fill_missing(outputs: Outputs, stages: list[dict], libs: tuple, status: dict) -> None:
    """Records ``status`` for each job of ``libs`` in ``stages`` that has no record."""
    data = outputs.load()
    for stage in stages:
        for lib, opt in stage["jobs"]:
            if lib in libs and _find(data["results"], "step", stage["group"], lib, opt) is None:
                record = {"kind": "step", "group": stage["group"], "lib": lib, "opt": opt}
                data["results"].append({**record, **status})
    outputs.save(data)


def orchestrate(args, outputs: Outputs) -> dict:
    """Runs torch's worker, then a JAX worker per group, each by its deadline."""
    stages = plan(args.smoke, args.only)
    caps = [TORCH_CAP_S] + [s["cap_s"] for s in stages]
    budget = args.budget or sum(caps)
    scale = budget / sum(caps)
    data = {
        "meta": {**machine(), "smoke": args.smoke, "only": args.only, "budget_s": budget},
        "plan": stages,
        "results": [],
    }
    outputs.json_path.parent.mkdir(parents=True, exist_ok=True)
    outputs.save(data)
    start = time.time()
    deadline = start
    has_torch = any(lib == "torch" for s in stages for lib, _ in s["jobs"])
    torch_installed = importlib.util.find_spec("torch") is not None
    if has_torch and torch_installed:
        deadline += scale * TORCH_CAP_S
        _log(f"[{time.time() - start:5.0f} s] torch, every group (until +{deadline - start:.0f} s)")
        failure = _run_worker(args, "torch", outputs, deadline)
        if failure:
            _fill_missing(outputs, stages, ("torch",), failure)
    elif has_torch:
        missing = {"status": "skipped", "reason": "torch is not installed"}
        _fill_missing(outputs, stages, ("torch",), missing)
    for stage in stages:
        deadline += scale * stage["cap_s"]
        if not any(lib in JAX_LIBS for lib, _ in stage["jobs"]):
            continue
        if deadline - time.time() < MIN_WORKER_S:
            late = {"status": "skipped", "reason": "the run's time was spent"}
            _fill_missing(outputs, [stage], JAX_LIBS, late)
            continue
        _log(
            f"[{time.time() - start:5.0f} s] {stage['group']}: {stage['n_params']:,} params,"
            f" {stage['n_leaves']} leaves (until +{deadline - start:.0f} s)"
        )
        failure = _run_worker(args, stage["group"], outputs, deadline)
        if failure:
            _fill_missing(outputs, [stage], JAX_LIBS, failure)
    data = outputs.load()
    data["meta"]["total_s"] = time.time() - start
    data["meta"]["load_end"] = run._load()
    outputs.save(data)
    return data


def worker_main(args, stage: str, outputs: Outputs, deadline: float) -> None:
    stages = plan(args.smoke, args.only)
    if stage == "torch":
        torch_worker(stages, outputs, deadline, args.smoke)
        return
    entry = next(s for s in stages if s["group"] == stage)
    jax_worker(group_named(stage, args.smoke), entry["jobs"], outputs, deadline, args.smoke)


def print_plan(smoke: bool, only: list[str] | None) -> None:
    """Every configuration's memory (``jax.eval_shape``) and its step traced and lowered on
    abstract arrays: the full run's code path at full size, without allocating it."""
    import jax

    from benchmarks import jax_bench

    for stage in plan(smoke, only):
        group = group_named(stage["group"], smoke)
        spec = group.spec()
        shapes = {name: jax.ShapeDtypeStruct(shape, group.dtype) for name, shape in spec}
        _log(f"{group.name}: {stage['n_params']:,} params, {len(spec)} leaves, {group.dtype}")
        for lib, opt in stage["jobs"]:
            if lib == "torch":
                moments = 2 * group.itemsize * stage["n_params"]
                total = 2 * group.itemsize * stage["n_params"] + moments
                _log(f"  {opt:10} torch : about {_gb(total)} (params, grads, 2 moments)")
                continue
            tx = make_tx(lib, opt)
            state = jax.eval_shape(tx.init, shapes)
            e = expected_bytes(shapes, shapes, state)
            t0 = time.perf_counter()
            jax.jit(jax_bench._step_fn(lib, tx), donate_argnums=(0, 1)).trace(
                shapes, state, shapes
            ).lower()
            _log(
                f"  {opt:10} {lib:6}: params {_gb(e['params'])} + grads {_gb(e['grads'])}"
                f" + state {_gb(e['state'])} = {_gb(e['total'])};"
                f" traced and lowered in {time.perf_counter() - t0:.1f} s"
            )


# --- the Markdown ----------------------------------------------------------------------------


def optimizer_floor_s(opt: str, record: dict, floor: dict, itemsize: int) -> float:
    """The floor of ``opt``'s step: PARAM_PASSES x P + 2 x S bytes per param over the
    group's bandwidth."""
    per_param = PARAM_PASSES[opt] * itemsize + 2 * record["state_bytes_per_param"]
    return per_param * record["n_params"] / floor["bytes_per_s"]


def _params_text(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


STEP_HEADER = [
    "configuration",
    "optimizer",
    "library",
    "params",
    "dtype",
    "state",
    "step ms",
    "floor ms",
    "step ×floor",
    "×optax",
    "trace+lower s",
    "compile s",
    "peak GiB",
    "Δ vs optax",
]


def step_cells(stage: dict, lib: str, opt: str, results: list[dict]) -> list[str]:
    """One row of the steps table."""
    r = _find(results, "step", stage["group"], lib, opt)
    head = [stage["group"], opt, lib, _params_text(stage["n_params"]), stage["dtype"]]
    if not report.ok(r):
        return head + [report.status(r)] + [""] * 8
    floor = _find(results, "floor", stage["group"])
    ref = _find(results, "step", stage["group"], "optax", opt)
    fl = None
    if floor and "bytes_per_s" in floor:
        fl = optimizer_floor_s(opt, r, floor, ITEMSIZE[stage["dtype"]])
    mem = r.get("memory")
    return head + [
        f"{r['state_bytes_per_param']:.2f} B/param {r['state_dtype']}",
        f"{1e3 * r['step_s']:.3f}",
        f"{1e3 * fl:.3f}" if fl else "",
        f"{r['step_s'] / fl:.2f}" if fl else "",
        f"{r['step_s'] / ref['step_s']:.2f}" if report.ok(ref) else "",
        f"{r['trace_s'] + r['lower_s']:.2f}" if "trace_s" in r else "",
        f"{r['compile_s']:.2f}" if "compile_s" in r else "",
        f"{mem['peak'] / GiB:.2f}" if mem else "",
        f"{report.deviation(r, ref):.1e}" if report.ok(ref) and "fingerprint" in r else "",
    ]


def floor_cells(stage: dict, results: list[dict]) -> list[str]:
    f = _find(results, "floor", stage["group"])
    head = [stage["group"], f"{stage['n_params']:,}", str(stage["n_leaves"]), stage["dtype"]]
    if not f or "bytes_per_s" not in f:
        return head + [report.status(f), "", ""]
    return head + [
        f"{1e3 * f['seconds']:.3f}",
        f"{f['bytes_per_s'] / 1e9:.0f}",
        f"{1e3 * f['tree_floor_s']:.3f}",
    ]


def _device_line(results: list[dict]) -> str:
    jax_dev = next((r for r in results if r["kind"] == "device" and r["lib"] == "jax"), None)
    torch_dev = next((r for r in results if r["kind"] == "device" and r["lib"] == "torch"), None)
    parts = []
    if jax_dev:
        limit = jax_dev.get("bytes_limit")
        parts.append(
            f"JAX: {jax_dev['device_kind']} ({jax_dev['platform']}, {jax_dev['n_devices']}"
            f" device(s)" + (f", allocator limit {limit / GiB:.1f} GiB" if limit else "") + ")"
            f", jax_default_matmul_precision {jax_dev['matmul_precision']}"
        )
    if torch_dev:
        name = torch_dev.get("device_kind", torch_dev["platform"])
        total = torch_dev.get("total_memory")
        parts.append(
            f"torch: {name}"
            + (f" ({total / GiB:.1f} GiB)" if total else "")
            + f", CUDA {torch_dev['cuda']}"
        )
    return "; ".join(parts) or "not known yet"


NOTES = (
    "`step ×floor` is the step over its optimizer's floor: passes × P + 2 × S bytes per param"
    " (P the params' itemsize, S the state's bytes per param; passes: adam 3, adamw_clip 4,"
    " lion 3, muon 3, adafactor 6) at the `a += b` bandwidth of the same group"
    " (see `benchmarks/gpu.py`). Muon's floor is its elementwise part only: its Newton–Schulz"
    " matmuls are compute and are in its step time. torch's rows use the JAX floor of their"
    " group; torch runs in its own process, before the JAX workers. `×optax` is the step over"
    " optax's same-named one; `Δ vs optax` compares how far the params moved after the same"
    " steps; `peak GiB` is XLA's memory analysis of the compiled step (donated buffers once)."
)


def markdown(data: dict) -> str:
    """RESULTS_GPU.md from gpu.json's data (complete or partial)."""
    meta, results = data["meta"], data["results"]
    v = meta["versions"]
    versions = ", ".join(f"{k} {v[k]}" for k in v if v[k])
    mode = "smoke run (CPU, tiny sizes: not results)" if meta["smoke"] else "full run"
    done = f"{meta['total_s']:.0f} s" if "total_s" in meta else "still running or stopped"
    lines = [
        "# GPU results",
        "",
        "Generated by `bash benchmarks/gpu.sh` (`python -m benchmarks.gpu`); how it measures is"
        " in the docstring of `benchmarks/gpu.py`.",
        "",
        f"- Device: {_device_line(results)}",
        f"- Date: {meta['date']}; {mode}"
        + (f", only {meta['only']}" if meta["only"] else "")
        + f"; budget {meta['budget_s']:.0f} s, took {done}",
        f"- Host: {meta['cpu']}, {meta['cores']} cores; Python {meta['python']}; {versions}",
        "",
        "## HBM floor (`a += b`, a donated, 3 × itemsize bytes per value) and tree floor",
        "",
    ]
    header = ["configuration", "params", "leaves", "dtype", "a += b ms", "GB/s", "tree floor ms"]
    lines.append(report._md_table(header, [floor_cells(s, results) for s in data["plan"]]))
    lines += ["", "## Optimizer steps", ""]
    rows = [
        step_cells(s, lib, opt, results)
        for s in data["plan"]
        for opt in OPTIMIZERS
        for lib, o in s["jobs"]
        if o == opt
    ]
    lines += [report._md_table(STEP_HEADER, rows), "", NOTES, ""]
    return "\n".join(lines)


def _paths(args) -> Outputs:
    if args.out is None:
        args.out = (
            pathlib.Path(tempfile.mkdtemp(prefix="gpu_smoke_"))
            if args.smoke
            else ROOT / "benchmarks" / "results"
        )
    md = args.md or (
        args.out / "RESULTS_GPU.md" if args.smoke else ROOT / "benchmarks" / "RESULTS_GPU.md"
    )
    return Outputs(args.json or args.out / "gpu.json", md)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes; a temp folder")
    parser.add_argument("--plan", action="store_true", help="print memory, trace; run nothing")
    parser.add_argument("--only", nargs="+", help="optimizers, libraries, parts of group names")
    parser.add_argument("--out", type=pathlib.Path, help="folder of gpu.json and the logs")
    parser.add_argument(
        "--md", type=pathlib.Path, help="the Markdown (benchmarks/RESULTS_GPU.md; smoke: in --out)"
    )
    parser.add_argument("--budget", type=float, help="seconds for the run (default 390)")
    parser.add_argument("--inline", action="store_true", help="workers in this process (tests)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plan:
        print_plan(args.smoke, args.only)
        return
    outputs = _paths(args)
    if args.worker:
        worker_main(args, args.worker, outputs, args.deadline)
        return
    data = orchestrate(args, outputs)
    _log(markdown(data))
    _log(f"wrote {outputs.md_path} and {outputs.json_path}")


if __name__ == "__main__":
    main()
