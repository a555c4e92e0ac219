"""Checkpoints: every optimizer state through Orbax and Flax msgpack, resumed bit for bit.

A run of 50 steps is saved at step 20 (params and optimizer state together), restored into a
freshly built optimizer (new factory call, new ``init``, new ``jit``: what a new process does)
and continued; the last params and state must equal the uninterrupted run's bit for bit. Before
the save, a hyperparameter is changed with ``set_hyperparams``, so that the checkpoint holds a
``manual`` flag (for a schedule: the flag that stops the schedule from overwriting the value)
and a value with its rounding residual.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import gradtx
from tests.helpers import OPTIMIZERS

STEPS, SAVE_AT, SET_AT = 50, 20, 10


@dataclasses.dataclass(frozen=True)
class Built:
    id: str
    factory: Callable[[], gradtx.GradientTransformation]
    needs_loss: bool = False


def _not_scalar(params):
    return jax.tree.map(lambda x: x.ndim > 0, params)


def _labels(params):
    return {"dense": "train", "scale": "frozen"}


def _combinations() -> list[Built]:
    warmup_cosine = gradtx.warmup_cosine_decay_schedule(0.0, 0.05, 10, 50)
    return [
        Built(
            "reduce_on_plateau",
            lambda: gradtx.chain(
                gradtx.adam(0.05), gradtx.reduce_on_plateau(factor=0.5, patience=2)
            ),
            needs_loss=True,
        ),
        Built("masked", lambda: gradtx.masked(gradtx.adam(1e-2), _not_scalar)),
        Built(
            "chain",
            lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.sgd(0.1, momentum=0.9)),
        ),
        Built(
            "named_chain",
            lambda: gradtx.named_chain(
                ("clip", gradtx.clip_by_global_norm(1.0)),
                ("adamw", gradtx.adamw(warmup_cosine, weight_decay=1e-2)),
            ),
        ),
        Built(
            "partition",
            lambda: gradtx.partition(
                {"train": gradtx.adam(1e-2), "frozen": gradtx.freeze(True)}, _labels
            ),
        ),
        Built(
            "freeze",
            lambda: gradtx.freeze({"dense": False, "scale": True}, inner=gradtx.lamb(1e-2)),
        ),
        Built(
            "multi_steps", lambda: gradtx.MultiSteps(gradtx.adam(1e-2), 3).gradient_transformation()
        ),
        Built("apply_if_finite", lambda: gradtx.apply_if_finite(gradtx.rmsprop(1e-2), 2)),
        Built("lookahead", lambda: gradtx.lookahead(gradtx.sgd(0.1, momentum=0.9), 5, 0.5)),
        Built("monitor", lambda: gradtx.monitor(gradtx.adam(warmup_cosine))),
        Built(
            "add_noise",
            lambda: gradtx.chain(gradtx.add_noise(0.01, 0.55, 0), gradtx.sgd(0.1)),
        ),
        Built("ema_params", lambda: gradtx.chain(gradtx.sgd(0.1), gradtx.ema_params(0.9))),
    ]


CASES = [Built(case.id, case.gradtx) for case in OPTIMIZERS] + _combinations()


def _params():
    rng = np.random.default_rng(0)
    return {
        "dense": {
            "w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
        },
        "scale": jnp.asarray(1.5, jnp.float32),
    }


@functools.cache  # the same for every case (made op by op, 40 ms each time)
def _noise():
    rng = np.random.default_rng(1)
    return tuple(
        jax.tree.map(lambda p: jnp.asarray(0.1 * rng.normal(size=p.shape), p.dtype), _params())
        for _ in range(STEPS)
    )


def _loss(params):
    """A smooth non-quadratic objective, so that the gradients depend on the path."""
    w, b, s = params["dense"]["w"], params["dense"]["b"], params["scale"]
    return jnp.sum(jnp.log(jnp.cosh(w - 0.5))) + jnp.sum((b + 1.0) ** 2) + (s * s - 1.0) ** 2


def _stepper(built: Built, params, noise):
    """A fresh optimizer and its training step, compiled ahead of time: the one executable
    takes the restored arrays whatever their kind (NumPy from msgpack, committed from Orbax)."""
    tx = built.factory()

    def step(params, state, noise):
        loss, grads = jax.value_and_grad(_loss)(params)
        grads = jax.tree.map(jnp.add, grads, noise)
        extra = {"loss": loss} if built.needs_loss else {}
        updates, state = tx.update(grads, state, params, **extra)
        return gradtx.apply_updates(params, updates), state

    return tx, jax.jit(step).lower(params, tx.init(params), noise[0]).compile()


def _set_one(state):
    """Changes the learning rate (or the first hyperparameter) to 0.7 times its value."""
    current = gradtx.hyperparams(state)
    if not current:
        return state
    key = next((k for k in current if k.endswith("learning_rate")), next(iter(current)))
    return gradtx.set_hyperparams(state, **{key: 0.7 * float(current[key])})


def _run(step, params, state, noise, start, stop):
    for t in range(start, stop):
        if t == SET_AT:
            state = _set_one(state)
        params, state = step(params, state, noise[t])
    return params, state


def _assert_bitwise(actual, expected, how):
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def, how
    for a, e in zip(a_leaves, e_leaves):
        a, e = np.asarray(a), np.asarray(e)
        assert (a.dtype, a.shape) == (e.dtype, e.shape), how
        assert a.tobytes() == e.tobytes(), how


def _restored_copies(checkpoint, target, tmp_path):
    """The checkpoint read back in four ways: Orbax with a target and raw (then restore_state),
    Flax msgpack into a target (then check_state) and raw (then restore_state)."""
    checkpointer = ocp.StandardCheckpointer()
    path = tmp_path / "ckpt"
    checkpointer.save(path, checkpoint)
    checkpointer.wait_until_finished()
    gradtx.check_state(target, checkpointer.metadata(path).item_metadata)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    copies = {
        "orbax": checkpointer.restore(path, abstract),
        "orbax_raw": gradtx.restore_state(target, checkpointer.restore(path)),
    }
    checkpointer.close()
    data = serialization.to_bytes(checkpoint)
    from_bytes = serialization.from_bytes(target, data)
    gradtx.check_state(target, from_bytes)
    copies["msgpack"] = from_bytes
    copies["msgpack_raw"] = gradtx.restore_state(target, serialization.msgpack_restore(data))
    return copies


# In a new process the optimizer is built, initialised and compiled anew; these cases do all of
# that. The others reuse the compiled step (a new init still makes the restore target).
FRESH = {"adam_cosine", "reduce_on_plateau", "named_chain"}


@pytest.mark.parametrize("built", CASES, ids=[c.id for c in CASES])
def test_resumed_run_is_bitwise_the_uninterrupted_run(built, tmp_path):
    params0, noise = _params(), _noise()
    tx, step = _stepper(built, params0, noise)
    mid_params, mid_state = _run(step, params0, tx.init(params0), noise, 0, SAVE_AT)
    end_params, end_state = _run(step, mid_params, mid_state, noise, SAVE_AT, STEPS)

    if built.id in FRESH:
        tx, step = _stepper(built, params0, noise)
    target = {"params": params0, "opt_state": tx.init(params0)}
    checkpoint = {"params": mid_params, "opt_state": mid_state}
    for how, restored in _restored_copies(checkpoint, target, tmp_path).items():
        _assert_bitwise(restored, checkpoint, how)  # the manual flags and residuals too
        params, state = _run(step, restored["params"], restored["opt_state"], noise, SAVE_AT, STEPS)
        _assert_bitwise((params, state), (end_params, end_state), how)
    manual = [bool(h.manual) for h in _hyper_leaves(mid_state)]
    assert not manual or any(manual)  # the checkpoint carries a set_hyperparams flag


def _hyper_leaves(state):
    found = []

    def visit(node):
        if isinstance(node, gradtx.Hyperparam):
            found.append(node)
        return node

    jax.tree.map(visit, state, is_leaf=lambda x: isinstance(x, gradtx.Hyperparam))
    return found


# ---- restoring into an optimizer that differs -------------------------------------------------

_PARAMS_SHAPES = {"dense": {"w": (4, 3), "b": (3,)}, "scale": ()}


def _zeros(shapes):
    return jax.tree.map(
        lambda s: jnp.zeros(s, jnp.float32), shapes, is_leaf=lambda x: isinstance(x, tuple)
    )


# (saved optimizer, optimizer restored into, its params, what the error must name)
MISMATCHES = {
    "other_optimizer": (
        gradtx.adam(1e-3),
        gradtx.sgd(1e-3, momentum=0.9),
        _PARAMS_SHAPES,
        [
            "missing from the checkpoint: 'table/learning_rate,momentum', 'inner_state/0/trace'; ",
            "in the checkpoint but not in the optimizer's state: 'inner_state/0/count', "
            "'inner_state/0/mu', 'inner_state/0/nu', 'table/learning_rate,b1,b2,eps,eps_root'",
        ],
    ),
    "other_shapes": (
        gradtx.adam(1e-3),
        gradtx.adam(1e-3),
        {"dense": {"w": (4, 5), "b": (5,)}, "scale": ()},
        [
            "leaf shapes differ: 'inner_state/0/mu/dense/b' has shape (3,) in the checkpoint "
            "but (5,); 'inner_state/0/mu/dense/w' has shape (4, 3) in the checkpoint but (4, 5)",
            "'inner_state/0/nu/dense/w' has shape (4, 3) in the checkpoint but (4, 5)",
        ],
    ),
    "renamed_param": (
        gradtx.sgd(0.1, momentum=0.9),
        gradtx.sgd(0.1, momentum=0.9),
        {"dense": {"w": (4, 3), "bias": (3,)}, "scale": ()},
        [
            "missing from the checkpoint: 'inner_state/0/trace/dense/bias'; ",
            "not in the optimizer's state: 'inner_state/0/trace/dense/b'",
        ],
    ),
    "extra_link": (
        gradtx.chain(gradtx.adam(1e-3)),
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(1e-3)),
        _PARAMS_SHAPES,
        [
            "missing from the checkpoint: '0/table/max_norm', '1'; ",
            "not in the optimizer's state: '0/inner_state', "
            "'0/table/learning_rate,b1,b2,eps,eps_root'",
        ],
    ),
    "other_dtype": (
        gradtx.adam(1e-3),
        gradtx.adam(1e-3, mu_dtype=jnp.bfloat16),
        _PARAMS_SHAPES,
        [
            "leaf dtypes differ: 'inner_state/0/mu/dense/b' has dtype float32 in the "
            "checkpoint but bfloat16"
        ],
    ),
    "renamed_link": (
        gradtx.named_chain(("clip", gradtx.clip(1.0)), ("opt", gradtx.sgd(0.1))),
        gradtx.named_chain(("clipping", gradtx.clip(1.0)), ("opt", gradtx.sgd(0.1))),
        _PARAMS_SHAPES,
        [
            "check_state: the checkpoint does not fit the optimizer's state: missing from the "
            "checkpoint: 'clipping'; in the checkpoint but not in the optimizer's state: 'clip'",
        ],
    ),
    "other_mask": (
        gradtx.masked(gradtx.adam(1e-3), {"dense": True, "scale": False}),
        gradtx.masked(gradtx.adam(1e-3), {"dense": True, "scale": True}),
        _PARAMS_SHAPES,
        [
            "missing from the checkpoint: 'inner_state/inner_state/0/mu/scale', "
            "'inner_state/inner_state/0/nu/scale'"
        ],
    ),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_restoring_into_another_optimizer_says_what_differs(case, tmp_path):
    saved_tx, other_tx, shapes, expected = MISMATCHES[case]
    saved = saved_tx.init(_zeros(_PARAMS_SHAPES))
    target = other_tx.init(_zeros(shapes))

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", saved)
    checkpointer.wait_until_finished()
    on_disk = checkpointer.metadata(tmp_path / "ckpt").item_metadata
    with pytest.raises(ValueError) as from_metadata:
        gradtx.check_state(target, on_disk)
    with pytest.raises(ValueError) as from_orbax:
        gradtx.restore_state(target, checkpointer.restore(tmp_path / "ckpt"))
    checkpointer.close()
    with pytest.raises(ValueError) as from_msgpack:
        gradtx.restore_state(target, serialization.msgpack_restore(serialization.to_bytes(saved)))

    assert str(from_metadata.value).startswith(
        "check_state: the checkpoint does not fit the optimizer's state: "
    )
    for err in (from_orbax, from_msgpack):
        assert str(err.value) == "restore_state" + str(from_metadata.value)[len("check_state") :]
    for phrase in expected:
        assert phrase in str(from_metadata.value)


def test_a_fitting_checkpoint_is_restored_exactly_with_the_state_containers():
    tx = gradtx.chain(
        gradtx.clip_by_global_norm(1.0), gradtx.adam(gradtx.cosine_decay_schedule(0.1, 10))
    )
    params = _zeros(_PARAMS_SHAPES)
    state = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)[1]
    state = gradtx.set_hyperparams(state, max_norm=2.0)
    raw = serialization.msgpack_restore(serialization.to_bytes(state))
    assert isinstance(raw, dict)  # plain dicts: the NamedTuples and tuples are gone

    restored = gradtx.restore_state(tx.init(params), raw)

    assert jax.tree.structure(restored) == jax.tree.structure(state)
    _assert_bitwise(restored, state, "msgpack")
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(restored))
    assert gradtx.hyperparams(restored)["max_norm"] == 2.0
    assert bool(restored[0].hyperparams["max_norm"].manual)


def test_check_state_accepts_abstract_targets_and_lists_at_most_five_paths():
    params = {f"p{i}": jnp.zeros(2) for i in range(8)}
    saved = gradtx.sgd(0.1, momentum=0.9).init(params)
    gradtx.check_state(jax.eval_shape(gradtx.sgd(0.1, momentum=0.9).init, params), saved)
    with pytest.raises(ValueError, match=r"'inner_state/0/trace/p4' and 3 more"):
        gradtx.check_state(gradtx.sgd(0.1, momentum=0.9).init({"q": jnp.zeros(2)}), saved)


def test_orbax_itself_refuses_a_mismatched_target(tmp_path):
    """Without check_state, Orbax raises too (in its own words); nothing is restored silently."""
    params = _zeros(_PARAMS_SHAPES)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", gradtx.adam(1e-3).init(params))
    checkpointer.wait_until_finished()
    target = gradtx.sgd(1e-3, momentum=0.9).init(params)
    with pytest.raises(ValueError):
        checkpointer.restore(
            tmp_path / "ckpt", jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        )
    checkpointer.close()


def test_a_checkpoint_of_the_earlier_hyperparameter_layout_restores_and_resumes():
    """tests/fixtures/hyperstate_v1.msgpack was written by gradtx 8892839 (a count and three
    arrays per hyperparameter): the state of the optimizer below after four steps and a
    set_hyperparams, with the update it gave next. restore_state converts it to the table."""
    blob = serialization.msgpack_restore(
        (pathlib.Path(__file__).parent / "fixtures" / "hyperstate_v1.msgpack").read_bytes()
    )
    params = {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.array([0.1, -0.2])}
    grads = jax.tree.map(lambda p: 0.3 * p + 0.05, params)
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 20)
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(schedule, weight_decay=1e-2))

    with pytest.raises(ValueError, match="layout before gradtx kept them in one table"):
        gradtx.check_state(tx.init(params), blob["state"])
    state = gradtx.restore_state(tx.init(params), blob["state"])
    assert int(state[1].count) == 4 and bool(state[0].hyperparams["max_norm"].manual)
    update, state = tx.update(grads, state, params)
    jax.tree.map(np.testing.assert_array_equal, update, blob["next_update"])
    assert int(state[1].count) == int(blob["count_after"]) == 5
    after = gradtx.hyperparams(state)
    assert set(after) == set(blob["hyperparams_after"])
    for name, value in blob["hyperparams_after"].items():
        assert after[name] == value, name


def test_a_checkpoint_of_adams_two_count_layout_restores_and_resumes():
    """tests/fixtures/adam_two_counts_v2.msgpack was written by gradtx 9d5073f, whose Adam kept
    one EmaState (a count and an average) per moment: for clip + AdamW with a schedule, LAMB
    and Adam with bfloat16 moments, the params and state after four steps and the update and
    state of the fifth. restore_state converts each to ScaleByAdamState (one count, mu, nu), and
    the fifth step is the same, bit for bit."""
    blob = serialization.msgpack_restore(
        (pathlib.Path(__file__).parent / "fixtures" / "adam_two_counts_v2.msgpack").read_bytes()
    )
    params = {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.array([0.1, -0.2])}
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 20)
    optimizers = {
        "adamw": gradtx.chain(
            gradtx.clip_by_global_norm(1.0), gradtx.adamw(schedule, weight_decay=1e-2)
        ),
        "lamb": gradtx.lamb(1e-2),
        "adam_bf16": gradtx.adam(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16),
    }
    for name, tx in optimizers.items():
        saved = blob[name]
        with pytest.raises(ValueError, match="layout before gradtx kept one step count"):
            gradtx.check_state(tx.init(params), saved["state"])
        state = gradtx.restore_state(tx.init(params), saved["state"])
        grads = jax.tree.map(lambda p: 0.7 * p + 0.05, params)
        update, state = tx.update(grads, state, saved["params"])
        jax.tree.map(np.testing.assert_array_equal, update, saved["next_update"])
        adam = [x for x in jax.tree.leaves(state, is_leaf=_is_adam) if _is_adam(x)]
        assert len(adam) == 1 and int(adam[0].count) == 5, name
        after = gradtx.restore_state(tx.init(params), saved["next_state"])
        jax.tree.map(np.testing.assert_array_equal, state, after)


def _is_adam(x):
    return isinstance(x, gradtx.ScaleByAdamState)


def test_adam_refuses_a_state_of_another_layout_and_names_the_conversion():
    params = {"w": jnp.ones(2)}
    tx = gradtx.adam(1e-3)
    state = tx.init(params)
    old = state._replace(inner_state=(tuple(state.inner_state[0]), state.inner_state[1]))
    with pytest.raises(
        ValueError,
        match=r"^adam: the state must be the ScaleByAdamState .*"
        r"restore_state",
    ):
        tx.update(params, old, params)


# The optimizers whose states took optax's layouts after gradtx 849c3e7, as that commit and
# this one build them (tests/fixtures/optax_layouts_v3.msgpack was written from them by 849c3e7).
LAYOUT_CASES: dict[str, tuple[Callable[[], gradtx.GradientTransformation], bool]] = {
    "rmsprop": (lambda: gradtx.rmsprop(1e-2, momentum=0.5), False),
    "rmsprop_centered": (lambda: gradtx.rmsprop(1e-2, centered=True), False),
    "rmsprop_centered_debiased": (
        lambda: gradtx.rmsprop(1e-2, centered=True, bias_correction=True),
        False,
    ),
    "schedule_free_adamw": (lambda: gradtx.schedule_free_adamw(1e-2), False),
    "amsgrad": (lambda: gradtx.amsgrad(1e-2), False),
    "amsgrad_debias_after_max": (
        lambda: gradtx.chain(gradtx.scale_by_amsgrad(debias_after_max=True), gradtx.scale(-1e-2)),
        False,
    ),
    "adabelief": (lambda: gradtx.adabelief(1e-2), False),
    "adan": (lambda: gradtx.adan(1e-2), False),
    "rprop": (lambda: gradtx.rprop(1e-2), False),
    "schedule": (
        lambda: gradtx.chain(
            gradtx.scale_by_adam(),
            gradtx.scale_by_schedule(gradtx.linear_schedule(-1e-2, -1e-3, 10)),
        ),
        False,
    ),
    "ademamix": (lambda: gradtx.contrib.ademamix(1e-2), False),
    "simplified_ademamix": (lambda: gradtx.contrib.simplified_ademamix(1e-2), False),
    "lbfgs": (lambda: gradtx.lbfgs(), True),
    "backtracking": (
        lambda: gradtx.chain(
            gradtx.sgd(1.0),
            gradtx.scale_by_backtracking_linesearch(max_backtracking_steps=15, store_grad=True),
        ),
        True,
    ),
}


def layout_params():
    return {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.array([0.1, -0.2])}


def _layout_loss(params):
    weighted = [
        jnp.sum(jnp.arange(1, x.size + 1, dtype=x.dtype) * (x.ravel() - 0.3) ** 2)
        for x in jax.tree.leaves(params)
    ]
    return sum(weighted[1:], weighted[0])


def layout_step(tx, params, state, searches):
    """One step: ``(params after, update, state after)``."""
    if searches:
        value, grad = jax.value_and_grad(_layout_loss)(params)
        update, state = tx.update(
            grad, state, params, value=value, grad=grad, value_fn=_layout_loss
        )
    else:
        grads = jax.tree.map(lambda p: 0.7 * p + 0.05 + 0.1 * jnp.sin(3 * p), params)
        update, state = tx.update(grads, state, params)
    return gradtx.apply_updates(params, update), update, state


@pytest.mark.parametrize("name", sorted(LAYOUT_CASES))
def test_a_checkpoint_of_the_layouts_before_optax_s_restores_and_resumes(name):
    """tests/fixtures/optax_layouts_v3.msgpack was written by gradtx 849c3e7, before these
    states took optax's layouts (RMSProp's and centred RMSProp's moments as EmaStates in the
    pieces' tuples, AMSGrad's with a count per moment, AdaBelief's count inside ``mu``, Adan's
    and Simplified AdEMAMix's ``count``, AdEMAMix without ``count_m2``, Rprop's ``prev_signs``,
    ``scale_by_schedule`` without a count, the line searches' ``info.succeeded``): the params
    and state after four steps, and the update and state of the fifth. restore_state converts
    each, and the fifth step is the same, bit for bit."""
    blob = serialization.msgpack_restore(
        (pathlib.Path(__file__).parent / "fixtures" / "optax_layouts_v3.msgpack").read_bytes()
    )
    make, searches = LAYOUT_CASES[name]
    tx, saved = make(), blob[name]
    fresh = tx.init(layout_params())
    with pytest.raises(ValueError, match="in gradtx's layout before optax's"):
        gradtx.check_state(fresh, saved["state"])
    state = gradtx.restore_state(fresh, saved["state"])
    params = jax.tree.map(jnp.asarray, saved["params"])
    _, update, state = layout_step(tx, params, state, searches)
    jax.tree.map(np.testing.assert_array_equal, update, saved["next_update"])
    after = gradtx.restore_state(tx.init(layout_params()), saved["next_state"])
    jax.tree.map(np.testing.assert_array_equal, state, after)


# masked and freeze inside optimizers, as gradtx 964dd01 and this commit build them
# (tests/fixtures/masked_bare_v4.msgpack was written by 964dd01, which kept their inner state
# bare, with None in place of the leaves left out).
_BARE_MASK = {"w": True, "b": False, "c": True}
MASKED_CASES: dict[str, Callable[[], gradtx.GradientTransformation]] = {
    "masked_adam": lambda: gradtx.masked(
        gradtx.adam(1e-2), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
    ),
    "freeze_sgd": lambda: gradtx.freeze(
        {"w": False, "b": True, "c": False}, inner=gradtx.sgd(0.1, momentum=0.9)
    ),
    "nested": lambda: gradtx.masked(
        gradtx.chain(gradtx.masked(gradtx.trace(0.9), _BARE_MASK), gradtx.adam(1e-2)),
        {"w": True, "b": True, "c": False},
    ),
    "multi_transform": lambda: gradtx.multi_transform(
        {"a": gradtx.masked(gradtx.sgd(0.1, momentum=0.9), _BARE_MASK), "b": gradtx.adam(1e-2)},
        {"w": "a", "b": "a", "c": "b"},
    ),
    "partition_freeze": lambda: gradtx.partition(
        {
            "train": gradtx.freeze({"w": False, "b": True, "c": False}, inner=gradtx.adam(1e-2)),
            "other": gradtx.sgd(0.1),
        },
        {"w": "train", "b": "train", "c": "other"},
    ),
}


@pytest.mark.parametrize("name", sorted(MASKED_CASES))
def test_a_checkpoint_of_masked_and_freeze_before_masked_state_restores_and_resumes(name):
    """The params and state after four steps, and the update and state of the fifth, saved
    when masked's and freeze's state was the inner state alone: restore_state moves it under
    MaskedState's inner_state (the multi_transform's groups were optax's already), and the fifth
    step is the same, bit for bit."""
    saved = _fixture("masked_bare_v4.msgpack")[name]
    _restores_and_resumes(MASKED_CASES[name](), saved, "state of masked or freeze in gradtx's")


def _fixture(filename):
    return serialization.msgpack_restore(
        (pathlib.Path(__file__).parent / "fixtures" / filename).read_bytes()
    )


def _restores_and_resumes(tx, saved, refusal):
    """A checkpoint of an earlier layout (``saved``: params, state, and the fifth step's update
    and state) is refused by check_state with ``refusal``, restored by restore_state to ``tx``'s
    structure, and the next step is the saved one, bit for bit; a checkpoint of the new layout
    is restored as it is. Returns the fresh and the restored states."""
    params = jax.tree.map(jnp.asarray, saved["params"])
    fresh = tx.init(params)
    with pytest.raises(ValueError, match=refusal):
        gradtx.check_state(fresh, saved["state"])
    restored = gradtx.restore_state(fresh, saved["state"])
    assert jax.tree.structure(restored) == jax.tree.structure(fresh)
    grads = jax.tree.map(lambda p: 0.7 * p + 0.05 + 0.1 * jnp.sin(3 * p), params)
    update, state = tx.update(grads, restored, params)
    jax.tree.map(np.testing.assert_array_equal, update, saved["next_update"])
    after = gradtx.restore_state(tx.init(params), saved["next_state"])
    jax.tree.map(np.testing.assert_array_equal, state, after)
    again = gradtx.restore_state(tx.init(params), jax.tree.map(np.asarray, state))
    jax.tree.map(np.testing.assert_array_equal, again, state)
    return fresh, restored


# Muon as gradtx e38ebff and this commit build it (tests/fixtures/muon_two_fields_v5.msgpack was
# written by e38ebff, whose ScaleByMuonState(count, mu) fixed the Newton-Schulz coefficients
# when built; MuonState keeps them in ns_coeffs, as optax's does).
MUON_CASES: dict[str, Callable[[], gradtx.GradientTransformation]] = {
    "muon": lambda: gradtx.contrib.muon(1e-2),
    "muon_dion_aol": lambda: gradtx.muon(
        1e-2,
        ns_coeffs="dion",
        preconditioning="aol",
        adaptive=True,
        weight_decay=0.1,
        nesterov=False,
    ),
    "scale_by_muon_bf16": lambda: gradtx.chain(
        gradtx.scale_by_muon((3.0, -3.2, 1.2), ns_steps=3, mu_dtype=jnp.bfloat16),
        gradtx.scale(-1e-2),
    ),
}


def _muon_states(state):
    return [x for x in jax.tree.leaves(state, is_leaf=_is_muon) if _is_muon(x)]


def _is_muon(x):
    return isinstance(x, gradtx.contrib.MuonState)


@pytest.mark.parametrize("name", sorted(MUON_CASES))
def test_a_checkpoint_of_muon_before_its_ns_coeffs_restores_and_resumes(name):
    """The params and state after four steps, and the update and state of the fifth, saved
    when Muon's state had no ns_coeffs: restore_state fills them in from the target (the
    coefficients the optimizer was built with), and the fifth step is the same, bit for bit."""
    saved = _fixture("muon_two_fields_v5.msgpack")[name]
    refusal = "'MuonState' in gradtx's layout before optax's"
    fresh, restored = _restores_and_resumes(MUON_CASES[name](), saved, refusal)
    (muon,) = _muon_states(restored)
    np.testing.assert_array_equal(muon.ns_coeffs, _muon_states(fresh)[0].ns_coeffs)
    assert int(muon.count) == 4


def test_muon_s_earlier_layout_needs_a_target_with_its_coefficients():
    # an abstract target has no coefficients to fill in: the checkpoint does not fit, naming them
    saved = _fixture("muon_two_fields_v5.msgpack")["muon"]
    params = jax.tree.map(jnp.asarray, saved["params"])
    abstract = jax.eval_shape(MUON_CASES["muon"]().init, params)
    with pytest.raises(ValueError, match=r"missing from the checkpoint: .*muon/0/ns_coeffs"):
        gradtx.restore_state(abstract, saved["state"])
