"""What travels between a monitor and a helper: API paths and the datagram formats.

A stream datagram is `body + trailer`; the trailer is the session id (8 bytes), the sequence
number (4) and an HMAC-SHA256 (32) under the session key over direction, sequence and body.
The helper's echo has exactly the size of what it answers (never more bytes than it was sent).

Control measurements (`/v1/measure`) are sized for a frozen line (issue #18): see below.

Bodies: the opening of a call stream is a STUN Binding Request whose last attribute (0x8030,
comprehension-optional) holds the trailer, so the whole datagram is a well-formed STUN message;
then RTP packets (version 2, Opus payload type 111). The control stream has the same sizes and
rate with neutral bytes (no STUN magic cookie, no RTP version bits).
"""

from __future__ import annotations

import json
import os
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from probe.helper.auth import MAC_BYTES, datagram_mac

API_MEASURE = "/v1/measure"
API_STREAM = "/v1/stream"
API_EXPECT = "/v1/probe/expect"
API_REPORT = "/v1/probe/report"
API_BULK = "/v1/bulk"

SESSION_BYTES = 8
TRAILER_BYTES = SESSION_BYTES + 4 + MAC_BYTES
UP, DOWN = b"up", b"down"

STUN_MAGIC = 0x2112A442
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101
STUN_ATTR_PADDING = 0x0026
STUN_ATTR_TRAILER = 0x8030
RTP_OPUS = 111
MIN_PACKET = 72 + 4  # the STUN opening needs its header, two attribute headers and the trailer
MAX_PACKET = 1200


@dataclass(frozen=True)
class Datagram:
    session: bytes
    seq: int
    body: bytes
    mac: bytes


def seal(key: bytes, session: bytes, seq: int, body: bytes, direction: bytes = UP) -> bytes:
    return body + session + struct.pack("!I", seq) + datagram_mac(key, direction, seq, body)


def split(data: bytes) -> Datagram | None:
    """The parts of a datagram, or None when it is too short to be one."""
    if len(data) < TRAILER_BYTES + 1:
        return None
    body, trailer = data[:-TRAILER_BYTES], data[-TRAILER_BYTES:]
    (seq,) = struct.unpack_from("!I", trailer, SESSION_BYTES)
    return Datagram(trailer[:SESSION_BYTES], seq, body, trailer[SESSION_BYTES + 4 :])


def stun_opening_body(size: int) -> bytes:
    """A STUN Binding Request body for a datagram of `size` bytes (a multiple of 4, ≥ MIN_PACKET);
    the trailer completes its last attribute."""
    padding = size - 20 - 4 - 4 - TRAILER_BYTES
    assert padding >= 0 and padding % 4 == 0, size
    header = struct.pack("!HHI", STUN_BINDING_REQUEST, size - 20, STUN_MAGIC) + secrets.token_bytes(12)
    return header + struct.pack("!HH", STUN_ATTR_PADDING, padding) + bytes(padding) + struct.pack("!HH", STUN_ATTR_TRAILER, TRAILER_BYTES)


def is_stun_request(body: bytes) -> bool:
    if len(body) < 20:
        return False
    kind, _, cookie = struct.unpack_from("!HHI", body)
    return bool(kind == STUN_BINDING_REQUEST and cookie == STUN_MAGIC)


def echo_body(body: bytes) -> bytes:
    """What the helper sends back: a STUN request becomes its success response (same transaction,
    same length), anything else is echoed as it came."""
    if is_stun_request(body):
        return struct.pack("!H", STUN_BINDING_SUCCESS) + body[2:]
    return body


