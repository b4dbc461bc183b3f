"""circumvention: does a VPN or proxy protocol's signature get through to a helper abroad?

Per target, one protocol (`params.circumvention.protocol`): the first packets of its handshake
(`probe.helper.signatures`) and, on a separate flow, printable neutral bytes of the same size
(the differential) are registered with the helper (a signed request) and sent to its probe port;
the helper answers nothing on that port and reports, signed, how many bytes of each arrived.
Reachability of the signature only: no tunnel is set up and no VPN client is run.
probe.judge.circumvention reads what arrived.
"""

from __future__ import annotations

import asyncio
import base64
import socket

from probe.checks.context import Context
from probe.checks.observe import recorded
from probe.checks.via_helper import via_helper
from probe.helper import wire
from probe.helper.client import HelperClient
from probe.helper.signatures import PROTOCOLS
from probe.model import CircumventionEvidence, HelperExchange, NoHelper, SignatureProbe
from probe.net import open_tcp, udp_socket
from probe.params import CircumventionParams as Params

NAME = "circumvention"
SEND_INTERVAL = 0.2  # between copies of a UDP probe: a burst of loss takes one copy, not all
SETTLE_SECONDS = 0.5  # after the last bytes, before the helper is asked what arrived (a slow line's delay)


async def run(ctx: Context, params: Params) -> CircumventionEvidence | HelperExchange | NoHelper:
    return await via_helper(ctx, params.helper, lambda client: _measure(ctx, client, params))


async def _measure(ctx: Context, client: HelperClient, params: Params) -> CircumventionEvidence:
    transport, build = PROTOCOLS[params.protocol]
    signature = build(params.sni)
    neutral = wire.neutral_like(signature)
    expected = await client.post(wire.API_EXPECT, {"transport": transport, "payloads": [_b64(signature), _b64(neutral)]})
    ident, port = _expectation(client, expected)
    address = await client.address()
    probes = [SignatureProbe("signature", len(signature)), SignatureProbe("neutral", len(neutral))]
    send = _send_udp if transport == "udp" else _send_tcp
    await asyncio.gather(*(send(ctx, address, port, payload, probe, params) for payload, probe in zip((signature, neutral), probes, strict=True)))
    await asyncio.sleep(SETTLE_SECONDS)
    report = await client.post(wire.API_REPORT, {"id": ident})
    for probe, arrived in zip(probes, _arrived(client, report), strict=True):
        probe.arrived_bytes = arrived
    return CircumventionEvidence(client.ref.name, params.protocol, transport, probes)


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


async def _send_udp(ctx: Context, address: str, port: int, payload: bytes, probe: SignatureProbe, params: Params) -> None:
    """`params.sends` copies, SEND_INTERVAL apart: on a lossy line one of them arrives (the helper
    reports the longest intact one), so a lost datagram is not a dead signature."""
    sock: socket.socket | None = None
    async with recorded(ctx, probe, None, "connect") as operation:
        sock = udp_socket(ctx.route, address, port)
        operation.now("write")
        probe.copies = params.sends
        for copy in range(params.sends):
            if copy:
                await asyncio.sleep(SEND_INTERVAL)
            try:
                sock.send(payload)
            except OSError:
                pass  # ICMP from an earlier send: keep trying, the helper's count decides
    if sock is not None:
        sock.close()


async def _send_tcp(ctx: Context, address: str, port: int, payload: bytes, probe: SignatureProbe, params: Params) -> None:
    async with recorded(ctx, probe, None, "connect") as operation:
        async with asyncio.timeout(ctx.timeout):
            reader, writer = await open_tcp(ctx.route, address, port)
        operation.close_at_end(writer)
        operation.now("write")
        writer.write(payload)
        await writer.drain()
        operation.now("read")
        try:
            async with asyncio.timeout(params.hold_seconds):
                await reader.read(1)  # the helper sends nothing: EOF when it has read, a reset if cut
        except TimeoutError:
            pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
