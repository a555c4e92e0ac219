"""L-BFGS: the limited-memory BFGS direction (two-loop recursion) and the optimizer."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import MissingArgumentError, check_count, check_flag
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._curvature.linesearch import scalar_dtype
from gradtx._curvature.zoom import scale_by_zoom_linesearch
from gradtx._transforms.step_size import _scale, _scale_by_learning_rate


class ScaleByLBFGSState(NamedTuple):
    count: jax.Array  # int32 []: updates so far, saturating
    params: Any  # like params: the params of the last update
    updates: Any  # like params: the gradient of the last update
    diff_params_memory: Any  # like params, each leaf with a leading [memory_size] axis: s_i
    diff_updates_memory: Any  # the same: y_i, gradient differences
    weights_memory: jax.Array  # [memory_size] scalar dtype: rho_i = 1 / <s_i, y_i>; 0 = empty
    next_slot: jax.Array  # int32 []: where the next pair is written (the oldest pair's slot)


def _slot(tree, i):
    return jax.tree.map(lambda m: m[i], tree)


def _set_slot(tree, i, new, keep):
    """``tree`` with slot ``i`` replaced by ``new``, unless ``keep`` (then unchanged)."""
    return jax.tree.map(
        lambda m, x: m.at[i].set(jnp.where(keep, m[i], x.astype(m.dtype))), tree, new
    )


def _axpy(a, x, y):
    """``y + a * x`` leaf by leaf, in each leaf of ``y``'s dtype."""
    return jax.tree.map(lambda xi, yi: yi + a.astype(yi.dtype) * xi.astype(yi.dtype), x, y)


def two_loop(grad, s_memory, y_memory, rho, newest, gamma):
    """``H g`` by the two-loop recursion (Nocedal and Wright, Algorithm 7.4).

    ``H`` is the L-BFGS inverse-Hessian approximation built from ``gamma * I`` and the pairs in
    the circular buffers, newest at slot ``newest``. Empty or skipped slots have ``rho = 0``
    and change nothing. Returns ``(H g, s_memory, y_memory)``: the buffers go through both
    loops (carried, unchanged) and come out, so that XLA updates them in place; closed over,
    each loop took its own copy of them (two copies of the whole memory per step).
    """
    m = rho.shape[0]
    dtype = rho.dtype

    def backward(j, carry):
        q, alphas, s_memory, y_memory = carry
        i = (newest - j) % m
        alpha = rho[i] * _tree.vdot(_slot(s_memory, i), q).astype(dtype)
        q = _axpy(-alpha, _slot(y_memory, i), q)
        return q, alphas.at[i].set(alpha), s_memory, y_memory

    carry = (grad, jnp.zeros_like(rho), s_memory, y_memory)
    q, alphas, s_memory, y_memory = jax.lax.fori_loop(0, m, backward, carry)
    r = jax.tree.map(lambda x: gamma.astype(x.dtype) * x, q)

    def forward(j, carry):
        r, s_memory, y_memory = carry
        i = (newest + 1 + j) % m
        beta = rho[i] * _tree.vdot(_slot(y_memory, i), r).astype(dtype)
        return _axpy(alphas[i] - beta, _slot(s_memory, i), r), s_memory, y_memory

    return jax.lax.fori_loop(0, m, forward, (r, s_memory, y_memory))


