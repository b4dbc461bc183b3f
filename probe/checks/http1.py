"""One HTTP/1.1 exchange on an open connection (probe._socket_stream: plain, or the tls check's
validated TLS stream), made the way httpcore made it with h11 (the same writes, the same reads,
the same errors), without its pool, locks, events and per-operation timeouts, which a check that
sends one request per connection does not use (their cost: docs/benchmarks.md, issue 22). The
caller bounds the exchange in time and closes the connection.

The request's head is written as h11 writes it (Host first) and the response read by
probe.checks.http1_response, h11's grammar without its per-target objects (issue 22, session 4).
A request h11 would frame or refuse itself (the config's own Content-Length or Transfer-Encoding,
an Upgrade, CONNECT, a name or value h11 refuses) goes through h11 itself, as before.

Errors are httpcore's: a response that cannot be read is `httpcore.RemoteProtocolError` with
h11's words, a close before any response is "Server disconnected without sending a response.",
so that probe.failures classifies them as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import lru_cache
from typing import TYPE_CHECKING

from probe._socket_stream import SocketStream
from probe.checks import http1_response
from probe.checks.http1_response import FIELD_NAME, FIELD_VALUE, METHOD, REQUEST_TARGET

if TYPE_CHECKING:
    import h11

__all__ = ["Response", "request"]

_READ_BYTES = http1_response.READ_BYTES
_MAX_HEAD = http1_response.MAX_HEAD

Response = http1_response.Response


async def request(stream: SocketStream, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], content: bytes | None) -> Response | _H11Response:
    """Send the request (its head, then its body, as two writes) and read the response's head.
    `headers` complete: Host and the body's framing included."""
    head = _head(method, target, headers, content)
    if head is None:
        return await _h11_request(stream, method, target, headers, content)
    stream.write(head)
    await stream.drain()
    if content:
        stream.write(content)
        await stream.drain()
    return await http1_response.read_response(stream, method)


def _head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], content: bytes | None) -> bytes | None:
    """The request's head as h11 writes it (the request line, Host first, then the rest in
    order), or None when h11 must frame or judge it itself."""
    if REQUEST_TARGET.fullmatch(target) is None:
        return None
    hosts = [(name, value) for name, value in headers if name.lower() == b"host"]
    if len(hosts) != 1 or FIELD_VALUE.fullmatch(hosts[0][1]) is None or FIELD_NAME.fullmatch(hosts[0][0]) is None:
        return None
    rest = _rest(method, tuple(pair for pair in headers if pair[0].lower() != b"host"), None if content is None else len(content))
    if rest is None:
        return None
    return b"%s %s HTTP/1.1\r\n%s: %s\r\n%s" % (method, target, hosts[0][0], hosts[0][1], rest)


@lru_cache(maxsize=64)
def _rest(method: bytes, headers: tuple[tuple[bytes, bytes], ...], content_length: int | None) -> bytes | None:
    """The head's lines after Host, the same for every target of a config (hence kept), or None
    when h11 must frame or judge the request: CONNECT, an Upgrade, a framing header other than
    a Content-Length that is the body's, a method, name or value h11 refuses."""
    if method == b"CONNECT" or METHOD.fullmatch(method) is None:
        return None
    lines = []
    for name, value in headers:
        lower = name.lower()
        if lower in (b"upgrade", b"transfer-encoding") or (lower == b"content-length" and value != b"%d" % (content_length if content_length is not None else -1)):
            return None
        if FIELD_NAME.fullmatch(name) is None or FIELD_VALUE.fullmatch(value) is None:
            return None
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines) + b"\r\n"


# --- h11's path: the requests h11 frames or refuses itself, and the reference the tests compare with.


class _H11Response:
    """The head of a response read by h11; `body()` reads the rest of it as it comes."""

    __slots__ = ("_connection", "_reader", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], connection: h11.Connection, stream: SocketStream) -> None:
        self.status, self.headers = status, headers
        self._connection, self._reader = connection, stream

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks (de-chunked, as h11 frames it) until its end, or the connection's
        close when the response is framed by it."""
        import h11

        if self.status == 101:
            return  # switched protocols: what follows is not this response's body
        while True:
            event = await _next_event(self._connection, self._reader)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return


async def _h11_request(stream: SocketStream, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], content: bytes | None) -> _H11Response:
    import h11

    reader = writer = stream
    connection = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    writer.write(connection.send(h11.Request(method=method, target=target, headers=headers)) or b"")
    await writer.drain()
    if content:
        writer.write(connection.send(h11.Data(data=content)) or b"")
        await writer.drain()
    end = connection.send(h11.EndOfMessage())  # nothing for a body of known length; a chunked one's last chunk
    if end:
        writer.write(end)
        await writer.drain()
    while True:
        event = await _next_event(connection, reader)
        if isinstance(event, h11.Response) or (isinstance(event, h11.InformationalResponse) and event.status_code == 101):
            return _H11Response(event.status_code, event.headers.raw_items(), connection, stream)


async def _next_event(connection: h11.Connection, reader: SocketStream) -> h11.Event | type[h11.PAUSED]:
    import h11

    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise http1_response.protocol_error(exc) from exc
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]  # NEED_DATA is the only other sentinel
        data = await reader.read(_READ_BYTES)
        if data == b"" and connection.their_state == h11.SEND_RESPONSE:
            raise http1_response.protocol_error("Server disconnected without sending a response.")
        connection.receive_data(data)
