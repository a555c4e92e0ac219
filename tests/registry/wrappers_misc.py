"""Rows of cautious, split_real_and_imaginary, normalize and DP-SGD in the shared test tables.

* ``cautious`` (gradtx/_wrappers/cautious.py) against the hand-written float64 NumPy C-AdamW
  and C-Lion of tests/reference/numpy_wrappers_misc.py: ``cautious(adamw(...))`` (the decay
  inside the mask, a scheduled ``mask_eps``), the authors' C-AdamW (the decay outside the mask,
  their current rescaling 1 / max(mean φ, 1e-3), which ``mask_eps=0`` reproduces) written as a
  chain, and ``cautious(lion(...))``; C-Lion also against ``pytorch_optimizer.Lion(cautious=
  True)``, with and without weight decay (outside the mask there, as the chain puts it).
* ``split_real_and_imaginary(lion(...))`` against NumPy and optax.contrib; on complex params it
  is the real problem on the (re, im) pairs (COMPLEX_PAIR_IDS), though Lion alone refuses them.
* ``normalize`` against NumPy and optax.contrib.normalize.
* ``differentially_private_aggregate`` and ``dpsgd`` take per-example gradients (a leading axis
  of examples that the params lack), which the shared runners, the property tests and the
  shape tables of test_validation do not make: their numbers (against optax.contrib, noise
  included, and the noise's statistics), shape refusals and live hyperparameters are tested in
  tests/test_privacy.py; their bad-argument rows are here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gradtx
from tests.cases import Bad, Case, Cosine, Row, Sched, _resolve
from tests.reference import numpy_sign_sgd, numpy_wrappers_misc
from tests.reference.torch_optimizers import TorchRow
from tests.registry.matrix import ContribCase

LR = 0.01

REFERENCES = {"normalize": numpy_wrappers_misc.normalize}


@dataclasses.dataclass(frozen=True)
class BuiltCase(Case):
    """A row whose gradtx transformation, NumPy reference and optax counterpart are built from
    ``kwargs`` by the functions given (a wrapper around an inner transformation, a chain)."""

    build: Callable[..., Any] | None = None
    build_reference: Callable[..., Any] | None = None
    build_optax: Callable[..., Any] | None = None

    def gradtx(self):
        return self.build(**_resolve(self.kwargs, "for_gradtx"))

    def reference(self):
        return self.build_reference(**_resolve(self.kwargs, "for_numpy"))

    def optax_transformation(self):
        return self.build_optax(**self.optax)


def _cautious_adamw(learning_rate, weight_decay, mask_eps):
    return gradtx.cautious(gradtx.adamw(learning_rate, weight_decay=weight_decay), mask_eps)


def _authors_c_adamw(learning_rate, weight_decay, mask_eps):
    """The authors' C-AdamW: the Adam direction masked, the decay on every coordinate."""
    return gradtx.chain(
        gradtx.cautious(gradtx.chain(gradtx.scale_by_adam(), gradtx.scale(-1.0)), mask_eps),
        gradtx.scale(-1.0),
        gradtx.add_decayed_weights(weight_decay),
        gradtx.scale_by_learning_rate(learning_rate),
    )


def _authors_c_lion(learning_rate, weight_decay):
    return gradtx.chain(
        gradtx.cautious(gradtx.chain(gradtx.scale_by_lion(), gradtx.scale(-1.0))),
        gradtx.scale(-1.0),
        gradtx.add_decayed_weights(weight_decay),
        gradtx.scale_by_learning_rate(learning_rate),
    )


def _split_lion(learning_rate, weight_decay):
    return gradtx.split_real_and_imaginary(gradtx.lion(learning_rate, weight_decay=weight_decay))


def _optax_split_lion(learning_rate, weight_decay):
    import optax
    import optax.contrib

    return optax.contrib.split_real_and_imaginary(
        optax.lion(learning_rate, weight_decay=weight_decay)
    )


def _numpy_split_lion(learning_rate, weight_decay):
    inner = numpy_sign_sgd.lion(learning_rate, weight_decay=weight_decay)
    return numpy_wrappers_misc.split_real_and_imaginary(inner)


