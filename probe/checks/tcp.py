"""tcp: connect to every expected address and port; reachable when any one connects.

As OONI does for WhatsApp's endpoints, one working address:port is enough for the target to
be reachable; the verdict `ip_blocked` needs every one of them to fail.
"""

from __future__ import annotations

import asyncio
import ipaddress

from probe import failures
from probe.checks.base import CheckResult, Context, Skip, Stopwatch
from probe.net import open_tcp

NAME = "tcp"
BLOCK_VERDICT = "ip_blocked"  # what running past every timeout means


from probe.params import TCPParams as Params


def endpoints(ctx: Context) -> list[tuple[str, int]]:
    """The address:port pairs to try: at most `max_addresses` per family, IPv6 only where the
    vantage has shown it can reach a control over IPv6 (a v4-only home line is not a v6 block)."""
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for address in ctx.addresses:
        by_family[ipaddress.ip_address(address).version].append(address)
    use_v6 = ctx.facts.ipv6 or ctx.is_control or not by_family[4]
    chosen = by_family[4][: ctx.max_addresses] + (by_family[6][: ctx.max_addresses] if use_v6 else [])
    return [(address, port) for address in chosen for port in ctx.target.ports]


async def connect_once(ctx: Context, address: str, port: int) -> dict:
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(ctx.timeout):
                _, writer = await open_tcp(ctx.route, address, port)
            writer.close()
            failure = None
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            failure = failures.classify(exc)
    return {"address": address, "port": port, "failure": failure, "duration_seconds": round(watch.seconds, 4)}


async def run(ctx: Context, params: Params) -> CheckResult:
    targets = endpoints(ctx)
    if not targets:
        raise Skip("no address to connect to")
    with Stopwatch() as watch:
        connects = await asyncio.gather(*(connect_once(ctx, address, port) for address, port in targets))
    ctx.connected = [(c["address"], c["port"]) for c in connects if c["failure"] is None]
    evidence: dict = {"connects": connects}
    if ctx.connected:
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    failure = _most_common([c["failure"] for c in connects])
    control = _control_addresses(ctx)
    if control:
        # Every address the vantage's resolver gave fails, and the control resolver gave others:
        # if those connect, the answer was the problem (a forged answer for a service whose
        # networks are unknown), not the service's addresses.
        saved = ctx.addresses
        ctx.addresses = control
        checked = await asyncio.gather(*(connect_once(ctx, address, port) for address, port in endpoints(ctx)))
        ctx.addresses = saved
        evidence["control_connects"] = checked
        if any(c["failure"] is None for c in checked):
            return CheckResult(NAME, False, failures.DNS_INCONSISTENT, watch.seconds, "dns_tampered", evidence)
    return CheckResult(NAME, False, failure, watch.seconds, "ip_blocked", evidence)


def _control_addresses(ctx: Context) -> list[str]:
    """The control resolvers' addresses, when DNS chose others for the connects."""
    dns = ctx.result("dns")
    if dns is None or ctx.addresses_from != "dns":
        return []
    control = [a for r in dns.evidence.get("resolvers", []) if r["control"] for a in r["addresses"]]
    return list(dict.fromkeys(a for a in control if a not in ctx.addresses))


def _most_common(found: list[str]) -> str:
    return max(dict.fromkeys(found), key=found.count)
