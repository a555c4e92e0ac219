"""Test problems: deterministic objectives with a known minimum, in float32.

A registry, so that convergence tests (and anything else needing a smooth objective with a
known answer) can be parametrized over it. Each problem is built fresh by a function, so that
no JAX array is created at import time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
    """An objective ``loss(params) -> float32 scalar`` with its start and its minimum.

    Attributes:
      name: the registry key.
      init: the starting params (float32).
      loss: the objective, differentiable with ``jax.grad``.
      minimum: the minimum value of ``loss``.
      argmin: the minimiser, where it is unique (else None).
    """

    name: str
    init: jax.Array
    loss: Callable[[jax.Array], jax.Array]
    minimum: float
    argmin: np.ndarray | None = None

    @property
    def initial_loss(self) -> float:
        return float(self.loss(self.init))


def ill_conditioned_quadratic(dim: int = 10, condition: float = 100.0) -> Problem:
    """``f(x) = 0.5 * sum(c_i x_i^2)`` with ``c = logspace(0, log10(condition), dim)``.

    The curvatures run from 1 to ``condition`` (100: the condition number); from ``x0 = 1`` the
    loss starts at ``0.5 * sum(c) ≈ 124`` (for the defaults) and the minimum is 0 at 0.
    """
    curvature = jnp.asarray(np.logspace(0.0, np.log10(condition), dim), jnp.float32)

    def loss(x):
        return 0.5 * jnp.sum(curvature * x * x)

    return Problem(
        name="quadratic",
        init=jnp.ones(dim, jnp.float32),
        loss=loss,
        minimum=0.0,
        argmin=np.zeros(dim),
    )


def rosenbrock() -> Problem:
    """``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`` from the classic start ``(-1.2, 1)``.

    A narrow curved valley; the minimum is 0 at ``(1, 1)``; the start has loss 24.2.

    References:
      Rosenbrock, *An automatic method for finding the greatest or least value of a function*,
      The Computer Journal, 1960.
    """

    def loss(p):
        x, y = p[0], p[1]
        return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2

    return Problem(
        name="rosenbrock",
        init=jnp.asarray([-1.2, 1.0], jnp.float32),
        loss=loss,
        minimum=0.0,
        argmin=np.ones(2),
    )


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "quadratic": ill_conditioned_quadratic,
    "rosenbrock": rosenbrock,
}


def get(name: str) -> Problem:
    """The problem registered under ``name``, freshly built."""
    return PROBLEMS[name]()
