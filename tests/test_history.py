"""probe/history.py: spans, "since" across restarts, bars and shares, bounds, and a store that
survives `kill -9` of the process writing it (a real child process, a real SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from probe.history import DAY, HISTORY_FILE, History, store_path
from probe.model import ServiceResult, TargetResult, VantageResult, VantageVerdict, Verdict

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0


def round_result(at: float, verdict: Verdict, *, vantage: str = "ru-1", regime: VantageVerdict = VantageVerdict.OK) -> VantageResult:
    """One round of one vantage: service `telegram` with targets `web` (the given verdict) and `dc1` (ok)."""
    targets = [TargetResult("telegram", "web", "web.telegram.org", verdict), TargetResult("telegram", "dc1", "149.154.167.50", Verdict.OK)]
    service = Verdict.OK if verdict == Verdict.OK else Verdict.PARTIAL
    return VantageResult(vantage, regime, [ServiceResult("telegram", service, targets)], [], started_at=at, duration_seconds=5.0)


def test_since_follows_changes_and_repeats_extend_a_span():
    history = History(max_gap_seconds=300)
    for i in range(10):
        history.record(round_result(T0 + 60 * i, Verdict.OK))
    for i in range(10, 15):
        history.record(round_result(T0 + 60 * i, Verdict.IP_BLOCKED))
    assert history.since("ru-1", "telegram", "web") == T0 + 600
    assert history.since("ru-1", "telegram", "dc1") == T0
    assert history.since("ru-1", "telegram") == T0 + 600  # the service turned partial
    assert history.since("ru-1") == T0
    # 3 keys with one span each (vantage, dc1) and two spans each (service, web): 6 rows, not 75
    assert history.count() == 6
    summary = history.summary("ru-1", "telegram", "web", now=T0 + 15 * 60)
    assert summary.verdict == "ip_blocked"
    assert summary.changes == [(T0 + 600, "ip_blocked"), (T0, "ok")]
    assert summary.share_24h == pytest.approx(600 / (14 * 60 + 5), rel=1e-3)


def test_bars_show_the_worst_verdict_of_each_period_and_gaps_as_no_data():
    history = History(max_gap_seconds=300)
    now = T0 + DAY
    for i in range(0, 24 * 60, 1):  # one round a minute for a day, ip_blocked in hour 20 only
        at = T0 + 60 * i
        history.record(round_result(at, Verdict.IP_BLOCKED if 20 * 60 <= i < 21 * 60 else Verdict.OK))
    summary = history.summary("ru-1", "telegram", "web", now=now)
    worst = [bar.worst for bar in summary.bars_24h]
    assert worst[20] == "ip_blocked"
    assert worst[21] in ("ip_blocked", "ok")  # the hour after holds the last blocked round's end
    assert worst.count("ip_blocked") <= 2 and worst[:20] == ["ok"] * 20
    assert summary.share_24h == pytest.approx(23 / 24, abs=0.01)
    week = history.summary("ru-1", "telegram", "web", now=now).bars_7d
    assert [bar.worst for bar in week[:24]] == [None] * 24  # six days without a round: no data
    assert [bar.worst for bar in week[-4:]] == ["ok", "ok", "ok", "ip_blocked"]  # 6-hour bars of the day


def test_a_restart_keeps_since_and_a_long_gap_is_not_coverage(tmp_path):
    path = tmp_path / HISTORY_FILE
    first = History(path, max_gap_seconds=300)
    first.record(round_result(T0, Verdict.SNI_BLOCKED))
    first.record(round_result(T0 + 60, Verdict.SNI_BLOCKED))
    first.close()
    again = History(path, max_gap_seconds=300)
    again.record(round_result(T0 + 3600, Verdict.SNI_BLOCKED))  # an hour later, same verdict
    assert again.since("ru-1", "telegram", "web") == T0  # still blocked since the first round
    summary = again.summary("ru-1", "telegram", "web", now=T0 + 3700)
    assert [bar.worst for bar in summary.bars_24h][-1] == "sni_blocked"
    assert summary.share_24h == 0.0


def test_the_store_is_bounded_by_age_and_by_rows():
    history = History(keep_seconds=DAY, max_spans=50, max_gap_seconds=300)
    for i in range(200):  # every round changes the verdict: a new span per key and round
        history.record(round_result(T0 + 60 * i, Verdict.OK if i % 2 else Verdict.IP_BLOCKED))
    history.prune(now=T0 + 60 * 200)
    assert history.count() <= 50
    history.prune(now=T0 + 60 * 200 + 2 * DAY)
    assert history.count() == 0


def test_store_path_defaults():
    assert store_path(Path("/state"), Path("/ev/archive.jsonl")) == Path("/state") / HISTORY_FILE
    assert store_path(None, Path("/ev/archive.jsonl")) == Path("/ev") / HISTORY_FILE
    assert store_path(None, None) is None


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    sys.path.insert(0, sys.argv[3])
    from pathlib import Path
    from probe.history import History
    from probe.model import Verdict
    from test_history import round_result
    history = History(Path(sys.argv[1]), max_gap_seconds=300)
    i = 0
    while True:
        history.record(round_result(1_800_000_000.0 + 60 * i, Verdict.OK if (i // 7) % 2 == 0 else Verdict.IP_BLOCKED))
        i += 1
        if i == 50:
            print("written", flush=True)
    """
)


