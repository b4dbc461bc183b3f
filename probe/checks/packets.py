"""Packets and bytes each way on a TCP connection, from the kernel (Linux TCP_INFO).

Freezes in 2026 are counted in packets, both directions (ENDPOINTS.md, "the freeze in packets"):
a byte count alone cannot say whether an upload or a download tripped one. Read where a transfer
ends or stalls, before the connection closes. Through a SOCKS5 proxy these are the counts of the
connection to the proxy.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

from probe.model import PacketCounts

# Offsets in linux/tcp.h struct tcp_info (stable ABI: fields are only ever appended).
_BYTES_ACKED = 120  # u64 tcpi_bytes_acked, tcpi_bytes_received after it (Linux 4.1)
_SEGS = 136  # u32 tcpi_segs_out, tcpi_segs_in (Linux 4.2)
_DATA_SEGS = 152  # u32 tcpi_data_segs_in, tcpi_data_segs_out (Linux 4.6)
_UNACKED = 24  # u32 tcpi_unacked: our segments in flight
_NOTSENT = 144  # u32 tcpi_notsent_bytes: in the socket, not yet sent (Linux 4.6)
_SIZE = 160
# States in which the peer's FIN has arrived: the kernel counts the FIN in bytes_received.
_FIN_RECEIVED = frozenset({6, 8, 9, 11})  # TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING


class PacketCounter:
    """Reads a connection's counts from a duplicate of its descriptor, so that they are still
    there when asyncio has closed the connection (a server's close after its answer does);
    `close()` when done."""

    __slots__ = ("_sock",)

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    def attach(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_INFO") and self._sock is None:
            try:
                self._sock = socket.socket(fileno=os.dup(sock.fileno()))
            except OSError:
                self._sock = None

    def read(self) -> PacketCounts | None:
        """The counts now, or None where the kernel does not give them."""
        if self._sock is None:
            return None
        try:
            return parse(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _SIZE))
        except OSError:
            return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def unsent_or_unacked(writer: asyncio.StreamWriter) -> bool | None:
    """Is any of what we wrote still waiting: in asyncio's buffer, in the socket unsent, or
    sent and not acknowledged? None where the kernel does not say."""
    if writer.transport.get_write_buffer_size() > 0:
        return True
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _SIZE)
    except OSError:
        return None
    if len(info) < _NOTSENT + 4:
        return None
    unacked: int = struct.unpack_from("<I", info, _UNACKED)[0]
    notsent: int = struct.unpack_from("<I", info, _NOTSENT)[0]
    return unacked > 0 or notsent > 0


def parse(info: bytes) -> PacketCounts | None:
    if len(info) < _SEGS + 8:
        return None
    acked, received = struct.unpack_from("<QQ", info, _BYTES_ACKED)
    segs_out, segs_in = struct.unpack_from("<II", info, _SEGS)
    if info[0] in _FIN_RECEIVED:
        received = max(received - 1, 0)
    counts = PacketCounts(segs_out, segs_in, acked, received)
    if len(info) >= _DATA_SEGS + 8:
        counts.data_segs_in, counts.data_segs_out = struct.unpack_from("<II", info, _DATA_SEGS)
    return counts
