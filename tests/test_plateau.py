"""reduce_on_plateau: optax's decisions and state (the default) and PyTorch's ReduceLROnPlateau
decisions (rule="pytorch"), each against its library, compiled once; clear errors."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx._schedules.plateau import ReduceLROnPlateauState

RECORDS = json.loads(
    (pathlib.Path(__file__).parent / "reference" / "torch_plateau.json").read_text()
)["records"]
# the loss sequences of the PyTorch records (all positive), by name
SEQUENCES = {r["sequence"]: r["losses"] for r in RECORDS}


def _pytorch_rule(setting):
    """gradtx's arguments for a PyTorch record's setting (PyTorch's relative threshold is rtol)."""
    kwargs = dict(setting, rtol=setting["threshold"])
    del kwargs["threshold"]
    return dict(kwargs, rule="pytorch")


@pytest.mark.parametrize(
    "record", RECORDS, ids=lambda r: f"{r['sequence']}-factor{r['setting']['factor']}"
)
def test_decisions_match_pytorch(record):
    tx = gradtx.reduce_on_plateau(**_pytorch_rule(record["setting"]))
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


@pytest.mark.parametrize("record", RECORDS[5:10], ids=lambda r: r["sequence"])
def test_pytorch_rule_judges_the_average_of_accumulation_size_values(record):
    # each loss given twice: the average of a pair is the loss exactly, so every 2nd update
    # makes PyTorch's decision on it; both updates of a pair use the scale before it
    tx = gradtx.reduce_on_plateau(**_pytorch_rule(record["setting"]), accumulation_size=2)
    grads = {"w": jnp.ones(2)}
    step = jax.jit(lambda state, loss: tx.update(grads, state, value=loss))
    state, previous = tx.init(grads), 1.0
    for loss, torch_scale in zip(record["losses"], record["scales"]):
        for _ in range(2):
            updates, state = step(state, jnp.float32(loss))
            np.testing.assert_allclose(updates["w"], previous, rtol=1e-6)
        np.testing.assert_allclose(state.inner_state.scale, torch_scale, rtol=1e-6)
        assert int(state.inner_state.count) == 0
        previous = torch_scale
    assert step._cache_size() == 1


def test_pytorch_rule_atol_is_pytorchs_absolute_threshold():
    # PyTorch's threshold_mode="abs": an improvement is a loss below best - threshold
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=0, rtol=0.0, atol=0.1, rule="pytorch")
    state, scales = tx.init(None), []
    for loss in [1.0, 0.95, 0.85, 0.8]:  # best 1; 0.95 bad; 0.85 < 0.9 a best; 0.8 bad
        _, state = tx.update({"w": jnp.ones(1)}, state, loss=loss)
        scales.append(float(state.scale))
    assert scales == [1.0, 0.5, 0.5, 0.25]


OPTAX_SETTINGS = [
    {},  # optax's defaults
    {"factor": 0.5, "patience": 3, "rtol": 1e-3, "atol": 1e-3, "cooldown": 2,
     "accumulation_size": 4, "min_scale": 0.05},
    {"factor": 0.3, "patience": 1, "rtol": 0.0, "atol": 1e-2, "accumulation_size": 3},
    {"factor": 0.5, "patience": 5, "rtol": 1e-2, "cooldown": 4, "min_scale": 0.2},
    {"factor": 0.2, "patience": 2, "atol": 5e-3, "cooldown": 1, "accumulation_size": 2,
     "min_scale": 0.01},
]  # fmt: skip


def _optax_run(setting, losses, params):
    """optax's states and updates along the losses (jitted, in JAX's standard promotion)."""
    tx = optax.contrib.reduce_on_plateau(**setting)
    with jax.numpy_dtype_promotion("standard"):
        step = jax.jit(lambda state, loss: tx.update(params, state, value=loss))
        state, out = tx.init(params), []
        for loss in losses:
            updates, state = step(state, jnp.float32(loss))
            out.append((updates, state))
    return out


