"""The tests of optax's smoke subset that exercise gradtx only and fail on purpose, with the
reason (``docs/optax_differences.md`` lists every failing test of the full run, by cause).

Each entry is ``nodeid: (cause, reason)``.
``tests/test_optax_suite.py`` checks, on the smoke subset, that every gradtx-only failure is
listed here and that every listed test of that subset does fail (so the list stays true).
"""

from __future__ import annotations

INTEGER_LEAVES = "integer leaves refused"
STATE_CHECKED = "states are checked"
ROUNDING = "float32 rounding"

DIFFERENCES = {
    "schedules/_inject_test.py::InjectHyperparamsTest::"
    "test_inject_hyperparams_starts_with_step_count_zero": (
        INTEGER_LEAVES,
        "the test's gradients are int32; gradtx refuses integer leaves in every transformation "
        "(an integer update rounds silently; keep integer leaves out with gradtx.freeze)",
    ),
    "transforms/_adding_test.py::AddingTest::test_none_argument": (
        STATE_CHECKED,
        "the test passes the int 0 as add_decayed_weights' state; gradtx accepts the state "
        "its init made, None or EmptyState(), and names anything else",
    ),
    "transforms/_clipping_test.py::ClippingTest::test_clip_by_block_rms": (
        ROUNDING,
        "the clipped leaf's RMS is 0.9999999 instead of 1.0 (one float32 ulp): gradtx's block "
        "RMS is computed overflow-safe (scaled by the largest entry), which rounds differently; "
        "the test asks for 7 decimal places",
    ),
}
