"""tls: a handshake with the real SNI, validated; a decoy SNI to the same address when it fails.

The decoy is the evidence that separates `sni_blocked` (the decoy completes: something on the
path reacts to the name) from `tls_blocked` (it fails too, or could not be tried). Certificate
facts are kept even when validation fails: a MITM certificate is evidence worth citing.
"""

from __future__ import annotations

import calendar
import hashlib
import ssl
from datetime import datetime, timezone
from typing import Any

from probe import failures
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict, first_byte, observed
from probe.model import Certificate, FingerprintedHandshake, TLSEvidence, TLSHandshake
from probe.net import open_tcp, ssl_context
from probe.params import TLSParams as Params

NAME = "tls"
BLOCK_VERDICT = Verdict.TLS_BLOCKED  # what running past every timeout means
_VERIFY_FAILURES = frozenset({failures.SSL_INVALID_HOSTNAME, failures.SSL_UNKNOWN_AUTHORITY, failures.SSL_INVALID_CERTIFICATE})
# The server answered, but not with a handshake we could complete: garbage, an alert, a chain
# past OpenSSL's limit. A censor resets, drops or closes; it does not speak.
_SERVER_SPOKE = frozenset({failures.SSL_FAILED_HANDSHAKE, failures.PROTOCOL_ERROR})



async def handshake(
    ctx: Context, address: str, port: int, sni: str, *, verify: bool, alpn: tuple[str, ...] = ("http/1.1",), request: bytes | None = None, reuse: bool = False
) -> TLSHandshake:
    """One TLS handshake (and optionally one request's first bytes) on a fresh connection, or
    with `reuse` on the tcp check's connection to the same endpoint, which a validated handshake
    then leaves open as `ctx.tls_stream` for the http check.

    Returns the record of what happened; never raises."""
    context = ssl_context(ctx.ca_bundles(), ctx.replace_trust(), verify=verify, alpn=alpn)
    record = TLSHandshake(address, port, sni)
    async with observed(record, ctx.timeout) as writers:
        stream = ctx.take_stream(address, port) if reuse else None
        reader, writer = stream or await open_tcp(ctx.route, address, port)
        writers.append(writer)
        await writer.start_tls(context, server_hostname=sni)
        tls = writer.get_extra_info("ssl_object")
        record.tls_version = tls.version()
        record.alpn = tls.selected_alpn_protocol()
        der = tls.getpeercert(binary_form=True)
        if der:
            record.certificate = _facts_of(der, tls)
        if request is not None:
            record.response_started = False
            await first_byte(reader, writer, request)
            record.response_started = True
        if reuse and record.alpn in (None, "http/1.1"):
            writers.remove(writer)
            ctx.tls_stream = (reader, writer)
    return record


_seen_facts: dict[bytes, Certificate] = {}  # DER -> its facts, the certificates met most recently
_SEEN_KEPT = 64


def _facts_of(der: bytes, tls: ssl.SSLObject) -> Certificate:
    """The facts of a certificate met before are the same record: a service's targets share a
    few certificates, and every round meets them again (kept immutable, so one record serves all)."""
    facts = _seen_facts.pop(der, None) or certificate_facts(der, tls.getpeercert())
    _seen_facts[der] = facts  # most recent last
    if len(_seen_facts) > _SEEN_KEPT:
        del _seen_facts[next(iter(_seen_facts))]
    return facts


def certificate_facts(der: bytes, decoded: dict[str, Any] | None = None) -> Certificate:
    """The facts of the server's certificate. A validated handshake has already decoded it
    (`SSLObject.getpeercert()`, OpenSSL's own parse): those facts are read from there. Anything
    else (an unvalidated handshake: a decoy, a MITM certificate; a name the table below does not
    know) is parsed with cryptography, imported then: a round where every certificate validates
    never loads it (about 9 MiB of a process)."""
    facts = _from_decoded(der, decoded) if decoded else None
    return facts or _from_der(der)


# OpenSSL's long attribute names -> what cryptography's `rfc4514_string()` writes for them (its
# short names, else the dotted OID), so that both ways give one string for one certificate.
_RFC4514_NAMES = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST", "organizationName": "O",
    "organizationalUnitName": "OU", "countryName": "C", "streetAddress": "STREET", "domainComponent": "DC",
    "userId": "UID", "serialNumber": "2.5.4.5", "businessCategory": "2.5.4.15", "postalCode": "2.5.4.17",
    "organizationIdentifier": "2.5.4.97", "emailAddress": "1.2.840.113549.1.9.1",
    "jurisdictionLocalityName": "1.3.6.1.4.1.311.60.2.1.1",
    "jurisdictionStateOrProvinceName": "1.3.6.1.4.1.311.60.2.1.2",
    "jurisdictionCountryName": "1.3.6.1.4.1.311.60.2.1.3",
}


