"""mtproto: Telegram's own protocol, its first unencrypted exchange, to each data centre.

Per endpoint (every address:port the `tcp` check connected to, or every pinned one), on a fresh
connection each:
- `req_pq_multi` in each framing: the plain abridged transport (first byte 0xef), the plain
  intermediate one (0xeeeeeeee), and obfuscated2, what the apps send (a random-looking 64-byte
  header, then padded intermediate under AES-256-CTR): ok only when a `resPQ` echoing our nonce
  comes back;
- OONI's plain-HTTP `POST /` (ts-020): any HTTP response means the data centre is reachable.

A probe works when it succeeds on at least one endpoint (`works` in the evidence says which
framings passed); probe.judge.mtproto reads the rest. A failed exchange keeps what the kernel
knew of its connection: the bytes the data centre sent, and ours it never acknowledged.
Spec: core.telegram.org/mtproto/mtproto-transports, /mtproto/mtproto-transports#transport-obfuscation
and /mtproto/samples-auth_key.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from probe import failures
from probe.checks.context import Context, Skip
from probe.checks.endpoints import connected_endpoints
from probe.checks.observe import received_bytes, recorded, unacked_segments
from probe.model import MTProtoEvidence, MTProtoProbe
from probe.net import open_tcp
from probe.params import MTProtoParams as Params

NAME = "mtproto"

REQ_PQ_MULTI = 0xBE7E8EF1
RES_PQ = 0x05162463
VECTOR = 0x1CB5C415
ABRIDGED = b"\xef"
INTERMEDIATE = b"\xee\xee\xee\xee"
PADDED_INTERMEDIATE = b"\xdd\xdd\xdd\xdd"  # obfuscated2's inner framing, as the apps use it
# First words an obfuscated2 header must not start with (they would read as another protocol).
_RESERVED_STARTS = (b"HEAD", b"POST", b"GET ", b"OPTI", b"\x16\x03\x01\x02", PADDED_INTERMEDIATE, INTERMEDIATE)
MAX_PACKET = 1024  # a resPQ is under 100 bytes; anything this long is not one
MAX_HTTP_LINE = 1024

Probe = Literal["abridged", "intermediate", "obfuscated2", "http"]




# --- the wire format ------------------------------------------------------------------------------


def req_pq_multi(nonce: bytes, now: float | None = None) -> bytes:
    """An unencrypted message: auth_key_id 0, message_id, length, req_pq_multi#be7e8ef1 nonce."""
    assert len(nonce) == 16
    now = time.time() if now is None else now
    message_id = (int(now * 2**32)) & ~3  # client message ids are divisible by 4
    body = struct.pack("<I", REQ_PQ_MULTI) + nonce
    return struct.pack("<qqI", 0, message_id, len(body)) + body


def frame(transport: str, payload: bytes, *, first: bool = True) -> bytes:
    """Wrap one payload in a transport's envelope (with the transport's header if `first`).
    `padded` is padded intermediate (obfuscated2's inner framing): 0-15 random bytes appended,
    counted in the length, no header of its own (it travels in the obfuscated2 header)."""
    if transport == "padded":
        padding = os.urandom(os.urandom(1)[0] % 16)
        return struct.pack("<I", len(payload) + len(padding)) + payload + padding
    if transport == "abridged":
        words = len(payload) // 4
        length = bytes([words]) if words < 0x7F else b"\x7f" + words.to_bytes(3, "little")
        return (ABRIDGED if first else b"") + length + payload
    return (INTERMEDIATE if first else b"") + struct.pack("<I", len(payload)) + payload


class _Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


