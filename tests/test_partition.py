"""Parameter groups and leaf routing: partition, masked, freeze.

Each wrapper is compared with the same computation done by hand (the inner optimizers run
separately on their part of the leaves), with a float64 NumPy reference, and with optax's
same-named wrapper; state memory is counted in bytes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests import helpers
from tests.reference import numpy_reference as ref

STEPS = 20
EAGER_STEPS = 6  # eager runs dispatch op by op: fewer steps, same comparisons
LR = 1e-2
WD = 0.1


def flax_params(seed=0, dtype=jnp.float32):
    """A Flax-style nested params dict: an embedding, two dense layers and a norm scale."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "params": {
            "embed": {"embedding": arr(6, 4)},
            "dense": {"kernel": arr(4, 3), "bias": arr(3)},
            "norm": {"scale": arr(3)},
            "head": {"kernel": arr(3, 2), "bias": arr(2)},
        }
    }


def group_of(path, leaf):
    """decay for kernels, no_decay for biases and norm scales, embed for the embedding."""
    name = path[-1].key
    if name == "embedding":
        return "embed"
    return "decay" if leaf.ndim > 1 else "no_decay"


def label_fn(params):
    return jax.tree_util.tree_map_with_path(group_of, params)


def flat_labels(params):
    return jax.tree.leaves(label_fn(params))


def state_bytes(state):
    return sum(x.nbytes for x in jax.tree.leaves(state))


def moment_bytes(state):
    """Bytes held in non-scalar leaves outside the hyperparameter tables: the per-parameter
    state (moments, traces)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    in_table = lambda path: any(getattr(k, "name", None) == "table" for k in path)  # noqa: E731
    return sum(x.nbytes for path, x in leaves if np.ndim(x) > 0 and not in_table(path))


def leaf_bytes(params, labels, keep):
    return sum(p.nbytes for p, label in zip(jax.tree.leaves(params), labels) if label in keep)


def run_groups_by_hand(txs, labels, params, grads, *, jit):
    """Each transformation run separately on the list of its group's leaves, then reassembled."""
    leaves = jax.tree.leaves(params)
    index = {g: [i for i, label in enumerate(labels) if label == g] for g in txs}
    updates_fn = {g: jax.jit(tx.update) if jit else tx.update for g, tx in txs.items()}
    states = {g: tx.init([leaves[i] for i in index[g]]) for g, tx in txs.items()}
    trajectory, all_updates = [], []
    for grad in grads:
        flat_grad = jax.tree.leaves(grad)
        out = [None] * len(leaves)
        for g in txs:
            part, states[g] = updates_fn[g](
                [flat_grad[i] for i in index[g]], states[g], [leaves[i] for i in index[g]]
            )
            for i, u in zip(index[g], part):
                out[i] = u
        leaves = jax.tree.leaves(gradtx.apply_updates(leaves, out))
        trajectory.append([np.asarray(x, np.float64) for x in leaves])
        all_updates.append([np.asarray(x, np.float64) for x in out])
    return trajectory, all_updates


def run_groups_reference(refs, labels, params, grads):
    """The float64 NumPy references, each on its group's leaves."""
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    index = {g: [i for i, label in enumerate(labels) if label == g] for g in refs}
    states = {g: r.init([leaves[i] for i in index[g]]) for g, r in refs.items()}
    trajectory, all_updates = [], []
    for grad in grads:
        flat_grad = [np.asarray(x, np.float64) for x in jax.tree.leaves(grad)]
        out = [None] * len(leaves)
        for g, r in refs.items():
            part, states[g] = r.update(
                [flat_grad[i] for i in index[g]], states[g], [leaves[i] for i in index[g]]
            )
            for i, u in zip(index[g], part):
                out[i] = u
        leaves = [p + u for p, u in zip(leaves, out)]
        trajectory.append(leaves)
        all_updates.append(out)
    return trajectory, all_updates


def three_groups():
    return {
        "decay": gradtx.adamw(LR, weight_decay=WD),
        "no_decay": gradtx.adam(LR),
        "embed": gradtx.sgd(0.1 * LR, momentum=0.9),
    }


def three_group_references():
    return {
        "decay": ref.adamw(LR, weight_decay=WD),
        "no_decay": ref.adam(LR),
        "embed": ref.sgd(0.1 * LR, momentum=0.9),
    }


def assert_same_runs(a, b):
    for steps_a, steps_b in zip(a, b):
        for leaves_a, leaves_b in zip(steps_a, steps_b):
            for x, y in zip(leaves_a, leaves_b):
                np.testing.assert_array_equal(x, y)


# ---- partition ---------------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["function", "tree"])
@pytest.mark.parametrize("jit", [False, True])
def test_partition_equals_the_groups_run_by_hand(labels, jit):
    params = flax_params()
    grads = helpers.gradient_sequence(params, STEPS if jit else EAGER_STEPS, seed=1)
    spec = label_fn if labels == "function" else label_fn(params)
    tx = gradtx.partition(three_groups(), spec)
    got = helpers.run_gradtx(tx, params, grads, jit=jit)
    by_hand = run_groups_by_hand(three_groups(), flat_labels(params), params, grads, jit=jit)
    assert_same_runs(got, by_hand)
    want = run_groups_reference(three_group_references(), flat_labels(params), params, grads)
    assert helpers.deviation(got, want) < 1e-6  # measured 2.2e-7 over 20 steps


@pytest.mark.parametrize("jit", [False, True])
def test_partition_matches_optax_partition(jit):
    params = flax_params()
    grads = helpers.gradient_sequence(params, STEPS if jit else EAGER_STEPS, seed=2)
    got = helpers.run_gradtx(gradtx.partition(three_groups(), label_fn), params, grads, jit=jit)
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.partition(
            {
                "decay": optax.adamw(LR, weight_decay=WD),
                "no_decay": optax.adam(LR),
                "embed": optax.sgd(0.1 * LR, momentum=0.9),
            },
            label_fn,
        )
        want = helpers.run_optax(theirs, params, grads, jit=jit)
    # Over 20 steps the two differ by 9.7e-6, which is optax's own distance from float64
    # (9.8e-6: its float32 1 - b2**t in Adam's bias correction; ours is 2.6e-7 away).
    exact = run_groups_reference(three_group_references(), flat_labels(params), params, grads)
    assert helpers.deviation(got, exact) < 1e-6
    assert helpers.deviation(got, want) < 2e-5


