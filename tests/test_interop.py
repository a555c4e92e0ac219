"""optax interop, both ways: optax transformations as links of gradtx combinators, gradtx
transformations inside optax's wrappers; the numbers are those of the all-optax (or all-gradtx)
equivalent, bit for bit.

optax runs under standard dtype promotion (its code relies on it); every gradtx-only run here is
under the strict promotion the test suite sets, so gradtx itself never needs standard.

The one case that needs an adapter: optax's combinators (``chain``, ``MultiSteps``, ``masked``,
...) give extra ``update`` arguments only to transformations that are instances of
``optax.GradientTransformationExtraArgs``. A gradtx transformation that needs one (a loss for
``reduce_on_plateau``, an objective for a line search) is wrapped as
``optax.GradientTransformationExtraArgs(*tx)``; without it, it raises an error naming the
missing argument (nothing is silently skipped). gradtx transformations that need no extra
argument work unwrapped.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

STEPS = 12
EAGER_STEPS = 4  # op-by-op dispatch is slow; the jitted runs take all STEPS
CURVATURE = {"w": np.linspace(0.5, 4.0, 6).reshape(3, 2), "b": np.array([1.0, 8.0])}


def _params():
    return {"w": jnp.full((3, 2), 2.0, jnp.float32), "b": jnp.asarray([-1.0, 3.0], jnp.float32)}


def _loss(params):
    """A convex quartic-plus-quadratic bowl; its minimum is 0 at 1."""
    total = jnp.zeros([], jnp.float32)
    for k in ("w", "b"):
        d = params[k] - 1.0
        total = total + jnp.sum(jnp.asarray(CURVATURE[k], jnp.float32) * d * d) + jnp.sum(d**4)
    return total


def _standard():
    return jax.numpy_dtype_promotion("standard")


def _run(tx, *, jit, optax_inside, extra=None, grads_fn=None, bound=None, steps=STEPS):
    """Params after every step (as NumPy), and the last state.

    ``extra(params, loss, grads)`` gives the extra array arguments of each ``update``;
    ``bound`` extra arguments that are not arrays (a ``value_fn``), fixed for the run;
    ``grads_fn(t, grads)`` may alter the gradients of step ``t`` (a NaN, say).
    """
    params = _params()
    update = functools.partial(tx.update, **(bound or {}))
    update = jax.jit(update) if jit else update
    promotion = _standard() if optax_inside else contextlib.nullcontext()
    trajectory = []
    with promotion:
        state = tx.init(params)
        for t in range(steps):
            loss, grads = jax.value_and_grad(_loss)(params)
            if grads_fn is not None:
                grads = grads_fn(t, grads)
            kwargs = {} if extra is None else extra(params, loss, grads)
            updates, state = update(grads, state, params, **kwargs)
            params = gradtx.apply_updates(params, updates)
            trajectory.append(jax.tree.map(np.asarray, params))
    return trajectory, state


def _assert_same(run_a, run_b):
    for a, b in zip(run_a, run_b, strict=True):
        jax.tree.map(np.testing.assert_array_equal, a, b)


# ---- optax transformations as links of gradtx ---------------------------------------------

OPTAX_LINKS = {
    "clip_adam_lr": (
        lambda: gradtx.chain(
            optax.clip_by_global_norm(1.0),
            optax.scale_by_adam(),
            gradtx.scale_by_learning_rate(0.1),
        ),
        lambda: optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.scale_by_adam(),
            optax.scale_by_learning_rate(0.1),
        ),
    ),
    "inject_hyperparams": (
        lambda: gradtx.chain(
            gradtx.clip(5.0), optax.inject_hyperparams(optax.sgd)(learning_rate=0.02, momentum=0.9)
        ),
        lambda: optax.chain(
            optax.clip(5.0), optax.inject_hyperparams(optax.sgd)(learning_rate=0.02, momentum=0.9)
        ),
    ),
    "named_chain": (
        lambda: gradtx.named_chain(
            ("clip", optax.clip_by_global_norm(1.0)), ("sgd", gradtx.sgd(0.1, momentum=0.9))
        ),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9)),
    ),
    "masked_optax_inner": (
        lambda: gradtx.masked(optax.sgd(0.05, momentum=0.5), {"w": True, "b": False}),
        lambda: optax.masked(optax.sgd(0.05, momentum=0.5), {"w": True, "b": False}),
    ),
}


def _ids(x):
    return ("jit" if x else "eager") if isinstance(x, bool) else x


# Op-by-op dispatch is slow, so the eager runs are a sample: one per direction.
EAGER = [("inject_hyperparams", False), ("chain", False)]


@pytest.mark.parametrize(
    ("case", "jit"), [(case, True) for case in OPTAX_LINKS] + EAGER[:1], ids=_ids
)
def test_optax_links_in_gradtx_combinators_give_optax_numbers(case, jit):
    mixed, all_optax = OPTAX_LINKS[case]
    steps = STEPS if jit else EAGER_STEPS
    _assert_same(
        _run(mixed(), jit=jit, optax_inside=True, steps=steps)[0],
        _run(all_optax(), jit=jit, optax_inside=True, steps=steps)[0],
    )


def test_extra_args_reach_optax_links_that_take_them():
    """optax's reduce_on_plateau reads ``value``; a line search reads ``value``, ``grad`` and
    ``value_fn``. gradtx's links ignore extras they do not use."""

    def plateau_extra(params, loss, grads):
        return {"value": loss}

    def search_extra(params, loss, grads):
        return {"value": loss, "grad": grads}

    plateau = dict(factor=0.5, patience=1, rtol=0.3)
    pairs = [
        (
            gradtx.chain(gradtx.sgd(0.05), optax.contrib.reduce_on_plateau(**plateau)),
            optax.chain(optax.sgd(0.05), optax.contrib.reduce_on_plateau(**plateau)),
            plateau_extra,
        ),
        (
            gradtx.chain(gradtx.scale(-1.0), optax.scale_by_backtracking_linesearch(20)),
            optax.chain(optax.scale(-1.0), optax.scale_by_backtracking_linesearch(20)),
            search_extra,
        ),
    ]
    bound = {"value_fn": _loss}
    for mixed, all_optax, extra in pairs:
        run_mixed, state = _run(mixed, jit=True, optax_inside=True, extra=extra, bound=bound)
        run_optax, _ = _run(all_optax, jit=True, optax_inside=True, extra=extra, bound=bound)
        _assert_same(run_mixed, run_optax)
    assert float(_loss(run_mixed[-1])) < 0.5 * float(_loss(_params()))  # the search did descend
    _, plateau_state = _run(pairs[0][0], jit=True, optax_inside=True, extra=plateau_extra)
    assert float(plateau_state[1].scale) < 1.0  # rtol=0.3: improvements soon stop counting


