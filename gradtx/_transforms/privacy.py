"""Differential privacy: per-example clipping, summing and Gaussian noise (DP-SGD's aggregation),
and optax's per-example clipping functions (by the global norm, or layer by layer)."""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree
from gradtx._core.checks import _float_dtype, check_flag
from gradtx._core.hyper import ScalarOrSchedule, Value, live, scalar, value_as
from gradtx._core.numerics import check_non_negative
from gradtx._transforms.clipping import clip_all_by, clip_scalars
from gradtx._transforms.gradient_processing import _key_data, add_noise_leaf

_NON_NEGATIVE = (">= 0", lambda v: v >= 0)


def key_argument(owner: str, key: Any, seed: Any) -> tuple[np.ndarray, Any]:
    """``key`` or ``seed`` (exactly one) as ``(raw uint32 key data, implementation or None)``."""
    if key is not None and seed is not None:
        raise TypeError(f"{owner}: give key or seed, not both")
    if key is None and seed is None:
        raise TypeError(f"{owner}: key is required (an int seed or a jax.random key)")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer))
    ):
        raise TypeError(f"{owner}: seed must be an int, got {seed!r}")
    return _key_data(owner, seed if key is None else key)


def clipped_sums(leaves: list[jax.Array], l2_norm_clip: Value) -> list[jax.Array]:
    """``sum_i g_i min(1, C / ||g_i||)`` per leaf, over the examples ``i`` (the leaves' leading
    axis), each example clipped by its global norm (overflow-safe).

    Where every example's factor ``min(1, C / ||g_i||)`` is a normal number, the sums are
    contractions of the leaves with the factors: one pass over the per-example gradients for
    the norms and one for the sums, with nothing of the examples' size written. Otherwise (a
    norm beyond ``C`` by a factor of about 1e38) each example is clipped with the factor kept
    apart as powers of two, exact to rounding, and then summed.
    """
    root, e = _norms.scaled_example_norms(leaves)
    return clipped_sums_by(leaves, l2_norm_clip, root, e)


def clipped_sums_by(
    leaves: list[jax.Array], l2_norm_clip: Value, root: jax.Array, e: jax.Array
) -> list[jax.Array]:
    """:func:`clipped_sums` given the examples' norms ``root * 2**e``."""
    factors = {}
    for dtype in {_tree.real_dtype(g.dtype) for g in leaves}:
        within, r = clip_scalars(l2_norm_clip, root, e, dtype)  # elementwise: one per example
        factor = (r.quotient * r.factors[0] * r.factors[1]).astype(dtype)
        factors[dtype] = jnp.where(within, jnp.ones_like(factor), factor)
    normal = [(f >= jnp.finfo(f.dtype).tiny) | ~jnp.isfinite(f) for f in factors.values()]

    def contracted():
        return [
            jnp.tensordot(
                factors[_tree.real_dtype(g.dtype)].astype(g.dtype),
                g,
                axes=1,
                precision=jax.lax.Precision.HIGHEST,
            )
            for g in leaves
        ]

    def clipped_apart():
        clip = lambda example, r, k: clip_all_by(example, l2_norm_clip, r, k)  # noqa: E731
        return [jnp.sum(c, axis=0) for c in jax.vmap(clip)(leaves, root, e)]

    ok = functools.reduce(jnp.logical_and, [jnp.all(n) for n in normal])
    return _norms.choose(ok, contracted, clipped_apart, leaves)


def _check_examples(owner: str, updates: Any, params: Any) -> int:
    """The number of examples: the leading axis every leaf shares (and, given the params, the
    rest of each leaf's shape is its param's)."""
    paths_leaves = jax.tree_util.tree_flatten_with_path(updates)[0]
    scalars = [_tree.path_str(p) for p, g in paths_leaves if np.ndim(g) == 0]
    if scalars:
        raise ValueError(
            f"{owner}: the updates must be per-example gradients, with a leading axis of "
            f"examples (as jax.vmap of the gradient makes them); the leaf {scalars[0]!r} is a "
            f"scalar"
        )
    sizes = {_tree.path_str(p): np.shape(g)[0] for p, g in paths_leaves}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{path!r}: {n}" for path, n in list(sizes.items())[:5])
        raise ValueError(
            f"{owner}: every leaf must have the same number of examples along its first axis, "
            f"got {shown}"
        )
    if params is not None:
        per_example = jax.tree.map(
            lambda g: jax.ShapeDtypeStruct(np.shape(g)[1:], g.dtype), updates
        )
        problem = _tree.mismatch(params, per_example, "params", "per-example gradients")
        if problem is not None:
            raise ValueError(
                f"{owner}: each per-example gradient (the updates without their leading axis "
                f"of examples) must have its param's shape; {problem}"
            )
    examples = next(iter(sizes.values()), 1)
    if examples == 0:
        raise ValueError(f"{owner}: the updates hold 0 examples (their leading axis is empty)")
    return examples


