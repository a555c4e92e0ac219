"""``gradtx.tree_utils`` and ``gradtx.tree``: optax's tree utilities, checked against optax's.

Every function is run on a few trees (dicts, nested tuples and NamedTuples, mixed bfloat16 /
float32 / complex64 leaves, an empty tree), eagerly and under ``jit``, and compared with optax's
(run under standard promotion, which optax's code relies on; gradtx's under the suite's strict
promotion): same structure, same dtypes, same values to the dtype's rounding. Then the state
tools on gradtx's states, whose hyperparameters live in tables, and the deliberate differences
(an overflow-safe norm, errors that name the function).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
import gradtx.tree
from gradtx import tree_utils as gtu

otu = optax.tree_utils


class Pair(NamedTuple):
    first: jax.Array
    second: jax.Array


def _trees():
    ramp = lambda n, dtype=jnp.float32: (jnp.arange(n, dtype=jnp.float32) - 1.3).astype(dtype)  # noqa: E731
    return {
        "dict": {"a": ramp(3), "b": {"c": ramp(4).reshape(2, 2) * 0.5}},
        "nested": (Pair(ramp(2), jnp.asarray(0.7)), [ramp(3) * -2.0]),
        "mixed": {"h": ramp(3, jnp.bfloat16), "f": ramp(2), "z": ramp(2, jnp.complex64) * (1 - 2j)},
        "empty": {},
    }


TREES = _trees()
REAL = ("dict", "nested", "empty")


def _other(tree):
    """A second tree of the same structure and dtypes, without zeros (for division)."""
    return jax.tree.map(lambda x: (x * 0.5 + 2.0).astype(x.dtype), tree)


def _optax(fn, *args):
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args)


BF16 = 2e-2  # bfloat16's rounding: also the tolerance of a reduction with a bfloat16 leaf


def assert_same(got, want, tol=2e-6):
    """Same structure and dtypes, values within ``tol`` (``BF16``'s for bfloat16 leaves)."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert jnp.result_type(g) == jnp.result_type(w), (g, w)
        t = max(tol, BF16 if jnp.result_type(w) == jnp.bfloat16 else 0)
        np.testing.assert_allclose(
            np.asarray(g, np.complex128), np.asarray(w, np.complex128), rtol=t, atol=t
        )


# name: (call, the trees it takes). ``call(tu, x, y)`` with ``tu`` optax's or gradtx's module.
CASES = {
    "add": (lambda tu, x, y: tu.tree_add(x, y, x), TREES),
    "sub": (lambda tu, x, y: tu.tree_sub(x, y), TREES),
    "mul": (lambda tu, x, y: tu.tree_mul(x, y), TREES),
    "div": (lambda tu, x, y: tu.tree_div(x, y), TREES),
    "scale": (lambda tu, x, y: tu.tree_scale(0.5, x), TREES),
    "add_scale": (lambda tu, x, y: tu.tree_add_scale(x, 0.25, y), TREES),
    "vdot": (lambda tu, x, y: tu.tree_vdot(x, y), TREES),
    "sum": (lambda tu, x, y: tu.tree_sum(x), TREES),
    "sum_associative": (lambda tu, x, y: tu.tree_sum(x, associative_reduction=True), TREES),
    "max": (lambda tu, x, y: tu.tree_max(x), REAL),
    "min": (lambda tu, x, y: tu.tree_min(x), REAL),
    "norm": (lambda tu, x, y: tu.tree_norm(x), TREES),
    "norm_squared": (lambda tu, x, y: tu.tree_norm(x, squared=True), TREES),
    "norm_1": (lambda tu, x, y: tu.tree_norm(x, ord=1), TREES),
    "norm_1_squared": (lambda tu, x, y: tu.tree_norm(x, ord=1, squared=True), TREES),
    "norm_inf": (lambda tu, x, y: tu.tree_norm(x, ord="inf"), ("dict", "nested", "mixed")),
    "norm_inf_squared": (lambda tu, x, y: tu.tree_norm(x, jnp.inf, True), ("dict", "mixed")),
    "conj": (lambda tu, x, y: tu.tree_conj(x), TREES),
    "real": (lambda tu, x, y: tu.tree_real(x), TREES),
    "zeros_like": (lambda tu, x, y: tu.tree_zeros_like(x), TREES),
    "ones_like": (lambda tu, x, y: tu.tree_ones_like(x, jnp.int32), TREES),
    "full_like": (lambda tu, x, y: tu.tree_full_like(x, 3.0), TREES),
    "clip": (lambda tu, x, y: tu.tree_clip(x, -0.5, 0.5), REAL),
    "clip_below": (lambda tu, x, y: tu.tree_clip(x, min_value=0.0), REAL),
    "where": (lambda tu, x, y: tu.tree_where(x == x, x, y), TREES),
    "cast": (lambda tu, x, y: tu.tree_cast(x, jnp.bfloat16), REAL),
    "cast_like": (lambda tu, x, y: tu.tree_cast_like(x, tu.tree_cast(y, jnp.float16)), REAL),
    "batch_shape": (lambda tu, x, y: tu.tree_batch_shape(x, (2, 1)), TREES),
    "allclose": (lambda tu, x, y: tu.tree_allclose(x, y), TREES),
    "update_moment": (lambda tu, x, y: tu.tree_update_moment(x, y, 0.9, 2), TREES),
    "infinity_moment": (lambda tu, x, y: tu.tree_update_infinity_moment(x, y, 0.9, 1e-3), TREES),
    "per_elem_norm": (
        lambda tu, x, y: tu.tree_update_moment_per_elem_norm(x, tu.tree_real(y), 0.9, 2),
        TREES,
    ),
    "bias_correction": (lambda tu, x, y: tu.tree_bias_correction(x, 0.999, 3), TREES),
}
PAIRS = [(case, tree) for case, (_, trees) in CASES.items() for tree in trees]


# every case eagerly on every tree; under jit on the trees of several kinds of leaves
RUNS = [
    (c, t, jit) for c, t in PAIRS for jit in (False, True) if not jit or t in ("nested", "mixed")
]


@pytest.mark.parametrize(
    ("case", "tree", "jit"), RUNS, ids=[f"{c}-{t}-{'jit' if j else 'eager'}" for c, t, j in RUNS]
)
def test_same_as_optax(case, tree, jit):
    call = CASES[case][0]
    x = TREES[tree]
    y = _other(x)
    want = _optax(lambda: call(otu, x, y))
    mine = lambda x, y: call(gtu, x, y)  # noqa: E731
    got = jax.jit(mine)(x, y) if jit else mine(x, y)
    # optax adds a bfloat16 leaf's terms in bfloat16, gradtx in float32; optax rounds 0.999 to
    # float32 before it takes 1 - 0.999**3 (6.7e-6 relative off), gradtx does not
    assert_same(got, want, BF16 if tree == "mixed" else 2e-5 if case == "bias_correction" else 2e-6)


def test_reductions_of_bfloat16_round_once():
    leaves = [jnp.full(7, 1.01, jnp.bfloat16) * (1 + i / 10) for i in range(9)]
    exact = sum(np.asarray(x, np.float64).sum() for x in leaves)
    norm = np.sqrt(sum((np.asarray(x, np.float64) ** 2).sum() for x in leaves))
    for got, want in ((gtu.tree_sum(leaves), exact), (gtu.tree_norm(leaves), norm)):
        assert got.dtype == jnp.bfloat16
        assert float(got) == float(jnp.asarray(want, jnp.bfloat16))  # the exact value, rounded


@pytest.mark.parametrize("tree", TREES)
def test_tree_size_and_dtype(tree):
    x = TREES[tree]
    assert gtu.tree_size(x) == otu.tree_size(x)
    for handler in ("promote", "highest") if tree != "mixed" else ("promote",):
        assert gtu.tree_dtype(x, handler) == _optax(otu.tree_dtype, x, handler)


def test_tree_dtype_of_mixed_leaves():
    tree = {"a": jnp.ones(1, jnp.bfloat16), "b": {"c": jnp.ones(1, jnp.float16)}}
    assert gtu.tree_dtype(tree, "promote") == _optax(otu.tree_dtype, tree, "promote") == jnp.float32
    with pytest.raises(
        ValueError, match=r"tree_dtype: the leaves' dtypes differ.*'b/c' is float16"
    ):
        gtu.tree_dtype(tree)
    with pytest.raises(ValueError, match="tree_dtype: neither bfloat16 nor float16 promotes"):
        gtu.tree_dtype(tree, "lowest")
    assert gtu.tree_dtype({}) == otu.tree_dtype({})


def test_reductions_of_integer_and_empty_trees():
    ints = {"a": jnp.array([1, -7], jnp.int8), "b": jnp.array([3], jnp.int32)}
    for call in (
        lambda tu: tu.tree_sum(ints),
        lambda tu: tu.tree_max(ints),
        lambda tu: tu.tree_vdot(ints, ints),
        lambda tu: tu.tree_norm(ints),
        lambda tu: tu.tree_norm(ints, ord=1),
        lambda tu: tu.tree_norm(ints, squared=True),
    ):
        assert_same(call(gtu), _optax(lambda: call(otu)))  # noqa: B023
    for empty in ({}, (), [], None, {"k": [None, [None]]}):
        assert gtu.tree_sum(empty) == 0 and gtu.tree_vdot(empty, empty) == 0
        assert gtu.tree_max(empty) == -np.inf and gtu.tree_min(empty) == np.inf
    assert gtu.tree_norm({}, ord="inf") == 0  # optax: -inf


def test_random_trees_match_optax():
    key = jax.random.key(1)
    tree = {"a": jnp.zeros((2, 3)), "b": (jnp.zeros(4, jnp.bfloat16),)}
    for sampler, dtype in ((jax.random.normal, None), (jax.random.rademacher, jnp.int32)):
        got = gtu.tree_random_like(key, tree, sampler, dtype)
        assert_same(got, otu.tree_random_like(key, tree, sampler, dtype))
    keys = gtu.tree_split_key_like(key, tree)
    assert_same(
        gtu.tree_unwrap_random_key_data(keys),
        otu.tree_unwrap_random_key_data(otu.tree_split_key_like(key, tree)),
    )


def test_the_namespaces_have_optax_names():
    optax_names = {n for n in dir(otu) if n.startswith("tree_") or n == "NamedTupleKey"}
    assert optax_names == set(gtu.__all__)
    assert {n for n in dir(optax.tree) if not n.startswith("_") and n != "functools"} <= set(
        gradtx.tree.__all__
    )
    for name in gradtx.tree.__all__:
        assert getattr(gradtx.tree, name) is getattr(gtu, "tree_" + name)


# ---- where gradtx differs ------------------------------------------------------------------------


def test_tree_norm_neither_overflows_nor_underflows():
    assert float(gtu.tree_norm({"a": jnp.array([1e30, 1e30])})) == pytest.approx(1.4142135e30)
    assert float(gtu.tree_norm([jnp.array([3e-30]), jnp.array(4e-30)])) == pytest.approx(5e-30)
    assert not np.isfinite(_optax(lambda: otu.tree_norm({"a": jnp.array([1e30, 1e30])})))


def test_tree_norm_has_slope_zero_at_zero():
    slope = jax.grad(lambda x: gtu.tree_norm({"x": x}))(jnp.zeros(3))
    np.testing.assert_array_equal(slope, jnp.zeros(3))


def test_bias_correction_is_exact_in_float32():
    got = gtu.tree_bias_correction(jnp.ones(1), 0.999, 1)
    np.testing.assert_allclose(got, [1 / (1 - 0.999)], rtol=1e-7)


def test_errors_name_the_function():
    x = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"tree_add: the trees do not match.*'b'"):
        gtu.tree_add(x, {"a": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"tree_vdot: leaf 'a': the leaves' shapes differ"):
        gtu.tree_vdot(x, {"a": jnp.ones(3), "b": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"tree_mul: leaf 'b'"):
        gtu.tree_mul(x, {"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="tree_norm: ord must be None, 1, 2, inf"):
        gtu.tree_norm(x, ord=3)
    with pytest.raises(TypeError, match="tree_batch_shape: shape must be a tuple of ints"):
        gtu.tree_batch_shape(x, 3)
    with pytest.raises(TypeError, match="tree_zeros_like: dtype must be None or a dtype"):
        gtu.tree_zeros_like(x, "no-such-dtype")
    with pytest.raises(ValueError, match="tree_dtype: mixed_dtype_handler must be"):
        gtu.tree_dtype(x, "widest")


def test_none_leaves_pass_through_the_moments():
    m = jnp.array([1.0, 2.0])
    assert gtu.tree_add_scale(None, 1.0, m) is None
    assert gtu.tree_update_moment({"a": None}, {"a": m}, 0.9, 2) == {"a": None}
    assert gtu.tree_update_infinity_moment([None], [m], 0.9, 1e-3) == [None]
    assert gtu.tree_update_moment_per_elem_norm(None, m, 0.9, 2) is None


# ---- the state tools on plain trees and optax states: as optax's --------------------------------


def _readable(found):
    return [(jax.tree_util.keystr(path), value) for path, value in found]


PLAIN = {
    "nested": ({"a": {"a": 1.0}, "b": {"a": 1}}, "a"),
    "filtered": ({"hparams": {"learning_rate": 1.0}, "learning_rate": "foo"}, "learning_rate"),
    "optax_adam": (optax.adam(0.1).init(jnp.zeros(2)), "count"),
    "optax_chain": (
        optax.chain(optax.add_decayed_weights(0.1), optax.scale_by_adam()).init(jnp.zeros(2)),
        "ScaleByAdamState",
    ),
    "optax_inject": (optax.inject_hyperparams(optax.sgd)(0.1).init(jnp.zeros(2)), "learning_rate"),
}
FILTERS = {
    "none": None,
    "floats": lambda path, value: isinstance(value, float),
    "adam": lambda path, value: "ScaleByAdamState" in jax.tree_util.keystr(path),
}


@pytest.mark.parametrize("filtering", FILTERS)
@pytest.mark.parametrize("plain", PLAIN)
def test_state_tools_match_optax_on_plain_trees(plain, filtering):
    tree, key = PLAIN[plain]
    keep = FILTERS[filtering]
    found = gtu.tree_get_all_with_path(tree, key, keep)
    assert str(_readable(found)) == str(_readable(otu.tree_get_all_with_path(tree, key, keep)))
    if len(found) == 1:
        assert gtu.tree_get(tree, key, filtering=keep) is found[0][1]
    elif found:
        with pytest.raises(KeyError, match=f"tree_get: {len(found)} values match"):
            gtu.tree_get(tree, key, filtering=keep)
    if not found:
        with pytest.raises(KeyError, match="tree_set: no value"):
            gtu.tree_set(tree, keep, **{key: 0.5})
        return
    got = jax.tree.map(np.asarray, gtu.tree_set(tree, keep, **{key: 0.5}))
    want = jax.tree.map(np.asarray, otu.tree_set(tree, keep, **{key: 0.5}))
    assert str(got) == str(want)


def test_tree_set_replaces_every_value_found():
    tree = {"a": 1, "b": [{"a": 2}], "c": {"d": {"a": 3}}}
    assert gtu.tree_set(tree, a=9) == {"a": 9, "b": [{"a": 9}], "c": {"d": {"a": 9}}}
    # optax's replaces only the values in, or one dict below, a node holding the key
    assert otu.tree_set(tree, a=9) == {"a": 9, "b": [{"a": 2}], "c": {"d": {"a": 3}}}


def test_tree_get_default_and_named_tuple_by_name():
    state = optax.chain(optax.add_noise(1.0, 0.9, 0), optax.scale_by_adam()).init(jnp.zeros(2))
    assert gtu.tree_get(state, "ema", default=7.0) == 7.0
    assert type(gtu.tree_get(state, "ScaleByAdamState")).__name__ == "ScaleByAdamState"
    key = gtu.NamedTupleKey("ScaleByAdamState", "count")
    assert str(key) == "ScaleByAdamState.count" and key == gtu.NamedTupleKey(*key.__dict__.values())


# ---- the state tools on gradtx states ------------------------------------------------------------

PARAMS = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
GRADS = {"w": jnp.array([0.3, -0.1]), "b": jnp.array(0.2)}


def _step(tx, state, jit=False):
    update = jax.jit(tx.update) if jit else tx.update
    return update(GRADS, state, PARAMS)


def test_adam_state_by_name():
    tx = gradtx.adam(0.1)
    state = tx.init(PARAMS)
    assert float(gtu.tree_get(state, "learning_rate")) == pytest.approx(0.1)
    assert float(gtu.tree_get(state, "b2")) == pytest.approx(0.999)
    assert gtu.tree_get(state, "count") == 0
    assert _readable(gtu.tree_get_all_with_path(state, "b1")) == [
        ("HyperState.hyperparams['b1']", gtu.tree_get(state, "b1"))
    ]
    _, state = _step(tx, state)
    assert gtu.tree_get(state, "count") == 1

    changed = gtu.tree_set(state, learning_rate=0.01)
    assert jax.tree.structure(changed) == jax.tree.structure(state)
    assert float(gradtx.hyperparams(changed)["learning_rate"]) == pytest.approx(0.01)
    slower, _ = _step(tx, changed)
    reference = gradtx.set_hyperparams(state, learning_rate=0.01)
    assert_same(slower, _step(tx, reference)[0])

    with pytest.raises(ValueError, match=r"tree_set: b1 must be in \[0, 1\), got 1.5"):
        gtu.tree_set(state, b1=1.5)
    with pytest.raises(KeyError, match="tree_set: no value is found under 'momentum'"):
        gtu.tree_set(state, momentum=0.9)


def test_setting_the_count_moves_the_table_with_it():
    tx = gradtx.adam(gradtx.linear_schedule(0.1, 0.0, 10))
    state = gtu.tree_set(tx.init(PARAMS), count=4)
    assert gtu.tree_get(state, "count") == 4 and int(state.count) == 4  # the table's too
    _, state = _step(tx, state)
    _, state = _step(tx, state)
    assert float(gtu.tree_get(state, "learning_rate")) == pytest.approx(0.1 * (1 - 6 / 10))
    with pytest.raises(ValueError, match="tree_set: count must be a whole number"):
        gtu.tree_set(gradtx.sgd(0.1).init(PARAMS), count=2.5)


def test_chain_with_clipping_and_a_schedule():
    tx = gradtx.chain(
        gradtx.clip_by_global_norm(1.0), gradtx.adamw(gradtx.linear_schedule(0.1, 0.0, 10))
    )
    state = tx.init(PARAMS)
    # as in optax's chain of the same (ScaleByAdamState's count and the schedule's): two counts
    with pytest.raises(KeyError, match="tree_get: 2 values match 'count'"):
        gtu.tree_get(state, "count")
    adam_count = lambda path, _: "ScaleByAdamState" in jax.tree_util.keystr(path)  # noqa: E731
    assert gtu.tree_get(state, "count", filtering=adam_count) == 0
    assert float(gtu.tree_get(state, "max_norm")) == 1.0
    _, state = _step(tx, state, jit=True)
    assert float(gtu.tree_get(state, "learning_rate")) == pytest.approx(0.09)

    state = gtu.tree_set(state, max_norm=0.5, weight_decay=0.0)
    assert float(gradtx.hyperparams(state)["max_norm"]) == 0.5
    updates, state = _step(tx, state, jit=True)
    assert float(gtu.tree_get(state, "learning_rate")) == pytest.approx(0.08)  # still scheduled
    counts = gtu.tree_get_all_with_path(gtu.tree_set(state, count=7), "count")
    assert [int(v) for _, v in counts] == [7, 7]
    assert [int(c.count) for c in gtu.tree_set(state, count=7)] == [7, 7]


def test_inject_hyperparams_state():
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
    state = tx.init(PARAMS)
    # the wrapper's dict and count are the ones found: the inner table's are hidden by them
    assert _readable(gtu.tree_get_all_with_path(state, "learning_rate")) == [
        (
            "InjectStatefulHyperparamsState.hyperparams['learning_rate']",
            state.hyperparams["learning_rate"],
        )
    ]
    assert gtu.tree_get(state, "count") is state.count
    updates, _ = _step(tx, gtu.tree_set(state, learning_rate=0.01), jit=True)
    assert_same(updates, jax.tree.map(lambda g: -0.01 * g, GRADS))
    # the wrapper's count stands for the inner table's, which schedules read: it follows
    assert int(gtu.tree_set(state, count=3).inner_state.count) == 3


def test_a_name_shared_by_several_transformations():
    tx = gradtx.chain(gradtx.sgd(0.1), gradtx.sgd(0.2))
    state = tx.init(PARAMS)
    # as optax with several matches: tree_get refuses, filtering picks one, tree_set sets all
    with pytest.raises(KeyError, match=r"tree_get: 2 values match 'learning_rate', at \[0\]"):
        gtu.tree_get(state, "learning_rate")
    second = lambda path, _: path[0] == jax.tree_util.SequenceKey(1)  # noqa: E731
    assert float(gtu.tree_get(state, "learning_rate", filtering=second)) == pytest.approx(0.2)
    both = gtu.tree_set(state, learning_rate=0.5)
    assert [float(v) for v in gradtx.hyperparams(both).values()] == [0.5, 0.5]
    one = gtu.tree_set(state, second, learning_rate=0.5)
    assert [float(v) for v in gradtx.hyperparams(one).values()] == pytest.approx([0.1, 0.5])


def test_tree_set_under_jit_does_not_retrace():
    tx = gradtx.adam(0.1)
    traces = []

    @jax.jit
    def step(state, learning_rate):
        traces.append(1)
        state = gtu.tree_set(state, learning_rate=learning_rate)
        return tx.update(GRADS, state, PARAMS)

    state = tx.init(PARAMS)
    for rate in (0.01, 0.02):
        updates, _ = step(state, jnp.asarray(rate))
        want, _ = tx.update(GRADS, gradtx.set_hyperparams(state, learning_rate=rate), PARAMS)
        assert_same(updates, want)
    assert len(traces) == 1


def test_swept_states_read_one_value_per_copy():
    state = gradtx.sweep(gradtx.sgd(0.1).init(PARAMS), learning_rate=[0.1, 0.2])
    np.testing.assert_allclose(gtu.tree_get(state, "learning_rate"), [0.1, 0.2])
    state = gtu.tree_set(state, learning_rate=jnp.array([0.3, 0.4]))
    np.testing.assert_allclose(gradtx.hyperparams(state)["learning_rate"], [0.3, 0.4])


@pytest.mark.parametrize(
    "tx",
    [
        gradtx.adam(0.1),
        gradtx.chain(
            gradtx.clip_by_global_norm(1.0), gradtx.adamw(gradtx.linear_schedule(0.1, 0, 9))
        ),
        gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=0.1),
    ],
    ids=["adam", "chain", "inject"],
)
def test_tree_map_params_on_gradtx_states(tx):
    state = tx.init(PARAMS)
    specs = {"w": "rows", "b": "replicated"}
    mapped = gtu.tree_map_params(
        tx, lambda _, spec: spec, state, specs, transform_non_params=lambda _: None
    )
    assert gtu.tree_get(mapped, "mu") == specs and gtu.tree_get(mapped, "nu") == specs
    assert set(jax.tree.leaves(mapped)) == {"rows", "replicated"}  # tables and counts are None
    plus_one = gtu.tree_map_params(tx.init, lambda v: v + 1, state)
    assert_same(gtu.tree_get(plus_one, "mu"), jax.tree.map(jnp.ones_like, PARAMS))
    with pytest.raises(ValueError, match="tree_map_params: state is not a state of initable"):
        gtu.tree_map_params(tx, lambda v: v, gradtx.sgd(0.1).init(PARAMS))
