"""reduce_on_plateau: PyTorch's ReduceLROnPlateau decisions, compiled once, clear errors."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

RECORDS = json.loads(
    (pathlib.Path(__file__).parent / "reference" / "torch_plateau.json").read_text()
)["records"]


@pytest.mark.parametrize(
    "record", RECORDS, ids=lambda r: f"{r['sequence']}-factor{r['setting']['factor']}"
)
def test_decisions_match_pytorch(record):
    tx = gradtx.reduce_on_plateau(**record["setting"])
    grads = {"w": jnp.ones(2)}
    step = jax.jit(lambda state, loss: tx.update(grads, state, loss=loss))
    state, previous = tx.init(grads), 1.0
    for loss, torch_scale in zip(record["losses"], record["scales"]):
        updates, state = step(state, jnp.float32(loss))
        # this update used the scale decided by the losses before it
        np.testing.assert_allclose(updates["w"], previous, rtol=1e-6)
        np.testing.assert_allclose(state.inner_state.scale, torch_scale, rtol=1e-6)
        previous = torch_scale
    assert step._cache_size() == 1


def test_every_record_exercises_something():
    reductions = [len(set(r["scales"])) - 1 for r in RECORDS]
    assert sum(reductions) > 30 and min(reductions) == 0


def test_loss_reaches_it_through_a_chain():
    tx = gradtx.chain(gradtx.sgd(0.1), gradtx.reduce_on_plateau(factor=0.5, patience=0))
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(params, state, params, loss=1.0)
    # losses 1, 1, 1 with patience 0: reductions after the 2nd and 3rd; the 3rd update uses 0.5
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5)
    assert float(state[1].inner_state.scale) == 0.25


def test_needs_the_loss():
    tx = gradtx.reduce_on_plateau()
    with pytest.raises(ValueError, match="reduce_on_plateau: update needs the monitored loss"):
        tx.update({"w": jnp.ones(1)}, tx.init(None))


def test_optaxs_keyword_value_is_the_loss():
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=0)
    g = {"w": jnp.ones(2)}
    by_loss, by_value = tx.init(g), tx.init(g)
    for loss in [1.0, 1.0, 2.0, 0.5]:
        _, by_loss = tx.update(g, by_loss, loss=loss)
        _, by_value = tx.update(g, by_value, value=loss)
    assert float(by_value.inner_state.scale) == float(by_loss.inner_state.scale) == 0.25
    # both given (a line search in the same chain takes value=): loss= is the monitored one
    both = tx.init(g)
    for loss in [1.0, 1.0, 2.0, 0.5]:
        _, both = tx.update(g, both, loss=loss, value=-1.0)
    assert float(both.inner_state.scale) == 0.25


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        ({"factor": 1.0}, ValueError, "factor"),
        ({"factor": 0.0}, ValueError, "factor"),
        ({"patience": -1}, ValueError, "patience"),
        ({"patience": 1.5}, TypeError, "patience"),
        ({"cooldown": -2}, ValueError, "cooldown"),
        ({"threshold": -1e-4}, ValueError, "threshold"),
        ({"min_scale": float("nan")}, ValueError, "min_scale"),
    ],
)
def test_bad_arguments(kwargs, error, argument):
    with pytest.raises(error, match=f"reduce_on_plateau: {argument}"):
        gradtx.reduce_on_plateau(**kwargs)
