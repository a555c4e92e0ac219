"""Property tests over random pytrees, for every optimizer the library exports.

Examples per property (hypothesis, ``derandomize=True``, so every run draws the same ones):

* (a) structure and dtypes: 6 drawn + 3 explicit (the empty trees {}, [], ()) per optimizer,
  27 optimizers: 243 examples;
* (b) finite in, finite out: 6 drawn + 3 explicit per optimizer, 27 optimizers: 243 examples;
* (c) jit equals eager: 4 drawn per optimizer, 26 optimizers (not lbfgs): 104 examples.

In all, 590 examples of 3 steps each (plus the deterministic tests of the findings at the end).
Hypothesis draws the simplest example first (a scalar, zeros), so about a third of the drawn
examples are small trees.

The trees nest dicts, lists and tuples (None leaves and empty containers included) over leaves
of shapes (), (0,), (3, 0), (3,) and (2, 3) in float32, bfloat16 and float16. float64 is not
drawn: each example would compile its primitives again under x64, which the time budget of
this file does not cover; tests/test_dtypes.py runs every optimizer in float64. (a) and (b) run
eagerly: after the first examples have compiled every primitive for these few shapes, an eager
step costs milliseconds, while a jitted one costs a compilation per tree. (c) needs jit, so it
draws the values on one fixed tree that holds every shape and dtype: one compilation per
optimizer, reused by every example.

Left out: ``newton_cg``, ``scale_by_backtracking_linesearch``, ``scale_by_zoom_linesearch`` and
``lbfgs`` with its default line search: their ``update`` needs the objective (``value_fn``),
which a property over arbitrary gradient trees does not have. ``lbfgs(linesearch=None)`` is in.

Magnitudes: |x| <= 1e3 for float32 and bfloat16 (zeros, subnormals and tiny values included).
float16 leaves are drawn with magnitudes in [2^-2, 2^7] and never 0: only there does Adam's
second moment (1 - b2) g^2 stay a normal float16 (>= 2^-14) and below float16's largest value;
outside, a float16 second moment under- or overflows (see the tests at the end, finding F1).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtx
from gradtx import _tree

STEPS = 3
LR = 1e-2
F32, BF16, F16 = jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)
DTYPES = (F32, BF16, F16)
SHAPES = ((), (0,), (3, 0), (3,), (2, 3))


def _adam():
    return gradtx.adam(LR)


OPTIMIZERS = {
    "sgd": lambda: gradtx.sgd(0.1),
    "sgd_momentum": lambda: gradtx.sgd(0.1, momentum=0.9),
    "sgd_nesterov": lambda: gradtx.sgd(0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda: gradtx.adagrad(0.1),
    "adadelta": lambda: gradtx.adadelta(1.0),
    "rmsprop": lambda: gradtx.rmsprop(LR),
    "rmsprop_centered": lambda: gradtx.rmsprop(LR, centered=True),
    "rmsprop_momentum": lambda: gradtx.rmsprop(LR, momentum=0.9),
    "adam": _adam,
    "adamw": lambda: gradtx.adamw(LR, weight_decay=0.1),
    "lamb": lambda: gradtx.lamb(LR, weight_decay=0.01),
    "lars": lambda: gradtx.lars(0.1, weight_decay=0.01),
    "adam_mu_bf16": lambda: gradtx.adam(LR, mu_dtype=jnp.bfloat16),
    "adam_nu_bf16": lambda: gradtx.adam(LR, nu_dtype=jnp.bfloat16),
    # min_8bit_size=4: the (2, 3) leaves quantized, the smaller ones in float32 (the default
    # 4096 would keep all of these in float32)
    "adam_8bit": lambda: gradtx.adam(LR, optim_bits=8, min_8bit_size=4),
    "lookahead_adam": lambda: gradtx.lookahead(_adam(), sync_period=2, slow_step_size=0.5),
    "multisteps_adam": lambda: gradtx.MultiSteps(_adam(), every_k_schedule=2),
    "apply_if_finite_adam": lambda: gradtx.apply_if_finite(_adam(), max_consecutive_errors=2),
    "grouped_adamw": lambda: gradtx.grouped(gradtx.adamw(LR, weight_decay=0.1)),
    "clip_global_norm_adam": lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), _adam()),
    "clip_norm_sgd": lambda: gradtx.chain(gradtx.clip_by_norm(1.0), gradtx.sgd(0.1, 0.9)),
    "agc_sgd": lambda: gradtx.chain(gradtx.adaptive_grad_clip(0.1), gradtx.sgd(0.1, 0.9)),
    "centralize_adam": lambda: gradtx.chain(gradtx.centralize(), _adam()),
    "decay_sgd": lambda: gradtx.chain(gradtx.add_decayed_weights(1e-2), gradtx.sgd(0.1)),
    "monitor_adam": lambda: gradtx.monitor(_adam()),
    "adam_warmup_cosine": lambda: gradtx.adam(gradtx.warmup_cosine_decay_schedule(0.0, LR, 2, 10)),
    "lbfgs": lambda: gradtx.lbfgs(0.1, memory_size=2, linesearch=None),
}
NAMES = list(OPTIMIZERS)

# Low-memory Adam computes its update in at least float32 from the stored moments and rounds it
# once to each gradient's dtype (F2 below, fixed).
LOW_MEMORY = {"adam_mu_bf16", "adam_nu_bf16", "adam_8bit"}

# float16 excluded from (b) and (c) where a known finding makes it inf/NaN from finite input:
# something before Adam's second moment can make a gradient tiny or 0 (clipping to norm 1,
# centring, the mean of micro-batches), which float16 squares to 0 (F1).
F16_KNOWN_NON_FINITE = {
    "clip_global_norm_adam": "F1",
    "centralize_adam": "F1",
    "multisteps_adam": "F1",
}


@functools.cache
def optimizer(name):
    """One transformation object per name, so that jitted updates are compiled once."""
    return OPTIMIZERS[name]()


# ---- strategies ------------------------------------------------------------------------------


def _elements(dtype):
    if dtype == F16:
        magnitude = st.floats(0.25, 128.0, width=16)
        return st.tuples(magnitude, st.sampled_from((-1.0, 1.0))).map(lambda t: t[0] * t[1])
    return st.floats(-1e3, 1e3, width=32)


def _array(spec):
    """A strategy of one leaf's values (drawn in float32, rounded to bfloat16 by JAX)."""
    shape, dtype = spec
    numpy_dtype = np.float16 if dtype == F16 else np.float32
    return hnp.arrays(numpy_dtype, shape, elements=_elements(dtype)).map(
        lambda x: jnp.asarray(x, dtype)
    )


