"""Shampoo's statistics and inverse roots, refreshed (see :mod:`gradtx._transforms.kronecker`).

Each leaf's blocks fall into classes of equal block shape, one batch ``(N, b_0, ...)`` per
class; a refresh adds every axis's Gram matrix of the blocks to its decayed statistic, and the
inverse roots of every statistic of one size, exponent and dtype are computed in one batch. A
root that fails (not finite, or for Newton's iteration an error above the threshold) keeps its
previous value. Both refreshes run every ``statistics_compute_steps`` and
``preconditioning_compute_steps`` steps, under a ``lax.cond`` otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gradtx._core import tree as _tree
from gradtx._core.hyper import Value, one_minus, value_as
from gradtx._linalg.blocks import Layout, _blocks, _gram
from gradtx._linalg.roots import matrix_inverse_pth_root


def wide_dtype(dtype: Any) -> Any:
    """Statistics, roots and the step are formed in at least float32 (complex64)."""
    return _tree.accumulation_dtype(dtype)


def statistic_dtype(dtype: Any) -> Any:
    return wide_dtype(dtype)


def diagonal_dtype(dtype: Any) -> Any:
    return _tree.real_dtype(wide_dtype(dtype))


@dataclasses.dataclass(frozen=True)
class Config:
    """What a step's program depends on besides its arrays (hashable: the static argument of
    the jitted step, so that one compilation serves every step and every eager call)."""

    layouts: tuple[Layout, ...]
    start_preconditioning_step: int
    preconditioning_compute_steps: int
    statistics_compute_steps: int
    graft_type: str
    nesterov: bool
    moving_average_for_momentum: bool
    precision: Any
    tensordot_precision: Any
    relative_matrix_epsilon: bool
    root_method: str
    decay: bool  # weight_decay given
    clip: bool  # clip_by_scaled_gradient_norm given


class Hyper(NamedTuple):
    beta1: Value
    beta2: Value
    diagonal_epsilon: Value
    matrix_epsilon: Value
    weight_decay: Value | None
    inverse_failure_threshold: Value
    clip_by_scaled_gradient_norm: Value | None


def decay_weights(hp: Hyper, real: Any) -> tuple[jax.Array, jax.Array]:
    """``(beta2, 1 - beta2)``, the second 1 where beta2 = 1 (a sum)."""
    w1 = value_as(hp.beta2, real)
    return w1, jnp.where(w1 == 1, jnp.ones([], real), one_minus(hp.beta2, real))


def updated_statistics(cfg, hp, leaves, stats, count):
    def compute(stats):
        out = []
        for g, lay, s in zip(leaves, cfg.layouts, stats):
            if not lay.classes:
                out.append(s)
                continue
            dtype = statistic_dtype(g.dtype)
            w1, w2 = decay_weights(hp, _tree.real_dtype(dtype))
            x = _tree.cast(g, dtype).reshape(lay.merged)
            new = []
            for cls, per_axis in zip(lay.classes, s):
                blocks = _blocks(x, cls)
                new.append(
                    tuple(
                        _tree.times(old, w1)
                        + _tree.times(_gram(blocks, axis, cfg.tensordot_precision), w2)
                        for axis, old in enumerate(per_axis)
                    )
                )
            out.append(tuple(new))
        return out

    if cfg.statistics_compute_steps == 1:
        return compute(stats)
    due = count % cfg.statistics_compute_steps == 0
    return lax.cond(due, compute, lambda s: list(s), stats)


def updated_roots(cfg, hp, stats, roots, count):
    # every statistic of one size, exponent and dtype in one batched inverse root
    groups: dict[Any, list[tuple[int, int, int]]] = {}
    for i, (lay, s) in enumerate(zip(cfg.layouts, stats)):
        for c, per_axis in enumerate(s):
            for a, m in enumerate(per_axis):
                groups.setdefault((m.shape[-1], lay.exponent, m.dtype), []).append((i, c, a))
    if not groups:
        return list(roots)

    def compute(roots):
        new = [[list(per_axis) for per_axis in r] for r in roots]
        for (size, p, dtype), members in groups.items():
            batch = jnp.concatenate([stats[i][c][a] for i, c, a in members])
            old = jnp.concatenate([roots[i][c][a] for i, c, a in members])
            real = _tree.real_dtype(dtype)
            eps = value_as(hp.matrix_epsilon, real)
            if cfg.relative_matrix_epsilon:
                ridge = eps
            else:  # an absolute ridge: added here, none relative
                batch = batch + _tree.times(jnp.eye(size, dtype=dtype), eps)
                ridge = jnp.zeros([], real)
            root, error = matrix_inverse_pth_root(
                batch, p, ridge_epsilon=ridge, precision=cfg.precision, method=cfg.root_method
            )
            failed = ~jnp.all(jnp.isfinite(root), axis=(-2, -1))
            if cfg.root_method == "newton":
                threshold = value_as(hp.inverse_failure_threshold, error.dtype)
                failed = failed | ~(error < threshold)
            root = jnp.where(failed[:, None, None], old, root)
            start = 0
            for i, c, a in members:
                n = stats[i][c][a].shape[0]
                new[i][c][a] = root[start : start + n]
                start += n
        return [tuple(tuple(per_axis) for per_axis in r) for r in new]

    if cfg.preconditioning_compute_steps == 1:
        return compute(roots)
    due = count % cfg.preconditioning_compute_steps == 0
    return lax.cond(due, compute, lambda r: list(r), roots)
