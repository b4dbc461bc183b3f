"""An HTTP/1.1 object server (plain or TLS) that can throttle, stall and misbehave, for the
throughput check. One request per connection; the query string picks the behaviour:

    /object?size=N            N bytes (default 1 MiB); honours `Range: bytes=A-B` (206)
        &rate=R               at most R bytes per second
        &stall_after=S        stops sending after S body bytes, keeps the connection open
        &reset_after=S        resets the connection after S body bytes
        &drip=1               one byte every 0.2 s
        &status=404           that status and a small body
        &redirect=L           302 to L (URL-encoded in the query)
        &delimit=close|chunked  no Content-Length: the end is the close, or chunked encoding
        &norange=1            ignores Range (200, the whole object)
        &head_bytes=N         N bytes of header lines before the blank line (hostile)
        &stall_once=K         the first request carrying K stalls after 16 KB, later ones do not
                              (a lossy line's one unlucky transfer)

    PUT /upload?...           an upload: the body (Content-Length) read whole, then 200 and its length
        &noread=1             the body never read and never answered (the server's window shuts)
        &early=1              413 at once, before the body, and the connection reset soon after

`throttle_sni` maps a TLS server name to a rate in bytes/s applied whatever the query says:
throttling keyed on the SNI, as TSPU did to Twitter in 2021. Standard library only.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from urllib.parse import parse_qs, urlsplit

CHUNK = 16384
_STALLED_ONCE: set[str] = set()


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def tls_context(cert: str, key: str, names_seen: dict[int, str]) -> ssl.SSLContext:
    """A server context that records each connection's SNI (by SSL object id)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember(ssl_object, server_name, _context) -> None:
        names_seen[id(ssl_object)] = server_name or ""

    context.sni_callback = remember
    return context


def handler(throttle_sni: dict[str, float] | None = None, names_seen: dict[int, str] | None = None, stats: dict | None = None):
    throttle_sni = throttle_sni or {}
    names_seen = names_seen if names_seen is not None else {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        sni = names_seen.pop(id(ssl_object), None) if ssl_object is not None else None
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        if stats is not None:
            stats.setdefault("requests", []).append({"sni": sni, "host": headers.get("host"), "range": headers.get("range"), "method": method})
        if method == "PUT":
            await _upload(reader, writer, headers, query, stats)
            return
        if "stall_once" in query and query["stall_once"] not in _STALLED_ONCE:
            _STALLED_ONCE.add(query["stall_once"])
            query["stall_after"] = "16384"

        size = int(query.get("size", 1 << 20))
        rate = float(query["rate"]) if "rate" in query else None
        if sni in throttle_sni:
            rate = throttle_sni[sni]
        if "status" in query:
            body = b"not here\n"
            writer.write(f"HTTP/1.1 {query['status']} Whatever\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
            return
        if "redirect" in query:
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {query['redirect']}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            return
        if "head_bytes" in query:
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(int(query["head_bytes"]) // 64):
                writer.write(b"X-Filler: " + b"y" * 52 + b"\r\n")
                await writer.drain()
            writer.write(b"\r\n")
            await writer.drain()
            return

        start, end = 0, size - 1
        status = "200 OK"
        range_header = headers.get("range", "")
        if range_header.startswith("bytes=") and "norange" not in query:
            first, _, last = range_header[6:].partition("-")
            start, end = int(first or 0), min(int(last) if last else size - 1, size - 1)
            status = "206 Partial Content"
        length = end - start + 1
        delimit = query.get("delimit")
        lines_out = [f"HTTP/1.1 {status}", "Content-Type: application/octet-stream", "Connection: close"]
        if delimit == "chunked":
            lines_out.append("Transfer-Encoding: chunked")
        elif delimit != "close":
            lines_out.append(f"Content-Length: {length}")
        if status.startswith("206"):
            lines_out.append(f"Content-Range: bytes {start}-{end}/{size}")
        writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode())

        stall_after = int(query["stall_after"]) if "stall_after" in query else None
        reset_after = int(query["reset_after"]) if "reset_after" in query else None
        sent = 0
        loop = asyncio.get_running_loop()
        began = loop.time()
        while sent < length:
            if writer.transport.is_closing() or reader.at_eof():
                return  # the client has gone
            if stall_after is not None and sent >= stall_after:
                await writer.drain()
                await asyncio.sleep(3600)  # the freeze: nothing more, the connection stays
            if reset_after is not None and sent >= reset_after:
                await writer.drain()
                _rst(writer)
                return
            step = min(CHUNK, length - sent)
            if stall_after is not None:
                step = min(step, stall_after - sent)
            if reset_after is not None:
                step = min(step, reset_after - sent)
            if "drip" in query:
                step = 1
            if rate is not None:
                step = max(1, min(step, int(rate / 20)))
            data = b"\x00" * step
            writer.write(f"{step:x}\r\n".encode() + data + b"\r\n" if delimit == "chunked" else data)
            await writer.drain()
            await asyncio.sleep(0)  # drain() need not yield: let the loop see the client go
            sent += step
            if "drip" in query:
                await asyncio.sleep(0.2)
            elif rate is not None:
                ahead = began + sent / rate - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if delimit == "chunked":
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    return handle


async def _upload(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict, query: dict, stats: dict | None) -> None:
    if "noread" in query:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a small window, so that it shuts before the body is in
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.transport.pause_reading()
        await asyncio.sleep(3600)
    if "early" in query:
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)  # then the close with the body unread: a reset, as the kernel does
        _rst(writer)
        return
    length = int(headers.get("content-length", "0"))
    received = 0
    while received < length:
        chunk = await reader.read(min(65536, length - received))
        if not chunk:
            return
        received += len(chunk)
    if stats is not None:
        stats.setdefault("uploads", []).append(received)
    body = f"{received} bytes received\n".encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
