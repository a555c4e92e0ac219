"""Every optimizer and elementary pair against the float64 NumPy reference and optax.

100 steps side by side on a tree with nested dicts, lists, tuples, a scalar, empty subtrees, a
None and a zero-size leaf (against NumPy under jit, and in float32 for the first 20 steps
eagerly; against optax under jit): 1e-10 relative in float64, 1e-5 in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import helpers, registry

STEPS = 100
TOLERANCE = {jnp.float32: 1e-5, jnp.float64: 1e-10}


def _params(dtype, seed=0):
    return helpers.sample_tree(np.random.default_rng(seed), dtype)


# optax forms bias corrections 1 - b**t from a float32 b (0.999 becomes 0.99900001), which
# cancels: for b2 = 0.999 at t = 1 it is 1.3e-5 off, and optax's float32 Adam trajectory is 1e-5
# off the exact formula where gradtx's is 5e-7 (test_adam_bias_correction_more_exact_than_optax);
# debiased centred RMSProp subtracts two such estimates (optax 1.6e-5 off, gradtx 4e-6). Against
# optax these cases get optax's own error as tolerance; everything else must agree to 1e-5.
ADAM_BIAS_CORRECTION = {"adam", "adamw", "adamw_decay", "scale_by_adam", "adam_nesterov_eps_root"}
OPTAX_OWN_F32_ERROR = (
    ADAM_BIAS_CORRECTION | {"scale_by_stddev_debiased"} | set(registry.rows("OPTAX_OWN_F32_ERROR"))
)


# Iterative matrix functions (Newton-Schulz's five matrix polynomials, inverse roots) amplify
# float32 roundings in the small singular values: their rows meet 1e-4 in float32 (the issue's
# bound for them), their float64 rows the same 1e-10 as every other.
ITERATIVE = set(registry.rows("ITERATIVE"))


# The matrix and curvature optimizers' rows (issue 14, which asks for 50-100 steps against the
# reference): 50 steps. Their eager steps run hundreds of ops each (0.2 s a step for Sophia's
# Hessian estimate).
HEAVY = set(registry.rows("HEAVY"))

# The eager run follows the jitted one's first steps only: it checks that the same code runs op
# by op (a difference between the two paths shows from the first step on), not 100 more steps of
# the same arithmetic, and op-by-op steps are what made this module the suite's slowest (an eager
# LAMB step dispatches ~100 ops). It runs in float32: what it checks is the code path, which
# does not depend on the dtype, while its cost is compiling each op for its shapes and dtype
# (eager runs in both dtypes were a third of this module's time). The float64 run's exactness
# is the jitted one's; tests/test_properties.py compares eager and jitted runs in four more
# dtypes.
EAGER_STEPS = 20


def tolerance(case, dtype) -> float:
    return 1e-4 if dtype == jnp.float32 and case.id in ITERATIVE else TOLERANCE[dtype]


@pytest.fixture(params=[jnp.float32, jnp.float64], ids=["f32", "f64"])
def dtype(request):
    if request.param == jnp.float64:
        request.getfixturevalue("x64")
    return request.param


# One test per case and dtype: the same gradients through gradtx eagerly and under jit (whose
# first step must keep the types of its params and state, as lax.scan and lax.cond require: the
# float32 and float64 half of tests/test_dtypes.py, for every case), the NumPy reference and
# (where the row names its arguments) optax under jit, so that each program is compiled and
# each reference run once. optax runs under jit only: its eager runs check nothing of gradtx's.
@pytest.mark.parametrize("case", helpers.ALL_CASES, ids=lambda c: c.id)
def test_matches_numpy_reference_and_optax(case, dtype):
    params = _params(dtype)
    heavy = case.id in HEAVY
    grads = helpers.gradient_sequence(params, STEPS // 2 if heavy else STEPS, seed=1)
    want = helpers.run_reference(case.reference(), params, grads)
    jitted = helpers.run_gradtx(case.gradtx(), params, grads, jit=True)
    assert helpers.deviation(jitted, want) < tolerance(case, dtype), "jit"
    if dtype == jnp.float32:
        eager = helpers.run_gradtx(case.gradtx(), params, grads[:EAGER_STEPS], jit=False)
        first = tuple(steps[:EAGER_STEPS] for steps in want)
        assert helpers.deviation(eager, first) < tolerance(case, dtype), "eager"
    if case.optax is None:
        return
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        theirs = helpers.run_optax(case.optax_transformation(), params, grads, jit=True)
    own_error = dtype == jnp.float32 and case.id in OPTAX_OWN_F32_ERROR
    bound = 2e-5 if own_error else tolerance(case, dtype)
    assert helpers.deviation(jitted, theirs) < bound, "optax"


@pytest.mark.parametrize("name", sorted(ADAM_BIAS_CORRECTION))
def test_adam_bias_correction_more_exact_than_optax(name):
    """In float32 gradtx's Adam is >10x closer to the exact (float64) formula than optax's."""
    case = next(c for c in helpers.ALL_CASES if c.id == name)
    params = _params(jnp.float32)
    grads = helpers.gradient_sequence(params, STEPS, seed=2)
    ours = helpers.run_gradtx(case.gradtx(), params, grads, jit=True)
    with jax.numpy_dtype_promotion("standard"):
        theirs = helpers.run_optax(case.optax_transformation(), params, grads, jit=True)
    exact = helpers.run_reference(case.reference(), params, grads)
    assert helpers.deviation(ours, exact) < 1e-6
    assert helpers.deviation(theirs, exact) > 10 * helpers.deviation(ours, exact)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", ["adam", "sgd_nesterov", "lamb", "rmsprop_centered_momentum"])
def test_random_trees_match_reference(name, seed):
    case = next(c for c in helpers.OPTIMIZERS if c.id == name)
    params = helpers.random_tree(seed, jnp.float32)
    grads = helpers.gradient_sequence(params, 30, seed=seed)
    got = helpers.run_gradtx(case.gradtx(), params, grads, jit=True)
    want = helpers.run_reference(case.reference(), params, grads)
    assert helpers.deviation(got, want) < TOLERANCE[jnp.float32]


def test_a_step_that_changes_its_state_types_is_caught():
    """The check test_matches_numpy_reference_and_optax makes of every case's first jitted step:
    a state that comes back weakly typed (as a Python-float constant would make it) fails."""
    import gradtx

    def update(updates, state, params=None):
        return updates, jnp.asarray(1.0)  # float32 in, a weakly typed float32 out

    tx = gradtx.GradientTransformation(lambda params: jnp.zeros((), jnp.float32), update)
    params = _params(jnp.float32)
    with pytest.raises(AssertionError, match="changed the types of its carry"):
        helpers.run_gradtx(tx, params, helpers.gradient_sequence(params, 2, seed=0), jit=True)
