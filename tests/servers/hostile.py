"""TCP, TLS and HTTP servers for the checks to meet, well-behaved and hostile, on loopback.

All `start_*` coroutines run on the server loop and return the bound (host, port); `Fleet`
keeps what must be closed. The HTTP handler picks its behaviour from the request path:

    /            200, a small page            /451        451 Unavailable For Legal Reasons
    /rt          302 to http://warning.rt.ru/ /marker     200, a Russian block-page text
    /same        302 to /  (same host)        /loop       302 to /loop, for ever
    /status-500  500 (the service's own status: not a signal)
    /endless     200, chunked, never ends     /drip       200, then one byte every 0.1 s
    /close       closes without answering
    /redirect-close  302 to / without `Connection: close`, then closes (keep-alive implied)
    /late-marker 200, the block-page text after 10 KB of filler     /garbage  not HTTP at all
    /reflect     200, a page showing a public address   /reflect-redirect  302 to a URL carrying one
A request whose Host starts with `cut.` is cut (an RST) before any answer: a Host-keyed censor.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections import Counter
from dataclasses import dataclass, field

BLOCKPAGE_TEXT = "Доступ к ресурсу ограничен на основании Федерального закона"


@dataclass
class Fleet:
    """Servers started on the server loop, and the plain sockets that must stay open."""

    closers: list = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    tasks: set = field(default_factory=set)
    stats: Counter = field(default_factory=Counter)  # e.g. bytes sent by /endless

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        for closer in self.closers:
            closer.close()
        for task in list(self.tasks):
            task.cancel()
        for sock in self.sockets:
            sock.close()

    async def serve(self, handler, host: str, *, context: ssl.SSLContext | None = None, port: int = 0) -> tuple[str, int]:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.stats[f"accepted:{writer.get_extra_info('sockname')[1]}"] += 1  # connections per port
            task = asyncio.current_task()
            self.tasks.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, asyncio.CancelledError):
                pass
            finally:
                self.tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(tracked, host, port, ssl=context, ssl_handshake_timeout=10 if context else None)
        self.closers.append(server)
        return host, server.sockets[0].getsockname()[1]

    # --- plain sockets ------------------------------------------------------------------------

    def refused(self, host: str) -> tuple[str, int]:
        """A port bound but not listening: connects are refused, and nobody else can take it."""
        sock = socket.socket()
        sock.bind((host, 0))
        self.sockets.append(sock)
        return host, sock.getsockname()[1]

    def blackhole(self, host: str) -> tuple[str, int]:
        """A listener with backlog 0 whose only queue slot is taken and never accepted: the
        kernel drops every further SYN, so connects time out (a firewall's DROP, on loopback)."""
        listener = socket.socket()
        listener.bind((host, 0))
        listener.listen(0)
        filler = socket.create_connection(listener.getsockname(), timeout=2)
        self.sockets += [listener, filler]
        return listener.getsockname()


# --- raw TCP behaviours ---------------------------------------------------------------------------


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as an in-path censor's injected reset looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_client_hello(reader: asyncio.StreamReader) -> bytes:
    """The first TLS record (the ClientHello), whole."""
    header = await asyncio.wait_for(reader.readexactly(5), 10)
    length = struct.unpack("!H", header[3:5])[0]
    return header + await asyncio.wait_for(reader.readexactly(length), 10)


def sni_of(hello: bytes) -> str | None:
    """The server_name of a ClientHello record, or None (malformed, or no SNI)."""
    try:
        if hello[0] != 0x16 or hello[5] != 0x01:
            return None
        pos = 5 + 4 + 2 + 32  # record header, handshake header, client_version, random
        pos += 1 + hello[pos]  # session id
        pos += 2 + struct.unpack("!H", hello[pos : pos + 2])[0]  # cipher suites
        pos += 1 + hello[pos]  # compression methods
        end = pos + 2 + struct.unpack("!H", hello[pos : pos + 2])[0]
        pos += 2
        while pos + 4 <= end:
            kind, size = struct.unpack("!HH", hello[pos : pos + 4])
            pos += 4
            if kind == 0:  # server_name: list length, type 0 (host_name), name length, name
                name_length = struct.unpack("!H", hello[pos + 3 : pos + 5])[0]
                return hello[pos + 5 : pos + 5 + name_length].decode("ascii")
            pos += size
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


async def reset_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_client_hello(reader)
    rst(writer)


async def close_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_client_hello(reader)
    writer.close()  # FIN, no alert, no ServerHello


async def not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the ClientHello in plain text (a captive portal or a non-TLS service on 443)."""
    await read_client_hello(reader)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()


async def garbage_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers any ClientHello with a handshake record header, then garbage (a broken server,
    whatever the name): both the real and the decoy SNI fail the same way."""
    await read_client_hello(reader)
    writer.write(b"\x16\x03\x03\x00\x40" + bytes(range(64)))
    await writer.drain()
    await asyncio.sleep(1)


async def oversized_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers any ClientHello with a ServerHello-typed handshake message claiming 16 MB and then
    sends it without end (an endless chain): OpenSSL gives up on the size; so does the decoy."""
    await read_client_hello(reader)
    writer.write(b"\x16\x03\x03\x40\x00" + b"\x02\xff\xff\xff" + b"\x00" * (0x4000 - 4))
    while not writer.transport.is_closing():
        writer.write(b"\x16\x03\x03\x40\x00" + b"\x00" * 0x4000)
        await writer.drain()
        await asyncio.sleep(0.01)


ANSWER_BYTES = 200  # what the answer-then-… servers send of their handshake before they fail


def _first_answer_bytes() -> bytes:
    """The first ANSWER_BYTES of a server's answer: a handshake record announcing 4 KB, begun."""
    return (b"\x16\x03\x03\x10\x00" + b"\x02\x00\x0f\xfc" + bytes(range(256)))[:ANSWER_BYTES]


async def answer_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Begins its handshake answer for any name (200 bytes), then resets: a server that breaks
    mid-answer, whatever the name (a censor resets before the server's answer, not inside it)."""
    await read_client_hello(reader)
    writer.write(_first_answer_bytes())
    await writer.drain()
    await asyncio.sleep(0.05)
    rst(writer)


async def answer_then_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Begins its handshake answer for any name (200 bytes), then drips a byte every 0.5 s."""
    await read_client_hello(reader)
    writer.write(_first_answer_bytes())
    await writer.drain()
    while not writer.transport.is_closing():
        await asyncio.sleep(0.5)
        writer.write(b"\x00")
        await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and never reads nor answers (a censor dropping everything after the SYN/ACK)."""
    await asyncio.sleep(3600)


def sni_front(blocked: set[str], backend: tuple[str, int], action: str = "rst"):
    """A TLS-aware front: a connection whose ClientHello names a blocked SNI is reset (`rst`, as
    TSPU's SNI-I does) or left hanging (`drop`, as SNI-IV does); any other passes through, byte
    for byte, to `backend`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await read_client_hello(reader)
        if sni_of(hello) in blocked:
            if action == "drop":
                await asyncio.sleep(3600)
            rst(writer)
            return
        await relay(hello, reader, writer, backend)

    return handle


async def relay(first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, backend: tuple[str, int]) -> None:
    """Pass a connection on to `backend`: the bytes already read, then both ways, untouched."""
    up_reader, up_writer = await asyncio.open_connection(*backend)
    up_writer.write(first)
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError:
                pass


# --- HTTP -----------------------------------------------------------------------------------------


def http_handler(fleet: Fleet, requests: list[tuple[str, str]] | None = None):
    """An HTTP/1.1 server (one request per connection) whose behaviour the path picks."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        if int(headers.get("content-length", "0")):
            await reader.readexactly(int(headers["content-length"]))
        path = target.split("?", 1)[0]
        if requests is not None:
            requests.append((headers.get("host", ""), path))

        def respond(status: str, body: bytes = b"", extra: str = "") -> None:
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n{extra}\r\n".encode() + (b"" if method == "HEAD" else body)
            )

        if headers.get("host", "").startswith("cut."):
            rst(writer)  # a Host-keyed censor: the decoy Host passes
            return
        if path == "/echo-headers":  # the request's header lines as sent (names' case, repeats)
            respond("200 OK", "\n".join(line for line in lines if line).encode("latin-1"))
        elif path == "/451":
            respond("451 Unavailable For Legal Reasons", b"<h1>451</h1>")
        elif path == "/rt":
            respond("302 Found", b"", "Location: http://warning.rt.ru/?id=17&st=0&dt=msgreach\r\n")
        elif path == "/same":
            respond("302 Found", b"", "Location: /\r\n")
        elif path == "/loop":
            respond("302 Found", b"", "Location: /loop\r\n")
        elif path == "/marker":
            respond("200 OK", f"<html><body><p>{BLOCKPAGE_TEXT}</p></body></html>".encode())
        elif path == "/status-500":
            respond("500 Internal Server Error", b"oops")
        elif path == "/redirect-close":
            # A keep-alive server that closes right after its answer: the next request on this
            # connection would find it closed. Not a censor.
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.transport.abort()
            return
        elif path == "/late-marker":
            respond("200 OK", b"<html><body>" + b"<!-- filler -->" * 700 + f"<p>{BLOCKPAGE_TEXT}</p></body></html>".encode())
        elif path == "/reflect":  # a page that shows the visitor's (public) address, as block pages do
            respond("200 OK", b"<p>Your address: 81.2.69.160 (via 10.1.2.3)</p>")
        elif path == "/reflect-redirect":
            respond("302 Found", b"", "Location: http://81-2-69-160.warning.test/?ip=81.2.69.160\r\n")
        elif path == "/garbage":
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n")
        elif path == "/close":
            writer.transport.abort()
            return
        elif path == "/endless":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 16384
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            # Until the client goes: a closed TLS transport drops writes without raising, so
            # the loop asks (a loop that spun here would starve every other test server).
            while not writer.transport.is_closing():
                writer.write(frame)
                await writer.drain()
                fleet.stats["endless_bytes"] += len(chunk)
                await asyncio.sleep(0)
        elif path == "/drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
            while not writer.transport.is_closing():
                writer.write(b".")
                await writer.drain()
                fleet.stats["drip_bytes"] += 1
                await asyncio.sleep(0.1)
        else:
            respond("200 OK", b"<html><body>hello from the msgreach tests</body></html>")
        await writer.drain()

    return handle