def _lbfgs_direction(
    *, memory_size: int, scale_init_precond: bool, skip_curvature_failures: bool
) -> GradientTransformation:
    owner = "scale_by_lbfgs"

    def init(params):
        _tree.check_leaves(owner, params, "params")
        dtype = scalar_dtype(params)
        stacked = jax.tree.map(
            lambda p: jnp.zeros((memory_size, *jnp.shape(p)), jnp.result_type(p)), params
        )
        return ScaleByLBFGSState(
            count=_tree.zero_count(),
            params=_tree.zeros_like(params),
            updates=_tree.zeros_like(params),
            diff_params_memory=stacked,
            diff_updates_memory=stacked,
            weights_memory=jnp.zeros([memory_size], dtype),
            next_slot=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the pairs are params differences)"
            )
        _tree.check_match(owner, (params, updates, state.params), ("params", "updates", "state"))
        dtype = state.weights_memory.dtype
        s = jax.tree.map(lambda p, q: p - q.astype(p.dtype), params, state.params)
        y = jax.tree.map(lambda g, h: g - h.astype(g.dtype), updates, state.updates)
        sy = _tree.vdot(s, y).astype(dtype)
        yy = _tree.vdot(y, y).astype(dtype)
        # By default every pair is stored, as in Nocedal and Wright's Algorithm 7.4 and optax
        # (with a Wolfe line search, the default, s'y > 0 always); a pair with s'y = 0 gets
        # rho = 0 (it changes nothing), a non-finite one is not stored. skip_curvature_failures
        # is L-BFGS-B's rule: pairs with s'y <= eps y'y are not stored.
        good = (state.count > 0) & jnp.isfinite(sy) & jnp.isfinite(yy)
        if skip_curvature_failures:
            good = good & (sy > jnp.finfo(dtype).eps * yy)
        slot = state.next_slot
        s_mem = _set_slot(state.diff_params_memory, slot, s, ~good)
        y_mem = _set_slot(state.diff_updates_memory, slot, y, ~good)
        safe_sy = jnp.where(sy == 0, 1, sy)
        rho = state.weights_memory.at[slot].set(
            jnp.where(good, jnp.where(sy == 0, 0, 1 / safe_sy), state.weights_memory[slot])
        )
        next_slot = jnp.where(good, (slot + 1) % memory_size, slot)
        newest = (next_slot - 1) % memory_size
        if scale_init_precond:
            # gamma = s'y / y'y of the newest pair (N&W 7.20; 1 if y = 0). Before any pair:
            # 1 / ||g|| capped at 1, so the first trial step has length at most 1.
            # The newest pair's products: this one's, or the previous newest's read from the
            # memory in a branch (read outside one, XLA copied the whole memory every step)
            def previous(memory):
                s_new, y_new = _slot(memory[0], newest), _slot(memory[1], newest)
                return (
                    _tree.vdot(s_new, y_new).astype(dtype),
                    _tree.vdot(y_new, y_new).astype(dtype),
                )

            sy_new, yy_new = jax.lax.cond(good, lambda memory: (sy, yy), previous, (s_mem, y_mem))
            gnorm = _norms.global_norm(updates).astype(dtype)
            # a pair to scale by: after the first update (every pair stored), or once one was
            # stored (skipping)
            have_pair = (rho[newest] != 0) if skip_curvature_failures else (state.count > 0)
            gamma = jnp.where(
                have_pair,
                jnp.where(yy_new > 0, sy_new / jnp.where(yy_new > 0, yy_new, 1), 1),
                jnp.minimum(1, 1 / jnp.where(gnorm > 0, gnorm, 1)),
            )
        else:
            gamma = jnp.ones([], dtype)
        direction, s_mem, y_mem = two_loop(updates, s_mem, y_mem, rho, newest, gamma)
        direction = _tree.cast_like(direction, updates)
        new_state = ScaleByLBFGSState(
            count=_tree.saturating_increment(state.count),
            params=_tree.cast_like(params, state.params),
            updates=_tree.cast_like(updates, state.updates),
            diff_params_memory=s_mem,
            diff_updates_memory=y_mem,
            weights_memory=rho,
            next_slot=next_slot,
        )
        return direction, new_state

    return GradientTransformation(init, update)


def scale_by_lbfgs(
    memory_size: int = 10,
    scale_init_precond: bool = True,
    *,
    skip_curvature_failures: bool = False,
) -> GradientTransformation:
    r"""Multiplies the gradient by the L-BFGS inverse-Hessian approximation: :math:`u = H_k g_k`.

    With :math:`s_i = w_{i+1} - w_i`, :math:`y_i = g_{i+1} - g_i` and
    :math:`\rho_i = 1 / (s_i^\top y_i)` for the last ``memory_size`` pairs,

    .. math::
      H_k = V_{k-1}^\top \cdots V_{k-m}^\top H_k^0 V_{k-m} \cdots V_{k-1} + \ldots
        + \rho_{k-1} s_{k-1} s_{k-1}^\top, \qquad V_i = I - \rho_i y_i s_i^\top,

    applied by the two-loop recursion without forming any matrix, from
    :math:`H_k^0 = \gamma_k I`, :math:`\gamma_k = s_{k-1}^\top y_{k-1} / y_{k-1}^\top y_{k-1}`
    (``scale_init_precond``; else :math:`\gamma_k = 1`). At the first step, with no pair yet,
    :math:`\gamma_0 = \min(1, 1 / \|g_0\|)`, so that a unit step has length at most 1.

    Every pair is stored, as in Nocedal and Wright's Algorithm 7.4 and in optax (a pair with
    :math:`s^\top y = 0` gets :math:`\rho = 0` and changes nothing; a non-finite one is not
    stored). :math:`H_k` is positive definite when every :math:`s^\top y > 0`, which a line
    search with the Wolfe conditions (:func:`lbfgs`'s default) guarantees on any function.
    With a backtracking line search or fixed steps it may not be: ``skip_curvature_failures``
    then stores only pairs with :math:`s^\top y > \varepsilon\, y^\top y` (L-BFGS-B's rule;
    ε the machine epsilon), which made backtracking L-BFGS reach Rosenbrock's minimum from
    (-1.2, 1) where optax's (and the default) do not within 400 steps; it also departs from
    optax's numbers, and with tiny fixed steps a barely positive pair can still be taken.

    The output is a descent direction's negative (like a gradient): follow it with
    ``scale_by_learning_rate`` or a negative scale, as :func:`lbfgs` does. ``update`` needs
    ``params``. The memory is preallocated: ``2 * memory_size`` copies of the params.

    Args:
      memory_size: the number of pairs kept (>= 1). Default 10 (optax's; Nocedal and Wright
        suggest 3 to 20).
      scale_init_precond: scale the initial approximation by :math:`\gamma_k`. Default
        ``True`` (optax's; Nocedal and Wright's eq. 7.20).
      skip_curvature_failures: store only pairs with :math:`s^\top y > \varepsilon\,
        y^\top y` (L-BFGS-B's rule), for line searches without the curvature condition.
        Default ``False`` (every pair, as optax).

    Returns:
      A :class:`GradientTransformation` with :class:`ScaleByLBFGSState`.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx, x = gradtx.scale_by_lbfgs(), jnp.array([1.0, 1.0])
      >>> update = jax.jit(tx.update)  # eagerly, each loop would be compiled anew
      >>> updates, state = update(jnp.array([3.0, 4.0]), tx.init(x), x)
      >>> [round(u, 4) for u in updates.tolist()]  # no pair yet: g / max(1, |g|)
      [0.6, 0.8]

    References:
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, section 7.2, Algorithm 7.4;
      Liu and Nocedal, *On the limited memory BFGS method for large scale optimization*,
      Mathematical Programming, 1989.
    """
    memory_size = check_count("scale_by_lbfgs", "memory_size", memory_size)
    scale_init_precond = check_flag("scale_by_lbfgs", "scale_init_precond", scale_init_precond)
    skip = check_flag("scale_by_lbfgs", "skip_curvature_failures", skip_curvature_failures)
    return _lbfgs_direction(
        memory_size=memory_size,
        scale_init_precond=scale_init_precond,
        skip_curvature_failures=skip,
    )


