"""Multi-device training on 8 simulated CPU devices (tests/conftest.py sets XLA_FLAGS).

Every sharded trajectory is compared with the same optimizer run unsharded on one device:
under ``jit`` with ``NamedSharding`` (GSPMD; meshes with ``Auto`` and ``Explicit`` axes), inside
``shard_map`` and ``pmap`` with ``axis_name``, and with the state sharded ZeRO-1 style. The
compiled HLO of a sharded step is inspected for avoidable communication.
"""

from __future__ import annotations

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx
from tests import registry
from tests.compile_options import as_users

pytestmark = pytest.mark.skipif(
    jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py sets XLA_FLAGS)"
)

STEPS = 10
TOL = 1e-6  # sharded vs unsharded, relative to the leaf's scale: reduction order only


def mesh_of(shape, names, kind=AxisType.Auto):
    return jax.make_mesh(shape, names, axis_types=(kind,) * len(shape))


def make_params(seed=0):
    """A small model: leaves whose leading sizes 8 divides, a bias, a scalar."""
    keys = jax.random.split(jax.random.key(seed), 4)
    return {
        "dense": {
            "kernel": jax.random.normal(keys[0], (32, 16)),
            "bias": jax.random.normal(keys[1], (16,)),
        },
        "embed": jax.random.normal(keys[2], (64, 8)),
        "conv": jax.random.normal(keys[3], (2, 16, 2, 2)),
        "scale": jnp.asarray(1.5, jnp.float32),  # not weakly typed
    }


def grad_fn(params, t):
    """Elementwise synthetic gradients (a shard computes its own): those of a quadratic
    ``sum(c * (p - t)**2)`` with a different curvature per element, plus a time term."""

    def leaf(p):
        c = 1.0 + jnp.cos(p)  # in [0, 2]: anisotropic, bounded
        s = jnp.asarray(t).astype(p.dtype)
        return 2.0 * c * (p - 0.1 * s) + 0.01 * s

    return jax.tree.map(leaf, params)


def run(tx, params, steps=STEPS):
    """``steps`` updates of ``tx`` from ``params``: the params after each step."""
    state = tx.init(params)
    path = []
    for t in range(steps):
        updates, state = tx.update(grad_fn(params, float(t)), state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return path, state


def run_final(tx, params, steps=STEPS):
    """The params after ``steps`` updates, in one ``fori_loop`` (compiled once, not unrolled)."""

    def body(t, carry):
        return _step(tx, *carry, t.astype(jnp.float32))

    return jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))[0]


def assert_close(sharded, reference, tol=TOL):
    for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(reference)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(1.0, float(np.max(np.abs(b))))
        assert np.max(np.abs(a - b)) <= tol * scale, np.max(np.abs(a - b)) / scale


def reference_path(tx, params):
    """The unsharded run, on the default device, jitted."""
    params = jax.device_put(params, jax.devices()[0])
    state = jax.jit(tx.init)(params)
    step = jax.jit(lambda p, s, t: _step(tx, p, s, t))
    path = []
    for t in range(STEPS):
        params, state = step(params, state, jnp.float32(t))
        path.append(params)
    return path


def _step(tx, params, state, t):
    updates, state = tx.update(grad_fn(params, t), state, params)
    return gradtx.apply_updates(params, updates), state


def sharded_steps(tx, params, state_sharding, expected):
    """``STEPS`` jitted steps from ``params`` with the state laid out as ``state_sharding`` and
    the params kept in theirs (buffers donated), each step checked against ``expected``."""
    param_sharding = jax.tree.map(lambda p: p.sharding, params)
    state = jax.jit(tx.init, out_shardings=state_sharding)(params)
    step = jax.jit(
        lambda p, s, t: _step(tx, p, s, t),
        out_shardings=(param_sharding, state_sharding),
        donate_argnums=(0, 1),
    )
    for t in range(STEPS):
        params, state = step(params, state, jnp.float32(t))
        assert_close(params, expected[t])
    assert step._cache_size() == 1
    for leaf, sharding in zip(jax.tree.leaves(params), jax.tree.leaves(param_sharding)):
        assert leaf.sharding == sharding
    return params, state


