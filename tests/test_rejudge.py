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


def _helper_round() -> list[dict[str, object]]:
    """The archive lines of a round of helper targets, judged the runner's way: a call stream cut
    after 3 s, a dead signature, a freeze keyed on the name, a line that froze, no helper; and a
    web target a control helper sees blocked too (`down`) next to one it finds ok."""
    from probe.checks.udp_stream import _summarise
    from probe.evidence.records import records
    from probe.judge import RoundFacts, analyse, judge_attempt, judge_with_helpers, service_verdict
    from probe.model import (
        BulkTransfer,
        CircumventionEvidence,
        EchoedStream,
        HelperExchange,
        HelperTransferEvidence,
        HelperView,
        NoHelper,
        ServiceResult,
        SignatureProbe,
        TargetResult,
        TCPEvidence,
        UDPStreamEvidence,
        VantageResult,
        VantageVerdict,
    )

    def stream(kind: str, echoed: int) -> EchoedStream:
        record = EchoedStream(kind)
        sent = [i / 10 for i in range(60)]
        _summarise(record, sent, [s + 0.01 if i < echoed else None for i, s in enumerate(sent)], 10)
        return record

    facts = RoundFacts(healthy_resolvers=frozenset({"system"}))
    measured = {
        "call": ("udp_stream", UDPStreamEvidence("abroad", 10, 172, 6.0, stream("call", 30), stream("control", 60), 0.2)),
        "vpn": ("circumvention", CircumventionEvidence("abroad", "wireguard", "udp", [SignatureProbe("signature", 148), SignatureProbe("neutral", 148, 148)])),
        "freeze": ("helper_transfer", HelperTransferEvidence("abroad", 65536, transfers=[
            BulkTransfer("plain", None, 65536), BulkTransfer("tls_decoy", "example.org", 65536), BulkTransfer("tls_name", "x.test", 16384, 16384, "stalled")])),
        "frozen-line": ("udp_stream", HelperExchange("abroad", "/v1/stream", 300, 2000, 5.0, failure="helper_line_frozen")),
        "no-helper": ("circumvention", NoHelper("elsewhere")),
    }
    targets = []
    for name, (check, evidence) in measured.items():
        result = analyse(check, evidence, facts)
        judged = judge_attempt([result], cut=False)
        targets.append(TargetResult("calls", name, "helper.test", judged.verdict, [result], judged.reason, reasons=judged.reasons))
    web = []
    for name, theirs in (("dead", HelperView("abroad", "ip_blocked", failed_check="tcp", failure="connection_refused")), ("here-only", HelperView("abroad", "ok"))):
        tcp = analyse("tcp", TCPEvidence([TCPConnect("192.0.2.1", 443, "connection_refused")]), facts)
        judged = judge_attempt([tcp], cut=False)
        web.append(judge_with_helpers(TargetResult("web", name, "web.test", judged.verdict, [tcp], judged.reason, reasons=judged.reasons), [theirs]))
    services = [ServiceResult(name, service_verdict(members), members) for name, members in (("calls", targets), ("web", web))]
    result = VantageResult("v", VantageVerdict.OK, services, [], 1.7e9, 1.0, healthy_resolvers=["system"])
    assert [str(t.verdict) for t in targets] == ["udp_blocked", "protocol_blocked", "throttled", "error", "error"]
    assert [str(t.verdict) for t in web] == ["down", "ip_blocked"] and [c.check for c in web[0].checks] == ["tcp", "helper"]
    return [json.loads(json.dumps(line)) for line in records(result)]


def test_helper_targets_and_a_helpers_view_are_judged_again_the_same():
    lines = _helper_round()
    outcome = rejudge(lines)
    assert (outcome.lines, outcome.judged, outcome.differences, outcome.unreadable) == (7, 7, [], [])
    assert {entry["record"] for line in lines for entry in line["observations"]} >= {
        "UDPStreamEvidence", "CircumventionEvidence", "HelperTransferEvidence", "HelperExchange", "NoHelper", "HelperView",
    }


def test_a_stored_helper_verdict_the_judge_would_not_give_is_a_difference():
    lines = _helper_round()
    by_target = {line["target"]: line for line in lines}
    by_target["dead"]["verdict"] = "ip_blocked"  # as if the helper's view had not been weighed
    by_target["frozen-line"]["verdict"] = "udp_blocked"  # as if a frozen line were a block
    outcome = rejudge(lines)
    assert sorted((d.name, d.stored, d.rejudged) for d in outcome.differences if d.level == "target") == [
        ("calls/frozen-line", "udp_blocked", "error"), ("web/dead", "ip_blocked", "down"),
    ]
