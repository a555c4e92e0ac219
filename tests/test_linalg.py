"""The matrix pieces: viewing leaves as matrices, Newton–Schulz, and Muon's pairs on their own.

Newton–Schulz's band: Muon's quintic (3.4445, -4.7750, 2.0315) maps a singular value s of
X / ||X||_F through p(s) = a s + b s^3 + c s^5 five times; computed on a grid of s in
[0.002, 1] in float64, the result lies in [0.6818, 1.2024] (below 0.002 the five steps cannot
lift it: s = 0.001 ends at 0.47). The tests check the singular values of orthogonalized random
matrices against that band, and the scalar map against the matrix iteration.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._linalg import lapack
from tests.reference import numpy_matrix

MDN = gradtx.MatrixDimensionNumbers
BAND = (0.68, 1.21)  # singular values of NS(X) for s_i / ||X||_F >= 0.002 (module docstring)
TABLE = numpy_matrix.coefficient_table(numpy_matrix.MUON_COEFFS, 5)


def _quintic_band(lowest: float) -> tuple[float, float]:
    s = np.geomspace(lowest, 1.0, 100_001)
    for a, b, c in TABLE:
        s = a * s + b * s**3 + c * s**5
    return float(s.min()), float(s.max())


def test_the_documented_band_is_the_quintic_map_on_its_domain():
    low, high = _quintic_band(0.002)
    assert BAND[0] <= low < 0.69 and 1.20 < high <= BAND[1]
    assert _quintic_band(0.001)[0] < 0.5  # below the domain the band does not hold


# Gaussian rectangular matrices have no tiny singular value; a square one has, so it is made
# from its SVD with singular values log-spaced over [0.01, 1].
def _matrix(shape, complex_, rng):
    if shape[0] != shape[1]:
        x = rng.normal(size=shape)
        return x + 1j * rng.normal(size=shape) if complex_ else x
    u, _ = np.linalg.qr(rng.normal(size=shape) + (1j * rng.normal(size=shape) if complex_ else 0))
    v, _ = np.linalg.qr(rng.normal(size=shape))
    return (u * np.geomspace(0.01, 1.0, shape[0])) @ v.T


@pytest.mark.parametrize("shape", [(50, 30), (30, 50), (32, 32), (200, 10), (1, 7)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.complex64], ids=str)
def test_singular_values_lie_in_the_band(shape, dtype):
    x = _matrix(shape, dtype == jnp.complex64, np.random.default_rng(sum(shape)))
    s_in = np.linalg.svd(x, compute_uv=False)
    assert s_in.min() / np.linalg.norm(x) >= 0.002  # inside the band's domain
    out = gradtx.orthogonalize_via_newton_schulz(jnp.asarray(x, dtype))
    assert out.dtype == dtype
    s = np.linalg.svd(
        np.asarray(out.astype(jnp.complex64 if dtype == jnp.complex64 else jnp.float32)),
        compute_uv=False,
    )
    slack = 0.01 if dtype == jnp.bfloat16 else 1e-4  # the output's rounding
    assert BAND[0] - slack <= s.min() and s.max() <= BAND[1] + slack, (s.min(), s.max())


def test_matrix_iteration_equals_the_scalar_map_on_the_singular_values(x64):
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    v, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    s = np.array([1.0, 0.5, 0.1, 0.01])
    x = u[:, :4] * s @ v.T
    got = np.linalg.svd(
        np.asarray(gradtx.orthogonalize_via_newton_schulz(jnp.asarray(x), eps=0.0)),
        compute_uv=False,
    )
    want = s / np.linalg.norm(s)
    for a, b, c in TABLE:
        want = a * want + b * want**3 + c * want**5
    np.testing.assert_allclose(np.sort(got), np.sort(want), rtol=1e-12)


PRECONDITIONINGS = ("frobenius", "spectral", "schatten", "aol")


@pytest.mark.parametrize("ns_coeffs", ["standard", "dion"])
@pytest.mark.parametrize("preconditioning", PRECONDITIONINGS)
def test_matches_the_numpy_reference_and_optax_in_float64(preconditioning, ns_coeffs, x64):
    import optax.contrib

    table = numpy_matrix.coefficient_table(ns_coeffs, 5)
    rng = np.random.default_rng(1)
    for shape in [(5, 3), (3, 5), (4, 4)]:
        x = rng.normal(size=shape)
        want = numpy_matrix.newton_schulz(x, table, preconditioning=preconditioning)
        got = gradtx.orthogonalize_via_newton_schulz(
            jnp.asarray(x), ns_coeffs, preconditioning=preconditioning
        )
        theirs = optax.contrib._muon.orthogonalize_via_newton_schulz(
            jnp.asarray(x), jnp.asarray(table), preconditioning=preconditioning
        )
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
        np.testing.assert_allclose(got, theirs, rtol=0, atol=1e-13)


def _spectral(x):
    return np.linalg.svd(np.asarray(x), compute_uv=False).max()


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5)])
def test_schatten_and_aol_scalings_are_the_formulas_and_bound_the_spectral_norm(shape, x64):
    """Zero steps leave X_0: X / ||X||_S4 and D X, in float64 against NumPy's SVD and sums; both
    have spectral norm <= 1 and a larger smallest singular value than X / ||X||_F."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=shape) * rng.uniform(0.1, 10.0, size=(shape[0], 1))  # uneven rows
    wide = x if shape[0] <= shape[1] else x.T
    s = np.linalg.svd(x, compute_uv=False)
    d = 1 / np.sqrt(np.abs(wide @ wide.T).sum(axis=1))
    aol = d[:, None] * wide
    want = {"schatten": x / np.sum(s**4) ** 0.25, "aol": aol if wide is x else aol.T}
    frobenius_low = s.min() / np.linalg.norm(x)
    for name, expected in want.items():
        got = np.asarray(
            gradtx.orthogonalize_via_newton_schulz(
                jnp.asarray(x), ns_steps=0, preconditioning=name, eps=0.0
            )
        )
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)
        singular = np.linalg.svd(got, compute_uv=False)
        assert singular.max() <= 1 + 1e-12 and singular.min() > frobenius_low, name


