"""A SOCKS5 proxy (RFC 1928, no authentication, CONNECT only) for vantages configured with
`socks5:`. Upstream failures are answered with the matching SOCKS5 reply code, so the engine's
mapping of those codes to failure strings meets real replies. Every CONNECT is recorded."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass, field

from servers.hostile import _pipe

_REPLY = {errno.ECONNREFUSED: 5, errno.ENETUNREACH: 3, errno.EHOSTUNREACH: 4}


@dataclass
class Socks5Proxy:
    connects: list[tuple[str, int]] = field(default_factory=list)
    connect_timeout: float = 5.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(b"\x05\x00")
        version, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.connects.append((host, port))
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
        except TimeoutError:
            writer.write(b"\x05\x04\x00\x01" + bytes(6))  # host unreachable
            return
        except OSError as exc:
            writer.write(bytes([5, _REPLY.get(exc.errno, 1), 0, 1]) + bytes(6))
            return
        bound = up_writer.get_extra_info("sockname")
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton(bound[0]) + struct.pack("!H", bound[1]))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
