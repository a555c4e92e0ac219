"""Prints each optimizer's max relative deviation from the NumPy reference and from optax.

Run from the repository root: ``python -m tests.reference.deviations``. The same 100 steps as
tests/test_reference.py, eager and jitted (the larger of the two is shown), float32 and float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tests import helpers


def _worst(case, dtype, against):
    params = helpers.sample_tree(np.random.default_rng(0), dtype)
    grads = helpers.gradient_sequence(params, 100, seed=1)
    worst = 0.0
    for jit in (False, True):
        got = helpers.run_gradtx(case.gradtx(), params, grads, jit=jit)
        if against == "numpy":
            want = helpers.run_reference(case.reference(), params, grads)
        else:
            with jax.numpy_dtype_promotion("standard"):
                tx = getattr(optax, case.name)(**case.optax)
                want = helpers.run_optax(tx, params, grads, jit=jit)
        worst = max(worst, helpers.deviation(got, want))
    return worst


def main():
    rows = []
    for x64 in (False, True):
        jax.config.update("jax_enable_x64", x64)
        dtype = jnp.float64 if x64 else jnp.float32
        for case in helpers.ALL_CASES:
            numpy_dev = _worst(case, dtype, "numpy")
            optax_dev = _worst(case, dtype, "optax") if case.optax is not None else None
            rows.append((case.id, jnp.dtype(dtype).name, numpy_dev, optax_dev))
    print("| case | dtype | vs NumPy float64 reference | vs optax |\n|---|---|---|---|")
    for name, dtype, numpy_dev, optax_dev in rows:
        optax_text = "—" if optax_dev is None else f"{optax_dev:.1e}"
        print(f"| {name} | {dtype} | {numpy_dev:.1e} | {optax_text} |")


if __name__ == "__main__":
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    main()