class DifferentiallyPrivateAggregateState(NamedTuple):
    rng_key: jax.Array  # uint32 key data (shape [2] for threefry): the key of the next draw

    # names particular to DP-SGD, so their ranges are listed here rather than in the shared table
    live_ranges = {"l2_norm_clip": _NON_NEGATIVE, "noise_multiplier": _NON_NEGATIVE}


def _differentially_private_aggregate(
    l2_norm_clip: Value, noise_multiplier: Value, *, key_data: np.ndarray, impl: Any, owner: str
) -> GradientTransformation:
    def init(params):
        del params
        return DifferentiallyPrivateAggregateState(rng_key=jnp.asarray(key_data))

    def update(updates, state, params=None, **extra):
        del extra
        examples = _check_examples(owner, updates, params)
        leaves, treedef = jax.tree.flatten(updates)
        key = jax.random.wrap_key_data(state.rng_key, impl=impl)
        next_key, *draws = jax.random.split(key, len(leaves) + 1)
        # clipped and summed in at least float32: a bfloat16 example is not rounded once more
        wide = [g.astype(_tree.accumulation_dtype(g.dtype)) for g in leaves]
        sums = clipped_sums(wide, l2_norm_clip)
        dtype = scalar(l2_norm_clip).dtype
        stddev = value_as(noise_multiplier, dtype) * value_as(l2_norm_clip, dtype)
        out = []
        for g, c, draw in zip(leaves, sums, draws):
            noisy = add_noise_leaf(c, draw, stddev)
            out.append(_tree.divide(noisy, jnp.asarray(examples, noisy.real.dtype)).astype(g.dtype))
        new_state = DifferentiallyPrivateAggregateState(rng_key=jax.random.key_data(next_key))
        return treedef.unflatten(out), new_state

    return GradientTransformation(init, update)


