"""Gradient processing: annealed Gaussian gradient noise, gradient centralization, normalization
to unit global norm."""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation, stateless
from gradtx._core.hyper import ScalarOrSchedule, Value, live, scalar, value_as

# ---- add_noise -----------------------------------------------------------------------------


def noise_stddev(eta: Value, gamma: Value, count: jax.Array) -> jax.Array:
    """``sqrt(eta / count**gamma)``: the standard deviation at update ``count`` (1 for the first),
    in the hyperparameters' precision."""
    dtype = scalar(eta).dtype
    t = count.astype(dtype)
    return jnp.sqrt(value_as(eta, dtype) / t ** value_as(gamma, dtype))


def add_noise_leaf(g: jax.Array, key: jax.Array, stddev: jax.Array) -> jax.Array:
    """``g + stddev * n`` with ``n`` standard normal, drawn and added in at least float32.

    For a complex ``g`` the real and imaginary parts get independent noise of that standard
    deviation each, as the equivalent real problem would (``jax.random.normal`` of a complex
    dtype would give each part variance 1/2).
    """
    wide = _tree.accumulation_dtype(g.dtype)
    real = _tree.real_dtype(wide)
    if jnp.iscomplexobj(g):
        n = jax.random.normal(key, (2, *g.shape), real)
        n = jax.lax.complex(n[0], n[1])
    else:
        n = jax.random.normal(key, g.shape, wide)
    return (g.astype(wide) + stddev.astype(real).astype(wide) * n).astype(g.dtype)


class AddNoiseState(NamedTuple):
    count: jax.Array  # int32 []: updates so far (the annealing step), saturating
    rng_key: jax.Array  # uint32 key data (shape [2] for threefry): the key of the next draw


def _key_data(owner: str, key: Any) -> tuple[np.ndarray, Any]:
    """A key argument as ``(raw uint32 key data, implementation or None for the default)``.

    The data is kept on the host: each ``init`` puts a fresh copy in its state, so that a step
    donating one state cannot delete the key of the next ``init``.
    """
    if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool):
        # evaluated now even when the transformation is built inside a traced function
        with jax.ensure_compile_time_eval():
            return np.asarray(jax.random.key_data(jax.random.key(int(key)))), None
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{owner}: key must be a single key, got shape {key.shape}")
        with jax.ensure_compile_time_eval():  # a concrete key, inside a traced function
            return np.asarray(jax.random.key_data(key)), jax.random.key_impl(key)
    raw_shape = jax.random.key_data(jax.random.key(0)).shape
    if (
        isinstance(key, (jax.Array, np.ndarray))
        and key.dtype == np.uint32
        and key.shape == raw_shape
    ):
        return np.asarray(key), None
    raise TypeError(
        f"{owner}: key must be an int seed or a jax.random key, got {type(key).__name__}"
    )