OPTIMIZERS = {
    "adam": lambda **kw: gradtx.adam(1e-2),
    "adamw_clip": lambda **kw: gradtx.chain(
        gradtx.clip_by_global_norm(1.0, **kw), gradtx.adamw(1e-2, weight_decay=1e-2)
    ),
    "lamb": lambda **kw: gradtx.lamb(1e-2, weight_decay=1e-2, **kw),
    "lars": lambda **kw: gradtx.lars(0.1, weight_decay=1e-3, **kw),
    "sgd_clip_by_norm": lambda **kw: gradtx.chain(
        gradtx.clip_by_norm(0.5, **kw), gradtx.sgd(0.05, momentum=0.9, nesterov=True)
    ),
    "monitor_skip_rmsprop": lambda **kw: gradtx.monitor(
        gradtx.apply_if_finite(gradtx.rmsprop(1e-2, momentum=0.5), 3, **kw), **kw
    ),
}


# ---- jit with NamedSharding (GSPMD) ------------------------------------------------------------

SPECS_1D = {
    "dense": {"kernel": P("data"), "bias": P()},
    "embed": P("data"),
    "conv": P(None, "data"),
    "scale": P(),
}
SPECS_2D = {
    "dense": {"kernel": P("data", "model"), "bias": P("model")},
    "embed": P("data"),
    "conv": P(None, None, "model"),
    "scale": P(),
}
MESHES = {"1d": ((8,), ("data",), SPECS_1D), "2d": ((4, 2), ("data", "model"), SPECS_2D)}


def place(params, mesh, specs):
    return jax.tree.map(
        lambda p, s: jax.device_put(p, NamedSharding(mesh, s)),
        params,
        specs,
        is_leaf=lambda x: isinstance(x, P),
    )


def spec_tuple(spec, ndim):
    entries = tuple(spec) + (None,) * (ndim - len(spec))
    return entries[:ndim]


def moments_and_params(state, params):
    """Pairs (state leaf, param) for every state leaf whose path ends with a param's path."""
    param_paths = {tuple(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    pairs = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        for n in range(len(path), 0, -1):
            param = param_paths.get(tuple(path[-n:]))
            if param is not None and param.shape == leaf.shape:
                pairs.append((leaf, param))
                break
    return pairs


@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_init_state_has_the_params_sharding(mesh_name):
    shape, names, specs = MESHES[mesh_name]
    mesh = mesh_of(shape, names)
    params = place(make_params(), mesh, specs)
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3))
    shardings = gradtx.state_sharding(tx, params)
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    pairs = moments_and_params(state, params)
    assert len(pairs) == 2 * len(jax.tree.leaves(params))  # mu and nu of every param
    for moment, param in pairs:
        assert moment.sharding.is_equivalent_to(param.sharding, moment.ndim)
    for leaf in jax.tree.leaves(state):
        if leaf.ndim == 0:
            assert leaf.sharding.is_fully_replicated
    # eagerly, init's zeros take each param's sharding by themselves
    for moment, param in moments_and_params(tx.init(params), params):
        assert moment.sharding.is_equivalent_to(param.sharding, moment.ndim)


# every optimizer of the property tests (one per family member: the zoo's included)
PROPERTIES = registry.entries("PROPERTIES")
# scalars only: Polyak's step size and sign_sgd's (live) learning rate
STATE_NOT_LIKE_PARAMS = {"polyak_sgd", "sign_sgd"}
# SOAP asks for dimension numbers for leaves above rank 2 (its error says so): no conv here
RANK_2_ONLY = {"soap"}


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_state_sharding_lays_every_optimizers_param_shaped_state_out_like_its_params(name):
    """state_sharding, traced only (no compilation): a state leaf at a param's path and of its
    shape takes the param's sharding, a scalar is replicated (on the 2-d mesh)."""
    shape, names, specs = MESHES["2d"]
    params = place(make_params(), mesh_of(shape, names), specs)
    if name in RANK_2_ONLY:
        params = {k: v for k, v in params.items() if k != "conv"}
    tx = PROPERTIES[name][0]()
    shardings = gradtx.state_sharding(tx, params)
    abstract = jax.eval_shape(tx.init, params)
    assert jax.tree.structure(shardings) == jax.tree.structure(abstract)
    param_paths = {tuple(path): p for path, p in jax.tree_util.tree_leaves_with_path(params)}
    laid_out = 0
    for (path, leaf), sharding in zip(
        jax.tree_util.tree_leaves_with_path(abstract), jax.tree.leaves(shardings)
    ):
        if leaf.ndim == 0:
            assert sharding.is_fully_replicated, path
            continue
        for n in range(len(path), 0, -1):
            param = param_paths.get(tuple(path[-n:]))
            if param is not None and param.shape == leaf.shape:
                assert sharding.is_equivalent_to(param.sharding, leaf.ndim), path
                laid_out += 1
                break
    assert laid_out or not jax.tree.leaves(abstract) or name in STATE_NOT_LIKE_PARAMS


