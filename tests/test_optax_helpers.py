"""optax's transformations and helpers that gradtx took over, each against optax's function of
the same name: safe norms, zero_nans and keep_params_nonnegative, per-example and unit-wise
clipping, apply_every, snapshot and measure_with_ema, the conditional wrappers, flatten,
MultiSteps' skip functions, and the extra-arguments types. Eagerly and under ``jit``.

optax runs under standard dtype promotion (the suite's is strict, which optax's code does not
follow); gradtx under the suite's.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def standard(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` under standard dtype promotion (for optax)."""
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args, **kwargs)


def maybe_jit(fn, jit: bool):
    return jax.jit(fn) if jit else fn


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert jnp.result_type(x) == jnp.result_type(y), (x, y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_trees_close(a, b, rtol=1e-6, atol=0.0):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def counting_jit(fn):
    """``jax.jit(fn)`` and a list that grows by one at each trace."""
    traces = []

    def traced(*args, **kwargs):
        traces.append(1)
        return fn(*args, **kwargs)

    return jax.jit(traced), traces


PARAMS = {"w": jnp.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]]), "b": jnp.array([0.1, -0.2])}


def gradients(steps, seed=0):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), PARAMS)
        for _ in range(steps)
    ]


def run(tx, grads, *, jit, params=PARAMS, optax_tx=False, **extra):
    """Every step's updates and the last state, params fixed."""
    update = maybe_jit(tx.update, jit)
    state = tx.init(params)
    out = []
    for g in grads:
        if optax_tx:
            updates, state = standard(update, g, state, params, **extra)
        else:
            updates, state = update(g, state, params, **extra)
        out.append(updates)
    return out, state


# ---- safe_norm, safe_root_mean_squares -----------------------------------------------------

_ORDS = [None, np.inf, -np.inf, "fro", "nuc", 0, 1, 2, -2, -1.5, 1.5]


def _norm_cases():
    for ord_, axis, keepdims in itertools.product(_ORDS, [None, 0, 1, (0, 1)], [False, True]):
        if ord_ == 0 and axis is None or isinstance(ord_, float) and axis is None:
            continue  # not norms jnp.linalg.norm takes for a matrix
        if isinstance(ord_, str) and axis in (0, 1):
            continue
        if axis == (0, 1) and ord_ in (0, -1.5, 1.5):
            continue
        yield ord_, axis, keepdims


_NORMS = [
    functools.partial(gradtx.safe_norm, ord=o, axis=a, keepdims=k) for o, a, k in _norm_cases()
]


def _optax_norms(x, floors):
    return [[optax.safe_norm(x, m, o, a, k) for m in floors] for o, a, k in _norm_cases()]


@JIT
def test_safe_norm_matches_optax_for_every_order_and_axis(jit):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), jnp.float32)
    floors = (0.0, 0.5, jnp.float32(20.0))  # 20: above every norm of x
    norms = _NORMS if jit else _NORMS[::7]  # eagerly, every op compiles: a sample
    cases = list(_norm_cases()) if jit else list(_norm_cases())[::7]
    got = maybe_jit(lambda x: [[norm(x, m) for m in floors] for norm in norms], jit)(x)
    want = standard(jax.jit(lambda x: _optax_norms(x, floors)), x)
    want = want if jit else want[::7]
    for case, values, wanted in zip(cases, got, want):
        for value, w in zip(values, wanted):
            assert value.shape == w.shape and value.dtype == w.dtype, case
            np.testing.assert_allclose(value, w, rtol=1e-6, err_msg=str(case))


def test_safe_norm_has_zero_gradient_at_zero_for_every_order_and_axis():
    # jnp.maximum(jnp.linalg.norm(x), m) has NaN gradients there; one program for all
    def jacobians(x, m):
        return [(jax.jacfwd(norm)(x, m), jax.jacrev(norm)(x, m)) for norm in _NORMS]

    for m in (jnp.float32(0.0), jnp.float32(3.0)):
        for case, pair in zip(_norm_cases(), jax.jit(jacobians)(jnp.zeros((3, 4)), m)):
            for jacobian in pair:
                np.testing.assert_array_equal(jacobian, np.zeros_like(jacobian), str(case))


def test_safe_norm_gradient_away_from_the_floor_is_the_norms():
    x = jnp.array([3.0, -4.0])
    np.testing.assert_allclose(jax.grad(gradtx.safe_norm)(x, 1.0), [0.6, -0.8], rtol=1e-6)
    np.testing.assert_array_equal(jax.grad(gradtx.safe_norm)(x, 6.0), [0.0, 0.0])


