"""MultiSteps (gradient accumulation) and apply_if_finite (skipping non-finite steps).

References: the same computation done by hand in float32 (one inner step on the mean of the
micro-batch gradients; one step on the concatenated batch), a float64 NumPy model with
hand-written backpropagation and the float64 optimizer references, and optax's same-named
wrappers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.reference import numpy_reference as ref

K, MICRO, OUTER = 4, 8, 5  # micro-steps per step, examples per micro-batch, outer steps


# ---- a small model whose loss is a mean over the batch -------------------------------------


def mlp_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "w1": jnp.asarray(rng.normal(size=(3, 8)) * 0.5, dtype),
        "b1": jnp.asarray(rng.normal(size=(8,)) * 0.1, dtype),
        "w2": jnp.asarray(rng.normal(size=(8, 1)) * 0.5, dtype),
        "b2": jnp.zeros((1,), dtype),
    }


def mlp_loss(params, x, y):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    out = (hidden @ params["w2"] + params["b2"])[:, 0]
    return jnp.mean((out - y) ** 2)


def numpy_mlp_grads(params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """The float64 gradient of ``mlp_loss``, backpropagated by hand."""
    hidden = np.tanh(x @ params["w1"] + params["b1"])
    out = (hidden @ params["w2"] + params["b2"])[:, 0]
    d_out = (2.0 * (out - y) / len(y))[:, None]
    d_pre = (d_out @ params["w2"].T) * (1.0 - hidden**2)
    return {
        "w1": x.T @ d_pre,
        "b1": d_pre.sum(0),
        "w2": hidden.T @ d_out,
        "b2": d_out.sum(0),
    }


def batches(outer=OUTER, k=K, micro=MICRO, seed=1):
    """``outer`` steps of ``k`` micro-batches (x, y), float32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(outer, k, micro, 3)).astype(np.float32)
    y = (np.sin(x.sum(-1)) + 0.1 * rng.normal(size=(outer, k, micro))).astype(np.float32)
    return x, y


def leaves64(tree):
    return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(tree)]


def relative(a, b) -> float:
    """max |a - b| over max |b|, over all leaves."""
    a, b = leaves64(a), leaves64(b)
    return max(float(np.max(np.abs(x - y)) / np.max(np.abs(y))) for x, y in zip(a, b))


def bitwise_equal(a, b) -> bool:
    same = [
        np.asarray(x).dtype == np.asarray(y).dtype
        and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    ]
    return jax.tree.structure(a) == jax.tree.structure(b) and all(same)


INNER = {
    "adam": (lambda: gradtx.adam(1e-2), lambda: optax.adam(1e-2), lambda: ref.adam(1e-2)),
    "sgd_momentum": (
        lambda: gradtx.sgd(0.1, momentum=0.9),
        lambda: optax.sgd(0.1, momentum=0.9),
        lambda: ref.sgd(0.1, momentum=0.9),
    ),
}


# ---- MultiSteps: equal to one step on the big batch -----------------------------------------


def run_multisteps(opt, x, y, *, jit=True):
    """Micro-step by micro-step; also checks params stay bitwise put between inner steps."""
    params = mlp_params()
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    grad = jax.jit(jax.grad(mlp_loss)) if jit else jax.grad(mlp_loss)
    for t in range(x.shape[0]):
        for i in range(x.shape[1]):
            before = params
            updates, state = update(grad(params, x[t, i], y[t, i]), state, params)
            params = gradtx.apply_updates(params, updates)
            emitted = i == x.shape[1] - 1
            assert bool(opt.has_updated(state)) == emitted
            if not emitted:
                assert bitwise_equal(params, before)
    return params, state, update


