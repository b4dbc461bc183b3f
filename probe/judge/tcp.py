"""tcp: reachable when any expected address:port connects (OONI's rule for WhatsApp's endpoints).

Every address failing is `ip_blocked` with no differential of its own: one vantage cannot tell a
refused or silent address from a censor's RST or drop; the contract lets it stand, and control
vantages, helpers and the fleet's rules compare. When the control resolver's other addresses
connect while the vantage resolver's all fail, the answer was the problem: `dns_tampered`.
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import is_monitor_failure, most_common
from probe.model import Fault, Finding, TCPEvidence, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.IP_BLOCKED


def analyse(evidence: TCPEvidence, facts: RoundFacts) -> Analysis:
    connects = evidence.connects
    if any(c.failure is None for c in connects):
        return Analysis.passed()
    if any(is_monitor_failure(c.failure) for c in connects):
        return Analysis.failed(failures.LOCAL_RESOURCE, Finding(Verdict.IP_BLOCKED, Fault.MONITOR, "", Reason("local_resource")))
    if evidence.control_connects and any(c.failure is None for c in evidence.control_connects):
        finding = Finding(Verdict.DNS_TAMPERED, Fault.PATH, "control_resolver", Reason("control_addresses_connect"))
        return Analysis.failed(failures.DNS_INCONSISTENT, finding)
    failure = most_common([c.failure for c in connects]) if connects else failures.TIMEOUT
    return Analysis.failed(failure, Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", Reason("every_address_fails")))
