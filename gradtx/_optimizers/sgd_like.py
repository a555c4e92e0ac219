"""SGD-like optimizers: a gradient step with optional momentum, noise, Polyak's step size, or
iterate averaging.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation, PyTree, identity
from gradtx._core.checks import MissingArgumentError, check_dtype, check_flag, check_range
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, scalar, value_as
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.gradient_processing import _add_noise, _key_data
from gradtx._transforms.momentum import _trace
from gradtx._transforms.polyak import _scale_by_polyak, check_variant
from gradtx._transforms.step_size import _scale_by_learning_rate


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, with optional heavy-ball or Nesterov momentum.

    ``chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))``:

    .. math::
      v_t = \mu v_{t-1} + g_t, \qquad
      \theta_{t+1} = \theta_t - \eta_t v_t \;\text{or, with Nesterov,}\;
      \theta_{t+1} = \theta_t - \eta_t (g_t + \mu v_t)

    (PyTorch's and optax's convention: no ``1 - μ`` on the gradient; without momentum,
    :math:`\theta_{t+1} = \theta_t - \eta_t g_t`).

    Args:
      learning_rate: η >= 0, a float or a schedule (no default, as in optax).
      momentum: μ in [0, 1), or None for none (optax's default).
      nesterov: use Nesterov's momentum (optax's default False).
      accumulator_dtype: dtype of the velocity (default: the params' dtype).

    Returns:
      A :class:`GradientTransformation`; with momentum its state keeps one velocity.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.sgd(learning_rate=0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(3)}, state, params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([0.9, 0.9, 0.9], dtype=float32)

    References:
      Robbins and Monro, *A Stochastic Approximation Method*, 1951; Polyak, *Some methods of
      speeding up the convergence of iteration methods*, 1964; Sutskever, Martens, Dahl and
      Hinton, *On the importance of initialization and momentum in deep learning*, ICML 2013.
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


# ---- noisy SGD ---------------------------------------------------------------------------


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: ScalarOrSchedule = 0.01,
    gamma: ScalarOrSchedule = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""SGD on gradients with annealed Gaussian noise added.

    ``chain(add_noise(eta, gamma, key), scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_{t+1} = \theta_t - \eta_t \big(g_t + \mathcal N(0, \sigma_t^2)\big), \qquad
      \sigma_t^2 = \frac{\eta}{t^\gamma}

    with *t* = 1 at the first update; the draws are those of ``optax.noisy_sgd`` with the same
    key (see :func:`gradtx.add_noise`).

    Args:
      learning_rate: η_t >= 0, a float or a schedule.
      eta: the noise variance at the first step, >= 0 (optax's 0.01).
      gamma: the annealing exponent, >= 0 (optax's 0.55, the paper's).
      key: an int seed or a ``jax.random`` key (required: the noise must be reproducible).
      seed: an int seed, for code written against optax's older argument name.

    Returns:
      A :class:`GradientTransformation`; its state keeps the step count and the key.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.noisy_sgd(learning_rate=1.0, eta=0.01, key=0)
      >>> g = jnp.zeros(10_000)
      >>> updates, _ = tx.update(g, tx.init(g))
      >>> round(float(updates.std()), 2)  # sqrt(0.01)
      0.1

    References:
      Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep Networks*,
      2015, section 2.
    """
    owner = "noisy_sgd"
    if key is not None and seed is not None:
        raise TypeError(f"{owner}: give key or seed, not both")
    if key is None and seed is None:
        raise TypeError(f"{owner}: key is required (an int seed or a jax.random key)")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer))
    ):
        raise TypeError(f"{owner}: seed must be an int, got {seed!r}")
    key_data, impl = _key_data(owner, seed if key is None else key)

    def build(learning_rate, eta, gamma):
        return chain(
            _add_noise(eta, gamma, key_data=key_data, impl=impl),
            _scale_by_learning_rate(learning_rate),
        )

    return live(owner, build, learning_rate=learning_rate, eta=eta, gamma=gamma)


# ---- Polyak's step size ------------------------------------------------------------------