def test_init_under_jit_on_an_explicit_mesh_needs_no_helper():
    mesh = mesh_of((4, 2), ("data", "model"), AxisType.Explicit)
    params = place(make_params(), mesh, SPECS_2D)
    tx = gradtx.adam(1e-3)
    with jax.set_mesh(mesh):  # explicit axes: jit runs in the mesh's context
        state = jax.jit(tx.init)(params)
    pairs = moments_and_params(state, params)
    assert len(pairs) == 2 * len(jax.tree.leaves(params))
    for moment, param in pairs:
        assert moment.sharding.is_equivalent_to(param.sharding, moment.ndim)


def test_init_on_shape_dtype_structs_returns_the_abstract_state():
    mesh = mesh_of((4, 2), ("data", "model"))
    concrete = place(make_params(), mesh, SPECS_2D)
    abstract = jax.tree.map(
        lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=p.sharding), concrete
    )
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.lamb(1e-3))
    state = tx.init(abstract)
    leaves = jax.tree.leaves(state)
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
    real = jax.jit(tx.init, out_shardings=gradtx.state_sharding(tx, concrete))(concrete)
    assert jax.tree.structure(state) == jax.tree.structure(real)
    for a, r in zip(leaves, jax.tree.leaves(real)):
        assert (a.shape, a.dtype) == (r.shape, r.dtype)
        assert a.sharding.is_equivalent_to(r.sharding, len(a.shape))
    # and ready for jit's out_shardings, as orbax's restore takes it
    shardings = jax.tree.map(lambda x: x.sharding, state)
    restored = jax.jit(tx.init, out_shardings=shardings)(concrete)
    assert jax.tree.structure(restored) == jax.tree.structure(real)
    # without shardings, plain shapes and dtypes
    bare = tx.init(jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), concrete))
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(bare)] == [
        (x.shape, x.dtype) for x in leaves
    ]


def _muon_matrices(params):
    """Every rank-2 leaf (the embedding too) and the convolution kernel, viewed as one
    (2 * 16) x (2 * 2) matrix, whose sharded axis 1 is inside its rows."""
    dims = gradtx.muon_dimension_numbers(params, exclude=None)
    dims["conv"] = gradtx.MatrixDimensionNumbers((0, 1), (2, 3))
    return dims


# Matrix optimizers under GSPMD only: their matrix products need the whole matrix, which XLA
# gathers where jit shards it; under shard_map each device would see its block alone.
OPTIMIZERS["muon"] = lambda **kw: gradtx.muon(1e-2, muon_weight_dimension_numbers=_muon_matrices)
# Kronecker-factored and low-rank ones, their refreshes inside the 10 steps: statistics of
# blocks of the sharded kernel, of the embedding and of the convolution kernel, compared in
# float64 (in float32, XLA:CPU's sums differ from run to run in their last bits, and inverse
# roots of the first steps' rank-deficient statistics amplify that to 1e-5 of a step). SOAP
# one-sided, on the columns: the rows' statistics of a 32 x 16 gradient have a 16-dimensional
# null space, in which any orthonormal basis is an eigenbasis, and Adam's moments in the
# basis are not invariant to that choice, so two runs that round differently (sharded or not,
# CPU or GPU) part by 1e-4 of a step in any precision. Shampoo's roots by its default eigh
# (one LAPACK call per matrix on CPU: batched calls side by side could hang jaxlib 0.10,
# tests/test_linalg_roots.py).
OPTIMIZERS["shampoo"] = lambda **kw: gradtx.shampoo(
    1e-2,
    block_size=16,
    start_preconditioning_step=2,
    preconditioning_compute_steps=3,
)
OPTIMIZERS["soap"] = lambda **kw: gradtx.soap(
    1e-2, precondition_frequency=3, max_precond_dim=16, weight_dimension_numbers=_muon_matrices
)
OPTIMIZERS["kron"] = lambda **kw: gradtx.kron(1e-2, precond_update_precision="highest")
OPTIMIZERS["galore"] = lambda **kw: gradtx.galore(
    1e-2, rank=4, update_proj_gap=3, weight_dimension_numbers=_muon_matrices
)
JIT_ONLY = ("muon", "shampoo", "soap", "kron", "galore")
IN_FLOAT64 = ("shampoo", "soap", "kron", "galore")