def test_safe_norm_keeps_optax_dtypes():
    x = jnp.array([3.0, 4.0], jnp.bfloat16)
    for floor in (1.0, jnp.float32(1.0), jnp.bfloat16(1.0)):
        want = standard(optax.safe_norm, x, floor)
        assert gradtx.safe_norm(x, floor).dtype == want.dtype
    z = jnp.array([3.0 + 4.0j])
    assert gradtx.safe_norm(z, 0.0) == standard(optax.safe_norm, z, 0.0)


@JIT
def test_safe_root_mean_squares_matches_optax(jit):
    rms = maybe_jit(gradtx.safe_root_mean_squares, jit)
    x = jnp.array([[1.0, -2.0], [3.0, 0.5]])
    for floor in (0.0, 0.1, 10.0):
        want = standard(optax.safe_root_mean_squares, x, floor)
        got = rms(x, floor)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
    for floor in (jnp.float32(0.0), jnp.float32(3.0)):
        g = jax.jit(jax.grad(gradtx.safe_root_mean_squares))(jnp.zeros(4), floor)
        np.testing.assert_array_equal(g, np.zeros(4))


# ---- zero_nans, keep_params_nonnegative ------------------------------------------------------


@JIT
def test_zero_nans_matches_optax(jit):
    grads = [
        {"w": jnp.array([[1.0, jnp.nan, 2.0], [jnp.inf, 0.0, 1.0]]), "b": jnp.ones(2)},
        {"w": jnp.ones((2, 3)), "b": jnp.array([jnp.nan, -jnp.inf])},
    ]
    got, got_state = run(gradtx.zero_nans(), grads, jit=jit)
    want, want_state = run(optax.zero_nans(), grads, jit=jit, optax_tx=True)
    assert_trees_equal(got, want)
    assert_trees_equal(tuple(got_state), tuple(want_state))
    assert_trees_equal(
        tuple(gradtx.zero_nans().init(PARAMS)), tuple(optax.zero_nans().init(PARAMS))
    )


@JIT
def test_keep_params_nonnegative_matches_optax(jit):
    params = (jnp.array([-1.0, -1.0, -1.0]), jnp.array([1.0, 1.0, 1.0]), jnp.zeros(3))
    updates = tuple(jnp.array([-5.0, 5.0, 0.0]) for _ in range(3))
    tx, otx = gradtx.keep_params_nonnegative(), optax.keep_params_nonnegative()
    got = maybe_jit(tx.update, jit)(updates, tx.init(params), params)[0]
    want = standard(otx.update, updates, otx.init(params), params)[0]
    assert_trees_equal(got, want)
    new = gradtx.apply_updates(params, got)
    assert all(bool(jnp.all(p >= 0)) for p in new)


def test_keep_params_nonnegative_lands_on_zero_for_mixed_dtypes():
    params = {"w": jnp.array([0.1, 0.3], jnp.float32)}
    updates = {"w": jnp.array([-1.0, 0.5], jnp.bfloat16)}
    tx = gradtx.keep_params_nonnegative()
    out, _ = tx.update(updates, tx.init(params), params)
    assert out["w"].dtype == jnp.float32  # -0.1 in bfloat16 would leave -1e-4 below 0
    np.testing.assert_array_equal(gradtx.apply_updates(params, out)["w"], np.float32([0.0, 0.8]))
    with pytest.raises(ValueError, match="keep_params_nonnegative: update needs params"):
        tx.update(updates, tx.init(params))


# ---- per-example and unit-wise clipping -------------------------------------------------------


def _examples(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        "a": jnp.asarray(scale * rng.normal(size=(5, 1)), jnp.float32),
        "b": jnp.asarray(scale * rng.normal(size=(5, 3, 2)), jnp.float32),
    }


@JIT
def test_per_example_global_norm_clip_matches_optax(jit):
    grads = _examples()
    clip = maybe_jit(gradtx.per_example_global_norm_clip, jit)
    for bound in (jnp.inf, 0.0, 1.25, jnp.float32(2.0)) if jit else (1.25,):
        got = clip(grads, bound)
        want = standard(optax.per_example_global_norm_clip, grads, bound)
        assert_trees_close(got[0], want[0], rtol=1e-6, atol=1e-7)
        assert_trees_equal(got[1], want[1])
    if jit:  # eagerly, the zero example's rescaled norm compiles op by op: seconds
        ints = [jnp.array([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]])]  # optax's docstring's
        want = standard(optax.per_example_global_norm_clip, ints, 1.25)
        assert_trees_equal(clip(ints, 1.25), want)