def test_hyperparams_see_gradtx_links_next_to_optax_states():
    tx = gradtx.chain(
        optax.clip_by_global_norm(1.0),
        gradtx.adam(0.1),
        optax.inject_hyperparams(optax.scale)(step_size=1.0),
    )
    with _standard():
        state = tx.init(_params())
        assert set(gradtx.hyperparams(state)) == {"b1", "b2", "eps", "eps_root", "learning_rate"}
        state = gradtx.set_hyperparams(state, learning_rate=0.0)
        updates, state = jax.jit(tx.update)(jax.grad(_loss)(_params()), state, _params())
    jax.tree.map(lambda u: np.testing.assert_array_equal(u, 0.0), updates)
    # optax's injected hyperparameters stay optax's: read and set them in its own state.
    assert float(state[2].hyperparams["step_size"]) == 1.0


# ---- gradtx transformations inside optax --------------------------------------------------

GRADTX_INSIDE = {
    "chain": (
        # (gradtx's clip_by_global_norm rounds as c / max(|g|, c) * g, optax's as g / |g| * c:
        # up to 1 ulp apart, so the bitwise comparison clips by value)
        lambda: optax.chain(gradtx.clip(1.0), gradtx.sgd(0.1, momentum=0.9)),
        lambda: optax.chain(optax.clip(1.0), optax.sgd(0.1, momentum=0.9)),
    ),
    "multi_steps": (
        lambda: optax.MultiSteps(gradtx.sgd(0.1, momentum=0.9), every_k_schedule=3),
        lambda: optax.MultiSteps(optax.sgd(0.1, momentum=0.9), every_k_schedule=3),
    ),
    "masked": (
        lambda: optax.masked(gradtx.sgd(0.05, momentum=0.9), {"w": False, "b": True}),
        lambda: optax.masked(optax.sgd(0.05, momentum=0.9), {"w": False, "b": True}),
    ),
    "partition": (
        lambda: optax.partition(
            {"fast": gradtx.sgd(0.1), "slow": gradtx.sgd(0.01, momentum=0.9)},
            {"w": "fast", "b": "slow"},
        ),
        lambda: optax.partition(
            {"fast": optax.sgd(0.1), "slow": optax.sgd(0.01, momentum=0.9)},
            {"w": "fast", "b": "slow"},
        ),
    ),
    "nested_chain": (  # optax's chain around a gradtx chain
        lambda: optax.chain(
            gradtx.chain(gradtx.trace(0.9), gradtx.scale_by_learning_rate(0.05)),
            optax.clip(1.0),
        ),
        lambda: optax.chain(
            optax.chain(optax.trace(0.9), optax.scale_by_learning_rate(0.05)), optax.clip(1.0)
        ),
    ),
}