_DEFAULT_LINESEARCH = scale_by_zoom_linesearch(
    max_linesearch_steps=15, initial_guess_strategy="one"
)


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = _DEFAULT_LINESEARCH,
    *,
    skip_curvature_failures: bool = False,
) -> GradientTransformation:
    r"""L-BFGS with a line search: ``chain(scale_by_lbfgs, scale(-learning_rate), linesearch)``.

    .. math:: w_{k+1} = w_k - \eta_k \alpha H_k g_k

    with :math:`H_k` as in :func:`scale_by_lbfgs`, :math:`\alpha` = ``learning_rate`` (1 if
    None) and :math:`\eta_k` the step the line search accepts (1 without one). The default line
    search is ``scale_by_zoom_linesearch(max_linesearch_steps=15, initial_guess_strategy="one")``
    (strong Wolfe, :math:`c_1 = 10^{-4}, c_2 = 0.9`), optax's default too; a Wolfe line search
    keeps :math:`s^\top y > 0`, so every pair is used. ``update`` needs ``value``, ``grad`` and
    ``value_fn`` (see :func:`scale_by_zoom_linesearch`); use :func:`value_and_grad_from_state`
    to reuse the line search's last evaluation.

    Args:
      learning_rate: a float or a schedule scaling the direction, or None (1).
      memory_size: the number of pairs kept.
      scale_init_precond: scale the initial approximation by :math:`s^\top y / y^\top y`.
      linesearch: a line search transformation, or None for fixed steps.
      skip_curvature_failures: as in :func:`scale_by_lbfgs`: worth setting with a
        backtracking line search, which does not keep :math:`s^\top y > 0`.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> fn = lambda x: jnp.sum(jnp.array([1.0, 10.0, 100.0]) * x ** 2)
      >>> tx, x = gradtx.lbfgs(), jnp.array([1.0, 1.0, 1.0])
      >>> state = tx.init(x)
      >>> value_and_grad = gradtx.value_and_grad_from_state(fn)
      >>> @jax.jit  # eagerly, every line search loop would be compiled anew
      ... def step(x, state):
      ...     value, grad = value_and_grad(x, state=state)
      ...     updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fn)
      ...     return gradtx.apply_updates(x, updates), state
      >>> for _ in range(15):
      ...     x, state = step(x, state)
      >>> bool(fn(x) < 1e-8)
      True

    References:
      Nocedal and Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithms 7.4, 7.5, 3.5, 3.6;
      Liu and Nocedal, 1989.
    """
    if linesearch is not None and not (
        callable(getattr(linesearch, "init", None))
        and callable(getattr(linesearch, "update", None))
    ):
        raise TypeError(
            f"lbfgs: linesearch must be a GradientTransformation or None, got {linesearch!r}"
        )
    memory_size = check_count("lbfgs", "memory_size", memory_size)
    scale_init_precond = check_flag("lbfgs", "scale_init_precond", scale_init_precond)
    direction = scale_by_lbfgs(
        memory_size, scale_init_precond, skip_curvature_failures=skip_curvature_failures
    )

    def build(learning_rate):
        step = _scale(-1.0) if learning_rate is None else _scale_by_learning_rate(learning_rate)
        links = (direction, step) + (() if linesearch is None else (linesearch,))
        return chain(*links)

    return live("lbfgs", build, optional=("learning_rate",), learning_rate=learning_rate)
