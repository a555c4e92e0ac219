"""Each optimizer family's rows of the shared test tables.

One module per family of ``gradtx/_optimizers`` (and the elementary transformations it adds).
A module defines any of these names, which the shared tests add to their tables; the tests
themselves stay in the shared modules, so a new optimizer is rows, not a new test file:

- ``OPTIMIZERS``, ``ELEMENTARY``: lists of :class:`tests.cases.Case` (the NumPy and optax
  side-by-side runs, dtypes, complex parameters, numerics, checkpoints);
- ``REFERENCES``: name -> float64 NumPy reference factory (see ``tests/reference``);
- ``REAL_ONLY``: ids of cases with no complex form, which must refuse complex params at init;
- ``COMPLEX_PAIR_IDS``: ids of cases whose complex form is the real problem on (re, im) pairs;
- ``PROPERTIES``: id -> (factory, the name its errors start with), for the property tests;
- ``PROPERTIES_REAL_ONLY``: ids of ``PROPERTIES`` that refuse complex leaves at init;
  ``PROPERTIES_NO_COMPLEX_FORM``: id -> what that refusal says after the name, where it is not
  a sign method's;
- ``OPTAX_OWN_F32_ERROR``: ids whose float32 comparison with optax allows optax's own error
  (optax's float32 bias correction; show in the family's rows that gradtx is the closer one);
- ``ITERATIVE``: ids of cases built on iterative matrix functions, compared in float32 (and
  complex64) to 1e-4 instead of 1e-5;
- ``HEAVY``: ids of the matrix and curvature optimizers' cases: test_reference runs them for
  50 steps and eagerly in float32 only;
- ``FIRST_UPDATE_GATHERS``: ids of optimizers whose first update is 0 by design (it only
  gathers statistics): test_numerics feeds them a NaN at the second update;
- ``AMPLIFICATION``: ``PROPERTIES`` name -> the factor by which its iterative matrix functions
  (or a tree-wide scalar formed by cancellation) can multiply a rounding difference
  (test_jit_and_eager_agree's budget is multiplied by it);
- ``BAD``: id -> :class:`tests.cases.Bad`; ``GOOD``: the edge values that must pass;
  ``NO_ARGUMENTS``, ``NO_RANGE``, ``NO_WRONG_TYPE``: public names exempt from kinds of rows;
  ``TRANSFORMATIONS``, ``PASS_THROUGH``, ``READS_PARAMS``, ``NEED_PARAMS``: the shape and
  tree-mismatch tables of ``test_validation``; ``NO_PER_LEAF_STATE``: names of
  ``TRANSFORMATIONS`` that keep no state shaped like a leaf but read the params (so cannot be
  ``PASS_THROUGH``), exempt from refusing a state made for other shapes;
- ``CONVERGENCE``: lists of :class:`tests.cases.Row` and ``CONVERGENCE_NAMES`` (every
  optimizer name that must have a row per problem);
- ``HYPERPARAM_KEYS``: name -> (transformation, the names ``hyperparams`` must show);
- ``TORCH``: id -> :class:`tests.reference.torch_optimizers.TorchRow` (test_torch).
- ``OPTAX_SHAMPOO``: id -> :class:`tests.reference.optax_shampoo.ShampooRow` (test_shampoo).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def _families() -> list[Any]:
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
    ]


def rows(name: str) -> list[Any]:
    """The concatenation of every family's list (or set) ``name``."""
    out: list[Any] = []
    for family in _families():
        out.extend(getattr(family, name, ()))
    return out


def entries(name: str) -> dict[str, Any]:
    """The union of every family's dict ``name``; a key defined twice is an error."""
    out: dict[str, Any] = {}
    for family in _families():
        for key, value in getattr(family, name, {}).items():
            if key in out:
                raise ValueError(f"tests.registry: {name}[{key!r}] is defined twice")
            out[key] = value
    return out
