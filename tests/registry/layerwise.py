"""Rows of the layer-wise optimizers added to gradtx/_optimizers/layerwise.py (NovoGrad,
Fromage) and of the block-norm pairs (gradtx/_transforms/block_norms.py) in the shared test
tables. (LAMB's and LARS's rows are in tests/helpers.py.)"""

from __future__ import annotations

import gradtx
from tests.cases import Bad, Case, Cosine, Row
from tests.reference import numpy_factored as ref

LR = 1e-2

OPTIMIZERS = [
    Case("novograd", "novograd", {"learning_rate": LR}, optax={"learning_rate": LR}),
    Case("fromage", "fromage", {"learning_rate": LR}, optax={"learning_rate": LR}),
]

# scale_by_param_block_norm has no row here: applied raw, u * ||p|| grows a leaf of n elements
# by about sqrt(1 + n) a step, past float32's range within the 100 steps (the others stay
# bounded); it is in the property, validation and hyperparameter tables.
ELEMENTARY = [
    Case(
        "scale_by_novograd",
        "scale_by_novograd",
        {"weight_decay": 0.1, "eps_root": 1e-8},
        optax={"weight_decay": 0.1, "eps_root": 1e-8},
    ),
    Case("scale_by_param_block_rms", "scale_by_param_block_rms", {}, optax={}),
    Case("clip_by_block_rms", "clip_by_block_rms", {"threshold": 0.5}, optax={"threshold": 0.5}),
    Case("normalize_by_update_norm", "normalize_by_update_norm", {}, optax={}),
]

REFERENCES = {
    name: getattr(ref, name)
    for name in (
        "novograd",
        "fromage",
        "scale_by_novograd",
        "scale_by_param_block_norm",
        "scale_by_param_block_rms",
        "clip_by_block_rms",
        "normalize_by_update_norm",
    )
}

# Norms of whole leaves (and linear maps of them) are those of the (re, im) pairs; the RMS
# divides by the number of complex elements, half the pairs' count, so it is not.
COMPLEX_PAIR_IDS = ["novograd", "fromage", "scale_by_novograd", "normalize_by_update_norm"]

PROPERTIES = {"novograd": (lambda: gradtx.novograd(LR, weight_decay=0.01), "novograd")}

