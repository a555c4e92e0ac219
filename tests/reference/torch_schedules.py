"""Records PyTorch's learning-rate schedulers step by step (the schedule tests' reference).

Run with PyTorch installed: ``python -m tests.reference.torch_schedules``; it rewrites
torch_schedules.json beside this file. The tests read the JSON, so they need no PyTorch; when
PyTorch is importable, a test also runs :func:`records` and checks it gives the JSON's values.

Each record is a setting (scheduler, arguments, ``base_lr``) with ``lr``: the learning rate
PyTorch's scheduler sets before update ``t`` (``t = 0, 1, ...``), and for OneCycleLR
``momentum``: the momentum (SGD) or beta1 (Adam) it sets. The scheduler is built (which sets
the values for update 0), then ``optimizer.step()`` and ``scheduler.step()`` alternate, once per
update.
"""

from __future__ import annotations

import json
import pathlib

STEPS = 121

SETTINGS: list[dict] = [
    {"scheduler": "StepLR", "base_lr": 0.1, "kwargs": {"step_size": 10, "gamma": 0.5}},
    {"scheduler": "StepLR", "base_lr": 1.0, "kwargs": {"step_size": 7, "gamma": 0.1}},
    {"scheduler": "StepLR", "base_lr": 0.3, "kwargs": {"step_size": 1, "gamma": 0.97}},
    {"scheduler": "MultiStepLR", "base_lr": 0.1, "kwargs": {"milestones": [30, 80], "gamma": 0.1}},
    {
        "scheduler": "MultiStepLR",
        "base_lr": 2.0,
        "kwargs": {"milestones": [5, 6, 50], "gamma": 0.5},
    },
    {"scheduler": "ExponentialLR", "base_lr": 0.1, "kwargs": {"gamma": 0.95}},
    {"scheduler": "ExponentialLR", "base_lr": 1.0, "kwargs": {"gamma": 0.9}},
    {"scheduler": "ExponentialLR", "base_lr": 1e-3, "kwargs": {"gamma": 1.01}},
    {"scheduler": "CosineAnnealingLR", "base_lr": 0.1, "kwargs": {"T_max": 100, "eta_min": 0.0}},
    {"scheduler": "CosineAnnealingLR", "base_lr": 1.0, "kwargs": {"T_max": 37, "eta_min": 1e-3}},
    {
        "scheduler": "CosineAnnealingWarmRestarts",
        "base_lr": 0.1,
        "kwargs": {"T_0": 10, "T_mult": 1, "eta_min": 0.0},
    },
    {
        "scheduler": "CosineAnnealingWarmRestarts",
        "base_lr": 1.0,
        "kwargs": {"T_0": 5, "T_mult": 2, "eta_min": 0.01},
    },
    {
        "scheduler": "CosineAnnealingWarmRestarts",
        "base_lr": 0.5,
        "kwargs": {"T_0": 3, "T_mult": 3, "eta_min": 0.0},
    },
    {"scheduler": "PolynomialLR", "base_lr": 0.1, "kwargs": {"total_iters": 50, "power": 1.0}},
    {"scheduler": "PolynomialLR", "base_lr": 1.0, "kwargs": {"total_iters": 100, "power": 2.0}},
    {"scheduler": "PolynomialLR", "base_lr": 0.2, "kwargs": {"total_iters": 30, "power": 0.5}},
    {
        "scheduler": "LinearLR",
        "base_lr": 0.1,
        "kwargs": {"start_factor": 1 / 3, "end_factor": 1.0, "total_iters": 5},
    },
    {
        "scheduler": "LinearLR",
        "base_lr": 1.0,
        "kwargs": {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 100},
    },
    {
        "scheduler": "LinearLR",
        "base_lr": 0.05,
        "kwargs": {"start_factor": 0.5, "end_factor": 0.1, "total_iters": 40},
    },
]

# OneCycleLR: (total_steps, max_lr, pct_start, div_factor, final_div_factor, base_momentum,
# max_momentum, optimizer), each with cos and linear, two and three phases. pct_start * total_steps
# is 30.000000000000004, 9.25, 54.00000000000001, 2.1 and 28.999999999999996: phase ends off whole
# steps, both ways.
ONE_CYCLE = [
    (100, 0.1, 0.3, 25.0, 1e4, 0.85, 0.95, "SGD"),
    (37, 1.0, 0.25, 10.0, 100.0, 0.8, 0.9, "Adam"),
    (120, 0.01, 0.45, 25.0, 1e4, 0.85, 0.95, "Adam"),
    (7, 0.5, 0.3, 5.0, 10.0, 0.9, 0.99, "SGD"),
    (100, 0.05, 0.29, 25.0, 1e3, 0.85, 0.95, "SGD"),
]
SETTINGS += [
    {
        "scheduler": "OneCycleLR",
        "optimizer": optimizer,
        "base_lr": max_lr,
        "kwargs": {
            "max_lr": max_lr,
            "total_steps": total_steps,
            "pct_start": pct_start,
            "anneal_strategy": strategy,
            "div_factor": div_factor,
            "final_div_factor": final_div_factor,
            "base_momentum": base_momentum,
            "max_momentum": max_momentum,
            "three_phase": three_phase,
        },
    }
    for (
        total_steps,
        max_lr,
        pct_start,
        div_factor,
        final_div_factor,
        base_momentum,
        max_momentum,
        optimizer,
    ) in ONE_CYCLE
    for strategy in ("cos", "linear")
    for three_phase in (False, True)
]


def run(setting: dict) -> dict:
    """The values PyTorch sets before each update: ``{"lr": [...]}`` (and ``"momentum"``)."""
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    if setting.get("optimizer") == "Adam":
        optimizer = torch.optim.Adam([param], lr=setting["base_lr"])
    else:
        optimizer = torch.optim.SGD([param], lr=setting["base_lr"], momentum=0.9)
    scheduler_class = getattr(torch.optim.lr_scheduler, setting["scheduler"])
    scheduler = scheduler_class(optimizer, **setting["kwargs"])
    steps = setting["kwargs"].get("total_steps", STEPS)
    cycles_momentum = setting["scheduler"] == "OneCycleLR"
    lrs, momenta = [], []
    for t in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(float(group["lr"]))
        if cycles_momentum:
            momenta.append(float(group["betas"][0] if "betas" in group else group["momentum"]))
        if t < steps - 1:
            optimizer.step()
            scheduler.step()
    return {"lr": lrs, "momentum": momenta} if cycles_momentum else {"lr": lrs}


def records() -> list[dict]:
    return [{**setting, **run(setting)} for setting in SETTINGS]


def main() -> None:
    import torch

    out = pathlib.Path(__file__).with_name("torch_schedules.json")
    out.write_text(json.dumps({"torch": torch.__version__, "records": records()}) + "\n")


if __name__ == "__main__":
    main()
