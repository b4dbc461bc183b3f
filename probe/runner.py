"""One round of one vantage: the controls first, then every service's targets, all bounded.

The control sites decide the vantage's verdict (`ok`, `allowlist`, `vantage_offline`; see
`probe.judge.vantage_verdict`), which resolvers are healthy, and whether IPv6 works. A target
whose verdict is not `ok` is measured again (`schedule.retries` times) before the verdict stands,
so one lost packet never flips it. The round has its own deadline: a target still running then
is reported as incomplete (the judge reads what it had). Checks observe; `probe.judge` decides
every verdict.

Targets whose probes can set off a censor's timed block (probe.triggers: circumvention
signatures) come last, one at a time, after every measurement that may share their address; a
failure soon after such a trigger to its destination is measured again after the cooldown, and
every check's probes to each destination are logged with their timing (`VantageResult.probes`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from probe import _deadline, judge
from probe.checks import REGISTRY
from probe.checks.context import Context, ControlPhase
from probe.checks.measure import measure
from probe.config import Config, Service, Target, Vantage
from probe.helper.client import HelperRound, helper_only
from probe.judge.verdicts import ALLOWLIST_PROBE
from probe.model import (
    CheckResult,
    DNSEvidence,
    ProbeRecord,
    ServiceResult,
    TargetResult,
    TCPEvidence,
    VantageResult,
    VantageVerdict,
    Verdict,
)
from probe.net import Route
from probe.triggers import TriggerClock, destinations, is_trigger, probe_records

log = logging.getLogger(__name__)
CONTROLS = "controls"
OnTarget = Callable[[TargetResult], None]


@dataclass(frozen=True)
class _Round:
    """What every target of one round is measured with."""

    config: Config
    vantage: Vantage
    route: Route
    limit: asyncio.Semaphore
    deadline: float  # time.monotonic()
    helpers: HelperRound
    progress: OnTarget | None
    started: float  # time.monotonic() at the round's start (the probe log's zero)
    triggers: TriggerClock
    probes: list[ProbeRecord]


async def run_round(
    config: Config,
    vantage: Vantage,
    *,
    services: list[str] | None = None,
    control_vantage: VantageResult | None = None,
    progress: OnTarget | None = None,
    triggers: TriggerClock | None = None,
) -> VantageResult:
    """Measure everything from one vantage. Never raises on network trouble; ends by the deadline.
    `progress` is told of each target as its verdict stands (`once` shows a progress line).
    `triggers`: the vantage's trigger probes of earlier rounds (`run` keeps one; None: none)."""
    started_at, started = time.time(), time.monotonic()
    route = Route.of(vantage)
    deadline = started + config.schedule.deadline
    chosen = [s for s in config.services if services is None or s.name in services]
    _import_checks([*config.controls, *(t for s in chosen for t in s.targets)])
    results: list[ServiceResult] = []
    # Helpers abroad (probe/helper/client.py): the helper checks reach them through their
    # contexts, every exchange bounded by the round's deadline and summed up in `lines`.
    with HelperRound(config, route, deadline) as helpers:
        round_ = _Round(
            config, vantage, route, asyncio.Semaphore(concurrency_for(config.schedule.concurrency)), deadline, helpers, progress,
            started, triggers if triggers is not None else TriggerClock(), [],
        )
        # Helper-only targets (call streams, freeze keys, circumvention) need nothing the controls
        # establish: they start with the controls, so a 20 s call stream and its retry fit the
        # round however long slow controls take (an allowlist regime, a lossy line).
        early = asyncio.ensure_future(_gather_services(round_, chosen, _EARLY, ControlPhase()))
        sites = [t for t in config.controls if t.control_class != ALLOWLIST_PROBE]
        try:
            controls = await _gather_targets(round_, None, sites, ControlPhase())
        except BaseException:
            await _cancelled(early)
            raise
        vantage_judgement = judge.judge_vantage([(r.control_class, r) for r in controls])
        phase = ControlPhase(
            controls={c.target: c for c in controls},
            healthy_resolvers=_healthy_resolvers(vantage, controls),
            ipv6=_reached_ipv6(controls),
        )
        probes = [t for t in config.controls if t.control_class == ALLOWLIST_PROBE]
        if vantage_judgement.verdict == VantageVerdict.ALLOWLIST and probes:
            # Under an allowlist only: what it is keyed on (names, addresses), per family.
            try:
                controls += await _gather_targets(round_, None, probes, phase)
            except BaseException:
                await _cancelled(early)
                raise
            vantage_judgement = judge.judge_vantage([(r.control_class, r) for r in controls])
        if vantage_judgement.verdict == VantageVerdict.VANTAGE_OFFLINE:
            await _cancelled(early)
            results = [judge.unmeasured_service(s.name, [(t.name, t.host) for t in s.targets]) for s in chosen]
        else:  # under `allowlist` too: services are measured and their evidence kept
            helpers.ask(chosen)  # control helpers measure the same targets meanwhile
            try:
                rest = await _gather_services(round_, chosen, _AFTER_CONTROLS, phase)
            except BaseException:
                await _cancelled(early)
                raise
            first = await early
            views = await helpers.views()  # the asks end by the round's deadline themselves
            # Last, one at a time: the probes that can set off a timed block of their address.
            last = await _gather_services(round_, chosen, _LAST, phase, workers=1)
            for service, measured_early, measured, measured_last in zip(chosen, first, rest, last, strict=True):
                targets = _in_order(service, measured_early + measured + measured_last)
                targets = [judge.judge_with_helpers(t, views[(service.name, t.target)]) if (service.name, t.target) in views else t for t in targets]
                if control_vantage is not None:
                    targets = [judge.confirm_down_by_control(t, judge.find_target(control_vantage, service.name, t.target)) for t in targets]
                results.append(ServiceResult(service.name, judge.service_verdict(targets), targets))
        lines = helpers.lines()

    return VantageResult(
        vantage=vantage.name,
        verdict=vantage_judgement.verdict,
        services=results,
        controls=controls,
        started_at=started_at,
        duration_seconds=time.monotonic() - started,
        healthy_resolvers=sorted(phase.healthy_resolvers or ()),
        reason=vantage_judgement.reason,
        reasons=vantage_judgement.reasons,
        helpers=lines,
        probes=sorted(round_.probes, key=lambda p: (p.start, p.destination)),
        allowlist=list(vantage_judgement.allowlist),
        ipv6=phase.ipv6,
    )


