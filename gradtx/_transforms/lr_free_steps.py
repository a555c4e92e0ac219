"""Step sizes without a learning rate to tune: DoG and DoWG (distance over gradients), MoMo
(a Polyak step on a momentum model of the loss, with or without Adam's preconditioner).

Each step size is one scalar for the whole tree: its sums (a distance, a norm, an inner
product) are taken once per update over all leaves, in at least float32 (the params' dtype if
wider), and the scalars the state keeps are of that dtype. Under ``jit`` with sharded params
the sums are global (XLA adds the collectives); inside ``shard_map`` or ``pmap`` they are
summed over ``axes`` (the factories' ``axis_name``), once per sum; under ``vmap``
(:func:`gradtx.sweep`) each copy has its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import CLOSED_UNIT, MissingArgumentError
from gradtx._core.hyper import Value, one_minus, one_minus_power, per_dtype, value_as
from gradtx._core.norms import sqrt

INIT_STEPS = ("distance", "learning_rate", "heuristic")
WEIGHT_DECAY_MODES = ("proximal", "optax", "decoupled")
_POSITIVE = ("> 0", lambda v: v > 0)


def scalar_dtype(tree: Any) -> Any:
    """The dtype of the tree-wide scalars: at least float32, the leaves' (real) dtype if wider."""
    leaves = jax.tree.leaves(tree)
    return _tree.wider(jnp.float32, *(_tree.real_dtype(jnp.result_type(x)) for x in leaves))


def total(parts: Sequence[jax.Array], leaves: Sequence[Any], axes, dtype: Any) -> jax.Array:
    """``sum(parts)`` in ``dtype`` over every shard (``parts[i]`` reduces ``leaves[i]``): the
    one reduction of the per-leaf partial sums of an update."""
    if not parts:
        return jnp.zeros([], dtype)
    return _tree.shard_sum(parts, leaves, axes).astype(dtype)


def _squares(tree: Any, axes, dtype: Any) -> jax.Array:
    """``||tree||**2`` over all leaves."""
    leaves = jax.tree.leaves(tree)
    return total([_tree.sum_of_squares(x) for x in leaves], leaves, axes, dtype)


def _need_params(owner: str, params: Any, why: str) -> None:
    if params is None:
        raise MissingArgumentError(f"{owner}: update needs params ({why})")


def _check_trees(owner: str, updates: Any, init_params: Any, params: Any) -> None:
    """The gradients and the params must be shaped as the params the state was made for."""
    _tree.check_match(owner, (init_params, updates, params), ("state", "updates", "params"))


def _distances_sq(params: Any, init_params: Any, axes, dtype: Any, *, init_norm: bool):
    """``||x_t - x_0||**2`` over all leaves, and ``||x_0||**2`` from the same pass over each
    leaf if ``init_norm`` (else None)."""

    def leaf(p, p0):
        wide = _tree.accumulation_dtype(_tree.wider(p.dtype, p0.dtype))
        p, p0 = _tree.cast(p, wide), _tree.cast(p0, wide)
        return _tree.sum_of_squares(p - p0), _tree.sum_of_squares(p0)

    leaves = jax.tree.leaves(params)
    parts = jax.tree.leaves(jax.tree.map(leaf, params, init_params))
    dist_sq = total(parts[0::2], leaves, axes, dtype)
    return dist_sq, total(parts[1::2], leaves, axes, dtype) if init_norm else None


def _scaled(updates: Any, step: jax.Array) -> Any:
    """``step * g`` leaf by leaf, formed in the wider dtype, kept in each gradient's."""

    def leaf(g):
        wide = _tree.wider(g.dtype, step.dtype)
        r = _tree.cast(step, _tree.real_dtype(wide))
        return _tree.cast(_tree.times(_tree.cast(g, wide), r), g.dtype)

    return jax.tree.map(leaf, updates)


def _copy(params: Any) -> Any:
    """x_0 in buffers of its own: a training step may donate the params' buffers."""
    return jax.tree.map(jnp.array, params)


# ---- DoG ----------------------------------------------------------------------------------


