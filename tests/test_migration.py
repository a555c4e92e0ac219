"""A run's optimizer state between optax and gradtx (``from_optax_state``, ``to_optax_state``).

Each case: 20 steps with one library, the state converted, 20 more with the other, against 40
steps with the library that finished the run; in float64, so that the comparison sees the
conversion and not float32 rounding. The tolerance is that of the two libraries' own agreement
on the algorithm (1e-12 relative; Adafactor's 1e-6 and MADGRAD's 1e-7: optax forms a decay or a
step weight in float32).

Every optimizer of optax's (top level and ``optax.contrib``) that gradtx has under the same name
is a case, with settings where the two algorithms agree (L-BFGS has one more test, for a ring
that skipped a pair), but ``reduce_on_plateau`` (tests/test_plateau.py), ``lookahead`` (a test
of its own: its slow weights move between params and state), and ``rprop``, whose algorithms
differ (optax's returns each update one step late), which is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx
from gradtx._interop import migration
from gradtx._interop.migration import _is_count


class Each(NamedTuple):
    """An argument made for each library, ``make(lib)``; None leaves it out."""

    make: Callable[[Any], Any]


def _schedule(lib):
    # each library's own: optax's schedules need standard promotion, gradtx's run under strict
    return lib.warmup_cosine_decay_schedule(0.0, 0.02, 5, 60)


def _only(library, value):
    """An argument one library takes (None leaves it out of the other's call)."""
    return Each(lambda lib: value if lib is library else None)


STEPS = 20
CASES = {
    "sgd_momentum": ("sgd", dict(learning_rate=0.01, momentum=0.9, nesterov=True)),
    "noisy_sgd": ("noisy_sgd", dict(learning_rate=0.01, key=0)),  # a PRNG key in each form
    "sign_sgd": ("sign_sgd", dict(learning_rate=0.01)),
    "adam": ("adam", dict(learning_rate=0.01)),
    "adamw_schedule": ("adamw", dict(learning_rate=Each(_schedule), weight_decay=0.1)),
    "nadam": ("nadam", dict(learning_rate=0.01)),
    "nadamw": ("nadamw", dict(learning_rate=0.01)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.01, momentum=0.5)),
    "rmsprop_centered": ("rmsprop", dict(learning_rate=0.01, centered=True)),
    "rmsprop_bias_correction": ("rmsprop", dict(learning_rate=0.01, bias_correction=True)),
    "adagrad": ("adagrad", dict(learning_rate=0.1)),
    "adadelta": ("adadelta", dict(learning_rate=0.5)),
    "lion": ("lion", dict(learning_rate=0.001)),
    "lamb": ("lamb", dict(learning_rate=0.01)),
    "adamax": ("adamax", dict(learning_rate=0.01)),
    "adamaxw": ("adamaxw", dict(learning_rate=0.01, weight_decay=0.1)),
    "amsgrad": ("amsgrad", dict(learning_rate=0.01)),
    "radam": ("radam", dict(learning_rate=0.01)),
    "yogi": ("yogi", dict(learning_rate=0.01)),
    "adabelief": ("adabelief", dict(learning_rate=0.01)),
    # optax 0.2.8 weighs Adan's gradient difference by 1 - b2 where the paper weighs it by
    # b2 (see tests/registry/adam_like.py): the same algorithm at b2 = 0.5 only
    "adan": ("adan", dict(learning_rate=0.01, b2=0.5)),
    "novograd": ("novograd", dict(learning_rate=0.01)),
    "sm3": ("sm3", dict(learning_rate=0.1)),
    "adafactor": ("adafactor", dict(learning_rate=0.01)),
    "lars": ("lars", dict(learning_rate=0.01)),
    "fromage": ("fromage", dict(learning_rate=0.01)),
    "signum": ("signum", dict(learning_rate=0.01)),
    "optimistic_gradient_descent": ("optimistic_gradient_descent", dict(learning_rate=0.01)),
    "optimistic_adam": ("optimistic_adam", dict(learning_rate=0.01)),
    "optimistic_adam_v2": ("optimistic_adam_v2", dict(learning_rate=0.01)),
    "polyak_sgd": ("polyak_sgd", dict()),
    "lbfgs": ("lbfgs", dict(memory_size=4)),  # more than 4 steps: the ring has turned
    # optax centres ACProp's second moment on m_{t-1}, gradtx's lagged_mean
    "acprop": ("contrib.acprop", dict(learning_rate=0.01, lagged_mean=_only(gradtx, True))),
    "ademamix": ("contrib.ademamix", dict(learning_rate=0.01)),
    "simplified_ademamix": ("contrib.simplified_ademamix", dict(learning_rate=0.01)),
    "adopt": ("contrib.adopt", dict(learning_rate=0.01, b2=1 - 2**-10)),
    # COCOB's bets amplify the libraries' rounding differences (optax's update is a difference
    # of params): at alpha = 10 they are 4e-2 apart after 40 steps, at alpha = 1000 1e-15
    "cocob": ("contrib.cocob", dict(alpha=1000.0, weight_decay=0.1)),
    "dadapt_adamw": (
        "contrib.dadapt_adamw",
        dict(learning_rate=0.5, betas=(0.9, 0.99), estim_lr0=1e-2, weight_decay=0.1),
    ),
    "prodigy": (
        "contrib.prodigy",
        dict(betas=(0.9, 0.99), estim_lr0=1e-2, weight_decay=0.1, beta3=0.99, estim_lr_coef=0.5),
    ),
    "dog": ("contrib.dog", dict(init_step=("heuristic", 0.01))),
    "dog_first_step": ("contrib.dog", dict(init_step=("learning_rate", 0.01))),
    "dowg": ("contrib.dowg", dict()),
    "dpsgd": (
        "contrib.dpsgd",
        dict(
            learning_rate=0.01,
            l2_norm_clip=1.0,
            noise_multiplier=0.5,
            seed=0,
        ),
    ),
    # optax's SVD dtype; a refresh at steps 0, 7, 14, 21, ...
    "galore": (
        "contrib.galore",
        dict(learning_rate=0.01, rank=2, update_proj_gap=7, svd_dtype=_only(gradtx, "float32")),
    ),
    "madgrad": ("contrib.madgrad", dict(learning_rate=0.01)),
    "muon": ("contrib.muon", dict(learning_rate=0.01)),
    "muon_dion": ("contrib.muon", dict(learning_rate=0.01, ns_coeffs="dion")),
    "mechanize": (
        "contrib.mechanize",
        dict(base_optimizer=Each(lambda lib: lib.adam(1.0)), s_init=0.1, num_betas=3),
    ),
    "momo": ("contrib.momo", dict()),
    "momo_adam": ("contrib.momo_adam", dict()),
    "sam": (
        "contrib.sam",
        dict(
            optimizer=Each(lambda lib: lib.sgd(0.01, momentum=0.9)),
            adv_optimizer=Each(lambda lib: lib.sgd(0.05)),
        ),
    ),
    "schedule_free_sgd": ("contrib.schedule_free_sgd", dict(learning_rate=0.05, weight_decay=0.1)),
    "schedule_free_adamw": (
        "contrib.schedule_free_adamw",
        dict(learning_rate=0.05, b1=0.95, b2=0.99, weight_decay=0.1),
    ),
    "sophia": (
        "contrib.sophia",
        dict(learning_rate=0.01, gamma=0.2, update_interval=3, weight_decay=0.1),
    ),
}
# the libraries' own agreement: optax's Adafactor forms its decay, its cosine schedule its value,
# and its MADGRAD sqrt(k + 1), in float32 under x64 too
TOLERANCE = {"adafactor": 1e-6, "adamw_schedule": 1e-6, "madgrad": 1e-7}


