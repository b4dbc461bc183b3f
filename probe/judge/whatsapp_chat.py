"""whatsapp_chat: OONI's semantics over the chat hosts, and what happened after connect.

A host counts as blocked only when neither of its ports works (ooni/probe#2383); the endpoints
are reachable when any one host works. Per host, the first failing step decides: its DNS, its
TCP connects (read by the `dns` and `tcp` analysers), then the chat exchanges: connected, then
reset, cut or left unacknowledged argues `protocol_blocked` on the path; a server that
acknowledged our first bytes and stayed silent, or answered the opening with something else, is
at fault itself (`probe.judge.rules`, the same rule as MTProto's). The check fails with the
argument most hosts make (hosts whose failure says something about the path first; ties to the
worse technique).
"""

from __future__ import annotations

from collections import Counter

from probe import failures
from probe.judge import dns, tcp
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import AfterConnect, after_connect, most_common
from probe.judge.verdicts import judge_target
from probe.model import ChatEvidence, ChatHost, CheckResult, Fault, Finding, TCPEvidence, Verdict, is_technique, severity
from probe.reasons import Reason

TECHNIQUE = Verdict.PROTOCOL_BLOCKED
NAME = "whatsapp_chat"


def analyse(evidence: ChatEvidence, facts: RoundFacts) -> Analysis:
    for host in evidence.hosts:
        _read_host(host, facts)
    working = [h for h in evidence.hosts if h.finding is None]
    evidence.working_hosts = len(working)
    evidence.blocked_hosts = [h.host for h in evidence.hosts if is_technique(h.verdict)]
    if working or not evidence.hosts:
        return Analysis.passed()
    hosts = evidence.hosts
    # Hosts whose failure argues something about the path first; the others only if none does.
    judged = [h for h in hosts if h.verdict not in (Verdict.DOWN, Verdict.ERROR)] or hosts
    counts = Counter(h.verdict for h in judged)
    chosen = min(counts, key=lambda v: (-counts[v], severity(v)))  # the most common; ties to the worse
    picked = [h for h in judged if h.verdict == chosen]
    failure = most_common([h.failure for h in picked])
    first = next(h.finding for h in picked if (h.failure or "") == failure and h.finding is not None)
    reason = first.reason
    if len(hosts) > 1 and isinstance(reason, Reason):
        reason = Reason("hosts_share", {"count": len(picked), "total": len(hosts), "reason": reason})
    return Analysis.failed(failure, Finding(first.technique, first.fault, first.differential, reason))


def _read_host(host: ChatHost, facts: RoundFacts) -> None:
    """The host's failure, stage and Finding, and the verdict it argues on its own."""
    host.failure, host.stage, host.finding, host.verdict = None, None, None, str(Verdict.OK)
    steps = []
    if host.dns is not None:
        steps.append(("dns", dns.analyse(host.dns, facts)))
    if host.connects is not None:
        steps.append(("tcp", tcp.analyse(TCPEvidence(host.connects, host.control_connects), facts)))
    failed = next(((name, step) for name, step in steps if not step.ok), None)
    if failed is not None:
        host.stage, step = failed
        host.failure, host.finding = step.failure, step.finding
    elif not host.exchanges:
        host.failure, host.stage = failures.TIMEOUT, "tcp"
        host.finding = Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", Reason("no_port_connected"))
    elif all(e.failure is not None for e in host.exchanges):
        exchanges = host.exchanges
        host.failure, host.stage = most_common([e.failure for e in exchanges]), "protocol"
        readings = {after_connect(e.failure or "", None, e.unacked_segments) for e in exchanges}
        if readings == {AfterConnect.SILENT}:
            # Our bytes were acknowledged by the server's side, which then said nothing: a silent
            # server (a censor dropping them would leave them unacknowledged).
            host.finding = Finding(TECHNIQUE, Fault.SERVER, "transport", Reason("server_silent"))
        elif AfterConnect.SERVER_SPOKE not in readings:
            stages = ", ".join(sorted({e.stage for e in exchanges}))
            host.finding = Finding(TECHNIQUE, Fault.PATH, "transport", Reason("chat_cut", {"failure": host.failure, "stages": stages}))
        else:
            host.finding = Finding(TECHNIQUE, Fault.SERVER, "transport", Reason("chat_server_answered", {"failure": host.failure}))
    if host.finding is not None:
        host.verdict = str(judge_target([CheckResult(NAME, False, host.failure, 0.0, host.finding)]).verdict)
