"""optax's names that gradtx lacked, against optax's functions of the same names.

Schedules (``piecewise_interpolate_schedule``, ``linear_onecycle_schedule``,
``cosine_onecycle_schedule``; their values are compared with optax's and with the float64
formula in ``tests/test_schedules.py``'s tables), parameter groups in optax's state layout
(``multi_transform``, ``selective_transform``, ``MaskedNode``), ``multi_normal``,
``second_order``'s diagonals, and the microbatching utilities: eagerly and under ``jit``. optax
runs under standard dtype promotion (it promotes weakly typed Python scalars); gradtx under the
suite's strict one.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.microbatching as optax_mb
import pytest

import gradtx
import gradtx.microbatching as mb
import gradtx.second_order
from gradtx._wrappers.microbatching import IndividualOutputs


def _optax(fn, *args, **kwargs):
    with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
        # optax 0.2.8 deprecates its second_order functions
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


# ---- schedules ---------------------------------------------------------------------------

# The schedules' values (eager Python ints, jit, vmap, scan, float64, optax) are in the tables of
# tests/test_schedules.py, with every other schedule; here what is particular to them.


def test_schedule_takes_a_float_step_and_an_array_of_steps():
    schedule = gradtx.piecewise_interpolate_schedule("linear", 1.0, {4: 0.5})
    np.testing.assert_allclose(schedule(1.5), 1.0 - 0.5 * 1.5 / 4, rtol=1e-6)
    np.testing.assert_allclose(schedule(jnp.arange(6)), [1, 0.875, 0.75, 0.625, 0.5, 0.5])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gradtx.linear_onecycle_schedule(10, 1.0, pct_start=1.5),
            "linear_onecycle_schedule: pct_start must be in [0, 1], got 1.5",
        ),
        (
            lambda: gradtx.piecewise_interpolate_schedule(None, 1.0),
            "piecewise_interpolate_schedule: interpolate_type must be 'linear' or 'cosine', "
            "got None",
        ),
        (
            lambda: gradtx.cosine_onecycle_schedule(0, 1.0),
            "cosine_onecycle_schedule: transition_steps must be >= 1, got 0",
        ),
    ],
)
def test_schedule_errors_name_the_function_and_argument(call, message):
    with pytest.raises(ValueError) as info:  # optax raises ValueError for these too
        call()
    assert str(info.value) == message


# ---- multi_transform, selective_transform, MaskedNode -------------------------------------


def _params():
    return {
        "linear_1": {"w": jnp.full((2, 3), 0.5, jnp.float32), "b": jnp.zeros(3)},
        "linear_2": {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.ones(2)},
    }


def _grads(k):
    return jax.tree.map(lambda p: jnp.cos(p + k), _params())


def _labels(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key, params)


def _layout(state, masked_node):
    """Each leaf's path in ``state`` and whether it is the placeholder, library-independently."""
    flat = jax.tree_util.tree_flatten_with_path(
        state, is_leaf=lambda x: isinstance(x, masked_node)
    )[0]
    return [
        (jax.tree_util.keystr(path), "placeholder" if isinstance(x, masked_node) else np.shape(x))
        for path, x in flat
    ]