def _from_decoded(der: bytes, decoded: dict[str, Any]) -> Certificate | None:
    """None when the decoded form holds something only cryptography writes the same way."""
    subject, issuer = _rfc4514(decoded.get("subject", ())), _rfc4514(decoded.get("issuer", ()))
    if subject is None or issuer is None or "notBefore" not in decoded or "notAfter" not in decoded:
        return None
    not_before, not_after = _seconds(decoded["notBefore"]), _seconds(decoded["notAfter"])
    return Certificate(
        subject=subject,
        issuer=issuer,
        not_before=datetime.fromtimestamp(not_before, timezone.utc).isoformat(),
        not_after=datetime.fromtimestamp(not_after, timezone.utc).isoformat(),
        not_after_timestamp=float(not_after),
        sha256=hashlib.sha256(der).hexdigest(),
        dns_names=[value for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"][:20],
    )


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def _seconds(text: str) -> int:
    """OpenSSL's "Jun  1 12:00:00 2025 GMT" as Unix time: what `ssl.cert_time_to_seconds` returns,
    without its strptime (a fifth of reading a certificate's facts)."""
    try:
        month, day, clock, year, zone = text.split()
        hours, minutes, seconds = clock.split(":")
    except ValueError:
        return ssl.cert_time_to_seconds(text)
    if zone != "GMT" or month not in _MONTHS:
        return ssl.cert_time_to_seconds(text)  # anything else: the standard library's reading
    return calendar.timegm((int(year), _MONTHS[month], int(day), int(hours), int(minutes), int(seconds)))


def _rfc4514(name: tuple[tuple[tuple[str, str], ...], ...]) -> str | None:
    parts = []
    for rdn in reversed(name):  # RFC 4514 writes the last RDN first
        if len(rdn) != 1 or rdn[0][0] not in _RFC4514_NAMES:  # multi-valued or unknown: cryptography's way
            return None
        attribute, value = rdn[0]
        parts.append(f"{_RFC4514_NAMES[attribute]}={_escape(value)}")
    return ",".join(parts)


def _escape(value: str) -> str:
    """RFC 4514 section 2.4, as cryptography escapes a value."""
    if not value:
        return ""
    for char in ("\\", '"', "+", ",", ";", "<", ">"):
        value = value.replace(char, "\\" + char)
    value = value.replace("\0", "\\00")
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _from_der(der: bytes) -> Certificate:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.astimezone(timezone.utc).isoformat(),
        not_after=cert.not_valid_after_utc.astimezone(timezone.utc).isoformat(),
        not_after_timestamp=cert.not_valid_after_utc.timestamp(),
        sha256=hashlib.sha256(der).hexdigest(),
        dns_names=names[:20],
    )


async def decoy(ctx: Context, address: str, port: int, request: bytes | None = None) -> TLSHandshake:
    """The same address, another name: does the path let this handshake through?"""
    return await handshake(ctx, address, port, ctx.decoy_sni, verify=False, request=request)


def finding_from_decoy(technique: Verdict, real: str, decoy_record: TLSHandshake) -> Finding:
    """What a failure with the real name argues, given the decoy name's outcome at the same
    address on a fresh connection: the decoy passing pins it on the name (`sni_blocked`); the
    decoy failing because the server spoke garbage pins it on the server; the decoy cut as well
    separates nothing (the technique stands only where the contract lets it stand alone)."""
    if decoy_record.failure is None:
        return Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni", f"the decoy SNI {decoy_record.sni} to the same address passes")
    if decoy_record.failure in _SERVER_SPOKE or real in _SERVER_SPOKE:
        return Finding(technique, Fault.SERVER, "decoy_sni", f"the server fails the decoy SNI too ({decoy_record.failure}): its own fault")
    return Finding(technique, Fault.UNSEPARATED, "", f"the decoy SNI fails too ({decoy_record.failure})")


async def run(ctx: Context, params: Params) -> CheckResult:
    candidates = [(a, p) for a, p in ctx.connected if p != 80] or ctx.connected
    if not candidates:
        raise Skip("no TCP connection")
    sni = params.sni or ctx.target.host
    evidence = TLSEvidence()
    with Stopwatch() as watch:
        if params.fingerprint == "browser":
            finding = await _browser_only(ctx, params, candidates, sni, evidence)
        else:
            finding = await _python(ctx, params, candidates, sni, evidence)
            if params.fingerprint == "both":
                finding = await _compare_with_browser(ctx, params, sni, evidence, finding)
    if finding is None:
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    failed = evidence.browser.handshake if params.fingerprint == "browser" or evidence.fingerprint_keyed == "browser" else evidence.handshakes[-1]
    return CheckResult(NAME, False, failed.failure, watch.seconds, finding, evidence)


