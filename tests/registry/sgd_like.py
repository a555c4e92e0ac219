"""Rows of the SGD-like family (gradtx/_optimizers/sgd_like.py, gradtx/_transforms/polyak.py).

Polyak's step size needs the loss at the params (``update(..., value=loss)``), which the shared
runners do not pass: its rows wrap the transformation in :func:`given_loss`, whose ``update``
passes ``value=`` computed from the params it is given (in the tables: ½‖θ‖², the same in the
NumPy reference and, wrapped the same way, for optax's ``polyak_sgd``; in the convergence rows:
the problem's own loss).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import gradtx
from gradtx._core import tree as _tree
from tests import problems
from tests.cases import Bad, Case, Cosine, Row
from tests.reference import numpy_sign_sgd
from tests.reference.torch_optimizers import TorchRow

Q, R = "quadratic", "rosenbrock"
TIGHT, NEAR = 1e-6, 1e-2


def half_square(params):
    """½ Σ|θ|² over all leaves, in the widest of their (at least float32) dtypes."""
    squares = [_tree.sum_of_squares(x) for x in jax.tree.leaves(params)]
    dtype = _tree.wider(jnp.float32, *(s.dtype for s in squares))
    return 0.5 * sum((s.astype(dtype) for s in squares), jnp.zeros([], dtype))


def given_loss(tx, loss=half_square):
    """``tx`` whose ``update`` passes ``value=loss(params)`` (unless given one)."""

    def update(updates, state, params=None, **extra):
        return tx.update(updates, state, params, **{"value": loss(params), **extra})

    return gradtx.GradientTransformation(tx.init, update)


def _numpy_half_square(leaves):
    return 0.5 * sum(float(np.sum(np.abs(x) ** 2)) for x in leaves)


@dataclasses.dataclass(frozen=True)
class PolyakCase(Case):
    """A :class:`Case` of a transformation that needs ``value=``: ½‖θ‖² on both sides."""

    def gradtx(self):
        return given_loss(super().gradtx())

    def reference(self):
        return numpy_sign_sgd.REFERENCES[self.name](**self.kwargs, value=_numpy_half_square)

    def optax_transformation(self):
        return given_loss(super().optax_transformation())


def _polyak_on(problem: str):
    """A convergence row's factory: polyak_sgd given the problem's loss."""
    loss = problems.get(problem).loss
    return lambda **kwargs: given_loss(gradtx.polyak_sgd(**kwargs), loss)


REFERENCES = {
    name: numpy_sign_sgd.REFERENCES[name]
    for name in ("scale_by_polyak", "polyak_sgd", "noisy_sgd", "asgd")
}

OPTIMIZERS = [
    PolyakCase("polyak_sgd", "polyak_sgd", {}, optax={}),
    # Without noise: the chain and its learning rate against NumPy. The noise is add_noise's,
    # whose draws equal optax's for the same key (test_gradient_processing); noisy_sgd(0.1,
    # key=0) equals optax.noisy_sgd(0.1, key=0) to 0 in float32 and float64 (checked by hand;
    # no optax= here: optax's eager noise is the slowest run of these tables, ~6 s).
    Case("noisy_sgd_no_noise", "noisy_sgd", {"learning_rate": 0.1, "eta": 0.0, "key": 0}),
    # averaging from step 20 on, within the 100 steps (optax has no ASGD: TORCH below)
    Case(
        "asgd",
        "asgd",
        {"learning_rate": 0.05, "lambd": 0.01, "t0": 20.0, "weight_decay": 0.1},
    ),
]

_SPS_PLUS = {"max_learning_rate": 0.3, "scaling": 0.5, "f_min": 2.0, "eps": 0.1, "variant": "sps+"}

ELEMENTARY = [
    PolyakCase(
        "scale_by_polyak",
        "scale_by_polyak",
        {"max_learning_rate": 0.2},
        optax={"max_learning_rate": 0.2},
    ),
    # a variant of the optimizer, in this list to skip the per-optimizer dtype and state tests
    PolyakCase(
        "polyak_sgd_plus",
        "polyak_sgd",
        _SPS_PLUS,
        optax=_SPS_PLUS,
    ),
]

COMPLEX_PAIR_IDS = ["polyak_sgd", "asgd"]

# PyTorch keeps ASGD's eta and mu as float32 tensors even for float64 params (Python floats
# turned into tensors of the default dtype): 8e-9 relative from gradtx's float64 ones.
TORCH = {
    "torch_asgd": TorchRow(
        "ASGD",
        {"lr": 0.05, "lambd": 0.01, "alpha": 0.6, "t0": 20.0, "weight_decay": 0.1},
        lambda: gradtx.asgd(0.05, lambd=0.01, alpha=0.6, t0=20.0, weight_decay=0.1),
    ),
}

PROPERTIES = {
    "polyak_sgd": (lambda: given_loss(gradtx.polyak_sgd()), "polyak_sgd"),
    "asgd": (lambda: gradtx.asgd(0.1, t0=1.0), "asgd"),
}

NO_WRONG_TYPE = {
    "asgd_averaged_params": "any object is a pytree: a state without asgd is a ValueError",
}

BAD = {
    "noisy_sgd_without_key": Bad(
        gradtx.noisy_sgd, dict(learning_rate=0.1), TypeError, ("noisy_sgd", "key")
    ),
    "noisy_sgd_eta_negative": Bad(
        gradtx.noisy_sgd, dict(learning_rate=0.1, eta=-1.0, key=0), names=("noisy_sgd", "eta")
    ),
    "polyak_sgd_variant_int": Bad(
        gradtx.polyak_sgd, dict(variant=1), TypeError, ("polyak_sgd", "variant")
    ),
    "polyak_sgd_max_learning_rate_zero": Bad(
        gradtx.polyak_sgd, dict(max_learning_rate=0.0), names=("polyak_sgd", "max_learning_rate")
    ),
    "polyak_sgd_scaling_negative": Bad(
        gradtx.polyak_sgd, dict(scaling=-1.0), names=("polyak_sgd", "scaling")
    ),
    "scale_by_polyak_f_min_string": Bad(
        gradtx.scale_by_polyak, dict(f_min="0"), TypeError, ("scale_by_polyak", "f_min")
    ),
    "scale_by_polyak_variant_unknown": Bad(
        gradtx.scale_by_polyak, dict(variant="sps++"), names=("scale_by_polyak", "variant")
    ),
    "scale_by_polyak_eps_negative": Bad(
        gradtx.scale_by_polyak, dict(eps=-1.0), names=("scale_by_polyak", "eps")
    ),
    # update without the loss: the error says how to pass it
    "polyak_sgd_update_without_value": Bad(
        lambda tx, params: tx.update(params, tx.init(params), params),
        late=lambda: ((gradtx.polyak_sgd(), {"w": jnp.ones(2)}), {}),
        names=("polyak_sgd", "value"),
    ),
    "asgd_lambd_string": Bad(gradtx.asgd, dict(lambd="1e-4"), TypeError, ("asgd", "lambd")),
    "asgd_t0_negative": Bad(gradtx.asgd, dict(t0=-1.0), names=("asgd", "t0")),
    "asgd_alpha_negative": Bad(gradtx.asgd, dict(alpha=-0.5), names=("asgd", "alpha")),
    "asgd_averaged_params_without_asgd": Bad(
        gradtx.asgd_averaged_params,
        late=lambda: ((gradtx.sgd(0.1).init({"w": jnp.ones(2)}),), {}),
        names=("asgd_averaged_params", "asgd"),
    ),
}

GOOD = {
    "asgd_t0_zero": (gradtx.asgd, lambda: dict(t0=0.0, lambd=0.0), {"t0": 0.0, "lambd": 0.0}),
    "polyak_sgd_f_min_negative": (
        lambda **kwargs: given_loss(gradtx.polyak_sgd(**kwargs)),
        lambda: dict(f_min=-5.0),
        {"f_min": -5.0},
    ),
}

TRANSFORMATIONS = {
    "polyak_sgd": lambda: gradtx.polyak_sgd(),
    "scale_by_polyak": lambda: gradtx.scale_by_polyak(),
    "noisy_sgd": lambda: gradtx.noisy_sgd(0.1, key=0),
    "asgd": lambda: gradtx.asgd(0.1),
}
PASS_THROUGH = ["polyak_sgd", "scale_by_polyak", "noisy_sgd"]
READS_PARAMS = ["asgd"]
NEED_PARAMS = {"asgd": lambda: gradtx.asgd(0.1)}

# polyak_sgd has no learning rate to show (test_hyper reads one): its keys are max_learning_rate,
# scaling, f_min and eps (checked by the GOOD row above).
HYPERPARAM_KEYS = {
    "noisy_sgd": (gradtx.noisy_sgd(0.1, key=0), {"learning_rate", "eta", "gamma"}),
    "asgd": (gradtx.asgd(0.1), {"learning_rate", "lambd", "alpha", "t0", "weight_decay"}),
}

CONVERGENCE_NAMES = ["polyak_sgd", "noisy_sgd", "asgd"]
# Run with the rates times 0.5, 0.7, 1.4 and 2 (max_learning_rate for polyak_sgd): polyak_sgd
# passes all four; noisy_sgd-quadratic fails at 0.5x (out of budget); the rows at sgd's rates
# fail as sgd's do: near the stability limit at 1.4x and 2x, out of budget at 0.5x.
# fmt: off
CONVERGENCE = [
    # Polyak's step (f* = 0 is the true minimum of both problems) needs no tuning; needs 123
    Row("polyak_sgd", Q, _polyak_on(Q), dict(), 500, TIGHT),
    # needs 836
    Row("polyak_sgd", R, _polyak_on(R), dict(), 3000, TIGHT, NEAR),
    # the noise (sigma_1 = 0.1, optax's defaults) needs a decaying rate to settle below 1e-6
    # (at sgd's constant 0.019 the loss hovers near 4e-5); half sgd's rate, so that 2x is
    # stable too; needs 1604
    Row("noisy_sgd", Q, gradtx.noisy_sgd,
        dict(learning_rate=Cosine(0.01, 2000), key=0), 2000, TIGHT),
    # the valley's curvature dominates the annealed noise: sgd's constant rate; needs 13443
    Row("noisy_sgd", R, gradtx.noisy_sgd, dict(learning_rate=1.5e-3, key=0), 20000, TIGHT, NEAR),
    # PyTorch's lambd and t0 (no averaging within the budget): sgd's rate; needs 343
    Row("asgd", Q, gradtx.asgd, dict(learning_rate=0.019), 500, TIGHT),
    # needs 10306
    Row("asgd", R, gradtx.asgd, dict(learning_rate=1.5e-3), 15000, TIGHT, NEAR),
]
# fmt: on
