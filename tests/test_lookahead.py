"""lookahead and ema_params: against float64 NumPy written from the papers, and against optax.

The lookahead reference is the paper's Algorithm 1 as two nested loops (k fast steps from the
slow weights, then one slow step), with the inner optimizer from ``tests/reference``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests import problems
from tests.reference import numpy_reference as ref

# ---- the paper's algorithm in float64 NumPy ----------------------------------------------


def lookahead_reference(inner, grad, phi0, k, alpha, outer_steps, *, reset=False):
    """Algorithm 1 of Zhang et al. (2019): fast and slow weights after every fast step.

    ``inner`` is a reference optimizer (``init``/``update`` on lists of leaves); ``alpha`` may
    be a function of the number of fast steps taken before the synchronisation step; ``reset``
    re-inits the inner state after each synchronisation (or is ``reset(state) -> state``).
    """
    phi = np.asarray(phi0, np.float64)
    state = inner.init([phi])
    fast_run, slow_run, step = [], [], 0
    for _ in range(outer_steps):
        theta = phi.copy()  # synchronise: the fast weights start from the slow ones
        for _ in range(k):
            (u,), state = inner.update([grad(theta)], state, [theta])
            theta = theta + u
            step += 1
            if len(fast_run) % k != k - 1:
                fast_run.append(theta)
                slow_run.append(phi)
        a = alpha(step - 1) if callable(alpha) else alpha
        phi = phi + a * (theta - phi)
        fast_run.append(phi)  # after the synchronisation the fast weights are the slow ones
        slow_run.append(phi)
        if callable(reset):
            state = reset(state)
        elif reset:
            state = inner.init([phi])
    return np.stack(fast_run), np.stack(slow_run)


def quadratic():
    """The ill-conditioned quadratic; its float64 gradient uses the float32 curvatures."""
    problem = problems.get("quadratic")
    curvature = np.asarray(jax.grad(problem.loss)(jnp.ones_like(problem.init)), np.float64)
    return problem, lambda x: curvature * x


def run_plain(tx, problem, steps, *, jit):
    """Fast weights (the params) and slow weights (from the state) after every step."""
    grad = jax.grad(problem.loss)

    def step(params, state):
        updates, state = tx.update(grad(params), state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    params, state = problem.init, tx.init(problem.init)
    fast, slow = [], []
    for _ in range(steps):
        params, state = step(params, state)
        fast.append(np.asarray(params, np.float64))
        slow.append(np.asarray(gradtx.slow_params(state), np.float64))
    if jit:
        assert step._cache_size() == 1
    return np.stack(fast), np.stack(slow)


def run_pair(tx, apply, params_cls, problem, steps, *, jit=True):
    """optax's way: params are a (fast, slow) pair; gradients at the fast weights."""
    grad = jax.grad(problem.loss)

    def step(params, state):
        updates, state = tx.update(grad(params.fast), state, params)
        return apply(params, updates), state

    step = jax.jit(step) if jit else step

    params = params_cls.init_synced(problem.init)
    state = tx.init(params)
    fast, slow = [], []
    for _ in range(steps):
        params, state = step(params, state)
        fast.append(np.asarray(params.fast, np.float64))
        slow.append(np.asarray(params.slow, np.float64))
    return np.stack(fast), np.stack(slow)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


INNER = {
    "sgd_momentum": (
        lambda: gradtx.sgd(0.005, momentum=0.9),
        lambda: ref.sgd(0.005, momentum=0.9),
        lambda: optax.sgd(0.005, momentum=0.9),
    ),
    "adam": (
        lambda: gradtx.adam(0.02),
        lambda: ref.adam(0.02),
        lambda: optax.adam(0.02),
    ),
}


@pytest.mark.parametrize(
    ("inner", "reset", "jit"),
    [
        ("sgd_momentum", False, True),
        ("sgd_momentum", True, True),
        ("adam", False, True),
        ("adam", True, True),
        ("adam", True, False),
    ],
    ids=[
        "sgd_momentum-keep-jit",
        "sgd_momentum-reset-jit",
        "adam-keep-jit",
        "adam-reset-jit",
        "adam-reset-eager",
    ],
)
def test_lookahead_follows_the_paper(inner, reset, jit):
    make, make_ref, _ = INNER[inner]
    problem, grad = quadratic()
    k, alpha, outer = 5, 0.5, 8
    tx = gradtx.lookahead(make(), sync_period=k, slow_step_size=alpha, reset_state=reset)
    fast, slow = run_plain(tx, problem, k * outer, jit=jit)
    want_fast, want_slow = lookahead_reference(
        make_ref(), grad, problem.init, k, alpha, outer, reset=reset
    )
    assert relative(fast, want_fast) < 2e-6
    assert relative(slow, want_slow) < 2e-6
    # the slow weights move only on synchronisation steps, where the fast ones meet them
    assert np.array_equal(slow[k - 2], np.asarray(problem.init, np.float64))
    np.testing.assert_allclose(fast[k - 1 :: k], slow[k - 1 :: k], rtol=1e-6, atol=1e-7)
    assert not np.allclose(fast[k - 2], slow[k - 2])


