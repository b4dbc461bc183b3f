"""helper_transfer: is a freeze keyed on the address, the name or the direction? Three bulk
downloads from the helper abroad: plain TCP (the path to the helper works), TLS with a decoy
SNI, TLS with the target's name; then, where the check uploads, the same three as uploads to the
helper. The helper's address is not the service's, so, for each direction:

- all three complete: the helper's address is not frozen here (`keyed_on: none_here`: a freeze
  the throughput check sees on the service is keyed on the service's address);
- only the TLS transfer with the target's name freezes: `throttled`, keyed on the name
  (differential: the decoy SNI to the same address);
- both TLS transfers freeze while plain TCP flows: `throttled`, keyed on the address: TLS to this
  foreign address is frozen whatever the name (differential: the plain transfer);
- the plain transfer fails too: nothing to compare (`down`).

Uploads (freezes counted in packets both ways trip them too): the uploads freezing while the
downloads all completed is keyed on the direction (differential: the downloads over the same
connections' kinds, which carried more packets than the uploads had when they froze); both
directions freezing is read from the downloads, `direction: both`.
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import unmeasured_through_helper
from probe.model import BulkTransfer, Fault, Finding, HelperExchange, HelperTransferEvidence, NoHelper, PacketCounts, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.THROTTLED
_KINDS = ("plain", "tls_decoy", "tls_name")
_UPLOAD = "_upload"


def analyse(evidence: HelperTransferEvidence | HelperExchange | NoHelper, facts: RoundFacts) -> Analysis:
    if not isinstance(evidence, HelperTransferEvidence):
        return unmeasured_through_helper(evidence, TECHNIQUE)
    by_kind = {t.kind: t for t in evidence.transfers}
    downloads = [by_kind.get(kind) or BulkTransfer(kind, None) for kind in _KINDS]
    uploads = [by_kind[f"{kind}{_UPLOAD}"] for kind in _KINDS if f"{kind}{_UPLOAD}" in by_kind]
    down_ok = all(complete(t, evidence.bytes) for t in downloads)
    up_ok = not any(froze(t) for t in uploads)  # what this check reads is freezes: a refused upload is none
    evidence.direction = None if down_ok and up_ok else "upload" if down_ok else "download" if up_ok else "both"
    if evidence.direction == "download" and any(t.failure == failures.HELPER_NO_TIME for t in uploads):
        evidence.direction = None  # the uploads were not measured: which direction froze is not known
    if down_ok and up_ok:
        evidence.keyed_on = "none_here"
        return Analysis.passed()
    if down_ok:
        return _upload_only(evidence, downloads, uploads)
    return _compare(evidence, downloads, evidence.bytes)


def _compare(evidence: HelperTransferEvidence, transfers: list[BulkTransfer], size: int) -> Analysis:
    """The three transfers of one direction, at least one of which did not complete."""
    plain, decoy, named = transfers
    done = [complete(t, size) for t in transfers]
    skipped = [t.kind for t in transfers if t.failure == failures.HELPER_NO_TIME]
    if skipped and (done[0] or plain.failure == failures.HELPER_NO_TIME):  # a plain transfer that failed says more (below)
        evidence.keyed_on = None
        reason = Reason("transfer_no_time", {"kinds": ", ".join(skipped)})
        return Analysis.failed(failures.HELPER_NO_TIME, Finding(TECHNIQUE, Fault.MONITOR, "helper_plain", reason))
    worst = next(t for t in (named, decoy, plain) if not complete(t, size))
    failure = worst.failure or failures.STALLED
    at = _kilobytes(worst.stalled_at_bytes if worst.stalled_at_bytes is not None else worst.received_bytes)
    if not done[0]:
        evidence.keyed_on = None
        reason = Reason("transfer_plain_failed", {"kb": _kilobytes(plain.received_bytes)})
        return Analysis.failed(failure, Finding(TECHNIQUE, Fault.UNSEPARATED, "helper_plain", reason))
    if done[1]:
        evidence.keyed_on = "name"
        reason = Reason("transfer_keyed_on_name", {"sni": named.sni or "", "kb": at, "decoy": decoy.sni or ""})
        return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, "helper_decoy_sni", reason))
    evidence.keyed_on = "address"
    return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, "helper_plain", Reason("transfer_keyed_on_address", {"kb": at})))


def _upload_only(evidence: HelperTransferEvidence, downloads: list[BulkTransfer], uploads: list[BulkTransfer]) -> Analysis:
    """Every download completed, an upload froze: the direction, when the downloads carried more
    packets than the frozen upload had (else a count both ways explains it as well)."""
    frozen = next(t for t in reversed(uploads) if froze(t))
    failure = frozen.failure or failures.STALLED
    at_freeze = _total(frozen.packets)
    carried = min((n for n in (_total(t.packets) for t in downloads) if n is not None), default=None)
    params: dict[str, str | int] = {"kind": frozen.kind, "kb": _kilobytes(frozen.stalled_at_bytes or frozen.acked_bytes or 0),
                                    "packets": "?" if at_freeze is None else at_freeze, "download_packets": "?" if carried is None else carried}
    if at_freeze is not None and carried is not None and carried < at_freeze:
        evidence.keyed_on = None
        return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, "helper_download", Reason("helper_upload_froze_fewer_packets", params)))
    evidence.keyed_on = "direction"
    return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, "helper_download", Reason("helper_upload_froze_keyed_on_direction", params)))


def complete(transfer: BulkTransfer, size: int) -> bool:
    return transfer.received_bytes >= size and transfer.failure is None


def froze(transfer: BulkTransfer) -> bool:
    """An upload the helper stopped acknowledging, with no count from it."""
    return transfer.failure == failures.STALLED and transfer.answered_bytes is None


def _total(counts: PacketCounts | None) -> int | None:
    return counts.segs_in + counts.segs_out if counts is not None else None


def _kilobytes(count: int) -> str:
    return f"{count / 1024:.0f}"
