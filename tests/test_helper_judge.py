"""What the helper checks conclude from their evidence (the differential rule)."""

from __future__ import annotations

from probe.checks import circumvention, udp_stream
from probe.checks.circumvention import ProbeRecord
from probe.checks.udp_stream import StreamRecord, _summarise
from probe.model import Fault, Verdict


def _stream(kind: str, echoed: list[bool], pps: int = 10) -> StreamRecord:
    record = StreamRecord(kind)
    sent = [i / pps for i in range(len(echoed))]
    _summarise(record, sent, [s + 0.01 if e else None for s, e in zip(sent, echoed)], pps)
    return record


def test_a_stream_cut_after_three_seconds_is_udp_blocked_with_the_time() -> None:
    call = _stream("call", [True] * 30 + [False] * 30)
    assert call.cut_after_seconds == 3.0 and call.loss_ratio == 0.5
    assert [b.echoed for b in call.buckets] == [10, 10, 10, 0, 0, 0]
    failure, finding = udp_stream.judge(call, _stream("control", [True] * 60), 0.2)
    assert failure == udp_stream.STREAM_CUT and finding.technique == Verdict.UDP_BLOCKED and finding.fault == Fault.PATH
    assert "cut after 3.0 s" in finding.reason


def test_heavy_partial_loss_is_throttled_and_light_loss_is_ok() -> None:
    lossy = _stream("call", [i % 3 != 0 for i in range(60)])
    assert lossy.cut_after_seconds is None and 0.3 < lossy.loss_ratio < 0.35
    failure, finding = udp_stream.judge(lossy, _stream("control", [True] * 60), 0.2)
    assert failure == udp_stream.STREAM_LOSS and finding.technique == Verdict.THROTTLED and "33%" in finding.reason
    assert udp_stream.judge(_stream("call", [i % 20 != 0 for i in range(60)]), _stream("control", [True] * 60), 0.2) == (None, None)


def test_both_streams_failing_names_no_technique() -> None:
    failure, finding = udp_stream.judge(_stream("call", [False] * 60), _stream("control", [False] * 60), 0.2)
    assert failure == udp_stream.STREAM_CUT and finding.fault == Fault.UNSEPARATED
    assert "dropped from its first packet" in finding.reason


def test_a_dead_signature_with_live_neutral_bytes_is_protocol_blocked() -> None:
    failure, finding = circumvention.judge("wireguard", ProbeRecord("signature", 148, 0), ProbeRecord("neutral", 148, 148))
    assert failure == circumvention.SIGNATURE_LOST and finding.technique == Verdict.PROTOCOL_BLOCKED and finding.fault == Fault.PATH
    failure, finding = circumvention.judge("vless_reality", ProbeRecord("signature", 240, 240, "connection_reset"), ProbeRecord("neutral", 240, 240))
    assert failure == "connection_reset" and finding.fault == Fault.PATH  # arrived, but the sender was reset
    failure, finding = circumvention.judge("openvpn", ProbeRecord("signature", 14, 0), ProbeRecord("neutral", 14, 0))
    assert finding.fault == Fault.UNSEPARATED
    assert circumvention.judge("openvpn", ProbeRecord("signature", 14, 14), ProbeRecord("neutral", 14, 0)) == (None, None)


def test_a_freeze_that_follows_the_name_or_the_address_is_told_apart() -> None:
    from probe.checks import helper_transfer
    from probe.checks.helper_transfer import TransferRecord

    size = 262144
    done = lambda kind, sni=None: TransferRecord(kind, sni, size)
    frozen = lambda kind, sni=None: TransferRecord(kind, sni, 16384, 16384, "stalled")
    assert helper_transfer.judge(done("plain"), done("tls_decoy", "example.org"), done("tls_name", "x"), size=size) == (None, None, "none_here")
    failure, finding, keyed = helper_transfer.judge(done("plain"), done("tls_decoy", "example.org"), frozen("tls_name", "x"), size=size)
    assert (failure, keyed, finding.technique, finding.fault) == ("stalled", "name", Verdict.THROTTLED, Fault.PATH) and "16 KB" in finding.reason
    failure, finding, keyed = helper_transfer.judge(done("plain"), frozen("tls_decoy", "example.org"), frozen("tls_name", "x"), size=size)
    assert keyed == "address" and finding.differential == "helper_plain"
    failure, finding, keyed = helper_transfer.judge(frozen("plain"), frozen("tls_decoy", "example.org"), frozen("tls_name", "x"), size=size)
    assert keyed is None and finding.fault == Fault.UNSEPARATED