OPTIMIZERS = [
    # C-AdamW as the one-liner: the decay inside the mask; mask_eps scheduled
    BuiltCase(
        "cautious_adamw",
        "cautious",
        {
            "learning_rate": LR,
            "weight_decay": 0.1,
            "mask_eps": Sched("linear_schedule", (1.0, 0.25, 50)),
        },
        build=_cautious_adamw,
        build_reference=numpy_wrappers_misc.c_adamw,
    ),
    # the authors' C-AdamW: decay outside the mask, their 1 / max(mean, 1e-3) (mask_eps = 0)
    BuiltCase(
        "cautious_adamw_authors",
        "cautious",
        {"learning_rate": LR, "weight_decay": 0.1, "mask_eps": 0.0},
        build=_authors_c_adamw,
        build_reference=lambda **kw: numpy_wrappers_misc.c_adamw(
            **kw, decay="outside", rescale="mean_clamp"
        ),
    ),
    # C-Lion, the paper's n / (kept + 1)
    BuiltCase(
        "cautious_lion",
        "cautious",
        {"learning_rate": LR, "weight_decay": 0.1},
        build=lambda learning_rate, weight_decay: gradtx.cautious(
            gradtx.lion(learning_rate, weight_decay=weight_decay)
        ),
        build_reference=numpy_wrappers_misc.c_lion,
    ),
    BuiltCase(
        "split_real_and_imaginary_lion",
        "split_real_and_imaginary",
        {"learning_rate": LR, "weight_decay": 0.1},
        optax={"learning_rate": LR, "weight_decay": 0.1},
        build=_split_lion,
        build_reference=_numpy_split_lion,
        build_optax=_optax_split_lion,
    ),
]

ELEMENTARY = [ContribCase("normalize", "normalize", {}, optax={})]

# Lion, inside, has no complex form: cautious(lion) refuses complex params, naming both
REAL_ONLY = ["cautious_lion"]
COMPLEX_PAIR_IDS = ["split_real_and_imaginary_lion", "normalize"]


def _cautious_adam(learning_rate):
    return gradtx.cautious(gradtx.adam(learning_rate))


CONVERGENCE_NAMES = ["cautious_adam"]
# Adam's rows (tests/test_convergence.py) for C-Adam: its quadratic row as it is; on Rosenbrock
# 2x Adam's rate (the mask rescaling n / (kept + 1) is at most 2/3 on its two coordinates).
# Run with the rates times 0.5, 0.7, 1.4 and 2: all pass all four.
CONVERGENCE = [
    Row("cautious_adam", "quadratic", _cautious_adam, dict(learning_rate=0.03), 400, 1e-6),
    Row(
        "cautious_adam",
        "rosenbrock",
        _cautious_adam,
        dict(learning_rate=Cosine(0.1, 5000)),
        5000,
        1e-6,
        1e-2,
    ),
]

TORCH = {
    "torch_cautious_lion": TorchRow(
        "Lion",
        {"lr": LR, "betas": [0.9, 0.99], "weight_decay": 0.0, "cautious": True},
        lambda: gradtx.cautious(gradtx.lion(LR, weight_decay=0.0)),
        module="pytorch_optimizer",
    ),
    # pytorch_optimizer decays every coordinate, outside the mask: the authors' chain
    "torch_cautious_lion_decay": TorchRow(
        "Lion",
        {"lr": LR, "betas": [0.9, 0.99], "weight_decay": 0.5, "cautious": True},
        lambda: _authors_c_lion(LR, 0.5),
        module="pytorch_optimizer",
    ),
}

PROPERTIES = {
    "cautious_adamw": (lambda: gradtx.cautious(gradtx.adamw(LR, weight_decay=0.1)), "cautious"),
    "split_real_and_imaginary_lion": (
        lambda: _split_lion(LR, 0.1),
        "split_real_and_imaginary",
    ),
    "normalize": (gradtx.normalize, "normalize"),
}

