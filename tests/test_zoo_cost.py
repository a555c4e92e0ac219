"""``python -m benchmarks.zoo_cost --smoke``: a row per optimizer and tree, with the fields the
report is made of, and the Markdown tables they fill (no timing is asserted)."""

import json
import re
import warnings

import jax
import jax.numpy as jnp
import pytest

import gradtx
from benchmarks import zoo_cost
from tests.compile_options import as_users

# plain (sgd), a refresh step and optax's same-named one (galore), the loss in the update
# (polyak_sgd)
SMOKE = ("sgd", "galore", "polyak_sgd")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo_cost")
    only = ",".join(SMOKE)
    report = zoo_cost.main(
        ["--smoke", "--only", only, "--trees", "leaf", "--out", str(out)], log=lambda _: None
    )
    return out, report


def test_every_configuration_has_a_measured_row(smoke):
    out, report = smoke
    on_disk = json.loads((out / zoo_cost.RESULTS).read_text())
    assert on_disk["rows"] == json.loads(json.dumps(report["rows"]))
    rows = {r["optimizer"]: r for r in report["rows"]}
    assert list(rows) == zoo_cost.zoo_first(SMOKE) and all(
        r["tree"] == "leaf" for r in rows.values()
    )
    for name, row in rows.items():
        assert row["status"] == "ok", row["status"]
        assert row["reference"] == f"optax {name}" and row["same_named"]
        for side in ("gradtx_cost", "reference_cost"):
            cost = row[side]
            assert len(cost["builds"]) == 2  # the leaf's builds: gradtx, optax, optax, gradtx
            assert cost["build_s"] == pytest.approx(cost["trace_lower_s"] + cost["compile_s"])
            assert cost["step_ms"] > 0 and len(cost["step_ms_passes"]) == zoo_cost.PASSES
        assert len(row["step_ratio_passes"]) == len(row["build_ratio_passes"]) == zoo_cost.PASSES
        assert row["step_verdict"] in ("", "slower", "slower, within noise")
    refresh = rows["galore"]
    assert refresh["period"] == zoo_cost.PERIOD and refresh["refresh_ratio"] > 0
    assert rows["sgd"]["period"] is None and rows["sgd"]["refresh_ratio"] is None
    assert rows["polyak_sgd"]["loss"] == "quadratic"


def test_markdown_has_a_table_row_per_optimizer(smoke):
    out, _ = smoke
    text = (out / zoo_cost.REPORT).read_text()
    assert "## Headline" in text and "Not measured: none." in text
    for table in ("step time", "build time"):
        section = text.split(f": {table}")[1].split("\n## ")[0]
        body = [line for line in section.splitlines() if line.startswith("| ")][1:]
        assert [cells.split("|")[1].split()[0] for cells in body] == zoo_cost.zoo_first(SMOKE)


def test_a_spent_budget_skips_what_is_left(tmp_path):
    report = zoo_cost.main(
        ["--smoke", "--only", "sgd", "--budget", "0", "--out", str(tmp_path)], log=lambda _: None
    )
    assert [r["status"].startswith("skipped") for r in report["rows"]] == [True, True]
    assert (
        "Not measured, skipped (the run's 0 s were spent): on the leaf: sgd; on the "
        in (tmp_path / zoo_cost.REPORT).read_text()
    )


# ---- passes over memory: a count in the compiled program, not a timing -------------------------

LEAF = (96, 160)
EXAMPLES = 8


def _made_buffers(tx, params, grads, loss=False) -> list[tuple[tuple[int, ...], str]]:
    """The (shape, opcode) of each buffer that one jitted step (update and apply, params and
    state donated; with ``loss``, a loss value given as ``value=``) makes besides its inputs:
    each is a pass over that much memory, written."""
    state = tx.init(params)

    def step(p, s, g, value):
        u, s = tx.update(g, s, p, **({"value": value} if loss else {}))
        return jax.tree.map(lambda a, b: a + b, p, u), s

    jitted = jax.jit(step, donate_argnums=(0, 1))
    text = as_users(jitted.lower(params, state, grads, jnp.float32(1.0))).as_text()
    entry = text[text.index("\nENTRY") :].split("\n}")[0]
    found = re.findall(r"= (\w+)\[([\d,]*)\](?:\{[^}]*\})? ([\w-]+)\(", entry)
    skip = {"parameter", "bitcast", "tuple", "get-tuple-element", "while", "conditional"}
    shape = lambda dims: tuple(int(d) for d in dims.split(",") if d)  # noqa: E731
    return [(shape(d), op) for _, d, op in found if op not in skip]


def _optax(name):
    import optax
    import optax.contrib

    return getattr(optax.contrib, name, None) or getattr(optax, name)


# The optimizers the first zoo_cost run found slower than optax's same-named one, for a cause
# seen in the program: prodigy and D-Adapt kept the old moments on a predicate that needs the
# step's reduction (new moments written, then read back), ADOPT kept its normalized gradient
# in memory for a second use, L-BFGS copied its whole memory each step, DP-SGD wrote the
# clipped per-example gradients before summing them; Polyak SGD wrote the gradients scaled by
# its live ``scaling`` before their norm (XLA:CPU writes out a leaf scaled by a runtime scalar
# that two computations read; optax's constant 1 is folded away).
PASSES = {  # name: (arguments, per-example gradients, loss value given to update)
    "prodigy": ((), False, False),
    "dadapt_adamw": ((), False, False),
    "adopt": ((1e-3,), False, False),
    "scale_by_lbfgs": ((), False, False),
    "dpsgd": ((0.1, 1.0, 1.0, 0), True, False),
    "polyak_sgd": ((), False, True),
}


@pytest.mark.parametrize("name", PASSES)
def test_steps_write_no_more_leaf_sized_buffers_than_optax(name):
    args, per_example, loss = PASSES[name]
    params = {"w": jnp.ones(LEAF)}
    grads = {"w": jnp.ones((EXAMPLES, *LEAF))} if per_example else params
    counted = (EXAMPLES, *LEAF) if per_example else LEAF
    ours = _made_buffers(getattr(gradtx, name)(*args), params, grads, loss)
    with jax.numpy_dtype_promotion("standard"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optax's dpsgd: seed, not key
        theirs = _made_buffers(_optax(name)(*args), params, grads, loss)
    sized = lambda found: [op for shape, op in found if shape == counted]  # noqa: E731
    assert len(sized(ours)) <= len(sized(theirs)), (sized(ours), sized(theirs))
    if name == "scale_by_lbfgs":  # and no copy of the 10-slot memory (updated in place)
        assert ((10, *LEAF), "copy") not in ours, ours