def _loss(params):
    """The loss whose gradient is ``_grads``."""
    return sum(jnp.sum(0.15 * x * x - 0.1 / 3 * jnp.cos(3 * x)) for x in jax.tree.leaves(params))


def _grads(params):
    return jax.tree.map(lambda x: 0.3 * x + 0.1 * jnp.sin(3 * x), params)


# what each update takes besides the gradient, by case
_VALUE = lambda p: {"value": _loss(p)}
EXTRA = {
    "polyak_sgd": _VALUE,
    "momo": _VALUE,
    "momo_adam": _VALUE,
    "sophia": lambda p: {"obj_fn": _loss},
    "lbfgs": lambda p: {"value": _loss(p), "grad": _grads(p), "value_fn": _loss},
}
PER_EXAMPLE = {"dpsgd"}  # gradients with a leading axis of examples


def _params():
    rng = np.random.RandomState(0)
    return {"w": jnp.asarray(rng.randn(4, 3)), "b": jnp.asarray(rng.randn(3))}


def _stepper(tx, case=None, standard=False, fast=False):
    """One jitted step of ``tx``: ``(params, state) -> (updates, state)``; ``fast``: the
    gradients at ``params.fast`` (a lookahead given LookaheadParams)."""

    def step(params, state):
        grads = _grads(params.fast if fast else params)
        if case in PER_EXAMPLE:
            grads = jax.tree.map(lambda g: jnp.stack([g, 0.5 * g, -g]), grads)
        return tx.update(grads, state, params, **EXTRA.get(case, lambda p: {})(params))

    jitted = jax.jit(step)
    if not standard:
        return jitted

    def in_standard(params, state):
        with jax.numpy_dtype_promotion("standard"):
            return jitted(params, state)

    return in_standard