def rtp_body(seq: int, ssrc: int, timestamp: int, size: int) -> bytes:
    """An RTP packet (V=2, Opus) whose datagram, trailer included, is `size` bytes."""
    header = struct.pack("!BBHII", 0x80, RTP_OPUS, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + os.urandom(size - TRAILER_BYTES - len(header))


def neutral_body(size: int) -> bytes:
    """Random bytes of the same size whose first byte is neither STUN's (00) nor RTP's (10) top bits."""
    data = bytearray(os.urandom(size - TRAILER_BYTES))
    data[0] = 0x40 | (data[0] & 0x3F)
    return bytes(data)


_PRINTABLE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "


def printable(size: int) -> bytes:
    """Neutral bytes for the circumvention differential: printable ASCII, which the entropy and
    signature rules of known censors exempt."""
    return bytes(_PRINTABLE[b % len(_PRINTABLE)] for b in os.urandom(size))


def neutral_like(signature: bytes) -> bytes:
    """Printable bytes as long as `signature` that differ from it at every offset: a rule keyed on
    a signature's byte (OpenVPN's opcode 0x38 is the digit '8') never takes the neutral bytes too,
    which made a blocked signature read `down` now and then (both dead: nothing to compare)."""
    out = bytearray(printable(len(signature)))
    for index, byte in enumerate(out):
        if byte == signature[index]:
            out[index] = _PRINTABLE[(_PRINTABLE.index(byte) + 1) % len(_PRINTABLE)]
    return bytes(out)


# --- control measurements, sized for a frozen line (issue #18) -----------------------------------------
# Russia freezes connections to foreign hosting after ~16 KB, both directions counted: every
# exchange with a helper stays under a conservative budget per connection, request and answer
# together. A monitor asks compact answers (what its judge needs of the helper's measurement) with
# the bytes left for the answer; the helper answers as many targets as fit, in the request's
# order, and says where the rest begins (`next`); the monitor asks the rest on a fresh connection
# (`continuation`: answered from the same measurement). Numbers measured in docs/helper.md.

FREEZE_BUDGET = 12 * 1024  # bytes per connection, request and answer (heads included) together
REQUEST_HEAD_BYTES = 512  # a request's head: POST line, Host, length, three signature headers (~330 sent)
ANSWER_HEAD_BYTES = 256  # an answer's head: status, length, type, signature (~190 sent)
TLS_HANDSHAKE_BYTES = 6 * 1024  # an https:// line's handshake, its certificate chain included
REQUEST_BODY_BYTES = 4 * 1024  # target names per control request, at most
MIN_PAGE_BYTES, MAX_PAGE_BYTES = 1024, 16 * 1024 * 1024
REASON_CHARS = 160  # of a compact answer's reason
CONTINUATION_SECONDS = 120.0  # a continuation is answered from a measurement this recent
DETAIL_COMPACT, DETAIL_FULL = "compact", "full"  # full: every check's evidence (the default of older monitors)


def request_pages(names: Iterable[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """(service, target) names in requests of at most REQUEST_BODY_BYTES of names each."""
    pages: list[list[tuple[str, str]]] = []
    page: list[tuple[str, str]] = []
    size = 0
    for service, target in names:
        cost = len(json.dumps({"service": service, "target": target}, separators=(",", ":")).encode()) + 1
        if page and size + cost > REQUEST_BODY_BYTES:
            pages.append(page)
            page, size = [], 0
        page.append((service, target))
        size += cost
    if page:
        pages.append(page)
    return pages


def answer_budget(request_body: int, *, tls: bool = False) -> int:
    """The bytes an answer's body may take so that the whole exchange stays under FREEZE_BUDGET."""
    left = FREEZE_BUDGET - REQUEST_HEAD_BYTES - request_body - ANSWER_HEAD_BYTES - (TLS_HANDSHAKE_BYTES if tls else 0)
    return max(MIN_PAGE_BYTES, left)


@dataclass(frozen=True)
class MeasureShape:
    """How a monitor wants its measurement answered: `detail`, a byte budget, a continuation."""

    detail: str = DETAIL_FULL
    max_bytes: int | None = None
    continuation: bool = False

    @classmethod
    def of(cls, request: dict[str, Any]) -> MeasureShape:
        """From a /v1/measure request (ValueError when a field is not what the protocol allows)."""
        detail = request.get("detail", DETAIL_FULL)
        budget = request.get("max_answer_bytes")
        continuation = request.get("continuation", False)
        if detail not in (DETAIL_COMPACT, DETAIL_FULL) or not isinstance(continuation, bool):
            raise ValueError("detail or continuation")
        if budget is not None and (type(budget) is not int or not MIN_PAGE_BYTES <= budget <= MAX_PAGE_BYTES):
            raise ValueError("max_answer_bytes")
        return cls(detail, budget, continuation)


def compact(item: dict[str, Any]) -> dict[str, Any]:
    """A target's control measurement as a monitor's judge needs it: the verdict, the first failing
    check and its failure (the same-check rule), a short reason, its age and the helper's own
    vantage verdict (its controls must pass for the result to count)."""
    out: dict[str, Any] = {"service": item.get("service"), "target": item.get("target")}
    if "error" in item:
        out["error"] = item["error"]
        return out
    out["verdict"] = item.get("verdict")
    checks = item.get("checks")
    failed = next((c for c in checks if isinstance(c, dict) and not c.get("ok")), None) if isinstance(checks, list) else None
    if failed is not None:
        out["check"] = failed.get("check")
        out["failure"] = str(failed.get("failure"))[:120]
    if item.get("reason"):
        out["reason"] = str(item["reason"])[:REASON_CHARS]
    for key in ("age_seconds", "helper_vantage"):
        if key in item:
            out[key] = item[key]
    return out


def measure_answer(items: list[dict[str, Any]], shape: MeasureShape) -> dict[str, Any]:
    """The /v1/measure answer: the items (compact or full) in the request's order; with a byte
    budget, as many as fit (one at least, so that a monitor always gets on) and `next`, the index
    of the first one left out. Sizes are those of the helper's JSON (default separators, UTF-8)."""
    if shape.detail == DETAIL_COMPACT:
        items = [compact(item) for item in items]
    if shape.max_bytes is None:
        return {"targets": items}
    size = len('{"targets": [], "next": 65535}')
    for index, item in enumerate(items):
        size += len(json.dumps(item, ensure_ascii=False).encode()) + (2 if index else 0)
        if size > shape.max_bytes and index > 0:
            return {"targets": items[:index], "next": index}
    return {"targets": items}
