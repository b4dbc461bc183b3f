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
from dataclasses import replace
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from probe import config as config_module
from probe.config import Config, ConfigError
from probe.history import History, store_path
from probe.metrics import Exposition, State
from probe.runner import run_round
from probe.server import Server

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, config: Config, config_path: str | None):
        self.state = State(config)
        self.config_path = config_path
        self.scheduler = AsyncIOScheduler()
        self.archive = _archive(config)
        self.history = _history(config)
        self.exposition: Exposition | None = None  # the listener's /metrics, rendered after each round
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False

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
                "interval",
                args=[vantage.name],
                id=f"round:{vantage.name}",
                seconds=schedule.interval_seconds,
                jitter=schedule.jitter_seconds or None,
                next_run_time=first + timedelta(seconds=index * 0.5),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(schedule.interval_seconds),
            )

    async def round(self, vantage_name: str) -> None:
        config = self.config
        vantage = next((v for v in config.vantages if v.name == vantage_name), None)
        if vantage is None:
            return
        try:
            reference = None if vantage.control else self.state.control_reference()
            result = await run_round(config, vantage, control_vantage=reference)
        except Exception:  # a bug must not stop the schedule; /healthz will show missing rounds
            log.exception("round of %s failed", vantage_name)
            return
        self.state.record(result)
        try:
            self.history.record(result)
        except Exception:  # a full disk must not stop the rounds; the page shows the gap
            log.exception("verdict history: round of %s not recorded", vantage_name)
        if self.exposition is not None:
            self.exposition.refresh()  # once per round, not once per scrape (after the history: since)
        if self.archive is not None:
            self.archive.append(result)
        log.info("round %s: %s in %.1f s", vantage_name, result.verdict, result.duration_seconds)

    def request_reload(self) -> None:
        """SIGHUP: reload in the background; a SIGHUP during a reload reloads once more after it."""
        self._reload_again = True
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.get_running_loop().create_task(self._reloads())

    async def _reloads(self) -> None:
        while self._reload_again:
            self._reload_again = False
            await self.reload()

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
        self.state.config = replace(new, listen=self.config.listen)
        self.state.version += 1
        known = {v.name for v in new.vantages}
        for name in [n for n in self.state.latest if n not in known]:
            del self.state.latest[name]
        self.archive = _archive(new)
        self.schedule()
        log.info("config reloaded from %s", self.config_path or "<default>")


def _history(config: Config) -> History:
    """The verdict history (a path needs a restart to change; a reload keeps the store)."""
    schedule = config.schedule
    gap = 2 * schedule.interval_seconds + schedule.jitter_seconds + schedule.deadline
    path = store_path(config.state_dir, config.evidence.path)
    if path is not None:
        try:
            history = History(path, max_gap_seconds=gap)
            log.info("verdict history in %s", path)
            return history
        except (OSError, sqlite3.Error) as exc:  # measuring matters more than remembering
            log.error("verdict history: cannot use %s (%s); keeping it in memory until a restart", path, exc)
    return History(None, max_gap_seconds=gap)


def _archive(config: Config):
    if config.evidence.path is None:
        return None
    from probe.evidence import Archive

    return Archive(config.evidence, config.vantages)  # names, country, ASN, source address (scrubbed)


async def serve(config: Config, *, listen: str | None = None, config_path: str | None = None) -> int:
    monitor = Monitor(config, config_path)
    server = Server(monitor.state, config.listen, history=monitor.history)
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
        monitor.scheduler.shutdown(wait=False)
        await server.close()
        monitor.history.close()
    return 0
