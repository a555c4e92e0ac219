"""Test configuration: 8 simulated CPU devices, strict dtype promotion everywhere.

The sharding tests (tests/test_sharding.py) need several devices; XLA's host platform makes
them from the CPU when this flag is set before the first array is made. Everything else runs
on the default device, as before.
"""

import os

DEVICE_COUNT = 8
os.environ["XLA_FLAGS"] = " ".join(
    [
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    ]
    + [f"--xla_force_host_platform_device_count={DEVICE_COUNT}"]
)

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
    """Runs a test with 64-bit floats enabled, restoring the previous setting after."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
