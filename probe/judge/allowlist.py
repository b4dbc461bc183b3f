"""allowlist: one probe of an allowlist's key (probe.checks.allowlist), read handshake by
handshake. A handshake passed when it completed, or when the server's answer had begun before it
failed (an alert for a name it does not serve is the server's; a censor's reset or drop comes
before any byte of it). Per family, the probe `passed` when every try passed, `stopped` when
none did, `mixed` otherwise: no claim from tries that disagree (a lossy line).

The target's own outcome is ok when every family's probe passed; its failure then is the first
stopped handshake's. Its technique is `tls_blocked` with no differential: an allowlist probe is a
control, never a service's verdict; what it means is read with the other probes
(`probe.judge.verdicts.allowlist_key`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from probe.judge.analysis import Analysis, RoundFacts
from probe.model import AllowlistEvidence, Fault, Finding, TLSHandshake, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.TLS_BLOCKED
PASSED, STOPPED, MIXED, UNMEASURED = "passed", "stopped", "mixed", "unmeasured"


def analyse(evidence: AllowlistEvidence, facts: RoundFacts) -> Analysis:
    stopped = [h for h in evidence.handshakes if not answered(h)]
    if not stopped:
        return Analysis.passed()
    failure = stopped[0].failure or "unknown_failure"
    outcomes = tuple(Reason("allowlist_family", {"family": family, "outcome": Reason(f"probe_{outcome}")}) for family, outcome in outcomes_by_family(evidence.handshakes))
    reason = Reason("allowlist_probe_stopped", {"probe": Reason(f"allowlist_{evidence.probe}"), "families": outcomes})
    return Analysis.failed(failure, Finding(TECHNIQUE, Fault.UNSEPARATED, "", reason))


def answered(record: TLSHandshake) -> bool:
    return record.failure is None or (record.received_bytes or 0) > 0


def family_of(address: str) -> str:
    return f"ipv{ipaddress.ip_address(address).version}"


def outcomes_by_family(handshakes: Iterable[TLSHandshake]) -> list[tuple[str, str]]:
    """Each family's outcome, IPv4 first."""
    seen: dict[str, list[bool]] = {}
    for record in handshakes:
        seen.setdefault(family_of(record.address), []).append(answered(record))
    return [(family, PASSED if all(tries) else STOPPED if not any(tries) else MIXED) for family, tries in sorted(seen.items())]
