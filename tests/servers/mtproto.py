"""An MTProto responder written from the public spec: only the first, unencrypted exchange.

core.telegram.org/mtproto/mtproto-transports (abridged: the client's first byte 0xef, then a
1-byte length/4 or 0x7f + 3 bytes; intermediate: 0xeeeeeeee, then a 4-byte little-endian
length) and /mtproto/samples-auth_key (req_pq_multi#be7e8ef1 nonce:int128 → resPQ#05162463
nonce server_nonce pq:bytes server_public_key_fingerprints:Vector<long>). A request starting
with `POST` gets an HTTP answer, as a data centre gives OONI's probe. Any other first byte starts
transport obfuscation (obfuscated2, /mtproto/mtproto-transports#transport-obfuscation): 64 bytes
whose AES-256-CTR decryption carries the inner framing's tag at 56..60 (0xefefefef abridged,
0xeeeeeeee intermediate, 0xdddddddd padded intermediate); everything after it, both ways, goes
through the cipher (the server's key and IV: the header's bytes 8..56 reversed).

`behaviour` makes it hostile on purpose:

    ok               resPQ echoing the nonce             wrong_nonce   resPQ with another nonce
    garbage          random bytes instead of a packet    transport_error  the -404 transport error
    endless          random bytes for ever               drip          a valid resPQ, a byte every 0.2 s
    silent           reads the request, never answers    close         closes after the request
    huge             a packet header claiming 16 MB, then bytes for ever
    not_resp         a well-formed packet with another constructor

Standard library and `cryptography` only. Run standalone (the lab does):
    python tests/servers/mtproto.py --listen 198.19.2.100:443 --listen 198.19.2.100:80
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

REQ_PQ = 0x60469778
REQ_PQ_MULTI = 0xBE7E8EF1
RES_PQ = 0x05162463
VECTOR = 0x1CB5C415
SAMPLE_PQ = 0x17ED48941A08F981  # the spec's sample pq (1229739323 * 1402015859)
SAMPLE_FINGERPRINT = 0xC3B42B026CE86B21  # the spec's sample key fingerprint
BEHAVIOURS = ("ok", "wrong_nonce", "garbage", "transport_error", "endless", "drip", "silent", "close", "huge", "not_respq")


def tl_bytes(data: bytes) -> bytes:
    head = bytes([len(data)]) if len(data) < 254 else b"\xfe" + len(data).to_bytes(3, "little")
    raw = head + data
    return raw + b"\x00" * (-len(raw) % 4)


def res_pq(nonce: bytes, constructor: int = RES_PQ) -> bytes:
    body = struct.pack("<I", constructor) + nonce + os.urandom(16) + tl_bytes(SAMPLE_PQ.to_bytes(8, "big"))
    body += struct.pack("<IIQ", VECTOR, 1, SAMPLE_FINGERPRINT)
    message_id = (int(time.time() * 2**32) & ~3) | 1  # server responses: message_id ≡ 1 (mod 4)
    return struct.pack("<qqI", 0, message_id, len(body)) + body


_TAGS = {b"\xef\xef\xef\xef": "abridged", b"\xee\xee\xee\xee": "intermediate", b"\xdd\xdd\xdd\xdd": "padded"}


def _ctr(key: bytes, iv: bytes):
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


class _Plain:
    """The connection's bytes as they are (plain transports)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    def write(self, data: bytes) -> None:
        self.writer.write(data)