def _import_checks(targets: Iterable[Target]) -> None:
    """The round's check modules and their analysers, imported before anything is measured
    (REGISTRY and ANALYSERS import on first use): an import holds the loop (dnspython's is 0.15 s,
    more on a busy machine), and a call stream that started with the controls would send its
    first second late, in a burst."""
    for name in {check for target in targets for check in target.checks}:
        REGISTRY[name]
        judge.ANALYSERS[name]


_EARLY, _AFTER_CONTROLS, _LAST = "early", "after controls", "last"


def _phase_of(target: Target) -> str:
    """Helper-only targets start with the controls, trigger targets come last, the rest between."""
    if is_trigger(target):
        return _LAST
    return _EARLY if helper_only(target) else _AFTER_CONTROLS


async def _gather_services(
    round_: _Round, chosen: list[Service], phase_name: str, phase: ControlPhase, *, workers: int | None = None,
) -> list[list[TargetResult]]:
    """Each service's targets of one phase of the round, measured."""
    if workers is not None:  # one queue across services: `workers` targets at a time in all
        targets = [(s, t) for s in chosen for t in s.targets if _phase_of(t) == phase_name]
        measured = await _gather_pairs(round_, targets, phase, workers)
        return [[r for (s, _), r in zip(targets, measured, strict=True) if s is service] for service in chosen]
    return list(await asyncio.gather(*(
        _gather_targets(round_, s, [t for t in s.targets if _phase_of(t) == phase_name], phase) for s in chosen
    )))


def _in_order(service: Service, results: list[TargetResult]) -> list[TargetResult]:
    """A service's results in its targets' order (helper-only ones were measured apart)."""
    by_name = {r.target: r for r in results}
    return [by_name[t.name] for t in service.targets]


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it ended (nothing of it is used; our own cancellation still ends us)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a failure of what was thrown away is not logged as unhandled


