"""matrix_inverse_pth_root and power_iteration against NumPy's float64 eigendecomposition, and
against optax's functions of the same names (same arguments, same numbers).

Compilation dominates the time here, so each test builds one jitted program that computes all
its cases.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optax._src import linear_algebra as optax_linalg

import gradtx

METHODS = ("eigh", "newton")
SIZES = (1, 2, 7, 32)
POWERS = (2, 4, 8)


def spd(n: int, seed: int, low: float = 1.0, high: float = 10.0, top: float | None = None):
    """A random symmetric matrix with eigenvalues uniform in [low, high] (the largest set to
    ``top`` when given: a gap for power iteration), in float64."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = rng.uniform(low, high, n)
    if top is not None:
        eigenvalues[0] = top
    return (q * eigenvalues) @ q.T


def reference_root(a: np.ndarray, p: int, ridge_epsilon: float = 1e-6) -> np.ndarray:
    """(A + eps max(lambda_max, 1e-16) I)^(-1/p) in float64, eigenvalues clipped at 0."""
    eigenvalues, vectors = np.linalg.eigh(np.asarray(a))
    eigenvalues = np.maximum(eigenvalues, 0)
    ridge = ridge_epsilon * max(eigenvalues[-1], 1e-16)
    return (vectors * (eigenvalues + ridge) ** (-1 / p)) @ vectors.conj().T


def relative_error(x, reference) -> float:
    x = np.asarray(np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64))
    return float(np.linalg.norm(x - reference) / np.linalg.norm(reference))


def roots(cases, dtype, methods=METHODS):
    """One jitted program: for each method, the root of each (matrix, p) case; ``dtype`` one
    for all cases or one per case."""
    dtypes = dtype if isinstance(dtype, list) else [dtype] * len(cases)
    matrices = [jnp.asarray(a, d) for (a, _), d in zip(cases, dtypes)]
    powers = [p for _, p in cases]

    @jax.jit
    def run(matrices):
        return {
            method: [
                gradtx.matrix_inverse_pth_root(a, p, method=method)
                for a, p in zip(matrices, powers)
            ]
            for method in methods
        }

    return run(matrices)


def optax_roots(cases, dtype):
    matrices = [jnp.asarray(a, dtype) for a, _ in cases]
    powers = [p for _, p in cases]

    @jax.jit
    def run(matrices):
        return [optax_linalg.matrix_inverse_pth_root(a, p) for a, p in zip(matrices, powers)]

    with jax.numpy_dtype_promotion("standard"):  # optax mixes float32 constants into float64
        return run(matrices)


# ---- accuracy --------------------------------------------------------------------------------

GRID = [(spd(n, seed=10 * n + p), p) for n in SIZES for p in POWERS]
GRID += [(spd(7, seed=3), 3)]  # an odd root (optax's computes P^4 for p = 3)


def test_float64_equals_numpy(x64):
    for method, out in roots(GRID, jnp.float64).items():
        for (a, p), (root, error) in zip(GRID, out):
            assert root.dtype == jnp.float64
            assert relative_error(root, reference_root(a, p)) <= 1e-6, (method, a.shape, p)
            assert error <= 1e-6, (method, a.shape, p)  # Newton's |M - I|, or eigh's residual


# float32: rounding (2^-24 = 6e-8) accumulates over n-term sums and the root's conditioning
# (eigenvalues in [1, 10]); measured at most 7e-7 (eigh) and 5e-7 (newton) for n <= 32.
FLOAT32_TOLERANCE = 2e-6
FLOAT32_CASES = [(spd(32, seed=322), 2), (spd(7, seed=78), 8)]


def test_float32_and_bfloat16_equal_numpy():
    # bfloat16 is computed in float32 and rounded once: the error is bfloat16's (2^-8)
    a, p = FLOAT32_CASES[1]
    cases = FLOAT32_CASES + [(np.asarray(jnp.asarray(a, jnp.bfloat16), np.float64), p)]
    dtypes = [jnp.float32, jnp.float32, jnp.bfloat16]
    for method, out in roots(cases, dtypes).items():
        for (a, p), dtype, (root, error) in zip(cases, dtypes, out):
            assert root.dtype == dtype and error.dtype == jnp.float32
            tolerance = FLOAT32_TOLERANCE if dtype == jnp.float32 else 1e-2
            assert relative_error(root, reference_root(a, p)) <= tolerance, (method, a.shape, p)