def differentially_private_aggregate(
    l2_norm_clip: ScalarOrSchedule,
    noise_multiplier: ScalarOrSchedule,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""DP-SGD's aggregation: per-example gradients clipped, summed, noised and averaged.

    .. math::
      \tilde g = \frac1B \Big(\sum_{i=1}^B g_i \min\big(1, \tfrac{C}{\|g_i\|_2}\big)
      + \mathcal N(0, \sigma^2 C^2 I)\Big)

    with :math:`g_i` the gradient of example *i* (all leaves: :math:`\|g_i\|_2` is its global
    norm), *B* the number of examples, *C* = ``l2_norm_clip`` and σ = ``noise_multiplier``.
    Each example's influence on the sum is at most *C*, and the noise hides it: this is the
    Gaussian mechanism of Abadi et al.'s Algorithm 1 (the privacy accounting is not part of
    it). The noise is fresh for every element and every step; the key lives in the state (raw
    ``uint32`` key data), and with the same key the draws are ``optax.contrib``'s. A complex
    leaf gets independent noise of standard deviation σC in each of its parts (the real
    problem's).

    **The updates must carry a leading axis of examples**: each leaf has shape ``(B,
    *param.shape)``, as ``jax.vmap`` of a single example's gradient makes it (see the example).
    Put this transformation first in a chain; the result has the params' shapes. Accumulating
    gradients before it (``MultiSteps``) would mix examples: do not.

    Args:
      l2_norm_clip: *C* >= 0, the bound on each example's gradient norm (a float or a schedule).
      noise_multiplier: σ >= 0, the noise's standard deviation relative to *C* (a float or a
        schedule; 0 gives clipping and averaging only).
      key: an int seed or a ``jax.random`` key (typed, or the raw ``uint32`` kind). Required:
        without it the noise would not be reproducible (optax 0.2.8 falls back to key 0 with a
        warning).
      seed: an int seed, for code written against optax's older argument name.

    Returns:
      A :class:`GradientTransformation`; its state keeps the key.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> def loss(params, x, y):  # one example
      ...     return (params["w"] @ x - y) ** 2
      >>> params = {"w": jnp.zeros(2)}
      >>> xs, ys = jnp.array([[3.0, 4.0], [0.1, 0.0]]), jnp.array([1.0, 1.0])
      >>> per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
      >>> per_example["w"].shape  # (examples, *param shape)
      (2, 2)
      >>> tx = gradtx.differentially_private_aggregate(1.0, noise_multiplier=0.0, key=0)
      >>> updates, _ = tx.update(per_example, tx.init(params), params)
      >>> updates["w"]  # (-[0.6, 0.8] - [0.2, 0]) / 2: the first example clipped to norm 1
      Array([-0.4, -0.4], dtype=float32)

    References:
      Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar and Zhang, *Deep Learning with
      Differential Privacy*, 2016, Algorithm 1.
    """
    owner = "differentially_private_aggregate"
    key_data, impl = key_argument(owner, key, seed)
    build = functools.partial(
        _differentially_private_aggregate, key_data=key_data, impl=impl, owner=owner
    )
    return live(
        owner,
        build,
        ranges=DifferentiallyPrivateAggregateState.live_ranges,
        l2_norm_clip=l2_norm_clip,
        noise_multiplier=noise_multiplier,
    )


# ---- optax's per-example clipping functions ------------------------------------------------


def _examples(owner: str, grads: PyTree) -> tuple[list[jax.Array], Any]:
    """The leaves of ``grads`` (checked to be numeric arrays sharing a leading axis of examples)
    and their structure."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(grads)
    for path, g in paths_leaves:
        dtype = None if isinstance(g, (str, bytes)) else getattr(g, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.number):
            raise TypeError(
                f"{owner}: grads must be numeric arrays, got {type(g).__name__} at "
                f"{_tree.path_str(path)!r}"
            )
    shapes = {_tree.path_str(p): np.shape(g) for p, g in paths_leaves}
    if any(len(s) == 0 for s in shapes.values()) or len({s[0] for s in shapes.values()}) > 1:
        shown = ", ".join(f"{path!r}: {shape}" for path, shape in list(shapes.items())[:5])
        raise ValueError(
            f"{owner}: grads must be per-example gradients, every leaf with the same number of "
            f"examples along its first axis; got shapes {shown}"
        )
    return [jnp.asarray(g) for _, g in paths_leaves], treedef


def _clip_examples(leaves: list[jax.Array], clip: Any) -> tuple[list[jax.Array], jax.Array]:
    """The clipped sums of ``leaves`` (one per leaf) and the number of examples clipped."""
    if not leaves:
        return [], jnp.sum(jnp.zeros(0, bool))
    # summed in at least float32, integer gradients as floats: the dtype optax's sum has
    wide = [
        g.astype(
            _tree.accumulation_dtype(
                g.dtype if jnp.issubdtype(g.dtype, jnp.inexact) else _float_dtype()
            )
        )
        for g in leaves
    ]
    root, e = _norms.scaled_example_norms(wide)
    sums = clipped_sums_by(wide, clip, root, e)
    # a NaN norm is not counted: optax's factor min(1, C / NaN) becomes 1
    clipped = _norms.from_scaled(root, e) > value_as(clip, root.dtype)
    return sums, jnp.sum(clipped)


