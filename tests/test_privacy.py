"""DP-SGD: differentially_private_aggregate and dpsgd, on per-example gradients.

Their updates carry a leading axis of examples that the params lack, which the shared tables'
runners do not make (tests/registry/wrappers_misc.py has their bad-argument rows). Here:

* optax.contrib's numbers in float64 over 10 steps, to 1e-10: without noise (clipping and
  averaging), and with noise from the same key (the draws are the same);
* the noise's statistics over S = 2000 steps of B = 8 examples, 40 coordinates: per
  coordinate, the sample mean of the update must be the noise-free aggregate and its sample
  standard deviation σC/B (see test_noise_has_the_mechanisms_statistics for the tolerances);
* the per-example layout refused where it is wrong, naming the leaf; live hyperparameters
  (hyperparams, set_hyperparams without retracing, a schedule, a vmapped sweep); built and
  run inside a traced function.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

EXAMPLES = 6
SHAPES = {"w": (4, 3), "b": (3,), "s": ()}


def _params(dtype):
    rng = np.random.default_rng(0)
    return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in SHAPES.items()}


def _per_example(steps, dtype, seed=1):
    """Per-example gradients whose norms spread around 1: some examples clipped, some not."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        scales = rng.uniform(0.2, 2.0, size=(EXAMPLES, 1))
        g = {k: rng.normal(size=(EXAMPLES, *s)) for k, s in SHAPES.items()}
        norms = np.sqrt(sum(np.sum(x.reshape(EXAMPLES, -1) ** 2, axis=1) for x in g.values()))
        out.append(
            {
                k: jnp.asarray(x * (scales / norms[:, None]).reshape((EXAMPLES,) + (1,) * len(s)))
                for (k, x), s in zip(g.items(), SHAPES.values())
            }
        )
    return [jax.tree.map(lambda x: x.astype(dtype), g) for g in out]


def _run(tx, params, grads, apply):
    update = jax.jit(tx.update)
    state = tx.init(params)
    trajectory = []
    for g in grads:
        updates, state = update(g, state, params)
        params = apply(params, updates)
        trajectory.append(jax.tree.map(np.asarray, (params, updates)))
    return trajectory


def _deviation(ours, theirs):
    worst = 0.0
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        scale = np.max(np.abs(b))
        worst = max(worst, float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0)))
    return worst


def _pairs(noise):
    import optax
    import optax.contrib

    key = 3
    return {
        "aggregate": (
            gradtx.differentially_private_aggregate(1.0, noise, key=key),
            lambda: optax.contrib.differentially_private_aggregate(
                1.0, noise, key=jax.random.key(key)
            ),
        ),
        "dpsgd": (
            gradtx.dpsgd(0.1, 0.7, noise, seed=key),
            lambda: optax.contrib.dpsgd(0.1, 0.7, noise, seed=key),
        ),
        "dpsgd_nesterov": (
            gradtx.dpsgd(0.1, 1.2, noise, seed=key, momentum=0.9, nesterov=True),
            lambda: optax.contrib.dpsgd(0.1, 1.2, noise, seed=key, momentum=0.9, nesterov=True),
        ),
    }


@pytest.mark.parametrize(
    ("name", "noise"),
    [("aggregate", 0.0), ("aggregate", 1.1), ("dpsgd", 0.0), ("dpsgd_nesterov", 1.1)],
    ids=["aggregate_clip_only", "aggregate_noise", "dpsgd_clip_only", "dpsgd_nesterov_noise"],
)
def test_matches_optax_contrib(name, noise, x64):
    import optax

    ours, make_theirs = _pairs(noise)[name]
    params, grads = _params(jnp.float64), _per_example(10, jnp.float64)
    got = _run(ours, params, grads, gradtx.apply_updates)
    with warnings.catch_warnings(), jax.numpy_dtype_promotion("standard"):
        # optax's dpsgd hands its seed on by a deprecated argument name
        warnings.simplefilter("ignore", DeprecationWarning)
        want = _run(make_theirs(), params, grads, optax.apply_updates)
    assert _deviation(got, want) < 1e-10


