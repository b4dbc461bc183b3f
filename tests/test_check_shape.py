"""Every check has one shape, and only the judge judges.

Over `probe.checks.REGISTRY`: each check is a module with `NAME`, its `Params` (the config's
model for it) and `async def run(ctx, params)` returning one evidence record of probe.model,
and each has an analyser in probe/judge/ that reads that record (`TECHNIQUE`, `analyse`). And
over probe/'s source: no `Finding` is made and no `Fault` named outside probe/judge/.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from probe import judge, model
from probe.checks import NAMES, REGISTRY
from probe.checks.context import Context
from probe.params import CHECK_PARAMS

PROBE = Path(__file__).resolve().parent.parent / "probe"

def test_the_checks_are_the_configs_checks_in_its_order():
    assert list(REGISTRY) == list(NAMES) == list(CHECK_PARAMS)
    assert list(judge.ANALYSERS) == list(CHECK_PARAMS)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_check_has_the_one_shape(name):
    module = REGISTRY[name]
    assert module.NAME == name
    assert module.Params is CHECK_PARAMS[name]
    assert inspect.iscoroutinefunction(module.run)
    assert list(inspect.signature(module.run).parameters) == ["ctx", "params"]
    hints = typing.get_type_hints(module.run)
    assert hints["ctx"] is Context
    technique = judge.technique_of(name)
    assert isinstance(technique, model.Verdict) and model.is_technique(technique)
    evidence = hints["return"]
    # Evidence records of probe.model: dataclasses defined there (not a dict, not `object`); a
    # helper check's may also be the failed exchange with its helper, or `NoHelper`.
    for record in typing.get_args(evidence) or (evidence,):
        assert dataclasses.is_dataclass(record) and record.__module__ == "probe.model", f"{name}: run returns {evidence!r}"
    analyser = judge.ANALYSERS[name]
    assert analyser.TECHNIQUE is technique
    first = next(iter(inspect.signature(analyser.analyse).parameters))
    assert typing.get_type_hints(analyser.analyse)[first] == evidence, f"the {name} analyser reads another record"
    # A check only observes: its module names no verdict, fault or finding.
    source = ast.parse(inspect.getsource(module))
    named = {node.id for node in ast.walk(source) if isinstance(node, ast.Name)} | {node.attr for node in ast.walk(source) if isinstance(node, ast.Attribute)}
    assert not named & {"Verdict", "Fault", "Finding", "BLOCK_VERDICT"}, f"{name} judges: {named & {'Verdict', 'Fault', 'Finding'}}"


def _judging(path: Path) -> list[str]:
    """`Finding(...)` calls and `Fault.X` names in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Finding":
            found.append(f"{path.relative_to(PROBE)}:{node.lineno}: Finding(...)")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Fault":
            found.append(f"{path.relative_to(PROBE)}:{node.lineno}: Fault.{node.attr}")
    return found


def test_no_finding_is_made_outside_the_judge():
    outside = []
    for path in sorted(PROBE.rglob("*.py")):
        relative = str(path.relative_to(PROBE))
        if relative.startswith("judge/") or relative == "model.py":
            continue
        outside += _judging(path)
    assert outside == []


def test_the_scan_finds_a_finding_where_there_is_one(tmp_path):
    """The scan above can fail: it sees a Finding made and a Fault named."""
    sample = tmp_path / "sample.py"
    sample.write_text("from probe.model import Fault, Finding\nx = Finding(1, Fault.PATH)\n")
    global PROBE
    saved, PROBE = PROBE, tmp_path
    try:
        assert len(_judging(sample)) == 2
    finally:
        PROBE = saved