def _run(step, apply, params, state, steps=STEPS):
    for _ in range(steps):
        updates, state = step(params, state)
        params = apply(params, updates)
    return params, state


def _close(got, want, rtol):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14)


def _pair(case):
    name, kwargs = CASES[case]
    made = {}
    for lib in (gradtx, optax):
        args = {k: v.make(lib) if isinstance(v, Each) else v for k, v in kwargs.items()}
        factory = lib
        for part in name.split("."):  # "contrib.ademamix": each library's contrib namespace
            factory = getattr(factory, part)
        with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
            # optax 0.2.8's own: its optimistic_adam, and the seed its dpsgd passes on
            warnings.filterwarnings("ignore", "`optimistic_adam` is deprecated", DeprecationWarning)
            warnings.filterwarnings("ignore", '"seed" is deprecated', DeprecationWarning)
            made[lib] = factory(**{k: v for k, v in args.items() if v is not None})
    return made[gradtx], made[optax]


def _without_counts(state):
    """A gradtx state's arrays but its tables and step counts."""
    return [
        x
        for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
        if not _is_count(p, x) and all(getattr(k, "name", None) != "table" for k in p)
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_optax_run_resumes_under_gradtx_and_back(case, x64):
    mine, theirs = _pair(case)
    step_mine, step_theirs = _stepper(mine, case), _stepper(theirs, case, standard=True)
    params = _params()
    with jax.numpy_dtype_promotion("standard"):
        start = theirs.init(params)
    half, optax_state = _run(step_theirs, optax.apply_updates, params, start)
    whole, _ = _run(step_theirs, optax.apply_updates, half, optax_state)
    state = gradtx.from_optax_state(mine, optax_state, half)
    resumed, _ = _run(step_mine, gradtx.apply_updates, half, state)
    rtol = TOLERANCE.get(case, 1e-12)
    _close(resumed, whole, rtol)

    half, state = _run(step_mine, gradtx.apply_updates, params, mine.init(params))
    whole, _ = _run(step_mine, gradtx.apply_updates, half, state)
    back = gradtx.to_optax_state(theirs, state, half)
    resumed, _ = _run(step_theirs, optax.apply_updates, half, back)
    _close(resumed, whole, rtol)
    # and there and back is the identity (the tables too, where optax keeps a step count)
    again = gradtx.from_optax_state(mine, back, half)
    if migration._optax_step(back) is not None:
        kept, want = again, state
    else:  # optax keeps no step count: the tables' counts, and any count gradtx keeps, restart
        kept, want = _without_counts(again), _without_counts(state)
    for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_clipped_scheduled_adamw_chain_resumes_with_its_schedule(x64):
    schedule = _schedule(optax)
    mine = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(_schedule(gradtx)))
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule))
        start = theirs.init(_params())
    step_theirs = _stepper(theirs, standard=True)
    half, optax_state = _run(step_theirs, optax.apply_updates, _params(), start)
    whole, _ = _run(step_theirs, optax.apply_updates, half, optax_state)
    state = gradtx.from_optax_state(mine, optax_state, half)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(
        float(schedule(STEPS)), rel=1e-12
    )
    resumed, _ = _run(_stepper(mine), gradtx.apply_updates, half, state)
    _close(resumed, whole, TOLERANCE["adamw_schedule"])


@pytest.mark.parametrize("form", ["pair", "plain"])
def test_a_lookahead_run_moves_its_slow_weights_between_params_and_state(form, x64):
    """optax keeps the slow weights in LookaheadParams; gradtx given plain params, in its state
    (from_optax_state's slow_params, to_optax_state's gradtx.slow_params)."""
    plain = form == "plain"
    mine = gradtx.lookahead(gradtx.adam(0.01), sync_period=3, slow_step_size=0.5)
    theirs = optax.lookahead(optax.adam(0.01), sync_period=3, slow_step_size=0.5)

    step_theirs = _stepper(theirs, standard=True, fast=True)
    step_mine = _stepper(mine, fast=not plain)
    paired = optax.LookaheadParams.init_synced(_params())
    half, optax_state = _run(step_theirs, optax.apply_updates, paired, theirs.init(paired))
    whole, _ = _run(step_theirs, optax.apply_updates, half, optax_state)
    if plain:
        state = gradtx.from_optax_state(mine, optax_state, half.fast, slow_params=half.slow)
        resumed, state = _run(step_mine, gradtx.apply_updates, half.fast, state)
        resumed = optax.LookaheadParams(resumed, gradtx.slow_params(state))
    else:
        state = gradtx.from_optax_state(mine, optax_state, half)
        resumed, _ = _run(step_mine, gradtx.apply_updates, half, state)
    _close(resumed, whole, 1e-12)

    start = paired.fast if plain else paired
    half, state = _run(step_mine, gradtx.apply_updates, start, mine.init(start))
    whole, end = _run(step_mine, gradtx.apply_updates, half, state)
    back = gradtx.to_optax_state(theirs, state, half)
    if plain:
        half = optax.LookaheadParams(half, gradtx.slow_params(state))
        whole = optax.LookaheadParams(whole, gradtx.slow_params(end))
    resumed, _ = _run(step_theirs, optax.apply_updates, half, back)
    _close(resumed, whole, 1e-12)
    slow = {"slow_params": half.slow} if plain else {}
    again = gradtx.from_optax_state(mine, back, half.fast if plain else half, **slow)
    jax.tree.map(np.testing.assert_array_equal, again, state)