def test_noise_has_the_mechanisms_statistics(x64):
    """Per coordinate, S samples of dpsgd's update at learning rate 1: mean -(1/B) sum_i
    clip(g_i), standard deviation σC/B.

    Tolerances, for S i.i.d. normal samples of standard deviation s: the sample mean is off by
    s/√S in standard deviation and the sample standard deviation by s/√(2(S-1)) (its normal
    approximation, good at S = 2000). Each of the 40 coordinates must be within 5 of those:
    a correct implementation fails one of the 80 checks with probability below 80 · 5.7e-7 <
    1e-4. Step t's noise must also be uncorrelated with step t+1's and between leaves: the
    pooled sample correlation of N = S·20 pairs within 5/√N.
    """
    samples, examples, clip, multiplier = 2000, 8, 0.5, 1.3
    shapes = {"a": (4, 5), "b": (20,)}
    rng = np.random.default_rng(5)
    grads = {k: jnp.asarray(rng.normal(size=(examples, *s))) for k, s in shapes.items()}
    params = {k: jnp.zeros(s) for k, s in shapes.items()}
    tx = gradtx.dpsgd(1.0, clip, multiplier, seed=11)
    noiseless = gradtx.dpsgd(1.0, clip, 0.0, seed=11)
    exact, _ = noiseless.update(grads, noiseless.init(params), params)

    def step(state, _):
        updates, state = tx.update(grads, state, params)
        return state, updates

    _, draws = jax.jit(lambda s: jax.lax.scan(step, s, None, length=samples))(tx.init(params))
    s = multiplier * clip / examples
    for k in shapes:
        x = np.asarray(draws[k]).reshape(samples, -1)
        mean_error = np.abs(x.mean(axis=0) - np.asarray(exact[k]).ravel())
        assert np.max(mean_error) < 5 * s / math.sqrt(samples)
        std_error = np.abs(x.std(axis=0, ddof=1) - s)
        assert np.max(std_error) < 5 * s / math.sqrt(2 * (samples - 1))
    noise = {
        k: np.asarray(draws[k]).reshape(samples, -1) - np.asarray(exact[k]).ravel() for k in shapes
    }
    a, b = noise["a"], noise["b"]
    for x, y in ((a[1:], a[:-1]), (a, b)):
        n = x.size
        rho = np.sum(x * y) / math.sqrt(np.sum(x * x) * np.sum(y * y))
        assert abs(rho) < 5 / math.sqrt(n)


def test_the_per_example_layout_is_checked_naming_the_leaf():
    tx = gradtx.differentially_private_aggregate(1.0, 1.0, key=0)
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
    state = tx.init(params)
    cases = {
        "b": {"w": jnp.zeros((4, 2, 3)), "b": jnp.zeros(())},  # a scalar: no examples axis
        "'w': 4": {"w": jnp.zeros((4, 2, 3)), "b": jnp.zeros((5, 3))},  # 4 and 5 examples
        "'w'": {"w": jnp.zeros((4, 3, 2)), "b": jnp.zeros((4, 3))},  # not the param's shape
        "0 examples": {"w": jnp.zeros((0, 2, 3)), "b": jnp.zeros((0, 3))},
    }
    for jit in (False, True):
        update = jax.jit(tx.update) if jit else tx.update
        for expected, grads in cases.items():
            with pytest.raises(ValueError) as info:
                update(grads, state, params)
            message = str(info.value)
            assert message.startswith("differentially_private_aggregate:"), message
            assert expected in message, message


def test_hyperparameters_are_live_and_swept():
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.asarray([[3.0, 4.0, 0.0], [0.0, 0.3, 0.4]])}
    tx = gradtx.dpsgd(
        1.0, gradtx.linear_schedule(2.5, 1.0, 1), noise_multiplier=0.5, seed=0, momentum=0.5
    )
    state = tx.init(params)
    assert set(gradtx.hyperparams(state)) == {
        "learning_rate",
        "l2_norm_clip",
        "noise_multiplier",
        "momentum",
    }
    traces = []

    @jax.jit
    def step(state):
        traces.append(1)
        return tx.update(grads, state, params)

    state = gradtx.set_hyperparams(state, noise_multiplier=0.0)
    # examples (3, 4, 0) and (0, 0.3, 0.4), of norms 5 and 0.5; clip 2.5 halves the first
    updates, state = step(state)
    np.testing.assert_allclose(updates["w"], [-0.75, -1.15, -0.2], rtol=1e-6)
    assert float(gradtx.hyperparams(state)["l2_norm_clip"]) == 1.0  # the schedule moved on
    updates, state = step(gradtx.set_hyperparams(state, momentum=0.0, l2_norm_clip=0.5))
    # clip 0.5: the first example scaled to (0.3, 0.4, 0), the second within; no momentum
    np.testing.assert_allclose(updates["w"], [-0.15, -0.35, -0.2], rtol=1e-6)
    assert len(traces) == 1
    swept = gradtx.sweep(state, l2_norm_clip=[0.5, 5.0])
    out, _ = jax.jit(jax.vmap(lambda s: tx.update(grads, s, params)))(swept)
    np.testing.assert_allclose(out["w"][1], [-1.5, -2.15, -0.2], rtol=1e-6)  # clip 5: none
    np.testing.assert_allclose(out["w"][0], [-0.15, -0.35, -0.2], rtol=1e-6)


