"""Verdict history: when each verdict began and what the last 24 hours, 7, 30 and 90 days looked
like.

A small embedded store (stdlib sqlite3) of *spans*: one row per run of one verdict of one vantage,
service or target (``service == ""`` for the vantage itself, ``target == ""`` for a service). A
round that repeats the verdict extends the latest span; a different verdict, or a gap longer
than ``max_gap_seconds`` (the monitor was stopped), opens a new one. Each round is one
transaction in WAL mode, so a `kill -9` loses at most the round being written, and the file stays
readable.

Bounded three ways: spans older than ``keep_seconds`` (91 days: the 90-day view and a day) are
dropped; never more than ``max_spans`` rows are kept (the oldest go first: a target that flaps
every round shortens its own reach, nobody else's); and SQLite itself refuses to grow the file
past ``max_bytes`` (``max_page_count``), which makes the store drop its oldest quarter and go on.
The file is refused (and the history kept in memory) when it, or its WAL or shared-memory file,
is a symbolic link, a FIFO, a device or anything but a regular file, or when it is larger than
``max_bytes`` before a single read.

It feeds the status page (bars, "since", share of time reachable, the list of changes) and the
metric ``msgreach_target_verdict_since_timestamp_seconds``. With no path it lives in memory: the
same behaviour, forgotten at exit.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from probe.model import VantageResult, Verdict, is_measured, severity

DAY = 86400.0
HISTORY_FILE = "msgreach-history.sqlite3"
_SCHEMA_VERSION = "1"
_PRUNE_EVERY = 60  # rounds between two prunings
_PAGE_SIZE = 4096


@dataclass(frozen=True)
class View:
    """One period the page can show: its length and how many bars it is drawn with."""

    name: str
    seconds: float
    bars: int


# 24 bars of an hour, 28 of 6 hours, 30 of a day, 45 of two days (wide enough on a phone).
VIEWS: tuple[View, ...] = (View("24h", DAY, 24), View("7d", 7 * DAY, 28), View("30d", 30 * DAY, 30), View("90d", 90 * DAY, 45))
VIEW_NAMES: tuple[str, ...] = tuple(v.name for v in VIEWS)
_LONGEST = max(v.seconds for v in VIEWS)


class UnsafeStateFile(OSError):
    """The history's path (or its WAL/shared-memory file) is not a regular file of a sane size."""


def store_path(state_dir: Path | None, evidence_path: Path | None = None) -> Path | None:
    """Where the history lives: ``state_dir``, else beside the evidence archive, else memory."""
    if state_dir is not None:
        return state_dir / HISTORY_FILE
    if evidence_path is not None:
        return evidence_path.parent / HISTORY_FILE
    return None


@dataclass(frozen=True)
class Span:
    verdict: str
    start: float
    end: float


@dataclass
class Bar:
    """One bar of a history strip: the worst verdict seen in it and the share of its covered time
    that was ok (None: no round at all in the bar)."""

    start: float
    end: float
    worst: str | None = None
    ok_share: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"start": round(self.start), "end": round(self.end), "worst": self.worst, "ok_share": None if self.ok_share is None else round(self.ok_share, 4)}


@dataclass
class Summary:
    """What the status page shows of one vantage, service or target: per view (VIEWS) the share of
    measured time that was ok and the bars."""

    verdict: str | None
    since: float | None
    shares: dict[str, float | None] = field(default_factory=dict)
    bars: dict[str, list[Bar]] = field(default_factory=dict)
    changes: list[tuple[float, str]] = field(default_factory=list)  # newest first

    @property
    def share_24h(self) -> float | None:
        return self.shares.get("24h")

    @property
    def share_7d(self) -> float | None:
        return self.shares.get("7d")

    @property
    def bars_24h(self) -> list[Bar]:
        return self.bars.get("24h", [])

    @property
    def bars_7d(self) -> list[Bar]:
        return self.bars.get("7d", [])

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"verdict": self.verdict, "since": None if self.since is None else round(self.since, 3)}
        for name in VIEW_NAMES:
            share = self.shares.get(name)
            data[f"share_{name}"] = None if share is None else round(share, 4)
        for name in VIEW_NAMES:
            data[f"bars_{name}"] = [b.as_json() for b in self.bars.get(name, [])]
        data["changes"] = [{"at": round(at, 3), "verdict": verdict} for at, verdict in self.changes]
        return data