leaf_specs = st.tuples(st.sampled_from(SHAPES), st.sampled_from(DTYPES))

skeletons = st.recursive(
    leaf_specs | st.none(),
    lambda children: (
        st.dictionaries(st.sampled_from("abcd"), children, max_size=3)
        | st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=6,
).filter(lambda s: s is not None)  # params=None means "not given" to update, not a tree


def _is_spec(x):
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], np.dtype)


def _values(draw, skeleton):
    specs, treedef = jax.tree.flatten(skeleton, is_leaf=_is_spec)
    return jax.tree.unflatten(treedef, [draw(_array(s)) for s in specs])


@st.composite
def problems(draw, skeleton=None, exclude=()):
    """``(params, [grads] * STEPS)`` on a drawn (or given) skeleton."""
    if skeleton is None:
        skeleton = draw(skeletons)
    if exclude:
        skeleton = jax.tree.map(
            lambda s: (s[0], F32) if s[1] in exclude else s, skeleton, is_leaf=_is_spec
        )
    params = _values(draw, skeleton)
    return params, [_values(draw, skeleton) for _ in range(STEPS)]


EMPTY = [({}, [{}] * STEPS), ([], [[]] * STEPS), ((), [()] * STEPS)]
EXAMPLES = 6  # drawn examples per optimizer in (a) and (b); (c) draws 4

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- running ---------------------------------------------------------------------------------


def run(tx, params, grads, update=None):
    """States and updates of ``STEPS`` steps, applying each update to the params."""
    update = update or tx.update
    state = tx.init(params)
    states, updates = [state], []
    for g in grads:
        u, state = update(g, state, params)
        params = gradtx.apply_updates(params, u)
        states.append(state)
        updates.append(u)
    return states, updates, params


def run_eager(name, params, grads):
    tx = optimizer(name)
    if name == "lbfgs":
        # Eager while loops are compiled again on every call (a quarter second per step here);
        # without jit they run in Python, op by op, as everything else in this eager run.
        with jax.disable_jit():
            return run(tx, params, grads)
    return run(tx, params, grads)


