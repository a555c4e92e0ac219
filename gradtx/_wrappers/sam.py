r"""Sharpness-aware minimization (SAM), and ASAM's scale-invariant ascent direction.

SAM looks for weights whose whole neighbourhood has a low loss: it minimizes
:math:`\max_{\|\epsilon\| \le \rho} L(w + \epsilon)`. The inner maximization is solved to
first order, :math:`\hat\epsilon(w) = \rho\, g / \|g\|` (Foret et al., eq. 2), and the
weights then take a step with the gradient at :math:`w + \hat\epsilon` (their Algorithm 1).

As a wrapper this is two optimizers: an adversarial one that climbs (the perturbation) and the
outer one that makes the real step from the unperturbed weights. The adversarial optimizer is
any transformation whose updates, negated, are the ascent step: ``chain(direction, sgd(rho))``
with the direction :func:`gradtx.normalize_by_update_norm` (SAM) or
:func:`adaptive_normalize` (ASAM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import (
    GradientTransformation,
    OptState,
    Params,
    apply_updates,
    stateless,
)
from gradtx._core.checks import MissingArgumentError, check_count, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, value_as
from gradtx._wrappers.accumulation import _check_tx
from gradtx._wrappers.averaging import _copy, _merge_reset

# ---- ASAM's ascent direction -----------------------------------------------------------------


def _adaptive_normalize(eta: Value) -> GradientTransformation:
    owner = "adaptive_normalize"

    def update(updates, params):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (T_w = |w| + eta scales by them)"
            )
        _tree.check_match(owner, (params, updates), ("params", "updates"))

        def scale(p):  # T_w = |w| + eta, in at least float32
            wide = jnp.abs(p).astype(_tree.accumulation_dtype(_tree.real_dtype(p.dtype)))
            return wide + value_as(eta, wide.dtype)

        scales = jax.tree.map(scale, params)

        def times_scale(g, t):  # T_w g in the wider of the two dtypes (f64 grads, f32 params)
            dtype = _tree.wider(g.dtype, t.dtype)
            return _tree.times(g.astype(dtype), t.astype(_tree.real_dtype(dtype)))

        scaled = jax.tree.map(times_scale, updates, scales)
        norm = _norms.global_norm(scaled)
        # all-zero T_w g (no gradient, or eta = 0 at w = 0) gives no perturbation, not 0/0
        safe = jnp.where(norm > 0, norm, jnp.ones_like(norm))

        def leaf(g, tg, t):
            dtype = _tree.wider(tg.dtype, norm.dtype)
            real = _tree.real_dtype(dtype)
            unit = _tree.divide(tg.astype(dtype), safe.astype(real))
            out = _tree.times(unit, t.astype(real))
            return jnp.where(norm > 0, out, jnp.zeros_like(out)).astype(g.dtype)

        return jax.tree.map(leaf, updates, scaled, scales)

    return stateless(update)


def adaptive_normalize(eta: ScalarOrSchedule = 0.01) -> GradientTransformation:
    r"""ASAM's ascent direction: the gradient normalized in the weights' own scale.

    .. math::
      u = \frac{T_w^2\, g}{\|T_w\, g\|}, \qquad T_w = \operatorname{diag}(|w| + \eta)

    with :math:`\|\cdot\|` the norm of all leaves together. Followed by ``sgd(rho)`` and used as
    the adversarial optimizer of :func:`sam`, it gives Kwon et al.'s perturbation
    :math:`\epsilon = \rho\, T_w^2 g / \|T_w g\|`, which is unchanged when a layer's weights are
    rescaled (and the next layer's compensate), unlike SAM's :math:`\rho\, g / \|g\|`. Updates
    whose :math:`T_w g` is all zero give zeros.

    Args:
      eta: η >= 0, added to :math:`|w|` so that weights at 0 are perturbed too. Default 0.01,
        the paper's.

    Returns:
      A :class:`GradientTransformation` that reads the params; :func:`gradtx.hyperparams`
      shows ``eta``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adaptive_normalize(eta=0.0)
      >>> w = jnp.array([1.0, 2.0])
      >>> g = jnp.array([3.0, 2.0])  # T g = [3, 4], |T g| = 5, T^2 g / 5 = [0.6, 1.6]
      >>> tx.update(g, tx.init(w), w)[0]
      Array([0.6, 1.6], dtype=float32)

    References:
      Kwon, Kim, Park and Choi, *ASAM: Adaptive Sharpness-Aware Minimization for
      Scale-Invariant Learning of Deep Neural Networks*, ICML 2021 (section 4, element-wise
      normalization operator).
    """
    return live("adaptive_normalize", _adaptive_normalize, eta=eta)


# ---- SAM -------------------------------------------------------------------------------------


class SAMState(NamedTuple):
    """The state of :func:`sam` (optax's field names)."""

    steps_since_sync: jax.Array  # int32 []: adversarial steps since the last outer one (0 opaque)
    opt_state: OptState  # the outer optimizer's state; changes on outer steps only
    adv_state: OptState  # the adversarial optimizer's state
    cache: Params | None  # like the params: the real weights the ascent started from
    #   (None with opaque_mode: the real weights are the params)


def _cond(pred: jax.Array, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``lax.cond`` under a transformation (one compiled step, only the taken branch computed);
    a Python branch when ``pred`` is concrete: an eager ``lax.cond`` compiles both branches at
    every call."""
    if not isinstance(pred, jax.core.Tracer):
        return true_fn() if bool(pred) else false_fn()
    return jax.lax.cond(pred, true_fn, false_fn)


def _return_and_step(u: jax.Array, anchor: jax.Array, p: jax.Array) -> jax.Array:
    """The update taking ``p`` back to ``anchor`` and on by ``u``: ``(anchor - p) + u``."""
    dtype = _tree.wider(u.dtype, anchor.dtype, p.dtype)
    return ((anchor.astype(dtype) - p.astype(dtype)) + u.astype(dtype)).astype(u.dtype)


def _reset(adv, adv_state, params, reset_state: bool):
    # a reset restarts the adversary's statistics, not its schedules (as lookahead's)
    return (
        _merge_reset(adv_state, adv.init(params), jnp.asarray(True)) if reset_state else adv_state
    )


def _check_update(owner, updates, state, params, *, opaque: bool):
    if not isinstance(state, SAMState) or (state.cache is None) != opaque:
        raise ValueError(
            f"{owner}: the state must be the SAMState that this sam's init made, "
            f"got {type(state).__name__}"
        )
    if params is None:
        raise MissingArgumentError(
            f"{owner}: update needs params (the weights the gradients are taken at)"
        )
    _tree.check_leaves(owner, updates, "updates")
    _tree.check_match(owner, (params, updates), ("params", "updates"))
    if not opaque:
        _tree.check_match(owner, (params, state.cache), ("params", "state"))


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | tuple[str, ...] | None = None,
) -> GradientTransformation:
    r"""Sharpness-aware minimization: the real step uses the gradient at adversarially
    perturbed weights.

    With *A* the adversarial optimizer, *O* the outer one and *k* = ``sync_period``, one cycle
    from the real weights *w* is

    .. math::
      w_0 = w, \qquad w_{i+1} = w_i - A(\nabla L(w_i)) \;\; (i < k - 1), \qquad
      w \leftarrow w + O(\nabla L(w_{k-1}))

    *A*'s updates are negated, so a descent optimizer climbs: with
    ``A = chain(normalize_by_update_norm(eps=0.0), sgd(rho))`` and *k* = 2 this is Foret et
    al.'s SAM, :math:`w \leftarrow w + O(\nabla L(w + \rho\, g / \|g\|))`; with
    :func:`adaptive_normalize` in place of the normalization it is ASAM.

    Two ways to run the cycle:

    * ``opaque_mode=False``: each call to ``update`` is one step of the cycle, given the
      gradient at the current params. The first *k* - 1 calls return the ascent steps (the
      params become the perturbed weights); the *k*-th returns the update that takes them back
      to *w* and on by *O*'s step, so the training loop needs no change. The real weights are
      kept in the state (one copy of the params). Under ``jit`` the step is one program: the
      branch is a ``lax.cond``, and only the taken optimizer is computed.
    * ``opaque_mode=True``: one call runs the whole cycle. ``update`` needs the gradient
      function as ``grad_fn=fn``, ``fn(params, i)`` for ascent step ``i`` (a Python int, to
      pick a batch); it is called *k* - 1 times. Use this when a step has other effects
      (batch-norm statistics) that must see only real weights.

    Extra keyword arguments of ``update`` other than ``grad_fn`` reach both optimizers. Same
    arguments, defaults and numbers as ``optax.contrib.sam`` (with ``sync_period=1``, where
    optax steps from a stale copy of the params, this is plainly the outer optimizer). Unlike
    optax, ``reset_state`` keeps the step counts and values of the adversary's live
    hyperparameters, so a schedule of ρ is not restarted at each cycle.

    Args:
      optimizer: the outer optimizer *O* (a gradtx or optax transformation), given the real
        weights as its params.
      adv_optimizer: the adversarial optimizer *A*, given the perturbed weights as its params.
      sync_period: *k* >= 1, steps per cycle (*k* - 1 ascent steps, then the real step); 2 is
        the paper's SAM.
      reset_state: reinitialise *A*'s state after each real step.
      opaque_mode: run the whole cycle in one call to ``update`` (see above).
      batch_axis_name: with ``opaque_mode``, inside ``pmap``/``shard_map``, the axis name (or
        names) the batch is split along: each ascent step's gradient is averaged over it
        (``lax.pmean``). Unused without ``opaque_mode``, where the training loop averages.

    Returns:
      A :class:`GradientTransformation` with :class:`SAMState` state; :func:`gradtx.hyperparams`
      shows both optimizers' hyperparameters.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> rho = 2.5
      >>> ascent = gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.sgd(rho))
      >>> tx = gradtx.sam(gradtx.sgd(0.5), ascent)
      >>> params = jnp.array([3.0, 4.0])
      >>> state = tx.init(params)
      >>> grad = jax.grad(lambda p: 0.5 * (p ** 2).sum())
      >>> updates, state = tx.update(grad(params), state, params)
      >>> params = gradtx.apply_updates(params, updates)
      >>> params  # perturbed: w + rho g / |g|
      Array([4.5, 6. ], dtype=float32)
      >>> updates, state = tx.update(grad(params), state, params)
      >>> gradtx.apply_updates(params, updates)  # w - 0.5 * (the gradient there)
      Array([0.75, 1.  ], dtype=float32)

    References:
      Foret, Kleiner, Mobahi and Neyshabur, *Sharpness-Aware Minimization for Efficiently
      Improving Generalization*, ICLR 2021 (eq. 2, Algorithm 1); Kwon, Kim, Park and Choi,
      *ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep
      Neural Networks*, ICML 2021.
    """
    owner = "sam"
    outer = _check_tx(owner, "optimizer", optimizer)
    adv = _check_tx(owner, "adv_optimizer", adv_optimizer)
    sync_period = check_count(owner, "sync_period", sync_period)
    reset_state = check_flag(owner, "reset_state", reset_state)
    opaque_mode = check_flag(owner, "opaque_mode", opaque_mode)
    axes = batch_axis_name if isinstance(batch_axis_name, tuple) else (batch_axis_name,)
    if batch_axis_name is not None and not (axes and all(isinstance(a, str) and a for a in axes)):
        raise TypeError(
            f"{owner}: batch_axis_name must be None, an axis name (str) or a tuple of names, "
            f"got {batch_axis_name!r}"
        )

    def init(params):
        _tree.check_leaves(owner, params, "params")
        return SAMState(
            steps_since_sync=_tree.zero_count(),
            opt_state=outer.init(params),
            adv_state=adv.init(params),
            cache=None if opaque_mode else jax.tree.map(_copy, params),
        )

    def transparent_update(updates, state, params=None, **extra):
        _check_update(owner, updates, state, params, opaque=False)
        extra.pop("grad_fn", None)  # optax's signature: accepted, used by opaque_mode only
        first = state.steps_since_sync == 0
        last = state.steps_since_sync >= sync_period - 1
        # the real weights: this call's params when a cycle starts, else the ones kept then
        anchor = jax.tree.map(lambda p, c: jnp.where(first, p, c), params, state.cache)

        def real_step():
            u, opt_state = outer.update(updates, state.opt_state, anchor, **extra)
            out = jax.tree.map(_return_and_step, u, anchor, params)
            out = jax.tree.map(lambda o, g: o.astype(g.dtype), out, updates)
            return out, opt_state, _reset(adv, state.adv_state, params, reset_state)

        def ascent_step():
            u, adv_state = adv.update(updates, state.adv_state, params, **extra)
            out = jax.tree.map(lambda d, g: (-d).astype(g.dtype), u, updates)
            return out, state.opt_state, adv_state

        out, opt_state, adv_state = _cond(last, real_step, ascent_step)
        steps = jnp.where(last, _tree.zero_count(), state.steps_since_sync + 1)
        return out, SAMState(steps, opt_state, adv_state, anchor)

    def opaque_update(updates, state, params=None, **extra):
        _check_update(owner, updates, state, params, opaque=True)
        grad_fn = extra.pop("grad_fn", None)
        if not callable(grad_fn):
            raise MissingArgumentError(
                f"{owner}: with opaque_mode=True, update needs the gradient function as "
                f"grad_fn=fn (fn(params, i) -> gradients), got {grad_fn!r}"
            )
        point, grads, adv_state = params, updates, state.adv_state
        for i in range(sync_period - 1):
            u, adv_state = adv.update(grads, adv_state, point, **extra)
            point = apply_updates(point, jax.tree.map(jnp.negative, u))
            grads = grad_fn(point, i)
            if batch_axis_name is not None:
                grads = jax.lax.pmean(grads, axis_name=batch_axis_name)
            _tree.check_match(owner, (params, grads), ("params", "grad_fn(params, i)"))
        adv_state = _reset(adv, adv_state, params, reset_state)
        out, opt_state = outer.update(grads, state.opt_state, params, **extra)
        return out, SAMState(state.steps_since_sync, opt_state, adv_state, None)

    return GradientTransformation(init, opaque_update if opaque_mode else transparent_update)
