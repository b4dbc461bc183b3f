"""The helper: a signed HTTP API, a UDP echo for call-like streams, catchers for circumvention
probes, and /metrics, in one asyncio loop.

Safety (docs/helper.md): every API request is signed and checked against the replay window;
every stream datagram is authenticated under its session's key and accepted once; an echo is
exactly as long as the datagram it answers; the probe catchers never send anything back; each
client (source address, held in memory only) is bounded in connections, requests and bytes, and
all clients together in connections and sessions; a connection must send its request head
within seconds; bad input is parsed strictly (`parsing`), dropped and counted, never a crash or
a traceback; no client address is logged unless `log_clients` is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from probe.config import Config
from probe.helper import bulk, parsing, wire
from probe.helper.auth import SIGNATURE_HEADER, Verifier, answer_signature, session_key
from probe.helper.connections import (
    ConnectionGate,
    GatedListener,
    Handler,
    connection_cap,
)
from probe.helper.limits import Buckets
from probe.helper.measure import MAX_NAMES, Measurer
from probe.helper.metrics import HelperMetrics
from probe.helper.parsing import Malformed
from probe.helper.sessions import Sessions, StreamSession
from probe.helper.settings import HelperSettings, listen_address

log = logging.getLogger(__name__)
_HEAD_LIMIT = 8192
_HEAD_SECONDS = 5.0  # a connection that has not sent its request head (or bulk line) by then is closed
_READ_TIMEOUT = 10.0  # the whole request, body included
_BACKLOG = 1024  # connections the kernel queues for accept(): refusals are cheap, so a flood drains fast
_PROBE_HOLD = 3.0  # seconds a probe connection is read before it is judged
_PROBE_MAX = 4096  # bytes read from one probe connection
_MAX_PAYLOAD = 2048  # one probe payload
_MAX_PAYLOADS = 8
_MAX_EXPECTATIONS = 4096  # all clients together
_EXPECT_SECONDS = 30.0
_BULK_SECONDS = 60.0  # one bulk transfer, at most


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason


@dataclass
class _Expectation:
    client: str
    transport: str
    payloads: list[bytes]
    expires: float
    arrived: list[int] = field(default_factory=list)  # per payload: bytes that arrived intact (longest)


class Helper:
    def __init__(self, settings: HelperSettings, secret: bytes, measure_config: Config):
        self.settings = settings
        self._secret = secret
        self.metrics = HelperMetrics()
        self._verifier = Verifier(secret)
        limits = settings.limits
        self._requests = Buckets(limits.requests_per_minute, limits.max_clients)
        self._udp_bytes = Buckets(limits.udp_bytes_per_minute, limits.max_clients)
        self._probe_bytes = Buckets(limits.probe_bytes_per_minute, limits.max_clients)
        self._bulk_bytes = Buckets(limits.bulk_bytes_per_minute, limits.max_clients)
        self._sessions = Sessions(limits)
        self._connections = ConnectionGate(limits.connections_per_client, connection_cap(limits.max_connections))
        self._expectations: dict[str, _Expectation] = {}
        self.measurer = Measurer(measure_config, settings.cache_seconds, self.metrics.measurements.inc)
        self._listeners: list[GatedListener] = []
        self._transports: list[asyncio.BaseTransport] = []
        self.ports: dict[str, int] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, listen: str | None = None) -> tuple[str, int]:
        host, port = listen_address(listen or self.settings.listen)
        port = (await self._listen("http", self._http, host, port)).port
        loop = asyncio.get_running_loop()
        stream, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._stream_datagram), local_addr=(host, port))
        probe_port = (await self._listen("probe", self._probe_connection, host, self.settings.probe_port)).port
        probe_udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._probe_datagram), local_addr=(host, probe_port))
        bulk_port = (await self._listen("bulk", self._bulk_connection, host, self.settings.bulk_port)).port
        tls = bulk.self_signed_context()

        async def bulk_over_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str) -> None:
            await self._bulk_connection(reader, writer, client, tls)

        # TLS after the gate: a handshake that never comes holds a slot for the head deadline
        # only, and counts against its address like any other connection.
        bulk_tls = await self._listen("bulk", bulk_over_tls, host, bulk_port + 1 if self.settings.bulk_port else 0)
        self._transports += [stream, probe_udp]
        self.ports = {"api": port, "stream": port, "probe": probe_port, "bulk": bulk_port, "bulk_tls": bulk_tls.port}
        log.info("helper serving on %s: API and streams on port %d, probes on %d, bulk on %d (TLS %d); at most %d connections, %d per client",
                 host, port, probe_port, bulk_port, self.ports["bulk_tls"], self._connections.total, self._connections.per_client)
        return host, port

    async def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for listener in self._listeners:
            await listener.close()

    async def _listen(self, channel: str, handler: Handler, host: str, port: int) -> GatedListener:
        """A TCP listener whose connections pass the gate first: over a cap, reset at once and counted."""
        gauge = self.metrics.connections.labels(channel)
        listener = await GatedListener.bind(host, port, _BACKLOG, self._connections, handler, limit=_HEAD_LIMIT,
                                            refused=lambda reason: self.metrics.refuse(channel, reason), opened=gauge.inc)
        self._listeners.append(listener)
        return listener

    def _client_label(self, client: str) -> str:
        return client if self.settings.log_clients else "a client"

    def _housekeeping(self, now: float) -> None:
        self._sessions.close_ended(now)
        for key in [k for k, e in self._expectations.items() if e.expires < now]:
            del self._expectations[key]
        self.metrics.sessions.set(len(self._sessions) + len(self._expectations))
        self.metrics.clients.set(len(self._requests))

    # --- HTTP --------------------------------------------------------------------------------------

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str) -> None:
        status, headers, body = 400, dict[str, str](), b""
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                try:
                    async with asyncio.timeout(_HEAD_SECONDS):
                        head = await reader.readuntil(b"\r\n\r\n")
                except TimeoutError:
                    raise _Refused(408, "timeout") from None
                method, path, request_headers = parsing.request_head(head)
                length = parsing.content_length(request_headers, self.settings.limits.max_body_bytes)
                request_body = await reader.readexactly(length) if length else b""
            status, headers, body = await self._route(client, method, path, request_headers, request_body)
        except _Refused as refused:
            self.metrics.refuse("http", refused.reason)
            status, body = refused.status, (refused.reason + "\n").encode()
        except Malformed as malformed:
            self.metrics.refuse("http", malformed.reason)
            status, body = malformed.status, (malformed.reason + "\n").encode()
        except TimeoutError:
            self.metrics.refuse("http", "timeout")
            status, body = 408, b"timeout\n"
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            self.metrics.refuse("http", "malformed")
            status, body = 400, b"malformed\n"
        except Exception:  # a bug must not end the helper
            log.exception("helper: request from %s failed", self._client_label(client))
            status, body = 500, b"internal error\n"
        try:
            lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Length: {len(body)}", "Connection: close",
                     *(f"{k}: {v}" for k, v in headers.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (ConnectionError, RuntimeError):
            pass
        finally:
            writer.close()

    async def _route(self, client: str, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and path == "/metrics":
            return 200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self.metrics.registry)
        if method == "GET" and path == "/healthz":
            return 200, {"Content-Type": "text/plain"}, b"ok\n"
        handlers = {
            wire.API_MEASURE: self._measure,
            wire.API_STREAM: self._open_stream,
            wire.API_EXPECT: self._expect,
            wire.API_REPORT: self._report,
            wire.API_BULK: self._bulk_ports,
        }
        if method != "POST" or path not in handlers:
            raise _Refused(404, "not_found")
        if not self._requests.allow(client):
            raise _Refused(429, "rate_limited")
        refusal = self._verifier.refuse(method, path, headers, body)
        if refusal is not None:
            raise _Refused(401, refusal)
        request = parsing.json_object(body)
        self._housekeeping(time.monotonic())
        answer = await handlers[path](client, request)
        self.metrics.requests.labels(path.rsplit("/", 1)[-1]).inc()
        payload = json.dumps(answer, ensure_ascii=False).encode()
        signature = answer_signature(self._secret, headers["x-msgreach-nonce"], 200, payload)
        return 200, {"Content-Type": "application/json", SIGNATURE_HEADER: signature}, payload

    async def _measure(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        targets = request.get("targets")
        if not isinstance(targets, list) or len(targets) > MAX_NAMES:
            raise _Refused(400, "bad_request")
        names = []
        for item in targets:
            if not (isinstance(item, dict) and isinstance(item.get("service"), str) and isinstance(item.get("target"), str)):
                raise _Refused(400, "bad_request")
            names.append((item["service"], item["target"]))
        try:
            shape = wire.MeasureShape.of(request)  # compact answers and pages under a byte budget (issue #18)
        except ValueError:
            raise _Refused(400, "bad_request") from None
        unknown = sum(not self.measurer.knows(*n) for n in names)
        if unknown:
            self.metrics.refuse("measure", "unknown_target")
        answers = await self.measurer.answer(names, max_age=wire.CONTINUATION_SECONDS if shape.continuation else None)
        return wire.measure_answer(answers, shape)

    async def _open_stream(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        limits = self.settings.limits
        packets = parsing.integer(request.get("packets"), 1, int(limits.max_stream_seconds * limits.max_stream_pps))
        parsing.integer(request.get("size"), wire.MIN_PACKET, wire.MAX_PACKET)
        now = time.monotonic()
        refusal = self._sessions.refusal(client, now)
        if refusal is not None:
            raise _Refused(429, refusal)
        session = secrets.token_bytes(wire.SESSION_BYTES)
        self._sessions.add(session, StreamSession(client, session_key(self._secret, session), packets, now, bytearray(packets)))
        return {"session": session.hex(), "port": self.ports["stream"], "expires_in": limits.max_stream_seconds}

    async def _expect(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        transport, encoded = request.get("transport"), request.get("payloads")
        if not isinstance(transport, str) or transport not in ("tcp", "udp") or not isinstance(encoded, list) or not 1 <= len(encoded) <= _MAX_PAYLOADS:
            raise _Refused(400, "bad_request")
        if not all(isinstance(p, str) and p.isascii() for p in encoded):
            raise _Refused(400, "bad_request")
        try:
            payloads = [base64.b64decode(p, validate=True) for p in encoded]
        except (ValueError, binascii.Error):
            raise _Refused(400, "bad_request") from None
        if any(not 8 <= len(p) <= _MAX_PAYLOAD for p in payloads):
            raise _Refused(400, "out_of_bounds")
        if sum(e.client == client for e in self._expectations.values()) >= self.settings.limits.sessions_per_client:
            raise _Refused(429, "too_many_sessions")
        if len(self._expectations) >= _MAX_EXPECTATIONS or not self._probe_bytes.allow(client, sum(map(len, payloads))):
            raise _Refused(429, "rate_limited")
        ident = secrets.token_hex(8)
        self._expectations[ident] = _Expectation(client, transport, payloads, time.monotonic() + _EXPECT_SECONDS, [0] * len(payloads))
        return {"id": ident, "port": self.ports["probe"]}

    async def _bulk_ports(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"port": self.ports["bulk"], "tls_port": self.ports["bulk_tls"], "max_bytes": bulk.MAX_BYTES}

    async def _report(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        ident = request.get("id")
        if not isinstance(ident, str) or not parsing.is_hex(ident, 16):
            raise _Refused(400, "bad_request")
        expectation = self._expectations.get(ident)
        if expectation is None or expectation.client != client:
            raise _Refused(404, "unknown_expectation")
        del self._expectations[ident]  # reported once: the slot is free again
        return {"arrived": list(expectation.arrived), "sizes": [len(p) for p in expectation.payloads]}

    # --- UDP streams -----------------------------------------------------------------------------

    def _stream_datagram(self, data: bytes, address: tuple[str, int], transport: asyncio.DatagramTransport) -> None:
        datagram = wire.split(data)
        if datagram is None:
            self.metrics.refuse("stream", "malformed")
            return
        now = time.monotonic()
        session, why = self._sessions.get(datagram.session, now)
        if session is None:
            self.metrics.refuse("stream", why)
            return
        if not _equal(wire.seal(session.key, datagram.session, datagram.seq, datagram.body), data):
            self.metrics.refuse("stream", "bad_signature")
            return
        if not session.accept(datagram.seq, now):
            self.metrics.refuse("stream", "replayed")
            return
        if not self._udp_bytes.allow(address[0], len(data)):
            self.metrics.refuse("stream", "rate_limited")
            return
        reply = wire.seal(session.key, datagram.session, datagram.seq, wire.echo_body(datagram.body), wire.DOWN)
        if len(reply) > len(data):  # never more bytes than were sent (no amplification)
            self.metrics.refuse("stream", "internal")
            return
        self.metrics.datagrams.inc()
        self.metrics.stream_bytes.inc(len(data))
        transport.sendto(reply, address)

    # --- circumvention probes (nothing is ever sent back) ---------------------------------------

    def _match(self, transport: str, data: bytes) -> tuple[_Expectation, int] | None:
        now = time.monotonic()
        for expectation in self._expectations.values():
            if expectation.transport != transport or expectation.expires < now:
                continue
            for index, payload in enumerate(expectation.payloads):
                k = min(len(data), len(payload), 64)
                if k >= 8 and data[:k] == payload[:k]:
                    return expectation, index
        return None

    def _probe_datagram(self, data: bytes, address: tuple[str, int], transport: asyncio.DatagramTransport) -> None:
        if not self._probe_bytes.allow(address[0], len(data)):  # before the search: a flood costs little
            self.metrics.refuse("probe", "rate_limited")
            return
        found = self._match("udp", data)
        if found is None:
            self.metrics.refuse("probe", "unexpected")
            return
        expectation, index = found
        expectation.arrived[index] = max(expectation.arrived[index], _common_prefix(data, expectation.payloads[index]))
        self.metrics.probe_arrivals.labels("udp").inc()

    async def _probe_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str) -> None:
        data = b""
        try:
            async with asyncio.timeout(_PROBE_HOLD):
                while len(data) < _PROBE_MAX:
                    chunk = await reader.read(_PROBE_MAX - len(data))
                    if not chunk:
                        break
                    data += chunk
                    found = self._match("tcp", data)
                    if found is not None and len(data) >= len(found[0].payloads[found[1]]):
                        break
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
        if not self._probe_bytes.allow(client, len(data)):
            self.metrics.refuse("probe", "rate_limited")
            return
        found = self._match("tcp", data) if data else None
        if found is None:
            self.metrics.refuse("probe", "unexpected")
            return
        expectation, index = found
        expectation.arrived[index] = max(expectation.arrived[index], _common_prefix(data, expectation.payloads[index]))
        self.metrics.probe_arrivals.labels("tcp").inc()

    # --- bulk transfers (plain TCP and TLS) ------------------------------------------------------

    async def _bulk_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str,
                               tls: ssl.SSLContext | None = None) -> None:
        try:
            try:
                async with asyncio.timeout(_HEAD_SECONDS):
                    if tls is not None:
                        await writer.start_tls(tls)
                    line = await reader.readuntil(b"\n")
            except TimeoutError:
                self.metrics.refuse("bulk", "timeout")
                return
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
                self.metrics.refuse("bulk", "malformed")
                return
            parsed = bulk.parse_line(line)
            if parsed is None:
                self.metrics.refuse("bulk", "malformed")
                return
            headers, size, upload = parsed
            refusal = self._verifier.refuse(bulk.METHOD, bulk.UPLOAD_PATH if upload else bulk.PATH, headers, str(size).encode())
            if refusal is not None:
                self.metrics.refuse("bulk", refusal)
                return
            if not self._bulk_bytes.allow(client, size):
                self.metrics.refuse("bulk", "rate_limited")
                return
            async with asyncio.timeout(_BULK_SECONDS):
                if upload:  # counted, not kept; the answer says how much came
                    received = await bulk.receive(reader, size)
                    self.metrics.bulk_bytes_received.inc(received)
                    writer.write(b"%d\n" % received)
                    await writer.drain()
                    return
                await bulk.send(writer, size)
            self.metrics.bulk_bytes.inc(size)
        except (TimeoutError, ConnectionError, OSError, ValueError):
            pass  # a cut or frozen transfer is the client's evidence, not the helper's problem
        finally:
            writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handler: Any):
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._handler(data, addr, self._transport)
        except Exception:  # bad input is dropped, never a crash
            log.exception("helper: a datagram could not be handled")

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors from a client that went away


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large",
            429: "Too Many Requests", 500: "Internal Server Error"}


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


async def serve(settings: HelperSettings, secret: bytes, measure_config: Config, listen: str | None = None) -> None:
    """`msgreach helper`: run until interrupted."""
    from probe.runner import raise_descriptor_limit

    raise_descriptor_limit()  # before the helper sizes its connection cap from it
    helper = Helper(settings, secret, measure_config)
    await helper.start(listen)
    try:
        await asyncio.Event().wait()
    finally:
        await helper.close()
