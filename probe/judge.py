"""The one judge: a target's check results become its verdict, a service's targets its verdict,
a vantage's control sites the vantage's verdict. Nothing else in msgreach decides a verdict.

Checks observe and, when they fail, state a `Finding`: the technique their stage would mean and
whose fault the differential says it is. The judge applies the contract's differential rule:
- the monitor's own fault (a missing dependency, no file descriptors, a bug) is `error`;
- a failure the differential pins on the server (it fails the same for a decoy, or it spoke
  garbage, or the control resolver agrees) is `down`;
- a technique stands when its differential separated the path from the server;
- without a differential, only what the contract lets stand alone stands (`ip_blocked`,
  `tls_blocked`, `tls_mitm`: one vantage cannot tell a refused or silent address from a censor's,
  the fleet's rules and control vantages do); anything else is `down`, with the reason.
A target's verdict is what its first failing check argues for, in pipeline order (a DNS block is
what a user meets first; the rest stays evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from probe.config import Vantage
from probe.failures import MONITOR as MONITOR_FAILURES
from probe.model import (
    BLOCKS,
    CheckResult,
    Fault,
    HelperExchange,
    ServiceResult,
    TargetResult,
    VantageResult,
    VantageVerdict,
    Verdict,
    severity,
)

# Techniques the contract lets stand without a differential of their own.
STANDS_ALONE = frozenset({Verdict.IP_BLOCKED, Verdict.TLS_BLOCKED, Verdict.TLS_MITM})


def target_verdict(checks: Sequence[CheckResult]) -> tuple[Verdict, str]:
    """(verdict, reason) from a target's check results, in pipeline order."""
    for result in checks:
        if result.ok:
            continue
        where = f"{result.check}: {result.failure}"
        finding = result.finding
        if (result.failure or "").split(":", 1)[0] in MONITOR_FAILURES:
            return Verdict.ERROR, f"{where}; the monitor could not measure"
        line = helper_line_failure(result)
        if line is not None:
            # The page's words, loaded only when a line failed (a round never loads the page's modules).
            from probe.status_texts import helper_line_words

            return Verdict.ERROR, f"{where}; {helper_line_words('en', line)}: the monitor could not measure through the helper"
        if finding is None:
            return Verdict.ERROR, f"{where}; the check stated no finding (a bug of msgreach)"
        reason = f"{where}; {finding.reason}" if finding.reason else where
        if finding.fault is Fault.MONITOR:
            return Verdict.ERROR, reason
        if finding.fault is Fault.SERVER:
            return Verdict.DOWN, reason
        if finding.fault is Fault.PATH and finding.differential:
            return finding.technique, f"{reason} (differential: {finding.differential})"
        if finding.technique in STANDS_ALONE:
            return finding.technique, reason
        return Verdict.DOWN, f"{reason}; no differential separates a block from the server's own failure"
    if not checks:
        return Verdict.ERROR, "no check could run"
    return Verdict.OK, ""


def helper_line_failure(result: CheckResult) -> HelperExchange | None:
    """The exchange with a helper abroad that kept a helper check from measuring, if that is why
    it failed. The line to the helper crosses the censor, but it is the monitor's instrument, not
    the path under test: a frozen, dripping, reset or garbage-answering line is never a block."""
    evidence = result.evidence
    return evidence if isinstance(evidence, HelperExchange) and evidence.failure is not None else None


def service_verdict(targets: Sequence[TargetResult]) -> Verdict:
    """`partial` when some targets are ok and others blocked, else the worst of them. Dead
    (`down`) and unmeasured (`error`) targets are not blocked ones."""
    verdicts = [t.verdict for t in targets]
    if Verdict.VANTAGE_OFFLINE in verdicts:
        return Verdict.VANTAGE_OFFLINE
    judged = [v for v in verdicts if v not in (Verdict.DOWN, Verdict.ERROR)]
    if not judged:
        if not verdicts:
            return Verdict.OK
        return Verdict.ERROR if all(v == Verdict.ERROR for v in verdicts) else Verdict.DOWN
    if all(v == Verdict.OK for v in judged):
        return Verdict.OK
    if any(v == Verdict.OK for v in judged):
        return Verdict.PARTIAL
    return worst(judged)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    return min(verdicts, key=severity)


def vantage_verdict(controls: Sequence[tuple[str, TargetResult]]) -> tuple[VantageVerdict, str]:
    """The vantage's verdict from its control targets, each with its class (`international`,
    `domestic` or `yardstick`). Only control *sites* count: a download or STUN yardstick passing
    never makes a vantage online (a portal that intercepts TCP only leaves UDP alone)."""
    if not controls:
        return VantageVerdict.OK, "no controls configured"
    international = [t for kind, t in controls if kind == "international"]
    domestic = [t for kind, t in controls if kind == "domestic"]
    if any(t.verdict == Verdict.OK for t in international):
        return VantageVerdict.OK, ""
    if not international and any(t.verdict == Verdict.OK for t in domestic):
        return VantageVerdict.OK, "no international control sites configured"
    if international and any(t.verdict == Verdict.OK for t in domestic):
        failed = "; ".join(f"{t.target} ({_first_failure(t)})" for t in international)
        return VantageVerdict.ALLOWLIST, f"domestic control sites pass while every international one fails: {failed}"
    return VantageVerdict.VANTAGE_OFFLINE, "no control site passes every check"


def _first_failure(target: TargetResult) -> str:
    failed = next((c for c in target.checks if not c.ok), None)
    return f"{failed.check}: {failed.failure}" if failed else target.verdict


def unmeasured_service(name: str, targets: Iterable[tuple[str, str]]) -> ServiceResult:
    """A service of an offline vantage: nothing was measured, nothing is claimed."""
    return ServiceResult(
        name,
        Verdict.VANTAGE_OFFLINE,
        [TargetResult(name, target, host, Verdict.VANTAGE_OFFLINE, reason="the vantage's control sites failed") for target, host in targets],
    )


def confirm_down_by_control(result: TargetResult, control: TargetResult | None, source: str = "the control vantage") -> TargetResult:
    """A block that a control (a control vantage, a helper abroad) sees at the same check is an
    outage: `down`, with the control's failure in the reason."""
    if control is None or result.verdict not in BLOCKS or control.verdict in (Verdict.OK, Verdict.VANTAGE_OFFLINE, Verdict.ERROR):
        return result
    mine = next((c for c in result.checks if not c.ok), None)
    theirs = next((c for c in control.checks if not c.ok), None)
    if mine is not None and theirs is not None and mine.check == theirs.check:
        result.reason = f"{result.reason}; {source} fails {theirs.check} too ({theirs.failure})"
        result.verdict = Verdict.DOWN
    return result


def control_reference(results: Iterable[VantageResult], vantages: Iterable[Vantage]) -> VantageResult | None:
    """The result the other vantages compare with: the first online control vantage's. One path
    for `once` (this round's results) and `run` (each vantage's latest)."""
    by_name = {r.vantage: r for r in results}
    for vantage in vantages:
        result = by_name.get(vantage.name)
        if vantage.control and result is not None and result.online:
            return result
    return None


def find_target(vantage: VantageResult, service: str, target: str) -> TargetResult | None:
    for s in vantage.services:
        if s.service == service:
            return next((t for t in s.targets if t.target == target), None)
    return None
