"""helper_transfer: is a 16–20 KB freeze keyed on the address or on the name? Three bulk
downloads from the helper abroad: plain TCP (the path to the helper works), TLS with a decoy
SNI, TLS with the target's name. The helper's address is not the service's, so:

- all three complete: the helper's address is not frozen here (`keyed_on: none_here`: a freeze
  the throughput check sees on the service is keyed on the service's address);
- only the TLS transfer with the target's name freezes: `throttled`, keyed on the name
  (differential: the decoy SNI to the same address);
- both TLS transfers freeze while plain TCP flows: `throttled`, keyed on the address: TLS to this
  foreign address is frozen whatever the name (differential: the plain transfer);
- the plain transfer fails too: nothing to compare (`down`).
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import unmeasured_through_helper
from probe.model import BulkTransfer, Fault, Finding, HelperExchange, HelperTransferEvidence, NoHelper, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.THROTTLED


def analyse(evidence: HelperTransferEvidence | HelperExchange | NoHelper, facts: RoundFacts) -> Analysis:
    if not isinstance(evidence, HelperTransferEvidence):
        return unmeasured_through_helper(evidence, TECHNIQUE)
    by_kind = {t.kind: t for t in evidence.transfers}
    plain, decoy, named = (by_kind.get(kind) or BulkTransfer(kind, None) for kind in ("plain", "tls_decoy", "tls_name"))
    done = [complete(t, evidence.bytes) for t in (plain, decoy, named)]
    if all(done):
        evidence.keyed_on = "none_here"
        return Analysis.passed()
    worst = next(t for t in (named, decoy, plain) if not complete(t, evidence.bytes))
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


def complete(transfer: BulkTransfer, size: int) -> bool:
    return transfer.received_bytes >= size and transfer.failure is None


def _kilobytes(count: int) -> str:
    return f"{count / 1024:.0f}"
