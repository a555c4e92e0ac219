"""The timing suite: gradtx, optax and torch.optim side by side, against the bandwidth floor.

Run from the repository root::

    python -m benchmarks.run                 # default: everything but the opt-in slow jobs
    python -m benchmarks.run --full          # also optax's 5000-leaf AdamW + clip + schedule
    python -m benchmarks.run --smoke         # tiny sizes, 2 steps, no torch (CI)
    python -m benchmarks.run --only transformer params

Every JAX job runs in its own worker process (``benchmarks.jax_bench``) under a time limit
(``--timeout``; a job past it is recorded as timed out after that many seconds), so one slow
compile neither blocks the run nor leaks memory into the next job. JAX jobs start cheapest
first until ``--budget`` seconds are spent; the rest are recorded as skipped. torch then runs in
one worker of its own (``benchmarks.torch_bench``, never in a process that times XLA), in what
is left of the budget plus 240 s. The default run ends within about 15 minutes. The floors are
measured by a worker at the start and again at the end of the run (the load check). Writes
``<out>/results.json`` (all raw numbers), ``<out>/curves.png``, ``<out>/RESULTS.md`` and, for a
complete default or full run, ``benchmarks/RESULTS.md``; prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from benchmarks import report, suite, trees

ROOT = pathlib.Path(__file__).resolve().parent.parent
# torch runs last, in what is left of the budget plus TORCH_EXTRA_S, and at least TORCH_MIN_S.
TORCH_EXTRA_S = 240.0
TORCH_MIN_S = 60.0


def _log(line: str) -> None:
    print(line, flush=True)


def machine() -> dict:
    """The CPU, core count, library versions, date and load of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for pkg in ("jax", "jaxlib", "optax", "torch", "numpy"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": _load(),
    }


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _worker(module: str, payload, timeout: float | None) -> dict | list:
    """Runs ``python -m module payload``; its last stdout line parsed, or a status dict."""
    cmd = [sys.executable, "-m", module, json.dumps(payload)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "timeout_s": timeout}
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()[-5:]
        return {"status": "error", "error": "\n".join(err), "returncode": proc.returncode}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if isinstance(out, dict):
        out["wall_s"] = time.perf_counter() - t0
    return out