async def read_packet(reader: _Reader, transport: str) -> bytes:
    """One packet from the server, the envelope removed. A transport error (a negative 32-bit
    code, framed or raw) raises `Failure(protocol_error)`; so does an oversized packet."""
    head = await reader.readexactly(4)
    raw = struct.unpack("<i", head)[0]
    if -1000 < raw < 0:  # a bare transport error code, sent without an envelope
        raise failures.Failure(failures.PROTOCOL_ERROR, f"transport error {raw}")
    if transport == "abridged":
        words = head[0]
        if words == 0x7F:
            words = int.from_bytes(head[1:4], "little")
            rest = b""
        else:
            rest = head[1:]
        length = words * 4
    else:  # intermediate, or padded intermediate (its padding is inside the length)
        length = struct.unpack("<I", head)[0] & 0x7FFFFFFF  # top bit: quick-ack flag
        rest = b""
    if length > MAX_PACKET:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"a {length}-byte packet is not a resPQ")
    if length < len(rest):
        raise failures.Failure(failures.PROTOCOL_ERROR, f"bad packet length {length}")
    if length == 4:
        payload = rest + await reader.readexactly(4 - len(rest))
        raise failures.Failure(failures.PROTOCOL_ERROR, f"transport error {struct.unpack('<i', payload)[0]}")
    # The answer to an unencrypted request is unencrypted: auth_key_id 0. Checked before the
    # rest is awaited, so bytes that are not MTProto fail now rather than at the timeout.
    start = rest + await reader.readexactly(max(min(8, length) - len(rest), 0))
    if len(start) < 8 or start[:8] != bytes(8):
        raise failures.Failure(failures.PROTOCOL_ERROR, "reply is not an unencrypted MTProto message")
    return start + await reader.readexactly(length - len(start))


def _tl_bytes(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset >= len(data):
        raise ValueError("truncated")
    if data[offset] < 254:
        length, start = data[offset], offset + 1
    else:
        length, start = int.from_bytes(data[offset + 1 : offset + 4], "little"), offset + 4
    end = start + length
    if end > len(data):
        raise ValueError("truncated")
    padded = end + (-(end - offset) % 4)
    return data[start:end], padded


def parse_res_pq(packet: bytes, nonce: bytes) -> dict[str, Any]:
    """Check that a packet is an unencrypted resPQ echoing `nonce`; return its facts."""
    if len(packet) < 20 + 4 + 32:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"{len(packet)}-byte reply is too short for resPQ")
    auth_key_id, message_id, length = struct.unpack_from("<qqI", packet)
    if auth_key_id != 0:
        raise failures.Failure(failures.PROTOCOL_ERROR, "reply is not an unencrypted message")
    if 20 + length > len(packet) or length < 4 + 32:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"bad message length {length}")
    body = packet[20 : 20 + length]
    (constructor,) = struct.unpack_from("<I", body)
    if constructor != RES_PQ:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"constructor {constructor:#010x} is not resPQ")
    if body[4:20] != nonce:
        raise failures.Failure(failures.PROTOCOL_ERROR, "resPQ does not echo our nonce")
    facts: dict[str, Any] = {"server_message_id_odd": bool(message_id & 1)}
    try:
        pq, offset = _tl_bytes(body, 36)
        vector, count = struct.unpack_from("<II", body, offset)
        if vector != VECTOR or count > 64:
            raise ValueError("no fingerprint vector")
        fingerprints = struct.unpack_from(f"<{count}Q", body, offset + 8)
    except (ValueError, struct.error) as exc:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"resPQ body: {exc}") from None
    facts["pq_bytes"] = len(pq)
    facts["key_fingerprints"] = [f"{f:016x}" for f in fingerprints]
    return facts


# --- obfuscated2 (transport obfuscation) -----------------------------------------------------------


