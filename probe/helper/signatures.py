"""The first packets of VPN and proxy handshakes, as their clients send them (the `circumvention`
check sends them to a helper). Fields a real client fills with keys or MACs are random here:
a censor's classifier sees the same structure, sizes and entropy; no tunnel is ever set up.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable


def wireguard_initiation() -> bytes:
    """Handshake initiation (type 1): sender index, ephemeral key, encrypted static and timestamp,
    mac1, mac2 — 148 bytes, over UDP."""
    return struct.pack("<I", 1) + os.urandom(4 + 32 + 48 + 28 + 16) + bytes(16)  # mac2 zero without a cookie


def openvpn_hard_reset() -> bytes:
    """P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7, key id 0) over UDP without tls-auth: session id,
    an empty ack array, packet id 0."""
    return bytes([7 << 3]) + os.urandom(8) + b"\x00" + struct.pack("!I", 0)


def shadowsocks_stream(size: int = 221) -> bytes:
    """A Shadowsocks-style opening: salt and AEAD chunks, indistinguishable from random. The first
    byte is kept non-ASCII so the known printable-prefix exemption (GFW 2023) never applies."""
    data = bytearray(os.urandom(size))
    data[0] |= 0x80
    return bytes(data)


def client_hello(sni: str, total: int | None = None) -> bytes:
    """A TLS 1.3 ClientHello in one record with a browser's shape (VLESS/Reality borrows a real
    site's name); `total` pads the record to that many bytes (Telegram's fake-TLS: 517)."""
    name = sni.encode()
    extensions = [
        _ext(0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),
        _ext(0x0017, b""),
        _ext(0xFF01, b"\x00"),
        _ext(0x000A, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018)),
        _ext(0x000B, b"\x01\x00"),
        _ext(0x0010, b"\x00\x0c\x02h2\x08http/1.1"),
        _ext(0x000D, struct.pack("!H", 8) + struct.pack("!HHHH", 0x0403, 0x0804, 0x0401, 0x0503)),
        _ext(0x002B, b"\x04\x03\x04\x03\x03"),
        _ext(0x002D, b"\x01\x01"),
        _ext(0x0033, struct.pack("!HHH", 36, 0x001D, 32) + os.urandom(32)),
    ]
    suites = struct.pack("!8H", 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9)
    def hello(exts: list[bytes]) -> bytes:
        body = b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
        blob = b"".join(exts)
        body += struct.pack("!H", len(blob)) + blob
        handshake = b"\x01" + len(body).to_bytes(3, "big") + body
        return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake
    record = hello(extensions)
    if total is not None and len(record) < total:
        padding = total - len(record) - 4
        record = hello([*extensions, _ext(0x0015, bytes(max(padding, 0)))])
    return record


def _ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


# protocol -> (transport, builder(sni))
PROTOCOLS: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "wireguard": ("udp", lambda sni: wireguard_initiation()),
    "openvpn": ("udp", lambda sni: openvpn_hard_reset()),
    "shadowsocks": ("tcp", lambda sni: shadowsocks_stream()),
    "vless_reality": ("tcp", lambda sni: client_hello(sni)),
    "mtproxy_faketls": ("tcp", lambda sni: client_hello(sni, total=517)),
}
