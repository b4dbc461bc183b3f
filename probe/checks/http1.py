"""One HTTP/1.1 exchange on an open connection (probe._socket_stream: plain, or the tls check's
validated TLS stream), with h11: the parser httpx's connection layer (httpcore) runs, driven the way httpcore
drives it (the same reads, the same writes, the same errors), without its pool, locks, events
and per-operation timeouts, which a check that sends one request per connection does not use
(their cost: docs/benchmarks.md, issue 22). The caller bounds the exchange in time and closes
the connection.

Errors are httpcore's: a response h11 cannot read is `httpcore.RemoteProtocolError` with h11's
words, a close before any response is "Server disconnected without sending a response.", so
that probe.failures classifies them as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11

from probe._socket_stream import SocketStream

__all__ = ["Response", "request"]

_READ_BYTES = 64 * 1024  # httpcore's READ_NUM_BYTES
_MAX_HEAD = 100 * 1024  # httpcore's MAX_INCOMPLETE_EVENT_SIZE: a longer head is a protocol error


class Response:
    """The head of a response; `body()` reads the rest of it as it comes."""

    __slots__ = ("_connection", "_reader", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], connection: h11.Connection, stream: SocketStream) -> None:
        self.status, self.headers = status, headers
        self._connection, self._reader = connection, stream

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks (de-chunked, as h11 frames it) until its end, or the connection's
        close when the response is framed by it."""
        if self.status == 101:
            return  # switched protocols: what follows is not this response's body
        while True:
            event = await _next_event(self._connection, self._reader)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return


async def request(stream: SocketStream, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], content: bytes | None) -> Response:
    """Send the request (its head, then its body, as two writes) and read the response's head.
    `headers` complete: Host and the body's framing included."""
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
            return Response(event.status_code, event.headers.raw_items(), connection, stream)


async def _next_event(connection: h11.Connection, reader: SocketStream) -> h11.Event | type[h11.PAUSED]:
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise _remote_protocol_error(exc) from exc
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]  # NEED_DATA is the only other sentinel
        data = await reader.read(_READ_BYTES)
        if data == b"" and connection.their_state == h11.SEND_RESPONSE:
            raise _remote_protocol_error("Server disconnected without sending a response.")
        connection.receive_data(data)


def _remote_protocol_error(cause: object) -> Exception:
    """httpcore's error, as httpcore raises it; httpcore imported on this path only, so that a
    round of answers that parse never loads it (its import: docs/benchmarks.md, issue 22)."""
    from probe._httpcore import httpcore

    return httpcore.RemoteProtocolError(cause)
