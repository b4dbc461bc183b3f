"""Blocks that linger (issue 20, item 3): the trigger clock across rounds, the judge's rule for a
failure that followed our own trigger probe, and the probe log and note in the archive, read
again by --rejudge. The round's order and the cooldown against a real lingering censor:
tests/lab/test_linger.py."""

from __future__ import annotations

from probe import judge
from probe.evidence.records import record
from probe.evidence.rejudge import rejudge
from probe.evidence.schema import SCHEMA
from probe.judge.analysis import RoundFacts, analyse
from probe.model import (
    AfterTrigger,
    CircumventionEvidence,
    HelperExchange,
    HTTPExchange,
    HTTPProbe,
    NoHelper,
    SignatureProbe,
    TargetResult,
    TCPConnect,
    TCPEvidence,
    TLSHandshake,
    VantageResult,
    VantageVerdict,
    Verdict,
)
from probe.triggers import MEASUREMENT, TRIGGER, TriggerClock, destinations, probe_records, touched

FACTS = RoundFacts(healthy_resolvers=frozenset())


def _circumvention(arrived: int) -> TargetResult:
    evidence = CircumventionEvidence("abroad", "wireguard", "udp", [SignatureProbe("signature", 148, arrived), SignatureProbe("neutral", 148, 148)])
    check = analyse("circumvention", evidence, FACTS, 0.7)
    verdict = judge.judge_attempt([check], cut=False)
    return TargetResult("circumvention", "wireguard", "helper", verdict.verdict, [check], verdict.reason, reasons=verdict.reasons)


def _refused_connect() -> TargetResult:
    evidence = TCPEvidence([TCPConnect("198.18.4.2", 443, "generic_timeout_error", failed_operation="connect", t0=0.0, t=3.0)])
    check = analyse("tcp", evidence, FACTS, 3.0)
    verdict = judge.judge_attempt([check], cut=False)
    return TargetResult("svc", "t", "h.test", verdict.verdict, [check], verdict.reason, reasons=verdict.reasons)


def _circumvention_cut(evidence: HelperExchange | NoHelper) -> TargetResult:
    check = analyse("circumvention", evidence, FACTS, 0.7)
    verdict = judge.judge_attempt([check], cut=False)
    return TargetResult("circumvention", "wireguard", "helper", verdict.verdict, [check], verdict.reason, reasons=verdict.reasons)


def test_a_trigger_that_sent_no_signature_arms_nothing_and_one_whose_report_was_eaten_does() -> None:
    frozen = "helper_line_frozen"
    before = [
        _circumvention_cut(HelperExchange("abroad", "/v1/probe/expect", sent_bytes=400, received_bytes=0, duration_seconds=8.0, failure=frozen)),
        _circumvention_cut(HelperExchange("abroad", "resolve", failure="dns_nxdomain_error")),
        _circumvention_cut(NoHelper("abroad")),
    ]
    for result in before:
        assert result.verdict == Verdict.ERROR, result
        clock = TriggerClock()
        clock.sent(result, at=100.0, round_started_at=1.7e9)
        assert clock.after({"helper abroad"}, 130.0, 600.0) is None, result.checks[0].evidence
        assert clock.held("circumvention", "wireguard", 160.0, 600.0) is None  # measured again next round
    # The signature went out, then the line ate its report: the block may be ours.
    eaten = _circumvention_cut(HelperExchange("abroad", "/v1/probe/report", sent_bytes=400, duration_seconds=8.0, failure=frozen))
    assert eaten.verdict == Verdict.ERROR
    clock = TriggerClock()
    clock.sent(eaten, at=100.0, round_started_at=1.7e9)
    assert clock.after({"helper abroad"}, 130.0, 600.0) is not None
    assert clock.held("circumvention", "wireguard", 160.0, 600.0) is not None


def test_destinations_are_addresses_and_helpers() -> None:
    assert destinations(_refused_connect().checks[0].evidence) == {"198.18.4.2"}
    assert destinations(_circumvention(148).checks[0].evidence) == {"helper abroad"}


def test_destinations_reach_records_nested_in_records_and_lists() -> None:
    # The walk skips the fields whose type holds no record (text, numbers, lists of text): what
    # a record holds under a field typed with a record, a union or `object` is still reached.
    exchange = HTTPExchange(
        "https://h.test/", "198.18.4.2", decoy=TLSHandshake("198.18.4.3", 443, "decoy.test"),
        same_name=HTTPProbe("198.18.4.4", 80, "h.test"),
    )
    assert destinations(exchange) == {"198.18.4.2", "198.18.4.3", "198.18.4.4"}
    check = analyse("tcp", TCPEvidence([TCPConnect("198.18.4.5", 443)], control_connects=[TCPConnect("198.18.4.6", 443)]), FACTS, 0.1)
    assert destinations([check]) == {"198.18.4.5", "198.18.4.6"}


