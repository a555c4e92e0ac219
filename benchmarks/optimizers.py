"""The optimizer configurations of the timing suite, with the same hyperparameters everywhere.

``adam``: Adam, learning rate 1e-3, b1 0.9, b2 0.999, eps 1e-8.
``adamw_clip``: clip by global norm 1.0, then AdamW (weight decay 1e-4) with a warmup-cosine
learning rate (0 -> 1e-3 over 100 steps, cosine to 0 at step 1000). torch: ``clip_grad_norm_``
then ``AdamW`` with a ``LambdaLR`` of the same schedule.

Grouped, gradtx only: ``adam_grouped`` and ``adamw_clip_grouped`` are ``adam`` and
``adamw_clip`` wrapped in ``gradtx.grouped`` (the elementwise chain runs on one concatenated
buffer per dtype; it is what makes many-leaf models compile fast), without ``grouped``'s
probe of leaf independence (known here). Their references are optax's ``adam`` and
``adamw_clip``, their floors those of the ungrouped forms.

Low-memory state, gradtx only (issue 6, item 3): ``adam_bf16``, Adam with bfloat16 moments
(``mu_dtype`` and ``nu_dtype``); ``adam_8bit``, Adam with block-wise 8-bit moments
(``optim_bits=8``). Their reference is optax's fp32 ``adam``.

Small-model steps, for ``benchmarks.interleaved`` only (issue 16: what live hyperparameters
cost where the per-call overhead is most of a step): ``sgd`` (plain, learning rate 1e-2),
``sgd_momentum`` (momentum 0.9) and ``adamw`` (``adam``'s with weight decay 1e-4). Floors: 12,
20 and 28 B per param.

Floor bytes per fp32 param: Adam reads p, g, m, v and writes p, m, v (7 x 4 = 28 B); clipping
by the global norm needs one more read of g (32 B); bf16 moments move 2 B instead of 4 each
(4 + 4 + 2 + 2 read, 4 + 2 + 2 written: 20 B); 8-bit moments 1 B each (16 B, the per-block
scales left out).
"""

from __future__ import annotations

import math

OPTIMIZERS = ("adam", "adamw_clip")
GROUPED = ("adam_grouped", "adamw_clip_grouped")  # gradtx.grouped(<the ungrouped form>)
LOW_MEMORY = ("adam_bf16", "adam_8bit")
GRADTX_ONLY = GROUPED + LOW_MEMORY
SMALL_MODEL = ("sgd", "sgd_momentum", "adamw")  # interleaved only, against optax's same-named
# The order of the table: each grouped variant after its ungrouped form, the low-memory last.
ALL = ("adam", "adam_grouped", "adamw_clip", "adamw_clip_grouped", *LOW_MEMORY)
REFERENCE = {
    "adam": "adam",
    "adamw_clip": "adamw_clip",
    "adam_grouped": "adam",
    "adamw_clip_grouped": "adamw_clip",
    "adam_bf16": "adam",
    "adam_8bit": "adam",
    "sgd": "sgd",
    "sgd_momentum": "sgd_momentum",
    "adamw": "adamw",
}
FLOOR_BYTES_PER_PARAM = {
    "adam": 28,
    "adamw_clip": 32,
    "adam_grouped": 28,
    "adamw_clip_grouped": 32,
    "adam_bf16": 20,
    "adam_8bit": 16,
    "sgd": 12,
    "sgd_momentum": 20,
    "adamw": 28,
}

LEARNING_RATE = 1e-3
SGD_LEARNING_RATE = 1e-2
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
MAX_NORM = 1.0
WARMUP_STEPS = 100
DECAY_STEPS = 1000


def _check(opt: str) -> None:
    if opt not in ALL + SMALL_MODEL:
        raise ValueError(f"optimizers: opt must be one of {ALL + SMALL_MODEL}, got {opt!r}")


def make_jax(lib: str, opt: str):
    """The gradient transformation of ``lib`` ('gradtx' or 'optax') for ``opt``."""
    _check(opt)
    if lib == "gradtx":
        import gradtx as m
    elif lib == "optax":
        import optax as m
    else:
        raise ValueError(f"optimizers.make_jax: lib must be 'gradtx' or 'optax', got {lib!r}")
    if opt in GRADTX_ONLY and lib != "gradtx":
        raise ValueError(f"optimizers.make_jax: {opt!r} is gradtx's, got lib={lib!r}")
    if opt in GROUPED:
        # check=False: both chains are elementwise (tests/test_benchmarks.py compares the grouped
        # steps with the ungrouped ones); the probe's eager ops cost ~1.5 s a process.
        return m.grouped(make_jax(lib, opt.removesuffix("_grouped")), check=False)
    if opt == "adam":
        return m.adam(LEARNING_RATE)
    if opt == "adamw":
        return m.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    if opt == "sgd":
        return m.sgd(SGD_LEARNING_RATE)
    if opt == "sgd_momentum":
        return m.sgd(SGD_LEARNING_RATE, momentum=MOMENTUM)
    if opt == "adam_bf16":
        import jax.numpy as jnp

        return m.adam(LEARNING_RATE, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    if opt == "adam_8bit":
        return m.adam(LEARNING_RATE, optim_bits=8)
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