def test_an_lbfgs_ring_that_skipped_a_pair_is_turned_for_optax(x64):
    # gradtx does not store the second pair (s'y < 0, skip_curvature_failures), so the slot it
    # writes next (0) is not the one optax writes next, (count - 1) mod 2 = 1: without turning
    # the ring, optax would overwrite the newest pair instead of the oldest
    mine = gradtx.scale_by_lbfgs(memory_size=2, skip_curvature_failures=True)
    theirs = optax.scale_by_lbfgs(memory_size=2)
    points = [(0, 0), (1, 0), (1, 1), (2, 1), (2, 3)]
    grads = [(1, 1), (2, 1), (2, 0), (4, 1), (5, 4)]
    x = [jnp.asarray(p, jnp.float64) for p in points]
    g = [jnp.asarray(p, jnp.float64) for p in grads]
    update = jax.jit(mine.update)
    state = mine.init(x[0])
    for k in range(4):
        _, state = update(g[k], state, x[k])
    assert int(state.next_slot) == 0 and int(state.count) == 4
    back = gradtx.to_optax_state(theirs, state, x[4])
    want, _ = update(g[4], state, x[4])
    with jax.numpy_dtype_promotion("standard"):
        got, _ = jax.jit(theirs.update)(g[4], back, x[4])
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_multi_steps_moves_at_the_end_of_a_cycle(x64):
    mine = gradtx.MultiSteps(gradtx.adam(0.01), 3).gradient_transformation()
    theirs = optax.MultiSteps(optax.adam(0.01), 3, accumulator_dtype=jnp.float64)
    theirs = theirs.gradient_transformation()
    step = _stepper(theirs, standard=True)
    half, state = _run(step, optax.apply_updates, _params(), theirs.init(_params()), 21)
    whole, _ = _run(step, optax.apply_updates, half, state, 9)
    resumed = gradtx.from_optax_state(mine, state, half)
    resumed, _ = _run(_stepper(mine), gradtx.apply_updates, half, resumed, 9)
    _close(resumed, whole, 1e-12)
    # within a cycle optax keeps the mean or the sum of the gradients (use_grad_mean), unsaid
    _, state = step(half, state)
    with pytest.raises(ValueError, match=r"from_optax_state: the MultiSteps at <root> is within"):
        gradtx.from_optax_state(mine, state, half)


def test_states_of_different_algorithms_are_refused_by_path():
    params = _params()
    adam_state = optax.adam(0.1).init(params)
    with pytest.raises(ValueError, match=r"from_optax_state: .*optax's 0/mu/b float"):
        gradtx.from_optax_state(gradtx.sgd(0.1), adam_state, params)
    with pytest.raises(ValueError, match=r"to_optax_state: .*gradtx's"):
        gradtx.to_optax_state(optax.sgd(0.1), gradtx.adam(0.1).init(params), params)
    # the same state's name, another algorithm: optax's rprop is one step late
    with pytest.raises(ValueError, match=r"from_optax_state: ScaleByRpropState at 0: .*late"):
        gradtx.from_optax_state(gradtx.rprop(0.1), optax.rprop(0.1).init(params), params)
    with pytest.raises(ValueError, match=r"to_optax_state: ScaleByRpropState at 0: .*late"):
        gradtx.to_optax_state(optax.rprop(0.1), gradtx.rprop(0.1).init(params), params)


def test_a_lookahead_with_plain_params_needs_its_slow_weights():
    params = _params()
    mine = gradtx.lookahead(gradtx.sgd(0.1), sync_period=2, slow_step_size=0.5)
    state = optax.lookahead(optax.sgd(0.1), 2, 0.5).init(optax.LookaheadParams(params, params))
    with pytest.raises(ValueError, match=r"from_optax_state: the lookahead at .*slow_params="):
        gradtx.from_optax_state(mine, state, params)
    with pytest.raises(ValueError, match=r"from_optax_state: slow_params is given, but"):
        gradtx.from_optax_state(gradtx.sgd(0.1), (), params, slow_params=params)
