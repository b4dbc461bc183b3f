"""stun: the service's STUN peers against this round's control STUN peers.

`udp_blocked` needs the control: a control target's `stun` check answered this round, so the
path is at fault (differential `control_stun`). If every control is silent too, the vantage
cannot do STUN at all (or nobody answers): no technique. Without a control STUN target nothing
was compared. A reply that is not a STUN response is the server's doing. A control target's own
STUN check is a yardstick: nothing to compare it with.
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import most_common
from probe.model import Fault, Finding, STUNEvidence, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.UDP_BLOCKED


def analyse(evidence: STUNEvidence, facts: RoundFacts) -> Analysis:
    bindings = evidence.bindings
    if any(b.failure is None for b in bindings):
        return Analysis.passed()
    failure = most_common([b.failure for b in bindings]) if bindings else failures.TIMEOUT
    return Analysis.failed(failure, _finding(evidence, failure, facts))


def _finding(evidence: STUNEvidence, failure: str, facts: RoundFacts) -> Finding:
    if failure == failures.PROTOCOL_ERROR:
        return Finding(TECHNIQUE, Fault.SERVER, "", Reason("not_stun"))
    if facts.control_target:
        return Finding(TECHNIQUE, Fault.UNSEPARATED, "", Reason("control_stun_silent"))
    controls = evidence.controls or {}
    answered = [name for name, ok in controls.items() if ok]
    if answered:
        reason = Reason("control_stun_answered", {"failure": failure, "controls": ", ".join(answered)})
        return Finding(TECHNIQUE, Fault.PATH, "control_stun", reason)
    if not controls:
        return Finding(TECHNIQUE, Fault.UNSEPARATED, "", Reason("no_control_stun"))
    evidence.control_answered = False
    return Finding(TECHNIQUE, Fault.SERVER, "control_stun", Reason("control_stun_peers_silent"))