def signature(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def _float_leaves(tree):
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]


def all_finite(tree):
    return all(bool(jnp.isfinite(x.astype(jnp.float32)).all()) for x in _float_leaves(tree))


# ---- (a) structure and dtypes ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(problem=problems())
@example(problem=EMPTY[0])
@example(problem=EMPTY[1])
@example(problem=EMPTY[2])
def test_updates_and_state_keep_their_structure_and_dtypes(name, problem):
    params, grads = problem
    states, updates, new_params = run_eager(name, params, grads)
    assert signature(new_params) == signature(params)
    for u, g in zip(updates, grads):
        assert jax.tree.structure(u) == jax.tree.structure(g)
        for ul, gl in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
            assert ul.shape == gl.shape
            if name in LOW_MEMORY:
                assert ul.dtype in (gl.dtype, _tree.wider(gl.dtype, jnp.float32))
            else:
                assert ul.dtype == gl.dtype
    for state in states[1:]:
        assert signature(state) == signature(states[0])


# ---- (b) finite in, finite out -------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
@example(data=EMPTY[0])
@example(data=EMPTY[1])
@example(data=EMPTY[2])
def test_finite_params_and_gradients_give_finite_updates_and_state(name, data):
    exclude = (F16,) if name in F16_KNOWN_NON_FINITE else ()
    params, grads = data if isinstance(data, tuple) else data.draw(problems(exclude=exclude))
    assert all_finite((params, grads))
    states, updates, new_params = run_eager(name, params, grads)
    assert all_finite(updates)
    assert all_finite(states[-1])
    assert all_finite(new_params)


# ---- (c) jit equals eager ------------------------------------------------------------------------

# One tree holding every shape and dtype, None and empty containers: one compilation per
# optimizer, every example drawing new values for it.
FIXED = {
    "dense": {"w": ((2, 3), F32), "b": ((3,), BF16)},
    "layers": [{"scale": ((), F32)}, ((0,), F16)],
    "pair": (((3,), F16), None),
    "zero_size": ((3, 0), F32),
    "empty": {},
    "nothing": (),
}

# Where jit and eager do the same arithmetic, they agree bit for bit:
# * bfloat16: XLA:CPU computes each bfloat16 op in float32 and rounds it back to bfloat16, in a
#   fused kernel as in an eager op (the converts stay in the fusion), so a chain of bfloat16
#   ops gives the same bits. Not so where a float32 intermediate (a norm, a trust ratio, a
#   clipping factor, a float32 moment of low-memory Adam) is rounded to bfloat16 at the end:
#   a one-ulp float32 difference there can move the bfloat16 result by one bfloat16 ulp.
# * float32: only plain sgd (one multiply) is bitwise. In a fused kernel LLVM contracts
#   ``a * b + c`` into one FMA (one rounding instead of two); eager runs each op alone.
#   E.g. trace's ``g + decay * v``: 28% of float32 elements differ by an ulp.
# * float16: the fused kernel keeps float16 chains in float32 and rounds once at the end
#   (checked: ``x + 0.9 * v`` under jit equals the float32 result rounded once, for every
#   element), while eager rounds to float16 after each op.
BF16_EXACT = {
    "sgd",
    "sgd_momentum",
    "sgd_nesterov",
    "adadelta",
    "decay_sgd",
}
# Not the second-moment optimizers (adagrad, rmsprop, adam and their wrappers): their
# preconditioner (gradtx._scaling.root_scale_step) is computed in float32 and
# rounded once to bfloat16, so a one-ulp float32 difference can move it by one bfloat16 ulp
# (F1's fix).
F32_EXACT = {"sgd"}

# Elsewhere the tolerance is an error budget in ulps of the leaf's dtype: per step an update
# element passes at most 4 roundings that one side merges or skips (the two of an average's
# ``a * x + b * m``, the two of the scaling ``c * (m / d)``), each at most half an ulp of the
# value rounded; the state carries the differences to later steps, where the decays (< 1) do
# not grow them: 3 steps * 4 * 1/2 = 6 ulps of the leaf's largest update over the run, and the
# same number of the smallest subnormal spacing for values in the subnormal range, where an
# ulp is that spacing, not relative. Measured worst over many random trees: 1.9 ulps (float32),
# 1 (bfloat16), 2.4 (float16).
BUDGET_ULPS = 2 * STEPS
# Low-memory moments are rounded to bfloat16 (or to 8-bit codes) when stored; a float32
# difference of an ulp can move that rounding by one step of the storage, which the next
# update sees: budget in bfloat16 ulps for mu/nu in bfloat16. An 8-bit code moves only when a
# value falls within a float32 ulp of a midpoint between two codes (about 1e-6 per element);
# budget as for float32.
STORAGE_EPS = {"adam_mu_bf16": BF16, "adam_nu_bf16": BF16}

