"""quic: one HTTP/3 request (aioquic) to the address where TCP+TLS succeeded.

Russia's TSPU drops UDP/443 datagrams of 1001 bytes or more that carry QUIC v1 (IMC 2022):
every QUIC Initial is padded to at least 1200 bytes, so the handshake never completes while
TCP+TLS to the same host works. That is `quic_blocked`. Any HTTP/3 response counts (the status
is not a signal), read up to `max_body_bytes`.

Put `quic` after `tls` in a target's checks: the verdict needs the TLS result to compare with.
Without it a QUIC failure proves nothing about a block (`down`). Enable it only for hosts that
serve HTTP/3. aioquic is an optional dependency (`pip install 'msgreach[quic]'`), imported
when the check runs; without it the check fails with `check_unavailable`.
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
from probe.net import udp_socket
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict
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


async def h3_get(ctx: Context, address: str, params: Params) -> dict[str, Any]:
    """One HTTP/3 GET on a fresh QUIC connection; evidence, never raises."""
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

    sni = params.sni or ctx.target.host
    outcome: dict[str, Any] = {"address": address, "port": params.port, "sni": sni, "failure": None}
    limit = common.phase_timeout(ctx, params.handshake_timeout)
    transport = client = None
    with Stopwatch() as watch:
        try:
            configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni, verify_mode=ssl.CERT_REQUIRED)
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
            outcome["handshake_seconds"] = round(watch.seconds, 4)
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
            outcome["status_code"] = client.status
            outcome["body_bytes"] = client.body_bytes
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            if isinstance(exc, ConnectionError) and type(exc) is ConnectionError:
                exc = failures.Failure(failures.EOF, "QUIC connection closed")
            outcome.update(failures.as_evidence(exc))
        finally:
            if client is not None:
                client.close()  # sends CONNECTION_CLOSE; the draining period is not waited for
                timer = getattr(client, "_timer", None)
                if timer is not None:
                    timer.cancel()
            if transport is not None:
                transport.close()
    outcome["duration_seconds"] = round(watch.seconds, 4)
    return outcome


async def run(ctx: Context, params: Params) -> CheckResult:
    if ctx.route.socks5 is not None:
        raise Skip("UDP cannot go through the vantage's SOCKS5 proxy")
    try:
        import aioquic  # noqa: F401 - an optional dependency, imported when needed
    except ImportError:
        evidence = {"error": "aioquic is not installed; install msgreach[quic] to run this check"}
        return CheckResult(NAME, False, failures.UNAVAILABLE, 0.0, Finding(Verdict.QUIC_BLOCKED, Fault.MONITOR, "", "aioquic is not installed"), evidence)
    address = _address(ctx)
    if address is None:
        raise Skip("no address for QUIC")
    with Stopwatch() as watch:
        attempt = await h3_get(ctx, address, params)
    tls = ctx.result("tls")
    # The result carries the failure and the duration: not repeated at the top of the evidence.
    evidence: dict[str, Any] = {k: v for k, v in attempt.items() if k not in ("failure", "duration_seconds")}
    evidence["tls_ok"] = tls.ok if tls is not None else None
    if attempt["failure"] is None:
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    # QUIC failing where TCP+TLS to the same host succeeded: QUIC itself is singled out.
    if tls is not None and tls.ok:
        finding = Finding(Verdict.QUIC_BLOCKED, Fault.PATH, "tcp_tls", "TCP and TLS to the same host succeed")
    else:
        finding = Finding(Verdict.QUIC_BLOCKED, Fault.UNSEPARATED, "", "no TCP+TLS result to compare with")
    return CheckResult(NAME, False, attempt["failure"], watch.seconds, finding, evidence)
