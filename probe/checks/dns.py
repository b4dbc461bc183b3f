"""dns: A and AAAA through every resolver of the vantage, each answer judged against the control.

A vantage resolver's answer is blocking evidence only when
- the resolver is healthy (it resolved the control sites this round: a dead resolver fails
  every name and says nothing about one service), and
- a control resolver answered the same name (otherwise NXDOMAIN may be the truth).
Tampering is judged on the answer itself: bogons, known block-page addresses, or addresses
outside the service's networks that are also disjoint from the control's answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from probe import failures
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict
from probe.model import DNSEvidence, DNSQuery
from probe.resolvers import lookup
from probe.params import DNSParams as Params

NAME = "dns"
BLOCK_VERDICT = Verdict.DNS_BLOCKED  # what running past every timeout means

# Failures of a resolver that, for a name the control resolves, mean "this name is withheld".
_WITHHELD = frozenset(
    {failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER, failures.DNS_SERVFAIL, failures.DNS_REFUSED, failures.TIMEOUT, failures.DNS_BAD_RESPONSE}
)
# Failures a control resolver may share with the vantage's: the name really does not resolve.
_GLOBAL = frozenset({failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER, failures.DNS_SERVFAIL})

# OONI netxlite bogon.go, plus the IPv6 ranges it lists.
BOGONS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "2001:db8::/32", "ff00::/8",
    )
)



def is_bogon(address: str, exempt: list[Any] = ()) -> bool:
    ip = ipaddress.ip_address(address)
    if any(ip in network for network in exempt):
        return False
    return any(ip in network for network in BOGONS if network.version == ip.version)


async def run(ctx: Context, params: Params) -> CheckResult:
    if ctx.target.is_ip:
        raise Skip("the target is an address")
    with Stopwatch() as watch:
        queries = await asyncio.gather(
            *(lookup(r, ctx.target.host, route=ctx.route, timeout=ctx.timeout, ca_bundles=ctx.ca_bundles()) for r in ctx.vantage.resolvers)
        )
    for query in queries:
        query.judgement, query.reason = _judge(ctx, query, queries)
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

    tampered = next((q for q in queries if q.judgement == "tampered"), None)
    if tampered is not None:
        differential = "control_resolver" if tampered.reason == failures.DNS_INCONSISTENT else "answer"
        finding = Finding(Verdict.DNS_TAMPERED, Fault.PATH, differential, f"{tampered.resolver} answered {tampered.reason}")
        return CheckResult(NAME, False, tampered.reason, watch.seconds, finding, evidence)
    withheld = next((q for q in queries if q.judgement == "withheld"), None)
    if withheld is not None:
        finding = Finding(Verdict.DNS_BLOCKED, Fault.PATH, "control_resolver", f"{withheld.resolver} withholds the name the control resolver answers")
        return CheckResult(NAME, False, withheld.reason, watch.seconds, finding, evidence)
    if not ctx.addresses:
        # No resolver, control included, gave an address: the name does not resolve anywhere
        # we can see. Not evidence of a block.
        failure = next((q.failure for q in queries if q.failure), failures.DNS_NO_ANSWER)
        evidence.control_agrees = any(q.judgement == "global" for q in queries)
        if evidence.control_agrees:
            finding = Finding(Verdict.DNS_BLOCKED, Fault.SERVER, "control_resolver", "the control resolver fails the name too")
        else:
            finding = Finding(Verdict.DNS_BLOCKED, Fault.UNSEPARATED, "", "no resolver gave an address and no control resolver answered")
        return CheckResult(NAME, False, failure, watch.seconds, finding, evidence)
    return CheckResult(NAME, True, None, watch.seconds, None, evidence)


def _judge(ctx: Context, query: DNSQuery, queries: list[DNSQuery]) -> tuple[str, str | None]:
    """One resolver's answer -> (judgement, reason): judgement is
    ok|withheld|tampered|global|inconclusive|unhealthy|control."""
    if query.control:
        return "control", query.failure
    healthy = ctx.facts.healthy_resolvers
    if healthy is not None and query.resolver not in healthy:
        return "unhealthy", "resolver failed the control names too"
    controls = [q for q in queries if q.control]
    control_addresses = {a for c in controls for a in c.addresses}
    if query.failure is not None:
        if ctx.is_control and control_addresses:
            # Control phase: what fails here is the resolver, not the control site. It stays out
            # of the healthy set (and is ignored for the services); the control is not failed.
            return "unhealthy", query.failure
        if query.failure in _WITHHELD and control_addresses:
            return "withheld", query.failure
        if controls and all(c.failure in _GLOBAL for c in controls):
            return "global", query.failure
        return "inconclusive", query.failure

    exempt = ctx.vantage.bogon_exempt
    if any(is_bogon(a, exempt) for a in query.addresses):
        return "tampered", failures.DNS_BOGON
    if set(ctx.fingerprints.dns_addresses).intersection(query.addresses):
        return "tampered", failures.DNS_BLOCKPAGE
    networks = ctx.service.networks if ctx.service else None
    if (
        networks is not None
        and networks.prefixes
        and control_addresses
        and not any(networks.contains(a) for a in query.addresses)
        and control_addresses.isdisjoint(query.addresses)
    ):
        return "tampered", failures.DNS_INCONSISTENT
    return "ok", None


def _dedupe(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(addresses))
