"""Test configuration: 8 simulated CPU devices, strict dtype promotion everywhere, and one
compilation cache for the run.

The sharding tests (tests/test_sharding.py) need several devices; XLA's host platform makes
them from the CPU when this flag is set before the first array is made. Everything else runs
on the default device, as before. Programs compile quickly (tests/compile_options.py).

The suite's time is mostly XLA compiling: every eager op once per shape and dtype in each
process, and programs that several tests build alike. The pytest-xdist workers of a run share
JAX's persistent compilation cache, in a temporary folder that the run removes when it ends,
so that a worker loads what another compiled. Nothing outside the run reads or keeps it.
"""

import os
import shutil
import tempfile

from tests import compile_options  # plain Python: no JAX yet

DEVICE_COUNT = 8
_OURS = ("--xla_force_host_platform_device_count", *(f"--{name}" for name in compile_options.FAST))
os.environ["XLA_FLAGS"] = " ".join(
    [flag for flag in os.environ.get("XLA_FLAGS", "").split() if not flag.startswith(_OURS)]
    + [f"--xla_force_host_platform_device_count={DEVICE_COUNT}"]
    + (compile_options.xla_flags() if compile_options.fast_compile_works() else [])
)

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")

# Named by the controlling process, which sets it before it starts the workers they inherit it.
_CACHE = os.environ.setdefault(
    "GRADTX_TESTS_JAX_CACHE",
    os.path.join(tempfile.gettempdir(), f"gradtx-tests-{os.getpid()}-jax-cache"),
)
# With a size limit JAX's cache takes a file lock around every read and write (without one it
# writes entries unlocked, and a worker could read another's half-written entry and crash).
# The limit also makes every write list and stat the whole folder (JAX's eviction check), so
# only programs that take a while to compile are written: with every eager op written (a
# minimum of 0 s) the folder grew to tens of thousands of entries and the writes made the
# suite's slowest tests 10x slower (a muon test 54 s in the full run, 5.6 s alone).
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_compilation_cache_max_size", 8 * 2**30)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_sessionfinish(session):
    """The run's controller (xdist's, or the only process) removes the cache folder."""
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture
def x64():
    """Runs a test with 64-bit floats enabled, restoring the previous setting after."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