def _run(tx, update, steps=3):
    params = _params()
    state = tx.init(params)
    for k in range(steps):
        updates, state = update(_grads(k), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params, state


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("labels_fn", [False, True], ids=["label_tree", "label_fn"])
def test_multi_transform_matches_optax(labels_fn, jit):
    labels = _labels if labels_fn else _labels(_params())

    def build(lib):
        return lib.multi_transform({"w": lib.adam(0.1), "b": lib.sgd(0.05, momentum=0.9)}, labels)

    ours_tx, theirs_tx = build(gradtx), _optax(build, optax)
    ours_update = jax.jit(ours_tx.update) if jit else ours_tx.update
    ours, state = _run(ours_tx, ours_update)
    theirs, _ = _optax(_run, theirs_tx, jax.jit(theirs_tx.update) if jit else theirs_tx.update)
    # optax's float32 bias correction of Adam is a few ulps off (tests/registry's
    # OPTAX_OWN_F32_ERROR); against gradtx's own groups the numbers are the same bits
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5), ours, theirs)
    groups = gradtx.partition({"w": gradtx.adam(0.1), "b": gradtx.sgd(0.05, momentum=0.9)}, labels)
    same, _ = _run(groups, jax.jit(groups.update) if jit else groups.update)
    jax.tree.map(np.testing.assert_array_equal, ours, same)
    assert isinstance(state, gradtx.MultiTransformState)
    assert sorted(state.inner_states) == ["b", "w"]  # jit returns a dict's keys sorted
    assert all(isinstance(s, gradtx.MaskedState) for s in state.inner_states.values())
    if jit:
        assert ours_update._cache_size() == 1


def test_multi_transform_state_layout_is_optax_s():
    # an inner transformation whose state is the params it is given shows where each
    # library puts its placeholders; a prefix of labels masks out whole subtrees
    def copying(lib):
        return lib.GradientTransformation(lambda p: {"copy": p}, lambda u, s, p=None: (u, s))

    params = ({"a": jnp.ones(2), "b": (jnp.ones(1), jnp.ones(3))}, {"c": jnp.ones(4)})
    labels = ({"a": "x", "b": ("y", "x")}, "y")
    ours = gradtx.multi_transform({"x": copying(gradtx), "y": copying(gradtx)}, labels)
    theirs = optax.multi_transform({"x": copying(optax), "y": copying(optax)}, labels)
    assert _layout(ours.init(params), gradtx.MaskedNode) == _layout(
        theirs.init(params), optax.MaskedNode
    )
    assert _layout(ours.init(params), gradtx.MaskedNode).count(("", "placeholder")) == 0
    masked = ours.init(params).inner_states["y"].inner_state["copy"]
    assert isinstance(masked[0]["a"], gradtx.MaskedNode) and masked[1]["c"].shape == (4,)


def test_multi_transform_hyperparameters_stay_live():
    tx = gradtx.multi_transform({"w": gradtx.sgd(0.1), "b": gradtx.sgd(0.1)}, _labels)
    state = tx.init(_params())
    key = "inner_states/b/inner_state/learning_rate"
    assert float(gradtx.hyperparams(state)[key]) == pytest.approx(0.1)
    state = gradtx.set_hyperparams(state, **{key: 0.0})
    updates, _ = jax.jit(tx.update)(_grads(0), state, _params())
    assert not np.any(updates["linear_1"]["b"]) and np.all(updates["linear_1"]["w"] != 0)


def test_multi_transform_label_without_transformation_is_an_init_error():
    tx = gradtx.multi_transform({"w": gradtx.sgd(0.1)}, _labels)  # as in optax: at init
    with pytest.raises(ValueError, match=r"multi_transform: no transformation for the label"):
        tx.init(_params())
    tx = gradtx.multi_transform({"w": gradtx.sgd(0.1)}, {"linear_1": "w"})
    with pytest.raises(ValueError, match=r"multi_transform: the param_labels .*'linear_2"):
        tx.init(_params())


