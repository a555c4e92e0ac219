"""optax's ``second_order`` helpers: the Hessian's diagonal, the Fisher's diagonal, and the
Hessian-vector product of a loss of ``(params, inputs, targets)`` with a flat vector.

These read the params as one flat vector (``jax.flatten_util.ravel_pytree`` order) and return
flat vectors, as optax's do; :func:`gradtx.hvp` is the general product, on pytrees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import flatten_util

from gradtx._curvature.newton import hvp as _tree_hvp

Loss = Callable[[Any, Any, Any], jax.Array]


def _check_loss(owner: str, name: str, loss: Any, params: Any, inputs: Any, targets: Any):
    if not callable(loss):
        raise TypeError(
            f"{owner}: {name} must be a function (params, inputs, targets), got {loss!r}"
        )
    shape = jax.eval_shape(loss, params, inputs, targets).shape
    if shape != ():
        raise ValueError(f"{owner}: {name} must return a scalar, got shape {shape}")


def hvp(loss: Loss, v: jax.Array, params: Any, inputs: Any, targets: Any) -> Any:
    r"""The product of the loss's Hessian in the params with a flat vector: :math:`H v`.

    optax's ``second_order.hvp``: :func:`gradtx.hvp` (forward over reverse, no Hessian formed)
    with ``v`` given as a flat vector in the order of ``jax.flatten_util.ravel_pytree(params)``.

    Args:
      loss: a scalar function ``loss(params, inputs, targets)``.
      v: a vector of as many entries as the params have.
      params: the point (a pytree).
      inputs: the inputs ``loss`` is evaluated at.
      targets: the targets ``loss`` is evaluated at.

    Returns:
      :math:`H v`, a pytree like ``params``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> loss = lambda w, x, y: jnp.sum((x * w - y) ** 2)  # Hessian 2 diag(x**2)
      >>> gradtx.second_order.hvp(loss, jnp.ones(2), jnp.zeros(2), jnp.array([1.0, 3.0]), 0.0)
      Array([ 2., 18.], dtype=float32)
    """
    owner = "second_order.hvp"
    _check_loss(owner, "loss", loss, params, inputs, targets)
    flat, unravel = flatten_util.ravel_pytree(params)
    if jnp.shape(v) != flat.shape:
        raise ValueError(
            f"{owner}: v must be a vector of the params' {flat.size} entries, got shape "
            f"{jnp.shape(v)}"
        )
    return _tree_hvp(lambda p: loss(p, inputs, targets), params, unravel(v))


def hessian_diag(loss: Loss, params: Any, inputs: Any, targets: Any) -> jax.Array:
    r"""The diagonal of the loss's Hessian in the params, as a flat vector.

    .. math:: d_i = \frac{\partial^2 \ell}{\partial \theta_i^2} = (H e_i)_i

    One Hessian-vector product per entry of the params (``vmap``-ed over the basis vectors
    :math:`e_i`): exact, at :math:`n` times the cost of a gradient for :math:`n` entries, for
    small models. :func:`gradtx.hutchinson_estimator_diag_hessian` estimates it at the cost of
    one product.

    Args:
      loss: a scalar function ``loss(params, inputs, targets)``.
      params: the point (a pytree).
      inputs: the inputs ``loss`` is evaluated at.
      targets: the targets ``loss`` is evaluated at.

    Returns:
      The diagonal, a vector in the order of ``jax.flatten_util.ravel_pytree(params)``. Matches
      optax's ``second_order.hessian_diag`` (which forms :math:`e_i^\top H e_i`, where an
      infinite entry elsewhere in :math:`H e_i` makes a NaN; gradtx reads :math:`(H e_i)_i`).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> loss = lambda w, x, y: jnp.sum((x * w - y) ** 2) + w[0] * w[1]
      >>> gradtx.second_order.hessian_diag(loss, jnp.zeros(2), jnp.array([1.0, 3.0]), 0.0)
      Array([ 2., 18.], dtype=float32)
    """
    owner = "second_order.hessian_diag"
    _check_loss(owner, "loss", loss, params, inputs, targets)
    flat, unravel = flatten_util.ravel_pytree(params)

    def grad(x: jax.Array) -> jax.Array:
        return flatten_util.ravel_pytree(jax.grad(loss)(unravel(x), inputs, targets))[0]

    def product(basis: jax.Array) -> jax.Array:
        return jax.jvp(grad, (flat,), (basis,))[1]

    # row i is H e_i; its entry i is the diagonal's (no sum over the row: an infinite entry
    # elsewhere in it would make a NaN)
    return jnp.diagonal(jax.vmap(product)(jnp.eye(flat.size, dtype=flat.dtype)))


def fisher_diag(negative_log_likelihood: Loss, params: Any, inputs: Any, targets: Any) -> jax.Array:
    r"""The diagonal of the observed Fisher information: the squared gradient of the NLL.

    .. math:: F_{ii} = \left(\frac{\partial (-\log p(y \mid x, \theta))}{\partial \theta_i}
      \right)^2

    Args:
      negative_log_likelihood: a scalar function ``nll(params, inputs, targets)``.
      params: the point (a pytree).
      inputs: the inputs it is evaluated at.
      targets: the targets it is evaluated at.

    Returns:
      The diagonal, a vector in the order of ``jax.flatten_util.ravel_pytree(params)``. Matches
      optax's ``second_order.fisher_diag``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> nll = lambda w, x, y: 0.5 * jnp.sum((x * w - y) ** 2)
      >>> gradtx.second_order.fisher_diag(nll, jnp.zeros(2), jnp.array([1.0, 3.0]), 1.0)
      Array([1., 9.], dtype=float32)

    References:
      Martens, *New Insights and Perspectives on the Natural Gradient Method*, JMLR 2020,
      section 11 (the empirical Fisher).
    """
    owner = "second_order.fisher_diag"
    _check_loss(owner, "negative_log_likelihood", negative_log_likelihood, params, inputs, targets)
    grad = jax.grad(negative_log_likelihood)(params, inputs, targets)
    return jnp.square(flatten_util.ravel_pytree(grad)[0])
