"""What the timing suite runs: the configurations, the curves, and the opt-in slow jobs.

gradtx's grouped variants run on the configurations and the ``leaves`` curve, its low-memory
ones on the configurations; the ``params`` curve (one leaf) is Adam's alone.

A job is a dict: ``{"lib", "opt", "tree": {"kind", "args"}}`` (see :mod:`benchmarks.trees`);
its key identifies it, so a job shared by a configuration and a curve runs once.
"""

from __future__ import annotations

import json

from benchmarks import optimizers, trees

LIBS_JAX = ("gradtx", "optax")

# name -> tree; the four configurations of the issue, and tiny ones for the smoke run.
CONFIGS = {
    "1 leaf x 20M": {"kind": "single", "args": {"n": 20_000_000}},
    "100 leaves x 200k": {"kind": "uniform", "args": {"n_leaves": 100, "leaf_size": 200_000}},
    "transformer, 1000 leaves": {"kind": "transformer", "args": {}},
    "5000 leaves x 100": {"kind": "uniform", "args": {"n_leaves": 5000, "leaf_size": 100}},
}
# The smoke run's two: one leaf, and many leaves of mixed shapes (the uniform kind runs in the
# leaves curve). Every job is a compile of its own: each configuration costs the test suite
# about 7 seconds.
SMOKE_CONFIGS = {
    "1 leaf x 4k": {"kind": "single", "args": {"n": 4096}},
    "transformer, 24 leaves": {
        "kind": "transformer",
        "args": {"n_layers": 1, "d_model": 8, "vocab": 32, "max_len": 8},
    },
}

# Curves: one leaf of growing size; a fixed total split into more and more leaves.
PARAM_SIZES = (1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000)
LEAF_TOTAL = 500_000
LEAF_COUNTS = (10, 100, 1000, 5000)
SMOKE_PARAM_SIZES = (1024, 4096)
SMOKE_LEAF_TOTAL = 200
SMOKE_LEAF_COUNTS = (2, 20)

# (lib, opt, tree) jobs run only with --full: optax's AdamW + clipping + schedule on 5000
# leaves was measured at ~370 s of compile and 7.2 GB of memory on the 2-core machine.
SLOW = {("optax", "adamw_clip", "5000 leaves x 100")}


def key(job: dict) -> str:
    """A stable identifier of a job."""
    return json.dumps([job["lib"], job["opt"], job["tree"]], sort_keys=True)


def plan(smoke: bool, only: list[str] | None, with_torch: bool) -> list[dict]:
    """The jobs of a run: each with ``role`` entries saying which table rows and curves use it."""
    configs = SMOKE_CONFIGS if smoke else CONFIGS
    sizes = SMOKE_PARAM_SIZES if smoke else PARAM_SIZES
    total = SMOKE_LEAF_TOTAL if smoke else LEAF_TOTAL
    counts = SMOKE_LEAF_COUNTS if smoke else LEAF_COUNTS
    libs = (*LIBS_JAX, "torch") if with_torch else LIBS_JAX
    groups = {"configs", "params", "leaves"}
    # a group by its exact name; a configuration by a substring of its name
    wanted = lambda what: (
        only is None or any(o == what if o in groups or what in groups else o in what for o in only)
    )

    jobs: dict[str, dict] = {}

    def add(lib, opt, tree, role, name):
        job = {"lib": lib, "opt": opt, "tree": tree}
        entry = jobs.setdefault(key(job), {**job, "roles": []})
        entry["roles"].append({"role": role, "name": name})
        if (lib, opt, name) in SLOW:
            entry["slow"] = True

    for name, tree in configs.items():
        if wanted(name) or wanted("configs"):
            for opt in optimizers.OPTIMIZERS:
                for lib in libs:
                    add(lib, opt, tree, "config", name)
            for opt in optimizers.GRADTX_ONLY:
                add("gradtx", opt, tree, "config", name)
    if wanted("params"):
        for n in sizes:
            for lib in libs:
                add(lib, "adam", {"kind": "single", "args": {"n": n}}, "params", str(n))
    if wanted("leaves"):
        for k in counts:
            tree = {"kind": "uniform", "args": {"n_leaves": k, "leaf_size": total // k}}
            name = f"{k} leaves x {total // k}"
            for opt in optimizers.OPTIMIZERS:
                for lib in libs:
                    add(lib, opt, tree, "leaves", name)
            for opt in optimizers.GROUPED:
                add("gradtx", opt, tree, "leaves", name)
    # Cheap jobs first (the grouped variants among them), the low-memory variants last: with a
    # run budget, what is left out is the slowest to build.
    low = lambda j: j["opt"] in optimizers.LOW_MEMORY
    return sorted(jobs.values(), key=lambda j: (low(j), _size(j)[1], _size(j)[0]))


def _size(job: dict) -> tuple[int, int]:
    """(params, leaves) of a job's tree."""
    spec = trees.build(job["tree"]["kind"], **job["tree"]["args"])
    return trees.n_params(spec), len(spec)