def test_multi_transform_restricts_extra_args_on_request():
    seen = {}

    def spy(name):
        def update(updates, state, params=None, *, tags, **extra):
            seen[name] = tags
            return updates, state

        return gradtx.GradientTransformation(lambda p: gradtx.EmptyState(), update)

    params = {"a": jnp.ones(1), "b": jnp.ones(2)}
    tags = {"a": jnp.zeros(1), "b": jnp.zeros(2)}
    for flag in (False, True):
        tx = gradtx.multi_transform(
            {"x": spy("x"), "y": spy("y")}, {"a": "x", "b": "y"}, mask_compatible_extra_args=flag
        )
        tx.update(params, tx.init(params), tags=tags)
        assert isinstance(seen["x"]["b"], gradtx.MaskedNode) is flag
        assert isinstance(seen["y"]["a"], gradtx.MaskedNode) is flag


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "mask",
    [
        {"linear_1": {"w": True, "b": False}, "linear_2": {"w": False, "b": True}},
        {"linear_1": True, "linear_2": False},  # a prefix
        True,
        False,
    ],
    ids=["tree", "prefix", "all", "none"],
)
def test_selective_transform_matches_optax(mask, jit):
    ours_tx = gradtx.selective_transform(gradtx.sgd(0.1, momentum=0.9), freeze_mask=mask)
    theirs_tx = optax.transforms.selective_transform(optax.sgd(0.1, momentum=0.9), freeze_mask=mask)
    ours, state = _run(ours_tx, jax.jit(ours_tx.update) if jit else ours_tx.update)
    theirs, theirs_state = _optax(
        _run, theirs_tx, jax.jit(theirs_tx.update) if jit else theirs_tx.update
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, theirs)
    frozen = jax.tree.leaves(jax.tree.broadcast(mask, _params()))
    for p, p0, f in zip(jax.tree.leaves(ours), jax.tree.leaves(_params()), frozen):
        assert np.array_equal(p, p0) is f
    assert sorted(state.inner_states) == ["freeze", "train"]

    def placeholders(state, node):  # where no momentum is kept: the frozen subtrees
        leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, node))
        return sum(isinstance(x, node) for x in leaves)

    count = placeholders(state.inner_states["train"], gradtx.MaskedNode)
    assert count == placeholders(theirs_state.inner_states["train"], optax.MaskedNode)
    assert (count > 0) == any(frozen)


def test_selective_transform_takes_a_function_of_the_params():
    mask = {"linear_1": True, "linear_2": False}
    by_fn = gradtx.selective_transform(gradtx.adam(0.1), freeze_mask=lambda p: mask)
    by_tree = gradtx.selective_transform(gradtx.adam(0.1), freeze_mask=mask)
    a, _ = _run(by_fn, by_fn.update)
    b, _ = _run(by_tree, by_tree.update)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_selective_transform_mask_that_does_not_fit_is_a_value_error_naming_the_path():
    tx = gradtx.selective_transform(gradtx.sgd(1.0), freeze_mask={"linear_1": True})
    with pytest.raises(ValueError, match=r"selective_transform: the freeze_mask .*'linear_2"):
        tx.init(_params())


# ---- multi_normal ------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_multi_normal_matches_optax(jit):
    loc, log_scale = jnp.array([[0.5, -1.0, 2.0]]), jnp.array([[0.1], [-0.3]])
    key, x = jax.random.key(3), jnp.linspace(-1.0, 1.0, 30).reshape(5, 2, 3)

    def ours(loc, log_scale):
        dist = gradtx.multi_normal(loc, log_scale)
        return dist.sample((4,), key), dist.log_prob(x)

    def theirs(loc, log_scale):
        dist = optax.multi_normal(loc, log_scale)
        return dist.sample((4,), key), dist.log_prob(x)

    run = jax.jit(ours) if jit else ours
    (sample, log_prob), (sample_o, log_prob_o) = run(loc, log_scale), _optax(theirs, loc, log_scale)
    assert sample.shape == (4, 2, 3) and log_prob.shape == (5,)
    np.testing.assert_allclose(sample, sample_o, rtol=1e-6)
    np.testing.assert_allclose(log_prob, log_prob_o, rtol=1e-6)
    # the score function, as perturbation-based gradient estimates use it
    grad = jax.jit(jax.grad(lambda p: ours(*p)[1].sum()))((loc, log_scale))
    grad_o = _optax(jax.jit(jax.grad(lambda p: theirs(*p)[1].sum())), (loc, log_scale))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), grad, grad_o)
    dist = gradtx.multi_normal(loc, log_scale)
    assert dist.params[1] is dist.log_scale and dist.params[0].shape == (1, 3)


