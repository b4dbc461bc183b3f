"""Recording operations the way OONI's archival format does: one record per operation, its
failure classified where it happened (probe.failures) together with the name of the operation
that failed (`failed_operation`), its start and end in seconds since the measurement began
(`t0`, `t`) and the id of its connection (`transaction_id`).

    record = TCPConnect(address, port)
    async with recorded(ctx, record, ctx.timeout, "connect") as operation:
        reader, writer = await open_tcp(...)
        operation.close_at_end(writer)
        operation.now("write")
        ...

Also what the kernel knows of a connection after a failure (TCP_INFO): the bytes the peer
sent, our segments it never acknowledged.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from probe import failures
from probe._deadline import deadline
from probe._socket_stream import SocketStream
from probe.checks.context import Context


class Closable(Protocol):
    """What an operation closes at its end: an asyncio StreamWriter, or our SocketStream."""

    def close(self) -> None: ...


class HasSocket(Protocol):
    """A connection whose socket the kernel can be asked about (asyncio's writer, our stream)."""

    def get_extra_info(self, name: str) -> object: ...


class OperationRecord(Protocol):
    """The fields every operation record of probe.model has."""

    failure: str | None
    failed_operation: str | None
    duration_seconds: float
    t0: float | None
    t: float | None
    transaction_id: int | None


class Operation:
    """The operation under way on one record (what a failure is attributed to), the writers to
    close at the end, and what to read from the connection before they close if it fails."""

    __slots__ = ("_at_failure", "name", "writers")

    def __init__(self, first: str) -> None:
        self.name = first
        self.writers: list[Closable] = []
        self._at_failure: list[Callable[[], None]] = []

    def now(self, name: str) -> None:
        self.name = name

    def close_at_end(self, writer: Closable) -> None:
        self.writers.append(writer)

    def keep_open(self, writer: Closable) -> None:
        """The connection outlives the record (the next stage takes it)."""
        self.writers.remove(writer)

    def at_failure(self, read: Callable[[], None]) -> None:
        self._at_failure.append(read)


class recorded:  # lower case: used as `async with recorded(...)`, like a function
    """Run the body as `record`'s operation: bounded by `timeout` (None: by the caller), timed,
    any exception turned into `record.failure` and `record.failed_operation` (never raised;
    `detail` too where the record keeps one), and the writers registered closed at the end.
    `transaction`: the id of the connection it continues (default: a new one).

    A class, not a generator: every operation of every check goes through it."""

    __slots__ = ("_clock", "_operation", "_record", "_started", "_timeout")

    def __init__(self, ctx: Context, record: OperationRecord, timeout: float | None, first: str, *, transaction: int | None = None) -> None:
        self._clock, self._record = ctx.clock, record
        self._operation = Operation(first)
        self._timeout = deadline(timeout) if timeout is not None else None
        record.transaction_id = transaction if transaction is not None else ctx.clock.transaction()
        self._started = 0.0

    async def __aenter__(self) -> Operation:
        self._record.t0 = self._clock.elapsed()
        self._started = time.monotonic()
        if self._timeout is not None:
            await self._timeout.__aenter__()
        return self._operation

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> bool:
        if self._timeout is not None:
            try:
                await self._timeout.__aexit__(kind, exc, traceback)  # a cancellation of ours becomes TimeoutError
            except TimeoutError as timeout:
                exc = timeout
        record, operation = self._record, self._operation
        try:
            if isinstance(exc, Exception):  # every failure becomes evidence; a cancellation from outside goes on
                found = failures.as_evidence(exc)
                record.failure, record.failed_operation = found["failure"], operation.name
                if "detail" in found and hasattr(record, "detail"):
                    setattr(record, "detail", found["detail"])  # noqa: B010 - not every record keeps one
                for read in operation._at_failure:
                    read()
        finally:
            for writer in operation.writers:
                close_quietly(writer)
            record.duration_seconds = round(time.monotonic() - self._started, 4)
            record.t = self._clock.elapsed()
        return isinstance(exc, Exception)


async def first_byte(stream: SocketStream, request: bytes, operation: Operation) -> None:
    """Send `request` and wait for the first byte of the answer; a close before it is `eof_error`."""
    operation.now("write")
    stream.write(request)
    operation.now("read")
    # All the kernel holds, not one byte: closing a socket with unread bytes sends the server a
    # RST where asyncio's transport (which reads whatever is there) sent a FIN.
    if not await stream.read(_FIRST_READ):
        raise failures.Failure(failures.EOF, "closed before any response byte")


_FIRST_READ = 64 * 1024


def close_quietly(writer: Closable | None) -> None:
    if writer is not None:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - closing a broken transport may raise; nothing to report
            pass


class Stopwatch:
    """`with Stopwatch() as sw: …`; `sw.seconds` reads the running time inside the block (a
    check may return from within it) and the final time after it."""

    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        self._stopped: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = time.monotonic()

    @property
    def seconds(self) -> float:
        return (self._stopped if self._stopped is not None else time.monotonic()) - self.started


# --- what the kernel knows of a TCP connection (Linux TCP_INFO, linux/tcp.h struct tcp_info) ------

_TCP_INFO_UNACKED = 24  # after 8 one-byte fields and u32 rto, ato, snd_mss, rcv_mss
_TCP_INFO_BYTES_RECEIVED = 128  # u64, since Linux 4.1
_TCP_INFO_SIZE = 136
# States (tcpi_state, the first byte) in which the peer's FIN has arrived: the kernel counts
# the FIN's sequence number in bytes_received, which is not a byte of data.
_FIN_RECEIVED = frozenset({6, 8, 9, 11})  # TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING


def _tcp_info(sock: object) -> bytes:
    """`sock`: a socket, or asyncio's TransportSocket (which has the same getsockopt)."""
    getsockopt = getattr(sock, "getsockopt", None)
    if getsockopt is None or not hasattr(socket, "TCP_INFO"):
        return b""
    try:
        info: bytes = getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return b""
    return info


def unacked_segments(writer: HasSocket) -> int | None:
    """Segments we sent that the peer has not acknowledged, or None if unknown.

    After a few seconds, data still unacknowledged means the path drops our packets: the
    signature of a censor that lets the handshake through and drops what follows."""
    info = _tcp_info(writer.get_extra_info("socket"))
    if len(info) < _TCP_INFO_UNACKED + 4:
        return None
    unacked: int = struct.unpack_from("<I", info, _TCP_INFO_UNACKED)[0]
    return unacked


def _data_received(info: bytes) -> int | None:
    if len(info) < _TCP_INFO_SIZE:
        return None
    received = _bytes_received(info)
    return max(received - 1, 0) if info[0] in _FIN_RECEIVED else received


def received_bytes(writer: HasSocket) -> int | None:
    """Bytes of data the peer has sent on the connection so far, or None if unknown. On our own
    socket (SocketStream) still readable after a failed TLS handshake: the socket closes when
    the operation's record is done."""
    return _data_received(_tcp_info(writer.get_extra_info("socket")))


class PeerBytes:
    """Counts the bytes of data the peer sends on our connection from now on. The peer's FIN is
    not one (the kernel counts it): OpenSSL answers a failed handshake with an alert, which a peer
    that closed answers with a RST, and the socket's state (CLOSE) then no longer shows the FIN;
    so it is noted before each step of the handshake, and from the handshake's own EOF."""

    __slots__ = ("_fin", "_start", "_stream")

    def __init__(self, stream: SocketStream) -> None:
        self._stream, self._fin = stream, False
        info = _tcp_info(stream.sock)
        self._start = _bytes_received(info) if len(info) >= _TCP_INFO_SIZE else 0

    def step(self) -> None:
        info = _tcp_info(self._stream.sock)
        self._fin = self._fin or (len(info) >= _TCP_INFO_SIZE and info[0] in _FIN_RECEIVED)

    def since(self) -> int | None:
        info = _tcp_info(self._stream.sock)
        if len(info) < _TCP_INFO_SIZE:
            return None
        fin = self._fin or self._stream.peer_closed or info[0] in _FIN_RECEIVED
        return max(_bytes_received(info) - self._start - fin, 0)


def _bytes_received(info: bytes) -> int:
    received: int = struct.unpack_from("<Q", info, _TCP_INFO_BYTES_RECEIVED)[0]
    return received
