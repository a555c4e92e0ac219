"""Sophia: a clipped step of momentum over a diagonal Hessian estimate refreshed every k steps.

The estimate is a transformation of its own (``hessian_diagonal_fn``), whose ``update`` returns
the Hessian's diagonal at the params; Sophia calls it every ``update_interval`` steps, inside a
``lax.cond`` (one program for every step), with the extra arguments its own ``update`` was given.
Hutchinson's estimator needs the objective there: ``obj_fn=fn`` (optax's name) or
``value_fn=fn`` (the line searches' name), a scalar function of the params alone; the
Gauss-Newton-Bartlett estimator (Sophia-G) needs the model's logits, ``logits_fn=fn``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree, with_extra_args
from gradtx._core.checks import MissingArgumentError, check_count, check_dtype, check_flag
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, scalar, value_as
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.gradient_processing import _key_data
from gradtx._transforms.momentum import debias_step, ema_step
from gradtx._transforms.step_size import _scale_by_learning_rate

_NO_COMPLEX = "Sophia has no complex form (its Hessian estimate is of real coordinates)"

# the refresh period counts steps: a whole number of them, at least one, within int32
_INTERVAL = (
    "a whole number >= 1",
    lambda v: (v >= 1) & (v <= _tree.INT32_MAX) & (v % 1 == 0),
)
_POSITIVE = ("> 0", lambda v: v > 0)


# ---- Hutchinson's estimator ----------------------------------------------------------------


class HutchinsonState(NamedTuple):
    key: jax.Array  # uint32 key data (shape [2] for threefry): the key of the next draw


def _objective_fn(owner: str, params: PyTree, extra: dict[str, Any]) -> Callable:
    """The objective from ``update``'s extras (``obj_fn`` or ``value_fn``), checked."""
    if params is None:
        raise MissingArgumentError(
            f"{owner}: update needs params (the point the Hessian is estimated at)"
        )
    given = {k: extra[k] for k in ("obj_fn", "value_fn") if extra.get(k) is not None}
    if len(given) == 2:
        raise ValueError(f"{owner}: give the objective as obj_fn or as value_fn, not both")
    fn = next(iter(given.values()), None)
    if not callable(fn):
        raise MissingArgumentError(
            f"{owner}: update needs the objective as obj_fn=fn (a scalar function of the "
            f"params), got {fn!r}"
        )
    out = jax.eval_shape(fn, params)
    if not hasattr(out, "shape") or out.shape != ():
        raise ValueError(
            f"{owner}: obj_fn must return a scalar, got shape {getattr(out, 'shape', out)}"
        )
    return fn


