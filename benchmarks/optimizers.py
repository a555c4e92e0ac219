"""The optimizer configurations of the timing suite, with the same hyperparameters everywhere.

``adam``: Adam, learning rate 1e-3, b1 0.9, b2 0.999, eps 1e-8.
``adamw_clip``: clip by global norm 1.0, then AdamW (weight decay 1e-4) with a warmup-cosine
learning rate (0 -> 1e-3 over 100 steps, cosine to 0 at step 1000). torch: ``clip_grad_norm_``
then ``AdamW`` with a ``LambdaLR`` of the same schedule.

Floor bytes per fp32 param: Adam reads p, g, m, v and writes p, m, v (7 x 4 = 28 B); clipping
by the global norm needs one more read of g (32 B).
"""

from __future__ import annotations

import math

OPTIMIZERS = ("adam", "adamw_clip")
FLOOR_BYTES_PER_PARAM = {"adam": 28, "adamw_clip": 32}

LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
MAX_NORM = 1.0
WARMUP_STEPS = 100
DECAY_STEPS = 1000


def _check(opt: str) -> None:
    if opt not in OPTIMIZERS:
        raise ValueError(f"optimizers: opt must be one of {OPTIMIZERS}, got {opt!r}")


def make_jax(lib: str, opt: str):
    """The gradient transformation of ``lib`` ('gradtx' or 'optax') for ``opt``."""
    _check(opt)
    if lib == "gradtx":
        import gradtx as m
    elif lib == "optax":
        import optax as m
    else:
        raise ValueError(f"optimizers.make_jax: lib must be 'gradtx' or 'optax', got {lib!r}")
    if opt == "adam":
        return m.adam(LEARNING_RATE)
    schedule = m.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=LEARNING_RATE,
        warmup_steps=WARMUP_STEPS,
        decay_steps=DECAY_STEPS,
    )
    return m.chain(
        m.clip_by_global_norm(MAX_NORM),
        m.adamw(schedule, weight_decay=WEIGHT_DECAY),
    )


def torch_schedule(step: int) -> float:
    """The warmup-cosine factor (of ``LEARNING_RATE``) at ``step``, for torch's ``LambdaLR``."""
    if step < WARMUP_STEPS:
        return step / WARMUP_STEPS
    t = min(step - WARMUP_STEPS, DECAY_STEPS - WARMUP_STEPS) / (DECAY_STEPS - WARMUP_STEPS)
    return 0.5 * (1.0 + math.cos(math.pi * t))
