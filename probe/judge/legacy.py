"""The helper checks (udp_stream, circumvention, helper_transfer), read as they still are: each
returns a CheckResult with a Finding of its own, taken here as it is. They are being rewritten
(issue #18); when they record observations, each gets an analyser module of its own and this
adapter goes.
"""

from __future__ import annotations

from dataclasses import replace

from probe.judge.analysis import Analysis, RoundFacts
from probe.model import CheckResult, Verdict
from probe.reasons import text

TECHNIQUES = {"udp_stream": Verdict.UDP_BLOCKED, "circumvention": Verdict.PROTOCOL_BLOCKED, "helper_transfer": Verdict.THROTTLED}


def analyse(result: CheckResult, facts: RoundFacts) -> Analysis:
    finding = result.finding
    said: object = finding.reason if finding is not None else None  # their reasons are English text
    if finding is not None and isinstance(said, str):
        finding = replace(finding, reason=text(said) if said else None)
    return Analysis(result.ok, result.failure, finding)
