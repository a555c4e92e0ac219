"""SGD-like optimizers: a gradient step with optional momentum.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation, identity
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, check_dtype, check_flag, live
from gradtx._transforms.momentum import _trace
from gradtx._transforms.step_size import _scale_by_learning_rate


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, with optional heavy-ball or Nesterov momentum.

    ``chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))``:
    :math:`v \leftarrow \mu v + g,\ \theta \leftarrow \theta - \eta v` (PyTorch's convention;
    with ``nesterov``, :math:`\theta \leftarrow \theta - \eta (g + \mu v)`).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.sgd(learning_rate=0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(3)}, state, params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([0.9, 0.9, 0.9], dtype=float32)
    """
    nesterov = check_flag("sgd", "nesterov", nesterov)
    accumulator_dtype = check_dtype("sgd", "accumulator_dtype", accumulator_dtype)

    def build(learning_rate, momentum):
        return chain(
            identity()
            if momentum is None
            else _trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "sgd", build, optional=("momentum",), learning_rate=learning_rate, momentum=momentum
    )
