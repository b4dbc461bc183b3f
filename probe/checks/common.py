"""Helpers the protocol checks share (mtproto, whatsapp_chat, quic, stun, throughput).

Not a check: it has no `NAME` and is not in the registry.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from probe.checks import tcp
from probe.checks.tcp import most_common  # noqa: F401 - the protocol checks' helper too
from probe.checks.base import CheckResult, Context

# struct tcp_info (linux/tcp.h): 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, …
_TCP_INFO_UNACKED = 24


def expected_addresses(ctx: Context) -> list[str]:
    """The addresses to measure: what `dns` found, else the pinned ones, else the host itself
    when it is an address (a target may list no `dns` check: Telegram's data centres)."""
    if not ctx.addresses:
        if ctx.target.addresses:
            ctx.addresses, ctx.addresses_from = list(ctx.target.addresses), "pinned"
        elif ctx.target.is_ip:
            ctx.addresses, ctx.addresses_from = [ctx.target.host], "pinned"
    return ctx.addresses


def endpoints(ctx: Context) -> list[tuple[str, int]]:
    """Where to speak a TCP protocol: where the `tcp` check connected when it ran (a failed
    connect there is already its evidence), else every expected address:port."""
    if ctx.result("tcp") is not None:
        return list(ctx.connected)
    expected_addresses(ctx)
    return tcp.endpoints(ctx)


def udp_endpoints(ctx: Context) -> list[tuple[str, int]]:
    """Every expected address:port, with the same per-family limits as `tcp`."""
    expected_addresses(ctx)
    return tcp.endpoints(ctx)


def control_checks(ctx: Context, check: str, name: str | None = None) -> list[tuple[str, CheckResult]]:
    """This round's results of `check` on the control targets (optionally one named control)."""
    found = []
    for control_name, control in ctx.facts.controls.items():
        if name is not None and control_name != name:
            continue
        for result in control.checks:
            if result.check == check:
                found.append((control_name, result))
    return found


def phase_timeout(ctx: Context, limit: float) -> float:
    """One operation's bound: the check's configured timeout, or the check's own (shorter) limit."""
    return min(ctx.timeout, limit) if ctx.timeout > 0 else limit


def unacked_segments(writer: asyncio.StreamWriter) -> int | None:
    """Segments we sent that the peer has not acknowledged (Linux TCP_INFO), or None if unknown.

    After a few seconds, data still unacknowledged means the path drops our packets: the
    signature of a censor that lets the handshake through and drops what follows."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < _TCP_INFO_UNACKED + 4:
        return None
    return struct.unpack_from("<I", info, _TCP_INFO_UNACKED)[0]


def close_quietly(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - closing a broken transport may raise; nothing to report
            pass
