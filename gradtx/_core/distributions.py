"""A Gaussian with independent coordinates, for gradients estimated by random perturbations.

optax's ``multi_normal``: the distribution of the perturbations of evolution strategies and
other zeroth-order (perturbation-based) gradient estimates, parametrized by its mean and the
log of its standard deviations so that both can be learned without constraints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _real_array(owner: str, name: str, x: jax.typing.ArrayLike) -> jax.Array:
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{owner}: {name} must be a real array, got {x!r}")
    try:
        array = jnp.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a real array, got {x!r}") from None
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise TypeError(f"{owner}: {name} must be a real array, got dtype {array.dtype}")
    return array


class MultiNormalDiagFromLogScale:
    r"""A Gaussian :math:`\mathcal N(\mu, \operatorname{diag}(\sigma^2))`, :math:`\sigma =
    e^{s}`, over arrays of the broadcast shape of its mean and log-scale.

    Built by :func:`multi_normal`. Its values are in the wider float dtype of the two
    parameters (float32 at least); the mean and log-scale keep their own shapes.
    """

    def __init__(self, loc: jax.typing.ArrayLike, log_scale: jax.typing.ArrayLike):
        owner = "multi_normal"
        mean = _real_array(owner, "loc", loc)
        log_sigma = _real_array(owner, "log_scale", log_scale)
        try:
            shape = jax.lax.broadcast_shapes(mean.shape, log_sigma.shape)
        except ValueError as e:
            raise ValueError(
                f"{owner}: loc and log_scale must have shapes that broadcast together, got "
                f"{mean.shape} and {log_sigma.shape} ({e})"
            ) from None
        dtype = _tree.wider(mean.dtype, log_sigma.dtype, jnp.float32)
        self._mean = mean
        self._log_scale = log_sigma
        self._dtype = dtype
        self._param_shape = shape

    @property
    def log_scale(self) -> jax.Array:
        """The log of the standard deviations, as given."""
        return self._log_scale

    @property
    def params(self) -> Sequence[jax.Array]:
        """``[loc, log_scale]``, as given."""
        return [self._mean, self._log_scale]

    def sample(self, shape: Sequence[int], key: jax.Array) -> jax.Array:
        """Draws samples of shape ``(*shape, *param_shape)`` with the PRNG ``key``."""
        noise = jax.random.normal(key, (*tuple(shape), *self._param_shape), self._dtype)
        scale = jnp.exp(self._log_scale.astype(self._dtype))
        return noise * scale + self._mean.astype(self._dtype)

    def log_prob(self, x: jax.typing.ArrayLike) -> jax.Array:
        r"""The log-density of ``x``, summed over the parameters' axes.

        .. math:: \log p(x) = \sum_i -\tfrac12 \left(\frac{x_i - \mu_i}{\sigma_i}\right)^2
          - s_i - \tfrac12 \log 2\pi
        """
        x = jnp.asarray(x)
        dtype = _tree.wider(x.dtype, self._dtype)
        log_scale = self._log_scale.astype(dtype)
        z = (x.astype(dtype) - self._mean.astype(dtype)) * jnp.exp(-log_scale)
        # s_i read as given: log(exp(s)) would round it
        density = -0.5 * z**2 - log_scale - _HALF_LOG_2PI
        axes = tuple(range(-len(self._param_shape), 0))
        return jnp.sum(density, axis=axes)


def multi_normal(
    loc: jax.typing.ArrayLike, log_scale: jax.typing.ArrayLike
) -> MultiNormalDiagFromLogScale:
    r"""A Gaussian with independent coordinates, from its mean and log standard deviations.

    .. math:: x \sim \mathcal N\left(\mu, \operatorname{diag}(e^{2 s})\right)

    Args:
      loc: the mean :math:`\mu` (a real array).
      log_scale: the log standard deviations :math:`s`, of a shape that broadcasts with
        ``loc``'s.

    Returns:
      A :class:`MultiNormalDiagFromLogScale` with ``sample(shape, key)``, ``log_prob(x)``
      (summed over the parameters' axes), ``log_scale`` and ``params`` (``[loc,
      log_scale]``): optax's ``multi_normal``. Both methods are differentiable in ``loc`` and
      ``log_scale``, for score-function (REINFORCE) gradient estimates.

    Raises:
      TypeError: for a parameter that is not a real array.
      ValueError: for shapes that do not broadcast together.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> dist = gradtx.multi_normal(jnp.zeros(3), jnp.zeros(3))
      >>> dist.sample((2,), jax.random.key(0)).shape
      (2, 3)
      >>> round(float(dist.log_prob(jnp.zeros(3))), 4)  # -3/2 log(2 pi)
      -2.7568
    """
    return MultiNormalDiagFromLogScale(loc, log_scale)
