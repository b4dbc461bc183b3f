"""tls: the handshake with the real name, and what the decoy SNI to the same address did.

The decoy separates `sni_blocked` (it completes: something on the path reacts to the name)
from the rest. A server that spoke (garbage, an alert) for the real name or the decoy, or whose
answer began and then stopped (it drips, or closes after 200 bytes of its handshake), is the
server's fault: `down`. The decoy cut as well separates nothing: `tls_blocked` stands alone, as
the contract lets it. A certificate that does not validate for the name is `tls_mitm`, unless it
is the server's own expired or malformed one.

`fingerprint: both`: the browser-like hello decides (what the apps send); Python's hello to the
same address and name is the differential that names a block keyed on the ClientHello.

A target with a `client` (probe.checks.tls_matrix): the real client's hello decides. It passes:
`ok`, and the hellos the path cut meanwhile (Python's) are a note, `filtered_fingerprints`: a
block keyed only on a hello the real clients do not send is not a block of the service. The note
needs the alternated repeats to hold (real passes again, Python's is cut again); the real hello
failing on its repeat is a hello that slipped through a censor once, not reach (`no_agreement`). It
fails: another hello with the same name passing names the fingerprint (`keyed_on: fingerprint`),
else the decoy SNI with the same hello passing names the name (`keyed_on: name`); either claim
needs the alternated repeats to agree (real fails again, the other passes again). A repeat that
disagrees (the real hello passing this time, the other failing), or none made: no technique
(`no_agreement`), and the target's retry measures it again. The split hello passing where the whole one failed is said
(`split_evades`): the censor reads the first segment only.
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
    if evidence.client is not None:
        return _as_the_client(evidence)
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
    if evidence.decoy is not None and evidence.decoy.failure is None and evidence.repeats is not None:
        agreed = _agreed(evidence.repeats)
        if agreed is None:
            return Analysis.passed()  # the real name passed on its repeat: a lost packet, not a block
        if not agreed:
            return Analysis.failed(last.failure, _no_agreement(last))
        evidence.keyed_on = "name"
    return Analysis.failed(last.failure, from_decoy(TECHNIQUE, last, evidence.decoy))


# --- a target measured with its real client's hello -------------------------------------------------


def real_attempt(evidence: TLSEvidence) -> TLSHandshake | None:
    """The real client's hello with the real name: the browser slot, or Python's own (desktop_app)."""
    if evidence.browser is not None:
        return evidence.browser.handshake
    return evidence.handshakes[-1] if evidence.handshakes else None


def repeat_partner(evidence: TLSEvidence) -> TLSHandshake | None:
    """The attempt a keyed claim would rest on, to be repeated after the real hello: another
    hello, whole, with the real name (the fingerprint), else the decoy SNI with the real hello (the
    name)."""
    real = real_attempt(evidence)
    python = evidence.handshakes[-1] if evidence.handshakes and evidence.browser is not None else None
    for attempt in [*([python] if python is not None else []), *(evidence.matrix or [])]:
        if attempt.failure is None and not attempt.split and attempt is not real and attempt.sni == (real.sni if real else None):
            return attempt
    if evidence.decoy is not None and evidence.decoy.failure is None:
        return evidence.decoy
    return None


def _as_the_client(evidence: TLSEvidence) -> Analysis:
    real = real_attempt(evidence)
    if real is None:
        return Analysis.passed()
    python = evidence.handshakes[-1] if evidence.handshakes and evidence.browser is not None else None
    if real.failure is None:
        return _a_pass(evidence, python)
    if is_monitor_failure(real.failure):  # no curl-cffi here: Python's hello is all there is
        return _python(evidence)
    if real.failure == failures.SSL_INVALID_CERTIFICATE:
        return Analysis.failed(real.failure, Finding(Verdict.TLS_MITM, Fault.SERVER, "trust_store", Reason("invalid_certificate")))
    if real.failure in VERIFY_FAILURES:
        return Analysis.failed(real.failure, Finding(Verdict.TLS_MITM, Fault.UNSEPARATED, "", Reason("certificate_not_for_name")))
    if any(a.split and a.failure is None for a in evidence.matrix or []):
        evidence.split_evades = True
    partner = repeat_partner(evidence)
    if partner is None:
        return Analysis.failed(real.failure, from_decoy(TECHNIQUE, real, evidence.decoy))
    repeats = evidence.repeats or []
    agreed = _agreed(repeats)
    if agreed is None:
        # The real hello passed on its repeat: a lost packet, or a censor it slips through now and
        # then. No claim; the target's retry measures it again (a lossy line then reads ok).
        return Analysis.failed(real.failure, _no_agreement(real))
    if not agreed and partner is not evidence.decoy and _agreed([repeats[0], *repeats[2:3]]):
        partner = evidence.decoy  # the other hello failed this time; the decoy's own second pair agrees
    elif not agreed:
        return Analysis.failed(real.failure, _no_agreement(real))
    if partner is evidence.decoy:
        evidence.keyed_on = "name"
        return Analysis.failed(real.failure, from_decoy(TECHNIQUE, real, evidence.decoy))
    evidence.keyed_on = "fingerprint"
    passing = sorted({_label(a) for a in [*([python] if python else []), *(evidence.matrix or [])] if a.failure is None and not a.split})
    reason = Reason("keyed_on_fingerprint", {"client": str(evidence.client), "hello": _label(real), "failure": real.failure, "passing": ", ".join(passing)})
    return Analysis.failed(real.failure, Finding(TECHNIQUE, Fault.PATH, "other_hellos", reason))


def _a_pass(evidence: TLSEvidence, python: TLSHandshake | None) -> Analysis:
    """The real hello passed. Python's cut meanwhile is a note once the pair held on its repeat
    (real passed again, Python's cut again); the real hello failing on its repeat is a pass that
    slipped through, not reach: no claim either way (`no_agreement`), and the target's retry
    measures it again. `repeats` None: an archive from before the pair was repeated."""
    repeats = evidence.repeats
    if repeats and repeats[0].failure is not None and not is_monitor_failure(repeats[0].failure):
        return Analysis.failed(repeats[0].failure, _no_agreement(repeats[0]))
    held = repeats is None or (len(repeats) == 2 and repeats[1].failure is not None)
    cut = sorted({_label(a) for a in [*([python] if python else []), *(evidence.matrix or [])] if a.failure is not None and not is_monitor_failure(a.failure)})
    evidence.filtered_fingerprints = (cut or None) if held else None
    return Analysis.passed()


def _agreed(repeats: list[TLSHandshake]) -> bool | None:
    """Whether the repeats (real, other) agree with the first pair: True both ways; None when the
    real one passed this time; False otherwise (the other failed, or no repeat was made)."""
    if repeats and repeats[0].failure is None:
        return None
    return len(repeats) == 2 and repeats[0].failure is not None and repeats[1].failure is None


def _no_agreement(real: TLSHandshake) -> Finding:
    return Finding(TECHNIQUE, Fault.UNSEPARATED, "", Reason("no_agreement", {"failure": str(real.failure)}))


def _label(attempt: TLSHandshake) -> str:
    """A hello as the evidence names it: `chrome`, `chrome+pq`, `chrome-pq`, `openssl split`."""
    from probe.fingerprint import HELLOS

    name = attempt.hello or "openssl"
    spec = HELLOS.get(name)
    if spec is not None and spec.profile is not None and attempt.pq is not None and attempt.pq != spec.pq:
        name += "+pq" if attempt.pq else "-pq"
    return name + (" split" if attempt.split else "")


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
