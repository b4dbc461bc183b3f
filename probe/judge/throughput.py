"""throughput: a download against this round's control downloads, and the decoy SNI.

`throttled` needs the control: a control target's transfer this round was fast (over the floor
and `control_ratio` times this one). If every control is about as slow, the vantage's line is
slow: the check passes (a bad line is no block). A control's own slowness is evidence, not a
failure. A fast decoy-SNI download to the same address proves the throttling is keyed on the
name (the method of "Throttling Twitter", IMC 2021).

The comparisons (`is_slow`, `fast_controls`) are rules of the judge that the check applies
while it measures, because they decide whether it downloads again with the decoy; it records
their outcome (`slow`, `control_fast`, `fast_controls`, `sni_keyed`), which this analyser reads.
"""

from __future__ import annotations

from collections.abc import Iterable

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.model import Download, Fault, Finding, ThroughputEvidence, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.THROTTLED
FREEZE_WINDOW = (12 * 1024, 24 * 1024)  # application bytes where the 16–20 KB freeze shows


def is_slow(download: Download, floor_bytes_per_second: float) -> bool:
    """A measured transfer that failed (stalled, cut) or ran under the floor."""
    if not download.measured:
        return False
    return download.failure is not None or (download.bytes_per_second or 0.0) < floor_bytes_per_second


def fast_controls(rates: Iterable[tuple[str, float | None]], rate: float, floor_bytes_per_second: float, control_ratio: float) -> list[str]:
    """The controls whose transfer this round was fast: over the floor, and `control_ratio`
    times `rate` (on a bad line every transfer hovers near the floor: that is no throttle)."""
    return [name for name, other in rates if other is not None and other >= floor_bytes_per_second and other >= control_ratio * rate]


def analyse(evidence: ThroughputEvidence, facts: RoundFacts) -> Analysis:
    download = evidence.download
    if download is None or not evidence.slow or facts.control_target or not evidence.control_fast:
        # Not slow; or a yardstick (its rate is the evidence); or every control as slow: the line.
        return Analysis.passed()
    how = stall_reason(download)
    controls = ", ".join(evidence.fast_controls or ())
    if evidence.sni_keyed:
        finding = Finding(TECHNIQUE, Fault.PATH, "control_download+decoy_sni", Reason("control_download_fast_sni_keyed", {"how": how, "controls": controls}))
    else:
        finding = Finding(TECHNIQUE, Fault.PATH, "control_download", Reason("control_download_fast", {"how": how, "controls": controls}))
    return Analysis.failed(download.failure or failures.THROTTLED, finding)


def stall_reason(download: Download) -> Reason:
    """What the transfer's failure was; the 16–20 KB freeze named as such."""
    if download.stalled_at_bytes is not None:
        low, high = FREEZE_WINDOW
        if low <= download.stalled_at_bytes <= high:
            return Reason("transfer_froze", {"bytes": download.stalled_at_bytes})
        return Reason("transfer_stalled", {"bytes": download.stalled_at_bytes})
    if download.failure is not None:
        return Reason("transfer_cut", {"failure": download.failure, "bytes": download.interrupted_at_bytes or 0})
    return Reason("transfer_slow", {"rate": f"{download.bytes_per_second or 0:.0f}"})
