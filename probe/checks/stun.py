"""stun: an RFC 5389 Binding Request over UDP to every configured address:port.

Calls need UDP: a relay (Telegram's in 91.108.x.x, ports such as 3478 and 596/597) must answer
STUN for a call to start. The target is reachable when any address:port answers (a Binding
success or error response: either proves the datagrams got through). Requests are retransmitted
as RFC 5389 §7.2.1 says (RTO doubling from `initial_rto`), fewer times, to bound the check.

When no address answers, the check records which of this round's control STUN targets (a
yardstick in `configs/services/controls.yaml`) answered: the differential probe.judge.stun reads
(`udp_blocked` when one did).
No relay list is published by any service: configure the addresses your captures show.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from typing import Any

from probe import failures
from probe.checks.context import Context, Skip
from probe.checks.endpoints import udp_endpoints
from probe.checks.observe import Stopwatch, recorded
from probe.judge.rules import most_common
from probe.model import STUNBinding, STUNEvidence
from probe.net import udp_socket
from probe.params import STUNParams as Params

NAME = "stun"

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028
FINGERPRINT_XOR = 0x5354554E



# --- the wire format ------------------------------------------------------------------------------


def binding_request(transaction_id: bytes, *, fingerprint: bool = True, software: str | None = None) -> bytes:
    assert len(transaction_id) == 12
    attributes = b""
    if software:
        value = software.encode()[:127]
        attributes += struct.pack("!HH", ATTR_SOFTWARE, len(value)) + value + b"\x00" * (-len(value) % 4)
    length = len(attributes) + (8 if fingerprint else 0)
    message = struct.pack("!HHI", BINDING_REQUEST, length, MAGIC_COOKIE) + transaction_id + attributes
    if fingerprint:
        crc = (zlib.crc32(message) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        message += struct.pack("!HHI", ATTR_FINGERPRINT, 4, crc)
    return message


def parse_response(data: bytes, transaction_id: bytes) -> dict[str, Any] | None:
    """The facts of a Binding response to our transaction, or None if the datagram is not one.

    Raises `Failure(protocol_error)` for a reply to our transaction that is malformed."""
    if len(data) < 20:
        return None
    kind, length, cookie = struct.unpack_from("!HHI", data)
    if cookie != MAGIC_COOKIE or data[8:20] != transaction_id:
        return None
    if kind not in (BINDING_SUCCESS, BINDING_ERROR):
        raise failures.Failure(failures.PROTOCOL_ERROR, f"STUN message type {kind:#06x} in reply")
    if length != len(data) - 20 or length % 4:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"STUN length {length} for a {len(data)}-byte datagram")
    facts: dict[str, Any] = {"response": "success" if kind == BINDING_SUCCESS else "error"}
    offset = 20
    while offset + 4 <= len(data):
        attribute, size = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4 : offset + 4 + size]
        if len(value) < size:
            raise failures.Failure(failures.PROTOCOL_ERROR, "truncated STUN attribute")
        if attribute in (ATTR_XOR_MAPPED_ADDRESS, ATTR_MAPPED_ADDRESS) and size >= 8:
            # The vantage's public address is not kept (the evidence is shared); its family is.
            facts["mapped_family"] = {1: "ipv4", 2: "ipv6"}.get(value[1], "unknown")
        elif attribute == ATTR_ERROR_CODE and size >= 4:
            facts["error_code"] = (value[2] & 0x7) * 100 + value[3]
        offset += 4 + size + (-size % 4)
    return facts


# --- one address:port -----------------------------------------------------------------------------


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.received.full():  # a flood is dropped, not buffered
            self.received.put_nowait(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable on a connected socket
        if not self.received.full():
            self.received.put_nowait(exc)


async def binding(ctx: Context, address: str, port: int, params: Params) -> STUNBinding:
    outcome = STUNBinding(address, port)
    transport = None
    stray = 0
    with Stopwatch() as watch:
        try:
            async with recorded(ctx, outcome, None, "write") as operation:
                loop = asyncio.get_running_loop()
                transport, client = await loop.create_datagram_endpoint(_Client, sock=udp_socket(ctx.route, address, port))
                transaction_id = os.urandom(12)
                request = binding_request(transaction_id, fingerprint=params.fingerprint, software=params.software)
                rto = params.initial_rto
                facts = None
                give_up = loop.time() + ctx.timeout  # the check's timeout caps the schedule
                while facts is None and outcome.requests < params.attempts and loop.time() < give_up:
                    operation.now("write")
                    transport.sendto(request)
                    outcome.requests += 1
                    wait_until = min(loop.time() + rto, give_up)
                    rto *= 2
                    operation.now("read")
                    while facts is None and (left := wait_until - loop.time()) > 0:
                        try:
                            async with asyncio.timeout(left):
                                item = await client.received.get()
                        except TimeoutError:
                            break
                        if isinstance(item, BaseException):
                            raise item
                        facts = parse_response(item, transaction_id)
                        if facts is None:
                            stray += 1
                if facts is None:
                    if stray:
                        raise failures.Failure(failures.PROTOCOL_ERROR, f"{stray} datagrams, none a STUN response")
                    raise failures.Failure(failures.TIMEOUT, f"no STUN response to {outcome.requests} requests")
                outcome.response = facts["response"]
                outcome.mapped_family = facts.get("mapped_family")
                outcome.error_code = facts.get("error_code")
                outcome.rtt_seconds = round(watch.seconds, 4)
        finally:
            if transport is not None:
                transport.close()
    if stray:
        outcome.stray_datagrams = stray
    return outcome


# --- the check --------------------------------------------------------------------------------------


async def run(ctx: Context, params: Params) -> STUNEvidence:
    if ctx.route.socks5 is not None:
        raise Skip("UDP cannot go through the vantage's SOCKS5 proxy")
    targets = udp_endpoints(ctx)
    if not targets:
        raise Skip("no address to send STUN to")
    bindings = list(await asyncio.gather(*(binding(ctx, a, p, params) for a, p in targets)))
    evidence = STUNEvidence(bindings)
    silent = not any(b.failure is None for b in bindings) and most_common([b.failure for b in bindings]) != failures.PROTOCOL_ERROR
    if silent and not ctx.is_control:
        # Nothing answered: this round's control STUN targets, answered or not, are the differential.
        evidence.controls = {name: result.ok for name, result in ctx.control_results(NAME, params.control)}
    return evidence
