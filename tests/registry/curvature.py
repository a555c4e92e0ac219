"""Rows of the curvature family with a Hessian estimate: Sophia (gradtx/_curvature/sophia.py).

Sophia and Hutchinson's estimator need the objective at update (``obj_fn=``), which the shared
runners do not pass: their rows wrap the transformation in :func:`given_objective`, whose
``update`` passes ``obj_fn`` = :func:`coupled_cosine`, a smooth function of the whole tree with
a bounded Hessian that is not diagonal (so that Hutchinson's random signs matter):

    f(θ) = Σ_i (θ_i² + cos θ_i) + 0.05 (Σ_i θ_i)²,   H = diag(2 - cos θ) + 0.1 · 11ᵀ

The NumPy reference gets ``H v`` written out (:func:`_numpy_hvp`), and optax's
``optax.contrib.sophia`` is wrapped the same way. None has a complex form (REAL_ONLY).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from gradtx._core import tree as _tree
from tests.cases import Bad, Case, Sched
from tests.reference import numpy_curvature
from tests.reference.numpy_reference import chain, scale

COUPLING = 0.05


def coupled_cosine(params):
    """Σ (θ² + cos θ) + 0.05 (Σ θ)² over every element of every leaf."""
    leaves = jax.tree.leaves(params)
    # in the widest of the leaves' dtypes, at least float32 (mixed trees, strict promotion)
    dtype = _tree.wider(jnp.float32, *(x.dtype for x in leaves))
    zero = jnp.zeros([], dtype)
    total = sum((jnp.sum(x).astype(dtype) for x in leaves), zero)
    terms = sum((jnp.sum(x * x + jnp.cos(x)).astype(dtype) for x in leaves), zero)
    return terms + COUPLING * total * total


def _numpy_hvp(ps, vs):
    total = sum(float(np.sum(v)) for v in vs)
    return [(2.0 - np.cos(p)) * v + 2 * COUPLING * total for p, v in zip(ps, vs)]


def given_objective(tx, fn=coupled_cosine):
    """``tx`` whose ``update`` passes ``obj_fn=fn`` (unless given one)."""

    def update(updates, state, params=None, **extra):
        if "obj_fn" not in extra and "value_fn" not in extra:
            extra = {**extra, "obj_fn": fn}
        return tx.update(updates, state, params, **extra)

    return gradtx.GradientTransformation(tx.init, update)


def given_logits(tx):
    """``tx`` whose ``update`` passes ``logits_fn``: two classes, one example, from any tree."""

    def logits(params):
        leaves = [x.astype(jnp.float32) for x in jax.tree.leaves(params)]
        return jnp.stack(
            [sum(jnp.sum(jnp.sin(x)) for x in leaves), sum(jnp.sum(x) for x in leaves)]
        )[None]

    def update(updates, state, params=None, **extra):
        return tx.update(updates, state, params, **{"logits_fn": logits, **extra})

    return gradtx.GradientTransformation(tx.init, update)


@dataclasses.dataclass(frozen=True)
class ObjectiveCase(Case):
    """A :class:`Case` whose update needs ``obj_fn``: :func:`coupled_cosine` on every side."""

    def gradtx(self):
        return given_objective(super().gradtx())

    def reference(self):
        factory = numpy_curvature.REFERENCES[self.name]
        kwargs = {k: v.for_numpy() if isinstance(v, Sched) else v for k, v in self.kwargs.items()}
        return factory(**kwargs, hvp=_numpy_hvp)

    def optax_transformation(self):
        from optax.contrib import _sophia  # scale_by_sophia is not re-exported by optax.contrib

        kwargs = dict(self.optax)
        if isinstance(kwargs.get("random_seed"), int):  # optax takes only a raw key
            kwargs["random_seed"] = jax.random.PRNGKey(kwargs["random_seed"])
        return given_objective(getattr(_sophia, self.name)(**kwargs))


@dataclasses.dataclass(frozen=True)
class EstimatorCase(ObjectiveCase):
    """An estimator's row: the estimate times -0.01 is the step, so that the params stay where
    the cosine is accurate in float32 (the estimate itself, about 2 per step, would carry them
    to hundreds in 100 steps)."""

    def gradtx(self):
        return given_objective(gradtx.chain(Case.gradtx(self), gradtx.scale(-0.01)))

    def reference(self):
        return chain(super().reference(), scale(-0.01))

    def optax_transformation(self):
        import optax

        return optax.chain(super().optax_transformation(), optax.scale(-0.01))


REFERENCES = dict(numpy_curvature.REFERENCES)

# gamma = 0.2 puts the ratio m / (gamma h) near 1: some elements are clipped, some not, and an
# estimate below eps / gamma (the coupling makes some negative) clips too.
_SOPHIA = {"learning_rate": 0.01, "gamma": 0.2, "update_interval": 3, "weight_decay": 0.1}
# without a learning rate: steps of at most 0.05, so that the params stay within a few units
_SCALE_BY_SOPHIA = {
    "b1": 0.9,
    "b2": 0.8,
    "gamma": 1.0,
    "clip_threshold": 0.05,
    "update_interval": 1,
}

OPTIMIZERS = [
    ObjectiveCase("sophia", "sophia", _SOPHIA, optax=_SOPHIA),
    # a scheduled learning rate and gamma (optax takes no schedule for gamma: NumPy only)
    ObjectiveCase(
        "sophia_scheduled",
        "sophia",
        {
            **_SOPHIA,
            "learning_rate": Sched("linear_schedule", (0.02, 0.005, 60)),
            "gamma": Sched("linear_schedule", (0.1, 0.4, 80)),
        },
    ),
]

ELEMENTARY = [
    ObjectiveCase("scale_by_sophia", "scale_by_sophia", _SCALE_BY_SOPHIA, optax=_SCALE_BY_SOPHIA),
    # the estimates (which do not depend on the gradients), compared draw for draw
    EstimatorCase(
        "hutchinson_estimator_diag_hessian",
        "hutchinson_estimator_diag_hessian",
        {"random_seed": 3},
        optax={"random_seed": 3},
    ),
]

REAL_ONLY = [case.id for case in OPTIMIZERS + ELEMENTARY]

PROPERTIES = {
    "sophia": (lambda: given_objective(gradtx.sophia(1e-3, update_interval=2)), "sophia"),
}
PROPERTIES_REAL_ONLY = list(PROPERTIES)
PROPERTIES_NO_COMPLEX_FORM = {"sophia": "Sophia has no complex form"}

BAD = {
    "sophia_lr_string": Bad(
        gradtx.sophia, dict(learning_rate="0.1"), TypeError, ("sophia", "learning_rate")
    ),
    "sophia_b1_one": Bad(gradtx.sophia, dict(learning_rate=0.1, b1=1.0), names=("sophia", "b1")),
    "sophia_update_interval_fraction": Bad(
        gradtx.sophia,
        dict(learning_rate=0.1, update_interval=2.5),
        names=("sophia", "update_interval"),
    ),
    "sophia_clip_threshold_zero": Bad(
        gradtx.sophia,
        dict(learning_rate=0.1, clip_threshold=0.0),
        names=("sophia", "clip_threshold"),
    ),
    "sophia_hessian_diagonal_fn_function": Bad(
        gradtx.sophia,
        dict(learning_rate=0.1, hessian_diagonal_fn=lambda p: p),
        TypeError,
        ("sophia", "hessian_diagonal_fn"),
    ),
    "sophia_verbose_without_period": Bad(
        gradtx.sophia,
        dict(learning_rate=0.1, verbose=True),
        names=("sophia", "print_win_rate_every_n_steps"),
    ),
    "scale_by_sophia_gamma_negative": Bad(
        gradtx.scale_by_sophia, dict(gamma=-1.0), names=("scale_by_sophia", "gamma")
    ),
    "scale_by_sophia_update_interval_zero": Bad(
        gradtx.scale_by_sophia,
        dict(update_interval=0),
        names=("scale_by_sophia", "update_interval"),
    ),
    "scale_by_sophia_mu_dtype_int": Bad(
        gradtx.scale_by_sophia, dict(mu_dtype=jnp.int32), TypeError, ("scale_by_sophia", "mu_dtype")
    ),
    "gauss_newton_bartlett_seed_string": Bad(
        gradtx.gauss_newton_bartlett_estimator_diag_hessian,
        dict(random_seed="0"),
        TypeError,
        ("gauss_newton_bartlett_estimator_diag_hessian", "key"),
    ),
    "gauss_newton_bartlett_key_batch": Bad(
        gradtx.gauss_newton_bartlett_estimator_diag_hessian,
        late=lambda: ((), dict(random_seed=jax.random.split(jax.random.key(0), 2))),
        names=("gauss_newton_bartlett_estimator_diag_hessian", "key"),
    ),
    "gauss_newton_bartlett_update_without_logits_fn": Bad(
        lambda tx, params: tx.update(
            params, tx.init(params), params, obj_fn=lambda p: p["w"].sum()
        ),
        late=lambda: (
            (gradtx.gauss_newton_bartlett_estimator_diag_hessian(), {"w": jnp.ones(2)}),
            {},
        ),
        names=("gauss_newton_bartlett_estimator_diag_hessian", "logits_fn"),
    ),
    "hutchinson_seed_string": Bad(
        gradtx.hutchinson_estimator_diag_hessian,
        dict(random_seed="0"),
        TypeError,
        ("hutchinson_estimator_diag_hessian", "key"),
    ),
    "hutchinson_key_batch": Bad(
        gradtx.hutchinson_estimator_diag_hessian,
        late=lambda: ((), dict(random_seed=jax.random.split(jax.random.key(0), 2))),
        names=("hutchinson_estimator_diag_hessian", "key"),
    ),
    # update without the objective: the error says how to pass it
    "sophia_update_without_obj_fn": Bad(
        lambda tx, params: tx.update(params, tx.init(params), params),
        late=lambda: ((gradtx.sophia(0.1), {"w": jnp.ones(2)}), {}),
        names=("sophia", "obj_fn"),
    ),
    "sophia_update_with_vector_objective": Bad(
        lambda tx, params: tx.update(params, tx.init(params), params, obj_fn=lambda p: p["w"]),
        late=lambda: ((gradtx.sophia(0.1), {"w": jnp.ones(2)}), {}),
        names=("sophia", "obj_fn", "(2,)"),
    ),
}

GOOD = {
    "sophia_no_clipping": (
        lambda **kwargs: given_objective(gradtx.sophia(**kwargs)),
        lambda: dict(learning_rate=0.1, clip_threshold=None, update_interval=1.0),
        {"update_interval": 1.0, "learning_rate": 0.1},
    ),
}

TRANSFORMATIONS = {
    "sophia": lambda: gradtx.sophia(0.1),
    "scale_by_sophia": lambda: gradtx.scale_by_sophia(),
    "hutchinson_estimator_diag_hessian": lambda: gradtx.hutchinson_estimator_diag_hessian(),
    "gauss_newton_bartlett_estimator_diag_hessian": lambda: given_logits(
        gradtx.gauss_newton_bartlett_estimator_diag_hessian()
    ),
}
READS_PARAMS = list(TRANSFORMATIONS)
NO_PER_LEAF_STATE = [
    "hutchinson_estimator_diag_hessian",
    "gauss_newton_bartlett_estimator_diag_hessian",
]
NEED_PARAMS = dict(TRANSFORMATIONS)

HYPERPARAM_KEYS = {
    "sophia": (
        given_objective(gradtx.sophia(0.1)),
        {
            "learning_rate",
            "b1",
            "b2",
            "eps",
            "weight_decay",
            "gamma",
            "clip_threshold",
            "update_interval",
        },
    ),
}

# issue 14's rows: 50 steps, eager in float32 only (tests/test_reference.py)
HEAVY = [case.id for case in OPTIMIZERS + ELEMENTARY]
