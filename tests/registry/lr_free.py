"""Rows of the learning-rate-free optimizers (gradtx/_optimizers/lr_free.py,
gradtx/_transforms/lr_free.py, gradtx/_wrappers/mechanic.py) in the shared test tables.

Three references each: the float64 NumPy reference (tests/reference/numpy_lr_free.py),
optax.contrib's same-named function, and the authors' PyTorch packages (``prodigyopt``,
``dadaptation``) in ``TORCH``. The optax rows use optax's numbers (bias correction on, a
learning rate that is never 0); the ``_authors`` rows take the paths optax has not: the
authors' defaults (no bias correction), ``growth_rate``, ``safeguard_warmup``, a warmup from
a learning rate of 0 (the first step changes nothing).

Every member has a complex form (complex first moments and sums, real second moments of
|g|**2, real inner products, |s| the modulus), checked against the complex NumPy reference.

Mechanic: optax forms its update as ``x_new - x``, which rounds a step far below the params to
their precision (with the default s_init = 1e-6 the steps are ~1e-8 of the params, and optax's
float64 steps are 2e-8 off the exact difference relative to the step, gradtx's 1e-16); the
row's s_init = 0.1 makes steps large enough for the comparison with optax to test the method,
not rounding. Its float32 parameters' rounding puts x0 - x, which the estimates read, 1e-4
off after the first small steps: the optax rows start from estimates (d0 = 1e-2, s_init =
0.1) whose steps are large enough for the float32 comparison to be meaningful.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

import gradtx
from tests.cases import Bad, Cosine, Row, Sched
from tests.reference import numpy_lr_free
from tests.reference.torch_optimizers import TorchRow
from tests.registry.matrix import ContribCase

REFERENCES = dict(numpy_lr_free.REFERENCES)


@dataclasses.dataclass(frozen=True)
class Base(Sched):
    """A base optimizer for mechanize by name and arguments: gradtx's, NumPy's, optax's."""

    def for_numpy(self):
        return numpy_lr_free.BASES[self.name](*self.args)

    def for_optax(self):
        import optax

        return getattr(optax, self.name)(*self.args)


@dataclasses.dataclass(frozen=True)
class MechanizeCase(ContribCase):
    def optax_transformation(self):
        import optax.contrib

        kwargs = {k: v.for_optax() if isinstance(v, Base) else v for k, v in self.optax.items()}
        return optax.contrib.mechanize(**kwargs)


_WARMUP = Sched("linear_schedule", (0.0, 1.0, 10))  # 0 at the first step: no step there
# b2 = 0.99: at 0.999 optax's float32 bias correction (1 - b2**t from float32 b2) puts its
# float32 trajectory 2.6e-5 off the float64 formula (gradtx's 2.7e-6)
_BETAS = (0.9, 0.99)
_PRODIGY = {"betas": _BETAS, "estim_lr0": 1e-2, "weight_decay": 0.1, "beta3": 0.99}
_PRODIGY |= {"estim_lr_coef": 0.5}
_DADAPT = {"learning_rate": 0.5, "betas": _BETAS, "estim_lr0": 1e-2, "weight_decay": 0.1}
_COCOB = {"learning_rate": 0.5, "alpha": 10.0, "weight_decay": 0.1}
_MECHANIC = {"base_optimizer": Base("adam", (1.0,)), "weight_decay": 0.1, "s_init": 0.1}
_MECHANIC |= {"num_betas": 3}

OPTIMIZERS = [
    ContribCase("prodigy", "prodigy", _PRODIGY, optax=_PRODIGY),
    ContribCase(
        "prodigy_authors",
        "prodigy",
        {
            "learning_rate": _WARMUP,
            "estim_lr0": 1e-2,
            "safeguard_warmup": True,
            "use_bias_correction": False,
            "growth_rate": 1.1,
        },
    ),
    ContribCase("dadapt_adamw", "dadapt_adamw", _DADAPT, optax=_DADAPT),
    ContribCase(
        "dadapt_adamw_authors",
        "dadapt_adamw",
        {
            "learning_rate": _WARMUP,
            "estim_lr0": 1e-3,
            "use_bias_correction": False,
            "growth_rate": 1.1,
        },
    ),
    ContribCase("cocob", "cocob", _COCOB, optax=_COCOB),
    MechanizeCase("mechanize", "mechanize", _MECHANIC, optax=_MECHANIC),
]

# optax's float32 Mechanic step is x_new - x, rounded to the params' precision (1e-5 off the
# float64 formula here, gradtx's 1e-6): the float32 comparison with optax allows its error
OPTAX_OWN_F32_ERROR = ["mechanize"]

# a warmup from 0: the first step is skipped (the gradient is not read), test_numerics feeds
# the NaN at the second
FIRST_UPDATE_GATHERS = ["prodigy_authors", "dadapt_adamw_authors"]

ELEMENTARY = [
    ContribCase("scale_by_cocob", "scale_by_cocob", {"alpha": 50.0}, optax={"alpha": 50.0}),
]

