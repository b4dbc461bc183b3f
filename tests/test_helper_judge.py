"""What the judge reads in the helper checks' evidence (the differential rule)."""

from __future__ import annotations

from probe import failures
from probe.checks.udp_stream import _summarise
from probe.judge import RoundFacts
from probe.judge import circumvention as circumvention_judge
from probe.judge import helper_transfer as transfer_judge
from probe.judge import udp_stream as stream_judge
from probe.model import (
    BulkTransfer,
    CircumventionEvidence,
    EchoedStream,
    Fault,
    HelperTransferEvidence,
    PacketCounts,
    SignatureProbe,
    UDPStreamEvidence,
    Verdict,
)

FACTS = RoundFacts()


def _stream(kind: str, echoed: list[bool], pps: int = 10) -> EchoedStream:
    record = EchoedStream(kind)
    sent = [i / pps for i in range(len(echoed))]
    _summarise(record, sent, [s + 0.01 if e else None for s, e in zip(sent, echoed, strict=True)], pps)
    return record


def _streams(call: EchoedStream, control: EchoedStream, floor: float) -> tuple[str | None, object]:
    analysis = stream_judge.analyse(UDPStreamEvidence("abroad", 10, 172, 6.0, call, control, floor), FACTS)
    return analysis.failure, analysis.finding


def test_a_stream_cut_after_three_seconds_is_udp_blocked_with_the_time() -> None:
    call = _stream("call", [True] * 30 + [False] * 30)
    assert call.cut_after_seconds == 3.0 and call.loss_ratio == 0.5
    assert [b.echoed for b in call.buckets] == [10, 10, 10, 0, 0, 0]
    failure, finding = _streams(call, _stream("control", [True] * 60), 0.2)
    assert failure == failures.UDP_STREAM_CUT and finding.technique == Verdict.UDP_BLOCKED and finding.fault == Fault.PATH
    assert "cut after 3.0 s" in str(finding.reason)


def test_heavy_partial_loss_is_throttled_and_light_loss_is_ok() -> None:
    lossy = _stream("call", [i % 3 != 0 for i in range(60)])
    assert lossy.cut_after_seconds is None and 0.3 < lossy.loss_ratio < 0.35
    failure, finding = _streams(lossy, _stream("control", [True] * 60), 0.2)
    assert failure == failures.UDP_STREAM_LOSS and finding.technique == Verdict.THROTTLED and "33%" in str(finding.reason)
    assert _streams(_stream("call", [i % 20 != 0 for i in range(60)]), _stream("control", [True] * 60), 0.2) == (None, None)


def test_a_loss_difference_chance_could_make_on_a_short_stream_names_no_technique() -> None:
    # 10 datagrams each: 3 of the call's and none of the control's lost happens on one lossy line.
    failure, finding = _streams(_stream("call", [i % 3 != 0 for i in range(10)]), _stream("control", [True] * 10), 0.2)
    assert failure == failures.UDP_STREAM_LOSS and finding.fault == Fault.UNSEPARATED and "too few packets" in str(finding.reason)
    # The same shares over a call's 1,000 datagrams are no chance.
    failure, finding = _streams(_stream("call", [i % 3 != 0 for i in range(1000)]), _stream("control", [i % 15 != 0 for i in range(1000)]), 0.2)
    assert finding.technique == Verdict.THROTTLED and finding.fault == Fault.PATH


def test_both_streams_failing_names_no_technique() -> None:
    failure, finding = _streams(_stream("call", [False] * 60), _stream("control", [False] * 60), 0.2)
    assert failure == failures.UDP_STREAM_CUT and finding.fault == Fault.UNSEPARATED
    assert "dropped from its first packet" in str(finding.reason)


def _probes(protocol: str, signature: SignatureProbe, neutral: SignatureProbe) -> tuple[str | None, object]:
    analysis = circumvention_judge.analyse(CircumventionEvidence("abroad", protocol, "udp", [signature, neutral]), FACTS)
    return analysis.failure, analysis.finding


def test_a_dead_signature_with_live_neutral_bytes_is_protocol_blocked() -> None:
    failure, finding = _probes("wireguard", SignatureProbe("signature", 148, 0), SignatureProbe("neutral", 148, 148))
    assert failure == failures.SIGNATURE_LOST and finding.technique == Verdict.PROTOCOL_BLOCKED and finding.fault == Fault.PATH
    failure, finding = _probes("vless_reality", SignatureProbe("signature", 240, 240, "connection_reset"), SignatureProbe("neutral", 240, 240))
    assert failure == "connection_reset" and finding.fault == Fault.PATH  # arrived, but the sender was reset
    failure, finding = _probes("openvpn", SignatureProbe("signature", 14, 0), SignatureProbe("neutral", 14, 0))
    assert finding.fault == Fault.UNSEPARATED
    assert _probes("openvpn", SignatureProbe("signature", 14, 14), SignatureProbe("neutral", 14, 0)) == (None, None)


