"""tcp: connect to every expected address and port (probe.judge.tcp reads them: reachable when
any one connects).

When every address the vantage's resolver gave fails and the control resolver gave others,
those are tried too: if they connect, the answer was the problem (a forged answer for a service
whose networks are unknown), not the service's addresses.
"""

from __future__ import annotations

import asyncio

from probe.checks.context import Context, Skip
from probe.checks.endpoints import tcp_endpoints
from probe.checks.observe import recorded
from probe.judge.rules import is_monitor_failure
from probe.model import DNSEvidence, TCPConnect, TCPEvidence
from probe.net import connect
from probe.params import TCPParams as Params

NAME = "tcp"

__all__ = ["NAME", "Params", "connect_once", "run"]


async def connect_once(ctx: Context, address: str, port: int, *, keep: bool = False) -> TCPConnect:
    """One connect, recorded. With `keep`, a connection made is left open in
    `ctx.open_streams` for the next stage instead of closed."""
    record = TCPConnect(address, port)
    async with recorded(ctx, record, ctx.timeout, "connect") as operation:
        stream = await connect(ctx.route, address, port)
        if keep:
            ctx.open_streams[(address, port)] = stream
        else:
            operation.close_at_end(stream)
    return record


async def run(ctx: Context, params: Params) -> TCPEvidence:
    targets = tcp_endpoints(ctx)
    if not targets:
        raise Skip("no address to connect to")
    keep = ctx.wants("tls", after=NAME) or ctx.wants("http", after=NAME)
    if len(targets) == 1:  # the usual case: no task and no gather for one connect
        connects = [await connect_once(ctx, *targets[0], keep=keep)]
    else:
        connects = await asyncio.gather(*(connect_once(ctx, address, port, keep=keep) for address, port in targets))
    ctx.connected = [(c.address, c.port) for c in connects if c.failure is None]
    _keep_only_the_first_per_scheme(ctx)
    evidence = TCPEvidence(connects=list(connects))
    if ctx.connected or any(is_monitor_failure(c.failure) for c in connects):
        return evidence
    control = _control_addresses(ctx)
    if control:
        saved = ctx.addresses
        ctx.addresses = control
        checked = await asyncio.gather(*(connect_once(ctx, address, port) for address, port in tcp_endpoints(ctx)))
        ctx.addresses = saved
        evidence.control_connects = list(checked)
    return evidence


def _keep_only_the_first_per_scheme(ctx: Context) -> None:
    """The next stages use the first connected endpoint (443-like for tls, 80 for plain http):
    those connections stay open for them, the others close now."""
    wanted = {next(((a, p) for a, p in ctx.connected if p != 80), None), next(((a, p) for a, p in ctx.connected if p == 80), None)}
    for endpoint in [e for e in ctx.open_streams if e not in wanted]:
        ctx.open_streams.pop(endpoint).close()


def _control_addresses(ctx: Context) -> list[str]:
    """The control resolvers' addresses, when DNS chose others for the connects."""
    dns = ctx.result("dns")
    if dns is None or ctx.addresses_from != "dns" or not isinstance(dns.evidence, DNSEvidence):
        return []
    control = [a for q in dns.evidence.resolvers if q.control for a in q.addresses]
    return list(dict.fromkeys(a for a in control if a not in ctx.addresses))
