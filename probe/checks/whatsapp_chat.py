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

With `hosts` (the OONI list) the check measures each host itself, DNS included, with the
same judgement as the `dns` and `tcp` checks; without it, it measures the target's own host,
reusing what `dns` and `tcp` found when they ran before it.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any


from probe import failures, judge
from probe.model import TARGET_VERDICTS, TCPEvidence, to_json
from probe.checks import common, dns, tcp
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict
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


async def exchange(ctx: Context, address: str, port: int, params: Params) -> dict[str, Any]:
    outcome: dict[str, Any] = {"address": address, "port": port, "failure": None, "stage": "connect", "reply_bytes": 0}
    writer = None
    reply_timeout = common.phase_timeout(ctx, params.reply_timeout)
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(common.phase_timeout(ctx, params.step_timeout)):
                reader, writer = await open_tcp(ctx.route, address, port)
            if params.hello == "noise":
                outcome["stage"] = "first_bytes"
                writer.write(client_hello(bytes.fromhex(params.prologue)))
                try:
                    async with asyncio.timeout(reply_timeout):
                        first = await reader.read(4096)
                except TimeoutError:
                    _silence(ctx, writer, outcome)
                    raise
                if not first:
                    raise failures.Failure(failures.EOF, "closed before the server's first bytes")
                outcome["reply_bytes"] = len(first)
            outcome["stage"] = "hold"
            hold_until = time.monotonic() + params.hold_seconds
            while (left := hold_until - time.monotonic()) > 0:
                try:
                    async with asyncio.timeout(left):
                        chunk = await reader.read(4096)  # read and dropped: bounded memory
                except TimeoutError:
                    break
                if not chunk:
                    raise failures.Failure(failures.EOF, "closed while held open")
                outcome["reply_bytes"] += len(chunk)
            if params.hello == "none":
                _silence(ctx, writer, outcome)
            outcome["stage"] = "held"
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            outcome.update(failures.as_evidence(exc))
        finally:
            common.close_quietly(writer)
    outcome["duration_seconds"] = round(watch.seconds, 4)
    return outcome


def _silence(ctx: Context, writer: asyncio.StreamWriter, outcome: dict[str, Any]) -> None:
    """Record whether what we sent was ever acknowledged (not knowable through a proxy)."""
    if ctx.route.socks5 is None:
        unacked = common.unacked_segments(writer)
        if unacked is not None:
            outcome["unacked_segments"] = unacked


# --- one host -------------------------------------------------------------------------------------


async def _exchanges(ctx: Context, connected: list[tuple[str, int]], params: Params) -> list[dict[str, Any]]:
    """One exchange per port that connected (its first connected address)."""
    chosen: dict[int, str] = {}
    for address, port in connected:
        chosen.setdefault(port, address)
    return list(await asyncio.gather(*(exchange(ctx, a, p, params) for p, a in chosen.items())))


def _host_outcome(host: str, steps: list[CheckResult], exchanges: list[dict[str, Any]], ctx: Context) -> dict[str, Any]:
    outcome: dict[str, Any] = {"host": host, "addresses": ctx.addresses, "addresses_from": ctx.addresses_from}
    for step in steps:
        if step.check == "tcp":
            outcome["connects"] = to_json(step.evidence.connects) if isinstance(step.evidence, TCPEvidence) else []
        if step.check == "dns" and not step.ok:
            outcome["dns_failure"] = step.failure
    outcome["exchanges"] = exchanges
    failed = next((s for s in steps if not s.ok), None)
    if failed is not None:
        outcome.update(verdict=str(judge.target_verdict([failed])[0]), failure=failed.failure, stage=failed.check)
    elif not exchanges:
        outcome.update(verdict="down", failure=failures.TIMEOUT, stage="tcp")
    elif any(e["failure"] is None for e in exchanges):
        outcome.update(verdict="ok", failure=None)
    else:
        outcome.update(verdict=BLOCK_VERDICT, failure=common.most_common([e["failure"] for e in exchanges]), stage="protocol")
    return outcome


async def _measure_host(ctx: Context, host: str, params: Params) -> dict[str, Any]:
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
    steps: list[CheckResult] = []
    if ctx.target.addresses:
        sub.addresses, sub.addresses_from = list(ctx.target.addresses), "pinned"
    elif sub.target.is_ip:
        sub.addresses, sub.addresses_from = [host], "pinned"
    else:
        steps.append(await _step(dns, sub))
    if sub.addresses:
        steps.append(await _step(tcp, sub))
    sub.timeout = ctx.timeout
    return _host_outcome(host, steps, await _exchanges(sub, sub.connected, params), sub)


async def _step(module: Any, ctx: Context) -> CheckResult:
    """Run an engine check the way the runner does, bounded by its timeout."""
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(ctx.timeout * 3 + 1):
                result = await module.run(ctx, module.Params())
        except Skip:
            result = CheckResult(module.NAME, True, None, watch.seconds)
        except Exception as exc:  # noqa: BLE001 - a failing step is a host's evidence
            finding = Finding(module.BLOCK_VERDICT, Fault.MONITOR, "", "the step itself failed (a bug of msgreach)")
            result = CheckResult(module.NAME, False, failures.classify(exc), watch.seconds, finding)
    ctx.results.append(result)
    return result


# --- the check --------------------------------------------------------------------------------------


async def run(ctx: Context, params: Params) -> CheckResult:
    hosts = list(dict.fromkeys(params.hosts)) or [ctx.target.host]
    with Stopwatch() as watch:
        if hosts == [ctx.target.host] and ctx.result("tcp") is not None:
            # `dns` and `tcp` ran on this target already: their verdicts stand; add the protocol.
            if not ctx.connected:
                raise Skip("no TCP connection")
            outcomes = [_host_outcome(ctx.target.host, [], await _exchanges(ctx, ctx.connected, params), ctx)]
        else:
            limit = asyncio.Semaphore(params.concurrency)

            async def one(host: str) -> dict[str, Any]:
                async with limit:
                    return await _measure_host(ctx, host, params)

            outcomes = list(await asyncio.gather(*(one(h) for h in hosts)))

    working = [o["host"] for o in outcomes if o["verdict"] == "ok"]
    evidence: dict[str, Any] = {
        "hosts": outcomes,
        "working_hosts": len(working),
        "blocked_hosts": [o["host"] for o in outcomes if o["verdict"] not in ("ok", "down")],
    }
    if working:
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    judged = [o for o in outcomes if o["verdict"] != "down"] or outcomes
    verdicts = [o["verdict"] for o in judged]
    # The most common reason among the hosts; ties go to the worse verdict.
    verdict = min(set(verdicts), key=lambda v: (-verdicts.count(v), TARGET_VERDICTS.index(v) if v in TARGET_VERDICTS else 99))
    failure = common.most_common([o["failure"] for o in judged if o["verdict"] == verdict])
    if verdict == Verdict.PROTOCOL_BLOCKED:
        finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.PATH, "transport", "TCP connects, the chat protocol dies after its first bytes")
    elif verdict == Verdict.DOWN:
        finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.SERVER, "", "no host answered, and nothing singles out the path")
    elif verdict == Verdict.ERROR:
        finding = Finding(Verdict.PROTOCOL_BLOCKED, Fault.MONITOR, "", "the monitor could not measure")
    else:
        finding = Finding(Verdict(verdict), Fault.PATH if verdict != Verdict.IP_BLOCKED else Fault.UNSEPARATED, "per_host_stages", "as judged host by host")
    return CheckResult(NAME, False, failure, watch.seconds, finding, evidence)
