"""Numbers at the edges: norms over the whole float range, integer and string leaves, NaN policy.

The issue's measured cases, each a regression test (each failed before its fix):

* clip_by_global_norm / clip_by_norm of a float32 gradient of 1e30 gave 0 (the squared norm
  overflowed); now the exact clipped step 0.7071.
* lamb's trust ratio of an Adam step whose squares underflow (gradients of 1e-30) gave no step;
  now the formula's step. (Subnormal inputs, such as the issue's 1e-40, are flushed to zero by
  XLA on CPU before any arithmetic: to every XLA program they are zero gradients; tested too.)
* adam on int32 params returned NaN updates, sgd left them unchanged: now a TypeError at init
  naming the leaf; a str leaf in the gradients gave an AttributeError: now a TypeError naming it.
* adagrad turned a NaN gradient element's update into 0 for good: NaN now propagates, as in
  every other optimizer (the library's one rule; apply_if_finite skips such steps).
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._core import norms as _norms
from tests import helpers, registry

F32_MAX = float(np.finfo(np.float32).max)


def _norm64(leaves):
    """The exact norm, in float64 NumPy, with a scaling that cannot overflow."""
    flat = np.concatenate([np.abs(np.asarray(x, np.complex128)).ravel() for x in leaves])
    if flat.size == 0:
        return 0.0
    top = flat.max()
    return 0.0 if top == 0 else float(top * np.sqrt(np.sum((flat / top) ** 2)))


# magnitudes from the smallest normal float32 to its largest, mixed and alone
MAGNITUDES = {
    "huge": [1e30, -1e30, 3.0],
    "largest": [F32_MAX, F32_MAX / 2, -1.0],
    "tiny": [1e-30, -2e-30, 1e-31],
    "smallest_normal": [1.2e-38, 3e-38, -2e-38],
    "mixed": [1e30, 1e-30, 1.0],
    "ordinary": [3.0, -4.0, 12.0],
    "zeros": [0.0, 0.0, 0.0],
}


@pytest.fixture(params=["eager", "jit", "jit_select"])
def jit(request, monkeypatch):
    """Eager, jitted, or jitted with both paths computed and selected (what a one-device process
    does for small trees; the suite's process has 8 devices, so it takes the conditional)."""
    if request.param == "jit_select":
        monkeypatch.setattr(_norms, "_selects", lambda size, count: True)
    return request.param != "eager"


@pytest.mark.parametrize("case", MAGNITUDES)
def test_norms_are_exact_over_the_float32_range(case, jit):
    x = jnp.asarray(MAGNITUDES[case], jnp.float32)
    leaves = [x, x[:2] * 0.5, jnp.zeros((0,), jnp.float32)]
    norms = jax.jit(_norms.norms) if jit else _norms.norms
    global_norm = jax.jit(_norms.global_norm) if jit else _norms.global_norm
    for leaf, got in zip(leaves, norms(leaves)):
        _assert_norm(float(got), _norm64([leaf]))
    _assert_norm(float(global_norm(leaves)), _norm64(leaves))


def _assert_norm(got, expected):
    if expected > F32_MAX:  # the norm itself is not a float32
        assert got == np.inf
    else:
        np.testing.assert_allclose(got, expected, rtol=2e-7)


def test_norms_of_ordinary_values_are_the_plain_formula_bit_for_bit():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(50,)), jnp.float32)
    assert float(_norms.global_norm([x])) == float(jnp.sqrt(jnp.sum(x * x)))


def test_norms_propagate_inf_and_nan():
    assert float(_norms.global_norm([jnp.asarray([1.0, jnp.inf])])) == np.inf
    assert np.isnan(float(_norms.global_norm([jnp.asarray([1e30, jnp.nan])])))
    assert np.isnan(float(_norms.norms([jnp.asarray([jnp.nan, 1e-30])])[0]))


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.float32])
def test_unit_norms_are_exact_over_the_float32_range(dtype):
    values = np.array([[1e30, 1e-30, 3.0], [1e30, 2e-30, 4.0]])
    x = jnp.asarray(values, dtype)
    (got,) = _norms.unit_norms([x], [(0,)])
    expected = [_norm64([values[:, i]]) for i in range(3)]
    np.testing.assert_allclose(np.asarray(got)[0], expected, rtol=2e-7)