def test_lookahead_in_float64_matches_to_rounding(x64):
    problem, grad = quadratic()
    problem = problems.Problem(
        "quadratic64",
        jnp.ones(10, jnp.float64),
        lambda x: 0.5 * jnp.sum(jnp.asarray(grad(np.ones(10)), jnp.float64) * x * x),
        0.0,
    )
    tx = gradtx.lookahead(gradtx.adam(0.02), sync_period=3, slow_step_size=0.8)
    fast, slow = run_plain(tx, problem, 30, jit=True)
    want_fast, want_slow = lookahead_reference(ref.adam(0.02), grad, np.ones(10), 3, 0.8, 10)
    assert relative(fast, want_fast) < 1e-13
    assert relative(slow, want_slow) < 1e-13


@pytest.mark.parametrize(
    ("inner", "reset", "jit", "alpha"),
    [
        ("sgd_momentum", False, False, 0.6),
        ("sgd_momentum", True, True, 0.6),
        ("adam", False, True, 0.6),
        ("adam", True, False, 0.6),
        ("sgd_momentum", False, True, 0.0),
    ],
    ids=[
        "sgd_momentum-keep-eager",
        "sgd_momentum-reset-jit",
        "adam-keep-jit",
        "adam-reset-eager",
        "slow_step_size_0_slow_weights_stay",
    ],
)
def test_lookahead_matches_optax(inner, reset, jit, alpha):
    """Around the same (optax) fast optimizer, both forms give optax.lookahead's numbers:
    bit for bit eagerly; under jit to float32 rounding, as XLA on CPU contracts multiply-adds
    into FMAs differently in different programs.

    (gradtx's own Adam differs from optax's in the last float32 bits of its bias correction;
    the float64 reference above is the judge of that.)
    """
    _, _, make_optax = INNER[inner]
    problem, _ = quadratic()
    k, steps = 4, 24
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.lookahead(make_optax(), k, alpha, reset_state=reset)
        want = run_pair(theirs, optax.apply_updates, optax.LookaheadParams, problem, steps, jit=jit)
        ours = gradtx.lookahead(make_optax(), k, alpha, reset_state=reset)
        pair = run_pair(ours, gradtx.apply_updates, gradtx.LookaheadParams, problem, steps, jit=jit)
        plain = run_plain(ours, problem, steps, jit=jit)
    for got in (pair, plain):
        for mine, theirs in zip(got, want):  # fast weights, then slow weights
            if jit:
                assert relative(mine, theirs) < 1e-6
            else:
                np.testing.assert_array_equal(mine, theirs)
    assert not np.array_equal(want[0][k - 2], want[1][k - 2])  # the two do differ


def test_optax_lookahead_params_are_accepted():
    problem, _ = quadratic()
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.lookahead(optax.sgd(0.01, momentum=0.9), 3, 0.5)
        want = run_pair(theirs, optax.apply_updates, optax.LookaheadParams, problem, 6)
        ours = gradtx.lookahead(optax.sgd(0.01, momentum=0.9), 3, 0.5)
        got = run_pair(ours, optax.apply_updates, optax.LookaheadParams, problem, 6)
    for mine, expected in zip(got, want):
        assert relative(mine, expected) < 1e-6
    params = optax.LookaheadParams.init_synced(problem.init)
    updates, _ = ours.update(jnp.ones(10), ours.init(params), params)
    assert isinstance(updates, optax.LookaheadParams)


def test_lookahead_in_flax_nnx_optimizer():
    """Plain params make lookahead a drop-in tx for nnx.Optimizer; at a sync the model's
    weights are the slow weights."""
    from flax import nnx

    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    tx = gradtx.lookahead(gradtx.adam(0.05), sync_period=3, slow_step_size=0.5)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: (m(x) ** 2).mean())(model)
        optimizer.update(model, grads)

    start = np.asarray(model.kernel[...])
    for i in range(6):
        step(model, optimizer)
        slow = np.asarray(gradtx.slow_params(optimizer.opt_state)["kernel"][...])
        if i % 3 == 2:
            np.testing.assert_allclose(model.kernel[...], slow, rtol=1e-6, atol=1e-7)
        else:
            assert not np.allclose(model.kernel[...], slow)
        if i < 2:
            np.testing.assert_array_equal(slow, start)


