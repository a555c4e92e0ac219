"""Records PyTorch's ReduceLROnPlateau decisions on fixed loss sequences (the test's reference).

Run with PyTorch installed: ``python -m tests.reference.torch_plateau``; it rewrites
torch_plateau.json beside this file. The tests read the JSON, so they need no PyTorch. The
settings are PyTorch's arguments: ``gradtx.reduce_on_plateau(rule="pytorch")`` takes ``threshold``
as ``rtol`` (tests/test_plateau.py maps it).
"""

import json
import pathlib

import numpy as np

SETTINGS = [
    {"factor": 0.1, "patience": 10, "threshold": 1e-4, "cooldown": 0, "min_scale": 0.0},
    {"factor": 0.5, "patience": 2, "threshold": 1e-3, "cooldown": 3, "min_scale": 0.05},
    {"factor": 0.3, "patience": 0, "threshold": 0.0, "cooldown": 1, "min_scale": 0.0},
    {"factor": 0.5, "patience": 5, "threshold": 1e-2, "cooldown": 0, "min_scale": 0.2},
]


def loss_sequences(steps: int = 150) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    t = np.arange(steps)
    return {
        "decay_then_plateau": list(
            np.maximum(np.exp(-t / 10), np.exp(-3)) + 1e-3 * rng.random(steps)
        ),
        "noisy_walk": list(2 + np.cumsum(rng.normal(0, 0.05, steps)) - 0.002 * t),
        "constant": [1.0] * steps,
        "below_threshold": list(np.float64(1.0) * (1 - 5e-5) ** t),
        "spiky": list(1 / (1 + t / 20) + np.where(t % 17 == 0, 0.5, 0.0)),
    }


def torch_scales(setting: dict, losses: list[float]) -> list[float]:
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=setting["factor"],
        patience=setting["patience"],
        threshold=setting["threshold"],
        threshold_mode="rel",
        cooldown=setting["cooldown"],
        min_lr=setting["min_scale"],
    )
    scales = []
    for loss in losses:
        optimizer.step()
        scheduler.step(loss)
        scales.append(optimizer.param_groups[0]["lr"])
    return scales


def main() -> None:
    import torch

    records = [
        {
            "setting": setting,
            "sequence": name,
            "losses": losses,
            "scales": torch_scales(setting, losses),
        }
        for setting in SETTINGS
        for name, losses in loss_sequences().items()
    ]
    out = pathlib.Path(__file__).with_name("torch_plateau.json")
    out.write_text(json.dumps({"torch": torch.__version__, "records": records}))


if __name__ == "__main__":
    main()
