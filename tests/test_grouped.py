"""grouped: an elementwise chain on one buffer per dtype gives the per-leaf numbers."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import helpers
from tests.compile_options import as_users
from tests.reference import numpy_reference as ref


def mixed_tree(seed: int = 0):
    """float32 and bfloat16 leaves of several shapes, a scalar, a zero-size leaf and a None."""
    rng = np.random.default_rng(seed)

    def arr(dtype, *shape):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "dense": {"kernel": arr(jnp.float32, 4, 3), "bias": arr(jnp.float32, 3)},
        "embed": arr(jnp.bfloat16, 5, 2),
        "norm": [arr(jnp.bfloat16, 3), {"scale": arr(jnp.float32)}],
        "conv": arr(jnp.float32, 2, 2, 1, 3),
        "zero_size": arr(jnp.float32, 0, 3),
        "frozen": None,
    }


def run(tx, params, grads, *, jit: bool):
    """Updates and params after each step, leaf lists of exact float64 copies."""
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        out.append([np.asarray(x, np.float64) for x in jax.tree.leaves((updates, params))])
    if jit:
        assert update._cache_size() == 1  # no retrace on later steps
    return out, state


# XLA compiles the same elementwise formula into different machine code for different shapes
# and fusions (FMA contraction, scalar factors reassociated into one broadcast, vector vs
# scalar loops): the per-leaf program itself moves by a few float32 ulps between eager and jit.
# Grouping changes the shapes the formula runs on, so the bound is 2 ulps of each leaf's
# magnitude (measured worst: 1 ulp, mostly on the scalar leaf); most elements are bitwise equal.
ULPS = 2 * 2.0**-23


def assert_per_leaf_numbers(got, reference, *, min_exact: float = 0.8):
    assert helpers.max_relative_deviation(got, reference) <= ULPS
    exact = sum(int((g == r).sum()) for a, b in zip(got, reference) for g, r in zip(a, b))
    total = sum(r.size for b in reference for r in b)
    assert exact >= min_exact * total


def dtypes_of(tree):
    return [x.dtype for x in jax.tree.leaves(tree)]


SCHEDULE = gradtx.warmup_cosine_decay_schedule(0.0, 0.05, 2, 8, 1e-3)

ELEMENTWISE = {
    "adam": lambda: gradtx.adam(0.05),
    "adamw+clip(inactive)+schedule": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(1e3), gradtx.adamw(SCHEDULE, weight_decay=0.1)
    ),
    "sgd momentum": lambda: gradtx.sgd(0.1, momentum=0.9),
    "sgd nesterov schedule": lambda: gradtx.sgd(SCHEDULE, momentum=0.9, nesterov=True),
    "rmsprop": lambda: gradtx.rmsprop(0.01),
    "rmsprop centred momentum": lambda: gradtx.rmsprop(0.01, centered=True, momentum=0.5),
    "adam bf16 moments": lambda: gradtx.adam(0.05, mu_dtype=jnp.bfloat16),
}


@pytest.mark.parametrize("name", ["adam", "sgd momentum", "rmsprop centred momentum"])
def test_equal_to_per_leaf_eagerly(name):
    """Per element the arithmetic is the per-leaf arithmetic: the same numbers, every step."""
    params = mixed_tree()
    grads = helpers.gradient_sequence(params, 3, seed=1)
    tx = ELEMENTWISE[name]()
    reference, ref_state = run(tx, params, grads, jit=False)
    got, state = run(gradtx.grouped(tx), params, grads, jit=False)
    assert_per_leaf_numbers(got, reference)
    as_floats = lambda s: {k: float(v) for k, v in gradtx.hyperparams(s).items()}  # noqa: E731
    assert as_floats(state) == as_floats(ref_state)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_jitted_equal_to_per_leaf_up_to_xla_fusion(name):
    params = mixed_tree()
    grads = helpers.gradient_sequence(params, 4, seed=1)
    tx = ELEMENTWISE[name]()
    reference, _ = run(tx, params, grads, jit=True)
    got, _ = run(gradtx.grouped(tx), params, grads, jit=True)
    assert_per_leaf_numbers(got, reference)


def test_active_global_clipping_matches_to_summation_order():
    """The global norm is summed per buffer, not per leaf: equal to a few float32 ulps.

    The clipping factor max_norm / norm inherits that relative error (a few 1e-8); Adam is
    nearly invariant to the scale of its input, so the updates differ by less (measured: a
    relative deviation below 1e-7 over 6 steps); the bound below allows 5 ulps (6e-7).
    """
    params = mixed_tree()
    grads = helpers.gradient_sequence(params, 6, seed=2)
    tx = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adamw(SCHEDULE, weight_decay=0.1))
    reference, _ = run(tx, params, grads, jit=True)
    got, _ = run(gradtx.grouped(tx), params, grads, jit=True)
    assert helpers.max_relative_deviation(got, reference) <= 6e-7
    # the norms themselves: per leaf vs per dtype buffer
    g = grads[0]
    per_leaf = float(gradtx._core.norms.global_norm(g))
    layout = gradtx._core.grouped._layout(g, 1 << 20)
    buffers = gradtx._core.grouped._concat(layout, jax.tree.leaves(g), "updates")
    assert float(gradtx._core.norms.global_norm(buffers)) == pytest.approx(per_leaf, rel=3e-7)


def test_against_float64_reference_and_optax_flatten():
    """clip + adamw + schedule, grouped, against the float64 formula and optax.flatten."""
    import optax

    rng = np.random.default_rng(3)
    params = {
        "w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
        "s": jnp.asarray(rng.normal(), jnp.float32),
    }
    grads = helpers.gradient_sequence(params, 8, seed=4)
    lr = (0.0, 0.05, 3, 1)
    tx = gradtx.grouped(
        gradtx.chain(
            gradtx.clip_by_global_norm(1.0),
            gradtx.adamw(gradtx.linear_schedule(*lr), weight_decay=0.1),
        )
    )
    got = helpers.run_gradtx(tx, params, grads, jit=True)
    numpy = helpers.run_reference(
        ref.chain(
            ref.clip_by_global_norm(1.0),
            ref.adamw(ref.linear_schedule(*lr), weight_decay=0.1),
        ),
        params,
        grads,
    )
    # as close to the exact formula as gradtx's per-leaf Adam (test_reference)
    assert helpers.deviation(got, numpy) < 1e-6
    with jax.numpy_dtype_promotion("standard"):
        flat = optax.flatten(
            optax.chain(
                optax.clip_by_global_norm(1.0),
                optax.adamw(optax.linear_schedule(*lr), weight_decay=0.1),
            )
        )
        theirs = helpers.run_optax(flat, params, grads, jit=True)
    # optax forms 1 - b**t from a float32 b: its own float32 error (see test_reference)
    assert helpers.deviation(got, theirs) < 2e-5


def test_state_layout_round_trip_and_hyperparams():
    params = mixed_tree()
    grads = helpers.gradient_sequence(params, 4, seed=5)
    tx = gradtx.grouped(gradtx.chain(gradtx.clip_by_global_norm(1e3), gradtx.adamw(SCHEDULE)))
    state = tx.init(params)
    moments = state.inner_state[1].inner_state[0].mu
    assert sorted(moments) == ["bfloat16", "float32"]
    assert moments["float32"].shape == (12 + 3 + 1 + 12,) and moments["bfloat16"].shape == (13,)
    assert [int(o) for o in state.offsets] == [0, 12, 15, 0, 10, 27, 28]  # flattening order
    update = jax.jit(tx.update)
    for g in grads[:2]:
        _, state = update(g, state, params)
    # a checkpoint-like round trip through host arrays keeps structure, dtypes and values
    restored = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert dtypes_of(restored) == dtypes_of(state)
    a, _ = update(grads[2], state, params)
    b, _ = update(grads[2], restored, params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x, np.float64), np.asarray(y, np.float64))
    # hyperparameters are read and changed through the wrapper's state, without recompiling
    assert float(gradtx.hyperparams(state)["learning_rate"]) == pytest.approx(float(SCHEDULE(2)))
    changed = gradtx.set_hyperparams(state, learning_rate=0.0)
    zero, new_state = update(grads[2], changed, params)
    assert all(not np.asarray(x, np.float64).any() for x in jax.tree.leaves(zero))
    assert update._cache_size() == 1
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert dtypes_of(new_state) == dtypes_of(state)


def test_large_leaves_keep_their_own_buffer():
    params = mixed_tree()
    grads = helpers.gradient_sequence(params, 3, seed=6)
    tx = gradtx.adamw(0.05, weight_decay=0.1)
    wrapped = gradtx.grouped(tx, max_grouped_size=11)  # the two 12-element leaves stand alone
    state = wrapped.init(params)
    moments = state.inner_state.inner_state[0].mu
    assert sorted(moments) == ["bfloat16", "float32", "leaf:conv", "leaf:dense/kernel"]
    assert moments["leaf:conv"].shape == (2, 2, 1, 3) and moments["float32"].shape == (4,)
    reference, _ = run(tx, params, grads, jit=False)
    got, _ = run(wrapped, params, grads, jit=False)
    assert_per_leaf_numbers(got, reference)
    with pytest.raises(ValueError, match="grouped: max_grouped_size must be an int >= 0"):
        gradtx.grouped(tx, max_grouped_size=-1)


def test_inside_partition_next_to_per_leaf_norms():
    params = mixed_tree()
    grads = helpers.gradient_sequence(params, 2, seed=7)
    labels = jax.tree.map(lambda p: "lamb" if p.ndim == 2 else "adam", params)
    tx = gradtx.partition(
        {"adam": gradtx.grouped(gradtx.adam(0.05)), "lamb": gradtx.lamb(0.05)}, labels
    )
    reference = gradtx.partition({"adam": gradtx.adam(0.05), "lamb": gradtx.lamb(0.05)}, labels)
    got, _ = run(tx, params, grads, jit=False)
    want, _ = run(reference, params, grads, jit=False)
    assert_per_leaf_numbers(got, want)


def _distinct_kernels(hlo: str) -> tuple[int, int]:
    """(fusion ops in the entry computation, distinct fused computations up to naming)."""
    bodies = set()
    for body in re.findall(r"^%fused\S* \(.*?\) -> .*? \{\n(.*?)\n\}", hlo, re.M | re.S):
        body = re.sub(r"%[\w.\-]+", "%", body)
        bodies.add(re.sub(r", metadata=\{[^}]*\}", "", body))
    return len(re.findall(r"\bfusion\(", hlo)), len(bodies)


def _compiled_step(tx, n_leaves: int) -> str:
    rng = np.random.default_rng(0)
    shapes = [(8,), (2, 4), (3,)]
    params = {
        f"w{i:03d}": jnp.asarray(rng.normal(size=shapes[i % 3]), jnp.float32)
        for i in range(n_leaves)
    }

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return as_users(jax.jit(step).lower(params, tx.init(params), params)).as_text()


def test_compiled_program_has_few_kernels_whatever_the_leaf_count():
    """XLA compiles one kernel per distinct fused computation: grouped, their number does not
    grow with the leaves (per leaf only the shared slice-and-add kernel repeats)."""
    tx = gradtx.grouped(
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(SCHEDULE, weight_decay=0.1))
    )
    fusions_20, kernels_20 = _distinct_kernels(_compiled_step(tx, 20))
    fusions_80, kernels_80 = _distinct_kernels(_compiled_step(tx, 80))
    assert kernels_80 == kernels_20 <= 25
    assert fusions_80 - fusions_20 <= 60 + 5  # at most one fusion per added leaf, plus slack


@pytest.mark.parametrize(
    "tx",
    [
        gradtx.clip_by_norm(0.1),
        gradtx.lamb(1e-2),
        gradtx.lars(1e-1),
        gradtx.adaptive_grad_clip(0.01),
        gradtx.adamw(0.1, weight_decay=0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
        gradtx.adam(1e-2, optim_bits=8),
        gradtx.adam(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16),
    ],
    ids=["clip_by_norm", "lamb", "lars", "adaptive_grad_clip", "mask by rank", "8-bit", "bf16"],
)
def test_leaf_dependent_transformations_are_refused(tx):
    with pytest.raises(ValueError, match="grouped: tx does not act leaf-independently"):
        gradtx.grouped(tx)


def test_unprobeable_transformations_need_check_false():
    mask = {"a": True, "b": False}
    with pytest.raises(ValueError, match="grouped: could not check tx on a probe tree"):
        gradtx.grouped(gradtx.adamw(0.1, mask=mask))
    with pytest.raises(ValueError, match="grouped: could not check tx on a probe tree"):
        gradtx.grouped(gradtx.chain(gradtx.adam(0.1), gradtx.reduce_on_plateau()))
    gradtx.grouped(gradtx.chain(gradtx.adam(0.1), gradtx.reduce_on_plateau()), check=False)


def test_bad_arguments_and_states():
    with pytest.raises(TypeError, match="grouped: tx must be a GradientTransformation"):
        gradtx.grouped(0.1)
    with pytest.raises(TypeError, match="grouped: check must be a bool"):
        gradtx.grouped(gradtx.adam(0.1), check=1)
    tx = gradtx.grouped(gradtx.adam(0.1))
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="grouped: the state must be the GroupedState"):
        tx.update(params, gradtx.adam(0.1).init(params))
    with pytest.raises(ValueError, match="grouped: the state must be the GroupedState"):
        tx.update(params, tx.init({"a": jnp.ones(3)}))
    with pytest.raises(ValueError, match="grouped: the params of the float32 updates"):
        tx.update(params, tx.init(params), {"a": jnp.ones(3), "b": jnp.ones(2, jnp.bfloat16)})
    bf16 = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"grouped: .*bfloat16"):
        tx.update(bf16, tx.init(params))