async def _python(ctx: Context, params: Params, candidates: list[tuple[str, int]], sni: str, evidence: TLSEvidence) -> Finding | None:
    """Python's handshake with the real name, validated, on up to `tries` endpoints; on failure
    the certificate seen, or the decoy SNI to the same address. None: it passed."""
    # With an http check to follow, offer what it speaks (HTTP/1.1), so that it can send its
    # request on this very connection: one connection and one handshake per target.
    reuse = ctx.wants("http", after=NAME)
    alpn = (tuple(p for p in params.alpn if p == "http/1.1") or params.alpn) if reuse else params.alpn
    for address, port in candidates[: params.tries]:
        attempt = await handshake(ctx, address, port, sni, verify=True, alpn=alpn, reuse=reuse)
        evidence.handshakes.append(attempt)
        if attempt.failure is None:
            ctx.tls_endpoint = (address, port)
            evidence.certificate = attempt.certificate
            return None

    last = evidence.handshakes[-1]
    if last.failure in _VERIFY_FAILURES:
        # The handshake completed with a certificate that is not valid for the name:
        # look at it without validation so the evidence shows whose certificate it was.
        seen = await handshake(ctx, last.address, last.port, sni, verify=False)
        evidence.certificate = seen.certificate
        if last.failure == failures.SSL_INVALID_CERTIFICATE:
            # Expired or malformed, from a trusted issuer for this name: the server's own fault.
            return Finding(Verdict.TLS_MITM, Fault.SERVER, "trust_store", "the certificate is invalid (e.g. expired) but not another party's")
        return Finding(Verdict.TLS_MITM, Fault.UNSEPARATED, "", "a certificate that does not validate for the name")

    evidence.decoy = await decoy(ctx, last.address, last.port)
    return finding_from_decoy(Verdict.TLS_BLOCKED, last.failure or "", evidence.decoy)


async def _browser(ctx: Context, params: Params, address: str, port: int, sni: str) -> FingerprintedHandshake:
    from probe import fingerprint  # curl-cffi: loaded by the targets that ask for a browser's hello

    return await fingerprint.browser_handshake(
        ctx.route, address, port, sni, browser=params.browser, ca_bundles=ctx.ca_bundles(), replace_trust=ctx.replace_trust(), timeout=ctx.timeout
    )


async def _browser_only(ctx: Context, params: Params, candidates: list[tuple[str, int]], sni: str, evidence: TLSEvidence) -> Finding | None:
    """The browser's hello is the handshake; Python's ssl only for the decoy."""
    for address, port in candidates[: params.tries]:
        evidence.browser = await _browser(ctx, params, address, port, sni)
        if evidence.browser.handshake.failure is None:
            ctx.tls_endpoint = (address, port)
            return None
    failed = evidence.browser.handshake
    if failed.failure in failures.MONITOR:
        return Finding(Verdict.TLS_BLOCKED, Fault.MONITOR, "", "no browser-like handshake could be made here")
    evidence.decoy = await decoy(ctx, failed.address, failed.port)
    return finding_from_decoy(Verdict.TLS_BLOCKED, failed.failure or "", evidence.decoy)


async def _compare_with_browser(ctx: Context, params: Params, sni: str, evidence: TLSEvidence, python: Finding | None) -> Finding | None:
    """`fingerprint: both`: the browser's hello to the same endpoint, and what the apps would meet.

    The verdict follows the browser's outcome; Python's hello to the same address and name is the
    differential that names a block keyed on the ClientHello fingerprint."""
    from probe import fingerprint

    last = evidence.handshakes[-1]
    evidence.python_hello = fingerprint.python_fingerprint(ssl_context(ctx.ca_bundles(), ctx.replace_trust()), sni)
    evidence.browser = await _browser(ctx, params, last.address, last.port, sni)
    browser = evidence.browser.handshake
    if browser.failure in failures.MONITOR:
        return python  # no browser here: Python's outcome, as with `fingerprint: python`
    if python is None and browser.failure is None:
        return None
    if python is None:
        evidence.fingerprint_keyed = "browser"
        return Finding(
            Verdict.TLS_BLOCKED, Fault.PATH, "python_hello",
            f"keyed on the ClientHello fingerprint: the browser's hello is cut ({browser.failure}) while Python's passes to the same address and name",
        )
    if browser.failure is None:
        # What the apps meet passes: the target is reachable; the evidence keeps which hello was cut.
        evidence.fingerprint_keyed = "python"
        ctx.tls_endpoint = None  # the next stages speak Python's hello, which this path cuts
        ctx.close_streams()
        return None
    return python