# A target holds at most a few sockets at once (a connect per address and port, a decoy, a
# resolver's); the rest of the process (listener, archive, scrapes) keeps a reserve.
_SOCKETS_PER_TARGET = 8
_RESERVED_DESCRIPTORS = 64


def concurrency_for(configured: int, *, soft_limit: int | None = None) -> int:
    """The configured concurrency, lowered to what the descriptor limit can carry: running out
    of descriptors makes every connect fail, which is the monitor's fault, not a block."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, (soft_limit - _RESERVED_DESCRIPTORS) // _SOCKETS_PER_TARGET))


def prepare_process() -> None:
    """What `run` and `once` set up before anything else: the descriptor limit, TLS buffers."""
    raise_descriptor_limit()
    shrink_tls_read_buffers()


def shrink_tls_read_buffers() -> None:
    """asyncio gives every TLS connection a zero-filled 256 KiB read buffer (`SSLProtocol.max_size`,
    "buffer size passed to read()"); a TLS record is at most 16 KiB, and a round holds
    `concurrency` connections at once. 64 KiB keeps reads large for the throughput check and
    cuts what a round allocates and zero-fills per connection by three quarters (and the heap's
    holes with it)."""
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = 64 * 1024


_libc_malloc_trim: Any = None


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system after a round (glibc's `malloc_trim(0)`).
    A round's TLS buffers and records leave holes in the heap that glibc keeps: without this,
    `run` grows over its first rounds. A no-op where the C library has no malloc_trim (musl,
    macOS)."""
    global _libc_malloc_trim
    if _libc_malloc_trim is None:
        import ctypes

        _libc_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", False)
    if _libc_malloc_trim:
        _libc_malloc_trim(0)


