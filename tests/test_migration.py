"""A run's optimizer state between optax and gradtx (``from_optax_state``, ``to_optax_state``).

Each case: 20 steps with one library, the state converted, 20 more with the other, against 40
steps with the library that finished the run; in float64, so that the comparison sees the
conversion and not float32 rounding. The tolerance is that of the two libraries' own agreement
on the algorithm (1e-12 relative; Adafactor's 1e-6 and MADGRAD's 1e-7: optax forms a decay or a
step weight in float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx._interop import migration
from gradtx._interop.migration import _is_count

STEPS = 20
CASES = {
    "sgd_momentum": ("sgd", dict(learning_rate=0.01, momentum=0.9, nesterov=True)),
    "adam": ("adam", dict(learning_rate=0.01)),
    "adamw_schedule": ("adamw", dict(learning_rate="warmup_cosine", weight_decay=0.1)),
    "nadamw": ("nadamw", dict(learning_rate=0.01)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.01, momentum=0.5)),
    "rmsprop_centered": ("rmsprop", dict(learning_rate=0.01, centered=True)),
    "rmsprop_bias_correction": ("rmsprop", dict(learning_rate=0.01, bias_correction=True)),
    "adagrad": ("adagrad", dict(learning_rate=0.1)),
    "adadelta": ("adadelta", dict(learning_rate=0.5)),
    "lion": ("lion", dict(learning_rate=0.001)),
    "lamb": ("lamb", dict(learning_rate=0.01)),
    "adamax": ("adamax", dict(learning_rate=0.01)),
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
    "ademamix": ("contrib.ademamix", dict(learning_rate=0.01)),
    "simplified_ademamix": ("contrib.simplified_ademamix", dict(learning_rate=0.01)),
    "madgrad": ("contrib.madgrad", dict(learning_rate=0.01)),
}
# the libraries' own agreement: optax's Adafactor forms its decay, its cosine schedule its value,
# and its MADGRAD sqrt(k + 1), in float32 under x64 too
TOLERANCE = {"adafactor": 1e-6, "adamw_schedule": 1e-6, "madgrad": 1e-7}


def _params():
    rng = np.random.RandomState(0)
    return {"w": jnp.asarray(rng.randn(4, 3)), "b": jnp.asarray(rng.randn(3))}


def _grads(params):
    return jax.tree.map(lambda x: 0.3 * x + 0.1 * jnp.sin(3 * x), params)


def _run(tx, apply, params, state, steps, standard=False):
    step = jax.jit(lambda p, s: tx.update(_grads(p), s, p))
    for _ in range(steps):
        if standard:
            with jax.numpy_dtype_promotion("standard"):
                updates, state = step(params, state)
        else:
            updates, state = step(params, state)
        params = apply(params, updates)
    return params, state


def _close(got, want, rtol):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14)


def _schedule(lib):
    # each library's own: optax's schedules need standard promotion, gradtx's run under strict
    return lib.warmup_cosine_decay_schedule(0.0, 0.02, 5, 60)


def _pair(case):
    name, kwargs = CASES[case]
    made = {}
    for lib in (gradtx, optax):
        args = {k: _schedule(lib) if v == "warmup_cosine" else v for k, v in kwargs.items()}
        factory = lib
        for part in name.split("."):  # "contrib.ademamix": each library's contrib namespace
            factory = getattr(factory, part)
        with jax.numpy_dtype_promotion("standard"):
            made[lib] = factory(**args)
    return made[gradtx], made[optax]


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_optax_run_resumes_under_gradtx_and_back(case, x64):
    mine, theirs = _pair(case)
    params = _params()
    with jax.numpy_dtype_promotion("standard"):
        start = theirs.init(params)
    half, optax_state = _run(theirs, optax.apply_updates, params, start, STEPS, standard=True)
    whole, _ = _run(theirs, optax.apply_updates, half, optax_state, STEPS, standard=True)
    state = gradtx.from_optax_state(mine, optax_state, half)
    resumed, _ = _run(mine, gradtx.apply_updates, half, state, STEPS)
    rtol = TOLERANCE.get(case, 1e-12)
    _close(resumed, whole, rtol)

    half, state = _run(mine, gradtx.apply_updates, params, mine.init(params), STEPS)
    whole, _ = _run(mine, gradtx.apply_updates, half, state, STEPS)
    back = gradtx.to_optax_state(theirs, state, half)
    resumed, _ = _run(theirs, optax.apply_updates, half, back, STEPS, standard=True)
    _close(resumed, whole, rtol)
    # and there and back is the identity (the tables too, where optax keeps a step count)
    again = gradtx.from_optax_state(mine, back, half)
    counted = any(_is_count(p, x) for p, x in jax.tree_util.tree_flatten_with_path(back)[0])
    if counted:
        kept, want = again, state
    else:
        # optax keeps no step count: the tables' counts, and any count gradtx keeps, restart
        kept, want = (
            [x for p, x, _ in migration._gradtx_arrays(s) if not _is_count(p, x)]
            for s in (again, state)
        )
    for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)


def test_a_clipped_scheduled_adamw_chain_resumes_with_its_schedule(x64):
    schedule = _schedule(optax)
    mine = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(_schedule(gradtx)))
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule))
        start = theirs.init(_params())
    half, optax_state = _run(theirs, optax.apply_updates, _params(), start, STEPS, standard=True)
    whole, _ = _run(theirs, optax.apply_updates, half, optax_state, STEPS, standard=True)
    state = gradtx.from_optax_state(mine, optax_state, half)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(
        float(schedule(STEPS)), rel=1e-12
    )
    resumed, _ = _run(mine, gradtx.apply_updates, half, state, STEPS)
    _close(resumed, whole, TOLERANCE["adamw_schedule"])


def test_states_of_different_algorithms_are_refused_by_path():
    params = _params()
    adam_state = optax.adam(0.1).init(params)
    with pytest.raises(ValueError, match=r"from_optax_state: .*optax's 0/mu/b float"):
        gradtx.from_optax_state(gradtx.sgd(0.1), adam_state, params)
    with pytest.raises(ValueError, match=r"to_optax_state: .*gradtx's"):
        gradtx.to_optax_state(optax.sgd(0.1), gradtx.adam(0.1).init(params), params)