def _torch(jobs: list[dict], limit: float | None, out: pathlib.Path) -> list[dict]:
    """Runs the torch jobs in one worker; a result per job, or why it has none."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "torch_results.jsonl"
    path.unlink(missing_ok=True)
    payload = json.dumps([{"opt": j["opt"], "tree": j["tree"]} for j in jobs])
    cmd = [sys.executable, "-m", "benchmarks.torch_bench", payload, str(path)]
    failure = None
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        if proc.returncode != 0:
            err = "\n".join(proc.stderr.strip().splitlines()[-5:])
            failure = {"status": "error", "error": err, "returncode": proc.returncode}
    except subprocess.TimeoutExpired:
        failure = {"status": "timeout", "timeout_s": limit}
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return done + [failure or {"status": "error", "error": "no result"}] * (len(jobs) - len(done))


def _run_jax(job: dict, in_process: bool, timeout: float | None, smoke: bool) -> dict:
    payload = {"kind": "step", "lib": job["lib"], "opt": job["opt"], "tree": job["tree"]}
    if smoke:
        payload.update(warmup=1, repeats=1)
    if in_process:
        from benchmarks import jax_bench

        return jax_bench.run_job(payload)
    return _worker("benchmarks.jax_bench", payload, timeout)


def _floors(sizes: list[int], in_process: bool, timeout: float | None, smoke: bool) -> dict:
    payload = {"kind": "floor", "ns": sizes, "repeats": 3 if smoke else 20}
    if in_process:
        from benchmarks import jax_bench

        out = jax_bench.run_job(payload)
    else:
        out = _worker("benchmarks.jax_bench", payload, timeout)
    if "floors" not in out:
        raise RuntimeError(f"benchmarks.run: the bandwidth floor failed: {out}")
    return {str(f["n"]): f for f in out["floors"]}


def run(
    out: pathlib.Path,
    smoke: bool = False,
    full: bool = False,
    only: list[str] | None = None,
    with_torch: bool = True,
    in_process: bool = False,
    timeout: float | None = 150.0,
    budget: float | None = 600.0,
    results_md: pathlib.Path | None = None,
    log=_log,
) -> dict:
    """Runs the suite and writes its outputs to ``out``; returns the results dict."""
    if in_process and not smoke:
        raise ValueError("benchmarks.run: in_process is for the smoke run (no time limits)")
    has_torch = importlib.util.find_spec("torch") is not None
    with_torch = with_torch and has_torch and not smoke
    info = machine()
    jobs = suite.plan(smoke, only, with_torch)
    if not jobs:
        raise ValueError(f"benchmarks.run: --only {only} selects no job (see benchmarks/suite.py)")
    sizes = sorted(
        {trees.n_params(trees.build(j["tree"]["kind"], **j["tree"]["args"])) for j in jobs}
    )
    log(f"{len(jobs)} jobs; floors on {len(sizes)} sizes; load {info['load_start']}")

    start = time.perf_counter()
    floors = _floors(sizes, in_process, timeout, smoke)
    jax_jobs = [j for j in jobs if j["lib"] != "torch"]
    for i, job in enumerate(jax_jobs, 1):
        label = f"[{i}/{len(jax_jobs)}] {job['lib']} {job['opt']} {job['roles'][0]['name']}"
        if job.get("slow") and not full:
            job["result"] = {"status": "skipped", "reason": "opt-in: --full"}
        elif budget is not None and time.perf_counter() - start > budget:
            job["result"] = {"status": "skipped", "reason": f"run budget of {budget:.0f} s spent"}
        else:
            job["result"] = _run_jax(job, in_process, timeout, smoke)
        log(f"{label}: {report.short(job['result'])}")

    torch_jobs = [j for j in jobs if j["lib"] == "torch"]
    if torch_jobs:
        # After the JAX jobs, which matter most; its time limit is what the run has left
        # (TORCH_MIN_S at least), and the results it finished before a stop are kept.
        left = None if budget is None else budget + TORCH_EXTRA_S - (time.perf_counter() - start)
        limit = None if left is None else max(TORCH_MIN_S, left)
        got = _torch(torch_jobs, limit, out)
        for j, r in zip(torch_jobs, got):
            j["result"] = r
            log(f"torch {j['opt']} {j['roles'][0]['name']}: {report.short(r)}")

    floors_end = _floors(sizes, in_process, timeout, smoke)
    info["load_end"] = _load()
    results = {
        "machine": info,
        "settings": {
            "smoke": smoke,
            "full": full,
            "only": only,
            "timeout_s": timeout,
            "budget_s": budget,
            "torch": with_torch,
            "torch_installed": has_torch,
        },
        "floors": floors,
        "floors_end": floors_end,
        "jobs": jobs,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = report.markdown(results)
    (out / "RESULTS.md").write_text(text)
    if results_md is not None:
        results_md.write_text(text)
    report.plot(results, out / "curves.png")
    log(report.table(results))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 steps, no torch")
    parser.add_argument("--full", action="store_true", help="also the opt-in slow jobs")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--only",
        nargs="+",
        help="substrings of configuration names, or 'configs', 'params', 'leaves'",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave torch.optim out")
    parser.add_argument("--in-process", action="store_true", help="smoke only: no workers")
    parser.add_argument(
        "--timeout", type=float, default=150.0, help="seconds per JAX job (default 150)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=600.0,
        help="seconds after which JAX jobs not yet started are skipped (default 600)",
    )
    args = parser.parse_args(argv)
    complete = not args.smoke and args.only is None
    run(
        args.out,
        smoke=args.smoke,
        full=args.full,
        only=args.only,
        with_torch=not args.no_torch,
        in_process=args.in_process,
        # --full waits for the slow compiles (optax's 5000-leaf one: ~370 s) and has no budget.
        timeout=max(args.timeout, 1200.0) if args.full else args.timeout,
        budget=None if args.full else args.budget,
        results_md=ROOT / "benchmarks" / "RESULTS.md" if complete else None,
    )


if __name__ == "__main__":
    main()
