"""Block norms: each leaf (a weight vector or matrix, a "block") scaled by a norm of its own.

NovoGrad's layer-wise second moment, scaling by the params' norm or RMS (Adafactor's relative
step, Fromage), clipping by an update's RMS (Adafactor's update clipping), and normalizing by
the updates' global norm. Norms are taken in at least float32 and are overflow-safe
(:func:`gradtx._core.norms.norms`); complex leaves by ``|x|``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import norms as _norms
from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, stateless
from gradtx._core.checks import MissingArgumentError, check_dtype, check_range
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as
from gradtx._transforms.momentum import ema_step, trace_step

# ---- per-leaf factors --------------------------------------------------------------------


def block_rms(leaves: list[jax.Array]) -> list[jax.Array]:
    """``sqrt(mean |x|**2)`` of each leaf, in at least float32 (0 for an empty leaf)."""
    return [n / math.sqrt(max(x.size, 1)) for x, n in zip(leaves, _norms.norms(leaves))]


def _scaled(g: jax.Array, factor: jax.Array) -> jax.Array:
    """``g * factor`` formed in the factor's (>= float32) precision, in ``g``'s dtype."""
    return _tree.times(_tree.cast(g, _tree.wider(g.dtype, factor.dtype)), factor).astype(g.dtype)


def _by_param_block(owner: str, measure, min_scale: Value) -> GradientTransformation:
    def update(updates, params):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the scale is a norm of the params)"
            )
        _tree.check_match(owner, (updates, params), ("updates", "params"))
        grads, treedef = jax.tree.flatten(updates)
        sizes = measure(jax.tree.leaves(params))
        out = [
            _scaled(g, jnp.maximum(s, value_as(min_scale, s.dtype))) for g, s in zip(grads, sizes)
        ]
        return treedef.unflatten(out)

    return stateless(update)


def _scale_by_param_block_norm(min_scale: Value) -> GradientTransformation:
    return _by_param_block("scale_by_param_block_norm", _norms.norms, min_scale)


def scale_by_param_block_norm(min_scale: ScalarOrSchedule = 1e-3) -> GradientTransformation:
    r"""Multiplies each leaf's update by the norm of that leaf's params.

    .. math:: u_l \leftarrow u_l \cdot \max(\|\theta_l\|, s_0)

    per leaf *l* (a weight vector or matrix: a "block"). The update's size becomes relative
    to the params' size, as in LARS and Fromage.

    Args:
      min_scale: :math:`s_0 >= 0`, the floor of the factor, so that zero-initialised leaves
        still move. Default 1e-3, optax's.

    Returns:
      A stateless :class:`GradientTransformation`; ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_param_block_norm()
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> tx.update({"w": jnp.ones(2)}, tx.init(params), params)[0]["w"]
      Array([5., 5.], dtype=float32)

    References:
      You, Gitman and Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.
    """
    return live("scale_by_param_block_norm", _scale_by_param_block_norm, min_scale=min_scale)


def _scale_by_param_block_rms(min_scale: Value) -> GradientTransformation:
    return _by_param_block("scale_by_param_block_rms", block_rms, min_scale)


def scale_by_param_block_rms(min_scale: ScalarOrSchedule = 1e-3) -> GradientTransformation:
    r"""Multiplies each leaf's update by the root mean square of that leaf's params.

    .. math:: u_l \leftarrow u_l \cdot \max(\mathrm{RMS}(\theta_l), s_0), \qquad
      \mathrm{RMS}(x) = \sqrt{\textstyle\frac1n \sum_i |x_i|^2}

    Adafactor's relative step size (Shazeer and Stern, 2018, section 8, :math:`\alpha_t =
    \max(\epsilon_2, \mathrm{RMS}(X_{t-1}))\rho_t`).

    Args:
      min_scale: :math:`s_0 = \epsilon_2 >= 0`, the floor of the factor. Default 1e-3, the
        paper's (and optax's and PyTorch's).

    Returns:
      A stateless :class:`GradientTransformation`; ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_param_block_rms()
      >>> params = {"w": jnp.array([1.0, -1.0, 1.0, -1.0])}
      >>> tx.update({"w": jnp.full(4, 0.5)}, tx.init(params), params)[0]["w"]
      Array([0.5, 0.5, 0.5, 0.5], dtype=float32)

    References:
      Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
      2018, Algorithm 4.
    """
    return live("scale_by_param_block_rms", _scale_by_param_block_rms, min_scale=min_scale)


def _clip_by_block_rms(threshold: Value) -> GradientTransformation:
    def update(updates, params):
        leaves, treedef = jax.tree.flatten(updates)
        out = []
        for g, rms in zip(leaves, block_rms(leaves)):
            divisor = jnp.maximum(jnp.ones_like(rms), rms / value_as(threshold, rms.dtype))
            out.append(_tree.divide(_tree.cast(g, _tree.wider(g.dtype, rms.dtype)), divisor))
        return treedef.unflatten([x.astype(g.dtype) for x, g in zip(out, leaves)])

    return stateless(update)


def clip_by_block_rms(threshold: ScalarOrSchedule) -> GradientTransformation:
    r"""Scales each leaf's update down to a root mean square of at most ``threshold``.

    .. math:: u_l \leftarrow u_l / \max(1, \mathrm{RMS}(u_l) / d)

    Adafactor's update clipping (Shazeer and Stern, 2018, section 6, eq. in Algorithm 4).

    Args:
      threshold: *d* > 0 (the paper's 1).

    Returns:
      A stateless :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.clip_by_block_rms(1.0)
      >>> g = {"w": jnp.array([3.0, -3.0]), "b": jnp.array([0.5])}
      >>> u = tx.update(g, tx.init(g))[0]
      >>> u["w"], u["b"]
      (Array([ 1., -1.], dtype=float32), Array([0.5], dtype=float32))

    References:
      Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*,
      2018, section 6.
    """
    check_range("clip_by_block_rms", "threshold", threshold, "> 0", lambda v: v > 0)
    return live("clip_by_block_rms", _clip_by_block_rms, threshold=threshold)


def _normalize_by_update_norm(scale_factor: Value, eps: Value) -> GradientTransformation:
    def update(updates, params):
        norm = _norms.global_norm(updates)
        divisor = norm + value_as(eps, norm.dtype)
        # 0 where the divisor is: only all-zero updates with eps = 0, which stay 0 (not 0/0)
        safe = jnp.where(divisor > 0, divisor, jnp.ones_like(divisor))
        factor = jnp.where(divisor > 0, value_as(scale_factor, norm.dtype) / safe, 0)
        return jax.tree.map(lambda g: _scaled(g, factor), updates)

    return stateless(update)


def normalize_by_update_norm(
    scale_factor: ScalarOrSchedule = 1.0, eps: ScalarOrSchedule = 1e-6
) -> GradientTransformation:
    r"""Divides the updates by their global norm (normalized gradient descent).

    .. math:: u \leftarrow s \, u / (\|u\| + \epsilon)

    with :math:`\|u\|` the norm of all leaves together.

    Args:
      scale_factor: *s*, the length of the result (any sign; -1 makes it a descent step).
        Default 1, optax's.
      eps: ε >= 0, keeps the quotient finite for tiny updates. Default 1e-6, optax's.

    Returns:
      A stateless :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.normalize_by_update_norm(eps=0.0)
      >>> g = {"w": jnp.array([3.0, 4.0])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([0.6, 0.8], dtype=float32)

    References:
      Nesterov, *Introductory Lectures on Convex Optimization*, 2004, section 3.2.3
      (normalized gradient method); Hazan, Levy and Shalev-Shwartz, *Beyond Convexity:
      Stochastic Quasi-Convex Optimization*, 2015.
    """
    return live(
        "normalize_by_update_norm", _normalize_by_update_norm, scale_factor=scale_factor, eps=eps
    )


# ---- NovoGrad ----------------------------------------------------------------------------


class ScaleByNovogradState(NamedTuple):
    count: jax.Array  # int32 []: updates taken so far
    mu: Any  # like the params (mu_dtype if given): the first moment
    nu: Any  # one [] per leaf, real, at least float32: the average of the squared norms


def _scale_by_novograd(b1, b2, eps, eps_root, weight_decay, *, mu_dtype=None):
    owner = "scale_by_novograd"

    def init(params):
        def nu(p):
            return jnp.zeros([], _tree.accumulation_dtype(_tree.real_dtype(jnp.result_type(p))))

        return ScaleByNovogradState(
            count=_tree.zero_count(),
            mu=_tree.zeros_like(params, mu_dtype),
            nu=jax.tree.map(nu, params),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(f"{owner}: update needs params (for the weight decay term)")
        _tree.check_match(owner, (state.mu, updates, params), ("state", "updates", "params"))
        first = state.count == 0
        average, accumulate = ema_step(b2), trace_step(b1)
        eps_as = per_dtype(lambda dtype: (value_as(eps, dtype), value_as(eps_root, dtype)))
        decay_as = per_dtype(lambda dtype: value_as(weight_decay, dtype))

        def leaf(g, m, v, p):
            square = _tree.sum_of_squares(g).astype(v.dtype)
            # the first step takes the squared norm itself (v_1 = ||g_1||^2), not (1 - b2) of it
            v = jnp.where(first, square, average(square, v))
            e, e_root = eps_as(v.dtype)
            denominator = jnp.sqrt(v + e_root) + e
            # 0 only for an all-zero gradient with eps = eps_root = 0: its step stays 0
            inverse = jnp.where(denominator > 0, 1 / jnp.where(denominator > 0, denominator, 1), 0)
            dtype = _tree.wider(g.dtype, p.dtype, m.dtype, v.dtype)
            step = _tree.times(_tree.cast(g, dtype), inverse.astype(_tree.real_dtype(dtype)))
            step = step + decay_as(dtype) * _tree.cast(p, dtype)
            new = accumulate(step, m)
            # the update from the unrounded moment, in the gradient's dtype (as low-memory Adam)
            return new.astype(g.dtype), new.astype(m.dtype), v

        results = jax.tree.map(leaf, updates, state.mu, state.nu, params)
        pick = lambda i: jax.tree.map(lambda _, r: r[i], updates, results)  # noqa: E731
        count = _tree.saturating_increment(state.count)
        return pick(0), ScaleByNovogradState(count=count, mu=pick(1), nu=pick(2))

    return GradientTransformation(init, update)


def scale_by_novograd(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.25,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""NovoGrad's step: a layer-wise second moment (one scalar per leaf) and momentum.

    .. math::
      v_t = \beta_2 v_{t-1} + (1 - \beta_2) \|g_t\|^2 \;(v_1 = \|g_1\|^2), \qquad
      m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{v_t + \epsilon_{root}} + \epsilon}
      + \lambda \theta_t, \qquad u_t = m_t

    per leaf (Ginsburg et al., 2019, Algorithm 1: the gradient is normalized by its layer's
    norm before it enters the momentum, which has no :math:`1 - \beta_1`). Complex leaves:
    :math:`\|g\|^2 = \sum |g_i|^2`.

    Args:
      b1: β₁ in [0, 1), the momentum. Default 0.9, the paper's.
      b2: β₂ in [0, 1), the decay of the squared norms. Default 0.25, optax's (the paper's
        experiments use 0.25 to 0.98).
      eps: ε >= 0 outside the root. Default 1e-8, optax's.
      eps_root: ε >= 0 inside the root (keeps meta-gradients finite).
      weight_decay: λ >= 0, the decoupled decay added to the normalized gradient.
      mu_dtype: dtype of the first moment (default: the params'); the updates come from the
        unrounded moment, in each gradient's dtype.

    Returns:
      A :class:`GradientTransformation` (state: a count, one first moment per param and one
      scalar per leaf); ``update`` needs ``params``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_novograd()
      >>> params = {"w": jnp.zeros(2)}
      >>> u, state = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init(params), params)
      >>> u["w"]  # g / ||g|| on the first step
      Array([0.6, 0.8], dtype=float32)

    References:
      Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments for
      Training of Deep Networks*, 2019, Algorithm 1.
    """
    owner = "scale_by_novograd"
    build = functools.partial(_scale_by_novograd, mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype))
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay)