@pytest.mark.parametrize("preconditioning", ["schatten", "aol"])
def test_the_floored_scalings_do_not_depend_on_the_gradients_scale(preconditioning, x64):
    """optax floors the squared Schatten-4 norm and AOL's row sums at 1e-8 (whatever eps is), so
    it stops normalising a matrix whose norm is below 1e-4 (this one's is near 3e-6); gradtx
    floors the root at eps. (Frobenius and spectral add eps, as optax does.)"""
    x = np.random.default_rng(5).normal(size=(4, 6))
    big, small = (
        gradtx.orthogonalize_via_newton_schulz(jnp.asarray(x * k), preconditioning=preconditioning)
        for k in (1.0, 1e-6)
    )
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-6)


@pytest.mark.parametrize("preconditioning", ["schatten", "aol"])
def test_zero_rows_and_matrices_stay_zero_with_eps_zero(preconditioning):
    x = jnp.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    for m in (x, jnp.zeros((2, 3))):
        out = gradtx.orthogonalize_via_newton_schulz(m, preconditioning=preconditioning, eps=0.0)
        assert np.isfinite(out).all() and not out[1].any()
        grad = jax.grad(
            lambda m: gradtx.orthogonalize_via_newton_schulz(
                m, preconditioning=preconditioning, eps=0.0
            ).sum()
        )(m)
        assert np.isfinite(grad).all()


def test_zero_and_empty_matrices_stay_zero():
    assert not gradtx.orthogonalize_via_newton_schulz(jnp.zeros((3, 2))).any()
    assert gradtx.orthogonalize_via_newton_schulz(jnp.zeros((0, 3))).shape == (0, 3)


