"""quic: one HTTP/3 request (aioquic) to the address where TCP+TLS succeeded.

Russia's TSPU drops UDP/443 datagrams of 1001 bytes or more that carry QUIC v1 (IMC 2022):
every QUIC Initial is padded to at least 1200 bytes, so the handshake never completes while
TCP+TLS to the same host works. That is `quic_blocked`. Any HTTP/3 response counts (the status
is not a signal), read up to `max_body_bytes`.

Put `quic` after `tls` in a target's checks: the Finding needs the TLS result to compare with.
Without it a QUIC failure proves nothing about a block (fault `unseparated`). When the QUIC
handshake with the real name fails and TCP+TLS succeeded, a second handshake to the same address
with the decoy SNI (certificate not checked) says what the block is keyed on (`keyed_on`):
`name` when the decoy completes (a censor reading the SNI of QUIC Initials), `quic` when it fails
too (QUIC itself, as TSPU's size rule). Either way the path is at fault: `quic_blocked`. A
handshake that completes and a request that then goes unanswered, or a server that closes with
an error of its own, is the server's doing.

Enable it only for hosts that serve HTTP/3. aioquic is a dependency of msgreach, imported when
the check runs; an install without it fails the check with `check_unavailable`, the monitor's
fault (`error`), never a claim about the network.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probe import __version__, failures
from probe.checks import common
from probe.checks.base import Context, Skip, Stopwatch
from probe.model import CheckResult, Fault, Finding, QUICAttempt, QUICEvidence, Verdict
from probe.net import udp_socket
from probe.params import QUICParams as Params

NAME = "quic"
BLOCK_VERDICT = Verdict.QUIC_BLOCKED  # what a timeout of this check means

_SYSTEM_STORE = Path("/etc/ssl/certs/ca-certificates.crt")




def _address(ctx: Context) -> str | None:
    if ctx.tls_endpoint is not None:
        return ctx.tls_endpoint[0]
    if ctx.connected:
        return ctx.connected[0][0]
    chosen = common.udp_endpoints(ctx)
    return chosen[0][0] if chosen else None


@lru_cache(maxsize=16)
def _trust(bundles: tuple[Path, ...], replace: bool) -> tuple[str | None, bytes | None]:
    """(cafile, cadata) for aioquic, trusting what `probe.net.ssl_context` trusts: the system
    store plus the configured bundles, or the bundles alone when they replace it."""
    # Re-encoded: aioquic's PEM splitter trips on comments and trailing blank lines.
    certificates = [c for bundle in bundles for c in x509.load_pem_x509_certificates(bundle.read_bytes())]
    cadata = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates) or None
    if replace and bundles:
        return None, cadata
    if _SYSTEM_STORE.is_file():
        return str(_SYSTEM_STORE), cadata
    import certifi  # aioquic's own default, a dependency of aioquic

    return certifi.where(), cadata


async def h3_get(ctx: Context, address: str, params: Params, *, sni: str | None = None, decoy: bool = False) -> QUICAttempt:
    """One HTTP/3 GET on a fresh QUIC connection; evidence, never raises. A `decoy` attempt
    only handshakes, without checking the certificate (it is not the name's)."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import ConnectionTerminated

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.status: int | None = None
            self.body_bytes = 0

        def _fail(self, exc: BaseException) -> None:
            for future in (self.failed, self.done):
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: no "never retrieved" warning

        def error_received(self, exc: Exception) -> None:  # ICMP unreachable
            self._fail(exc)

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, ConnectionTerminated):
                self._fail(failures.Failure(failures.quic_close(event.error_code, event.reason_phrase), event.reason_phrase))
                return
            for h3_event in self.h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    for name, value in h3_event.headers:
                        if name == b":status" and value.isdigit():
                            self.status = int(value)
                elif isinstance(h3_event, DataReceived):
                    self.body_bytes += len(h3_event.data)  # counted, not kept: bounded memory
                if getattr(h3_event, "stream_ended", False) or self.body_bytes >= params.max_body_bytes:
                    if not self.done.done():
                        self.done.set_result(None)

    sni = sni or params.sni or ctx.target.host
    outcome = QUICAttempt(address, params.port, sni)
    limit = common.phase_timeout(ctx, params.handshake_timeout)
    transport = client = None
    with Stopwatch() as watch:
        try:
            verify = ssl.CERT_NONE if decoy else ssl.CERT_REQUIRED
            configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni, verify_mode=verify)
            configuration.cafile, configuration.cadata = _trust(ctx.ca_bundles(), ctx.replace_trust())
            loop = asyncio.get_running_loop()
            transport, client = await loop.create_datagram_endpoint(
                lambda: Client(QuicConnection(configuration=configuration)), sock=udp_socket(ctx.route, address, params.port)
            )
            peer = transport.get_extra_info("peername")
            client.connect(peer)
            async with asyncio.timeout(limit):
                connected = asyncio.ensure_future(client.wait_connected())
                try:
                    await asyncio.wait({connected, client.failed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    connected.cancel()
                if client.failed.done():
                    client.failed.result()  # raises the recorded failure
                connected.result()
            outcome.handshake_seconds = round(watch.seconds, 4)
            if decoy:
                return outcome
            stream = client._quic.get_next_available_stream_id()
            headers = [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", sni.encode()),
                (b":path", params.path.encode()),
                (b"user-agent", f"msgreach/{__version__}".encode()),
            ]
            client.h3.send_headers(stream, headers, end_stream=True)
            client.transmit()
            async with asyncio.timeout(limit):
                await client.done
            outcome.status_code = client.status
            outcome.body_bytes = client.body_bytes
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            if isinstance(exc, ConnectionError) and type(exc) is ConnectionError:
                exc = failures.Failure(failures.EOF, "QUIC connection closed")
            found = failures.as_evidence(exc)
            outcome.failure, outcome.detail = found["failure"], found.get("detail")
        finally:
            if client is not None:
                client.close()  # sends CONNECTION_CLOSE; the draining period is not waited for
                timer = getattr(client, "_timer", None)
                if timer is not None:
                    timer.cancel()
            if transport is not None:
                transport.close()
            outcome.duration_seconds = round(watch.seconds, 4)
    return outcome


async def run(ctx: Context, params: Params) -> CheckResult:
    if ctx.route.socks5 is not None:
        raise Skip("UDP cannot go through the vantage's SOCKS5 proxy")
    try:
        import aioquic  # noqa: F401 - a dependency, imported when needed
    except ImportError:
        evidence = QUICEvidence(error="aioquic is not installed: this install of msgreach is incomplete (pip install msgreach brings it)")
        finding = Finding(Verdict.QUIC_BLOCKED, Fault.MONITOR, "", "aioquic is missing: QUIC was not measured")
        return CheckResult(NAME, False, failures.UNAVAILABLE, 0.0, finding, evidence)
    address = _address(ctx)
    if address is None:
        raise Skip("no address for QUIC")
    tls = ctx.result("tls")
    with Stopwatch() as watch:
        attempt = await h3_get(ctx, address, params)
        evidence = QUICEvidence(attempt, tls.ok if tls is not None else None)
        if attempt.failure is None:
            return CheckResult(NAME, True, None, watch.seconds, None, evidence)
        finding = await _finding(ctx, params, attempt, tls.ok if tls is not None else None, evidence)
    return CheckResult(NAME, False, attempt.failure, watch.seconds, finding, evidence)


async def _finding(ctx: Context, params: Params, attempt: QUICAttempt, tls_ok: bool | None, evidence: QUICEvidence) -> Finding:
    technique = Verdict.QUIC_BLOCKED
    if tls_ok is None:
        return Finding(technique, Fault.UNSEPARATED, "", "no TCP+TLS result to compare with (put quic after tls)")
    if not tls_ok:
        return Finding(technique, Fault.UNSEPARATED, "", "TCP+TLS to the host failed too: nothing to compare with")
    if attempt.handshake_seconds is not None:
        return Finding(technique, Fault.SERVER, "", f"the QUIC handshake completed, then the request failed ({attempt.failure})")
    if attempt.failure not in failures.INTERFERENCE:
        return Finding(technique, Fault.SERVER, "", f"the server ended the QUIC handshake ({attempt.failure})")
    base_reason = f"QUIC to the host fails ({attempt.failure}) while TCP+TLS to it succeed"
    if not params.decoy:
        return Finding(technique, Fault.PATH, "tls", base_reason)
    # QUIC singled out; the decoy says whether by the name in the Initial or by QUIC itself.
    evidence.decoy = await h3_get(ctx, attempt.address, params, sni=ctx.decoy_sni, decoy=True)
    if evidence.decoy.failure is None:
        evidence.keyed_on = "name"
        return Finding(technique, Fault.PATH, "tls+decoy_sni", f"{base_reason}, and a decoy SNI completes its QUIC handshake to the same address: keyed on the name")
    evidence.keyed_on = "quic"
    return Finding(technique, Fault.PATH, "tls+decoy_sni", f"{base_reason}, and a decoy SNI fails too ({evidence.decoy.failure}): keyed on QUIC itself")