def hutchinson_estimator_diag_hessian(random_seed: Any = None) -> GradientTransformation:
    r"""Hutchinson's estimate of the Hessian's diagonal, :math:`u \odot H u` for random signs u.

    .. math::
      \hat h = u \odot \nabla^2 f(\theta)\, u, \qquad u_i \in \{-1, +1\}
      \text{ independent and equally likely}, \qquad \mathbb E[\hat h] = \operatorname{diag}
      \nabla^2 f(\theta)

    One Hessian-vector product (forward over reverse, about two gradients' cost) per call, and
    a fresh :math:`u` each call. The estimate is unbiased but noisy, and may be negative where
    the Hessian is not diagonal. ``update`` returns the estimate at ``params`` (the updates
    are only checked to fit them); it needs the objective through its extra arguments, ``obj_fn=fn``
    or ``value_fn=fn`` with ``fn(params)`` a scalar. The draws are those of
    ``optax.contrib.hutchinson_estimator_diag_hessian`` with the same seed: the key is split in
    two each call, and the second half split once per leaf.

    Args:
      random_seed: an int seed or a ``jax.random`` key (typed, or the raw ``uint32`` kind).
        Default ``None``: seed 0 (optax's default).

    Returns:
      A :class:`GradientTransformation` whose state keeps the key; real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(x ** 2 * jnp.array([1.0, 3.0]))  # Hessian diag(2, 6)
      >>> tx = gradtx.hutchinson_estimator_diag_hessian(random_seed=0)
      >>> x = jnp.array([1.0, 1.0])
      >>> diagonal, state = tx.update(x, tx.init(x), x, obj_fn=fn)
      >>> diagonal  # exact for a diagonal Hessian, whatever the signs drawn
      Array([2., 6.], dtype=float32)

    References:
      Hutchinson, *A stochastic estimator of the trace of the influence matrix for Laplacian
      smoothing splines*, 1989; Bekas, Kokiopoulou and Saad, *An estimator for the diagonal of
      a matrix*, 2007; Liu et al., *Sophia*, 2023, section 2.3 (Sophia-H).
    """
    owner = "hutchinson_estimator_diag_hessian"
    key_data, impl = _key_data(owner, 0 if random_seed is None else random_seed)

    def init(params):
        _tree.check_leaves(owner, params, "params")
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)
        return HutchinsonState(key=jnp.asarray(key_data))

    def update(updates, state, params=None, **extra):
        fn = _objective_fn(owner, params, extra)
        _tree.check_leaves(owner, params, "params")
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)
        # the updates are not used, but gradients of another model point to a mistake
        _tree.check_match(owner, (params, updates), ("params", "updates"))
        key = jax.random.wrap_key_data(state.key, impl=impl)
        next_key, draw = jax.random.split(key)
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(draw, len(leaves)) if leaves else []
        # ±1 is exact in every float dtype; drawn as float32, as optax does, for the same bits
        signs = [
            jax.random.rademacher(k, p.shape, jnp.float32).astype(p.dtype)
            for k, p in zip(keys, leaves)
        ]
        u = treedef.unflatten(signs)
        hu = jax.jvp(jax.grad(fn), (params,), (u,))[1]
        estimate = jax.tree.map(lambda a, b: (a * b).astype(b.dtype), hu, u)
        return estimate, HutchinsonState(key=jax.random.key_data(next_key))

    return GradientTransformation(init, update)


# ---- the Gauss-Newton-Bartlett estimator ---------------------------------------------------


class GaussNewtonBartlettState(NamedTuple):
    key: jax.Array  # uint32 key data (shape [2] for threefry): the key of the next draw


def _logits_fn(owner: str, params: PyTree, extra: dict[str, Any]) -> Callable:
    """The model from ``update``'s extras (``logits_fn``), checked: its logits' shape."""
    if params is None:
        raise MissingArgumentError(
            f"{owner}: update needs params (the point the Hessian is estimated at)"
        )
    fn = extra.get("logits_fn")
    if not callable(fn):
        raise MissingArgumentError(
            f"{owner}: update needs the model as logits_fn=fn (params -> logits of shape "
            f"(..., classes) on this step's batch), got {fn!r}"
        )
    out = jax.eval_shape(fn, params)
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) < 1 or shape[-1] < 1 or np.prod(shape) == 0:
        raise ValueError(
            f"{owner}: logits_fn must return logits of shape (..., classes) with at least one "
            f"class and example, got {shape if shape is not None else out}"
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"{owner}: logits_fn must return real floats, got {out.dtype}")
    return fn


