"""Adam and its descendants with Adam's own moments: Adam, AdamW, NAdam, NAdamW, AMSGrad, Adamax.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names. The relatives with other moments (RAdam, AdaBelief, Yogi,
Adan) are in ``adam_variants``.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag, check_range
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.adam_family import (
    _scale_by_adamax,
    _scale_by_amsgrad,
    check_amsgrad_flags,
    scale_by_nadam_scheduled,
)
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.quantized import MIN_8BIT_SIZE
from gradtx._transforms.second_moments import _scale_by_adam, check_storage
from gradtx._transforms.step_size import _scale_by_learning_rate


def with_weight_decay(core, weight_decay, decoupled: bool, learning_rate, mask=None):
    """``core`` then the learning rate, with λθ added to the gradient (coupled, L2) or to the
    preconditioned step (decoupled); ``weight_decay=None``: no decay (params not needed)."""
    if weight_decay is None:
        return chain(core, _scale_by_learning_rate(learning_rate))
    decay = _add_decayed_weights(weight_decay, mask)
    if decoupled:
        return chain(core, decay, _scale_by_learning_rate(learning_rate))
    return chain(decay, core, _scale_by_learning_rate(learning_rate))


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
    r"""Adam: debiased first moment over the root of the debiased second moment.

    ``chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate))``:

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
      \quad \theta_t = \theta_{t-1} - \eta\, \frac{m_t / (1-\beta_1^t)}
      {\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}

    With ``nesterov=True`` this is NAdam (see :func:`nadam`). Complex params: :math:`|g|^2`
    (real) in the second moment.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (the paper's, optax's and PyTorch's).
      b2: β₂ in [0, 1). Default 0.999 (the same).
      eps: ε >= 0 outside the root. Default 1e-8 (the same).
      eps_root: ε >= 0 inside the root (keeps gradients through the update finite). Default 0.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      nesterov: use Dozat's look-ahead first moment (NAdam).
      nu_dtype: dtype of the second moment (default: the params' dtype); e.g. ``jnp.bfloat16``
        with ``mu_dtype`` too stores 4 bytes per parameter instead of 8.
      optim_bits: 32, or 8 for block-wise 8-bit moments (about 2 bytes per parameter).
      min_8bit_size: with ``optim_bits=8``, leaves with fewer elements keep float32 moments.

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters.

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
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, Algorithm 1;
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
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
    scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta \left(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}}
      + \epsilon} + \lambda \theta_{t-1}\right)

    The decay is multiplied by η, as in PyTorch and optax (the paper schedules it apart).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9.
      b2: β₂ in [0, 1). Default 0.999.
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      weight_decay: λ >= 0. Default 1e-4 (optax's; PyTorch's is 1e-2).
      mask: a tree of bools like the params (or a function of the params giving one): decay
        only where True.
      nesterov: NAdam's first moment (see :func:`nadamw`).
      nu_dtype, optim_bits, min_8bit_size: low-memory moments, as in :func:`adam`.

    Returns:
      A :class:`GradientTransformation`; its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adamw(learning_rate=0.1, weight_decay=0.5)
      >>> params = {"w": jnp.array([2.0])}
      >>> updates, _ = tx.update({"w": jnp.array([0.0])}, tx.init(params), params)
      >>> updates["w"]  # no gradient: only the decay, -0.1 * 0.5 * 2
      Array([-0.1], dtype=float32)

    References:
      Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019, Algorithm 2.
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


def _nadam_core(b1, b2, eps, eps_root, momentum_decay, mu_dtype):
    if momentum_decay is None:
        return _scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=True)
    return scale_by_nadam_scheduled(b1, b2, eps, eps_root, momentum_decay, mu_dtype=mu_dtype)