_PRODIGY_TORCH = {"d0": 1e-3, "weight_decay": 0.1}
_DADAPT_TORCH = {"d0": 1e-3, "weight_decay": 0.1, "decouple": True}
TORCH = {
    # the authors' defaults: no bias correction, decoupled decay
    "prodigyopt_prodigy": TorchRow(
        "Prodigy",
        _PRODIGY_TORCH,
        lambda: gradtx.prodigy(estim_lr0=1e-3, weight_decay=0.1, use_bias_correction=False),
        module="prodigyopt",
    ),
    # optax's bias correction, with the authors' options optax lacks
    "prodigyopt_prodigy_options": TorchRow(
        "Prodigy",
        {
            "lr": 0.5,
            "beta3": 0.99,
            "d0": 1e-3,
            "d_coef": 2.0,
            "use_bias_correction": True,
            "safeguard_warmup": True,
            "growth_rate": 1.05,
        },
        lambda: gradtx.prodigy(
            0.5,
            beta3=0.99,
            estim_lr0=1e-3,
            estim_lr_coef=2.0,
            safeguard_warmup=True,
            growth_rate=1.05,
        ),
        module="prodigyopt",
    ),
    # the authors' coupled decay is an L2 term ahead of prodigy
    "prodigyopt_prodigy_coupled": TorchRow(
        "Prodigy",
        {**_PRODIGY_TORCH, "decouple": False},
        lambda: gradtx.chain(
            gradtx.add_decayed_weights(0.1),
            gradtx.prodigy(estim_lr0=1e-3, use_bias_correction=False),
        ),
        module="prodigyopt",
    ),
    "dadaptation_adamw": TorchRow(
        "DAdaptAdam",
        _DADAPT_TORCH,
        lambda: gradtx.dadapt_adamw(estim_lr0=1e-3, weight_decay=0.1, use_bias_correction=False),
        module="dadaptation",
    ),
    "dadaptation_adamw_options": TorchRow(
        "DAdaptAdam",
        {**_DADAPT_TORCH, "lr": 0.5, "use_bias_correction": True, "growth_rate": 1.05},
        lambda: gradtx.dadapt_adamw(0.5, estim_lr0=1e-3, weight_decay=0.1, growth_rate=1.05),
        module="dadaptation",
    ),
}

PROPERTIES = {
    "prodigy": (lambda: gradtx.prodigy(weight_decay=0.1, growth_rate=2.0), "prodigy"),
    "dadapt_adamw": (
        lambda: gradtx.dadapt_adamw(weight_decay=0.1, mu_dtype=jnp.bfloat16),
        "dadapt_adamw",
    ),
    "cocob": (lambda: gradtx.cocob(weight_decay=0.1), "cocob"),
    "mechanize": (lambda: gradtx.mechanize(gradtx.adam(0.1)), "mechanize"),
}

# Mechanic's scale is a tree-wide scalar read from x0 - x of every leaf: one bfloat16 ulp (2^-8)
# of a small step, which jit and eager may round apart, moves it and so every float32 leaf's
# step by as much, up to 2^16 float32 ulps (seen: 1200)
AMPLIFICATION = {"mechanize": 2.0**16}

HYPERPARAM_KEYS = {
    "prodigy": (
        gradtx.prodigy(0.1, beta3=0.99),
        {"learning_rate", "b1", "b2", "beta3", "eps", "estim_lr0", "estim_lr_coef"}
        | {"weight_decay"},
    ),
    "dadapt_adamw": (
        gradtx.dadapt_adamw(0.1, growth_rate=2.0),
        {"learning_rate", "b1", "b2", "eps", "estim_lr0", "weight_decay", "growth_rate"},
    ),
    "cocob": (gradtx.cocob(0.1), {"learning_rate", "alpha", "eps", "weight_decay"}),
    # the base's hyperparameters, live in the nested state, beside Mechanic's
    "mechanize": (
        gradtx.mechanize(gradtx.sgd(0.1)),
        {"weight_decay", "eps", "s_init", "learning_rate"},
    ),
}

