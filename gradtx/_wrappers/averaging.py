"""Weight averaging: lookahead's slow weights, and an exponential moving average of the params."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState, Params, PyTree, with_extra_args
from gradtx._core.checks import MissingArgumentError, check_count, check_dtype, check_flag
from gradtx._core.hyper import HyperState, ScalarOrSchedule, Value, live, one_minus, value_as
from gradtx._transforms.momentum import debias_step, ema_step

# ---- lookahead: the math, for one array ----------------------------------------------------


def lookahead_leaf(
    u: jax.Array, fast: jax.Array, slow: jax.Array, sync: jax.Array, alpha: Value
) -> tuple[jax.Array, jax.Array]:
    """One leaf's ``(fast update, slow update)`` for a step of the fast optimizer giving ``u``.

    Off a synchronisation step the fast weights take ``u`` and the slow ones stay. On one, the
    fast weights end at the new slow weights ``slow + alpha (fast + u - slow)``: the last fast
    step and the synchronisation merged into one update. Formed in at least float32: ``fast +
    u`` rounded to a half-precision leaf would lose the step (``u`` is often below the params'
    ulp), and the roundings would be at the params' scale, not the update's.
    """
    dtype = _tree.wider(u.dtype, fast.dtype, slow.dtype, jnp.float32)
    diff = (fast.astype(dtype) + u.astype(dtype)) - slow.astype(dtype)
    wide_u = u.astype(dtype)
    fast_update = jnp.where(sync, wide_u - one_minus(alpha, dtype) * diff, wide_u)
    slow_update = jnp.where(sync, value_as(alpha, dtype) * diff, jnp.zeros_like(diff))
    return fast_update.astype(u.dtype), slow_update


def _copy(x: Any) -> jax.Array:
    return jnp.array(x, copy=True)


class LookaheadParams(NamedTuple):
    """A pair of fast and slow weights, for optax-style use of :func:`lookahead`.

    Take gradients at ``fast``; evaluate with ``slow``. The updates of a lookahead given such a
    pair are a pair too, added to it by :func:`gradtx.apply_updates`.
    """

    fast: Params  # the weights the gradients are taken at
    slow: Params  # the slow weights, for evaluation

    @classmethod
    def init_synced(cls, params: Params) -> LookaheadParams:
        """Both fast and slow weights set to ``params`` (the slow ones a copy, so that a step
        donating its arguments does not donate one buffer twice)."""
        return cls(fast=params, slow=jax.tree.map(_copy, params))


class LookaheadState(NamedTuple):
    """The state of :func:`lookahead`: optax's fields, then the slow weights, which optax keeps
    in :class:`LookaheadParams` (as gradtx does when given them: then ``slow`` is None)."""

    fast_state: OptState  # the fast optimizer's state
    steps_since_sync: jax.Array  # int32 []: fast steps since the last synchronisation, < k
    slow: Params | None  # like the params: the slow weights (None with LookaheadParams)


def _is_pair(params: Any) -> bool:
    """A (fast, slow) pair: gradtx's LookaheadParams, or optax's (same fields)."""
    return isinstance(params, tuple) and getattr(type(params), "_fields", None) == ("fast", "slow")


def _merge_reset(current: PyTree, fresh: PyTree, sync: jax.Array) -> PyTree:
    """``current`` with every leaf replaced by ``fresh``'s where ``sync``, except the step counts
    and values of live hyperparameters: a reset restarts momentum, not a schedule."""

    def merge(c, f):
        if isinstance(c, HyperState):
            return c._replace(inner_state=_merge_reset(c.inner_state, f.inner_state, sync))
        return jnp.where(sync, f, c)

    return jax.tree.map(merge, current, fresh, is_leaf=lambda x: isinstance(x, HyperState))


def _lookahead(
    slow_step_size: Value,
    *,
    fast_optimizer: GradientTransformation,
    sync_period: int,
    reset_state: bool,
) -> GradientTransformation:
    def init(params):
        if _is_pair(params):
            fast_state = fast_optimizer.init(params.fast)
            return LookaheadState(fast_state, _tree.zero_count(), None)
        slow = jax.tree.map(_copy, params)
        return LookaheadState(fast_optimizer.init(params), _tree.zero_count(), slow)

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError("lookahead: update needs params (the fast weights)")
        pair = _is_pair(params)
        if pair != (state.slow is None):
            made = "plain params" if state.slow is not None else "a LookaheadParams pair"
            given = "a LookaheadParams pair" if pair else "plain params"
            raise ValueError(
                f"lookahead: the state was made by init with {made} but update got {given}; "
                f"give update the same kind of params as init"
            )
        fast, slow = (params.fast, params.slow) if pair else (params, state.slow)
        fast_updates, fast_state = fast_optimizer.update(updates, state.fast_state, fast, **extra)
        sync = state.steps_since_sync >= sync_period - 1
        step = functools.partial(lookahead_leaf, sync=sync, alpha=slow_step_size)
        names = ("updates", "fast params", "slow params")
        both = _tree.map(step, fast_updates, fast, slow, owner="lookahead", names=names)
        # Unzipped leaf by leaf (tree.transpose cannot tell the pair's shape from no leaves).
        outer = jax.tree.structure(fast_updates)
        pairs = outer.flatten_up_to(both)
        fast_out = outer.unflatten([pair[0] for pair in pairs])
        slow_out = outer.unflatten([pair[1] for pair in pairs])
        if reset_state:
            fast_state = _merge_reset(fast_state, fast_optimizer.init(fast), sync)
        steps = jnp.where(sync, jnp.zeros_like(state.steps_since_sync), state.steps_since_sync + 1)
        if pair:
            out = type(params)(fast=fast_out, slow=_tree.cast_like(slow_out, slow))
            return out, LookaheadState(fast_state, steps, None)
        # Held in the state, the slow weights move as apply_updates would move them.
        new_slow = jax.tree.map(
            lambda s, d: (s.astype(d.dtype) + d).astype(s.dtype), slow, slow_out
        )
        return fast_out, LookaheadState(fast_state, steps, new_slow)

    return GradientTransformation(init, update)


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int,
    slow_step_size: ScalarOrSchedule,
    reset_state: bool = False,
) -> GradientTransformation:
    r"""Lookahead: k steps of a fast optimizer, then one step of the slow weights towards them.

    .. math::
      \theta_{t,0} = \phi_{t-1}, \quad
      \theta_{t,i} = \theta_{t,i-1} + A(\theta_{t,i-1}) \;(i = 1 \dots k), \quad
      \phi_t = \phi_{t-1} + \alpha\, (\theta_{t,k} - \phi_{t-1})

    with *A* the fast optimizer's update, *k* = ``sync_period`` and α = ``slow_step_size``.
    Gradients are always taken at the fast weights θ.

    Two ways to hold the slow weights φ, chosen by what ``init`` is given:

    * **plain params** (the gradtx way): φ lives in the optimizer state, the params are the fast
      weights, and on a synchronisation step the update takes them to the new φ. A training step
      is unchanged, so this works as the ``tx`` of ``flax.training.train_state.TrainState`` or
      ``flax.nnx.Optimizer``. Read φ for evaluation with :func:`slow_params`.
    * **a** :class:`LookaheadParams` **pair** (optax's way, for code coming from
      ``optax.lookahead``; ``optax.LookaheadParams`` is accepted too): the params are
      ``LookaheadParams(fast, slow)``, the updates are such a pair too, and ``apply_updates``
      moves both. Take gradients at ``params.fast``.

    The plain form is the default because a Flax model's params cannot be swapped for a pair
    without rewriting the training step. Both forms do ``optax.lookahead``'s arithmetic (bit
    for bit around the same fast optimizer). The updates must be applied unchanged: put
    lookahead outermost, around the whole optimizer, learning rate included.

    ``reset_state`` restarts the fast optimizer's state (momentum, moments, their bias
    correction) at each synchronisation. Unlike optax, it keeps the step counts and values of
    live hyperparameters, so a learning-rate schedule of the fast optimizer is not restarted.

    Args:
      fast_optimizer: the inner optimizer *A* (any transformation, optax's too).
      sync_period: *k* >= 1, fast steps between synchronisations (a Python int).
      slow_step_size: α in (0, 1], a float or a schedule (of the number of fast steps).
        The paper uses k = 5 or 10 and α = 0.5 or 0.8.
      reset_state: reinitialise the fast optimizer's state at each synchronisation.

    Returns:
      A :class:`GradientTransformation`; :func:`gradtx.hyperparams` shows ``slow_step_size``
      beside the fast optimizer's hyperparameters.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.lookahead(gradtx.sgd(0.1), sync_period=2, slow_step_size=0.5)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     grads = jax.grad(lambda p: 0.5 * (p ** 2).sum())(params)
      ...     updates, state = tx.update(grads, state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> params  # fast weights 0.81 * p0 after two steps; synchronised halfway: 0.905 * p0
      Array([ 0.905, -1.81 ], dtype=float32)
      >>> gradtx.slow_params(state)
      Array([ 0.905, -1.81 ], dtype=float32)

    References:
      Zhang, Lucas, Hinton and Ba, *Lookahead Optimizer: k steps forward, 1 step back*, 2019.
    """
    owner = "lookahead"
    if not (
        callable(getattr(fast_optimizer, "init", None))
        and callable(getattr(fast_optimizer, "update", None))
    ):
        raise TypeError(
            f"{owner}: fast_optimizer must be a GradientTransformation (init, update), "
            f"got {type(fast_optimizer).__name__}"
        )
    sync_period = check_count(owner, "sync_period", sync_period)
    reset_state = check_flag(owner, "reset_state", reset_state)
    build = functools.partial(
        _lookahead,
        fast_optimizer=with_extra_args(fast_optimizer),
        sync_period=int(sync_period),
        reset_state=reset_state,
    )
    return live(owner, build, slow_step_size=slow_step_size)


def slow_params(state: PyTree) -> Params:
    r"""The slow weights of the :func:`lookahead` in an optimizer state (for evaluation).

    These are the :math:`\phi` of :func:`lookahead`'s rule, moved towards the fast weights once
    every ``sync_period`` steps:
    :math:`\phi_t = \phi_{t-1} + \alpha\, (\theta_{t,k} - \phi_{t-1})`.

    ``state`` may be the lookahead's own state or any state holding it (a chain's, the
    ``opt_state`` of a Flax ``TrainState``). Works inside ``jit``.

    Args:
      state: an optimizer state holding exactly one lookahead state, initialised with plain
        params (with a :class:`LookaheadParams` pair, the slow weights are ``params.slow``).

    Returns:
      The slow weights, a tree of the params' structure and dtypes (the state's own arrays,
      not a copy).

    Raises:
      ValueError: if ``state`` holds no lookahead with plain params, or several.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.lookahead(gradtx.sgd(1.0), sync_period=2, slow_step_size=0.5)
      >>> params = jnp.array([4.0])
      >>> state = tx.init(params)
      >>> updates, state = tx.update(jnp.array([1.0]), state, params)  # fast step: 4 -> 3
      >>> params = gradtx.apply_updates(params, updates)
      >>> params, gradtx.slow_params(state)  # the slow weights wait for the second step
      (Array([3.], dtype=float32), Array([4.], dtype=float32))
      >>> updates, state = tx.update(jnp.array([1.0]), state, params)  # 3 -> 2, then sync
      >>> gradtx.slow_params(state)  # halfway from 4 to 2
      Array([3.], dtype=float32)

    References:
      Zhang, Lucas, Hinton and Ba, *Lookahead Optimizer: k steps forward, 1 step back*, 2019.
    """
    found = []

    def visit(node):
        if isinstance(node, LookaheadState):
            found.append(node)
        return node

    jax.tree.map(visit, state, is_leaf=lambda x: isinstance(x, LookaheadState))
    if len(found) != 1:
        raise ValueError(
            f"slow_params: the state must hold exactly one lookahead state, found {len(found)}"
        )
    if found[0].slow is None:
        raise ValueError(
            "slow_params: this lookahead was initialised with LookaheadParams; "
            "its slow weights are params.slow"
        )
    return found[0].slow


# ---- ema_params ------------------------------------------------------------------------------


class EmaParamsState(NamedTuple):
    count: jax.Array  # int32 []: updates averaged so far (for bias correction)
    ema: Params  # like the params, in at least float32 (or accumulator_dtype): the biased average


def _ema_params(decay: Value, *, debias: bool, accumulator_dtype: Any) -> GradientTransformation:
    def average_dtype(p):
        return _tree.storage_dtype(p.dtype, accumulator_dtype or _tree.accumulation_dtype(p.dtype))

    def init(params):  # integer leaves are refused by live(), naming the leaf
        ema = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), average_dtype(jnp.asarray(p))), params)
        return EmaParamsState(count=_tree.zero_count(), ema=ema)

    def update(params, state, unused=None, **extra):
        del unused, extra
        names = ("params", "state")
        average = _tree.map(ema_step(decay), params, state.ema, owner="ema_params", names=names)
        count = _tree.saturating_increment(state.count)
        out = jax.tree.map(debias_step(decay, count), average) if debias else average
        out = jax.tree.map(lambda m, p: m.astype(jnp.result_type(p)), out, params)
        return out, EmaParamsState(count=count, ema=_tree.cast_like(average, state.ema))

    return GradientTransformation(init, update)


def ema_params(
    decay: ScalarOrSchedule,
    debias: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""An exponential moving average of the params, for evaluation (Polyak averaging).

    .. math::
      \bar\theta_t = \beta \bar\theta_{t-1} + (1 - \beta)\, \theta_t, \quad \bar\theta_0 = 0,
      \qquad \hat\theta_t = \frac{\bar\theta_t}{1 - \beta^t} \;\text{(debias)}

    Called with the params (not the gradients) after each optimizer step:
    ``update(params, state) -> (averaged params, state)``. With ``debias`` the first average is
    the params themselves and early averages are not pulled towards 0. The bias correction
    assumes a constant β (with a schedule it uses the current β).

    The average is kept in at least float32: with bf16 params and β = 0.999 a bf16 average
    would stop moving (the increments fall below bf16's resolution). The averaged params are
    returned in each param's dtype, ready to be used in the model.

    Args:
      decay: β in [0, 1): a float or a schedule (of the number of averaging steps).
      debias: divide by :math:`1 - \beta^t`.
      accumulator_dtype: dtype of the stored average (default: the params' dtype, at least
        float32).

    Returns:
      A :class:`GradientTransformation` whose ``update`` takes the params as its first argument;
      :func:`gradtx.hyperparams` shows ``decay``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> ema = gradtx.ema_params(0.9)
      >>> state = ema.init({"w": jnp.zeros(2)})
      >>> for w in (1.0, 2.0):
      ...     averaged, state = ema.update({"w": jnp.full(2, w)}, state)
      >>> averaged["w"].round(4)  # (0.09 * 1 + 0.1 * 2) / (1 - 0.9 ** 2)
      Array([1.5263, 1.5263], dtype=float32)

    References:
      Polyak and Juditsky, *Acceleration of stochastic approximation by averaging*, 1992;
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, 2014 (bias correction).
    """
    debias = check_flag("ema_params", "debias", debias)
    accumulator_dtype = check_dtype("ema_params", "accumulator_dtype", accumulator_dtype)
    build = functools.partial(_ema_params, debias=debias, accumulator_dtype=accumulator_dtype)
    return live("ema_params", build, decay=decay)