class DoGState(NamedTuple):
    init_params: Any  # like the params: x_0, the point distances are measured from
    max_dist: jax.Array  # [] scalar dtype (see scalar_dtype): max_{i<=t} ||x_i - x_0||, 0 at first
    sum_sq_norm_grads: jax.Array  # [] scalar dtype: sum_{i<=t} ||g_i||**2
    count: jax.Array  # int32 []: updates so far, saturating

    # the value of init_step: a distance, a first step or a relative distance, all > 0
    live_ranges = {"init_step": _POSITIVE}


def _scale_by_dog(init_step: Value, eps: Value, *, kind: str, axes, owner: str):
    """``g * rbar_t / sqrt(G_t + eps)``; ``rbar_t = max(r_eps, max_i ||x_i - x_0||)``, with
    r_eps from ``init_step`` (``kind`` says how), or ``init_step`` itself as the first step."""

    def init(params):
        # ||x_0|| is summed in each update, with the distance (x_0 is read for it anyway): so
        # init needs no reduction across devices, and init_step's value stays live
        zero = jnp.zeros([], scalar_dtype(params))
        return DoGState(_copy(params), zero, zero, _tree.zero_count())

    def update(updates, state, params=None, **extra):
        _need_params(owner, params, "distances are measured from the first params")
        _check_trees(owner, updates, state.init_params, params)
        dtype = state.max_dist.dtype
        dist_sq, init_sq = _distances_sq(
            params, state.init_params, axes, dtype, init_norm=kind == "heuristic"
        )
        max_dist = jnp.maximum(state.max_dist, sqrt(dist_sq))
        sum_sq = state.sum_sq_norm_grads + _squares(updates, axes, dtype)
        value = value_as(init_step, dtype)
        if kind == "distance":
            rbar = jnp.maximum(max_dist, value)
        elif kind == "heuristic":
            rbar = jnp.maximum(max_dist, value * (1 + sqrt(init_sq)))
        else:
            rbar = max_dist
        step = rbar / sqrt(sum_sq + value_as(eps, dtype))
        if kind == "learning_rate":
            step = jnp.where(state.count == 0, value, step)
        count = _tree.saturating_increment(state.count)
        new_state = DoGState(state.init_params, max_dist, sum_sq, count)
        return _scaled(updates, step), new_state

    return GradientTransformation(init, update)


# ---- DoWG ---------------------------------------------------------------------------------


class DoWGState(NamedTuple):
    init_params: Any  # like the params: x_0
    estim_sq_dist: jax.Array  # [] scalar dtype: max_{i<=t} ||x_i - x_0||**2 (0 at first)
    weighted_sq_norm_grads: jax.Array  # [] scalar dtype: sum_{i<=t} rbar_i**2 ||g_i||**2

    live_ranges = {"init_estim_sq_dist": _POSITIVE}


def _scale_by_dowg(init_estim_sq_dist: Value | None, eps: Value, *, axes, owner: str):
    """``g * rbar_t**2 / (sqrt(v_t) + eps)``, ``v_t = v_{t-1} + rbar_t**2 ||g_t||**2``,
    ``rbar_t**2 = max(r_eps**2, max_i ||x_i - x_0||**2)`` (r_eps**2 is eps when not given)."""

    def init(params):
        zero = jnp.zeros([], scalar_dtype(params))
        return DoWGState(_copy(params), zero, zero)

    def update(updates, state, params=None, **extra):
        _need_params(owner, params, "distances are measured from the first params")
        _check_trees(owner, updates, state.init_params, params)
        dtype = state.estim_sq_dist.dtype
        e = value_as(eps, dtype)
        floor = e if init_estim_sq_dist is None else value_as(init_estim_sq_dist, dtype)
        dist_sq, _ = _distances_sq(params, state.init_params, axes, dtype, init_norm=False)
        max_sq = jnp.maximum(state.estim_sq_dist, dist_sq)
        rbar_sq = jnp.maximum(max_sq, floor)
        weighted = state.weighted_sq_norm_grads + rbar_sq * _squares(updates, axes, dtype)
        step = rbar_sq / (sqrt(weighted) + e)
        return _scaled(updates, step), DoWGState(state.init_params, max_sq, weighted)

    return GradientTransformation(init, update)