# every optimizer on the 1-D mesh; those with global reductions on the 2-D mesh and explicit axes
GLOBAL = ("adamw_clip", "lamb", "monitor_skip_rmsprop", "muon")
JIT_CASES = [(name, "1d", "auto") for name in sorted(OPTIMIZERS)] + [
    (name, mesh, kind)
    for name in GLOBAL
    for mesh, kind in (("2d", "auto"), ("1d", "explicit"), ("2d", "explicit"))
]


@pytest.mark.parametrize("name", JIT_ONLY)
def test_matrix_optimizer_state_is_moments_like_params_and_replicated_factors(name):
    """What the README says: each param-shaped leaf of the state (momentum, the moments of
    SOAP's rotated basis) is laid out like its param; factor statistics, preconditioners,
    projections and the low-rank moments are not param-shaped and are replicated."""
    shape, names, specs = MESHES["1d"]
    params = place(make_params(), mesh_of(shape, names), specs)
    tx = OPTIMIZERS[name]()
    state = jax.jit(tx.init, out_shardings=gradtx.state_sharding(tx, params))(params)
    pairs = moments_and_params(state, params)
    sharded_params = [p for p in jax.tree.leaves(params) if not p.sharding.is_fully_replicated]
    # at least the momentum of every sharded matrix (galore's moments are low-rank)
    if name != "galore":
        assert sum(not m.sharding.is_fully_replicated for m, _ in pairs) >= len(sharded_params)
    for moment, param in pairs:
        assert moment.sharding.is_equivalent_to(param.sharding, moment.ndim)
    paired = {id(m) for m, _ in pairs}
    others = [x for x in jax.tree.leaves(state) if id(x) not in paired]
    assert others and all(x.sharding.is_fully_replicated for x in others)


SHARDS_ONLY = {"dense": {"kernel": P("data")}, "embed": P("data"), "conv": P(None, "data")}


def shards_only(params):
    return {
        "dense": {"kernel": params["dense"]["kernel"]},
        **{k: params[k] for k in ("embed", "conv")},
    }


def params_for(name):
    params = make_params()
    if name in IN_FLOAT64:
        return jax.tree.map(lambda p: p.astype(jnp.float64), params)
    return params


@functools.cache
def expected_path(name, only_shards=False):
    params = shards_only(params_for(name)) if only_shards else params_for(name)
    return reference_path(OPTIMIZERS[name](), params)


@pytest.mark.parametrize("name,mesh_name,kind", JIT_CASES)
def test_jit_sharded_trajectory_equals_unsharded(name, mesh_name, kind, request):
    if name in IN_FLOAT64:
        request.getfixturevalue("x64")
    shape, names, specs = MESHES[mesh_name]
    mesh = mesh_of(shape, names, AxisType.Auto if kind == "auto" else AxisType.Explicit)
    tx = OPTIMIZERS[name]()
    expected = expected_path(name)  # on one device, outside the mesh's context
    params = place(params_for(name), mesh, specs)
    with jax.set_mesh(mesh):
        sharded_steps(tx, params, gradtx.state_sharding(tx, params), expected)


# ---- shard_map and pmap with axis_name ---------------------------------------------------------


@pytest.mark.parametrize("check_vma", [True, False])
@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - set(JIT_ONLY)))
def test_shard_map_with_axis_name_equals_unsharded(name, check_vma):
    """With check_vma (the default) JAX tracks which leaves are replicated, and those are not
    summed over the axis; without it every leaf must be a shard."""
    mesh = mesh_of((8,), ("data",))
    tx = OPTIMIZERS[name](axis_name="data")
    params, specs = make_params(), SPECS_1D
    if not check_vma:
        params, specs = shards_only(params), SHARDS_ONLY
    expected = expected_path(name, only_shards=not check_vma)[-1]

    def train(params):
        return run_final(tx, params)

    sharded = jax.jit(
        jax.shard_map(train, mesh=mesh, in_specs=(specs,), out_specs=specs, check_vma=check_vma)
    )(place(params, mesh, specs))
    assert_close(sharded, expected)


