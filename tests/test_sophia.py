"""Sophia's refresh: one compiled step for refresh and plain steps, the period live."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests.registry.curvature import coupled_cosine


def _steps(tx, n, params):
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        grads = jax.grad(coupled_cosine)(params)
        updates, state = tx.update(grads, state, params, obj_fn=coupled_cosine)
        return gradtx.apply_updates(params, updates), state

    state = tx.init(params)
    keys = []
    for _ in range(n):
        params, state = step(params, state)
        keys.append(np.asarray(state.inner_state[0].hessian_fn_state.key))
    return traces, keys, state


def test_refresh_every_k_steps_in_one_compiled_step():
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    traces, keys, state = _steps(gradtx.sophia(0.01, update_interval=3), 7, params)
    assert len(traces) == 1
    # the key moves on only at the refreshes: after steps 1, 4 and 7
    moved = [not np.array_equal(a, b) for a, b in zip(keys, keys[1:])]
    assert moved == [False, False, True, False, False, True]


def test_update_interval_is_live():
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    tx = gradtx.sophia(0.01, update_interval=3)
    state = gradtx.set_hyperparams(tx.init(params), update_interval=1)
    assert float(gradtx.hyperparams(state)["update_interval"]) == 1.0
    grads = jax.grad(coupled_cosine)(params)
    _, state = tx.update(grads, state, params, obj_fn=coupled_cosine)
    key = np.asarray(state.inner_state[0].hessian_fn_state.key)
    _, state = tx.update(grads, state, params, value_fn=coupled_cosine)
    assert not np.array_equal(key, state.inner_state[0].hessian_fn_state.key)


def test_init_on_shape_dtype_structs():
    tx = gradtx.sophia(0.01)
    abstract = {"w": jax.ShapeDtypeStruct((4, 3), jnp.bfloat16)}
    state = tx.init(abstract)
    concrete = tx.init({"w": jnp.zeros((4, 3), jnp.bfloat16)})
    assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == jax.tree.map(
        lambda x: (x.shape, x.dtype), concrete
    )


# ---- the Gauss-Newton-Bartlett estimator (Sophia-G) ----------------------------------------

_X = np.random.default_rng(0).normal(size=(6, 4))  # 6 examples, 4 features


def _softmax_model(x):
    """Logits of a linear softmax model {"w": (4, 3), "b": (3,)} on the examples x."""
    return lambda p: x @ p["w"] + p["b"]


def _model_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=3), dtype),
    }


def _numpy_gnb(params, x, key_data):
    """Algorithm 2 in float64 NumPy: B times the squared gradient of the mean cross-entropy on
    labels drawn from the model (drawn with jax.random from the same key, as gradtx does)."""
    w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
    z = x @ w + b
    _, draw = jax.random.split(jax.random.wrap_key_data(jnp.asarray(key_data)))
    labels = np.asarray(jax.random.categorical(draw, jnp.asarray(z), axis=-1))
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dz = (p - np.eye(3)[labels]) / len(x)
    grads = {"w": x.T @ dz, "b": dz.sum(0)}
    return {k: len(x) * g * g for k, g in grads.items()}


def test_gnb_matches_numpy_draw_for_draw(x64):
    params = _model_params(jnp.float64)
    tx = gradtx.gauss_newton_bartlett_estimator_diag_hessian(random_seed=5)
    state = tx.init(params)
    fn = _softmax_model(jnp.asarray(_X))
    for _ in range(3):
        want = _numpy_gnb(params, _X, np.asarray(state.key))
        got, state = tx.update(params, state, params, logits_fn=fn)
        for k in want:
            np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-12, atol=1e-15)


def test_gnb_estimates_the_gauss_newton_diagonal_in_expectation():
    """E[B g ⊙ g] = diag of (1/B) Σ_b J_bᵀ (diag p_b - p_b p_bᵀ) J_b (Bartlett's identity makes
    the cross terms vanish); for the linear model, x_i² (p_c - p_c²) averaged over examples."""
    params = _model_params(jnp.float32)
    fn = _softmax_model(jnp.asarray(_X, jnp.float32))
    draws = 20000

    def one(seed):
        tx = gradtx.gauss_newton_bartlett_estimator_diag_hessian(random_seed=0)
        state = tx.init(params)._replace(key=jax.random.key_data(jax.random.key(seed)))
        return tx.update(params, state, params, logits_fn=fn)[0]

    mean = jax.tree.map(
        lambda e: np.asarray(e, np.float64).mean(0), jax.jit(jax.vmap(one))(jnp.arange(draws))
    )
    z = _X @ np.asarray(params["w"], np.float64) + np.asarray(params["b"], np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = {"w": (_X**2).T @ (p - p * p) / len(_X), "b": (p - p * p).mean(0)}
    for k in want:
        # the Monte-Carlo error of 20000 draws is about 1% of the largest entry
        np.testing.assert_allclose(mean[k], want[k], atol=0.04 * want[k].max())


def test_sophia_g_trains_a_softmax_regression_in_one_compiled_step():
    x = jnp.asarray(_X, jnp.float32)
    labels = jnp.asarray([0, 1, 2, 0, 1, 2])
    model = _softmax_model(x)

    def loss(p):
        log_p = jax.nn.log_softmax(model(p), axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=-1))

    tx = gradtx.sophia(
        0.05,
        gamma=0.05,
        update_interval=2,
        hessian_diagonal_fn=gradtx.gauss_newton_bartlett_estimator_diag_hessian(random_seed=1),
    )
    traces = []

    @jax.jit
    def step(p, state):
        traces.append(1)
        updates, state = tx.update(jax.grad(loss)(p), state, p, logits_fn=model)
        return gradtx.apply_updates(p, updates), state

    params = _model_params(jnp.float32)
    state = tx.init(params)
    start = float(loss(params))
    for _ in range(100):
        params, state = step(params, state)
    assert len(traces) == 1
    assert float(loss(params)) < 0.5 * start


def test_gnb_refuses_a_missing_model_or_logits_without_classes():
    params = _model_params(jnp.float32)
    tx = gradtx.gauss_newton_bartlett_estimator_diag_hessian()
    state = tx.init(params)
    name = "gauss_newton_bartlett_estimator_diag_hessian"
    with pytest.raises(ValueError, match=f"{name}: update needs the model as logits_fn"):
        tx.update(params, state, params, obj_fn=coupled_cosine)
    with pytest.raises(ValueError, match=f"{name}: logits_fn must return logits of shape"):
        tx.update(params, state, params, logits_fn=lambda p: jnp.sum(p["b"]))
    with pytest.raises(ValueError, match=f"{name}: logits_fn must return real floats"):
        tx.update(params, state, params, logits_fn=lambda p: jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(TypeError, match=f"{name}: Sophia has no complex form"):
        tx.init({"w": jnp.zeros(2, jnp.complex64)})
