"""The timing suite's smoke run: it runs, its outputs hold what they claim, and the libraries'
benchmarked steps compute the same thing (no timing is asserted)."""

import json

import jax
import numpy as np
import pytest

from benchmarks import interleaved, jax_bench, optimizers, report, run, suite, trees


def _adam_reference(p, g, n_steps, opt):
    """float64 NumPy: ``n_steps`` of the suite's ``opt`` with constant grads, from its formula."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, optimizers.LEARNING_RATE
    p = {k: v.astype(np.float64) for k, v in p.items()}
    g = {k: v.astype(np.float64) for k, v in g.items()}
    if opt == "adamw_clip":
        norm = np.sqrt(sum(np.sum(x**2) for x in g.values()))
        g = {k: x * min(1.0, optimizers.MAX_NORM / norm) for k, x in g.items()}
    m = {k: np.zeros_like(x) for k, x in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t in range(1, n_steps + 1):
        if opt == "adamw_clip":  # linear warmup from 0 (count t - 1 before this step)
            lr = optimizers.LEARNING_RATE * (t - 1) / optimizers.WARMUP_STEPS
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            u = m_hat / (np.sqrt(v_hat) + eps)
            if opt == "adamw_clip":
                u = u + optimizers.WEIGHT_DECAY * p[k]
            p[k] = p[k] - lr * u
    return p


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # optax promotes weakly typed Python scalars: the suite runs as users run it.
    with jax.numpy_dtype_promotion("standard"):
        results = run.run(out, smoke=True, in_process=True, log=lambda *_: None)
    return out, results


def test_smoke_outputs(smoke):
    out, results = smoke
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["settings"]["smoke"] and not on_disk["settings"]["torch"]
    assert set(on_disk) == {"machine", "settings", "floors", "floors_end", "jobs"}
    assert on_disk["machine"]["cores"] >= 1 and on_disk["machine"]["versions"]["jax"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    libs, roles = set(), set()
    for job in on_disk["jobs"]:
        r = job["result"]
        spec = trees.build(job["tree"]["kind"], **job["tree"]["args"])
        assert r["n_params"] == trees.n_params(spec) and r["n_leaves"] == len(spec)
        assert r["repeats"] == 1 and r["warmup"] == 1  # two steps
        for field in ("trace_s", "lower_s", "compile_s", "step_s"):
            assert r[field] > 0
        mem = r["memory"]
        assert mem["peak"] == mem["argument"] + mem["output"] - mem["alias"] + mem["temp"]
        # the donated params and state alias the outputs (fp32 moments: 8 B per param)
        moments = 8 if job["opt"] in optimizers.OPTIMIZERS + optimizers.GROUPED else 0
        assert mem["alias"] >= (4 + moments) * r["n_params"]
        assert r["state_bytes_per_param"] >= (8.0 if moments else 2.0)
        assert str(r["n_params"]) in on_disk["floors"]
        assert r["tree_floor"]["seconds"] > 0 and r["tree_floor"]["repeats"] == 1
        fl = r["floor"]
        assert fl["n"] == r["n_params"] and fl["bytes_per_s"] == pytest.approx(
            12 * fl["n"] / fl["seconds"]
        )
        libs.add(job["lib"])
        roles |= {x["role"] for x in job["roles"]}
    assert libs == {"gradtx", "optax"} and roles == {"config", "params", "leaves"}
    for f in on_disk["floors"].values():
        assert f["bytes_per_s"] == pytest.approx(12 * f["n"] / f["seconds"])

    rows = report.rows(on_disk)
    assert {(r["config"], r["opt"], r["lib"]) for r in rows} == {
        (c, o, lib)
        for c in suite.SMOKE_CONFIGS
        for o in optimizers.OPTIMIZERS
        for lib in ("gradtx", "optax")
    } | {(c, o, "gradtx") for c in suite.SMOKE_CONFIGS for o in optimizers.GRADTX_ONLY}
    for r in rows:
        assert r["vs_floor"] == pytest.approx(r["step_ms"] / r["floor_ms"])
        job = report._find(on_disk, "config", r["config"], r["opt"], r["lib"])
        assert r["vs_tree_floor"] == pytest.approx(job["step_s"] / job["tree_floor"]["seconds"])
        job_floor = job["floor"]
        floor_bytes = optimizers.FLOOR_BYTES_PER_PARAM[r["opt"]] * r["n_params"]
        assert r["floor_ms"] == pytest.approx(1e3 * floor_bytes / job_floor["bytes_per_s"])
        if r["lib"] == "optax":
            assert r["vs_optax"] == 1.0 and r["dev_vs_optax"] == 0.0
        if r["opt"] == "adam_bf16":  # two bf16 moments, the moments' counts and the table of
            # the count and five hyperparameters (6 x 3 float32): 80 bytes whatever the leaves
            assert 4.0 <= r["state_bpp"] < 4.0 + 128 / r["n_params"]
            assert r["dev_vs_optax"] < 1e-2  # bf16 moments: 8 bits of mantissa
        if r["opt"] == "adam_8bit":
            assert r["state_bpp"] < 8.5
        if r["opt"] in ("adam", "adam_grouped"):
            # like with like: the two libraries' benchmarked steps moved the params alike
            # (float32: 1 - b2 rounds to 0.0009999871, 1.3e-5 off, halved by the square root).
            # adamw_clip moves them by 1e-5 in its two warmup steps, close to float32's
            # resolution of the params: test_benchmarked_step_matches_float64 checks it.
            assert r["dev_vs_optax"] < 2e-5, r

    _check_grouped(on_disk)

    md = (out / "RESULTS.md").read_text()
    assert md == report.markdown(on_disk)
    assert "| configuration | optimizer | library |" in md and "Machine:" in md
    for name in suite.SMOKE_CONFIGS:
        assert name in md
    assert report.table(on_disk) in md
    # the hand-written studies that a run would drop are pointed to, and are there
    assert md.rstrip().endswith(report.LOW_MEMORY_POINTER) and "LOW_MEMORY.md" in md
    assert "## Low-memory Adam state" in (run.ROOT / "benchmarks" / "LOW_MEMORY.md").read_text()


def _check_grouped(results):
    """gradtx's grouped variants ran on every configuration and on the leaves curve (not on the
    params curve), and moved the params as the ungrouped gradtx step did."""
    for role in ("config", "leaves"):
        series = report._series(results, role) if role == "leaves" else None
        for name in report._names(results, role):
            for opt in optimizers.GROUPED:
                got = report._find(results, role, name, opt, "gradtx")
                plain = report._find(results, role, name, opt.removesuffix("_grouped"), "gradtx")
                assert report.ok(got) and got["n_leaves"] == plain["n_leaves"], (role, name)
                # float32 rounding: the moved params agree far below the 2e-5 vs optax
                assert report.deviation(got, plain) < 5e-6, (role, name, opt)
                if series is not None:
                    assert (opt, "gradtx") in series
    on_params = [j for j in results["jobs"] if any(x["role"] == "params" for x in j["roles"])]
    assert {j["opt"] for j in on_params} == {"adam"}
    leaves_md = report._curve_tables(results)[-1]
    assert "gradtx adam_grouped step ms" in leaves_md
    assert "gradtx adamw_clip_grouped step ms" in leaves_md


def _moved_params(lib, opt, spec):
    with jax.numpy_dtype_promotion("standard"):
        got = jax_bench.measure(lib, opt, spec, warmup=1, repeats=2, return_params=True)
    return got["params"]


SPEC = trees.uniform(3, 64) + trees.transformer(1, 4, 8, 4)[:3]


@pytest.mark.parametrize("opt", optimizers.OPTIMIZERS)
@pytest.mark.parametrize("lib", ["gradtx", "optax"])
def test_benchmarked_step_matches_float64(lib, opt):
    params0, grads = trees.values(SPEC)
    _check_float64(_moved_params(lib, opt, SPEC), params0, grads, opt)


def _check_float64(params, params0, grads, opt):
    want = _adam_reference(params0, grads, 3, opt)
    for name, _ in SPEC:
        moved = params[name].astype(np.float64) - params0[name]
        # three roundings of p (|p| < 0.2) to float32, and the bias correction's 1.3e-5 above
        atol = 3 * np.spacing(np.float32(0.2))
        np.testing.assert_allclose(moved, want[name] - params0[name], rtol=1e-5, atol=atol)


@pytest.mark.parametrize("opt", optimizers.GROUPED)
def test_grouped_step_matches_ungrouped_and_float64(opt):
    params0, grads = trees.values(SPEC)
    got = _moved_params("gradtx", opt, SPEC)
    plain = _moved_params("gradtx", opt.removesuffix("_grouped"), SPEC)
    for name, _ in SPEC:  # float32 rounding: an ulp or two of p (|p| < 0.2) in three steps
        np.testing.assert_allclose(got[name], plain[name], rtol=0, atol=np.spacing(np.float32(0.2)))
    _check_float64(got, params0, grads, opt.removesuffix("_grouped"))


def test_floor_moves_12_bytes_per_value():
    a, b = np.zeros(1000, np.float32), np.ones(1000, np.float32)
    mem = jax_bench.memory(jax_bench.floor_program(a, b))
    # reads a and b, writes over a: no copy, no temporary
    assert mem["argument"] == 8000 and mem["output"] == mem["alias"] == 4000
    assert mem["temp"] == 0 and mem["peak"] == 8000


def test_tree_floor_adds_the_gradients_leaf_by_leaf():
    p = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.ones(4, np.float32)]}
    g = {"a": np.full((2, 3), 0.5, np.float32), "b": [np.arange(4, dtype=np.float32)]}
    compiled = jax_bench.tree_floor_program(p, g)
    got = compiled(jax.tree.map(jax.numpy.asarray, p), g)
    assert jax.tree.structure(got) == jax.tree.structure(p)
    for x, a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p), jax.tree.leaves(g)):
        np.testing.assert_array_equal(x, a + b)
    mem = jax_bench.memory(compiled)  # reads p and g, writes over p: no copy, no temporary
    assert mem["argument"] == 80 and mem["alias"] == 40 and mem["temp"] == 0
    fl = jax_bench.tree_floor(p, g, warmup=1, repeats=2)
    assert fl["seconds"] > 0 and fl["repeats"] == 2


def test_slow_jobs_are_opt_in():
    jobs = suite.plan(smoke=False, only=["5000"], with_torch=False)
    slow = [(j["lib"], j["opt"]) for j in jobs if j.get("slow")]
    assert slow == [("optax", "adamw_clip")]
    assert {j["tree"]["args"]["n_leaves"] for j in jobs} == {5000}


def test_status_lines():
    assert report.status({"status": "timeout", "timeout_s": 120.0}) == "timed out after 120 s"
    assert report.status({"status": "skipped", "reason": "opt-in: --full"}) == (
        "skipped (opt-in: --full)"
    )
    assert report.status(None) == "not run"


@pytest.mark.parametrize(
    "only, roles",
    [
        (["leaves"], {("leaves", 10), ("leaves", 100), ("leaves", 1000), ("leaves", 5000)}),
        (["1 leaf"], {("config", 1)}),
        (["configs"], {("config", 1), ("config", 100), ("config", 1000), ("config", 5000)}),
        (["params", "transformer"], {("params", 1), ("config", 1000)}),
    ],
)
def test_only_selects_groups_and_configurations(only, roles):
    jobs = suite.plan(smoke=False, only=only, with_torch=True)
    got = set()
    for job in jobs:
        n_leaves = len(trees.build(job["tree"]["kind"], **job["tree"]["args"]))
        got |= {(x["role"], n_leaves) for x in job["roles"]}
    assert got == roles
    assert {j["lib"] for j in jobs} == {"gradtx", "optax", "torch"}


def test_interleaved_comparison_runs_every_step_and_the_floor():
    """``python -m benchmarks.interleaved`` on a tiny tree: every requested step and the tree
    floor are timed, and the ratios are to optax's step of the same family when it ran."""
    spec = trees.uniform(3, 10)
    with jax.numpy_dtype_promotion("standard"):  # optax promotes weakly typed Python scalars
        result = interleaved.run(spec, ["adam", "adamw_clip_grouped"], ["gradtx", "optax"], 1, 1)
    steps = result["steps"]
    assert set(steps) == {
        "gradtx adam",
        "optax adam",
        "gradtx adamw_clip_grouped",
        "tree floor",
    }  # no optax adamw_clip asked for; grouped is gradtx's only
    assert all(s["wall_ms"] > 0 and s["cpu_ms"] >= 0 for s in steps.values())
    lines = interleaved.table(result).splitlines()
    assert len(lines) == 2 + len(steps)
    adam_row = next(line for line in lines if line.startswith("| gradtx adam |"))
    assert adam_row.split("|")[4].strip()  # a ratio to optax adam
    grouped_row = next(line for line in lines if line.startswith("| gradtx adamw_clip_grouped"))
    assert grouped_row.split("|")[4].strip() == ""  # no optax adamw_clip in this run
    with pytest.raises(ValueError, match="interleaved: --tree"):
        interleaved._tree("stacked:3:4")


