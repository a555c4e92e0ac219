#!/usr/bin/env bash
# The GPU run (issue 16, item 4): optimizer steps on 100M and 1B params against the HBM floor.
#
#   bash benchmarks/gpu.sh            # a GPU machine with JAX on CUDA, optax, flax, torch; no
#                                     # network; ends within 7.5 minutes; writes
#                                     # benchmarks/RESULTS_GPU.md and benchmarks/results/gpu.json
#   bash benchmarks/gpu.sh --smoke    # (or GPU_SMOKE=1) CPU, tiny sizes, the same code paths;
#                                     # writes to a temp folder (or --out DIR)
#
# Other arguments go to `python -m benchmarks.gpu` (--only, --out, --md, --budget: with a
# budget above 390 s set GPU_TIME_LIMIT, the hard limit in seconds, to 60 more); what it
# measures and how is in the docstring of benchmarks/gpu.py. Run from anywhere: it works in the
# repository root, with gradtx imported from there.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
for arg in "$@"; do
  if [[ $arg == --smoke ]]; then smoke=1; fi
done
if [[ ${GPU_SMOKE:-0} == 1 && $smoke == 0 ]]; then
  smoke=1
  set -- --smoke "$@"
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Each worker allocates as it goes (no 75% grab at start), up to 90% of the device.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.90
export TF_CPP_MIN_LOG_LEVEL=1

if [[ $smoke == 1 ]]; then
  export JAX_PLATFORMS=cpu
  export CUDA_VISIBLE_DEVICES=
  limit=${GPU_TIME_LIMIT:-360}
else
  # The run's own budget is 390 s (workers killed 20 s past their deadlines); this is the
  # backstop, and what it leaves behind is still written (the Markdown after each step).
  limit=${GPU_TIME_LIMIT:-450}
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
  # A few seconds to stop here, not in a worker, when JAX sees no GPU.
  python -c '
import sys, jax
d = jax.devices()[0]
print(f"gpu.sh: jax {jax.__version__}: {jax.device_count()} x {d.device_kind} ({d.platform})")
sys.exit(0 if d.platform == "gpu" else 3)
' || { echo "gpu.sh: JAX sees no GPU (bash benchmarks/gpu.sh --smoke runs on a CPU)"; exit 3; }
fi
echo "gpu.sh: python $(python -c 'import sys; print(sys.version.split()[0])'), limit ${limit} s"
exec timeout --kill-after=10 "$limit" python -m benchmarks.gpu "$@"