def gauss_newton_bartlett_estimator_diag_hessian(random_seed: Any = None) -> GradientTransformation:
    r"""The Gauss-Newton-Bartlett (GNB) estimate of the diagonal of the Gauss-Newton matrix.

    For a model whose loss is the cross-entropy of its logits (the negative log-likelihood of
    a softmax), Sophia's estimator (Algorithm 2 of the paper): labels are *sampled* from the
    model's own predictions, and the squared gradient of the mean loss on them, times the
    number of examples, estimates the Gauss-Newton diagonal without any Hessian-vector
    product:

    .. math::
      \hat y_b \sim \operatorname{softmax}(f(\theta, x_b)), \qquad
      \hat g = \nabla_\theta \frac1B \sum_{b=1}^B \ell_{ce}(f(\theta, x_b), \hat y_b),
      \qquad \hat h = B\, \hat g \odot \hat g

    By Bartlett's first identity the sampled gradients have mean zero, so
    :math:`\mathbb E[\hat h] = \operatorname{diag}\big(\frac1B \sum_b J_b^\top
    (\operatorname{diag} p_b - p_b p_b^\top) J_b\big)`, the diagonal of the Gauss-Newton
    matrix of the mean loss (:math:`J_b` the Jacobian of example *b*'s logits, :math:`p_b` its
    probabilities). The estimate is never negative, and costs one gradient.

    ``update`` returns the estimate at ``params`` (the updates are only checked to fit them).
    It needs the model through its extra arguments: ``logits_fn=fn`` with ``fn(params)`` the
    logits on this step's batch, of shape ``(..., classes)``; every leading position (a
    sequence's tokens too) is an example, and B is their number. With :func:`sophia` this is
    Sophia-G: ``sophia(lr, hessian_diagonal_fn=gauss_newton_bartlett_estimator_diag_hessian())``
    and ``update(grads, state, params, logits_fn=lambda p: model(p, batch))``.

    Args:
      random_seed: an int seed or a ``jax.random`` key (typed, or the raw ``uint32`` kind)
        for the labels' draws. Default ``None``: seed 0.

    Returns:
      A :class:`GradientTransformation` whose state keeps the key; real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> w = jnp.zeros((3, 2))  # a linear model on two examples, two classes
      >>> x = jnp.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
      >>> tx = gradtx.gauss_newton_bartlett_estimator_diag_hessian(random_seed=0)
      >>> diagonal, state = tx.update(w, tx.init(w), w, logits_fn=lambda w: x @ w)
      >>> diagonal.shape, bool((diagonal >= 0).all())
      ((3, 2), True)

    References:
      Liu, Li, Hall, Liang and Ma, *Sophia: A Scalable Stochastic Second-order Optimizer for
      Language Model Pre-training*, ICLR 2024 (arXiv 2305.14342), section 2.3 and Algorithm 2;
      Bartlett, *Approximate confidence intervals*, Biometrika 1953.
    """
    owner = "gauss_newton_bartlett_estimator_diag_hessian"
    key_data, impl = _key_data(owner, 0 if random_seed is None else random_seed)

    def init(params):
        _tree.check_leaves(owner, params, "params")
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)
        return GaussNewtonBartlettState(key=jnp.asarray(key_data))

    def update(updates, state, params=None, **extra):
        fn = _logits_fn(owner, params, extra)
        _tree.check_leaves(owner, params, "params")
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)
        _tree.check_match(owner, (params, updates), ("params", "updates"))
        key = jax.random.wrap_key_data(state.key, impl=impl)
        next_key, draw = jax.random.split(key)
        logits, pullback = jax.vjp(fn, params)
        # labels drawn from the model's own prediction (Bartlett: their gradients average to 0)
        labels = jax.random.categorical(draw, logits, axis=-1)
        count = int(np.prod(logits.shape[:-1]))
        # d/dz of the mean cross-entropy on the drawn labels: (softmax(z) - onehot) / B, in at
        # least float32, then the model's backward pass once
        wide = logits.astype(_tree.wider(jnp.float32, logits.dtype))
        onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=wide.dtype)
        dlogits = (jax.nn.softmax(wide, axis=-1) - onehot) / count
        (grads,) = pullback(dlogits.astype(logits.dtype))
        estimate = jax.tree.map(lambda g, p: (count * g * g).astype(p.dtype), grads, params)
        return estimate, GaussNewtonBartlettState(key=jax.random.key_data(next_key))

    return GradientTransformation(init, update)


# ---- Sophia's preconditioned, clipped step -------------------------------------------------


class SophiaState(NamedTuple):
    count: jax.Array  # int32 []: updates so far (bias correction; refresh when count % k == 0)
    mu: Any  # like the params (mu_dtype if given): the EMA of the gradients
    nu: Any  # like the params: the EMA of the Hessian-diagonal estimates (0 before the first)
    hessian_fn_state: Any  # the state of hessian_diagonal_fn

    # names particular to Sophia, so their ranges are listed here rather than in the shared table
    live_ranges = {"update_interval": _INTERVAL, "clip_threshold": _POSITIVE}


def _interval(update_interval: Value) -> jax.Array:
    return jnp.maximum(jnp.round(scalar(update_interval)), 1).astype(jnp.int32)