HYPERPARAM_KEYS = {
    "novograd": (
        gradtx.novograd(0.1),
        {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"},
    ),
    "fromage": (gradtx.fromage(0.1), {"learning_rate", "min_norm"}),
}

BAD = {
    "novograd_mu_dtype_int": Bad(
        gradtx.novograd,
        dict(learning_rate=0.1, mu_dtype="int32"),
        TypeError,
        names=("novograd", "mu_dtype"),
    ),
    "novograd_b2_one": Bad(
        gradtx.novograd, dict(learning_rate=0.1, b2=1.0), names=("novograd", "b2")
    ),
    "fromage_lr_string": Bad(
        gradtx.fromage, dict(learning_rate="0.1"), TypeError, names=("fromage", "learning_rate")
    ),
    "fromage_min_norm_negative": Bad(
        gradtx.fromage, dict(learning_rate=0.1, min_norm=-1.0), names=("fromage", "min_norm")
    ),
    "scale_by_novograd_mu_dtype_int": Bad(
        gradtx.scale_by_novograd,
        dict(mu_dtype="int8"),
        TypeError,
        names=("scale_by_novograd", "mu_dtype"),
    ),
    "scale_by_novograd_b1_above_1": Bad(
        gradtx.scale_by_novograd, dict(b1=1.5), names=("scale_by_novograd", "b1")
    ),
    "scale_by_param_block_norm_string": Bad(
        gradtx.scale_by_param_block_norm,
        dict(min_scale="0.1"),
        TypeError,
        names=("scale_by_param_block_norm", "min_scale"),
    ),
    "scale_by_param_block_norm_negative": Bad(
        gradtx.scale_by_param_block_norm,
        dict(min_scale=-1.0),
        names=("scale_by_param_block_norm", "min_scale"),
    ),
    "scale_by_param_block_rms_string": Bad(
        gradtx.scale_by_param_block_rms,
        dict(min_scale="0.1"),
        TypeError,
        names=("scale_by_param_block_rms", "min_scale"),
    ),
    "scale_by_param_block_rms_negative": Bad(
        gradtx.scale_by_param_block_rms,
        dict(min_scale=-1.0),
        names=("scale_by_param_block_rms", "min_scale"),
    ),
    "clip_by_block_rms_none": Bad(
        gradtx.clip_by_block_rms,
        args=(None,),
        error=TypeError,
        names=("clip_by_block_rms", "threshold"),
    ),
    "clip_by_block_rms_zero": Bad(
        gradtx.clip_by_block_rms, args=(0.0,), names=("clip_by_block_rms", "threshold")
    ),
    "normalize_by_update_norm_string": Bad(
        gradtx.normalize_by_update_norm,
        dict(scale_factor="1"),
        TypeError,
        names=("normalize_by_update_norm", "scale_factor"),
    ),
    "normalize_by_update_norm_eps_negative": Bad(
        gradtx.normalize_by_update_norm,
        dict(eps=-1e-6),
        names=("normalize_by_update_norm", "eps"),
    ),
}

GOOD = {
    # lr = 0: the step and the shrink are both 0
    "fromage_lr_zero": (gradtx.fromage, lambda: dict(learning_rate=0.0), {"learning_rate": 0.0}),
    # b2 = 0: the latest squared norm alone
    "novograd_b2_zero": (
        gradtx.novograd,
        lambda: dict(learning_rate=0.1, b2=0.0),
        {"b2": 0.0},
    ),
    # eps = 0 with a non-zero gradient: g / ||g||
    "normalize_by_update_norm_eps_zero": (
        gradtx.normalize_by_update_norm,
        lambda: dict(eps=0.0),
        {"eps": 0.0},
    ),
}

TRANSFORMATIONS = {
    "novograd": lambda: gradtx.novograd(0.1),
    "fromage": lambda: gradtx.fromage(0.1),
    "scale_by_novograd": lambda: gradtx.scale_by_novograd(),
    "scale_by_param_block_norm": lambda: gradtx.scale_by_param_block_norm(),
    "scale_by_param_block_rms": lambda: gradtx.scale_by_param_block_rms(),
    "clip_by_block_rms": lambda: gradtx.clip_by_block_rms(1.0),
    "normalize_by_update_norm": lambda: gradtx.normalize_by_update_norm(),
}
PASS_THROUGH = {"clip_by_block_rms", "normalize_by_update_norm"}
READS_PARAMS = {
    "novograd",
    "fromage",
    "scale_by_novograd",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
}
# stateless but reading the params: a state cannot be made for other shapes
NO_PER_LEAF_STATE = {"fromage", "scale_by_param_block_norm", "scale_by_param_block_rms"}
NEED_PARAMS = {
    "novograd": lambda: gradtx.novograd(0.1),
    "fromage": lambda: gradtx.fromage(0.1),
    "scale_by_novograd": lambda: gradtx.scale_by_novograd(),
    "scale_by_param_block_norm": lambda: gradtx.scale_by_param_block_norm(),
    "scale_by_param_block_rms": lambda: gradtx.scale_by_param_block_rms(),
}

# Tuned as tests/test_convergence.py's rows (its docstring says how; "needs": the first step
# from which the row's criteria hold for good), each also run at 0.5x, 0.7x, 1.4x and 2x its
# rate. The problems' params are one vector, one layer.
Q, R, TIGHT, NEAR = "quadratic", "rosenbrock", 1e-6, 1e-2
CONVERGENCE = [
    # NovoGrad's step has length about lr (the gradient normalized by its running norm): at a
    # constant rate it hovers (loss 1e-4 at lr 3e-3 after 5000 steps), a cosine to 0 lands it
    # near the budget's end by design; needs 1798 (0.5x to 2x: 1713 to 1858)
    Row("novograd", Q, gradtx.novograd, dict(learning_rate=Cosine(0.01, 2000)), 2000, TIGHT),
    # needs 1887 (0.5x to 2x: 1839 to 1920)
    Row("novograd", R, gradtx.novograd, dict(learning_rate=Cosine(0.01, 2000)), 2000, TIGHT, NEAR),
    # each step moves the layer by lr of its norm and shrinks it by 1 / sqrt(1 + lr**2): the
    # params go to 0 geometrically; needs 267 (0.5x: 313, 2x: 175)
    Row("fromage", Q, gradtx.fromage, dict(learning_rate=0.1), 600, TIGHT),
    # the minimizer's norm is sqrt(2), and relative steps only settle as the rate decays: a
    # cosine lands near the end by design; needs 4898 (0.5x: 4854; 2x hovers at the end)
    Row("fromage", R, gradtx.fromage, dict(learning_rate=Cosine(0.03, 5000)), 5000, TIGHT, NEAR),
]
CONVERGENCE_NAMES = ["novograd", "fromage"]