def test_partition_float64_matches_the_reference_closely(x64):
    params = flax_params(dtype=jnp.float64)
    grads = helpers.gradient_sequence(params, STEPS, seed=3)
    got = helpers.run_gradtx(gradtx.partition(three_groups(), label_fn), params, grads, jit=True)
    want = run_groups_reference(three_group_references(), flat_labels(params), params, grads)
    assert helpers.deviation(got, want) < 1e-10


def test_partition_compiles_once_and_takes_new_hyperparameters_without_retracing():
    params = flax_params()
    tx = gradtx.partition(three_groups(), label_fn)
    update = jax.jit(tx.update)
    state = tx.init(params)
    grads = helpers.gradient_sequence(params, 3, seed=4)
    _, state = update(grads[0], state, params)
    state = gradtx.set_hyperparams(state, **{"decay/learning_rate": 0.5 * LR})
    _, state = update(grads[1], state, params)
    assert update._cache_size() == 1


def test_partition_hyperparams_are_qualified_by_group_and_set_per_group():
    params = flax_params()
    tx = gradtx.partition(three_groups(), label_fn)
    state = tx.init(params)
    found = gradtx.hyperparams(state)
    for name in ["learning_rate", "b1", "b2", "eps"]:
        assert f"decay/{name}" in found and f"no_decay/{name}" in found
    assert "weight_decay" in found  # only the decay group has one: no qualification needed
    assert "momentum" in found
    assert float(found["embed/learning_rate"]) == np.float32(0.1 * LR)
    with pytest.raises(ValueError, match="'learning_rate' names several hyperparameters"):
        gradtx.set_hyperparams(state, learning_rate=0.0)

    state = gradtx.set_hyperparams(state, **{"no_decay/learning_rate": 0.5 * LR})
    after = gradtx.hyperparams(state)
    assert float(after["no_decay/learning_rate"]) == np.float32(0.5 * LR)
    assert float(after["decay/learning_rate"]) == np.float32(LR)
    assert float(after["embed/learning_rate"]) == np.float32(0.1 * LR)

    # The new rate acts on its group only: compare with the groups built with those rates.
    grads = helpers.gradient_sequence(params, 5, seed=5)
    update = jax.jit(tx.update)
    for g in grads:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
    start = flax_params()
    groups = three_groups() | {"no_decay": gradtx.adam(0.5 * LR)}
    want = run_groups_by_hand(groups, flat_labels(start), start, grads, jit=True)
    for x, y in zip(jax.tree.leaves(params), want[0][-1]):
        np.testing.assert_array_equal(np.asarray(x, np.float64), y)


def test_partition_sweep_of_one_groups_learning_rate_under_vmap():
    params = flax_params()
    tx = gradtx.partition(three_groups(), label_fn)
    rates = [LR, 2 * LR, 0.5 * LR]
    states = gradtx.sweep(tx.init(params), **{"decay/learning_rate": rates})
    grads = helpers.gradient_sequence(params, 1, seed=11)[0]

    def step(p, s):
        u, s = tx.update(grads, s, p)
        return gradtx.apply_updates(p, u), s

    stacked = jax.tree.map(lambda p: jnp.stack([p] * len(rates)), params)
    swept, _ = jax.jit(jax.vmap(step))(stacked, states)
    for i, rate in enumerate(rates):
        one, _ = jax.jit(step)(
            params, gradtx.set_hyperparams(tx.init(params), **{"decay/learning_rate": rate})
        )
        for a, b in zip(jax.tree.leaves(swept), jax.tree.leaves(one)):
            np.testing.assert_array_equal(a[i], b)


def test_partition_with_a_prefix_label_tree():
    params = {"encoder": {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}, "decoder": {"w": jnp.ones(3)}}
    tx = gradtx.partition(
        {"frozen": gradtx.freeze(True), "train": gradtx.sgd(0.5)},
        {"encoder": "frozen", "decoder": "train"},
    )
    updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(updates["encoder"]["w"], np.zeros((2, 2)))
    np.testing.assert_array_equal(updates["encoder"]["b"], np.zeros(2))
    np.testing.assert_array_equal(updates["decoder"]["w"], np.full(3, -0.5))


def test_partition_an_unused_group_is_allowed_and_holds_no_per_leaf_state():
    params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
    tx = gradtx.partition(
        {"train": gradtx.adam(LR), "frozen": gradtx.adam(LR)}, {"w": "train", "b": "train"}
    )
    state = tx.init(params)
    assert moment_bytes(state["frozen"]) == 0
    assert "frozen/learning_rate" in gradtx.hyperparams(state)
    plain = gradtx.adam(LR)
    got, _ = tx.update(params, state, params)
    want, _ = plain.update(params, plain.init(params), params)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, got, want))


def test_partition_labels_need_not_be_strings():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = gradtx.partition(
        {True: gradtx.scale(2.0), False: gradtx.scale(-1.0)},
        lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
    )
    updates, state = jax.jit(tx.update)(params, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], np.full((2, 2), 2.0))
    np.testing.assert_array_equal(updates["b"], np.full(2, -1.0))
    assert set(state) == {True, False}


def test_partition_state_survives_a_jit_round_trip_in_any_key_order():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.partition(
        {"zeta": gradtx.sgd(0.1), "alpha": gradtx.sgd(0.2)}, {"w": "zeta", "b": "alpha"}
    )
    update = jax.jit(tx.update)
    state = tx.init(params)
    for _ in range(2):
        updates, state = update(params, state, params)
    np.testing.assert_allclose(updates["w"], -0.1)
    np.testing.assert_allclose(updates["b"], -0.2)


