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

import contextlib
import dataclasses
import importlib
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("torch_optimizers.json")


@dataclasses.dataclass(frozen=True)
class TorchRow:
    """A ``torch.optim`` optimizer and the gradtx transformation that must match it.

    Attributes:
      optimizer: the class name in ``module`` (``"NAdam"``).
      kwargs: its arguments (``lr`` included).
      gradtx: builds the gradtx transformation.
      shapes: the params' shapes (one tensor per shape).
      steps: the number of updates.
      seed: seeds the params and the gradients.
      tolerance: the largest relative deviation allowed (the issue's 1e-6 unless a comment
        says why a row needs another).
      float64_newton_schulz: torch.optim.Muon rounds Newton-Schulz's input to bfloat16
        (hard-coded); with this flag the row is recorded with that rounding removed (the
        iteration in float64, gradtx's ``dtype=jnp.float64``), the rest of torch unchanged.
      module: the module that has the class: ``torch.optim``, or a package of PyTorch
        optimizers that is not in torch (``"pytorch_optimizer"``).
    """

    optimizer: str
    kwargs: dict[str, Any]
    gradtx: Callable[[], Any]
    shapes: tuple[tuple[int, ...], ...] = ((3,), (4, 5))
    steps: int = 50
    seed: int = 0
    tolerance: float = 1e-6
    float64_newton_schulz: bool = False
    module: str = "torch.optim"


def problem(row: TorchRow) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The initial params and the gradient of every step, float64."""
    rng = np.random.default_rng(row.seed)
    params = [rng.normal(size=shape) for shape in row.shapes]
    grads = [[rng.normal(size=shape) for shape in row.shapes] for _ in range(row.steps)]
    return params, grads


@contextlib.contextmanager
def _newton_schulz_unrounded():
    """While it runs, ``Tensor.bfloat16()`` returns a copy of the tensor, unrounded: the one
    call in torch.optim.Muon's step is the rounding of Newton-Schulz's input, which the
    iteration then changes in place (so a copy, as the conversion makes: without Nesterov the
    input is the momentum buffer itself)."""
    import torch

    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self, *args, **kwargs: self.clone()
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = original


def torch_trajectory(row: TorchRow) -> list[list[np.ndarray]]:
    """The params after every step of ``torch.optim.<row.optimizer>``."""
    import torch

    # one thread: a busy torch thread pool slows the XLA work later in the same process 2x
    torch.set_num_threads(1)
    params, grads = problem(row)
    tensors = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)) for p in params]
    optimizer = getattr(importlib.import_module(row.module), row.optimizer)(tensors, **row.kwargs)
    trajectory = []
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        with _newton_schulz_unrounded() if row.float64_newton_schulz else contextlib.nullcontext():
            optimizer.step()
        trajectory.append([t.detach().numpy().copy() for t in tensors])
    return trajectory


def rows() -> dict[str, TorchRow]:
    from tests import registry

    return registry.entries("TORCH")


def record(names: list[str] | None = None) -> dict[str, Any]:
    """Every row's trajectory; with ``names``, those rows' only, the others kept as recorded."""
    import torch

    out = {"torch": torch.__version__, "rows": {}}
    if names:
        out = {**json.loads(FIXTURE.read_text()), "torch": torch.__version__}
    for name, row in rows().items():
        if names and name not in names:
            continue
        out["rows"][name] = {
            "optimizer": row.optimizer,
            "kwargs": row.kwargs,
            "trajectory": [[p.tolist() for p in step] for step in torch_trajectory(row)],
        }
    return out


if __name__ == "__main__":
    # python -m tests.reference.torch_optimizers [row ...]: all rows, or the named ones
    FIXTURE.write_text(json.dumps(record(sys.argv[1:])) + "\n")
    print(f"wrote {FIXTURE}")
