"""`msgreach run`: scheduled rounds per vantage, the HTTP listener, reload on SIGHUP.

APScheduler's asyncio scheduler starts a round per vantage every interval (with jitter); one
vantage never runs two rounds at once (max_instances=1) and a late round is coalesced, not
queued. A reload swaps the config between rounds and keeps the metrics' state; the new file is
read and validated in a worker thread, so a slow or hostile file never stalls the listener or
the rounds (and it is refused whole, the running config kept, if anything in it is wrong).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from probe import __version__
from probe import config as config_module
from probe._apscheduler import AsyncIOScheduler, IntervalTrigger
from probe.access import Access
from probe.config import Config, ConfigError
from probe.config.state_dir import ENV_VARIABLE
from probe.history import History, store_path
from probe.metrics import Exposition, State
from probe.model import VantageResult, Verdict, is_block
from probe.runner import return_freed_memory, run_round
from probe.server import Server
from probe.triggers import TriggerClock
from probe.upload import UploadWatch

if TYPE_CHECKING:  # the archive's module is loaded only when the config keeps one
    from probe.evidence import Archive

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, config: Config, config_path: str | None):
        self.state = State(config)
        self.config_path = config_path
        self.scheduler = AsyncIOScheduler()
        self.history, self.state_announcement = _history(config)
        self.archive = _archive(config)
        self.exposition: Exposition | None = None  # the listener's /metrics, rendered after each round
        self._reload_task: asyncio.Task[None] | None = None
        self.also_on_reload: list[Callable[[], Awaitable[None]]] = []  # e.g. the listener's web config
        self._reload_again = False
        self._rounds: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._finished: Counter[str] = Counter()  # rounds (and confirmations) published per vantage
        self._triggers: dict[str, TriggerClock] = {}  # per vantage: its trigger probes, across rounds (probe/triggers.py)

    @property
    def config(self) -> Config:
        return self.state.config

    def schedule(self) -> None:
        schedule = self.config.schedule
        for job in self.scheduler.get_jobs():
            job.remove()
        first = datetime.now()
        # Control vantages go first: the others compare their failures with the controls'.
        ordered = sorted(self.config.vantages, key=lambda v: not v.control)
        for index, vantage in enumerate(ordered):
            self.scheduler.add_job(
                self.round,
                self._every(schedule.interval_seconds, jitter=schedule.jitter_seconds or None),
                args=[vantage.name],
                id=f"round:{vantage.name}",
                next_run_time=first + timedelta(seconds=index * 0.5),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(schedule.interval_seconds),
            )
        self._schedule_upload()

    def _schedule_upload(self) -> None:
        """Reports to the centre (probe/upload.py): the local agent read every few seconds,
        apart from the rounds (a slow round never delays it, a slow agent never delays a round)."""
        settings = self.config.upload
        self.state.upload = None
        if settings is None:
            return
        watch = UploadWatch(settings)

        async def check() -> None:
            self.state.upload = await watch.check()

        self.scheduler.add_job(check, self._every(settings.interval_seconds), id="upload", next_run_time=datetime.now(),
                               max_instances=1, coalesce=True, misfire_grace_time=int(settings.interval_seconds))

    def _every(self, seconds: float, jitter: float | None = None) -> IntervalTrigger:
        """An interval trigger in the scheduler's time zone (what `add_job(..., "interval")`
        makes; probe/_apscheduler.py gives the scheduler no triggers by plugin name)."""
        return IntervalTrigger(seconds=seconds, jitter=jitter, timezone=self.scheduler.timezone)

    async def round(self, vantage_name: str) -> None:
        """A scheduled round: the controls and every service."""
        await self._measure(vantage_name)

    async def confirm(self, vantage_name: str, services: list[str], after: int, delay: float) -> None:
        """The confirmation round: ``delay`` seconds after round number ``after`` of the vantage
        gave ``services`` a new block verdict, measure the controls and those services again and
        publish it like any round, so that the rules' "two consecutive blocked rounds" hold (or
        not: a one-round flap is ok again) well before the next scheduled round. Skipped when a
        scheduled round finished first (it confirmed or cleared the block itself)."""
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            return  # stopping
        await self._measure(vantage_name, services=services, confirming=after)

    def _lock(self, vantage_name: str) -> asyncio.Lock:
        return self._locks.setdefault(vantage_name, asyncio.Lock())

    async def _measure(self, vantage_name: str, *, services: list[str] | None = None, confirming: int | None = None) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._rounds.add(task)
        try:
            # One measurement of a vantage at a time: a confirmation and a scheduled round never overlap.
            async with self._lock(vantage_name):
                config = self.config
                vantage = next((v for v in config.vantages if v.name == vantage_name), None)
                if vantage is None:
                    return
                if confirming is not None:
                    if self._finished[vantage_name] != confirming:
                        log.debug("confirmation round of %s skipped: a scheduled round came first", vantage_name)
                        return
                    services = [s.name for s in config.services if s.name in (services or ())]  # a reload may have removed some
                    if not services:
                        return
                reference = None if vantage.control else self.state.control_reference()
                triggers = self._triggers.setdefault(vantage_name, TriggerClock())
                result = await run_round(config, vantage, services=services, control_vantage=reference, triggers=triggers)
                self._publish(config, result, confirmation=confirming is not None)
                del result
                # Yield once first: the loop's handle that resumed this task after the round's last
                # wait still holds what that wait returned (a service's targets) until this step
                # ends; after it, packing frees the round's records and the trim finds them freed.
                await asyncio.sleep(0)
                self.state.latest.pack()  # what the page and /status.json read, held packed until they do
                return_freed_memory()  # RSS flat from round to round
        except asyncio.CancelledError:
            if self._stopping:  # SIGTERM mid-round: the round is abandoned, not a failure
                log.debug("round of %s interrupted by shutdown", vantage_name)
                return
            raise
        except Exception:  # a bug must not stop the schedule; /healthz will show missing rounds
            log.exception("round of %s failed", vantage_name)
            return
        finally:
            self._rounds.discard(task)

    def _publish(self, config: Config, result: VantageResult, *, confirmation: bool) -> None:
        """Make one round (or confirmation round) what /metrics, the history and the archive show.
        No await in here: nothing else runs between the record and the refresh."""
        vantage_name = result.vantage
        if confirmation:
            shown, blocked = merge_confirmation(self.state.latest.get(vantage_name), result), []
        else:  # the previous round's verdicts only: its results stay packed (probe/kept.py)
            shown, blocked = result, new_blocks(self.state.latest.verdicts(vantage_name), result)
        self._finished[vantage_name] += 1
        self.state.record(shown, measured=result)
        if self.config is not config:  # reloaded during the round: what the reload removed stays out
            self.state.prune(self.config)
        try:
            self.history.record(result)  # what was measured (a confirmation: its services only)
        except Exception:  # a full disk must not stop the rounds; the page shows the gap
            log.exception("verdict history: round of %s not recorded", vantage_name)
        if self.archive is not None:
            self.archive.append(result)
            self.state.record_evidence(vantage_name, written=not self.archive.failing, at=time.time())
        if self.exposition is not None:
            self.exposition.refresh()  # once per round, not once per scrape (after the history and the archive)
        log.info("%s %s: %s", "confirmation round" if confirmation else "round", vantage_name, summary(result))
        delay = self.config.schedule.confirm_delay
        if confirmation or delay is None or self._stopping:
            return  # a confirmation never asks for another one: at most one extra round per round
        if blocked:
            log.info("%s: new block of %s, measured again in %g s", vantage_name, ", ".join(blocked), delay)
            task = asyncio.get_running_loop().create_task(self.confirm(vantage_name, blocked, self._finished[vantage_name], delay))
            self._rounds.add(task)  # stop() cancels it; a reference keeps it alive
            task.add_done_callback(self._rounds.discard)

    async def stop(self) -> None:
        """No new rounds; the ones in flight are cancelled and awaited (nothing half-written:
        the archive is appended without an await in between)."""
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        running = [task for task in (*self._rounds, self._reload_task) if task is not None and not task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def request_reload(self) -> None:
        """SIGHUP: reload in the background; a SIGHUP during a reload reloads once more after it."""
        self._reload_again = True
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.get_running_loop().create_task(self._reloads())

    async def _reloads(self) -> None:
        while self._reload_again:
            self._reload_again = False
            await self.reload()
            for reload in self.also_on_reload:
                await reload()

    async def reload(self) -> None:
        try:
            new = await asyncio.to_thread(config_module.load, self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config:\n%s", exc)
            return
        except Exception:  # a bug in loading must not end the monitor
            log.exception("reload failed, keeping the running config")
            return
        self.apply(new)

    def apply(self, new: Config) -> None:
        """Swap in a validated config (on the event loop, between rounds' steps)."""
        # The listener is not rebound on reload: a new listen address needs a restart.
        self.state.prune(replace(new, listen=self.config.listen))
        self.state.latest.pack()
        self.archive = _archive(new)
        self.schedule()
        log.info("config reloaded from %s", self.config_path or "<default>")


def new_blocks(before: Mapping[str, str] | None, result: VantageResult) -> list[str]:
    """Services whose verdict is a block now and was not one in the previous round, read from
    that round's service verdicts (None: there was none, the first round after a start; its
    results stay packed, probe/kept.py)."""
    before = before or {}
    return [s.service for s in result.services if is_block(s.verdict) and not (s.service in before and is_block(before[s.service]))]


def merge_confirmation(previous: VantageResult | None, confirmation: VantageResult) -> VantageResult:
    """The vantage's picture after a confirmation round: its controls, vantage verdict, timing and
    re-measured services, the other services as the previous round left them."""
    if previous is None:
        return confirmation
    measured = {s.service: s for s in confirmation.services}
    services = [measured.pop(s.service, s) for s in previous.services]
    return replace(confirmation, services=services + list(measured.values()))


def summary(result: VantageResult) -> str:
    """One line a volunteer can read: `ok; telegram partial, whatsapp ok; 1 of 9 target(s) not ok (dc2 ip_blocked); 12.3 s`."""
    targets = [t for s in result.services for t in s.targets]
    failing = [t for t in targets if t.verdict != Verdict.OK]
    parts = [str(result.verdict)]
    if result.services:
        parts.append(", ".join(f"{s.service} {s.verdict}" for s in result.services))
        detail = ", ".join(f"{t.target} {t.verdict}" for t in failing[:3]) + (", …" if len(failing) > 3 else "")
        parts.append(f"{len(failing)} of {len(targets)} target(s) not ok" + (f" ({detail})" if failing else ""))
    parts.append(f"{result.duration_seconds:.1f} s")
    return "; ".join(parts)
def _history(config: Config) -> tuple[History, str]:
    """The verdict history (a path needs a restart to change; a reload keeps the store), and the
    sentence that announces where it is kept."""
    schedule = config.schedule
    gap = 2 * schedule.interval_seconds + schedule.jitter_seconds + schedule.deadline
    path = store_path(config.state_dir, config.evidence.path)
    evidence = f"evidence archive {config.evidence.path}" if config.evidence.path is not None else "evidence archive off"
    if path is None:
        return History(None, max_gap_seconds=gap), (
            f"no state directory (no home directory: set {ENV_VARIABLE} or `state_dir`): verdict history in memory only, lost at exit; {evidence}"
        )
    try:
        return History(path, max_gap_seconds=gap), f"state in {path.parent} (verdict history {path.name}, kept 90 days; {evidence})"
    except (OSError, sqlite3.Error) as exc:  # measuring matters more than remembering
        return History(None, max_gap_seconds=gap), f"cannot keep the verdict history in {path} ({exc}): in memory until a restart; {evidence}"


def _archive(config: Config) -> Archive | None:
    if config.evidence.path is None:
        return None
    from probe.evidence import Archive  # late: only a monitor that keeps evidence loads the archive

    return Archive(config.evidence, config.vantages)  # names, country, ASN, source address (scrubbed)


async def serve(
    config: Config, *, listen: str | None = None, config_path: str | None = None, access: Access | None = None, web_config_path: str | None = None
) -> int:
    """`access`: the listener's protection from a web config (`web_config_path`, read again on
    SIGHUP; default: the config's `listen`)."""
    monitor = Monitor(config, config_path)
    # The first line a volunteer sees: where what outlives a restart is kept (or why it is not).
    unkept = monitor.history.path is None and store_path(config.state_dir, config.evidence.path) is not None
    level = logging.ERROR if unkept else logging.INFO
    log.log(level, "msgreach %s: %s", __version__, monitor.state_announcement)
    server = Server(monitor.state, config.listen, history=monitor.history, access=access)
    if web_config_path is not None:
        monitor.also_on_reload.append(lambda: server.reload_web_config(web_config_path))
    await server.start(listen)
    monitor.exposition = server.exposition
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, monitor.request_reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    monitor.schedule()
    monitor.scheduler.start()
    try:
        await stop.wait()
    finally:
        await monitor.stop()
        await server.close()
        monitor.history.close()
    return 0