def test_zoo_digits_smoke_has_a_row_per_optimizer(tmp_path):
    """``python -m benchmarks.zoo_digits --smoke``: one row per chosen optimizer, accuracies in
    [0, 1], and every gradtx optimizer has a learning-rate grid or a reason to be left out."""
    from benchmarks import zoo_digits

    assert zoo_digits.uncovered() == []
    out = tmp_path / "zoo.md"
    with jax.numpy_dtype_promotion("standard"):  # optax promotes weakly typed Python scalars
        rows = zoo_digits.main(["--smoke", "--out", str(out)], log=lambda *_: None)
    assert [r.name for r in rows] == list(zoo_digits.SMOKE)
    for r in rows:
        assert all(0.0 <= x.val_accuracy <= 1.0 for x in [*r.grid.values(), r.optax])
    table = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line[:2] == "| "]
    assert [cells[0].strip() for cells in table[2:]] == list(zoo_digits.SMOKE)
    for cells in table[2:]:  # val acc and optax val acc, as percentages
        for cell in (cells[3], cells[6]):
            assert 0.0 <= float(cell.strip().rstrip("%")) <= 100.0


def test_zoo_matrix_smoke_has_a_row_per_optimizer_and_tree():
    """``python -m benchmarks.zoo_matrix --smoke``: a convergence row per optimizer and a cost
    row per optimizer and tree, AdamW's ratio 1."""
    from benchmarks import zoo_matrix

    # AdamW (always there), a step with a refresh period and one with the loss as an extra
    # argument (each entry's optimizer is checked against its reference in test_reference.py;
    # all eight took a minute here).
    text = zoo_matrix.main(["--smoke", "--only", "muon,shampoo,sophia"])
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ")]
    names = ["adamw", "muon", "shampoo", "sophia"]
    convergence = [r for r in rows if len(r) == 5 and r[0].strip() in names]
    assert [r[0].strip() for r in convergence] == names
    costs = [r for r in rows if len(r) == 6 and r[1].strip() in names]
    assert len(costs) == 2 * len(names)
    for r in costs:
        assert float(r[2]) > 0 and float(r[5]) > 0
        if r[1].strip() == "adamw":
            assert float(r[3]) == 1.0


