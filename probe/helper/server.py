"""The helper: a signed HTTP API, a UDP echo for call-like streams, catchers for circumvention
probes, and /metrics, in one asyncio loop.

Safety (docs/helper.md): every API request is signed and checked against the replay window;
every stream datagram is authenticated under its session's key and accepted once; an echo is
exactly as long as the datagram it answers; the probe catchers never send anything back; each
client (source address, held in memory only) is bounded in requests and bytes; bad input is
dropped and counted, never a crash; no client address is logged unless `log_clients` is set.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from probe.config import Config
from probe.helper import bulk, wire
from probe.helper.auth import SIGNATURE_HEADER, Verifier, answer_signature, session_key
from probe.helper.limits import Buckets
from probe.helper.measure import MAX_NAMES, Measurer
from probe.helper.metrics import HelperMetrics
from probe.helper.settings import HelperSettings

log = logging.getLogger(__name__)
_HEAD_LIMIT = 8192
_READ_TIMEOUT = 10.0
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
class _Session:
    client: str
    key: bytes
    packets: int
    expires: float
    seen: bytearray = field(default_factory=bytearray)  # one byte per sequence number: echoed once


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
        self._sessions: dict[bytes, _Session] = {}
        self._expectations: dict[str, _Expectation] = {}
        self.measurer = Measurer(measure_config, settings.cache_seconds, self.metrics.measurements.inc)
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self.ports: dict[str, int] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, listen: str | None = None) -> tuple[str, int]:
        host, port = _host_port(listen or self.settings.listen)
        api = await asyncio.start_server(self._http, host, port, limit=_HEAD_LIMIT)
        self._servers.append(api)
        port = api.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        stream, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._stream_datagram), local_addr=(host, port))
        probe_tcp = await asyncio.start_server(self._probe_connection, host, self.settings.probe_port)
        probe_port = probe_tcp.sockets[0].getsockname()[1]
        probe_udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._probe_datagram), local_addr=(host, probe_port))
        bulk_plain = await asyncio.start_server(self._bulk_connection, host, self.settings.bulk_port)
        bulk_port = bulk_plain.sockets[0].getsockname()[1]
        bulk_tls = await asyncio.start_server(self._bulk_connection, host, bulk_port + 1 if self.settings.bulk_port else 0, ssl=bulk.self_signed_context())
        self._servers += [probe_tcp, bulk_plain, bulk_tls]
        self._transports += [stream, probe_udp]
        self.ports = {"api": port, "stream": port, "probe": probe_port, "bulk": bulk_port, "bulk_tls": bulk_tls.sockets[0].getsockname()[1]}
        log.info("helper serving on %s port %d (API and streams), probes on %d", host, port, probe_port)
        return host, port

    async def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()

    def _client_label(self, client: str) -> str:
        return client if self.settings.log_clients else "a client"

    def _housekeeping(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]
        for key in [k for k, e in self._expectations.items() if e.expires < now]:
            del self._expectations[key]
        self.metrics.sessions.set(len(self._sessions) + len(self._expectations))
        self.metrics.clients.set(len(self._requests))

    # --- HTTP --------------------------------------------------------------------------------------

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = (writer.get_extra_info("peername") or ("?",))[0]
        status, headers, body = 400, {}, b""
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, request_headers = _parse_head(head)
                length = int(request_headers.get("content-length", "0") or 0)
                if not 0 <= length <= self.settings.limits.max_body_bytes:
                    raise _Refused(413, "too_large")
                request_body = await reader.readexactly(length) if length else b""
            status, headers, body = await self._route(client, method, path, request_headers, request_body)
        except _Refused as refused:
            self.metrics.refuse("http", refused.reason)
            status, body = refused.status, (refused.reason + "\n").encode()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ValueError, UnicodeDecodeError):
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
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise _Refused(400, "bad_json") from None
        if not isinstance(request, dict):
            raise _Refused(400, "bad_json")
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
        packets, size = request.get("packets"), request.get("size")
        if not (isinstance(packets, int) and isinstance(size, int)):
            raise _Refused(400, "bad_request")
        if not (1 <= packets <= limits.max_stream_seconds * limits.max_stream_pps and wire.MIN_PACKET <= size <= wire.MAX_PACKET):
            raise _Refused(400, "out_of_bounds")
        if sum(s.client == client for s in self._sessions.values()) >= limits.sessions_per_client:
            raise _Refused(429, "too_many_sessions")
        session = secrets.token_bytes(wire.SESSION_BYTES)
        expires = time.monotonic() + limits.max_stream_seconds + 10
        self._sessions[session] = _Session(client, session_key(self._secret, session), packets, expires, bytearray(packets))
        return {"session": session.hex(), "port": self.ports["stream"], "expires_in": limits.max_stream_seconds}

    async def _expect(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        transport, encoded = request.get("transport"), request.get("payloads")
        if transport not in ("tcp", "udp") or not isinstance(encoded, list) or not 1 <= len(encoded) <= _MAX_PAYLOADS:
            raise _Refused(400, "bad_request")
        try:
            payloads = [base64.b64decode(p, validate=True) for p in encoded]
        except (ValueError, TypeError):
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
        ident = str(request.get("id", ""))
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
        session = self._sessions.get(datagram.session)
        if session is None or session.expires < time.monotonic():
            self.metrics.refuse("stream", "unauthenticated")
            return
        if not _equal(wire.seal(session.key, datagram.session, datagram.seq, datagram.body), data):
            self.metrics.refuse("stream", "bad_signature")
            return
        if datagram.seq >= session.packets or session.seen[datagram.seq]:
            self.metrics.refuse("stream", "replayed")
            return
        session.seen[datagram.seq] = 1
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

    async def _probe_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = (writer.get_extra_info("peername") or ("?",))[0]
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

    async def _bulk_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                line = await reader.readline()
            parsed = bulk.parse_line(line[:1024])
            if parsed is None:
                self.metrics.refuse("bulk", "malformed")
                return
            headers, size = parsed
            refusal = self._verifier.refuse(bulk.METHOD, bulk.PATH, headers, str(size).encode())
            if refusal is not None:
                self.metrics.refuse("bulk", refusal)
                return
            if not self._bulk_bytes.allow(client, size):
                self.metrics.refuse("bulk", "rate_limited")
                return
            async with asyncio.timeout(_BULK_SECONDS):
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


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error"}


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _version = request_line.split(" ")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    return method, path.split("?", 1)[0], headers


def _host_port(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT'; port 0 takes any free port (tests, benchmarks)."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"bad listen address {value!r}: HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


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
    helper = Helper(settings, secret, measure_config)
    await helper.start(listen)
    try:
        await asyncio.Event().wait()
    finally:
        await helper.close()
