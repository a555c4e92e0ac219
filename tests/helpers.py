"""Shared test registries and harness: the optimizer table, test trees, side-by-side runs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from tests import registry
from tests.cases import Case, Sched

LR = 1e-2
COSINE = Sched("cosine_decay_schedule", (0.05, 60, 0.1))
WARMUP = Sched("linear_schedule", (0.0, 0.1, 30, 5))

# Every optimizer with optax's defaults (compared with optax too), then the variants.
OPTIMIZERS = [
    Case("sgd", "sgd", {"learning_rate": 0.1}, optax={"learning_rate": 0.1}),
    Case(
        "sgd_momentum",
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9},
        optax={"learning_rate": 0.1, "momentum": 0.9},
    ),
    Case(
        "sgd_nesterov",
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
        optax={"learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
    ),
    Case("adagrad", "adagrad", {"learning_rate": 0.1}, optax={"learning_rate": 0.1}),
    Case(
        "adagrad_torch",
        "adagrad",
        {
            "learning_rate": 0.1,
            "initial_accumulator_value": 0.0,
            "eps": 1e-10,
            "eps_in_sqrt": False,
        },
    ),
    Case("adadelta", "adadelta", {"learning_rate": 1.0}, optax={"learning_rate": 1.0}),
    Case("adadelta_default_lr_decay", "adadelta", {"weight_decay": 0.01}),
    Case("rmsprop", "rmsprop", {"learning_rate": LR}, optax={"learning_rate": LR}),
    Case(
        "rmsprop_torch",
        "rmsprop",
        {"learning_rate": LR, "decay": 0.99, "eps_in_sqrt": False},
        optax={"learning_rate": LR, "decay": 0.99, "eps_in_sqrt": False},
    ),
    Case(
        "rmsprop_centered_momentum",
        "rmsprop",
        {"learning_rate": LR, "centered": True, "momentum": 0.9, "nesterov": True},
        optax={"learning_rate": LR, "centered": True, "momentum": 0.9, "nesterov": True},
    ),
    Case(
        "rmsprop_bias_correction",
        "rmsprop",
        {"learning_rate": LR, "bias_correction": True, "initial_scale": 0.0},
        optax={"learning_rate": LR, "bias_correction": True},
    ),
    Case("adam", "adam", {"learning_rate": LR}, optax={"learning_rate": LR}),
    Case(
        "adam_nesterov_eps_root",
        "adam",
        {"learning_rate": LR, "nesterov": True, "eps_root": 1e-8},
        optax={"learning_rate": LR, "nesterov": True, "eps_root": 1e-8},
    ),
    Case("adamw", "adamw", {"learning_rate": LR}, optax={"learning_rate": LR}),
    Case(
        "adamw_decay",
        "adamw",
        {"learning_rate": LR, "weight_decay": 0.1},
        optax={"learning_rate": LR, "weight_decay": 0.1},
    ),
    Case("lamb", "lamb", {"learning_rate": LR}, optax={"learning_rate": LR}),
    Case(
        "lamb_decay",
        "lamb",
        {"learning_rate": LR, "weight_decay": 0.01},
        optax={"learning_rate": LR, "weight_decay": 0.01},
    ),
    Case("lars", "lars", {"learning_rate": 0.1}, optax={"learning_rate": 0.1}),
    Case(
        "lars_decay_nesterov",
        "lars",
        {"learning_rate": 0.1, "weight_decay": 0.01, "nesterov": True},
        optax={"learning_rate": 0.1, "weight_decay": 0.01, "nesterov": True},
    ),
    # Scheduled hyperparameters follow the same reference.
    Case("adam_cosine", "adam", {"learning_rate": COSINE}),
    Case("sgd_warmup", "sgd", {"learning_rate": WARMUP, "momentum": 0.9}),
]


def _optax_warmup(count):
    """WARMUP for optax, in the default float dtype (float64 under x64, as gradtx's)."""
    return 0.1 * jnp.clip((jnp.asarray(count, float) - 5) / 30, 0, 1)


ELEMENTARY = [
    Case("identity", "identity", {}, optax={}),
    Case("set_to_zero", "set_to_zero", {}, optax={}),
    Case("scale", "scale", {"step_size": -0.3}, optax={"step_size": -0.3}),
    Case("scale_scheduled", "scale", {"step_size": WARMUP}),
    Case(
        "scale_by_schedule",
        "scale_by_schedule",
        {"step_size_fn": WARMUP},
        optax={"step_size_fn": _optax_warmup},
    ),
    Case(
        "scale_by_learning_rate",
        "scale_by_learning_rate",
        {"learning_rate": 0.3},
        optax={"learning_rate": 0.3},
    ),
    Case("trace", "trace", {"decay": 0.9}, optax={"decay": 0.9}),
    Case(
        "trace_nesterov",
        "trace",
        {"decay": 0.9, "nesterov": True},
        optax={"decay": 0.9, "nesterov": True},
    ),
    Case("trace_scheduled", "trace", {"decay": Sched("linear_schedule", (0.5, 0.95, 50))}),
    Case("ema", "ema", {"decay": 0.9}, optax={"decay": 0.9}),
    Case(
        "ema_biased", "ema", {"decay": 0.8, "debias": False}, optax={"decay": 0.8, "debias": False}
    ),
    Case("ema_scheduled", "ema", {"decay": Sched("linear_schedule", (0.5, 0.9, 50))}),
    Case("bias_correction", "bias_correction", {"decay": 0.9}),
    Case("scale_by_rms", "scale_by_rms", {}, optax={}),
    Case(
        "scale_by_rms_torch",
        "scale_by_rms",
        {"decay": 0.99, "eps_in_sqrt": False, "initial_scale": 0.5, "bias_correction": True},
        optax={"decay": 0.99, "eps_in_sqrt": False, "initial_scale": 0.5, "bias_correction": True},
    ),
    Case("scale_by_stddev", "scale_by_stddev", {}, optax={}),
    # Debiased, the variance estimate is exactly 0 at step 1; a larger eps keeps it well posed.
    Case(
        "scale_by_stddev_outside",
        "scale_by_stddev",
        {"eps_in_sqrt": False},
        optax={"eps_in_sqrt": False},
    ),
    Case(
        "scale_by_stddev_debiased",
        "scale_by_stddev",
        {"eps": 0.1, "bias_correction": True},
        optax={"eps": 0.1, "bias_correction": True},
    ),
    Case("scale_by_rss", "scale_by_rss", {}, optax={}),
    Case(
        "scale_by_rss_torch",
        "scale_by_rss",
        {"initial_accumulator_value": 0.0, "eps": 1e-10, "eps_in_sqrt": False},
    ),
    Case("scale_by_adadelta", "scale_by_adadelta", {}, optax={}),
    Case("scale_by_adam", "scale_by_adam", {}, optax={}),
    Case(
        "add_decayed_weights",
        "add_decayed_weights",
        {"weight_decay": 0.1},
        optax={"weight_decay": 0.1},
    ),
    # Applied raw (no learning rate) the trust ratio doubles the params' norm every step;
    # a small coefficient keeps the 100-step trajectory bounded.
    Case(
        "scale_by_trust_ratio",
        "scale_by_trust_ratio",
        {"trust_coefficient": 0.01},
        optax={"trust_coefficient": 0.01},
    ),
    Case(
        "scale_by_trust_ratio_floor",
        "scale_by_trust_ratio",
        {"min_norm": 0.5, "trust_coefficient": 0.01, "eps": 1e-3},
        optax={"min_norm": 0.5, "trust_coefficient": 0.01, "eps": 1e-3},
    ),
    Case("clip", "clip", {"max_delta": 0.5}, optax={"max_delta": 0.5}),
    Case("clip_by_norm", "clip_by_norm", {"max_norm": 1.0}),
    Case("clip_by_global_norm", "clip_by_global_norm", {"max_norm": 2.0}, optax={"max_norm": 2.0}),
]

OPTIMIZERS += registry.rows("OPTIMIZERS")
ELEMENTARY += registry.rows("ELEMENTARY")
ALL_CASES = OPTIMIZERS + ELEMENTARY


def sample_tree(rng: np.random.Generator, dtype: Any) -> Any:
    """Nested dicts, lists and tuples; a scalar, empty subtrees, a None and a zero-size leaf."""

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "dense": {"w": arr(4, 3), "b": arr(3)},
        "layers": [arr(2, 2), {"scale": arr()}],
        "pair": (arr(5), None),
        "empty": {},
        "nothing": (),
        "zero_size": arr(0, 3),
    }


