"""sam and adaptive_normalize (sharpness-aware minimization): rows of the validation tables.

Their numbers are tested in tests/test_sam.py: SAM needs the gradient at the perturbed weights
(the next call's gradients, or ``grad_fn``), which the shared runners do not give.
"""

from __future__ import annotations

import gradtx
from tests.cases import Bad


def _sam(**kwargs):
    ascent = gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.sgd(0.05))
    return gradtx.sam(gradtx.adam(0.1), ascent, **kwargs)


BAD = {
    "sam_optimizer_not_a_transformation": Bad(
        gradtx.sam,
        dict(optimizer=0.1, adv_optimizer=gradtx.sgd(0.05)),
        TypeError,
        ("sam", "optimizer"),
    ),
    "sam_adv_optimizer_not_a_transformation": Bad(
        gradtx.sam,
        dict(optimizer=gradtx.sgd(0.1), adv_optimizer="sgd"),
        TypeError,
        ("sam", "adv_optimizer"),
    ),
    "sam_sync_period_zero": Bad(
        gradtx.sam,
        dict(optimizer=gradtx.sgd(0.1), adv_optimizer=gradtx.sgd(0.05), sync_period=0),
        names=("sam", "sync_period"),
    ),
    "sam_sync_period_float": Bad(_sam, dict(sync_period=2.0), TypeError, ("sam", "sync_period")),
    "sam_reset_state_string": Bad(_sam, dict(reset_state="yes"), TypeError, ("sam", "reset_state")),
    "sam_opaque_mode_int": Bad(_sam, dict(opaque_mode=1), TypeError, ("sam", "opaque_mode")),
    "sam_batch_axis_name_int": Bad(
        _sam, dict(opaque_mode=True, batch_axis_name=0), TypeError, ("sam", "batch_axis_name")
    ),
    "adaptive_normalize_eta_negative": Bad(
        gradtx.adaptive_normalize, dict(eta=-0.01), names=("adaptive_normalize", "eta")
    ),
    "adaptive_normalize_eta_string": Bad(
        gradtx.adaptive_normalize, dict(eta="0.01"), TypeError, ("adaptive_normalize", "eta")
    ),
}

TRANSFORMATIONS = {
    "sam": _sam,
    "sam_asam": lambda: gradtx.sam(
        gradtx.sgd(0.1), gradtx.chain(gradtx.adaptive_normalize(), gradtx.sgd(0.5))
    ),
    "adaptive_normalize": lambda: gradtx.adaptive_normalize(),
}
READS_PARAMS = {"sam", "sam_asam", "adaptive_normalize"}
NO_PER_LEAF_STATE = {"adaptive_normalize"}
NEED_PARAMS = {
    "sam": _sam,
    "adaptive_normalize": lambda: gradtx.adaptive_normalize(),
}
