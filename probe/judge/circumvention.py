"""circumvention: a VPN or proxy protocol's first packets (its signature) against printable
neutral bytes of the same size, both sent to the helper's probe port (differential
`neutral_bytes`); the helper reports what arrived.

- the signature arrived intact (over TCP, the connection was not reset either): ok;
- the signature died (lost, cut or reset) while the neutral bytes arrived: `protocol_blocked`;
- both died: the helper's probe port cannot be reached from here: nothing separates a block (`down`).
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import unmeasured_through_helper
from probe.model import CircumventionEvidence, Fault, Finding, HelperExchange, NoHelper, SignatureProbe, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.PROTOCOL_BLOCKED
DIFFERENTIAL = "neutral_bytes"


def analyse(evidence: CircumventionEvidence | HelperExchange | NoHelper, facts: RoundFacts) -> Analysis:
    if not isinstance(evidence, CircumventionEvidence):
        return unmeasured_through_helper(evidence, TECHNIQUE)
    signature = next((p for p in evidence.probes if p.kind == "signature"), None)
    neutral = next((p for p in evidence.probes if p.kind == "neutral"), None)
    if signature is None or neutral is None:  # a record without its probes: nothing was sent
        return Analysis.failed(failures.SIGNATURE_LOST, Finding(TECHNIQUE, Fault.UNSEPARATED, DIFFERENTIAL, Reason("no_probes_sent")))
    if intact(signature):
        return Analysis.passed()
    seen = Reason("signature_seen", {"arrived": signature.arrived_bytes, "size": signature.size})
    if signature.failure:
        seen = Reason("signature_seen_failure", {"arrived": signature.arrived_bytes, "size": signature.size, "failure": signature.failure})
    failure = signature.failure or failures.SIGNATURE_LOST
    if intact(neutral):
        reason = Reason("signature_died", {"protocol": evidence.protocol, "seen": seen})
        return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, DIFFERENTIAL, reason))
    reason = Reason("signature_and_neutral_died", {"protocol": evidence.protocol, "seen": seen, "neutral_arrived": neutral.arrived_bytes, "neutral_size": neutral.size})
    return Analysis.failed(failure, Finding(TECHNIQUE, Fault.UNSEPARATED, DIFFERENTIAL, reason))


def intact(probe: SignatureProbe) -> bool:
    """Every byte arrived, and the sender met no failure (a reset after the bytes is a cut too)."""
    return probe.arrived_bytes == probe.size and probe.failure is None
