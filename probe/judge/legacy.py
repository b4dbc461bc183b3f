"""The helper checks (udp_stream, circumvention, helper_transfer), read as they still are: each
returns a CheckResult with a Finding of its own, taken here as it is. When they record
observations, each gets an analyser module of its own and this adapter goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from probe.judge.analysis import Analysis, RoundFacts
from probe.model import CheckResult, Fault, Finding, Verdict
from probe.reasons import text

TECHNIQUES = {"udp_stream": Verdict.UDP_BLOCKED, "circumvention": Verdict.PROTOCOL_BLOCKED, "helper_transfer": Verdict.THROTTLED}


def analyse(result: CheckResult, facts: RoundFacts) -> Analysis:
    finding = result.finding
    said: object = finding.reason if finding is not None else None  # their reasons are English text
    if finding is not None and isinstance(said, str):
        finding = replace(finding, reason=text(said) if said else None)
    return Analysis(result.ok, result.failure, finding)


def as_stored(check: str, summary: Mapping[str, object]) -> CheckResult:
    """A check whose evidence the judge does not read (a helper check's, the helper's view of a
    target), from its archived summary (`test_keys.checks[]`): its outcome and Finding as they
    were. Raises ValueError for a Finding that is not one."""
    finding = None
    stored = summary.get("finding")
    if isinstance(stored, Mapping):
        try:
            technique, fault = Verdict(str(stored["technique"])), Fault(str(stored["fault"]))
        except KeyError as exc:
            raise ValueError(f"a finding without {exc}") from None
        reason = str(stored.get("reason", ""))
        finding = Finding(technique, fault, str(stored.get("differential", "")), text(reason) if reason else None)
    failure = summary.get("failure")
    return CheckResult(check, bool(summary.get("ok")), failure if isinstance(failure, str) else None, 0.0, finding)
