"""Records the authors' schedule-free optimizers (the ``schedulefree`` PyTorch package) into
schedulefree_torch.json, the references of tests/test_schedule_free.py.

Run ``python -m tests.reference.schedulefree_torch`` with torch and schedulefree installed.
Their optimizers do not fit tests/reference/torch_optimizers.py's rows: they must be put in
train mode (``optimizer.train()``, which moves the params to y) before stepping, and in eval
mode (``optimizer.eval()``, the params to x) to read the averaged params. Each row runs
``STEPS`` updates in float64 in train mode from fixed params, feeding a fixed gradient sequence
(set as ``.grad`` before each ``step()``), and records the params y after every step; then
``eval()`` and the params x once, at the end (switching modes each step would round y).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("schedulefree_torch.json")
SHAPES = ((3,), (4, 5))
STEPS = 50
SEED = 0

# name -> (the class in schedulefree, its arguments)
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd_warmup_decay": (
        "SGDScheduleFree",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "warmup_steps": 5},
    ),
    "adamw_warmup_decay": (
        "AdamWScheduleFree",
        {
            "lr": 0.01,
            "betas": (0.95, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "warmup_steps": 10,
            "weight_lr_power": 1.5,
        },
    ),
    # the paper's Algorithm 1: Adam's bias correction in the learning rate
    "adamw_paper": (
        "AdamWScheduleFreePaper",
        {"lr": 0.01, "betas": (0.9, 0.999), "weight_decay": 0.05, "warmup_steps": 10},
    ),
}


def problem() -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The initial params and the gradient of every step, float64."""
    rng = np.random.default_rng(SEED)
    params = [rng.normal(size=shape) for shape in SHAPES]
    grads = [[rng.normal(size=shape) for shape in SHAPES] for _ in range(STEPS)]
    return params, grads


def trajectory(name: str) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
    """The params y after every step, and the params x after the last."""
    import schedulefree
    import torch

    # one thread: a busy torch thread pool slows the XLA work later in the same process 2x
    torch.set_num_threads(1)
    cls, kwargs = ROWS[name]
    params, grads = problem()
    tensors = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)) for p in params]
    optimizer = getattr(schedulefree, cls)(tensors, **kwargs)
    optimizer.train()
    ys = []
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        ys.append([t.detach().numpy().copy() for t in tensors])
    optimizer.eval()
    return ys, [t.detach().numpy().copy() for t in tensors]


def record() -> dict[str, Any]:
    import importlib.metadata

    import torch

    out: dict[str, Any] = {
        "schedulefree": importlib.metadata.version("schedulefree"),
        "torch": torch.__version__,
        "rows": {},
    }
    for name, (cls, kwargs) in ROWS.items():
        ys, x = trajectory(name)
        out["rows"][name] = {
            "optimizer": cls,
            "kwargs": kwargs,
            "trajectory": [[p.tolist() for p in step] for step in ys],
            "eval": [p.tolist() for p in x],
        }
    return out


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(record()) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)