def test_zero_steps_is_the_normalised_matrix():
    x = jnp.array([[3.0, 0.0], [0.0, 4.0]])
    np.testing.assert_allclose(
        gradtx.orthogonalize_via_newton_schulz(x, ns_steps=0, eps=0.0), x / 5.0
    )


# ---- any leaf as a batch of matrices ---------------------------------------------------------


VIEWS = {
    # stacked layers (nnx.scan): (layers, d_in, d_out)
    "stacked": ((3, 4, 5), MDN(1, 2), [(slice(i, i + 1),) for i in range(3)]),
    # attention kernel (d_model, heads, head_dim): one d_model x heads*head_dim matrix
    "attention_out_heads": ((6, 2, 3), MDN(0, (1, 2)), None),
    # attention output kernel (heads, head_dim, d_model): heads*head_dim x d_model
    "attention_in_heads": ((2, 3, 6), MDN((0, 1), 2), None),
    # convolution kernel (h, w, c_in, c_out): h*w*c_in x c_out
    "conv": ((3, 3, 2, 4), MDN((0, 1, 2), 3), None),
    # per-head matrices: (d_model, heads, head_dim) as heads matrices d_model x head_dim
    "per_head": ((6, 2, 3), MDN(0, 2), None),
}


@pytest.mark.parametrize("name", VIEWS)
def test_views_round_trip_and_orthogonalize_each_matrix(name, x64):
    shape, spec, _ = VIEWS[name]
    x = jnp.asarray(np.random.default_rng(2).normal(size=shape))
    m, restore = gradtx.as_matrices(x, spec)
    assert m.shape == gradtx.matrix_shape(shape, spec)
    np.testing.assert_array_equal(restore(m), x)
    got = gradtx.orthogonalize_via_newton_schulz(x, dimension_numbers=spec)
    want = np.stack([numpy_matrix.newton_schulz(np.asarray(mi), TABLE) for mi in m])
    np.testing.assert_allclose(gradtx.as_matrices(got, spec)[0], want, rtol=0, atol=1e-13)


def test_stacked_layers_are_the_separate_layers(x64):
    x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 4, 5)))
    got = gradtx.orthogonalize_via_newton_schulz(x, dimension_numbers=MDN(1, 2))
    for i in range(3):
        np.testing.assert_allclose(got[i], gradtx.orthogonalize_via_newton_schulz(x[i]), atol=1e-14)


def test_rows_are_the_reduction_axes_in_the_order_given():
    x = jnp.arange(24.0).reshape(2, 3, 4)
    m, _ = gradtx.as_matrices(x, MDN((1, 0), 2))
    np.testing.assert_array_equal(m[0], x.transpose(1, 0, 2).reshape(6, 4))


# ---- Muon's pairs on their own ---------------------------------------------------------------


def test_scale_by_shape_formulas():
    u = {"tall": jnp.ones((8, 2)), "wide": jnp.ones((2, 8)), "stack": jnp.ones((3, 2, 8))}
    dims = {"tall": MDN(), "wide": MDN(), "stack": MDN(1, 2)}
    tx = gradtx.scale_by_shape(dims)
    out, _ = tx.update(u, tx.init(u))
    assert float(out["tall"][0, 0]) == 1.0  # fan-out 2 < fan-in 8: max(1, 2/8)
    assert float(out["wide"][0, 0]) == 2.0 and float(out["stack"][0, 0, 0]) == 2.0
    tx = gradtx.scale_by_shape(dims, consistent_rms=0.2)
    state = tx.init(u)
    out, _ = tx.update(u, state)
    np.testing.assert_allclose(out["tall"], 0.2 * np.sqrt(8), rtol=1e-6)
    state = gradtx.set_hyperparams(state, consistent_rms=0.5)
    out, _ = tx.update(u, state)
    np.testing.assert_allclose(out["wide"], 0.5 * np.sqrt(8), rtol=1e-6)


