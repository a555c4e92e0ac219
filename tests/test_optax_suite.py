"""The smoke subset of optax's own test suite, run against gradtx (tests/optax_suite).

Every test of the subset that exercises gradtx only passes, except those listed in
``tests/optax_suite/differences.py``, each of which must still fail (so the list stays true).
The full run is ``python -m tests.optax_suite`` (see its package docstring).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.optax_suite import differences, resolve
from tests.optax_suite.__main__ import SMOKE


def test_the_smoke_subset_of_optaxs_suite_passes_on_gradtx(tmp_path):
    out = tmp_path / "smoke.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.optax_suite", "--smoke", "-n", "0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    ran = {k: r for k, r in results.items() if r["outcome"] != "skipped"}
    assert len(ran) >= 100, sorted(results)
    exercising = {k: r for k, r in ran.items() if r["class"] != "optax"}
    assert len(exercising) >= 100, len(exercising)
    only_gradtx = {k: r for k, r in ran.items() if r["class"] == "gradtx"}
    failing = {k: r["message"] for k, r in only_gradtx.items() if r["outcome"] == "failed"}
    unexplained = {k: m for k, m in failing.items() if k not in differences.DIFFERENCES}
    assert not unexplained, unexplained
    in_smoke = {k for k in differences.DIFFERENCES if k.split("::")[0] in SMOKE}
    passing_now = sorted(k for k in in_smoke if results.get(k, {}).get("outcome") == "passed")
    assert not passing_now, f"listed as differences but passing: {passing_now}"


def test_the_harness_resolves_optax_names_to_gradtxs():
    import optax

    import gradtx

    table = resolve.public_names()
    name, kind, counterpart = table[id(optax.adam)]
    assert (name, kind, counterpart) == ("optax.adam", "gradtx", gradtx.adam)
    assert table[id(optax.softmax_cross_entropy)][1] == "neutral"
    view = resolve.view(__import__("optax._src.alias", fromlist=["alias"]))
    resolve.USED.start()
    assert view.adam.__wrapped__ is gradtx.adam
    assert resolve.USED.stop()["gradtx"] == {"optax.adam"}


def test_optaxs_submodule_paths_hold_gradtxs_objects():
    # gradtx.contrib, .schedules, .transforms are thin namespaces: every name optax has there
    # that gradtx has at top level is there too, as the same object
    import importlib

    import gradtx

    for sub in ("contrib", "schedules", "transforms"):
        theirs = importlib.import_module("optax." + sub)
        mine = getattr(gradtx, sub)
        public = getattr(theirs, "__all__", None) or [n for n in dir(theirs) if n[0] != "_"]
        shared = [n for n in public if hasattr(gradtx, n)]
        assert shared and set(shared) <= set(mine.__all__), (sub, set(shared) - set(mine.__all__))
        assert all(getattr(mine, n) is getattr(gradtx, n) for n in mine.__all__), sub
