"""An HTTP/1.1 response read off one connection the way h11 reads it (the parser httpcore runs, and
this check ran until issue #22, session 4), without h11's event objects, state machine and
receive buffer per target: the same grammar (h11's own regular expressions), the same framing
(204/304/HEAD empty, chunked beats Content-Length, else up to the close), the same bound on an
incomplete head (100 KiB), the same reads (64 KiB), the same body chunks, and the same errors
with h11's words, so that probe.failures classifies every malformed answer as before
(tests/test_http1_response.py feeds the same bytes to both).

Errors are httpcore's `RemoteProtocolError` (imported on the error path only), as http1's h11
path raised them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["Reader", "Response", "read_response"]

READ_BYTES = 64 * 1024  # httpcore's READ_NUM_BYTES
MAX_HEAD = 100 * 1024  # httpcore's MAX_INCOMPLETE_EVENT_SIZE: a longer incomplete head is a protocol error

# h11's grammar (h11/_abnf.py), verbatim.
_OWS = rb"[ \t]*"
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VCHAR = rb"[^\x00\s]"
_FIELD_VALUE = rb"(" + _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*)?"
_HEADER_FIELD = re.compile(rb"(?P<field_name>" + _TOKEN + rb"):" + _OWS + rb"(?P<field_value>" + _FIELD_VALUE + rb")" + _OWS)
_STATUS_LINE = re.compile(rb"HTTP/(?P<http_version>[0-9]\.[0-9]) (?P<status_code>[0-9]{3})(?: (?P<reason>([ \t]|" + _FIELD_VCHAR + rb")*))?")
_CHUNK_HEADER = re.compile(rb"(?P<chunk_size>([0-9A-Fa-f]){1,20})(?P<chunk_ext>;.*)?" + _OWS + rb"\r\n")
_OBS_FOLD = re.compile(rb"[ \t]+")
_BLANK_LINE = re.compile(rb"\n\r?\n", re.MULTILINE)
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
_CONTENT_LENGTH_MAX_DIGITS = 20

# A field name/value the request may carry as written (h11's check of what it sends).
FIELD_NAME = re.compile(_TOKEN)
FIELD_VALUE = re.compile(_FIELD_VALUE)
METHOD = re.compile(_TOKEN)
REQUEST_TARGET = re.compile(rb"[\x21-\x7e]+")


class Reader(Protocol):
    async def read(self, n: int, /) -> bytes: ...


class Response:
    """The head of a response; `body()` reads the rest of it as it comes."""

    __slots__ = ("_buffer", "_framing", "_length", "_reader", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], framing: str, length: int, reader: Reader, buffer: bytearray) -> None:
        self.status, self.headers = status, headers
        self._framing, self._length, self._reader, self._buffer = framing, length, reader, buffer

    def body(self) -> AsyncIterator[bytes]:
        """The body's chunks (de-chunked, as h11 frames them) until its end, or the connection's
        close when the response is framed by it."""
        if self._framing == "chunked":
            return _chunked(self._reader, self._buffer)
        if self._framing == "close":
            return _until_close(self._reader, self._buffer)
        return _sized(self._reader, self._buffer, self._length)


async def read_response(reader: Reader, method: bytes) -> Response:
    """The final response's head (1xx answers skipped, as httpcore skipped them), framed for
    `method`'s request."""
    buffer = bytearray()
    search = 0
    while True:
        # h11's ReceiveBuffer.maybe_extract_lines, then its checks on NEED_DATA
        if buffer[:1] == b"\n" or buffer[:2] == b"\r\n":
            raise protocol_error("no response line received")
        blank = _BLANK_LINE.search(buffer, search)
        if blank is None:
            if buffer and buffer[0] < 0x21:
                raise protocol_error("illegal request line")
            if len(buffer) > MAX_HEAD:
                raise protocol_error("Receive buffer too long")
            search = max(0, len(buffer) - 2)
            data = await reader.read(READ_BYTES)
            if not data:
                raise protocol_error("Server disconnected without sending a response.")
            buffer += data
            continue
        end = blank.end()
        lines = buffer[:end].split(b"\n")
        del buffer[:end]
        search = 0
        del lines[-2:]
        for line in lines:
            if line.endswith(b"\r"):
                del line[-1]
        response = _head(lines, method, reader, buffer)
        if response is not None:
            return response


def _head(lines: list[bytearray], method: bytes, reader: Reader, buffer: bytearray) -> Response | None:
    """The parsed head (h11's maybe_read_from_SEND_RESPONSE_server and the event's checks), or
    None for an informational answer."""
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise protocol_error(f"illegal status line: {lines[0]!r}")
    status = int(status_line["status_code"])
    headers, content_length, chunked = _headers(lines[1:])
    if status < 200:
        if status < 100:
            raise protocol_error(f"InformationalResponse status_code should be in range [100, 200), not {status}")
        if status == 101:
            raise protocol_error("Received server _SWITCH_UPGRADE event without a pending proposal")
        return None
    if status in (204, 304) or method == b"HEAD":
        return Response(status, headers, "length", 0, reader, buffer)
    if chunked:
        return Response(status, headers, "chunked", 0, reader, buffer)
    if content_length is not None:
        return Response(status, headers, "length", int(content_length), reader, buffer)
    return Response(status, headers, "close", 0, reader, buffer)


