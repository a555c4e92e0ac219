"""The states whose layouts differ between optax and gradtx beyond what the walk of
:mod:`gradtx._interop.migration` pairs by itself: one rule per state class (both libraries give
it the same name), which re-expresses one library's fields under the other's.

A rule's ``from_optax(optax_fields, gradtx_fields, context, path)`` and
``to_optax(gradtx_fields, optax_fields, context, path)`` take the source state's fields and the
target's (as its ``init`` made them; a dict each) and return the source's fields under the
target's names. The walk then pairs them field by field; a target field a rule leaves out
must be a step count (set from the source's) or is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core.tree import path_str

Fields = dict[str, Any]


@dataclasses.dataclass
class Context:
    """What a rule may need besides the two states."""

    owner: str  # the public function, for messages
    step: jax.Array | None  # int32 []: the source state's step count (None: it keeps none)
    params: Any  # the params given to the conversion
    optax_tx: Any = None  # to_optax_state's transformation
    slow_params: Any = None  # from_optax_state's: a lookahead's slow weights
    slow_taken: int = 0  # lookahead states that took slow_params


class Rule(NamedTuple):
    from_optax: Callable[[Fields, Fields, Context, tuple], Fields]
    to_optax: Callable[[Fields, Fields, Context, tuple], Fields]


def _without(fields: Fields, name: str) -> Fields:
    return {k: v for k, v in fields.items() if k != name}


def _source_step(context: Context, what: str) -> jax.Array:
    if context.step is None:
        raise ValueError(
            f"{context.owner}: optax's {what} has no counterpart in the gradtx state (it keeps "
            f"no step count)"
        )
    return context.step


# L-BFGS: both keep the last m pairs (s, y, rho) in a ring of m slots, the newest pair being
# written over the oldest. optax writes the pair of its update number `count` at slot
# (count - 1) mod m (the first update, which has no pair, writes zeros at slot m - 1); gradtx
# keeps the slot it writes next (`next_slot`), which stays where it is when a pair is not
# stored (a non-finite one, or with skip_curvature_failures). optax's ring is gradtx's turned
# so that gradtx's next slot lands on optax's: slot j of optax's is slot
# j + next_slot - (count - 1) of gradtx's.


def _lbfgs_from_optax(optax: Fields, gradtx: Fields, context: Context, path) -> Fields:
    slots = jnp.shape(optax["weights_memory"])[0]
    count = jnp.asarray(optax["count"], jnp.int32)
    return {**optax, "next_slot": jnp.maximum(count - 1, 0) % slots}


def _lbfgs_to_optax(gradtx: Fields, optax: Fields, context: Context, path) -> Fields:
    slots = jnp.shape(gradtx["weights_memory"])[0]
    shift = (gradtx["next_slot"] - jnp.maximum(gradtx["count"] - 1, 0)) % slots
    out = _without(gradtx, "next_slot")
    for name in ("diff_params_memory", "diff_updates_memory", "weights_memory"):
        out[name] = jax.tree.map(lambda ring: jnp.roll(ring, -shift, axis=0), gradtx[name])
    return out


# Lookahead: with plain params gradtx keeps the slow weights in its state (`slow`), optax in
# its LookaheadParams (with such a pair gradtx does too, and `slow` is None).


def _lookahead_from_optax(optax: Fields, gradtx: Fields, context: Context, path) -> Fields:
    if gradtx["slow"] is None:
        return optax
    if context.slow_params is None:
        raise ValueError(
            f"{context.owner}: the lookahead at {path_str(path)} keeps its slow weights in its "
            f"state (made for plain params), optax keeps them in its LookaheadParams, not in its "
            f"state: pass them as slow_params=params.slow with params=params.fast (or pass the "
            f"LookaheadParams pair as params, for gradtx's LookaheadParams form)"
        )
    if context.slow_taken:
        raise ValueError(
            f"{context.owner}: tx's state holds more than one lookahead with plain params; "
            f"slow_params fills one"
        )
    context.slow_taken += 1
    return {**optax, "slow": context.slow_params}


def _lookahead_to_optax(gradtx: Fields, optax: Fields, context: Context, path) -> Fields:
    # the slow weights go to optax's LookaheadParams (gradtx.slow_params(state)), not its state
    return _without(gradtx, "slow")


# Prodigy: gradtx keeps the largest estimate apart for its growth_rate bound; optax has no such
# bound, so its estimate is the largest so far.


def _prodigy_from_optax(optax: Fields, gradtx: Fields, context: Context, path) -> Fields:
    return {**optax, "estim_lr_max": optax["estim_lr"]}


def _prodigy_to_optax(gradtx: Fields, optax: Fields, context: Context, path) -> Fields:
    return _without(gradtx, "estim_lr_max")


# Schedule-free: optax counts its steps from 1 (`step_count`, the argument of its schedules);
# gradtx's step count is its tables' (from 0). ONE_BASED tells the walk to read it as such.


def _schedule_free_from_optax(optax: Fields, gradtx: Fields, context: Context, path) -> Fields:
    return _without(optax, "step_count")


def _schedule_free_to_optax(gradtx: Fields, optax: Fields, context: Context, path) -> Fields:
    step = _source_step(context, path_str((*path, jax.tree_util.GetAttrKey("step_count"))))
    return {**gradtx, "step_count": step + 1}


# DoG: optax flags its first step (`is_init_step`) where gradtx counts steps, and starts its
# largest distance at r_eps (from init_step, and with the "heuristic" from ||x_0||) where
# gradtx starts it at 0 and takes the larger of the two in each update: the same step sizes.


def _dog_from_optax(optax: Fields, gradtx: Fields, context: Context, path) -> Fields:
    later = 1 if context.step is None else jnp.maximum(context.step, 1)
    return {
        "init_params": optax["init_params"],
        "max_dist": optax["max_dist"],
        "sum_sq_norm_grads": optax["sum_sq_norm_grads"],
        "count": jnp.where(optax["is_init_step"], 0, later),
    }


def _dog_to_optax(gradtx: Fields, optax: Fields, context: Context, path) -> Fields:
    x0 = gradtx["init_params"]
    if jax.tree.structure(x0) != jax.tree.structure(context.params):
        raise ValueError(
            f"{context.owner}: optax's DoG at {path_str(path)} takes r_eps from the params its "
            f"init is given, and gradtx's first params there are not a tree like params (DoG "
            f"inside a mask or partition): r_eps cannot be formed"
        )
    # optax's r_eps, as its init forms it from x_0
    fresh = jax.tree_util.tree_flatten_with_path(context.optax_tx.init(x0))[0]
    r_eps = dict(fresh)[(*path, jax.tree_util.GetAttrKey("max_dist"))]
    return {
        "is_init_step": gradtx["count"] == 0,
        "init_params": x0,
        "max_dist": jnp.maximum(gradtx["max_dist"], r_eps),
        "sum_sq_norm_grads": gradtx["sum_sq_norm_grads"],
    }


# MultiSteps: within a cycle gradtx keeps the sum of the micro-steps' gradients, optax their
# running mean (use_grad_mean, its default) or their sum, which neither its state nor its
# transformation says. At the end of a cycle both hold zeros.


def _multi_steps(source: Fields, target: Fields, context: Context, path) -> Fields:
    if np.any(np.asarray(source["mini_step"]) != 0):
        raise ValueError(
            f"{context.owner}: the MultiSteps at {path_str(path)} is within a cycle: optax keeps "
            f"the running mean (use_grad_mean) or the sum of its micro-steps' gradients, which "
            f"its state does not say, gradtx their sum; convert at the end of a cycle "
            f"(mini_step 0)"
        )
    return source


RULES = {
    "MultiStepsState": Rule(_multi_steps, _multi_steps),
    "ScaleByLBFGSState": Rule(_lbfgs_from_optax, _lbfgs_to_optax),
    "LookaheadState": Rule(_lookahead_from_optax, _lookahead_to_optax),
    "ProdigyState": Rule(_prodigy_from_optax, _prodigy_to_optax),
    "ScheduleFreeState": Rule(_schedule_free_from_optax, _schedule_free_to_optax),
    "DoGState": Rule(_dog_from_optax, _dog_to_optax),
}

# step counts of optax's that count from 1: the walk reads the step as the count minus 1
ONE_BASED = ("step_count",)

# states of the same name whose algorithms differ: converting would continue another run
REFUSED = {
    "ScaleByRpropState": (
        "optax 0.2.8's rprop returns each step's update one step late, gradtx's is iRprop- "
        "(PyTorch's Rprop): another algorithm"
    ),
}