def test_scale_by_muon_on_stacked_layers_is_each_layer_alone():
    g = jnp.asarray(np.random.default_rng(4).normal(size=(3, 4, 5)), jnp.float32)
    stacked = gradtx.scale_by_muon(weight_dimension_numbers=MDN(1, 2))
    out, _ = stacked.update(g, stacked.init(g))
    single = gradtx.scale_by_muon()
    for i in range(3):
        want, _ = single.update(g[i], single.init(g[i]))
        np.testing.assert_allclose(out[i], want, atol=1e-6)


def test_scale_by_muon_refuses_a_leaf_that_is_not_a_matrix_naming_it():
    tx = gradtx.scale_by_muon()
    with pytest.raises(
        ValueError, match=r"^scale_by_muon: the leaf 'b' of shape \(3,\) is not a matrix"
    ):
        tx.init({"w": jnp.zeros((2, 2)), "b": jnp.zeros(3)})


def test_scale_by_muon_beta_is_live_with_its_range():
    g = jnp.ones((2, 3))
    state = gradtx.scale_by_muon().init(g)
    state = gradtx.set_hyperparams(state, beta=0.5)
    assert float(gradtx.hyperparams(state)["beta"]) == 0.5
    with pytest.raises(ValueError, match=r"^set_hyperparams: beta must be in \[0, 1\)"):
        gradtx.set_hyperparams(state, beta=1.0)


# ---- Muon's state: optax's MuonState, the coefficients in it -------------------------------


@pytest.mark.parametrize(
    "ns_coeffs, ns_steps, shape",
    [(numpy_matrix.MUON_COEFFS, 5, (3,)), ("dion", 5, (5, 3)), ("dion", 3, (3, 3))],
)
@pytest.mark.parametrize("precision", ["float32", "x64"])
def test_muon_state_is_optax_s_with_the_coefficients_optax_keeps(
    ns_coeffs, ns_steps, shape, precision, request
):
    import optax.contrib

    if precision == "x64":
        request.getfixturevalue("x64")
    assert gradtx.contrib.MuonState is gradtx.MuonState
    assert gradtx.MuonState._fields == optax.contrib.MuonState._fields
    g = {"w": jnp.ones((3, 2)), "v": jnp.ones((2, 4, 3))}
    dims = {"w": MDN(), "v": MDN(1, 2)}
    tx = gradtx.scale_by_muon(ns_coeffs, ns_steps, weight_dimension_numbers=dims)
    ours = tx.init(g).inner_state
    assert isinstance(ours, gradtx.MuonState)
    assert ours.ns_coeffs.shape == shape
    assert ours.ns_coeffs.dtype == (jnp.float64 if precision == "x64" else jnp.float32)
    if ns_steps == 5:  # optax runs a table's rows whatever ns_steps is (refusing more rows)
        optax_dims = {
            "w": optax.contrib.MuonDimensionNumbers(),
            "v": optax.contrib.MuonDimensionNumbers(1, 2),
        }
        given = numpy_matrix.DION_COEFFS if ns_coeffs == "dion" else ns_coeffs
        with jax.numpy_dtype_promotion("standard"):
            theirs = optax.contrib.scale_by_muon(
                given, ns_steps, weight_dimension_numbers=optax_dims
            ).init(g)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
            assert (a.shape, a.dtype) == (b.shape, b.dtype)
        np.testing.assert_array_equal(ours.ns_coeffs, theirs.ns_coeffs)
    _, after = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(after.inner_state.ns_coeffs, ours.ns_coeffs)


