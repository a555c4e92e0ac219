"""dtypes: params keep theirs, states keep theirs, so steps run inside lax.scan and lax.cond."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import helpers

# float32 and float64: tests/test_reference.py checks every case's first jitted step keeps the
# types of its params and state (the condition a scan puts on its carry). The two narrow dtypes
# share one tree (one program per case: compiling is most of this test's time), as a model
# mixing them does.
DTYPES = [jnp.bfloat16, jnp.float16]


def _signature(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@pytest.mark.parametrize("case", helpers.OPTIMIZERS, ids=lambda c: c.id)
def test_dtypes_are_kept_and_steps_scan(case):
    sample = helpers.sample_tree(np.random.default_rng(0), jnp.float32)
    params = {
        jnp.dtype(dtype).name: jax.tree.map(lambda x, d=dtype: x.astype(d), sample)
        for dtype in DTYPES
    }
    tx = case.gradtx()
    state = tx.init(params)

    def step(carry, grads):
        params, state = carry
        updates, state = tx.update(grads, state, params)
        return (gradtx.apply_updates(params, updates), state), None

    # lax.scan requires the carry's types (dtypes, shapes, weak types) to come out of a step as
    # they went in: the same condition lax.cond puts on a step and a skipped step (the identity),
    # as apply_if_finite and MultiSteps do; one scan checks both.
    grads = jax.tree.map(lambda p: jnp.stack([jnp.ones_like(p) * 0.1] * 5), params)
    (new_params, new_state), _ = jax.jit(lambda c, g: jax.lax.scan(step, c, g))(
        (params, state), grads
    )
    assert _signature(new_params) == _signature(params)
    assert _signature(new_state) == _signature(state)
    for leaf in jax.tree.leaves(new_params):
        assert bool(jnp.isfinite(leaf.astype(jnp.float32)).all())


def test_mu_dtype_keeps_the_first_moment_in_bfloat16():
    params = {"w": jnp.ones((4,), jnp.float32)}
    tx = gradtx.adam(1e-3, mu_dtype=jnp.bfloat16)
    state = tx.init(params)
    _, state = tx.update(params, state, params)
    dtypes = {jnp.result_type(x) for x in jax.tree.leaves(state)}
    assert jnp.dtype(jnp.bfloat16) in dtypes


def test_apply_updates_adds_in_the_wider_dtype():
    params = {"w": jnp.asarray([1.0], jnp.bfloat16)}
    updates = {"w": jnp.asarray([1e-3], jnp.float32)}
    out = gradtx.apply_updates(params, updates)
    assert out["w"].dtype == jnp.bfloat16
    assert float(out["w"][0]) == float(jnp.asarray(1.001, jnp.float32).astype(jnp.bfloat16))