def _check_momentum_decay(owner, momentum_decay):
    check_range(owner, "momentum_decay", momentum_decay, ">= 0", lambda x: x >= 0)


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    momentum_decay: ScalarOrSchedule | None = None,
    weight_decay: ScalarOrSchedule | None = None,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""NAdam: Adam with Nesterov momentum (Dozat's look-ahead first moment).

    ``adam(..., nesterov=True)``: the debiased first moment is replaced by

    .. math::
      \hat m_t = \frac{\mu_{t+1} m_t}{1-\prod_{i \le t+1}\mu_i}
      + \frac{(1-\mu_t)\, g_t}{1-\prod_{i \le t}\mu_i}, \qquad
      \theta_t = \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)

    with :math:`m_t` Adam's EMA of decay β₁ and :math:`\mu_t = \beta_1` (optax's form,
    ``momentum_decay=None``), or PyTorch's warming-up momentum
    :math:`\mu_t = \beta_1 (1 - \tfrac12\, 0.96^{t\psi})` with ψ = ``momentum_decay``.
    ``torch.optim.NAdam(lr, betas, eps, weight_decay, momentum_decay=4e-3,
    decoupled_weight_decay)`` is ``nadam(lr, b1, b2, eps, momentum_decay=4e-3,
    weight_decay=weight_decay, decoupled_weight_decay=...)`` (PyTorch adds ε outside the root
    of the debiased :math:`v`, as here).

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9 (optax's and PyTorch's).
      b2: β₂ in [0, 1). Default 0.999.
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      momentum_decay: ψ >= 0 of PyTorch's momentum schedule (its default is 4e-3); None:
        constant :math:`\mu_t = \beta_1` (optax's; the default).
      weight_decay: λ >= 0 of an L2 term added to the gradient (PyTorch's ``weight_decay``), or
        with ``decoupled_weight_decay`` to the step, as in :func:`nadamw`. Default None: none.
      decoupled_weight_decay: decouple the decay (PyTorch's flag of the same name).

    Returns:
      A :class:`GradientTransformation`; with ``weight_decay`` its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.nadam(0.1, momentum_decay=4e-3)
      >>> sorted(gradtx.hyperparams(tx.init(jnp.zeros(2))))
      ['b1', 'b2', 'eps', 'eps_root', 'learning_rate', 'momentum_decay']

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016, Algorithm 2;
      Sutskever, Martens, Dahl and Hinton, *On the importance of initialization and momentum
      in deep learning*, ICML 2013 (the momentum schedule).
    """
    mu_dtype = check_dtype("nadam", "mu_dtype", mu_dtype)
    decoupled = check_flag("nadam", "decoupled_weight_decay", decoupled_weight_decay)
    _check_momentum_decay("nadam", momentum_decay)

    def build(learning_rate, b1, b2, eps, eps_root, momentum_decay, weight_decay):
        core = _nadam_core(b1, b2, eps, eps_root, momentum_decay, mu_dtype)
        return with_weight_decay(core, weight_decay, decoupled, learning_rate)

    return live(
        "nadam",
        build,
        optional=("momentum_decay", "weight_decay"),
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        momentum_decay=momentum_decay,
        weight_decay=weight_decay,
    )


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    momentum_decay: ScalarOrSchedule | None = None,
) -> GradientTransformation:
    r"""NAdamW: NAdam with decoupled weight decay (``adamw(..., nesterov=True)``).

    .. math::
      \theta_t = \theta_{t-1} - \eta \left(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}}
      + \epsilon} + \lambda \theta_{t-1}\right)

    with :math:`\hat m_t` NAdam's look-ahead first moment (see :func:`nadam`).
    ``torch.optim.NAdam(..., decoupled_weight_decay=True)`` is ``nadamw(...,
    momentum_decay=4e-3)``.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9.
      b2: β₂ in [0, 1). Default 0.999.
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      weight_decay: λ >= 0. Default 1e-4 (optax's).
      mask: decay only where this tree of bools (or function of the params) is True.
      momentum_decay: ψ of PyTorch's momentum schedule, or None (optax's constant β₁).

    Returns:
      A :class:`GradientTransformation`; its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.nadamw(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.array([2.0])}
      >>> updates, _ = tx.update({"w": jnp.array([0.0])}, tx.init(params), params)
      >>> updates["w"]
      Array([-0.1], dtype=float32)

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016; Loshchilov and
      Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    mu_dtype = check_dtype("nadamw", "mu_dtype", mu_dtype)
    check_mask("nadamw", "mask", mask)
    _check_momentum_decay("nadamw", momentum_decay)

    def build(learning_rate, b1, b2, eps, eps_root, weight_decay, momentum_decay):
        core = _nadam_core(b1, b2, eps, eps_root, momentum_decay, mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "nadamw",
        build,
        optional=("momentum_decay",),
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
        momentum_decay=momentum_decay,
    )


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    debias_after_max: bool = False,
) -> GradientTransformation:
    r"""AMSGrad: Adam whose second moment never decreases (a running maximum).

    ``chain(scale_by_amsgrad(...), scale_by_learning_rate(learning_rate))``:

    .. math::
      \hat v^{\max}_t = \max(\hat v^{\max}_{t-1}, \hat v_t), \qquad
      \theta_t = \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v^{\max}_t + \epsilon_{root}}
      + \epsilon)

    optax's form takes the maximum of the debiased :math:`\hat v_t`;
    ``torch.optim.Adam(amsgrad=True)`` takes it of the raw :math:`v_t` and debiases after:
    ``debias_after_max=True``.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9.
      b2: β₂ in [0, 1). Default 0.999.
      eps: ε >= 0 outside the root. Default 1e-8.
      eps_root: ε >= 0 inside the root. Default 0.
      mu_dtype: dtype of the first moment (default: the params' dtype).
      bias_correction_mu: debias the first moment (False: the paper's Algorithm 2).
      bias_correction_nu: debias the second moment (False: the paper's Algorithm 2).
      debias_after_max: PyTorch's form of the maximum.

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.amsgrad(0.1)
      >>> g = jnp.array([1.0])
      >>> round(float(tx.update(g, tx.init(g))[0][0]), 4)  # the first step is -lr * g / |g|
      -0.1

    References:
      Reddi, Kale and Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018, Algorithm 2.
    """
    owner = "amsgrad"
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)
    flags = check_amsgrad_flags(owner, bias_correction_mu, bias_correction_nu, debias_after_max)

    def build(learning_rate, b1, b2, eps, eps_root):
        return chain(
            _scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype=mu_dtype, **flags),
            _scale_by_learning_rate(learning_rate),
        )

    return live(owner, build, learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root)


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adamax: Adam with the infinity norm in place of the root mean square.

    ``chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))``:

    .. math::
      u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \qquad
      \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\, \frac{m_t}{u_t}

    This is ``torch.optim.Adamax`` too (ε inside the maximum, as optax).

    Args:
      learning_rate: η >= 0, a float or a schedule (the paper's default 0.002).
      b1: β₁ in [0, 1). Default 0.9 (the paper's).
      b2: β₂ in [0, 1). Default 0.999 (the paper's).
      eps: ε >= 0 inside the maximum. Default 1e-8 (optax's and PyTorch's).
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adamax(0.1)
      >>> g = jnp.array([4.0, -1.0])
      >>> [round(x, 4) for x in tx.update(g, tx.init(g))[0].tolist()]
      [-0.1, 0.1]

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, Algorithm 2.
    """
    mu_dtype = check_dtype("adamax", "mu_dtype", mu_dtype)

    def build(learning_rate, b1, b2, eps):
        return chain(
            _scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype),
            _scale_by_learning_rate(learning_rate),
        )

    return live("adamax", build, learning_rate=learning_rate, b1=b1, b2=b2, eps=eps)


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdamaxW: Adamax with decoupled weight decay.

    ``chain(scale_by_adamax(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_t = \theta_{t-1} - \eta \left(\frac{m_t}{(1-\beta_1^t)\, u_t}
      + \lambda \theta_{t-1}\right)

    Args:
      learning_rate: η >= 0, a float or a schedule.
      b1: β₁ in [0, 1). Default 0.9.
      b2: β₂ in [0, 1). Default 0.999.
      eps: ε >= 0 inside the maximum. Default 1e-8.
      weight_decay: λ >= 0. Default 1e-4 (optax's).
      mask: decay only where this tree of bools (or function of the params) is True.
      mu_dtype: dtype of the first moment (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; its update needs the params.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.adamaxw(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.array([2.0])}
      >>> updates, _ = tx.update({"w": jnp.array([0.0])}, tx.init(params), params)
      >>> updates["w"]
      Array([-0.1], dtype=float32)

    References:
      Kingma and Ba, 2015, Algorithm 2; Loshchilov and Hutter, *Decoupled Weight Decay
      Regularization*, ICLR 2019.
    """
    mu_dtype = check_dtype("adamaxw", "mu_dtype", mu_dtype)
    check_mask("adamaxw", "mask", mask)

    def build(learning_rate, b1, b2, eps, weight_decay):
        core = _scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype)
        return with_weight_decay(core, weight_decay, True, learning_rate, mask)

    return live(
        "adamaxw",
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
    )
