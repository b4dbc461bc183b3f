"""mtproto: which probes (framings, OONI's POST) worked on some data-centre endpoint.

A framing whose connections were cut after TCP connected argues `protocol_blocked` on the path
(the transport succeeded, the protocol died); the framings that passed are named in the reason
(a censor matching plain MTProto's first bytes, or one dropping obfuscated2's random-looking
first segment). A data centre that answered in something other than MTProto, or whose answer
began and then stopped, or that acknowledged our bytes and stayed silent, is at fault itself
(`probe.judge.rules`: the same rule as the WhatsApp chat's).
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import AfterConnect, after_connect, most_common
from probe.model import Fault, Finding, MTProtoEvidence, MTProtoProbe, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.PROTOCOL_BLOCKED
_PLAIN = ("abridged", "intermediate")


def analyse(evidence: MTProtoEvidence, facts: RoundFacts) -> Analysis:
    kinds = list(evidence.works) or list(dict.fromkeys(p.probe for p in evidence.probes))
    works = {k: any(p.failure is None for p in evidence.probes if p.probe == k) for k in kinds}
    evidence.works = works
    if all(works.values()):
        return Analysis.passed()
    failed = [p for p in evidence.probes if not works[p.probe]]
    failure = most_common([p.failure for p in failed]) if failed else failures.TIMEOUT
    return Analysis.failed(failure, _finding(failed, works))


def _finding(failed: list[MTProtoProbe], works: dict[str, bool]) -> Finding:
    broken = ", ".join(k for k, ok in works.items() if not ok)
    passed = [k for k, ok in works.items() if ok]
    if not any(p.connected for p in failed):
        # Nothing connected (no `tcp` check before this one): the address is what fails, and
        # nothing here tells a censor's drop from a dead host.
        return Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", Reason("no_tcp_to_dc"))
    readings = {id(p): after_connect(p.failure or "", p.received_bytes, p.unacked_segments) for p in failed if p.connected}
    cut = [p for p in failed if readings.get(id(p)) is AfterConnect.CUT]
    if not cut:
        # The data centre answered in something else, or began and stopped, or kept silent.
        seen = set(readings.values())
        if AfterConnect.SERVER_SPOKE in seen:
            return Finding(TECHNIQUE, Fault.SERVER, "transport", Reason("dc_not_mtproto", {"framings": broken}))
        if AfterConnect.ANSWER_BEGAN in seen:
            answered = next(p for p in failed if readings.get(id(p)) is AfterConnect.ANSWER_BEGAN)
            reason = Reason("server_answer_began", {"received": answered.received_bytes or 0, "failure": str(answered.failure)})
            return Finding(TECHNIQUE, Fault.SERVER, "transport", reason)
        return Finding(TECHNIQUE, Fault.SERVER, "transport", Reason("server_silent"))
    how = most_common([p.failure for p in cut])
    params: dict[str, str | int | float | Reason] = {"broken": broken, "failure": how, "passed": ", ".join(passed)}
    if "obfuscated2" in broken and passed and "obfuscated2" not in passed and any(k in passed for k in _PLAIN):
        reason = Reason("framings_failed_obfuscated2", params)
    elif "obfuscated2" in passed and any(k in broken for k in _PLAIN):
        reason = Reason("framings_failed_plain", params)
    elif passed:
        reason = Reason("framings_failed_while", params)
    else:
        reason = Reason("framings_failed", params)
    differential = "framing" if any(k in passed for k in (*_PLAIN, "obfuscated2")) else "transport"
    return Finding(TECHNIQUE, Fault.PATH, differential, reason)
