"""The rows of the shared test tables: optimizer cases, bad inputs, convergence rows.

Data only, so that the family modules of ``tests/registry`` can build rows without importing
the test modules that run them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import gradtx
from tests import registry
from tests.reference import numpy_reference as ref


@functools.cache
def references() -> dict[str, Callable[..., Any]]:
    """Every float64 NumPy reference by name: the core ones and each family's."""
    return {**ref.REFERENCES, **registry.entries("REFERENCES")}


@dataclasses.dataclass(frozen=True)
class Sched:
    """A schedule given by name and arguments, buildable for gradtx and for the reference."""

    name: str
    args: tuple

    def for_gradtx(self):
        return getattr(gradtx, self.name)(*self.args)

    def for_numpy(self):
        return ref.SCHEDULES[self.name](*self.args)


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the optimizer table.

    ``name`` is the factory in gradtx, the reference in ``references()`` and, when ``optax`` is
    set, the same-named optax factory called with those kwargs.
    """

    id: str
    name: str
    kwargs: dict
    optax: dict | None = None

    def gradtx(self):
        return getattr(gradtx, self.name)(**_resolve(self.kwargs, "for_gradtx"))

    def reference(self):
        return references()[self.name](**_resolve(self.kwargs, "for_numpy"))

    def optax_transformation(self):
        """optax's same-named factory called with ``optax``'s kwargs."""
        import optax

        return getattr(optax, self.name)(**self.optax)


def _resolve(kwargs: dict, how: str) -> dict:
    return {k: getattr(v, how)() if isinstance(v, Sched) else v for k, v in kwargs.items()}


@dataclasses.dataclass(frozen=True)
class Bad:
    """A call that must raise ``error`` with a message naming each of ``names``."""

    factory: Callable[..., Any]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: type[Exception] = ValueError
    names: tuple[str, ...] = ()
    args: tuple[Any, ...] = ()
    # arguments made when the test runs (states, JAX arrays): () -> (args, kwargs), added on
    late: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]] | None = None

    def call(self):
        args, kwargs = self.args, self.kwargs
        if self.late is not None:
            more_args, more_kwargs = self.late()
            args, kwargs = (*args, *more_args), {**kwargs, **more_kwargs}
        return self.factory(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Cosine:
    """``cosine_decay_schedule(init_value, decay_steps)``, built when the row is run."""

    init_value: float
    decay_steps: int

    def build(self):
        return gradtx.cosine_decay_schedule(self.init_value, self.decay_steps)


@dataclasses.dataclass(frozen=True)
class Row:
    """An optimizer, a problem, a step budget, and what the final iterate must achieve.

    Attributes:
      optimizer: the row's name (several rows may use one factory with different flags).
      problem: a key of ``problems.PROBLEMS``.
      factory: the gradtx optimizer.
      kwargs: its arguments; a :class:`Cosine` stands for that schedule.
      steps: the number of updates.
      tol: the final ``loss - minimum`` must be below this.
      dist_tol: if set, the final distance to the minimiser must be below this.
    """

    optimizer: str
    problem: str
    factory: Callable[..., gradtx.GradientTransformation]
    kwargs: dict[str, Any]
    steps: int
    tol: float
    dist_tol: float | None = None

    @property
    def id(self) -> str:
        return f"{self.optimizer}-{self.problem}"

    def tx(self) -> gradtx.GradientTransformation:
        kwargs = {k: v.build() if isinstance(v, Cosine) else v for k, v in self.kwargs.items()}
        return self.factory(**kwargs)
