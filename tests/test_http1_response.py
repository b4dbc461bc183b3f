"""The `http` check's own HTTP/1.1 reader and request writer (probe.checks.http1_response,
probe.checks.http1; issue #22, session 4) against h11's path, which they replace where h11 adds
nothing: the same bytes fed to both, as the socket delivers them in pieces, must give the same
request on the wire, the same head, the same body chunks, and the same error with the same
words (so the same failure string), for well-formed, malformed and hostile answers alike.

The pieces are scripted (a stream that hands out the given reads, then the close) because a real
socket cannot be made to cut a response at a chosen byte; the real sockets' path is
tests/test_checks.py's and the lab's (tests/lab/test_quirks.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import failures
from probe._socket_stream import SocketStream
from probe.checks import http1, http1_response

HEADERS = [(b"Host", b"x.test"), (b"Accept", b"*/*"), (b"Accept-Encoding", b"identity"), (b"User-Agent", b"msgreach/0"), (b"Connection", b"close")]


class _Script:
    """Reads handed out as scripted (each cut to the size asked, as recv cuts), then b"" (the
    peer's close); what is written is kept."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = [piece for piece in pieces if piece]
        self.written = b""
        self._closed_reads = 0

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        return None

    async def read(self, n: int) -> bytes:
        if not self._pieces:
            self._closed_reads += 1
            if self._closed_reads > 100:
                raise AssertionError("read on and on after the close")
            return b""
        piece = self._pieces.pop(0)
        if len(piece) > n:
            self._pieces.insert(0, piece[n:])
        return piece[:n]


Outcome = tuple[object, ...]


async def _outcome(call: Callable[[_Script], Awaitable[http1.Response | http1._H11Response]], pieces: list[bytes]) -> tuple[Outcome, bytes]:
    stream = _Script(pieces)
    chunks: list[bytes] = []
    try:
        response = await call(stream)
        async for chunk in response.body():
            chunks.append(chunk)
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        return ("error", type(exc).__name__, str(exc), failures.classify(exc), chunks), stream.written
    return ("ok", response.status, [(bytes(n), bytes(v)) for n, v in response.headers], chunks), stream.written


def _both(pieces: list[bytes], method: bytes = b"GET", headers: list[tuple[bytes, bytes]] = HEADERS, content: bytes | None = None) -> tuple[tuple[Outcome, bytes], tuple[Outcome, bytes]]:
    async def ours(stream: _Script) -> http1.Response | http1._H11Response:
        return await http1.request(stream, method, b"/p", headers, content)  # type: ignore[arg-type]

    async def theirs(stream: _Script) -> http1.Response | http1._H11Response:
        return await http1._h11_request(stream, method, b"/p", headers, content)  # type: ignore[arg-type]

    return asyncio.run(_outcome(ours, pieces)), asyncio.run(_outcome(theirs, pieces))


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


SHAPES = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nLocation: /x\r\n\r\nhelloEXTRA",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1 \r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    "close-delimited": b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the close",
    "http/1.0": b"HTTP/1.0 200 OK\r\n\r\nold",
    "no reason": b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "1xx first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "101 unasked": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "099": b"HTTP/1.1 099 Low\r\n\r\n",
    "204 with a length": b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
    "304": b"HTTP/1.1 304 Not Modified\r\n\r\nstray",
    "451": b"HTTP/1.1 451 Unavailable\r\nContent-Length: 4\r\n\r\nnope",
    "bare LF": b"HTTP/1.1 302 Found\nLocation: http://warning.rt.ru/\n\nbody",
    "folded": b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nContent-Length: 1\r\n\r\nz",
    "fold first": b"HTTP/1.1 200 OK\r\n  folded\r\n\r\n",
    "leading CRLF": b"\r\nHTTP/1.1 200 OK\r\n\r\n",
    "leading space": b" HTTP/1.1 200 OK\r\n\r\n",
    "garbage": b"\x16\x03\x01\x00\x05hello",
    "garbage line": b"SSH-2.0-OpenSSH_9\r\n\r\n",
    "garbage saying closed": b"closed by the peer\r\n\r\n",
    "bad header": b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
    "bad header saying closed": b"HTTP/1.1 200 OK\r\nconnection closed\r\n\r\n",
    "conflicting lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "same length twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\nab",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "huge length": b"HTTP/1.1 200 OK\r\nContent-Length: 123456789012345678901\r\n\r\n",
    "gzip coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "two codings": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    "chunked beats length": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    "bad chunk footer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY3\r\nabc\r\n0\r\n\r\n",
    "bad trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nnot a trailer\r\n\r\n",
    "trailer with a length": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nContent-Length: x\r\n\r\n",
    "chunked cut": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    "chunked cut in a size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1",
    "length cut": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "head cut": b"HTTP/1.1 200 OK\r\nContent-Le",
    "nothing": b"",
    "endless chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 150_000,
    "oversize head": b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    "oversize head, garbage": b"A" * 300_000,
    "head just under the cap": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
    "obs-text": b"HTTP/1.1 200 \xd0\x9e\xd0\x9a\r\nX: \xff\r\nContent-Length: 1\r\n\r\nq",
}


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"POST"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_reads_as_h11_reads_it(shape, method):
    data = SHAPES[shape]
    content = b"form=1" if method == b"POST" else None
    headers = [*HEADERS, (b"Content-Length", b"6")] if content else HEADERS
    for pieces in ([data], [data[i : i + 1] for i in range(min(len(data), 400))] + [data[400:]], _cut(data, [17, 18, 40, 41, 42])):
        ours, theirs = _both(pieces, method, headers, content)
        assert ours == theirs


