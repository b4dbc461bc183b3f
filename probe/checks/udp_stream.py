"""udp_stream: a call-like UDP stream to a helper abroad, echoed back (calls; docs/helper.md).

After a STUN-shaped opening, RTP-sized packets (default 172 bytes) at a voice rate (default 50
per second) for `duration_seconds`; the helper echoes each authenticated datagram once, never
larger. At the same time a control stream of the same sizes and rate carries neutral bytes (no
STUN cookie, no RTP header) on its own socket: the differential. Evidence per stream: loss per
second of sending, when the stream was cut (the start of a loss run that reaches the end and
lasts at least a second), interarrival jitter (RFC 3550) and round-trip time. probe.judge.udp_stream
reads the two streams.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from probe.checks.context import Context
from probe.checks.observe import recorded
from probe.checks.via_helper import via_helper
from probe.helper import wire
from probe.helper.auth import session_key
from probe.helper.client import HelperClient
from probe.model import EchoedStream, HelperExchange, NoHelper, SecondBucket, UDPStreamEvidence
from probe.net import udp_socket
from probe.params import UDPStreamParams as Params

NAME = "udp_stream"
LATE_FACTOR = 4  # echoes still coming after the grace period are waited for, up to this many graces
LATE_QUIET_SECONDS = 0.3  # ...as long as one came within this long


@dataclass(frozen=True)
class _Session:
    session: bytes
    port: int


async def run(ctx: Context, params: Params) -> UDPStreamEvidence | HelperExchange | NoHelper:
    return await via_helper(ctx, params.helper, lambda client: _measure(ctx, client, params))


async def _measure(ctx: Context, client: HelperClient, params: Params) -> UDPStreamEvidence:
    size = params.packet_size - params.packet_size % 4
    count = max(2, round(params.duration_seconds * params.packets_per_second))
    # both sessions at once, each on its own connection: one round trip of the round's time
    opened = await asyncio.gather(*(client.post(wire.API_STREAM, {"packets": count, "size": size}) for _ in range(2)), return_exceptions=True)
    call_session, control_session = (_session(client, answer) for answer in opened)
    address = await client.address()
    call, control = await asyncio.gather(
        _stream("call", ctx, address, call_session, client.secret, count, size, params),
        _stream("control", ctx, address, control_session, client.secret, count, size, params),
    )
    return UDPStreamEvidence(client.ref.name, params.packets_per_second, size, params.duration_seconds, call, control, params.loss_floor)


def _session(client: HelperClient, answer: dict[str, object] | BaseException) -> _Session:
    if isinstance(answer, BaseException):
        raise answer  # the line's (HelperError), or not (the runner's bound and bug handling take it)
    try:
        return _Session(bytes.fromhex(str(answer["session"])), int(str(answer["port"])))
    except (KeyError, ValueError, TypeError):
        raise client.malformed(wire.API_STREAM) from None


async def _stream(kind: str, ctx: Context, address: str, opened: _Session, secret: bytes, count: int, size: int, params: Params) -> EchoedStream:
    record = EchoedStream(kind)
    sent_at: list[float] = [0.0] * count
    echoed_at: list[float | None] = [None] * count
    started = 0.0
    async with recorded(ctx, record, None, "connect") as operation:  # no socket: the stream's failure
        sock = udp_socket(ctx.route, address, port=opened.port)
        operation.now("write")
        started = await _send_and_listen(kind, sock, opened, session_key(secret, opened.session), sent_at, echoed_at, size, params)
    if started:
        _summarise(record, sent_at, [None if t is None else t - started for t in echoed_at], params.packets_per_second)
    return record


async def _send_and_listen(kind: str, sock: socket.socket, opened: _Session, key: bytes, sent_at: list[float], echoed_at: list[float | None],
                           size: int, params: Params) -> float:
    """Send the stream's packets at their times, take the helper's echoes meanwhile and for the
    grace period after (late ones too, see `_late_echoes`); returns when sending began."""
    session, count = opened.session, len(sent_at)
    interval = 1.0 / params.packets_per_second
    loop = asyncio.get_running_loop()
    ssrc = int.from_bytes(os.urandom(4), "big")
    last_echo = [0.0]

    def accept(data: bytes, now: float) -> None:
        datagram = wire.split(data)
        if datagram is None or datagram.session != session or datagram.seq >= count or echoed_at[datagram.seq] is not None:
            return
        if data != wire.seal(key, session, datagram.seq, datagram.body, wire.DOWN):
            return  # not the helper's (an injected or mangled datagram)
        echoed_at[datagram.seq] = last_echo[0] = now

    async def receive() -> None:
        while True:
            try:
                data = await loop.sock_recv(sock, wire.MAX_PACKET + 64)
            except (ConnectionRefusedError, OSError):  # ICMP from the path: keep listening
                await asyncio.sleep(interval)
                continue
            accept(data, time.monotonic())

    receiver = asyncio.create_task(receive())
    start = time.monotonic()
    try:
        for seq in range(count):
            delay = start + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == "call":
                body = wire.stun_opening_body(size) if seq == 0 else wire.rtp_body(seq, ssrc, seq * 960, size)
            else:
                body = wire.neutral_body(size)
            sent_at[seq] = time.monotonic() - start
            try:
                sock.send(wire.seal(key, session, seq, body))
            except (BlockingIOError, ConnectionRefusedError, OSError):
                pass  # counted as lost
        await _late_echoes(params.grace_seconds, lambda: last_echo[0])
    finally:
        receiver.cancel()
        try:
            await receiver
        except asyncio.CancelledError:
            pass
        _drain(sock, accept)  # echoes that arrived in time but a busy loop had not read yet
        sock.close()
    return start


async def _late_echoes(grace: float, last_echo: Callable[[], float]) -> None:
    """Wait `grace` after the last packet, and longer while echoes still come in (a helper that
    paused, busy with a control measurement, answers late, not never: its queued echoes are not a
    cut), at most LATE_FACTOR × grace. A cut stream's echoes stopped long before: no wait added."""
    now = time.monotonic()
    end, limit = now + grace, now + grace * LATE_FACTOR
    while True:
        await asyncio.sleep(max(end - time.monotonic(), 0))
        now = time.monotonic()
        if now >= limit or now - last_echo() > LATE_QUIET_SECONDS:
            return
        end = min(limit, now + LATE_QUIET_SECONDS)


