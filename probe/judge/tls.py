"""tls: the handshake with the real name, and what the decoy SNI to the same address did.

The decoy separates `sni_blocked` (it completes: something on the path reacts to the name)
from the rest. A server that spoke (garbage, an alert) for the real name or the decoy, or whose
answer began and then stopped (it drips, or closes after 200 bytes of its handshake), is the
server's fault: `down`. The decoy cut as well separates nothing: `tls_blocked` stands alone, as
the contract lets it. A certificate that does not validate for the name is `tls_mitm`, unless it
is the server's own expired or malformed one.

`fingerprint: both`: the browser-like hello decides (what the apps send); Python's hello to the
same address and name is the differential that names a block keyed on the ClientHello.
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import AfterConnect, after_connect, is_monitor_failure
from probe.model import Fault, Finding, TLSEvidence, TLSHandshake, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.TLS_BLOCKED
VERIFY_FAILURES = frozenset({failures.SSL_INVALID_HOSTNAME, failures.SSL_UNKNOWN_AUTHORITY, failures.SSL_INVALID_CERTIFICATE})
# The server answered, but not with a handshake we could complete: garbage, an alert, a chain
# past OpenSSL's limit. A censor resets, drops or closes; it does not speak.
_SERVER_SPOKE = frozenset({failures.SSL_FAILED_HANDSHAKE, failures.PROTOCOL_ERROR})


def analyse(evidence: TLSEvidence, facts: RoundFacts) -> Analysis:
    browser = evidence.browser.handshake if evidence.browser is not None else None
    if browser is not None and not evidence.handshakes:  # `fingerprint: browser`
        if browser.failure is None:
            return Analysis.passed()
        if is_monitor_failure(browser.failure):
            return Analysis.failed(browser.failure, Finding(TECHNIQUE, Fault.MONITOR, "", Reason("no_browser_handshake")))
        return Analysis.failed(browser.failure, from_decoy(TECHNIQUE, browser, evidence.decoy))
    python = _python(evidence)
    if browser is None or is_monitor_failure(browser.failure):  # `python`, or no browser here
        return python
    if python.ok and browser.failure is None:
        return Analysis.passed()
    if python.ok:
        evidence.fingerprint_keyed = "browser"
        reason = Reason("keyed_on_client_hello", {"failure": str(browser.failure)})
        return Analysis.failed(str(browser.failure), Finding(TECHNIQUE, Fault.PATH, "python_hello", reason))
    if browser.failure is None:
        # What the apps meet passes: the target is reachable; the evidence keeps which hello was cut.
        evidence.fingerprint_keyed = "python"
        return Analysis.passed()
    return python


def _python(evidence: TLSEvidence) -> Analysis:
    if not evidence.handshakes:
        return Analysis.passed()
    last = evidence.handshakes[-1]
    if last.failure is None:
        return Analysis.passed()
    if last.failure == failures.SSL_INVALID_CERTIFICATE:
        # Expired or malformed, from a trusted issuer for this name: the server's own fault.
        return Analysis.failed(last.failure, Finding(Verdict.TLS_MITM, Fault.SERVER, "trust_store", Reason("invalid_certificate")))
    if last.failure in VERIFY_FAILURES:
        return Analysis.failed(last.failure, Finding(Verdict.TLS_MITM, Fault.UNSEPARATED, "", Reason("certificate_not_for_name")))
    return Analysis.failed(last.failure, from_decoy(TECHNIQUE, last, evidence.decoy))


def from_decoy(technique: Verdict, real: TLSHandshake, decoy: TLSHandshake | None) -> Finding:
    """What a failure with the real name argues, given the decoy name's outcome at the same
    address on a fresh connection: the decoy passing pins it on the name (`sni_blocked`); a
    server that spoke, or whose answer began, is at fault itself; the decoy cut as well
    separates nothing."""
    if decoy is not None and decoy.failure is None:
        return Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni", Reason("decoy_sni_passes", {"decoy": decoy.sni}))
    decoy_failure = decoy.failure if decoy is not None else None
    if decoy_failure in _SERVER_SPOKE or real.failure in _SERVER_SPOKE:
        return Finding(technique, Fault.SERVER, "decoy_sni", Reason("server_fails_decoy", {"failure": str(decoy_failure)}))
    if after_connect(real.failure or "", real.received_bytes) is AfterConnect.ANSWER_BEGAN:
        reason = Reason("server_answer_began", {"received": real.received_bytes or 0, "failure": str(real.failure)})
        return Finding(technique, Fault.SERVER, "", reason)
    return Finding(technique, Fault.UNSEPARATED, "", Reason("decoy_fails_too", {"failure": str(decoy_failure)}))