def test_partition_passes_params_none_through():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.partition(
        {"a": gradtx.sgd(0.1, momentum=0.9), "b": gradtx.scale(3.0)},
        lambda p: {"w": "a", "b": "b"},
    )
    updates, _ = tx.update(params, tx.init(params))
    np.testing.assert_allclose(updates["w"], -0.1)
    np.testing.assert_allclose(updates["b"], 3.0)
    needs = gradtx.partition({"a": gradtx.adamw(LR, weight_decay=WD)}, {"w": "a", "b": "a"})
    with pytest.raises(ValueError, match="update needs params"):
        needs.update(params, needs.init(params))


def recorder(seen, tag):
    def update(updates, state, params=None, **extra):
        seen.append((tag, extra))
        return updates, state

    return gradtx.GradientTransformation(lambda p: gradtx.EmptyState(), update)


def test_partition_and_masked_pass_extra_arguments_to_inner_transformations():
    params = {"w": jnp.ones(2), "b": jnp.ones(3)}
    tags = {"w": jnp.zeros(2), "b": jnp.zeros(3)}
    seen = []
    plain_optax = optax.scale(1.0)  # its update takes no extra arguments
    tx = gradtx.partition(
        {"a": recorder(seen, "a"), "b": gradtx.chain(plain_optax, recorder(seen, "b"))},
        {"w": "a", "b": "b"},
    )
    tx.update(params, tx.init(params), params, loss=1.5, tags=tags)
    assert [tag for tag, _ in seen] == ["a", "b"]
    assert all(extra["loss"] == 1.5 and extra["tags"] is tags for _, extra in seen)

    seen.clear()
    tx = gradtx.partition(
        {"a": recorder(seen, "a"), "b": recorder(seen, "b")},
        {"w": "a", "b": "b"},
        mask_compatible_extra_args=True,
    )
    tx.update(params, tx.init(params), params, loss=1.5, tags=tags)
    (_, extra_a), (_, extra_b) = seen
    assert extra_a["loss"] == 1.5 and extra_a["tags"]["b"] is None
    assert extra_a["tags"]["w"] is tags["w"] and extra_b["tags"]["w"] is None

    seen.clear()
    tx = gradtx.masked(
        recorder(seen, "m"), {"w": True, "b": False}, mask_compatible_extra_args=True
    )
    tx.update(params, tx.init(params), params, loss=2.0, tags=tags)
    [(_, extra)] = seen
    assert extra["loss"] == 2.0 and extra["tags"]["w"] is tags["w"]
    assert extra["tags"]["b"] == gradtx.MaskedNode()


def test_partition_with_none_leaves_and_empty_subtrees():
    params = helpers.sample_tree(np.random.default_rng(0), jnp.float32)
    labels = lambda p: jax.tree.map(lambda x: "big" if x.size > 3 else "small", p)  # noqa: E731
    tx = gradtx.partition({"big": gradtx.adam(LR), "small": gradtx.sgd(LR)}, labels)
    grads = helpers.gradient_sequence(params, 4, seed=6)
    got = helpers.run_gradtx(tx, params, grads, jit=True)
    groups = {"big": gradtx.adam(LR), "small": gradtx.sgd(LR)}
    flat = jax.tree.leaves(labels(params))
    assert_same_runs(got, run_groups_by_hand(groups, flat, params, grads, jit=True))


# ---- bad input -----------------------------------------------------------------------------


def test_partition_rejects_bad_transforms():
    with pytest.raises(TypeError, match="partition: transforms must be a mapping"):
        gradtx.partition([gradtx.sgd(0.1)], lambda p: p)
    with pytest.raises(ValueError, match="partition: transforms must have at least one label"):
        gradtx.partition({}, lambda p: p)
    with pytest.raises(TypeError, match=r"partition: transforms\['a'\] must be a Gradient"):
        gradtx.partition({"a": 0.1}, lambda p: p)
    with pytest.raises(TypeError, match="partition: the labels of transforms must be of one"):
        gradtx.partition({"a": gradtx.sgd(0.1), 1: gradtx.sgd(0.1)}, lambda p: p)
    with pytest.raises(TypeError, match="partition: mask_compatible_extra_args must be a bool"):
        gradtx.partition({"a": gradtx.sgd(0.1)}, "a", mask_compatible_extra_args="yes")


def test_partition_names_a_label_without_transformation():
    groups = {"decay": gradtx.sgd(0.1), "no_decay": gradtx.sgd(0.1)}
    # a label tree is checked when the partition is built
    with pytest.raises(ValueError, match=r"no transformation for the label\(s\) 'nodecay' \(at"):
        gradtx.partition(groups, {"w": "decay", "b": "nodecay"})
    # a label function when it is first called
    params = flax_params()
    tx = gradtx.partition(groups, label_fn)
    with pytest.raises(ValueError, match=r"'embed' \(at 'params/embed/embedding'\)"):
        tx.init(params)


def test_partition_reports_labels_that_do_not_fit_the_params():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.partition({"a": gradtx.sgd(0.1)}, {"w": "a", "bias": "a"})
    with pytest.raises(ValueError, match="partition: the labels do not fit the params") as err:
        tx.init(params)
    assert "params not covered by the labels: 'b'" in str(err.value)
    assert "in the labels but not in params: 'bias'" in str(err.value)
    deep = gradtx.partition({"a": gradtx.sgd(0.1)}, {"w": {"x": "a"}, "b": "a"})
    with pytest.raises(ValueError, match="in the labels but not in params: 'w/x'"):
        deep.init(params)


