"""Factored statistics: second moments kept in less memory than the params (Adafactor, SM3).

Adafactor keeps, for a matrix, one average of squared gradients per row and one per column and
rebuilds the full estimate as their outer product; SM3 keeps one accumulator per index of each
axis (a cover of the tensor by its rows, columns, ...) and takes, per element, the smallest
accumulator that covers it. Statistics are real (of ``|g|**2``) and kept in at least float32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import CLOSED_UNIT, check_count, check_dtype, check_flag, check_range
from gradtx._core.hyper import Live, ScalarOrSchedule, Value, live, one_minus, scalar
from gradtx._transforms.momentum import ema_step

VARIANTS = ("optax", "torch")


def check_variant(owner: str, variant: Any) -> str:
    if not isinstance(variant, str):
        raise TypeError(f"{owner}: variant must be one of {VARIANTS}, got {variant!r}")
    if variant not in VARIANTS:
        raise ValueError(f"{owner}: variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def _stats_dtype(dtype: Any) -> Any:
    """Statistics in at least float32: in float16, epsilon = 1e-30 and small squares are 0."""
    return _tree.accumulation_dtype(_tree.real_dtype(dtype))


# ---- Adafactor's factored second moment --------------------------------------------------


def factored_dims(shape, factored: bool, min_dim_size_to_factor: int, variant: str):
    """``(d_col, d_row)``: the axes whose means make the column and row statistics, or None.

    optax's rule (the paper's for matrices): the two largest axes; PyTorch's: the last two;
    either only if both have at least ``min_dim_size_to_factor`` elements.
    """
    if not factored or len(shape) < 2:
        return None
    if variant == "torch":
        dims = (len(shape) - 2, len(shape) - 1)
    else:
        order = np.argsort(shape)  # optax's order of equal sizes
        dims = (int(order[-2]), int(order[-1]))
    return dims if min(shape[d] for d in dims) >= min_dim_size_to_factor else None


# the statistics a leaf does not use: one element (orbax cannot save zero-size arrays)
_PLACEHOLDER = (1,)


def factored_average(square, v_row, v_col, dims, average):
    """The row and column statistics of a leaf factored along ``dims = (d_col, d_row)``:
    ``average(mean of square over d_row, v_row)`` and ``average(mean over d_col, v_col)``."""
    d_col, d_row = dims
    return (
        average(jnp.mean(square, axis=d_row), v_row),
        average(jnp.mean(square, axis=d_col), v_col),
    )


def factored_rsqrt(v_row, v_col, dims, floor=None):
    """``1 / sqrt(V)`` with ``V = R C / mean_c(R)`` rebuilt from the statistics, shaped like
    the leaf; with ``floor`` (PyTorch's Adafactor), ``mean_c(R)`` and ``V`` floored at
    ``floor`` and ``floor**2``."""
    d_col, d_row = dims
    # the mean of the row statistics along the column axis, as it is in v_row
    mean = jnp.mean(v_row, axis=d_col if d_col < d_row else d_col - 1, keepdims=True)
    if floor is not None:
        mean = jnp.maximum(mean, floor)
    rows = jnp.expand_dims(v_row / mean, d_row)
    cols = jnp.expand_dims(v_col, d_col)
    if floor is None:
        return jax.lax.rsqrt(rows) * jax.lax.rsqrt(cols)
    return jax.lax.rsqrt(jnp.maximum(rows * cols, floor * floor))


class FactoredState(NamedTuple):
    count: jax.Array  # int32 []: updates taken so far
    v_row: Any  # per leaf: the shape without its d_row axis if factored, else (1,); >= float32
    v_col: Any  # per leaf: the shape without its d_col axis if factored, else (1,); >= float32
    v: Any  # per leaf: the leaf's shape if not factored, else (1,); >= float32


def _decay_weights(decay_rate, step_offset, decay_rate_fn, count):
    """``(beta, 1 - beta)`` of this step, in the hyperparameters' dtype.

    The paper's schedule is :math:`\\hat\\beta_{2t} = 1 - t^{-c}`; its complement
    :math:`t^{-c}` is formed directly (optax rounds ``1 - t**-c`` in float32 and takes the
    complement of that: up to 1e-6 relative off at t = 100, even under x64).
    """
    dtype = scalar(decay_rate).dtype
    step = count.astype(dtype) - scalar(step_offset).astype(dtype)
    if decay_rate_fn is not None:
        beta = jnp.asarray(decay_rate_fn(step, scalar(decay_rate))).astype(dtype)
        return beta, 1 - beta
    # steps before the offset count as the first (optax's t**-c is inf or NaN there)
    t = jnp.maximum(step + 1, jnp.ones_like(step))
    new = t ** -scalar(decay_rate)
    return 1 - new, new


def _scale_by_factored_rms(
    decay_rate, step_offset, epsilon, *, factored, min_dim_size_to_factor, decay_rate_fn, variant
):
    owner = "scale_by_factored_rms"
    dims_of = functools.partial(
        factored_dims,
        factored=factored,
        min_dim_size_to_factor=min_dim_size_to_factor,
        variant=variant,
    )

    def shapes(shape):
        dims = dims_of(shape)
        if dims is None:
            return _PLACEHOLDER, _PLACEHOLDER, tuple(shape)
        d_col, d_row = dims
        drop = lambda axis: tuple(n for i, n in enumerate(shape) if i != axis)  # noqa: E731
        return drop(d_row), drop(d_col), _PLACEHOLDER

    def init(params):
        def stats(p):
            dtype = _stats_dtype(jnp.result_type(p))
            return tuple(jnp.zeros(s, dtype) for s in shapes(np.shape(p)))

        leaves = jax.tree.map(stats, params)
        pick = lambda i: jax.tree.map(lambda _, s: s[i], params, leaves)  # noqa: E731
        return FactoredState(_tree.zero_count(), pick(0), pick(1), pick(2))

    def check(updates, state):
        if jax.tree.structure(updates) != jax.tree.structure(state.v_row):
            raise ValueError(f"{owner}: {_tree.mismatch(updates, state.v_row, 'updates', 'state')}")
        found = jax.tree_util.tree_flatten_with_path(updates)[0]
        for (path, g), r, c, v in zip(
            found, *(jax.tree.leaves(x) for x in (state.v_row, state.v_col, state.v))
        ):
            if shapes(g.shape) != (r.shape, c.shape, v.shape):
                raise ValueError(
                    f"{owner}: the updates leaf {_tree.path_str(path)!r} has shape {g.shape}, "
                    f"but the state's statistics were made for another shape "
                    f"(rows {r.shape}, columns {c.shape}, full {v.shape})"
                )

    def update(updates, state, params=None, **extra):
        check(updates, state)
        old, new = _decay_weights(decay_rate, step_offset, decay_rate_fn, state.count)
        eps = scalar(epsilon)

        def leaf(g, v_row, v_col, v):
            dtype = _stats_dtype(g.dtype)
            w_old, w_new, e = (x.astype(dtype) for x in (old, new, eps))
            square = _tree.abs_sq(_tree.cast(g, _tree.wider(g.dtype, dtype)))
            if variant == "optax":
                square = square + e  # the paper's G**2 + eps_1
            dims = dims_of(g.shape)
            if dims is None:
                v = w_old * v + w_new * square
                scale = v if variant == "optax" else jnp.maximum(v, e * e)
                return jax.lax.rsqrt(scale), v_row, v_col, v
            average = lambda x, avg: w_old * avg + w_new * x  # noqa: E731
            v_row, v_col = factored_average(square, v_row, v_col, dims, average)
            scale = factored_rsqrt(v_row, v_col, dims, None if variant == "optax" else e)
            return scale, v_row, v_col, v

        results = jax.tree.map(leaf, updates, state.v_row, state.v_col, state.v)
        pick = lambda i: jax.tree.map(lambda _, r: r[i], updates, results)  # noqa: E731

        def scaled(g, scale):
            out = _tree.times(_tree.cast(g, _tree.wider(g.dtype, scale.dtype)), scale)
            return out.astype(g.dtype)

        out = jax.tree.map(scaled, updates, pick(0))
        count = _tree.saturating_increment(state.count)
        return out, FactoredState(count, pick(1), pick(2), pick(3))

    return GradientTransformation(init, update)


def check_factored_arguments(owner, decay_rate, epsilon, min_dim_size_to_factor, factored):
    """Checks the arguments of the factored second moment; returns the fixed ones."""
    check_range(owner, "decay_rate", decay_rate, ">= 0", lambda v: v >= 0)
    name, value = epsilon
    check_range(owner, name, value, ">= 0", lambda v: v >= 0)
    return dict(
        factored=check_flag(owner, "factored", factored),
        min_dim_size_to_factor=check_count(
            owner, "min_dim_size_to_factor", min_dim_size_to_factor, minimum=0
        ),
    )


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: ScalarOrSchedule = 0.8,
    step_offset: ScalarOrSchedule = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: ScalarOrSchedule = 1e-30,
    decay_rate_fn: Callable[[jax.Array, jax.Array], jax.typing.ArrayLike] | None = None,
    *,
    variant: str = "optax",
) -> GradientTransformation:
    r"""Adafactor's scaling: updates over the root of a factored second-moment estimate.

    For a leaf factored along axes (c, r) (a matrix: its columns and rows), with
    :math:`\hat\beta_t = 1 - t^{-\text{decay\_rate}}` and :math:`t` counted from
    ``step_offset``:

    .. math::
      R_t = \hat\beta_t R_{t-1} + (1 - \hat\beta_t)\,\mathrm{mean}_r(g_t^2 + \epsilon), \quad
      C_t = \hat\beta_t C_{t-1} + (1 - \hat\beta_t)\,\mathrm{mean}_c(g_t^2 + \epsilon),

    .. math::
      \hat V_t = R_t C_t / \mathrm{mean}_c(R_t), \qquad u_t = g_t / \sqrt{\hat V_t}

    (Shazeer and Stern, 2018, Algorithm 4; means instead of the paper's sums give the same
    :math:`\hat V`). Other leaves keep the full average
    :math:`V_t = \hat\beta_t V_{t-1} + (1 - \hat\beta_t)(g_t^2 + \epsilon)`. At
    :math:`t = 1`, :math:`\hat\beta_1 = 0`: no bias correction is needed. Complex leaves:
    :math:`|g|^2`.

    Args:
      factored: factor the statistics of leaves with two axes of at least
        ``min_dim_size_to_factor`` elements (False: every leaf keeps full statistics).
      decay_rate: *c* >= 0 in :math:`1 - t^{-c}`. Default 0.8, the paper's.
      step_offset: steps to subtract from the count (fine-tuning from a later step); steps
        before it count as the first.
      min_dim_size_to_factor: factor only if the second largest axis has at least this many
        elements. Default 128, optax's.
      epsilon: :math:`\epsilon_1 >= 0` added to the squares. Default 1e-30, the paper's.
      decay_rate_fn: optional ``(step, decay_rate) -> beta`` replacing the paper's schedule,
        ``step`` counted from 0 (optax's argument; e.g. a capped schedule, Zhai et al. 2021).
      variant: ``"optax"`` (the paper's and optax's rule) or ``"torch"``
        (``torch.optim.Adafactor``'s: the last two axes of a leaf of rank >= 2 are factored,
        with ``min_dim_size_to_factor=1`` every such leaf; no epsilon is added to the squares,
        instead
        :math:`\hat V_t = \max(R_t C_t / \max(\mathrm{mean}_c R_t, \epsilon), \epsilon^2)`,
        and full statistics are floored at :math:`\epsilon^2`).

    Returns:
      A :class:`GradientTransformation`. Its state keeps, per leaf, row and column statistics
      (factored) or full ones, in at least float32.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)
      >>> g = {"w": jnp.ones((2, 3))}
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["w"].round(4)
      Array([[1., 1., 1.],
             [1., 1., 1.]], dtype=float32)
      >>> state.inner_state.v_row["w"].shape, state.inner_state.v_col["w"].shape
      ((2,), (3,))

    References:
      Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
      2018, Algorithm 4 and section 7.2.
    """
    owner = "scale_by_factored_rms"
    if decay_rate_fn is not None and not callable(decay_rate_fn):
        raise TypeError(f"{owner}: decay_rate_fn must be a function or None, got {decay_rate_fn!r}")
    build = functools.partial(
        _scale_by_factored_rms,
        decay_rate_fn=decay_rate_fn,
        variant=check_variant(owner, variant),
        **check_factored_arguments(
            owner, decay_rate, ("epsilon", epsilon), min_dim_size_to_factor, factored
        ),
    )
    return live(owner, build, decay_rate=decay_rate, step_offset=step_offset, epsilon=epsilon)


# ---- Adafactor's relative step size ------------------------------------------------------


class RelativeStepState(NamedTuple):
    count: jax.Array  # int32 []: updates taken so far


def relative_step_size(learning_rate: Value | None) -> GradientTransformation:
    """Multiplies by :math:`\\rho_t = \\min(\\eta, 1/\\sqrt t)` (Adafactor's decaying step,
    Shazeer and Stern, 2018, section 8; :math:`1/\\sqrt t` alone without a learning rate)."""

    def init(params):
        del params
        return RelativeStepState(_tree.zero_count())

    def update(updates, state, params=None, **extra):
        count = _tree.saturating_increment(state.count)
        dtype = scalar(learning_rate if learning_rate is not None else 0.0).dtype
        rho = jax.lax.rsqrt(count.astype(dtype))
        if learning_rate is not None:
            rho = jnp.minimum(scalar(learning_rate), rho)

        def leaf(g):
            return _tree.times(g, rho.astype(_tree.real_dtype(g.dtype)))

        return jax.tree.map(leaf, updates), RelativeStepState(count)

    return GradientTransformation(init, update)


def product(a: Value, b: Value) -> Live:
    """``a * b`` of two hyperparameter values, as a value (no residual)."""
    value = scalar(a) * scalar(b)
    return Live(value, jnp.zeros_like(value))


# ---- SM3 ---------------------------------------------------------------------------------


class ScaleBySM3State(NamedTuple):
    mu: Any  # per leaf a list: one accumulator per axis ((d_i,) each), or one like a leaf of
    #          rank <= 1; real, at least float32
    nu: Any  # like the params (mu_dtype if given): the momentum of the scaled updates

    # b2 = 1, the default, is the paper's running sum; the shared b2 range [0, 1) excludes it
    live_ranges = {"b2": CLOSED_UNIT}


def _covers(shape) -> list[tuple[int, ...]]:
    """The shapes of a leaf's accumulators: one per axis, or the leaf's own for rank <= 1."""
    if len(shape) < 2:
        return [tuple(shape)]
    return [(n,) for n in shape]


def _scale_by_sm3(b1, b2, eps, *, mu_dtype):
    owner = "scale_by_sm3"

    def init(params):
        def accumulators(p):
            dtype = _stats_dtype(jnp.result_type(p))
            return [jnp.zeros(s, dtype) for s in _covers(np.shape(p))]

        return ScaleBySM3State(
            mu=jax.tree.map(accumulators, params), nu=_tree.zeros_like(params, mu_dtype)
        )

    def update(updates, state, params=None, **extra):
        _tree.check_match(owner, (state.nu, updates), ("state", "updates"))
        momentum = ema_step(b1)
        eps_value = scalar(eps)
        # the paper's sum (b2 = 1) adds the whole square; an average adds (1 - b2) of it
        decay = scalar(b2)
        new_weight = jnp.where(decay == 1, jnp.ones_like(decay), one_minus(b2, decay.dtype))

        def leaf(g, mu, m):
            dtype = _stats_dtype(g.dtype)
            if g.ndim < 2:
                smallest = mu[0]
            else:
                shaped = [
                    jnp.reshape(a, [n if i == axis else 1 for i, n in enumerate(g.shape)])
                    for axis, a in enumerate(mu)
                ]
                smallest = functools.reduce(jnp.minimum, shaped)
            square = _tree.abs_sq(_tree.cast(g, _tree.wider(g.dtype, dtype)))
            nu = new_weight.astype(dtype) * square + decay.astype(dtype) * smallest
            # 0 where nothing was accumulated (then g is 0 too): the paper's 0/0 = 0
            positive = nu > 0
            scale = jnp.where(
                positive, jax.lax.rsqrt(jnp.where(positive, nu, 1) + eps_value.astype(dtype)), 0
            )
            scaled = _tree.times(_tree.cast(g, _tree.wider(g.dtype, dtype)), scale)
            new = momentum(scaled, m)
            if g.ndim < 2:
                new_mu = [nu]
            else:
                others = lambda axis: tuple(i for i in range(g.ndim) if i != axis)  # noqa: E731
                # initial 0 (the accumulators are >= 0): an axis of size 0 has no maximum
                new_mu = [jnp.max(nu, axis=others(axis), initial=0) for axis in range(g.ndim)]
            # the update from the unrounded momentum, in the gradient's dtype
            return new.astype(g.dtype), new.astype(m.dtype), new_mu

        results = jax.tree.map(leaf, updates, state.mu, state.nu)
        pick = lambda i: jax.tree.map(lambda _, r: r[i], updates, results)  # noqa: E731
        return pick(0), ScaleBySM3State(mu=pick(2), nu=pick(1))

    return GradientTransformation(init, update)


def scale_by_sm3(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 1.0,
    eps: ScalarOrSchedule = 1e-8,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""SM3's scaling: AdaGrad with one accumulator per row, column, ... instead of per element.

    Each axis *a* of a leaf keeps an accumulator :math:`\mu_a` with one entry per index along
    it (the cover of the leaf by its slices). Per element *i*, for :math:`t \ge 1`:

    .. math::
      \nu_t(i) = c\, g_t(i)^2 + \beta_2 \min_{a} \mu_{a,t-1}(i_a), \qquad
      \mu_{a,t}(j) = \max_{i:\, i_a = j} \nu_t(i),

    .. math::
      m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t / \sqrt{\nu_t + \epsilon}, \qquad u_t = m_t

    with :math:`c = 1` when :math:`\beta_2 = 1` (the paper's SM3-II, Anil et al., 2019,
    Algorithm 3, a running sum) and :math:`c = 1 - \beta_2` otherwise, and 0/0 taken as 0.
    Leaves of rank <= 1 keep one accumulator per element (AdaGrad). Complex leaves:
    :math:`|g|^2`.

    ``b2``'s range [0, 1] includes 1, the default, which the ``b2`` of Adam and the rest
    excludes; set_hyperparams and :func:`gradtx.checked` use SM3's.

    Args:
      b1: β₁ in [0, 1), the momentum of the scaled updates. Default 0.9, optax's.
      b2: β₂ in [0, 1], the decay of the accumulators. Default 1.0 (the paper's sums).
      eps: ε >= 0 inside the root. Default 1e-8, optax's.
      mu_dtype: dtype of the momentum (default: the params'); the updates come from the
        unrounded momentum, in each gradient's dtype.

    Returns:
      A :class:`GradientTransformation`. Its state keeps, per leaf, the accumulators (as many
      entries as the leaf's axes' sizes added up) and the momentum.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_sm3(b1=0.0)
      >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]])}
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["w"].round(4)
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
      >>> [a.tolist() for a in state.inner_state.mu["w"]]  # the largest square per row, column
      [[9.0, 16.0], [9.0, 16.0]]

    References:
      Anil, Gupta, Koren and Singer, *Memory-Efficient Adaptive Optimization*, NeurIPS 2019,
      Algorithm 3 (SM3-II).
    """
    owner = "scale_by_sm3"
    build = functools.partial(_scale_by_sm3, mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype))
    return live(owner, build, ranges=ScaleBySM3State.live_ranges, b1=b1, b2=b2, eps=eps)
