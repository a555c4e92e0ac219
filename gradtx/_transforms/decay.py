"""Weight decay: adding a multiple of the params to the updates."""

from __future__ import annotations

import jax

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, stateless
from gradtx._core.checks import MissingArgumentError
from gradtx._core.combine import check_mask, masked
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as


def decay_step(weight_decay: Value):
    """``(g, p) -> g + weight_decay * p``, in the wider of the two dtypes; make one per update."""
    weight = per_dtype(lambda dtype: value_as(weight_decay, dtype))

    def step(g, p):
        dtype = _tree.wider(g.dtype, p.dtype)
        return _tree.cast(g, dtype) + weight(dtype) * _tree.cast(p, dtype)

    return step


def _add_decayed_weights(weight_decay: Value, mask=None) -> GradientTransformation:
    def add(updates, params):
        if params is None and not jax.tree.leaves(updates):
            return updates  # nothing to decay (a parameter group without leaves)
        if params is None:
            raise MissingArgumentError(
                "add_decayed_weights: update needs params (the decay is λ·params)"
            )
        return _tree.map(
            decay_step(weight_decay),
            updates,
            params,
            owner="add_decayed_weights",
            names=("updates", "params"),
        )

    tx = stateless(add)
    return tx if mask is None else masked(tx, mask)


def add_decayed_weights(weight_decay: ScalarOrSchedule = 0.0, mask=None) -> GradientTransformation:
    r"""Adds ``weight_decay * params`` to the updates.

    .. math:: u \leftarrow u + \lambda \theta

    Where it sits in a chain decides what it means:

    * after the preconditioner, before the learning rate (AdamW):
      ``chain(scale_by_adam(), add_decayed_weights(λ), scale_by_learning_rate(η))`` gives
      :math:`\theta \leftarrow \theta - \eta(\hat m / (\sqrt{\hat v} + \epsilon) + \lambda\theta)`,
      decoupled weight decay;
    * before the preconditioner (Adam with L2):
      ``chain(add_decayed_weights(λ), scale_by_adam(), scale_by_learning_rate(η))`` adds
      :math:`\lambda\theta` to the gradient, the coupled L2 penalty, which Adam then rescales.

    Args:
      weight_decay: λ >= 0, a float or a schedule. Default 0 (optax's).
      mask: optional tree of bools (or a function of the params giving one) selecting the
        leaves to decay, e.g. no decay for biases and norm scales. Default ``None``: every
        leaf.

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs the params; its state holds
      ``weight_decay``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.add_decayed_weights(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> g = {"w": jnp.array([0.5, 0.5])}
      >>> updates, state = tx.update(g, tx.init(params), params)
      >>> [round(u, 4) for u in updates["w"].tolist()]  # g + 0.1 params
      [0.6, 0.3]

    References:
      Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019
      (arXiv:1711.05101, 2017).
    """
    tx = live("add_decayed_weights", _add_decayed_weights, weight_decay=weight_decay)
    return tx if mask is None else masked(tx, check_mask("add_decayed_weights", "mask", mask))