BAD = {
    "prodigy_betas_float": Bad(gradtx.prodigy, dict(betas=0.9), TypeError, ("prodigy", "betas")),
    "prodigy_b2_above_1": Bad(gradtx.prodigy, dict(betas=(0.9, 1.5)), names=("prodigy", "betas")),
    "prodigy_beta3_one": Bad(gradtx.prodigy, dict(beta3=1.0), names=("prodigy", "beta3")),
    "prodigy_estim_lr0_zero": Bad(
        gradtx.prodigy, dict(estim_lr0=0.0), names=("prodigy", "estim_lr0")
    ),
    "prodigy_growth_rate_negative": Bad(
        gradtx.prodigy, dict(growth_rate=-1.0), names=("prodigy", "growth_rate")
    ),
    "prodigy_safeguard_string": Bad(
        gradtx.prodigy, dict(safeguard_warmup="yes"), TypeError, ("prodigy", "safeguard_warmup")
    ),
    "prodigy_mu_dtype_int": Bad(
        gradtx.prodigy, dict(mu_dtype=jnp.int32), TypeError, ("prodigy", "mu_dtype")
    ),
    "dadapt_adamw_lr_string": Bad(
        gradtx.dadapt_adamw, dict(learning_rate="1"), TypeError, ("dadapt_adamw", "learning_rate")
    ),
    "dadapt_adamw_b1_negative": Bad(
        gradtx.dadapt_adamw, dict(betas=(-0.1, 0.999)), names=("dadapt_adamw", "betas")
    ),
    "dadapt_adamw_bias_correction_int": Bad(
        gradtx.dadapt_adamw,
        dict(use_bias_correction=1),
        TypeError,
        ("dadapt_adamw", "use_bias_correction"),
    ),
    "cocob_alpha_zero": Bad(gradtx.cocob, dict(alpha=0.0), names=("cocob", "alpha")),
    "cocob_eps_zero": Bad(gradtx.cocob, dict(eps=0.0), names=("cocob", "eps")),
    "cocob_mask_int": Bad(gradtx.cocob, dict(mask=3), TypeError, ("cocob", "mask")),
    "scale_by_cocob_alpha_string": Bad(
        gradtx.scale_by_cocob, dict(alpha="100"), TypeError, ("scale_by_cocob", "alpha")
    ),
    "scale_by_cocob_alpha_negative": Bad(
        gradtx.scale_by_cocob, dict(alpha=-1.0), names=("scale_by_cocob", "alpha")
    ),
    "mechanize_base_string": Bad(
        gradtx.mechanize, dict(base_optimizer="adam"), TypeError, ("mechanize", "base_optimizer")
    ),
    "mechanize_num_betas_zero": Bad(
        gradtx.mechanize,
        dict(base_optimizer=gradtx.sgd(0.1), num_betas=0),
        names=("mechanize", "num_betas"),
    ),
    "mechanize_eps_zero": Bad(
        gradtx.mechanize, dict(base_optimizer=gradtx.sgd(0.1), eps=0.0), names=("mechanize", "eps")
    ),
    "mechanize_s_init_zero": Bad(
        gradtx.mechanize,
        dict(base_optimizer=gradtx.sgd(0.1), s_init=0.0),
        names=("mechanize", "s_init"),
    ),
}

# the authors' paths at the ends of the ranges: no first moment (b1 = 0), no memory in the
# estimate (beta3 = 0, or b2 = 0 for D-Adaptation's sqrt(b2))
GOOD = {
    "prodigy_b1_zero": (gradtx.prodigy, lambda: dict(betas=(0.0, 0.999)), {"b1": 0.0}),
    "prodigy_beta3_zero": (gradtx.prodigy, lambda: dict(beta3=0.0), {"beta3": 0.0}),
    "dadapt_adamw_b2_zero": (gradtx.dadapt_adamw, lambda: dict(betas=(0.9, 0.0)), {"b2": 0.0}),
    "cocob_alpha_small": (gradtx.cocob, lambda: dict(alpha=1e-3), {"alpha": 1e-3}),
}

TRANSFORMATIONS = {
    "prodigy": lambda: gradtx.prodigy(),
    "dadapt_adamw": lambda: gradtx.dadapt_adamw(),
    "cocob": lambda: gradtx.cocob(),
    "scale_by_cocob": lambda: gradtx.scale_by_cocob(),
    "mechanize": lambda: gradtx.mechanize(gradtx.adam(0.1)),
}
READS_PARAMS = list(TRANSFORMATIONS)
NEED_PARAMS = dict(TRANSFORMATIONS)

# Tuned as tests/test_convergence.py's rows ("needs": the first step from which the row's
# criteria hold for good), each also run with its learning-rate factor at 0.5x and 2x. COCOB
# and Mechanic have no rows: neither reaches the tight tolerances (COCOB's Rosenbrock loss is
# 1e-3 after 10000 steps; Mechanic, made for stochastic gradients, stalls at 1e-3 on the
# quadratic and 0.15 on Rosenbrock after 5000 steps, with or without its decay), and a loose
# row would not tell a working optimizer from a broken one.
Q, R, TIGHT, NEAR = "quadratic", "rosenbrock", 1e-6, 1e-2
CONVERGENCE = [
    # the default factor 1: needs 203 (0.5x: 221, 2x: 198)
    Row("prodigy", Q, gradtx.prodigy, {}, 600, TIGHT),
    # a cosine from the factor 1 (the paper's advice for a schedule); needs 1138 (0.5x: 758;
    # at 2x it ends 0.011 from (1, 1))
    Row("prodigy", R, gradtx.prodigy, dict(learning_rate=Cosine(1.0, 3000)), 3000, TIGHT, NEAR),
    # needs 190 (0.5x: 216, 2x: 176)
    Row("dadapt_adamw", Q, gradtx.dadapt_adamw, {}, 600, TIGHT),
    # needs 1347 (0.5x: 1182, 2x: 1658)
    Row(
        "dadapt_adamw",
        R,
        gradtx.dadapt_adamw,
        dict(learning_rate=Cosine(1.0, 3000)),
        3000,
        TIGHT,
        NEAR,
    ),
]
CONVERGENCE_NAMES = ["prodigy", "dadapt_adamw"]
