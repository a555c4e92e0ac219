"""Rows of SOAP (gradtx/_optimizers/soap.py) and its scaling (gradtx/_transforms/eigenbasis.py)
in the shared test tables.

On the shared test tree SOAP rotates the (4, 3) and (2, 2) matrices (and the zero-size (0, 3)
one's columns); vectors and the scalar take Adam's step. The first eigendecomposition of a
statistic of rank r < n is unique only up to a basis of its null space (and up to signs, of
which SOAP's result is independent): with the rows here the null spaces have dimension <= 1,
so gradtx, NumPy and PyTorch agree; a preconditioned vector of length n has an (n - 1)-
dimensional null space at the first step, so ``precondition_1d`` is compared with PyTorch on a
vector of length 2 (TORCH) and not on the shared tree.

SOAP is real here (the reference refuses complex params): every case is REAL_ONLY. The pair
``scale_by_soap`` is in every trajectory of the optimizer (and alone in the TORCH row that
reproduces the authors' decay order), so it has no rows of its own.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import gradtx
from tests.cases import Bad, Case, Sched
from tests.reference import numpy_soap
from tests.reference.torch_optimizers import TorchRow

REFERENCES = dict(numpy_soap.REFERENCES)

OPTIMIZERS = [
    Case("soap", "soap", {"learning_rate": 0.01}),
    # scheduled, its own statistics decay, a power step every 3 Adam steps, and one-sided:
    # the (4, 3) leaf's 4 rows are longer than max_precond_dim
    Case(
        "soap_one_sided_scheduled",
        "soap",
        {
            "learning_rate": Sched("linear_schedule", (0.02, 0.005, 60)),
            "b1": Sched("linear_schedule", (0.8, 0.95, 40)),
            "b2": 0.99,
            "shampoo_beta": 0.9,
            "weight_decay": 0.1,
            "precondition_frequency": 3,
            "max_precond_dim": 3,
        },
    ),
]

REAL_ONLY = [case.id for case in OPTIMIZERS]

PROPERTIES = {"soap": (lambda: gradtx.soap(0.01), "soap")}
PROPERTIES_REAL_ONLY = list(PROPERTIES)
PROPERTIES_NO_COMPLEX_FORM = {"soap": "SOAP is implemented for real params only"}


def _torch_eps(eps: float, b2: float):
    """The authors' ε, added to sqrt(V) before debiasing, as gradtx's ε after it: ε divided by
    sqrt(1 - b2^s) at Adam's step s (the schedule's count; the first update takes none)."""
    return lambda count: eps / jnp.sqrt(1 - b2 ** jnp.maximum(count, 1).astype(float))


def _authors_order(lr: float, wd: float, b1: float, b2: float, eps: float, **kwargs):
    """scale_by_soap followed by the authors' decay: after the step, not at the first update,
    θ_t = (1 - η λ)(θ_{t-1} - η u_t)."""
    return gradtx.chain(
        gradtx.scale_by_soap(b1, b2, eps=_torch_eps(eps, b2), **kwargs),
        gradtx.scale(1 - lr * wd),
        gradtx.add_decayed_weights(lambda count: jnp.where(count == 0, 0.0, wd)),
        gradtx.scale_by_learning_rate(lr),
    )


# pytorch-optimizer's SOAP (the authors' code): betas as lists (the fixture is JSON)
TORCH = {
    # the defaults, without decay; its ε placement differs from gradtx's by ε(1/sqrt(1 - b2^s)
    # - 1)/sqrt(V), far below the tolerance at ε = 1e-8
    "torch_soap": TorchRow(
        "SOAP",
        {"lr": 3e-3, "weight_decay": 0.0},
        lambda: gradtx.soap(3e-3, weight_decay=0.0),
        shapes=((4, 5), (3, 3), (5, 4), (3,), ()),
        module="pytorch_optimizer",
    ),
    # its decay order and ε placement reproduced exactly (ε large enough to matter); one-sided
    # (5 > max_precondition_dim = 4), a vector preconditioned, a power step every 3 steps
    "torch_soap_one_sided_1d_decay": TorchRow(
        "SOAP",
        {
            "lr": 0.01,
            "betas": [0.9, 0.99],
            "shampoo_beta": 0.8,
            "weight_decay": 0.1,
            "precondition_frequency": 3,
            "max_precondition_dim": 4,
            "precondition_1d": True,
            "eps": 1e-3,
        },
        lambda: _authors_order(
            0.01,
            0.1,
            0.9,
            0.99,
            1e-3,
            shampoo_beta=0.8,
            precondition_frequency=3,
            max_precond_dim=4,
            precondition_1d=True,
        ),
        shapes=((4, 5), (2,), (3, 3)),
        module="pytorch_optimizer",
    ),
    "torch_soap_no_bias_correction": TorchRow(
        "SOAP",
        {"lr": 0.005, "betas": [0.9, 0.999], "weight_decay": 0.0, "correct_bias": False},
        lambda: gradtx.soap(0.005, b1=0.9, b2=0.999, weight_decay=0.0, bias_correction=False),
        shapes=((5, 4), (2, 3), (4,)),
        module="pytorch_optimizer",
    ),
}

HYPERPARAM_KEYS = {
    "soap": (
        gradtx.soap(0.1),
        {"learning_rate", "b1", "b2", "eps", "weight_decay"},
    ),
    "soap_shampoo_beta": (
        gradtx.soap(0.1, shampoo_beta=0.9),
        {"learning_rate", "b1", "b2", "shampoo_beta", "eps", "weight_decay"},
    ),
}

_RANK3 = np.zeros((2, 3, 4), np.float32)

BAD = {
    "soap_lr_string": Bad(
        gradtx.soap, dict(learning_rate="0.1"), TypeError, ("soap", "learning_rate")
    ),
    "soap_b1_one": Bad(gradtx.soap, dict(learning_rate=0.1, b1=1.0), names=("soap", "b1")),
    "soap_shampoo_beta_one": Bad(
        gradtx.soap, dict(learning_rate=0.1, shampoo_beta=1.0), names=("soap", "shampoo_beta")
    ),
    "soap_frequency_zero": Bad(
        gradtx.soap,
        dict(learning_rate=0.1, precondition_frequency=0),
        names=("soap", "precondition_frequency"),
    ),
    "soap_frequency_float": Bad(
        gradtx.soap,
        dict(learning_rate=0.1, precondition_frequency=10.0),
        TypeError,
        ("soap", "precondition_frequency"),
    ),
    "soap_max_dim_zero": Bad(
        gradtx.soap, dict(learning_rate=0.1, max_precond_dim=0), names=("soap", "max_precond_dim")
    ),
    "soap_precondition_1d_string": Bad(
        gradtx.soap,
        dict(learning_rate=0.1, precondition_1d="yes"),
        TypeError,
        ("soap", "precondition_1d"),
    ),
    "soap_rank3_without_dimension_numbers": Bad(
        lambda: gradtx.soap(0.1).init({"k": _RANK3}), names=("soap", "weight_dimension_numbers")
    ),
    "scale_by_soap_b2_string": Bad(
        gradtx.scale_by_soap, dict(b2="0.9"), TypeError, ("scale_by_soap", "b2")
    ),
    "scale_by_soap_eps_negative": Bad(
        gradtx.scale_by_soap, dict(eps=-1.0), names=("scale_by_soap", "eps")
    ),
    "scale_by_soap_shampoo_beta_negative": Bad(
        gradtx.scale_by_soap, dict(shampoo_beta=-0.1), names=("scale_by_soap", "shampoo_beta")
    ),
}

TRANSFORMATIONS = {
    "soap": lambda: gradtx.soap(0.1),
    "scale_by_soap": gradtx.scale_by_soap,
}

# issue 14's rows: 50 steps, eager in float32 only (tests/test_reference.py)
HEAVY = [case.id for case in OPTIMIZERS]

# SOAP's first update only gathers the statistics (its output is 0): test_numerics' NaN comes
# at the second
FIRST_UPDATE_GATHERS = [case.id for case in OPTIMIZERS]
