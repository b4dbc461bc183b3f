"""From check results to verdicts: per target, per service, per vantage.

A target's verdict is what its first failing check argues for, in pipeline order (a DNS block
is what a user meets first, even if the address is blocked too; the rest stays as evidence).
A service takes `partial` when some targets are ok and others blocked, else the worst of its
targets. A vantage whose controls all fail is `vantage_offline` and judges nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probe.checks.base import CheckResult

OK = "ok"
DOWN = "down"
PARTIAL = "partial"
OFFLINE = "vantage_offline"

# Worst first. Full blocks before degradations, degradations before `down` (not a block).
TARGET_VERDICTS: tuple[str, ...] = (
    "dns_blocked",
    "dns_tampered",
    "ip_blocked",
    "sni_blocked",
    "tls_blocked",
    "tls_mitm",
    "http_blocked",
    "protocol_blocked",
    "quic_blocked",
    "udp_blocked",
    "throttled",
    DOWN,
    OFFLINE,
    OK,
)
SERVICE_VERDICTS: tuple[str, ...] = (*TARGET_VERDICTS[:-3], PARTIAL, DOWN, OFFLINE, OK)
BLOCKS = frozenset(TARGET_VERDICTS[:-3])


@dataclass
class TargetResult:
    service: str  # "controls" for a control target
    target: str
    host: str
    verdict: str
    checks: list[CheckResult] = field(default_factory=list)
    reason: str = ""
    attempts: int = 1
    incomplete: bool = False

    def as_json(self) -> dict[str, Any]:
        data = {
            "target": self.target,
            "host": self.host,
            "verdict": self.verdict,
            "reason": self.reason,
            "attempts": self.attempts,
            "checks": [c.as_json() for c in self.checks],
        }
        if self.incomplete:
            data["incomplete"] = True
        return data


@dataclass
class ServiceResult:
    service: str
    verdict: str
    targets: list[TargetResult]

    @property
    def reachable_ratio(self) -> float:
        return sum(t.verdict == OK for t in self.targets) / len(self.targets) if self.targets else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "verdict": self.verdict, "targets": [t.as_json() for t in self.targets]}


@dataclass
class VantageResult:
    vantage: str
    verdict: str
    services: list[ServiceResult]
    controls: list[TargetResult]
    started_at: float  # unix time
    duration_seconds: float
    healthy_resolvers: list[str] = field(default_factory=list)

    @property
    def online(self) -> bool:
        return self.verdict == OK

    def as_json(self) -> dict[str, Any]:
        return {
            "vantage": self.vantage,
            "verdict": self.verdict,
            "services": [s.as_json() for s in self.services],
            "controls": [c.as_json() for c in self.controls],
            "healthy_resolvers": self.healthy_resolvers,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def target_verdict(checks: list[CheckResult]) -> tuple[str, str]:
    """(verdict, reason) from a target's check results, in pipeline order."""
    for result in checks:
        if not result.ok:
            # A failure without a verdict of its own comes from a check's bug: no block is claimed.
            return _argued(result) or DOWN, f"{result.check}: {result.failure}"
    if not checks:
        return DOWN, "no check could run"
    return OK, ""


def _argued(result: CheckResult) -> str | None:
    """Interim, until probe.judge: a check's `verdict`, or what its Finding argues (a technique
    when the differential points at the path, or when nothing could separate an address that
    fails to connect; `down` otherwise; the monitor's own fault is not yet a verdict here)."""
    if hasattr(result, "verdict"):
        return result.verdict
    finding = getattr(result, "finding", None)
    if finding is None:
        return None
    from probe.model import Fault, Verdict

    if finding.fault == Fault.PATH or (finding.fault == Fault.UNSEPARATED and finding.technique == Verdict.IP_BLOCKED):
        return str(finding.technique)
    return DOWN


def service_verdict(targets: list[TargetResult]) -> str:
    verdicts = [t.verdict for t in targets]
    if OFFLINE in verdicts:
        return OFFLINE
    judged = [v for v in verdicts if v != DOWN]  # a dead target is not a blocked one
    if not judged:
        return DOWN if verdicts else OK
    if all(v == OK for v in judged):
        return OK
    if any(v == OK for v in judged):
        return PARTIAL
    return worst(judged)


def worst(verdicts: list[str]) -> str:
    return min(verdicts, key=TARGET_VERDICTS.index)


def offline_service(name: str, targets: list[tuple[str, str]]) -> ServiceResult:
    """A service of an offline vantage: nothing was measured, nothing is claimed."""
    return ServiceResult(
        name,
        OFFLINE,
        [TargetResult(name, target, host, OFFLINE, reason="the vantage's controls failed") for target, host in targets],
    )


def confirm_down_by_control(result: TargetResult, control: TargetResult | None) -> TargetResult:
    """A block that a control vantage sees too is an outage: `down`."""
    if control is None or result.verdict not in BLOCKS or control.verdict == OK or control.verdict == OFFLINE:
        return result
    mine = next((c for c in result.checks if not c.ok), None)
    theirs = next((c for c in control.checks if not c.ok), None)
    if mine is not None and theirs is not None and mine.check == theirs.check:
        result.reason = f"{result.reason}; the control vantage fails {theirs.check} too ({theirs.failure})"
        result.verdict = DOWN
    return result