def test_partition_rejects_labels_that_are_not_hashable_or_traced():
    with pytest.raises(TypeError, match="partition: labels must be hashable.*at 'w'"):
        gradtx.partition({"a": gradtx.sgd(0.1)}, {"w": jnp.zeros(2)})
    params = {"w": jnp.ones(2)}
    tx = gradtx.partition({"a": gradtx.sgd(0.1)}, lambda p: {"w": ["a"]})
    with pytest.raises(ValueError, match="the labels do not fit the params"):
        tx.init(params)  # a list is a container, not a label


def test_partition_rejects_a_foreign_state():
    params = {"w": jnp.ones(2)}
    tx = gradtx.partition({"a": gradtx.sgd(0.1)}, {"w": "a"})
    with pytest.raises(ValueError, match=r"partition: the state must be the dict of group states"):
        tx.update(params, gradtx.sgd(0.1).init(params), params)
    with pytest.raises(ValueError, match=r"with keys \['a'\], got \['b'\]"):
        tx.update(params, {"b": tx.init(params)["a"]}, params)


def test_partition_reports_updates_that_do_not_match_params():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.partition({"a": gradtx.sgd(0.1)}, {"w": "a", "b": "a"})
    with pytest.raises(ValueError, match="partition: .*missing from updates: 'b'"):
        tx.update({"w": jnp.ones(2)}, tx.init(params), params)


def test_masked_rejects_bad_masks_when_built():
    with pytest.raises(TypeError, match="masked: mask leaves must be bools, got int 1 at 'b'"):
        gradtx.masked(gradtx.scale(2.0), {"w": True, "b": 1})
    with pytest.raises(TypeError, match="masked: mask leaves must be bools, got an array"):
        gradtx.masked(gradtx.scale(2.0), {"w": jnp.ones(2, bool)})
    with pytest.raises(TypeError, match="masked: expected a tree .* got None"):
        gradtx.masked(gradtx.scale(2.0), None)
    with pytest.raises(TypeError, match="masked: inner must be a GradientTransformation"):
        gradtx.masked(lambda u: u, True)
    with pytest.raises(TypeError, match="freeze: inner must be a GradientTransformation"):
        gradtx.freeze(True, inner="adam")


def test_masked_accepts_scalar_bool_arrays_and_rejects_traced_masks():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.masked(gradtx.scale(2.0), {"w": jnp.asarray(True), "b": np.bool_(False)})
    updates, _ = tx.update(params, tx.init(params))
    np.testing.assert_array_equal(updates["w"], 2.0)
    np.testing.assert_array_equal(updates["b"], 1.0)
    by_value = gradtx.masked(gradtx.scale(2.0), lambda p: jax.tree.map(lambda x: x.sum() > 0, p))
    with pytest.raises(TypeError, match="masked: the mask must be static, but 'b' is a traced"):
        jax.jit(by_value.update)(params, by_value.init(params), params)


def test_masked_names_the_paths_a_mask_misses():
    params = {"enc": {"w": jnp.ones(2), "b": jnp.ones(2)}, "dec": {"w": jnp.ones(2)}}
    tx = gradtx.masked(gradtx.scale(2.0), {"enc": True, "decoder": False})
    with pytest.raises(ValueError, match="masked: the mask does not fit the params") as err:
        tx.init(params)
    message = str(err.value)
    assert "params not covered by the mask: 'dec/w'" in message
    assert "in the mask but not in params: 'decoder'" in message
    assert "enc" not in message.split("covered by the mask:")[1].split(";")[0]  # a valid prefix


# ---- masked --------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_masked_equals_the_selected_leaves_run_by_hand_and_optax_masked(jit):
    params = flax_params()
    grads = helpers.gradient_sequence(params, STEPS if jit else EAGER_STEPS, seed=7)
    not_bias = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    inner = lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.trace(0.9))  # noqa: E731
    got = helpers.run_gradtx(gradtx.masked(inner(), not_bias), params, grads, jit=jit)
    labels = jax.tree.leaves(not_bias(params))
    by_hand = run_groups_by_hand(
        {True: inner(), False: gradtx.identity()}, labels, params, grads, jit=jit
    )
    assert_same_runs(got, by_hand)
    # the global norm is the selected leaves' norm: the reference sees those leaves only
    refs = {True: ref.chain(ref.clip_by_global_norm(1.0), ref.trace(0.9)), False: ref.identity()}
    want = run_groups_reference(refs, labels, params, grads)
    assert helpers.deviation(got, want) < 1e-6  # measured 2.1e-7
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.masked(
            optax.chain(optax.clip_by_global_norm(1.0), optax.trace(0.9)), not_bias
        )
        want_optax = helpers.run_optax(theirs, params, grads, jit=jit)
    assert helpers.deviation(got, want_optax) < 1e-6  # measured 1.8e-7