HYPERPARAM_KEYS = {
    "cautious": (
        gradtx.cautious(gradtx.adamw(0.1)),
        {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay", "mask_eps"},
    ),
    "split_real_and_imaginary": (
        gradtx.split_real_and_imaginary(gradtx.adam(0.1)),
        {"learning_rate", "b1", "b2", "eps", "eps_root"},
    ),
}

TRANSFORMATIONS = {
    "cautious": lambda: gradtx.cautious(gradtx.adam(0.1)),
    "split_real_and_imaginary": lambda: gradtx.split_real_and_imaginary(gradtx.adam(0.1)),
    "normalize": gradtx.normalize,
}
PASS_THROUGH = ["normalize"]

GOOD = {
    "cautious_mask_eps_zero": (
        gradtx.cautious,
        lambda: dict(tx=gradtx.adam(0.1), mask_eps=0.0),
        {"mask_eps": 0.0},
    ),
}

NO_ARGUMENTS = {"normalize": "takes no arguments"}
NO_RANGE = {"split_real_and_imaginary": "only a transformation"}

_DPA = gradtx.differentially_private_aggregate

BAD = {
    "cautious_tx_not_a_transformation": Bad(
        gradtx.cautious, dict(tx="adam"), TypeError, ("cautious", "tx")
    ),
    "cautious_mask_eps_string": Bad(
        gradtx.cautious,
        dict(tx=gradtx.adam(0.1), mask_eps="1"),
        TypeError,
        ("cautious", "mask_eps"),
    ),
    "cautious_mask_eps_negative": Bad(
        gradtx.cautious, dict(tx=gradtx.adam(0.1), mask_eps=-1.0), names=("cautious", "mask_eps")
    ),
    "split_real_and_imaginary_inner_not_a_transformation": Bad(
        gradtx.split_real_and_imaginary,
        dict(inner=0.1),
        TypeError,
        ("split_real_and_imaginary", "inner"),
    ),
    "dpa_l2_norm_clip_string": Bad(
        _DPA,
        dict(l2_norm_clip="1", noise_multiplier=1.0, key=0),
        TypeError,
        ("differentially_private_aggregate", "l2_norm_clip"),
    ),
    "dpa_l2_norm_clip_negative": Bad(
        _DPA,
        dict(l2_norm_clip=-1.0, noise_multiplier=1.0, key=0),
        names=("differentially_private_aggregate", "l2_norm_clip"),
    ),
    "dpa_noise_multiplier_negative": Bad(
        _DPA,
        dict(l2_norm_clip=1.0, noise_multiplier=-0.5, key=0),
        names=("differentially_private_aggregate", "noise_multiplier"),
    ),
    "dpa_key_missing": Bad(
        _DPA,
        dict(l2_norm_clip=1.0, noise_multiplier=1.0),
        TypeError,
        ("differentially_private_aggregate", "key"),
    ),
    "dpa_seed_float": Bad(
        _DPA,
        dict(l2_norm_clip=1.0, noise_multiplier=1.0, seed=1.5),
        TypeError,
        ("differentially_private_aggregate", "seed"),
    ),
    "dpsgd_learning_rate_string": Bad(
        gradtx.dpsgd,
        dict(learning_rate="0.1", l2_norm_clip=1.0, noise_multiplier=1.0, seed=0),
        TypeError,
        ("dpsgd", "learning_rate"),
    ),
    "dpsgd_seed_string": Bad(
        gradtx.dpsgd,
        dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed="0"),
        TypeError,
        ("dpsgd", "seed"),
    ),
    "dpsgd_nesterov_string": Bad(
        gradtx.dpsgd,
        dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0, nesterov="no"),
        TypeError,
        ("dpsgd", "nesterov"),
    ),
    "dpsgd_accumulator_dtype_int": Bad(
        gradtx.dpsgd,
        dict(
            learning_rate=0.1,
            l2_norm_clip=1.0,
            noise_multiplier=1.0,
            seed=0,
            momentum=0.9,
            accumulator_dtype="int32",
        ),
        TypeError,
        ("dpsgd", "accumulator_dtype"),
    ),
    "dpsgd_noise_multiplier_negative": Bad(
        gradtx.dpsgd,
        dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=-1.0, seed=0),
        names=("dpsgd", "noise_multiplier"),
    ),
    "dpsgd_momentum_one": Bad(
        gradtx.dpsgd,
        dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0, momentum=1.0),
        names=("dpsgd", "momentum"),
    ),
}
