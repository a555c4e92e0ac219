"""Rows of DoG, DoWG, MoMo and MoMo-Adam (gradtx/_optimizers/lr_free_steps.py,
gradtx/_transforms/lr_free_steps.py) in the shared test tables.

MoMo needs the loss at the params (``update(..., value=loss)``): its rows wrap the
transformation in :func:`tests.registry.sgd_like.given_loss` (½‖θ‖² on the shared tree, the
same for the NumPy reference and optax.contrib's momo), as polyak_sgd's rows do. The PyTorch
references are the authors' packages: ``dog-optimizer`` (DoG, in ``TORCH``) and ``momo-opt``
(Momo and MomoAdam, whose ``step`` takes the loss: recorded by
tests/reference/torch_lr_free_steps.py and checked by tests/test_lr_free_steps.py).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

import gradtx
from tests import problems
from tests.cases import Bad, Row, Sched, _resolve, references
from tests.reference import numpy_lr_free_steps
from tests.reference.torch_optimizers import TorchRow
from tests.registry.matrix import ContribCase
from tests.registry.sgd_like import _numpy_half_square, given_loss

Q, R = "quadratic", "rosenbrock"
TIGHT, NEAR = 1e-6, 1e-2

REFERENCES = dict(numpy_lr_free_steps.REFERENCES)


@dataclasses.dataclass(frozen=True)
class LossCase(ContribCase):
    """A :class:`ContribCase` whose ``update`` needs ``value=``: ½‖θ‖² on every side."""

    def gradtx(self):
        return given_loss(super().gradtx())

    def reference(self):
        kwargs = _resolve(self.kwargs, "for_numpy")
        return references()[self.name](**kwargs, value=_numpy_half_square)

    def optax_transformation(self):
        return given_loss(super().optax_transformation())


# optax's weight decay of MoMo (x / (1 + alpha lambda) - tau d), with the bound estimated online
_MOMO_OPTAX = {
    "learning_rate": 0.3,
    "weight_decay": 0.1,
    "adapt_lower_bound": True,
    "lower_bound": -2.0,
}
_MOMO_ADAM_OPTAX = {**_MOMO_OPTAX, "learning_rate": 0.05}

OPTIMIZERS = [
    # r_eps = 0.01 (1 + ||x_0||): the default 1e-6 moves float32 params by less than their
    # rounding at first, so that the distances DoG measures are the rounding's (3.8e-3 from
    # float64 after 100 steps; 1.5e-6 here)
    ContribCase(
        "dog", "dog", {"init_step": ("heuristic", 0.01)}, optax={"init_step": ("heuristic", 0.01)}
    ),
    ContribCase("dowg", "dowg", {}, optax={}),
    LossCase("momo", "momo", {}, optax={}),
    LossCase("momo_adam", "momo_adam", {}, optax={}),
]

ELEMENTARY = [
    # variants of the optimizers, in this list to skip the per-optimizer dtype and state tests
    ContribCase(
        "dog_distance_decay",
        "dog",
        {"init_step": ("distance", 0.1), "weight_decay": 0.01},
        optax={"init_step": ("distance", 0.1), "weight_decay": 0.01},
    ),
    # the first step given, a scheduled factor c (multiplying the first step too, as optax)
    ContribCase(
        "dog_first_step_scheduled",
        "dog",
        {
            "learning_rate": Sched("linear_schedule", (1.0, 0.5, 80)),
            "init_step": ("learning_rate", 0.01),
        },
    ),
    ContribCase(
        "dowg_given_decay",
        "dowg",
        {"init_estim_sq_dist": 0.5, "eps": 1e-6, "weight_decay": 0.01},
        optax={"init_estim_sq_dist": 0.5, "eps": 1e-6, "weight_decay": 0.01},
    ),
    LossCase(
        "momo_optax_decay_adapted",
        "momo",
        {**_MOMO_OPTAX, "weight_decay_mode": "optax"},
        optax=_MOMO_OPTAX,
    ),
    # the paper's proximal weight decay (optax has not), scheduled, with the bound adapted
    LossCase(
        "momo_proximal_scheduled",
        "momo",
        {
            "learning_rate": Sched("linear_schedule", (2.0, 0.5, 60)),
            "beta": 0.8,
            "weight_decay": 0.05,
            "adapt_lower_bound": True,
            "lower_bound": -1.0,
        },
    ),
    LossCase(
        "momo_adam_optax_decay_adapted",
        "momo_adam",
        {**_MOMO_ADAM_OPTAX, "weight_decay_mode": "optax"},
        optax=_MOMO_ADAM_OPTAX,
    ),
    # AdamW's decay (the authors' MomoAdam(divide=False)), scheduled b1
    LossCase(
        "momo_adam_decoupled_scheduled",
        "momo_adam",
        {
            "learning_rate": 0.05,
            "b1": Sched("linear_schedule", (0.9, 0.5, 50)),
            "weight_decay": 0.1,
            "weight_decay_mode": "decoupled",
        },
    ),
]

# optax's float32 MoMo-Adam forms 1 - b2**t from float32 b2 (tests/test_reference.py): 1.0e-5
# from the float64 reference after 100 steps where gradtx is 5.0e-7 (8.8e-6 and 5.7e-6 with the
# adapted bound and weight decay)
OPTAX_OWN_F32_ERROR = ["momo_adam", "momo_adam_optax_decay_adapted"]

# the step size is one scalar from norms and inner products of (re, im) pairs (MoMo-Adam's
# second moment is of |g|**2 per element, as Adam's: not the pairs' problem)
COMPLEX_PAIR_IDS = ["dog", "dowg", "momo"]

# The authors' DoG (dog-optimizer 1.0.3): reps_rel is init_step ("heuristic", reps_rel); its
# weight decay is added to the gradient, as here
TORCH = {
    # reps_rel 1e-2: at the default 1e-6 these random gradients move the params by 1e-5 in 50
    # steps, too little for the trajectory to test the step sizes
    "torch_dog": TorchRow(
        "DoG", {"reps_rel": 1e-2}, lambda: gradtx.dog(init_step=("heuristic", 1e-2)), module="dog"
    ),
    "torch_dog_decay": TorchRow(
        "DoG",
        {"reps_rel": 1e-3, "weight_decay": 0.05, "eps": 1e-6},
        lambda: gradtx.dog(init_step=("heuristic", 1e-3), weight_decay=0.05, eps=1e-6),
        module="dog",
    ),
    # init_eta is the first step whatever lr is; optax's ("learning_rate", v) is multiplied by
    # the learning rate: with lr = 1 they agree
    "torch_dog_init_eta": TorchRow(
        "DoG",
        {"init_eta": 0.05},
        lambda: gradtx.dog(init_step=("learning_rate", 0.05)),
        module="dog",
    ),
}

# MoMo's step size divides f_bar - gamma + <d, x> - lower_bound by ||d||^2: the numerator is a
# difference of running averages of losses and inner products that cancel, so an ulp by which
# jit and eager sum the tree-wide inner products apart is an ulp of the terms, not of their
# difference (unbounded in principle, as L-BFGS's 1 / s'y). Measured worst over 40 random trees
# each, in units of the unamplified budget: momo 2.2, momo_adam 0.15 (dog 0.22, dowg 0.27, which
# divide by sums of squares only and need none).
AMPLIFICATION = {"momo": 16.0, "momo_adam": 16.0}

PROPERTIES = {
    "dog": (lambda: gradtx.dog(), "dog"),
    "dowg": (lambda: gradtx.dowg(), "dowg"),
    "momo": (lambda: given_loss(gradtx.momo()), "momo"),
    "momo_adam": (lambda: given_loss(gradtx.momo_adam()), "momo_adam"),
}

BAD = {
    "dog_lr_string": Bad(gradtx.dog, dict(learning_rate="1"), TypeError, ("dog", "learning_rate")),
    "dog_init_step_float": Bad(gradtx.dog, dict(init_step=1e-6), TypeError, ("dog", "init_step")),
    "dog_init_step_unknown_tag": Bad(
        gradtx.dog, dict(init_step=("relative", 1e-6)), names=("dog", "init_step")
    ),
    "dog_init_step_zero": Bad(
        gradtx.dog, dict(init_step=("distance", 0.0)), names=("dog", "init_step")
    ),
    "dog_weight_decay_negative": Bad(
        gradtx.dog, dict(weight_decay=-0.1), names=("dog", "weight_decay")
    ),
    "dog_mask_string": Bad(gradtx.dog, dict(mask="all"), TypeError, ("dog", "mask")),
    "dowg_eps_string": Bad(gradtx.dowg, dict(eps="1e-4"), TypeError, ("dowg", "eps")),
    "dowg_axis_name_int": Bad(gradtx.dowg, dict(axis_name=0), TypeError, ("dowg", "axis_name")),
    "dowg_eps_zero_without_init": Bad(gradtx.dowg, dict(eps=0.0), names=("dowg", "eps")),
    "dowg_init_estim_sq_dist_negative": Bad(
        gradtx.dowg, dict(init_estim_sq_dist=-1.0), names=("dowg", "init_estim_sq_dist")
    ),
    "momo_beta_string": Bad(gradtx.momo, dict(beta="0.9"), TypeError, ("momo", "beta")),
    "momo_beta_above_one": Bad(gradtx.momo, dict(beta=1.5), names=("momo", "beta")),
    "momo_adapt_string": Bad(
        gradtx.momo, dict(adapt_lower_bound="yes"), TypeError, ("momo", "adapt_lower_bound")
    ),
    "momo_weight_decay_mode_unknown": Bad(
        gradtx.momo, dict(weight_decay_mode="adamw"), names=("momo", "weight_decay_mode")
    ),
    "momo_update_without_value": Bad(
        lambda tx, params: tx.update(params, tx.init(params), params),
        late=lambda: ((gradtx.momo(), {"w": jnp.ones(2)}), {}),
        names=("momo", "value"),
    ),
    "momo_value_not_scalar": Bad(
        lambda tx, params: tx.update(params, tx.init(params), params, value=jnp.ones(2)),
        late=lambda: ((gradtx.momo(), {"w": jnp.ones(2)}), {}),
        names=("momo", "value"),
    ),
    "momo_adam_b2_one": Bad(gradtx.momo_adam, dict(b2=1.0), names=("momo_adam", "b2")),
    "momo_adam_mu_dtype_int": Bad(
        gradtx.momo_adam, dict(mu_dtype="int8"), TypeError, ("momo_adam", "mu_dtype")
    ),
    "momo_adam_update_without_value": Bad(
        lambda tx, params: tx.update(params, tx.init(params), params),
        late=lambda: ((gradtx.momo_adam(), {"w": jnp.ones(2)}), {}),
        names=("momo_adam", "value"),
    ),
}

GOOD = {
    # a negative lower bound (a loss that can be negative), beta = 1 (the authors allow it)
    "momo_negative_bound_beta_one": (
        lambda **kwargs: given_loss(gradtx.momo(**kwargs)),
        lambda: dict(lower_bound=-5.0, beta=1.0),
        {"lower_bound": -5.0, "beta": 1.0},
    ),
    # eps = 0 is the paper's DoWG once the initial distance is given
    "dowg_paper": (
        gradtx.dowg,
        lambda: dict(init_estim_sq_dist=1e-4, eps=0.0),
        {"init_estim_sq_dist": 1e-4, "eps": 0.0},
    ),
}

TRANSFORMATIONS = {
    "dog": lambda: gradtx.dog(),
    "dowg": lambda: gradtx.dowg(),
    "momo": lambda: gradtx.momo(),
    "momo_adam": lambda: gradtx.momo_adam(),
}
READS_PARAMS = ["dog", "dowg", "momo", "momo_adam"]
NEED_PARAMS = {name: make for name, make in TRANSFORMATIONS.items()}

HYPERPARAM_KEYS = {
    "dog": (gradtx.dog(0.1), {"learning_rate", "init_step", "eps"}),
    "dog_decay": (
        gradtx.dog(0.1, weight_decay=0.1),
        {"learning_rate", "init_step", "eps", "weight_decay"},
    ),
    "dowg": (
        gradtx.dowg(0.1, init_estim_sq_dist=1.0),
        {"learning_rate", "init_estim_sq_dist", "eps"},
    ),
    "momo": (
        given_loss(gradtx.momo(0.1)),
        {"learning_rate", "beta", "lower_bound", "weight_decay"},
    ),
    "momo_adam": (
        given_loss(gradtx.momo_adam(0.1)),
        {"learning_rate", "b1", "b2", "eps", "lower_bound", "weight_decay"},
    ),
}


def _given_loss_on(factory, problem: str):
    """A convergence row's factory: ``factory`` given the problem's loss."""
    loss = problems.get(problem).loss
    return lambda **kwargs: given_loss(factory(**kwargs), loss)


CONVERGENCE_NAMES = ["dog", "dowg", "momo", "momo_adam"]
# Run with c (or the learning rate) times 0.5, 0.7, 1.4 and 2: DoG's c = 1 is the method (the
# paper finds c > 1 unstable and c < 1 slow): dog-quadratic passes at 1.4x and 2x and runs out
# of budget below, dog-rosenbrock fails at all four (1.8e-5 at 0.7x, 1.2e-3 at 1.4x); dowg
# passes all but Rosenbrock at 2x (hovers at 2e-4); momo's Polyak step is never capped here,
# the same at all four; momo_adam passes all four.
# fmt: off
CONVERGENCE = [
    # the defaults (the point of the method); needs 2204
    Row("dog", Q, gradtx.dog, dict(), 4000, TIGHT),
    # needs 13263
    Row("dog", R, gradtx.dog, dict(), 20000, TIGHT, NEAR),
    # needs 355
    Row("dowg", Q, gradtx.dowg, dict(), 1000, TIGHT),
    # at c = 1 DoWG hovers at 7.5e-4 along the valley after 20000 steps: half the step; needs 9211
    Row("dowg", R, gradtx.dowg, dict(learning_rate=0.5), 15000, TIGHT, NEAR),
    # f* = 0 is the minimum of both problems; needs 274
    Row("momo", Q, _given_loss_on(gradtx.momo, Q), dict(), 1000, TIGHT),
    # needs 425
    Row("momo", R, _given_loss_on(gradtx.momo, R), dict(), 1500, TIGHT, NEAR),
    # needs 347
    Row("momo_adam", Q, _given_loss_on(gradtx.momo_adam, Q), dict(), 1000, TIGHT),
    # needs 4214
    Row("momo_adam", R, _given_loss_on(gradtx.momo_adam, R), dict(), 8000, TIGHT, NEAR),
]
# fmt: on
