"""Mechanic: a learnt scale for the steps of any optimizer."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_count
from gradtx._core.combine import _check_tx
from gradtx._core.hyper import ScalarOrSchedule, live, value_as
from gradtx._transforms.lr_free import _leaf_dtype, need_params, real_dot, scalar_dtype, total


class MechanicState(NamedTuple):
    """The state of :func:`gradtx.mechanize` (optax's fields)."""

    base_optimizer_state: Any  # the base optimizer's
    count: jax.Array  # int32 []: updates so far
    r: jax.Array  # [num_betas] in the params' widest real dtype, >= float32: the rewards
    m: jax.Array  # [num_betas] same dtype: the discounted running maximum of |h|
    v: jax.Array  # [num_betas] same dtype: the discounted sum of h²
    s: jax.Array  # [num_betas] same dtype: the scales, summed into the step's scale
    x0: Any  # like the params: the reference point (the params of the first update)

    # the first h is 0 (x = x₀): with ε = 0 the first scales would be 0 / 0
    live_ranges = {"s_init": ("> 0", lambda v: v > 0), "eps": ("> 0", lambda v: v > 0)}


def _mechanize(weight_decay, eps, s_init, *, base_optimizer, num_betas, axes, owner):
    # β_i = 1 - 10^-i, formed in float64 and rounded once to the state's dtype
    betas64 = 1 - 0.1 ** np.arange(1, num_betas + 1, dtype=np.float64)

    def init(params):
        dtype = scalar_dtype(params)
        zeros = jnp.zeros([num_betas], dtype)
        return MechanicState(
            base_optimizer_state=base_optimizer.init(params),
            count=_tree.zero_count(),
            r=zeros,
            m=zeros,
            v=zeros,
            s=jnp.full([num_betas], value_as(s_init, dtype)),
            x0=jax.tree.map(jnp.asarray, params),
        )

    def update(updates, state, params=None, **extra):
        need_params(owner, params, "Mechanic's step is relative to x₀ - x")
        _tree.check_match(owner, (updates, state.x0, params), ("updates", "state", "params"))
        steps, base_state = base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra
        )
        sd = state.s.dtype
        leaves, treedef = jax.tree.flatten(updates)
        steps = treedef.flatten_up_to(steps)
        ps = treedef.flatten_up_to(params)
        first = state.count == 0
        # the reference point is the params of the first update (a model may be loaded after
        # init), as optax does
        x0s = [jnp.where(first, p, x0) for p, x0 in zip(ps, treedef.flatten_up_to(state.x0))]

        # one pass over each leaf for the four sums the scalars need
        g2, p2, gx, px = [], [], [], []
        for g, p, x0 in zip(leaves, ps, x0s):
            t = _leaf_dtype(g, p, x0)
            g, p, x0 = _tree.cast(g, t), _tree.cast(p, t), _tree.cast(x0, t)
            away = x0 - p
            g2.append(jnp.sum(_tree.abs_sq(g)))
            p2.append(jnp.sum(_tree.abs_sq(p)))
            gx.append(real_dot(g, away))
            px.append(real_dot(p, away))
        lam, e, s_0 = (value_as(h, sd) for h in (weight_decay, eps, s_init))
        scale = jnp.sum(state.s)
        # h = <g + λ S |g| / (|x| + ε) x, (x₀ - x) / (S + ε)>, the decay on the gradient only
        g_norm, p_norm = (jnp.sqrt(total(x, leaves, axes, sd)) for x in (g2, p2))
        decay = lam * scale * g_norm / (p_norm + e)
        h = (total(gx, leaves, axes, sd) + decay * total(px, leaves, axes, sd)) / (scale + e)

        betas = jnp.asarray(betas64, sd)
        clipped = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + e)
        v = betas * betas * state.v + h * h
        r = betas * state.r + clipped * state.s
        wealth = s_0 / num_betas * m + jnp.maximum(r, 0)
        s = wealth / (jnp.sqrt(v) + e)

        # x_new = x₀ + S' (Δ + u) with Δ = (x - x₀) / (S + ε): the step x_new - x written
        # without forming x_new, which would round the step to the params' precision
        new_scale = jnp.sum(s)
        keep = (scale + e - new_scale) / (scale + e)
        out = []
        for g, p, x0, u in zip(leaves, ps, x0s, steps):
            t = _leaf_dtype(g, p, x0, u)
            rt = _tree.real_dtype(t)
            away = _tree.cast(x0, t) - _tree.cast(p, t)
            step = _tree.times(away, keep.astype(rt)) + _tree.times(
                _tree.cast(u, t), new_scale.astype(rt)
            )
            out.append(step.astype(g.dtype))
        new = MechanicState(
            base_optimizer_state=base_state,
            count=_tree.saturating_increment(state.count),
            r=r,
            m=m,
            v=v,
            s=s,
            x0=treedef.unflatten(x0s),
        )
        return treedef.unflatten(out), new

    return GradientTransformation(init, update)