def test_shard_map_on_a_2d_mesh_sums_over_both_axes():
    mesh = mesh_of((4, 2), ("data", "model"))
    tx = gradtx.chain(
        gradtx.clip_by_global_norm(0.5, axis_name=("data", "model")), gradtx.adam(0.1)
    )
    reference = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adam(0.1))
    expected = reference_path(reference, make_params())[-1]

    def train(params):
        return run_final(tx, params)

    sharded = jax.jit(jax.shard_map(train, mesh=mesh, in_specs=(SPECS_2D,), out_specs=SPECS_2D))(
        place(make_params(), mesh, SPECS_2D)
    )
    assert_close(sharded, expected)


def test_without_axis_name_shard_map_clips_each_shard_alone():
    """The test above can fail: without axis_name each device clips by its own shard's norm."""
    mesh = mesh_of((8,), ("data",))
    tx = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.sgd(0.1))
    params = {"w": jnp.arange(64.0)}
    grads = {"w": jnp.arange(64.0) - 10.0}
    sharded = jax.jit(
        jax.shard_map(
            lambda g: tx.update(g, tx.init(g))[0],
            mesh=mesh,
            in_specs=({"w": P("data")},),
            out_specs={"w": P("data")},
        )
    )(place(grads, mesh, {"w": P("data")}))
    whole = tx.update(grads, tx.init(params))[0]
    assert not np.allclose(sharded["w"], whole["w"])