def test_masked_passes_unselected_updates_through_untouched():
    params = flax_params()
    tx = gradtx.masked(gradtx.scale(2.0), lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    grads = helpers.gradient_sequence(params, 1, seed=8)[0]
    updates, _ = tx.update(grads, tx.init(params), params)
    assert updates["params"]["dense"]["bias"] is grads["params"]["dense"]["bias"]


def test_masked_function_without_params_is_called_on_the_updates():
    seen = []

    def mask(tree):
        seen.append(tree)
        return jax.tree.map(lambda x: x.ndim > 1, tree)

    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = gradtx.masked(gradtx.scale(2.0), mask)
    grads = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    updates, _ = tx.update(grads, tx.init(params))
    assert seen[-1] is grads
    np.testing.assert_array_equal(updates["w"], 2.0)
    np.testing.assert_array_equal(updates["b"], 1.0)


# ---- freeze --------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_freeze_zeroes_frozen_updates_like_optax_freeze(jit):
    params = flax_params()
    grads = helpers.gradient_sequence(params, 3, seed=9)
    frozen = {"params": {"embed": True, "dense": False, "norm": True, "head": False}}
    tx = gradtx.freeze(frozen)
    assert tx.init(params) == gradtx.MaskedState(gradtx.EmptyState())  # optax's state
    assert layout(tx.init(params)) == layout(optax.freeze(frozen).init(params))
    got = helpers.run_gradtx(tx, params, grads, jit=jit)
    with jax.numpy_dtype_promotion("standard"):
        want = helpers.run_optax(optax.freeze(frozen), params, grads, jit=jit)
    assert_same_runs(got, want)
    labels = jax.tree.leaves(jax.tree.broadcast(frozen, params))
    refs = {True: ref.set_to_zero(), False: ref.identity()}
    want = run_groups_reference(refs, labels, params, grads)
    assert helpers.max_relative_deviation(got[1], want[1]) == 0.0  # updates: g or exactly 0


@pytest.mark.parametrize("jit", [False, True])
def test_freeze_with_an_optimizer_trains_the_rest_only(jit):
    params = flax_params()
    grads = helpers.gradient_sequence(params, STEPS if jit else EAGER_STEPS, seed=10)
    frozen = lambda p: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, x: path[1].key == "embed", p
    )
    tx = gradtx.freeze(frozen, inner=gradtx.adamw(LR, weight_decay=WD))
    got = helpers.run_gradtx(tx, params, grads, jit=jit)
    labels = jax.tree.leaves(frozen(params))
    by_hand = run_groups_by_hand(
        {True: gradtx.set_to_zero(), False: gradtx.adamw(LR, weight_decay=WD)},
        labels,
        params,
        grads,
        jit=jit,
    )
    assert_same_runs(got, by_hand)
    embed_index = labels.index(True)
    start = np.asarray(jax.tree.leaves(params)[embed_index], np.float64)
    np.testing.assert_array_equal(got[0][-1][embed_index], start)  # frozen: not moved at all
    refs = {True: ref.set_to_zero(), False: ref.adamw(LR, weight_decay=WD)}
    exact = run_groups_reference(refs, labels, params, grads)
    assert helpers.deviation(got, exact) < 1e-6  # measured 2.8e-7
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.selective_transform(
            optax.adamw(LR, weight_decay=WD), freeze_mask=frozen(params)
        )
        want = helpers.run_optax(theirs, params, grads, jit=jit)
    # optax's adamw is itself 1.2e-5 from float64 on this run (its float32 1 - b2**t, see
    # test_reference); the same difference as between the unwrapped adamw of both libraries
    assert helpers.deviation(want, exact) > 10 * helpers.deviation(got, exact)
    assert helpers.deviation(got, want) < 2e-5


def test_freeze_keeps_hyperparameters_of_the_inner_optimizer_visible():
    params = flax_params()
    tx = gradtx.freeze(
        {"params": {"embed": True, "dense": False, "norm": False, "head": False}},
        inner=gradtx.adam(LR),
    )
    state = gradtx.set_hyperparams(tx.init(params), learning_rate=0.0)
    updates, _ = tx.update(params, state, params)
    assert all(float(jnp.abs(u).max()) == 0.0 for u in jax.tree.leaves(updates))


# ---- optax's layout: masked and freeze -----------------------------------------------------


def layout(tree):
    """Each leaf's path and shape, and each placeholder and empty state by its class name: a
    state's layout, whichever library made it."""
    kinds = (gradtx.MaskedNode, optax.MaskedNode, gradtx.EmptyState, optax.EmptyState)
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, kinds))[0]
    return [
        (jax.tree_util.keystr(path), type(x).__name__ if isinstance(x, kinds) else np.shape(x))
        for path, x in flat
    ]


def keeping(lib, factor):
    """A transformation whose state is the params it is given (where the placeholders are), and
    whose update scales the updates it is given."""

    def update(updates, state, params=None):
        return jax.tree.map(lambda u: factor * u, updates), {"params": params}

    return lib.GradientTransformation(lambda params: {"params": params}, update)


