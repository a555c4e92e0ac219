"""Float64 NumPy references of the sign-based, SGD-like and optimistic optimizers.

Written from the papers' formulas (cited per function), in the conventions of
``numpy_reference``: ``Ref(init, update)`` on lists of leaves, ``updates`` added to the params,
*t* = 1 at the first update, hyperparameters numbers or callables of the count. Complex leaves
are computed in complex128 where a method has a complex form (Polyak's step size from
``|g|**2``; the optimistic and averaged steps are linear); the sign methods have none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tests.reference.numpy_reference import (
    Ref,
    _abs_sq,
    _value,
    add_decayed_weights,
    chain,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
)


def _zeros(params):
    return [np.zeros_like(p) for p in params]


# ---- sign methods (real leaves only) ---------------------------------------------------------


def scale_by_sign() -> Ref:
    """out = sign(g) (Bernstein et al., 2018, algorithm 1)."""
    return Ref(lambda params: (), lambda gs, state, ps: ([np.sign(g) for g in gs], state))


def sign_sgd(learning_rate) -> Ref:
    """chain(sign, -lr)."""
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


def signum(learning_rate, beta=0.9, accumulator_dtype=None) -> Ref:
    """m = beta*m + (1-beta)*g (m0 = 0, not debiased); out = -lr*sign(m)
    (Bernstein et al., 2018, algorithm 3)."""
    del accumulator_dtype

    def update(gs, state, ps):
        count, ms = state
        b = _value(beta, count)
        ms = [b * m + (1.0 - b) * g for m, g in zip(ms, gs)]
        return [-_value(learning_rate, count) * np.sign(m) for m in ms], (count + 1, ms)

    return Ref(lambda params: (0, _zeros(params)), update)


def scale_by_lion(b1=0.9, b2=0.99, mu_dtype=None, mode="hard", smooth_beta=1.0) -> Ref:
    """c = b1*m + (1-b1)*g; out = sign(c) (or tanh(smooth_beta*c), or c where |c| < 1);
    then m = b2*m + (1-b2)*g, m0 = 0 (Chen et al., 2023, algorithm 2)."""
    del mu_dtype

    def signed(c, count):
        if mode == "smooth":
            return np.tanh(_value(smooth_beta, count) * c)
        if mode == "refined":
            return np.where(np.abs(c) < 1, c, np.sign(c))
        return np.sign(c)

    def update(gs, state, ps):
        count, ms = state
        c1, c2 = _value(b1, count), _value(b2, count)
        out = [signed(c1 * m + (1.0 - c1) * g, count) for m, g in zip(ms, gs)]
        ms = [c2 * m + (1.0 - c2) * g for m, g in zip(ms, gs)]
        return out, (count + 1, ms)

    return Ref(lambda params: (0, _zeros(params)), update)


def lion(learning_rate, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3, mask=None) -> Ref:
    """chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay), -lr)."""
    del mask
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def scale_by_rprop(
    learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0
) -> Ref:
    """iRprop- (Igel and Huesken, 2003, figure 1), per element, step sizes d0 = lr:
    d = clip(d * (eta_plus if g*g_prev > 0, eta_minus if < 0, else 1), min, max);
    out = 0 and g_prev = 0 where g*g_prev < 0, else out = d*sign(g) and g_prev = g.
    A changed learning rate rescales d by new/old."""

    def init(params):
        lr = _value(learning_rate, 0)
        return 0, lr, [np.full(p.shape, lr) for p in params], _zeros(params)

    def update(gs, state, ps):
        count, seen, ds, prevs = state
        lr = _value(learning_rate, count)
        lo, hi = _value(min_step_size, count), _value(max_step_size, count)
        minus, plus = _value(eta_minus, count), _value(eta_plus, count)
        out, new_ds, new_prevs = [], [], []
        for g, d, prev in zip(gs, ds, prevs):
            product = np.sign(g) * np.sign(prev)
            factor = np.where(product > 0, plus, np.where(product < 0, minus, 1.0))
            d = np.clip(d * (lr / seen) * factor, lo, hi)
            kept = np.where(product < 0, 0.0, g)
            out.append(d * np.sign(kept))
            new_ds.append(d)
            new_prevs.append(kept)
        return out, (count + 1, lr, new_ds, new_prevs)

    return Ref(init, update)


def rprop(learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6, max_step_size=50.0):
    """chain(scale_by_rprop(...), scale(-1))."""
    return chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
        scale(-1.0),
    )


# ---- Polyak's step size ------------------------------------------------------------------------


def scale_by_polyak(
    f_min=0.0,
    max_learning_rate=1.0,
    eps=0.0,
    variant="sps",
    *,
    value: Callable[[list[np.ndarray]], float] | None = None,
) -> Ref:
    """gap = f(params) - f_min (its positive part for "sps+"); n = sum over leaves of
    sum |g|**2; out = min(gap / (n + eps), max_learning_rate) * g, 0 if n + eps = 0
    (Loizou et al., 2021, eq. 5). ``value(params)`` gives f(params)."""

    def update(gs, count, ps):
        gap = float(value(ps)) - _value(f_min, count)
        if variant == "sps+":
            gap = max(gap, 0.0)
        denominator = sum(float(np.sum(_abs_sq(g))) for g in gs) + _value(eps, count)
        step = min(gap / denominator, _value(max_learning_rate, count)) if denominator else 0.0
        return [step * g for g in gs], count + 1

    return Ref(lambda params: 0, update)


def polyak_sgd(
    max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0, variant="sps", *, value=None
) -> Ref:
    """chain(-scaling, scale_by_polyak(...)): the step size of the scaled direction."""
    return chain(
        scale_by_learning_rate(scaling),
        scale_by_polyak(f_min, max_learning_rate, eps, variant, value=value),
    )


# ---- optimistic gradients ----------------------------------------------------------------------


def scale_by_optimistic_gradient(alpha=1.0, beta=1.0) -> Ref:
    """out = (alpha + beta)*g - beta*g_prev, g_prev = g at the first step
    (Mokhtari et al., 2020, eq. 8; Daskalakis et al., 2018, eq. 5 for alpha = beta = 1)."""

    def update(gs, state, ps):
        count, prevs = state
        a, b = _value(alpha, count), _value(beta, count)
        prevs = gs if count == 0 else prevs
        return [(a + b) * g - b * p for g, p in zip(gs, prevs)], (count + 1, gs)

    return Ref(lambda params: (0, _zeros(params)), update)


def optimistic_gradient_descent(learning_rate, alpha=1.0, beta=1.0) -> Ref:
    """chain(scale_by_optimistic_gradient(alpha, beta), -lr)."""
    return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))


def optimistic_adam(
    learning_rate,
    optimism=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    nesterov=True,
) -> Ref:
    """r = Adam's direction; out = -(lr*r + o*(r - r_prev)), r_prev = r at the first step
    (Daskalakis et al., 2018, algorithm 1); o = lr when None."""
    del mu_dtype
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, nesterov),
        scale_by_optimistic_gradient(
            learning_rate, learning_rate if optimism is None else optimism
        ),
        scale(-1.0),
    )


def optimistic_adam_v2(
    learning_rate,
    alpha=1.0,
    beta=1.0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    nesterov=True,
) -> Ref:
    """chain(scale_by_adam(...), scale_by_optimistic_gradient(alpha, beta), -lr)."""
    del mu_dtype
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, nesterov),
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(learning_rate),
    )


# ---- noise and averaging -----------------------------------------------------------------------


def noisy_sgd(learning_rate, eta=0.01, gamma=0.55, key=None, seed=None) -> Ref:
    """-lr * (g + N(0, eta / t**gamma)); only eta = 0 here: the draws are jax.random's, which
    NumPy cannot reproduce (gradtx's noise is compared with optax's draws instead)."""
    del gamma, key, seed
    if eta != 0:
        raise NotImplementedError("noisy_sgd's NumPy reference has no noise: use eta=0")
    return scale_by_learning_rate(learning_rate)


def asgd(learning_rate=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0) -> Ref:
    """At the t-th update (t = 1 first): eta = lr / (1 + lambd*lr*(t-1))**alpha;
    p' = p*(1 - lambd*eta) - eta*(g + wd*p); mu = 1 / max(1, t - 1 - t0);
    ax = p' if mu = 1 else ax + mu*(p' - ax) (Polyak and Juditsky, 1992; torch.optim.ASGD's
    schedule). The state keeps ax; out = p' - p."""

    def update(gs, state, ps):
        count, axs = state
        lr, lam = _value(learning_rate, count), _value(lambd, count)
        eta = lr / (1.0 + lam * lr * count) ** _value(alpha, count)
        mu = 1.0 / max(1.0, count - _value(t0, count))
        wd = _value(weight_decay, count)
        new = [p * (1.0 - lam * eta) - eta * (g + wd * p) for g, p in zip(gs, ps)]
        axs = [n if mu == 1 else a + mu * (n - a) for n, a in zip(new, axs)]
        return [n - p for n, p in zip(new, ps)], (count + 1, axs)

    return Ref(lambda params: (0, _zeros(params)), update)


REFERENCES: dict[str, Callable[..., Ref]] = {
    f.__name__: f
    for f in (
        scale_by_sign,
        sign_sgd,
        signum,
        scale_by_lion,
        lion,
        scale_by_rprop,
        rprop,
        scale_by_polyak,
        polyak_sgd,
        scale_by_optimistic_gradient,
        optimistic_gradient_descent,
        optimistic_adam,
        optimistic_adam_v2,
        noisy_sgd,
        asgd,
    )
}