@pytest.mark.parametrize(
    ("case", "jit"), [(case, True) for case in GRADTX_INSIDE] + EAGER[1:], ids=_ids
)
def test_gradtx_inside_optax_wrappers_gives_optax_numbers(case, jit):
    mixed, all_optax = GRADTX_INSIDE[case]
    steps = STEPS if jit else EAGER_STEPS
    _assert_same(
        _run(mixed(), jit=jit, optax_inside=True, steps=steps)[0],
        _run(all_optax(), jit=jit, optax_inside=True, steps=steps)[0],
    )


def test_adam_inside_optax_multisteps_is_gradtx_adam_on_the_mean_gradient():
    """optax.MultiSteps around gradtx.adam: the inner optimizer is gradtx's (whose bias
    correction differs from optax's adam by design), applied every third step to the mean.
    The largest deviation measured is 1 float32 ulp (7e-8 relative)."""
    k = 3
    mixed, _ = _run(optax.MultiSteps(gradtx.adam(0.1), k), jit=True, optax_inside=True)
    tx = gradtx.adam(0.1)
    params, state, trajectory = _params(), tx.init(_params()), []
    for _ in range(STEPS // k):
        # The params do not move between micro-steps: the mean of the k gradients is the
        # gradient (optax's running mean of equal terms is exact).
        updates, state = jax.jit(tx.update)(jax.grad(_loss)(params), state, params)
        params = gradtx.apply_updates(params, updates)
        trajectory.append(jax.tree.map(np.asarray, params))
    for t, expected in enumerate(trajectory):
        got = mixed[k * (t + 1) - 1]
        # Two compiled programs (adam inside MultiSteps' cond, adam alone): XLA contracts
        # multiply-adds into FMAs per program, so the params may differ in the last bit.
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2.4e-7), got, expected)


def test_optax_apply_if_finite_skips_a_nan_step_of_a_gradtx_optimizer():
    def poison(t, grads):
        return jax.tree.map(lambda g: g * jnp.nan, grads) if t in (3, 4) else grads

    runs = [
        _run(wrapper(inner, 2), jit=True, optax_inside=True, grads_fn=poison)
        for wrapper, inner in [
            (optax.apply_if_finite, gradtx.sgd(0.05, momentum=0.9)),
            (optax.apply_if_finite, optax.sgd(0.05, momentum=0.9)),
        ]
    ]
    (mixed, state), (all_optax, _) = runs
    _assert_same(mixed, all_optax)
    jax.tree.map(np.testing.assert_array_equal, mixed[4], mixed[2])  # two steps skipped
    assert int(state.total_notfinite) == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(mixed[-1]))