def test_complex_hermitian_equals_numpy(x64):
    rng = np.random.default_rng(5)
    g = rng.standard_normal((5, 8)) + 1j * rng.standard_normal((5, 8))
    a = g @ g.conj().T + np.eye(5)
    for method, ((root, error),) in roots([(a, 2)], jnp.complex128).items():
        assert root.dtype == jnp.complex128 and error.dtype == jnp.float64
        assert relative_error(root, reference_root(a, 2)) <= 1e-6, method


def test_singular_and_zero_matrices_give_finite_roots(x64):
    g = np.random.default_rng(2).standard_normal((7, 3))
    singular = g @ g.T  # rank 3
    cases = [(singular, 4), (np.zeros((3, 3)), 1), (singular, 4), (np.zeros((3, 3)), 8)]
    dtypes = [jnp.float32, jnp.float32, jnp.float64, jnp.float64]
    for method, out in roots(cases, dtypes).items():
        for (a, p), dtype, (root, error) in zip(cases, dtypes, out):
            finite = bool(jnp.isfinite(root).all() & jnp.isfinite(error))
            assert finite, (method, dtype, a.shape, p)
            if dtype == jnp.float64:
                assert relative_error(root, reference_root(a, p)) <= 1e-6, (method, p)
        # the zero matrix's ridge is 1e-6 * 1e-16, as optax's: its root is 1e22 I for p = 1
        np.testing.assert_allclose(out[1][0], 1e22 * np.eye(3), rtol=2e-6)


# ---- optax -----------------------------------------------------------------------------------

OPTAX_CASES = [(spd(1, seed=12), 2)] + [(spd(7, seed=70 + p), p) for p in POWERS]


def test_newton_has_optax_numbers(x64):
    ours = roots(OPTAX_CASES, jnp.float64, ["newton"])["newton"]
    theirs = optax_roots(OPTAX_CASES, jnp.float64)
    for (a, p), (root, error), (root_o, error_o) in zip(OPTAX_CASES, ours, theirs):
        assert relative_error(root, np.asarray(root_o)) <= 1e-13, (a.shape, p)
        if a.shape[0] > 1:  # optax reports 0 for a 1x1 matrix
            assert abs(float(error) - float(error_o)) <= 1e-13, (a.shape, p)
    # float32: the same iteration; the scaling by 2^-e and back differs by rounding
    case = [(spd(32, seed=324), 4)]
    ((root, _),) = roots(case, jnp.float32, ["newton"])["newton"]
    ((root_o, _),) = optax_roots(case, jnp.float32)
    assert relative_error(root, np.asarray(root_o, np.float64)) <= FLOAT32_TOLERANCE


def test_power_iteration_has_optax_and_numpy_numbers(x64):
    matrices = [spd(n, seed=n, top=20.0) for n in (2, 7, 32)]

    @jax.jit
    def run(matrices):
        with jax.numpy_dtype_promotion("standard"):
            theirs = [optax_linalg.power_iteration(a) for a in matrices]
        return [gradtx.power_iteration(a) for a in matrices], theirs

    ours, theirs = run([jnp.asarray(a) for a in matrices])
    for a, (eigenvalue, vector), (eigenvalue_o, vector_o) in zip(matrices, ours, theirs):
        eigenvalues, vectors = np.linalg.eigh(a)
        assert abs(float(eigenvalue) / eigenvalues[-1] - 1) <= 1e-6
        assert abs(float(eigenvalue) / float(eigenvalue_o) - 1) <= 1e-13
        assert 1 - abs(np.dot(vector, vectors[:, -1])) <= 1e-6
        # optax returns one more power step of the same vector
        assert 1 - abs(np.dot(vector, vector_o)) <= 1e-6
        residual = np.linalg.norm(a @ vector - float(eigenvalue) * np.asarray(vector))
        assert residual <= 1e-6 * float(eigenvalue)


def test_power_iteration_of_a_function_and_of_a_zero_matrix(x64):
    a = jnp.asarray(spd(4, seed=4, top=20.0))
    v0 = {"x": jnp.ones(2), "y": jnp.asarray([1.0, -1.0])}

    def product(v):
        w = a @ jnp.concatenate([v["x"], v["y"]])
        return {"x": w[:2], "y": w[2:]}

    @jax.jit
    def run(a):
        return (
            gradtx.power_iteration(product, v0=v0),
            gradtx.power_iteration(a, v0=jnp.asarray([1, 1, 1, -1.0])),
            gradtx.power_iteration(jnp.zeros((3, 3))),
        )

    (eigenvalue, vector), (expected, expected_vector), (zero, zero_vector) = run(a)
    assert abs(float(eigenvalue) / float(expected) - 1) <= 1e-12
    assert np.allclose(np.concatenate([vector["x"], vector["y"]]), expected_vector, atol=1e-12)
    assert float(zero) == 0 and bool(jnp.isfinite(zero_vector).all())