@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
@pytest.mark.parametrize("setting", OPTAX_SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_decisions_and_state_match_optax(setting, sequence):
    losses = SEQUENCES[sequence]
    params = {"w": jnp.ones(2), "b": jnp.full(3, 2.0)}
    tx = gradtx.reduce_on_plateau(**setting)
    step = jax.jit(lambda state, loss: tx.update(params, state, value=loss))
    state = tx.init(params)
    for loss, (optax_updates, optax_state) in zip(losses, _optax_run(setting, losses, params)):
        updates, state = step(state, jnp.float32(loss))
        # the same decisions and the same numbers: the state field for field, bit for bit
        assert type(state.inner_state)._fields == type(optax_state)._fields
        for mine, theirs in zip(state.inner_state, optax_state):
            assert mine.dtype == theirs.dtype
            np.testing.assert_array_equal(mine, theirs)
        jax.tree.map(np.testing.assert_array_equal, updates, optax_updates)
    assert step._cache_size() == 1


def test_the_optax_comparisons_exercise_something():
    params = {"w": jnp.ones(1)}
    cuts = {
        (i, name): len({float(s.scale) for _, s in _optax_run(setting, losses, params)}) - 1
        for i, setting in enumerate(OPTAX_SETTINGS)
        for name, losses in SEQUENCES.items()
    }
    assert sum(cuts.values()) > 30 and min(cuts.values()) == 0
    for i, setting in enumerate(OPTAX_SETTINGS):  # every setting cuts on some sequence
        assert max(cuts[i, name] for name in SEQUENCES) > 0, setting


def test_state_layout_and_dtypes_are_optaxs():
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(3), "c": jnp.ones(1, jnp.complex64)}
    mine = gradtx.reduce_on_plateau().init(params).inner_state
    with jax.numpy_dtype_promotion("standard"):  # optax finds the dtypes by promoting
        theirs = optax.contrib.reduce_on_plateau().init({"a": params["a"], "b": params["b"]})
    assert type(mine).__name__ == "ReduceLROnPlateauState"
    assert mine._fields == theirs._fields
    # the scale in the params' lowest float dtype, the values in the highest
    assert [x.dtype for x in mine] == [x.dtype for x in theirs]
    assert mine.scale.dtype == jnp.bfloat16 and mine.best_value.dtype == jnp.float32
    # no float leaf: the default float dtype
    assert gradtx.reduce_on_plateau().init(None).inner_state.scale.dtype == jnp.float32


def test_state_dtypes_are_the_params_not_x64s(x64):
    # float32 params with x64 on: a float32 state, as optax's (the live table is float64)
    params = {"w": jnp.ones(2, jnp.float32)}
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=1)
    state = tx.init(params)
    for value in [1.0, 1.0]:
        _, state = tx.update(params, state, value=value)
    theirs = [x for _, x in _optax_run({"factor": 0.5, "patience": 1}, [1.0, 1.0], params)][-1]
    assert state.table["factor,rtol,atol,min_scale"].dtype == jnp.float64
    for mine, their in zip(state.inner_state, theirs):
        assert mine.dtype == their.dtype and mine == their
    assert state.scale.dtype == jnp.float32 and float(state.scale) == 0.5
    assert gradtx.reduce_on_plateau().init(None).inner_state.best_value.dtype == jnp.float64


def test_an_optax_run_continues_in_gradtx():
    setting = {"factor": 0.5, "patience": 2, "cooldown": 1, "accumulation_size": 2}
    losses = SEQUENCES["noisy_walk"][:40]
    params = {"w": jnp.ones(2)}
    theirs = [state for _, state in _optax_run(setting, losses, params)]
    tx = gradtx.reduce_on_plateau(**setting)
    state = gradtx.from_optax_state(tx, theirs[24], params)
    for loss, expected in zip(losses[25:], theirs[25:]):
        _, state = tx.update(params, state, value=jnp.float32(loss))
        jax.tree.map(np.testing.assert_array_equal, tuple(state.inner_state), tuple(expected))
    back = gradtx.to_optax_state(optax.contrib.reduce_on_plateau(**setting), state, params)
    assert type(back) is optax.contrib.ReduceLROnPlateauState
    assert len({float(s.scale) for s in theirs[25:]}) > 1  # a cut after the hand-over


def test_patience_zero_never_cuts_on_an_improvement():
    # optax tests plateau_count == patience, true for patience 0 right after an improvement
    def scales(patience, losses):
        tx = gradtx.reduce_on_plateau(factor=0.5, patience=patience)
        state, out = tx.init(None), []
        for loss in losses:
            _, state = tx.update({"w": jnp.ones(1)}, state, value=loss)
            out.append(float(state.scale))
        return out

    assert scales(0, [4.0, 3.0, 2.0, 1.0]) == [1.0] * 4
    mixed = [4.0, 4.0, 3.0, 3.0, 3.0, 2.0]
    assert scales(0, mixed) == scales(1, mixed) == [1.0, 0.5, 0.5, 0.25, 0.125, 0.125]


@pytest.mark.parametrize("rule", ["optax", "pytorch"])
def test_rtol_is_relative_to_the_size_of_a_negative_best(rule):
    # optax's and PyTorch's bar (1 - rtol) * best is above a negative best: -0.99995 would be
    # a new best after -1
    tx = gradtx.reduce_on_plateau(rtol=1e-4, patience=5, rule=rule)
    state = tx.init(None)
    for value, best, bad in [(-1.0, -1.0, 0), (-0.99995, -1.0, 1), (-1.00005, -1.0, 2),
                             (-1.0002, -1.0002, 0)]:  # fmt: skip
        _, state = tx.update({"w": jnp.ones(1)}, state, value=value)
        assert float(state.best_value) == np.float32(best) and int(state.plateau_count) == bad


def test_rtol_and_atol_both_zero_count_any_decrease():
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=1, rtol=0.0, atol=0.0)
    state = tx.init(None)
    for value in [1.0, 0.9999999, 0.9999999]:
        _, state = tx.update({"w": jnp.ones(1)}, state, value=value)
    assert float(state.best_value) == np.float32(0.9999999) and float(state.scale) == 0.5