def test_the_slow_path_is_differentiable_with_zero_slope_at_zero():
    def f(scale):
        x = jnp.asarray([1e30, 0.0]) * scale
        return _norms.global_norm([x]) + _norms.norms([jnp.zeros(2) * scale])[0]

    np.testing.assert_allclose(float(jax.grad(f)(1.0)), 1e30, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_norms_under_vmap_are_exact_for_every_batch_element(dtype):
    """Under vmap each leaf picks the fast or the rescaled sum by itself (a predicate shared by
    every leaf made XLA's compile time grow with the square of the leaf count); leaves that
    are not batched still share one branch."""
    batched = jnp.asarray([MAGNITUDES["huge"], MAGNITUDES["ordinary"], MAGNITUDES["tiny"]], dtype)
    other = jnp.asarray([MAGNITUDES["ordinary"]] * 3, dtype)
    fixed = jnp.asarray(MAGNITUDES["mixed"], dtype)
    rows = jnp.stack([batched, batched * 2]).transpose(1, 0, 2)  # (batch, 2, 3)

    def f(a, b, c, d):
        return _norms.norms([a, b, c]), _norms.unit_norms([d, c], [(0,), None])

    (norms, units) = jax.jit(jax.vmap(f, in_axes=(0, 0, None, 0)))(batched, other, fixed, rows)
    for i in range(3):
        _assert_norm(float(norms[0][i]), _norm64([batched[i]]))
        _assert_norm(float(norms[1][i]), _norm64([other[i]]))
        _assert_norm(float(norms[2][i]), _norm64([fixed]))
        for j in range(3):
            _assert_norm(float(units[0][i, 0, j]), _norm64([rows[i, :, j]]))
    assert units[1].shape == (3,)


def test_norms_differentiate_in_both_modes_and_under_vmap():
    """d||x|| = x / ||x|| (0 at 0) on the fast and the rescaled paths, and the second derivative
    (I - u u^T) / ||x|| of ordinary values, by jit, vmap, grad, jacfwd and their compositions."""
    x = jnp.asarray([[3.0, -4.0, 12.0], [3e30, -4e30, 12e30], [0.0, 0.0, 0.0]], jnp.float32)
    slope = [[3 / 13, -4 / 13, 12 / 13]] * 2 + [[0.0] * 3]

    def norm(v):
        return _norms.norms([v])[0]

    for grad in (jax.grad(norm), jax.jacfwd(norm)):
        np.testing.assert_allclose(jax.jit(jax.vmap(grad))(x), slope, rtol=1e-6)
        np.testing.assert_allclose([grad(row) for row in x], slope, rtol=1e-6)
    total = jax.grad(lambda v: jnp.sum(jax.vmap(norm)(v)))(x)
    np.testing.assert_allclose(total, slope, rtol=1e-6)
    u = np.asarray(slope[0])
    hessian = jax.jit(jax.vmap(jax.hessian(norm)))(x[:1] * jnp.asarray([[1.0], [2.0]]))
    np.testing.assert_allclose(hessian[0], (np.eye(3) - np.outer(u, u)) / 13, atol=1e-7)
    np.testing.assert_allclose(hessian[1], (np.eye(3) - np.outer(u, u)) / 26, atol=1e-7)


def test_small_trees_select_on_one_device_and_branch_on_several(monkeypatch):
    """Both paths and a select on one device (cheaper than a conditional on XLA:CPU); a
    conditional where leaves may be sharded, so the slow path's reductions add no collectives."""
    leaves = [jnp.ones(3), jnp.ones((4, 4))]
    assert jax.device_count() > 1  # conftest's simulated devices

    def text():  # a new function each time: jit's cache would give back the first program
        return jax.jit(lambda x: _norms.global_norm(x)).lower(leaves).as_text()

    assert "stablehlo.case" in text() or "stablehlo.if" in text()
    monkeypatch.setattr(jax, "device_count", lambda *a: 1)
    assert "stablehlo.case" not in text() and "stablehlo.if" not in text()
    assert not _norms._selects(_norms._SELECT_UP_TO + 1, 1)
    assert not _norms._selects(10, _norms._SELECT_LEAVES_UP_TO + 1)


# Each step, and how much larger its program was for twice the leaves before it became linear.
QUADRATIC = {
    "clip_adamw": (lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3)), 2.7),
    "prodigy": (gradtx.prodigy, 2.2),
    "dadapt_adamw": (gradtx.dadapt_adamw, 2.2),
}