# lbfgs: random gradients give curvature pairs whose s'y is the rounding noise of a sum (the
# pair test s'y > eps * y'y keeps them); 1 / s'y then amplifies the order in which jit and eager
# sum without bound (measured: 2600 float32 ulps). Its jit/eager agreement holds only for
# well-conditioned pairs, which random gradients do not give.
JIT_NAMES = [n for n in NAMES if n != "lbfgs"]

# Trust ratios (lamb, lars): a scalar leaf's norm under jit is |p| (XLA rewrites sqrt(p * p)),
# eagerly p * p underflows to 0 below |p| ~ 1e-19 and the "zero norm: ratio 1" branch takes
# over (F3 below): a difference of many orders of magnitude. A vector's norm underflows the
# same way in both. For them the fixed tree's scalar leaf is a vector of 2.
TRUST_RATIO = {"lamb", "lars"}


# Adadelta in float16 is left out of (c): its running average of squared steps is about
# eps * g^2 / E[g^2] ~ 1e-7 with the default eps = 1e-6, both float16 subnormals (below 2^-14),
# where a value keeps one or two significant digits. Jit computes the chain in float32 and
# rounds once, eagerly every op rounds to those digits: the steps differ by tens of float16
# ulps, the precision float16 has there, not an elided rounding of the budget below.
F16_SUBNORMAL_STATE = {"adadelta"}


@functools.cache
def jitted_update(name):
    return jax.jit(optimizer(name).update)


def _tolerance(name, dtype, scale):
    if (dtype == BF16 and name in BF16_EXACT) or (dtype == F32 and name in F32_EXACT):
        return 0.0
    info = jnp.finfo(STORAGE_EPS.get(name, dtype))
    eps = max(float(info.eps), float(jnp.finfo(dtype).eps))
    return BUDGET_ULPS * (eps * scale + float(jnp.finfo(dtype).smallest_subnormal))


@pytest.mark.parametrize("name", JIT_NAMES)
@settings(max_examples=4, **SETTINGS)
@given(data=st.data())
def test_jit_and_eager_agree(name, data):
    exclude = (F16,) if name in {*F16_KNOWN_NON_FINITE, *F16_SUBNORMAL_STATE} else ()
    skeleton = FIXED
    if name in TRUST_RATIO:
        skeleton = jax.tree.map(
            lambda s: ((2,), s[1]) if s[0] == () else s, FIXED, is_leaf=_is_spec
        )
    params, grads = data.draw(problems(skeleton=skeleton, exclude=exclude))
    _, eager, eager_params = run_eager(name, params, grads)
    update = jitted_update(name)
    _, jitted, jit_params = run(optimizer(name), params, grads, update)
    assert update._cache_size() == 1  # every example reuses the one compilation
    assert signature(jitted) == signature(eager)
    worst = {}
    for leaf, (e_leaf, p_leaf) in enumerate(
        zip(jax.tree.leaves(eager[0]), jax.tree.leaves(params))
    ):
        e = np.stack([np.asarray(jax.tree.leaves(u)[leaf], np.float64) for u in eager])
        j = np.stack([np.asarray(jax.tree.leaves(u)[leaf], np.float64) for u in jitted])
        if e.size == 0:
            continue
        scale = float(np.max(np.abs(e)))
        tol = _tolerance(name, e_leaf.dtype, scale)
        worst[leaf] = float(np.max(np.abs(j - e)))
        assert worst[leaf] <= tol, (leaf, e_leaf.dtype, worst[leaf], tol)
        # The params: the updates' differences, plus the rounding of each sum to the param's
        # dtype, which a difference below half an ulp of the param can move by one ulp.
        pe = np.asarray(jax.tree.leaves(eager_params)[leaf], np.float64)
        pj = np.asarray(jax.tree.leaves(jit_params)[leaf], np.float64)
        eps = float(jnp.finfo(p_leaf.dtype).eps)
        ptol = STEPS * tol + (0.0 if tol == 0 else STEPS * eps * float(np.max(np.abs(pe))))
        assert float(np.max(np.abs(pj - pe))) <= ptol, (leaf, p_leaf.dtype)


