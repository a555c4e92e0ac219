"""add_noise, centralize and adaptive_grad_clip: float64 NumPy from the papers, and optax."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx


def leaves64(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


# ---- add_noise -----------------------------------------------------------------------------


def run_noise(tx, grads, steps, *, jit=True):
    update = jax.jit(tx.update) if jit else tx.update
    state, out = tx.init(grads), []
    for _ in range(steps):
        noisy, state = update(grads, state)
        out.append(noisy)
    if jit:
        assert update._cache_size() == 1
    return out, state


GRADS = {"w": jnp.asarray(np.linspace(-1, 1, 12).reshape(4, 3), jnp.float32), "b": jnp.ones(3)}


@pytest.mark.parametrize(
    ("key", "jit"),
    [(0, False), (0, True), (42, True), ("typed", True), ("raw", True)],
    ids=["seed0-eager", "seed0-jit", "seed42-jit", "typed_key-jit", "raw_key-jit"],
)
def test_add_noise_equals_optax_for_the_same_key(key, jit):
    if key == "typed":
        key = jax.random.key(7)
    elif key == "raw":
        key = jax.random.PRNGKey(7)
    ours, _ = run_noise(gradtx.add_noise(0.3, 0.55, key), GRADS, 5, jit=jit)
    with jax.numpy_dtype_promotion("standard"):
        optax_key = key if not isinstance(key, jax.Array) else jax.random.key(7)
        theirs, _ = run_noise(optax.add_noise(0.3, 0.55, key=optax_key), GRADS, 5, jit=jit)
    for a, b in zip(ours, theirs):
        for x, y in zip(leaves64(a), leaves64(b)):
            np.testing.assert_array_equal(x, y)


def test_add_noise_statistics_follow_the_annealing():
    """Over 20 000 elements: mean 0 and variance eta / t**gamma at t = 1, 2, 10, 100."""
    eta, gamma, n = 0.5, 0.55, 20_000
    zeros = {"a": jnp.zeros(n // 2), "b": jnp.zeros((n // 4, 2))}
    out, state = run_noise(gradtx.add_noise(eta, gamma, key=3), zeros, 100)
    for t in (1, 2, 10, 100):
        x = np.concatenate([v.ravel() for v in leaves64(out[t - 1])])
        variance = eta / t**gamma
        assert abs(x.mean()) < 5 * math.sqrt(variance / n)
        # the sample variance of n normals has relative standard deviation sqrt(2 / n)
        assert abs(x.var() / variance - 1) < 5 * math.sqrt(2 / n)
    # fresh noise for every leaf and every step
    first = leaves64(out[0])
    assert abs(np.corrcoef(first[0], first[1].ravel())[0, 1]) < 0.05
    assert abs(np.corrcoef(first[0], leaves64(out[1])[0])[0, 1]) < 0.05
    assert int(state.inner_state.count) == 100
    assert state.inner_state.rng_key.dtype == jnp.uint32


def test_add_noise_standard_deviation_vs_float64():
    """The noise over the noise at step 1 scales exactly with sqrt(eta / t**gamma)."""
    eta, gamma = 0.01, 0.55
    out, _ = run_noise(gradtx.add_noise(eta, gamma, key=11), GRADS, 30)
    unit, _ = run_noise(gradtx.add_noise(1.0, 0.0, key=11), GRADS, 30)  # standard normals
    for t in (1, 7, 30):
        noise = leaves64(out[t - 1])[1] - np.asarray(GRADS["w"], np.float64)
        normal = leaves64(unit[t - 1])[1] - np.asarray(GRADS["w"], np.float64)
        np.testing.assert_allclose(noise, math.sqrt(eta / t**gamma) * normal, rtol=1e-5, atol=1e-7)


def test_add_noise_is_reproducible_and_resumable():
    tx = gradtx.add_noise(0.1, 0.55, key=5)
    full, _ = run_noise(tx, GRADS, 6)
    again, _ = run_noise(gradtx.add_noise(0.1, 0.55, key=5), GRADS, 6)
    other, _ = run_noise(gradtx.add_noise(0.1, 0.55, key=6), GRADS, 6)
    assert all(np.array_equal(a["w"], b["w"]) for a, b in zip(full, again))
    assert not np.array_equal(full[0]["w"], other[0]["w"])
    # a state saved after 3 steps (as plain numpy arrays) continues the same sequence
    _, state = run_noise(tx, GRADS, 3)
    saved = jax.tree.map(np.asarray, state)
    resumed = jax.tree.map(jnp.asarray, saved)
    update = jax.jit(tx.update)  # as in run_noise: eager rounding may differ by an FMA
    for expected in full[3:]:
        noisy, resumed = update(GRADS, resumed)
        np.testing.assert_array_equal(noisy["w"], expected["w"])


def test_add_noise_init_survives_a_donated_state():
    tx = gradtx.add_noise(0.1, 0.55, key=jax.random.key(4))
    step = jax.jit(tx.update, donate_argnums=(1,))
    first, _ = step(GRADS, tx.init(GRADS))  # deletes that state's buffers
    again, _ = step(GRADS, tx.init(GRADS))  # a fresh init still has its key
    np.testing.assert_array_equal(first["w"], again["w"])


def test_add_noise_dtypes_and_edge_cases():
    grads = {"h": jnp.ones(4, jnp.bfloat16), "z": jnp.zeros((0, 3)), "n": None, "s": jnp.ones(())}
    tx = gradtx.add_noise(0.2, 0.55, key=0)
    noisy, _ = tx.update(grads, tx.init(grads))
    assert noisy["h"].dtype == jnp.bfloat16 and noisy["n"] is None
    assert noisy["z"].shape == (0, 3) and noisy["s"].shape == ()
    assert not np.array_equal(noisy["h"], grads["h"])
    silent = gradtx.add_noise(0.0, 0.55, key=0)  # eta = 0: no noise at all
    out, _ = silent.update(GRADS, silent.init(GRADS))
    np.testing.assert_array_equal(out["w"], GRADS["w"])
    empty = gradtx.add_noise(0.2, 0.55, key=0)
    assert empty.update({}, empty.init({}))[0] == {}


def test_add_noise_hyperparameters_are_live():
    tx = gradtx.add_noise(gradtx.exponential_decay(0.5, 10, 0.5), 0.0, key=1)
    update = jax.jit(tx.update)
    state = tx.init(GRADS)
    assert float(gradtx.hyperparams(state)["eta"]) == 0.5
    for _ in range(10):
        _, state = update(GRADS, state)
    assert float(gradtx.hyperparams(state)["eta"]) == pytest.approx(0.25)
    state = gradtx.set_hyperparams(state, eta=0.0, gamma=1.0)
    out, state = update(GRADS, state)
    np.testing.assert_array_equal(out["w"], GRADS["w"])
    assert update._cache_size() == 1


def test_add_noise_bad_input():
    for kwargs, error, message in [
        (dict(eta=-0.1, gamma=0.55, key=0), ValueError, "eta must be >= 0"),
        (dict(eta=0.1, gamma=-1.0, key=0), ValueError, "gamma must be >= 0"),
        (dict(eta=float("nan"), gamma=0.55, key=0), ValueError, "eta must be finite"),
        (dict(eta=0.1, gamma=0.55), TypeError, "key is required"),
        (dict(eta=0.1, gamma=0.55, key=0, seed=0), TypeError, "give key or seed"),
        (dict(eta=0.1, gamma=0.55, key="0"), TypeError, "key must be an int seed"),
        (dict(eta=0.1, gamma=0.55, key=1.5), TypeError, "key must be an int seed"),
        (dict(eta=0.1, gamma=0.55, key=True), TypeError, "key must be an int seed"),
        (dict(eta=0.1, gamma=0.55, seed=2.0), TypeError, "seed must be an int"),
        (dict(eta=0.1, gamma=0.55, key=jnp.ones(2)), TypeError, "key must be an int seed"),
    ]:
        with pytest.raises(error, match=f"^add_noise: {message}"):
            gradtx.add_noise(**kwargs)
    with pytest.raises(ValueError, match="^add_noise: key must be a single key"):
        gradtx.add_noise(0.1, 0.55, key=jax.random.split(jax.random.key(0), 2))
    a = gradtx.add_noise(0.1, 0.55, seed=3)  # optax's older argument name
    b = gradtx.add_noise(0.1, 0.55, key=3)
    np.testing.assert_array_equal(
        a.update(GRADS, a.init(GRADS))[0]["w"], b.update(GRADS, b.init(GRADS))[0]["w"]
    )


# ---- centralize ----------------------------------------------------------------------------


def centralize_reference(g, unit_axis):
    """Yong et al. (2020), eq. 1: each unit's gradient minus its mean over the unit's fan-in."""
    g = np.asarray(g, np.float64)
    if g.ndim <= 1 or g.size == 0:
        return g
    moved = np.moveaxis(g, unit_axis, -1)
    fan_in = moved.reshape(-1, moved.shape[-1])  # one column per unit
    centred = (fan_in - fan_in.mean(axis=0)).reshape(moved.shape)
    return np.moveaxis(centred, -1, unit_axis)


def layer_tree(rng, dtype=jnp.float32):
    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape) + 0.5, dtype)

    return {
        "dense": {"kernel": arr(5, 3), "bias": arr(3)},
        "conv": {"kernel": arr(3, 3, 2, 4), "scale": arr(4)},
        "heads": arr(4, 2, 3),
        "conv3d": arr(2, 2, 2, 2, 3),
        "scalar": arr(),
        "row": arr(1, 6),
        "empty": arr(0, 3),
        "none": None,
    }


@pytest.mark.parametrize(
    ("unit_axis", "jit"), [(-1, False), (-1, True), (0, True), (1, True)], ids=str
)
def test_centralize_matches_numpy(unit_axis, jit):
    grads = layer_tree(np.random.default_rng(0))
    tx = gradtx.centralize(unit_axis=unit_axis)
    update = jax.jit(tx.update) if jit else tx.update
    out, _ = update(grads, tx.init(grads))
    for got, g in zip(jax.tree.leaves(out), jax.tree.leaves(grads)):
        want = centralize_reference(g, unit_axis)
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=1e-6)
        assert got.dtype == g.dtype
    # the defining property: every kernel column (output unit) has zero mean afterwards
    if unit_axis == -1:
        np.testing.assert_allclose(out["dense"]["kernel"].mean(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(out["conv"]["kernel"].mean(axis=(0, 1, 2)), 0, atol=1e-6)
        np.testing.assert_array_equal(out["dense"]["bias"], grads["dense"]["bias"])


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_centralize_unit_axis_0_is_optax(jit):
    grads = layer_tree(np.random.default_rng(1))
    ours = gradtx.centralize(unit_axis=0)
    theirs = optax.centralize()
    ours_update = jax.jit(ours.update) if jit else ours.update
    theirs_update = jax.jit(theirs.update) if jit else theirs.update
    got, _ = ours_update(grads, ours.init(grads))
    with jax.numpy_dtype_promotion("standard"):
        want, _ = theirs_update(grads, theirs.init(grads))
    for a, b in zip(leaves64(got), leaves64(want)):
        np.testing.assert_array_equal(a, b)
    # optax's default centres an (in, out) kernel over its outputs; gradtx's over its inputs
    default, _ = gradtx.centralize().update(grads, None)
    assert not np.allclose(default["dense"]["kernel"], want["dense"]["kernel"])


def test_centralize_bf16_mean_in_float32():
    g = jnp.asarray(np.random.default_rng(2).normal(size=(64, 3)) + 100.0, jnp.bfloat16)
    out, _ = gradtx.centralize().update({"k": g}, None)
    assert out["k"].dtype == jnp.bfloat16
    want = centralize_reference(g, -1)
    np.testing.assert_allclose(np.asarray(out["k"], np.float64), want, atol=2**-8 * 4)


def test_centralize_bad_input():
    for unit_axis in ("0", True, 1.0, None):
        with pytest.raises(TypeError, match="^centralize: unit_axis must be an int"):
            gradtx.centralize(unit_axis=unit_axis)
    tx = gradtx.centralize(unit_axis=2)
    with pytest.raises(ValueError, match="^centralize: unit_axis 2 .*'dense/kernel'"):
        tx.update({"dense": {"kernel": jnp.ones((2, 2))}}, None)
    tx.update({"v": jnp.ones(3)}, None)  # vectors are never centralised: no error


# ---- adaptive_grad_clip --------------------------------------------------------------------


def agc_reference(g, p, clipping, eps, axes):
    """Brock et al. (2021), eq. 3, unit by unit, in float64."""
    g, p = np.asarray(g, np.float64), np.asarray(p, np.float64)
    g_norm = np.sqrt(np.sum(g * g, axis=axes, keepdims=True))
    p_norm = np.maximum(np.sqrt(np.sum(p * p, axis=axes, keepdims=True)), eps)
    clipped = clipping * p_norm / np.where(g_norm > 0, g_norm, 1.0) * g
    return np.where(g_norm / p_norm > clipping, clipped, g)


DEFAULT_AXES = {0: None, 1: None, 2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}


def agc_problem(seed, dtype=jnp.float32):
    """Params, and grads whose units' norm ratios straddle the clipping threshold 0.1."""
    rng = np.random.default_rng(seed)
    params = layer_tree(rng, dtype)
    params["zero_init"] = jnp.zeros((4, 3), dtype)

    def grad(p):
        if p is None:
            return None
        scale = np.exp(rng.uniform(np.log(0.01), np.log(1.0), size=p.shape[-1:] or ()))
        return jnp.asarray(rng.normal(size=p.shape) * scale, dtype)

    return params, jax.tree.map(grad, params)


