"""One exchange on the line to a helper abroad: a signed request and its answer on a connection of
its own, bounded in time and in bytes, observed as a `HelperExchange` (issue #18).

The line crosses the censor the vantage measures, and a hostile party on it can hold, drip, reset
or flood it. So every exchange has:
- a total deadline (the caller's, inside the round's); once the answer has begun, a stall bound
  (no byte for `STALL_SECONDS`: the line froze) and a rate floor (a drip never holds a round);
  before it, the request's acknowledgement is watched (a request stuck unacknowledged for
  `STALL_SECONDS` froze on the way up: the helper may measure for a while, the line may not stall);
- a size cap, enforced while reading: a declared length or the bytes read passing it end the
  exchange at once, before anything but the HTTP head is parsed;
- the answer's signature (over the request's nonce and the body) checked before the body is used;
- one failure string (probe.failures) for whatever went wrong, with the bytes each way.

HTTP/1.1 is parsed by h11 (httpx's own parser), so a TLS reverse proxy in front of the helper
(an `https://` URL) may answer with chunks as well as with a length.
"""

from __future__ import annotations

import asyncio
import fcntl
import hmac
import ipaddress
import json
import re
import socket
import struct
import termios
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

from probe import failures
from probe.helper.auth import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    answer_signature,
    sign_request,
)
from probe.model import HelperExchange
from probe.net import Route, open_tcp, ssl_context

STALL_SECONDS = 5.0  # once the answer began, no byte for this long: the line froze
RATE_FLOOR = 1024  # bytes per second an answer must average once it began...
RATE_GRACE_SECONDS = 5.0  # ...after this long (room for a lossy line's retransmissions)
UPLOAD_POLL_SECONDS = 0.5  # before the answer, how often the request's acknowledgement is looked at
HEAD_LIMIT = 8192  # the answer's HTTP head
_READ = 16 * 1024
_HTTP = b"HTTP/"  # how every answer begins
_DETAIL = re.compile(rb"[a-z_]{1,40}")  # a refusal's reason as the helper words it (unsigned: kept only if it looks like one)


class LineFailure(Exception):
    """The exchange did not complete; `exchange.failure` says how."""

    def __init__(self, exchange: HelperExchange):
        super().__init__(exchange.failure)
        self.exchange = exchange


class _Failed(Exception):
    def __init__(self, failure: str):
        self.failure = failure


@dataclass(frozen=True)
class Endpoint:
    """Where a helper's API is, from its URL (`http://host:9920`, `https://proxy.example/helper`)."""

    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def of(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname or "", parts.port or default, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.scheme == "https" else 80) else f"{host}:{self.port}"


