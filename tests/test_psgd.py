"""gradtx.kron against psgd-jax's ``psgd_jax.kron``, and what the shared tables cannot say.

The psgd-jax trajectories were recorded by tests/reference/psgd_kron.py into a JSON fixture
(float64 and float32, every matmul at "highest"); with psgd_jax importable, a row is also
recorded live and must equal the fixture. gradtx runs the same gradients with the same seed:
1e-9 relative in float64 (measured 9e-13); 1e-5 in float32 (measured 2e-7), where the two
programs round differently (the triangular solves, the order of the contractions).
"""

from __future__ import annotations

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import helpers
from tests.reference import psgd_kron as P

FIXTURE = json.loads(P.FIXTURE.read_text())
TOLERANCE = {"float64": 1e-9, "float32": 1e-5}
HAS_PSGD = importlib.util.find_spec("psgd_jax") is not None


def _gradtx_trajectory(name: str, dtype: str) -> list[list[np.ndarray]]:
    params, grads = P.problem(dtype)
    tx = gradtx.kron(
        **P.ROWS[name], precond_update_precision=P.PRECISION, precond_grads_precision=P.PRECISION
    )
    params = [jnp.asarray(p) for p in params]
    update = jax.jit(tx.update)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = update([jnp.asarray(x) for x in g], state, params)
        params = gradtx.apply_updates(params, updates)
        out.append([np.asarray(p, np.float64) for p in params])
    return out


# every row in float64; the float32 rounding once (the registry's rows check it too)
CASES = [(name, "float64") for name in sorted(P.ROWS)] + [("kron_defaults", "float32")]


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_matches_psgd_jax(name, dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    recorded = FIXTURE["rows"][name]
    assert recorded["kwargs"] == P.ROWS[name]
    want = [[np.asarray(p) for p in step] for step in recorded[dtype]]
    got = _gradtx_trajectory(name, dtype)
    assert helpers.max_relative_deviation(got, want) < TOLERANCE[dtype]


@pytest.mark.skipif(not HAS_PSGD, reason="psgd_jax is not installed")
def test_fixture_is_what_psgd_jax_gives_now(x64):
    name = "kron_defaults"
    live = P.psgd_trajectory(name, "float64")
    recorded = FIXTURE["rows"][name]["float64"]
    assert helpers.max_relative_deviation(live, [[np.asarray(p) for p in s] for s in recorded]) == 0
