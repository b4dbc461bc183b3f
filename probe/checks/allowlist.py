"""allowlist: a probe of what a regional allowlist is keyed on (issue 20, item 5).

Some operators allow by name (the SNI), others by address range, others by both (ENDPOINTS.md,
"The field in 2026, second wave": hxehex/russia-mobile-internet-whitelist#2, #13), and IPv4 and
IPv6 can differ (net4people/bbs#650). A control target of class `allowlist_probe` pairs a name
with an address: a domestic name sent to a foreign address, a foreign name to a domestic
address, or a domestic address with no name at all. The handshake is not validated (the name is
not the server's): what counts is whether the server's answer came back or the path stopped it.

One address per family (IPv6 only where a control reached IPv6 this round), `params.tries`
handshakes each, alternated between the families. probe.judge.allowlist reads each handshake;
probe.judge.verdicts reads the probes together into the allowlist's key per family.
"""

from __future__ import annotations

import ipaddress

from probe.checks.context import Context, Skip
from probe.checks.tls import handshake
from probe.model import AllowlistEvidence
from probe.params import AllowlistParams as Params

NAME = "allowlist"


async def run(ctx: Context, params: Params) -> AllowlistEvidence:
    port = ctx.target.ports[0]
    chosen: dict[int, str] = {}
    for address in ctx.addresses:
        version = ipaddress.ip_address(address).version
        if version == 6 and not ctx.control_phase.ipv6:
            continue  # no control reached IPv6: a failure there would be the vantage's own
        chosen.setdefault(version, address)
    if not chosen:
        raise Skip("no address to probe")
    evidence = AllowlistEvidence(params.probe, params.sni)
    for _ in range(params.tries):
        for family in sorted(chosen):
            address = chosen[family]
            # An address as server_hostname sends no SNI (Python's ssl never sends an IP literal).
            evidence.handshakes.append(await handshake(ctx, address, port, params.sni or address, verify=False))
    return evidence
