"""Float64 NumPy references of the curvature optimizers: Sophia and Hutchinson's estimator.

Written from the paper (Liu, Li, Hall, Liang and Ma, *Sophia*, 2023, Algorithm 3, and section
2.3 for Hutchinson's estimator), in the conventions of ``numpy_reference``: lists of leaves,
updates added to the params, *t* = 1 at the first update, hyperparameters numbers or callables
of the count. In the order of optax 0.2.8 (and levanter): the momentum is debiased, and an
estimate taken at step *t* (when ``(t - 1) % k == 0``) enters the denominator from step *t + 1*.

The objective reaches the reference as its Hessian-vector product, ``hvp(params, v) -> H v``
(lists of leaves), written out by hand by the caller. One exception to "pure NumPy": the random
signs of Hutchinson's estimator are drawn with ``jax.random`` from the same key, in the same way
as gradtx (split the key in two, then the second half once per leaf; ``rademacher`` draws), so
that the trajectories compare exactly; everything else is NumPy in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tests.reference.numpy_reference import (
    Ref,
    _value,
    add_decayed_weights,
    chain,
    scale_by_learning_rate,
)

Hvp = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


def _signs(key_data: np.ndarray, shapes: list[tuple[int, ...]]):
    """``(the next key's data, one ±1 float64 array per shape)``: jax.random's draws."""
    import jax
    import jax.numpy as jnp

    key = jax.random.wrap_key_data(jnp.asarray(key_data))
    next_key, draw = jax.random.split(key)
    keys = jax.random.split(draw, len(shapes)) if shapes else []
    signs = [
        np.asarray(jax.random.rademacher(k, s, jnp.float32), np.float64)
        for k, s in zip(keys, shapes)
    ]
    return np.asarray(jax.random.key_data(next_key)), signs


def _seed_data(random_seed) -> np.ndarray:
    import jax

    return np.asarray(
        jax.random.key_data(jax.random.key(0 if random_seed is None else random_seed))
    )


def hutchinson_estimator_diag_hessian(random_seed=None, *, hvp: Hvp) -> Ref:
    """out = u * (H u), u independent ±1 signs (Hutchinson, 1989; Sophia section 2.3)."""

    def update(gs, key_data, ps):
        del gs
        key_data, us = _signs(key_data, [p.shape for p in ps])
        hus = hvp(ps, us)
        return [u * hu for u, hu in zip(us, hus)], key_data

    return Ref(lambda params: _seed_data(random_seed), update)


def scale_by_sophia(
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn=None,
    mu_dtype=None,
    verbose=False,
    print_win_rate_every_n_steps=0,
    *,
    hvp: Hvp,
) -> Ref:
    """m = b1 m + (1-b1) g; out = clip((m / (1 - b1^t)) / max(gamma h, eps), ±clip_threshold)
    with the h of the step before; then, when (t - 1) % k == 0, h = b2 h + (1-b2) * estimate
    at the params (h0 = 0)."""
    del mu_dtype, verbose, print_win_rate_every_n_steps
    estimator = hessian_diagonal_fn or hutchinson_estimator_diag_hessian(hvp=hvp)

    def init(params):
        zeros = [np.zeros_like(p) for p in params]
        return 0, zeros, [z.copy() for z in zeros], estimator.init(params)

    def update(gs, state, ps):
        count, ms, hs, est = state
        c1, c2 = _value(b1, count), _value(b2, count)
        g_, e = _value(gamma, count), _value(eps, count)
        ms = [c1 * m + (1.0 - c1) * g for m, g in zip(ms, gs)]
        debias = 1.0 - c1 ** (count + 1)
        out = [(m / debias) / np.maximum(g_ * h, e) for m, h in zip(ms, hs)]
        if clip_threshold is not None:
            rho = _value(clip_threshold, count)
            out = [np.clip(u, -rho, rho) for u in out]
        if count % round(_value(update_interval, count)) == 0:
            estimate, est = estimator.update(gs, est, ps)
            hs = [c2 * h + (1.0 - c2) * d for h, d in zip(hs, estimate)]
        return out, (count + 1, ms, hs, est)

    return Ref(init, update)


def sophia(
    learning_rate,
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    weight_decay=1e-4,
    weight_decay_mask=None,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn=None,
    mu_dtype=None,
    verbose=False,
    print_win_rate_every_n_steps=0,
    *,
    hvp: Hvp,
) -> Ref:
    """chain(scale_by_sophia, + weight_decay * p, -lr) (Algorithm 3's decoupled decay)."""
    if weight_decay_mask is not None:
        raise NotImplementedError("the reference decays every leaf")
    core = scale_by_sophia(
        b1, b2, eps, gamma, clip_threshold, update_interval, hessian_diagonal_fn, hvp=hvp
    )
    return chain(core, add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))


REFERENCES = {f.__name__: f for f in (hutchinson_estimator_diag_hessian, scale_by_sophia, sophia)}
