"""The helper's TCP listeners (API, probe catchers, bulk): connections capped per source address
and in all, refused before anything is made for them.

A listener accepts by itself rather than through `asyncio.start_server`: asyncio accepts up to
`backlog` connections in one go before any handler can refuse one, so a burst of a flood ran the
helper out of descriptors, and asyncio then logged each failed `accept()` with a traceback, in
a tight loop. Here each accepted socket is checked against the gate at once; one over a cap is
reset (SO_LINGER 0: no FIN handshake, no TIME_WAIT kept) and closed before the next is
accepted, so a slowloris from one address holds at most `connections_per_client` slots, each
for the head-read deadline at most, and everyone else is served. The cap of all is kept under
the descriptor limit; if descriptors run out all the same, the listener is counted, logged once
a minute (no traceback) and paused for a second.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]

_RESERVED_DESCRIPTORS = 256  # the helper's own files, UDP sockets, and its measurements' connections
_ACCEPT_BATCH = 64  # connections accepted per wake-up: a flood cannot hold the loop
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_PAUSE_SECONDS = 1.0
_LOG_EVERY_SECONDS = 60.0
_RESET = struct.pack("ii", 1, 0)
_CLOSE_SECONDS = 5.0  # what a closed connection may take to hand its last bytes to a peer that does not read


def connection_cap(configured: int, soft_limit: int | None = None) -> int:
    """The configured cap on open connections, lowered to what the descriptor limit carries."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, soft_limit - _RESERVED_DESCRIPTORS))


class ConnectionGate:
    def __init__(self, per_client: int, total: int):
        self.per_client, self.total = per_client, total
        self._open: Counter[str] = Counter()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def admit(self, client: str) -> str | None:
        """Take a slot for a new connection from `client`, or say why not."""
        if self._count >= self.total:
            return "connections_full"
        if self._open[client] >= self.per_client:
            return "too_many_connections"
        self._open[client] += 1
        self._count += 1
        return None

    def release(self, client: str) -> None:
        self._count -= 1
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]  # the table holds only clients with open connections


class GatedListener:
    """One listening TCP socket whose connections pass `gate` before anything is made for them.
    `refused(reason)` is called for each one turned away, `opened(+1 or -1)` as connections
    come and go, `handler(reader, writer, client)` serves an admitted one."""

    def __init__(self, sock: socket.socket, gate: ConnectionGate, handler: Handler, *, limit: int,
                 refused: Callable[[str], None], opened: Callable[[int], None]):
        self.sock = sock
        self._gate, self._handler, self._limit = gate, handler, limit
        self._refused, self._opened = refused, opened
        self._loop: asyncio.AbstractEventLoop | None = None
        self._logged = -_LOG_EVERY_SECONDS
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def bind(cls, host: str, port: int, backlog: int, gate: ConnectionGate, handler: Handler, **kwargs: object) -> GatedListener:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        listener = cls(sock, gate, handler, **kwargs)  # type: ignore[arg-type]
        listener.start()
        return listener

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._accept)

    async def close(self) -> None:
        """Stop accepting, and end the connections still open."""
        if self._loop is not None and self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._exhausted(exc)
                return  # ECONNABORTED and the like: the next wake-up takes the next one
            client = str(peer[0])
            refusal = self._gate.admit(client)
            if refusal is not None:
                _reset(conn)
                self._refused(refusal)
                continue
            conn.setblocking(False)
            task = asyncio.ensure_future(self._serve(conn, client))
            self._tasks.add(task)  # held until done: a task only the loop references may be collected
            task.add_done_callback(self._tasks.discard)

    def _exhausted(self, exc: OSError) -> None:
        """No descriptor (or memory) for a new connection: say so once a minute, retry in a second."""
        assert self._loop is not None
        self._refused("out_of_resources")
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_SECONDS:
            self._logged = now
            log.warning("helper: cannot accept connections on port %d (%s); retrying every %g s", self.port, exc.strerror or exc, _PAUSE_SECONDS)
        self._loop.remove_reader(self.sock.fileno())
        self._loop.call_later(_PAUSE_SECONDS, self._resume)

    def _resume(self) -> None:
        if self._loop is not None and self.sock.fileno() >= 0:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    async def _serve(self, conn: socket.socket, client: str) -> None:
        self._opened(1)
        try:
            reader = asyncio.StreamReader(limit=self._limit)
            writers: list[asyncio.StreamWriter] = []
            # A callback makes it a server-side protocol (StreamWriter.start_tls asks); a plain
            # function, not a coroutine, so asyncio makes no task of its own around the handler.
            protocol = asyncio.StreamReaderProtocol(reader, lambda _, writer: writers.append(writer))
            await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock=conn)
        except OSError:
            conn.close()
            self._gate.release(client)
            self._opened(-1)
            return
        try:
            await self._handler(reader, writers[0], client)
        finally:
            try:
                await _closed(writers[0], protocol)
            finally:
                self._gate.release(client)
                self._opened(-1)


async def _closed(writer: asyncio.StreamWriter, protocol: asyncio.BaseProtocol) -> None:
    """Closed, its last bytes handed over; or cut after _CLOSE_SECONDS (a peer that never reads
    would otherwise hold the descriptor after its slot was given back)."""
    if writer.transport.get_protocol() is not protocol:  # a TLS handshake that failed: nothing of ours to hand over
        writer.transport.abort()
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_SECONDS)
    except (TimeoutError, OSError):
        writer.transport.abort()


def _reset(conn: socket.socket) -> None:
    """Close at once with a TCP reset."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    except OSError:
        pass
    conn.close()
