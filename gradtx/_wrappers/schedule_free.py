"""Schedule-free learning: the wrapper that replaces momentum and the decay schedule of any
transformation by interpolation and averaging, and the averaged params used at evaluation."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState, Params, PyTree, with_extra_args
from gradtx._core.checks import MissingArgumentError, _float_dtype, check_dtype
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as

# b1 = 0 would make y = z and x unrecoverable from them; 1 is primal averaging (y = x)
_B1 = ("in (0, 1]", lambda v: (v > 0) & (v <= 1))
_NON_NEGATIVE = (">= 0", lambda v: v >= 0)


class ScheduleFreeState(NamedTuple):
    """The state of :func:`schedule_free`: z and the running weights of the average x."""

    b1: jax.Array  # float [] (the default float dtype): the b1 that formed the params y
    weight_sum: jax.Array  # float []: the sum of the averaging weights so far
    max_lr: jax.Array  # float []: the largest learning rate so far (0 before the first update)
    base_optimizer_state: OptState  # the base transformation's
    z: Params  # like the params (in state_dtype if given): the base transformation's iterate

    live_ranges = {"b1": _B1, "weight_lr_power": _NON_NEGATIVE}


# ---- the math, for one array -------------------------------------------------------------


def schedule_free_leaf(y: jax.Array, z: jax.Array, u: jax.Array, keep: Any, step: Any):
    """One leaf's ``(update, new z)`` from the params ``y``, the iterate ``z`` and the base
    transformation's update ``u``: ``keep(dtype)`` and ``step(dtype)`` are the coefficients of
    ``z - y`` and ``u`` (see :func:`schedule_free`), computed in at least float32."""
    dtype = _tree.accumulation_dtype(_tree.wider(y.dtype, z.dtype, u.dtype))
    y_, z_, u_ = _tree.cast(y, dtype), _tree.cast(z, dtype), _tree.cast(u, dtype)
    update = keep(dtype) * (z_ - y_) + step(dtype) * u_
    return _tree.cast(update, u.dtype), _tree.cast(z_ + u_, z.dtype)


def _eval_leaf(y: jax.Array, z: jax.Array, ratio: jax.Array) -> jax.Array:
    dtype = _tree.accumulation_dtype(_tree.wider(y.dtype, z.dtype))
    y_ = _tree.cast(y, dtype)
    x = y_ + ratio.astype(dtype) * (y_ - _tree.cast(z, dtype))
    return _tree.cast(x, y.dtype)


def _schedule_free(
    learning_rate: Value,
    b1: Value,
    weight_lr_power: Value,
    *,
    base_optimizer: GradientTransformation,
    state_dtype: Any,
) -> GradientTransformation:
    owner = "schedule_free"

    def init(params):
        dtype = _float_dtype()
        z = jax.tree.map(
            lambda p: jnp.array(p, _tree.storage_dtype(jnp.result_type(p), state_dtype), copy=True),
            params,
        )
        return ScheduleFreeState(
            b1=value_as(b1, dtype),
            weight_sum=jnp.zeros([], dtype),
            max_lr=jnp.zeros([], dtype),
            base_optimizer_state=base_optimizer.init(params),
            z=z,
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the point y the gradient is at)"
            )
        base_updates, base_state = base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra
        )
        dtype = state.weight_sum.dtype
        max_lr = jnp.maximum(state.max_lr, value_as(learning_rate, dtype))
        weight = max_lr ** value_as(weight_lr_power, dtype)
        weight_sum = state.weight_sum + weight
        # the first weights are 0 while the learning rate is 0 (a warmup from 0): c = 0 then
        c = weight / jnp.where(weight_sum == 0, jnp.ones_like(weight_sum), weight_sum)
        new_b1, old_b1 = value_as(b1, dtype), state.b1
        # y_new - y = (1 - b1'(1-c)/b1) (z - y) + (1 - b1'(1-c)) u, with b1 the value that
        # formed y and b1' this update's: the same x and y as the paper's, written without
        # x (recovered as (y - (1-b1) z) / b1) and exact in c when b1 does not change
        keep = c + (1 - c) * (old_b1 - new_b1) / old_b1
        step = 1 - new_b1 * (1 - c)
        keep_as = per_dtype(lambda d: keep.astype(d))
        step_as = per_dtype(lambda d: step.astype(d))
        leaf = functools.partial(schedule_free_leaf, keep=keep_as, step=step_as)
        names = ("params", "state", "updates")
        both = _tree.map(leaf, params, state.z, base_updates, owner=owner, names=names)
        outer = jax.tree.structure(base_updates)
        pairs = outer.flatten_up_to(both)
        out = outer.unflatten([pair[0] for pair in pairs])
        z = outer.unflatten([pair[1] for pair in pairs])
        return out, ScheduleFreeState(new_b1, weight_sum, max_lr, base_state, z)

    return GradientTransformation(init, update)


def _base_transformation(owner: str, name: str, tx: Any) -> GradientTransformation:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"{owner}: {name} must be a GradientTransformation (init, update), "
            f"got {type(tx).__name__}"
        )
    return with_extra_args(tx)


def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    weight_lr_power: ScalarOrSchedule = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-free learning around any transformation: no decay schedule, no momentum.

    The base transformation's updates :math:`u_t` (its learning rate included) move an iterate
    z; the gradients are taken at an interpolation y of z and a weighted average x of the z's,
    and x is what is evaluated (:func:`schedule_free_eval_params`):

    .. math::
      z_{t+1} = z_t + u_t(\nabla f(y_t)), \quad
      x_{t+1} = (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \quad
      y_{t+1} = \beta_1 x_{t+1} + (1 - \beta_1)\, z_{t+1},

    .. math::
      c_{t+1} = \frac{w_t}{\sum_{i \le t} w_i}, \quad
      w_t = \big(\max_{i \le t} \gamma_i\big)^{r},

    from :math:`x_1 = y_1 = z_1` = the initial params, with γ = ``learning_rate`` and r =
    ``weight_lr_power``. The params are y; the state keeps z only, and each update recovers
    :math:`x_t = (y_t - (1 - \beta_1) z_t) / \beta_1` from the params it is given (so a
    transformation chained after this one may change y), which gives the update
    :math:`y_{t+1} - y_t = c_{t+1} (z_t - y_t) + (1 - \beta_1 (1 - c_{t+1}))\, u_t`.

    Warmup is a learning-rate schedule, given both to the base transformation and here (the
    weights of the average then grow with it: the role of r); the schedule is evaluated at
    the number of updates before the current one, as every gradtx schedule is. The paper's
    warmup γ min(1, t / T) for t = 1, 2, ... is the schedule
    ``lambda count: γ * min(1, (count + 1) / T)`` (what :func:`schedule_free_sgd` and
    :func:`schedule_free_adamw` build from ``warmup_steps``). optax.contrib.schedule_free
    evaluates this wrapper's ``learning_rate`` one step later than its base optimizer's (at
    1, 2, ...): give it ``lambda count: schedule(count + 1)`` to reproduce optax's numbers.

    Unlike optax, ``b1`` is live: the b1 that formed the current y is kept in the state, so x
    is recovered exactly when b1 follows a schedule or is set between steps.

    The base transformation should have no momentum (Adam with b1 = 0, i.e. RMSProp with
    Adam's bias correction, or plain SGD): interpolation and averaging replace it.

    Args:
      base_optimizer: the transformation whose updates move z (learning rate included); it is
        given the params y.
      learning_rate: γ >= 0, the learning rate that weights the average: a float or a
        schedule, normally the base transformation's own (no default, as in optax).
      b1: β₁ in (0, 1], the interpolation between x and z. Default 0.9 (the paper's; 0.95 and
        0.98 also work well). 1 is primal averaging (y = x); 0 (Polyak–Ruppert averaging,
        y = z) is not accepted: x could not be recovered from y and z.
      weight_lr_power: r >= 0, the power of the largest learning rate so far in the weights.
        Default 2 (the paper's); 0 is a uniform average.
      state_dtype: the dtype of z (default: each param's).

    Returns:
      A :class:`GradientTransformation` whose update needs the params;
      :func:`gradtx.hyperparams` shows ``learning_rate``, ``b1`` and ``weight_lr_power``
      beside the base transformation's hyperparameters.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.schedule_free(gradtx.sgd(0.5), learning_rate=0.5)
      >>> params = jnp.array([2.0])
      >>> state = tx.init(params)
      >>> updates, state = tx.update(jnp.array([1.0]), state, params)
      >>> params = gradtx.apply_updates(params, updates)  # z = x = 1.5 after the first step
      >>> params, gradtx.schedule_free_eval_params(state, params)
      (Array([1.5], dtype=float32), Array([1.5], dtype=float32))

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, *The Road Less Scheduled*,
      NeurIPS 2024 (arXiv:2405.15682), Algorithm 1 and Section 4 (the weights c).
    """
    owner = "schedule_free"
    base = _base_transformation(owner, "base_optimizer", base_optimizer)
    state_dtype = check_dtype(owner, "state_dtype", state_dtype)
    build = functools.partial(_schedule_free, base_optimizer=base, state_dtype=state_dtype)
    return live(
        owner,
        build,
        ranges=ScheduleFreeState.live_ranges,
        learning_rate=learning_rate,
        b1=b1,
        weight_lr_power=weight_lr_power,
    )


