"""dns: A and AAAA through every resolver of the vantage, each answer set beside the config's
reference lists (bogons, block-page addresses, the service's networks); the judge reads them
against the control resolver and the resolvers' health (probe.judge.dns).

The check goes on with the addresses of the answers the judge reads as ok, else the control
resolver's (is the address blocked too?), unless the target pins its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

from probe.checks.context import Context, Skip
from probe.judge import dns as judge_dns
from probe.model import DNSEvidence, DNSQuery
from probe.params import DNSParams as Params
from probe.resolvers import lookup

NAME = "dns"

# OONI netxlite bogon.go, plus the IPv6 ranges it lists.
BOGONS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "2001:db8::/32", "ff00::/8",
    )
)  # fmt: skip

__all__ = ["BOGONS", "NAME", "Params", "is_bogon", "run"]


def is_bogon(address: str, exempt: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()) -> bool:
    ip = ipaddress.ip_address(address)
    if any(ip in network for network in exempt):
        return False
    return any(ip in network for network in BOGONS if network.version == ip.version)


async def run(ctx: Context, params: Params) -> DNSEvidence:
    if ctx.target.is_ip:
        raise Skip("the target is an address")
    t0 = ctx.clock.elapsed()
    queries = await asyncio.gather(
        *(lookup(r, ctx.target.host, route=ctx.route, timeout=ctx.timeout, ca_bundles=ctx.ca_bundles()) for r in ctx.vantage.resolvers)
    )
    for query in queries:
        _place(ctx, query, t0)
    judge_dns.judge_answers(queries, ctx.round_facts())  # which answers to go on with
    evidence = DNSEvidence(resolvers=list(queries))

    control_addresses = [a for q in queries if q.control for a in q.addresses]
    good = [a for q in queries if not q.control and q.judgement == "ok" for a in q.addresses]
    if ctx.target.addresses:
        ctx.addresses, ctx.addresses_from = list(ctx.target.addresses), "pinned"
    elif good:
        ctx.addresses, ctx.addresses_from = _dedupe(good), "dns"
    elif control_addresses:  # keep measuring past a DNS block: is the address blocked too?
        ctx.addresses, ctx.addresses_from = _dedupe(control_addresses), "control_resolver"
    evidence.addresses, evidence.addresses_from = ctx.addresses, ctx.addresses_from
    return evidence


def _place(ctx: Context, query: DNSQuery, t0: float) -> None:
    """The query's operation fields, and its answer against the config's reference lists."""
    query.t0, query.t, query.transaction_id = t0, round(t0 + query.duration_seconds, 6), ctx.clock.transaction()
    if query.failure is not None:
        query.failed_operation = "resolve"
    if query.control or not query.addresses:
        return
    bogons = [a for a in query.addresses if is_bogon(a, ctx.vantage.bogon_exempt)]
    blockpages = [a for a in query.addresses if a in set(ctx.fingerprints.dns_addresses)]
    query.bogons, query.blockpage_addresses = bogons or None, blockpages or None
    networks = ctx.service.networks if ctx.service else None
    if networks is not None and networks.prefixes:
        query.outside_networks = not any(networks.contains(a) for a in query.addresses)


def _dedupe(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(addresses))