@pytest.mark.parametrize("jit", [False, True])
def test_muon_s_update_runs_with_the_coefficients_of_its_state(jit):
    # a state holding other coefficients (as one converted from optax's may) steps as the
    # transformation built with them, to the bit (the same program either way)
    g = {"w": jnp.asarray(np.random.default_rng(5).normal(size=(4, 6)), jnp.float32)}
    run = jax.jit if jit else (lambda f: f)
    built = gradtx.scale_by_muon()
    ours, _ = run(built.update)(g, built.init(g))
    for other in ((3.0, -3.2, 1.2), "dion"):
        tx = gradtx.scale_by_muon(other)
        want, _ = run(tx.update)(g, tx.init(g))
        theirs = tx.init(g).inner_state.ns_coeffs
        state = built.init(g)
        state = state._replace(inner_state=state.inner_state._replace(ns_coeffs=theirs))
        got, after = run(built.update)(g, state)
        np.testing.assert_array_equal(got["w"], want["w"])
        np.testing.assert_array_equal(after.inner_state.ns_coeffs, theirs)
        assert np.abs(np.asarray(ours["w"]) - np.asarray(want["w"])).max() > 1e-3


def test_muon_refuses_a_state_whose_coefficients_have_another_shape():
    g = jnp.ones((2, 3))
    tx = gradtx.scale_by_muon()
    state = tx.init(g)
    state = state._replace(inner_state=state.inner_state._replace(ns_coeffs=jnp.ones(4)))
    with pytest.raises(
        ValueError,
        match=r"^scale_by_muon: the state's ns_coeffs must have shape \(3,\) or \(steps, 3\), "
        r"got \(4,\)",
    ):
        tx.update(g, state)


# ---- muon's split of a model -----------------------------------------------------------------


def _model():
    return {
        "embed": {"embedding": jnp.zeros((10, 4))},
        "block": {"attn": {"kernel": jnp.zeros((4, 4))}, "norm": {"scale": jnp.ones(4)}},
        "mlp": [{"kernel": jnp.zeros((4, 8)), "bias": jnp.zeros(8)}],
        "lm_head": {"kernel": jnp.zeros((4, 10))},
        "stacked": jnp.zeros((2, 4, 4)),
    }


def test_default_split_sends_embeddings_heads_and_non_matrices_to_adamw():
    dims = gradtx.muon_dimension_numbers(_model())
    matrices = {
        gradtx._core.tree.path_str(p)
        for p, d in jax.tree_util.tree_flatten_with_path(
            dims, is_leaf=lambda x: isinstance(x, MDN)
        )[0]
        if d is not None
    }
    assert matrices == {"block/attn/kernel", "mlp/0/kernel"}
    optax_default = gradtx.muon_dimension_numbers(_model(), exclude=None)
    assert optax_default["lm_head"]["kernel"] == MDN() and optax_default["stacked"] is None


def test_muon_groups_follow_the_split_and_can_be_changed():
    params = _model()
    grads = jax.tree.map(lambda p: jnp.ones_like(p) * 0.5, params)
    tx = gradtx.muon(0.1, nesterov=False)
    state = tx.init(params)
    updates, _ = tx.update(grads, state, params)
    # AdamW's first step without Nesterov: -lr sign(g)
    np.testing.assert_allclose(updates["embed"]["embedding"], -0.1, rtol=1e-5)
    np.testing.assert_allclose(updates["stacked"], -0.1, rtol=1e-5)
    # a rank-one gradient orthogonalized: all singular values but one are 0
    s = np.linalg.svd(np.asarray(updates["block"]["attn"]["kernel"]), compute_uv=False)
    assert s[1] < 1e-5 < s[0]

    def with_stacked(p):
        dims = gradtx.muon_dimension_numbers(p)
        dims["stacked"] = MDN(1, 2)
        return dims

    tx = gradtx.muon(0.1, nesterov=False, muon_weight_dimension_numbers=with_stacked)
    updates, _ = tx.update(grads, tx.init(params), params)
    s = np.linalg.svd(np.asarray(updates["stacked"][0]), compute_uv=False)
    assert s[1] < 1e-5 < s[0]


