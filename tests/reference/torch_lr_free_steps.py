"""Records the authors' MoMo (``momo-opt``: ``momo.Momo``, ``momo.MomoAdam``) into
torch_lr_free_steps.json.

Their ``step`` takes the loss (``step(loss=...)``), which tests/reference/torch_optimizers.py's
rows do not pass: this script feeds ½‖θ‖² of the current params (the loss gradtx's rows are
given by ``tests.registry.sgd_like.given_loss``) with fixed random gradients, in float64. Run
``python -m tests.reference.torch_lr_free_steps`` with PyTorch and momo-opt installed (recorded
with momo-opt 0.1.0). tests/test_lr_free_steps.py reads the JSON and re-records every row live
when momo-opt is importable.

torch's default dtype is set to float64 while recording: MomoAdam keeps the average of
``<g, x>`` in a tensor of the default dtype (``torch.tensor(0.)``), which would round it to
float32 for float64 params.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("torch_lr_free_steps.json")
SHAPES = ((3,), (4, 5), ())
STEPS = 50

# name -> (class in momo, its kwargs, gradtx's factory, its kwargs)
ROWS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "momo": ("Momo", {}, "momo", {}),
    "momo_adapted_decay": (
        "Momo",
        {"lr": 0.5, "weight_decay": 0.1, "beta": 0.8, "lb": -1.0, "use_fstar": True},
        "momo",
        {
            "learning_rate": 0.5,
            "weight_decay": 0.1,
            "beta": 0.8,
            "lower_bound": -1.0,
            "adapt_lower_bound": True,
        },
    ),
    "momo_adam": ("MomoAdam", {}, "momo_adam", {}),
    "momo_adam_adapted_decay": (
        "MomoAdam",
        {"lr": 0.05, "weight_decay": 0.1, "betas": (0.8, 0.99), "lb": -1.0, "use_fstar": True},
        "momo_adam",
        {
            "learning_rate": 0.05,
            "weight_decay": 0.1,
            "b1": 0.8,
            "b2": 0.99,
            "lower_bound": -1.0,
            "adapt_lower_bound": True,
        },
    ),
    "momo_adam_decoupled": (
        "MomoAdam",
        {"lr": 0.05, "weight_decay": 0.1, "divide": False},
        "momo_adam",
        {"learning_rate": 0.05, "weight_decay": 0.1, "weight_decay_mode": "decoupled"},
    ),
}


def problem(seed: int = 3) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The initial params and the gradient of every step, float64."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=shape) for shape in SHAPES]
    grads = [[rng.normal(size=shape) for shape in SHAPES] for _ in range(STEPS)]
    return params, grads


def trajectory(name: str) -> list[list[np.ndarray]]:
    """The params after every step of the authors' optimizer."""
    import momo
    import torch

    cls, kwargs, _, _ = ROWS[name]
    torch.set_num_threads(1)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params, grads = problem()
        tensors = [torch.nn.Parameter(torch.tensor(p)) for p in params]
        optimizer = getattr(momo, cls)(tensors, **kwargs)
        out = []
        for step_grads in grads:
            for t, g in zip(tensors, step_grads):
                t.grad = torch.tensor(g)
            with torch.no_grad():
                loss = 0.5 * sum(torch.sum(t * t) for t in tensors)
            optimizer.step(loss=loss)
            out.append([t.detach().numpy().copy() for t in tensors])
        return out
    finally:
        torch.set_default_dtype(default)


def record() -> dict[str, Any]:
    import momo
    import torch

    return {
        "torch": torch.__version__,
        "momo-opt": momo.__version__,
        "rows": {
            name: {
                "optimizer": cls,
                "kwargs": kwargs,
                "trajectory": [[p.tolist() for p in step] for step in trajectory(name)],
            }
            for name, (cls, kwargs, _, _) in ROWS.items()
        },
    }


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(record()) + "\n")
    print(f"wrote {FIXTURE}")