def test_multi_normal_samples_in_the_wider_float_dtype():
    dist = gradtx.multi_normal(jnp.zeros(3, jnp.bfloat16), jnp.zeros(3, jnp.bfloat16))
    assert dist.sample((2,), jax.random.key(0)).dtype == jnp.float32


# ---- second_order ------------------------------------------------------------------------


def _loss(params, inputs, targets):
    return (
        jnp.sum((inputs @ params["a"] - targets) ** 2) + jnp.sum(params["b"] ** 3) * params["a"][0]
    )


SECOND_ORDER = (
    {"a": jnp.array([1.0, 2.0]), "b": jnp.array([0.5, -1.0, 2.0])},
    jnp.array([[1.0, 2.0], [3.0, 4.0]]),
    jnp.array([1.0, 0.0]),
)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", ["hessian_diag", "fisher_diag", "hvp"])
def test_second_order_matches_optax(name, jit):
    args = SECOND_ORDER if name != "hvp" else (jnp.arange(5.0), *SECOND_ORDER)
    ours = getattr(gradtx.second_order, name)
    if jit:
        ours = jax.jit(ours, static_argnums=0)
    result = ours(_loss, *args)
    expected = _optax(getattr(optax.second_order, name), _loss, *args)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), result, expected)
    if name == "hessian_diag":
        flat, unravel = jax.flatten_util.ravel_pytree(SECOND_ORDER[0])
        full = jax.jit(jax.hessian(lambda x: _loss(unravel(x), *SECOND_ORDER[1:])))(flat)
        np.testing.assert_allclose(result, jnp.diagonal(full), rtol=1e-6)


# ---- microbatching -----------------------------------------------------------------------


def _batch():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.normal(size=(12, 3)), jnp.float32), jnp.float32(0.5)


def _per_example(batch, scale):
    return batch * scale


def _summed(batch, scale):
    return jnp.sum(batch * scale, axis=0)


def _averaged(batch, scale):
    return jnp.mean(batch * scale), {"max": jnp.max(batch)}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    ("fun", "kind"),
    [
        (_per_example, "CONCAT"),
        (_summed, "SUM"),
        (_averaged, "MEAN"),
        (_averaged, "RUNNING_MEAN"),
    ],
    ids=["concat", "sum", "mean", "running_mean"],
)
def test_microbatch_matches_optax_and_the_whole_batch(fun, kind, jit):
    batch, scale = _batch()

    def run(lib, kind_of):
        accumulator = kind_of(kind)
        if fun is _averaged:
            accumulator = (
                accumulator,
                {
                    "max": lib.microbatching.Accumulator(
                        init=lambda s: jnp.full(s.shape, -jnp.inf, s.dtype),
                        update=lambda c, v, i: jnp.maximum(c, v),
                        finalize=lambda c: c,
                        aggregate=lambda v: v.max(axis=0),
                    )
                },
            )
        fn = lib.microbatch(fun, argnums=0, microbatch_size=3, accumulator=accumulator)
        return (jax.jit(fn) if jit else fn)(batch, scale)

    ours = run(gradtx, lambda k: getattr(mb.AccumulationType, k))
    theirs = _optax(run, optax, lambda k: getattr(optax_mb.AccumulationType, k))
    whole = fun(batch, scale)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours, theirs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours, whole)


