"""Cautious optimizers: any transformation's update masked where it would climb the gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState, with_extra_args
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as

_NON_NEGATIVE = (">= 0", lambda v: v >= 0)


def _parts(x: jax.Array) -> tuple[jax.Array, ...]:
    """The real coordinates of a leaf: itself, or its real and imaginary parts."""
    return (x.real, x.imag) if jnp.iscomplexobj(x) else (x,)


def cautious_leaf(u: jax.Array, g: jax.Array, mask_eps: Callable[[Any], jax.Array]) -> jax.Array:
    """One leaf's cautious update: ``u`` kept where it descends along ``g`` (``u g < 0``),
    zeroed elsewhere, and the kept part scaled by ``n / (kept + mask_eps)``.

    The signs are compared, not the product ``u g``, which underflows to 0 for tiny values.
    The mask multiplies ``u`` (rather than selecting), so that a NaN in ``u`` is not hidden. A
    complex leaf counts as its real and imaginary parts, each masked on its own (the real
    problem on the pairs). The factor is formed in at least float32; ``mask_eps(dtype)`` gives
    ε in a dtype.
    """
    real = _tree.real_dtype(_tree.accumulation_dtype(_tree.wider(u.dtype, g.dtype)))
    u_parts, g_parts = _parts(u), _parts(g)
    keeps = [((a > 0) & (b < 0)) | ((a < 0) & (b > 0)) for a, b in zip(u_parts, g_parts)]
    kept = sum((jnp.sum(k, dtype=jnp.int32) for k in keeps), jnp.zeros([], jnp.int32))
    size = jnp.asarray(u.size * len(u_parts), real)
    denominator = kept.astype(real) + mask_eps(real)
    # 0 / 0 only for an empty leaf, or with mask_eps = 0 when nothing is kept: no update then
    positive = denominator > 0
    factor = jnp.where(positive, size / jnp.where(positive, denominator, 1), 0)
    out = [a.astype(real) * (k.astype(real) * factor) for a, k in zip(u_parts, keeps)]
    if jnp.iscomplexobj(u):
        return jax.lax.complex(*out).astype(u.dtype)
    return out[0].astype(u.dtype)


class CautiousState(NamedTuple):
    inner_state: OptState  # the wrapped transformation's state

    # a name particular to cautious, so its range is listed here rather than in the shared table
    live_ranges = {"mask_eps": _NON_NEGATIVE}


def _cautious(mask_eps: Value, *, tx: GradientTransformation) -> GradientTransformation:
    def init(params):
        return CautiousState(inner_state=tx.init(params))

    def update(updates, state, params=None, **extra):
        proposed, inner_state = tx.update(updates, state.inner_state, params, **extra)
        eps = per_dtype(lambda dtype: value_as(mask_eps, dtype))
        masked = _tree.map(
            lambda u, g: cautious_leaf(u, g, eps),
            proposed,
            updates,
            owner="cautious",
            names=("updates of tx", "gradients"),
        )
        return masked, CautiousState(inner_state=inner_state)

    return GradientTransformation(init, update)


def cautious(
    tx: GradientTransformation, mask_eps: ScalarOrSchedule = 1.0
) -> GradientTransformation:
    r"""Cautious optimizer: ``tx``'s update kept only where it agrees with the gradient.

    .. math::
      \phi_t = \mathbb 1(u_t \odot g_t < 0), \qquad
      u_t \leftarrow \frac{n}{\|\phi_t\|_0 + \epsilon}\, \phi_t \odot u_t

    per leaf, with :math:`u_t` the update of ``tx`` (added to the params, so the learning rate
    and the descent sign included), :math:`g_t` the gradient given to ``cautious`` and *n* the
    leaf's size. The paper writes the step :math:`\theta \leftarrow \theta - \eta u` and keeps
    the coordinates where :math:`u \odot g > 0`; a gradtx update is :math:`-\eta u`, hence
    :math:`u_t \odot g_t < 0` here: the same coordinates. A coordinate where either is 0 is
    dropped. Masked coordinates do not move this step; the others are scaled up so that the
    update keeps about its size: the paper's rescaled learning rate
    :math:`\bar\eta_t = \eta_t\, d / (\|\phi_t\|_0 + 1)` (*d* the size), taken per tensor, as in the
    authors' code and ``pytorch_optimizer``'s ``cautious=True``. ``tx``'s state evolves as
    without the mask (its moments see every gradient).

    C-AdamW and C-Lion are ``cautious(adamw(...))`` and ``cautious(lion(...))``. The mask
    covers the whole update of ``tx``: with decoupled weight decay inside ``tx``, a masked
    coordinate is not decayed that step either (the decay term is part of :math:`u_t`). The
    authors' C-AdamW and C-Lion decay every coordinate, outside the mask; that is ``tx``
    without its decay, and the decay chained after::

      chain(cautious(chain(scale_by_adam(), scale(-1.0))), scale(-1.0),
            add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))

    (the inner ``scale(-1.0)`` gives the mask a descent update to compare; the outer one turns
    it back into a direction before the decay and the learning rate).

    The paper's later form divides by the mask's mean, :math:`\phi / (\bar\phi + \epsilon)`;
    the authors' current C-AdamW code (and timm's caution) uses :math:`\phi / \max(\bar\phi,
    10^{-3})`: ``mask_eps=0`` gives :math:`n / \|\phi\|_0 = 1/\bar\phi`, the same numbers
    unless fewer than 0.1% of a leaf's coordinates are kept.

    Complex leaves count as their real and imaginary parts, each masked on its own.

    Args:
      tx: the transformation to caution: any gradtx or optax transformation whose updates are
        added to the params (a whole optimizer, its learning rate included).
      mask_eps: ε >= 0 in the denominator of the rescaling. Default 1, the paper's
        :math:`\|\phi_t\|_0 + 1` (and ``pytorch_optimizer``'s).

    Returns:
      A :class:`GradientTransformation`; :func:`gradtx.hyperparams` shows ``mask_eps`` beside
      ``tx``'s hyperparameters.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.cautious(gradtx.sgd(0.1, momentum=0.9), mask_eps=0.0)
      >>> params = jnp.zeros(4)
      >>> state = tx.init(params)
      >>> _, state = tx.update(jnp.array([1.0, 1.0, 1.0, 1.0]), state, params)
      >>> u, _ = tx.update(jnp.array([1.0, -0.5, 1.0, -0.5]), state, params)
      >>> u  # -0.1 (0.9 + g) kept where it descends along g, scaled by 4 / 2
      Array([-0.38, -0.  , -0.38, -0.  ], dtype=float32)

    References:
      Liang, Chen, Liu and Liu, *Cautious Optimizers: Improving Training with One Line of
      Code*, 2024.
    """
    owner = "cautious"
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"{owner}: tx must be a GradientTransformation, got {tx!r}")
    inner = with_extra_args(GradientTransformation(tx.init, tx.update))

    def build(mask_eps: Any) -> GradientTransformation:
        return _cautious(mask_eps, tx=inner)

    return live(owner, build, ranges=CautiousState.live_ranges, mask_eps=mask_eps)
