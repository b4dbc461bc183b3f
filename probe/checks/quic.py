"""quic: one HTTP/3 request (aioquic) to the address where TCP+TLS succeeded.

Russia's TSPU drops UDP/443 datagrams of 1001 bytes or more that carry QUIC v1 (IMC 2022):
every QUIC Initial is padded to at least 1200 bytes, so the handshake never completes while
TCP+TLS to the same host works. That is `quic_blocked`. Any HTTP/3 response counts (the status
is not a signal), read up to `max_body_bytes`.

Put `quic` after `tls` in a target's checks: the judge needs the TLS result to compare with
(probe.judge.quic). When the QUIC handshake with the real name fails before completing, with a
failure a censor could cause, and TCP+TLS succeeded, a second handshake to the same address
with the decoy SNI (certificate not checked) tells what the block is keyed on (`keyed_on`):
`name` when the decoy completes (a censor reading the SNI of QUIC Initials), `quic` when it
fails too (QUIC itself, as TSPU's size rule).

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
from probe.checks.context import Context, Skip
from probe.checks.endpoints import udp_endpoints
from probe.checks.observe import Stopwatch, recorded
from probe.model import QUICAttempt, QUICEvidence
from probe.net import udp_socket
from probe.params import QUICParams as Params

NAME = "quic"

_SYSTEM_STORE = Path("/etc/ssl/certs/ca-certificates.crt")




def _address(ctx: Context) -> str | None:
    if ctx.tls_endpoint is not None:
        return ctx.tls_endpoint[0]
    if ctx.connected:
        return ctx.connected[0][0]
    chosen = udp_endpoints(ctx)
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
    limit = ctx.bounded(params.handshake_timeout)
    transport = client = None
    with Stopwatch() as watch:
        try:
            async with recorded(ctx, outcome, None, "quic_handshake") as operation:
                verify = ssl.CERT_NONE if decoy else ssl.CERT_REQUIRED
                configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni, verify_mode=verify)
                configuration.cafile, configuration.cadata = _trust(ctx.ca_bundles(), ctx.replace_trust())
                loop = asyncio.get_running_loop()
                transport, client = await loop.create_datagram_endpoint(
                    lambda: Client(QuicConnection(configuration=configuration)), sock=udp_socket(ctx.route, address, params.port)
                )
                peer = transport.get_extra_info("peername")
                client.connect(peer)
                try:
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
                    if not decoy:
                        operation.now("http_round_trip")
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
                except ConnectionError as exc:
                    if type(exc) is ConnectionError:  # aioquic's bare "closed": no errno to classify
                        raise failures.Failure(failures.EOF, "QUIC connection closed") from None
                    raise
        finally:
            if client is not None:
                client.close()  # sends CONNECTION_CLOSE; the draining period is not waited for
                timer = getattr(client, "_timer", None)
                if timer is not None:
                    timer.cancel()
            if transport is not None:
                transport.close()
    return outcome


async def run(ctx: Context, params: Params) -> QUICEvidence:
    if ctx.route.socks5 is not None:
        raise Skip("UDP cannot go through the vantage's SOCKS5 proxy")
    try:
        import aioquic  # noqa: F401 - a dependency, imported when needed
    except ImportError:
        return QUICEvidence(error="aioquic is not installed: this install of msgreach is incomplete (pip install msgreach brings it)")
    address = _address(ctx)
    if address is None:
        raise Skip("no address for QUIC")
    tls = ctx.result("tls")
    attempt = await h3_get(ctx, address, params)
    evidence = QUICEvidence(attempt, tls.ok if tls is not None else None)
    failed = attempt.failure
    singled_out = failed is not None and evidence.tls_ok and attempt.handshake_seconds is None and failed in failures.INTERFERENCE
    if singled_out and params.decoy:
        # QUIC singled out: the decoy tells whether by the name in the Initial or by QUIC itself.
        evidence.decoy = await h3_get(ctx, attempt.address, params, sni=ctx.decoy_sni, decoy=True)
    return evidence
