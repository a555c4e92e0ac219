"""Adam and its descendants: bias-corrected first and second moments.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, check_flag, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.quantized import MIN_8BIT_SIZE
from gradtx._transforms.second_moments import (
    _scale_by_adam,
    check_storage,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def adam(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
    optim_bits: int = 32,
    min_8bit_size: int = MIN_8BIT_SIZE,
) -> GradientTransformation:
    r"""Adam: ``chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(lr))``.

    .. math:: \theta \leftarrow \theta - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    Defaults are the paper's (and optax's and PyTorch's). Low-memory state: ``mu_dtype`` and
    ``nu_dtype`` (e.g. ``jnp.bfloat16``, 4 bytes per parameter instead of 8), or
    ``optim_bits=8`` for block-wise 8-bit moments (about 2 bytes per parameter; leaves under
    ``min_8bit_size`` elements stay in float32), as in :func:`scale_by_adam`.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.adam(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> for _ in range(100):
      ...     updates, state = tx.update(jax.grad(lambda p: (p ** 2).sum())(params), state)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(jnp.abs(params).max() < 0.1)
      True

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, 2014.
    """
    storage = check_storage("adam", mu_dtype, nu_dtype, optim_bits, min_8bit_size)
    nesterov = check_flag("adam", "nesterov", nesterov)

    def build(learning_rate, b1, b2, eps, eps_root):
        return chain(
            _scale_by_adam(b1, b2, eps, eps_root, nesterov=nesterov, **storage),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "adam", build, learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
    optim_bits: int = 32,
    min_8bit_size: int = MIN_8BIT_SIZE,
) -> GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay.

    ``chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:
    :math:`\theta \leftarrow \theta - \eta (\hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda
    \theta)`. The decay is multiplied by η, as in PyTorch and optax. Default
    ``weight_decay=1e-4`` is optax's (PyTorch's is 1e-2). Low-memory state (``mu_dtype``,
    ``nu_dtype``, ``optim_bits=8``, ``min_8bit_size``) as in :func:`scale_by_adam`.

    References:
      Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, 2017.
    """
    storage = check_storage("adamw", mu_dtype, nu_dtype, optim_bits, min_8bit_size)
    nesterov = check_flag("adamw", "nesterov", nesterov)
    check_mask("adamw", "mask", mask)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay):
        return chain(
            _scale_by_adam(b1, b2, eps, eps_root, nesterov=nesterov, **storage),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "adamw",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )
