"""helper_transfer: is a 16–20 KB freeze keyed on the address or on the name? (docs/helper.md)

Three bulk downloads from a helper abroad, each on a fresh connection: plain TCP (the baseline:
the path to the helper works), TLS with a decoy SNI, and TLS with the target's own name as SNI.
The helper's address is not the service's, so:
- all three complete: the helper's address is not frozen; a freeze the `throughput` check sees
  on the service is keyed on the service's address (evidence `keyed_on: none_here`);
- only the TLS transfer with the service's name freezes: the freeze follows the name wherever it
  goes: `throttled`, keyed on the name (differential: the decoy SNI at the same address);
- both TLS transfers freeze while plain TCP flows: TLS to this (foreign) address is frozen
  whatever the name: `throttled`, keyed on the address (differential: the plain transfer);
- the plain transfer fails too: nothing to compare: no technique (`down`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass, field

from probe import failures
from probe.checks.base import Context
from probe.config import is_ip_literal
from probe.helper import bulk, wire
from probe.helper.client import (
    HelperClient,
    HelperError,
    choose,
    could_not_measure,
    no_helper,
)
from probe.model import CheckResult, Fault, Finding, Verdict
from probe.net import open_tcp
from probe.params import HelperTransferParams as Params

NAME = "helper_transfer"
BLOCK_VERDICT = Verdict.THROTTLED  # what a timeout of this check means
STALLED = failures.STALLED


@dataclass
class TransferRecord:
    kind: str  # "plain" | "tls_decoy" | "tls_name"
    sni: str | None
    received_bytes: int = 0
    stalled_at_bytes: int | None = None
    failure: str | None = None
    duration_seconds: float = 0.0

    def complete(self, size: int) -> bool:
        return self.received_bytes >= size and self.failure is None


@dataclass
class TransferEvidence:
    helper: str
    bytes: int
    keyed_on: str | None = None  # "name" | "address" | "none_here"
    transfers: list[TransferRecord] = field(default_factory=list)


async def run(ctx: Context, params: Params) -> object:
    started = time.monotonic()
    ref = choose(params.helper)
    if ref is None:
        return no_helper(NAME, started)
    name = params.sni or (ctx.target.host if not is_ip_literal(ctx.target.host) else None) or ctx.decoy_sni
    decoy = params.decoy_sni or ctx.decoy_sni
    evidence = TransferEvidence(ref.name, params.bytes)
    client = HelperClient(ref, ctx.route, timeout=ctx.timeout)
    try:
        plain_port, tls_port = _ports(client, await client.post(wire.API_BULK, {}))
        address = await client.address()
    except HelperError as failed:
        return could_not_measure(NAME, started, failed)
    records = [TransferRecord("plain", None), TransferRecord("tls_decoy", decoy), TransferRecord("tls_name", name)]
    for record in records:  # one after the other: they share the line
        await _transfer(ctx, client, address, tls_port if record.sni else plain_port, record, params)
    evidence.transfers = records
    failure, finding, evidence.keyed_on = judge(*records, size=params.bytes)
    return CheckResult(NAME, failure is None, failure, time.monotonic() - started, finding, evidence)


def _ports(client: HelperClient, answer: dict[str, object]) -> tuple[int, int]:
    try:
        return int(str(answer["port"])), int(str(answer["tls_port"]))
    except (KeyError, ValueError):
        raise client.malformed(wire.API_BULK) from None


def judge(plain: TransferRecord, decoy: TransferRecord, named: TransferRecord, *, size: int) -> tuple[str | None, Finding | None, str | None]:
    ok = [r.complete(size) for r in (plain, decoy, named)]
    if all(ok):
        return None, None, "none_here"
    worst = next(r for r in (named, decoy, plain) if not r.complete(size))
    failure = worst.failure or STALLED
    at = f"{worst.stalled_at_bytes / 1024:.0f} KB" if worst.stalled_at_bytes is not None else f"{worst.received_bytes / 1024:.0f} KB"
    if not ok[0]:
        reason = f"even the plain transfer from the helper failed (at {plain.received_bytes / 1024:.0f} KB): nothing to compare"
        return failure, Finding(Verdict.THROTTLED, Fault.UNSEPARATED, "helper_plain", reason), None
    if ok[1]:
        reason = f"TLS from the helper's address with the name {named.sni} froze at {at} while the decoy SNI {decoy.sni} to the same address completed: keyed on the name"
        return failure, Finding(Verdict.THROTTLED, Fault.PATH, "helper_decoy_sni", reason), "name"
    reason = f"TLS from the helper's address froze at {at} whatever the name (decoy too) while plain TCP from it completed: keyed on the address"
    return failure, Finding(Verdict.THROTTLED, Fault.PATH, "helper_plain", reason), "address"


async def _transfer(ctx: Context, client: HelperClient, address: str, port: int, record: TransferRecord, params: Params) -> None:
    started = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(ctx.timeout):
            reader, writer = await open_tcp(ctx.route, address, port)
            if record.sni is not None:
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the name is what the path reads
                await writer.start_tls(context, server_hostname=record.sni)
        writer.write(bulk.signed_line(client.secret, params.bytes, str(int(time.time())), os.urandom(16).hex()))
        await writer.drain()
        deadline = time.monotonic() + max(ctx.timeout, params.stall_seconds * 2)
        while record.received_bytes < params.bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                record.failure = failures.TIMEOUT
                break
            try:
                async with asyncio.timeout(min(params.stall_seconds, left)):
                    chunk = await reader.read(65536)
            except TimeoutError:
                record.failure, record.stalled_at_bytes = STALLED, record.received_bytes
                break
            if not chunk:
                record.failure = failures.EOF
                break
            record.received_bytes += len(chunk)
    except Exception as exc:  # noqa: BLE001 - every failure is evidence
        record.failure = failures.classify(exc)
    finally:
        record.duration_seconds = round(time.monotonic() - started, 3)
        if writer is not None:
            writer.close()
