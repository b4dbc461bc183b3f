"""circumvention: does a VPN or proxy protocol's signature get through to a helper abroad?

Per target, one protocol (`params.circumvention.protocol`): the first packets of its handshake
(`probe.helper.signatures`) and, on a separate flow, printable neutral bytes of the same size
(the differential) are registered with the helper (a signed request) and sent to its probe port;
the helper answers nothing on that port and reports, signed, how many bytes of each arrived.

- the signature arrived intact (and, over TCP, the connection was not reset): ok;
- the signature died (lost, cut or reset) while the neutral bytes arrived: `protocol_blocked`;
- both died: the helper's probe port is not reachable from here: no technique, `down`.
Reachability of the signature only: no tunnel is set up and no VPN client is run.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field

from probe import failures
from probe.checks.base import Context
from probe.helper import wire
from probe.helper.client import (
    HelperClient,
    HelperError,
    choose,
    could_not_measure,
    no_helper,
)
from probe.helper.signatures import PROTOCOLS
from probe.model import CheckResult, Fault, Finding, Verdict
from probe.net import open_tcp, udp_socket
from probe.params import CircumventionParams as Params

NAME = "circumvention"
BLOCK_VERDICT = Verdict.PROTOCOL_BLOCKED  # what a timeout of this check means
SIGNATURE_LOST = "signature_lost"
SEND_INTERVAL = 0.2  # between copies of a UDP probe: a burst of loss takes one copy, not all
SETTLE_SECONDS = 0.5  # after the last bytes, before the helper is asked what arrived (a slow line's delay)


@dataclass
class ProbeRecord:
    kind: str  # "signature" | "neutral"
    size: int
    arrived_bytes: int = 0
    failure: str | None = None  # what the sending side saw (connect error, reset)
    copies: int = 1  # datagrams sent (UDP: several; whichever arrives counts)

    @property
    def intact(self) -> bool:
        return self.arrived_bytes == self.size and self.failure is None


@dataclass
class CircumventionEvidence:
    helper: str
    protocol: str
    transport: str
    probes: list[ProbeRecord] = field(default_factory=list)


async def run(ctx: Context, params: Params) -> object:
    started = time.monotonic()
    ref = choose(params.helper)
    if ref is None:
        return no_helper(NAME, started)
    transport, build = PROTOCOLS[params.protocol]
    signature = build(params.sni)
    neutral = wire.neutral_like(signature)
    evidence = CircumventionEvidence(ref.name, params.protocol, transport)
    client = HelperClient(ref, ctx.route, timeout=ctx.timeout)
    try:
        expected = await client.post(wire.API_EXPECT, {"transport": transport, "payloads": [_b64(signature), _b64(neutral)]})
        ident, port = _expectation(client, expected)
        address = await client.address()
        records = [ProbeRecord("signature", len(signature)), ProbeRecord("neutral", len(neutral))]
        send = _send_udp if transport == "udp" else _send_tcp
        await asyncio.gather(*(send(ctx, address, port, payload, record, params) for payload, record in zip((signature, neutral), records)))
        await asyncio.sleep(SETTLE_SECONDS)
        report = await client.post(wire.API_REPORT, {"id": ident})
        for record, arrived in zip(records, _arrived(client, report), strict=True):
            record.arrived_bytes = arrived
    except HelperError as failed:
        return could_not_measure(NAME, started, failed)
    evidence.probes = records
    failure, finding = judge(params.protocol, *records)
    return CheckResult(NAME, failure is None, failure, time.monotonic() - started, finding, evidence)


def _expectation(client: HelperClient, answer: dict[str, object]) -> tuple[str, int]:
    try:
        return str(answer["id"]), int(str(answer["port"]))
    except (KeyError, ValueError):
        raise client.malformed(wire.API_EXPECT) from None


def _arrived(client: HelperClient, answer: dict[str, object]) -> list[int]:
    arrived = answer.get("arrived")
    if not (isinstance(arrived, list) and len(arrived) == 2 and all(type(n) is int and n >= 0 for n in arrived)):
        raise client.malformed(wire.API_REPORT)
    return arrived


def judge(protocol: str, signature: ProbeRecord, neutral: ProbeRecord) -> tuple[str | None, Finding | None]:
    if signature.intact:
        return None, None
    seen = f"{signature.arrived_bytes} of {signature.size} bytes arrived" + (f", the sender saw {signature.failure}" if signature.failure else "")
    failure = signature.failure or SIGNATURE_LOST
    if neutral.intact:
        reason = f"the {protocol} handshake's first packet died on the way ({seen}) while neutral bytes of the same size arrived"
        return failure, Finding(Verdict.PROTOCOL_BLOCKED, Fault.PATH, "neutral_bytes", reason)
    reason = f"neither the {protocol} signature ({seen}) nor neutral bytes ({neutral.arrived_bytes} of {neutral.size}) reached the helper"
    return failure, Finding(Verdict.PROTOCOL_BLOCKED, Fault.UNSEPARATED, "neutral_bytes", reason)


async def _send_udp(ctx: Context, address: str, port: int, payload: bytes, record: ProbeRecord, params: Params) -> None:
    """`params.sends` copies, SEND_INTERVAL apart: on a lossy line one of them arrives (the helper
    reports the longest intact one), so a lost datagram is not a dead signature."""
    try:
        sock = udp_socket(ctx.route, address, port)
    except OSError as exc:
        record.failure = failures.classify(exc)
        return
    record.copies = params.sends
    try:
        for copy in range(params.sends):
            if copy:
                await asyncio.sleep(SEND_INTERVAL)
            try:
                sock.send(payload)
            except OSError:
                pass  # ICMP from an earlier send: keep trying, the helper's count decides
    finally:
        sock.close()


async def _send_tcp(ctx: Context, address: str, port: int, payload: bytes, record: ProbeRecord, params: Params) -> None:
    writer = None
    try:
        async with asyncio.timeout(ctx.timeout):
            reader, writer = await open_tcp(ctx.route, address, port)
        writer.write(payload)
        await writer.drain()
        try:
            async with asyncio.timeout(params.hold_seconds):
                await reader.read(1)  # the helper sends nothing: EOF when it has read, a reset if cut
        except TimeoutError:
            pass
    except Exception as exc:  # noqa: BLE001 - connect refused, reset, timeout: the sender's side of the evidence
        record.failure = failures.classify(exc)
    finally:
        if writer is not None:
            writer.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