def test_zoo_smoke_writes_the_tables_json_and_plot(tmp_path):
    """``python -m benchmarks.zoo --smoke``: two optimizers on the three tasks, the rate chosen
    from a grid of three by one vmapped sweep and run over three seeds; the JSON, the Markdown
    tables and the plot hold one entry per optimizer and task (no timing is asserted)."""
    from benchmarks import zoo, zoo_specs

    printed = []
    report = zoo.main(["--smoke", "--out", str(tmp_path)], log=printed.append)
    on_disk = json.loads((tmp_path / "zoo.json").read_text())
    assert set(on_disk) == {
        "command",
        "date",
        "seconds",
        "machine",
        "versions",
        "source",
        "settings",
        "tasks",
        "excluded",
        "arguments",
        "results",
    }
    seeds = on_disk["settings"]["seeds"]
    assert on_disk["settings"]["smoke"] and seeds == [1, 2, 3]  # as many as the grid's values
    assert list(on_disk["tasks"]) == ["mlp", "cnn", "lm"]
    assert [(r["task"], r["optimizer"]) for r in on_disk["results"]] == [
        (t, n) for t in on_disk["tasks"] for n in zoo.SMOKE
    ]
    for r in on_disk["results"]:
        spec, task = zoo_specs.SPECS[r["optimizer"]], on_disk["tasks"][r["task"]]
        assert not r["error"] and r["family"] == spec.family
        assert [float(v) for v in r["grid"]] == list(spec.grid) and r["lr"] in spec.grid
        assert r["seeds"] == seeds and len(r["val_loss"]) == len(r["val_accuracy"]) == 3
        assert all(0.0 < x < 10.0 for x in r["val_loss"])
        assert all(0.0 <= x <= 1.0 for x in r["val_accuracy"])
        assert r["curve"]["steps"] == list(range(1, task["steps"] + 1))
        assert np.array(r["curve"]["loss"]).shape == (3, task["steps"])
        assert r["ms_per_step"] > 0 and r["compile_s"] > 0
        # Adam keeps two float32 moments per param; SGD without momentum only its scalars
        per_param = r["state_bytes_per_param"]
        assert 8.0 <= per_param < 8.1 if r["optimizer"] == "adam" else 0.0 < per_param < 0.1
    assert (tmp_path / "zoo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md = (tmp_path / "ZOO.md").read_text()
    assert md == zoo.markdown(on_disk) == zoo.markdown(report) and md in printed
    for name, task in on_disk["tasks"].items():
        table = md.split(f"## {name}: {task['title']}")[1].split("\n\n")[1].splitlines()
        assert table[0].startswith("| # | optimizer | family | lr | val loss | val acc |")
        rows = [line.split("|")[1:-1] for line in table[2:]]
        assert sorted(cells[1].strip() for cells in rows) == sorted(zoo.SMOKE)
        assert [cells[0].strip() for cells in rows] == ["1", "2"]
    assert "## Overall" in md and "![loss curves](zoo.png)" in md


def test_zoo_table_lists_every_gradtx_optimizer_and_stops_on_a_missing_one(monkeypatch):
    """Every gradtx optimizer has a spec; a listed optimizer gradtx lacks stops the run with
    its name unless it is excluded, and the exclusion's reason is printed."""
    from benchmarks import zoo, zoo_specs

    assert zoo_specs.uncovered() == []
    printed = []
    runnable = zoo.check_table(list(zoo_specs.SPECS), printed.append)
    assert runnable == [n for n in zoo_specs.SPECS if n not in zoo_specs.EXCLUDED]
    assert len(printed) == len(zoo_specs.EXCLUDED)
    monkeypatch.setitem(zoo_specs.SPECS, "not_an_optimizer", zoo_specs.Spec("sign", (1.0,)))
    with pytest.raises(SystemExit, match="not_an_optimizer"):
        zoo.check_table(["adam", "not_an_optimizer"], printed.append)
    monkeypatch.setitem(zoo_specs.EXCLUDED, "not_an_optimizer", "not written yet")
    assert zoo.check_table(["adam", "not_an_optimizer"], printed.append) == ["adam"]
    assert printed[-1] == "excluded: not_an_optimizer: not written yet"


def test_builds_compares_each_step_with_optax_in_one_process():
    """``python -m benchmarks.builds``: a row per tree and step, the faster of each library's
    builds and their ratio (no timing is asserted)."""
    from benchmarks import builds

    rows = builds.main(["--trees", "uniform:3:8", "--opts", "adam", "--passes", "2"])
    assert [(r["tree"], r["opt"]) for r in rows] == [("uniform:3:8", "adam")]
    assert rows[0]["gradtx"] > 0 and rows[0]["optax"] > 0
    assert rows[0]["ratio"] == pytest.approx(rows[0]["gradtx"] / rows[0]["optax"])
    assert "| uniform:3:8 | adam |" in builds.table(rows)
