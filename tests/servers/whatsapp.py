"""A WhatsApp chat-port responder: the first exchange of the Noise handshake, then an open line.

The client sends the prologue ("WA" + 2 version bytes, optionally after an "ED" edge-routing
block) and one frame (3-byte big-endian length) holding HandshakeMessage{clientHello}; the
responder answers one frame holding HandshakeMessage{serverHello{ephemeral, static, payload}}
(random bytes: nothing here checks cryptography) and keeps the connection open until the client
closes it. `behaviour` makes it hostile:

    ok               answers, then holds             silent          never answers, holds
    reset_on_hello   RST as soon as the hello comes   close_on_hello  FIN as soon as the hello comes
    reset_after      answers, RST 0.3 s later         close_after     answers, FIN 0.3 s later

A connection whose first bytes are not WhatsApp's prologue and ClientHello is reset.

Standard library only. Run standalone (the lab does):
    python tests/servers/whatsapp.py --listen 198.19.1.10:5222 --listen 198.19.1.10:443
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct

BEHAVIOURS = ("ok", "silent", "reset_on_hello", "close_on_hello", "reset_after", "close_after")


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _field(number: int, value: bytes) -> bytes:
    """A protobuf length-delimited field (values here are shorter than 128 bytes)."""
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


def server_hello() -> bytes:
    hello = _field(1, os.urandom(32)) + _field(2, os.urandom(48)) + _field(3, os.urandom(100))
    message = b"\x1a" + bytes([len(hello) | 0x80, len(hello) >> 7]) + hello  # field 3, varint length
    return len(message).to_bytes(3, "big") + message


async def read_hello(reader: asyncio.StreamReader) -> bytes:
    """Prologue and first frame; returns the prologue. Raises ValueError if it is not WhatsApp's."""
    head = await reader.readexactly(4)
    if head[:2] == b"ED":  # edge routing: "ED" 0x00 0x01, a 3-byte length, the routing data
        routing = int.from_bytes(await reader.readexactly(3), "big")
        await reader.readexactly(routing)
        head = await reader.readexactly(4)
    if head[:2] != b"WA":
        raise ValueError("not the WhatsApp prologue")
    length = int.from_bytes(await reader.readexactly(3), "big")
    if length > 1 << 16:
        raise ValueError("frame too long")
    frame = await reader.readexactly(length)
    if not frame.startswith(b"\x12"):  # HandshakeMessage.clientHello
        raise ValueError("not a ClientHello")
    return head


def handler(behaviour: str = "ok", seen: list | None = None):
    assert behaviour in BEHAVIOURS, behaviour

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            prologue = await asyncio.wait_for(read_hello(reader), 10)
        except (ValueError, asyncio.IncompleteReadError, TimeoutError):
            _rst(writer)
            return
        if seen is not None:
            seen.append(prologue)
        if behaviour == "reset_on_hello":
            _rst(writer)
            return
        if behaviour == "close_on_hello":
            writer.close()
            return
        if behaviour != "silent":
            writer.write(server_hello())
            await writer.drain()
        if behaviour in ("reset_after", "close_after"):
            await asyncio.sleep(0.3)
            _rst(writer) if behaviour == "reset_after" else writer.close()
            return
        while await reader.read(4096):  # hold until the client closes
            pass

    return handle


async def _main(listens: list[str], behaviour: str) -> None:
    servers = []
    for listen in listens:
        host, _, port = listen.rpartition(":")
        servers.append(await asyncio.start_server(handler(behaviour), host.strip("[]"), int(port)))
    print("whatsapp responder ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", action="append", required=True, help="HOST:PORT (repeatable)")
    parser.add_argument("--behaviour", default="ok", choices=BEHAVIOURS)
    args = parser.parse_args()
    asyncio.run(_main(args.listen, args.behaviour))