def _drain(sock: socket.socket, accept: Callable[[bytes, float], None]) -> None:
    now = time.monotonic()
    for _ in range(100_000):
        try:
            accept(sock.recv(wire.MAX_PACKET + 64), now)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue  # a queued ICMP error; datagrams may follow


def _summarise(record: EchoedStream, sent_at: list[float], echoed_at: list[float | None], pps: int) -> None:
    count = len(sent_at)
    record.sent = count
    record.echoed = sum(t is not None for t in echoed_at)
    record.loss_ratio = round(1 - record.echoed / count, 4)
    record.opening_answered = echoed_at[0] is not None
    seconds = int(sent_at[-1]) + 1
    buckets = [SecondBucket(s, 0, 0) for s in range(seconds)]
    for sent, echoed in zip(sent_at, echoed_at, strict=True):
        bucket = buckets[min(int(sent), seconds - 1)]
        bucket.sent += 1
        bucket.echoed += echoed is not None
    record.buckets = buckets
    last = max((i for i, t in enumerate(echoed_at) if t is not None), default=-1)
    tail = count - 1 - last  # packets after the last echoed one: all lost
    if tail >= max(pps, 2) and tail >= 0.05 * count:
        record.cut_after_seconds = round(sent_at[last + 1], 2)
    rtts = [e - s for s, e in zip(sent_at, echoed_at, strict=True) if e is not None]
    if rtts:
        record.rtt_ms = round(statistics.median(rtts) * 1000, 2)
        jitter = 0.0
        for previous, current in itertools.pairwise(rtts):  # RFC 3550 6.4.1, on round-trip transit
            jitter += (abs(current - previous) - jitter) / 16
        record.jitter_ms = round(jitter * 1000, 2)
