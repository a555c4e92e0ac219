"""Rows of GaLore (gradtx/_optimizers/low_rank.py, gradtx/_transforms/low_rank.py) in the
shared test tables.

On the shared test tree GaLore projects the (4, 3), (2, 2) and (0, 3) leaves (rank 2: the
first is truncated, the second rotated whole, the third empty) and gives the vectors and the
scalar to the inner Adam whole; ``weight_dimension_numbers=MatrixDimensionNumbers(1, 0)``
makes the (4, 3) leaf a wide 3 x 4 matrix, projected on its columns.

Signs of singular vectors (see tests/reference/numpy_low_rank.py): rows with
``svd_dtype="float32"`` (optax's choice) take their decomposition from the routine gradtx and
optax call, on the same float32 input, and compare raw signs across refreshes; the row with
the default ``svd_dtype`` checks gradtx's float64 SVD against NumPy's own, independent one,
with ``align_signs=True`` so that no sign the two SVDs pick can matter.

optax.contrib.galore fails on a tree with a None leaf (its dimension-number map treats None
as a leaf), so it runs here on the list of the tree's leaves, which is the same computation
per leaf.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import gradtx
from tests.cases import Bad, Sched
from tests.reference import numpy_low_rank
from tests.registry.matrix import ContribCase

LR = 0.01
MDN = gradtx.MatrixDimensionNumbers

REFERENCES = dict(numpy_low_rank.REFERENCES)


def _on_leaves(tx):
    """``tx`` run on the list of a tree's leaves (Nones dropped), the updates put back."""
    import jax
    import optax

    def init(params):
        return tx.init(jax.tree.leaves(params))

    def update(updates, state, params=None):
        flat, treedef = jax.tree.flatten(updates)
        out, state = tx.update(flat, state, None if params is None else jax.tree.leaves(params))
        return treedef.unflatten(out), state

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class GaloreCase(ContribCase):
    """optax.contrib.galore on the tree's leaves; ``wide`` gives both sides the transposed
    view of every matrix (gradtx's MatrixDimensionNumbers(1, 0), optax's own class)."""

    def optax_transformation(self):
        import optax.contrib

        kwargs = dict(self.optax)
        if kwargs.pop("wide", False):
            kwargs["weight_dimension_numbers"] = optax.contrib.GaLoreDimensionNumbers(1, 0)
        return _on_leaves(optax.contrib.galore(**kwargs))


_REFRESH = {"learning_rate": LR, "rank": 2, "update_proj_gap": 7, "weight_decay": 0.1}

OPTIMIZERS = [
    # optax's SVD dtype: raw signs, a refresh every 7 steps, decoupled decay
    GaloreCase("galore", "galore", {**_REFRESH, "svd_dtype": "float32"}, optax=_REFRESH),
    # wide matrices (projected on the right), rank 1, a scale, two refreshes per 20 steps
    GaloreCase(
        "galore_wide_scaled",
        "galore",
        {
            "learning_rate": LR,
            "rank": 1,
            "update_proj_gap": 10,
            "scale": 0.25,
            "weight_dimension_numbers": MDN(1, 0),
            "svd_dtype": "float32",
        },
        optax={"learning_rate": LR, "rank": 1, "update_proj_gap": 10, "scale": 0.25, "wide": True},
    ),
    # gradtx's default SVD dtype (float64 for float64 params) against NumPy's SVD, signs
    # aligned; scheduled learning rate and scale
    ContribCase(
        "galore_aligned_scheduled",
        "galore",
        {
            "learning_rate": Sched("linear_schedule", (0.02, 0.005, 60)),
            "rank": 2,
            "update_proj_gap": 5,
            "scale": Sched("linear_schedule", (1.0, 0.5, 50)),
            "align_signs": True,
        },
    ),
]

# optax's float32 Adam forms 1 - b**t from float32 b (tests/test_reference.py): its error, not
# gradtx's, is what the float32 comparison with optax allows
OPTAX_OWN_F32_ERROR = ["galore", "galore_wide_scaled"]

PROPERTIES = {
    "galore": (lambda: gradtx.galore(LR, rank=1, update_proj_gap=2), "galore"),
}

HYPERPARAM_KEYS = {
    "galore": (
        gradtx.galore(0.1),
        {"learning_rate", "scale", "weight_decay", "b1", "b2", "eps", "eps_root"},
    ),
    # another inner optimizer: its hyperparameters, live in the nested state, show beside galore's
    "galore_lion": (
        gradtx.galore(0.1, base_optimizer=gradtx.scale_by_lion()),
        {"learning_rate", "scale", "weight_decay", "b1", "b2", "smooth_beta"},
    ),
}

BAD = {
    "galore_lr_string": Bad(
        gradtx.galore, dict(learning_rate="0.1"), TypeError, ("galore", "learning_rate")
    ),
    "galore_rank_zero": Bad(
        gradtx.galore, dict(learning_rate=0.1, rank=0), names=("galore", "rank")
    ),
    "galore_rank_float": Bad(
        gradtx.galore, dict(learning_rate=0.1, rank=2.0), TypeError, ("galore", "rank")
    ),
    "galore_gap_zero": Bad(
        gradtx.galore,
        dict(learning_rate=0.1, update_proj_gap=0),
        names=("galore", "update_proj_gap"),
    ),
    "galore_scale_negative": Bad(
        gradtx.galore, dict(learning_rate=0.1, scale=-1.0), names=("galore", "scale")
    ),
    "galore_base_optimizer_string": Bad(
        gradtx.galore,
        dict(learning_rate=0.1, base_optimizer="adam"),
        TypeError,
        ("galore", "base_optimizer"),
    ),
    "galore_svd_dtype_int": Bad(
        gradtx.galore,
        dict(learning_rate=0.1, svd_dtype="int32"),
        TypeError,
        ("galore", "svd_dtype"),
    ),
    "galore_align_signs_string": Bad(
        gradtx.galore,
        dict(learning_rate=0.1, align_signs="yes"),
        TypeError,
        ("galore", "align_signs"),
    ),
    "galore_dimension_numbers_int": Bad(
        gradtx.galore,
        dict(learning_rate=0.1, weight_dimension_numbers=3),
        TypeError,
        ("galore", "weight_dimension_numbers"),
    ),
    "scale_by_galore_scale_string": Bad(
        gradtx.scale_by_galore, dict(scale="1"), TypeError, ("scale_by_galore", "scale")
    ),
    "scale_by_galore_gap_negative": Bad(
        gradtx.scale_by_galore,
        dict(update_proj_gap=-1),
        names=("scale_by_galore", "update_proj_gap"),
    ),
    "scale_by_galore_axis_out_of_range": Bad(
        lambda **kw: gradtx.scale_by_galore(**kw).init({"w": np.zeros((2, 3), np.float32)}),
        dict(weight_dimension_numbers=MDN(0, 2)),
        names=("scale_by_galore", "output_axis"),
    ),
}

TRANSFORMATIONS = {
    "galore": lambda: gradtx.galore(0.1, rank=1),
    "scale_by_galore": lambda: gradtx.scale_by_galore(rank=1),
}

# issue 14's rows: 50 steps, eager in float32 only (tests/test_reference.py)
HEAVY = [case.id for case in OPTIMIZERS]