# ---- batches and jit -------------------------------------------------------------------------


def test_a_batch_equals_the_loop(x64):
    matrices = np.stack([spd(5, seed=s, top=20.0) for s in range(4)]).reshape(2, 2, 5, 5)

    @jax.jit
    def run(a):
        roots = {m: gradtx.matrix_inverse_pth_root(a, 4, method=m) for m in METHODS}
        return roots, gradtx.power_iteration(a)

    batched, (eigenvalues, vectors) = run(matrices)  # vmap inside, each matrix on its own
    assert eigenvalues.shape == (2, 2) and vectors.shape == (2, 2, 5)
    for i in range(2):
        for j in range(2):
            one, (eigenvalue, vector) = run(matrices[i, j])
            for method in METHODS:
                root, error = batched[method]
                assert root.shape == matrices.shape and error.shape == (2, 2)
                np.testing.assert_allclose(root[i, j], one[method][0], rtol=1e-13, atol=0)
                assert abs(float(error[i, j]) - float(one[method][1])) <= 1e-15
            assert abs(float(eigenvalues[i, j]) / float(eigenvalue) - 1) <= 1e-14
            np.testing.assert_allclose(vectors[i, j], vector, rtol=0, atol=1e-13)


def test_jit_compiles_once_with_live_ridge_and_tolerance():
    traces = []

    @jax.jit
    def run(a, ridge_epsilon, error_tolerance):
        traces.append(None)
        return {
            method: gradtx.matrix_inverse_pth_root(
                a, 4, ridge_epsilon=ridge_epsilon, error_tolerance=error_tolerance, method=method
            )[0]
            for method in METHODS
        }

    a = spd(6, seed=6)
    first = run(jnp.asarray(a, jnp.float32), jnp.float32(1e-6), jnp.float32(1e-6))
    second = run(jnp.asarray(2 * a, jnp.float32), jnp.float32(1e-1), jnp.float32(1e-5))
    assert len(traces) == 1
    for method in METHODS:
        assert relative_error(first[method], reference_root(a, 4)) <= 2e-6
        assert relative_error(second[method], reference_root(2 * a, 4, 1e-1)) <= 2e-5


def test_eigh_roots_are_differentiable_under_vmap(x64):
    """The derivative of X = f(A) = A^(-1/p) at a diagonal A (Daleckii and Krein, 1965): for
    sum(X), the gradient is the Loewner matrix, (f(a_i) - f(a_j)) / (a_i - a_j) off the diagonal
    and f'(a_i) on it; the batch (vmap) is one LAPACK call per matrix on CPU."""
    p, diagonals = 4, np.array([[1.0, 2.0, 5.0], [0.5, 3.0, 4.0]])

    def total(a):
        return gradtx.matrix_inverse_pth_root(a, p, ridge_epsilon=0.0)[0].sum()

    grads = jax.jit(jax.vmap(jax.grad(total)))(jnp.asarray([np.diag(d) for d in diagonals]))
    for d, g in zip(diagonals, grads):
        f = d ** (-1 / p)
        gap = d[:, None] - d[None, :]
        loewner = np.where(gap == 0, -f / (p * d), (f[:, None] - f[None, :]) / (gap + np.eye(3)))
        np.testing.assert_allclose(g, loewner, rtol=1e-10)


# ---- many batched factorizations in one program on CPU ---------------------------------------

# jaxlib 0.10's CPU LAPACK kernels cut a batch into pieces for XLA's intra-op thread pool and
# block their pool thread until the pieces are done: with as many batched calls running side by
# side as the pool has threads, the program waited forever (the eigh roots of a Shampoo step on
# a model of 40 leaves; with jaxlib 0.10.2 the eigh, QR and triangular-solve programs here hung
# at their first call). The optimizers now call LAPACK on one matrix at a time on CPU
# (gradtx._linalg.lapack). Run in a fresh process held to 2 cores (XLA sizes its pool from the
# affinity, so the check does not depend on the machine), which stops itself when it waits
# without computing.
MANY_CALLS = 12


