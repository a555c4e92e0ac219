"""Flax: gradtx optimizers as the ``tx`` of ``nnx.Optimizer`` and of Linen's ``TrainState``.

Small models trained for a few hundred steps under ``nnx.jit`` / ``jax.jit`` reach a stated loss
and follow optax's same-named optimizer step for step; extra arguments (a loss for
``reduce_on_plateau``, an objective for a line search) reach ``update`` through
``nnx.Optimizer.update(model, grads, **kwargs)``; hyperparameters of an ``nnx.Optimizer`` are
read and changed with ``gradtx.hyperparams`` / ``set_hyperparams`` without recompiling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx
from flax.training import train_state

import gradtx


def _regression(n: int = 128, seed: int = 0):
    """``y = sin(3 x0) + x1^2 / 2`` on ``[-1, 1]^2``, float32; the loss is a mean square."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = np.sin(3.0 * x[:, :1]) + 0.5 * x[:, 1:] ** 2
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


class _NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(2, 32, rngs=rngs)
        self.out = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


class _LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(1)(jnp.tanh(linen.Dense(32)(x)))


def _mse(pred, y):
    return jnp.mean((pred - y) ** 2)


def _train_nnx(tx, steps, x, y, *, standard_promotion=False):
    """Losses of ``steps`` full-batch steps of a fresh MLP; the step must be traced once."""
    model = _NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    traces = []

    @nnx.jit
    def step(model, optimizer, x, y):
        traces.append(1)
        loss, grads = nnx.value_and_grad(lambda m: _mse(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    losses = []
    with jax.numpy_dtype_promotion("standard" if standard_promotion else "strict"):
        for _ in range(steps):
            losses.append(float(step(model, optimizer, x, y)))
    assert len(traces) == 1
    return np.asarray(losses), model, optimizer


def test_nnx_optimizer_trains_to_a_stated_loss_as_the_functional_loop_does():
    x, y = _regression()
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, 3e-2, warmup_steps=30, decay_steps=300)
    tx = gradtx.adamw(schedule, weight_decay=1e-4)

    losses, model, optimizer = _train_nnx(tx, 300, x, y)

    assert losses[0] > 0.3 and losses[-1] < 1e-2  # from 0.39 to 4.6e-3 (measured)
    assert int(optimizer.step[...]) == 300
    assert float(gradtx.hyperparams(nnx.as_pure(optimizer.opt_state))["learning_rate"]) < 1e-6

    # The same run without Flax's wrapper: tx.update and apply_updates in a jitted loop.
    graphdef, params = nnx.split(_NnxMLP(nnx.Rngs(0)), nnx.Param)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: _mse(nnx.merge(graphdef, p)(x), y))(params)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state, loss

    state, expected = tx.init(params), []
    for _ in range(300):
        params, state, loss = step(params, state)
        expected.append(float(loss))
    np.testing.assert_array_equal(losses, expected)
    for a, b in zip(jax.tree.leaves(nnx.as_pure(optimizer.opt_state)), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)


def test_linen_train_state_trains_to_a_stated_loss_and_matches_optax():
    x, y = _regression()
    model = _LinenMLP()
    params = model.init(jax.random.key(0), x)["params"]

    def run(tx, promotion):
        state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

        @jax.jit
        def step(state):
            def loss_fn(p):
                return _mse(state.apply_fn({"params": p}, x), y)

            loss, grads = jax.value_and_grad(loss_fn)(state.params)
            return state.apply_gradients(grads=grads), loss

        losses = []
        with jax.numpy_dtype_promotion(promotion):
            for _ in range(300):
                state, loss = step(state)
                losses.append(float(loss))
                if len(losses) == 2:  # TrainState.create's step is a Python int: one retrace
                    compiled = step._cache_size()
        assert step._cache_size() == compiled
        return np.asarray(losses), state

    losses, state = run(gradtx.sgd(0.1, momentum=0.9, nesterov=True), "strict")
    expected, _ = run(optax.sgd(0.1, momentum=0.9, nesterov=True), "standard")

    assert losses[0] > 0.8 and losses[-1] < 1e-2  # from 0.87 to 4.0e-3 (measured)
    np.testing.assert_array_equal(losses, expected)  # SGD: optax's numbers exactly
    assert int(state.step) == 300


