"""The pytest plugin of the harness: loads optax's test files through views, classifies tests."""

from __future__ import annotations

import json

import pytest

from tests.optax_suite import resolve


class OptaxTestModule(pytest.Module):
    def _getobj(self):
        return resolve.load(self.path)


def pytest_configure(config):
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    config._optax_suite_results = {}


def pytest_pycollect_makemodule(module_path, parent):
    if str(module_path).startswith(resolve.OPTAX_DIR) and module_path.name.endswith("_test.py"):
        return OptaxTestModule.from_parent(parent, path=module_path)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    resolve.USED.start()
    yield
    resolve.USED.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    names = resolve.USED.local.names or {"gradtx": set(), "optax": set()}
    report.user_properties.append(("gradtx", sorted(names["gradtx"])))
    report.user_properties.append(("optax", sorted(names["optax"])))


def classify(gradtx_names, optax_names):
    if gradtx_names and optax_names:
        return "mixed"
    return "gradtx" if gradtx_names else "optax"


def pytest_runtest_logreport(report):
    config = pytest_runtest_logreport.config
    if config is None:
        return
    results = config._optax_suite_results
    props = dict(report.user_properties)
    entry = results.setdefault(
        report.nodeid, {"outcome": "passed", "gradtx": [], "optax": [], "message": ""}
    )
    entry["gradtx"] = sorted(set(entry["gradtx"]) | set(props.get("gradtx", ())))
    entry["optax"] = sorted(set(entry["optax"]) | set(props.get("optax", ())))
    if report.failed:
        entry["outcome"] = "failed"
        if not entry["message"]:
            entry["message"] = _summary(report)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    entry["class"] = classify(entry["gradtx"], entry["optax"])


pytest_runtest_logreport.config = None


def _summary(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0][:300] if crash.message else ""
    return str(report.longrepr).splitlines()[-1][:300] if report.longrepr else ""


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    pytest_runtest_logreport.config = session.config


def pytest_sessionfinish(session):
    path = session.config.getoption("optax_suite_out", None)
    if path and not hasattr(session.config, "workerinput"):
        with open(path, "w") as f:
            json.dump(session.config._optax_suite_results, f, indent=1, sort_keys=True)


def pytest_addoption(parser):
    parser.addoption("--optax-suite-out", dest="optax_suite_out", default=None)