def test_lookahead_state_shares_no_buffer_with_the_params():
    """A step donating params and state (as a donated TrainState does) must not donate one
    buffer twice: the slow weights are a copy."""
    problem, _ = quadratic()
    tx = gradtx.lookahead(gradtx.sgd(0.01), sync_period=2, slow_step_size=0.5)

    def step(params, state):
        updates, state = tx.update(jax.grad(problem.loss)(params), state, params)
        return gradtx.apply_updates(params, updates), state

    donated = jax.jit(step, donate_argnums=(0, 1))
    params = jnp.array(problem.init)
    params, state = donated(params, tx.init(params))
    pair = gradtx.LookaheadParams.init_synced(jnp.array(problem.init))
    pair_step = jax.jit(
        lambda p, s: gradtx.apply_updates(p, tx.update(jax.grad(problem.loss)(p.fast), s, p)[0]),
        donate_argnums=(0,),
    )
    pair = pair_step(pair, tx.init(pair))
    np.testing.assert_array_equal(pair.fast, params)


def test_sync_period_one_is_an_interpolated_step():
    """With k = 1 every step is a synchronisation: theta <- theta + alpha * u."""
    problem, grad = quadratic()
    tx = gradtx.lookahead(gradtx.sgd(0.01), sync_period=1, slow_step_size=0.3)
    fast, slow = run_plain(tx, problem, 5, jit=False)
    x = np.ones(10)
    for i in range(5):
        x = x - 0.3 * 0.01 * grad(x)
        np.testing.assert_allclose(fast[i], x, rtol=1e-6)
        np.testing.assert_allclose(slow[i], x, rtol=1e-6)


def test_reset_restarts_momentum_but_not_a_schedule():
    """optax's reset re-inits every leaf (a schedule's count too); gradtx keeps live ones."""
    problem, grad = quadratic()
    lr = gradtx.linear_schedule(0.01, 0.001, 20)
    tx = gradtx.lookahead(
        gradtx.sgd(lr, momentum=0.9), sync_period=4, slow_step_size=0.5, reset_state=True
    )
    fast, slow = run_plain(tx, problem, 20, jit=True)
    ref_lr = ref.linear_schedule(0.01, 0.001, 20)

    def zero_velocity(state):  # ref.sgd's state: ((count, [velocity]), count of the rate)
        (count, velocity), lr_count = state
        return (count, [np.zeros_like(v) for v in velocity]), lr_count

    want_fast, want_slow = lookahead_reference(
        ref.sgd(ref_lr, momentum=0.9), grad, np.ones(10), 4, 0.5, 5, reset=zero_velocity
    )
    assert relative(fast, want_fast) < 2e-6
    assert relative(slow, want_slow) < 2e-6

    params, state = problem.init, tx.init(problem.init)
    for _ in range(4):
        updates, state = tx.update(jax.grad(problem.loss)(params), state, params)
        params = gradtx.apply_updates(params, updates)
    np.testing.assert_allclose(gradtx.hyperparams(state)["learning_rate"], ref_lr(4), rtol=1e-6)
    velocity = state.inner_state.fast_state.inner_state[0].trace
    assert not np.any(velocity)  # momentum restarted at the synchronisation


def test_slow_step_size_is_live():
    problem, grad = quadratic()
    tx = gradtx.lookahead(gradtx.sgd(0.01), sync_period=2, slow_step_size=0.5)
    step = jax.jit(lambda p, s: tx.update(jax.grad(problem.loss)(p), s, p))
    params, state = problem.init, tx.init(problem.init)
    assert float(gradtx.hyperparams(state)["slow_step_size"]) == 0.5
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(0.01)
    state = gradtx.set_hyperparams(state, slow_step_size=0.25)
    for _ in range(2):
        updates, state = step(params, state)
        params = gradtx.apply_updates(params, updates)
    x = np.ones(10)
    for _ in range(2):
        x = x - 0.01 * grad(x)
    np.testing.assert_allclose(params, 1.0 + 0.25 * (x - 1.0), rtol=1e-6)
    assert step._cache_size() == 1
    with pytest.raises(ValueError, match="set_hyperparams: slow_step_size must be in"):
        gradtx.set_hyperparams(state, slow_step_size=1.5)