@JIT
@pytest.mark.parametrize("uniform", [True, False])
def test_per_example_layer_norm_clip_matches_optax(jit, uniform):
    grads = _examples(1)
    clip = maybe_jit(functools.partial(gradtx.per_example_layer_norm_clip, uniform=uniform), jit)
    for bound in (jnp.inf, 0.0, 2.5):
        got = clip(grads, bound)
        want = standard(optax.per_example_layer_norm_clip, grads, bound, uniform)
        assert_trees_close(got[0], want[0], rtol=1e-6, atol=1e-7)
        assert_trees_equal(got[1], want[1])


def test_per_example_clipping_does_not_overflow():
    # the squares of 1e30 overflow float32: optax's norm is inf and the example is dropped
    grads = {"a": jnp.array([[1e30, 1e30], [0.3, 0.4]])}
    sums, clipped = gradtx.per_example_global_norm_clip(grads, 1.0)
    np.testing.assert_allclose(sums["a"], [2**-0.5 + 0.3, 2**-0.5 + 0.4], rtol=1e-6)
    assert int(clipped) == 1


def test_per_example_clipping_refuses_leaves_without_a_shared_batch_axis():
    with pytest.raises(ValueError, match="per_example_global_norm_clip: grads must be per-exam"):
        gradtx.per_example_global_norm_clip({"a": jnp.ones((2, 3)), "b": jnp.ones((3,))}, 1.0)
    with pytest.raises(ValueError, match="per_example_layer_norm_clip: grads must be per-exam"):
        gradtx.per_example_layer_norm_clip([jnp.ones(())], 1.0)


_UNIT_SHAPES = [(), (4,), (1, 4), (3, 4), (2, 3, 4), (2, 2, 3, 4), (2, 2, 2, 3, 4)]


@JIT
@pytest.mark.parametrize("shape", _UNIT_SHAPES, ids=str)
def test_unitwise_norm_and_clip_match_optax(shape, jit):
    rng = np.random.default_rng(len(shape))
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    norm = maybe_jit(gradtx.unitwise_norm, jit)
    want = standard(optax.transforms.unitwise_norm, x)
    np.testing.assert_allclose(norm(x), want, rtol=1e-6)
    assert norm(x).shape == x.shape and norm(x).dtype == want.dtype
    bound = jnp.full(shape, 0.8, jnp.float32)
    clip = maybe_jit(gradtx.unitwise_clip, jit)
    np.testing.assert_allclose(
        clip(want, bound, x), standard(optax.transforms.unitwise_clip, want, bound, x), rtol=1e-6
    )


def test_unitwise_norm_with_axis_matches_optax_and_needs_it_above_rank_5():
    x = jnp.arange(2 * 2 * 2 * 3 * 4, dtype=jnp.float32).reshape(2, 2, 2, 3, 4)
    for axis in ((0, 1, 2), (3, 4), -1):
        want = standard(optax.transforms.unitwise_norm, x, axis)
        np.testing.assert_allclose(jax.jit(gradtx.unitwise_norm, static_argnums=1)(x, axis), want)
    with pytest.raises(ValueError, match="unitwise_norm: no default unit-wise norm for x"):
        gradtx.unitwise_norm(jnp.ones((2,) * 6))
    assert gradtx.unitwise_norm(jnp.ones((2,) * 6), axis=(0, 1)).shape == (2,) * 6
    # no overflow: float32 squares of 1e30 are inf
    np.testing.assert_allclose(gradtx.unitwise_norm(jnp.array([1e30, 1e30])), [2**0.5 * 1e30] * 2)


# ---- apply_every -----------------------------------------------------------------------------


@JIT
@pytest.mark.parametrize("k", [1, 3])
def test_apply_every_matches_optax_in_a_chain(k, jit):
    grads = gradients(7)
    tx = gradtx.chain(gradtx.apply_every(k), gradtx.sgd(0.1, momentum=0.5))
    otx = optax.chain(optax.apply_every(k), optax.sgd(0.1, momentum=0.5))
    got, _ = run(tx, grads, jit=jit)
    want, _ = run(otx, grads, jit=jit, optax_tx=True)
    assert_trees_close(got, want, rtol=1e-6)


