"""Re-judging the archive: the observations kept for the judge, and lines that cannot be read again.

Whole rounds re-judged end to end: tests/test_verdicts.py (every verdict over loopback) and
tests/lab/test_matrix.py (the lab's scenarios)."""

from __future__ import annotations

import io
import json

import pytest

from probe.evidence.observations import Unreadable, dump, load
from probe.evidence.rejudge import print_rejudging, rejudge
from probe.model import (
    BlockPage,
    Certificate,
    ChatEvidence,
    ChatExchange,
    ChatHost,
    DNSEvidence,
    DNSQuery,
    HTTPExchange,
    HTTPProbe,
    TCPConnect,
    TLSEvidence,
    TLSHandshake,
    Unfinished,
)

CERTIFICATE = Certificate("CN=x", "CN=y", "2026-01-01", "2030-01-01", 1.9e9, "ab" * 32, ["x.test"])


@pytest.mark.parametrize(
    "evidence",
    [
        TLSEvidence(
            [TLSHandshake("192.0.2.1", 443, "x.test", "connection_reset", received_bytes=0, failed_operation="tls_handshake", t0=0.1, t=0.2, transaction_id=2)],
            decoy=TLSHandshake("192.0.2.1", 443, "example.org"),
        ),
        HTTPExchange(
            "http://x.test/",
            "192.0.2.1",
            status_code=451,
            blockpage=BlockPage("status", "451"),
            decoy=HTTPProbe("192.0.2.1", 80, "example.org"),
            same_name=HTTPProbe("192.0.2.1", 80, "x.test", "connection_reset"),
        ),
        HTTPExchange(
            "https://x.test/",
            "192.0.2.1",
            failure="connection_reset",
            decoy=TLSHandshake("192.0.2.1", 443, "example.org", response_started=True),
            same_name=TLSHandshake("192.0.2.1", 443, "x.test", "connection_reset"),
        ),
        ChatEvidence(
            [
                ChatHost(
                    "e1.test",
                    ["192.0.2.1"],
                    "dns",
                    dns=DNSEvidence([DNSQuery("system", False, ["192.0.2.1"])], ["192.0.2.1"], "dns"),
                    connects=[TCPConnect("192.0.2.1", 443)],
                    exchanges=[ChatExchange("192.0.2.1", 443, "generic_timeout_error", "first_bytes", unacked_segments=0)],
                )
            ]
        ),
        Unfinished("overran", "generic_timeout_error"),
    ],
    ids=["tls", "http", "https-differential", "chat", "unfinished"],
)
def test_observations_come_back_as_the_records_they_were(evidence):
    assert load(json.loads(json.dumps(dump(evidence)))) == evidence


def test_what_no_analyser_reads_is_not_kept_twice():
    stored = dump(TLSEvidence([TLSHandshake("192.0.2.1", 443, "x.test", certificate=CERTIFICATE)], certificate=CERTIFICATE))
    assert "certificate" not in json.dumps(stored)  # kept once, in the line's tls_handshakes
    stored = dump(DNSEvidence([DNSQuery("system", False, judgement="ok", reason=None)]))
    assert "judgement" not in json.dumps(stored)  # the judge writes it again


@pytest.mark.parametrize(
    "data",
    [{}, {"record": "Nothing"}, {"record": "TCPConnect", "fields": {"address": "a"}}, {"record": "TCPConnect", "fields": {"address": "a", "port": "443"}}],
)
def test_stored_observations_that_make_no_record_are_refused(data):
    with pytest.raises(Unreadable):
        load(data)


def test_lines_without_observations_are_counted_not_compared():
    old = {"time": "2026-03-01T12:00:00.000Z", "vantage": "v", "service": "s", "target": "t", "verdict": "ok", "service_verdict": "ok"}
    outcome = rejudge([old])
    assert (outcome.lines, outcome.judged, outcome.differences) == (1, 0, [])
    assert "written before msgreach kept them" in outcome.unreadable[0]
    out = io.StringIO()
    assert print_rejudging(outcome, out) == 1  # nothing could be read again: nothing is reproduced
    assert out.getvalue().splitlines()[-1] == "0 of 1 line(s) re-judged; 0 verdict(s) differ; 1 line(s) could not be read again"


def test_a_helper_checks_stored_outcome_is_taken_as_it_was():
    """The helper checks keep records of their own, which the judge does not read yet: their
    stored outcome and Finding stand, and the target's verdict follows from them."""
    from dataclasses import dataclass

    from probe.evidence.records import records
    from probe.judge import judge_target
    from probe.model import CheckResult, Fault, Finding, ServiceResult, TargetResult, VantageResult, VantageVerdict, Verdict
    from probe.reasons import text

    @dataclass
    class StreamRecord:  # stands in for udp_stream's own record
        loss_ratio: float

    check = CheckResult(
        "udp_stream", False, "udp_stream_cut", 1.0, Finding(Verdict.UDP_BLOCKED, Fault.PATH, "control_stream", text("cut after 3.0 s")), StreamRecord(1.0)
    )
    judged = judge_target([check])
    target = TargetResult("calls", "stream", "helper.test", judged.verdict, [check], judged.reason, reasons=judged.reasons)
    result = VantageResult("v", VantageVerdict.OK, [ServiceResult("calls", Verdict.UDP_BLOCKED, [target])], [], 1.7e9, 1.0, healthy_resolvers=["system"])
    lines = [json.loads(json.dumps(line)) for line in records(result)]
    assert lines[0]["observations"] == [{"check": "udp_stream"}] and lines[0]["verdict"] == "udp_blocked"
    outcome = rejudge(lines)
    assert (outcome.judged, outcome.differences, outcome.unreadable) == (1, [], [])
