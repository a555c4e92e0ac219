"""Records PyTorch optimizers' trajectories on fixed gradients (the references of test_torch).

Every family module of ``tests/registry`` may define ``TORCH``: id -> :class:`TorchRow`, a
``torch.optim`` class with its arguments and the gradtx call that must reproduce it. Run with
PyTorch installed: ``python -m tests.reference.torch_optimizers``; it rewrites
torch_optimizers.json beside this file. The tests read the JSON, so they need no PyTorch, and
re-record each row live when PyTorch is installed.

Each row runs ``steps`` updates in float64 from fixed params, feeding a fixed gradient sequence
(set as ``.grad`` before each ``step()``); both come from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("torch_optimizers.json")


@dataclasses.dataclass(frozen=True)
class TorchRow:
    """A ``torch.optim`` optimizer and the gradtx transformation that must match it.

    Attributes:
      optimizer: the class name in ``torch.optim`` (``"NAdam"``).
      kwargs: its arguments (``lr`` included).
      gradtx: builds the gradtx transformation.
      shapes: the params' shapes (one tensor per shape).
      steps: the number of updates.
      seed: seeds the params and the gradients.
      tolerance: the largest relative deviation allowed (the issue's 1e-6 unless a comment
        says why a row needs another).
    """

    optimizer: str
    kwargs: dict[str, Any]
    gradtx: Callable[[], Any]
    shapes: tuple[tuple[int, ...], ...] = ((3,), (4, 5))
    steps: int = 50
    seed: int = 0
    tolerance: float = 1e-6


def problem(row: TorchRow) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The initial params and the gradient of every step, float64."""
    rng = np.random.default_rng(row.seed)
    params = [rng.normal(size=shape) for shape in row.shapes]
    grads = [[rng.normal(size=shape) for shape in row.shapes] for _ in range(row.steps)]
    return params, grads


def torch_trajectory(row: TorchRow) -> list[list[np.ndarray]]:
    """The params after every step of ``torch.optim.<row.optimizer>``."""
    import torch

    # one thread: a busy torch thread pool slows the XLA work later in the same process 2x
    torch.set_num_threads(1)
    params, grads = problem(row)
    tensors = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)) for p in params]
    optimizer = getattr(torch.optim, row.optimizer)(tensors, **row.kwargs)
    trajectory = []
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        trajectory.append([t.detach().numpy().copy() for t in tensors])
    return trajectory


def rows() -> dict[str, TorchRow]:
    from tests import registry

    return registry.entries("TORCH")


def record() -> dict[str, Any]:
    import torch

    out = {"torch": torch.__version__, "rows": {}}
    for name, row in rows().items():
        out["rows"][name] = {
            "optimizer": row.optimizer,
            "kwargs": row.kwargs,
            "trajectory": [[p.tolist() for p in step] for step in torch_trajectory(row)],
        }
    return out


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(record()) + "\n")
    print(f"wrote {FIXTURE}")