def test_optax_lookahead_around_a_gradtx_optimizer():
    params = optax.LookaheadParams.init_synced(_params())

    def run(fast):
        tx = optax.lookahead(fast, sync_period=3, slow_step_size=0.5)
        update = jax.jit(tx.update)
        trajectory = []
        p = params
        with _standard():
            state = tx.init(p)
            for _ in range(STEPS):
                grads = jax.grad(_loss)(p.fast)  # optax's lookahead takes the fast gradients
                updates, state = update(grads, state, p)
                p = optax.apply_updates(p, updates)
                trajectory.append(jax.tree.map(np.asarray, p))
        return trajectory

    _assert_same(run(gradtx.sgd(0.05, momentum=0.9)), run(optax.sgd(0.05, momentum=0.9)))


def test_optax_schedule_free_around_a_gradtx_optimizer():
    def make(base):
        return optax.contrib.schedule_free(base, learning_rate=0.05, b1=0.9)

    _assert_same(
        _run(make(gradtx.sgd(0.05)), jit=True, optax_inside=True)[0],
        _run(make(optax.sgd(0.05)), jit=True, optax_inside=True)[0],
    )


# ---- the adapter ---------------------------------------------------------------------------


def test_gradtx_link_needing_extra_args_inside_optax_chain_needs_the_adapter():
    def extra(params, loss, grads):
        return {"loss": loss}

    plateau = dict(factor=0.5, patience=1, rtol=0.9)
    plain = optax.chain(gradtx.sgd(0.05), gradtx.reduce_on_plateau(**plateau))
    with pytest.raises(ValueError, match=r"reduce_on_plateau: update needs the monitored loss"):
        _run(plain, jit=False, optax_inside=True, extra=extra)

    adapted = optax.chain(
        gradtx.sgd(0.05),
        optax.GradientTransformationExtraArgs(*gradtx.reduce_on_plateau(**plateau)),
    )
    all_gradtx = gradtx.chain(gradtx.sgd(0.05), gradtx.reduce_on_plateau(**plateau))
    run_adapted, state = _run(adapted, jit=True, optax_inside=True, extra=extra)
    run_gradtx, _ = _run(all_gradtx, jit=True, optax_inside=False, extra=extra)
    _assert_same(run_adapted, run_gradtx)
    assert float(state[1].inner_state.scale) < 1.0  # the loss did arrive


def _checks_optax_type(tx):
    """What a library written for optax does with the ``tx`` it is given."""
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"expected an optax.GradientTransformation, got {type(tx).__name__}")
    return tx


def test_as_optax_passes_optaxs_type_check_with_gradtxs_numbers():
    tx = gradtx.adamw(0.1, weight_decay=0.01)
    with pytest.raises(TypeError, match="expected an optax.GradientTransformation"):
        _checks_optax_type(tx)
    wrapped = _checks_optax_type(gradtx.as_optax(tx))
    assert isinstance(wrapped, optax.GradientTransformationExtraArgs)
    assert isinstance(wrapped, gradtx.GradientTransformation)  # still one for gradtx
    assert gradtx.as_optax(wrapped) is wrapped
    assert optax.with_extra_args_support(wrapped) is wrapped
    _assert_same(
        _run(wrapped, jit=True, optax_inside=True)[0], _run(tx, jit=True, optax_inside=False)[0]
    )
    # inside gradtx's combinators and optax's, as the transformation it wraps
    _assert_same(
        _run(gradtx.chain(gradtx.clip_by_global_norm(1.0), wrapped), jit=True, optax_inside=False)[
            0
        ],
        _run(gradtx.chain(gradtx.clip_by_global_norm(1.0), tx), jit=True, optax_inside=False)[0],
    )
    _assert_same(
        _run(optax.MultiSteps(wrapped, 2), jit=True, optax_inside=True)[0],
        _run(gradtx.MultiSteps(tx, 2), jit=True, optax_inside=False)[0],
    )


