"""Optimistic optimizers: gradient descent and Adam extrapolated along the last change.

Each optimizer validates its arguments, then hands its numeric hyperparameters to ``live``
with a ``build`` function returning the chain, so that ``hyperparams(state)`` shows them under
the optimizer's own argument names.
"""

from __future__ import annotations

from typing import Any

from gradtx._core.base import GradientTransformation
from gradtx._core.checks import check_dtype, check_flag
from gradtx._core.combine import chain
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._transforms.optimistic import _scale_by_optimistic_gradient
from gradtx._transforms.second_moments import _scale_by_adam
from gradtx._transforms.step_size import _scale, _scale_by_learning_rate


def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule,
    alpha: ScalarOrSchedule = 1.0,
    beta: ScalarOrSchedule = 1.0,
) -> GradientTransformation:
    r"""Optimistic gradient descent: each step extrapolates the gradient along its last change.

    ``chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_{t+1} = \theta_t - \eta_t \big((\alpha + \beta) g_t - \beta g_{t-1}\big),
      \qquad g_0 := g_1

    For min-max games (a GAN's generator and discriminator, saddle points) it converges in
    the last iterate where gradient descent cycles or diverges.

    Args:
      learning_rate: η >= 0, a float or a schedule.
      alpha: α, the weight of the current gradient (optax's 1).
      beta: β, the weight of its last change (optax's 1).

    Returns:
      A :class:`GradientTransformation`; its state keeps the previous gradient.

    Example:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> f = lambda z: z[0] * z[1]  # min over z[0], max over z[1]: a saddle at 0
      >>> tx = gradtx.optimistic_gradient_descent(learning_rate=0.2)
      >>> z = jnp.array([1.0, 1.0])
      >>> state = tx.init(z)
      >>> for _ in range(300):
      ...     g = jax.grad(f)(z) * jnp.array([1.0, -1.0])  # descent on x, ascent on y
      ...     updates, state = tx.update(g, state)
      ...     z = gradtx.apply_updates(z, updates)
      >>> bool(jnp.abs(z).max() < 0.01)  # plain gradient descent-ascent spirals out
      True

    References:
      Popov, *A modification of the Arrow-Hurwicz method for search of saddle points*, 1980;
      Mokhtari, Ozdaglar and Pattathil, *A Unified Analysis of Extra-gradient and Optimistic
      Gradient Methods for Saddle Point Problems: Proximal Point Approach*, AISTATS 2020.
    """

    def build(learning_rate, alpha, beta):
        return chain(
            _scale_by_optimistic_gradient(alpha, beta),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "optimistic_gradient_descent",
        build,
        learning_rate=learning_rate,
        alpha=alpha,
        beta=beta,
    )


def optimistic_adam(
    learning_rate: ScalarOrSchedule,
    optimism: ScalarOrSchedule | None = None,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    r"""Optimistic Adam (optax's first interface): Adam's direction extrapolated by ``optimism``.

    ``chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov),
    scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism), scale(-1))``: with
    :math:`r_t` Adam's direction :math:`\hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)`,

    .. math::
      \theta_{t+1} = \theta_t - \eta\, r_t - o\, (r_t - r_{t-1}), \qquad r_0 := r_1

    Unlike optax's (deprecated, constant rate only), ``learning_rate`` and ``optimism`` may
    be schedules, and both are live. :func:`optimistic_adam_v2` is the same algorithm with
    the learning rate and the two optimism weights apart.

    Args:
      learning_rate: η >= 0.
      optimism: *o*, the weight of the change of direction; None (optax's default) uses the
        learning rate, as the paper does.
      b1: β₁ in [0, 1). Default 0.9, optax's.
      b2: β₂ in [0, 1). Default 0.999, optax's.
      eps: ε >= 0. Default 1e-8, optax's.
      eps_root: :math:`\bar\epsilon` >= 0 inside the root. Default 0, optax's.
      mu_dtype: dtype of Adam's first moment (default: the params' dtype).
      nesterov: use NAdam's first moment (optax's default True here).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.optimistic_adam(learning_rate=0.01)
      >>> params = jnp.array([1.0, -1.0])
      >>> updates, _ = tx.update(jnp.array([2.0, -3.0]), tx.init(params))
      >>> updates.round(4)  # NAdam's first direction, 1.47 times the sign; no change yet
      Array([-0.0147,  0.0147], dtype=float32)

    References:
      Daskalakis, Ilyas, Syrgkanis and Zeng, *Training GANs with Optimism*, ICLR 2018,
      algorithm 1 (Optimistic Adam).
    """
    mu_dtype = check_dtype("optimistic_adam", "mu_dtype", mu_dtype)
    nesterov = check_flag("optimistic_adam", "nesterov", nesterov)

    def build(learning_rate, optimism, b1, b2, eps, eps_root):
        return chain(
            _scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
            _scale_by_optimistic_gradient(
                learning_rate, learning_rate if optimism is None else optimism
            ),
            _scale(-1.0),
        )

    return live(
        "optimistic_adam",
        build,
        optional=("optimism",),
        learning_rate=learning_rate,
        optimism=optimism,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
    )


def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha: ScalarOrSchedule = 1.0,
    beta: ScalarOrSchedule = 1.0,
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    r"""Optimistic Adam: Adam's direction through optimistic gradient descent.

    ``chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov),
    scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))``:

    .. math::
      \theta_{t+1} = \theta_t - \eta_t \big((\alpha + \beta) r_t - \beta r_{t-1}\big),
      \qquad r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \bar\epsilon} + \epsilon}, \quad
      r_0 := r_1

    Args:
      learning_rate: η >= 0, a float or a schedule.
      alpha: α, the weight of the current direction (optax's 1).
      beta: β, the weight of its last change (optax's 1).
      b1: β₁ in [0, 1). Default 0.9, optax's.
      b2: β₂ in [0, 1). Default 0.999, optax's.
      eps: ε >= 0. Default 1e-8, optax's.
      eps_root: :math:`\bar\epsilon` >= 0 inside the root. Default 0, optax's.
      mu_dtype: dtype of Adam's first moment (default: the params' dtype).
      nesterov: use NAdam's first moment (optax's default True).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.optimistic_adam_v2(learning_rate=0.01)
      >>> params = jnp.array([1.0, -1.0])
      >>> updates, _ = tx.update(jnp.array([2.0, -3.0]), tx.init(params))
      >>> updates.round(4)  # alpha times NAdam's first direction, 1.47 times the sign
      Array([-0.0147,  0.0147], dtype=float32)

    References:
      Daskalakis, Ilyas, Syrgkanis and Zeng, *Training GANs with Optimism*, ICLR 2018;
      Mokhtari, Ozdaglar and Pattathil, AISTATS 2020 (the α, β form).
    """
    mu_dtype = check_dtype("optimistic_adam_v2", "mu_dtype", mu_dtype)
    nesterov = check_flag("optimistic_adam_v2", "nesterov", nesterov)

    def build(learning_rate, alpha, beta, b1, b2, eps, eps_root):
        return chain(
            _scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
            _scale_by_optimistic_gradient(alpha, beta),
            _scale_by_learning_rate(learning_rate),
        )

    return live(
        "optimistic_adam_v2",
        build,
        learning_rate=learning_rate,
        alpha=alpha,
        beta=beta,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
    )