def random_tree(seed: int, dtype: Any) -> Any:
    """A random nesting of dicts, lists and tuples with leaves of random shapes (some None)."""
    rng = np.random.default_rng(seed)

    def build(depth):
        kind = rng.integers(0, 4) if depth < 3 else 3
        if kind == 3:
            if rng.random() < 0.1:
                return None
            shape = tuple(int(n) for n in rng.integers(0, 4, size=rng.integers(0, 3)))
            return jnp.asarray(rng.normal(size=shape), dtype)
        children = [build(depth + 1) for _ in range(rng.integers(0, 4))]
        if kind == 0:
            return {f"k{i}": c for i, c in enumerate(children)}
        return children if kind == 1 else tuple(children)

    return {"root": build(0), "anchor": jnp.asarray(rng.normal(size=(3,)), dtype)}


def gradient_sequence(params: Any, steps: int, seed: int) -> list[Any]:
    """Random gradients shaped like ``params``, one tree per step."""
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(steps)
    ]


def types(tree) -> Any:
    """Each leaf's shape, dtype and weak type: what lax.scan and lax.cond require a step to keep."""
    return jax.tree.map(jax.typeof, tree)


def run_gradtx(tx, params, grads, *, jit: bool):
    """Params after every step and the updates of every step, as lists of leaf lists.

    Jitted, the first step must return params and state of the types it was given, as a step
    run by lax.scan or lax.cond must (the same types in, the same program and types out after).
    """
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    trajectory, all_updates = [], []
    for g in grads:
        before = types((params, state)) if jit and not trajectory else None
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        if before is not None:
            assert types((params, state)) == before, "a step changed the types of its carry"
        trajectory.append([np.asarray(x, np.float64) for x in jax.tree.leaves(params)])
        all_updates.append([np.asarray(x, np.float64) for x in jax.tree.leaves(updates)])
    return trajectory, all_updates


