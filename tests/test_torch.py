"""gradtx against PyTorch's optimizers: each variant that torch.optim has, from the registry.

The trajectories were recorded by tests/reference/torch_optimizers.py into a JSON fixture;
with PyTorch installed, each row is also recorded live and must equal the fixture (so the
fixture cannot go stale). gradtx runs the same gradients in float64 and must stay within the
row's tolerance (1e-6 relative to each leaf's largest magnitude, as the issue asks).
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
from tests.reference import torch_optimizers as T

ROWS = T.rows()
FIXTURE = json.loads(T.FIXTURE.read_text()) if T.FIXTURE.exists() else {"rows": {}}
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _gradtx_trajectory(row: T.TorchRow) -> list[list[np.ndarray]]:
    params, grads = T.problem(row)
    tx = row.gradtx()
    params = [jnp.asarray(p) for p in params]
    update = jax.jit(tx.update)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = update([jnp.asarray(x) for x in g], state, params)
        params = gradtx.apply_updates(params, updates)
        out.append([np.asarray(p) for p in params])
    return out


def test_every_row_is_in_the_fixture():
    assert set(ROWS) <= set(FIXTURE["rows"]), "run python -m tests.reference.torch_optimizers"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_matches_torch(name, x64):
    row = ROWS[name]
    recorded = FIXTURE["rows"][name]
    assert (recorded["optimizer"], recorded["kwargs"]) == (row.optimizer, row.kwargs)
    want = [[np.asarray(p) for p in step] for step in recorded["trajectory"]]
    got = _gradtx_trajectory(row)
    assert helpers.max_relative_deviation(got, want) < row.tolerance


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", sorted(ROWS))
def test_fixture_is_what_torch_gives_now(name):
    package = ROWS[name].module.split(".")[0]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    live = T.torch_trajectory(ROWS[name])
    recorded = FIXTURE["rows"][name]["trajectory"]
    want = [[np.asarray(p) for p in step] for step in recorded]
    assert helpers.max_relative_deviation(live, want) < 1e-12
