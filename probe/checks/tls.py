"""tls: a handshake with the real SNI, validated; a decoy SNI to the same address when it fails.

The decoy is the differential the judge reads (probe.judge.tls): it completes, and something
on the path reacts to the name (`sni_blocked`); it fails too, and nothing is separated. The
bytes the server sent before a failed handshake are kept: a server whose answer began is not a
cut handshake. Certificate facts are kept even when validation fails: a MITM certificate is
evidence worth citing.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import ssl
from datetime import datetime, timezone
from typing import Any

from probe.checks.context import Context, Skip
from probe.checks.observe import PeerBytes, first_byte, recorded
from probe.judge.rules import is_monitor_failure
from probe.judge.tls import VERIFY_FAILURES
from probe.model import Certificate, FingerprintedHandshake, TLSEvidence, TLSHandshake
from probe.net import connect, ssl_context
from probe.params import TLSParams as Params

NAME = "tls"

__all__ = ["NAME", "Params", "certificate_facts", "decoy", "handshake", "run"]


async def handshake(
    ctx: Context, address: str, port: int, sni: str, *, verify: bool, alpn: tuple[str, ...] = ("http/1.1",), request: bytes | None = None, reuse: bool = False
) -> TLSHandshake:
    """One TLS handshake (and optionally one request's first bytes) on a fresh connection, or
    with `reuse` on the tcp check's connection to the same endpoint, which a validated handshake
    then leaves open as `ctx.tls_stream` for the http check.

    Returns the record of what happened; never raises."""
    context = ssl_context(ctx.ca_bundles(), ctx.replace_trust(), verify=verify, alpn=alpn)
    record = TLSHandshake(address, port, sni)
    async with recorded(ctx, record, ctx.timeout, "connect") as operation:
        stream = (ctx.take_stream(address, port) if reuse else None) or await connect(ctx.route, address, port)
        operation.close_at_end(stream)
        operation.now("tls_handshake")
        # The bytes the server sends from here on, read from the kernel if the handshake fails
        # (the socket is ours: it closes only when this record is done).
        peer = PeerBytes(stream)
        operation.at_failure(lambda: setattr(record, "received_bytes", peer.since()))
        await stream.start_tls(context, server_hostname=sni, before_step=peer.step)
        tls = stream.tls
        assert tls is not None
        record.tls_version = tls.version()
        record.alpn = tls.selected_alpn_protocol()
        der = tls.getpeercert(binary_form=True)
        if der:
            record.certificate = _facts_of(der, tls)
        if request is not None:
            record.response_started = False
            await first_byte(stream, request, operation)
            record.response_started = True
        if reuse and record.alpn in (None, "http/1.1"):
            operation.keep_open(stream)
            ctx.tls_stream = stream
    return record


_seen_facts: dict[bytes, Certificate] = {}  # DER -> its facts, the certificates met most recently
_SEEN_KEPT = 64


def _facts_of(der: bytes, tls: ssl.SSLSocket) -> Certificate:
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
    never loads it (and its memory)."""
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


async def run(ctx: Context, params: Params) -> TLSEvidence:
    candidates = [(a, p) for a, p in ctx.connected if p != 80] or ctx.connected
    if not candidates:
        raise Skip("no TCP connection")
    sni = params.sni or ctx.target.host
    evidence = TLSEvidence()
    started = asyncio.get_running_loop().time()
    client = ctx.target.client
    if client is not None:  # its real client's hello as well as Python's (probe.checks.tls_matrix)
        from probe.checks import tls_matrix

        # Python's hello on one endpoint, the comparison, while the client's hello goes to it too.
        address, port = candidates[0]
        python = _python(ctx, params, candidates[:1], sni, evidence, started, differentials=False)
        await tls_matrix.as_the_client(ctx, tls_matrix.Clock(ctx, started, tapped=True), client, python, address, port, sni, evidence)
    elif params.fingerprint == "browser":
        await _browser_only(ctx, params, candidates, sni, evidence)
    else:
        await _python(ctx, params, candidates, sni, evidence, started)
        if params.fingerprint == "both":
            await _compare_with_browser(ctx, params, sni, evidence)
    return evidence


async def _python(ctx: Context, params: Params, candidates: list[tuple[str, int]], sni: str, evidence: TLSEvidence, started: float, *, differentials: bool = True
) -> None:
    """Python's handshake with the real name, validated, on up to `tries` endpoints; on failure
    the certificate seen, or (`differentials`) the decoy SNI to the same address and, when the
    decoy passes, the alternated repeats a keyed claim needs (real, decoy once more)."""
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
            return
    last = evidence.handshakes[-1]
    if last.failure in VERIFY_FAILURES:
        # The handshake completed with a certificate that is not valid for the name:
        # look at it without validation so the evidence shows whose certificate it was.
        seen = await handshake(ctx, last.address, last.port, sni, verify=False)
        evidence.certificate = seen.certificate
        return
    if not differentials:
        return
    evidence.decoy = await decoy(ctx, last.address, last.port)
    if evidence.decoy.failure is None:
        await _repeats(ctx, last, sni, started, evidence)


async def _repeats(ctx: Context, real: TLSHandshake, sni: str, started: float, evidence: TLSEvidence) -> None:
    """The decoy passed where the real name failed: real, decoy once more, in this order, within
    what is left of the check's bound (no time: no repeats, and no keyed claim)."""
    from probe.checks.tls_matrix import EXTRA_SHARE, Clock, bounded

    clock = Clock(ctx, started)
    evidence.repeats = []
    for name, verify in ((sni, True), (ctx.decoy_sni, False)):
        # Half the timeout, as the matrix's: after two endpoints ran to their timeouts, both fit.
        again = await bounded(clock, handshake(ctx, real.address, real.port, name, verify=verify), real.address, real.port, name, EXTRA_SHARE)
        if again is None:
            return
        evidence.repeats.append(again)
        if name == sni and again.failure is None:  # the real name passed this time: nothing to key on
            ctx.tls_endpoint = (real.address, real.port)
            evidence.certificate = again.certificate
            return


async def _browser(ctx: Context, params: Params, address: str, port: int, sni: str) -> FingerprintedHandshake:
    from probe import fingerprint  # curl-cffi: loaded by the targets that ask for a browser's hello

    return await fingerprint.browser_handshake(
        ctx.route, address, port, sni, browser=params.browser, ca_bundles=ctx.ca_bundles(), replace_trust=ctx.replace_trust(), timeout=ctx.timeout
    )


async def _browser_only(ctx: Context, params: Params, candidates: list[tuple[str, int]], sni: str, evidence: TLSEvidence) -> None:
    """The browser's hello is the handshake; Python's ssl only for the decoy."""
    for address, port in candidates[: params.tries]:
        evidence.browser = await _browser(ctx, params, address, port, sni)
        if evidence.browser.handshake.failure is None:
            ctx.tls_endpoint = (address, port)
            return
    assert evidence.browser is not None
    failed = evidence.browser.handshake
    if not is_monitor_failure(failed.failure):  # no browser here: nothing to compare
        evidence.decoy = await decoy(ctx, failed.address, failed.port)


async def _compare_with_browser(ctx: Context, params: Params, sni: str, evidence: TLSEvidence) -> None:
    """`fingerprint: both`: the browser's hello to the same endpoint, what the apps would meet;
    Python's hello to the same address and name is the differential."""
    from probe import fingerprint

    last = evidence.handshakes[-1]
    evidence.python_hello = fingerprint.python_fingerprint(ssl_context(ctx.ca_bundles(), ctx.replace_trust()), sni)
    evidence.browser = await _browser(ctx, params, last.address, last.port, sni)
    if last.failure is not None and evidence.browser.handshake.failure is None:
        ctx.tls_endpoint = None  # the next stages speak Python's hello, which this path cuts
        ctx.close_streams()