def run_optax(tx, params, grads, *, jit: bool):
    import optax

    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    trajectory, all_updates = [], []
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append([np.asarray(x, np.float64) for x in jax.tree.leaves(params)])
        all_updates.append([np.asarray(x, np.float64) for x in jax.tree.leaves(updates)])
    return trajectory, all_updates


def run_reference(reference, params, grads):
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    state = reference.init(leaves)
    trajectory, all_updates = [], []
    for g in grads:
        g_leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(g)]
        updates, state = reference.update(g_leaves, state, leaves)
        leaves = [p + u for p, u in zip(leaves, updates)]
        trajectory.append(leaves)
        all_updates.append(updates)
    return trajectory, all_updates


def max_relative_deviation(runs_a, runs_b) -> float:
    """The largest ``max|a - b|`` of a leaf over all steps, relative to that leaf's magnitude
    over the whole run (``max|b|`` over all steps; absolute where that is 0)."""
    worst = 0.0
    for leaf in range(len(runs_b[0]) if runs_b else 0):
        a = np.stack([steps[leaf] for steps in runs_a])
        b = np.stack([steps[leaf] for steps in runs_b])
        if b.size == 0:
            continue
        scale = np.max(np.abs(b))
        diff = np.max(np.abs(a - b))
        worst = max(worst, diff / scale if scale > 0 else diff)
    return float(worst)


def deviation(run_a, run_b) -> float:
    """Deviation of params trajectories and of updates together."""
    return max(
        max_relative_deviation(run_a[0], run_b[0]), max_relative_deviation(run_a[1], run_b[1])
    )
