"""Timing of one jitted optimizer step in JAX (gradtx or optax), and two floors: the in-place
bandwidth floor (``a += b`` on one buffer of the same size) and the tree floor (``p = p + g``
leaf by leaf on the job's own trees: what any jitted step touching every leaf costs).

A step is ``params, state = step(params, state, grads)``: the library's ``update`` followed by
``apply_updates``, jitted with params and state donated, so that XLA can update them in place.
It is staged explicitly: ``jax.jit(step).trace(...)`` (trace time), ``.lower()`` (lower time),
``.compile()`` (compile time); the compiled executable is then called ``warmup`` times and timed
over ``repeats`` more calls, each to ``jax.block_until_ready``; the median is reported.

Run as a worker (``python -m benchmarks.jax_bench '<job json>'``) the result is printed as the
last line of stdout; this module never imports torch.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import optimizers, trees


def device_info() -> dict:
    """The device the steps run on (the first of ``jax.devices()``)."""
    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "n_devices": jax.device_count(),
    }


def _timed(call, args, warmup: int, repeats: int):
    """Calls ``args = call(*args)`` warmup + repeats times; the per-call seconds of the repeats."""
    for _ in range(warmup):
        args = jax.block_until_ready(call(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        args = jax.block_until_ready(call(*args))
        times.append(time.perf_counter() - t0)
    return times, args


def floor_program(a: jax.Array, b: jax.Array):
    """``a + b`` compiled with ``a`` donated: its output is written over ``a``."""
    return jax.jit(lambda a, b: a + b, donate_argnums=0).lower(a, b).compile()


# The floor programs this process compiled, by size: a worker measures each floor once, but the
# in-process smoke run measures the same few sizes many times.
_FLOOR_PROGRAMS: dict = {}


def floor(n: int, warmup: int = 3, repeats: int = 20) -> dict:
    """The in-place bandwidth floor on ``n`` fp32 values: ``a += b`` with ``a`` donated.

    It moves 12 B per value (read a, read b, write a); bytes/s = 12 n / median time.
    """
    a = jnp.zeros((n,), jnp.float32)
    b = jnp.full((n,), 1e-3, jnp.float32)
    if n not in _FLOOR_PROGRAMS:
        _FLOOR_PROGRAMS[n] = floor_program(a, b)
    compiled = _FLOOR_PROGRAMS[n]
    # b is passed back around the compiled call: returned from it, it would be copied.
    times, _ = _timed(lambda a, b: (compiled(a, b), b), (a, b), warmup, repeats)
    t = statistics.median(times)
    return {"n": n, "seconds": t, "bytes_per_s": 12 * n / t, "repeats": repeats, **device_info()}


def tree_floor_program(params, grads):
    """``params + grads`` leaf by leaf, compiled with ``params`` donated: each output leaf is
    written over its param."""
    add = lambda p, g: jax.tree.map(lambda a, b: a + b, p, g)
    return jax.jit(add, donate_argnums=0).lower(params, grads).compile()


_TREE_FLOOR_PROGRAMS: dict = {}  # as _FLOOR_PROGRAMS, by tree structure and leaf shapes


def tree_floor(params, grads, warmup: int = 3, repeats: int = 20) -> dict:
    """The dispatch floor of a tree: ``p = p + g`` leaf by leaf, ``p`` donated (a copy of
    ``params``), ``grads`` passed around the call as the step passes them.

    The cheapest jitted step touching every leaf: on XLA:CPU every input and output buffer
    costs about 2 us whatever its size, so on many small leaves this floor, not bandwidth,
    bounds the step.
    """
    p = jax.tree.map(jnp.copy, params)
    key = (jax.tree.structure(p), tuple((x.shape, x.dtype.name) for x in jax.tree.leaves(p)))
    t0 = time.perf_counter()
    if key not in _TREE_FLOOR_PROGRAMS:
        _TREE_FLOOR_PROGRAMS[key] = tree_floor_program(p, grads)
    compiled = _TREE_FLOOR_PROGRAMS[key]
    build_s = time.perf_counter() - t0
    times, _ = _timed(lambda p, g: (compiled(p, g), g), (p, grads), warmup, repeats)
    return {"seconds": statistics.median(times), "repeats": repeats, "build_s": build_s}


def _step_fn(lib: str, tx):
    if lib == "gradtx":
        import gradtx

        apply = gradtx.apply_updates
    else:
        import optax

        apply = optax.apply_updates

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return step


def compiled_step(lib: str, tx, params, state, grads):
    """The suite's step (params and state donated) compiled for these arguments, and the
    seconds it took to trace, lower and compile, as ``{"trace_s", "lower_s", "compile_s"}``."""
    jitted = jax.jit(_step_fn(lib, tx), donate_argnums=(0, 1))
    t0 = time.perf_counter()
    traced = jitted.trace(params, state, grads)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    return compiled, {"trace_s": t1 - t0, "lower_s": t2 - t1, "compile_s": t3 - t2}


def memory(compiled) -> dict | None:
    """XLA's memory analysis of the compiled step; ``peak`` = argument + output - alias + temp.

    Donated params and state are aliased to the outputs: they are counted once.
    """
    try:
        m = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError):
        return None
    if m is None:
        return None
    fields = ("argument", "output", "alias", "temp", "generated_code")
    out = {f: int(getattr(m, f"{f}_size_in_bytes")) for f in fields}
    out["peak"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    return out


def measure(
    lib: str,
    opt: str,
    spec: trees.Spec,
    warmup: int = 3,
    repeats: int | None = None,
    return_params: bool = False,
) -> dict:
    """Trace, lower and compile the jitted step, then time it; see the module docstring."""
    repeats = trees.default_repeats(trees.n_params(spec)) if repeats is None else repeats
    params0, grads_np = trees.values(spec)
    tx = optimizers.make_jax(lib, opt)
    params = {k: jnp.asarray(v) for k, v in params0.items()}
    grads = {k: jnp.asarray(v) for k, v in grads_np.items()}
    state = jax.block_until_ready(tx.init(params))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))

    compiled, build = compiled_step(lib, tx, params, state, grads)

    # The floors in this process, just before the step is timed: the same conditions.
    local_floor = floor(trees.n_params(spec), warmup=2, repeats=min(repeats, 20))
    local_tree_floor = tree_floor(params, grads, warmup=2, repeats=min(repeats, 20))
    times, (params, state, _) = _timed(
        lambda p, s, g: (*compiled(p, s, g), g), (params, state, grads), warmup, repeats
    )
    n = trees.n_params(spec)
    result = {
        "lib": lib,
        "opt": opt,
        "n_params": n,
        "n_leaves": len(spec),
        **build,
        "step_s": statistics.median(times),
        "step_min_s": min(times),
        "warmup": warmup,
        "repeats": repeats,
        "floor": local_floor,
        "tree_floor": local_tree_floor,
        "memory": memory(compiled),
        "state_bytes_per_param": state_bytes / n,
        "fingerprint": trees.fingerprint(spec, params0, params),
        **device_info(),
    }
    if return_params:
        result["params"] = {k: np.asarray(v) for k, v in params.items()}
    return result


def run_job(job: dict) -> dict:
    """Runs one job: ``{"kind": "floor", "ns": [...]}`` or ``{"kind": "step", ...}``."""
    if job["kind"] == "floor":
        return {"floors": [floor(n, repeats=job.get("repeats", 20)) for n in job["ns"]]}
    spec = trees.build(job["tree"]["kind"], **job["tree"]["args"])
    return measure(job["lib"], job["opt"], spec, job.get("warmup", 3), job.get("repeats"))


def main(argv: list[str]) -> None:
    job = json.loads(argv[1])
    print(json.dumps(run_job(job)))


if __name__ == "__main__":
    main(sys.argv)
