"""Tables, RESULTS.md and the curves plot, generated from the suite's results (``results.json``).

Regenerate without rerunning: ``python -m benchmarks.report benchmarks/results/results.json
[--md benchmarks/RESULTS.md] [--png benchmarks/results/curves.png]``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics

from benchmarks import optimizers

MiB = 2**20
COLORS = {"gradtx": "tab:blue", "optax": "tab:orange", "torch": "tab:green"}
GROUPED_COLOR = "tab:purple"  # gradtx's grouped variants
STYLES = {"adam": "-", "adamw_clip": "--"}


def ok(r: dict | None) -> bool:
    """Whether a job result holds timings (not a timeout, error or skip)."""
    return bool(r) and "step_s" in r


def short(r: dict) -> str:
    """A one-line summary of a job result, for the progress log."""
    if not ok(r):
        return status(r)
    if "compile_s" in r:
        c = f"trace+lower {r['trace_s'] + r['lower_s']:.2f} s, compile {r['compile_s']:.2f} s, "
    else:
        c = ""
    return f"{c}step {1e3 * r['step_s']:.2f} ms"


def status(r: dict | None) -> str:
    """Why a job has no timings."""
    if not r:
        return "not run"
    s = r.get("status")
    if s == "timeout":
        return f"timed out after {r['timeout_s']:.0f} s"
    if s == "skipped":
        return f"skipped ({r['reason']})"
    if s == "error":
        return "error: " + r["error"].splitlines()[-1][:80]
    return "no timings"


def _find(results: dict, role: str, name: str, opt: str, lib: str) -> dict | None:
    for job in results["jobs"]:
        if job["lib"] == lib and job["opt"] == opt:
            if any(x["role"] == role and x["name"] == name for x in job["roles"]):
                return job.get("result")
    return None


def _names(results: dict, role: str) -> list[str]:
    names = []
    for job in results["jobs"]:
        for x in job["roles"]:
            if x["role"] == role and x["name"] not in names:
                names.append(x["name"])
    return names


def _libs(results: dict) -> list[str]:
    return [
        lib for lib in ("gradtx", "optax", "torch") if any(j["lib"] == lib for j in results["jobs"])
    ]


def floor_s(results: dict, opt: str, r: dict) -> float:
    """The floor of ``opt`` for the job result ``r``: bytes per param x params / bandwidth.

    The bandwidth is the one measured by the job's own worker just before its step was timed,
    or else the run's (measured at the start) on the same number of params.
    """
    n = r["n_params"]
    bw = (r.get("floor") or results["floors"][str(n)])["bytes_per_s"]
    return optimizers.FLOOR_BYTES_PER_PARAM[opt] * n / bw


def deviation(r: dict, ref: dict) -> float:
    """Largest difference of the fingerprints (params moved by the steps), relative to ``ref``."""
    a, b = r["fingerprint"], ref["fingerprint"]
    scale = max(max(abs(x) for x in b["sample"]), 1e-30)
    d = max((abs(x - y) for x, y in zip(a["sample"], b["sample"])), default=0.0) / scale
    return max(d, abs(a["abs_sum"] - b["abs_sum"]) / max(abs(b["abs_sum"]), 1e-30))


def rows(results: dict) -> list[dict]:
    """One row per (configuration, optimizer, library) of the main table."""
    out = []
    for name in _names(results, "config"):
        for opt in optimizers.ALL:
            ref = _find(results, "config", name, optimizers.REFERENCE[opt], "optax")
            for lib in _libs(results):
                r = _find(results, "config", name, opt, lib)
                if r is None and opt in optimizers.GRADTX_ONLY:
                    continue  # gradtx's alone
                row = {"config": name, "opt": opt, "lib": lib}
                if not ok(r):
                    row["status"] = status(r)
                    out.append(row)
                    continue
                fl = floor_s(results, opt, r)
                row.update(
                    n_params=r["n_params"],
                    n_leaves=r["n_leaves"],
                    step_ms=1e3 * r["step_s"],
                    vs_floor=r["step_s"] / fl,
                    floor_ms=1e3 * fl,
                    state_bpp=r["state_bytes_per_param"],
                )
                if "tree_floor" in r:
                    row["vs_tree_floor"] = r["step_s"] / r["tree_floor"]["seconds"]
                if "compile_s" in r:
                    row.update(trace_s=r["trace_s"] + r["lower_s"], compile_s=r["compile_s"])
                if r.get("memory"):
                    row["peak_mib"] = r["memory"]["peak"] / MiB
                if ok(ref):
                    row["vs_optax"] = r["step_s"] / ref["step_s"]
                    if "compile_s" in r:
                        row["build_vs_optax"] = (r["trace_s"] + r["lower_s"] + r["compile_s"]) / (
                            ref["trace_s"] + ref["lower_s"] + ref["compile_s"]
                        )
                    if r.get("memory") and ref.get("memory"):
                        row["peak_vs_optax"] = r["memory"]["peak"] / ref["memory"]["peak"]
                    row["dev_vs_optax"] = deviation(r, ref)
                out.append(row)
    return out


COLUMNS = [
    ("config", "configuration", "{}"),
    ("opt", "optimizer", "{}"),
    ("lib", "library", "{}"),
    ("trace_s", "trace+lower s", "{:.2f}"),
    ("compile_s", "compile s", "{:.2f}"),
    ("build_vs_optax", "build ×optax", "{:.2f}"),
    ("step_ms", "step ms", "{:.2f}"),
    ("vs_optax", "step ×optax", "{:.2f}"),
    ("floor_ms", "floor ms", "{:.2f}"),
    ("vs_floor", "step ×floor", "{:.2f}"),
    ("vs_tree_floor", "step ×tree floor", "{:.2f}"),
    ("peak_mib", "peak MiB", "{:.1f}"),
    ("peak_vs_optax", "peak ×optax", "{:.2f}"),
    ("state_bpp", "state B/param", "{:.2f}"),
    ("dev_vs_optax", "Δ vs optax", "{:.1e}"),
]


def _cells(row: dict) -> list[str]:
    cells = []
    for k, _, fmt in COLUMNS:
        if k in row:
            cells.append(fmt.format(row[k]))
        elif k == "trace_s" and "status" in row:
            cells.append(row["status"])
        else:
            cells.append("")
    return cells


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _fmt(x, fmt):
    return fmt.format(x) if x is not None else "—"


def curve(
    results: dict, role: str, opt: str, lib: str, field: str
) -> list[tuple[str, float | None]]:
    """(name, value) along a curve; ``field`` is 'step_ms', 'build_s' or 'vs_floor'."""
    out = []
    for name in _names(results, role):
        r = _find(results, role, name, opt, lib)
        if not ok(r):
            out.append((name, None))
        elif field == "step_ms":
            out.append((name, 1e3 * r["step_s"]))
        elif field == "vs_floor":
            out.append((name, r["step_s"] / floor_s(results, opt, r)))
        elif field == "build_s":
            has = "compile_s" in r
            out.append((name, r["trace_s"] + r["lower_s"] + r["compile_s"] if has else None))
    return out


# (role, table title, x axis label of the plot); a curve shows whichever optimizers ran on it.
CURVES = (
    ("params", "One leaf, growing size (Adam)", "params (one leaf)"),
    ("leaves", "Fixed total, growing number of leaves", "leaves (fixed total)"),
)


def _series(results: dict, role: str) -> list[tuple[str, str]]:
    """The (opt, lib) pairs with jobs on the curve ``role``, in the order of the table."""
    have = {
        (j["opt"], j["lib"]) for j in results["jobs"] if any(x["role"] == role for x in j["roles"])
    }
    return [(o, lib) for o in optimizers.ALL for lib in _libs(results) if (o, lib) in have]


def tree_floor_ms(results: dict, role: str, name: str) -> float | None:
    """The median of the tree floors measured by the JAX jobs of one curve point, in ms."""
    got = []
    for job in results["jobs"]:
        r = job.get("result") or {}
        if "tree_floor" in r and any(x["role"] == role and x["name"] == name for x in job["roles"]):
            got.append(r["tree_floor"]["seconds"])
    return 1e3 * statistics.median(got) if got else None


def _curve_tables(results: dict) -> list[str]:
    parts = []
    for role, title, _ in CURVES:
        names = _names(results, role)
        if not names:
            continue
        header = ["curve point", "tree floor ms"]
        cols = []
        for opt, lib in _series(results, role):
            header += [f"{lib} {opt} step ms", "×floor"]
            cols += [(opt, lib, "step_ms", "{:.2f}"), (opt, lib, "vs_floor", "{:.2f}")]
            if lib != "torch":
                header.append("build s")
                cols.append((opt, lib, "build_s", "{:.2f}"))
        body = []
        for i, name in enumerate(names):
            cells = [name, _fmt(tree_floor_ms(results, role, name), "{:.2f}")]
            for opt, lib, field, fmt in cols:
                value = curve(results, role, opt, lib, field)[i][1]
                r = _find(results, role, name, opt, lib)
                cells.append(_fmt(value, fmt) if value is not None or ok(r) else status(r))
            body.append(cells)
        parts.append(f"### {title}\n\n" + _md_table(header, body))
    return parts


def table(results: dict) -> str:
    """The main table as Markdown (printed by the command)."""
    body = [_cells(r) for r in rows(results)]
    return _md_table([h for _, h, _ in COLUMNS], body)


# The last line of RESULTS.md: hand-written studies live in a file that no run rewrites.
LOW_MEMORY_POINTER = (
    "The low-memory Adam step-time study (`python -m benchmarks.low_memory`) and hand-run"
    " re-runs of single configurations are in `benchmarks/LOW_MEMORY.md`; the interleaved"
    " comparisons, small models' per-call cost included, in `benchmarks/INTERLEAVED.md`."
)


def markdown(results: dict) -> str:
    """RESULTS.md: the machine, the floors, the main table and the curves."""
    m = results["machine"]
    v = m["versions"]
    dev = next(iter(results["floors"].values()))
    s = results["settings"]
    run = "smoke" if s["smoke"] else ("full" if s["full"] else "default")
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks.run` from `results.json`; see `benchmarks/README.md`"
        " for the columns and caveats.",
        "",
        f"- Date: {m['date']}; run: {run}"
        + (f", only {s['only']}" if s["only"] else "")
        + f"; time limit per JAX job {s['timeout_s']} s, for the run {s.get('budget_s')} s",
        f"- Machine: {m['cpu']}, {m['cores']} cores;"
        f" device {dev['platform']} ({dev['device_kind']})",
        f"- Load average (1, 5, 15 min) at start {m['load_start']}, at end {m.get('load_end')}",
        f"- Versions: Python {m['python']}, jax {v['jax']}, jaxlib {v['jaxlib']},"
        f" optax {v['optax']},"
        f" torch {v['torch'] or 'not installed'}"
        + ("" if s["torch"] else " (not run)")
        + f", numpy {v['numpy']}",
        "",
        "## In-place bandwidth floor (`a += b`, a donated, 12 B per value)",
        "",
    ]
    body = []
    for n, f in results["floors"].items():
        end = results.get("floors_end", {}).get(n)
        body.append(
            [
                f"{int(n):,}",
                f"{1e3 * f['seconds']:.3f}",
                f"{f['bytes_per_s'] / 1e9:.2f}",
                f"{end['bytes_per_s'] / 1e9:.2f}" if end else "—",
                f"{1e3 * 28 * int(n) / f['bytes_per_s']:.3f}",
            ]
        )
    lines.append(
        _md_table(
            ["params", "a += b ms", "GB/s (start)", "GB/s (end)", "Adam floor ms (28 B/param)"],
            body,
        )
    )
    lines += ["", "## Configurations", "", table(results), ""]
    curves = _curve_tables(results)
    if curves:
        lines += ["## Curves", "", "Plotted in `curves.png` next to `results.json`.", ""]
        lines += [c + "\n" for c in curves]
    lines += ["", LOW_MEMORY_POINTER]
    return "\n".join(lines).rstrip() + "\n"


def plot(results: dict, path: pathlib.Path) -> None:
    """Step time and build (trace + lower + compile) time against params and against leaves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (role, _, xlabel) in enumerate(CURVES):
        names = _names(results, role)
        x_key = "n_params" if role == "params" else "n_leaves"
        series = _series(results, role)
        for row, (field, ylabel) in enumerate(
            (("step_ms", "step ms"), ("build_s", "trace + lower + compile s"))
        ):
            ax = axes[row][col]
            for opt, lib in series:
                pts = []
                for name in names:
                    r = _find(results, role, name, opt, lib)
                    value = dict(curve(results, role, opt, lib, field)).get(name)
                    if ok(r) and value is not None:
                        pts.append((r[x_key], value))
                if pts:
                    grouped = opt in optimizers.GROUPED
                    style = dict(
                        color=GROUPED_COLOR if grouped else COLORS[lib],
                        linestyle=STYLES[opt.removesuffix("_grouped")],
                        marker="s" if grouped else "o",
                    )
                    ax.plot(*zip(*pts), label=f"{lib} {opt}", **style)
            if field == "step_ms":
                _plot_floors(ax, results, role, names, series, x_key)
            ax.set_title(f"{ylabel} vs {xlabel}", fontsize=9)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
    m = results["machine"]
    fig.suptitle(f"{m['cpu']}, {m['cores']} cores, {m['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_floors(ax, results, role, names, series, x_key) -> None:
    """The bandwidth floors along a curve (the run's, measured at its start): one per ungrouped
    optimizer, its grouped variant has the same; and the tree floor (the jobs' median)."""
    for opt in optimizers.OPTIMIZERS:
        pts = []
        for name in names:
            got = [
                _find(results, role, name, o, lib)
                for o, lib in series
                if o.removesuffix("_grouped") == opt
            ]
            r = next((g for g in got if ok(g)), None)
            if r is not None:
                pts.append((r[x_key], 1e3 * floor_s(results, opt, {"n_params": r["n_params"]})))
        if pts:
            ax.plot(*zip(*pts), color="k", linestyle=STYLES[opt], label=f"floor {opt}")
    pts = []
    for name in names:
        r = next((g for g in (_find(results, role, name, *s) for s in series) if ok(g)), None)
        t = tree_floor_ms(results, role, name)
        if r is not None and t is not None:
            pts.append((r[x_key], t))
    if pts:
        ax.plot(*zip(*pts), color="k", linestyle=":", marker="x", label="tree floor")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report")
    parser.add_argument("results", type=pathlib.Path)
    parser.add_argument("--md", type=pathlib.Path)
    parser.add_argument("--png", type=pathlib.Path)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    text = markdown(results)
    if args.md:
        args.md.write_text(text)
    if args.png:
        plot(results, args.png)
    print(text)


if __name__ == "__main__":
    main()