def test_loss_reaches_reduce_on_plateau_through_nnx_optimizer_update():
    """``optimizer.update(model, grads, loss=loss)`` gives the same state as a functional loop
    passing ``loss=`` to ``tx.update``; a plateau (learning rate set to 0) halves the scale."""
    x, y = _regression()
    tx = gradtx.chain(gradtx.sgd(0.1), gradtx.reduce_on_plateau(factor=0.5, patience=2))
    model = _NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, params = nnx.split(_NnxMLP(nnx.Rngs(0)), nnx.Param)  # a copy, for the functional run

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: _mse(m(x), y))(model)
        optimizer.update(model, grads, loss=loss)
        return loss

    def loss_of(params):
        return _mse(nnx.merge(graphdef, params)(x), y)

    @jax.jit
    def functional_step(params, state):
        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, state = tx.update(grads, state, params, loss=loss)
        return gradtx.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(20):
        step(model, optimizer, x, y)
        params, state = functional_step(params, state)
    for a, b in zip(jax.tree.leaves(nnx.as_pure(optimizer.opt_state)), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)
    assert float(nnx.as_pure(optimizer.opt_state)[1].inner_state.scale) == 1.0

    # Learning rate 0: the loss stops moving. The first loss after the change is still a new best
    # (it is taken at the params the last real step made); the patience-th equal loss after it
    # (the 3rd loss) cuts the scale, from that update on.
    pure = gradtx.set_hyperparams(nnx.as_pure(optimizer.opt_state), learning_rate=0.0)
    nnx.update(optimizer.opt_state, nnx.state(pure))
    scales = []
    for _ in range(4):
        step(model, optimizer, x, y)
        scales.append(float(nnx.as_pure(optimizer.opt_state)[1].inner_state.scale))
    assert scales == [1.0, 1.0, 0.5, 0.5]


def test_lbfgs_line_search_gets_its_objective_through_nnx_optimizer_update():
    """A line search evaluates the loss at trial params: ``value_fn`` takes the params as
    ``nnx.Optimizer`` hands them to ``update`` (a pure ``nnx.State``), merged into the model."""
    x, y = _regression()
    model = _NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gradtx.lbfgs(), wrt=nnx.Param)
    graphdef, _ = nnx.split(model, nnx.Param)

    def value_fn(params):
        return _mse(nnx.merge(graphdef, params)(x), y)

    traces = []

    @nnx.jit
    def step(model, optimizer):
        traces.append(1)
        loss, grads = nnx.value_and_grad(lambda m: _mse(m(x), y))(model)
        optimizer.update(model, grads, value=loss, grad=grads, value_fn=value_fn)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(60)]
    assert len(traces) == 1
    assert losses[0] > 0.3 and losses[-1] < 3e-3  # 0.39, then 4.3e-3 at 30, 1.5e-3 at 60 (measured)
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # the line search only accepts descent


def test_hyperparams_of_an_nnx_optimizer_change_without_recompiling():
    x, y = _regression()
    model = _NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gradtx.sgd(0.05, momentum=0.9), wrt=nnx.Param)
    traces = []

    @nnx.jit
    def step(model, optimizer):
        traces.append(1)
        grads = nnx.grad(lambda m: _mse(m(x), y))(model)
        optimizer.update(model, grads)

    step(model, optimizer)
    assert gradtx.hyperparams(nnx.as_pure(optimizer.opt_state)) == pytest.approx(
        {"learning_rate": 0.05, "momentum": 0.9}
    )
    pure = gradtx.set_hyperparams(nnx.as_pure(optimizer.opt_state), learning_rate=0.0, momentum=0.0)
    nnx.update(optimizer.opt_state, nnx.state(pure))
    before = jax.tree.map(np.asarray, nnx.as_pure(nnx.state(model, nnx.Param)))
    step(model, optimizer)
    after = jax.tree.map(np.asarray, nnx.as_pure(nnx.state(model, nnx.Param)))
    jax.tree.map(np.testing.assert_array_equal, after, before)  # rate 0, no momentum: no move
    assert len(traces) == 1


