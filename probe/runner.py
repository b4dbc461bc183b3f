"""One round of one vantage: the controls first, then every service's targets, all bounded.

The controls decide whether anything else can be judged (`vantage_offline`), which resolvers
are healthy, and whether IPv6 works. A target whose verdict is not `ok` is measured again
(`schedule.retries` times) before the verdict stands, so one lost packet never flips it.
The round has its own deadline: a target still running then is reported as incomplete.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from probe.checks import REGISTRY
from probe.checks.base import Context, RoundFacts
from probe.config import Config, Service, Target, Vantage
from probe.net import Route
from probe.checks.step import run_check
from probe.verdict import (
    DOWN,
    OFFLINE,
    OK,
    ServiceResult,
    TargetResult,
    VantageResult,
    confirm_down_by_control,
    offline_service,
    service_verdict,
    target_verdict,
)

log = logging.getLogger(__name__)
CONTROLS = "controls"


async def run_round(
    config: Config,
    vantage: Vantage,
    *,
    services: list[str] | None = None,
    control_vantage: VantageResult | None = None,
) -> VantageResult:
    """Measure everything from one vantage. Never raises on network trouble; ends by the deadline."""
    started_at, started = time.time(), time.monotonic()
    route = Route.of(vantage)
    limit = asyncio.Semaphore(config.schedule.concurrency)
    deadline = started + config.schedule.deadline

    controls = await _gather_targets(config, vantage, route, None, config.controls, RoundFacts(), limit, deadline)
    online = any(c.verdict == OK for c in controls) or not config.controls
    facts = RoundFacts(
        controls={c.target: c for c in controls},
        healthy_resolvers=_healthy_resolvers(vantage, controls),
        ipv6=_reached_ipv6(controls),
    )
    chosen = [s for s in config.services if services is None or s.name in services]

    results: list[ServiceResult] = []
    if not online:
        results = [offline_service(s.name, [(t.name, t.host) for t in s.targets]) for s in chosen]
    else:
        per_service = await asyncio.gather(
            *(_gather_targets(config, vantage, route, s, s.targets, facts, limit, deadline) for s in chosen)
        )
        for service, targets in zip(chosen, per_service):
            if control_vantage is not None:
                targets = [confirm_down_by_control(t, _find(control_vantage, service.name, t.target)) for t in targets]
            results.append(ServiceResult(service.name, service_verdict(targets), targets))

    return VantageResult(
        vantage=vantage.name,
        verdict=OK if online else OFFLINE,
        services=results,
        controls=controls,
        started_at=started_at,
        duration_seconds=time.monotonic() - started,
        healthy_resolvers=sorted(facts.healthy_resolvers or ()),
    )


async def _gather_targets(
    config: Config,
    vantage: Vantage,
    route: Route,
    service: Service | None,
    targets: list[Target],
    facts: RoundFacts,
    limit: asyncio.Semaphore,
    deadline: float,
) -> list[TargetResult]:
    async def one(target: Target) -> TargetResult:
        async with limit:
            return await _measure_target(config, vantage, route, service, target, facts, deadline)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def _measure_target(
    config: Config, vantage: Vantage, route: Route, service: Service | None, target: Target, facts: RoundFacts, deadline: float
) -> TargetResult:
    name = service.name if service else CONTROLS
    result = TargetResult(name, target.name, target.host, OK)
    for attempt in range(1, config.schedule.retries + 2):
        ctx = Context(
            vantage=vantage,
            route=route,
            service=service,
            target=target,
            fingerprints=config.fingerprints,
            decoy_sni=config.decoy_sni,
            max_addresses=config.schedule.max_addresses,
            timeout=0.0,
            facts=facts,
        )
        if target.addresses or target.is_ip:  # pinned: the connect stages skip DNS
            ctx.addresses, ctx.addresses_from = list(target.addresses) or [target.host], "pinned"
        remaining = deadline - time.monotonic()
        cut = False
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                await _run_checks(ctx, config)
        except TimeoutError:
            cut = True
        if cut and attempt > 1:
            # The confirming retry was cut off: the complete attempt before it stands.
            result.reason = f"{result.reason}; the confirming retry was cut off by the round deadline"
            return result
        verdict, reason = target_verdict(ctx.results)
        if cut and verdict == OK:
            # A check never finished: not ok, and no evidence of a block either.
            verdict, reason = DOWN, "a check was still running"
        result = TargetResult(name, target.name, target.host, verdict, ctx.results, reason, attempt, cut)
        if verdict == OK or cut:
            break
    if result.incomplete:
        result.reason = (result.reason + "; " if result.reason else "") + "round deadline reached"
    return result


async def _run_checks(ctx: Context, config: Config) -> None:
    for check in ctx.target.checks:
        ctx.timeout = config.schedule.timeouts.for_check(check)
        await run_check(ctx, REGISTRY[check])


def _healthy_resolvers(vantage: Vantage, controls: list[TargetResult]) -> frozenset[str]:
    """Resolvers that gave an address for at least one control name this round."""
    healthy = set()
    for control in controls:
        for check in control.checks:
            for answer in check.evidence.get("resolvers", []) if check.check == "dns" else []:
                if answer["addresses"]:
                    healthy.add(answer["resolver"])
    if not any(c.check == "dns" for control in controls for c in control.checks):
        healthy = {r.address for r in vantage.resolvers}  # nothing to judge by: trust them all
    return frozenset(healthy)


def _reached_ipv6(controls: list[TargetResult]) -> bool:
    for control in controls:
        for check in control.checks:
            for connect in check.evidence.get("connects", []) if check.check == "tcp" else []:
                if connect["failure"] is None and ipaddress.ip_address(connect["address"]).version == 6:
                    return True
    return False


def _find(vantage: VantageResult, service: str, target: str) -> TargetResult | None:
    for s in vantage.services:
        if s.service == service:
            return next((t for t in s.targets if t.target == target), None)
    return None


async def run_all(config: Config, services: list[str] | None = None) -> list[VantageResult]:
    """`once`: control vantages first (their results tell outages from blocks), then the rest."""
    controls = [v for v in config.vantages if v.control]
    others = [v for v in config.vantages if not v.control]
    control_results = list(await asyncio.gather(*(run_round(config, v, services=services) for v in controls)))
    reference = next((r for r in control_results if r.online), None)
    other_results = await asyncio.gather(*(run_round(config, v, services=services, control_vantage=reference) for v in others))
    by_name = {r.vantage: r for r in [*control_results, *other_results]}
    return [by_name[v.name] for v in config.vantages]