def run_many_batched_factorizations(calls: int = 3) -> None:
    """The child: for each factorization the optimizers make, one jitted program of
    ``MANY_CALLS`` independent batched calls (4 matrices each, 40x40 and up) called ``calls``
    times; exits with status 3 when 10 s pass without CPU time (every thread waiting)."""
    from gradtx._transforms.eigenbasis import power_step
    from gradtx._transforms.psgd import _solve_transposed

    running = ["compiling"]

    def watchdog():
        cpu = time.process_time()
        while True:
            time.sleep(10)
            if time.process_time() - cpu < 0.02:
                print(f"hang: 10 s without CPU time in {running[0]}", flush=True)
                os._exit(3)
            cpu = time.process_time()

    def kron_solve(m):  # Kron's Q^{-T} v on a triangular and a diagonal factor
        return _solve_transposed([jnp.triu(m), jnp.ones(m.shape[1], m.dtype)], [True, False], m)

    programs = {
        "eigh (Shampoo's roots, SOAP's eigenbasis)": lambda m: gradtx.matrix_inverse_pth_root(m, 4)[
            0
        ],
        "QR (SOAP's power step)": lambda m: power_step(m, jnp.swapaxes(m, -1, -2))[0],
        "triangular solve (Kron under vmap, as in a sweep)": jax.vmap(kron_solve),
    }
    matrices = [
        jnp.asarray(np.stack([spd(40 + i, seed=4 * i + j) for j in range(4)]), jnp.float32)
        for i in range(MANY_CALLS)
    ]
    threading.Thread(target=watchdog, daemon=True).start()
    for name, fn in programs.items():
        running[0] = f"compiling {name}"
        run = jax.jit(lambda ms, fn=fn: [fn(m) for m in ms])
        run.lower(matrices).compile()
        running[0] = name
        for _ in range(calls):
            jax.block_until_ready(run(matrices))
    print("done", flush=True)


def test_many_batched_factorizations_in_one_program_do_not_hang_on_cpu():
    code = (
        "import os\n"
        "if hasattr(os, 'sched_setaffinity'):\n"
        "    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])\n"
        "from tests.test_linalg_roots import run_many_batched_factorizations\n"
        "run_many_batched_factorizations()\n"
    )
    root = pathlib.Path(__file__).parent.parent
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and result.stdout.split()[-1:] == ["done"], (
        result.stdout + result.stderr
    )


# ---- validation -------------------------------------------------------------------------------

R = gradtx.matrix_inverse_pth_root
P = gradtx.power_iteration
EYE = jnp.eye(2)


@pytest.mark.parametrize(
    "function, call, error, message",
    [
        (R, lambda: R(EYE, 0), ValueError, "p must be an int >= 1, got 0"),
        (R, lambda: R(EYE, 2.0), ValueError, "p must be an int >= 1, got 2.0"),
        (R, lambda: R(EYE, True), ValueError, "p must be an int >= 1, got True"),
        (R, lambda: R(jnp.ones((2, 3)), 2), ValueError, "matrix must be square"),
        (R, lambda: R(jnp.ones(3), 2), ValueError, "matrix must be square"),
        (R, lambda: R(jnp.ones((0, 2, 2)), 2), ValueError, "matrix must not be empty"),
        (R, lambda: R(jnp.eye(2, dtype=int), 2), TypeError, "matrix must be a float"),
        (R, lambda: R(EYE, 2, num_iters=-1), ValueError, "num_iters must be >= 0, got -1"),
        (R, lambda: R(EYE, 2, num_iters=1.5), TypeError, "num_iters must be an int"),
        (R, lambda: R(EYE, 2, ridge_epsilon=-1.0), ValueError, "ridge_epsilon must be >= 0"),
        (R, lambda: R(EYE, 2, ridge_epsilon=np.nan), ValueError, "ridge_epsilon must be finite"),
        (R, lambda: R(EYE, 2, ridge_epsilon=jnp.ones(2)), TypeError, "ridge_epsilon must be"),
        (R, lambda: R(EYE, 2, error_tolerance=-1e-3), ValueError, "error_tolerance must be >= 0"),
        (R, lambda: R(EYE, 2, precision="best"), ValueError, "precision must be"),
        (R, lambda: R(EYE, 2, method="svd"), ValueError, "method must be one of"),
        (P, lambda: P(jnp.ones((2, 3))), ValueError, "matrix must be square"),
        (P, lambda: P(EYE, v0=jnp.ones(3)), ValueError, "v0 must have shape"),
        (P, lambda: P(EYE, num_iters=-2), ValueError, "num_iters must be >= 0, got -2"),
        (P, lambda: P(EYE, error_tolerance="tiny"), TypeError, "error_tolerance must be a real"),
        (P, lambda: P(lambda v: v), ValueError, "v0 is required"),
    ],
)  # fmt: skip
def test_bad_arguments_name_the_function_and_the_argument(function, call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value).startswith(f"{function.__name__}: {message}"), str(raised.value)