def mechanize(
    base_optimizer: GradientTransformation,
    weight_decay: ScalarOrSchedule = 1e-2,
    eps: ScalarOrSchedule = 1e-8,
    s_init: ScalarOrSchedule = 1e-6,
    num_betas: int = 6,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""Mechanic: learns the scale of another optimizer's steps as it trains.

    The base optimizer's steps :math:`u_t` are accumulated into :math:`\Delta`, and the params
    are :math:`x_{t+1} = x_0 + S_{t+1} \Delta_{t+1}` with the scale :math:`S = \sum_i s_i`
    learnt by one coin-betting learner per :math:`\beta_i = 1 - 10^{-i}`,
    :math:`i = 1..n`. With :math:`\Delta_t = (x_t - x_0) / (S_t + \epsilon)` recovered from the
    params (the memory-saving form: no Δ in the state) and the gradient with a decay,

    .. math::
      h_t &= \left\langle g_t + \lambda S_t \frac{\lVert g_t \rVert}{\lVert x_t \rVert +
      \epsilon} x_t,\ -\Delta_t \right\rangle, \\
      m_i &\leftarrow \max(\beta_i m_i, |h_t| + \epsilon), \quad
      v_i \leftarrow \beta_i^2 v_i + h_t^2, \quad
      r_i \leftarrow \beta_i r_i + \mathrm{clip}(h_t, \pm m_i^{old})\, s_i, \\
      s_i &\leftarrow \frac{s_{init} m_i / n + \max(r_i, 0)}{\sqrt{v_i} + \epsilon}, \qquad
      x_{t+1} = x_0 + S_{t+1} (\Delta_t + u_t),

    returned as the update :math:`x_{t+1} - x_t`. These are optax.contrib.mechanize's
    numbers (contributed by one of the paper's authors): the clipping of h by the previous
    maximum (added by the authors after the paper), the ε in m, and :math:`x_0` taken from the
    params of the first update (a model may be loaded after init). The decay acts on Mechanic's
    h only, not on the gradient the base optimizer sees. The inner products and norms are over
    the whole tree (complex leaves: of the (real, imaginary) pairs).

    Args:
      base_optimizer: the optimizer whose steps are scaled, with its learning rate (1.0, or
        a schedule with peak 1, is the paper's advice); its hyperparameters stay live in the
        nested state. It is given the params.
      weight_decay: λ >= 0 in h (not the base's decay). Default 1e-2 (the paper's, optax's).
      eps: ε > 0. Default 1e-8.
      s_init: the initial scale of each learner, > 0. Default 1e-6 (optax's; the paper's
        1e-8).
      num_betas: n >= 1, the number of learners. Default 6 (β up to 0.999999).
      axis_name: inside ``shard_map`` or ``pmap``, the mesh axis (or tuple of axes) the
        leaves are split along: h's inner products and norms are added across the shards, as
        they are by XLA under ``jit`` with shardings, where it stays None. The base optimizer
        takes its own. Default None (optax's function has no such argument).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.mechanize(gradtx.sgd(1.0))
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(params, state, params)  # f = |x|² / 2
      ...     params = gradtx.apply_updates(params, updates)
      >>> float(state.inner_state.s.sum()) > 1e-2  # the scale grew from 6e-6
      True

    References:
      Cutkosky, Defazio and Mehta, *Mechanic: A Learning Rate Tuner*, NeurIPS 2023
      (arXiv:2306.00144), Algorithm 1.
    """
    owner = "mechanize"
    build = functools.partial(
        _mechanize,
        base_optimizer=_check_tx(owner, "base_optimizer", base_optimizer),
        num_betas=check_count(owner, "num_betas", num_betas),
        axes=_tree.axis_names(owner, axis_name),
        owner=owner,
    )
    return live(
        owner,
        build,
        ranges=MechanicState.live_ranges,
        weight_decay=weight_decay,
        eps=eps,
        s_init=s_init,
    )
