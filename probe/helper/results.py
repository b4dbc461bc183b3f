"""Results of the helper's checks in the engine's shape.

The checks state a `probe.model.Finding`; `probe.judge` decides. Until the lead's rewrite of
`probe.checks.base` (a CheckResult with `finding`) is on main, the older shape (a `verdict`
string and a dict of evidence) is produced instead. TEMPORARY: drop the fallback at merge.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from probe.checks import base
from probe.model import Fault, Finding, to_json

_NEW_SHAPE = "finding" in {f.name for f in fields(base.CheckResult)}


def check_result(check: str, ok: bool, failure: str | None, duration: float, finding: Finding | None, evidence: Any) -> Any:
    if _NEW_SHAPE:
        return base.CheckResult(check, ok, failure, duration, finding, evidence)
    verdict = None
    if finding is not None and finding.fault == Fault.PATH:
        verdict = str(finding.technique)  # without a differential on the path's side: `down`
    data = to_json(evidence)
    if finding is not None:
        data["finding"] = finding.as_json()
    return base.CheckResult(check, ok, failure, duration, verdict, data)
