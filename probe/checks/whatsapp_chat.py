"""whatsapp_chat: WhatsApp's chat endpoints, with OONI's semantics, and what happens after connect.

The app tries `e1` … `e16.whatsapp.net` on 443 and 5222 until one connects (OONI ts-018), so:
- a host counts as blocked only when neither of its ports works (ooni/probe#2383);
- the endpoints are reachable when any one host works.
Connecting is not enough to call a host working: on each port that connected, a fresh
connection sends the chat protocol's first bytes (the Noise prologue `WA…` and a ClientHello
with a random ephemeral key), waits for the server's first bytes, then stays open
`hold_seconds`. A reset or close in that window (after the first bytes: a censor that lets the
handshake through and cuts what follows), or our bytes never being acknowledged (packets
silently dropped), fails the host with `protocol_blocked`.

With `hosts` (the OONI list) the check measures each host itself, DNS included, through the
runner's own step (`probe.checks.step.run_check` with the `dns` and `tcp` checks); without it, it
measures the target's own host, reusing what `dns` and `tcp` found when they ran before it.

The differential is the transport: a host whose TCP connect succeeded and whose chat exchange
was then reset, cut or left unacknowledged argues `protocol_blocked` on the path. A host that
failed at DNS or TCP carries that step's Finding; the check states the most common among the
hosts (ties to the worse technique).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any

from probe import failures, judge
from probe.checks import common, dns, tcp
from probe.checks.base import Context, Skip, Stopwatch
from probe.checks.step import run_check
from probe.model import (
    SERVICE_VERDICTS,
    ChatEvidence,
    ChatExchange,
    ChatHost,
    CheckResult,
    Fault,
    Finding,
    TCPEvidence,
    Verdict,
)
from probe.net import open_tcp
from probe.params import WhatsAppChatParams as Params

NAME = "whatsapp_chat"
BLOCK_VERDICT = Verdict.PROTOCOL_BLOCKED  # what a timeout of this check means



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
    writer = None
    reply_timeout = common.phase_timeout(ctx, params.reply_timeout)
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(common.phase_timeout(ctx, params.step_timeout)):
                reader, writer = await open_tcp(ctx.route, address, port)
            if params.hello == "noise":
                outcome.stage = "first_bytes"
                writer.write(client_hello(bytes.fromhex(params.prologue)))
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
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            found = failures.as_evidence(exc)
            outcome.failure, outcome.detail = found["failure"], found.get("detail")
        finally:
            common.close_quietly(writer)
    outcome.duration_seconds = round(watch.seconds, 4)
    return outcome


def _silence(ctx: Context, writer: asyncio.StreamWriter, outcome: ChatExchange) -> None:
    """Record whether what we sent was ever acknowledged (not knowable through a proxy)."""
    if ctx.route.socks5 is None:
        outcome.unacked_segments = common.unacked_segments(writer)


# --- one host -------------------------------------------------------------------------------------


async def _exchanges(ctx: Context, connected: list[tuple[str, int]], params: Params) -> list[ChatExchange]:
    """One exchange per port that connected (its first connected address)."""
    chosen: dict[int, str] = {}
    for address, port in connected:
        chosen.setdefault(port, address)
    return list(await asyncio.gather(*(exchange(ctx, a, p, params) for p, a in chosen.items())))


def _host_outcome(host: str, steps: list[CheckResult], exchanges: list[ChatExchange], ctx: Context) -> ChatHost:
    outcome = ChatHost(host, list(ctx.addresses), ctx.addresses_from, exchanges=exchanges)
    for step in steps:
        if step.check == tcp.NAME:
            outcome.connects = list(step.evidence.connects) if isinstance(step.evidence, TCPEvidence) else None
        if step.check == dns.NAME and not step.ok:
            outcome.dns_failure = step.failure
    failed = next((s for s in steps if not s.ok), None)
    if failed is not None:
        outcome.failure, outcome.stage = failed.failure, failed.check
        outcome.finding = failed.finding
    elif not exchanges:
        outcome.failure, outcome.stage = failures.TIMEOUT, "tcp"
        outcome.finding = Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", "no port connected")
    elif all(e.failure is not None for e in exchanges):
        outcome.failure, outcome.stage = common.most_common([e.failure for e in exchanges]), "protocol"
        stages = ", ".join(sorted({e.stage for e in exchanges}))
        if all(e.unacked_segments == 0 and e.failure == failures.TIMEOUT for e in exchanges):
            # Our bytes were acknowledged by the server's side, which then said nothing: a silent
            # server (a censor dropping them would leave them unacknowledged).
            outcome.finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.SERVER, "transport", "the server acknowledged our first bytes and never answered")
        elif all(e.failure in failures.INTERFERENCE for e in exchanges):
            reason = f"TCP connected, then the chat exchange failed ({outcome.failure}, at {stages})"
            outcome.finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.PATH, "transport", reason)
        else:
            outcome.finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.SERVER, "transport", f"the server answered the chat opening with {outcome.failure}")
    if outcome.finding is not None:
        # The judge's word for this host alone, for people reading the evidence.
        outcome.verdict = str(judge.target_verdict([CheckResult(NAME, False, outcome.failure, 0.0, outcome.finding)])[0])
    return outcome


async def _measure_host(ctx: Context, host: str, params: Params) -> ChatHost:
    """DNS (unless pinned), TCP to every address:port, then the protocol on what connected."""
    sub = replace(
        ctx,
        target=ctx.target.model_copy(update={"host": host}),
        timeout=common.phase_timeout(ctx, params.step_timeout),
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
    steps = list(sub.results)
    sub.timeout = ctx.timeout
    return _host_outcome(host, steps, await _exchanges(sub, sub.connected, params), sub)


async def _step(module: Any, ctx: Context) -> None:
    """The runner's step with the check's defaults (a skipped step counts as passed)."""
    await run_check(ctx, module, module.Params())


# --- the check --------------------------------------------------------------------------------------


async def run(ctx: Context, params: Params) -> CheckResult:
    hosts = list(dict.fromkeys(params.hosts)) or [ctx.target.host]
    with Stopwatch() as watch:
        if hosts == [ctx.target.host] and ctx.result("tcp") is not None:
            # `dns` and `tcp` ran on this target already: their findings stand; add the protocol.
            if not ctx.connected:
                raise Skip("no TCP connection")
            outcomes = [_host_outcome(ctx.target.host, [], await _exchanges(ctx, ctx.connected, params), ctx)]
        else:
            limit = asyncio.Semaphore(params.concurrency)

            async def one(host: str) -> ChatHost:
                async with limit:
                    return await _measure_host(ctx, host, params)

            outcomes = list(await asyncio.gather(*(one(h) for h in hosts)))

    working = [o.host for o in outcomes if o.finding is None]
    evidence = ChatEvidence(outcomes, len(working), [o.host for o in outcomes if o.verdict not in ("ok", "down", "error")])
    if working:
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    # Hosts whose failure argues something about the path first; the others only if none does.
    judged = [o for o in outcomes if o.verdict not in ("down", "error")] or outcomes
    labels = [o.verdict for o in judged]
    # The most common argument among the hosts; ties go to the worse technique.
    chosen = min(set(labels), key=lambda v: (-labels.count(v), SERVICE_VERDICTS.index(Verdict(v))))
    picked = [o for o in judged if o.verdict == chosen]
    failure = common.most_common([o.failure for o in picked])
    first = next(o.finding for o in picked if o.failure == failure)
    assert first is not None
    reason = f"{len(picked)} of {len(outcomes)} hosts: {first.reason}" if len(outcomes) > 1 else first.reason
    return CheckResult(NAME, False, failure, watch.seconds, Finding(first.technique, first.fault, first.differential, reason), evidence)
