"""Float64 NumPy reference of schedule-free learning (gradtx/_wrappers/schedule_free.py,
gradtx/_optimizers/schedule_free.py), from the paper.

Defazio et al., *The Road Less Scheduled*, NeurIPS 2024, Algorithm 1, in the conventions of
``numpy_reference`` (``Ref(init, update)`` on lists of leaves, hyperparameters numbers or
callables of the count). Unlike gradtx, which keeps z only and recovers x from the params, the
reference keeps both sequences, z and x, as the paper writes them; the params it is given are
y. With u the base transformation's update (its learning rate included) at y and γ the
learning rate at this update:

    z' = z + u,  m' = max(m, γ),  w = m'**r,  W' = W + w,  c = w / W' (0 if W' = 0),
    x' = (1 - c) x + c z',  y' = b1 x' + (1 - b1) z',  update = y' - y.

``eval_params(state)`` is x. The aliases: SGD, u = -γ (g + λ y); AdamW (the authors' code's
bias correction), u = -γ (g / (sqrt(v / (1 - b2**t)) + eps) + λ y); with ``warmup_steps`` T,
γ_t = γ min(1, t / T) at step t = 1, 2, ...
"""

from __future__ import annotations

import numpy as np

from tests.reference import numpy_reference as R
from tests.reference.numpy_reference import Ref, _value


def schedule_free(base_optimizer: Ref, learning_rate, b1=0.9, weight_lr_power=2.0) -> Ref:
    def init(params):
        return {
            "count": 0,
            "z": [p.copy() for p in params],
            "x": [p.copy() for p in params],
            "weight_sum": 0.0,
            "max_lr": 0.0,
            "base": base_optimizer.init(params),
        }

    def update(gs, state, ys):
        count = state["count"]
        us, base = base_optimizer.update(gs, state["base"], ys)
        max_lr = max(state["max_lr"], _value(learning_rate, count))
        weight = max_lr ** _value(weight_lr_power, count)
        weight_sum = state["weight_sum"] + weight
        c = weight / weight_sum if weight_sum != 0 else 0.0
        beta = _value(b1, count)
        zs = [z + u for z, u in zip(state["z"], us)]
        xs = [(1 - c) * x + c * z for x, z in zip(state["x"], zs)]
        updates = [beta * x + (1 - beta) * z - y for x, z, y in zip(xs, zs, ys)]
        new = {"count": count + 1, "z": zs, "x": xs, "weight_sum": weight_sum, "max_lr": max_lr}
        return updates, {**new, "base": base}

    return Ref(init, update)


def eval_params(state) -> list[np.ndarray]:
    """x, the averaged iterate of a :func:`schedule_free` reference's state."""
    return state["x"]


def _warmed_up(learning_rate, warmup_steps):
    if warmup_steps is None:
        return learning_rate
    return lambda count: _value(learning_rate, count) * min(1.0, (count + 1) / warmup_steps)


def schedule_free_sgd(
    learning_rate=1.0,
    warmup_steps=None,
    b1=0.9,
    weight_decay=None,
    weight_lr_power=2.0,
    state_dtype=None,
) -> Ref:
    del state_dtype  # float64 throughout
    lr = _warmed_up(learning_rate, warmup_steps)
    decay = R.identity() if weight_decay is None else R.add_decayed_weights(weight_decay)
    base = R.chain(decay, R.scale_by_learning_rate(lr))
    return schedule_free(base, lr, b1, weight_lr_power)


def schedule_free_adamw(
    learning_rate=0.0025,
    warmup_steps=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    weight_lr_power=2.0,
    state_dtype=None,
) -> Ref:
    del state_dtype
    lr = _warmed_up(learning_rate, warmup_steps)
    base = R.chain(
        R.scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        R.add_decayed_weights(weight_decay),
        R.scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power)


REFERENCES = {
    "schedule_free": schedule_free,
    "schedule_free_sgd": schedule_free_sgd,
    "schedule_free_adamw": schedule_free_adamw,
}
