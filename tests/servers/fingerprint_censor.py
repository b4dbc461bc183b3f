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

Run standalone: python tests/servers/fingerprint_censor.py --listen H:P --backend H:P --block python
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct

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


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def handler(backend: tuple[str, int], block: str, seen: list[int] | None = None):
    """A stream handler: reset on a matching ClientHello, else relay to `backend`."""
    assert block in BLOCKS, block

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = b""
        while len(first) < FIRST_CIPHER_OFFSET + 2:
            chunk = await reader.read(4096)
            if not chunk:
                writer.close()
                return
            first += chunk
        if seen is not None:
            seen.append(first_cipher(first) or -1)
        if matches(first, block):
            _rst(writer)
            return
        up_reader, up_writer = await asyncio.open_connection(*backend)
        up_writer.write(first)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def _main(listen: str, backend: str, block: str) -> None:
    host, _, port = listen.rpartition(":")
    back_host, _, back_port = backend.rpartition(":")
    server = await asyncio.start_server(handler((back_host, int(back_port)), block), host, int(port))
    print("fingerprint censor ready", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--block", choices=BLOCKS, default="python")
    args = parser.parse_args()
    asyncio.run(_main(args.listen, args.backend, args.block))