# ---- findings: deterministic tests of what the properties found -------------------------------


def _finite_update(tx, params, grads):
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = gradtx.apply_updates(params, updates)
    return all_finite((updates, state, params))


F16_CASES = {
    # fixed: the preconditioner is computed in float32, where eps = 1e-8 is not 0
    "zero_gradient": [0.0, 1.0],  # was 0 / (sqrt(0) + eps) with eps rounded to 0: NaN
    "small_gradient": [1e-4, 1.0],  # was m / 0 = inf once (1 - b2) g^2 rounded to 0
    "large_gradient": [300.0, 1.0],  # g^2 = 9e4 > 65504: a float16 second moment is inf
}
F16_STORAGE = pytest.mark.xfail(
    strict=True,
    reason="known limitation (F1): a second moment stored in float16 cannot hold g^2 above "
    "65504; for float16 models keep it wider with nu_dtype=jnp.float32 (tested below)",
)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=F16_STORAGE) if c == "large_gradient" else c for c in F16_CASES]
)
@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_float16_second_moments_stay_finite(name, case):
    params = jnp.ones(2, jnp.float16)
    grads = [jnp.asarray(F16_CASES[case], jnp.float16)] * 2
    assert _finite_update(optimizer(name), params, grads)


@pytest.mark.parametrize("case", [*F16_CASES, "tiny_gradient"])
def test_float16_params_with_a_float32_second_moment_stay_finite(case):
    values = F16_CASES.get(case, [1e-3, 1.0])  # 1e-3: (1 - b2) g^2 = 1e-9 is 0 in float16
    params = jnp.ones(2, jnp.float16)
    grads = [jnp.asarray(values, jnp.float16)] * 2
    tx = gradtx.adam(1e-3, nu_dtype=jnp.float32)
    assert _finite_update(tx, params, grads)
    updates, _ = tx.update(grads[0], tx.init(params), params)
    assert updates.dtype == jnp.float16


@pytest.mark.parametrize("name", sorted(LOW_MEMORY))
def test_low_memory_adam_updates_keep_the_gradient_dtype(name):
    params = {"w": jnp.ones(3, jnp.bfloat16), "h": jnp.ones(3, jnp.float16)}
    updates, _ = optimizer(name).update(params, optimizer(name).init(params), params)
    assert signature(updates) == signature(params)


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (F3), not fixed: squares of |x| < 1e-19 underflow in float32, so "
    "the trust ratio's zero-norm branch takes tiny params for zero ones (and under jit XLA "
    "rewrites a scalar's sqrt(p * p) to |p|, so eager and jit disagree); a rescaled norm would "
    "cost every LAMB/LARS step an extra pass over params and updates",
)
@pytest.mark.parametrize(
    "shape, jit",
    # Not jit on a scalar: there XLA's rewrite gives |p| and the formula's value.
    [((), False), ((2,), False), ((2,), True)],
    ids=["scalar-eager", "vector-eager", "vector-jit"],
)
def test_trust_ratio_of_tiny_params_follows_the_formula(shape, jit):
    tx = gradtx.scale_by_trust_ratio()
    params = jnp.full(shape, 1e-25, jnp.float32)
    grads = jnp.full(shape, 1.0, jnp.float32)
    update = jax.jit(tx.update) if jit else tx.update
    got, _ = update(grads, tx.init(params), params)
    # c ||p|| / ||g|| * g, with c = 1: 1e-25 for every element
    np.testing.assert_allclose(np.asarray(got), np.full(shape, 1e-25), rtol=1e-6)


# F4, fixed by the lead in e74bc8e (the ratio multiplies in float32): kept as a regression test.
def test_float16_trust_ratio_above_65504_gives_a_finite_update():
    tx = gradtx.scale_by_trust_ratio()
    params = jnp.asarray([100.0], jnp.float16)
    grads = jnp.asarray([1e-3], jnp.float16)
    got, _ = tx.update(grads, tx.init(params), params)
    # c ||p|| / ||u|| * u = 100 * sign(u): representable in float16
    assert float(got[0]) == 100.0