LAYERS = {
    "linear_1": {"w": jnp.full((1, 1), 0.5), "b": jnp.full(1, -1.0)},
    "linear_2": {"w": jnp.full((1, 2), 2.0), "b": jnp.full(2, 0.25)},
    "linear_3": {"w": jnp.full((2, 3), -0.5), "b": (jnp.full(3, 1.5), jnp.ones(1))},
}
NOT_BIAS = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
NOT_LINEAR_2 = {"linear_1": True, "linear_2": False, "linear_3": True}
MASKS = {
    "tree": jax.tree.map(lambda x: x.ndim > 1, LAYERS),
    "prefix": {"linear_1": True, "linear_2": False, "linear_3": {"w": False, "b": True}},
    "function": NOT_BIAS,
    "all": True,
    "none": False,
}
BUILDS = {
    **{f"masked_{k}": lambda lib, m=m: lib.masked(keeping(lib, -2.0), m) for k, m in MASKS.items()},
    # optax's issue 271: a mask inside another, both written for the whole tree
    "nested": lambda lib: lib.masked(lib.masked(keeping(lib, -2.0), NOT_LINEAR_2), NOT_BIAS),
    "nested_prefix": lambda lib: lib.masked(lib.masked(keeping(lib, 3.0), NOT_BIAS), NOT_LINEAR_2),
    **{f"freeze_{k}": lambda lib, m=m: lib.freeze(m) for k, m in MASKS.items() if k != "function"},
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("build", BUILDS)
def test_masked_and_freeze_states_and_updates_are_optax_s(build, jit):
    ours_tx = BUILDS[build](gradtx)
    with jax.numpy_dtype_promotion("standard"):
        theirs_tx = BUILDS[build](optax)
    runs = []
    for tx in (ours_tx, theirs_tx):
        update = jax.jit(tx.update) if jit else tx.update
        params, state = LAYERS, tx.init(LAYERS)
        states, steps = [state], []
        with jax.numpy_dtype_promotion("standard"):
            for k in range(2):
                grads = jax.tree.map(lambda p, k=k: (k + 1.0) * p + 1.0, params)
                updates, state = update(grads, state, params)
                params = jax.tree.map(lambda p, u: p + u, params, updates)
                states.append(state)
                steps.append(updates)
        runs.append((states, steps))
    (ours, ours_steps), (theirs, theirs_steps) = runs
    assert [type(s).__name__ for s in ours] == ["MaskedState"] * 3
    assert [layout(s) for s in ours] == [layout(s) for s in theirs]
    for a, b in zip(ours_steps, theirs_steps):
        assert jax.tree.structure(a) == jax.tree.structure(b)
        jax.tree.map(np.testing.assert_array_equal, a, b)
    placeholders = [p for p, kind in layout(ours[0]) if kind == "MaskedNode"]
    if build == "masked_prefix":  # one placeholder for a subtree a mask leaf leaves out
        assert placeholders == [
            ".inner_state['params']['linear_2']",
            ".inner_state['params']['linear_3']['w']",
        ]
    if build == "nested":
        assert ".inner_state.inner_state['params']['linear_2']" in placeholders


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_masked_and_freeze_with_optimizers_match_optax(jit):
    params = flax_params()
    grads = helpers.gradient_sequence(params, 4, seed=11)
    mask = {"params": {"embed": False, "dense": {"kernel": True, "bias": False}, "norm": False}}
    mask["params"]["head"] = True
    frozen = jax.tree.map(lambda m: not m, mask)
    with jax.numpy_dtype_promotion("standard"):
        pairs = {
            "masked": (
                gradtx.masked(gradtx.sgd(0.1, momentum=0.9), mask),
                optax.masked(optax.sgd(0.1, momentum=0.9), mask),
            ),
            "freeze": (
                gradtx.freeze(frozen, inner=gradtx.sgd(0.1, momentum=0.9)),
                optax.selective_transform(optax.sgd(0.1, momentum=0.9), freeze_mask=frozen),
            ),
        }
        for name, (ours, theirs) in pairs.items():
            got = helpers.run_gradtx(ours, params, grads, jit=jit)
            want = helpers.run_optax(theirs, params, grads, jit=jit)
            assert helpers.deviation(got, want) < 1e-6, name
            ours_trace = ours.init(params).inner_state[0].trace
            theirs_state = theirs.init(params)
            if name == "freeze":  # the train group's state is freeze's
                theirs_state = theirs_state.inner_states["train"]
            assert layout(ours_trace) == layout(theirs_state.inner_state[0].trace), name
            assert jax.tree.leaves(ours_trace)  # the trainable leaves have momentum


def test_masked_state_keeps_the_inner_hyperparameters_visible():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = gradtx.masked(gradtx.adam(0.1), {"w": True, "b": False})
    state = tx.init(params)
    assert isinstance(state, gradtx.MaskedState)
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(0.1)
    assert float(gradtx.tree_utils.tree_get(state, "learning_rate")) == pytest.approx(0.1)
    state = gradtx.set_hyperparams(state, learning_rate=0.0)
    assert isinstance(state, gradtx.MaskedState)
    updates, state = jax.jit(tx.update)(params, state, params)
    assert not np.any(updates["w"]) and np.array_equal(updates["b"], params["b"])
    assert int(gradtx.tree_utils.tree_get(state, "count")) == 1


def test_tree_map_params_reaches_through_masked_states_as_optax_s():
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "c": {"d": jnp.ones(1)}}
    specs = {"w": "rows", "b": "cols", "c": {"d": "one"}}
    mask = {"w": True, "b": False, "c": True}
    got, want = [], []
    for lib, out in ((gradtx, got), (optax, want)):
        with jax.numpy_dtype_promotion("standard"):
            tx = lib.masked(lib.scale_by_adam(), mask)
            state = tx.init(params)
        node = lib.MaskedNode
        for initable in (tx, tx.init):
            out.append(
                lib.tree_utils.tree_map_params(
                    initable,
                    lambda p, spec, node=node: None if isinstance(p, node) else spec,
                    state,
                    specs,
                    is_leaf=lambda x, node=node: isinstance(x, node),
                    transform_non_params=lambda _: "replicated",
                )
            )
    for ours, theirs in zip(got, want):
        assert isinstance(ours, gradtx.MaskedState)
        assert ours.inner_state.mu == theirs.inner_state.mu
        assert ours.inner_state.mu == {"w": "rows", "b": None, "c": {"d": "one"}}
        assert "replicated" in jax.tree.leaves(ours)  # the count, and gradtx's table


@jax.tree_util.register_pytree_node_class
class CallableModule:
    """A callable pytree, as an Equinox module is: as a mask, a tree of bools, not a function."""

    def __init__(self, w, b):
        self.w, self.b = w, b

    def __call__(self, x):
        return self.w * x + self.b

    def tree_flatten(self):
        return (self.w, self.b), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def test_a_callable_pytree_mask_is_a_tree_of_bools():
    params = CallableModule(jnp.ones(2), jnp.ones(3))
    mask = CallableModule(True, False)
    tx = gradtx.masked(gradtx.scale(2.0), mask)
    updates, state = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(updates.w, 2.0)
    np.testing.assert_array_equal(updates.b, 1.0)
    decay = gradtx.add_decayed_weights(0.5, mask=mask)  # checked when built, as a tree
    updates, _ = decay.update(params, decay.init(params), params)
    np.testing.assert_array_equal(updates.w, 1.5)
    np.testing.assert_array_equal(updates.b, 1.0)
    frozen = gradtx.selective_transform(gradtx.scale(2.0), freeze_mask=mask)
    updates, _ = frozen.update(params, frozen.init(params), params)
    np.testing.assert_array_equal(updates.w, 0.0)
    np.testing.assert_array_equal(updates.b, 2.0)
    with pytest.raises(TypeError, match="masked: mask leaves must be bools, got int 1 at"):
        gradtx.masked(gradtx.scale(2.0), CallableModule(True, 1))


# ---- memory --------------------------------------------------------------------------------