class History:
    def __init__(
        self,
        path: Path | None = None,
        *,
        keep_seconds: float = _LONGEST + DAY,
        max_spans: int = 200_000,
        max_bytes: int = 128 * 1024 * 1024,
        max_gap_seconds: float = 300.0,
    ):
        self.path = path
        self.keep_seconds = keep_seconds
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self.max_gap_seconds = max_gap_seconds
        self._lock = threading.Lock()  # the server and the rounds share one connection
        self._rounds = 0
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _refuse_unsafe(path, max_bytes)
            _create_private(path)
        # nofollow: SQLite itself refuses a symbolic link planted between our check and its open.
        target = f"file:{quote(str(path))}?nofollow=1" if path is not None else ":memory:"
        self._db = sqlite3.connect(target, uri=path is not None, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against a killed process
            self._db.execute(f"PRAGMA journal_size_limit={8 * 1024 * 1024}")  # the WAL shrinks back after a checkpoint
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0] or _PAGE_SIZE
            self._db.execute(f"PRAGMA max_page_count={max(16, max_bytes // page_size)}")
            with self._transaction():
                self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS spans (id INTEGER PRIMARY KEY, vantage TEXT NOT NULL, service TEXT NOT NULL,"
                    " target TEXT NOT NULL, verdict TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL)"
                )
                self._db.execute("CREATE INDEX IF NOT EXISTS spans_by_key ON spans (vantage, service, target, start)")
                self._db.execute("CREATE INDEX IF NOT EXISTS spans_by_end ON spans (end)")
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # --- writing -----------------------------------------------------------------------------

    def record(self, result: VantageResult) -> None:
        """One round of one vantage (a VantageResult), in one transaction. A store at its size
        bound drops its oldest quarter and takes the round."""
        start = float(result.started_at)
        end = start + float(result.duration_seconds)
        entries = [(result.vantage, "", "", str(result.verdict))]
        for service in result.services:
            entries.append((result.vantage, service.service, "", str(service.verdict)))
            entries += [(result.vantage, service.service, t.target, str(t.verdict)) for t in service.targets]
        for attempt in (1, 2):
            try:
                with self._transaction():
                    for vantage, service_name, target, verdict in entries:
                        self._extend(vantage, service_name, target, verdict, start, end)
                    self._rounds += 1
                    if self._rounds % _PRUNE_EVERY == 1:
                        self._prune(end)
                return
            except sqlite3.OperationalError as exc:
                if attempt == 2 or not _is_full(exc):
                    raise
                with self._transaction():
                    self._drop_oldest(self.count_unlocked() // 4 + 1)

    def _extend(self, vantage: str, service: str, target: str, verdict: str, start: float, end: float) -> None:
        row = self._db.execute(
            "SELECT id, verdict, end FROM spans WHERE vantage=? AND service=? AND target=? ORDER BY start DESC LIMIT 1",
            (vantage, service, target),
        ).fetchone()
        if row is not None and start - row[2] <= self.max_gap_seconds:
            if row[1] == verdict:
                self._db.execute("UPDATE spans SET end=? WHERE id=?", (max(end, row[2]), row[0]))
                return
            # The previous verdict is taken to hold until the round that saw the new one began.
            self._db.execute("UPDATE spans SET end=? WHERE id=?", (max(start, row[2]), row[0]))
        self._db.execute(
            "INSERT INTO spans (vantage, service, target, verdict, start, end) VALUES (?, ?, ?, ?, ?, ?)",
            (vantage, service, target, verdict, start, end),
        )

    def _prune(self, now: float) -> None:
        self._db.execute("DELETE FROM spans WHERE end < ?", (now - self.keep_seconds,))
        excess = self.count_unlocked() - self.max_spans
        if excess > 0:
            self._drop_oldest(excess)

    def _drop_oldest(self, count: int) -> None:
        self._db.execute("DELETE FROM spans WHERE id IN (SELECT id FROM spans ORDER BY start LIMIT ?)", (count,))

    def prune(self, now: float | None = None) -> None:
        with self._transaction():
            self._prune(time.time() if now is None else now)

    # --- reading -----------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return self.count_unlocked()

    def count_unlocked(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM spans").fetchone()[0])

    def since(self, vantage: str, service: str = "", target: str = "") -> float | None:
        """When the current verdict began (across gaps and restarts while it did not change)."""
        with self._lock:
            return self._since(vantage, service, target)

    def _since(self, vantage: str, service: str, target: str) -> float | None:
        key = (vantage, service, target)
        row = self._db.execute("SELECT verdict FROM spans WHERE vantage=? AND service=? AND target=? ORDER BY start DESC LIMIT 1", key).fetchone()
        if row is None:
            return None
        (value,) = self._db.execute(
            "SELECT MIN(start) FROM spans WHERE vantage=? AND service=? AND target=? AND start > "
            "COALESCE((SELECT MAX(start) FROM spans WHERE vantage=? AND service=? AND target=? AND verdict != ?), -1)",
            (*key, *key, row[0]),
        ).fetchone()
        return float(value) if value is not None else None

    def current_targets(self) -> list[tuple[str, str, str, str, float]]:
        """(vantage, service, target, verdict, since) of every target's latest span."""
        with self._lock:
            rows = self._db.execute(
                "SELECT vantage, service, target, verdict FROM spans s WHERE target != '' AND start ="
                " (SELECT MAX(start) FROM spans WHERE vantage=s.vantage AND service=s.service AND target=s.target)"
            ).fetchall()
            return [(v, s, t, verdict, self._since(v, s, t) or 0.0) for v, s, t, verdict in rows]

    def summary(self, vantage: str, service: str = "", target: str = "", *, now: float | None = None, changes: int = 30) -> Summary:
        now = time.time() if now is None else now
        with self._lock:
            spans = [
                Span(*row)
                for row in self._db.execute(
                    "SELECT verdict, start, end FROM spans WHERE vantage=? AND service=? AND target=? AND end >= ? ORDER BY start",
                    (vantage, service, target, now - _LONGEST),
                )
            ]
            since = self._since(vantage, service, target)
        summary = Summary(verdict=spans[-1].verdict if spans else None, since=since)
        for view in VIEWS:
            summary.shares[view.name] = _ok_share(spans, now - view.seconds, now)
            summary.bars[view.name] = _bars(spans, now - view.seconds, now, view.bars)
        summary.changes = [(s.start, s.verdict) for s in reversed(spans) if s.start >= now - _LONGEST][:changes]
        return summary


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the lock (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self._db, self._lock = db, lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        try:
            if kind is None:
                self._db.execute("COMMIT")
            elif self._db.in_transaction:  # SQLite rolls back by itself on some errors (a full store)
                self._db.execute("ROLLBACK")
        finally:
            self._lock.release()


def _refuse_unsafe(path: Path, max_bytes: int) -> None:
    """The store and SQLite's companions must be regular files (or absent), and the store no
    larger than its bound: a FIFO would hang the open, a link would write elsewhere, a huge
    planted file would be read."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = os.lstat(file)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            raise UnsafeStateFile(f"{file} is {kind}: refusing to use it")
        if file == path and info.st_size > max_bytes:
            raise UnsafeStateFile(f"{file} is {info.st_size} bytes, over the history's bound of {max_bytes}: move it away")


def _create_private(path: Path) -> None:
    """Create the store readable by its owner and group only (SQLite gives its WAL and
    shared-memory files the same mode): it tells when the volunteer's line was up."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640))
    except FileExistsError:
        pass


def _is_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc)  # SQLITE_FULL


def _overlap(span: Span, start: float, end: float) -> float:
    return max(0.0, min(span.end, end) - max(span.start, start))


def _ok_share(spans: list[Span], start: float, end: float) -> float | None:
    """Share of the measured time (not offline, not the monitor's own error) that was ok."""
    covered = sum(_overlap(s, start, end) for s in spans if is_measured(s.verdict))
    if covered <= 0:
        return None
    return sum(_overlap(s, start, end) for s in spans if s.verdict == Verdict.OK) / covered


def _bars(spans: list[Span], start: float, end: float, count: int) -> list[Bar]:
    """One pass over the spans (sorted by start), each touching only its own bars: 90 days of a
    target that flapped every minute stay cheap to draw."""
    width = (end - start) / count
    bars = [Bar(start + i * width, start + (i + 1) * width) for i in range(count)]
    ok_time = [0.0] * count
    measured = [0.0] * count
    for span in spans:
        if span.end < start or span.start >= end:
            continue
        first = max(0, int((span.start - start) // width))
        last = min(count - 1, int((span.end - start) // width))
        for i in range(first, last + 1):
            bar = bars[i]
            if span.end < bar.start or span.start >= bar.end:
                continue  # a span ending exactly on a bar's start belongs to it; one starting at its end does not
            if bar.worst is None or severity(span.verdict) < severity(bar.worst):
                bar.worst = span.verdict
            if is_measured(span.verdict):
                covered = _overlap(span, bar.start, bar.end)
                measured[i] += covered
                ok_time[i] += covered if span.verdict == Verdict.OK else 0.0
    for i, bar in enumerate(bars):
        if bar.worst is not None and measured[i] > 0:
            bar.ok_share = ok_time[i] / measured[i]
    return bars
