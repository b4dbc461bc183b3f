"""Stand-ins for the services' own protocols, where no Debian package serves them.

- `chat`: WhatsApp's chat endpoints (e1…e16, g.whatsapp.net on 443/5222). After the client's
  first bytes (the Noise prologue `WA…` and a ClientHello frame) it answers with a frame of its
  own (3-byte length + a protobuf-shaped ServerHello) and keeps the connection open, as the
  real server does while the handshake goes on.
- `mtproto`: Telegram data centres (443/80). Answers `req_pq_multi` with a `resPQ` echoing
  the nonce over the abridged (0xef) and intermediate (0xeeeeeeee) transports and over
  obfuscated2 (a 64-byte header, AES-256-CTR both ways, the inner framing's tag at 56..60;
  core.telegram.org/mtproto/mtproto-transports#transport-obfuscation), as the apps send it
  (core.telegram.org/mtproto/samples-auth_key), and any plain HTTP request with a status line,
  as OONI's probe expects.
- `h3`: HTTP/3 over QUIC (aioquic) for hosts whose targets run the `quic` check.
- Quirky servers, for the rules that must not read a server's own behaviour as censorship
  (tests/lab/test_quirks.py): `silent` takes what comes and never answers; `answer_then_reset`
  and `answer_then_drip` read a TLS ClientHello, send the first 200 bytes of a handshake answer,
  then reset the connection or drip a byte every half second.

Standalone on purpose (no imports from the lab package): it runs as
`ip netns exec mrl-servers python3 standins.py SPEC.json` where SPEC lists
{"role", "address", "port", "cert", "key"}.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import sys
import time

RES_PQ = 0x05162463
VECTOR = 0x1CB5C415


# --- WhatsApp chat --------------------------------------------------------------------------------


async def chat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        first = await asyncio.wait_for(reader.read(4096), 30)
        if first:
            hello = b"\x0a\x20" + os.urandom(32) + b"\x12\x30" + os.urandom(48)  # ephemeral, static
            message = b"\x1a" + bytes([len(hello)]) + hello  # HandshakeMessage.serverHello
            writer.write(len(message).to_bytes(3, "big") + message)
            await writer.drain()
            while await asyncio.wait_for(reader.read(4096), 60):  # held open, what comes is read
                pass
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.close()


# --- Telegram MTProto -----------------------------------------------------------------------------


def res_pq(nonce: bytes) -> bytes:
    pq = (1724114033281923457).to_bytes(8, "big")  # the documented sample pq
    body = struct.pack("<I", RES_PQ) + nonce + os.urandom(16)
    body += bytes([len(pq)]) + pq + b"\x00" * (-(1 + len(pq)) % 4)
    body += struct.pack("<II", VECTOR, 1) + struct.pack("<Q", 0xC3B42B026CE86B21)
    message_id = (int(time.time() * 2**32) & ~3) | 1  # server message ids are odd
    return struct.pack("<qqI", 0, message_id, len(body)) + body


def _nonce(packet: bytes) -> bytes | None:
    if len(packet) >= 40 and packet[:8] == bytes(8) and struct.unpack_from("<I", packet, 20)[0] == 0xBE7E8EF1:
        return packet[24:40]
    return None


_HTTP_METHODS = (b"POST", b"GET ", b"HEAD", b"OPTI")


class _Obfuscated2:
    """The server's side of obfuscated2 (no MTProxy secret): the client's key and IV decrypt,
    the same 48 header bytes reversed encrypt."""

    def __init__(self, header: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        def ctr(key: bytes, iv: bytes):
            return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()

        self._decrypt = ctr(header[8:40], header[40:56])
        reverse = header[8:56][::-1]
        self._encrypt = ctr(reverse[:32], reverse[32:48])
        self.tag = self._decrypt.update(header)[56:60]

    async def read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        return self._decrypt.update(await reader.readexactly(n))

    def seal(self, data: bytes) -> bytes:
        return self._encrypt.update(data)


async def _obfuscated2(first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    session = _Obfuscated2(first + await reader.readexactly(64 - len(first)))
    if session.tag == b"\xef\xef\xef\xef":
        words = (await session.read(reader, 1))[0] & 0x7F
        nonce = _nonce(await session.read(reader, words * 4))
        answer = res_pq(nonce) if nonce else None
        framed = bytes([len(answer) // 4]) + answer if answer else None
    elif session.tag in (b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd"):
        (length,) = struct.unpack("<I", await session.read(reader, 4))
        nonce = _nonce(await session.read(reader, length & 0x7FFFFFFF))  # padding after the message is ignored
        answer = res_pq(nonce) if nonce else None
        framed = struct.pack("<I", len(answer)) + answer if answer else None
    else:
        return
    if framed:
        writer.write(session.seal(framed))


async def mtproto(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readexactly(4), 30)
        if head[:1] == b"\xef":  # abridged
            words = head[1]
            rest = head[2:]
            if words == 0x7F:
                words = int.from_bytes(rest + await reader.readexactly(1), "little")
                rest = b""
            nonce = _nonce(rest + await reader.readexactly(words * 4 - len(rest)))
            if nonce:
                answer = res_pq(nonce)
                writer.write(bytes([len(answer) // 4]) + answer)
        elif head == b"\xee\xee\xee\xee":  # intermediate
            (length,) = struct.unpack("<I", await reader.readexactly(4))
            nonce = _nonce(await reader.readexactly(length & 0x7FFFFFFF))
            if nonce:
                answer = res_pq(nonce)
                writer.write(struct.pack("<I", len(answer)) + answer)
        elif head in _HTTP_METHODS:  # plain HTTP (OONI's POST /)
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:  # anything else is an obfuscated2 header
            await _obfuscated2(head, reader, writer)
        await writer.drain()
        await asyncio.wait_for(reader.read(4096), 10)
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError, ValueError):
        pass
    finally:
        writer.close()


# --- quirky servers ---------------------------------------------------------------------------------

ANSWER_BYTES = 200


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await asyncio.wait_for(reader.read(4096), 60):  # read (the kernel acknowledges it), never answered
            pass
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _answer_begun() -> bytes:
    """A handshake record announcing 4 KB, of which the first ANSWER_BYTES come."""
    return (b"\x16\x03\x03\x10\x00" + b"\x02\x00\x0f\xfc" + bytes(range(256)))[:ANSWER_BYTES]


async def _client_hello(reader: asyncio.StreamReader) -> None:
    header = await asyncio.wait_for(reader.readexactly(5), 30)
    await asyncio.wait_for(reader.readexactly(struct.unpack("!H", header[3:5])[0]), 30)


async def answer_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    import socket

    try:
        await _client_hello(reader)
        writer.write(_answer_begun())
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
        writer.close()


async def answer_then_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await _client_hello(reader)
        writer.write(_answer_begun())
        await writer.drain()
        for _ in range(120):
            await asyncio.sleep(0.5)
            writer.write(b"\x00")
            await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
        pass
    finally:
        writer.close()


QUIRKS = {"silent": silent, "answer_then_reset": answer_then_reset, "answer_then_drip": answer_then_drip}


# --- HTTP/3 ---------------------------------------------------------------------------------------


async def h3(address: str, port: int, cert: str, key: str) -> None:
    from aioquic.asyncio import QuicConnectionProtocol, serve
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import ProtocolNegotiated

    class Protocol(QuicConnectionProtocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._http: H3Connection | None = None

        def quic_event_received(self, event) -> None:
            if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                self._http = H3Connection(self._quic)
            if self._http is None:
                return
            for http_event in self._http.handle_event(event):
                if isinstance(http_event, HeadersReceived):
                    body = b"msgreach lab: HTTP/3"
                    self._http.send_headers(
                        http_event.stream_id,
                        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
                    )
                    self._http.send_data(http_event.stream_id, body, end_stream=True)
            self.transmit()

    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(cert, key)
    await serve(address, port, configuration=configuration, create_protocol=Protocol)


async def main(spec_path: str) -> None:
    spec = json.load(open(spec_path))
    for item in spec:
        role, address, port = item["role"], item["address"], int(item["port"])
        if role == "chat":
            await asyncio.start_server(chat, address, port, reuse_address=True)
        elif role == "mtproto":
            await asyncio.start_server(mtproto, address, port, reuse_address=True)
        elif role == "h3":
            await h3(address, port, item["cert"], item["key"])
        elif role in QUIRKS:
            await asyncio.start_server(QUIRKS[role], address, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"standins: serving {len(spec)} endpoints", flush=True)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