def per_example_global_norm_clip(
    grads: PyTree, l2_norm_clip: jax.typing.ArrayLike
) -> tuple[PyTree, jax.Array]:
    r"""Clips each example's gradient to global norm ``l2_norm_clip`` and sums over the examples.

    .. math:: \sum_{i=1}^B g_i \min\big(1, C / \|g_i\|_2\big)

    with :math:`\|g_i\|_2` the norm of example *i* over all leaves. optax's function (the
    clipping and summing step of DP-SGD, without noise; see
    :func:`differentially_private_aggregate`). The norms are taken in at least float32 without
    overflow, and the sums formed in at least float32 (the dtype optax's sum has).

    Args:
      grads: a tree of per-example gradients: every leaf has the examples along its first
        axis, *B* of them (as ``jax.vmap`` of a gradient makes it).
      l2_norm_clip: *C* >= 0, the bound on each example's norm (``inf``: no clipping; 0: every
        example with a nonzero gradient is dropped).

    Returns:
      ``(sums, num_clipped)``: a tree of ``grads``' structure, each leaf the sum over the
      examples of the clipped gradients, and the number of examples whose norm exceeded *C*
      (an int scalar).

    Raises:
      TypeError: for a leaf that is not a numeric array, or an ``l2_norm_clip`` that is not a
        real number or array.
      ValueError: for a scalar leaf or leaves with different numbers of examples, or a
        negative ``l2_norm_clip``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> grads = [jnp.array([[0.0, 0.0, 0.0], [0.0, 3.0, 4.0], [0.3, 0.0, 0.4]])]
      >>> sums, num_clipped = gradtx.per_example_global_norm_clip(grads, 1.0)
      >>> sums[0], int(num_clipped)  # [0, 0.6, 0.8] + [0.3, 0, 0.4]: one example clipped
      (Array([0.3, 0.6, 1.2], dtype=float32), 1)

    References:
      Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar and Zhang, *Deep Learning with
      Differential Privacy*, 2016.
    """
    owner = "per_example_global_norm_clip"
    check_non_negative(owner, "l2_norm_clip", l2_norm_clip)
    leaves, treedef = _examples(owner, grads)
    sums, num_clipped = _clip_examples(leaves, l2_norm_clip)
    return treedef.unflatten(sums), num_clipped


def per_example_layer_norm_clip(
    grads: PyTree, global_l2_norm_clip: jax.typing.ArrayLike, uniform: bool = True
) -> tuple[PyTree, PyTree]:
    r"""Clips each example's gradient leaf by leaf (per layer) and sums over the examples.

    .. math:: \sum_{i=1}^B g_{i,l} \min\big(1, C_l / \|g_{i,l}\|_2\big) \quad
       \text{for each leaf } l, \qquad
       C_l = \begin{cases} C / \sqrt{L} & \text{uniform} \\
       C \sqrt{D_l / D} & \text{otherwise} \end{cases}

    for *L* leaves, :math:`D_l` the size of one example of leaf *l* and *D* their total: the
    bounds :math:`C_l` add up (in squares) to *C*, so an example's global norm stays within
    *C*. With one leaf it is :func:`per_example_global_norm_clip`. optax's function, with its
    numerics as there.

    Args:
      grads: a tree of per-example gradients (every leaf with the *B* examples along its
        first axis).
      global_l2_norm_clip: *C* >= 0, the bound on each example's global norm.
      uniform: the same bound for every leaf (``True``, optax's default) or bounds in
        proportion to the square roots of the leaves' sizes.

    Returns:
      ``(sums, num_clipped)``: two trees of ``grads``' structure: each leaf's sum of clipped
      examples, and each leaf's number of examples clipped (int scalars).

    Raises:
      TypeError: for a leaf that is not a numeric array, a ``global_l2_norm_clip`` that is not
        a real number or array, or a ``uniform`` that is not a bool.
      ValueError: for a scalar leaf or leaves with different numbers of examples, or a
        negative ``global_l2_norm_clip``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> grads = {"a": jnp.array([[3.0], [0.5]]), "b": jnp.array([[0.0], [4.0]])}
      >>> sums, num_clipped = gradtx.per_example_layer_norm_clip(grads, 2.0**0.5)
      >>> sums["a"], sums["b"]  # each leaf's examples clipped to norm 2**0.5 / 2**0.5 = 1
      (Array([1.5], dtype=float32), Array([1.], dtype=float32))
      >>> {k: int(v) for k, v in num_clipped.items()}
      {'a': 1, 'b': 1}

    References:
      McMahan, Ramage, Talwar and Zhang, *Learning Differentially Private Recurrent Language
      Models*, 2018 (per-layer clipping).
    """
    owner = "per_example_layer_norm_clip"
    check_non_negative(owner, "global_l2_norm_clip", global_l2_norm_clip)
    uniform = check_flag(owner, "uniform", uniform)
    leaves, treedef = _examples(owner, grads)
    if uniform:
        shares = [1.0 / len(leaves)] * len(leaves)
    else:
        sizes = [math.prod(g.shape[1:]) for g in leaves]
        total = sum(sizes)
        shares = [size / total if total else 0.0 for size in sizes]
    sums, counts = [], []
    for g, share in zip(leaves, shares):
        (total_g,), count = _clip_examples([g], global_l2_norm_clip * share**0.5)
        sums.append(total_g)
        counts.append(count)
    return treedef.unflatten(sums), treedef.unflatten(counts)