def _scale_by_sophia(
    b1: Value,
    b2: Value,
    eps: Value,
    gamma: Value,
    clip_threshold: Value | None,
    update_interval: Value,
    *,
    estimator: GradientTransformation,
    mu_dtype: Any,
    verbose: bool,
    every: int,
    owner: str,
) -> GradientTransformation:
    def init(params):
        _tree.check_real_leaves(owner, params, _NO_COMPLEX)
        return SophiaState(
            count=_tree.zero_count(),
            mu=_tree.zeros_like(params, mu_dtype),
            nu=_tree.zeros_like(params),
            hessian_fn_state=estimator.init(params),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the Hessian is estimated at them)"
            )
        _tree.check_match(
            owner, (updates, state.mu, state.nu, params), ("updates", "state", "state", "params")
        )
        count = _tree.saturating_increment(state.count)
        mu = jax.tree.map(ema_step(b1), updates, state.mu)
        debias = debias_step(b1, count)
        # in at least float32: eps underflows in float16, and 0 / 0 would make a NaN
        consts = per_dtype(lambda dtype: (value_as(gamma, dtype), value_as(eps, dtype)))
        bound = None if clip_threshold is None else per_dtype(lambda d: value_as(clip_threshold, d))

        def ratio(m, h):
            wide = _tree.accumulation_dtype(_tree.wider(m.dtype, h.dtype))
            g, e = consts(wide)
            return debias(m.astype(wide)) / jnp.maximum(g * h.astype(wide), e)

        raw = jax.tree.map(ratio, mu, state.nu)
        if bound is None:
            out = raw
        else:
            out = jax.tree.map(lambda r: jnp.clip(r, -bound(r.dtype), bound(r.dtype)), raw)
            if verbose:
                _print_win_rate(owner, raw, bound, count, every)
        out = jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates)

        def refresh(hessian_state, nu):
            estimate, hessian_state = estimator.update(updates, hessian_state, params, **extra)
            _tree.check_match(owner, (params, estimate), ("params", "Hessian estimate"))
            step = ema_step(b2)
            nu = jax.tree.map(lambda h, v: step(h, v).astype(v.dtype), estimate, nu)
            return hessian_state, nu

        def keep(hessian_state, nu):
            return hessian_state, nu

        due = state.count % _interval(update_interval) == 0
        if isinstance(due, jax.core.Tracer):  # under jit or vmap: one program for every step
            hessian_state, nu = jax.lax.cond(due, refresh, keep, state.hessian_fn_state, state.nu)
        else:  # eagerly, a lax.cond would compile both branches anew at every step
            hessian_state, nu = (refresh if due else keep)(state.hessian_fn_state, state.nu)
        new_state = SophiaState(
            count=count,
            mu=_tree.cast_like(mu, state.mu),
            nu=nu,
            hessian_fn_state=hessian_state,
        )
        return out, new_state

    return GradientTransformation(init, update)


def _print_win_rate(owner, raw, bound, count, every):
    """Prints the share of elements not clipped (the paper's "win rate") every ``every`` steps."""
    leaves = jax.tree.leaves(raw)
    inside = sum(
        (jnp.sum(jnp.abs(r) < bound(r.dtype)).astype(jnp.float32) for r in leaves),
        jnp.zeros([], jnp.float32),
    )
    size = max(sum(int(np.size(r)) for r in leaves), 1)
    jax.lax.cond(
        count % every == 0,
        lambda: jax.debug.print(f"{owner}: win rate {{}} at step {{}}", inside / size, count),
        lambda: None,
    )


def _check_common(owner, hessian_diagonal_fn, mu_dtype, verbose, print_win_rate_every_n_steps):
    """Validates the non-numeric arguments; returns the keyword arguments of the build."""
    if hessian_diagonal_fn is None:
        hessian_diagonal_fn = hutchinson_estimator_diag_hessian()
    if not (
        callable(getattr(hessian_diagonal_fn, "init", None))
        and callable(getattr(hessian_diagonal_fn, "update", None))
    ):
        raise TypeError(
            f"{owner}: hessian_diagonal_fn must be a GradientTransformation (init, update), got "
            f"{type(hessian_diagonal_fn).__name__}"
        )
    verbose = check_flag(owner, "verbose", verbose)
    every = check_count(owner, "print_win_rate_every_n_steps", print_win_rate_every_n_steps, 0)
    if verbose and every == 0:
        raise ValueError(f"{owner}: print_win_rate_every_n_steps must be >= 1 with verbose=True")
    return dict(
        estimator=with_extra_args(hessian_diagonal_fn),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        verbose=verbose,
        every=every,
        owner=owner,
    )