def _headers(lines: list[bytearray]) -> tuple[list[tuple[bytes, bytes]], bytes | None, bool]:
    """h11's header lines (obsolete folding joined) validated and normalized: (the raw
    (name, value) pairs, the Content-Length, whether chunked)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in _unfolded(lines):  # every line's grammar before any header's meaning, as h11 does
        field = _HEADER_FIELD.fullmatch(line)
        if field is None:
            raise protocol_error(f"illegal header line: {line!r}")
        fields.append((field["field_name"], field["field_value"]))
    headers: list[tuple[bytes, bytes]] = []
    content_length: bytes | None = None
    chunked = False
    for name, value in fields:
        lower = name.lower()
        if lower == b"content-length":
            lengths = {length.strip() for length in value.split(b",")}
            if len(lengths) != 1:
                raise protocol_error("conflicting Content-Length headers")
            value = lengths.pop()
            if _CONTENT_LENGTH.fullmatch(value) is None or len(value) > _CONTENT_LENGTH_MAX_DIGITS:
                raise protocol_error("bad Content-Length")
            if content_length is not None:
                if content_length != value:
                    raise protocol_error("conflicting Content-Length headers")
                continue
            content_length = value
        elif lower == b"transfer-encoding":
            if chunked:
                raise protocol_error("multiple Transfer-Encoding headers")
            value = value.lower()
            if value != b"chunked":
                raise protocol_error("Only Transfer-Encoding: chunked is supported")
            chunked = True
        headers.append((name, value))
    return headers, content_length, chunked


def _unfolded(lines: list[bytearray]) -> list[bytes | bytearray]:
    """h11's _obsolete_line_fold: a line starting with blanks continues the one before."""
    out: list[bytes | bytearray] = []
    for line in lines:
        fold = _OBS_FOLD.match(line)
        if fold is None:
            out.append(line)
        elif not out:
            raise protocol_error("continuation line at start of headers")
        else:
            out[-1] = bytearray(out[-1]) + b" " + line[fold.end() :]
    return out


async def _sized(reader: Reader, buffer: bytearray, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining:
        if buffer:
            data = bytes(buffer[:remaining])
            del buffer[:remaining]
            remaining -= len(data)
            yield data
            continue
        more = await reader.read(READ_BYTES)
        if not more:
            raise protocol_error(f"peer closed connection without sending complete message body (received {length - remaining} bytes, expected {length})")
        buffer += more


async def _until_close(reader: Reader, buffer: bytearray) -> AsyncIterator[bytes]:
    if buffer:
        yield bytes(buffer)
        buffer.clear()
    while more := await reader.read(READ_BYTES):
        yield more


async def _chunked(reader: Reader, buffer: bytearray) -> AsyncIterator[bytes]:
    """h11's ChunkedReader, step for step: what it yields before an error is yielded here too."""
    in_chunk = 0
    discard = b""  # the CRLF after a chunk, still to be matched
    trailer = False
    closed = False
    while True:
        if trailer:
            if buffer[:1] == b"\n" or buffer[:2] == b"\r\n":
                return
            blank = _BLANK_LINE.search(buffer)
            if blank is not None:
                lines = buffer[: blank.end()].split(b"\n")
                del lines[-2:]
                _headers([line[:-1] if line.endswith(b"\r") else line for line in lines])
                return
        else:
            if discard:
                data = buffer[: len(discard)]
                if data:
                    del buffer[: len(data)]
                    if data != discard[: len(data)]:
                        raise protocol_error(f"malformed chunk footer: {data!r} (expected {discard!r})")
                    discard = discard[len(data) :]
            if not discard:
                if in_chunk == 0:
                    end = buffer.find(b"\r\n")
                    if end != -1:
                        line = buffer[: end + 2]
                        del buffer[: end + 2]
                        header = _CHUNK_HEADER.fullmatch(line)
                        if header is None:
                            raise protocol_error(f"illegal chunk header: {line!r}")
                        in_chunk = int(header["chunk_size"], base=16)
                        if in_chunk == 0:
                            trailer = True
                            continue
                if in_chunk and buffer:
                    data = buffer[:in_chunk]
                    del buffer[:in_chunk]
                    in_chunk -= len(data)
                    if in_chunk == 0:
                        discard = b"\r\n"
                    yield bytes(data)
                    continue
        # nothing to give: h11's NEED_DATA, and its checks
        if closed:
            if not buffer:
                raise protocol_error("peer closed connection without sending complete message body (incomplete chunked read)")
            if len(buffer) > MAX_HEAD:
                raise protocol_error("Receive buffer too long")
            raise protocol_error("peer unexpectedly closed connection")
        if len(buffer) > MAX_HEAD:
            raise protocol_error("Receive buffer too long")
        more = await reader.read(READ_BYTES)
        if more:
            buffer += more
        else:
            closed = True


def protocol_error(message: object) -> Exception:
    """httpcore's error, as httpcore raised h11's; httpcore imported on this path only, so that a
    round of answers that parse never loads it (its import: docs/benchmarks.md, issue 22)."""
    from probe._httpcore import httpcore

    return httpcore.RemoteProtocolError(message)
