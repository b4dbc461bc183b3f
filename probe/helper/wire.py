"""What travels between a monitor and a helper: API paths and the datagram formats.

A stream datagram is `body + trailer`; the trailer is the session id (8 bytes), the sequence
number (4) and an HMAC-SHA256 (32) under the session key over direction, sequence and body.
The helper's echo has exactly the size of what it answers (never more bytes than it was sent).

Bodies: the opening of a call stream is a STUN Binding Request whose last attribute (0x8030,
comprehension-optional) holds the trailer, so the whole datagram is a well-formed STUN message;
then RTP packets (version 2, Opus payload type 111). The control stream has the same sizes and
rate with neutral bytes (no STUN magic cookie, no RTP version bits).
"""

from __future__ import annotations

import os
import secrets
import struct
from dataclasses import dataclass

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
    return kind == STUN_BINDING_REQUEST and cookie == STUN_MAGIC


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


def printable(size: int) -> bytes:
    """Neutral bytes for the circumvention differential: printable ASCII, which the entropy and
    signature rules of known censors exempt."""
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
    return bytes(alphabet[b % len(alphabet)] for b in os.urandom(size))