def test_built_and_run_inside_a_traced_function():
    params = {"w": jnp.zeros(2)}
    grads = {"w": jnp.ones((4, 2))}

    @jax.jit
    def run(clip):
        tx = gradtx.dpsgd(0.1, clip, noise_multiplier=1.0, seed=7)
        updates, _ = tx.update(grads, tx.init(params), params)
        return updates["w"]

    outside = gradtx.dpsgd(0.1, 0.5, noise_multiplier=1.0, seed=7)
    want, _ = jax.jit(outside.update)(grads, outside.init(params), params)
    np.testing.assert_allclose(run(0.5), want["w"], rtol=1e-6)


def test_low_precision_gradients_and_momentum_keep_their_dtypes():
    params = {"w": jnp.zeros(3, jnp.bfloat16)}
    grads = {"w": jnp.ones((5, 3), jnp.bfloat16)}
    aggregate = gradtx.differentially_private_aggregate(1.0, 1.0, key=0)
    updates, _ = jax.jit(aggregate.update)(grads, aggregate.init(params), params)
    assert updates["w"].dtype == jnp.bfloat16 and updates["w"].shape == (3,)
    assert bool(jnp.all(jnp.isfinite(updates["w"])))
    tx = gradtx.dpsgd(0.1, 1.0, 1.0, seed=0, momentum=0.9, accumulator_dtype=jnp.float32)
    state = tx.init(params)
    _, new_state = jax.jit(tx.update)(grads, state, params)
    assert jax.tree.map(jax.typeof, new_state) == jax.tree.map(jax.typeof, state)
    (momentum,) = [x for x in jax.tree.leaves(state) if x.shape == (3,)]
    assert momentum.dtype == jnp.float32


def test_complex_gradients_are_the_real_problem_on_the_pairs():
    # the example norms are those of the (re, im) pairs; no noise, so the numbers are exact
    rng = np.random.default_rng(2)
    g = rng.normal(size=(5, 3)) + 1j * rng.normal(size=(5, 3))
    tx = gradtx.differentially_private_aggregate(1.0, 0.0, key=0)
    complex_out, _ = jax.jit(tx.update)(
        {"z": jnp.asarray(g, jnp.complex64)}, tx.init({"z": jnp.zeros(3, jnp.complex64)})
    )
    pairs = jnp.asarray(np.concatenate([g.real, g.imag], axis=1), jnp.float32)
    real_out, _ = jax.jit(tx.update)({"x": pairs}, tx.init({"x": jnp.zeros(6)}))
    got = np.concatenate([np.real(complex_out["z"]), np.imag(complex_out["z"])])
    np.testing.assert_allclose(got, real_out["x"], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "clip, scale",
    [(1.0, 1.0), (1.0, 1e30), (1e-30, 1e20), (1e-30, 1.0), (3.0, 1e-30)],
    ids=["ordinary", "huge_norms", "factor_below_normal", "tiny_clip", "tiny_norms"],
)
def test_clipping_is_exact_over_the_float32_range(clip, scale, jit):
    """Per-example norms that overflow float32's squares (1e30), and clipping factors below the
    normal range (1e-30 / 1e20: the examples are clipped apart, not by a contraction), against
    float64 NumPy."""
    rng = np.random.default_rng(3)
    grads = rng.normal(size=(5, 4, 3)) * scale * rng.choice([1.0, 1e-3], size=(5, 1, 1))
    tx = gradtx.differentially_private_aggregate(clip, 0.0, key=0)
    params = {"w": jnp.zeros((4, 3))}
    update = jax.jit(tx.update) if jit else tx.update
    out, _ = update({"w": jnp.asarray(grads, jnp.float32)}, tx.init(params), params)
    g32 = np.asarray(jnp.asarray(grads, jnp.float32), np.float64)
    norms = np.sqrt(np.sum(g32**2, axis=(1, 2), keepdims=True))
    expected = np.sum(g32 * np.minimum(1.0, clip / norms), axis=0) / 5
    # relative to the largest magnitude (as tests/helpers.deviation): the sum over examples
    # cancels in some elements
    error = np.max(np.abs(np.asarray(out["w"], np.float64) - expected)) / np.max(np.abs(expected))
    assert error < 2e-6, error