def default_axes(x):
    shape = np.shape(x)
    return None if sum(d != 1 for d in shape) <= 1 else DEFAULT_AXES[len(shape)]


@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_adaptive_grad_clip_matches_numpy_and_optax(eps):
    params, grads = agc_problem(0)
    tx = gradtx.adaptive_grad_clip(0.1, eps=eps)
    update = jax.jit(tx.update)
    out, _ = update(grads, tx.init(params), params)
    clipped_units = 0
    for got, g, p in zip(jax.tree.leaves(out), jax.tree.leaves(grads), jax.tree.leaves(params)):
        want = agc_reference(g, p, 0.1, eps, default_axes(g))
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-6, atol=1e-9)
        clipped_units += int(np.sum(np.any(want != np.asarray(g, np.float64), axis=0)))
    assert clipped_units > 5  # some units clipped, some not
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.adaptive_grad_clip(0.1, eps=eps)
        want_optax, _ = jax.jit(theirs.update)(grads, theirs.init(params), params)
    for a, b in zip(leaves64(out), leaves64(want_optax)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_adaptive_grad_clip_eagerly():
    """Eagerly (op by op: every leaf shape compiles each op, so a small tree) as under jit."""
    params, grads = agc_problem(5)
    params, grads = ({"k": t["dense"]["kernel"], "b": t["dense"]["bias"]} for t in (params, grads))
    grads["k"] = grads["k"] * 10.0  # some units clipped
    tx = gradtx.adaptive_grad_clip(0.1)
    out, _ = tx.update(grads, tx.init(params), params)
    jitted, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    for name in ("k", "b"):
        want = agc_reference(grads[name], params[name], 0.1, 1e-3, default_axes(grads[name]))
        np.testing.assert_allclose(np.asarray(out[name], np.float64), want, rtol=2e-6)
        np.testing.assert_allclose(out[name], jitted[name], rtol=1e-6)
    assert not np.allclose(out["k"], grads["k"])


@pytest.mark.parametrize("axis", [1, (0, 1), -1])
def test_adaptive_grad_clip_with_axis(axis):
    rng = np.random.default_rng(3)
    params = {"a": jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)}
    grads = {"a": jnp.asarray(rng.normal(size=(3, 4, 5)) * 0.3, jnp.float32)}
    tx = gradtx.adaptive_grad_clip(0.2, axis=axis)
    out, _ = tx.update(grads, tx.init(params), params)
    axes = (axis,) if isinstance(axis, int) else axis
    want = agc_reference(grads["a"], params["a"], 0.2, 1e-3, axes)
    np.testing.assert_allclose(np.asarray(out["a"], np.float64), want, rtol=2e-6)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.adaptive_grad_clip(0.2, axis=axis)
        want_optax, _ = theirs.update(grads, theirs.init(params), params)
    np.testing.assert_allclose(out["a"], want_optax["a"], rtol=1e-6)


