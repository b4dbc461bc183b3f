"""helper_transfer: is a 16–20 KB freeze keyed on the address or on the name? (docs/helper.md)

Three bulk downloads from a helper abroad, one after the other (they share the line), each on a
fresh connection: plain TCP (the baseline: the path to the helper works), TLS with a decoy SNI,
and TLS with the target's own name as SNI. A transfer that gets no byte for `stall_seconds` froze
(`stalled`, where: `stalled_at_bytes`). probe.judge.helper_transfer compares the three.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time

from probe import failures
from probe.checks.context import Context
from probe.checks.observe import recorded
from probe.checks.via_helper import via_helper
from probe.config import is_ip_literal
from probe.helper import bulk, wire
from probe.helper.client import HelperClient
from probe.model import BulkTransfer, HelperExchange, HelperTransferEvidence, NoHelper
from probe.net import open_tcp
from probe.params import HelperTransferParams as Params

NAME = "helper_transfer"


async def run(ctx: Context, params: Params) -> HelperTransferEvidence | HelperExchange | NoHelper:
    return await via_helper(ctx, params.helper, lambda client: _measure(ctx, client, params))


async def _measure(ctx: Context, client: HelperClient, params: Params) -> HelperTransferEvidence:
    name = params.sni or (ctx.target.host if not is_ip_literal(ctx.target.host) else None) or ctx.decoy_sni
    decoy = params.decoy_sni or ctx.decoy_sni
    plain_port, tls_port = _ports(client, await client.post(wire.API_BULK, {}))
    address = await client.address()
    transfers = [BulkTransfer("plain", None), BulkTransfer("tls_decoy", decoy), BulkTransfer("tls_name", name)]
    for transfer in transfers:  # one after the other: they share the line
        await _transfer(ctx, client, address, tls_port if transfer.sni else plain_port, transfer, params)
    return HelperTransferEvidence(client.ref.name, params.bytes, transfers=transfers)


def _ports(client: HelperClient, answer: dict[str, object]) -> tuple[int, int]:
    try:
        return int(str(answer["port"])), int(str(answer["tls_port"]))
    except (KeyError, ValueError):
        raise client.malformed(wire.API_BULK) from None


async def _transfer(ctx: Context, client: HelperClient, address: str, port: int, transfer: BulkTransfer, params: Params) -> None:
    async with recorded(ctx, transfer, None, "connect") as operation:
        operation.at_failure(lambda: _where_it_stopped(transfer))
        async with asyncio.timeout(ctx.timeout):
            reader, writer = await open_tcp(ctx.route, address, port)
            operation.close_at_end(writer)
            if transfer.sni is not None:
                operation.now("tls_handshake")
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the name is what the path reads
                await writer.start_tls(context, server_hostname=transfer.sni)
        operation.now("write")
        writer.write(bulk.signed_line(client.secret, params.bytes, str(int(time.time())), os.urandom(16).hex()))
        await writer.drain()
        operation.now("read")
        deadline = time.monotonic() + max(ctx.timeout, params.stall_seconds * 2)
        while transfer.received_bytes < params.bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise failures.Failure(failures.TIMEOUT, f"{transfer.received_bytes} of {params.bytes} bytes by the deadline")
            try:
                async with asyncio.timeout(min(params.stall_seconds, left)):
                    chunk = await reader.read(65536)
            except TimeoutError:
                raise failures.Failure(failures.STALLED, f"no byte for {params.stall_seconds:g} s") from None
            if not chunk:
                raise failures.Failure(failures.EOF, f"closed after {transfer.received_bytes} of {params.bytes} bytes")
            transfer.received_bytes += len(chunk)


def _where_it_stopped(transfer: BulkTransfer) -> None:
    if transfer.failure == failures.STALLED:
        transfer.stalled_at_bytes = transfer.received_bytes