def test_apply_every_emits_negative_zeros_and_takes_a_new_period_without_retracing():
    tx = gradtx.apply_every(2)
    update, traces = counting_jit(tx.update)
    state = tx.init(PARAMS)
    out = []
    for g in gradients(6):
        updates, state = update(g, state)
        out.append(updates)
        if len(out) == 2:
            state = gradtx.set_hyperparams(state, k=3)
    assert len(traces) == 1
    assert bool(jnp.signbit(out[0]["w"]).all()) and not bool(jnp.any(out[0]["w"]))
    emitted = [i for i, u in enumerate(out) if bool(jnp.any(u["w"]))]
    assert emitted == [1, 4]  # after 2, then after 3 more
    grads = gradients(6)
    want = jax.tree.map(lambda *g: sum(g), *grads[2:5])
    assert_trees_close(out[4], want, rtol=1e-6)
    assert float(gradtx.hyperparams(state)["k"]) == 3


# ---- snapshot, measure_with_ema -------------------------------------------------------------


@JIT
def test_snapshot_matches_optax(jit):
    grads = gradients(3)
    tx = gradtx.chain(gradtx.sgd(0.1, momentum=0.9), gradtx.snapshot("norm", gradtx.global_norm))
    otx = optax.chain(
        optax.sgd(0.1, momentum=0.9), optax.transforms.snapshot("norm", optax.tree.norm)
    )
    got, state = run(tx, grads, jit=jit)
    want, ostate = run(otx, grads, jit=jit, optax_tx=True)
    assert_trees_close(got, want)
    np.testing.assert_allclose(
        state[1].measurement["norm"], optax.tree.get(ostate, "norm"), rtol=1e-6
    )
    np.testing.assert_allclose(optax.tree.get(state, "norm"), gradtx.global_norm(got[-1]))


@JIT
@pytest.mark.parametrize("debias", [True, False])
def test_measure_with_ema_matches_optax(debias, jit):
    grads = gradients(4)
    tx = gradtx.measure_with_ema(gradtx.global_norm, 0.9, debias)
    otx = optax.measure_with_ema(optax.tree.norm, 0.9, debias)
    got, _ = run(tx, grads, jit=jit)
    want, _ = run(otx, grads, jit=jit, optax_tx=True)
    assert_trees_close(got, want, rtol=2e-6)


def test_measure_with_ema_averages_a_bool_measure_as_a_fraction():
    tx = gradtx.measure_with_ema(lambda u: gradtx.global_norm(u) > 1.0, 0.5, debias=False)
    update, traces = counting_jit(tx.update)
    state = tx.init(PARAMS)
    for scale in (2.0, 0.0, 2.0):
        average, state = update(jax.tree.map(functools.partial(jnp.multiply, scale), PARAMS), state)
    assert len(traces) == 1 and average.dtype == jnp.float32
    np.testing.assert_allclose(average, 0.5 * (0.5 * 0.5 + 0.0) + 0.5, rtol=1e-6)


def _monitored(lib, norm, ema, clip=1.0):
    return lib.chain(
        lib.sgd(0.1, momentum=0.9),
        lib.monitor({"norm": norm, "norm_ema": ema(norm, 0.9, True)}),
        lib.clip_by_global_norm(clip),
    )


@JIT
def test_monitor_of_measures_matches_optaxs(jit):
    grads = gradients(4)
    tx = _monitored(gradtx, gradtx.global_norm, gradtx.measure_with_ema)
    otx = _monitored(optax, optax.tree.norm, optax.measure_with_ema)
    got, state = run(tx, grads, jit=jit)
    want, ostate = run(otx, grads, jit=jit, optax_tx=True)
    assert_trees_close(got, want, rtol=2e-6)
    for name in ("norm", "norm_ema"):
        np.testing.assert_allclose(
            gradtx.tree.get(state, name), optax.tree.get(ostate, name), rtol=2e-6
        )
    assert isinstance(state[1], gradtx.MonitorState)


def test_monitor_of_measures_keeps_its_state_structure_and_compiles_once():
    tx = _monitored(gradtx, gradtx.global_norm, gradtx.measure_with_ema)
    update, traces = counting_jit(tx.update)
    state = tx.init(PARAMS)
    assert float(gradtx.tree.get(state, "norm")) == 0.0  # nothing measured yet
    for g in gradients(3):
        _, state = update(g, state)
    assert len(traces) == 1


