"""helper_transfer: is a freeze keyed on the address, the name or the direction? (docs/helper.md)

Three bulk downloads from a helper abroad, one after the other (they share the line), each on a
fresh connection: plain TCP (the baseline: the path to the helper works), TLS with a decoy SNI,
and TLS with the target's own name as SNI; then the same three as uploads of `upload_bytes` to
the helper (freezes counted in packets both ways trip on uploads too). A download that gets no
byte for `stall_seconds` froze (`stalled`, where: `stalled_at_bytes`); an upload froze when the
helper acknowledged nothing more for `stall_seconds` and did not answer. Each records its
connection's packets each way (TCP_INFO). probe.judge.helper_transfer compares them.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time

from probe import failures
from probe.checks.context import Context
from probe.checks.observe import recorded
from probe.checks.packets import PacketCounter, unsent_or_unacked
from probe.checks.via_helper import via_helper
from probe.config import is_ip_literal
from probe.helper import bulk, wire
from probe.helper.client import HelperClient
from probe.helper.line import loop_time
from probe.model import BulkTransfer, HelperExchange, HelperTransferEvidence, NoHelper
from probe.net import open_tcp
from probe.params import HelperTransferParams as Params

NAME = "helper_transfer"
UPLOAD_SUFFIX = "_upload"
_POLL_SECONDS = 0.25  # between looks at what the helper acknowledged of an upload
_JUDGE_SECONDS = 0.5  # left of the round after the transfers, for the judge and the records


async def run(ctx: Context, params: Params) -> HelperTransferEvidence | HelperExchange | NoHelper:
    return await via_helper(ctx, params.helper, lambda client: _measure(ctx, client, params))


async def _measure(ctx: Context, client: HelperClient, params: Params) -> HelperTransferEvidence:
    name = params.sni or (ctx.target.host if not is_ip_literal(ctx.target.host) else None) or ctx.decoy_sni
    decoy = params.decoy_sni or ctx.decoy_sni
    plain_port, tls_port = _ports(client, await client.post(wire.API_BULK, {}))
    address = await client.address()
    transfers = [BulkTransfer("plain", None), BulkTransfer("tls_decoy", decoy), BulkTransfer("tls_name", name)]
    if params.upload_bytes:
        transfers += [BulkTransfer(f"{t.kind}{UPLOAD_SUFFIX}", t.sni) for t in transfers]
    # Each transfer ends by the round's end (less a moment to judge): one cut there, and those not
    # begun, read `helper_no_time` (the judge names no key without them) while the evidence of the
    # others stands, instead of the round's deadline cutting the whole check (a frozen line makes
    # every transfer take its bounds, and six of them can outlast a round).
    round_end = loop_time(ctx.helper_round.deadline - _JUDGE_SECONDS) if ctx.helper_round is not None else None
    for index, transfer in enumerate(transfers):  # one after the other: they share the line
        counter = PacketCounter()
        try:
            async with asyncio.timeout_at(round_end):
                await _transfer(ctx, client, address, tls_port if transfer.sni else plain_port, transfer, params, counter)
        except TimeoutError:
            for cut in transfers[index:]:
                cut.failure = failures.HELPER_NO_TIME
            break
        finally:
            counter.close()
    return HelperTransferEvidence(client.ref.name, params.bytes, transfers=transfers, upload_bytes=params.upload_bytes or None)


def _ports(client: HelperClient, answer: dict[str, object]) -> tuple[int, int]:
    try:
        return int(str(answer["port"])), int(str(answer["tls_port"]))
    except (KeyError, ValueError):
        raise client.malformed(wire.API_BULK) from None


async def _transfer(ctx: Context, client: HelperClient, address: str, port: int, transfer: BulkTransfer, params: Params,
                    counter: PacketCounter) -> None:
    upload = transfer.kind.endswith(UPLOAD_SUFFIX)
    async with recorded(ctx, transfer, None, "connect") as operation:
        operation.at_failure(lambda: _where_it_stopped(transfer, counter))
        async with asyncio.timeout(ctx.timeout):
            reader, writer = await open_tcp(ctx.route, address, port)
            operation.close_at_end(writer)
            counter.attach(writer)
            if transfer.sni is not None:
                operation.now("tls_handshake")
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the name is what the path reads
                await writer.start_tls(context, server_hostname=transfer.sni)
        operation.now("write")
        size = params.upload_bytes if upload else params.bytes
        writer.write(bulk.signed_line(client.secret, size, str(int(time.time())), os.urandom(16).hex(), upload=upload))
        if upload:
            writer.write(os.urandom(size))  # incompressible; bounded by the params (1 MB)
            transfer.sent_bytes = size
            operation.now("read")
            await _upload_answer(ctx, reader, writer, transfer, params, counter)
            _count_packets(transfer, counter)
            return
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
        transfer.packets = counter.read()


async def _upload_answer(ctx: Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transfer: BulkTransfer, params: Params,
                         counter: PacketCounter) -> None:
    """The helper's count, while watching it acknowledge the body: data waiting and nothing more
    acknowledged for `stall_seconds` froze (`stalled`, at `stalled_at_bytes` acknowledged)."""
    deadline = time.monotonic() + max(ctx.timeout, params.stall_seconds * 2)
    progress, progress_at = -1, time.monotonic()
    reading = asyncio.ensure_future(reader.readline())
    try:
        while True:
            done, _ = await asyncio.wait({reading}, timeout=_POLL_SECONDS)
            if done:
                line = reading.result()
                if not line.strip().isdigit():
                    raise failures.Failure(failures.EOF, "closed before the helper's count")
                transfer.answered_bytes = int(line)
                return
            now = time.monotonic()
            counts = counter.read()
            transfer.acked_bytes = counts.bytes_acked if counts is not None else None
            moved = counts.bytes_acked if counts is not None else -writer.transport.get_write_buffer_size()
            if moved > progress:
                progress, progress_at = moved, now
            if unsent_or_unacked(writer) is not False and now - progress_at >= params.stall_seconds:
                transfer.stalled_at_bytes = transfer.acked_bytes or 0
                raise failures.Failure(failures.STALLED, f"nothing acknowledged for {params.stall_seconds:g} s")
            if now >= deadline:
                raise failures.Failure(failures.TIMEOUT, "no count from the helper by the deadline")
    finally:
        reading.cancel()


def _count_packets(transfer: BulkTransfer, counter: PacketCounter) -> None:
    transfer.packets = counter.read()
    if transfer.packets is not None and transfer.sent_bytes is not None:
        transfer.acked_bytes = transfer.packets.bytes_acked


def _where_it_stopped(transfer: BulkTransfer, counter: PacketCounter) -> None:
    _count_packets(transfer, counter)
    if transfer.failure == failures.STALLED and transfer.stalled_at_bytes is None:
        transfer.stalled_at_bytes = transfer.received_bytes
