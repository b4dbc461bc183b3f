"""throughput: a download (and an upload) against this round's control transfers, and the decoy SNI.

`throttled` needs the control: a control target's transfer this round was fast (over the floor
and `control_ratio` times this one). If every control is about as slow, the vantage's line is
slow: the check passes (a bad line is no block). A control's own slowness is evidence, not a
failure.

No keyed claim from one pair (issue 20 item 4): after a slow download the check alternates real,
decoy, real, decoy on fresh connections to the same address. The download is slow only when the
real one is slow both times (a second real transfer that is fast is the lossy line's luck: no
claim); the key is named only when both decoys agree: both fast, keyed on the name (the method of
"Throttling Twitter", IMC 2021). Both slow too is not the name, but the decoy reaches the same
server, so it cannot tell the address from the server's own stall: no key (helper_transfer's plain
TCP from another address names the address key).

Freezes counted in packets trip uploads too (ENDPOINTS.md, "the freeze in packets"): an upload
that froze twice while the download from the same address and name flowed, with at least as many
packets as the upload had when it froze, is keyed on the direction (`keyed_on: direction`,
`direction: upload`). A yardstick (a control, domestic hosting included) whose own transfer froze
the same way this round makes the freeze the line's, not the service's: the check passes and says
so (`line_freeze`, `note`).

The comparisons (`is_slow`, `fast_controls`, `upload_froze`) are rules of the judge that the
check applies while it measures, because they decide whether it measures again; it records what
it measured, which this analyser reads.
"""

from __future__ import annotations

from collections.abc import Iterable

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.model import Download, Fault, Finding, PacketCounts, ThroughputEvidence, Upload, Verdict
from probe.reasons import Reason, render

TECHNIQUE = Verdict.THROTTLED
FREEZE_WINDOW = (12 * 1024, 24 * 1024)  # application bytes where the 16–20 KB freeze shows


def is_slow(download: Download, floor_bytes_per_second: float) -> bool:
    """A measured transfer that failed (stalled, cut) or ran under the floor."""
    if not download.measured:
        return False
    return download.failure is not None or (download.bytes_per_second or 0.0) < floor_bytes_per_second


def upload_froze(upload: Upload) -> bool:
    """The peer stopped acknowledging the body, fell silent and never answered (an answer, even
    an early close after it, or a peer that acknowledges window probes while not reading, is the
    server's own behaviour: the path carried both ways)."""
    return upload.failure == failures.STALLED and not upload.answered and not upload.peer_answering


def freezes(download: bool, upload: bool) -> str | None:
    """The direction word for which transfers froze."""
    return "both" if download and upload else "download" if download else "upload" if upload else None


def fast_controls(rates: Iterable[tuple[str, float | None]], rate: float, floor_bytes_per_second: float, control_ratio: float) -> list[str]:
    """The controls whose transfer this round was fast: over the floor, and `control_ratio`
    times `rate` (on a bad line every transfer hovers near the floor: that is no throttle)."""
    return [name for name, other in rates if other is not None and other >= floor_bytes_per_second and other >= control_ratio * rate]


def analyse(evidence: ThroughputEvidence, facts: RoundFacts) -> Analysis:
    download = evidence.download
    if download is None or facts.control_target:
        return Analysis.passed()  # a yardstick: its rate is the evidence
    slow = _download_slow(evidence)
    uploaded = _upload_frozen(evidence)
    if not slow and not uploaded:
        return Analysis.passed()  # not slow; or every control as slow (the line); or no agreement
    stalled = slow and download.failure == failures.STALLED
    direction = freezes(stalled or (slow and not uploaded), uploaded) or "download"
    evidence.direction = direction
    line = _line_freezes(evidence, stalled, uploaded)
    if line:
        evidence.line_freeze = line
        evidence.note = render(Reason("line_freeze", {"direction": direction, "controls": ", ".join(line)}))
        return Analysis.passed()
    if slow:
        return _throttled_download(evidence, download, uploaded)
    return _upload_only(evidence, download)


def _download_slow(evidence: ThroughputEvidence) -> bool:
    """Slow, with a fast control, and slow again on the second real transfer (a record written
    before the alternation has no second transfer: its one slow transfer stands, without a key)."""
    if not evidence.slow or not evidence.control_fast:
        return False
    floor = evidence.floor_bytes_per_second
    if floor is None:
        return True
    return evidence.again is not None and is_slow(evidence.again, floor)


