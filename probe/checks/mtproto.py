"""mtproto: Telegram's own protocol, its first unencrypted exchange, to each data centre.

Per endpoint (every address:port the `tcp` check connected to, or every pinned one), on a fresh
connection each:
- `req_pq_multi` over the abridged transport (first byte 0xef) and over the intermediate one
  (0xeeeeeeee): ok only when a `resPQ` echoing our nonce comes back;
- OONI's plain-HTTP `POST /` (ts-020): any HTTP response means the data centre is reachable.

A probe works when it succeeds on at least one endpoint; the check passes when every probe
works. TCP connecting while some probe never gets its answer is `protocol_blocked`: plain
MTProto is easy to fingerprint, and a censor matching its first bytes looks exactly like this.
Spec: core.telegram.org/mtproto/mtproto-transports and /mtproto/samples-auth_key.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import Any, Literal


from probe import failures
from probe.checks import common
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict
from probe.net import open_tcp
from probe.params import MTProtoParams as Params

NAME = "mtproto"
BLOCK_VERDICT = Verdict.PROTOCOL_BLOCKED  # what a timeout of this check means

REQ_PQ_MULTI = 0xBE7E8EF1
RES_PQ = 0x05162463
VECTOR = 0x1CB5C415
ABRIDGED = b"\xef"
INTERMEDIATE = b"\xee\xee\xee\xee"
MAX_PACKET = 1024  # a resPQ is under 100 bytes; anything this long is not one
MAX_HTTP_LINE = 1024

Probe = Literal["abridged", "intermediate", "http"]



# --- the wire format ------------------------------------------------------------------------------


def req_pq_multi(nonce: bytes, now: float | None = None) -> bytes:
    """An unencrypted message: auth_key_id 0, message_id, length, req_pq_multi#be7e8ef1 nonce."""
    assert len(nonce) == 16
    now = time.time() if now is None else now
    message_id = (int(now * 2**32)) & ~3  # client message ids are divisible by 4
    body = struct.pack("<I", REQ_PQ_MULTI) + nonce
    return struct.pack("<qqI", 0, message_id, len(body)) + body


def frame(transport: str, payload: bytes, *, first: bool = True) -> bytes:
    """Wrap one payload in a transport's envelope (with the transport's header if `first`)."""
    if transport == "abridged":
        words = len(payload) // 4
        length = bytes([words]) if words < 0x7F else b"\x7f" + words.to_bytes(3, "little")
        return (ABRIDGED if first else b"") + length + payload
    return (INTERMEDIATE if first else b"") + struct.pack("<I", len(payload)) + payload


async def read_packet(reader: asyncio.StreamReader, transport: str) -> bytes:
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
    else:
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


# --- one probe on one endpoint --------------------------------------------------------------------


async def probe(ctx: Context, address: str, port: int, kind: Probe, timeout: float) -> dict[str, Any]:
    outcome: dict[str, Any] = {"address": address, "port": port, "probe": kind, "connected": False, "failure": None}
    writer = None
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await open_tcp(ctx.route, address, port)
                outcome["connected"] = True
                if kind == "http":
                    outcome.update(await _http_post(reader, writer, address))
                else:
                    nonce = os.urandom(16)
                    writer.write(frame(kind, req_pq_multi(nonce)))
                    packet = await read_packet(reader, kind)
                    outcome.update(parse_res_pq(packet, nonce))
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            outcome.update(failures.as_evidence(exc))
        finally:
            common.close_quietly(writer)
    outcome["duration_seconds"] = round(watch.seconds, 4)
    return outcome


async def _http_post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> dict[str, Any]:
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
    return {"status_code": int(parts[1])}


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
        probes = await asyncio.gather(*(probe(ctx, a, p, k, timeout) for a, p in targets for k in kinds))
    works = {k: any(p["failure"] is None for p in probes if p["probe"] == k) for k in kinds}
    evidence: dict[str, Any] = {"probes": probes, "works": works}
    if all(works.values()):
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    failed = [p for p in probes if p["probe"] in {k for k, ok in works.items() if not ok}]
    failure = common.most_common([p["failure"] for p in failed])
    connected = any(p["connected"] for p in probes)
    # Transport succeeded and the protocol did not: the protocol is what is blocked. Nothing
    # connected at all (no `tcp` check before this one): the address is.
    if connected:
        finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.PATH, "transport", "TCP connects, MTProto gets no resPQ")
    else:
        finding = Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", "no data centre address connects")
    return CheckResult(NAME, False, failure, watch.seconds, finding, evidence)