def test_the_store_survives_kill_9_of_its_writer(tmp_path):
    path = tmp_path / HISTORY_FILE
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(ROOT), str(ROOT / "tests")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "written"
        time.sleep(0.2)  # let it write on: the kill lands in the middle of some transaction
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    history = History(path, max_gap_seconds=300)
    rows = history.count()
    assert rows >= 4 * 50 // 7  # every committed round is there
    summary = history.summary("ru-1", "telegram", "web", now=T0 + 60 * 50)
    assert summary.verdict in ("ok", "ip_blocked") and summary.since is not None
    history.record(round_result(T0 + 100_000, Verdict.OK, vantage="ru-2"))  # and it takes new rounds
    assert history.count() > rows


def test_views_reach_90_days_and_the_store_keeps_them():
    history = History(max_gap_seconds=300)
    now = T0 + 100 * DAY
    history.record(round_result(now - 95 * DAY, Verdict.IP_BLOCKED))  # beyond every view
    history.record(round_result(now - 80 * DAY, Verdict.DNS_BLOCKED))  # in the 90-day view only
    history.record(round_result(now - 20 * DAY, Verdict.SNI_BLOCKED))  # 30 and 90 days
    history.record(round_result(now - 60, Verdict.OK))
    summary = history.summary("ru-1", "telegram", "web", now=now)
    assert {name: len(bars) for name, bars in summary.bars.items()} == {"24h": 24, "7d": 28, "30d": 30, "90d": 45}
    worst_90 = [bar.worst for bar in summary.bars["90d"]]
    assert worst_90[5] == "dns_blocked" and worst_90[35] == "sni_blocked" and worst_90[-1] == "ok"
    assert [bar.worst for bar in summary.bars["30d"]][10] == "sni_blocked"
    assert "dns_blocked" not in [bar.worst for bar in summary.bars["30d"]]
    assert [v for _, v in summary.changes] == ["ok", "sni_blocked", "dns_blocked"]  # 90 days of changes
    assert summary.shares["24h"] == 1.0 and summary.shares["90d"] is not None
    document = summary.as_json()
    assert {"share_30d", "share_90d", "bars_30d", "bars_90d"} <= set(document)
    history.prune(now=now)
    assert history.count() == 3 * 4  # 4 keys (vantage, service, 2 targets) x 4 rounds apart; the 95-day-old round went
    assert history.summary("ru-1", "telegram", "web", now=now).bars["90d"][5].worst == "dns_blocked"


def test_the_store_refuses_links_fifos_and_oversized_files(tmp_path):
    from probe.history import UnsafeStateFile

    elsewhere = tmp_path / "elsewhere.sqlite3"
    link = tmp_path / "link" / HISTORY_FILE
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    with pytest.raises(UnsafeStateFile, match="symbolic link"):
        History(link)
    assert not elsewhere.exists()

    fifo = tmp_path / "fifo" / HISTORY_FILE
    fifo.parent.mkdir()
    os.mkfifo(fifo.with_name(HISTORY_FILE + "-wal"))  # a FIFO would hang SQLite's open
    with pytest.raises(UnsafeStateFile, match="not a regular file"):
        History(fifo)

    big = tmp_path / "big" / HISTORY_FILE
    big.parent.mkdir()
    with open(big, "wb") as handle:
        handle.truncate(2 * 1024 * 1024)
    with pytest.raises(UnsafeStateFile, match="over the history's bound"):
        History(big, max_bytes=1024 * 1024)


def test_a_store_at_its_size_bound_drops_its_oldest_and_goes_on(tmp_path):
    path = tmp_path / HISTORY_FILE
    history = History(path, max_bytes=256 * 1024, max_spans=10**9, max_gap_seconds=300)
    for i in range(3000):  # every round flips web: a new span per round, far more than 256 KiB holds
        history.record(round_result(T0 + 60 * i, Verdict.OK if i % 2 else Verdict.IP_BLOCKED))
    assert os.path.getsize(path) <= 256 * 1024
    summary = history.summary("ru-1", "telegram", "web", now=T0 + 60 * 3000)
    assert summary.verdict == "ok" and summary.since == T0 + 60 * 2999  # the newest rounds are all there
    assert history.since("ru-1", "telegram", "dc1") > T0  # the oldest went to make room
    history.close()


def test_the_store_is_private_to_its_owner(tmp_path):
    path = tmp_path / "state" / HISTORY_FILE
    History(path).close()
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