@pytest.mark.parametrize("name", ["adamw_clip", "lamb", "monitor_skip_rmsprop"])
def test_pmap_with_axis_name_equals_unsharded(name):
    """Under pmap every leaf is split in 8 along its first axis (each device one row block)."""
    params = make_params()
    params = {"dense": {"kernel": params["dense"]["kernel"]}, "embed": params["embed"]}
    expected = reference_path(OPTIMIZERS[name](), params)[-1]
    tx = OPTIMIZERS[name](axis_name="batch")

    def train(params):
        return run_final(tx, params)

    split = jax.tree.map(lambda p: p.reshape(8, p.shape[0] // 8, *p.shape[1:]), params)
    out = jax.pmap(train, axis_name="batch")(split)
    out = jax.tree.map(lambda p: p.reshape(p.shape[0] * p.shape[1], *p.shape[2:]), out)
    assert_close(out, expected)


def test_apply_if_finite_skips_on_every_device_when_one_shard_is_not_finite():
    mesh = mesh_of((8,), ("data",))
    tx = gradtx.apply_if_finite(gradtx.sgd(0.1), 3, axis_name="data")
    grads = jnp.ones(64).at[5].set(jnp.nan)  # only device 0 sees the NaN

    def one_step(g):
        updates, state = tx.update(g, tx.init(g), g)
        return updates, state.notfinite_count[None]

    updates, counts = jax.jit(
        jax.shard_map(one_step, mesh=mesh, in_specs=P("data"), out_specs=(P("data"), P("data")))
    )(jax.device_put(grads, NamedSharding(mesh, P("data"))))
    assert np.all(np.asarray(updates) == 0) and np.all(np.signbit(np.asarray(updates)))
    np.testing.assert_array_equal(counts, np.ones(8))


def test_monitor_records_the_whole_norm_inside_shard_map():
    mesh = mesh_of((8,), ("data",))
    tx = gradtx.monitor(gradtx.sgd(0.5), axis_name="data")
    grads = jnp.arange(64.0)

    def stats(g):
        _, state = tx.update(g, tx.init(g))
        return gradtx.step_stats(state)["grad_norm"][None]

    norms = jax.jit(jax.shard_map(stats, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(
        jax.device_put(grads, NamedSharding(mesh, P("data")))
    )
    np.testing.assert_allclose(norms, np.full(8, np.linalg.norm(np.arange(64.0))), rtol=1e-6)


# ---- ZeRO-1: the state sharded over the data axis ------------------------------------------


def per_device_bytes(tree):
    """Bytes of ``tree`` held on device 0 (the largest share, as the shards are even)."""
    device = jax.devices()[0]
    total = 0
    for leaf in jax.tree.leaves(tree):
        total += sum(s.data.nbytes for s in leaf.addressable_shards if s.device == device)
    return total


def big_params():
    keys = jax.random.split(jax.random.key(1), 3)
    return {
        "w1": jax.random.normal(keys[0], (256, 128)),
        "w2": jax.random.normal(keys[1], (128, 64)),
        "b": jax.random.normal(keys[2], (64,)),
    }


def _in_table(path) -> bool:
    return any(getattr(k, "name", None) == "table" for k in path)


@pytest.mark.parametrize(
    "name,make",
    [
        ("adamw", lambda: gradtx.adamw(1e-2, weight_decay=1e-2)),
        ("clip_lamb", lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.lamb(1e-2))),
    ],
)
def test_zero1_state_is_an_eighth_per_device_with_the_same_trajectory(name, make):
    mesh = mesh_of((8,), ("data",))
    tx = make()
    params = place(big_params(), mesh, jax.tree.map(lambda _: P(), big_params()))
    state_sh = gradtx.state_sharding(tx, params, zero_axis="data")
    params, state = sharded_steps(tx, params, state_sh, reference_path(tx, big_params()))
    unsharded = jax.jit(tx.init)(jax.device_put(big_params(), jax.devices()[0]))
    full, mine = per_device_bytes(unsharded), per_device_bytes(state)
    kept = sum(  # scalars and the live hyperparameters' tables stay whole
        x.nbytes
        for path, x in jax.tree_util.tree_flatten_with_path(unsharded)[0]
        if x.ndim == 0 or _in_table(path)
    )
    assert mine == (full - kept) // 8 + kept  # every moment split in 8
    assert mine / full < 1 / 8 + 0.01
    for leaf in jax.tree.leaves(params):
        assert leaf.sharding.is_fully_replicated


def test_zero1_on_a_2d_mesh_splits_the_rest_over_data():
    mesh = mesh_of((4, 2), ("data", "model"))
    specs = {"w1": P(None, "model"), "w2": P("model"), "b": P()}
    params = place(big_params(), mesh, specs)
    tx = gradtx.adam(1e-2)
    state_sh = gradtx.state_sharding(tx, params, zero_axis="data")
    _, state = sharded_steps(tx, params, state_sh, reference_path(tx, big_params()))
    for moment, param in moments_and_params(state, params):
        spec = spec_tuple(moment.sharding.spec, moment.ndim)
        assert "data" in spec  # split over data as well ...
        param_spec = spec_tuple(param.sharding.spec, param.ndim)
        assert all(p is None or p == s for p, s in zip(param_spec, spec))  # ... keeping model
    full = per_device_bytes(jax.jit(tx.init)(jax.device_put(big_params(), jax.devices()[0])))
    assert per_device_bytes(state) / full < 1 / 8 + 0.01


# ---- communication in the compiled step -------------------------------------------------------


def collectives(compiled_text, *, in_branches=False):
    """``(kind, operand shapes)`` of the collective instructions in an HLO module's text: those
    outside the branches of conditionals (the path every step takes), or only those inside
    (``in_branches``; the norms' rescaled path, taken only when a sum of squares under- or
    overflows)."""
    branches = set()
    for names in re.findall(r"branch_computations=\{([^}]*)\}", compiled_text):
        branches.update(n.strip().lstrip("%") for n in names.split(","))
    found, inside = [], False
    for line in compiled_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%(\S+) ", line)
        if header:
            inside = header.group(1) in branches
        match = re.search(
            r"=\s*(\(.*?\)|\S+)\s+(all-reduce|all-gather|reduce-scatter|all-to-all|"
            r"collective-permute)(?:-start)?\(",
            line,
        )
        if match and inside == in_branches:
            found.append((match.group(2), match.group(1)))
    return found


def _scalars_only(ops):
    shapes = [re.findall(r"\w+\[([\d,]*)\]", operands) for _, operands in ops]
    return all(kind == "all-reduce" for kind, _ in ops) and all(
        found and all(s == "" for s in found) for found in shapes
    )


def compiled_step(tx, params):
    state = jax.jit(tx.init, out_shardings=gradtx.state_sharding(tx, params))(params)
    return as_users(jax.jit(lambda p, s, g: _step_with(tx, p, s, g)).lower(params, state, params))


def _step_with(tx, params, state, grads):
    updates, state = tx.update(grads, state, params)
    return gradtx.apply_updates(params, updates), state


def test_sharded_adam_step_moves_no_moments_and_clip_adds_one_scalar_all_reduce():
    mesh = mesh_of((8,), ("data",))
    specs = {"a": P("data"), "b": P("data"), "c": P(None, "data")}
    params = {"a": jnp.ones((64, 16)), "b": jnp.ones((32,)), "c": jnp.ones((4, 64))}
    params = place(params, mesh, specs)
    adam = collectives(compiled_step(gradtx.adam(1e-3), params).as_text())
    assert adam == []  # elementwise on each shard: nothing crosses devices
    clipped = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(1e-3))
    text = compiled_step(clipped, params).as_text()
    ops = collectives(text)
    assert [kind for kind, _ in ops] == ["all-reduce"]  # one, and no all-gather
    assert _scalars_only(ops), ops
    # the rescaled norm (only when the sum of squares under- or overflows): a max and a sum
    rescue = collectives(text, in_branches=True)
    assert len(rescue) == 2 and _scalars_only(rescue), rescue


def test_shard_map_clip_is_one_psum_of_one_scalar():
    mesh = mesh_of((8,), ("data",))
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0, axis_name="data"), gradtx.adam(1e-3))
    specs = {"a": P("data"), "b": P("data"), "c": P(None, "data")}
    params = place(
        {"a": jnp.ones((64, 16)), "b": jnp.ones((32,)), "c": jnp.ones((4, 64))}, mesh, specs
    )

    def train(params):
        return run(tx, params, steps=1)[0][-1]

    lowered = jax.jit(jax.shard_map(train, mesh=mesh, in_specs=(specs,), out_specs=specs)).lower(
        params
    )
    text = as_users(lowered).as_text()
    assert collectives(text) == [("all-reduce", "f32[]")]
    # the rescaled path: one pmax and one psum of a scalar, inside the conditional's branch
    assert collectives(text, in_branches=True) == [("all-reduce", "f32[]")] * 2


