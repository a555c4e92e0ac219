"""Every public function's docstring follows the house template (see DESIGN.md, house style).

A one-line summary, an ``Args:`` section naming every parameter (and nothing else), a
``Returns:`` section and an ``Example:`` section with doctest lines (run by
``--doctest-modules``). The math and the references are not checked here: not every function
has a rule or a paper.

Pure introspection of the docstrings: nothing is compiled.
"""

from __future__ import annotations

import inspect
import re

import pytest

import gradtx

# Public functions that may leave the template, each with the reason. None so far: add a name
# here only with a comment saying why it cannot follow the template.
EXEMPT: dict[str, str] = {}

_SECTION = re.compile(r"^(?P<indent> *)(?P<name>[A-Z][A-Za-z ]*):$")
# An Args entry: ``name: ...``, ``name (type): ...``, or ``a, b, c: ...`` for a shared entry.
_ENTRY = re.compile(r"^\**(?P<names>\w+(?:, \**\w+)*)(?: \([^)]*\))?:(?: |$)")


def _public_functions() -> list[str]:
    return sorted(
        name
        for name in gradtx.__all__
        if inspect.isfunction(getattr(gradtx, name)) and name not in EXEMPT
    )


def _sections(doc: str) -> dict[str, list[str]]:
    """The Google-style sections of a docstring: header name -> body lines, dedented."""
    lines = inspect.cleandoc(doc).splitlines()
    sections: dict[str, list[str]] = {}
    i = 0
    while i < len(lines):
        match = _SECTION.match(lines[i])
        if not match:
            i += 1
            continue
        indent = len(match["indent"])
        body = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        sections[match["name"]] = inspect.cleandoc("\n".join(body)).splitlines()
    return sections


def _documented_args(body: list[str]) -> set[str]:
    """The parameter names the entries of an ``Args:`` section describe."""
    names: set[str] = set()
    for line in body:
        if line[:1].isspace():
            continue  # the continuation of an entry
        match = _ENTRY.match(line)
        if match:
            names.update(name.strip().lstrip("*") for name in match["names"].split(","))
    return names


def _parameters(fn) -> list[str]:
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind not in variadic]


def test_the_census_finds_the_public_functions():
    names = _public_functions()
    assert len(names) > 100
    assert {"adam", "chain", "apply_updates", "clip_by_global_norm", "state_sharding"} <= set(names)
    assert "GradientTransformation" not in names and "EmptyState" not in names


def test_every_exemption_is_a_public_function():
    for name in EXEMPT:
        assert name in gradtx.__all__ and inspect.isfunction(getattr(gradtx, name)), name


def test_the_parser_reads_a_template_docstring():
    doc = """Summary.

    Args:
      a: the first.
      b, c (int): two at once,
        continued: here.
      *rest: variadic.

    Returns:
      Something.

    Example:
      Text first.

      >>> 1 + 1
      2
    """
    sections = _sections(doc)
    assert _documented_args(sections["Args"]) == {"a", "b", "c", "rest"}
    assert sections["Returns"] == ["Something."]
    assert any(line.startswith(">>>") for line in sections["Example"])


@pytest.mark.parametrize("name", _public_functions())
def test_docstring_follows_the_template(name):
    fn = getattr(gradtx, name)
    doc = inspect.getdoc(fn) or ""
    summary = doc.splitlines()[0].strip() if doc else ""
    assert summary, f"{name}: no one-line summary"
    sections = _sections(doc)
    problems = []
    params = _parameters(fn)
    if params:
        if "Args" not in sections:
            problems.append("no Args: section")
        else:
            documented = _documented_args(sections["Args"])
            missing = [p for p in params if p not in documented]
            if missing:
                problems.append(f"Args: does not describe {missing}")
    if "Args" in sections:
        # an entry for a parameter the function does not have: a rename the docs missed
        stale = _documented_args(sections["Args"]) - set(inspect.signature(fn).parameters)
        if stale:
            problems.append(f"Args: describes {sorted(stale)}, not parameters of {name}")
    if not any(line.strip() for line in sections.get("Returns", [])):
        problems.append("no Returns: section")
    if not any(line.lstrip().startswith(">>>") for line in sections.get("Example", [])):
        problems.append("no Example: section with >>> lines")
    assert not problems, f"{name}: " + "; ".join(problems)
