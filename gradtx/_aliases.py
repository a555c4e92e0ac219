"""The optimizers, each a chain of the elementary transformations, with optax's signatures.

Each alias validates its arguments, then hands its numeric hyperparameters to ``live`` with a
``build`` function returning the chain, so that ``hyperparams(state)`` shows them under the
alias's own argument names (``learning_rate``, ``momentum``, ``b1`` ...).
"""

from __future__ import annotations

from typing import Any

from gradtx import _tree
from gradtx._base import GradientTransformation, identity
from gradtx._combine import chain, check_mask, masked
from gradtx._decay import _add_decayed_weights
from gradtx._hyper import ScalarOrSchedule, check_constant, check_dtype, check_flag, live
from gradtx._momentum import _trace
from gradtx._quantized import MIN_8BIT_SIZE
from gradtx._scaling import (
    _scale_by_adadelta,
    _scale_by_adam,
    _scale_by_rms,
    _scale_by_rss,
    _scale_by_stddev,
    check_storage,
)
from gradtx._step_size import _scale_by_learning_rate, _scale_by_trust_ratio


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


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """AdaGrad: ``chain(scale_by_rss(...), scale_by_learning_rate(learning_rate))``.

    Defaults are optax's. PyTorch's ``Adagrad`` is ``adagrad(lr, initial_accumulator_value=0.0,
    eps=1e-10, eps_in_sqrt=False)``.
    """
    initial = check_constant("adagrad", "initial_accumulator_value", initial_accumulator_value)
    eps_in_sqrt = check_flag("adagrad", "eps_in_sqrt", eps_in_sqrt)

    def build(learning_rate, eps):
        return chain(
            _scale_by_rss(eps, initial_accumulator_value=initial, eps_in_sqrt=eps_in_sqrt),
            _scale_by_learning_rate(learning_rate),
        )

    return live("adagrad", build, learning_rate=learning_rate, eps=eps)


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adadelta: ``chain(add_decayed_weights, scale_by_adadelta, scale_by_learning_rate)``.

    ``learning_rate=None`` means 1.0, Zeiler's rule without a learning rate (and PyTorch's
    default). optax's ``adadelta()`` with its default ``None`` skips the sign flip and so
    ascends; gradtx descends. Coupled weight decay (added to the gradient), as in PyTorch.
    """

    check_mask("adadelta", "weight_decay_mask", weight_decay_mask)

    def build(learning_rate, rho, eps, weight_decay):
        return chain(
            _add_decayed_weights(weight_decay, weight_decay_mask),
            _scale_by_adadelta(rho, eps),
            _scale_by_learning_rate(learning_rate),
        )

    learning_rate = 1.0 if learning_rate is None else learning_rate
    return live(
        "adadelta", build, learning_rate=learning_rate, rho=rho, eps=eps, weight_decay=weight_decay
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp: ``chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate, trace)``.

    Defaults are optax's. PyTorch's ``RMSprop(lr, alpha, eps, momentum, centered)`` is
    ``rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, momentum=momentum or None,
    centered=centered)`` (PyTorch: decay 0.99, ε outside the root). The momentum follows the
    learning-rate scaling, as in optax and PyTorch.
    """
    owner = "rmsprop"
    flags = dict(
        initial_scale=check_constant(owner, "initial_scale", initial_scale),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
    )
    centered = check_flag(owner, "centered", centered)
    nesterov = check_flag(owner, "nesterov", nesterov)

    def build(learning_rate, decay, eps, momentum):
        precondition = _scale_by_stddev if centered else _scale_by_rms
        return chain(
            precondition(decay, eps, **flags),
            _scale_by_learning_rate(learning_rate),
            identity()
            if momentum is None
            else _trace(momentum, nesterov=nesterov, accumulator_dtype=None),
        )

    return live(
        owner,
        build,
        optional=("momentum",),
        learning_rate=learning_rate,
        decay=decay,
        eps=eps,
        momentum=momentum,
    )


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


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-6,
    eps_root: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""LAMB: AdamW's direction rescaled per layer by its trust ratio.

    ``chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate)``:
    :math:`r = \hat m / (\sqrt{\hat v} + \epsilon) + \lambda\theta,\ \theta_l \leftarrow
    \theta_l - \eta \frac{\|\theta_l\|}{\|r_l\|} r_l`.

    ``axis_name``: inside ``shard_map``/``pmap``, the axis (or axes) the leaves are split
    along, so the trust ratios use whole-tensor norms (see :func:`gradtx.clip_by_global_norm`).

    References:
      You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*, 2019.
    """

    axes = _tree.axis_names("lamb", axis_name)
    check_mask("lamb", "mask", mask)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay):
        return chain(
            _scale_by_adam(b1, b2, eps, eps_root),
            _add_decayed_weights(weight_decay, mask),
            _scale_by_trust_ratio(0.0, 1.0, 0.0, axes=axes),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "lamb",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: ScalarOrSchedule = 0.001,
    eps: ScalarOrSchedule = 0.0,
    trust_ratio_mask: Any = True,
    momentum: ScalarOrSchedule = 0.9,
    nesterov: bool = False,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""LARS: SGD with momentum whose per-layer step is scaled by the trust ratio.

    ``chain(add_decayed_weights, scale_by_trust_ratio(trust_coefficient, eps),
    scale_by_learning_rate, trace(momentum))``, with optax's defaults. ``axis_name`` as in
    :func:`lamb`.

    References:
      You, Gitman and Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.
    """
    nesterov = check_flag("lars", "nesterov", nesterov)
    axes = _tree.axis_names("lars", axis_name)
    check_mask("lars", "weight_decay_mask", weight_decay_mask)
    check_mask("lars", "trust_ratio_mask", trust_ratio_mask)

    def build(learning_rate, weight_decay, trust_coefficient, eps, momentum):
        trust = _scale_by_trust_ratio(0.0, trust_coefficient, eps, axes=axes)
        return chain(
            _add_decayed_weights(weight_decay, weight_decay_mask),
            masked(trust, trust_ratio_mask),
            _scale_by_learning_rate(learning_rate),
            _trace(momentum, nesterov=nesterov, accumulator_dtype=None),
        )

    return live(
        "lars",
        build,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        trust_coefficient=trust_coefficient,
        eps=eps,
        momentum=momentum,
    )
