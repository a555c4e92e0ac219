"""Sign methods: the sign of the update (signSGD), Lion's signed momentum, Rprop's step sizes.

A sign is taken per real element, so none of these has a complex form (the sign of a complex
number is not the steepest-descent direction of any real problem): their ``init`` refuses
complex params, naming the leaf.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation
from gradtx._core.checks import check_dtype, check_range
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, scalar, value_as
from gradtx._transforms.momentum import ema_step

_NO_COMPLEX = "a sign method has no complex form (the sign of each real part would be a guess)"


def refuse_complex(owner: str, params: Any) -> None:
    """The check every sign method makes at ``init``: real floating leaves only."""
    _tree.check_leaves(owner, params, "params")
    _tree.check_real_leaves(owner, params, _NO_COMPLEX)


# ---- scale_by_sign -------------------------------------------------------------------------


def _scale_by_sign(owner: str = "scale_by_sign") -> GradientTransformation:
    def init(params):
        refuse_complex(owner, params)
        return EmptyState()

    def update(updates, state, params=None, **extra):
        _tree.check_leaves(owner, updates, "updates")
        return jax.tree.map(jnp.sign, updates), state

    return GradientTransformation(init, update)


def scale_by_sign() -> GradientTransformation:
    r"""Replaces each update by its sign.

    .. math:: u_t = \operatorname{sign}(g_t) \in \{-1, 0, 1\}

    Real params only: ``init`` refuses complex ones. The sign has no hyperparameter, so the
    factory takes no argument (as optax's ``scale_by_sign()``).

    Returns:
      A stateless :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_sign()
      >>> g = {"w": jnp.array([-3.0, 0.0, 0.2])}
      >>> tx.update(g, tx.init(g))[0]["w"]
      Array([-1.,  0.,  1.], dtype=float32)

    References:
      Bernstein, Wang, Azizzadenesheli and Anandkumar, *signSGD: Compressed Optimisation for
      Non-Convex Problems*, ICML 2018, algorithm 1.
    """
    return _scale_by_sign()


# ---- scale_by_lion -------------------------------------------------------------------------


class ScaleByLionState(NamedTuple):
    count: jax.Array  # int32 []: updates so far, saturating
    mu: Any  # like the params (mu_dtype if given): the momentum m


_MODES = ("hard", "smooth", "refined")


def lion_sign(mode: str, smooth_beta: Value):
    """The sign Lion takes of its interpolation ``c``: exact, ``tanh(smooth_beta * c)``, or
    ``c`` itself where ``|c| < 1``; make one per update."""
    beta_as = per_dtype(lambda dtype: value_as(smooth_beta, dtype))
    if mode == "smooth":
        return lambda c: jnp.tanh(beta_as(c.dtype) * c)
    if mode == "refined":
        return lambda c: jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
    return jnp.sign


def _scale_by_lion(b1, b2, smooth_beta=1.0, *, mu_dtype=None, mode="hard", owner="scale_by_lion"):
    def init(params):
        refuse_complex(owner, params)
        return ScaleByLionState(count=_tree.zero_count(), mu=_tree.zeros_like(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        interpolate, average = ema_step(b1), ema_step(b2)
        sign = lion_sign(mode, smooth_beta)
        out = _tree.map(
            lambda g, m: sign(interpolate(g, m)).astype(g.dtype),
            updates,
            state.mu,
            owner=owner,
        )
        mu = jax.tree.map(average, updates, state.mu)
        new_state = ScaleByLionState(
            count=_tree.saturating_increment(state.count), mu=_tree.cast_like(mu, state.mu)
        )
        return out, new_state

    return GradientTransformation(init, update)


def check_mode(owner: str, mode: Any) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"{owner}: mode must be one of {_MODES}, got {mode!r}")
    if mode not in _MODES:
        raise ValueError(f"{owner}: mode must be one of {_MODES}, got {mode!r}")
    return mode


def scale_by_lion(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: ScalarOrSchedule = 1.0,
) -> GradientTransformation:
    r"""Lion's direction: the sign of an interpolation between the momentum and the gradient.

    .. math::
      c_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad u_t = \operatorname{sign}(c_t),
      \qquad m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t, \quad m_0 = 0

    The momentum is updated after the sign is taken, with its own (slower) decay β₂.

    Args:
      b1: β₁ in [0, 1), the weight of the momentum in the interpolation (0.9, the paper's).
      b2: β₂ in [0, 1), the decay of the momentum (0.99, the paper's).
      mu_dtype: dtype of the momentum (default: the params' dtype).
      mode: ``"hard"`` (the sign, the paper's), ``"smooth"`` (``tanh(smooth_beta * c)``) or
        ``"refined"`` (``c`` where ``|c| < 1``, else its sign), as optax has them.
      smooth_beta: the slope of the ``"smooth"`` mode, > 0 (optax's 1).

    Returns:
      A :class:`GradientTransformation`; its state keeps the momentum. Real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_lion()
      >>> g = {"w": jnp.array([0.5, -2.0])}
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["w"]
      Array([ 1., -1.], dtype=float32)
      >>> state.inner_state.mu["w"]  # (1 - 0.99) * g
      Array([ 0.005, -0.02 ], dtype=float32)

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023, algorithm 2.
    """
    owner = "scale_by_lion"
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)
    mode = check_mode(owner, mode)
    build = functools.partial(_scale_by_lion, mu_dtype=mu_dtype, mode=mode, owner=owner)
    return live(owner, build, b1=b1, b2=b2, smooth_beta=smooth_beta)


# ---- scale_by_rprop ------------------------------------------------------------------------


class ScaleByRpropState(NamedTuple):
    """The state of :func:`scale_by_rprop`: optax's fields, then the learning rate."""

    step_sizes: Any  # like the params, in at least float32: each element's step size
    prev_updates: Any  # like the params: the last update, step size times sign(g), 0 after a
    # sign change (its sign is the sign the next gradient is compared with)
    learning_rate: jax.Array  # float []: the learning rate the step sizes were last scaled to


def rprop_step(eta_minus: Value, eta_plus: Value, min_step_size: Value, max_step_size: Value):
    """``(g, prev_update, step_size, rescale) -> (update, new step size)``; make one per
    update."""
    constants = per_dtype(
        lambda dtype: tuple(
            value_as(h, dtype) for h in (eta_minus, eta_plus, min_step_size, max_step_size)
        )
    )

    def step(g, prev_update, size, rescale):
        minus, plus, low, high = constants(size.dtype)
        sign = jnp.sign(g)
        # the sign of g * g_prev from the signs: a product of two tiny gradients is not 0 (a
        # previous update is 0 only after a sign change, or with a step size that underflowed
        # the params' dtype, where the factor no longer matters)
        agree = sign * jnp.sign(prev_update).astype(sign.dtype)
        factor = jnp.where(agree > 0, plus, jnp.where(agree < 0, minus, jnp.ones_like(plus)))
        size = jnp.clip(size * rescale.astype(size.dtype) * factor, low, high)
        kept = jnp.where(agree < 0, jnp.zeros_like(sign), sign)
        return (size * kept.astype(size.dtype)).astype(g.dtype), size

    return step


def _scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size, *, owner):
    def init(params):
        refuse_complex(owner, params)
        sizes = jax.tree.map(
            lambda p: jnp.full(
                p.shape,
                value_as(learning_rate, _tree.accumulation_dtype(p.dtype)),
                _tree.accumulation_dtype(p.dtype),
            ),
            params,
        )
        return ScaleByRpropState(sizes, _tree.zeros_like(params), scalar(learning_rate))

    def update(updates, state, params=None, **extra):
        # A new learning rate (set_hyperparams, a schedule) rescales every step size; while it
        # stays the same the factor is exactly 1.
        seen, now = state.learning_rate, scalar(learning_rate).astype(state.learning_rate.dtype)
        rescale = jnp.where(seen > 0, now / jnp.where(seen > 0, seen, 1), jnp.ones_like(now))
        step = rprop_step(eta_minus, eta_plus, min_step_size, max_step_size)
        pairs = _tree.map(
            lambda g, u, d: step(g, u, d, rescale),
            updates,
            state.prev_updates,
            state.step_sizes,
            owner=owner,
        )
        treedef = jax.tree.structure(updates)
        flat = treedef.flatten_up_to(pairs)
        out = treedef.unflatten([t[0] for t in flat])
        sizes = treedef.unflatten([t[1] for t in flat])
        return out, ScaleByRpropState(sizes, _tree.cast_like(out, state.prev_updates), now)

    return GradientTransformation(init, update)


def check_rprop(owner: str, eta_minus: Any, eta_plus: Any, min_step_size: Any, max_step_size: Any):
    check_range(owner, "eta_minus", eta_minus, "in (0, 1]", lambda v: 0 < v <= 1)
    check_range(owner, "eta_plus", eta_plus, ">= 1", lambda v: v >= 1)
    check_range(owner, "min_step_size", min_step_size, ">= 0", lambda v: v >= 0)
    check_range(owner, "max_step_size", max_step_size, "> 0", lambda v: v > 0)


def scale_by_rprop(
    learning_rate: ScalarOrSchedule,
    eta_minus: ScalarOrSchedule = 0.5,
    eta_plus: ScalarOrSchedule = 1.2,
    min_step_size: ScalarOrSchedule = 1e-6,
    max_step_size: ScalarOrSchedule = 50.0,
) -> GradientTransformation:
    r"""Rprop: a step size per element, grown while its gradient keeps its sign.

    iRprop⁻ (Igel and Hüsken's variant without weight backtracking), per element:

    .. math::
      \Delta_t = \operatorname{clip}\big(\Delta_{t-1} \cdot
        \begin{cases} \eta^+ & g_t g_{t-1} > 0 \\ \eta^- & g_t g_{t-1} < 0 \\ 1 & \text{else}
        \end{cases},\ \Delta_{\min}, \Delta_{\max}\big), \qquad
      u_t = \Delta_t \operatorname{sign}(g_t),

    with :math:`\Delta_0` = ``learning_rate``, and after a sign change :math:`u_t = 0` and
    :math:`g_t` is remembered as 0 (so the next step does not shrink again). Negate the
    result (``scale(-1)``, as :func:`gradtx.rprop` does) for descent.

    This is PyTorch's ``torch.optim.Rprop`` exactly (its ``lr``, ``etas`` and
    ``step_sizes``), including the clip of the initial step size into
    [``min_step_size``, ``max_step_size``]. optax 0.2.8's ``scale_by_rprop`` has the same
    arguments and defaults but returns each step's update one step late (0 at the first
    step, then the previous step's :math:`\Delta \operatorname{sign}(g)`), so it differs.
    Step sizes are kept in at least float32.

    Args:
      learning_rate: :math:`\Delta_0` > 0, the initial step size (no default, as in optax).
        Changed later (``set_hyperparams``, a schedule), it rescales every step size by the
        ratio of the new value to the old.
      eta_minus: η⁻ in (0, 1], the shrink factor after a sign change (0.5, the paper's).
      eta_plus: η⁺ >= 1, the growth factor while the sign holds (1.2, the paper's).
      min_step_size: :math:`\Delta_{\min}` >= 0 (1e-6, the paper's).
      max_step_size: :math:`\Delta_{\max}` > 0 (50, the paper's).

    Returns:
      A :class:`GradientTransformation`; its state (:class:`gradtx.ScaleByRpropState`) keeps
      each element's step size and last update, as optax's, and the learning rate the step
      sizes were scaled to. Real params only.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_rprop(0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> for g in ([1.0, 1.0], [1.0, -1.0], [1.0, -1.0]):
      ...     u, state = tx.update(jnp.array(g), state)
      >>> u.round(4)  # 0.1 * 1.2 * 1.2; 0 after the sign change, then 0.1 * 0.5 * sign
      Array([ 0.144, -0.05 ], dtype=float32)

    References:
      Riedmiller and Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: The
      RPROP Algorithm*, 1993; Igel and Hüsken, *Empirical evaluation of the improved Rprop
      learning algorithms*, Neurocomputing 2003, figure 1 (iRprop⁻).
    """
    owner = "scale_by_rprop"
    check_range(owner, "learning_rate", learning_rate, "> 0", lambda v: v > 0)
    check_rprop(owner, eta_minus, eta_plus, min_step_size, max_step_size)
    return live(
        owner,
        functools.partial(_scale_by_rprop, owner=owner),
        learning_rate=learning_rate,
        eta_minus=eta_minus,
        eta_plus=eta_plus,
        min_step_size=min_step_size,
        max_step_size=max_step_size,
    )
