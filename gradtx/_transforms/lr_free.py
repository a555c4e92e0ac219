"""The learning-rate-free steps: Prodigy's and D-Adaptation's estimate of the distance to the
solution, and COCOB's coin betting.

Prodigy and D-Adapt Adam keep one scalar, the estimate d of the distance to the solution,
shared by the whole tree. Each step forms per leaf the few sums the estimate needs, reduces them
once over the tree, updates d, and then the step of every leaf uses the new scalar: one pass
over each leaf's memory for the sums, one for the step (under ``jit`` XLA fuses each). Under
``jit`` with sharded params the sums are over the whole arrays (XLA adds the shards'); inside
``shard_map`` or ``pmap`` the factories' ``axis_name`` adds them across the shards; under
``vmap`` (:func:`gradtx.sweep`) each copy keeps its own d.

A step that cannot estimate d (the learning rate is 0, or every gradient so far is 0, so the
sum in the estimate's denominator is 0) returns zeros and keeps d, its running sums and the
step count, as the authors' code does (their ``step`` returns early). As there, the moments
are updated whenever the learning rate is above 0: with every gradient so far 0 they stay 0.
The step's only reduction over the tree is then not needed to decide what the moments become,
so their update is one pass (keeping the previous moments on a predicate that needs the sums
made XLA write the new moments and read them back, 4x optax's step on a 20M leaf). optax's
step decays the sums at a learning rate of 0, and where the denominator is 0 its estimate is
0 / 0 = NaN.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import MissingArgumentError
from gradtx._core.hyper import (
    ScalarOrSchedule,
    Value,
    live,
    one_minus,
    one_minus_power,
    per_dtype,
    value_as,
)
from gradtx._transforms.second_moments import _computed_dtype

_UNIT = ("in [0, 1)", lambda v: (v >= 0) & (v < 1))
_POSITIVE = ("> 0", lambda v: v > 0)


def scalar_dtype(params: Any) -> Any:
    """The dtype of a shared scalar estimate: the widest real dtype of the params, at least
    float32 (float32 for a tree without leaves)."""
    dtypes = [_tree.real_dtype(jnp.result_type(x)) for x in jax.tree.leaves(params)]
    return _tree.accumulation_dtype(_tree.wider(jnp.float32, *dtypes))


def total(parts: list[jax.Array], leaves: list[jax.Array], axes: Any, dtype: Any) -> jax.Array:
    """The sum of per-leaf scalars ``parts`` (of ``leaves``), over the shards along ``axes``
    (inside ``shard_map``/``pmap``), in ``dtype``: the one reduction over the tree of a step."""
    if not parts:
        return jnp.zeros([], dtype)
    return _tree.shard_sum(parts, leaves, axes).astype(dtype)


def real_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``sum Re(conj(a) b)``: the inner product of the (real, imaginary) pairs."""
    if jnp.iscomplexobj(a) or jnp.iscomplexobj(b):
        return jnp.sum(a.real * b.real + a.imag * b.imag)
    return jnp.sum(a * b)


def need_params(owner: str, params: Any, why: str) -> None:
    if params is None:
        raise MissingArgumentError(f"{owner}: update needs params ({why})")


def _bias_correction(b1: Value, b2: Value, count: jax.Array, dtype: Any) -> jax.Array:
    """Adam's step-size correction ``sqrt(1 - b2**t) / (1 - b1**t)``, each power to a few ulps."""
    root = jnp.sqrt(one_minus_power(b2, count).astype(dtype))
    return root / one_minus_power(b1, count).astype(dtype)


def _one_minus_root(b2: Value, dtype: Any) -> jax.Array:
    """``1 - sqrt(b2)`` without cancellation: ``(1 - b2) / (1 + sqrt(b2))``."""
    return one_minus(b2, dtype) / (1 + jnp.sqrt(value_as(b2, dtype)))