# ---- MoMo ---------------------------------------------------------------------------------


class MomoState(NamedTuple):
    exp_avg: Any  # like the params, in mu_dtype if given: d_t, the average of the gradients
    barf: jax.Array  # [] scalar dtype: the average of the losses
    gamma: jax.Array  # [] scalar dtype: the average of <g_i, x_i>
    lb: jax.Array  # [] scalar dtype: the loss's lower bound in use (estimated if adapted)
    count: jax.Array  # int32 []: updates so far, saturating

    live_ranges = {"beta": CLOSED_UNIT}


class MomoAdamState(NamedTuple):
    exp_avg: Any  # like the params, in mu_dtype if given: m_t
    exp_avg_sq: Any  # like the params' real parts: v_t, the average of |g|**2
    barf: jax.Array  # [] scalar dtype: the average of the losses (from 0, debiased by b1)
    gamma: jax.Array  # [] scalar dtype: the average of <g_i, x_i> (from 0)
    lb: jax.Array  # [] scalar dtype: the loss's lower bound in use
    count: jax.Array  # int32 []: updates so far, saturating


def check_value(owner: str, value: Any) -> None:
    if value is None:
        raise MissingArgumentError(
            f"{owner}: update needs the loss at the current params: "
            f"update(grads, state, params, value=loss)"
        )
    if jnp.ndim(value) != 0:
        raise ValueError(f"{owner}: value must be a scalar loss, got shape {jnp.shape(value)}")


def _dots(owner: str, updates: Any, params: Any, moment: Any, direction: Any, axes, dtype: Any):
    """``(<g, x>, <m, x>, <m, direction>)`` over all leaves, each summed once."""

    def leaf(g, p, m, u):
        wide = _tree.accumulation_dtype(_tree.wider(g.dtype, p.dtype, m.dtype, u.dtype))
        g, p, m, u = (_tree.cast(x, wide) for x in (g, p, m, u))
        return tuple(
            jnp.sum(a.real * b.real + a.imag * b.imag) if jnp.iscomplexobj(a) else jnp.sum(a * b)
            for a, b in ((g, p), (m, p), (m, u))
        )

    parts = _tree.map(
        leaf,
        updates,
        params,
        moment,
        direction,
        owner=owner,
        names=("updates", "params", "state", "state"),
    )
    parts, leaves = jax.tree.leaves(parts), jax.tree.leaves(updates)
    return tuple(total(parts[i::3], leaves, axes, dtype) for i in range(3))


def _polyak_step(
    *,
    barf: jax.Array,
    gamma: jax.Array,
    m_dot_x: jax.Array,
    m_norm_sq: jax.Array,
    lb: jax.Array,
    lower_bound: jax.Array,
    alpha: jax.Array,
    decay: jax.Array,
    debias: jax.Array,
    adapt: bool,
) -> tuple[jax.Array, jax.Array]:
    """MoMo's step size tau and the next lower bound (Schaipp et al., 2023).

    ``debias`` is rho_t = 1 - b1**t for MoMo-Adam (its averages start at 0), 1 for MoMo. With
    ``adapt``, the bound is first lowered when the model's minimum falls below it, then
    re-estimated from the model after the step; never below ``lower_bound``.
    """
    grow = 1 + alpha * decay
    if adapt:
        cap = grow * (barf - gamma) + m_dot_x
        lowered = jnp.maximum(cap / (2 * debias * grow), lower_bound)
        lb = jnp.where(cap < grow * debias * lb, lowered, lb)
    gap = jnp.maximum(grow * (barf - debias * lb - gamma) + m_dot_x, jnp.zeros_like(lb))
    safe = jnp.where(m_norm_sq > 0, m_norm_sq, jnp.ones_like(m_norm_sq))
    t1 = jnp.where(m_norm_sq > 0, gap / safe, jnp.zeros_like(gap))
    tau = jnp.minimum(alpha / debias, t1)
    if adapt:
        estimate = (barf + m_dot_x - gamma - tau * m_norm_sq / 2) / debias
        lb = jnp.maximum(estimate, lower_bound)
    return tau, lb