def _ctr(key: bytes, iv: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()  # CTR: one keystream both ways


def obfuscated2_header(tag: bytes = PADDED_INTERMEDIATE, dc: int = 0) -> bytes:
    """64 random bytes that read as no other protocol, with the inner framing's tag at 56..60
    and the DC number at 60..62 (0: any)."""
    while True:
        init = bytearray(os.urandom(64))
        if init[0] != 0xEF and bytes(init[:4]) not in _RESERVED_STARTS and init[4:8] != bytes(4):
            break
    init[56:60] = tag
    init[60:62] = struct.pack("<h", dc)
    return bytes(init)


class Obfuscated2:
    """The client's side of one obfuscated2 connection: the header to send first, then every
    byte each way through AES-256-CTR. Keys without an MTProxy secret: ours are init[8:40] with
    IV init[40:56]; the server's are the same 48 bytes reversed."""

    def __init__(self, init: bytes) -> None:
        self._encrypt = _ctr(init[8:40], init[40:56])
        reverse = init[8:56][::-1]
        self._decrypt = _ctr(reverse[:32], reverse[32:48])
        # The header goes out with its last 8 bytes (tag, DC, 2 random) encrypted.
        self.header = init[:56] + self._encrypt.update(init)[56:64]

    def encrypt(self, data: bytes) -> bytes:
        return self._encrypt.update(data)

    def reader(self, reader: asyncio.StreamReader) -> _DecryptingReader:
        return _DecryptingReader(reader, self._decrypt)


class _DecryptingReader:
    def __init__(self, reader: asyncio.StreamReader, decrypt: CipherContext) -> None:
        self._reader, self._decrypt = reader, decrypt

    async def readexactly(self, n: int) -> bytes:
        return self._decrypt.update(await self._reader.readexactly(n))


# --- one probe on one endpoint --------------------------------------------------------------------


async def probe(ctx: Context, address: str, port: int, kind: Probe, timeout: float) -> MTProtoProbe:
    outcome = MTProtoProbe(address, port, kind)
    async with recorded(ctx, outcome, timeout, "connect") as operation:
        reader, writer = await open_tcp(ctx.route, address, port)
        operation.close_at_end(writer)
        outcome.connected = True
        if ctx.route.socks5 is None:  # through a proxy, the kernel knows only the proxy's side
            operation.at_failure(lambda: _after_failure(outcome, writer))
        operation.now("write")
        if kind == "http":
            outcome.status_code = await _http_post(reader, writer, address)
        else:
            nonce = os.urandom(16)
            request = req_pq_multi(nonce)
            if kind == "obfuscated2":
                session = Obfuscated2(obfuscated2_header())
                # One write: the header and the first packet in one segment, as the apps do.
                writer.write(session.header + session.encrypt(frame("padded", request)))
                operation.now("read")
                packet = await read_packet(session.reader(reader), "padded")
            else:
                writer.write(frame(kind, request))
                operation.now("read")
                packet = await read_packet(reader, kind)
            facts = parse_res_pq(packet, nonce)
            outcome.server_message_id_odd = facts["server_message_id_odd"]
            outcome.pq_bytes = facts["pq_bytes"]
            outcome.key_fingerprints = facts["key_fingerprints"]
    return outcome


def _after_failure(outcome: MTProtoProbe, writer: asyncio.StreamWriter) -> None:
    """What the kernel knows of the failed connection."""
    outcome.received_bytes = received_bytes(writer)
    outcome.unacked_segments = unacked_segments(writer)


async def _http_post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> int:
    """OONI's probe: any HTTP status line in reply to `POST /` means the DC answered."""
    writer.write(f"POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    line = b""
    while b"\n" not in line:
        chunk = await reader.read(MAX_HTTP_LINE)
        if not chunk:
            raise failures.Failure(failures.EOF, "closed before an HTTP status line")
        line += chunk
        if len(line) > MAX_HTTP_LINE and b"\n" not in line:
            raise failures.Failure(failures.PROTOCOL_ERROR, "no HTTP status line")
    status = line.split(b"\n", 1)[0].strip()
    parts = status.split(b" ", 2)
    if not parts[0].startswith(b"HTTP/1.") or len(parts) < 2 or not parts[1].isdigit():
        raise failures.Failure(failures.PROTOCOL_ERROR, "reply is not HTTP")
    return int(parts[1])


# --- the check --------------------------------------------------------------------------------------


async def run(ctx: Context, params: Params) -> MTProtoEvidence:
    targets = connected_endpoints(ctx)
    if not targets:
        raise Skip("no TCP connection to speak MTProto on")
    kinds: list[Probe] = list(params.transports)
    if params.http_post:
        kinds.append("http")
    if not kinds:
        raise Skip("no probe configured")
    timeout = ctx.bounded(params.exchange_timeout)
    probes = list(await asyncio.gather(*(probe(ctx, a, p, k, timeout) for a, p in targets for k in kinds)))
    works: dict[str, bool] = {k: any(p.failure is None for p in probes if p.probe == k) for k in kinds}
    return MTProtoEvidence(probes, works)