def _add_noise(eta: Value, gamma: Value, *, key_data: np.ndarray, impl: Any):
    def init(params):
        del params
        return AddNoiseState(count=_tree.zero_count(), rng_key=jnp.asarray(key_data))

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        key = jax.random.wrap_key_data(state.rng_key, impl=impl)
        next_key, draw = jax.random.split(key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(draw, len(leaves)) if leaves else []
        stddev = noise_stddev(eta, gamma, count)
        noisy = [add_noise_leaf(g, k, stddev) for g, k in zip(leaves, keys)]
        new_state = AddNoiseState(count=count, rng_key=jax.random.key_data(next_key))
        return treedef.unflatten(noisy), new_state

    return GradientTransformation(init, update)


def add_noise(
    eta: ScalarOrSchedule,
    gamma: ScalarOrSchedule,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""Adds annealed Gaussian noise to the updates.

    .. math::
      g_t \leftarrow g_t + \mathcal N(0, \sigma_t^2), \qquad \sigma_t^2 = \frac{\eta}{t^\gamma}

    with *t* = 1 at the first update (the paper's :math:`(1 + t)^\gamma` with its *t* from 0),
    fresh noise for every element. The key lives in the state (as raw ``uint32`` key data, so
    the state checkpoints like any array): the same key gives the same noise, and the draws
    are those of ``optax.add_noise`` with the same key. The noise is drawn and added in at
    least float32, then cast to each update's dtype.

    Args:
      eta: η >= 0, the variance at the first step (the paper tries 0.01, 0.3 and 1.0).
      gamma: γ >= 0, the annealing exponent (0.55 in the paper).
      key: an int seed or a ``jax.random`` key (typed, or the raw ``uint32`` kind). Required:
        without it the noise would not be reproducible.
      seed: an int seed, for code written against optax's older argument name.

    Returns:
      A :class:`GradientTransformation`; its state keeps the step count and the key.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.add_noise(eta=0.01, gamma=0.55, key=0)
      >>> g = {"w": jnp.zeros(10_000)}
      >>> noisy, state = tx.update(g, tx.init(g))
      >>> round(float(noisy["w"].std()), 2)  # sqrt(0.01)
      0.1

    References:
      Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep Networks*, 2015.
    """
    owner = "add_noise"
    if key is not None and seed is not None:
        raise TypeError(f"{owner}: give key or seed, not both")
    if key is None and seed is None:
        raise TypeError(f"{owner}: key is required (an int seed or a jax.random key)")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer))
    ):
        raise TypeError(f"{owner}: seed must be an int, got {seed!r}")
    key_data, impl = _key_data(owner, seed if key is None else key)
    build = functools.partial(_add_noise, key_data=key_data, impl=impl)
    return live(owner, build, eta=eta, gamma=gamma)


# ---- centralize --------------------------------------------------------------------------


def centralize_leaf(g: jax.Array, unit_axis: int, path: str = "") -> jax.Array:
    """``g`` minus its mean over every axis but ``unit_axis`` (leaves of ndim <= 1 unchanged)."""
    if g.ndim <= 1:
        return g
    if not -g.ndim <= unit_axis < g.ndim:
        raise ValueError(
            f"centralize: unit_axis {unit_axis} is out of range for the leaf {path!r} of "
            f"shape {g.shape}"
        )
    keep = unit_axis % g.ndim
    axes = tuple(a for a in range(g.ndim) if a != keep)
    wide = g.astype(_tree.accumulation_dtype(g.dtype))
    return (wide - jnp.mean(wide, axis=axes, keepdims=True)).astype(g.dtype)


def centralize(*, unit_axis: int = -1) -> GradientTransformation:
    r"""Gradient centralization: each unit's gradient is made to have zero mean.

    .. math:: G_{\cdot, i} \leftarrow G_{\cdot, i} - \operatorname{mean}(G_{\cdot, i})

    for every weight tensor (ndim > 1), where *i* indexes the output units along ``unit_axis``
    and the mean runs over all other axes (a unit's fan-in). Biases, scales and scalars
    (ndim <= 1) pass unchanged.

    The paper writes a layer's weight as :math:`W \in \mathbb{R}^{C_{in} \times C_{out}}` (for
    convolutions :math:`C_{in} k_1 k_2 \times C_{out}`) and centres each column. In Flax's and
    Haiku's layouts (``Dense``: ``(in, out)``; ``Conv``: ``(..., in, out)``) the output units are
    the last axis, hence the default. ``optax.centralize`` keeps the first axis instead
    (PyTorch's ``(out, in, ...)`` layout), which for a Flax kernel centres over the outputs;
    ``centralize(unit_axis=0)`` reproduces it.

    Args:
      unit_axis: the axis of the output units, kept; the mean is over the others.

    Returns:
      A stateless :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.centralize()
      >>> g = {"kernel": jnp.array([[1.0, 2.0], [3.0, 6.0]]), "bias": jnp.array([1.0, 2.0])}
      >>> out, _ = tx.update(g, tx.init(g))
      >>> out["kernel"]  # each column (output unit) centred
      Array([[-1., -2.],
             [ 1.,  2.]], dtype=float32)
      >>> out["bias"]
      Array([1., 2.], dtype=float32)

    References:
      Yong, Huang, Hua and Zhang, *Gradient Centralization: A New Optimization Technique for
      Deep Neural Networks*, 2020.
    """
    if isinstance(unit_axis, bool) or not isinstance(unit_axis, (numbers.Integral, np.integer)):
        raise TypeError(f"centralize: unit_axis must be an int, got {unit_axis!r}")
    unit_axis = int(unit_axis)

    def centre(updates, params):
        _tree.check_leaves("centralize", updates, "updates")
        return jax.tree_util.tree_map_with_path(
            lambda path, g: centralize_leaf(g, unit_axis, _tree.path_str(path)), updates
        )

    def init(params):
        _tree.check_leaves("centralize", params, "params")
        return EmptyState()

    return GradientTransformation(init, stateless(centre).update)


# ---- normalize ---------------------------------------------------------------------------


def _unit(updates, params):
    del params
    root, e = _norms.scaled_global_norm(updates)
    # an all-zero update stays 0 (optax's gives 0 / 0 = NaN there); a NaN norm passes on
    zero = root == 0
    safe = jnp.where(zero, jnp.ones_like(root), root)
    one = jnp.ones_like(root)

    def leaf(g):
        return jnp.where(zero, jnp.zeros_like(g), _norms.times_ratio(g, one, safe, e))

    return jax.tree.map(leaf, updates)


def normalize() -> GradientTransformation:
    r"""Divides the updates by their global norm: a unit-length step direction.

    .. math:: u \leftarrow g / \|g\|_2, \qquad \|g\|_2 = \sqrt{\textstyle\sum_l \|g_l\|^2}

    the norm of all leaves together (complex leaves by :math:`|g|`), taken in at least float32,
    exact to rounding for every finite float (no overflow of the squares). No ε:
    ``optax.contrib.normalize``'s numbers, except that an all-zero update stays 0 where
    optax's is NaN. SAM's ascent direction is ``chain(normalize(), sgd(rho))``;
    :func:`normalize_by_update_norm` adds a scale and an ε.

    Returns:
      A stateless :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.normalize()
      >>> g = {"a": jnp.array([3.0]), "b": jnp.array([0.0, 4.0])}
      >>> out, _ = tx.update(g, tx.init(g))
      >>> out["a"], out["b"]
      (Array([0.6], dtype=float32), Array([0. , 0.8], dtype=float32))

    References:
      Foret, Kleiner, Mobahi and Neyshabur, *Sharpness-Aware Minimization for Efficiently
      Improving Generalization*, 2021 (the normalized ascent step).
    """
    owner = "normalize"

    def init(params):
        _tree.check_leaves(owner, params, "params")
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del extra
        _tree.check_leaves(owner, updates, "updates")
        return _unit(updates, params), state

    return GradientTransformation(init, update)