@pytest.mark.parametrize("name", sorted(INNER))
def test_multisteps_equals_one_step_on_the_concatenated_batch(name):
    make, make_optax, make_ref = INNER[name]
    x, y = batches()
    got, state, update = run_multisteps(gradtx.MultiSteps(make(), every_k_schedule=K), x, y)
    assert update._cache_size() == 1
    assert int(state.gradient_step) == OUTER and int(state.mini_step) == 0

    inner = make()
    inner_update = jax.jit(inner.update)
    grad = jax.jit(jax.grad(mlp_loss))
    by_hand, big_batch = mlp_params(), mlp_params()
    hand_state, big_state = inner.init(by_hand), inner.init(big_batch)
    for t in range(OUTER):
        # by hand: the sum of the micro-batch gradients, divided once
        gs = [grad(by_hand, x[t, i], y[t, i]) for i in range(K)]
        total = gs[0]
        for g in gs[1:]:
            total = jax.tree.map(jnp.add, total, g)
        mean = jax.tree.map(lambda s: s / np.float32(K), total)
        updates, hand_state = inner_update(mean, hand_state, by_hand)
        by_hand = gradtx.apply_updates(by_hand, updates)
        # the concatenated batch of K * MICRO examples
        g = grad(big_batch, x[t].reshape(-1, 3), y[t].reshape(-1))
        updates, big_state = inner_update(g, big_state, big_batch)
        big_batch = gradtx.apply_updates(big_batch, updates)
    assert relative(got, by_hand) == 0.0  # the same float32 operations, bit for bit
    assert bitwise_equal(state.inner_opt_state, hand_state)
    assert relative(got, big_batch) < 1e-6  # measured: 4.1e-7 (adam), 5.2e-7 (sgd)

    # float64: NumPy backpropagation on the concatenated batch, the float64 optimizer
    reference = make_ref()
    params64 = {k: np.asarray(v, np.float64) for k, v in mlp_params().items()}
    ref_state = reference.init([params64[k] for k in sorted(params64)])
    for t in range(OUTER):
        g = numpy_mlp_grads(params64, x[t].reshape(-1, 3).astype(np.float64), y[t].reshape(-1))
        leaves = [params64[k] for k in sorted(params64)]
        updates, ref_state = reference.update([g[k] for k in sorted(g)], ref_state, leaves)
        params64 = {k: p + u for k, p, u in zip(sorted(params64), leaves, updates)}
    ours64 = relative(got, params64)
    assert ours64 < 1e-6  # measured: 2.1e-7 (adam), 1.9e-7 (sgd)

    # optax.MultiSteps keeps a running mean, a + (g - a) / n, rounded at every micro-step;
    # Adam's early steps (m / sqrt(v) with small v) magnify that into 7e-6 of the params,
    # where the single division stays 30 times closer to float64.
    with jax.numpy_dtype_promotion("standard"):
        theirs, _, _ = run_multisteps(optax.MultiSteps(make_optax(), every_k_schedule=K), x, y)
    if name == "adam":
        assert relative(theirs, params64) > 10 * ours64  # measured: 7.1e-6
        assert relative(got, theirs) < 1e-5  # measured: 7.3e-6
    else:
        assert relative(got, theirs) < 1e-6  # measured: 2.3e-7


def test_multisteps_eagerly_equals_jitted():
    x, y = batches(outer=1, k=2)
    opt = gradtx.MultiSteps(gradtx.adam(1e-2), every_k_schedule=2)
    eager, eager_state, _ = run_multisteps(opt, x, y, jit=False)
    jitted, jitted_state, _ = run_multisteps(opt, x, y, jit=True)
    assert relative(eager, jitted) < 1e-6
    assert jax.tree.structure(eager_state) == jax.tree.structure(jitted_state)