def _step_of(mode: str, tau: jax.Array, alpha: jax.Array, decay: jax.Array) -> Callable:
    """``(direction, x) -> update``: x_{t+1} - x_t for the weight-decay ``mode``."""
    ad = alpha * decay
    grow = 1 + ad

    def proximal(u, p):  # x_{t+1} = (x_t - tau u) / (1 + alpha lambda)
        return -(tau * u + ad * p) / grow

    def optax_form(u, p):  # x_{t+1} = x_t / (1 + alpha lambda) - tau u
        return -(ad / grow) * p - tau * u

    def decoupled(u, p):  # x_{t+1} = (1 - alpha lambda) x_t - tau u
        return -ad * p - tau * u

    return {"proximal": proximal, "optax": optax_form, "decoupled": decoupled}[mode]


def _apply(owner, updates, params, direction, tau, alpha, decay, mode):
    """The update of every leaf, formed in the widest dtype involved, kept in the gradient's."""
    steps = per_dtype(
        lambda real: _step_of(mode, *(_tree.cast(s, real) for s in (tau, alpha, decay)))
    )

    def leaf(g, p, u):
        wide = _tree.wider(g.dtype, p.dtype, u.dtype, tau.dtype)
        step = steps(_tree.real_dtype(wide))
        p, u = _tree.cast(p, wide), _tree.cast(u, wide)
        if jnp.iscomplexobj(p):  # the real rule on (re, im) pairs: the scalars are real
            out = jax.lax.complex(step(u.real, p.real), step(u.imag, p.imag))
        else:
            out = step(u, p)
        return _tree.cast(out, g.dtype)

    return _tree.map(leaf, updates, params, direction, owner=owner, names=("updates", "params"))


def _momo(
    learning_rate: Value,
    beta: Value,
    lower_bound: Value,
    weight_decay: Value,
    *,
    adapt_lower_bound: bool,
    weight_decay_mode: str,
    mu_dtype: Any,
    axes: Any,
    owner: str,
):
    """MoMo (Schaipp et al., 2023): heavy-ball averages started at the first
    gradient, loss and <g, x>; the step ``min(alpha, (model's gap)_+ / ||d||**2)`` along d."""

    def init(params):
        dtype = scalar_dtype(params)
        zero = jnp.zeros([], dtype)
        return MomoState(
            _tree.zeros_like(params, mu_dtype),
            zero,
            zero,
            value_as(lower_bound, dtype),
            _tree.zero_count(),
        )

    def update(updates, state, params=None, *, value=None, **extra):
        _need_params(owner, params, "the model of the loss is linear in them")
        check_value(owner, value)
        dtype = state.barf.dtype
        first = state.count == 0
        keep = jnp.where(first, jnp.zeros([], dtype), value_as(beta, dtype))
        fresh = jnp.where(first, jnp.ones([], dtype), one_minus(beta, dtype))

        def average(g, d):
            wide = _tree.wider(g.dtype, d.dtype, dtype)
            r = _tree.real_dtype(wide)
            new = _tree.times(_tree.cast(g, wide), fresh.astype(r)) + _tree.times(
                _tree.cast(d, wide), keep.astype(r)
            )
            return _tree.cast(new, d.dtype)

        exp_avg = _tree.map(average, updates, state.exp_avg, owner=owner)
        g_dot_x, d_dot_x, d_norm_sq = _dots(owner, updates, params, exp_avg, exp_avg, axes, dtype)
        barf = keep * state.barf + fresh * jnp.asarray(value).astype(dtype)
        gamma = keep * state.gamma + fresh * g_dot_x
        alpha, decay = value_as(learning_rate, dtype), value_as(weight_decay, dtype)
        bound = value_as(lower_bound, dtype)
        tau, lb = _polyak_step(
            barf=barf,
            gamma=gamma,
            m_dot_x=d_dot_x,
            m_norm_sq=d_norm_sq,
            lb=state.lb if adapt_lower_bound else bound,
            lower_bound=bound,
            alpha=alpha,
            decay=decay,
            debias=jnp.ones([], dtype),
            adapt=adapt_lower_bound,
        )
        out = _apply(owner, updates, params, exp_avg, tau, alpha, decay, weight_decay_mode)
        count = _tree.saturating_increment(state.count)
        return out, MomoState(exp_avg, barf, gamma, lb, count)

    return GradientTransformation(init, update)


