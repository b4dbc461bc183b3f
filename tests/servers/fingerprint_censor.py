"""A censor keyed on the ClientHello fingerprint, in front of a real TLS server.

It reads a connection's first TLS record and resets the connection when the ClientHello's
cipher list starts like the blocked client's, else relays it to the backend byte for byte:

    block="python"   the first cipher suite is TLS_AES_256_GCM_SHA384 (0x1302): OpenSSL's TLS 1.3
                     order, which Python's ssl sends and no browser does
    block="browser"  the first cipher suite is a GREASE value (0x?a?a, RFC 8701): Chrome's and
                     every BoringSSL browser's, never OpenSSL's

The rule reads two bytes at a fixed place (after a 32-byte session id, as both clients send),
as DPI rules do; it shares no code with msgreach's JA3/JA4 (probe/fingerprint.py). The lab's
nftables scenario `fingerprint-python` matches the same bytes (@ih,624,16).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from servers.hostile import relay, rst

FIRST_CIPHER_OFFSET = 5 + 4 + 2 + 32 + 1 + 32 + 2  # record, handshake, version, random, sid, cipher length
BLOCKS = ("python", "browser")


def first_cipher(hello: bytes) -> int | None:
    if len(hello) < FIRST_CIPHER_OFFSET + 2 or hello[0] != 0x16 or hello[5] != 0x01 or hello[43] != 32:
        return None
    return struct.unpack_from("!H", hello, FIRST_CIPHER_OFFSET)[0]


def matches(hello: bytes, block: str) -> bool:
    cipher = first_cipher(hello)
    if cipher is None:
        return False
    if block == "python":
        return cipher == 0x1302
    return cipher & 0x0F0F == 0x0A0A and cipher >> 8 == cipher & 0xFF


def first_bytes_front(backend: tuple[str, int], blocked: Callable[[bytes], bool], need: int = 1):
    """A stream handler playing an in-path censor that reads a connection's first bytes (at
    least `need` of them): reset the connection when `blocked(first)`, else relay it to
    `backend` byte for byte."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = b""
        while len(first) < need:
            chunk = await reader.read(4096)
            if not chunk:
                writer.close()
                return
            first += chunk
        if blocked(first):
            rst(writer)
            return
        await relay(first, reader, writer, backend)

    return handle


def handler(backend: tuple[str, int], block: str, seen: list[int] | None = None):
    """Reset a ClientHello matching `block`, relay the rest."""
    assert block in BLOCKS, block

    def blocked(first: bytes) -> bool:
        if seen is not None:
            seen.append(first_cipher(first) or -1)
        return matches(first, block)

    return first_bytes_front(backend, blocked, FIRST_CIPHER_OFFSET + 2)