def test_multisteps_in_lax_scan_with_bfloat16_params_and_a_float32_accumulator():
    x, y = batches(outer=3)
    params = mlp_params(jnp.bfloat16)
    opt = gradtx.MultiSteps(gradtx.sgd(0.1, momentum=0.9), every_k_schedule=K)
    state = opt.init(params)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state.acc_grads))
    # one buffer the size of the params (the accumulator) besides the inner state: no copy
    size = lambda tree: sum(np.size(leaf) for leaf in jax.tree.leaves(tree))  # noqa: E731
    assert size(state) == size(params) + size(state.inner_opt_state) + 2  # + the two counters

    def micro_step(carry, batch):
        params, state = carry
        xb, yb = batch
        grads = jax.grad(mlp_loss)(params, xb.astype(jnp.bfloat16), yb.astype(jnp.bfloat16))
        updates, state = opt.update(grads, state, params)
        return (gradtx.apply_updates(params, updates), state), None

    data = (x.reshape(-1, MICRO, 3), y.reshape(-1, MICRO))
    (got, got_state), _ = jax.jit(lambda c: jax.lax.scan(micro_step, c, data))((params, state))
    assert jax.tree.map(lambda p: p.dtype, got) == jax.tree.map(lambda p: p.dtype, params)
    assert jax.tree.map(lambda s: s.dtype, got_state) == jax.tree.map(lambda s: s.dtype, state)

    # by hand: bf16 gradients summed in float32, divided once, cast back to bf16 for sgd
    inner = gradtx.sgd(0.1, momentum=0.9)
    inner_state = inner.init(params)
    grad = jax.jit(jax.grad(mlp_loss))
    for t in range(3):
        gs = [
            grad(params, jnp.asarray(x[t, i], jnp.bfloat16), jnp.asarray(y[t, i], jnp.bfloat16))
            for i in range(K)
        ]
        total = jax.tree.map(lambda g: g.astype(jnp.float32), gs[0])
        for g in gs[1:]:
            total = jax.tree.map(lambda s, g: s + g.astype(jnp.float32), total, g)
        mean = jax.tree.map(lambda s: (s / np.float32(K)).astype(jnp.bfloat16), total)
        updates, inner_state = inner.update(mean, inner_state, params)
        params = gradtx.apply_updates(params, updates)
    assert relative(got, params) == 0.0


def test_multisteps_holds_negative_zero_params_and_the_inner_state_bitwise():
    params = {"w": jnp.asarray([-0.0, 0.0, 1.5]), "n": jnp.asarray(-0.0, jnp.bfloat16)}
    opt = gradtx.MultiSteps(gradtx.adam(0.1), every_k_schedule=3)
    state = opt.init(params)
    grads = {"w": jnp.asarray([1.0, 2.0, 3.0]), "n": jnp.asarray(1.0, jnp.bfloat16)}
    inner_before = state.inner_opt_state
    for _ in range(2):
        updates, state = jax.jit(opt.update)(grads, state, params)
        assert all(bool(jnp.all(jnp.signbit(u))) for u in jax.tree.leaves(updates))
        held = gradtx.apply_updates(params, updates)
        assert bitwise_equal(held, params)  # -0.0 params stay -0.0
        assert bitwise_equal(state.inner_opt_state, inner_before)
    updates, state = opt.update(grads, state, params)
    assert int(state.inner_opt_state.count) == 1


def test_multisteps_schedule_of_k_and_sum_match_optax():
    """k = 1 for the first two inner steps, then 3; gradients averaged, or summed."""

    def every_k(step):
        return jnp.where(step < 2, 1, 3)

    params = {"w": jnp.asarray([0.5, -1.0]), "b": jnp.asarray(0.25)}
    grads = [jax.tree.map(lambda p, i=i: jnp.cos(p + i).astype(p.dtype), params) for i in range(11)]
    for use_grad_mean in (True, False):
        ours = gradtx.MultiSteps(gradtx.sgd(0.1, 0.9), every_k, use_grad_mean=use_grad_mean)
        with jax.numpy_dtype_promotion("standard"):
            theirs = optax.MultiSteps(optax.sgd(0.1, 0.9), every_k, use_grad_mean=use_grad_mean)
        results = []
        for opt in (ours, theirs):
            p, state, emitted = params, opt.init(params), []
            with jax.numpy_dtype_promotion("standard" if opt is theirs else "strict"):
                update = jax.jit(opt.update)
                for g in grads:
                    updates, state = update(g, state, p)
                    p = gradtx.apply_updates(p, updates)
                    emitted.append(bool(opt.has_updated(state)))
            results.append((p, emitted, int(state.gradient_step)))
        assert results[0][1] == results[1][1] == [True, True] + [False, False, True] * 3
        assert results[0][2] == results[1][2] == 5
        assert relative(results[0][0], results[1][0]) < 1e-6


