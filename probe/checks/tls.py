"""tls: a handshake with the real SNI, validated; a decoy SNI to the same address when it fails.

The decoy is the evidence that separates `sni_blocked` (the decoy completes: something on the
path reacts to the name) from `tls_blocked` (it fails too, or could not be tried). Certificate
facts are kept even when validation fails: a MITM certificate is evidence worth citing.
"""

from __future__ import annotations

import hashlib
from datetime import timezone

from cryptography import x509

from probe import failures
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict, first_byte, observed
from probe.model import Certificate, TLSEvidence, TLSHandshake
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
            record.certificate = certificate_facts(der)
        if request is not None:
            record.response_started = False
            await first_byte(reader, writer, request)
            record.response_started = True
        if reuse and record.alpn in (None, "http/1.1"):
            writers.remove(writer)
            ctx.tls_stream = (reader, writer)
    return record


def certificate_facts(der: bytes) -> Certificate:
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
    # With an http check to follow, offer what it speaks (HTTP/1.1), so that it can send its
    # request on this very connection: one connection and one handshake per target.
    reuse = ctx.wants("http", after=NAME)
    alpn = (tuple(p for p in params.alpn if p == "http/1.1") or params.alpn) if reuse else params.alpn
    evidence = TLSEvidence()
    with Stopwatch() as watch:
        for address, port in candidates[: params.tries]:
            attempt = await handshake(ctx, address, port, sni, verify=True, alpn=alpn, reuse=reuse)
            evidence.handshakes.append(attempt)
            if attempt.failure is None:
                ctx.tls_endpoint = (address, port)
                evidence.certificate = attempt.certificate
                return CheckResult(NAME, True, None, watch.seconds, None, evidence)

        last = evidence.handshakes[-1]
        if last.failure in _VERIFY_FAILURES:
            # The handshake completed with a certificate that is not valid for the name:
            # look at it without validation so the evidence shows whose certificate it was.
            seen = await handshake(ctx, last.address, last.port, sni, verify=False)
            evidence.certificate = seen.certificate
            if last.failure == failures.SSL_INVALID_CERTIFICATE:
                # Expired or malformed, from a trusted issuer for this name: the server's own fault.
                finding = Finding(Verdict.TLS_MITM, Fault.SERVER, "trust_store", "the certificate is invalid (e.g. expired) but not another party's")
            else:
                finding = Finding(Verdict.TLS_MITM, Fault.UNSEPARATED, "", "a certificate that does not validate for the name")
            return CheckResult(NAME, False, last.failure, watch.seconds, finding, evidence)

        evidence.decoy = await decoy(ctx, last.address, last.port)
        finding = finding_from_decoy(Verdict.TLS_BLOCKED, last.failure or "", evidence.decoy)
        return CheckResult(NAME, False, last.failure, watch.seconds, finding, evidence)
