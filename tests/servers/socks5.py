"""A SOCKS5 proxy (RFC 1928, CONNECT only) for vantages configured with `socks5:`: without
authentication, or with username/password (RFC 1929) when `credentials` are set, then refusing
every client that does not offer them or offers wrong ones. Upstream failures are answered with
the matching SOCKS5 reply code, so the engine's mapping of those codes to failure strings meets
real replies. Every CONNECT and every login attempt is recorded."""

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
    credentials: tuple[str, str] | None = None  # required when set
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (username, accepted)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        method = 0 if self.credentials is None else 2
        if version != 5 or method not in methods:
            writer.write(b"\x05\xff")  # no acceptable method
            return
        writer.write(bytes([5, method]))
        if method == 2 and not await self._login(reader, writer):
            return
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

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD; the reply's status 0 is success."""
        version, length = await reader.readexactly(2)
        username = (await reader.readexactly(length)).decode("ascii", "replace")
        (length,) = await reader.readexactly(1)
        password = (await reader.readexactly(length)).decode("ascii", "replace")
        accepted = version == 1 and (username, password) == self.credentials
        self.logins.append((username, accepted))
        writer.write(bytes([1, 0 if accepted else 1]))
        return accepted