def test_monitor_refuses_bad_measures_by_name():
    with pytest.raises(TypeError, match=r"monitor: the measure 'n' must be a function"):
        gradtx.monitor({"n": 3})
    with pytest.raises(TypeError, match=r"monitor: the measures' names must be strings"):
        gradtx.monitor({1: gradtx.global_norm})
    with pytest.raises(ValueError, match=r"monitor: axis_name applies to a wrapped optimizer"):
        gradtx.monitor({"n": gradtx.global_norm}, axis_name="batch")
    with pytest.raises(TypeError, match=r"or a dictionary of measures, got int"):
        gradtx.monitor(3)


# ---- conditionally_transform, conditionally_mask ---------------------------------------------

_WRAPPERS = {
    "conditionally_transform": (gradtx.conditionally_transform, optax.conditionally_transform),
    "conditionally_mask": (gradtx.conditionally_mask, optax.conditionally_mask),
}


@JIT
@pytest.mark.parametrize("name", _WRAPPERS)
def test_conditional_wrappers_match_optax(name, jit):
    ours, theirs = _WRAPPERS[name]
    grads = gradients(5)
    tx = ours(gradtx.sgd(0.1, momentum=0.9), lambda step: (step < 2) | (step == 3))
    otx = theirs(optax.sgd(0.1, momentum=0.9), lambda step: (step < 2) | (step == 3))
    got, state = run(tx, grads, jit=jit)
    want, ostate = run(otx, grads, jit=jit, optax_tx=True)
    assert_trees_close(got, want, rtol=1e-6)
    assert int(state.step) == int(ostate.step) == 5
    # the inner state moved only on the three steps it ran
    assert int(state.inner_state.count) == 3


@JIT
@pytest.mark.parametrize("name", _WRAPPERS)
def test_conditional_wrappers_forward_extra_args(name, jit):
    ours, theirs = _WRAPPERS[name]

    def should(step, loss, **extra):
        del step, extra
        return loss > 0.1

    tx = ours(gradtx.scale(2.0), should, forward_extra_args=True)
    otx = theirs(optax.scale(2.0), should, forward_extra_args=True)
    for loss in (0.2, 0.0):
        got, _ = run(tx, gradients(1), jit=jit, loss=loss)
        want, _ = run(otx, gradients(1), jit=jit, optax_tx=True, loss=loss)
        assert_trees_equal(got, want)


def test_conditionally_mask_holds_the_inner_state_and_params_bitwise():
    tx = gradtx.conditionally_mask(gradtx.adam(0.1), lambda step: step < 1)
    update, traces = counting_jit(tx.update)
    params = {"w": jnp.array([-0.0, 1.0])}
    state = tx.init(params)
    _, state = update({"w": jnp.ones(2)}, state, params)
    held = state.inner_state
    updates, state = update({"w": jnp.ones(2)}, state, params)
    assert len(traces) == 1
    assert_trees_equal(state.inner_state, held)
    after = gradtx.apply_updates(params, updates)["w"]
    assert bool(jnp.signbit(after[0])) and float(after[1]) == 1.0


