"""Clipping: by value, by each tensor's norm, by the global norm, and adaptively (unit-wise, with
optax's unit-wise norm and clipping helpers)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, stateless
from gradtx._core.checks import MissingArgumentError, _float_dtype
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as
from gradtx._core.numerics import _as, _check_array, _promoted_dtype, check_non_negative


def _clip(max_delta: Value) -> GradientTransformation:
    def clip_leaf(g):
        c = value_as(max_delta, g.real.dtype)
        if jnp.iscomplexobj(g):  # the real and imaginary parts, as the equivalent real problem
            return jax.lax.complex(jnp.clip(g.real, -c, c), jnp.clip(g.imag, -c, c))
        return jnp.clip(g, -c, c)

    return stateless(lambda updates, params: jax.tree.map(clip_leaf, updates))


def clip(max_delta: ScalarOrSchedule) -> GradientTransformation:
    r"""Clips every update element to ``[-max_delta, max_delta]``.

    .. math:: u_i \leftarrow \max(-c, \min(g_i, c))

    A complex element has its real and imaginary parts clipped each (as the equivalent real
    problem on the (real, imaginary) pairs would). Each element is clipped on its own, so the
    direction of the update can change; :func:`clip_by_global_norm` keeps it.

    Args:
      max_delta: *c* > 0, the largest magnitude an element keeps; a float or a schedule. No
        default, as in optax.

    Returns:
      A :class:`GradientTransformation` whose state holds only the step count and the live
      ``max_delta`` (no statistics of the updates).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.clip(1.0)
      >>> g = {"w": jnp.array([-3.0, 0.5, 2.0])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([-1. ,  0.5,  1. ], dtype=float32)

    References:
      Mikolov, *Statistical Language Models Based on Neural Networks*, PhD thesis, 2012
      (element-wise clipping); Pascanu, Mikolov and Bengio, *On the difficulty of training
      recurrent neural networks*, 2013.
    """
    return live("clip", _clip, max_delta=max_delta)


def clip_scalars(max_norm: Value, root: jax.Array, e: jax.Array, dtype: Any):
    """What clipping values of ``dtype`` by the norm ``root * 2**e`` needs, computed once for
    all the leaves it applies to: whether the norm is within ``c``, and the ratio ``c / norm``."""
    c = value_as(max_norm, root.dtype)
    return _norms.from_scaled(root, e) <= c, _norms.ratio(c, root, e, dtype)


def clipped(g: jax.Array, scalars) -> jax.Array:
    """``g * min(1, c / ||g||)`` from :func:`clip_scalars`: ``g`` itself where the norm is at
    most ``c`` (even 0), else ``c g / ||g||`` exact to rounding however small ``c / ||g||`` is
    (a factor below the dtype's normal range would lose digits or be flushed to 0, and a norm
    beyond float32's largest value is inf); NaN where the norm is NaN."""
    within, ratio = scalars
    return jnp.where(within, g, _norms.times(g, ratio))


def clip_leaf(g: jax.Array, max_norm: Value, root: jax.Array, e: jax.Array) -> jax.Array:
    """``g`` clipped to norm ``c`` by its norm ``root * 2**e`` (see :func:`clipped`)."""
    return clipped(g, clip_scalars(max_norm, root, e, g.dtype))


def clip_all_by(updates, max_norm: Value, root: jax.Array, e: jax.Array):
    """Every leaf clipped by one norm ``root * 2**e``, its scalars computed once per dtype."""
    scalars = per_dtype(lambda dtype: clip_scalars(max_norm, root, e, dtype))
    return jax.tree.map(lambda g: clipped(g, scalars(g.dtype)), updates)


def _clip_by_norm(max_norm: Value, *, axes) -> GradientTransformation:
    def clip_all(updates, params):
        leaves, treedef = jax.tree.flatten(updates)
        norms = _norms.scaled_norms(leaves, axes)
        return treedef.unflatten([clip_leaf(g, max_norm, *n) for g, n in zip(leaves, norms)])

    return stateless(clip_all)


def clip_by_norm(max_norm: ScalarOrSchedule, *, axis_name=None) -> GradientTransformation:
    r"""Rescales each tensor whose norm exceeds ``max_norm`` down to that norm.

    .. math:: g_l \leftarrow g_l \cdot \min(1, c / \|g_l\|) \quad \text{for every leaf } l

    Each leaf is clipped on its own, by its own L2 norm (taken in at least float32): a leaf
    within the bound is left as it is, whatever the others' norms. :func:`clip_by_global_norm`
    clips all leaves together instead.

    Args:
      max_norm: *c* > 0, a float or a schedule. No default.
      axis_name: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split along;
        see :func:`clip_by_global_norm`. Default ``None``: each leaf is a whole array.

    Returns:
      A :class:`GradientTransformation` whose state holds only the step count and the live
      ``max_norm`` (no statistics of the updates).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.clip_by_norm(1.0)
      >>> g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}  # norms 5 and 0.5
      >>> updates, _ = tx.update(g, tx.init(g))
      >>> updates["a"], updates["b"]  # only "a" is rescaled, to norm 1
      (Array([0.6, 0.8], dtype=float32), Array([0.3, 0.4], dtype=float32))

    References:
      Pascanu, Mikolov and Bengio, *On the difficulty of training recurrent neural networks*,
      2013 (norm clipping, here applied to each tensor).
    """
    build = functools.partial(_clip_by_norm, axes=_tree.axis_names("clip_by_norm", axis_name))
    return live("clip_by_norm", build, max_norm=max_norm)


def _clip_by_global_norm(max_norm: Value, *, axes) -> GradientTransformation:
    def clip_all(updates, params):
        leaves, treedef = jax.tree.flatten(updates)
        names = sorted({jnp.result_type(g).name for g in leaves})

        def scalars(root, e):  # computed once, inside the norm's branches
            out = {}
            for name in names:
                within, r = clip_scalars(max_norm, root, e, jnp.dtype(name))
                out[name] = (within, r.factors, r.quotient)
            return out

        computed = _norms.scaled_global_norm(updates, axes, then=scalars)

        def leaf(g):
            within, factors, quotient = computed[jnp.result_type(g).name]
            # the product's dtype, as norms.ratio forms it: the wider of g's and the norm's
            ratio = _norms.Ratio(_tree.wider(g.dtype, quotient.dtype), factors, quotient)
            return clipped(g, (within, ratio))

        return treedef.unflatten([leaf(g) for g in leaves])

    return stateless(clip_all)


def clip_by_global_norm(max_norm: ScalarOrSchedule, *, axis_name=None) -> GradientTransformation:
    r"""Rescales all updates together when their global norm exceeds ``max_norm``.

    .. math:: g \leftarrow g \cdot \min(1, c / \|g\|_2), \quad
       \|g\|_2 = \sqrt{\textstyle\sum_l \|g_l\|^2}

    The direction is kept, which is why it is usually preferred to clipping by value. The norm
    is taken in at least float32.

    Args:
      max_norm: *c* > 0, a float or a schedule. No default, as in optax.
      axis_name: inside ``shard_map`` or ``pmap``, the mesh axis (or tuple of axes) along which
        the leaves are split into shards: the sums of squares are added across the shards
        (one ``psum`` of a scalar), so the norm is that of the whole arrays. A leaf that
        ``shard_map`` knows to be replicated along an axis is not summed over it; under
        ``pmap`` every leaf counts as a shard. Leave it ``None`` under ``jit`` with
        shardings, where XLA computes global values itself, and for replicated gradients
        (after a ``pmean``). Default ``None`` (optax's function has no such argument).

    Returns:
      A :class:`GradientTransformation` whose state holds only the step count and the live
      ``max_norm`` (no statistics of the updates).

    Example:
      Two leaves of norms 3 and 4 are clipped together, by their global norm 5:

      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.clip_by_global_norm(1.0)
      >>> g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([0.0, 4.0])}
      >>> updates, _ = tx.update(g, tx.init(g))
      >>> updates["a"], updates["b"]
      (Array([0.6, 0. ], dtype=float32), Array([0. , 0.8], dtype=float32))

      Parameters split along ``"model"`` inside ``shard_map``; one ``psum`` of a scalar:

      >>> from jax.sharding import PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("model",))
      >>> tx = gradtx.clip_by_global_norm(1.0, axis_name="model")
      >>> def clipped(g):
      ...     return tx.update(g, tx.init(g))[0]
      >>> g = jax.device_put(jnp.array([3.0, 4.0]), jax.NamedSharding(mesh, P("model")))
      >>> jax.shard_map(clipped, mesh=mesh, in_specs=P("model"), out_specs=P("model"))(g)
      Array([0.6, 0.8], dtype=float32)

    References:
      Pascanu, Mikolov and Bengio, *On the difficulty of training recurrent neural networks*,
      2013.
    """
    axes = _tree.axis_names("clip_by_global_norm", axis_name)
    build = functools.partial(_clip_by_global_norm, axes=axes)
    return live("clip_by_global_norm", build, max_norm=max_norm)


# ---- adaptive clipping -----------------------------------------------------------------------


def unit_axes(
    shape: tuple[int, ...],
    axis: int | tuple[int, ...] | None,
    path: str = "",
    owner: str = "adaptive_grad_clip",
    subject: str | None = None,
):
    """The axes a unit-wise norm sums over (None: the whole leaf).

    By default: scalars and vectors (once size-1 axes are dropped) as a whole; ``(in, out)``
    and ``(in, heads, out)`` kernels over axis 0; ``HWIO`` convolutions over ``(0, 1, 2)``;
    ``DHWIO`` over ``(0, 1, 2, 3)``, as in the NFNets code and optax. Errors name ``owner``
    and ``subject`` (default: the leaf at ``path``).
    """
    subject = subject or f"the leaf {path!r}"
    if axis is not None:
        axes = (axis,) if isinstance(axis, int) else axis
        for a in axes:
            if not -len(shape) <= a < len(shape):
                raise ValueError(
                    f"{owner}: axis {a} is out of range for {subject} of shape {shape}"
                )
        return axes
    if sum(d != 1 for d in shape) <= 1:
        return None
    by_rank = {2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}
    if len(shape) not in by_rank:
        raise ValueError(
            f"{owner}: no default unit-wise norm for {subject} of shape {shape} (ndim "
            f"{len(shape)}); give axis, the axes each unit's norm runs over"
        )
    return by_rank[len(shape)]


def _check_axis(owner: str, axis: Any) -> int | tuple[int, ...] | None:
    """``axis`` as None, an int or a tuple of ints; TypeError for anything else."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if not isinstance(axes, tuple) or not all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes
    ):
        raise TypeError(f"{owner}: axis must be None, an int or a tuple of ints, got {axis!r}")
    return int(axis) if isinstance(axis, (int, np.integer)) else tuple(int(a) for a in axes)


def unitwise_norm(x: jax.typing.ArrayLike, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    r"""The L2 norm of each unit of ``x``, broadcast back to ``x``'s shape.

    .. math:: \|x_u\|_2 \text{ at every element of unit } u

    A unit is the slice of ``x`` that ``axis`` runs over; by default, chosen by rank as in the
    NFNets code and optax: a scalar or vector (size-1 axes aside) is one unit, ``(in, out)``
    and ``(in, heads, out)`` kernels are normed over axis 0, ``HWIO`` convolutions over
    ``(0, 1, 2)``, ``DHWIO`` over ``(0, 1, 2, 3)``. The norms are taken in at least float32
    without overflow or underflow (optax's overflow to ``inf`` beyond about 1.8e19 in float32)
    and returned in ``x``'s real dtype; their gradient at 0 is 0.

    Args:
      x: an array (a gradient or a param).
      axis: the axes each unit's norm runs over (an int or a tuple of ints); ``None`` for the
        default by rank, which needs ``x`` of rank at most 5.

    Returns:
      An array of ``x``'s shape: each element holds the norm of its unit.

    Raises:
      TypeError: for an ``x`` that is not a numeric array, or an ``axis`` that is not None, an
        int or a tuple of ints.
      ValueError: for an axis out of range, or ``axis=None`` with ``x`` of rank above 5.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> gradtx.unitwise_norm(jnp.array([[3.0, 0.0], [4.0, 1.0]]))  # columns' norms 5 and 1
      Array([[5., 1.],
             [5., 1.]], dtype=float32)

    References:
      Brock, De, Smith and Simonyan, *High-Performance Large-Scale Image Recognition Without
      Normalization*, 2021.
    """
    owner = "unitwise_norm"
    x = _check_array(owner, "x", x)
    axes = unit_axes(x.shape, _check_axis(owner, axis), owner=owner, subject="x")
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(_float_dtype())  # as jnp.sqrt of an integer sum
    (norm,) = _norms.unit_norms([x], [axes])
    return jnp.broadcast_to(norm.astype(_tree.real_dtype(x.dtype)), x.shape)


def unitwise_clip(
    g_norm: jax.typing.ArrayLike,
    max_norm: jax.typing.ArrayLike,
    grad: jax.typing.ArrayLike,
    div_eps: jax.typing.ArrayLike = 1e-6,
) -> jax.Array:
    r"""Rescales ``grad`` to norm ``max_norm`` wherever its (unit-wise) norm ``g_norm`` exceeds it.

    .. math:: g \leftarrow \begin{cases} g & \text{if } \|g\| < c \\
       g\, c / \max(\|g\|, \epsilon) & \text{otherwise} \end{cases}

    element by element, with ``g_norm`` and ``max_norm`` given for every element of ``grad``
    (as :func:`unitwise_norm` gives them). optax's helper of adaptive gradient clipping; ε only
    keeps the division finite.

    Args:
      g_norm: ‖g‖, the norm of each element's unit, of ``grad``'s shape.
      max_norm: *c*, the largest norm allowed for each element's unit, of ``grad``'s shape.
      grad: the gradient.
      div_eps: ε >= 0, the least divisor (optax's default 1e-6).

    Returns:
      The clipped gradient, in the dtype optax's arithmetic gives (``grad``'s, for arguments of
      one dtype).

    Raises:
      TypeError: for an argument that is not a numeric array or number.
      ValueError: if the three arrays' shapes differ, or for a negative ``div_eps``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> g = jnp.array([[3.0, 0.1], [4.0, 0.0]])
      >>> gradtx.unitwise_clip(gradtx.unitwise_norm(g), jnp.ones_like(g), g)  # column 0 to norm 1
      Array([[0.6, 0.1],
             [0.8, 0. ]], dtype=float32)

    References:
      Brock, De, Smith and Simonyan, *High-Performance Large-Scale Image Recognition Without
      Normalization*, 2021.
    """
    owner = "unitwise_clip"
    g_norm = _check_array(owner, "g_norm", g_norm)
    max_norm = _check_array(owner, "max_norm", max_norm)
    grad = _check_array(owner, "grad", grad)
    check_non_negative(owner, "div_eps", div_eps)
    for name, x in (("max_norm", max_norm), ("grad", grad)):
        if x.shape != g_norm.shape:
            raise ValueError(
                f"{owner}: g_norm and {name} must have one shape, got {g_norm.shape} and {x.shape}"
            )
    dtype = _promoted_dtype(g_norm, max_norm, grad, div_eps)
    real = _tree.real_dtype(dtype)
    g_norm, max_norm, grad = g_norm.astype(real), max_norm.astype(real), grad.astype(dtype)
    clipped = _tree.times(grad, max_norm / jnp.maximum(g_norm, _as(div_eps, real)))
    return jnp.where(g_norm < max_norm, grad, clipped)


def adaptive_clip_leaf(g, g_norm, p_norm, clipping: Value, eps: Value):
    """``g``'s units rescaled to norm ``clipping * max(||p unit||, eps)`` where they exceed it,
    given the units' norms (as :func:`gradtx._core.norms.unit_norms` gives them)."""
    dtype = g_norm.dtype
    max_norm = value_as(clipping, dtype) * jnp.maximum(p_norm, value_as(eps, dtype))
    over = g_norm > max_norm
    # the inner where keeps the division (and its gradient) finite where nothing is clipped
    factor = jnp.where(over, max_norm / jnp.where(over, g_norm, jnp.ones_like(g_norm)), 1)
    return _tree.times(g.astype(_tree.wider(g.dtype, dtype)), factor).astype(g.dtype)


def _adaptive_grad_clip(clipping: Value, eps: Value, *, axis) -> GradientTransformation:
    def clip_all(updates, params):
        if params is None:
            raise MissingArgumentError(
                "adaptive_grad_clip: update needs params (the clipping threshold is relative "
                "to their norms)"
            )
        _tree.check_match("adaptive_grad_clip", (updates, params), ("updates", "params"))
        paths, treedef = jax.tree_util.tree_flatten_with_path(updates)
        grads, params = [g for _, g in paths], jax.tree.leaves(params)
        axes = [unit_axes(g.shape, axis, _tree.path_str(path)) for path, g in paths]
        norms = _norms.unit_norms(grads + params, axes + axes)
        g_norms, p_norms = norms[: len(grads)], norms[len(grads) :]
        clipped = [
            adaptive_clip_leaf(g, gn, pn, clipping, eps)
            for g, gn, pn in zip(grads, g_norms, p_norms)
        ]
        return treedef.unflatten(clipped)

    return stateless(clip_all)


def adaptive_grad_clip(
    clipping: ScalarOrSchedule,
    eps: ScalarOrSchedule = 1e-3,
    axis: int | tuple[int, ...] | None = None,
) -> GradientTransformation:
    r"""Adaptive gradient clipping (NFNets): unit-wise, relative to the params' norms.

    .. math::
      G_i \leftarrow \begin{cases}
        \lambda \dfrac{\|W_i\|^\star}{\|G_i\|}\, G_i & \text{if } \|G_i\| > \lambda \|W_i\|^\star
        \\ G_i & \text{otherwise}\end{cases}, \qquad \|W_i\|^\star = \max(\|W_i\|, \epsilon)

    for each unit *i* (an output unit's fan-in: a column of an ``(in, out)`` kernel, a
    ``(kh, kw, in)`` slice of an ``HWIO`` convolution); scalars and vectors are one unit. ε keeps
    zero-initialised weights from having their gradients clipped to zero. Norms are taken in at
    least float32.

    Args:
      clipping: λ > 0, the largest allowed ratio of a unit's gradient norm to its weight norm
        (the paper uses 0.01 to 0.16, smaller for larger batches).
      eps: ε >= 0 (1e-3, the paper's and optax's default).
      axis: the axes each unit's norm runs over, for every leaf (an int or a tuple). Default
        by rank: ``(in, out)`` and ``(in, heads, out)`` over axis 0, 4-D over ``(0, 1, 2)``,
        5-D over ``(0, 1, 2, 3)`` (Flax/Haiku layouts; as optax); other ranks need ``axis``.

    Returns:
      A stateless :class:`GradientTransformation`; ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adaptive_grad_clip(0.1)
      >>> params = {"w": jnp.array([[3.0, 0.1], [4.0, 0.0]])}  # column norms 5 and 0.1
      >>> grads = {"w": jnp.array([[1.0, 0.003], [0.0, 0.004]])}  # column norms 1 and 0.005
      >>> tx.update(grads, tx.init(params), params)[0]["w"]  # column 0 rescaled to norm 0.5
      Array([[0.5  , 0.003],
             [0.   , 0.004]], dtype=float32)

    References:
      Brock, De, Smith and Simonyan, *High-Performance Large-Scale Image Recognition Without
      Normalization*, 2021.
    """
    owner = "adaptive_grad_clip"
    axis = _check_axis(owner, axis)
    build = functools.partial(_adaptive_grad_clip, axis=axis)
    return live(owner, build, clipping=clipping, eps=eps)
