"""Run-time checks of live hyperparameters: the values the factories cannot see.

The factories validate every hyperparameter they are given as a concrete number. Some values are
only known while the program runs: what a schedule returns at step 10 000, a value set with
:func:`gradtx.set_hyperparams` from a traced array, a factory called inside ``jit`` or ``vmap``
with a traced learning rate (which it cannot check, and says so). :func:`checked` checks them
all, at every update, inside the compiled step, through :mod:`jax.experimental.checkify`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.experimental import checkify

from gradtx._core.base import GradientTransformation, with_extra_args
from gradtx._core.hyper_access import _catalogue, _public_names, _rules, hyperparams


def _check_values(state) -> None:
    public = _public_names(_catalogue(state))
    rules = {public[q]: rule for q, rule in _rules(state).items()}
    for key, value in hyperparams(state).items():
        finite = jnp.isfinite(value)
        checkify.check(
            jnp.all(finite), f"checked: {key} must be finite, got {{value}}", value=value
        )
        rule = rules[key]
        if rule is not None:
            text, test = rule
            # a non-finite value is reported by the check above, not twice
            ok = jnp.all(test(value) | ~finite)
            checkify.check(ok, f"checked: {key} must be {text}, got {{value}}", value=value)


def checked(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` that checks, at every update, every live hyperparameter value it is about to use.

    Each value in the state (``learning_rate``, ``b1``, ... of every transformation inside
    ``tx``, keyed as :func:`gradtx.hyperparams` keys them) must be finite and within the range
    its factory documents (``b1`` in [0, 1), ``learning_rate`` >= 0, ...). This catches what no
    factory can check when it is built: a schedule that returns NaN or 1.5 at some step, a value
    set with :func:`gradtx.set_hyperparams` from a traced array, a factory called with traced
    values inside ``jit``/``vmap`` (factories validate concrete values only).

    The checks are :func:`jax.experimental.checkify.check` calls: run the step through
    ``checkify.checkify`` and call ``err.throw()`` (or read ``err.get()``) on what it returns.
    Eagerly (no ``jit``) a failed check raises at once; a jitted step that is not checkified
    fails to trace with JAX's message saying so. The cost is a few scalar comparisons per
    hyperparameter per step and the error value checkify threads through the program; the
    updates are ``tx``'s, bit for bit.

    Args:
      tx: the transformation to check.

    Returns:
      A :class:`GradientTransformation` with ``tx``'s state and updates.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> tx = gradtx.checked(gradtx.adam(lambda step: jnp.where(step < 1, 1e-3, jnp.nan)))
      >>> params = {"w": jnp.ones(2)}
      >>> step = jax.jit(checkify.checkify(tx.update))
      >>> err, (updates, state) = step(params, tx.init(params))  # step 0: 1e-3
      >>> err.get() is None
      True
      >>> err, _ = step(params, state)  # step 1: the schedule returned NaN
      >>> print(err.get().split(" (")[0])
      checked: learning_rate must be finite, got nan
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"checked: tx must be a GradientTransformation (init, update), got {type(tx).__name__}"
        )
    inner = with_extra_args(GradientTransformation(tx.init, tx.update))

    def update(updates, state, params=None, **extra):
        _check_values(state)
        return inner.update(updates, state, params, **extra)

    return GradientTransformation(inner.init, update)