def test_muon_init_on_shape_dtype_structs_and_a_vmapped_sweep():
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    tx = gradtx.muon(0.02)
    abstract = tx.init(jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params))
    real = tx.init(params)
    assert jax.tree.structure(abstract) == jax.tree.structure(real)
    assert [(a.shape, a.dtype) for a in jax.tree.leaves(abstract)] == [
        (r.shape, r.dtype) for r in jax.tree.leaves(real)
    ]
    grads = {"w": jnp.arange(12.0).reshape(4, 3), "b": jnp.ones(3)}
    rates = jnp.array([0.01, 0.02])
    states = gradtx.sweep(real, learning_rate=rates)
    updates, _ = jax.vmap(lambda s: tx.update(grads, s, params))(states)
    one, _ = tx.update(grads, gradtx.set_hyperparams(real, learning_rate=0.02), params)
    np.testing.assert_allclose(updates["w"][1], one["w"], rtol=1e-6)
    np.testing.assert_allclose(updates["w"][0], one["w"] / 2, rtol=1e-6)


# ---- LAPACK one matrix at a time (gradtx._linalg.lapack) ---------------------------------------


def _lapack_cases(dtype):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((2, 3, 6, 5)), dtype)
    s = a @ jnp.swapaxes(a, -1, -2) + jnp.eye(6, dtype=dtype)
    t = jnp.triu(s) + 6 * jnp.eye(6, dtype=dtype)
    b = a[..., :3]
    return [  # (name, ours, jnp's, operands)
        ("eigh", lapack.eigh, lambda x: tuple(jnp.linalg.eigh(x)), (s,)),
        ("qr", lapack.qr, lambda x: tuple(jnp.linalg.qr(x)), (a,)),
        (
            "svd",
            lambda x: lapack.svd(x, full_matrices=False),
            lambda x: tuple(jnp.linalg.svd(x, full_matrices=False)),
            (a,),
        ),
        (
            "svdvals",
            lambda x: lapack.svd(x, compute_uv=False),
            lambda x: jnp.linalg.svd(x, compute_uv=False),
            (a,),
        ),
        (
            "solve_triangular",
            lambda x, y: lapack.solve_triangular(x, y, trans="T"),
            lambda x, y: jax.scipy.linalg.solve_triangular(x, y, trans="T"),
            (t, b),
        ),
    ]


def test_lapack_calls_are_the_batched_calls_bit_for_bit_and_differentiate_alike(x64):
    """Batched, under vmap and on one matrix: jnp's batched call bit for bit; the gradients of
    a batch are jnp's."""
    cases = _lapack_cases(jnp.float64)

    def loss(f):
        return lambda *xs: sum(jnp.sum(jnp.sin(y)) for y in jax.tree.leaves(f(*xs)))

    def program(ours, theirs, xs):
        return (
            (ours(*xs), jax.vmap(jax.vmap(ours))(*xs), ours(*(x[1, 2] for x in xs))),
            (theirs(*xs), theirs(*xs), theirs(*(x[1, 2] for x in xs))),
            jax.grad(loss(ours))(*xs),
            jax.grad(loss(theirs))(*xs),
        )

    results = jax.jit(lambda: [program(f, g, xs) for _, f, g, xs in cases])()
    for (name, *_), (ours, theirs, our_grads, their_grads) in zip(cases, results):
        for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
            assert x.shape == y.shape and x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        for x, y in zip(jax.tree.leaves(our_grads), jax.tree.leaves(their_grads)):
            np.testing.assert_allclose(x, y, rtol=1e-12, err_msg=name)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the loop is the CPU lowering")
def test_lapack_calls_reach_lapack_one_matrix_at_a_time_on_cpu():
    """No LAPACK call of a batch (or a vmap of one) is handed more than one matrix."""
    for name, ours, _, xs in _lapack_cases(jnp.float32):
        for fn in (ours, jax.vmap(jax.vmap(ours))):
            text = jax.jit(fn).lower(*xs).as_text()
            calls = [line for line in text.splitlines() if "custom_call @lapack_" in line]
            assert calls and all('num_batch_dims = "0"' in line for line in calls), name