def test_reshape_batch_axis_matches_optax_column_major():
    x = jnp.arange(24).reshape(2, 12)
    ours = mb.reshape_batch_axis({"x": x}, 4, axis=1)
    assert ours["x"].shape == (2, 3, 4)
    np.testing.assert_array_equal(ours["x"], optax_mb.reshape_batch_axis({"x": x}, 4, axis=1)["x"])
    np.testing.assert_array_equal(ours["x"][0, 1], [1, 4, 7, 10])  # every third row from row 1


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_micro_vmap_and_micro_grad_match_optax(jit):
    x = jnp.arange(32.0).reshape(4, 8)

    def vmapped(lib):
        return lib.microbatching.micro_vmap(lambda r, *, y: jnp.sum(r * y), microbatch_size=2)

    ours = vmapped(gradtx)
    ours = jax.jit(ours) if jit else ours
    np.testing.assert_allclose(ours(x, y=x), _optax(vmapped(optax), x, y=x))
    np.testing.assert_allclose(ours(x, y=x), jax.vmap(lambda r, y: jnp.sum(r * y))(x, x))

    def loss(w, features, targets):
        return 0.5 * jnp.mean((features @ w - targets) ** 2)

    def grads(lib):
        return lib.microbatching.micro_grad(
            loss,
            batch_argnums=(1, 2),
            microbatch_size=2,
            accumulator=lib.microbatching.AccumulationType.MEAN,
            transform_fn=lambda g: (g, g**2),
            metrics_fn=jnp.linalg.norm,
        )

    args = (jnp.array([0.5]), jnp.ones((4, 1)), jnp.array([0.0, 1.0, 2.0, 3.0]))
    fn = grads(gradtx)
    result = (jax.jit(fn) if jit else fn)(*args)
    expected = _optax(grads(optax), *args)
    assert isinstance(result[1], IndividualOutputs)
    result, expected = (result[0], tuple(result[1])), (expected[0], tuple(expected[1]))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), result, expected)


def test_microbatch_stops_after_a_traced_number_of_microbatches_without_recompiling():
    @jax.jit
    def partial_sum(x, count):
        return gradtx.microbatch(jnp.sum, 0, 4, num_real_microbatches=count)(x)

    x = jnp.arange(16.0)
    assert float(partial_sum(x, 1)) == float(x[::4].sum())
    assert float(partial_sum(x, 4)) == float(x.sum())
    assert partial_sum._cache_size() == 1


def test_microbatch_keeps_the_dtype_and_reports_a_size_that_does_not_divide():
    x = jnp.ones((6, 2), jnp.bfloat16)
    for kind in mb.AccumulationType:
        out = gradtx.microbatch(lambda b: b * 2, 0, 2, kind)(x)
        assert out.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match=r"microbatch: the batch size 6 must be divisible by "):
        gradtx.microbatch(jnp.sum, 0, 4)(x)
    with pytest.raises(ValueError, match=r"microbatch: the MEAN accumulator needs floating"):
        gradtx.microbatch(jnp.sum, 0, 2, mb.AccumulationType.MEAN)(jnp.ones(4, jnp.int32))


def test_microbatch_keeps_an_explicitly_sharded_batch_sharded():
    # the split keeps the batch's sharding on each microbatch's rows (8 simulated devices)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
    spec = jax.sharding.PartitionSpec
    with jax.set_mesh(mesh):
        x = jax.device_put(
            jnp.arange(64.0).reshape(32, 2), jax.sharding.NamedSharding(mesh, spec("data"))
        )
        split = mb.reshape_batch_axis(x, 8)
        assert split.shape == (4, 8, 2) and jax.typeof(split).sharding.spec == spec(
            None, "data", None
        )
        doubled = jax.jit(gradtx.microbatch(lambda b: 2 * b, 0, 8, mb.AccumulationType.CONCAT))(x)
        assert jax.typeof(doubled).sharding.spec == spec("data", None)
        np.testing.assert_array_equal(doubled, 2 * np.arange(64.0).reshape(32, 2))
        with pytest.raises(ValueError, match=r"multiple of the 8 shards"):
            mb.reshape_batch_axis(x, 4)


# ---- states in optax's layout --------------------------------------------------------------