def test_state_memory_only_for_the_leaves_that_need_it():
    params = {
        "embed": jnp.zeros((1000,)),
        "dense": {"kernel": jnp.zeros((200, 5)), "bias": jnp.zeros((5,))},
        "norm": jnp.zeros((5,)),
    }
    labels = {
        "embed": "frozen",
        "dense": {"kernel": "decay", "bias": "no_decay"},
        "norm": "no_decay",
    }
    flat = jax.tree.leaves(jax.tree.broadcast(labels, params))
    f32 = 4

    tx = gradtx.partition(
        {
            "decay": gradtx.adamw(LR, weight_decay=WD),
            "no_decay": gradtx.adam(LR),
            "frozen": gradtx.freeze(True),
        },
        labels,
    )
    state = tx.init(params)
    trained = leaf_bytes(params, flat, {"decay", "no_decay"})
    assert trained == (1000 + 10) * f32
    assert moment_bytes(state) == 2 * trained  # Adam's two moments, for trained leaves only
    assert state_bytes(state["frozen"]) == 0
    separate = state_bytes(gradtx.adamw(LR, weight_decay=WD).init(params["dense"]["kernel"]))
    separate += state_bytes(gradtx.adam(LR).init([params["dense"]["bias"], params["norm"]]))
    assert state_bytes(state) == separate
    # optax's partition holds the same per-parameter state
    with jax.numpy_dtype_promotion("standard"):
        theirs = optax.partition(
            {
                "decay": optax.adamw(LR, weight_decay=WD),
                "no_decay": optax.adam(LR),
                "frozen": optax.set_to_zero(),
            },
            labels,
        )
        assert moment_bytes(theirs.init(params)) == moment_bytes(state)

    # freeze with an optimizer, and masked
    mask = jax.tree.map(lambda label: label != "frozen", labels)
    frozen_tx = gradtx.freeze(jax.tree.map(lambda m: not m, mask), inner=gradtx.adam(LR))
    assert moment_bytes(frozen_tx.init(params)) == 2 * trained
    masked_tx = gradtx.masked(gradtx.adam(LR), mask)
    assert moment_bytes(masked_tx.init(params)) == 2 * trained
    assert state_bytes(masked_tx.init(params)) == state_bytes(
        gradtx.adam(LR).init([params["dense"]["bias"], params["dense"]["kernel"], params["norm"]])
    )
    assert state_bytes(gradtx.freeze(mask).init(params)) == 0
    # for scale: the whole model's Adam holds the embedding's moments too
    assert moment_bytes(gradtx.adam(LR).init(params)) == 2 * (trained + 1000 * f32)


def test_nested_masks_hold_state_for_the_intersection_only():
    params = {"a": jnp.zeros(100), "b": jnp.zeros(10), "c": jnp.zeros(1)}
    tx = gradtx.masked(
        gradtx.masked(gradtx.trace(0.9), {"a": True, "b": False, "c": True}),
        {"a": True, "b": True, "c": False},
    )
    assert moment_bytes(tx.init(params)) == 100 * 4


# ---- nesting -------------------------------------------------------------------------------

PARAMS = {
    "enc": {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.1, -0.1])},
    "dec": {"w": jnp.asarray([2.0, -1.0, 0.5]), "b": jnp.asarray([0.3])},
}
GRADS = jax.tree.map(lambda x: 0.5 * x + 1.0, PARAMS)
IS_W = {"enc": {"w": True, "b": False}, "dec": {"w": True, "b": False}}


def scaled(grads, factors):
    return jax.tree.map(lambda g, f: g * f, grads, factors)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("jit", [False, True])
def test_masked_inside_masked(jit):
    tx = gradtx.masked(gradtx.masked(gradtx.scale(3.0), IS_W), {"enc": True, "dec": False})
    updates, _ = (jax.jit(tx.update) if jit else tx.update)(GRADS, tx.init(PARAMS), PARAMS)
    factors = {"enc": {"w": 3.0, "b": 1.0}, "dec": {"w": 1.0, "b": 1.0}}
    assert_trees_equal(updates, scaled(GRADS, factors))


@pytest.mark.parametrize("jit", [False, True])
def test_masked_inside_partition_and_partition_inside_masked(jit):
    groups = {"enc": gradtx.masked(gradtx.scale(3.0), IS_W), "dec": gradtx.scale(-1.0)}
    tx = gradtx.partition(groups, {"enc": "enc", "dec": "dec"})
    updates, _ = (jax.jit(tx.update) if jit else tx.update)(GRADS, tx.init(PARAMS), PARAMS)
    factors = {"enc": {"w": 3.0, "b": 1.0}, "dec": {"w": -1.0, "b": -1.0}}
    assert_trees_equal(updates, scaled(GRADS, factors))

    outer = gradtx.masked(tx, IS_W)
    updates, _ = (jax.jit(outer.update) if jit else outer.update)(GRADS, outer.init(PARAMS), PARAMS)
    factors = {"enc": {"w": 3.0, "b": 1.0}, "dec": {"w": -1.0, "b": 1.0}}
    assert_trees_equal(updates, scaled(GRADS, factors))