def scale_by_sophia(
    b1: ScalarOrSchedule = 0.965,
    b2: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    gamma: ScalarOrSchedule = 0.01,
    clip_threshold: ScalarOrSchedule | None = 1.0,
    update_interval: ScalarOrSchedule = 10,
    hessian_diagonal_fn: GradientTransformation | None = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    r"""Sophia's direction: debiased momentum over the clamped Hessian-diagonal average, clipped.

    With :math:`t` the step (1 first) and :math:`k` = ``update_interval``:

    .. math::
      m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
      u_t = \operatorname{clip}\Big(\frac{m_t / (1 - \beta_1^t)}{\max(\gamma h_{t-1},
      \epsilon)}, -\rho, \rho\Big)

    and, when :math:`(t - 1) \bmod k = 0`, :math:`h_t = \beta_2 h_{t-1} + (1 - \beta_2)\hat h_t`
    with :math:`\hat h_t` from ``hessian_diagonal_fn`` at the params (:math:`h_0 = 0`; else
    :math:`h_t = h_{t-1}`). As in optax (and levanter), the fresh estimate is used from the
    next step on and the momentum is debiased; the paper's Algorithm 3 uses it in the step it
    is taken and divides the raw momentum. Before the first estimate the step is
    :math:`\rho\operatorname{sign}(m_t)` (where :math:`|\hat m_t| \ge \rho\epsilon`).

    The estimate runs inside ``lax.cond``: every step is the same compiled program, and only
    one step in :math:`k` pays for the Hessian-vector product. ``update`` passes its extra
    arguments on to ``hessian_diagonal_fn``; the default needs ``obj_fn=fn``.

    Args:
      b1: β₁ in [0, 1), the momentum's decay (0.965, the paper's and optax's).
      b2: β₂ in [0, 1), the decay of the Hessian average per refresh (0.99, likewise): over
        steps it acts as :math:`1 - (1 - \beta_2)/k`.
      eps: ε >= 0, the smallest denominator (1e-8, optax's; the paper's 1e-12).
      gamma: γ >= 0, the scale of the Hessian in the denominator (0.01, optax's).
      clip_threshold: ρ > 0, the largest step per element (1.0), or None for no clipping.
      update_interval: k, a whole number >= 1 of steps between estimates (10, the paper's and
        optax's). Live like the others: it may follow a schedule.
      hessian_diagonal_fn: a transformation whose ``update(grads, state, params, **extra)``
        returns the Hessian's diagonal at the params. Default ``None``:
        :func:`hutchinson_estimator_diag_hessian` with seed 0 (optax's default, Sophia-H);
        :func:`gauss_newton_bartlett_estimator_diag_hessian` gives Sophia-G. Across devices
        it must average its estimate itself.
      mu_dtype: dtype of the momentum (default: the params').
      verbose: print (``jax.debug.print``) the share of elements not clipped, the paper's
        "win rate" (0.1 to 0.5 is healthy; raise γ if it is lower).
      print_win_rate_every_n_steps: with ``verbose``, print every this many steps (>= 1).

    Returns:
      A :class:`GradientTransformation`; its ``update`` needs the params and whatever
      ``hessian_diagonal_fn`` needs. Real params only.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(x ** 2)
      >>> tx = gradtx.scale_by_sophia(update_interval=1)
      >>> x = jnp.array([1.0, -2.0])
      >>> state = tx.init(x)
      >>> u, state = tx.update(jax.grad(fn)(x), state, x, obj_fn=fn)
      >>> u  # no estimate yet: the clipped sign
      Array([ 1., -1.], dtype=float32)
      >>> u, state = tx.update(jax.grad(fn)(x), state, x, obj_fn=fn)
      >>> u  # h = 0.01 * 2 after one estimate: gamma * h = 2e-4, still clipped
      Array([ 1., -1.], dtype=float32)

    References:
      Liu, Li, Hall, Liang and Ma, *Sophia: A Scalable Stochastic Second-order Optimizer for
      Language Model Pre-training*, ICLR 2024 (arXiv 2305.14342, 2023), Algorithm 3.
    """
    owner = "scale_by_sophia"
    kwargs = _check_common(
        owner, hessian_diagonal_fn, mu_dtype, verbose, print_win_rate_every_n_steps
    )
    return live(
        owner,
        functools.partial(_scale_by_sophia, **kwargs),
        optional=("clip_threshold",),
        ranges=SophiaState.live_ranges,
        b1=b1,
        b2=b2,
        eps=eps,
        gamma=gamma,
        clip_threshold=clip_threshold,
        update_interval=update_interval,
    )


def sophia(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.965,
    b2: ScalarOrSchedule = 0.99,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    weight_decay_mask: Any = None,
    gamma: ScalarOrSchedule = 0.01,
    clip_threshold: ScalarOrSchedule | None = 1.0,
    update_interval: ScalarOrSchedule = 10,
    hessian_diagonal_fn: GradientTransformation | None = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    r"""Sophia: a clipped Newton-like step on a diagonal Hessian estimate, with decoupled decay.

    ``chain(scale_by_sophia(...), add_decayed_weights(weight_decay, weight_decay_mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_{t+1} = \theta_t - \eta_t \Big(\operatorname{clip}\Big(\frac{\hat m_t}
      {\max(\gamma h_{t-1}, \epsilon)}, -\rho, \rho\Big) + \lambda \theta_t\Big)

    with :math:`h` the average of Hessian-diagonal estimates refreshed every
    ``update_interval`` steps (see :func:`scale_by_sophia`). Every step needs the objective
    for the estimate, ``update(grads, state, params, obj_fn=fn)``, with ``fn(params)`` the
    scalar loss on this step's batch (e.g. ``lambda p: loss_fn(p, batch)``); it is evaluated
    only on refresh steps. The step per element is at most :math:`\eta\rho`: learning rates
    are typically a few times smaller than AdamW's.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1) (0.965).
      b2: β₂ in [0, 1), per refresh (0.99).
      eps: ε >= 0 (1e-8).
      weight_decay: λ >= 0 (1e-4, optax's).
      weight_decay_mask: which params are decayed, as the ``mask`` of
        :func:`gradtx.add_decayed_weights`.
      gamma: γ >= 0 (0.01).
      clip_threshold: ρ > 0 (1.0), or None for no clipping.
      update_interval: k >= 1 steps between Hessian estimates (10).
      hessian_diagonal_fn: the estimator (default: Hutchinson's, seed 0; or
        :func:`gauss_newton_bartlett_estimator_diag_hessian`, which takes ``logits_fn``).
      mu_dtype: dtype of the momentum (default: the params').
      verbose: print the win rate (see :func:`scale_by_sophia`).
      print_win_rate_every_n_steps: with ``verbose``, every this many steps.

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters. Real params
      only.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(jnp.array([1.0, 10.0]) * x ** 2)
      >>> tx = gradtx.sophia(0.1, b1=0.9, gamma=1.0, update_interval=2, weight_decay=0.0)
      >>> x = jnp.array([1.0, -1.0])
      >>> state = tx.init(x)
      >>> step = jax.jit(lambda x, s: tx.update(jax.grad(fn)(x), s, x, obj_fn=fn))
      >>> for _ in range(100):  # one program: the estimate on every second step is a lax.cond
      ...     updates, state = step(x, state)
      ...     x = gradtx.apply_updates(x, updates)
      >>> bool(jnp.abs(x).max() < 1e-2)
      True

    References:
      Liu, Li, Hall, Liang and Ma, *Sophia: A Scalable Stochastic Second-order Optimizer for
      Language Model Pre-training*, ICLR 2024 (arXiv 2305.14342, 2023), Algorithm 3.
    """
    owner = "sophia"
    check_mask(owner, "weight_decay_mask", weight_decay_mask)
    kwargs = _check_common(
        owner, hessian_diagonal_fn, mu_dtype, verbose, print_win_rate_every_n_steps
    )

    def build(learning_rate, b1, b2, eps, weight_decay, gamma, clip_threshold, update_interval):
        return chain(
            _scale_by_sophia(b1, b2, eps, gamma, clip_threshold, update_interval, **kwargs),
            _add_decayed_weights(weight_decay, weight_decay_mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        optional=("clip_threshold",),
        ranges=SophiaState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
        gamma=gamma,
        clip_threshold=clip_threshold,
        update_interval=update_interval,
    )