# optax's state class, the transformation that keeps it (each library's, same arguments), and the
# fields whose buffers differ by design (compared by name only)
STATE_LAYOUTS = {
    "ScaleByRmsState": ("scale_by_rms", {}, ()),
    "ScaleByRStdDevState": ("scale_by_stddev", {}, ()),
    "ScaleByAdaDeltaState": ("scale_by_adadelta", {}, ()),
    "ScaleByAmsgradState": ("scale_by_amsgrad", {}, ()),
    "ScaleByBeliefState": ("scale_by_belief", {}, ()),
    "ScaleByAdanState": ("scale_by_adan", {}, ()),
    "ScaleByRpropState": ("scale_by_rprop", dict(learning_rate=0.1), ()),
    "ScaleByScheduleState": ("scale_by_schedule", dict(step_size_fn="schedule"), ()),
    "ScaleByLBFGSState": ("scale_by_lbfgs", {}, ()),
    "ScaleByBacktrackingLinesearchState": (
        "scale_by_backtracking_linesearch",
        dict(max_backtracking_steps=5),
        (),
    ),
    "ScaleByZoomLinesearchState": ("scale_by_zoom_linesearch", dict(max_linesearch_steps=5), ()),
    "LookaheadState": ("lookahead", dict(sync_period=2, slow_step_size=0.5), ()),
    # optax.contrib's
    "GaLoreState": (
        "contrib.scale_by_galore",
        dict(rank=1),
        ("projector",),  # a non-matrix leaf's: optax a zero-size placeholder, gradtx None
    ),
    "MadgradState": ("contrib.scale_by_madgrad", dict(learning_rate=0.1), ()),
    "ScaleByAdemamixState": ("contrib.scale_by_ademamix", {}, ()),
    "ScaleBySimplifiedAdEMAMixState": ("contrib.scale_by_simplified_ademamix", {}, ()),
}


def _resolve(lib, dotted):
    for part in dotted.split("."):
        lib = getattr(lib, part)
    return lib


def _built(lib, factory, kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("step_size_fn") == "schedule":
        kwargs["step_size_fn"] = lib.linear_schedule(1.0, 0.5, 10)
    if factory == "lookahead":
        kwargs["fast_optimizer"] = lib.sgd(0.1)
    return _resolve(lib, factory)(**kwargs)


def _inner(state):
    while isinstance(state, gradtx.HyperState):
        state = state.inner_state
    return state


def _specs(tree):
    """Each buffer's shape and dtype, in order; a nested state's without gradtx's tables."""
    hyper = lambda x: isinstance(x, gradtx.HyperState)  # noqa: E731
    leaves = jax.tree.leaves(tree, is_leaf=hyper)
    return [
        spec
        for x in leaves
        for spec in (_specs(x.inner_state) if hyper(x) else [(np.shape(x), jnp.result_type(x))])
    ]


@pytest.mark.parametrize("name", sorted(STATE_LAYOUTS))
def test_states_have_optax_s_fields_first_in_optax_s_order(name):
    from gradtx._interop import state_names

    factory, kwargs, differ = STATE_LAYOUTS[name]
    contrib = factory.startswith("contrib.")
    theirs_cls = getattr(optax.contrib if contrib else optax, name)
    ours_cls = getattr(state_names, name)
    assert getattr(gradtx.contrib if contrib else gradtx, name, ours_cls) is ours_cls
    assert ours_cls._fields[: len(theirs_cls._fields)] == theirs_cls._fields
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    ours_params = theirs_params = params
    if factory == "lookahead":  # optax's lookahead takes the (fast, slow) pair
        ours_params = gradtx.LookaheadParams.init_synced(params)
        theirs_params = optax.LookaheadParams(*ours_params)
    ours = _inner(_built(gradtx, factory, kwargs).init(ours_params))
    theirs = _optax(lambda: _built(optax, factory, kwargs).init(theirs_params))
    assert isinstance(ours, ours_cls), type(ours)
    for field in theirs_cls._fields:  # the same buffers: shapes and dtypes
        if field not in differ:
            assert _specs(getattr(ours, field)) == _specs(getattr(theirs, field)), field
    if name.endswith("LinesearchState"):  # the info: optax's fields (the zoom's is exported)
        assert type(ours.info)._fields == type(theirs.info)._fields
    if name == "ScaleByZoomLinesearchState":
        assert type(ours.info) is state_names.ZoomLinesearchInfo