@pytest.mark.parametrize("name", QUADRATIC)
def test_many_leaf_programs_grow_linearly_with_the_leaves(name, monkeypatch):
    """XLA copies a chain of cheap scalar operations into each computation that reads its
    result. A scalar made from every leaf (a sum, a maximum, a predicate on them) that each
    leaf's computation reads therefore made programs, and compile times, grow with the square
    of the leaf count: clipping on one device (the norms' select between their two paths),
    prodigy's and D-Adapt's progress predicate."""
    from tests.compile_options import as_users

    monkeypatch.setattr(jax, "device_count", lambda *a: 1)  # a one-device process
    tx = QUADRATIC[name][0]()

    def size(n):
        params = {f"p{i}": jnp.ones(10) for i in range(n)}
        lowered = jax.jit(lambda p, s, g: tx.update(g, s, p)).lower(params, tx.init(params), params)
        return as_users(lowered).as_text().count("\n")

    growth = size(40) / size(20)
    assert growth < 2.1, (
        f"{growth:.2f}x for twice the leaves ({QUADRATIC[name][1]}x when quadratic)"
    )


def test_global_norms_rescaled_path_is_two_reductions_per_dtype_on_one_device(monkeypatch):
    """The rescaled path (compiled whether or not it runs) reduces one concatenated buffer per
    dtype on one device: per leaf, its maximum and scaled sum made clip + AdamW's program, and
    its build on a 1000-leaf transformer, twice optax's. With several devices the leaves stay
    apart (they may be sharded)."""

    def reductions(n, dtypes=(jnp.float32,)):
        leaves = [jnp.ones(3, dtypes[i % len(dtypes)]) for i in range(n)]
        jaxpr = jax.make_jaxpr(lambda x: _norms.global_norm(x))(leaves)
        found = []

        def walk(j):
            for eqn in j.eqns:
                found.append(eqn.primitive.name)
                for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                    walk(sub)

        walk(jaxpr.jaxpr)
        return sum(name in ("reduce_max", "reduce_sum") for name in found)

    several = reductions(20) - reductions(10)
    assert several >= 30, several  # a fast sum, a maximum and a scaled sum per leaf
    monkeypatch.setattr(jax, "device_count", lambda *a: 1)
    assert reductions(20) - reductions(10) == 10  # the fast path's sums only
    mixed = (jnp.float32, jnp.bfloat16)  # one buffer: bfloat16 is summed in float32
    assert reductions(20, mixed) - reductions(10, mixed) == 10
    tiny = [jnp.full(3, 1e-30), jnp.full((2, 2), 1e-30j, jnp.complex64), jnp.zeros(0)]
    big = [jnp.full(3, 1e30), jnp.full((2, 2), 1e30 + 1e30j, jnp.complex64)]
    for leaves, want in ((tiny, np.sqrt(7) * 1e-30), (big, np.sqrt(11) * 1e30)):
        np.testing.assert_allclose(jax.jit(_norms.global_norm)(leaves), want, rtol=1e-6)


