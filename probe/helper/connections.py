"""The helper's open TCP connections (API, probe catchers, bulk), capped per source address and
in all. A connection over a cap is reset as soon as it is accepted, before anything is read
from it: a slowloris from one address holds at most `connections_per_client` slots (each for
at most the head-read deadline) and everyone else is still served. The total is kept under the
descriptor limit, so the helper never runs out of descriptors (asyncio then logs every failed
`accept()`, with a traceback, in a tight loop)."""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
from collections import Counter

_DESCRIPTOR_SHARE = 2  # at most half the descriptors for connections: the rest for measurements, files, UDP


def connection_cap(configured: int, soft_limit: int | None = None) -> int:
    """The configured cap on open connections, lowered to what the descriptor limit carries."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, soft_limit // _DESCRIPTOR_SHARE))


class ConnectionGate:
    def __init__(self, per_client: int, total: int):
        self.per_client, self.total = per_client, total
        self._open: Counter[str] = Counter()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def admit(self, client: str) -> str | None:
        """Take a slot for a new connection from `client`, or say why not."""
        if self._count >= self.total:
            return "connections_full"
        if self._open[client] >= self.per_client:
            return "too_many_connections"
        self._open[client] += 1
        self._count += 1
        return None

    def release(self, client: str) -> None:
        self._count -= 1
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]  # the table holds only clients with open connections


def reset(writer: asyncio.StreamWriter) -> None:
    """Close at once with a TCP reset: no FIN handshake, no TIME_WAIT kept on the helper's side."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