@pytest.mark.parametrize("scale", [1e30, 1e-30], ids=["huge", "tiny"])
def test_shard_map_norms_of_huge_and_tiny_gradients_are_those_of_the_whole(scale):
    """The rescaled path (squares over- or underflow): the largest magnitude is a pmax over the
    shards, so every shard scales by the same power of two and the psum stays valid."""
    mesh = mesh_of((8,), ("data",))
    specs = {"a": P("data"), "b": P("data")}
    grads = {"a": scale * (jnp.arange(64.0) - 20.0), "b": scale * jnp.linspace(-3.0, 5.0, 32)}
    params = {"a": jnp.linspace(0.1, 1.0, 64), "b": jnp.full((32,), 0.5)}

    def optimizers(axis_name):
        return [
            gradtx.clip_by_global_norm(1.0, axis_name=axis_name),
            gradtx.clip_by_norm(1.0, axis_name=axis_name),
            gradtx.scale_by_trust_ratio(axis_name=axis_name),
        ]

    def updates(grads, params):
        return [tx.update(grads, tx.init(params), params)[0] for tx in optimizers("data")]

    sharded = jax.jit(
        jax.shard_map(updates, mesh=mesh, in_specs=(specs, specs), out_specs=[specs] * 3)
    )(place(grads, mesh, specs), place(params, mesh, specs))
    whole = [tx.update(grads, tx.init(params), params)[0] for tx in optimizers(None)]
    g64 = {k: np.asarray(v, np.float64) for k, v in grads.items()}
    total = np.sqrt(sum(np.sum((v / scale) ** 2) for v in g64.values())) * scale
    exact = {k: v * min(1.0, 1.0 / total) for k, v in g64.items()}
    for got, ref in zip(sharded, whole):
        for k in grads:
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=1e-6)
    for k in grads:
        np.testing.assert_allclose(np.asarray(sharded[0][k]), exact[k], rtol=1e-6, atol=1e-12)


# ---- bad input ---------------------------------------------------------------------------------


def test_axis_name_that_is_not_mapped_is_a_clear_error():
    tx = gradtx.clip_by_global_norm(1.0, axis_name="data")
    g = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="axis_name 'data' is not a mapped axis"):
        tx.update(g, tx.init(g))


@pytest.mark.parametrize("bad", [3, ("data", 1), (), ""])
def test_axis_name_of_a_wrong_type_names_the_function(bad):
    for factory in (
        lambda: gradtx.clip_by_global_norm(1.0, axis_name=bad),
        lambda: gradtx.lamb(1e-3, axis_name=bad),
        lambda: gradtx.apply_if_finite(gradtx.sgd(0.1), 1, axis_name=bad),
        lambda: gradtx.monitor(gradtx.sgd(0.1), axis_name=bad),
    ):
        with pytest.raises(TypeError, match="axis_name must be"):
            factory()