@pytest.mark.parametrize("name", ["clip_by_global_norm", "clip_by_norm"])
def test_clipping_a_1e30_gradient_keeps_its_direction(name, jit):
    tx = getattr(gradtx, name)(1.0)
    g = {"w": jnp.asarray([1e30, 1e30], jnp.float32)}
    update = jax.jit(tx.update) if jit else tx.update
    out, _ = update(g, tx.init(g))
    np.testing.assert_allclose(np.asarray(out["w"]), [0.70710678] * 2, rtol=1e-6)


def test_adaptive_clipping_of_huge_gradients_keeps_their_direction():
    tx = gradtx.adaptive_grad_clip(0.1)
    params = {"w": jnp.asarray([[3.0], [4.0]], jnp.float32)}
    grads = {"w": jnp.asarray([[3e30], [4e30]], jnp.float32)}
    out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(out["w"]).ravel(), [0.3, 0.4], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_lamb_steps_when_the_squares_of_adams_step_underflow(jit):
    tx = gradtx.lamb(1.0)
    params = {"w": jnp.asarray([0.1, 0.2], jnp.float32)}
    grads = {"w": jnp.asarray([1e-30, -1e-30], jnp.float32)}
    update = jax.jit(tx.update) if jit else tx.update
    out, _ = update(grads, tx.init(params), params)
    # Adam's first step is g / (|g| + eps) ~ +-1e-22; the trust ratio rescales it to ||p||
    step = np.sqrt(0.05) / np.sqrt(2)
    np.testing.assert_allclose(np.asarray(out["w"]), [-step, step], rtol=1e-5)


def test_subnormal_gradients_are_zero_to_xla():
    # XLA flushes subnormals to zero on CPU: 1e-40 is not a gradient any program can see
    assert float(jax.jit(lambda x: x * 2)(jnp.float32(1e-40))) == 0.0
    tx = gradtx.lamb(1.0)
    params = {"w": jnp.asarray([0.1, 0.2], jnp.float32)}
    out, _ = tx.update({"w": jnp.asarray([1e-40, -1e-40])}, tx.init(params), params)
    assert np.all(np.asarray(out["w"]) == 0)


def test_adams_float32_square_overflows_as_the_readme_says():
    # the documented property of the format: g**2 of 1e20 is inf in float32, the update 0;
    # clipping first gives the step
    g = {"w": jnp.asarray([1e20, 1.0], jnp.float32)}
    plain = gradtx.adam(0.1)
    out, _ = plain.update(g, plain.init(g))
    assert float(out["w"][0]) == 0.0
    clipped = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(0.1))
    out, _ = clipped.update(g, clipped.init(g))
    np.testing.assert_allclose(float(out["w"][0]), -0.1, rtol=1e-5)


# ---- integer, boolean and string leaves ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
@pytest.mark.parametrize("case", helpers.OPTIMIZERS, ids=lambda c: c.id)
def test_integer_and_boolean_params_are_refused_at_init_naming_the_leaf(case, dtype):
    params = {"w": jnp.ones(3), "n": {"count": jnp.zeros(3, dtype)}}
    with pytest.raises(TypeError) as info:
        case.gradtx().init(params)
    message = str(info.value)
    assert message.startswith(f"{case.name}:") and "'n/count'" in message, message
    assert jnp.dtype(dtype).name in message and "freeze" in message, message


@pytest.mark.parametrize("leaf", ["abc", 3, True, jnp.arange(3)], ids=type)
@pytest.mark.parametrize("name", ["sgd", "adam", "clip_by_global_norm", "centralize"])
def test_non_float_gradients_are_refused_at_update_naming_the_leaf(name, leaf):
    tx = {
        "sgd": lambda: gradtx.sgd(0.1),
        "adam": lambda: gradtx.adam(0.1),
        "clip_by_global_norm": lambda: gradtx.clip_by_global_norm(1.0),
        "centralize": gradtx.centralize,
    }[name]()
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(TypeError, match=rf"^{name}: updates leaf 'w' "):
        tx.update({"w": leaf}, state, params)