def test_as_optax_passes_extra_arguments_to_gradtx_and_drops_them_for_plain_updates():
    def extra(params, loss, grads):
        return {"loss": loss}

    def keep_loss(updates, state, params=None, *, loss, **extra):
        return updates, loss

    needs_loss = gradtx.GradientTransformation(lambda p: jnp.zeros([]), keep_loss)
    tx = optax.chain(gradtx.sgd(0.05), gradtx.as_optax(needs_loss))  # optax passes it on
    _, state = _run(tx, jit=True, optax_inside=True, extra=extra)
    assert float(state[1]) > 0.0  # the last loss arrived
    plain = optax.GradientTransformation(lambda p: (), lambda u, s, p=None: (u, s))
    wrapped = gradtx.as_optax(plain)
    assert isinstance(wrapped, optax.GradientTransformationExtraArgs)
    assert wrapped.update(1.0, (), None, loss=2.0) == (1.0, ())


def test_optaxs_transformations_are_gradtx_transformations():
    """gradtx takes optax's pairs wherever it takes its own, and its type check says so."""
    assert isinstance(optax.adam(0.1), gradtx.GradientTransformation)
    assert isinstance(optax.adam(0.1), gradtx.GradientTransformationExtraArgs)
    plain = optax.GradientTransformation(lambda p: (), lambda u, s, p=None: (u, s))
    assert isinstance(plain, gradtx.GradientTransformation)
    assert not isinstance(plain, gradtx.GradientTransformationExtraArgs)
    assert not isinstance((len, len), gradtx.GradientTransformation)  # not a pair's type


def test_as_optax_refuses_what_is_not_a_pair_and_names_a_missing_optax(monkeypatch):
    with pytest.raises(TypeError, match=r"as_optax: tx must be a GradientTransformation"):
        gradtx.as_optax(gradtx.adam)
    monkeypatch.setitem(__import__("sys").modules, "optax", None)
    with pytest.raises(ImportError, match=r"as_optax: optax is not installed"):
        gradtx.as_optax(gradtx.adam(0.1))


@pytest.mark.parametrize(
    "name, make",
    [
        ("scale_by_polyak", lambda: gradtx.scale_by_polyak()),  # no value=
        ("add_decayed_weights", lambda: gradtx.add_decayed_weights(0.1)),  # no params
        ("scale_by_lbfgs", lambda: gradtx.scale_by_lbfgs()),
        ("reduce_on_plateau", lambda: gradtx.reduce_on_plateau()),  # no value=
    ],
)
def test_a_missing_update_argument_is_a_type_error_as_in_optax_and_a_value_error(name, make):
    """Python (and optax) raise TypeError for a missing argument; gradtx raised ValueError
    before: its error is both, and names the function."""
    tx = make()
    grads = {"w": jnp.ones(3)}
    state = tx.init(grads)
    for error in (TypeError, ValueError):
        with pytest.raises(error, match=rf"^{name}: update needs"):
            tx.update(grads, state)


def test_gradtx_update_accepts_what_optax_typed_code_passes():
    """Code written for optax calls ``tx.init(params)`` and ``tx.update(grads, state, params)``
    (positionally, params optional) and adds updates with ``optax.apply_updates``."""
    tx = gradtx.adamw(0.1, weight_decay=0.01)
    params = _params()
    grads = jax.grad(_loss)(params)
    state = tx.init(params)
    with_params, _ = tx.update(grads, state, params)
    sgd = gradtx.sgd(0.1)
    without_params, _ = sgd.update(grads, sgd.init(params))
    with _standard():
        moved = optax.apply_updates(params, with_params)
    jax.tree.map(np.testing.assert_array_equal, moved, gradtx.apply_updates(params, with_params))
    jax.tree.map(lambda u, g: np.testing.assert_array_equal(u, -0.1 * g), without_params, grads)
    assert tuple(tx._fields) == tuple(optax.GradientTransformation._fields) == ("init", "update")


# ---- optax's numeric helpers and type names ----------------------------------------------

INCREMENT_DTYPES = ["int8", "int16", "int32", "uint8", "uint32", "float16", "bfloat16", "float32"]