def test_adaptive_grad_clip_zero_params_and_zero_grads():
    """Zero-initialised weights: gradients clipped to norm clipping * eps, never to zero."""
    params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
    grads = {"w": jnp.asarray([[3.0, 0.0], [4.0, 0.0], [0.0, 0.0]]), "b": jnp.zeros(2)}
    tx = gradtx.adaptive_grad_clip(0.1, eps=1e-3)
    out, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(out["w"][:, 0], [0.6e-4, 0.8e-4, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(out["w"][:, 1], 0.0)
    np.testing.assert_array_equal(out["b"], 0.0)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(out))

    def total(g):  # gradients through the clip stay finite where nothing is clipped
        return sum(jnp.sum(x) for x in jax.tree.leaves(tx.update(g, tx.init(params), params)[0]))

    d = jax.jit(jax.grad(total))({"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)})
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(d))


def test_adaptive_grad_clip_bf16_and_live_clipping():
    params, grads = agc_problem(4, jnp.bfloat16)
    tx = gradtx.adaptive_grad_clip(0.1)
    update = jax.jit(tx.update)
    state = tx.init(params)
    out, _ = update(grads, state, params)
    for got, g, p in zip(jax.tree.leaves(out), jax.tree.leaves(grads), jax.tree.leaves(params)):
        assert got.dtype == jnp.bfloat16
        want = agc_reference(g, p, 0.1, 1e-3, default_axes(g))
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2**-7, atol=1e-30)
    assert float(gradtx.hyperparams(state)["clipping"]) == pytest.approx(0.1)
    loose = gradtx.set_hyperparams(state, clipping=1e6)  # nothing clipped any more
    out, _ = update(grads, loose, params)
    for got, g in zip(jax.tree.leaves(out), jax.tree.leaves(grads)):
        np.testing.assert_array_equal(got, g)
    assert update._cache_size() == 1


def test_adaptive_grad_clip_bad_input():
    for kwargs, error, message in [
        (dict(clipping=0.0), ValueError, "clipping must be > 0"),
        (dict(clipping=-0.1), ValueError, "clipping must be > 0"),
        (dict(clipping=0.1, eps=-1e-3), ValueError, "eps must be >= 0"),
        (dict(clipping=None), TypeError, "clipping"),
        (dict(clipping=0.1, axis="0"), TypeError, "axis must be None, an int or a tuple"),
        (dict(clipping=0.1, axis=[0, 1]), TypeError, "axis must be None, an int or a tuple"),
        (dict(clipping=0.1, axis=(0, True)), TypeError, "axis must be None, an int or a tuple"),
    ]:
        with pytest.raises(error, match=f"^adaptive_grad_clip: {message}"):
            gradtx.adaptive_grad_clip(**kwargs)
    tx = gradtx.adaptive_grad_clip(0.1)
    p = {"w": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match="^adaptive_grad_clip: update needs params"):
        tx.update(p, tx.init(p))
    with pytest.raises(ValueError, match="^adaptive_grad_clip: .*'v'"):
        tx.update({"v": jnp.ones((2, 2))}, tx.init(p), p)
    six = {"x": jnp.ones((2,) * 6)}
    with pytest.raises(ValueError, match="^adaptive_grad_clip: no default .*'x'.*give axis"):
        tx.update(six, tx.init(six), six)
    bad_axis = gradtx.adaptive_grad_clip(0.1, axis=3)
    with pytest.raises(ValueError, match="^adaptive_grad_clip: axis 3 is out of range .*'w'"):
        bad_axis.update(p, bad_axis.init(p), p)