async def resolve(host: str, until: float) -> str:
    """The helper's address (its URL's host, resolved when it is a name), by `until` (monotonic)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    async with asyncio.timeout_at(loop_time(until)):
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} did not resolve")
    return str(infos[0][4][0])


async def exchange(helper: str, endpoint: Endpoint, address: str, route: Route, secret: bytes, path: str, payload: dict[str, Any],
                   *, until: float, cap: int) -> tuple[dict[str, Any], HelperExchange]:
    """POST `payload` to the helper's `path`, on a fresh connection to `address`, by `until`
    (monotonic); the signed JSON answer, at most `cap` bytes on the wire, and the exchange's record.
    Raises LineFailure (with the record) when the exchange did not complete."""
    record = HelperExchange(helper, path)
    started = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        if until <= started:
            raise _Failed(failures.HELPER_NO_TIME)
        body = json.dumps(payload, separators=(",", ":")).encode()
        full = endpoint.base_path + path
        signed = sign_request(secret, "POST", full, body)
        connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=HEAD_LIMIT)
        request = connection.send(h11.Request(method="POST", target=full, headers=[
            ("Host", endpoint.host_header), ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Accept-Encoding", "identity"), ("Connection", "close"), *signed.items(),
        ])) + connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage())
        async with asyncio.timeout_at(loop_time(until)):
            # SOCKS5 is the measurements' way, not the helper's (its UDP could not follow it either)
            reader, writer = await open_tcp(Route(source_address=route.source_address), address, endpoint.port)
            if endpoint.scheme == "https":
                await writer.start_tls(ssl_context(), server_hostname=endpoint.host)  # the system's trust, as every check's
            writer.write(request)
            await writer.drain()
        record.sent_bytes = len(request)
        status, headers, answer = await _Answer(reader, writer, record, started, until, cap).read(connection)
        if status != 200:
            detail = answer.strip()
            record.detail = detail.decode() if _DETAIL.fullmatch(detail) else None
            raise _Failed(failures.HELPER_REFUSED)
        expected = answer_signature(secret, signed[NONCE_HEADER], 200, answer)
        if not hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, "")):
            raise _Failed(failures.HELPER_ANSWER_UNSIGNED)
        try:
            data = json.loads(answer)
        except ValueError:
            raise _Failed(failures.HELPER_ANSWER_MALFORMED) from None
        if not isinstance(data, dict):
            raise _Failed(failures.HELPER_ANSWER_MALFORMED)
        return data, record
    except _Failed as failed:
        record.failure = failed.failure
    except TimeoutError:  # the total deadline, before the answer began (after, _Answer says how it ended)
        record.failure = failures.TIMEOUT
    except Exception as exc:  # noqa: BLE001 - a refused, reset or unreachable line is the record's failure
        record.failure = failures.classify(exc)
    finally:
        record.duration_seconds = round(time.monotonic() - started, 3)
        if writer is not None:
            writer.close()
    raise LineFailure(record)


class _Answer:
    """Reads one HTTP answer with its bounds: total deadline, stall, rate floor, size cap."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: HelperExchange, started: float, until: float, cap: int):
        self.reader, self.writer, self.record, self.started, self.until, self.cap = reader, writer, record, started, until, cap
        self.began: float | None = None  # when the first byte came
        self.last: float = started  # when the latest byte came (or, before the answer, the request's latest acknowledgement)
        self.unacked: int | None = None  # of the request, at the latest look
        self.start = b""  # the answer's first bytes: garbage is told at once, not after a wait for more

    async def read(self, connection: h11.Connection) -> tuple[int, dict[str, str], bytes]:
        status, headers, body, closed = 0, {}, bytearray(), False
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError:
                raise _Failed(failures.EOF if closed else failures.HELPER_ANSWER_MALFORMED) from None
            if event is h11.NEED_DATA:
                chunk = await self._chunk()
                closed = not chunk
                connection.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = self.record.status = event.status_code
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.cap:
                    raise _Failed(failures.HELPER_ANSWER_TOO_LARGE)  # refused before a byte of it is read
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise _Failed(failures.EOF)
            # h11.InformationalResponse (1xx): the answer is still to come

    async def _chunk(self) -> bytes:
        while True:
            if self.began is None:  # the helper may measure for a while: only the request's own progress is watched
                bound = min(self.until, time.monotonic() + UPLOAD_POLL_SECONDS)
            else:
                bound = min(self.until, self.last + STALL_SECONDS)
            try:
                async with asyncio.timeout_at(loop_time(bound)):
                    chunk = await self.reader.read(min(_READ, self.cap + 1 - self.record.received_bytes))
                break
            except TimeoutError:
                if time.monotonic() >= self.until - 0.01 and self.began is None:
                    raise _Failed(failures.TIMEOUT) from None  # no answer at all by the deadline
                if self.began is None:
                    self._watch_upload()
                    continue
                stalled = time.monotonic() - self.last >= STALL_SECONDS - 0.05
                raise _Failed(failures.HELPER_LINE_FROZEN if stalled else failures.HELPER_LINE_DRIPPING) from None
        now = time.monotonic()
        if chunk:
            if self.began is None:
                self.began = now
                self.record.first_byte_seconds = round(now - self.started, 3)
            self.last = now
            self.record.received_bytes += len(chunk)
            if len(self.start) < len(_HTTP):
                self.start += chunk[: len(_HTTP) - len(self.start)]
                if not _HTTP.startswith(self.start):
                    raise _Failed(failures.HELPER_ANSWER_MALFORMED)
            if self.record.received_bytes > self.cap:
                raise _Failed(failures.HELPER_ANSWER_TOO_LARGE)  # stop reading: nothing past the cap is kept
        if self.began is not None:
            late = now - self.began - RATE_GRACE_SECONDS
            if late > 0 and self.record.received_bytes < RATE_FLOOR * late:
                raise _Failed(failures.HELPER_LINE_DRIPPING)
        return chunk


    def _watch_upload(self) -> None:
        """Before the answer: a request the helper has not acknowledged for STALL_SECONDS froze on
        the way up (a freeze counts both directions): said at once, not at the deadline."""
        unacked = _unacknowledged(self.writer)
        now = time.monotonic()
        if not unacked or unacked != self.unacked:
            self.unacked, self.last = unacked, now  # all of it acknowledged (the helper is measuring), or progress
            return
        if now - self.last >= STALL_SECONDS:
            self.record.sent_bytes -= unacked  # what got through
            raise _Failed(failures.HELPER_LINE_FROZEN)


def _unacknowledged(writer: asyncio.StreamWriter) -> int | None:
    """Bytes written that the peer has not acknowledged yet (Linux's SIOCOUTQ), or None when unknown."""
    sock = writer.get_extra_info("socket")
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (AttributeError, OSError, ValueError):
        return None


def loop_time(monotonic: float) -> float:
    """A `time.monotonic()` instant on the running loop's clock (asyncio's timeouts use that)."""
    return asyncio.get_running_loop().time() + (monotonic - time.monotonic())

