"""A gradtx transformation as an instance of optax's class, for code that checks optax's type."""

from __future__ import annotations

import importlib
from typing import Any

from gradtx._core.base import GradientTransformation, _dropping_extra, _is_pair, accepts_extra_args


def as_optax(tx: GradientTransformation) -> Any:
    """``tx`` as an ``optax.GradientTransformationExtraArgs``: the same two functions.

    A gradtx transformation is a NamedTuple ``(init, update)`` like optax's, and code that only
    calls the two functions takes either (Flax's ``TrainState`` and ``nnx.Optimizer``, optax's
    own wrappers). Code that checks ``isinstance(tx, optax.GradientTransformation)`` refuses
    anything but optax's class, and Python gives no way to answer that check from gradtx's side
    (optax's class is a plain NamedTuple, not an ABC); this wraps ``tx``'s functions, unchanged,
    in optax's class. The result is still a gradtx transformation for gradtx
    (``isinstance(as_optax(tx), gradtx.GradientTransformation)`` holds, and ``chain`` and the
    wrappers take it), its state is ``tx``'s, and its updates are ``tx``'s bit for bit.

    optax is imported only when this is called: gradtx does not depend on it.

    Args:
      tx: a transformation (gradtx's, or any ``(init, update)`` pair).

    Returns:
      ``optax.GradientTransformationExtraArgs(tx.init, update)``, where ``update`` is
      ``tx.update`` (wrapped to accept and drop extra keyword arguments if it takes none); ``tx``
      itself if it already is one.

    Raises:
      TypeError: if ``tx`` is not an ``(init, update)`` pair.
      ImportError: if optax is not installed.

    Example:
      >>> import gradtx, optax, jax.numpy as jnp
      >>> tx = gradtx.as_optax(gradtx.adam(1e-3))
      >>> isinstance(tx, optax.GradientTransformation)
      True
      >>> state = tx.init({"w": jnp.ones(2)})
      >>> updates, state = tx.update({"w": jnp.ones(2)}, state)
    """
    if not _is_pair(tx):
        raise TypeError(
            f"as_optax: tx must be a GradientTransformation (an (init, update) pair), got "
            f"{type(tx).__name__}"
        )
    try:
        optax = importlib.import_module("optax")
    except ImportError as e:
        raise ImportError(
            "as_optax: optax is not installed; gradtx does not need it, but optax's class does "
            "(pip install optax, or Flax, which installs it)"
        ) from e
    extra_args_class = optax.GradientTransformationExtraArgs
    if isinstance(tx, extra_args_class):
        return tx
    update = tx.update if accepts_extra_args(tx.update) else _dropping_extra(tx.update)
    return extra_args_class(tx.init, update)
