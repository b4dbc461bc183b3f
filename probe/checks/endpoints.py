"""Where a check connects: the addresses and ports of a target, as the earlier stages left them.

Not a check: it has no `NAME` and is not in the registry.
"""

from __future__ import annotations

from probe.checks.context import Context


def expected_addresses(ctx: Context) -> list[str]:
    """The addresses to measure: what `dns` found, else the pinned ones, else the host itself
    when it is an address (a target may list no `dns` check: Telegram's data centres)."""
    if not ctx.addresses:
        if ctx.target.addresses:
            ctx.addresses, ctx.addresses_from = list(ctx.target.addresses), "pinned"
        elif ctx.target.is_ip:
            ctx.addresses, ctx.addresses_from = [ctx.target.host], "pinned"
    return ctx.addresses


def tcp_endpoints(ctx: Context) -> list[tuple[str, int]]:
    """The address:port pairs to try: at most `max_addresses` per family, IPv6 only where the
    vantage has shown it can reach a control over IPv6 (a v4-only home line is not a v6 block)."""
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for address in ctx.addresses:
        by_family[6 if ":" in address else 4].append(address)  # IP literals (resolved or pinned): only IPv6's have a colon
    use_v6 = ctx.control_phase.ipv6 or ctx.is_control or not by_family[4]
    chosen = by_family[4][: ctx.max_addresses] + (by_family[6][: ctx.max_addresses] if use_v6 else [])
    return [(address, port) for address in chosen for port in ctx.target.ports]


def connected_endpoints(ctx: Context) -> list[tuple[str, int]]:
    """Where to speak a TCP protocol: where the `tcp` check connected when it ran (a failed
    connect there is already its evidence), else every expected address:port."""
    if ctx.result("tcp") is not None:
        return list(ctx.connected)
    expected_addresses(ctx)
    return tcp_endpoints(ctx)


def udp_endpoints(ctx: Context) -> list[tuple[str, int]]:
    """Every expected address:port, with the same per-family limits as `tcp`."""
    expected_addresses(ctx)
    return tcp_endpoints(ctx)
