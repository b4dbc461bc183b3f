"""mtproto: Telegram's own protocol, its first unencrypted exchange, to each data centre.

Per endpoint (every address:port the `tcp` check connected to, or every pinned one), on a fresh
connection each:
- `req_pq_multi` in each framing: the plain abridged transport (first byte 0xef), the plain
  intermediate one (0xeeeeeeee), and obfuscated2, what the apps send (a random-looking 64-byte
  header, then padded intermediate under AES-256-CTR): ok only when a `resPQ` echoing our nonce
  comes back;
- OONI's plain-HTTP `POST /` (ts-020): any HTTP response means the data centre is reachable.

A probe works when it succeeds on at least one endpoint; the check passes when every probe
works (`works` in the evidence says which framings passed). A framing whose connections are
reset, cut or left unanswered after TCP connected argues `protocol_blocked` on the path (the
transport succeeded, the protocol died; the framings that passed are named in the reason: a
censor matching plain MTProto's first bytes, or one dropping obfuscated2's random-looking
first segment). A data centre that answers with bytes that are not MTProto is the server's
fault, not the path's.
Spec: core.telegram.org/mtproto/mtproto-transports, /mtproto/mtproto-transports#transport-obfuscation
and /mtproto/samples-auth_key.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from probe import failures
from probe.checks import common
from probe.checks.base import Context, Skip, Stopwatch
from probe.model import (
    CheckResult,
    Fault,
    Finding,
    MTProtoEvidence,
    MTProtoProbe,
    Verdict,
)
from probe.net import open_tcp
from probe.params import MTProtoParams as Params

NAME = "mtproto"
BLOCK_VERDICT = Verdict.PROTOCOL_BLOCKED  # what a timeout of this check means

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

Framing = Literal["abridged", "intermediate", "obfuscated2"]
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


def _ctr(key: bytes, iv: bytes) -> Any:
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
    def __init__(self, reader: asyncio.StreamReader, decrypt: Any) -> None:
        self._reader, self._decrypt = reader, decrypt

    async def readexactly(self, n: int) -> bytes:
        return self._decrypt.update(await self._reader.readexactly(n))


# --- one probe on one endpoint --------------------------------------------------------------------


async def probe(ctx: Context, address: str, port: int, kind: Probe, timeout: float) -> MTProtoProbe:
    outcome = MTProtoProbe(address, port, kind)
    writer = None
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await open_tcp(ctx.route, address, port)
                outcome.connected = True
                if kind == "http":
                    outcome.status_code = await _http_post(reader, writer, address)
                else:
                    nonce = os.urandom(16)
                    request = req_pq_multi(nonce)
                    if kind == "obfuscated2":
                        session = Obfuscated2(obfuscated2_header())
                        # One write: the header and the first packet in one segment, as the apps do.
                        writer.write(session.header + session.encrypt(frame("padded", request)))
                        packet = await read_packet(session.reader(reader), "padded")
                    else:
                        writer.write(frame(kind, request))
                        packet = await read_packet(reader, kind)
                    facts = parse_res_pq(packet, nonce)
                    outcome.server_message_id_odd = facts["server_message_id_odd"]
                    outcome.pq_bytes = facts["pq_bytes"]
                    outcome.key_fingerprints = facts["key_fingerprints"]
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            found = failures.as_evidence(exc)
            outcome.failure, outcome.detail = found["failure"], found.get("detail")
        finally:
            common.close_quietly(writer)
    outcome.duration_seconds = round(watch.seconds, 4)
    return outcome


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


async def run(ctx: Context, params: Params) -> CheckResult:
    targets = common.endpoints(ctx)
    if not targets:
        raise Skip("no TCP connection to speak MTProto on")
    kinds: list[Probe] = [*params.transports, *(["http"] if params.http_post else [])]
    if not kinds:
        raise Skip("no probe configured")
    timeout = common.phase_timeout(ctx, params.exchange_timeout)
    with Stopwatch() as watch:
        probes = list(await asyncio.gather(*(probe(ctx, a, p, k, timeout) for a, p in targets for k in kinds)))
    works = {k: any(p.failure is None for p in probes if p.probe == k) for k in kinds}
    evidence = MTProtoEvidence(probes, works)
    if all(works.values()):
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    failed = [p for p in probes if not works[p.probe]]
    failure = common.most_common([p.failure for p in failed])
    return CheckResult(NAME, False, failure, watch.seconds, _finding(failed, works), evidence)


def _finding(failed: list[MTProtoProbe], works: dict[str, bool]) -> Finding:
    broken = [k for k, ok in works.items() if not ok]
    passed = [k for k, ok in works.items() if ok]
    if not any(p.connected for p in failed):
        # Nothing connected (no `tcp` check before this one): the address is what fails, and
        # nothing here tells a censor's drop from a dead host.
        return Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", "no TCP connection to the data centre")
    interfered = [p for p in failed if p.connected and p.failure in failures.INTERFERENCE]
    if not interfered:
        # The data centre answered, in something other than MTProto: the server's doing.
        return Finding(Verdict.PROTOCOL_BLOCKED, Fault.SERVER, "transport", f"{', '.join(broken)}: the data centre answered, not in MTProto")
    how = common.most_common([p.failure for p in interfered])
    reason = f"{', '.join(broken)} failed after TCP connected ({how})"
    reason += f" while {', '.join(passed)} passed" if passed else ""
    if "obfuscated2" in broken and passed and "obfuscated2" not in passed and any(k in passed for k in ("abridged", "intermediate")):
        reason += ": the censor matches obfuscated2 (what the apps send)"
    elif "obfuscated2" in passed and any(k in broken for k in ("abridged", "intermediate")):
        reason += ": the censor matches plain MTProto's first bytes"
    differential = "framing" if any(k in passed for k in ("abridged", "intermediate", "obfuscated2")) else "transport"
    return Finding(Verdict.PROTOCOL_BLOCKED, Fault.PATH, differential, reason)