def test_multisteps_should_skip_update_fn_matches_optax():
    params = {"w": jnp.asarray([0.5, -1.0, 2.0])}
    grads = [{"w": jnp.asarray([0.1 * i, -0.2, 0.3 + i])} for i in range(8)]
    grads[2] = {"w": jnp.asarray([np.nan, 1.0, 1.0])}
    grads[5] = {"w": jnp.asarray([1.0, np.inf, 1.0])}
    ours = gradtx.MultiSteps(gradtx.sgd(0.1), 2, should_skip_update_fn=optax.skip_not_finite)
    theirs = optax.MultiSteps(optax.sgd(0.1), 2, should_skip_update_fn=optax.skip_not_finite)
    finals = []
    for opt in (ours, theirs):
        with jax.numpy_dtype_promotion("standard"):
            p, state = params, opt.init(params)
            for i, g in enumerate(grads):
                before = p
                updates, state = opt.update(g, state, p)
                p = gradtx.apply_updates(p, updates)
                if i in (2, 5):
                    assert bitwise_equal(p, before) and bool(state.skip_state["should_skip"])
        finals.append((p, int(state.gradient_step), int(state.mini_step)))
    assert finals[0][1:] == finals[1][1:] == (3, 0)
    np.testing.assert_allclose(finals[0][0]["w"], finals[1][0]["w"], rtol=1e-6)


def test_multisteps_hyperparams_are_found_and_set_without_retracing():
    opt = gradtx.MultiSteps(gradtx.adam(1e-3), every_k_schedule=2)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(1e-3)
    update = jax.jit(opt.update)
    for _ in range(2):
        updates, state = update({"w": jnp.ones(3)}, state, params)
    np.testing.assert_allclose(updates["w"], -1e-3, rtol=1e-5)
    state = gradtx.set_hyperparams(state, learning_rate=0.5)
    for _ in range(2):
        updates, state = update({"w": jnp.ones(3)}, state, params)
    np.testing.assert_allclose(updates["w"], -0.5, rtol=1e-5)
    assert update._cache_size() == 1
    assert float(gradtx.hyperparams(state)["learning_rate"]) == 0.5


def test_multisteps_float64_accumulator_for_float64_params(x64):
    params = {"w": jnp.ones(2, jnp.float64), "h": jnp.ones(2, jnp.bfloat16)}
    state = gradtx.MultiSteps(gradtx.sgd(0.1), 2).init(params)
    assert state.acc_grads["w"].dtype == jnp.float64
    assert state.acc_grads["h"].dtype == jnp.float32
    narrow = gradtx.MultiSteps(gradtx.sgd(0.1), 2, accumulator_dtype=jnp.bfloat16).init(params)
    assert narrow.acc_grads["h"].dtype == jnp.bfloat16  # never narrower than the params
    assert narrow.acc_grads["w"].dtype == jnp.float64


def test_multisteps_is_a_gradient_transformation_in_a_chain():
    opt = gradtx.MultiSteps(gradtx.sgd(1.0), every_k_schedule=2)
    tx = gradtx.chain(gradtx.clip(1.0), opt.gradient_transformation())
    assert isinstance(opt.gradient_transformation(), gradtx.GradientTransformation)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    for g in ([5.0, 0.5], [0.0, 0.5]):
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    np.testing.assert_array_equal(updates["w"], [-0.5, -0.5])  # mean of the clipped gradients


BAD_MULTISTEPS = {
    "k_zero": (dict(every_k_schedule=0), ValueError, "every_k_schedule must be >= 1, got 0"),
    "k_float": (dict(every_k_schedule=2.0), TypeError, "every_k_schedule must be an int"),
    "k_bool": (dict(every_k_schedule=True), TypeError, "every_k_schedule must be an int"),
    "k_schedule_zero": (
        dict(every_k_schedule=lambda step: 0),
        ValueError,
        "every_k_schedule must be >= 1, got 0 at step 0",
    ),
    "k_schedule_float": (
        dict(every_k_schedule=lambda step: 2.5),
        TypeError,
        "every_k_schedule must return an int",
    ),
    "k_schedule_none": (
        dict(every_k_schedule=lambda step: None),
        TypeError,
        "every_k_schedule must return an int",
    ),
    "mean_flag": (dict(every_k_schedule=2, use_grad_mean="yes"), TypeError, "use_grad_mean"),
    "skip_fn": (dict(every_k_schedule=2, should_skip_update_fn=3), TypeError, "should_skip"),
    "acc_dtype": (dict(every_k_schedule=2, accumulator_dtype="int32"), TypeError, "accumulator"),
    "opt": (dict(opt=3, every_k_schedule=2), TypeError, "opt must be a GradientTransformation"),
}


