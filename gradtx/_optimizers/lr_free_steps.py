"""Learning-rate-free step sizes: DoG and DoWG (distance over gradients), MoMo and MoMo-Adam
(Polyak steps on a momentum model of the loss, which ``update`` takes as ``value=``).

Each is a short chain around one pair of :mod:`gradtx._transforms.lr_free_steps`.
"""

from __future__ import annotations

import functools
from typing import Any

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, identity
from gradtx._core.checks import check_dtype, check_flag, check_range
from gradtx._core.combine import chain, check_mask
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.lr_free_steps import (
    INIT_STEPS,
    WEIGHT_DECAY_MODES,
    DoGState,
    DoWGState,
    MomoState,
    _momo,
    _momo_adam,
    _scale_by_dog,
    _scale_by_dowg,
)
from gradtx._transforms.step_size import _scale_by_learning_rate


def _decay(weight_decay, mask):
    return identity() if weight_decay is None else _add_decayed_weights(weight_decay, mask)


def _check_init_step(owner: str, init_step: Any) -> tuple[str, Any]:
    if not (isinstance(init_step, (tuple, list)) and len(init_step) == 2):
        raise TypeError(
            f"{owner}: init_step must be a pair (tag, value) with tag one of {INIT_STEPS}, "
            f"got {init_step!r}"
        )
    tag, value = init_step
    if not isinstance(tag, str):
        raise TypeError(f"{owner}: init_step's tag must be one of {INIT_STEPS}, got {tag!r}")
    if tag not in INIT_STEPS:
        raise ValueError(f"{owner}: init_step's tag must be one of {INIT_STEPS}, got {tag!r}")
    return tag, value