def schedule_free_eval_params(state: PyTree, params: Params) -> Params:
    r"""The averaged params x of a :func:`schedule_free` optimizer, the ones to evaluate.

    .. math:: x_t = \frac{y_t - (1 - \beta_1)\, z_t}{\beta_1}
                  = y_t + \frac{1 - \beta_1}{\beta_1} (y_t - z_t)

    with y the params, z the iterate kept in the state and β₁ the value that formed y.
    ``state`` may be the schedule-free state itself or any state holding it: a chain's, a
    wrapper's, a Flax ``TrainState``'s ``opt_state`` (optax's helper takes the schedule-free
    state only). Works inside ``jit``.

    Args:
      state: an optimizer state holding exactly one schedule-free state.
      params: the current params y (what the training step updates).

    Returns:
      x, a tree of the params' structure and dtypes.

    Raises:
      ValueError: if ``state`` holds no schedule-free state, or several, or ``params`` is not
        shaped like its z.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.chain(gradtx.clip(1.0), gradtx.schedule_free_sgd(0.5, b1=0.5))
      >>> params = jnp.array([4.0])
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     updates, state = tx.update(jnp.array([1.0]), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> # z: 4, 3.5, 3; x: 4, 3.5, then (3.5 + 3) / 2 = 3.25; y = (x + z) / 2
      >>> params, gradtx.schedule_free_eval_params(state, params)
      (Array([3.125], dtype=float32), Array([3.25], dtype=float32))

    References:
      Defazio et al., *The Road Less Scheduled*, NeurIPS 2024 (arXiv:2405.15682).
    """
    owner = "schedule_free_eval_params"
    found = []

    def visit(node):
        if isinstance(node, ScheduleFreeState):
            found.append(node)
        return node

    jax.tree.map(visit, state, is_leaf=lambda x: isinstance(x, ScheduleFreeState))
    if len(found) != 1:
        raise ValueError(
            f"{owner}: the state must hold exactly one schedule-free state, found {len(found)}"
        )
    sf = found[0]
    ratio = (1 - sf.b1) / sf.b1
    names = ("params", "state")
    return _tree.map(lambda y, z: _eval_leaf(y, z, ratio), params, sf.z, owner=owner, names=names)
