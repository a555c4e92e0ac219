"""Rows of the Adam family (gradtx/_optimizers/adam_like.py) in the shared test tables."""

from __future__ import annotations

import gradtx
from tests.reference.torch_optimizers import TorchRow

TORCH = {
    "torch_adam": TorchRow("Adam", {"lr": 1e-2}, lambda: gradtx.adam(1e-2)),
    "torch_adamw": TorchRow(
        "AdamW", {"lr": 1e-2, "weight_decay": 0.1}, lambda: gradtx.adamw(1e-2, weight_decay=0.1)
    ),
}
