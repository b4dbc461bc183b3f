"""A connection on our own non-blocking socket, for the tcp → tls → http path of a target: the
loop only tells when the socket is ready (`add_reader`/`add_writer`), and the TLS handshake and
record layer run in OpenSSL through `ssl.SSLSocket`, where asyncio's transports would run its
pure-Python SSLProtocol over memory BIOs (about a third more CPU per target: docs/benchmarks.md,
issue 22).

It offers what the http check (probe.checks.http1) and `first_byte` use of an asyncio stream:
`read`, `write` + `drain`, `close`, `get_extra_info` ("ssl_object", "socket", "peername"), and
`start_tls`. Its errors are the socket's and ssl's own, as asyncio's would surface them: an error
on a write is raised by the next `drain` or `read`, a close (or a ragged EOF) reads b"".
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

__all__ = ["SocketStream"]


class SocketStream:
    """One connected non-blocking TCP socket, plain or (after `start_tls`) TLS. Not shared between
    tasks: one operation at a time, as a check uses it."""

    __slots__ = ("_error", "_loop", "_pending", "_send_waits_read", "_sock", "peer_closed")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock: socket.socket = sock
        self._loop = asyncio.get_running_loop()
        self._pending = b""  # written, not yet taken by the socket
        self._error: OSError | None = None  # a write's error, raised at the next drain or read
        self._send_waits_read = False  # TLS wants the peer's bytes before it sends more (a renegotiation)
        self.peer_closed = False  # the handshake met the peer's FIN

    async def start_tls(self, context: ssl.SSLContext, *, server_hostname: str, before_step: Callable[[], None] | None = None) -> None:
        """The TLS handshake on this connection; raises what ssl raises (the socket stays open: the
        caller reads what the kernel knows of it, then closes it). `before_step` runs before each
        step of the handshake once the peer's bytes came (what TLS then sends may change what the
        kernel says of the connection)."""
        tls = context.wrap_socket(self._sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        self._sock = tls
        first = True
        while True:
            try:
                if before_step is not None and not first:
                    before_step()
                first = False
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                await self._ready(writing=False)
            except ssl.SSLWantWriteError:
                await self._ready(writing=True)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                self.peer_closed = True
                raise

    def write(self, data: bytes) -> None:
        """Send what the socket takes now; the rest goes at `drain` (or the next `read`)."""
        if self._error is None:
            self._pending += data
            self._send_some()

    async def drain(self) -> None:
        while self._pending and self._error is None:
            await self._ready(writing=not self._send_waits_read)
            self._send_some()
        if self._error is not None:
            raise self._error

    async def read(self, n: int) -> bytes:
        """Up to n bytes as they come; b"" at the peer's close."""
        await self.drain()
        sock = self._sock
        while True:
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                await self._ready(writing=False)
            except ssl.SSLWantWriteError:
                await self._ready(writing=True)

    def close(self) -> None:
        self._pending = b""
        self._sock.close()

    def get_extra_info(self, name: str) -> object:
        if name == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if name == "socket":
            return self._sock
        if name == "peername":
            try:
                return self._sock.getpeername()
            except OSError:
                return None
        return None

    @property
    def tls(self) -> ssl.SSLSocket | None:
        return self._sock if isinstance(self._sock, ssl.SSLSocket) else None

    @property
    def sock(self) -> socket.socket:
        return self._sock

    def _send_some(self) -> None:
        self._send_waits_read = False
        try:
            sent = self._sock.send(self._pending)
        except ssl.SSLWantReadError:
            self._send_waits_read = True
            return
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            return  # the same bytes again when the socket is ready (ssl allows a moved buffer)
        except OSError as exc:
            self._error, self._pending = exc, b""
            return
        self._pending = self._pending[sent:]

    async def _ready(self, *, writing: bool) -> None:
        """Until the socket is readable (or writable)."""
        loop, fd = self._loop, self._sock.fileno()
        ready = loop.create_future()
        if writing:
            loop.add_writer(fd, _set_done, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
        else:
            loop.add_reader(fd, _set_done, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)


def _set_done(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