def polyak_sgd(
    max_learning_rate: ScalarOrSchedule = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: ScalarOrSchedule = 0.0,
    eps: ScalarOrSchedule = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    r"""SGD with Polyak's step size, from the loss passed to ``update`` as ``value=``.

    ``chain(sgd(learning_rate=scaling), scale_by_polyak(f_min, max_learning_rate, eps,
    variant))``; the step size is that of the scaled direction :math:`d_t = -s g_t`:

    .. math::
      \theta_{t+1} = \theta_t + \min\left\{\frac{f(\theta_t) - f^\star}{\|d_t\|^2 +
      \epsilon},\ \gamma_{\max}\right\} d_t

    so that with ``scaling`` s = 1 (the default) and ε = 0 this is SPS_max,
    :math:`\theta_{t+1} = \theta_t - \min\{(f - f^\star) / \|g_t\|^2, \gamma_{\max}\}\, g_t`.
    ``variant="sps+"`` takes the positive part of :math:`f(\theta_t) - f^\star`.

    Args:
      max_learning_rate: :math:`\gamma_{\max}` > 0 (optax's 1).
      scaling: s >= 0, a float or a schedule (optax's 1).
      f_min: :math:`f^\star`, a lower bound on the loss (optax's 0).
      eps: ε >= 0 (optax's 0).
      variant: ``"sps"`` or ``"sps+"`` (optax's ``"sps"``).

    Returns:
      A stateless :class:`GradientTransformation` whose ``update`` needs ``value=``.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.polyak_sgd()
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> params = jnp.array([1.0, 2.0, 3.0])
      >>> state = tx.init(params)
      >>> for _ in range(3):
      ...     value, grad = jax.value_and_grad(f)(params)
      ...     updates, state = tx.update(grad, state, params, value=value)
      ...     params = gradtx.apply_updates(params, updates)
      >>> float(f(params))  # each step halves x on this quadratic: 14 / 64
      0.21875

    References:
      Loizou, Vaswani, Laradji and Lacoste-Julien, *Stochastic Polyak Step-size for SGD: An
      Adaptive Learning Rate for Fast Convergence*, AISTATS 2021, eq. 5 (SPS_max);
      Garrigos, Gower and Schaipp, *Function value learning: Adaptive learning rates based on
      the Polyak stepsize and function splitting in ERM*, 2023 (SPS+).
    """
    owner = "polyak_sgd"
    variant = check_variant(owner, variant)
    check_range(owner, "scaling", scaling, ">= 0", lambda v: v >= 0)

    def build(max_learning_rate, scaling, f_min, eps):
        # chain(sgd(scaling), scale_by_polyak(...)) in one pass over the gradients
        return _scale_by_polyak(
            f_min, max_learning_rate, eps, variant=variant, owner=owner, descent=scaling
        )

    return live(
        owner,
        build,
        max_learning_rate=max_learning_rate,
        scaling=scaling,
        f_min=f_min,
        eps=eps,
    )


# ---- averaged SGD ------------------------------------------------------------------------


class AsgdState(NamedTuple):
    count: jax.Array  # int32 []: updates so far, saturating
    ax: Any  # like the params, in at least float32: the averaged iterate


def asgd_rates(learning_rate: Value, lambd: Value, alpha: Value, t0: Value, count: jax.Array):
    """``(eta, mu)`` of the update after ``count`` updates (0 for the first):
    ``eta = lr / (1 + lambd lr count)**alpha`` and ``mu = 1 / max(1, count - t0)``."""
    dtype = scalar(learning_rate).dtype
    t = count.astype(dtype)
    lr = value_as(learning_rate, dtype)
    eta = lr / (1 + value_as(lambd, dtype) * lr * t) ** value_as(alpha, dtype)
    mu = 1 / jnp.maximum(jnp.ones_like(t), t - value_as(t0, dtype))
    return eta, mu


def _scale_by_asgd(learning_rate, lambd, alpha, t0):
    owner = "asgd"

    def init(params):
        ax = jax.tree.map(lambda p: p.astype(_tree.accumulation_dtype(p.dtype)), params)
        return AsgdState(count=_tree.zero_count(), ax=jax.tree.map(jnp.zeros_like, ax))

    def update(updates, state, params=None, **extra):
        if params is None:
            raise MissingArgumentError(
                f"{owner}: update needs params (the decay and the average use them)"
            )
        _tree.check_match(owner, (updates, params, state.ax), ("updates", "params", "state"))
        eta, mu = asgd_rates(learning_rate, lambd, alpha, t0, state.count)
        shrink = value_as(lambd, eta.dtype) * eta
        rates = per_dtype(lambda dtype: (eta.astype(dtype), shrink.astype(dtype)))
        mu_one = mu == 1

        def leaf(g, p, ax):
            dtype = _tree.wider(g.dtype, p.dtype)
            step, decay = rates(_tree.real_dtype(dtype))
            g, wide_p = _tree.cast(g, dtype), _tree.cast(p, dtype)
            u = -_tree.times(g, step) - _tree.times(wide_p, decay)
            new_p = (wide_p + u).astype(p.dtype).astype(ax.dtype)
            # mu = 1 copies the iterate (as PyTorch does): ax + (p - ax) need not be p exactly
            moved = ax + _tree.times(new_p - ax, mu.astype(_tree.real_dtype(ax.dtype)))
            return u.astype(p.dtype), jnp.where(mu_one, new_p, moved)

        pairs = jax.tree.map(leaf, updates, params, state.ax)
        treedef = jax.tree.structure(updates)
        flat = treedef.flatten_up_to(pairs)
        out = treedef.unflatten([u for u, _ in flat])
        ax = treedef.unflatten([a for _, a in flat])
        return out, AsgdState(count=_tree.saturating_increment(state.count), ax=ax)

    return GradientTransformation(init, update)


def asgd(
    learning_rate: ScalarOrSchedule = 1e-2,
    lambd: ScalarOrSchedule = 1e-4,
    alpha: ScalarOrSchedule = 0.75,
    t0: ScalarOrSchedule = 1e6,
    weight_decay: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    r"""Averaged SGD (PyTorch's ``torch.optim.ASGD``): decaying steps and an averaged iterate.

    ``chain(add_decayed_weights(weight_decay), <ASGD's step and average>)``; at the *t*-th
    update (*t* = 1 for the first):

    .. math::
      \eta_t = \frac{\text{lr}}{(1 + \lambda\, \text{lr}\, (t-1))^{\alpha}}, \qquad
      \theta_{t+1} = \theta_t (1 - \lambda \eta_t) - \eta_t (g_t + w \theta_t), \\
      \mu_t = \frac{1}{\max(1, t - 1 - t_0)}, \qquad
      \bar\theta_{t+1} = \bar\theta_t + \mu_t (\theta_{t+1} - \bar\theta_t)

    The averaged iterate :math:`\bar\theta` (Polyak-Ruppert averaging: the mean of the
    iterates from the one after update :math:`t_0 + 1` on; until then the iterate itself, as
    in PyTorch) is for evaluation: read it with
    :func:`gradtx.asgd_averaged_params`. It is kept in at least float32.

    Args:
      learning_rate: PyTorch's ``lr`` >= 0 (its default 1e-2).
      lambd: λ >= 0, the decay term, also in the step-size schedule (PyTorch's 1e-4).
      alpha: α >= 0, the power of the step-size decay (PyTorch's 0.75).
      t0: :math:`t_0` >= 0, the update after which averaging starts (PyTorch's 1e6).
      weight_decay: *w* >= 0, an L2 term added to the gradient (PyTorch's 0).

    Returns:
      A :class:`GradientTransformation` whose ``update`` needs params; its state keeps the
      step count and the averaged iterate.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.asgd(learning_rate=0.1, lambd=0.0, t0=0.0)
      >>> params = jnp.array([0.0])
      >>> state = tx.init(params)
      >>> for g in (-1.0, -1.0, -1.0):
      ...     updates, state = tx.update(jnp.array([g]), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> params, gradtx.asgd_averaged_params(state)  # the mean of the iterates 0.2 and 0.3
      (Array([0.3], dtype=float32), Array([0.25], dtype=float32))

    References:
      Polyak and Juditsky, *Acceleration of Stochastic Approximation by Averaging*, SIAM J.
      Control Optim. 1992; Bottou, *Stochastic Gradient Descent Tricks*, 2012, section 5.3
      (the step-size schedule).
    """
    owner = "asgd"
    check_range(owner, "alpha", alpha, ">= 0", lambda v: v >= 0)
    check_range(owner, "t0", t0, ">= 0", lambda v: v >= 0)

    def build(learning_rate, lambd, alpha, t0, weight_decay):
        return chain(
            _add_decayed_weights(weight_decay),
            _scale_by_asgd(learning_rate, lambd, alpha, t0),
        )

    return live(
        owner,
        build,
        learning_rate=learning_rate,
        lambd=lambd,
        alpha=alpha,
        t0=t0,
        weight_decay=weight_decay,
    )


def asgd_averaged_params(state: PyTree) -> PyTree:
    r"""The averaged iterate of the :func:`asgd` in an optimizer state (for evaluation).

    .. math::
      \bar\theta_{t+1} = \bar\theta_t + \mu_t (\theta_{t+1} - \bar\theta_t), \qquad
      \mu_t = 1 / \max(1, t - 1 - t_0)

    is kept by :func:`asgd` as it steps; this function only reads it. Works inside ``jit``.

    Args:
      state: the optimizer's own state or any state holding it (a chain's, the ``opt_state``
        of a Flax ``TrainState``).

    Returns:
      :math:`\bar\theta`, a pytree like the params, each leaf in at least float32 (a bf16 or
      f16 param's average is float32).

    Raises:
      ValueError: if ``state`` holds no asgd state, or several.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.asgd(learning_rate=0.5, lambd=0.0, t0=0.0)
      >>> params = jnp.array([0.0])
      >>> state = tx.init(params)
      >>> for _ in range(3):
      ...     updates, state = tx.update(jnp.array([-1.0]), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> params.tolist(), gradtx.asgd_averaged_params(state).tolist()  # mean of 1.0 and 1.5
      ([1.5], [1.25])

    References:
      Polyak and Juditsky, *Acceleration of Stochastic Approximation by Averaging*, SIAM J.
      Control Optim. 1992 (the averaged iterate).
    """
    found = []

    def visit(node):
        if isinstance(node, AsgdState):
            found.append(node)
        return node

    jax.tree.map(visit, state, is_leaf=lambda x: isinstance(x, AsgdState))
    if len(found) != 1:
        raise ValueError(
            f"asgd_averaged_params: the state must hold exactly one asgd state, found {len(found)}"
        )
    return found[0].ax