def test_a_failure_within_the_cooldown_after_a_failed_trigger_is_noted_and_one_after_it_is_not() -> None:
    clock = TriggerClock()
    clock.sent(_circumvention(148), at=50.0, round_started_at=1.7e9)
    assert clock.after({"helper abroad"}, 60.0, 600.0) is None  # its signature arrived: nothing set off that we can see
    clock.sent(_circumvention(0), at=100.0, round_started_at=1.7e9)
    note = clock.after({"helper abroad"}, 130.0, 600.0)
    assert note is not None
    assert note[0] == AfterTrigger("helper abroad", "circumvention/wireguard", 30.0, 600.0) and note[1] == 700.0
    assert clock.after({"helper abroad"}, 701.0, 600.0) is None  # the cooldown is over
    assert clock.after({"198.18.4.2"}, 130.0, 600.0) is None  # another destination
    assert clock.after({"helper abroad"}, 99.0, 600.0) is None  # began before the trigger


def test_a_trigger_target_is_held_only_while_a_failure_followed_it() -> None:
    clock = TriggerClock()
    clock.sent(_circumvention(148), at=100.0, round_started_at=1.7e9)
    assert clock.held("circumvention", "wireguard", 160.0, 600.0) is None  # it passed, nothing failed after it: sent again
    blocked = _circumvention(0)
    assert blocked.verdict == Verdict.PROTOCOL_BLOCKED
    clock.sent(blocked, at=200.0, round_started_at=1.7e9 + 60)
    held = clock.held("circumvention", "wireguard", 260.0, 600.0)
    assert held is not None and held.verdict == Verdict.PROTOCOL_BLOCKED and held.held_from == 1.7e9 + 60
    assert held.as_json()["held_from"] == 1.7e9 + 60
    assert clock.held("circumvention", "wireguard", 801.0, 600.0) is None  # cooled: measured again


def test_a_failure_after_our_own_trigger_is_the_monitors_error_and_an_ok_stays_ok() -> None:
    failed = _refused_connect()
    assert failed.verdict == Verdict.IP_BLOCKED
    note = AfterTrigger("198.18.4.2", "circumvention/wireguard", 12.0, 600.0)
    judgement = judge.judge_attempt(failed.checks, cut=False, after_trigger=note)
    assert judgement.verdict == Verdict.ERROR
    assert judgement.reasons[-1].key == "after_trigger" and "600 s cooldown" in judgement.reason, judgement.reason
    ok = analyse("tcp", TCPEvidence([TCPConnect("198.18.4.2", 443, t0=0.0, t=0.01)]), FACTS, 0.01)
    assert judge.judge_attempt([ok], cut=False, after_trigger=note).verdict == Verdict.OK


def test_the_probe_log_and_the_note_are_archived_and_read_again() -> None:
    target = _refused_connect()
    note = AfterTrigger("198.18.4.2", "circumvention/wireguard", 12.0, 600.0)
    judgement = judge.judge_attempt(target.checks, cut=False, after_trigger=note)
    target.verdict, target.reasons, target.reason, target.after_trigger = judgement.verdict, judgement.reasons, judgement.reason, note
    trigger = _circumvention(0)
    log = [
        *probe_records("svc", "t", 1, target.checks, 5.0),
        *probe_records("circumvention", "wireguard", 1, trigger.checks, 20.0),
    ]
    assert [(p.destination, p.kind, p.start, p.end, p.failure) for p in log] == [
        ("198.18.4.2", MEASUREMENT, 5.0, 8.0, "generic_timeout_error"),
        ("helper abroad", TRIGGER, 20.0, 20.7, "signature_lost"),
    ]
    assert touched(log, "svc", "t") == log[:1]
    result = VantageResult("v", VantageVerdict.OK, [], [], 1.7e9, 30.0, probes=log)
    line = record(result, "svc", "error", target)
    assert line["schema"] == SCHEMA == "msgreach-evidence/3"
    assert line["probes"] == [{"destination": "198.18.4.2", "service": "svc", "target": "t", "check": "tcp", "kind": "measurement",
                               "attempt": 1, "start": 5.0, "end": 8.0, "failure": "generic_timeout_error"}]
    assert line["after_trigger"] == {"destination": "198.18.4.2", "trigger": "circumvention/wireguard", "seconds": 12.0, "cooldown": 600.0}
    assert rejudge([line]).differences == []
    # Without the note the same observations are a block: the note is what the judge read.
    differences = rejudge([{k: v for k, v in line.items() if k != "after_trigger"}]).differences
    assert [(d.level, d.stored, d.rejudged) for d in differences] == [("target", "error", "ip_blocked"), ("service", "error", "ip_blocked")]