@pytest.mark.parametrize("name", _WRAPPERS)
def test_conditional_wrappers_refuse_a_condition_that_is_not_a_bool_scalar(name):
    ours, _ = _WRAPPERS[name]
    tx = ours(gradtx.scale(2.0), lambda step: jnp.array([True, False]))
    with pytest.raises(ValueError, match=f"{name}: should_transform_fn must return a scalar"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
    tx = ours(gradtx.scale(2.0), lambda step: 0.5)
    with pytest.raises(TypeError, match=f"{name}: should_transform_fn must return a bool"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


# ---- flatten ---------------------------------------------------------------------------------


@JIT
def test_flatten_matches_optax_and_the_unflattened_optimizer(jit):
    grads = gradients(3)
    got, _ = run(gradtx.flatten(gradtx.adam(0.1)), grads, jit=jit)
    want, _ = run(optax.flatten(optax.adam(0.1)), grads, jit=jit, optax_tx=True)
    plain, _ = run(gradtx.adam(0.1), grads, jit=jit)
    assert_trees_close(got, want, rtol=2e-5)  # optax's float32 bias correction
    assert_trees_close(got, plain, rtol=1e-6)


def test_flatten_gives_each_leaf_its_dtype_back():
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(3, jnp.float32)}
    tx = gradtx.flatten(gradtx.sgd(0.5))
    updates, _ = tx.update(params, tx.init(params), params)
    assert updates["a"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32
    np.testing.assert_array_equal(updates["b"], [-0.5] * 3)


# ---- MultiSteps' skip functions --------------------------------------------------------------

_STEP = jnp.zeros([], jnp.int32)
_SKIP_CASES = [
    [jnp.array(jnp.inf), jnp.zeros([])],
    [jnp.array(-jnp.inf), jnp.zeros([])],
    [jnp.array(jnp.nan), jnp.zeros([])],
    [jnp.array(11.0), jnp.zeros([])],
    [jnp.zeros([]), jnp.zeros([])],
    [jnp.array([3.0, jnp.nan, jnp.inf]), jnp.ones((2, 2))],
]


@JIT
@pytest.mark.parametrize("case", range(len(_SKIP_CASES)))
def test_skip_functions_match_optax(case, jit):
    updates = _SKIP_CASES[case]
    got = maybe_jit(gradtx.skip_not_finite, jit)(updates, _STEP, None)
    assert_trees_equal(got, standard(optax.skip_not_finite, updates, _STEP, None))
    large = functools.partial(gradtx.skip_large_updates, max_squared_norm=100.0)
    got = maybe_jit(large, jit)(updates, _STEP, None)
    want = standard(optax.skip_large_updates, updates, _STEP, None, 100.0)
    assert_trees_equal(got, want)


@JIT
@pytest.mark.parametrize(
    "skip",
    [gradtx.skip_not_finite, functools.partial(gradtx.skip_large_updates, max_squared_norm=9.0)],
    ids=["not_finite", "large"],
)
def test_multi_steps_with_a_skip_function_matches_optax(skip, jit):
    oskip = (
        optax.skip_not_finite
        if skip is gradtx.skip_not_finite
        else functools.partial(optax.skip_large_updates, max_squared_norm=9.0)
    )
    grads = gradients(6, seed=3)
    grads[2] = jax.tree.map(lambda g: g.at[0].set(jnp.inf), grads[2])
    grads[4] = jax.tree.map(lambda g: 10 * g, grads[4])
    tx = gradtx.MultiSteps(gradtx.sgd(0.1), 2, should_skip_update_fn=skip)
    otx = optax.MultiSteps(optax.sgd(0.1), 2, should_skip_update_fn=oskip)
    got, state = run(tx, grads, jit=jit)
    want, ostate = run(otx, grads, jit=jit, optax_tx=True)
    assert_trees_close(got, want, rtol=1e-6)
    assert int(state.mini_step) == int(ostate.mini_step)
    assert int(state.gradient_step) == int(ostate.gradient_step)
    assert_trees_equal(state.skip_state, ostate.skip_state)


# ---- GradientTransformationExtraArgs, with_extra_args_support --------------------------------


def test_extra_args_types_behave_as_optax():
    def init(params):
        del params
        return ()

    def plain_update(updates, state, params=None):
        del params
        return updates, state

    def loss_update(updates, state, params=None, *, loss, **extra):
        del params, extra
        return jax.tree.map(lambda u: u * loss, updates), state

    plain = gradtx.GradientTransformation(init, plain_update)
    assert not isinstance(plain, gradtx.GradientTransformationExtraArgs)
    wrapped = gradtx.with_extra_args_support(plain)
    assert isinstance(wrapped, gradtx.GradientTransformationExtraArgs)
    assert isinstance(wrapped, gradtx.GradientTransformation)
    assert gradtx.with_extra_args_support(wrapped) is wrapped
    np.testing.assert_array_equal(wrapped.update(jnp.ones(2), (), loss=3.0)[0], jnp.ones(2))
    # optax's plain transformations too
    ours = gradtx.with_extra_args_support(optax.scale(2.0))
    np.testing.assert_array_equal(ours.update(jnp.ones(1), ours.init(None), loss=1)[0], [2.0])
    # construction from a plain update accepts extra arguments and drops them
    built = gradtx.GradientTransformationExtraArgs(init, plain_update)
    np.testing.assert_array_equal(built.update(jnp.ones(1), (), loss=1.0)[0], [1.0])
    # chains of either kind are extra-args transformations, and pass the loss down
    chained = gradtx.chain(plain, gradtx.GradientTransformationExtraArgs(init, loss_update))
    assert isinstance(chained, gradtx.GradientTransformationExtraArgs)
    assert isinstance(gradtx.adam(0.1), gradtx.GradientTransformationExtraArgs)
    np.testing.assert_array_equal(
        chained.update(jnp.ones(1), chained.init(None), loss=3.0, other=1)[0], [3.0]
    )
    with pytest.raises(TypeError, match="with_extra_args_support: tx must be a Gradient"):
        gradtx.with_extra_args_support(3)