@pytest.mark.parametrize("dtype", INCREMENT_DTYPES)
def test_safe_increment_is_optax_and_saturates(dtype):
    dtype = jnp.dtype(dtype)
    step = jax.jit(gradtx.safe_increment)
    top = jnp.iinfo(dtype).max if jnp.issubdtype(dtype, jnp.integer) else jnp.finfo(dtype).max
    for start in (jnp.asarray(3, dtype), jnp.asarray(top, dtype), jnp.arange(4, dtype=dtype)):
        ours, theirs = step(start), optax.safe_increment(start)
        assert ours.dtype == theirs.dtype == dtype
        np.testing.assert_array_equal(ours, theirs)
    assert int(step(jnp.asarray(top, dtype))) == int(top)
    assert gradtx.safe_int32_increment is gradtx.safe_increment


def test_safe_increment_in_64_bits(x64):
    for dtype in (jnp.int64, jnp.uint64, jnp.float64):
        top = jnp.iinfo(dtype).max if jnp.issubdtype(dtype, jnp.integer) else jnp.finfo(dtype).max
        assert gradtx.safe_increment(jnp.asarray(top, dtype)) == jnp.asarray(top, dtype)
        assert gradtx.safe_increment(jnp.asarray(41, dtype)) == 42


def test_safe_increment_refuses_bool_and_complex_as_optax_does():
    for x in (jnp.asarray(True), jnp.asarray(1 + 0j, jnp.complex64)):
        with pytest.raises(ValueError, match="^safe_increment: count must have an integer or"):
            gradtx.safe_increment(x)
        with pytest.raises(ValueError):
            optax.safe_increment(x)


def test_global_norm_is_optaxs_where_optax_is_exact_and_finite_beyond():
    rng = np.random.default_rng(3)
    tree = {"w": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32), "b": jnp.ones(3)}
    np.testing.assert_allclose(gradtx.global_norm(tree), optax.tree.norm(tree), rtol=1e-6)
    assert float(gradtx.global_norm({})) == float(optax.tree.norm({})) == 0.0
    big = {"w": jnp.full(2, 1e30, jnp.float32)}
    assert not np.isfinite(optax.tree.norm(big))  # optax.global_norm: deprecated alias
    np.testing.assert_allclose(gradtx.global_norm(big), np.sqrt(2) * 1e30, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(gradtx.global_norm)(big), np.sqrt(2) * 1e30, rtol=1e-6)


def test_optax_type_names_exist_and_describe_gradtx_objects():
    tx = gradtx.adam(1e-3)
    init: gradtx.TransformInitFn = tx.init
    update: gradtx.TransformUpdateFn = tx.update
    schedule: gradtx.Schedule = gradtx.linear_schedule(0.0, 1.0, 10)
    params: gradtx.Params = {"w": jnp.ones(2)}
    state: gradtx.OptState = init(params)
    updates: gradtx.Updates
    updates, state = update(params, state, params)
    assert float(schedule(5)) == 0.5 and jax.tree.structure(updates) == jax.tree.structure(params)
    for name in ("Params", "Updates", "OptState", "Schedule", "ScalarOrSchedule"):
        assert hasattr(optax, name) and hasattr(gradtx, name), name
    assert hasattr(optax, "TransformInitFn") and hasattr(optax, "TransformUpdateFn")


def test_stateless_with_tree_map_is_optaxs_with_and_without_params():
    params = {"a": jnp.zeros((1, 2)), "b": jnp.ones((1,))}
    updates = {"a": jnp.ones((1, 2)), "b": jnp.full((1,), 2.0)}
    fn = lambda g, p: g + 0.1 * p  # noqa: E731
    ours, theirs = gradtx.stateless_with_tree_map(fn), optax.stateless_with_tree_map(fn)
    assert ours.init(params) == gradtx.EmptyState() == gradtx.init_empty_state(params)
    got = jax.jit(ours.update)(updates, ours.init(params), params)[0]
    want = theirs.update(updates, theirs.init(params), params)[0]
    jax.tree.map(np.testing.assert_array_equal, got, want)
    double = gradtx.stateless_with_tree_map(lambda g, p: 2.0 * g if p is None else g)
    got = jax.jit(double.update)(updates, double.init(None))[0]
    jax.tree.map(np.testing.assert_array_equal, got, jax.tree.map(lambda x: 2 * x, updates))
    with pytest.raises(ValueError, match="^stateless_with_tree_map: "):
        ours.update(updates, ours.init(params), {"a": jnp.zeros((1, 2))})