def test_slow_step_size_schedule():
    problem, grad = quadratic()
    alpha = gradtx.linear_schedule(0.2, 0.8, 12)
    tx = gradtx.lookahead(gradtx.sgd(0.01), sync_period=3, slow_step_size=alpha)
    fast, slow = run_plain(tx, problem, 12, jit=True)
    want_fast, want_slow = lookahead_reference(
        ref.sgd(0.01), grad, np.ones(10), 3, ref.linear_schedule(0.2, 0.8, 12), 4
    )
    assert relative(fast, want_fast) < 2e-6
    assert relative(slow, want_slow) < 2e-6


def test_lookahead_in_a_flax_train_state():
    from flax.training import train_state

    problem, _ = quadratic()
    tx = gradtx.lookahead(gradtx.adam(0.02), sync_period=5, slow_step_size=0.5)
    ts = train_state.TrainState.create(apply_fn=None, params={"x": problem.init}, tx=tx)

    @jax.jit
    def train_step(ts):
        grads = jax.grad(lambda p: problem.loss(p["x"]))(ts.params)
        return ts.apply_gradients(grads=grads)

    for _ in range(10):
        ts = train_step(ts)
    fast, slow = run_plain(tx, problem, 10, jit=True)
    np.testing.assert_array_equal(ts.params["x"], fast[-1])
    np.testing.assert_array_equal(gradtx.slow_params(ts.opt_state)["x"], slow[-1])


def test_lookahead_bad_input():
    sgd = gradtx.sgd(0.1)
    cases = [
        (dict(sync_period=0, slow_step_size=0.5), ValueError, "sync_period must be >= 1"),
        (dict(sync_period=-3, slow_step_size=0.5), ValueError, "sync_period"),
        (dict(sync_period=2.5, slow_step_size=0.5), TypeError, "sync_period must be an int"),
        (dict(sync_period=True, slow_step_size=0.5), TypeError, "sync_period"),
        (dict(sync_period=5, slow_step_size=-0.5), ValueError, "slow_step_size must be in"),
        (dict(sync_period=5, slow_step_size=1.5), ValueError, "slow_step_size must be in"),
        (dict(sync_period=5, slow_step_size=float("nan")), ValueError, "slow_step_size"),
        (dict(sync_period=5, slow_step_size=None), TypeError, "slow_step_size"),
        (dict(sync_period=5, slow_step_size=0.5, reset_state="no"), TypeError, "reset_state"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=f"^lookahead: {message}"):
            gradtx.lookahead(sgd, **kwargs)
    with pytest.raises(TypeError, match="^lookahead: fast_optimizer must be"):
        gradtx.lookahead(gradtx.sgd, 5, 0.5)
    gradtx.lookahead(sgd, np.int64(1), 1.0)  # edge values accepted

    tx = gradtx.lookahead(sgd, 5, 0.5)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="^lookahead: update needs params"):
        tx.update(params, tx.init(params))
    with pytest.raises(ValueError, match="^lookahead: the state was made by init with plain"):
        tx.update(params, tx.init(params), gradtx.LookaheadParams.init_synced(params))
    with pytest.raises(ValueError, match="^lookahead: the state was made by init with a Look"):
        tx.update(params, tx.init(gradtx.LookaheadParams.init_synced(params)), params)
    with pytest.raises(ValueError, match="^lookahead: .*'v'"):
        tx.update({"v": jnp.ones(3)}, tx.init(params), params)
    with pytest.raises(ValueError, match="^slow_params: .*found 0"):
        gradtx.slow_params(sgd.init(params))
    with pytest.raises(ValueError, match="^slow_params: .*params.slow"):
        gradtx.slow_params(tx.init(gradtx.LookaheadParams.init_synced(params)))


# ---- ema_params ----------------------------------------------------------------------------


def ema_reference(xs, decay, debias):
    """The bias-corrected exponential moving average of a sequence, in float64."""
    avg, out = np.zeros_like(xs[0], np.float64), []
    for t, x in enumerate(xs, start=1):
        d = decay(t - 1) if callable(decay) else decay
        avg = d * avg + (1 - d) * np.asarray(x, np.float64)
        out.append(avg / (1 - d**t) if debias else avg)
    return out


