"""whatsapp_chat: WhatsApp's chat endpoints, with OONI's semantics, and what happens after connect.

The app tries `e1` … `e16.whatsapp.net` on 443 and 5222 until one connects (OONI ts-018).
Connecting is not enough to call a host working: on each port that connected, a fresh
connection sends the chat protocol's first bytes (the Noise prologue `WA…` and a ClientHello
with a random ephemeral key), waits for the server's first bytes, then stays open
`hold_seconds`; when no answer comes, whether our bytes were ever acknowledged is kept (a
censor dropping them leaves them unacknowledged). probe.judge.whatsapp_chat reads the hosts.

With `hosts` (the OONI list) the check measures each host itself, DNS included, through the
runner's own step (`probe.checks.measure.measure` with the `dns` and `tcp` checks); without it,
it measures the target's own host, reusing what `dns` and `tcp` found when they ran before it.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from types import ModuleType

from probe import failures
from probe.checks import dns, tcp
from probe.checks.context import Context, Skip
from probe.checks.measure import measure
from probe.checks.observe import recorded, unacked_segments
from probe.model import ChatEvidence, ChatExchange, ChatHost, DNSEvidence, TCPEvidence
from probe.net import open_tcp
from probe.params import WhatsAppChatParams as Params

NAME = "whatsapp_chat"

__all__ = ["NAME", "Params", "client_hello", "exchange", "run"]


def client_hello(prologue: bytes, ephemeral: bytes | None = None) -> bytes:
    """Prologue, then one frame (3-byte big-endian length) holding the protobuf
    HandshakeMessage{clientHello: {ephemeral: 32 bytes}}."""
    ephemeral = os.urandom(32) if ephemeral is None else ephemeral
    hello = b"\x0a\x20" + ephemeral  # ClientHello.ephemeral (field 1, bytes)
    message = b"\x12" + bytes([len(hello)]) + hello  # HandshakeMessage.clientHello (field 2)
    return prologue + len(message).to_bytes(3, "big") + message


# --- one connection: first bytes, then hold --------------------------------------------------------


async def exchange(ctx: Context, address: str, port: int, params: Params) -> ChatExchange:
    outcome = ChatExchange(address, port)
    reply_timeout = ctx.bounded(params.reply_timeout)
    async with recorded(ctx, outcome, None, "connect") as operation:
        async with asyncio.timeout(ctx.bounded(params.step_timeout)):
            reader, writer = await open_tcp(ctx.route, address, port)
        operation.close_at_end(writer)
        if params.hello == "noise":
            outcome.stage = "first_bytes"
            operation.now("write")
            writer.write(client_hello(bytes.fromhex(params.prologue)))
            operation.now("read")
            try:
                async with asyncio.timeout(reply_timeout):
                    first = await reader.read(4096)
            except TimeoutError:
                _silence(ctx, writer, outcome)
                raise
            if not first:
                raise failures.Failure(failures.EOF, "closed before the server's first bytes")
            outcome.reply_bytes = len(first)
        outcome.stage = "hold"
        operation.now("read")
        hold_until = time.monotonic() + params.hold_seconds
        while (left := hold_until - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    chunk = await reader.read(4096)  # read and dropped: bounded memory
            except TimeoutError:
                break
            if not chunk:
                raise failures.Failure(failures.EOF, "closed while held open")
            outcome.reply_bytes += len(chunk)
        if params.hello == "none":
            _silence(ctx, writer, outcome)
        outcome.stage = "held"
    return outcome


def _silence(ctx: Context, writer: asyncio.StreamWriter, outcome: ChatExchange) -> None:
    """Record whether what we sent was ever acknowledged (not knowable through a proxy)."""
    if ctx.route.socks5 is None:
        outcome.unacked_segments = unacked_segments(writer)


# --- one host -------------------------------------------------------------------------------------


async def _exchanges(ctx: Context, connected: list[tuple[str, int]], params: Params) -> list[ChatExchange]:
    """One exchange per port that connected (its first connected address)."""
    chosen: dict[int, str] = {}
    for address, port in connected:
        chosen.setdefault(port, address)
    return list(await asyncio.gather(*(exchange(ctx, a, p, params) for p, a in chosen.items())))


def _host_record(host: str, sub: Context, exchanges: list[ChatExchange]) -> ChatHost:
    """What was observed of one host: its steps' evidence, then the exchanges."""
    record = ChatHost(host, list(sub.addresses), sub.addresses_from, exchanges=exchanges)
    for step in sub.results:
        if step.check == dns.NAME and isinstance(step.evidence, DNSEvidence):
            record.dns = step.evidence
            record.dns_failure = None if step.ok else step.failure
        elif step.check == tcp.NAME and isinstance(step.evidence, TCPEvidence):
            record.connects, record.control_connects = list(step.evidence.connects), step.evidence.control_connects
    return record


async def _measure_host(ctx: Context, host: str, params: Params) -> ChatHost:
    """DNS (unless pinned), TCP to every address:port, then the protocol on what connected."""
    sub = replace(
        ctx,
        target=ctx.target.model_copy(update={"host": host}),
        timeout=ctx.bounded(params.step_timeout),
        addresses=[],
        addresses_from="",
        connected=[],
        tls_endpoint=None,
        results=[],
    )
    if ctx.target.addresses:
        sub.addresses, sub.addresses_from = list(ctx.target.addresses), "pinned"
    elif sub.target.is_ip:
        sub.addresses, sub.addresses_from = [host], "pinned"
    else:
        await _step(dns, sub)
    if sub.addresses:
        await _step(tcp, sub)
    sub.timeout = ctx.timeout
    return _host_record(host, sub, await _exchanges(sub, sub.connected, params))


async def _step(module: ModuleType, ctx: Context) -> None:
    """The runner's step with the check's defaults (a skipped step counts as passed)."""
    await measure(ctx, module, module.Params())


# --- the check --------------------------------------------------------------------------------------


async def run(ctx: Context, params: Params) -> ChatEvidence:
    hosts = list(dict.fromkeys(params.hosts)) or [ctx.target.host]
    if hosts == [ctx.target.host] and ctx.result("tcp") is not None:
        # `dns` and `tcp` ran on this target already: their findings stand; add the protocol.
        if not ctx.connected:
            raise Skip("no TCP connection")
        records = [ChatHost(ctx.target.host, list(ctx.addresses), ctx.addresses_from, exchanges=await _exchanges(ctx, ctx.connected, params))]
    else:
        limit = asyncio.Semaphore(params.concurrency)

        async def one(host: str) -> ChatHost:
            async with limit:
                return await _measure_host(ctx, host, params)

        records = list(await asyncio.gather(*(one(h) for h in hosts)))
    return ChatEvidence(records)