class _Obfuscated(_Plain):
    """The connection's bytes through obfuscated2's ciphers (no MTProxy secret)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, init: bytes) -> None:
        super().__init__(reader, writer)
        self._decrypt = _ctr(init[8:40], init[40:56])
        reverse = init[8:56][::-1]
        self._encrypt = _ctr(reverse[:32], reverse[32:48])
        self.tag = self._decrypt.update(init)[56:60]  # the keystream now stands at byte 64

    async def readexactly(self, n: int) -> bytes:
        return self._decrypt.update(await self.reader.readexactly(n))

    def write(self, data: bytes) -> None:
        self.writer.write(self._encrypt.update(data))


def envelope(transport: str, payload: bytes) -> bytes:
    if transport == "padded":
        padding = os.urandom(os.urandom(1)[0] % 16)
        return struct.pack("<I", len(payload) + len(padding)) + payload + padding
    if transport == "abridged":
        words = len(payload) // 4
        return (bytes([words]) if words < 0x7F else b"\x7f" + words.to_bytes(3, "little")) + payload
    return struct.pack("<I", len(payload)) + payload


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, bytes, _Plain]:
    """(transport, payload, stream) of the client's first packet; ("http", b"", …) for a POST;
    transport "obfuscated2/<inner>" for an obfuscated connection (its stream decrypts and
    encrypts)."""
    # A data centre tells the transports apart the way the clients keep them apart: abridged
    # by its first byte, intermediate and HTTP by their first four; anything else is an
    # obfuscated2 header (which avoids exactly those starts, not every 0xee or "P" byte).
    first = await reader.readexactly(1)
    if first != b"\xef":
        first += await reader.readexactly(3)
    if first not in (b"\xef", b"\xee\xee\xee\xee", b"POST"):
        stream = _Obfuscated(reader, writer, first + await reader.readexactly(60))
        if stream.tag not in _TAGS:
            raise ValueError("not an obfuscated2 header")
        inner = _TAGS[stream.tag]
        if inner == "abridged":
            words = (await stream.readexactly(1))[0] & 0x7F
            if words == 0x7F:
                words = int.from_bytes(await stream.readexactly(3), "little")
            length = words * 4
        else:
            (length,) = struct.unpack("<I", await stream.readexactly(4))
        if length > 1 << 14:
            raise ValueError("request too long")
        payload = await stream.readexactly(length)
        if inner == "padded":
            payload = payload[: 20 + struct.unpack_from("<I", payload, 16)[0]] if len(payload) >= 20 else payload
        return f"obfuscated2/{inner}", payload, stream
    plain = _Plain(reader, writer)
    transport, payload = await _read_plain(first, reader)
    return transport, payload, plain


async def _read_plain(first: bytes, reader: asyncio.StreamReader) -> tuple[str, bytes]:
    if first == b"\xef":
        words = (await reader.readexactly(1))[0] & 0x7F  # the top bit asks for a quick ack
        if words == 0x7F:
            words = int.from_bytes(await reader.readexactly(3), "little")
        if words > 1 << 14:
            raise ValueError("request too long")
        return "abridged", await reader.readexactly(words * 4)
    if first == b"\xee\xee\xee\xee":
        (length,) = struct.unpack("<I", await reader.readexactly(4))
        if length > 1 << 16:
            raise ValueError("request too long")
        return "intermediate", await reader.readexactly(length)
    if first == b"POST":
        await reader.readuntil(b"\r\n\r\n")
        return "http", b""
    raise ValueError(f"unknown transport (first byte {first.hex()})")  # pragma: no cover


def nonce_of(payload: bytes) -> bytes:
    auth_key_id, _, length = struct.unpack_from("<qqI", payload)
    (constructor,) = struct.unpack_from("<I", payload, 20)
    if auth_key_id != 0 or constructor not in (REQ_PQ, REQ_PQ_MULTI) or length != 20:
        raise ValueError("not an unencrypted req_pq_multi")
    return payload[24:40]


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def handler(behaviour: str = "ok", served: list | None = None):
    """An asyncio stream handler answering one exchange per connection the `behaviour` way."""
    assert behaviour in BEHAVIOURS, behaviour

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            transport, payload, stream = await asyncio.wait_for(read_request(reader, writer), 10)
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            _rst(writer)  # what a data centre does with bytes it does not understand
            return
        if served is not None:
            served.append(transport)
        framing = transport.rpartition("/")[2]  # the envelope the answer goes in
        if transport == "http":
            writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        nonce = nonce_of(payload)
        if behaviour == "silent":
            await reader.read()  # until the client gives up
            return
        if behaviour == "close":
            writer.close()
            return
        if behaviour in ("endless", "huge"):
            if behaviour == "huge":
                stream.write(b"\x7f\xff\xff\x3f" if framing == "abridged" else struct.pack("<I", 16 << 20))
            while True:
                stream.write(os.urandom(16384))
                await writer.drain()
        if behaviour == "garbage":
            writer.write(os.urandom(96))
        elif behaviour == "transport_error":
            stream.write(envelope("intermediate" if framing == "padded" else framing, struct.pack("<i", -404)))
        else:
            reply = res_pq(os.urandom(16) if behaviour == "wrong_nonce" else nonce, 0x12345678 if behaviour == "not_respq" else RES_PQ)
            packet = envelope(framing, reply)
            if behaviour == "drip":
                for byte in packet:
                    stream.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)
            else:
                stream.write(packet)
        await writer.drain()
        await reader.read()  # keep the connection until the client closes it

    return handle


async def _main(listens: list[str], behaviour: str) -> None:
    servers = []
    for listen in listens:
        host, _, port = listen.rpartition(":")
        servers.append(await asyncio.start_server(handler(behaviour), host.strip("[]"), int(port)))
    print("mtproto responder ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", action="append", required=True, help="HOST:PORT (repeatable)")
    parser.add_argument("--behaviour", default="ok", choices=BEHAVIOURS)
    args = parser.parse_args()
    asyncio.run(_main(args.listen, args.behaviour))
