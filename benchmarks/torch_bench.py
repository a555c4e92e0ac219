"""Timing of one torch.optim step (fused Adam / clip + fused AdamW + LambdaLR), in its own process.

Once PyTorch's CPU thread pool has run in a process, XLA steps timed later in that process slow
down 2x or more, so the suite runs this module as a separate worker
(``python -m benchmarks.torch_bench '<jobs json>' <results.jsonl>``); it never imports jax.
The gradients are set once; a step is ``optimizer.step()`` (``adam``), or ``clip_grad_norm_`` +
``optimizer.step()`` + ``scheduler.step()`` (``adamw_clip``), each timed to completion
(``torch.cuda.synchronize`` on a GPU).
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from benchmarks import optimizers, trees


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def floor(n: int, device: torch.device, warmup: int = 2, repeats: int = 20) -> dict:
    """The in-place bandwidth floor in torch: ``a.add_(b)`` on ``n`` fp32 values, 12 B each."""
    a = torch.zeros(n, dtype=torch.float32, device=device)
    b = torch.full((n,), 1e-3, dtype=torch.float32, device=device)
    for _ in range(warmup):
        a.add_(b)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.add_(b)
        _sync(device)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {"n": n, "seconds": t, "bytes_per_s": 12 * n / t, "repeats": repeats}


def measure(opt: str, spec: trees.Spec, warmup: int = 3, repeats: int | None = None) -> dict:
    """Times the torch step on the tree ``spec``; see the module docstring."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n = trees.n_params(spec)
    repeats = trees.default_repeats(n) if repeats is None else repeats
    params0, grads = trees.values(spec)
    names = [name for name, _ in spec]
    params = []
    for name in names:
        p = torch.nn.Parameter(torch.from_numpy(params0[name].copy()).to(device))
        p.grad = torch.from_numpy(grads[name].copy()).to(device)
        params.append(p)
    lr = optimizers.LEARNING_RATE
    if opt == "adam":
        optimizer = torch.optim.Adam(params, lr=lr, fused=True)

        def step():
            optimizer.step()

    else:
        optimizer = torch.optim.AdamW(
            params, lr=lr, weight_decay=optimizers.WEIGHT_DECAY, fused=True
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, optimizers.torch_schedule)

        def step():
            torch.nn.utils.clip_grad_norm_(params, optimizers.MAX_NORM, foreach=True)
            optimizer.step()
            scheduler.step()

    # The floor in this process, just before the step is timed: the same conditions.
    local_floor = floor(n, device, repeats=min(repeats, 20))
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    state_bytes = sum(
        v.numel() * v.element_size()
        for s in optimizer.state.values()
        for v in s.values()
        if torch.is_tensor(v)
    )
    final = {name: p.detach().cpu().numpy() for name, p in zip(names, params)}
    return {
        "lib": "torch",
        "opt": opt,
        "n_params": n,
        "n_leaves": len(spec),
        "step_s": statistics.median(times),
        "step_min_s": min(times),
        "warmup": warmup,
        "repeats": repeats,
        "floor": local_floor,
        "memory": None,
        "state_bytes_per_param": state_bytes / n,
        "fingerprint": trees.fingerprint(spec, params0, final),
        "platform": device.type,
        "device_kind": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str]) -> None:
    """Runs a list of step jobs, appending each result as a JSON line to the file ``argv[2]``.

    Line by line, so that the results finished before a time limit stops the worker are kept.
    """
    with open(argv[2], "a") as f:
        for job in json.loads(argv[1]):
            spec = trees.build(job["tree"]["kind"], **job["tree"]["args"])
            r = measure(job["opt"], spec, job.get("warmup", 3), job.get("repeats"))
            f.write(json.dumps(r) + "\n")
            f.flush()


if __name__ == "__main__":
    main(sys.argv)
