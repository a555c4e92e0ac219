"""Complex params as pairs of real ones, for transformations that have no complex form."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, OptState, with_extra_args
from gradtx._core.hyper import _naming


class RealImaginaryPair(NamedTuple):
    """The real and imaginary parts of a complex leaf, as two real leaves of its shape."""

    real: jax.Array
    imaginary: jax.Array


def _split(x):
    return RealImaginaryPair(x.real, x.imag) if jnp.iscomplexobj(x) else x


def _merge(x):
    if isinstance(x, RealImaginaryPair):
        return jax.lax.complex(x.real, x.imaginary)
    return x


def _is_pair(x) -> bool:
    return isinstance(x, RealImaginaryPair)


class SplitRealAndImaginaryState(NamedTuple):
    inner_state: OptState  # the inner transformation's state, made for the split params


def split_real_and_imaginary(inner: GradientTransformation) -> GradientTransformation:
    r"""Runs ``inner`` on the real and imaginary parts of complex params as separate real leaves.

    .. math:: z = x + i y \;\mapsto\; (x, y), \qquad
      u_z = u_x + i\, u_y \quad\text{with}\quad (u_x, u_y) = \mathrm{inner}(g_x, g_y)

    Each complex leaf of the params and updates becomes a :class:`RealImaginaryPair` of two real
    leaves of its shape before ``inner`` sees them, and the pair of updates ``inner`` returns
    becomes one complex update again; real leaves pass as they are. ``inner`` thus optimizes the
    equivalent real problem: a transformation without a complex form (the sign methods,
    Lion) runs on complex params, and a second moment is kept per part instead of one of
    :math:`|g|^2` per element. Per-leaf statistics (norms, trust ratios) see the two parts as
    two leaves.

    The gradients must follow optax's convention for a complex param: :math:`\partial f /
    \partial x + i\, \partial f / \partial y`, the conjugate of what ``jax.grad`` returns
    (conjugate it before ``update``).

    Args:
      inner: the transformation to run on the real pairs.

    Returns:
      A :class:`GradientTransformation` whose state holds ``inner``'s, made for the split params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.split_real_and_imaginary(gradtx.lion(0.1, weight_decay=0.0))
      >>> params = {"z": jnp.array([1.0 + 1.0j])}
      >>> grads = {"z": jnp.array([0.5 - 2.0j])}
      >>> tx.update(grads, tx.init(params), params)[0]["z"]  # -0.1 sign of each part
      Array([-0.1+0.1j], dtype=complex64)

    References:
      optax's ``contrib.split_real_and_imaginary``; on the convention for complex gradients,
      https://github.com/google-deepmind/optax/issues/196.
    """
    owner = "split_real_and_imaginary"
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(f"{owner}: inner must be a GradientTransformation, got {inner!r}")
    tx = with_extra_args(GradientTransformation(inner.init, inner.update))

    def init(params):
        _tree.check_leaves(owner, params, "params")
        split = jax.tree.map(_split, params)
        inner_state = _naming(owner, (TypeError, ValueError), tx.init, split)
        return SplitRealAndImaginaryState(inner_state=inner_state)

    def update(updates, state, params=None, **extra):
        _tree.check_leaves(owner, updates, "updates")
        split_params = None if params is None else jax.tree.map(_split, params)
        out, inner_state = _naming(
            owner,
            (ValueError,),
            tx.update,
            jax.tree.map(_split, updates),
            state.inner_state,
            split_params,
            **extra,
        )
        merged = jax.tree.map(_merge, out, is_leaf=_is_pair)
        return merged, SplitRealAndImaginaryState(inner_state=inner_state)

    return GradientTransformation(init, update)
