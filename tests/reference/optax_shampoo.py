"""Records distributed_shampoo's trajectories on fixed gradients (the references of test_shampoo).

``distributed_shampoo`` is the authors' optax implementation of scalable Shampoo (Anil et al.,
2020), packaged on PyPI as ``optax-shampoo`` (0.0.6, module ``optax_shampoo.
distributed_shampoo``). The family module ``tests/registry/shampoo.py`` defines
``OPTAX_SHAMPOO``: id -> :class:`ShampooRow`, its arguments and the gradtx call that must
reproduce it. Run with optax-shampoo installed: ``python -m tests.reference.optax_shampoo``; it
rewrites optax_shampoo.json beside this file. The tests read the JSON, so they need no
optax-shampoo, and record each row again live where it is importable.

Each row runs ``steps`` updates in float64 (``jax_enable_x64``) from fixed params, feeding a
fixed gradient sequence; both come from ``np.random.default_rng(seed)``.

optax-shampoo was written for JAX 0.3. On the JAX of today it runs with three shims, given to
its module alone (nothing of JAX is changed for anyone else), which change no number:

* ``jax.tree_map``, ``jax.tree_flatten`` and ``jax.tree_unflatten``, since removed from JAX:
  the module sees a copy of the ``jax`` namespace that has them (``jax.tree_util``'s);
* ``lax.while_loop``: its inverse-root iteration starts the carry's error ratio as ``True``
  where the body returns a float, which JAX now refuses; the module's ``while_loop`` casts the
  initial carry to the types the body returns (``True`` -> 1.0, below the loop's 1.2 bound,
  what the code means: keep iterating);
* its state keeps the statistics and preconditioners in float32 (hard-coded ``jnp.float32``,
  whatever the params): they are cast to float64 after ``init``, so that the whole run is in
  float64 (its inverse roots already are: ``_MAT_INV_PTH_ROOT_DTYPE`` is float64 under x64).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("optax_shampoo.json")


@dataclasses.dataclass(frozen=True)
class ShampooRow:
    """A ``distributed_shampoo`` call and the gradtx transformation that must match it.

    Attributes:
      kwargs: ``distributed_shampoo``'s arguments (``graft_type`` as its ``GraftingType``
        value, an int), ``learning_rate`` and ``block_size`` included.
      gradtx: builds the gradtx transformation.
      shapes: the params' shapes (one leaf per shape, in a list).
      steps: the number of updates.
      seed: seeds the params and the gradients.
      tolerance: the largest relative deviation of the params allowed (relative to each
        leaf's largest magnitude over the run).
    """

    kwargs: dict[str, Any]
    gradtx: Callable[[], Any]
    shapes: tuple[tuple[int, ...], ...] = ((3,), (4, 5), (6, 3), ())
    steps: int = 30
    seed: int = 0
    tolerance: float = 1e-6


def problem(row: ShampooRow) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The initial params and the gradient of every step, float64."""
    rng = np.random.default_rng(row.seed)
    params = [rng.normal(size=shape) for shape in row.shapes]
    grads = [[rng.normal(size=shape) for shape in row.shapes] for _ in range(row.steps)]
    return params, grads


def _shimmed_module():
    """``optax_shampoo.distributed_shampoo`` with the shims above, as a fresh module object."""
    import importlib.util

    import jax
    from jax import lax

    spec = importlib.util.find_spec("optax_shampoo.distributed_shampoo")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    jax_ns = types.SimpleNamespace(**{k: getattr(jax, k) for k in dir(jax) if not k[:2] == "__"})
    jax_ns.tree_map = jax.tree_util.tree_map
    jax_ns.tree_flatten = jax.tree_util.tree_flatten
    jax_ns.tree_unflatten = jax.tree_util.tree_unflatten

    def while_loop(cond_fun, body_fun, init_val):
        out = jax.eval_shape(body_fun, init_val)
        init_val = jax.tree.map(lambda x, o: jax.numpy.asarray(x, o.dtype), init_val, out)
        return lax.while_loop(cond_fun, body_fun, init_val)

    lax_ns = types.SimpleNamespace(**{k: getattr(lax, k) for k in dir(lax) if not k[:2] == "__"})
    lax_ns.while_loop = while_loop
    module.jax = jax_ns
    module.lax = lax_ns
    return module


def _float64_state(module, state):
    """The state with its float32 statistics and preconditioners in float64."""
    import jax.numpy as jnp

    def stats(s):
        return s._replace(
            statistics=[jnp.asarray(x, jnp.float64) for x in s.statistics],
            preconditioners=[jnp.asarray(x, jnp.float64) for x in s.preconditioners],
        )

    return state._replace(stats=[stats(s) for s in state.stats])


def shampoo_trajectory(row: ShampooRow) -> list[list[np.ndarray]]:
    """The params after every step of ``distributed_shampoo(**row.kwargs)``, in float64."""
    import jax
    import jax.numpy as jnp

    # it relies on implicit promotion (the tests run with strict promotion)
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        module = _shimmed_module()
        tx = module.distributed_shampoo(**row.kwargs)
        params, grads = problem(row)
        params = [jnp.asarray(p) for p in params]
        state = _float64_state(module, tx.init(params))
        update = jax.jit(tx.update)
        trajectory = []
        for step_grads in grads:
            updates, state = update([jnp.asarray(g) for g in step_grads], state, params)
            params = [p + u for p, u in zip(params, updates)]
            trajectory.append([np.asarray(p, np.float64) for p in params])
    return trajectory


def rows() -> dict[str, ShampooRow]:
    from tests import registry

    return registry.entries("OPTAX_SHAMPOO")


def version() -> str:
    from importlib.metadata import version

    return version("optax-shampoo")


def record(names: list[str] | None = None) -> dict[str, Any]:
    """Every row's trajectory; with ``names``, those rows' only, the others kept as recorded."""
    out = {"optax_shampoo": version(), "rows": {}}
    if names:
        out = {**json.loads(FIXTURE.read_text()), "optax_shampoo": version()}
    for name, row in rows().items():
        if names and name not in names:
            continue
        out["rows"][name] = {
            "kwargs": row.kwargs,
            "shapes": [list(s) for s in row.shapes],
            "trajectory": [[p.tolist() for p in step] for step in shampoo_trajectory(row)],
        }
    return out


if __name__ == "__main__":
    # python -m tests.reference.optax_shampoo [row ...]: all rows, or the named ones
    FIXTURE.write_text(json.dumps(record(sys.argv[1:])) + "\n")
    print(f"wrote {FIXTURE}")