@pytest.mark.parametrize("scale", [0.0, 0.5, -1.0, 2.0])
def test_scale_gradient_scales_the_backward_pass_only(scale):
    inputs = {"a": -1.0, "b": {"c": (2.0,), "d": 0.0}}

    def loss(x, scaler):
        return sum(jax.tree.leaves(jax.tree.map(lambda v: v**2, scaler(x, scale))))

    assert loss(inputs, gradtx.scale_gradient) == loss(inputs, lambda x, s: x) == 5.0
    ours = jax.jit(jax.grad(lambda x: loss(x, gradtx.scale_gradient)))(inputs)
    theirs = jax.grad(lambda x: loss(x, optax.scale_gradient))(inputs)
    jax.tree.map(np.testing.assert_array_equal, ours, theirs)
    jax.tree.map(lambda i, g: np.testing.assert_array_equal(g, 2 * i * scale), inputs, ours)


def test_incremental_and_periodic_updates_are_optaxs():
    old = ({"a": jnp.ones((3, 2))}, jnp.ones((1,), jnp.bfloat16))
    new = jax.tree.map(lambda t: 2 * t, old)
    for step_size in (0.5, 0.1, 1.0, 1.5):
        ours = jax.jit(gradtx.incremental_update)(new, old, step_size)
        theirs = optax.incremental_update(new, old, step_size)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, theirs)
        assert jax.tree.map(lambda x: x.dtype, ours) == jax.tree.map(lambda x: x.dtype, old)
    periodic = jax.jit(gradtx.periodic_update)
    for step in range(12):
        ours, theirs = periodic(new, old, step, 5), optax.periodic_update(new, old, step, 5)
        jax.tree.map(np.testing.assert_array_equal, ours, theirs)
        jax.tree.map(np.testing.assert_array_equal, ours, new if step % 5 == 0 else old)
    with pytest.raises(ValueError, match="^incremental_update: "):
        gradtx.incremental_update({"a": jnp.ones(2)}, {"b": jnp.ones(2)}, 0.5)


def test_trace_with_decay_1_is_optaxs_running_sum():
    # decay = 1 is legitimate (a plain sum of the updates), and optax's suite uses it
    tx, ref = gradtx.trace(1.0), optax.trace(1.0)
    grads = {"w": jnp.asarray([1.0, -2.0])}
    state, ref_state = tx.init(grads), ref.init(grads)
    for _ in range(3):
        out, state = tx.update(grads, state)
        with _standard():
            want, ref_state = ref.update(grads, ref_state)
    np.testing.assert_array_equal(out["w"], want["w"])
    np.testing.assert_array_equal(out["w"], [3.0, -6.0])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("clip", dict(max_delta=1.0)),
        ("clip_by_global_norm", dict(max_norm=1.0)),
        ("clip_by_block_rms", dict(threshold=1.0)),
        ("adaptive_grad_clip", dict(clipping=0.1)),
        ("scale", dict(step_size=-0.5)),
        ("add_decayed_weights", dict(weight_decay=0.1)),
    ],
)
def test_stateless_transformations_take_no_state_as_optaxs_do(name, kwargs):
    # optax code calls update(updates, None) on transformations that keep no state; gradtx's
    # keep only their hyperparameters' table, so without it they use the values they were
    # built with, and hand back the state they were given
    params = {"w": jnp.asarray([[3.0, -4.0], [0.5, 2.0]])}
    grads = {"w": jnp.asarray([[1.0, -2.0], [0.25, 4.0]])}
    tx = getattr(gradtx, name)(**kwargs)
    want, _ = tx.update(grads, tx.init(params), params)
    for given in (None, gradtx.EmptyState(), {}, ()):
        out, state = tx.update(grads, given, params)
        np.testing.assert_array_equal(out["w"], want["w"])
        assert state == given
    with _standard():
        ref, _ = getattr(optax, name)(**kwargs).update(grads, None, params)
    np.testing.assert_allclose(out["w"], ref["w"], rtol=1e-6)


