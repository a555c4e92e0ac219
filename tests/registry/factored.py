"""Rows of the factored optimizers (gradtx/_optimizers/factored.py: Adafactor, SM3) and of
their pairs (gradtx/_transforms/factored.py) in the shared test tables."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import gradtx
from tests.cases import Bad, Case, Cosine, Row
from tests.reference import numpy_factored as ref
from tests.reference.torch_optimizers import TorchRow

LR = 1e-2


def _decay_rate_in_working_precision(step, decay_rate):
    """optax's schedule 1 - t**-c in the default float dtype: optax's own forms it in float32
    even under x64 (1 - beta up to 1e-6 off at t = 100; measured over the 100 steps of the
    default adafactor row: optax 5e-8 off the float64 reference, gradtx 7e-16)."""
    t = (jnp.asarray(step) + 1).astype(jnp.result_type(float))
    return 1.0 - t ** -jnp.asarray(decay_rate).astype(t.dtype)


# min_dim_size_to_factor=2 factors the test tree's (4, 3) and (2, 2) leaves (optax's 128 would
# factor none); the vectors, the scalar and the (0, 3) leaf keep full statistics.
FACTOR = {"min_dim_size_to_factor": 2}
OPTIMIZERS = [
    # optax's float32 decay schedule (see above) keeps a default-schedule row from optax at
    # float64: this row (decay_rate 0: every step's statistics are its own) is compared with
    # optax and covers the whole chain; the schedule is checked by scale_by_factored_rms, the
    # torch variant by scale_by_factored_rms_torch_offset (NumPy) and torch_adafactor (torch).
    Case(
        "adafactor_momentum_decay",
        "adafactor",
        {
            "learning_rate": LR,
            **FACTOR,
            "decay_rate": 0.0,
            "momentum": 0.9,
            "dtype_momentum": None,
            "weight_decay_rate": 1e-3,
        },
        optax={
            "learning_rate": LR,
            **FACTOR,
            "decay_rate": 0.0,
            "momentum": 0.9,
            "dtype_momentum": None,
            "weight_decay_rate": 1e-3,
        },
    ),
    # optax's sm3 fails on scalar leaves (IndexError: it keeps no accumulator for them)
    Case("sm3", "sm3", {"learning_rate": LR}),
    # no optax; b3 = 0.99 and d = 0.5 (the clipping acts on most steps) so that 100 steps
    # move the instability's statistics well away from their start
    Case(
        "came",
        "came",
        {"learning_rate": LR, "b3": 0.99, "clipping_threshold": 0.5, "weight_decay": 0.1},
    ),
]

ELEMENTARY = [
    Case(
        "scale_by_factored_rms",
        "scale_by_factored_rms",
        FACTOR,
        optax={**FACTOR, "decay_rate_fn": _decay_rate_in_working_precision},
    ),
    Case(
        "scale_by_factored_rms_torch_offset",
        "scale_by_factored_rms",
        {"min_dim_size_to_factor": 1, "decay_rate": 0.5, "step_offset": 3, "variant": "torch"},
    ),
    # b2 < 1: the averaged accumulators (the default sums are in the sm3 row); no optax row as
    # for sm3
    Case("scale_by_sm3", "scale_by_sm3", {"b1": 0.5, "b2": 0.95}),
]

REFERENCES = {
    name: getattr(ref, name)
    for name in ("adafactor", "sm3", "scale_by_factored_rms", "scale_by_sm3", "came")
}

TORCH = {
    "torch_adafactor": TorchRow(
        "Adafactor",
        {"lr": 0.2, "weight_decay": 0.1, "maximize": True},
        lambda: gradtx.adafactor(
            0.2,
            min_dim_size_to_factor=1,
            weight_decay_rate=0.1,
            eps=float(np.finfo(np.float64).eps),
            relative_step=True,
            maximize=True,
            variant="torch",
        ),
        shapes=((3,), (4, 5), (2, 3, 4), ()),
    ),
    # the authors' package and pytorch-optimizer's: the same numbers (decoupled decay)
    "came_pytorch_came": TorchRow(
        "CAME",
        {"lr": 1e-2, "weight_decay": 0.1, "clip_threshold": 0.5},
        lambda: gradtx.came(1e-2, clipping_threshold=0.5, weight_decay=0.1),
        shapes=((3,), (4, 5), (2, 3, 4), ()),
        module="came_pytorch",
    ),
    "pytorch_optimizer_came": TorchRow(
        "CAME",
        {"lr": 1e-2, "weight_decay": 0.1, "clip_threshold": 0.5},
        lambda: gradtx.came(1e-2, clipping_threshold=0.5, weight_decay=0.1),
        shapes=((3,), (4, 5), (2, 3, 4), ()),
        module="pytorch_optimizer",
    ),
}

PROPERTIES = {
    "adafactor": (lambda: gradtx.adafactor(LR, momentum=0.9, **FACTOR), "adafactor"),
    "sm3": (lambda: gradtx.sm3(LR), "sm3"),
    "came": (lambda: gradtx.came(LR, weight_decay=0.1, mu_dtype=jnp.bfloat16), "came"),
}

HYPERPARAM_KEYS = {
    "adafactor": (
        gradtx.adafactor(0.1),
        {"learning_rate", "decay_rate", "decay_offset", "clipping_threshold", "eps", "min_scale"},
    ),
    "sm3": (gradtx.sm3(0.1), {"learning_rate", "momentum", "b2", "eps"}),
    "came": (
        gradtx.came(0.1),
        {
            "learning_rate",
            "b1",
            "b2",
            "b3",
            "eps1",
            "eps2",
            "clipping_threshold",
            "weight_decay",
        },
    ),
}

BAD = {
    "adafactor_factored_string": Bad(
        gradtx.adafactor, dict(factored="yes"), TypeError, names=("adafactor", "factored")
    ),
    "adafactor_decay_rate_negative": Bad(
        gradtx.adafactor, dict(decay_rate=-0.8), names=("adafactor", "decay_rate")
    ),
    "adafactor_clipping_threshold_zero": Bad(
        gradtx.adafactor, dict(clipping_threshold=0.0), names=("adafactor", "clipping_threshold")
    ),
    "adafactor_momentum_one": Bad(
        gradtx.adafactor, dict(momentum=1.0), names=("adafactor", "momentum")
    ),
    "adafactor_variant_unknown": Bad(
        gradtx.adafactor, dict(variant="keras"), names=("adafactor", "variant")
    ),
    "sm3_lr_string": Bad(
        gradtx.sm3, dict(learning_rate="0.1"), TypeError, names=("sm3", "learning_rate")
    ),
    "sm3_momentum_one": Bad(
        gradtx.sm3, dict(learning_rate=0.1, momentum=1.0), names=("sm3", "momentum")
    ),
    "scale_by_factored_rms_min_dim_float": Bad(
        gradtx.scale_by_factored_rms,
        dict(min_dim_size_to_factor=2.5),
        TypeError,
        names=("scale_by_factored_rms", "min_dim_size_to_factor"),
    ),
    "scale_by_factored_rms_epsilon_negative": Bad(
        gradtx.scale_by_factored_rms,
        dict(epsilon=-1e-30),
        names=("scale_by_factored_rms", "epsilon"),
    ),
    "scale_by_sm3_b2_string": Bad(
        gradtx.scale_by_sm3, dict(b2="1"), TypeError, names=("scale_by_sm3", "b2")
    ),
    "scale_by_sm3_b2_above_1": Bad(gradtx.scale_by_sm3, dict(b2=1.5), names=("scale_by_sm3", "b2")),
    "came_mu_dtype_string": Bad(
        gradtx.came, dict(learning_rate=0.1, mu_dtype="int8"), TypeError, names=("came", "mu_dtype")
    ),
    "came_b3_one": Bad(gradtx.came, dict(learning_rate=0.1, b3=1.0), names=("came", "b3")),
    "came_eps2_negative": Bad(
        gradtx.came, dict(learning_rate=0.1, eps2=-1.0), names=("came", "eps2")
    ),
    "scale_by_came_eps1_string": Bad(
        gradtx.scale_by_came, dict(eps1="0"), TypeError, names=("scale_by_came", "eps1")
    ),
    "scale_by_came_clipping_threshold_zero": Bad(
        gradtx.scale_by_came,
        dict(clipping_threshold=0.0),
        names=("scale_by_came", "clipping_threshold"),
    ),
}

GOOD = {
    # c = 0: every step's statistics are its own squares
    "adafactor_decay_rate_zero": (
        gradtx.adafactor,
        lambda: dict(learning_rate=0.1, decay_rate=0.0),
        {"decay_rate": 0.0},
    ),
    # b1 = 0: no momentum
    "sm3_momentum_zero": (
        gradtx.sm3,
        lambda: dict(learning_rate=0.1, momentum=0.0),
        {"momentum": 0.0},
    ),
}

TRANSFORMATIONS = {
    "adafactor": lambda: gradtx.adafactor(0.1, min_dim_size_to_factor=1),
    "sm3": lambda: gradtx.sm3(0.1),
    "scale_by_factored_rms": lambda: gradtx.scale_by_factored_rms(min_dim_size_to_factor=1),
    "scale_by_sm3": lambda: gradtx.scale_by_sm3(),
    "came": lambda: gradtx.came(0.1),
    "scale_by_came": lambda: gradtx.scale_by_came(),
}
READS_PARAMS = {"adafactor", "came"}
NEED_PARAMS = {"adafactor": lambda: gradtx.adafactor(0.1), "came": lambda: gradtx.came(0.1)}

# Tuned as tests/test_convergence.py's rows (its docstring says how; "needs": the first step
# from which the row's criteria hold for good), each also run at 0.5x, 0.7x, 1.4x and 2x its
# rate. The problems' params are one vector: Adafactor keeps full statistics there.
Q, R, TIGHT, NEAR = "quadratic", "rosenbrock", 1e-6, 1e-2
CONVERGENCE = [
    # the step is lr * RMS(params) * (clipped g / sqrt(v)): relative, so it shrinks with the
    # params towards 0; needs 265 (0.5x: 438, 2x: 162)
    Row("adafactor", Q, gradtx.adafactor, dict(learning_rate=0.3), 800, TIGHT),
    # without momentum it hovers across the valley (a cosine to 0 over 10000 steps: loss
    # 1e-6 to 1e-4); momentum 0.9 and a cosine land it; needs 2135 (0.5x: 2871)
    Row(
        "adafactor",
        R,
        gradtx.adafactor,
        dict(learning_rate=Cosine(0.1, 5000), momentum=0.9),
        5000,
        TIGHT,
        NEAR,
    ),
    # AdaGrad-like (the accumulated squares only grow), at any rate from 0.15 to 2; needs 172
    Row("sm3", Q, gradtx.sm3, dict(learning_rate=0.3), 500, TIGHT),
    # the accumulators' growth shrinks the step: only large rates cross the valley in time;
    # needs 2260 (0.7x: 3136, 2x: 1568; 0.5x runs out of budget)
    Row("sm3", R, gradtx.sm3, dict(learning_rate=2.0), 4000, TIGHT, NEAR),
    # on a vector CAME keeps full statistics and takes its momentum (no confidence): Adam
    # without bias correction, clipped; needs 184 (0.5x: 208, 2x: 168)
    Row("came", Q, gradtx.came, dict(learning_rate=0.03), 500, TIGHT),
    # a constant rate lands only from 0.01 to 0.03; a cosine from 0.1 at every multiple;
    # needs 976 (0.5x: 1775, 2x: 454)
    Row("came", R, gradtx.came, dict(learning_rate=Cosine(0.1, 5000)), 5000, TIGHT, NEAR),
]
CONVERGENCE_NAMES = ["adafactor", "sm3", "came"]
