"""Verdict history: when each verdict began and what the last 24 hours and 7 days looked like.

A small embedded store (stdlib sqlite3) of *spans*: one row per run of one verdict of one vantage,
service or target (``service == ""`` for the vantage itself, ``target == ""`` for a service). A
round that repeats the verdict extends the latest span; a different verdict, or a gap longer
than ``max_gap_seconds`` (the monitor was stopped), opens a new one. Each round is one
transaction in WAL mode, so a `kill -9` loses at most the round being written, and the file stays
readable. The store is bounded twice: spans older than ``keep_seconds`` are dropped, and never
more than ``max_spans`` rows are kept (the oldest go first).

It feeds the status page (bars, "blocked since", share of time reachable, the list of changes)
and the metric ``msgreach_target_verdict_since_timestamp_seconds``. With no path it lives in
memory: the same behaviour, forgotten at exit.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.model import Verdict, is_measured, worst

DAY = 86400.0
HISTORY_FILE = "msgreach-history.sqlite3"
_SCHEMA_VERSION = "1"
_PRUNE_EVERY = 60  # rounds between two prunings


def store_path(state_dir: Path | None, evidence_path: Path | None) -> Path | None:
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
    """What the status page shows of one vantage, service or target."""

    verdict: str | None
    since: float | None
    share_24h: float | None
    share_7d: float | None
    bars_24h: list[Bar] = field(default_factory=list)
    bars_7d: list[Bar] = field(default_factory=list)
    changes: list[tuple[float, str]] = field(default_factory=list)  # newest first

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "since": None if self.since is None else round(self.since, 3),
            "share_24h": None if self.share_24h is None else round(self.share_24h, 4),
            "share_7d": None if self.share_7d is None else round(self.share_7d, 4),
            "bars_24h": [b.as_json() for b in self.bars_24h],
            "bars_7d": [b.as_json() for b in self.bars_7d],
            "changes": [{"at": round(at, 3), "verdict": verdict} for at, verdict in self.changes],
        }


class History:
    def __init__(self, path: Path | None = None, *, keep_seconds: float = 8 * DAY, max_spans: int = 200_000, max_gap_seconds: float = 300.0):
        self.path = path
        self.keep_seconds = keep_seconds
        self.max_spans = max_spans
        self.max_gap_seconds = max_gap_seconds
        self._lock = threading.Lock()  # the server and the rounds share one connection
        self._rounds = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against a killed process
        with self._transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS spans (id INTEGER PRIMARY KEY, vantage TEXT NOT NULL, service TEXT NOT NULL,"
                " target TEXT NOT NULL, verdict TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS spans_by_key ON spans (vantage, service, target, start)")
            self._db.execute("CREATE INDEX IF NOT EXISTS spans_by_end ON spans (end)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self):
        return _Transaction(self._db, self._lock)

    # --- writing -----------------------------------------------------------------------------

    def record(self, result: Any) -> None:
        """One round of one vantage (a VantageResult), in one transaction."""
        start = float(result.started_at)
        end = start + float(result.duration_seconds)
        entries = [(result.vantage, "", "", str(result.verdict))]
        for service in result.services:
            entries.append((result.vantage, service.service, "", str(service.verdict)))
            entries += [(result.vantage, service.service, t.target, str(t.verdict)) for t in service.targets]
        with self._transaction():
            for vantage, service, target, verdict in entries:
                self._extend(vantage, service, target, verdict, start, end)
            self._rounds += 1
            if self._rounds % _PRUNE_EVERY == 1:
                self._prune(end)

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
        excess = self._db.execute("SELECT COUNT(*) FROM spans").fetchone()[0] - self.max_spans
        if excess > 0:
            self._db.execute("DELETE FROM spans WHERE id IN (SELECT id FROM spans ORDER BY start LIMIT ?)", (excess,))

    def prune(self, now: float | None = None) -> None:
        with self._transaction():
            self._prune(time.time() if now is None else now)

    # --- reading -----------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]

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
        return value

    def current_targets(self) -> list[tuple[str, str, str, str, float]]:
        """(vantage, service, target, verdict, since) of every target's latest span."""
        with self._lock:
            rows = self._db.execute(
                "SELECT vantage, service, target, verdict FROM spans s WHERE target != '' AND start ="
                " (SELECT MAX(start) FROM spans WHERE vantage=s.vantage AND service=s.service AND target=s.target)"
            ).fetchall()
            return [(v, s, t, verdict, self._since(v, s, t) or 0.0) for v, s, t, verdict in rows]

    def summary(self, vantage: str, service: str = "", target: str = "", *, now: float | None = None, changes: int = 20) -> Summary:
        now = time.time() if now is None else now
        with self._lock:
            spans = [
                Span(*row)
                for row in self._db.execute(
                    "SELECT verdict, start, end FROM spans WHERE vantage=? AND service=? AND target=? AND end >= ? ORDER BY start",
                    (vantage, service, target, now - 7 * DAY),
                )
            ]
            since = self._since(vantage, service, target)
        summary = Summary(
            verdict=spans[-1].verdict if spans else None,
            since=since,
            share_24h=_ok_share(spans, now - DAY, now),
            share_7d=_ok_share(spans, now - 7 * DAY, now),
            bars_24h=_bars(spans, now - DAY, now, 24),
            bars_7d=_bars(spans, now - 7 * DAY, now, 28),
        )
        summary.changes = [(s.start, s.verdict) for s in reversed(spans) if s.start >= now - 7 * DAY][:changes]
        return summary


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the lock (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self._db, self._lock = db, lock

    def __enter__(self) -> None:
        self._lock.acquire()
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self._db.execute("ROLLBACK" if kind else "COMMIT")
        finally:
            self._lock.release()


def _overlap(span: Span, start: float, end: float) -> float:
    return max(0.0, min(span.end, end) - max(span.start, start))


def _ok_share(spans: list[Span], start: float, end: float) -> float | None:
    """Share of the measured time (not offline, not the monitor's own error) that was ok."""
    covered = sum(_overlap(s, start, end) for s in spans if is_measured(s.verdict))
    if covered <= 0:
        return None
    return sum(_overlap(s, start, end) for s in spans if s.verdict == Verdict.OK) / covered


def _bars(spans: list[Span], start: float, end: float, count: int) -> list[Bar]:
    width = (end - start) / count
    bars = []
    for i in range(count):
        bar = Bar(start + i * width, start + (i + 1) * width)
        inside = [s for s in spans if s.end >= bar.start and s.start < bar.end]
        if inside:
            bar.worst = worst(s.verdict for s in inside)
            bar.ok_share = _ok_share(inside, bar.start, bar.end)
        bars.append(bar)
    return bars