def test_no_state_is_refused_where_one_is_needed():
    grads = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"scale: update needs the state made by init.*sched"):
        gradtx.scale(gradtx.linear_schedule(1.0, 0.0, 4)).update(grads, None)
    with pytest.raises(ValueError, match=r"trace: update needs the state made by init.*keeps"):
        gradtx.trace(0.9).update(grads, None)


def test_fields_of_the_state_inside_a_table_read_as_optaxs():
    # code written for optax reads state fields (Adam's mu, a trace's trace) directly
    params = {"w": jnp.ones(2)}
    state = gradtx.trace(0.9).init(params)
    assert state.trace is state.inner_state.trace
    with pytest.raises(AttributeError, match="HyperState .*TraceState.* has no attribute 'mu'"):
        _ = state.mu


def test_a_none_param_stays_none_as_in_optax():
    x = jnp.ones(3)
    assert gradtx.apply_updates(None, x) is None
    assert gradtx.incremental_update(None, x, 0.5) is None
    out = gradtx.apply_updates({"a": None, "b": x}, {"a": x, "b": x})
    assert out["a"] is None and np.array_equal(out["b"], 2 * x)
    with pytest.raises(ValueError, match="apply_updates: .*'c'"):
        gradtx.apply_updates({"a": None, "b": x}, {"a": x, "c": x})


def test_positions_of_a_state_are_optaxs():
    # code written for optax indexes states: opt_state[0].mu, state[-1] of a chain
    params = {"w": jnp.ones(2)}
    mine, theirs = gradtx.adam(0.1).init(params), optax.adam(0.1).init(params)
    assert type(mine[0]).__name__ == type(theirs[0]).__name__ == "ScaleByAdamState"
    assert mine[0].mu.keys() == theirs[0].mu.keys() and int(mine[0].count) == 0
    assert type(mine[-1]).__name__ == "EmptyState"
    search = gradtx.scale_by_backtracking_linesearch(5).init(params)
    assert float(search[0]) == float(search.inner_state.learning_rate)
    # iterating stays the pair's (pytrees and checkpoints use it)
    assert [type(x).__name__ for x in mine] == ["dict", "tuple"]
    odd = gradtx.HyperState({"": jnp.zeros((1, 3))}, {"a": jnp.ones(2)})  # a dict inside
    with pytest.raises(TypeError, match="HyperState: the state inside .*dict.* has no positions"):
        odd[0]


STATE_NAMES = [
    "AddNoiseState",
    "EmaState",
    "FactoredState",
    "ScaleByLionState",
    "ScaleByNovogradState",
    "ScaleByRssState",
    "ScaleBySM3State",
    "TraceState",
    "contrib.HutchinsonState",
    "contrib.SophiaState",
    "AdaptiveGradClipState",
    "AddDecayedWeightsState",
    "ClipByGlobalNormState",
    "ClipState",
    "ScaleByTrustRatioState",
    "ScaleState",
    "contrib.NormalizeState",
    "PartitionState",
    "transforms.PartitionState",
]


@pytest.mark.parametrize("name", STATE_NAMES)
def test_optaxs_state_names_are_gradtxs_states_of_the_same_fields(name):
    def get(lib):
        obj = lib
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    assert get(gradtx)._fields == get(optax)._fields


def test_the_named_states_are_what_the_transformations_keep():
    params = {"w": jnp.ones((3, 2))}
    assert isinstance(gradtx.trace(0.9).init(params).inner_state, gradtx.TraceState)
    assert isinstance(gradtx.scale_by_rss().init(params).inner_state, gradtx.ScaleByRssState)
    assert isinstance(gradtx.clip(1.0).init(params).inner_state, gradtx.ClipState)
    lion = gradtx.scale_by_lion().init(params)
    assert isinstance(lion.inner_state, gradtx.ScaleByLionState)