def test_state_sharding_bad_zero_axis_and_meshes():
    mesh = mesh_of((8,), ("data",))
    params = place({"w": jnp.ones((8, 2))}, mesh, {"w": P()})
    tx = gradtx.adam(1e-3)
    with pytest.raises(ValueError, match="state_sharding: zero_axis 'model' is not an axis"):
        gradtx.state_sharding(tx, params, zero_axis="model")
    with pytest.raises(TypeError, match="state_sharding: zero_axis must be"):
        gradtx.state_sharding(tx, params, zero_axis=0)
    other = mesh_of((4, 2), ("data", "model"))
    mixed = {"w": params["w"], "v": jax.device_put(jnp.ones(4), NamedSharding(other, P()))}
    with pytest.raises(ValueError, match="state_sharding: the params are laid out on 2"):
        gradtx.state_sharding(tx, mixed)
    single = {"w": jax.device_put(jnp.ones(4), jax.devices()[0])}
    with pytest.raises(ValueError, match="zero_axis='data' needs params laid out on a Mesh"):
        gradtx.state_sharding(tx, single, zero_axis="data")
    for sharding in jax.tree.leaves(gradtx.state_sharding(tx, single)):
        assert sharding == single["w"].sharding


# ---- the README's recipe ----------------------------------------------------------------------


def readme_recipe() -> str:
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (recipe,) = [b for b in blocks if b.startswith("# multi-device recipe")]
    return recipe


def test_readme_multi_device_recipe_runs_and_matches_one_device():
    namespace = {}
    exec(readme_recipe(), namespace)  # noqa: S102 - the README's own code
    params, state, tx = namespace["params"], namespace["state"], namespace["tx"]
    for leaf in jax.tree.leaves(params):
        assert leaf.sharding.is_fully_replicated
    ema = [
        x
        for path, x in jax.tree_util.tree_flatten_with_path(state)[0]
        if x.ndim > 0 and not _in_table(path)
    ]
    assert ema and all("data" in spec_tuple(x.sharding.spec, x.ndim) for x in ema)
    # the same three steps on one device
    x, y, loss_fn = namespace["x"], namespace["y"], namespace["loss_fn"]
    one = jax.device_put({"w": jnp.zeros((512, 64)), "b": jnp.zeros(64)}, jax.devices()[0])
    one_state = tx.init(one)
    x1, y1 = jax.device_put((x, y), jax.devices()[0])
    for _ in range(3):
        grads = jax.grad(loss_fn)(one, x1, y1)
        updates, one_state = tx.update(grads, one_state, one)
        one = gradtx.apply_updates(one, updates)
    assert_close(params, one)
    assert float(namespace["loss"]) > 0


# ---- grouped ---------------------------------------------------------------------------------


def test_grouped_state_keeps_large_leaves_sharded_like_their_params():
    """``grouped`` keeps leaves above ``max_grouped_size`` in their own buffers: their moments
    are laid out like the param (not replicated), the buffer of the small leaves is replicated,
    or split with ``zero_axis``; the sharded step gives the per-leaf numbers."""
    mesh = mesh_of((8,), ("data",))
    specs = {"big": P("data", None), "nested": {"small": P(), "bias": P()}}
    params = place(
        {
            "big": jnp.linspace(-1.0, 1.0, 64 * 32).reshape(64, 32),
            "nested": {"small": jnp.linspace(0.5, 1.5, 24), "bias": jnp.linspace(-2.0, 2.0, 8)},
        },
        mesh,
        specs,
    )
    tx = gradtx.grouped(gradtx.adam(1e-2), max_grouped_size=1024)
    shardings = gradtx.state_sharding(tx, params)
    moments = shardings.inner_state.inner_state[0]
    for ema in (moments.mu, moments.nu):
        assert set(ema) == {"float32", "leaf:big"}
        assert ema["leaf:big"].spec == P("data")
        assert ema["float32"].spec == P()
    zero = gradtx.state_sharding(tx, params, zero_axis="data").inner_state.inner_state[0]
    assert zero.mu["float32"].spec == P("data")  # the 32 small-leaf elements, split 8 ways

    state = jax.jit(tx.init, out_shardings=shardings)(params)
    assert state.inner_state.inner_state[0].mu["leaf:big"].sharding.spec == P("data")
    step = jax.jit(lambda p, s, g: _step_with(tx, p, s, g), out_shardings=(None, shardings))
    got, state = step(params, state, jax.tree.map(lambda x: 0.1 * x, params))
    reference = gradtx.adam(1e-2)
    want, _ = _step_with(
        reference, params, reference.init(params), jax.tree.map(lambda x: 0.1 * x, params)
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert got["big"].sharding.spec == P("data", None)
    assert state.inner_state.inner_state[0].mu["leaf:big"].sharding.spec == P("data")