@pytest.mark.parametrize("jit", [False, True])
def test_wrappers_nested_under_a_prefix_mask_ignore_the_masks_below_its_holes(jit):
    # the outer mask leaves "dec" out as one MaskedNode; the nested masks and labels are written
    # for the whole tree and go on below it
    enc_only = {"enc": True, "dec": False}
    by_name = lambda p: jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key, p)  # noqa: E731
    cases = {
        "partition": (
            gradtx.masked(
                gradtx.partition({"w": gradtx.scale(3.0), "b": gradtx.scale(-1.0)}, by_name),
                enc_only,
            ),
            {"enc": {"w": 3.0, "b": -1.0}, "dec": {"w": 1.0, "b": 1.0}},
        ),
        "multi_transform": (
            gradtx.masked(
                gradtx.multi_transform(
                    {"w": gradtx.scale(3.0), "b": gradtx.scale(-1.0)}, by_name(PARAMS)
                ),
                enc_only,
            ),
            {"enc": {"w": 3.0, "b": -1.0}, "dec": {"w": 1.0, "b": 1.0}},
        ),
        "freeze": (
            gradtx.freeze(
                {"enc": False, "dec": True}, inner=gradtx.masked(gradtx.scale(3.0), IS_W)
            ),
            {"enc": {"w": 3.0, "b": 1.0}, "dec": {"w": 0.0, "b": 0.0}},
        ),
        "masked_freeze": (
            gradtx.masked(gradtx.freeze({"enc": IS_W["enc"], "dec": True}), enc_only),
            {"enc": {"w": 0.0, "b": 1.0}, "dec": {"w": 1.0, "b": 1.0}},
        ),
    }
    for name, (tx, factors) in cases.items():
        updates, state = (jax.jit(tx.update) if jit else tx.update)(GRADS, tx.init(PARAMS), PARAMS)
        assert_trees_equal(updates, scaled(GRADS, factors))
        assert jax.tree.structure(state) == jax.tree.structure(tx.init(PARAMS)), name


def test_a_nested_wrapper_sees_one_placeholder_for_a_subtree_left_out():
    seen = []

    def update(updates, state, params=None):
        seen.append(updates)
        return updates, state

    spy = gradtx.GradientTransformation(lambda p: gradtx.EmptyState(), update)
    tx = gradtx.masked(gradtx.masked(spy, IS_W), {"enc": True, "dec": False})
    tx.update(GRADS, tx.init(PARAMS), PARAMS)
    assert seen[-1]["dec"] == gradtx.MaskedNode()  # the outer mask's hole, kept
    assert seen[-1]["enc"]["b"] == gradtx.MaskedNode() and seen[-1]["enc"]["w"] is not None
    seen.clear()
    within = gradtx.partition({"in": gradtx.masked(spy, IS_W), "out": gradtx.identity()}, by_layer)
    within.update(GRADS, within.init(PARAMS), PARAMS)
    assert seen[-1]["dec"] == {"w": None, "b": gradtx.MaskedNode()}  # partition's holes: None


def by_layer(params):
    return {"enc": "in", "dec": "out"}


def test_partition_inside_partition_with_freeze():
    inner = gradtx.partition(
        {"w": gradtx.scale(2.0), "b": gradtx.freeze(True)},
        lambda p: jax.tree_util.tree_map_with_path(lambda path, x: path[-1].key, p),
    )
    tx = gradtx.partition({"in": inner, "out": gradtx.scale(5.0)}, {"enc": "in", "dec": "out"})
    updates, state = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    factors = {"enc": {"w": 2.0, "b": 0.0}, "dec": {"w": 5.0, "b": 5.0}}
    assert_trees_equal(updates, scaled(GRADS, factors))
    assert list(state["in"]) == ["w", "b"]


def test_a_nested_mask_must_describe_the_whole_params_tree():
    inner = gradtx.masked(gradtx.scale(3.0), {"w": True, "b": False})  # written for one layer
    tx = gradtx.partition({"enc": inner, "dec": gradtx.scale(1.0)}, {"enc": "enc", "dec": "dec"})
    with pytest.raises(ValueError, match="masked: the mask does not fit the params") as err:
        tx.init(PARAMS)
    # the holes the partition left for the other group are part of the tree the mask must fit
    assert "params not covered by the mask: 'dec/b', 'dec/w', 'enc/b', 'enc/w'" in str(err.value)
    assert "in the mask but not in params: 'b', 'w'" in str(err.value)


# ---- Flax ----------------------------------------------------------------------------------


def test_flax_train_state_with_parameter_groups():
    from flax.training import train_state

    params = flax_params()
    tx = gradtx.partition(
        {
            "decay": gradtx.adamw(0.05, weight_decay=WD),
            "no_decay": gradtx.adam(0.05),
            "embed": gradtx.freeze(True),
        },
        label_fn,
    )
    state = train_state.TrainState.create(apply_fn=None, params=params, tx=tx)
    state = state.replace(step=jnp.zeros([], jnp.int32))  # not a Python int: no retrace
    loss = lambda p: sum(jnp.sum((x - 1.0) ** 2) for x in jax.tree.leaves(p))  # noqa: E731
    step = jax.jit(lambda s: s.apply_gradients(grads=jax.grad(loss)(s.params)))
    for _ in range(5):
        state = step(state)
    assert step._cache_size() == 1
    np.testing.assert_array_equal(
        state.params["params"]["embed"]["embedding"], params["params"]["embed"]["embedding"]
    )
    assert float(loss(state.params)) < float(loss(params))


def test_flax_nnx_optimizer_with_parameter_groups():
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self):
            self.body = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
            self.head = nnx.Linear(3, 1, rngs=nnx.Rngs(1))

        def __call__(self, x):
            return self.head(self.body(x))

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, x: "frozen" if path[0].key == "body" else "train", params
        )

    model = Model()
    body_before = np.asarray(model.body.kernel[...])
    head_before = np.asarray(model.head.kernel[...])
    optimizer = nnx.Optimizer(
        model,
        gradtx.partition({"train": gradtx.adam(0.05), "frozen": gradtx.freeze(True)}, labels),
        wrt=nnx.Param,
    )
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)), jnp.float32)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - 1.0) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(5)]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(model.body.kernel[...], body_before)
    assert not np.array_equal(model.head.kernel[...], head_before)


def test_a_group_without_leaves_needs_no_params():
    """A one-leaf tree labelled for sgd leaves AdamW's group empty: its weight decay has nothing
    to decay and must not ask for the params it is given as None (the tree's only leaf is a
    hole)."""
    tx = gradtx.partition({"a": gradtx.adamw(0.1), "b": gradtx.sgd(0.1)}, "b")
    params = jnp.ones(3)
    updates, _ = tx.update(params, tx.init(params), params)
    assert np.allclose(updates, -0.1)
