"""tcp: reachable when any expected address:port connects (OONI's rule for WhatsApp's endpoints).

Every address failing is `ip_blocked` with no differential of its own: one vantage cannot tell a
refused or silent address from a censor's RST or drop; the contract lets it stand, and control
vantages, helpers and the fleet's rules compare. When the control resolver's other addresses
connect while the vantage resolver's all fail, the answer was the problem: `dns_tampered`.
Where the vantage reaches IPv6 (a control did this round), each family is judged on its own:
every address of one family failing while the other connects is `ip_blocked` on that family
(reason `family_blocked`, differential `other_family`).
"""

from __future__ import annotations

from collections.abc import Sequence

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import is_monitor_failure, most_common
from probe.model import Fault, Finding, TCPConnect, TCPEvidence, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.IP_BLOCKED


def analyse(evidence: TCPEvidence, facts: RoundFacts) -> Analysis:
    connects = evidence.connects
    if any(c.failure is None for c in connects):
        return _each_family(connects) if facts.ipv6 else Analysis.passed()
    if any(is_monitor_failure(c.failure) for c in connects):
        return Analysis.failed(failures.LOCAL_RESOURCE, Finding(Verdict.IP_BLOCKED, Fault.MONITOR, "", Reason("local_resource")))
    if evidence.control_connects and any(c.failure is None for c in evidence.control_connects):
        finding = Finding(Verdict.DNS_TAMPERED, Fault.PATH, "control_resolver", Reason("control_addresses_connect"))
        return Analysis.failed(failures.DNS_INCONSISTENT, finding)
    failure = most_common([c.failure for c in connects]) if connects else failures.TIMEOUT
    return Analysis.failed(failure, Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", Reason("every_address_fails")))


def _each_family(connects: Sequence[TCPConnect]) -> Analysis:
    """Where the vantage reaches both families, each is judged on its own (issue 20): every
    address of one family failing while the other family's connect is a block of that family,
    named, not averaged away by the other. The server answered on the other family (the
    differential `other_family`); the runner's retry must see it again before it stands.
    A family whose every connect was refused is not claimed: an address published and not
    listened on is a server's own quirk (a refusal is the server's answer far more often than a
    censor's; the field's family blocks drop)."""
    by_family: dict[str, list[TCPConnect]] = {}
    for connect in connects:
        by_family.setdefault(family_of(connect.address), []).append(connect)
    for family, tried in sorted(by_family.items()):
        if all(c.failure is not None and not is_monitor_failure(c.failure) for c in tried) and any(c.failure != failures.CONNECTION_REFUSED for c in tried):
            others = sorted(f for f in by_family if f != family)
            reason = Reason("family_blocked", {"family": family, "other": ", ".join(others)})
            return Analysis.failed(most_common([c.failure for c in tried]), Finding(Verdict.IP_BLOCKED, Fault.PATH, "other_family", reason))
    return Analysis.passed()


def family_of(address: str) -> str:
    return "ipv6" if ":" in address else "ipv4"
