"""python -m tests.optax_suite [--smoke] [--out FILE] [-n N] [-- pytest arguments]."""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
import tempfile

import pytest

from tests.optax_suite import resolve

HERE = os.path.dirname(__file__)

# A quick subset for the ordinary suite: the update helpers, numerics, the clipping and adding
# transforms, and the schedules' injection.
SMOKE = (
    "_src/update_test.py",
    "_src/numerics_test.py",
    "transforms/_clipping_test.py",
    "transforms/_adding_test.py",
    "schedules/_inject_test.py",
)


def test_files(smoke=False):
    if smoke:
        return [os.path.join(resolve.OPTAX_DIR, f) for f in SMOKE]
    files = sorted(glob.glob(os.path.join(resolve.OPTAX_DIR, "**", "*_test.py"), recursive=True))
    neutral = tuple(
        os.path.join(resolve.OPTAX_DIR, s) + os.sep for s in resolve.NEUTRAL_SUBPACKAGES
    )
    return [f for f in files if not f.startswith(neutral)]


def run(files, out, workers, extra=()):
    args = [
        "-c",
        os.path.join(HERE, "pytest.ini"),
        "--rootdir",
        resolve.OPTAX_DIR,
        "-p",
        "tests.optax_suite.plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=no",
        "--optax-suite-out",
        out,
        *(["-n", str(workers)] if workers else []),
        *extra,
        *files,
    ]
    pytest.main(args)
    with open(out) as f:
        return json.load(f)


def module_of(nodeid):
    return nodeid.split("::")[0]


def table(results):
    """Per module: ran, passed, failed, exercising gradtx, and those that fail."""
    rows = collections.defaultdict(collections.Counter)
    for nodeid, r in results.items():
        row = rows[module_of(nodeid)]
        if r["outcome"] == "skipped":
            row["skipped"] += 1
            continue
        row["ran"] += 1
        row[r["outcome"]] += 1
        if r["class"] != "optax":
            row["gradtx"] += 1
            row["gradtx " + r["outcome"]] += 1
            if r["class"] == "gradtx":
                row["only " + r["outcome"]] += 1
    lines = [
        "| module | ran | pass | fail | exercising gradtx | of those failing "
        "| gradtx only: pass / fail |",
        "|---|---|---|---|---|---|---|",
    ]
    total = collections.Counter()
    for module in sorted(rows):
        row = rows[module]
        total.update(row)
        lines.append(_row(module, row))
    lines.append(_row("**all**", total))
    return "\n".join(lines)


def _row(name, row):
    return (
        f"| {name} | {row['ran']} | {row['passed']} | {row['failed']} | {row['gradtx']} "
        f"| {row['gradtx failed']} | {row['only passed']} / {row['only failed']} |"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.optax_suite", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="the quick subset only")
    parser.add_argument("--out", default=None, help="where to write the per-test JSON")
    parser.add_argument("-n", type=int, default=os.cpu_count(), help="pytest-xdist workers")
    parser.add_argument("files", nargs="*", help="optax test files, relative to optax's package")
    parser.add_argument("--pytest", nargs=argparse.REMAINDER, default=[], help="more pytest args")
    options = parser.parse_args(argv)
    files = (
        [os.path.join(resolve.OPTAX_DIR, f) for f in options.files]
        if options.files
        else test_files(options.smoke)
    )
    out = options.out or os.path.join(tempfile.mkdtemp(), "optax_suite.json")
    results = run(files, out, options.n if options.n > 1 else 0, options.pytest)
    print(table(results))
    missing = resolve.missing_names()
    print(f"\noptax public names gradtx lacks ({len(missing)}): {' '.join(missing)}")
    failing = collections.Counter()
    for r in results.values():
        if r["outcome"] == "failed" and r["class"] != "optax":
            failing[r["message"][:120]] += 1
    print("\nmost common failures of tests exercising gradtx:")
    for message, count in failing.most_common(25):
        print(f"{count:5d}  {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