@pytest.mark.parametrize("rule", ["optax", "pytorch"])
def test_hyperparameters_are_live(rule):
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=1, min_scale=0.1, rule=rule)
    step = jax.jit(lambda state, value: tx.update({"w": jnp.ones(1)}, state, value=value))
    state = tx.init(None)
    assert sorted(gradtx.hyperparams(state)) == ["atol", "factor", "min_scale", "rtol"]
    state = gradtx.set_hyperparams(step(state, 1.0)[1], factor=0.25)
    for _ in range(2):
        state = step(state, 1.0)[1]
    # optax cuts at each bad value (1 * 0.25, then 0.0625 floored at 0.1), PyTorch after two
    assert float(state.scale) == (np.float32(0.1) if rule == "optax" else 0.25)
    state = step(gradtx.set_hyperparams(state, min_scale=0.5, atol=10.0), 0.5)[1]
    assert float(state.best_value) == 1.0  # 0.5 is no improvement on 1 by more than 10
    # optax holds the scale at min_scale or above at every judgement; PyTorch floors a cut
    assert float(state.scale) == (0.5 if rule == "optax" else 0.25)
    assert step._cache_size() == 1
    with pytest.raises(ValueError, match="set_hyperparams: rtol must be in \\[0, 1\\)"):
        gradtx.set_hyperparams(state, rtol=1.0)


def test_loss_reaches_it_through_a_chain():
    params = {"w": jnp.ones(2)}
    for rule, patience, last_update, scale in [("pytorch", 0, 0.5, 0.25), ("optax", 1, 0.25, 0.25)]:
        tx = gradtx.chain(
            gradtx.sgd(0.1), gradtx.reduce_on_plateau(factor=0.5, patience=patience, rule=rule)
        )
        state = tx.init(params)
        for _ in range(3):
            updates, state = tx.update(params, state, params, loss=1.0)
        # losses 1, 1, 1: cuts after the 2nd and 3rd; optax's applies to the same update
        np.testing.assert_allclose(updates["w"], -0.1 * last_update)
        assert float(state[1].inner_state.scale) == scale


def test_needs_the_loss():
    # optax's update has value= without a default: a TypeError; gradtx raised ValueError before
    tx = gradtx.reduce_on_plateau()
    for error in (TypeError, ValueError):
        with pytest.raises(error, match="reduce_on_plateau: update needs the monitored loss"):
            tx.update({"w": jnp.ones(1)}, tx.init(None))


@pytest.mark.parametrize("rule", ["optax", "pytorch"])
def test_optaxs_keyword_value_is_the_loss(rule):
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=1 if rule == "optax" else 0, rule=rule)
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


@pytest.mark.parametrize("make", [ReduceLROnPlateauState, optax.contrib.ReduceLROnPlateauState])
def test_a_state_without_the_table_is_updated_in_its_own_type(make):
    # optax's state, or one built by hand: updated with the factory's hyperparameters
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=2, min_scale=0.1)
    g = {"w": jnp.ones(2)}
    bare = make(
        scale=jnp.array(0.4),
        best_value=jnp.array(1.0),
        plateau_count=jnp.array(1, jnp.int32),
        cooldown_count=jnp.array(0, jnp.int32),
        count=jnp.array(0, jnp.int32),
        avg_value=jnp.array(0.0),
    )
    wrapped = tx.init(g)._replace(inner_state=ReduceLROnPlateauState(*bare))
    updates, new = jax.jit(tx.update)(g, bare, value=2.0)
    expected_updates, expected = tx.update(g, wrapped, value=2.0)
    assert type(new) is make
    jax.tree.map(np.testing.assert_array_equal, tuple(new), tuple(expected.inner_state))
    np.testing.assert_array_equal(updates["w"], expected_updates["w"])
    assert new.scale == np.float32(0.2)  # 0.4 * 0.5: the plateau count reached patience

    scheduled = gradtx.reduce_on_plateau(factor=gradtx.constant_schedule(0.5))
    with pytest.raises(ValueError, match=r"reduce_on_plateau: .*\['factor'\], which follow"):
        scheduled.update(g, bare, value=2.0)


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        ({"factor": 1.0}, ValueError, "factor"),
        ({"factor": 0.0}, ValueError, "factor"),
        ({"patience": -1}, ValueError, "patience"),
        ({"patience": 1.5}, TypeError, "patience"),
        ({"cooldown": -2}, ValueError, "cooldown"),
        ({"rtol": -1e-4}, ValueError, "rtol"),
        ({"rtol": 1.0}, ValueError, "rtol"),
        ({"atol": -1e-3}, ValueError, "atol"),
        ({"accumulation_size": 0}, ValueError, "accumulation_size"),
        ({"accumulation_size": 2.0}, TypeError, "accumulation_size"),
        ({"min_scale": float("nan")}, ValueError, "min_scale"),
        ({"rule": "torch"}, ValueError, "rule"),
    ],
)
def test_bad_arguments(kwargs, error, argument):
    with pytest.raises(error, match=f"reduce_on_plateau: {argument}"):
        gradtx.reduce_on_plateau(**kwargs)


def test_threshold_is_gone():
    with pytest.raises(TypeError, match="threshold"):
        gradtx.reduce_on_plateau(threshold=1e-4)
