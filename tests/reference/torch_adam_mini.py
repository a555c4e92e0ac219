"""Records the adam-mini package's ``Adam_mini`` trajectories into torch_adam_mini.json.

``Adam_mini`` takes named parameters and chooses each one's blocks by its name, so it does
not fit ``TorchRow``'s list of tensors: this recorder gives it a small transformer's
parameters under the names its rules know (PyTorch layout, (out, in) weights), float64, and
records the params after every step. Run ``python -m tests.reference.torch_adam_mini`` with
PyTorch and adam-mini installed (recorded with adam-mini 1.1.1); tests/test_adam_mini.py
reads the JSON and re-records each row live when the package is importable.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("torch_adam_mini.json")
STEPS = 20
DIM, HEADS, KV_HEADS = 8, 2, 1

# one leaf of each kind the package's rules tell apart: embedding and output (per token),
# query (per head), a grouped key (one head), value, attention output and MLP (per neuron),
# bias (per element, no decay), norm scale (whole leaf, no decay), any other weight (whole
# leaf)
SHAPES: dict[str, tuple[int, ...]] = {
    "embed.weight": (5, DIM),
    "layers.0.attn.q_proj.weight": (DIM, DIM),
    "layers.0.attn.q_proj.bias": (DIM,),
    "layers.0.attn.k_proj.weight": (DIM * KV_HEADS // HEADS, DIM),
    "layers.0.attn.v_proj.weight": (DIM * KV_HEADS // HEADS, DIM),
    "layers.0.attn.o_proj.weight": (DIM, DIM),
    "layers.0.mlp.up.weight": (12, DIM),
    "layers.0.mlp.down.weight": (DIM, 12),
    "layers.0.norm.weight": (DIM,),
    "layers.0.attn.c_fused.weight": (4, DIM),
    "lm_head.weight": (5, DIM),
}

# name -> Adam_mini's kwargs besides the named parameters and the model's dim and heads
ROWS: dict[str, dict[str, Any]] = {
    "adam_mini_decay": {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1},
}


def problem() -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """The initial params and the gradient of every step, float64, by name."""
    rng = np.random.default_rng(3)
    params = {name: rng.normal(size=shape) for name, shape in SHAPES.items()}
    grads = [{name: rng.normal(size=shape) for name, shape in SHAPES.items()} for _ in range(STEPS)]
    return params, grads


def torch_trajectory(name: str) -> list[dict[str, np.ndarray]]:
    """The params after every step of ``adam_mini.Adam_mini`` with ROWS[name]."""
    import torch
    from adam_mini import Adam_mini

    torch.set_num_threads(1)
    params, grads = problem()
    tensors = {
        k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float64)) for k, v in params.items()
    }
    optimizer = Adam_mini(
        list(tensors.items()),
        **ROWS[name],
        dim=DIM,
        n_heads=HEADS,
        n_kv_heads=KV_HEADS,
        verbose=False,
    )
    out = []
    for step in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(step[k], dtype=torch.float64)
        optimizer.step()
        out.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return out


def record() -> dict[str, Any]:
    import adam_mini
    import torch

    version = getattr(adam_mini, "__version__", "1.1.1")
    out: dict[str, Any] = {"torch": torch.__version__, "adam_mini": version, "rows": {}}
    for name in ROWS:
        out["rows"][name] = {
            "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in ROWS[name].items()},
            "trajectory": [
                {k: v.tolist() for k, v in step.items()} for step in torch_trajectory(name)
            ],
        }
    return out


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(record()) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)