def test_an_nnx_optimizer_resumes_bitwise_from_an_orbax_checkpoint(tmp_path):
    """Flax's own recipe: save ``nnx.state`` of model and optimizer, restore it into a fresh
    pair built the same way, continue: bit for bit the uninterrupted run."""
    import orbax.checkpoint as ocp

    x, y = _regression()
    schedule = gradtx.cosine_decay_schedule(0.05, 20)

    def fresh():
        model = _NnxMLP(nnx.Rngs(0))
        return model, nnx.Optimizer(model, gradtx.adam(schedule), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: _mse(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    model, optimizer = fresh()
    for _ in range(5):
        step(model, optimizer)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state((model, optimizer)))
    checkpointer.wait_until_finished()
    uninterrupted = [float(step(model, optimizer)) for _ in range(5)]

    model, optimizer = fresh()
    target = nnx.state((model, optimizer))
    nnx.update((model, optimizer), checkpointer.restore(tmp_path / "ckpt", target))
    checkpointer.close()
    assert int(optimizer.step[...]) == 5
    assert [float(step(model, optimizer)) for _ in range(5)] == uninterrupted


def test_train_state_extras_need_an_explicit_update_call():
    """``TrainState.apply_gradients(grads=..., **kwargs)`` treats kwargs as fields to replace,
    not as ``update`` arguments: a transformation that needs a loss is called directly."""
    x, y = _regression()
    model = _LinenMLP()
    tx = gradtx.chain(gradtx.sgd(0.0), gradtx.reduce_on_plateau(factor=0.5, patience=1))
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(jax.random.key(0), x)["params"], tx=tx
    )

    @jax.jit
    def step(state):
        loss, grads = jax.value_and_grad(lambda p: _mse(model.apply({"params": p}, x), y))(
            state.params
        )
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params, loss=loss)
        params = gradtx.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state)

    with pytest.raises(ValueError, match="reduce_on_plateau: update needs the monitored loss"):
        state.apply_gradients(grads=state.params)
    for _ in range(3):  # rate 0: the loss repeats; patience 1 halves the scale from the 2nd on
        state = step(state)
    assert float(state.opt_state[1].inner_state.scale) == 0.25


# Optimizers whose state keeps more than param-shaped moments: per-leaf factors, statistics,
# projections, a copy of the weights. nnx.Optimizer turns any subtree of the state shaped like
# the params into its own variables; a state that kept a tuple in a param's place came out of
# the update as an nnx State, and a lax.scan over the training step refused the carry.
MATRIX = {
    "muon": lambda: gradtx.muon(1e-2),
    "shampoo": lambda: gradtx.shampoo(1e-2, start_preconditioning_step=1),
    "soap": lambda: gradtx.soap(3e-3, precondition_frequency=2),
    "kron": lambda: gradtx.kron(1e-3),
    "galore": lambda: gradtx.galore(1e-3, rank=4, update_proj_gap=2),
    "sam": lambda: gradtx.sam(
        gradtx.adamw(1e-3),
        gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.sgd(0.05)),
    ),
}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix_optimizer_state_is_a_scan_carry_of_an_nnx_optimizer(name):
    x, y = _regression()
    tx = MATRIX[name]()
    model = _NnxMLP(nnx.Rngs(0))
    graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))

    def step(state, _):
        model, optimizer = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(lambda m: _mse(m(x), y))(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    _, losses = jax.jit(lambda s: jax.lax.scan(step, s, None, length=4))(state)

    # the same steps without Flax's wrapper
    model_def, params = nnx.split(_NnxMLP(nnx.Rngs(0)), nnx.Param)

    def plain(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(lambda p: _mse(nnx.merge(model_def, p)(x), y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (gradtx.apply_updates(params, updates), opt_state), loss

    _, expected = jax.jit(lambda p: jax.lax.scan(plain, (p, tx.init(p)), None, length=4))(params)
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    assert np.all(np.diff(np.asarray(losses)) != 0)  # it moved