def _grown(d, d_hat, growth_rate, dtype):
    """``min(d_hat, d * growth_rate)``, or ``d_hat`` without a bound on the growth."""
    if growth_rate is None:
        return d_hat
    return jnp.minimum(d_hat, d * value_as(growth_rate, dtype))


def _leaf_dtype(*xs: jax.Array) -> Any:
    return _computed_dtype(*(x.dtype for x in xs))


def _kept(progressed: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where the step progressed, else ``old`` (leaf by leaf, in ``old``'s dtypes)."""
    return jax.tree.map(lambda n, o: jnp.where(progressed, n.astype(o.dtype), o), new, old)


def _moved(moving: jax.Array, new: tuple, old: tuple) -> tuple:
    """The moments ``new`` where the learning rate is above 0 (``moving``), else ``old`` (in
    ``new``'s dtypes, the step's)."""
    return tuple(jnp.where(moving, n, o.astype(n.dtype)) for n, o in zip(new, old))


def _nonzero(total: jax.Array) -> jax.Array:
    """``total != 0`` for a sum ``total >= 0`` (or NaN) over every leaf, through its square
    root: every leaf's update reads this predicate, and XLA copies a chain of cheap scalar
    operations (the sum's additions, one per leaf) into each computation that reads it, which
    made the compile time grow with the square of the leaf count (prodigy on 264 leaves: 14 s,
    optax's 3 s); a square root is not copied, so the sum is computed once."""
    return jnp.sqrt(total) != 0


def _stored(new: Any, old: Any) -> Any:
    """The state ``new`` in the dtypes of ``old``."""
    return jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)


# ---- Prodigy ------------------------------------------------------------------------------


class ProdigyState(NamedTuple):
    """The state of :func:`gradtx.prodigy` (optax's fields, with ``estim_lr_max``)."""

    count: jax.Array  # int32 []: the steps taken k (a step that changes nothing not counted)
    exp_avg: Any  # like the params (in mu_dtype if given): m, the average of d g
    exp_avg_sq: Any  # like the params' real parts: v, the average of d² |g|²
    grad_sum: Any  # like the params: s, the β₃-discounted sum of (d / d₀) d γ g
    params0: Any  # like the params: x₀, the params at init
    estim_lr: jax.Array  # [] in the params' widest real dtype, >= float32: d
    estim_lr_max: jax.Array  # [] same dtype: the largest estimate so far (for growth_rate)
    numerator_weighted: jax.Array  # [] same dtype: r, the β₃-discounted (d / d₀) d γ <g, x₀ - x>

    live_ranges = {
        "beta3": _UNIT,
        "estim_lr0": _POSITIVE,
        "estim_lr_coef": _POSITIVE,
        "growth_rate": _POSITIVE,
    }


def _prodigy(
    learning_rate,
    b1,
    b2,
    beta3,
    eps,
    estim_lr0,
    estim_lr_coef,
    weight_decay,
    growth_rate,
    *,
    safeguard_warmup: bool,
    use_bias_correction: bool,
    mu_dtype: Any,
    axes: Any,
    owner: str,
) -> GradientTransformation:
    def init(params):
        dtype = scalar_dtype(params)
        d0 = value_as(estim_lr0, dtype)
        return ProdigyState(
            count=_tree.zero_count(),
            exp_avg=_tree.zeros_like(params, mu_dtype),
            exp_avg_sq=_tree.zeros_like(_tree.real_like(params)),
            grad_sum=_tree.zeros_like(params),
            params0=jax.tree.map(jnp.asarray, params),
            estim_lr=d0,
            estim_lr_max=d0,
            numerator_weighted=jnp.zeros([], dtype),
        )

    def update(updates, state, params=None, **extra):
        need_params(owner, params, "the estimate of d reads x₀ - x")
        _tree.check_match(
            owner,
            (updates, state.exp_avg, state.exp_avg_sq, state.grad_sum, state.params0, params),
            ("updates", "state", "state", "state", "state", "params"),
        )
        sd = state.estim_lr.dtype
        d, d0 = state.estim_lr, value_as(estim_lr0, sd)
        lr = value_as(learning_rate, sd)
        count = _tree.saturating_increment(state.count)
        bc = _bias_correction(b1, b2, count, sd) if use_bias_correction else 1
        dlr = d * lr * bc
        b3 = jnp.sqrt(value_as(b2, sd)) if beta3 is None else value_as(beta3, sd)
        weight = d / d0 * (d if safeguard_warmup else dlr)
        # the scalars of the moments, cast once per dtype
        coef = per_dtype(
            lambda t: (
                value_as(b1, t),
                one_minus(b1, t) * d.astype(t),
                value_as(b2, t),
                one_minus(b2, t) * (d * d).astype(t),
                b3.astype(t),
                weight.astype(t),
            )
        )

        leaves, treedef = jax.tree.flatten(updates)
        rest = [
            treedef.flatten_up_to(t)
            for t in (state.exp_avg, state.exp_avg_sq, state.grad_sum, state.params0, params)
        ]
        moments, dots, sums = [], [], []
        for g, m, v, s, x0, p in zip(leaves, *rest):
            t = _leaf_dtype(g, m, s, x0, p)
            rt = _tree.real_dtype(t)
            c_b1, c_g, c_b2, c_g2, c_b3, c_s = coef(rt)
            g, x0, p = _tree.cast(g, t), _tree.cast(x0, t), _tree.cast(p, t)
            dots.append(real_dot(g, x0 - p))
            new_m = _tree.times(_tree.cast(m, t), c_b1) + _tree.times(g, c_g)
            new_v = c_b2 * _tree.cast(v, rt) + c_g2 * _tree.abs_sq(g)
            new_s = _tree.times(_tree.cast(s, t), c_b3) + _tree.times(g, c_s)
            moments.append(_moved(lr > 0, (new_m, new_v, new_s), (m, v, s)))
            sums.append(jnp.sum(jnp.abs(moments[-1][2])))  # of the stored s: one buffer

        numerator = b3 * state.numerator_weighted + d / d0 * dlr * total(dots, leaves, axes, sd)
        denominator = total(sums, leaves, axes, sd)
        progressed = (lr > 0) & _nonzero(denominator)  # a NaN propagates
        d_hat = value_as(estim_lr_coef, sd) * numerator / jnp.where(progressed, denominator, 1)
        d_max = jnp.maximum(state.estim_lr_max, d_hat)
        # the authors' rule: the first estimate may jump past the growth bound
        first = jnp.where(d == d0, jnp.maximum(d, d_hat), d)
        new_d = (
            d_max if growth_rate is None else jnp.minimum(d_max, first * value_as(growth_rate, sd))
        )

        step = per_dtype(lambda t: (dlr.astype(t), new_d.astype(t), value_as(eps, t)))
        decay = per_dtype(lambda t: value_as(weight_decay, t))
        out = []
        for g, (m, v, _), p in zip(leaves, moments, rest[-1]):
            t = m.dtype
            rt = _tree.real_dtype(t)
            c_lr, c_d, c_eps = step(rt)
            direction = _tree.divide(m, jnp.sqrt(v) + c_d * c_eps)
            u = direction + _tree.times(_tree.cast(p, t), decay(rt))
            u = _tree.times(u, -c_lr)
            out.append(jnp.where(progressed, u, jnp.zeros_like(u)).astype(g.dtype))

        scalars = (count, new_d, d_max, numerator)
        old = (state.count, state.estim_lr, state.estim_lr_max, state.numerator_weighted)
        count, new_d, d_max, numerator = _kept(progressed, scalars, old)
        new = ProdigyState(
            count=count,
            exp_avg=treedef.unflatten([m for m, _, _ in moments]),
            exp_avg_sq=treedef.unflatten([v for _, v, _ in moments]),
            grad_sum=treedef.unflatten([s for _, _, s in moments]),
            params0=state.params0,
            estim_lr=new_d,
            estim_lr_max=d_max,
            numerator_weighted=numerator,
        )
        return treedef.unflatten(out), _stored(new, state)

    return GradientTransformation(init, update)


# ---- D-Adapt AdamW ------------------------------------------------------------------------


class DAdaptAdamWState(NamedTuple):
    """The state of :func:`gradtx.dadapt_adamw` (optax's fields)."""

    exp_avg: Any  # like the params (in mu_dtype if given): m, the average of d γ g
    exp_avg_sq: Any  # like the params' real parts: v, the average of |g|²
    grad_sum: Any  # like the params: s, the √β₂-average of d γ g
    estim_lr: jax.Array  # [] in the params' widest real dtype, >= float32: d
    numerator_weighted: jax.Array  # [] same dtype: the √β₂-average of d γ <g, s / (√v + ε)>
    count: jax.Array  # int32 []: the steps taken k (a step that changes nothing not counted)

    live_ranges = {"estim_lr0": _POSITIVE, "growth_rate": _POSITIVE}


def _dadapt_adamw(
    learning_rate,
    b1,
    b2,
    eps,
    estim_lr0,
    weight_decay,
    growth_rate,
    *,
    use_bias_correction: bool,
    mu_dtype: Any,
    axes: Any,
    owner: str,
) -> GradientTransformation:
    def init(params):
        dtype = scalar_dtype(params)
        return DAdaptAdamWState(
            exp_avg=_tree.zeros_like(params, mu_dtype),
            exp_avg_sq=_tree.zeros_like(_tree.real_like(params)),
            grad_sum=_tree.zeros_like(params),
            estim_lr=value_as(estim_lr0, dtype),
            numerator_weighted=jnp.zeros([], dtype),
            count=_tree.zero_count(),
        )

    def update(updates, state, params=None, **extra):
        need_params(owner, params, "the decoupled weight decay is d γ λ x")
        _tree.check_match(
            owner,
            (updates, state.exp_avg, state.exp_avg_sq, state.grad_sum, params),
            ("updates", "state", "state", "state", "params"),
        )
        sd = state.estim_lr.dtype
        d = state.estim_lr
        lr = value_as(learning_rate, sd)
        count = _tree.saturating_increment(state.count)
        bc = _bias_correction(b1, b2, count, sd) if use_bias_correction else 1
        dlr = d * lr * bc
        root_b2, c = jnp.sqrt(value_as(b2, sd)), _one_minus_root(b2, sd)
        coef = per_dtype(
            lambda t: (
                value_as(b1, t),
                one_minus(b1, t) * dlr.astype(t),
                value_as(b2, t),
                one_minus(b2, t),
                root_b2.astype(t),
                (c * dlr).astype(t),
                value_as(eps, t),
            )
        )

        leaves, treedef = jax.tree.flatten(updates)
        rest = [
            treedef.flatten_up_to(t)
            for t in (state.exp_avg, state.exp_avg_sq, state.grad_sum, params)
        ]
        moments, dots, sums = [], [], []
        for g, m, v, s, p in zip(leaves, *rest):
            t = _leaf_dtype(g, m, s, p)
            rt = _tree.real_dtype(t)
            c_b1, c_m, c_b2, c_v, c_root, c_s, c_eps = coef(rt)
            g, s, v = _tree.cast(g, t), _tree.cast(s, t), _tree.cast(v, rt)
            dots.append(real_dot(g, _tree.divide(s, jnp.sqrt(v) + c_eps)))
            new_m = _tree.times(_tree.cast(m, t), c_b1) + _tree.times(g, c_m)
            new_v = c_b2 * v + c_v * _tree.abs_sq(g)
            new_s = _tree.times(s, c_root) + _tree.times(g, c_s)
            moments.append(_moved(lr > 0, (new_m, new_v, new_s), (m, v, s)))
            sums.append(jnp.sum(jnp.abs(moments[-1][2])))  # of the stored s: one buffer

        numerator = root_b2 * state.numerator_weighted + c * dlr * total(dots, leaves, axes, sd)
        l1 = total(sums, leaves, axes, sd)
        progressed = (lr > 0) & _nonzero(l1)
        d_hat = numerator / (c * jnp.where(progressed, l1, 1))
        new_d = jnp.maximum(d, _grown(d, d_hat, growth_rate, sd))

        step = per_dtype(lambda t: (dlr.astype(t), value_as(eps, t), value_as(weight_decay, t)))
        out = []
        for g, (m, v, _), p in zip(leaves, moments, rest[-1]):
            t = m.dtype
            c_lr, c_eps, c_wd = step(_tree.real_dtype(t))
            u = _tree.divide(m, jnp.sqrt(v) + c_eps) + _tree.times(_tree.cast(p, t), c_wd * c_lr)
            out.append(jnp.where(progressed, -u, jnp.zeros_like(u)).astype(g.dtype))

        scalars = (count, new_d, numerator)
        count, new_d, numerator = _kept(
            progressed, scalars, (state.count, state.estim_lr, state.numerator_weighted)
        )
        new = DAdaptAdamWState(
            exp_avg=treedef.unflatten([m for m, _, _ in moments]),
            exp_avg_sq=treedef.unflatten([v for _, v, _ in moments]),
            grad_sum=treedef.unflatten([s for _, _, s in moments]),
            estim_lr=new_d,
            numerator_weighted=numerator,
            count=count,
        )
        return treedef.unflatten(out), _stored(new, state)

    return GradientTransformation(init, update)


# ---- COCOB --------------------------------------------------------------------------------


class COCOBState(NamedTuple):
    """The state of :func:`gradtx.scale_by_cocob` (optax's fields)."""

    init_particles: Any  # like the params: w₁, the params at init
    cumulative_gradients: Any  # like the params: θ, minus the sum of the gradients
    scale: Any  # like the params' real parts: L, the largest |g| so far (ε at init)
    subgradients: Any  # like the params' real parts: G, the sum of |g|
    reward: Any  # like the params' real parts: the reward, max(0, Reward - g (w - w₁))

    # ε is L's starting value: 0 would make a coordinate whose gradient is 0 a 0 / 0
    live_ranges = {"alpha": _POSITIVE, "eps": _POSITIVE}


def _scale_by_cocob(alpha, eps, *, owner: str = "scale_by_cocob") -> GradientTransformation:
    def init(params):
        real = _tree.real_like(params)
        return COCOBState(
            init_particles=jax.tree.map(jnp.asarray, params),
            cumulative_gradients=_tree.zeros_like(params),
            scale=jax.tree.map(
                lambda x: jnp.full_like(x, value_as(eps, _tree.real_dtype(x.dtype))), real
            ),
            subgradients=_tree.zeros_like(real),
            reward=_tree.zeros_like(real),
        )

    def update(updates, state, params=None, **extra):
        need_params(owner, params, "the bet reads w - w₁")
        fields = (
            state.init_particles,
            state.cumulative_gradients,
            state.scale,
            state.subgradients,
            state.reward,
        )
        _tree.check_match(
            owner, (updates, *fields, params), ("updates", *["state"] * len(fields), "params")
        )
        alpha_as = per_dtype(lambda t: value_as(alpha, t))

        def leaf(g, w1, theta, big_l, big_g, reward, w):
            t = _leaf_dtype(g, w1, theta, big_l, w)
            rt = _tree.real_dtype(t)
            g, w1, w = _tree.cast(g, t), _tree.cast(w1, t), _tree.cast(w, t)
            big_l = jnp.maximum(_tree.cast(big_l, rt), jnp.abs(g))
            big_g = _tree.cast(big_g, rt) + jnp.abs(g)
            moved = w - w1
            gain = g.real * moved.real + g.imag * moved.imag if jnp.iscomplexobj(g) else g * moved
            reward = jnp.maximum(_tree.cast(reward, rt) - gain, 0)
            theta = _tree.cast(theta, t) - g
            bet = (big_l + reward) / (big_l * jnp.maximum(big_g + big_l, alpha_as(rt) * big_l))
            return -moved + _tree.times(theta, bet), (theta, big_l, big_g, reward)

        leaves, treedef = jax.tree.flatten(updates)
        rest = [treedef.flatten_up_to(t) for t in (*fields, params)]
        out, theta, big_l, big_g, reward = [], [], [], [], []
        for g, w1, th, bl, bg, r, w in zip(leaves, *rest):
            u, (th2, bl2, bg2, r2) = leaf(g, w1, th, bl, bg, r, w)
            out.append(u.astype(g.dtype))
            theta.append(th2.astype(th.dtype))
            big_l.append(bl2.astype(bl.dtype))
            big_g.append(bg2.astype(bg.dtype))
            reward.append(r2.astype(r.dtype))
        new = COCOBState(
            init_particles=state.init_particles,
            cumulative_gradients=treedef.unflatten(theta),
            scale=treedef.unflatten(big_l),
            subgradients=treedef.unflatten(big_g),
            reward=treedef.unflatten(reward),
        )
        return treedef.unflatten(out), new

    return GradientTransformation(init, update)


def scale_by_cocob(
    alpha: ScalarOrSchedule = 100.0, eps: ScalarOrSchedule = 1e-8
) -> GradientTransformation:
    r"""COCOB-Backprop's step: each coordinate bets a fraction of its reward on the sum of the
    gradients so far.

    Per coordinate, with :math:`w_1` the params at init, :math:`L_0 = \epsilon`,
    :math:`G_0 = R_0 = \theta_0 = 0` and the update's input g (the gradient):

    .. math::
      L_t &= \max(L_{t-1}, |g_t|), \quad G_t = G_{t-1} + |g_t|, \quad
      R_t = \max(R_{t-1} - g_t (w_t - w_1), 0), \quad \theta_t = \theta_{t-1} - g_t, \\
      w_{t+1} &= w_1 + \frac{\theta_t\, (L_t + R_t)}{L_t \max(G_t + L_t, \alpha L_t)},

    returned as the update :math:`w_{t+1} - w_t`. The paper starts L at 0; ε (optax's) keeps a
    coordinate whose gradient has always been 0 from 0 / 0. Complex params: :math:`|g|` is
    the modulus and :math:`g (w - w_1)` the real inner product of the pairs; θ is complex.

    Args:
      alpha: α > 0: the bet is capped at :math:`1/\alpha` of the wealth while
        :math:`G_t < (\alpha - 1) L_t`, which keeps the first steps small. Default 100 (the
        paper's and optax's).
      eps: ε > 0, the initial L (read at init). Default 1e-8 (optax's).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_cocob()
      >>> params = {"w": jnp.array([0.5])}
      >>> g = {"w": jnp.array([4.0])}
      >>> updates, state = tx.update(g, tx.init(params), params)
      >>> updates["w"]  # -g (L + 0) / (L · max(2 L, 100 L)) with L = |g|
      Array([-0.01], dtype=float32)

    References:
      Orabona and Tommasi, *Training Deep Networks without Learning Rates Through Coin
      Betting*, NeurIPS 2017 (arXiv:1705.07795), Algorithm 2.
    """
    owner = "scale_by_cocob"
    build = functools.partial(_scale_by_cocob, owner=owner)
    return live(owner, build, ranges=COCOBState.live_ranges, alpha=alpha, eps=eps)
