"""tls: a handshake with the real SNI, validated; a decoy SNI to the same address when it fails.

The decoy is the evidence that separates `sni_blocked` (the decoy completes: something on the
path reacts to the name) from `tls_blocked` (it fails too, or could not be tried). Certificate
facts are kept even when validation fails: a MITM certificate is evidence worth citing.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timezone
from typing import Any

from cryptography import x509

from probe import failures
from probe.checks.base import CheckResult, Context, Skip, Stopwatch
from probe.net import open_tcp, ssl_context

NAME = "tls"
BLOCK_VERDICT = "tls_blocked"  # what running past every timeout means
_VERIFY_FAILURES = frozenset({failures.SSL_INVALID_HOSTNAME, failures.SSL_UNKNOWN_AUTHORITY, failures.SSL_INVALID_CERTIFICATE})


from probe.params import TLSParams as Params


async def handshake(ctx: Context, address: str, port: int, sni: str, *, verify: bool, alpn: tuple[str, ...] = ("http/1.1",), request: bytes | None = None) -> dict[str, Any]:
    """One TLS handshake (and optionally one request's first bytes) on a fresh connection.

    Returns evidence: failure, duration, certificate facts; never raises."""
    context = ssl_context(ctx.ca_bundles(), ctx.replace_trust(), verify=verify, alpn=alpn)
    outcome: dict[str, Any] = {"address": address, "port": port, "sni": sni, "failure": None}
    writer = None
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(ctx.timeout):
                reader, writer = await open_tcp(ctx.route, address, port)
                await writer.start_tls(context, server_hostname=sni)
                tls = writer.get_extra_info("ssl_object")
                outcome["tls_version"] = tls.version()
                outcome["alpn"] = tls.selected_alpn_protocol()
                der = tls.getpeercert(binary_form=True)
                if der:
                    outcome["certificate"] = certificate_facts(der)
                if request is not None:
                    writer.write(request)
                    first = await reader.read(1)
                    if not first:
                        raise failures.Failure(failures.EOF, "closed before any response byte")
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            outcome["failure"] = failures.classify(exc)
        finally:
            if writer is not None:
                writer.close()
    outcome["duration_seconds"] = round(watch.seconds, 4)
    return outcome


def certificate_facts(der: bytes) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.astimezone(timezone.utc).isoformat(),
        "not_after": cert.not_valid_after_utc.astimezone(timezone.utc).isoformat(),
        "not_after_timestamp": cert.not_valid_after_utc.timestamp(),
        "sha256": hashlib.sha256(der).hexdigest(),
        "dns_names": names[:20],
    }


async def decoy(ctx: Context, address: str, port: int, request: bytes | None = None) -> dict[str, Any]:
    """The same address, another name: does the path let this handshake through?"""
    return await handshake(ctx, address, port, ctx.decoy_sni, verify=False, request=request)


async def run(ctx: Context, params: Params) -> CheckResult:
    candidates = [(a, p) for a, p in ctx.connected if p != 80] or ctx.connected
    if not candidates:
        raise Skip("no TCP connection")
    sni = params.sni or ctx.target.host
    with Stopwatch() as watch:
        attempts = []
        for address, port in candidates[: params.tries]:
            attempt = await handshake(ctx, address, port, sni, verify=True, alpn=params.alpn)
            attempts.append(attempt)
            if attempt["failure"] is None:
                ctx.tls_endpoint = (address, port)
                return CheckResult(NAME, True, None, watch.seconds, None, {"handshakes": attempts, **_cert(attempt)})

        last = attempts[-1]
        evidence: dict[str, Any] = {"handshakes": attempts}
        if last["failure"] in _VERIFY_FAILURES:
            # The handshake completed with a certificate that is not valid for the name:
            # look at it without validation so the evidence shows whose certificate it was.
            seen = await handshake(ctx, last["address"], last["port"], sni, verify=False)
            evidence.update(_cert(seen))
            return CheckResult(NAME, False, last["failure"], watch.seconds, "tls_mitm", evidence)

        evidence["decoy"] = await decoy(ctx, last["address"], last["port"])
        verdict = "sni_blocked" if evidence["decoy"]["failure"] is None else "tls_blocked"
        return CheckResult(NAME, False, last["failure"], watch.seconds, verdict, evidence)


def _cert(attempt: dict[str, Any]) -> dict[str, Any]:
    return {"certificate": attempt["certificate"]} if "certificate" in attempt else {}
