"""chain, named_chain, masked, extra arguments, weight-decay placement, and drop-in use."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests import helpers
from tests.reference import numpy_reference as ref

PARAMS = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.1, -0.1])}
GRADS = {"w": jnp.asarray([[0.3, 0.1], [-0.2, 0.4]]), "b": jnp.asarray([1.0, 2.0])}


def test_chain_applies_links_in_order():
    tx = gradtx.chain(gradtx.scale(2.0), gradtx.clip(0.5), gradtx.scale(-1.0))
    updates, state = tx.update(GRADS, tx.init(PARAMS))
    expected = jax.tree.map(lambda g: -jnp.clip(2 * g, -0.5, 0.5), GRADS)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, updates, expected))
    assert isinstance(state, tuple) and len(state) == 3


def test_named_chain_state_is_a_dict_of_link_states():
    tx = gradtx.named_chain(("clip", gradtx.clip_by_global_norm(1.0)), ("opt", gradtx.adam(0.1)))
    state = tx.init(PARAMS)
    assert list(state) == ["clip", "opt"]
    plain = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(0.1))
    got, _ = tx.update(GRADS, state, PARAMS)
    want, _ = plain.update(GRADS, plain.init(PARAMS), PARAMS)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, got, want))


def test_named_chain_takes_its_state_back_from_jit_whatever_the_name_order():
    # jit returns dicts with sorted keys; names given out of order must still be accepted
    tx = gradtx.named_chain(("sgd", gradtx.sgd(0.1, momentum=0.9)), ("clip", gradtx.clip(1.0)))
    update = jax.jit(tx.update)
    state = tx.init(PARAMS)
    for _ in range(2):
        updates, state = update(GRADS, state, PARAMS)
    assert list(state) == ["clip", "sgd"]
    want = jax.tree.map(lambda g: jnp.clip(-0.1 * 1.9 * g, -1.0, 1.0), GRADS)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_extra_arguments_reach_every_link_that_takes_them():
    seen = []

    def recorder():
        def update(updates, state, params=None, **extra):
            seen.append(extra.get("loss"))
            return updates, state

        return gradtx.GradientTransformation(lambda p: (), update)

    plain_optax = optax.scale(1.0)  # its update takes no extra arguments
    tx = gradtx.chain(recorder(), plain_optax, gradtx.named_chain(("r", recorder())))
    tx.update(GRADS, tx.init(PARAMS), PARAMS, loss=3.0)
    assert seen == [3.0, 3.0]


def test_gradtx_links_inside_an_optax_chain():
    with jax.numpy_dtype_promotion("standard"):
        tx = optax.chain(
            gradtx.clip_by_global_norm(1.0),
            optax.scale_by_adam(),
            gradtx.scale_by_learning_rate(0.1),
        )
        updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
        reference = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
        want, _ = reference.update(GRADS, reference.init(PARAMS), PARAMS)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_masked_keeps_state_for_selected_leaves_only():
    tx = gradtx.masked(gradtx.trace(0.9), {"w": True, "b": False})
    state = tx.init(PARAMS)
    assert isinstance(state, gradtx.MaskedState)  # optax's layout
    assert state.inner_state.trace["b"] == gradtx.MaskedNode()
    assert state.inner_state.trace["w"].shape == (2, 2)
    updates, state = tx.update(GRADS, state)
    updates, state = tx.update(GRADS, state)
    np.testing.assert_allclose(updates["w"], 1.9 * GRADS["w"], rtol=1e-6)
    assert updates["b"] is GRADS["b"]  # passed through untouched


def test_masked_with_a_function_and_a_prefix():
    no_bias = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)  # noqa: E731
    tx = gradtx.masked(gradtx.add_decayed_weights(0.5), no_bias)
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    np.testing.assert_allclose(updates["w"], GRADS["w"] + 0.5 * PARAMS["w"])
    np.testing.assert_array_equal(updates["b"], GRADS["b"])
    everything = gradtx.masked(gradtx.scale(2.0), True)
    updates, _ = everything.update(GRADS, everything.init(PARAMS))
    np.testing.assert_array_equal(updates["b"], 2 * GRADS["b"])


def test_masked_reports_a_mask_that_does_not_fit():
    tx = gradtx.masked(gradtx.scale(2.0), {"w": True, "bias": False})
    with pytest.raises(ValueError, match="masked: the mask does not fit the params"):
        tx.init(PARAMS)


@pytest.mark.parametrize("jit", [False, True])
def test_weight_decay_placement_coupled_and_decoupled(jit):
    """Before the preconditioner add_decayed_weights is L2 (Adam sees g + λθ); after it,
    decoupled decay (AdamW). Both match their references, and they differ."""
    wd, lr = 0.1, 1e-2
    coupled = gradtx.chain(
        gradtx.add_decayed_weights(wd), gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(lr)
    )
    decoupled = gradtx.chain(
        gradtx.scale_by_adam(), gradtx.add_decayed_weights(wd), gradtx.scale_by_learning_rate(lr)
    )
    params = helpers.sample_tree(np.random.default_rng(0), jnp.float32)
    grads = helpers.gradient_sequence(params, 50, seed=3)
    got_coupled = helpers.run_gradtx(coupled, params, grads, jit=jit)
    got_decoupled = helpers.run_gradtx(decoupled, params, grads, jit=jit)
    want_coupled = helpers.run_reference(
        ref.chain(ref.add_decayed_weights(wd), ref.scale_by_adam(), ref.scale_by_learning_rate(lr)),
        params,
        grads,
    )
    want_decoupled = helpers.run_reference(ref.adamw(lr, weight_decay=wd), params, grads)
    assert helpers.deviation(got_coupled, want_coupled) < 1e-5
    assert helpers.deviation(got_decoupled, want_decoupled) < 1e-5
    assert helpers.deviation(got_coupled, got_decoupled) > 1e-3
    adamw = helpers.run_gradtx(gradtx.adamw(lr, weight_decay=wd), params, grads, jit=jit)
    assert helpers.deviation(adamw, got_decoupled) == 0.0


def test_adamw_mask_skips_masked_out_leaves():
    tx = gradtx.adamw(0.1, weight_decay=0.5, mask={"w": True, "b": False})
    plain = gradtx.adam(0.1)
    got, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    adam_only, _ = plain.update(GRADS, plain.init(PARAMS), PARAMS)
    np.testing.assert_array_equal(got["b"], adam_only["b"])
    assert not np.allclose(got["w"], adam_only["w"])


def test_flax_train_state_takes_a_gradtx_optimizer():
    from flax.training import train_state

    loss = lambda p: jnp.sum((p["w"] - 3.0) ** 2)  # noqa: E731
    state = train_state.TrainState.create(
        apply_fn=None, params={"w": jnp.zeros(3)}, tx=gradtx.adam(0.1)
    )
    step = jax.jit(lambda s: s.apply_gradients(grads=jax.grad(loss)(s.params)))
    for _ in range(200):
        state = step(state)
    assert float(loss(state.params)) < 1e-3


def test_flax_nnx_optimizer_takes_a_gradtx_optimizer():
    from flax import nnx

    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gradtx.adamw(0.05, weight_decay=1e-4), wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)), jnp.float32)
    y = x @ jnp.asarray([[2.0], [-1.0]]) + 0.5

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(300):
        loss = step(model, optimizer)
    assert float(loss) < 1e-3