def param_sequence(steps, dtype, seed=0):
    """Params drifting like a training run: a random walk around a slowly moving mean."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    out = []
    for t in range(steps):
        w = w + 0.05 * rng.normal(size=w.shape) + 0.01
        b = b + 0.05 * rng.normal(size=b.shape)
        out.append(
            {"w": jnp.asarray(w, dtype), "b": jnp.asarray(b, dtype), "s": jnp.asarray(t, dtype)}
        )
    return out


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("debias", [True, False], ids=["debiased", "biased"])
def test_ema_params_matches_numpy_and_optax_ema(debias, jit):
    seq = param_sequence(60, jnp.float32)
    tx = gradtx.ema_params(0.9, debias=debias)
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(seq[0])
    got = []
    for p in seq:
        avg, state = update(p, state)
        got.append(avg)
    if jit:
        assert update._cache_size() == 1
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.ema(0.9, debias=debias)
        their_state, want_optax = theirs.init(seq[0]), []
        for p in seq:
            avg, their_state = theirs.update(p, their_state)
            want_optax.append(avg)
    for name in ("w", "b", "s"):
        want = ema_reference([p[name] for p in seq], 0.9, debias)
        ours = np.stack([np.asarray(a[name], np.float64) for a in got])
        assert relative(ours, np.stack(want)) < 1e-6
        optax_run = np.stack([np.asarray(a[name], np.float64) for a in want_optax])
        assert relative(ours, optax_run) < 1e-6
    assert gradtx.hyperparams(state)["decay"] == pytest.approx(0.9)


def test_ema_params_first_average_is_the_params():
    p = {"w": jnp.asarray([1.5, -2.25, 3.0])}
    tx = gradtx.ema_params(0.999)
    avg, _ = tx.update(p, tx.init(p))
    np.testing.assert_allclose(avg["w"], p["w"], rtol=1e-6)


def test_ema_params_schedule_and_set_hyperparams():
    seq = param_sequence(30, jnp.float32, seed=1)
    decay = gradtx.linear_schedule(0.5, 0.95, 30)
    tx = gradtx.ema_params(decay)
    update = jax.jit(tx.update)
    state = tx.init(seq[0])
    got = []
    for p in seq:
        avg, state = update(p, state)
        got.append(np.asarray(avg["w"], np.float64))
    want = ema_reference([p["w"] for p in seq], ref.linear_schedule(0.5, 0.95, 30), True)
    assert relative(np.stack(got), np.stack(want)) < 1e-6
    state = gradtx.set_hyperparams(state, decay=0.0)  # the average becomes the latest params
    avg, state = update(seq[0], state)
    np.testing.assert_allclose(avg["w"], seq[0]["w"], rtol=1e-6)
    assert update._cache_size() == 1


def test_ema_params_bf16_keeps_a_float32_average():
    """A bf16 average with decay 0.999 stalls: (1 - decay) * (x - avg) falls below bf16's ulp."""
    seq = param_sequence(300, jnp.bfloat16, seed=2)
    tx = gradtx.ema_params(0.999)
    update = jax.jit(tx.update)
    state = tx.init(seq[0])
    assert state.inner_state.ema["w"].dtype == jnp.float32
    for p in seq:
        avg, state = update(p, state)
    assert avg["w"].dtype == jnp.bfloat16
    want = ema_reference([p["w"] for p in seq], 0.999, True)[-1]
    # the float32 average is as exact as float32; the output is its rounding to bf16
    np.testing.assert_allclose(state.inner_state.ema["w"] / (1 - 0.999**300), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(avg["w"], np.float64), want, rtol=2**-8)

    tx16 = gradtx.ema_params(0.999, accumulator_dtype=jnp.bfloat16)
    state16 = tx16.init(seq[0])
    for p in seq:
        avg16, state16 = jax.jit(tx16.update)(p, state16)
    assert np.max(np.abs(np.asarray(avg16["w"], np.float64) - want)) > 0.05


def test_ema_params_bad_input():
    for decay in (-0.5, 1.0, float("inf")):
        with pytest.raises(ValueError, match="^ema_params: decay must"):
            gradtx.ema_params(decay)
    with pytest.raises(TypeError, match="^ema_params: debias must be a bool"):
        gradtx.ema_params(0.9, debias="yes")
    with pytest.raises(TypeError, match="^ema_params: accumulator_dtype"):
        gradtx.ema_params(0.9, accumulator_dtype="int8")
    tx = gradtx.ema_params(0.9)
    with pytest.raises(TypeError, match="^ema_params: params leaf 'step' has dtype int32"):
        tx.init({"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)})
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="^ema_params: .*'w'"):
        tx.update({"w": jnp.ones(3)}, state)
