"""tcp: connect to every expected address and port; reachable when any one connects.

As OONI does for WhatsApp's endpoints, one working address:port is enough for the target to
be reachable; the verdict `ip_blocked` needs every one of them to fail.
"""

from __future__ import annotations

import asyncio
import ipaddress

from probe import failures
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict, observed
from probe.model import DNSEvidence, TCPConnect, TCPEvidence
from probe.net import open_tcp
from probe.params import TCPParams as Params

NAME = "tcp"
BLOCK_VERDICT = Verdict.IP_BLOCKED  # what running past every timeout means



def endpoints(ctx: Context) -> list[tuple[str, int]]:
    """The address:port pairs to try: at most `max_addresses` per family, IPv6 only where the
    vantage has shown it can reach a control over IPv6 (a v4-only home line is not a v6 block)."""
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for address in ctx.addresses:
        by_family[ipaddress.ip_address(address).version].append(address)
    use_v6 = ctx.facts.ipv6 or ctx.is_control or not by_family[4]
    chosen = by_family[4][: ctx.max_addresses] + (by_family[6][: ctx.max_addresses] if use_v6 else [])
    return [(address, port) for address in chosen for port in ctx.target.ports]


async def connect_once(ctx: Context, address: str, port: int, *, keep: bool = False) -> TCPConnect:
    """One connect, recorded. With `keep`, a connection made is left open in
    `ctx.open_streams` for the next stage instead of closed."""
    record = TCPConnect(address, port)
    async with observed(record, ctx.timeout) as writers:
        stream = await open_tcp(ctx.route, address, port)
        if keep:
            ctx.open_streams[(address, port)] = stream
        else:
            writers.append(stream[1])
    return record


async def run(ctx: Context, params: Params) -> CheckResult:
    targets = endpoints(ctx)
    if not targets:
        raise Skip("no address to connect to")
    keep = ctx.wants("tls", after=NAME) or ctx.wants("http", after=NAME)
    with Stopwatch() as watch:
        connects = await asyncio.gather(*(connect_once(ctx, address, port, keep=keep) for address, port in targets))
    ctx.connected = [(c.address, c.port) for c in connects if c.failure is None]
    _keep_only_the_first_per_scheme(ctx)
    evidence = TCPEvidence(connects=list(connects))
    if ctx.connected:
        return CheckResult(NAME, True, None, watch.seconds, None, evidence)
    failure = most_common([c.failure for c in connects])
    if any(c.failure in failures.MONITOR for c in connects):
        finding = Finding(Verdict.IP_BLOCKED, Fault.MONITOR, "", "the monitor ran out of a local resource")
        return CheckResult(NAME, False, failures.LOCAL_RESOURCE, watch.seconds, finding, evidence)
    control = _control_addresses(ctx)
    if control:
        # Every address the vantage's resolver gave fails, and the control resolver gave others:
        # if those connect, the answer was the problem (a forged answer for a service whose
        # networks are unknown), not the service's addresses.
        saved = ctx.addresses
        ctx.addresses = control
        checked = await asyncio.gather(*(connect_once(ctx, address, port) for address, port in endpoints(ctx)))
        ctx.addresses = saved
        evidence.control_connects = list(checked)
        if any(c.failure is None for c in checked):
            finding = Finding(Verdict.DNS_TAMPERED, Fault.PATH, "control_resolver", "the resolver's addresses fail while the control resolver's connect")
            return CheckResult(NAME, False, failures.DNS_INCONSISTENT, watch.seconds, finding, evidence)
    # One vantage cannot tell a refused or silent address from a censor's RST or drop: the
    # contract lets `ip_blocked` stand; control vantages, helpers and the fleet's rules compare.
    finding = Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, "", "every expected address:port fails")
    return CheckResult(NAME, False, failure, watch.seconds, finding, evidence)


def _keep_only_the_first_per_scheme(ctx: Context) -> None:
    """The next stages use the first connected endpoint (443-like for tls, 80 for plain http):
    those connections stay open for them, the others close now."""
    wanted = {next(((a, p) for a, p in ctx.connected if p != 80), None), next(((a, p) for a, p in ctx.connected if p == 80), None)}
    for endpoint in [e for e in ctx.open_streams if e not in wanted]:
        ctx.open_streams.pop(endpoint)[1].close()


def _control_addresses(ctx: Context) -> list[str]:
    """The control resolvers' addresses, when DNS chose others for the connects."""
    dns = ctx.result("dns")
    if dns is None or ctx.addresses_from != "dns" or not isinstance(dns.evidence, DNSEvidence):
        return []
    control = [a for q in dns.evidence.resolvers if q.control for a in q.addresses]
    return list(dict.fromkeys(a for a in control if a not in ctx.addresses))


def most_common(found: list[str]) -> str:
    return max(dict.fromkeys(found), key=found.count)
