"""Records ``psgd_jax.kron`` (Evan Walters' psgd-jax) trajectories into psgd_kron.json.

Run ``python -m tests.reference.psgd_kron`` in an environment with psgd-jax (it needs flax and
optax; recorded with psgd-jax 0.2.9 under jax 0.10.2 and optax 0.2.8, whose ``optax._src``
has no ``clipping`` module any more: psgd-jax imports it without using it, so the recorder
points that name at ``optax.transforms._clipping`` before the import). Each row is recorded
twice, each in its own process: float64 (``jax_enable_x64``, float64 params and factors) and
float32; both with every matmul at ``"highest"`` precision instead of psgd-jax's
``"tensorfloat32"`` default for the fit (on a CPU the two are the same). The tests read the
JSON (tests/test_psgd.py) and re-record a row live when psgd_jax is importable.

Both sides are deterministic given the step count: psgd-jax draws its probes from
``fold_in(PRNGKey(5318008), count)``, which is gradtx's default ``key`` and the same splits;
the rows refit on psgd-jax's counter (its only way), gradtx's ``deterministic_update=True``.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("psgd_kron.json")
SHAPES = ((4, 3), (5,), (), (2, 3, 2), (1, 4))
STEPS = 50
PRECISION = "highest"

# name -> the kwargs of psgd_jax.kron (gradtx.kron takes the same, plus precisions)
ROWS: dict[str, dict[str, Any]] = {
    "kron_defaults": {"learning_rate": 0.01},
    "kron_half_decay_one_diag": {
        "learning_rate": 0.02,
        "b1": 0.5,
        "weight_decay": 0.1,
        "preconditioner_update_probability": 0.5,
        "memory_save_mode": "one_diag",
        "preconditioner_lr": 0.3,
        "preconditioner_init_scale": 2.0,
    },
    "kron_gradient_fit_small_triangular": {
        "learning_rate": 0.01,
        "momentum_into_precond_update": False,
        "max_size_triangular": 3,
        "min_ndim_triangular": 3,
    },
}


def problem(dtype) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(7)
    params = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    grads = [[rng.normal(size=s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def psgd_trajectory(name: str, dtype: str) -> list[list[np.ndarray]]:
    """psgd_jax.kron's params after each step; call in a process whose x64 flag fits dtype."""
    import jax
    import optax
    import optax.transforms._clipping

    sys.modules.setdefault("optax._src.clipping", optax.transforms._clipping)
    from psgd_jax.kron import kron

    params, grads = problem(dtype)
    tx = kron(
        **ROWS[name],
        precond_update_precision=PRECISION,
        precond_grads_precision=PRECISION,
    )
    params = [jax.numpy.asarray(p) for p in params]
    state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for g in grads:
        updates, state = update([jax.numpy.asarray(x) for x in g], state, params)
        params = optax.apply_updates(params, updates)
        out.append([np.asarray(p, np.float64) for p in params])
    return out


def _record_one(dtype: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    rows = {
        name: [[p.tolist() for p in step] for step in psgd_trajectory(name, dtype)] for name in ROWS
    }
    print(json.dumps(rows))


def record() -> dict[str, Any]:
    import importlib.metadata

    out: dict[str, Any] = {"psgd_jax": importlib.metadata.version("psgd-jax"), "rows": {}}
    for dtype in ("float64", "float32"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.reference.psgd_kron", "--one", dtype],
            check=True,
            capture_output=True,
            text=True,
        )
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        for name, trajectory in rows.items():
            out["rows"].setdefault(name, {"kwargs": ROWS[name]})[dtype] = trajectory
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _record_one(sys.argv[2])
    else:
        FIXTURE.write_text(json.dumps(record()) + "\n")
