"""Constraints on updates and params: NaNs replaced by zeros, params kept non-negative."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation
from gradtx._core.checks import MissingArgumentError

# ---- zero_nans ---------------------------------------------------------------------------


class ZeroNansState(NamedTuple):
    """The state of :func:`zero_nans` (optax's field name)."""

    found_nan: Any  # like the params, each leaf a bool []: whether the last update's leaf held
    #   a NaN (False after init)


def zero_nans() -> GradientTransformation:
    r"""Replaces every NaN in the updates by 0 and records, per leaf, whether there was one.

    .. math:: u_i \leftarrow \begin{cases} 0 & \text{if } g_i \text{ is NaN} \\ g_i &
       \text{otherwise} \end{cases}

    Infinities pass unchanged (:func:`apply_if_finite` skips a step with either). A complex
    element with a NaN part becomes 0. The state's ``found_nan`` is for the user to read (say,
    to count the steps where NaNs were dropped); the update does not depend on it.

    Returns:
      A :class:`GradientTransformation` with :class:`ZeroNansState` state.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.zero_nans()
      >>> g = {"a": jnp.array([1.0, jnp.nan]), "b": jnp.array([jnp.inf, 2.0])}
      >>> updates, state = tx.update(g, tx.init(g))
      >>> updates["a"], updates["b"]
      (Array([1., 0.], dtype=float32), Array([inf,  2.], dtype=float32))
      >>> {k: bool(v) for k, v in state.found_nan.items()}
      {'a': True, 'b': False}
    """

    def init(params):
        return ZeroNansState(found_nan=jax.tree.map(lambda _: jnp.asarray(False), params))

    def update(updates, state, params=None, **extra):
        del state, params, extra
        _tree.check_leaves("zero_nans", updates, "updates")
        found = jax.tree.map(lambda g: jnp.any(jnp.isnan(g)), updates)
        updates = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)
        return updates, ZeroNansState(found_nan=found)

    return GradientTransformation(init, update)


# ---- keep_params_nonnegative -------------------------------------------------------------

NonNegativeParamsState = EmptyState  # optax's name for keep_params_nonnegative's (empty) state


def keep_params_nonnegative() -> GradientTransformation:
    r"""Changes the updates so that no param goes below 0: those that would are set to 0.

    .. math:: u_i \leftarrow \begin{cases} -\theta_i & \text{if } \theta_i + u_i < 0 \\ u_i &
       \text{otherwise} \end{cases}

    Put it last in a chain (after the learning rate): it reads the final updates. A param that
    is already negative is moved to 0 by the next update. Where the update and the param have
    different dtypes the result is in the wider one, so that ``-θ`` is exact and
    :func:`apply_updates` lands on 0, not on a rounding error below it.

    Returns:
      A stateless :class:`GradientTransformation` (state :class:`NonNegativeParamsState`, an
      :class:`EmptyState`); its ``update`` needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.keep_params_nonnegative())
      >>> params = {"w": jnp.array([0.5, 2.0])}
      >>> updates, _ = tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)
      >>> gradtx.apply_updates(params, updates)["w"]  # 0.5 - 1 would be negative
      Array([0., 1.], dtype=float32)
    """
    owner = "keep_params_nonnegative"

    def init(params):
        del params
        return NonNegativeParamsState()

    def leaf(p, u):
        if p is None:
            return None
        dtype = _tree.wider(jnp.result_type(p), jnp.result_type(u))
        p, u = jnp.asarray(p).astype(dtype), jnp.asarray(u).astype(dtype)
        return jnp.where(p + u < 0, -p, u)

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the updates are limited by the params' values)"
            )
        _tree.check_match(owner, (updates, params), ("updates", "params"))
        updates = jax.tree.map(leaf, params, updates, is_leaf=lambda x: x is None)
        return updates, state

    return GradientTransformation(init, update)
