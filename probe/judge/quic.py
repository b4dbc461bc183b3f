"""quic: HTTP/3 against TCP+TLS to the same host, and the decoy SNI over QUIC.

QUIC failing while TCP+TLS to the same host succeed singles QUIC out: `quic_blocked`, keyed on
the name when a decoy SNI completes its QUIC handshake to the same address, on QUIC itself when
it fails too (Russia's TSPU drops QUIC Initials by size: IMC 2022). Without a TCP+TLS result,
or with TCP+TLS failing too, nothing was compared. A handshake that completed and a request that
then went unanswered, or a server that closed with an error of its own, is the server's doing.
A missing aioquic is the monitor's.
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.model import Fault, Finding, QUICEvidence, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.QUIC_BLOCKED


def analyse(evidence: QUICEvidence, facts: RoundFacts) -> Analysis:
    if evidence.error is not None or evidence.attempt is None:
        return Analysis.failed(failures.UNAVAILABLE, Finding(TECHNIQUE, Fault.MONITOR, "", Reason("aioquic_missing")))
    attempt = evidence.attempt
    if attempt.failure is None:
        return Analysis.passed()
    return Analysis.failed(attempt.failure, _finding(evidence, attempt.failure))


def _finding(evidence: QUICEvidence, failure: str) -> Finding:
    attempt = evidence.attempt
    assert attempt is not None
    if evidence.tls_ok is None:
        return Finding(TECHNIQUE, Fault.UNSEPARATED, "", Reason("quic_no_tls_result"))
    if not evidence.tls_ok:
        return Finding(TECHNIQUE, Fault.UNSEPARATED, "", Reason("quic_tls_failed_too"))
    if attempt.handshake_seconds is not None:
        return Finding(TECHNIQUE, Fault.SERVER, "", Reason("quic_request_failed", {"failure": failure}))
    if failure not in failures.INTERFERENCE:
        return Finding(TECHNIQUE, Fault.SERVER, "", Reason("quic_server_ended", {"failure": failure}))
    decoy = evidence.decoy
    if decoy is None:  # no decoy configured
        return Finding(TECHNIQUE, Fault.PATH, "tls", Reason("quic_singled_out", {"failure": failure}))
    if decoy.failure is None:
        evidence.keyed_on = "name"
        return Finding(TECHNIQUE, Fault.PATH, "tls+decoy_sni", Reason("quic_keyed_on_name", {"failure": failure}))
    evidence.keyed_on = "quic"
    return Finding(TECHNIQUE, Fault.PATH, "tls+decoy_sni", Reason("quic_keyed_on_quic", {"failure": failure, "decoy_failure": decoy.failure}))
