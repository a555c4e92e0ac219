"""Rows of the matrix-aware optimizers (gradtx/_optimizers/matrix.py: Muon) and of their pieces
(gradtx/_transforms/orthogonal.py, gradtx/_linalg) in the shared test tables.

On the shared test tree Muon orthogonalizes the (4, 3), (2, 2) and (0, 3) leaves and gives the
vectors and the scalar to AdamW; the pairs ``scale_by_muon`` and ``scale_by_shape`` refuse
leaves that are not matrices, so their rows are the optimizer's (every link is in each
trajectory) and their own checks are in tests/test_linalg.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import gradtx
from tests.cases import Bad, Case, Sched
from tests.reference import numpy_matrix
from tests.reference.torch_optimizers import TorchRow

LR = 0.02
MDN = gradtx.MatrixDimensionNumbers

REFERENCES = dict(numpy_matrix.REFERENCES)


def _optax_matrices(params):
    """optax's default (every rank-2 leaf), less zero-size ones: optax divides by their zero
    fan-in (ZeroDivisionError) where gradtx scales by 1; their updates are empty either way."""
    import jax
    import optax.contrib

    def spec(x):
        return optax.contrib.MuonDimensionNumbers() if x.ndim == 2 and x.size else None

    return jax.tree.map(spec, params)


@dataclasses.dataclass(frozen=True)
class ContribCase(Case):
    """A :class:`Case` whose optax counterpart is ``optax.contrib.<name>``."""

    def optax_transformation(self):
        import optax.contrib

        extra = {"muon_weight_dimension_numbers": _optax_matrices} if self.name == "muon" else {}
        return getattr(optax.contrib, self.name)(**self.optax, **extra)


DION = numpy_matrix.DION_COEFFS

OPTIMIZERS = [
    ContribCase("muon", "muon", {"learning_rate": LR}, optax={"learning_rate": LR}),
    ContribCase(
        "muon_adaptive_rms_decay",
        "muon",
        {
            "learning_rate": LR,
            "adaptive": True,
            "consistent_rms": 0.2,
            "weight_decay": 0.1,
            "adam_learning_rate": 0.005,
            "adam_weight_decay": 0.01,
            "nesterov": False,
        },
        optax={
            "learning_rate": LR,
            "adaptive": True,
            "consistent_rms": 0.2,
            "weight_decay": 0.1,
            "adam_learning_rate": 0.005,
            "adam_weight_decay": 0.01,
            "nesterov": False,
        },
    ),
    # a table of per-step coefficients (Dion's, Ahn et al., 2025) and the spectral norm
    ContribCase(
        "muon_spectral_table",
        "muon",
        {"learning_rate": LR, "ns_coeffs": DION, "preconditioning": "spectral", "beta": 0.9},
        optax={"learning_rate": LR, "ns_coeffs": DION, "preconditioning": "spectral", "beta": 0.9},
    ),
    # the scalings read off X X^H: AOL's diagonal with one step fewer (its point, Boissin et al.,
    # 2025), and the Schatten-4 norm with Dion's coefficients by name
    ContribCase(
        "muon_aol",
        "muon",
        {"learning_rate": LR, "preconditioning": "aol", "ns_steps": 4},
        optax={"learning_rate": LR, "preconditioning": "aol", "ns_steps": 4},
    ),
    ContribCase(
        "muon_schatten_dion",
        "muon",
        {
            "learning_rate": LR,
            "preconditioning": "schatten",
            "ns_coeffs": "dion",
            "nesterov": False,
        },
        optax={
            "learning_rate": LR,
            "preconditioning": "schatten",
            "ns_coeffs": "dion",
            "nesterov": False,
        },
    ),
    # PyTorch's choices: no debiasing, eps 0 (its max(||u||, 1e-7)), decoupled decay; scheduled
    Case(
        "muon_torch_scheduled",
        "muon",
        {
            "learning_rate": Sched("linear_schedule", (0.05, 0.01, 60)),
            "beta": Sched("linear_schedule", (0.8, 0.95, 40)),
            "eps": 0.0,
            "weight_decay": 0.1,
            "bias_correction": False,
        },
    ),
]

ITERATIVE = [case.id for case in OPTIMIZERS]

PROPERTIES = {
    "muon": (lambda: gradtx.muon(LR), "muon"),
}

# torch.optim.Muon on weights laid out (out, in): its reduction axis is 1, which its scale
# sqrt(max(1, out / in)) assumes; its momentum is not debiased and it divides by max(||u||, eps)
# (gradtx: eps = 0 adds nothing; the norms here are far above torch's 1e-7); the iteration in
# float64 on both sides (see TorchRow.float64_newton_schulz)
_TORCH_MUON = dict(
    eps=0.0,
    bias_correction=False,
    muon_weight_dimension_numbers=MDN(reduction_axis=1, output_axis=0),
    dtype="float64",
)
TORCH = {
    "torch_muon": TorchRow(
        "Muon",
        {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.95},
        lambda: gradtx.muon(0.02, beta=0.95, weight_decay=0.1, **_TORCH_MUON),
        shapes=((4, 5), (6, 3), (3, 3)),
        float64_newton_schulz=True,
    ),
    "torch_muon_rms_no_nesterov": TorchRow(
        "Muon",
        {
            "lr": 0.01,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "nesterov": False,
            "adjust_lr_fn": "match_rms_adamw",
        },
        lambda: gradtx.muon(0.01, beta=0.9, nesterov=False, consistent_rms=0.2, **_TORCH_MUON),
        shapes=((4, 5), (6, 3), (3, 3)),
        float64_newton_schulz=True,
    ),
}

# Newton-Schulz's slope at 0 is a = 3.4445 per step: five steps multiply by up to a^5
AMPLIFICATION = {"muon": 3.4445**5}

HYPERPARAM_KEYS = {
    "muon": (
        gradtx.muon(0.1),
        {
            "learning_rate",
            "beta",
            "eps",
            "weight_decay",
            "adam_b1",
            "adam_b2",
            "adam_eps_root",
            "adam_weight_decay",
        },
    ),
    "muon_rms": (
        gradtx.muon(0.1, adam_learning_rate=0.01, consistent_rms=0.2),
        {
            "learning_rate",
            "beta",
            "eps",
            "weight_decay",
            "adam_b1",
            "adam_b2",
            "adam_eps_root",
            "adam_weight_decay",
            "adam_learning_rate",
            "consistent_rms",
        },
    ),
}

_RANK3 = np.zeros((2, 3, 4), np.float32)

BAD = {
    "muon_lr_string": Bad(
        gradtx.muon, dict(learning_rate="0.1"), TypeError, ("muon", "learning_rate")
    ),
    "muon_adam_b2_one": Bad(
        gradtx.muon, dict(learning_rate=0.1, adam_b2=1.0), names=("muon", "adam_b2")
    ),
    "muon_beta_one": Bad(gradtx.muon, dict(learning_rate=0.1, beta=1.0), names=("muon", "beta")),
    "muon_preconditioning_unknown": Bad(
        gradtx.muon,
        dict(learning_rate=0.1, preconditioning="nuclear"),
        names=("muon", "preconditioning"),
    ),
    "muon_ns_coeffs_unknown_name": Bad(
        gradtx.muon, dict(learning_rate=0.1, ns_coeffs="polar"), names=("muon", "ns_coeffs")
    ),
    "scale_by_muon_dion_rows_short": Bad(
        gradtx.scale_by_muon,
        dict(ns_coeffs="dion", ns_steps=6),
        names=("scale_by_muon", "ns_coeffs", "dion"),
    ),
    "muon_ns_coeffs_shape": Bad(
        gradtx.muon, dict(learning_rate=0.1, ns_coeffs=(1.0, 2.0)), names=("muon", "ns_coeffs")
    ),
    "muon_nesterov_string": Bad(
        gradtx.muon, dict(learning_rate=0.1, nesterov="yes"), TypeError, ("muon", "nesterov")
    ),
    "muon_rows_short": Bad(
        gradtx.muon,
        dict(learning_rate=0.1, ns_coeffs=DION, ns_steps=6),
        names=("muon", "ns_coeffs"),
    ),
    "scale_by_muon_beta_string": Bad(
        gradtx.scale_by_muon, dict(beta="0.9"), TypeError, ("scale_by_muon", "beta")
    ),
    "scale_by_muon_eps_negative": Bad(
        gradtx.scale_by_muon, dict(eps=-1.0), names=("scale_by_muon", "eps")
    ),
    "scale_by_muon_ns_steps_float": Bad(
        gradtx.scale_by_muon, dict(ns_steps=5.0), TypeError, ("scale_by_muon", "ns_steps")
    ),
    "scale_by_shape_rms_string": Bad(
        gradtx.scale_by_shape,
        dict(consistent_rms="0.2"),
        TypeError,
        ("scale_by_shape", "consistent_rms"),
    ),
    "scale_by_shape_rms_negative": Bad(
        gradtx.scale_by_shape, dict(consistent_rms=-0.2), names=("scale_by_shape", "consistent_rms")
    ),
    "orthogonalize_int_matrix": Bad(
        gradtx.orthogonalize_via_newton_schulz,
        args=(np.ones((2, 2), np.int32),),
        error=TypeError,
        names=("orthogonalize_via_newton_schulz", "x"),
    ),
    "orthogonalize_negative_steps": Bad(
        gradtx.orthogonalize_via_newton_schulz,
        dict(ns_steps=-1),
        args=(np.ones((2, 2), np.float32),),
        names=("orthogonalize_via_newton_schulz", "ns_steps"),
    ),
    "as_matrices_rank3_without_numbers": Bad(
        gradtx.as_matrices, args=(_RANK3,), names=("as_matrices", "dimension_numbers")
    ),
    "as_matrices_numbers_tuple": Bad(
        gradtx.as_matrices,
        args=(_RANK3, (0, 1)),
        error=TypeError,
        names=("as_matrices", "dimension_numbers"),
    ),
    "matrix_shape_axis_out_of_range": Bad(
        gradtx.matrix_shape, args=((2, 3), MDN(0, 2)), names=("matrix_shape", "output_axis")
    ),
    "matrix_shape_axis_float": Bad(
        gradtx.matrix_shape,
        args=((2, 3), MDN(0.0, 1)),
        error=TypeError,
        names=("matrix_shape", "reduction_axis"),
    ),
    "matrix_inverse_pth_root_p_zero": Bad(
        gradtx.matrix_inverse_pth_root,
        args=(np.eye(2, dtype=np.float32), 0),
        names=("matrix_inverse_pth_root", "p"),
    ),
    "matrix_inverse_pth_root_num_iters_float": Bad(
        gradtx.matrix_inverse_pth_root,
        dict(num_iters=1.5),
        args=(np.eye(2, dtype=np.float32), 2),
        error=TypeError,
        names=("matrix_inverse_pth_root", "num_iters"),
    ),
    "power_iteration_num_iters_negative": Bad(
        gradtx.power_iteration,
        dict(num_iters=-1),
        args=(np.eye(2, dtype=np.float32),),
        names=("power_iteration", "num_iters"),
    ),
    "power_iteration_num_iters_float": Bad(
        gradtx.power_iteration,
        dict(num_iters=1.5),
        args=(np.eye(2, dtype=np.float32),),
        error=TypeError,
        names=("power_iteration", "num_iters"),
    ),
    "muon_dimension_numbers_exclude_int": Bad(
        gradtx.muon_dimension_numbers,
        dict(exclude=5),
        args=({"w": _RANK3},),
        error=TypeError,
        names=("muon_dimension_numbers", "exclude"),
    ),
    "muon_dimension_numbers_exclude_invalid": Bad(
        gradtx.muon_dimension_numbers,
        dict(exclude="(embed"),
        args=({"w": _RANK3},),
        names=("muon_dimension_numbers", "exclude"),
    ),
}

TRANSFORMATIONS = {
    "muon": lambda: gradtx.muon(0.1),
}

Q, R, TIGHT, NEAR = "quadratic", "rosenbrock", 1e-6, 1e-2

# issue 14's rows: 50 steps, eager in float32 only (tests/test_reference.py)
HEAVY = [case.id for case in OPTIMIZERS]