def _upload_frozen(evidence: ThroughputEvidence) -> bool:
    """Frozen twice: the upload and the same upload again."""
    return all(u is not None and upload_froze(u) for u in (evidence.upload, evidence.upload_again))


def _line_freezes(evidence: ThroughputEvidence, stalled: bool, uploaded: bool) -> list[str]:
    """The yardsticks that froze the same way this round: the line's freeze."""
    same = {"both", "download"} if stalled else set()
    if uploaded:
        same |= {"both", "upload"}
    return sorted(name for name, way in (evidence.control_freezes or {}).items() if way in same)


def _throttled_download(evidence: ThroughputEvidence, download: Download, uploaded: bool) -> Analysis:
    how = stall_reason(download)
    if uploaded and evidence.upload_again is not None:
        how = Reason("upload_froze_too", {"how": how, "packets": _packets(evidence.upload_again.packets)})
    controls = ", ".join(evidence.fast_controls or ())
    key = _decoy_key(evidence)
    evidence.keyed_on = "name" if key == "name" else None
    if key == "name":
        finding = Finding(TECHNIQUE, Fault.PATH, "control_download+decoy_sni", Reason("control_download_fast_sni_keyed", {"how": how, "controls": controls}))
    elif key == "not_name":  # the decoy goes to the same server: slow too, it separates nothing more
        finding = Finding(TECHNIQUE, Fault.PATH, "control_download", Reason("control_download_fast_decoy_slow", {"how": how, "controls": controls}))
    else:
        finding = Finding(TECHNIQUE, Fault.PATH, "control_download", Reason("control_download_fast", {"how": how, "controls": controls}))
    return Analysis.failed(download.failure or failures.THROTTLED, finding)


def _decoy_key(evidence: ThroughputEvidence) -> str | None:
    """`name` when both decoys were fast; `not_name` when both were slow too (the address or
    the server itself: the helper_transfer check's plain TCP tells them apart); else None."""
    floor = evidence.floor_bytes_per_second
    decoys = [d for d in (evidence.decoy, evidence.decoy_again) if d is not None and d.measured]
    if floor is None or len(decoys) < 2:
        return None
    slow = [is_slow(d, floor) for d in decoys]
    return "not_name" if all(slow) else "name" if not any(slow) else None


def _upload_only(evidence: ThroughputEvidence, download: Download) -> Analysis:
    """The upload froze twice while the download from the same address and name flowed."""
    frozen = evidence.upload_again or evidence.upload
    assert frozen is not None  # _upload_frozen said so
    at_freeze, carried = _total(frozen.packets), _total(download.packets)
    params: dict[str, str | int] = {"kb": f"{frozen.size / 1024:.0f}", "acked": frozen.stalled_at_bytes or frozen.acked_bytes,
                                    "packets": _packets(frozen.packets), "download_packets": _packets(download.packets)}
    failure = frozen.failure or failures.STALLED
    if at_freeze is not None and carried is not None and carried < at_freeze:
        # The download carried fewer packets than the upload froze at: a count both ways would
        # explain it as well as the direction. Frozen, keyed on nothing this round can name.
        finding = Finding(TECHNIQUE, Fault.PATH, "download_same_address", Reason("upload_froze_fewer_packets", params))
        return Analysis.failed(failure, finding)
    evidence.keyed_on = "direction"
    return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, "download_same_address", Reason("upload_froze_download_flowed", params)))


def _total(counts: PacketCounts | None) -> int | None:
    return counts.segs_in + counts.segs_out if counts is not None else None


def _packets(counts: PacketCounts | None) -> str:
    total = _total(counts)
    return "?" if total is None else str(total)


def stall_reason(download: Download) -> Reason:
    """What the transfer's failure was; the 16–20 KB freeze named as such, with the packets
    both ways where the kernel counted them."""
    if download.stalled_at_bytes is not None:
        low, high = FREEZE_WINDOW
        packets = _total(download.packets)
        if packets is not None:
            key = "transfer_froze_packets" if low <= download.stalled_at_bytes <= high else "transfer_stalled_packets"
            return Reason(key, {"bytes": download.stalled_at_bytes, "packets": packets})
        if low <= download.stalled_at_bytes <= high:
            return Reason("transfer_froze", {"bytes": download.stalled_at_bytes})
        return Reason("transfer_stalled", {"bytes": download.stalled_at_bytes})
    if download.failure is not None:
        return Reason("transfer_cut", {"failure": download.failure, "bytes": download.interrupted_at_bytes or 0})
    return Reason("transfer_slow", {"rate": f"{download.bytes_per_second or 0:.0f}"})