def test_a_freeze_that_follows_the_name_or_the_address_is_told_apart() -> None:
    size = 262144

    def done(kind: str, sni: str | None = None) -> BulkTransfer:
        return BulkTransfer(kind, sni, size)

    def frozen(kind: str, sni: str | None = None) -> BulkTransfer:
        return BulkTransfer(kind, sni, 16384, 16384, "stalled")

    def judged(*transfers: BulkTransfer) -> tuple[str | None, object, str | None]:
        evidence = HelperTransferEvidence("abroad", size, transfers=list(transfers))
        analysis = transfer_judge.analyse(evidence, FACTS)
        return analysis.failure, analysis.finding, evidence.keyed_on

    assert judged(done("plain"), done("tls_decoy", "example.org"), done("tls_name", "x")) == (None, None, "none_here")
    failure, finding, keyed = judged(done("plain"), done("tls_decoy", "example.org"), frozen("tls_name", "x"))
    assert (failure, keyed, finding.technique, finding.fault) == ("stalled", "name", Verdict.THROTTLED, Fault.PATH) and "16 KB" in str(finding.reason)
    failure, finding, keyed = judged(done("plain"), frozen("tls_decoy", "example.org"), frozen("tls_name", "x"))
    assert keyed == "address" and finding.differential == "helper_plain"
    failure, finding, keyed = judged(frozen("plain"), frozen("tls_decoy", "example.org"), frozen("tls_name", "x"))
    assert keyed is None and finding.fault == Fault.UNSEPARATED


def test_a_transfer_the_round_left_no_time_for_names_no_key() -> None:
    size = 262144
    skipped = BulkTransfer("tls_name", "x", failure=failures.HELPER_NO_TIME)
    evidence = HelperTransferEvidence("abroad", size, transfers=[BulkTransfer("plain", None, size), BulkTransfer("tls_decoy", "example.org", size), skipped])
    analysis = transfer_judge.analyse(evidence, FACTS)
    assert analysis.failure == failures.HELPER_NO_TIME and analysis.finding.fault == Fault.MONITOR and evidence.keyed_on is None
    assert "no time" in str(analysis.finding.reason) and "tls_name" in str(analysis.finding.reason)
    # A plain transfer that froze still says the path to the helper failed, skipped ones or not.
    frozen = BulkTransfer("plain", None, 16384, 16384, "stalled")
    evidence = HelperTransferEvidence("abroad", size, transfers=[frozen, BulkTransfer("tls_decoy", "example.org", failure=failures.HELPER_NO_TIME), skipped])
    assert transfer_judge.analyse(evidence, FACTS).finding.fault == Fault.UNSEPARATED


def test_an_upload_freeze_while_the_downloads_complete_is_keyed_on_the_direction() -> None:
    size, up = 262144, 65536

    def download(kind: str, sni: str | None, segs: int = 200) -> BulkTransfer:
        return BulkTransfer(kind, sni, size, packets=PacketCounts(segs // 3, segs - segs // 3, 300, size))

    def upload(kind: str, sni: str | None, *, froze: bool) -> BulkTransfer:
        if not froze:
            return BulkTransfer(f"{kind}_upload", sni, 2, sent_bytes=up, acked_bytes=up + 400, answered_bytes=up)
        return BulkTransfer(f"{kind}_upload", sni, 0, 20_000, "stalled", sent_bytes=up, acked_bytes=20_000, packets=PacketCounts(22, 4, 20_000, 0))

    def judged(downloads_segs: int, *frozen: str) -> tuple[HelperTransferEvidence, object]:
        kinds = (("plain", None), ("tls_decoy", "example.org"), ("tls_name", "x"))
        transfers = [download(k, s, downloads_segs) for k, s in kinds] + [upload(k, s, froze=k in frozen) for k, s in kinds]
        evidence = HelperTransferEvidence("abroad", size, transfers=transfers, upload_bytes=up)
        return evidence, transfer_judge.analyse(evidence, FACTS)

    evidence, analysis = judged(200)
    assert analysis.ok and (evidence.keyed_on, evidence.direction) == ("none_here", None)
    evidence, analysis = judged(200, "plain", "tls_decoy", "tls_name")
    assert (analysis.failure, evidence.keyed_on, evidence.direction) == ("stalled", "direction", "upload")
    assert analysis.finding.fault == Fault.PATH and "keyed on the direction" in str(analysis.finding.reason) and "26 packets" in str(analysis.finding.reason)
    evidence, analysis = judged(20, "tls_name")  # the downloads carried fewer packets than the upload froze at
    assert evidence.keyed_on is None and "not the direction" in str(analysis.finding.reason)
    # A refused upload (the helper closed, no count) is no freeze.
    evidence = HelperTransferEvidence("abroad", size, upload_bytes=up, transfers=[
        download("plain", None), download("tls_decoy", "example.org"), download("tls_name", "x"),
        BulkTransfer("tls_name_upload", "x", 0, None, "eof_error", sent_bytes=up)])
    assert transfer_judge.analyse(evidence, FACTS).ok and evidence.keyed_on == "none_here"