def _momo_adam(
    learning_rate: Value,
    b1: Value,
    b2: Value,
    eps: Value,
    lower_bound: Value,
    weight_decay: Value,
    *,
    adapt_lower_bound: bool,
    weight_decay_mode: str,
    mu_dtype: Any,
    axes: Any,
    owner: str,
):
    """MoMo-Adam (Schaipp et al., 2023): Adam's averages from 0, the model's
    step in the norm of D_t = eps + sqrt(v_t / (1 - b2**t)), debiased by 1 - b1**t."""

    def init(params):
        dtype = scalar_dtype(params)
        zero = jnp.zeros([], dtype)
        return MomoAdamState(
            _tree.zeros_like(params, mu_dtype),
            _tree.zeros_like(_tree.real_like(params)),
            zero,
            zero,
            value_as(lower_bound, dtype),
            _tree.zero_count(),
        )

    def update(updates, state, params=None, *, value=None, **extra):
        _need_params(owner, params, "the model of the loss is linear in them")
        check_value(owner, value)
        dtype = state.barf.dtype
        count = _tree.saturating_increment(state.count)
        keep1, fresh1 = value_as(b1, dtype), one_minus(b1, dtype)
        weights2 = per_dtype(lambda d: (value_as(b2, d), one_minus(b2, d)))
        debias2 = per_dtype(lambda d: 1 / _tree.cast(one_minus_power(b2, count), d))
        eps_as = per_dtype(lambda d: value_as(eps, d))

        def moments(g, m, v):
            wide = _tree.wider(g.dtype, m.dtype, v.dtype, dtype)
            r = _tree.real_dtype(wide)
            g = _tree.cast(g, wide)
            m_new = _tree.times(g, fresh1.astype(r)) + _tree.times(
                _tree.cast(m, wide), keep1.astype(r)
            )
            keep2, fresh2 = weights2(r)
            v_new = keep2 * _tree.cast(v, r) + fresh2 * _tree.abs_sq(g)
            m_new, v_new = _tree.cast(m_new, m.dtype), _tree.cast(v_new, v.dtype)
            scale = eps_as(r) + jnp.sqrt(_tree.cast(v_new, r) * debias2(r))
            return m_new, v_new, _tree.divide(_tree.cast(m_new, wide), scale)

        triples = _tree.map(
            moments,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            owner=owner,
            names=("updates", "state", "state"),
        )
        exp_avg = jax.tree.map(lambda _, t: t[0], updates, triples)
        exp_avg_sq = jax.tree.map(lambda _, t: t[1], updates, triples)
        direction = jax.tree.map(lambda _, t: t[2], updates, triples)
        g_dot_x, m_dot_x, m_norm_sq = _dots(owner, updates, params, exp_avg, direction, axes, dtype)
        barf = keep1 * state.barf + fresh1 * jnp.asarray(value).astype(dtype)
        gamma = keep1 * state.gamma + fresh1 * g_dot_x
        alpha, decay = value_as(learning_rate, dtype), value_as(weight_decay, dtype)
        bound = value_as(lower_bound, dtype)
        tau, lb = _polyak_step(
            barf=barf,
            gamma=gamma,
            m_dot_x=m_dot_x,
            m_norm_sq=m_norm_sq,
            lb=state.lb if adapt_lower_bound else bound,
            lower_bound=bound,
            alpha=alpha,
            decay=decay,
            debias=one_minus_power(b1, count).astype(dtype),
            adapt=adapt_lower_bound,
        )
        out = _apply(owner, updates, params, direction, tau, alpha, decay, weight_decay_mode)
        return out, MomoAdamState(exp_avg, exp_avg_sq, barf, gamma, lb, count)

    return GradientTransformation(init, update)
