"""The GPU run's smoke mode (``benchmarks/gpu.py``): well-formed outputs, never timings.

The run itself needs a GPU; its smoke mode runs the same code on the CPU with tiny sizes. Here
in this process (``--inline``), on one group and one optimizer, to stay fast.
"""

import importlib.util
import json
import re

import jax
import pytest

from benchmarks import gpu, optimizers


def _number(cell: str) -> float:
    assert re.fullmatch(r"[0-9.]+(e[+-][0-9]+)?", cell), cell
    return float(cell)


def test_floor_bytes_match_the_suite():
    """The byte counts of gpu.py give the suite's Adam floors for fp32 params and moments."""
    for opt in gpu.SUITE_OPTIMIZERS:
        record = {"state_bytes_per_param": 8.0, "n_params": 1}
        bytes_per_param = gpu.optimizer_floor_s(opt, record, {"bytes_per_s": 1.0}, itemsize=4)
        assert bytes_per_param == optimizers.FLOOR_BYTES_PER_PARAM[opt]


def test_only_selects_jobs():
    stages = gpu.plan(smoke=False, only=["adam", "1B"])
    assert [s["group"] for s in stages] == ["1B fp32", "1B bf16"]
    assert all(
        s["jobs"] == [("gradtx", "adam"), ("optax", "adam"), ("torch", "adam")] for s in stages
    )
    with pytest.raises(ValueError, match="selects nothing"):
        gpu.plan(smoke=False, only=["muon", "torch"])  # torch has no Muon here
    with pytest.raises(ValueError, match="no optimizer"):
        gpu.plan(smoke=False, only=["adamx"])


def test_full_sizes():
    sizes = {s["group"]: s["n_params"] for s in gpu.plan(smoke=False, only=None)}
    assert sizes["100M fp32"] == 100_663_296
    assert sizes["1B fp32"] == sizes["1B bf16"] == 1_006_632_960


def test_smoke_run_writes_markdown_and_json(tmp_path):
    libs = ["gradtx", "optax"] + (["torch"] if importlib.util.find_spec("torch") else [])
    md = tmp_path / "RESULTS_GPU.md"
    argv = ["--smoke", "--inline", "--only", "adam", "small", *libs, "--out", str(tmp_path)]
    with jax.numpy_dtype_promotion("standard"):  # optax promotes weakly typed Python scalars
        gpu.main([*argv, "--md", str(md)])

    data = json.loads((tmp_path / "gpu.json").read_text())
    assert data["meta"]["smoke"] and data["meta"]["versions"]["jax"]
    [stage] = data["plan"]
    expected = {(lib, opt) for lib, opt in stage["jobs"]}
    assert expected == {(lib, "adam") for lib in libs}
    steps = [r for r in data["results"] if r["kind"] == "step"]
    assert {(r["lib"], r["opt"]) for r in steps} == expected
    assert all(r["step_s"] > 0 and r["state_bytes_per_param"] > 0 for r in steps), steps
    [floor] = [r for r in data["results"] if r["kind"] == "floor"]
    assert floor["bytes_per_s"] > 0 and floor["tree_floor_s"] > 0

    text = md.read_text()
    assert re.search(r"^- Device: JAX: \S+ \(cpu, ", text, re.M)
    assert "smoke run" in text
    table = text.split("## Optimizer steps")[1]
    header, _, *rows = [line for line in table.splitlines() if line.startswith("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    assert len(rows) == len(expected)
    for row in rows:
        cells = dict(zip(names, (c.strip() for c in row.strip("|").split("|"))))
        assert cells["configuration"] == "small fp32"
        assert _number(cells["step ms"]) > 0 and _number(cells["floor ms"]) > 0
        assert _number(cells["step ×floor"]) > 0 and _number(cells["×optax"]) > 0
        if cells["library"] == "gradtx":
            assert _number(cells["Δ vs optax"]) < 1e-3  # same steps as optax's, in float32
