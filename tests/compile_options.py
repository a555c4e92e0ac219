"""How the suite's programs are compiled: quickly by default, as users' where a test reads the
compiled program.

The suite's time is mostly XLA:CPU compiling small programs that then run a few steps, and most
of a compile is code generation. conftest.py sets ``FAST`` in ``XLA_FLAGS`` for every program of
the run: XLA's older kernel emitters (1.65x quicker to compile: 4.9 s against 8.0 s for ten of
the complex registry's programs). Their arithmetic is the users' (the suite's bit-for-bit
comparisons with optax hold with them); LLVM's optimization level 0 would have made compiles
quicker still (2.1 s), but it changes roundings (bfloat16 conversions, float32 steps against
NumPy), so it is not used. The older emitters fuse fewer reductions, so a test that counts
what a compiled program holds (fusions, copies, collectives) compiles it with XLA's defaults,
through :func:`as_users`.

XLA stops the process on a flag it does not know, so the flags are used only where a probe
process with them runs (a jaxlib that dropped one compiles as users' do, only slower).
Nothing here imports JAX: conftest reads it before JAX starts.
"""

from __future__ import annotations

import os
import subprocess
import sys

FAST = {"xla_cpu_use_fusion_emitters": False}
AS_USERS = {"xla_cpu_use_fusion_emitters": True}
_PROBED = "GRADTX_TESTS_FAST_COMPILE"  # the probe's answer, for the workers of the run


def xla_flags() -> list[str]:
    """``FAST`` as ``XLA_FLAGS`` entries."""
    return [f"--{name}={str(value).lower()}" for name, value in FAST.items()]


def fast_compile_works() -> bool:
    """Whether a process with ``FAST`` in its ``XLA_FLAGS`` compiles; asked once per run (the
    controlling process sets the answer in the environment its workers inherit)."""
    if _PROBED not in os.environ:
        flags = [*os.environ.get("XLA_FLAGS", "").split(), *xla_flags()]
        env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
        code = "import jax.numpy as jnp; (jnp.ones(3) * 2).block_until_ready()"
        probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
        os.environ[_PROBED] = "1" if probe.returncode == 0 else "0"
    return os.environ[_PROBED] == "1"


def as_users(lowered):
    """``lowered.compile()`` with XLA's default options, whatever ``XLA_FLAGS`` says."""
    if os.environ.get(_PROBED) != "1":
        return lowered.compile()
    return lowered.compile(compiler_options=AS_USERS)