def _check_mode(owner: str, mode: Any) -> str:
    if not isinstance(mode, str):
        raise TypeError(
            f"{owner}: weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {mode!r}"
        )
    if mode not in WEIGHT_DECAY_MODES:
        raise ValueError(
            f"{owner}: weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {mode!r}"
        )
    return mode


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step: tuple[str, ScalarOrSchedule] = ("heuristic", 1e-6),
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule | None = None,
    mask: Any = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""DoG: SGD whose step size is the distance travelled over the root of the summed squared
    gradients.

    ``chain(add_decayed_weights(λ, mask), scale_by_dog, scale_by_learning_rate(c))``:

    .. math::
      \bar r_t = \max\left(r_\epsilon,\ \max_{i \le t} \|x_i - x_0\|\right), \quad
      G_t = \sum_{i \le t} \|g_i\|^2, \quad
      x_{t+1} = x_t - c\, \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, g_t

    with the norms over all leaves together (``|g|**2`` for complex leaves) and
    :math:`g_t` the gradient plus :math:`\lambda x_t` when ``weight_decay`` is given (added
    before the norms, as in the authors' code). The paper recommends averaging the iterates
    (:func:`gradtx.ema_params`, or the authors' polynomial averaging).

    Args:
      learning_rate: c >= 0, a factor on the step (the paper's c; 1 is the method, and the
        default of optax and the authors).
      init_step: ``(tag, value)``, value > 0, as in optax: ``("heuristic", α)`` sets
        :math:`r_\epsilon = α (1 + \|x_0\|)` (the authors' ``reps_rel=α``; they suggest 1e-6,
        1e-4 with batch normalization; the default is ``("heuristic", 1e-6)``);
        ``("distance", r)`` sets :math:`r_\epsilon = r`; ``("learning_rate", η)`` takes the
        first step with size c·η and :math:`r_\epsilon = 0` (the authors' ``init_eta=c·η``:
        theirs is not multiplied by c). The value is live (``hyperparams`` shows it as
        ``init_step``), the tag fixed. ``init`` must see the real params for the heuristic.
      eps: ε >= 0 added to :math:`G_t` (1e-8, optax's and the authors'; not in the paper).
      weight_decay: λ >= 0 of an L2 term added to the gradient, or None (optax's default).
      mask: which leaves decay, as :func:`gradtx.add_decayed_weights`'s mask.
      axis_name: inside ``shard_map``/``pmap``, the mesh axis (or tuple of axes) the leaves
        are split along, for the sums over the whole tree; None (default) under ``jit``, where
        sharded leaves are summed whole.

    Returns:
      A :class:`GradientTransformation`; its ``update`` needs the params.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> tx = gradtx.dog(init_step=("distance", 0.5))
      >>> state = tx.init(x)
      >>> for _ in range(20):
      ...     updates, state = tx.update(jax.grad(f)(x), state, x)
      ...     x = gradtx.apply_updates(x, updates)
      >>> round(float(f(x)), 3)
      0.0

    References:
      Ivgi, Hinder and Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
      Schedule*, ICML 2023 (arXiv:2302.12022); the authors' code, the ``dog-optimizer``
      package (``DoG``).
    """
    owner = "dog"
    kind, init_value = _check_init_step(owner, init_step)
    check_mask(owner, "mask", mask)
    axes = _tree.axis_names(owner, axis_name)

    def build(learning_rate, init_step, eps, weight_decay):
        return chain(
            _decay(weight_decay, mask),
            _scale_by_dog(init_step, eps, kind=kind, axes=axes, owner=owner),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        optional=("weight_decay",),
        ranges=DoGState.live_ranges,
        learning_rate=learning_rate,
        init_step=init_value,
        eps=eps,
        weight_decay=weight_decay,
    )


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist: ScalarOrSchedule | None = None,
    eps: ScalarOrSchedule = 1e-4,
    weight_decay: ScalarOrSchedule | None = None,
    mask: Any = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""DoWG: DoG with the gradients weighted by the squared distance in the denominator.

    ``chain(add_decayed_weights(λ, mask), scale_by_dowg, scale_by_learning_rate(c))``:

    .. math::
      \bar r_t^2 = \max\left(r_\epsilon^2,\ \max_{i \le t} \|x_i - x_0\|^2\right), \quad
      v_t = v_{t-1} + \bar r_t^2 \|g_t\|^2, \quad
      x_{t+1} = x_t - c\, \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}\, g_t

    with the norms over all leaves together. The paper's Algorithm 1 has no ε in the
    denominator and leaves :math:`r_\epsilon` free: ``dowg(init_estim_sq_dist=r**2, eps=0.0)``
    is it exactly; the defaults are optax's, which use ε for both.

    Args:
      learning_rate: c >= 0, a factor on the step (1, the method).
      init_estim_sq_dist: :math:`r_\epsilon^2 > 0`, or None (optax's default) for ``eps``.
      eps: ε >= 0 in the denominator, and :math:`r_\epsilon^2` when ``init_estim_sq_dist`` is
        None (then it must be > 0). Default 1e-4 (optax's).
      weight_decay: λ >= 0 of an L2 term added to the gradient, or None (optax's default).
      mask: which leaves decay, as :func:`gradtx.add_decayed_weights`'s mask.
      axis_name: inside ``shard_map``/``pmap``, the mesh axis (or tuple of axes) the leaves
        are split along, for the sums over the whole tree; None (default) under ``jit``, where
        sharded leaves are summed whole.

    Returns:
      A :class:`GradientTransformation`; its ``update`` needs the params.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> tx = gradtx.dowg()
      >>> state = tx.init(x)
      >>> updates, state = tx.update(jax.grad(f)(x), state, x)
      >>> round(float(f(gradtx.apply_updates(x, updates))), 4)  # 14 at first: a careful start
      13.9254

    References:
      Khaled, Mishchenko and Jin, *DoWG Unleashed: An Efficient Universal Parameter-Free
      Gradient Descent Method*, NeurIPS 2023 (arXiv:2305.16284), Algorithm 1.
    """
    owner = "dowg"
    check_mask(owner, "mask", mask)
    axes = _tree.axis_names(owner, axis_name)
    if init_estim_sq_dist is None:
        check_range(owner, "eps", eps, "> 0 when init_estim_sq_dist is None", lambda v: v > 0)

    def build(learning_rate, init_estim_sq_dist, eps, weight_decay):
        return chain(
            _decay(weight_decay, mask),
            _scale_by_dowg(init_estim_sq_dist, eps, axes=axes, owner=owner),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        owner,
        build,
        optional=("init_estim_sq_dist", "weight_decay"),
        ranges=DoWGState.live_ranges,
        learning_rate=learning_rate,
        init_estim_sq_dist=init_estim_sq_dist,
        eps=eps,
        weight_decay=weight_decay,
    )


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta: ScalarOrSchedule = 0.9,
    lower_bound: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    adapt_lower_bound: bool = False,
    *,
    weight_decay_mode: str = "proximal",
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""MoMo: SGD with momentum whose step is a Polyak step on a model of the loss, capped by
    the learning rate.

    The loss at the params comes as ``update``'s keyword ``value``:
    ``tx.update(grads, state, params, value=loss)`` (a ``chain`` passes it on). With
    :math:`\rho = \beta` after the first update and 0 at it (the averages start at the first
    gradient, loss and inner product),

    .. math::
      d_t = \rho d_{t-1} + (1-\rho) g_t, \quad
      \bar f_t = \rho \bar f_{t-1} + (1-\rho) f(x_t), \quad
      \gamma_t = \rho \gamma_{t-1} + (1-\rho) \langle g_t, x_t \rangle,

    .. math::
      \tau_t = \min\left\{\alpha,\ \frac{\left[(1+\alpha\lambda)(\bar f_t - f_* - \gamma_t)
      + \langle d_t, x_t\rangle\right]_+}{\|d_t\|^2}\right\}, \quad
      x_{t+1} = \frac{x_t - \tau_t d_t}{1 + \alpha\lambda}

    with the sums over all leaves together (:math:`\tau_t = 0` where :math:`d_t = 0`).
    ``adapt_lower_bound`` estimates :math:`f_*` on the fly (the paper's MoMo*): it
    is lowered to half the model's minimum when that falls below it, and set after each step
    to the model's value there, never below ``lower_bound``.

    With weight decay the paper and the authors' code take the proximal step
    :math:`x_{t+1} = (x_t - \tau_t d_t) / (1 + \alpha\lambda)` (``weight_decay_mode=
    "proximal"``, the default); optax.contrib shrinks only the params,
    :math:`x_{t+1} = x_t / (1 + \alpha\lambda) - \tau_t d_t` (``"optax"``); the authors'
    MomoAdam(divide=False) decays as AdamW, :math:`x_{t+1} = (1 - \alpha\lambda) x_t -
    \tau_t d_t` (``"decoupled"``). The three agree without weight decay.

    Args:
      learning_rate: α >= 0, the cap on the step (1, optax's and the authors' default: the
        method is meant to run with a large one).
      beta: β in [0, 1], the averages' decay (0.9).
      lower_bound: :math:`f_*`, a lower bound on the loss (0: right for most losses).
      weight_decay: λ >= 0 (0).
      adapt_lower_bound: estimate the bound online (the authors' ``use_fstar``).
      weight_decay_mode: ``"proximal"``, ``"optax"`` or ``"decoupled"`` (above).
      mu_dtype: dtype of :math:`d_t` (default: the params').
      axis_name: inside ``shard_map``/``pmap``, the mesh axis (or tuple of axes) the leaves
        are split along, for the sums over the whole tree (``value``
        must then be the whole model's loss); None (default) under ``jit``, where
        sharded leaves are summed whole.

    Returns:
      A :class:`GradientTransformation` that returns the whole update; its ``update`` needs
      the params and ``value=``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> tx = gradtx.momo()
      >>> state = tx.init(x)
      >>> value, grad = jax.value_and_grad(f)(x)
      >>> updates, state = tx.update(grad, state, x, value=value)
      >>> float(f(gradtx.apply_updates(x, updates)))  # the Polyak step halves x: 14 / 4
      3.5

    References:
      Schaipp, Ohana, Eickenberg, Defazio and Gower, *MoMo: Momentum Models for Adaptive
      Learning Rates*, ICML 2024 (arXiv:2305.07583); the authors'
      code, the ``momo-opt`` package (``Momo``).
    """
    owner = "momo"
    build = functools.partial(
        _momo,
        adapt_lower_bound=check_flag(owner, "adapt_lower_bound", adapt_lower_bound),
        weight_decay_mode=_check_mode(owner, weight_decay_mode),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        axes=_tree.axis_names(owner, axis_name),
        owner=owner,
    )
    return live(
        owner,
        build,
        ranges=MomoState.live_ranges,
        learning_rate=learning_rate,
        beta=beta,
        lower_bound=lower_bound,
        weight_decay=weight_decay,
    )


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    lower_bound: ScalarOrSchedule = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    adapt_lower_bound: bool = False,
    *,
    weight_decay_mode: str = "proximal",
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""MoMo-Adam: Adam whose step is a Polyak step on a model of the loss in Adam's norm,
    capped by the learning rate.

    The loss comes as ``update``'s keyword ``value`` (as :func:`gradtx.momo`). With Adam's
    averages started at 0, :math:`\rho_t = 1 - \beta_1^t`,

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2, \quad
      D_t = \epsilon + \sqrt{v_t / (1-\beta_2^t)},

    .. math::
      \bar f_t = \beta_1 \bar f_{t-1} + (1-\beta_1) f(x_t), \quad
      \gamma_t = \beta_1 \gamma_{t-1} + (1-\beta_1) \langle g_t, x_t \rangle,

    .. math::
      \tau_t = \min\left\{\frac{\alpha}{\rho_t},\ \frac{\left[(1+\alpha\lambda)(\bar f_t -
      \rho_t f_* - \gamma_t) + \langle m_t, x_t\rangle\right]_+}{\langle m_t, m_t / D_t
      \rangle}\right\}, \quad x_{t+1} = \frac{x_t - \tau_t m_t / D_t}{1 + \alpha\lambda}

    with the sums over all leaves together. ``adapt_lower_bound`` estimates :math:`f_*` as
    in :func:`gradtx.momo` (debiased by :math:`\rho_t`).

    With weight decay the paper and the authors' code take the proximal step
    :math:`x_{t+1} = (x_t - \tau_t m_t / D_t) / (1 + \alpha\lambda)` (``weight_decay_mode=
    "proximal"``, the default); optax.contrib shrinks only the params,
    :math:`x_{t+1} = x_t / (1 + \alpha\lambda) - \tau_t m_t / D_t` (``"optax"``); the authors'
    MomoAdam(divide=False) decays as AdamW, :math:`x_{t+1} = (1 - \alpha\lambda) x_t -
    \tau_t m_t / D_t` (``"decoupled"``). The three agree without weight decay.

    Args:
      learning_rate: α >= 0, the cap on the (debiased) step (1e-2, optax's and the authors').
      b1: β₁ in [0, 1) (0.9).
      b2: β₂ in [0, 1) (0.999).
      eps: ε >= 0 added to :math:`D_t` (1e-8).
      lower_bound: :math:`f_*`, a lower bound on the loss (0).
      weight_decay: λ >= 0 (0).
      adapt_lower_bound: estimate the bound online (the authors' ``use_fstar``).
      weight_decay_mode: ``"proximal"``, ``"optax"`` or ``"decoupled"`` (above).
      mu_dtype: dtype of :math:`m_t` (default: the params').
      axis_name: inside ``shard_map``/``pmap``, the mesh axis (or tuple of axes) the leaves
        are split along, for the sums over the whole tree (``value``
        must then be the whole model's loss); None (default) under ``jit``, where
        sharded leaves are summed whole.

    Returns:
      A :class:`GradientTransformation` that returns the whole update; its ``update`` needs
      the params and ``value=``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> tx = gradtx.momo_adam()
      >>> state = tx.init(x)
      >>> value, grad = jax.value_and_grad(f)(x)
      >>> updates, state = tx.update(grad, state, x, value=value)
      >>> updates.round(4)  # capped: Adam's first step of size alpha
      Array([-0.01, -0.01, -0.01], dtype=float32)

    References:
      Schaipp, Ohana, Eickenberg, Defazio and Gower, *MoMo: Momentum Models for Adaptive
      Learning Rates*, ICML 2024 (arXiv:2305.07583); the authors' code, the
      ``momo-opt`` package (``MomoAdam``).
    """
    owner = "momo_adam"
    build = functools.partial(
        _momo_adam,
        adapt_lower_bound=check_flag(owner, "adapt_lower_bound", adapt_lower_bound),
        weight_decay_mode=_check_mode(owner, weight_decay_mode),
        mu_dtype=check_dtype(owner, "mu_dtype", mu_dtype),
        axes=_tree.axis_names(owner, axis_name),
        owner=owner,
    )
    return live(
        owner,
        build,
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        lower_bound=lower_bound,
        weight_decay=weight_decay,
    )