def raise_descriptor_limit() -> int:
    """Raise the soft descriptor limit to the hard one (distributions start at 1024); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


async def _gather_targets(round_: _Round, service: Service | None, targets: list[Target], phase: ControlPhase) -> list[TargetResult]:
    return await _gather_pairs(round_, [(service, t) for t in targets], phase, concurrency_for(round_.config.schedule.concurrency))


async def _gather_pairs(round_: _Round, targets: Sequence[tuple[Service | None, Target]], phase: ControlPhase, workers: int) -> list[TargetResult]:
    # A few workers take the targets in turn, rather than a task per target waiting on `limit`,
    # which would hold a task (and anyio's per-task state under httpx) for every target at once.
    results: list[TargetResult | None] = [None] * len(targets)
    queue = iter(enumerate(targets))

    async def worker() -> None:
        for index, (service, target) in queue:
            async with round_.limit:
                results[index] = result = await _measure_target(round_, service, target, phase)
            if round_.progress is not None:
                round_.progress(result)

    await asyncio.gather(*(worker() for _ in range(min(len(targets), workers))))
    measured = [r for r in results if r is not None]
    assert len(measured) == len(targets), "a worker ended without its targets"  # gather raised otherwise
    return measured


def new_context(round_: _Round, service: Service | None, target: Target, phase: ControlPhase) -> Context:
    """A fresh context for one attempt at one target."""
    config = round_.config
    ctx = Context(
        vantage=round_.vantage,
        route=round_.route,
        service=service,
        target=target,
        fingerprints=config.fingerprints,
        decoy_sni=config.decoy_sni,
        max_addresses=config.schedule.max_addresses,
        timeout=0.0,
        control_phase=phase,
        helper_round=round_.helpers,
    )
    if target.addresses or target.is_ip:  # pinned: the connect stages skip DNS
        ctx.addresses, ctx.addresses_from = list(target.addresses) or [target.host], "pinned"
    return ctx


async def _measure_target(round_: _Round, service: Service | None, target: Target, phase: ControlPhase) -> TargetResult:
    config = round_.config
    name = service.name if service else CONTROLS
    cooldown = config.schedule.trigger_cooldown_seconds
    trigger = is_trigger(target)
    if trigger and cooldown > 0 and (held := round_.triggers.held(name, target.name, time.monotonic(), cooldown)) is not None:
        return held  # its destination still cools after a trigger that was followed by failures
    result: TargetResult | None = None
    attempt, waited = 1, False
    while attempt <= config.schedule.retries + 1:
        ctx = new_context(round_, service, target, phase)
        began = time.monotonic()
        remaining = round_.deadline - began
        cut = False
        try:
            async with _deadline.deadline(max(remaining, 0.001)):
                await run_checks(ctx, config, target.checks)
        except TimeoutError:
            cut = True
        finally:
            ctx.close_streams()
        if cut and result is not None:
            return judge.retry_cut(result)  # the complete attempt before it stands
        judgement = judge.judge_attempt(ctx.results, cut=cut)
        after = None
        if judgement.verdict != Verdict.OK and cooldown > 0:
            after = round_.triggers.after({d for c in ctx.results for d in destinations(c.evidence)}, began, cooldown)
        if after is not None:
            note, cooled = after
            round_.triggers.arm(note.destination, began)
            if not waited and not cut and cooled < round_.deadline - 1.0:
                # Measured again once the cooldown is over, the round's deadline allowing; this
                # attempt was not the target's: it does not count as a retry.
                _log(round_, name, target, ctx.results, began, attempt)
                waited = True
                await asyncio.sleep(max(cooled - time.monotonic(), 0.0))
                continue
            judgement = judge.judge_attempt(ctx.results, cut=cut, after_trigger=note)
        if result is not None and not cut and (stands := judge.retry_inconclusive(result, judgement, ctx.results)) is not None:
            _log(round_, name, target, ctx.results, began, attempt)
            stands.attempts = attempt
            result = stands
            break
        result = TargetResult(name, target.name, target.host, judgement.verdict, ctx.results, judgement.reason, attempt, cut, judgement.reasons)
        result.after_trigger = after[0] if after is not None and judgement.verdict == Verdict.ERROR else None
        _log(round_, name, target, ctx.results, began, attempt)
        if service is None:
            result.control_class = target.control_class
        if judgement.verdict == Verdict.OK or cut or result.after_trigger is not None:
            break
        attempt += 1
    assert result is not None  # retries >= 0: one attempt at least
    if trigger:
        round_.triggers.sent(result, time.monotonic(), time.time() - (time.monotonic() - round_.started))
    return result


def _log(round_: _Round, service: str, target: Target, checks: list[CheckResult], began: float, attempt: int) -> None:
    """One attempt's probes in the round's probe log."""
    round_.probes.extend(probe_records(service, target.name, attempt, checks, began - round_.started))


async def run_checks(ctx: Context, config: Config, checks: Iterable[str]) -> None:
    """Run `checks` in order on one context, each bounded; results land in `ctx.results`."""
    for check in checks:
        ctx.timeout = config.schedule.timeouts.for_check(check)
        await measure(ctx, REGISTRY[check])


def _healthy_resolvers(vantage: Vantage, controls: list[TargetResult]) -> frozenset[str]:
    """Resolvers that gave an address for at least one control name this round."""
    queries = [q for control in controls for c in control.checks if isinstance(c.evidence, DNSEvidence) for q in c.evidence.resolvers]
    if not queries and not any(c.check == "dns" for control in controls for c in control.checks):
        return frozenset(r.address for r in vantage.resolvers)  # nothing to judge by: trust them all
    return frozenset(q.resolver for q in queries if q.addresses)


def _reached_ipv6(controls: list[TargetResult]) -> bool:
    return any(
        connect.failure is None and ipaddress.ip_address(connect.address).version == 6
        for control in controls
        for check in control.checks
        if isinstance(check.evidence, TCPEvidence)
        for connect in check.evidence.connects
    )


async def run_all(config: Config, services: list[str] | None = None, progress: OnTarget | None = None) -> list[VantageResult]:
    """`once`: control vantages first (their results tell outages from blocks), then the rest."""
    controls = [v for v in config.vantages if v.control]
    others = [v for v in config.vantages if not v.control]
    control_results = list(await asyncio.gather(*(run_round(config, v, services=services, progress=progress) for v in controls)))
    reference = judge.control_reference(control_results, controls)
    other_results = await asyncio.gather(
        *(run_round(config, v, services=services, control_vantage=reference, progress=progress) for v in others)
    )
    by_name = {r.vantage: r for r in [*control_results, *other_results]}
    return [by_name[v.name] for v in config.vantages]