def test_integer_leaves_kept_out_with_freeze_train_the_others():
    params = {"w": jnp.ones(2), "step": jnp.asarray(3, jnp.int32)}
    grads = jax.grad(
        lambda p: jnp.sum(p["w"] ** 2) * p["step"].astype(jnp.float32), allow_int=True
    )(params)
    frozen = lambda p: jax.tree.map(lambda x: not jnp.issubdtype(x.dtype, jnp.inexact), p)
    tx = gradtx.freeze(frozen, inner=gradtx.sgd(0.1))
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = gradtx.apply_updates(params, updates)
    assert new["step"].dtype == jnp.int32 and int(new["step"]) == 3
    np.testing.assert_allclose(np.asarray(new["w"]), [1 - 0.1 * 6] * 2, rtol=1e-6)


# ---- NaN policy: propagate (optax's), everywhere -------------------------------------------------


# Optimizers whose first update is 0 by design and only gathers statistics (SOAP's, as its
# paper and reference do): the NaN comes at their second update.
FIRST_UPDATE_GATHERS = set(registry.rows("FIRST_UPDATE_GATHERS"))


@pytest.mark.parametrize("case", helpers.OPTIMIZERS, ids=lambda c: c.id)
def test_a_nan_gradient_propagates_into_the_update_and_later_ones(case):
    tx = case.gradtx()
    params = {"w": jnp.ones(3), "v": jnp.ones(2)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    if case.id in FIRST_UPDATE_GATHERS:
        _, state = update({"w": jnp.ones(3), "v": jnp.ones(2)}, state, params)
    bad = {"w": jnp.asarray([1.0, jnp.nan, 1.0]), "v": jnp.ones(2)}
    out, state = update(bad, state, params)
    assert np.isnan(np.asarray(out["w"][1])), case.id
    out, state = update({"w": jnp.ones(3), "v": jnp.ones(2)}, state, params)
    # stateful optimizers carry the NaN on (a moment, a sum); none turns it into 0 silently
    assert not np.any(np.asarray(out["w"][1]) == 0), case.id


def test_adagrad_no_longer_stops_a_parameter_after_a_nan():
    tx = gradtx.adagrad(0.1)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    out, state = tx.update({"w": jnp.asarray([1.0, jnp.nan])}, state, params)
    assert np.isnan(float(out["w"][1]))
    out, _ = tx.update({"w": jnp.ones(2)}, state, params)
    assert np.isnan(float(out["w"][1]))  # was 0, forever


def test_adagrad_keeps_zero_updates_for_zero_sums_without_eps():
    tx = gradtx.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0)
    params = {"w": jnp.ones(2)}
    out, _ = tx.update({"w": jnp.asarray([0.0, 2.0])}, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(out["w"]), [0.0, -0.1])


# ---- complex leaves: storage ---------------------------------------------------------------------


def test_eight_bit_moments_refuse_complex_leaves_at_init_naming_the_leaf():
    params = {"small": jnp.ones(2, jnp.complex64), "big": jnp.ones(8, jnp.complex64)}
    with pytest.raises(TypeError, match=r"^adam: optim_bits=8: .*'big' is complex64"):
        gradtx.adam(0.1, optim_bits=8, min_8bit_size=4).init(params)
    gradtx.adam(0.1, optim_bits=8, min_8bit_size=16).init(params)  # both kept in float32


def test_second_moments_of_complex_leaves_are_real_and_real_accumulators_stay_complex():
    params = {"w": jnp.ones(3, jnp.complex64)}
    state = gradtx.adam(0.1, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16).init(params)
    dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(state.inner_state) if x.ndim})
    # mu keeps the imaginary part (complex64: bfloat16 has no complex form); nu is |g|**2
    assert dtypes == ["bfloat16", "complex64"], dtypes
    for tx in (gradtx.adagrad(0.1), gradtx.rmsprop(0.1), gradtx.adadelta()):
        moments = [x for x in jax.tree.leaves(tx.init(params)) if x.ndim]
        assert all(x.dtype == jnp.float32 for x in moments), tx