@pytest.mark.parametrize("case", sorted(BAD_MULTISTEPS))
def test_multisteps_rejects_bad_arguments(case):
    kwargs, error, message = BAD_MULTISTEPS[case]
    kwargs = {"opt": gradtx.sgd(0.1)} | kwargs
    with pytest.raises(error, match="MultiSteps: " + message.replace("(", r"\(")):
        gradtx.MultiSteps(**kwargs)


@pytest.mark.parametrize("jit", [False, True])
def test_multisteps_rejects_a_gradient_tree_that_does_not_match(jit):
    opt = gradtx.MultiSteps(gradtx.sgd(0.1), 2)
    state = opt.init({"w": jnp.ones(2)})
    update = jax.jit(opt.update) if jit else opt.update
    with pytest.raises(ValueError, match="MultiSteps: .*'v'"):
        update({"v": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match="MultiSteps: leaf shapes differ"):
        update({"w": jnp.ones(3)}, state)
    bad_skip = gradtx.MultiSteps(gradtx.sgd(0.1), 2, should_skip_update_fn=lambda u, s, p: (1, {}))
    with pytest.raises(ValueError, match="MultiSteps: should_skip_update_fn must return a bool"):
        bad_skip.init({"w": jnp.ones(2)})


# ---- apply_if_finite ----------------------------------------------------------------------


def adam_run(grads, tx, params, *, jit=True):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    states = []
    for g in grads:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        states.append(state)
    return params, states


@pytest.mark.parametrize(
    "bad, jit",
    [(np.nan, True), (np.inf, True), (-np.inf, True), (np.nan, False)],
    ids=["nan", "inf", "minus_inf", "nan_eager"],
)
def test_a_non_finite_step_is_skipped_bitwise(bad, jit):
    params = {"w": jnp.asarray([[1.0, -0.0], [0.5, 2.0]]), "b": jnp.asarray([0.1, -0.3])}
    rng = np.random.default_rng(0)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(12)
    ]
    poisoned = list(grads)
    poisoned[7] = {"w": grads[7]["w"].at[1, 0].set(bad), "b": grads[7]["b"]}
    tx = gradtx.apply_if_finite(gradtx.adam(0.1), max_consecutive_errors=3)
    got, states = adam_run(poisoned, tx, params, jit=jit)
    want, _ = adam_run(grads[:7] + grads[8:], tx, params, jit=jit)
    assert bitwise_equal(got, want)
    assert bitwise_equal(states[7].inner_state, states[6].inner_state)
    assert not bool(states[7].last_finite) and int(states[7].notfinite_count) == 1
    assert bool(states[8].last_finite) and int(states[8].notfinite_count) == 0
    assert int(states[-1].total_notfinite) == 1
    # float64 NumPy Adam on the eleven good gradients
    reference = ref.adam(0.1)
    leaves = leaves64(params)
    ref_state = reference.init(leaves)
    for g in grads[:7] + grads[8:]:
        updates, ref_state = reference.update(leaves64(g), ref_state, leaves)
        leaves = [p + u for p, u in zip(leaves, updates)]
    assert relative(got, jax.tree.unflatten(jax.tree.structure(params), leaves)) < 1e-6


def test_a_skipped_step_keeps_negative_zero_params():
    params = {"w": jnp.asarray([-0.0, 1.0], jnp.float32), "h": jnp.asarray([-0.0], jnp.bfloat16)}
    tx = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=1)
    grads = {"w": jnp.asarray([np.nan, 1.0]), "h": jnp.asarray([1.0], jnp.bfloat16)}
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert bitwise_equal(gradtx.apply_updates(params, updates), params)