def test_the_reader_is_ours_where_h11_adds_nothing():
    """The shapes above went through our reader, not through the fallback, and an error is
    httpcore's, with a failure string as before."""
    response = asyncio.run(http1.request(_Script([SHAPES["chunked"]]), b"GET", b"/", HEADERS, None))  # type: ignore[arg-type]
    assert isinstance(response, http1_response.Response)
    (outcome, _), _ = _both([SHAPES["garbage"]])
    assert outcome[:2] == ("error", "RemoteProtocolError") and outcome[3] == failures.PROTOCOL_ERROR
    (outcome, _), _ = _both([SHAPES["length cut"]])
    assert outcome[3] == failures.EOF
    (outcome, _), _ = _both([SHAPES["head cut"]])
    assert outcome[2] == "Server disconnected without sending a response." and outcome[3] == failures.EOF


_PARTS = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 302 Found\r\n", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204\r\n", b"HTTP/1.1 101 Up\r\n",
        b"Content-Length: 3\r\n", b"Content-Length: 3, 4\r\n", b"Content-Length: 00\r\n", b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: br\r\n",
        b"Location: /closed\r\n", b" folded\r\n", b"\tfold\r\n", b"Bad Header\r\n", b"\r\n", b"\n", b"\r", b"3\r\n", b"abc", b"0\r\n",
        b"ff;x\r\n", b"zz\r\n", b"1\r\nq\r\n", b"X-T: t\r\n", b"\x00", b"\xff", b" ", b":", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    parts=st.lists(st.one_of(_PARTS, st.binary(max_size=12)), max_size=14),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    method=st.sampled_from([b"GET", b"HEAD"]),
)
def test_hostile_bytes_read_as_h11_reads_them(parts, cuts, method):
    data = b"".join(parts)
    ours, theirs = _both(_cut(data, cuts), method)
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=4))
def test_random_bytes_read_as_h11_reads_them(data, cuts):
    ours, theirs = _both(_cut(data, cuts))
    assert ours == theirs


REQUESTS = {
    "the check's defaults": (b"GET", HEADERS, None),
    "a body with its length": (b"POST", [*HEADERS, (b"Content-Length", b"4")], b"body"),
    "an empty body": (b"POST", [*HEADERS, (b"Content-Length", b"0")], b""),
    "the config's own Host, later": (b"GET", [(b"Accept", b"*/*"), (b"host", b"other.test"), (b"Connection", b"close")], None),
    "HEAD": (b"HEAD", HEADERS, None),
    # h11 frames or refuses these itself: sent through h11
    "the config's own wrong length": (b"POST", [*HEADERS, (b"Content-Length", b"9")], b"body"),
    "the config's own chunked": (b"POST", [*HEADERS, (b"Transfer-Encoding", b"chunked")], b"body"),
    "an Upgrade": (b"GET", [*HEADERS, (b"Upgrade", b"websocket")], None),
    "CONNECT": (b"CONNECT", HEADERS, None),
    "a bad value": (b"GET", [*HEADERS, (b"X-Bad", b"a\r\nb")], None),
    "a bad name": (b"GET", [*HEADERS, (b"X Bad", b"v")], None),
    "a bad method": (b"G T", HEADERS, None),
    "no Host": (b"GET", HEADERS[1:], None),
    "two Hosts": (b"GET", [*HEADERS, (b"HOST", b"y.test")], None),
}
FAST = {"the check's defaults", "a body with its length", "an empty body", "the config's own Host, later", "HEAD"}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_request_is_written_as_h11_writes_it(name):
    method, headers, content = REQUESTS[name]
    answer = [b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n" if name == "an Upgrade" else SHAPES["length"]]
    ours, theirs = _both(answer, method, headers, content)
    assert ours == theirs
    assert ours[1] == theirs[1]  # the bytes on the wire
    assert (http1._head(method, b"/p", headers, content) is not None) == (name in FAST)


def test_a_real_socket_reads_the_same():
    """The reader on a real socket (probe._socket_stream), the peer writing in three sends."""

    async def exchange(call: Callable[[SocketStream], Awaitable[http1.Response | http1._H11Response]]) -> tuple[int, list[bytes], bytes]:
        ours, peer = socket.socketpair()
        stream = SocketStream(ours)
        try:
            data = SHAPES["chunked"]
            for part in (data[:20], data[20:60], data[60:]):
                peer.sendall(part)
            peer.shutdown(socket.SHUT_WR)
            response = await call(stream)
            body = [chunk async for chunk in response.body()]
            return response.status, body, peer.recv(4096)
        finally:
            stream.close()
            peer.close()

    ours = asyncio.run(exchange(lambda s: http1.request(s, b"GET", b"/p", HEADERS, None)))
    theirs = asyncio.run(exchange(lambda s: http1._h11_request(s, b"GET", b"/p", HEADERS, None)))
    assert b"".join(ours[1]) == b"helloabc" and ours[0] == 200
    assert ours[2].startswith(b"GET /p HTTP/1.1\r\nHost: x.test\r\n")
    assert ours == theirs