def test_max_consecutive_errors_lets_the_next_bad_step_through_like_optax():
    """Two bad steps in a row are skipped, the third is applied; a good step resets."""
    params = {"w": jnp.asarray([1.0, 2.0])}
    good, bad = {"w": jnp.asarray([0.5, -0.5])}, {"w": jnp.asarray([np.nan, 0.5])}
    sequence = [good, bad, bad, good, bad, bad, bad, bad, good]
    ours = gradtx.apply_if_finite(gradtx.sgd(0.1), max_consecutive_errors=2)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.apply_if_finite(optax.sgd(0.1), max_consecutive_errors=2)
    traces = []
    for tx in (ours, theirs):
        p, state, trace = params, tx.init(params), []
        with jax.numpy_dtype_promotion("standard"):
            for g in sequence:
                updates, state = jax.jit(tx.update)(g, state, p)
                p = (
                    optax.apply_updates(p, updates)
                    if tx is theirs
                    else gradtx.apply_updates(p, updates)
                )
                trace.append(
                    (
                        int(state.notfinite_count),
                        bool(state.last_finite),
                        int(state.total_notfinite),
                        np.isnan(np.asarray(p["w"][0])).item(),
                    )
                )
        traces.append(trace)
    assert traces[0] == traces[1]
    counts = [t[0] for t in traces[0]]
    assert counts == [0, 1, 2, 0, 1, 2, 3, 4, 0]
    nan_reached = [t[3] for t in traces[0]]
    assert nan_reached == [False] * 6 + [True] * 3  # the third bad step in a row got through


def test_apply_if_finite_matches_optax_and_keeps_hyperparams_visible():
    params = {"w": jnp.asarray([1.0, -2.0, 0.5])}
    rng = np.random.default_rng(2)
    grads = [{"w": jnp.asarray(rng.normal(size=3), jnp.float32)} for _ in range(10)]
    grads[3] = {"w": grads[3]["w"].at[0].set(np.inf)}
    grads[4] = {"w": grads[4]["w"].at[2].set(np.nan)}
    tx = gradtx.apply_if_finite(gradtx.adam(0.05), max_consecutive_errors=5)
    got, states = adam_run(grads, tx, params)
    with jax.numpy_dtype_promotion("standard"):
        want, optax_states = adam_run(
            grads, optax.apply_if_finite(optax.adam(0.05), max_consecutive_errors=5), params
        )
    assert relative(got, want) < 1e-6
    assert int(states[-1].total_notfinite) == int(optax_states[-1].total_notfinite) == 2
    assert float(gradtx.hyperparams(states[-1])["learning_rate"]) == pytest.approx(0.05)


def test_apply_if_finite_inside_lax_scan():
    params = {"w": jnp.asarray([1.0, -2.0])}
    tx = gradtx.apply_if_finite(gradtx.sgd(0.1, momentum=0.9), max_consecutive_errors=2)
    grads = jnp.asarray([[1.0, 1.0], [np.nan, 1.0], [1.0, 1.0]])

    def step(carry, g):
        p, s = carry
        updates, s = tx.update({"w": g}, s, p)
        return (gradtx.apply_updates(p, updates), s), s.last_finite

    (got, state), finite = jax.jit(lambda c: jax.lax.scan(step, c, grads))(
        (params, tx.init(params))
    )
    assert finite.tolist() == [True, False, True]
    inner = gradtx.sgd(0.1, momentum=0.9)
    want, _ = adam_run([{"w": grads[0]}, {"w": grads[2]}], inner, params)
    assert bitwise_equal(got, want)


BAD_FINITE = {
    "negative": (-1, ValueError, "max_consecutive_errors must be >= 0, got -1"),
    "float": (1.5, TypeError, "max_consecutive_errors must be an int"),
    "bool": (True, TypeError, "max_consecutive_errors must be an int"),
}


@pytest.mark.parametrize("case", sorted(BAD_FINITE))
def test_apply_if_finite_rejects_bad_arguments(case):
    value, error, message = BAD_FINITE[case]
    with pytest.raises(error, match="apply_if_finite: " + message):
        gradtx.apply_if_finite(gradtx.sgd(0.1), value)
    with pytest.raises(TypeError, match="apply_if_finite: inner must be a GradientTransformation"):
        gradtx.apply_if_finite(0.1, 3)
    tx = gradtx.apply_if_finite(gradtx.sgd(0.1), 3)
    with pytest.raises(ValueError, match="apply_if_finite: the state must be"):
        tx.update({"w": jnp.ones(2)}, gradtx.sgd(0.1).init({"w": jnp.ones(2)}))
