"""What keeping 90 days of verdict history costs, and what the status page costs to render with it:
the store's bytes per row (typical and longest names), recording a round, a summary over 90
days (steady and flapping every round), and the whole page and /status.json for the shipped
catalogs' size and ten times it.

    PYTHONPATH=. python3 bench/history_page.py

Prints Markdown for docs/benchmarks.md. Synthetic rounds (typed results as the runner makes
them, evidence included) into a store in a temporary directory; nothing touches the network.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from probe import config as config_module  # noqa: E402
from probe.history import DAY, HISTORY_FILE, History  # noqa: E402
from probe.metrics import State  # noqa: E402
from probe.model import (  # noqa: E402
    CheckResult,
    DNSEvidence,
    DNSQuery,
    Fault,
    Finding,
    ServiceResult,
    TargetResult,
    TCPConnect,
    TCPEvidence,
    TLSEvidence,
    TLSHandshake,
    VantageResult,
    VantageVerdict,
    Verdict,
)
from probe.status_page import history_document, render  # noqa: E402


def _cpu() -> float:
    return time.process_time()


def _target(service: str, name: str, blocked: bool) -> TargetResult:
    host = f"{name}.{service}.example"
    dns = CheckResult("dns", True, evidence=DNSEvidence([DNSQuery("system", False, ["198.18.0.10"]), DNSQuery("1.1.1.1", True, ["198.18.0.10"])], ["198.18.0.10"], "dns"))
    tcp = CheckResult("tcp", True, evidence=TCPEvidence([TCPConnect("198.18.0.10", 443, None, 0.02)]))
    if blocked:
        tls = CheckResult(
            "tls", False, "connection_reset", 0.05,
            Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni", "the decoy SNI example.org to the same address passes"),
            TLSEvidence([TLSHandshake("198.18.0.10", 443, host, "connection_reset")], decoy=TLSHandshake("198.18.0.10", 443, "example.org")),
        )
        return TargetResult(service, name, host, Verdict.SNI_BLOCKED, [dns, tcp, tls], "tls: connection_reset; the decoy passes (differential: decoy_sni)")
    tls = CheckResult("tls", True, evidence=TLSEvidence([TLSHandshake("198.18.0.10", 443, host)]))
    return TargetResult(service, name, host, Verdict.OK, [dns, tcp, tls])


def _round(services: int, targets: int, at: float, blocked: bool) -> VantageResult:
    out = []
    for s in range(services):
        ts = [_target(f"svc{s}", f"t{t}", blocked and t == 0) for t in range(targets)]
        verdict = Verdict.PARTIAL if blocked else Verdict.OK
        out.append(ServiceResult(f"svc{s}", verdict, ts))
    return VantageResult("bench-vantage", VantageVerdict.OK, out, [], started_at=at, duration_seconds=5.0)


def _median_ms(action, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = _cpu()
        action()
        times.append((_cpu() - start) * 1000)
    return statistics.median(times)


def bytes_per_row(directory: Path, name_length: int, rows: int = 200_000) -> float:
    path = directory / f"rows-{name_length}" / HISTORY_FILE
    history = History(path, max_spans=rows, max_gap_seconds=30)
    long = "x" * name_length
    base = 1.8e9
    # One vantage, one service, N targets, each round flipping half of them: one new row per flip.
    targets = 100
    per_round = 1 + 1 + targets
    for i in range(rows // per_round + 1):
        ts = [TargetResult(long, f"{long[:-3]}{t:03d}", "h", Verdict.OK if (i + t) % 2 else Verdict.IP_BLOCKED) for t in range(targets)]
        history.record(VantageResult(long, VantageVerdict.OK, [ServiceResult(long, Verdict.PARTIAL if i % 2 else Verdict.OK, ts)], [], base + i * 60, 5))
    history.prune(now=base + rows)
    count = history.count()
    history._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    history.close()
    return os.path.getsize(path) / count


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="msgreach-bench-history-"))
    lines = [
        "Produced by `PYTHONPATH=. python3 bench/history_page.py` "
        f"on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}). CPU milliseconds, medians of 5.",
        "",
    ]
    typical, longest = bytes_per_row(work, 12), bytes_per_row(work, 64)
    lines.append(
        f"- **Store size**: {typical:.0f} bytes per row with 12-character names, {longest:.0f} with the longest "
        f"names a config allows (64 characters); at the 200,000-row bound that is "
        f"{typical * 200_000 / 2**20:.0f} MiB and {longest * 200_000 / 2**20:.0f} MiB (the hard bound is 128 MiB)."
    )

    now = 1.8e9 + 100 * DAY
    config = config_module.load()
    for services, targets, label in ((3, 11, "the shipped catalogs' size: 3 services × 11 targets"), (3, 110, "ten times that: 3 × 110")):
        history = History(work / f"page-{targets}" / HISTORY_FILE, max_gap_seconds=3 * 3600)
        start = _cpu()
        rounds = 0
        for hours_ago in range(90 * 24, 0, -2):  # 90 days, a round every 2 hours, blocked one day in ten
            history.record(_round(services, targets, now - hours_ago * 3600, blocked=(hours_ago // 24) % 10 == 0))
            rounds += 1
        record_ms = (_cpu() - start) * 1000 / rounds
        latest = _round(services, targets, now - 60, blocked=True)
        history.record(latest)
        state = State(dataclasses.replace(config, services=[]))
        state.record(latest)
        page_en = _median_ms(lambda: render(state, True, "ok", history=history, lang="en", now=now))
        page_ru = _median_ms(lambda: render(state, True, "ok", history=history, lang="ru", view="90d", now=now))
        document = _median_ms(lambda: history_document(state, history, now=now))
        html = render(state, True, "ok", history=history, lang="en", now=now)
        summary = _median_ms(lambda: history.summary("bench-vantage", "svc0", "t0", now=now))
        lines.append(
            f"- **{label}** ({services * targets} targets, {history.count():,} rows after 90 days): recording a round "
            f"{record_ms:.1f} ms; one target's summary (4 views, 90 days) {summary:.2f} ms; the page {page_en:.0f} ms "
            f"(Russian, 90-day view: {page_ru:.0f} ms), {len(html.encode()) / 1024:.0f} KiB; `/status.json`'s history {document:.0f} ms."
        )
        history.close()

    flapping = History(work / "flap" / HISTORY_FILE, max_gap_seconds=300)
    for minute in range(0, 90 * 24 * 60, 7):  # a round every 7 minutes for 90 days, the verdict flipping each time
        flapping.record(_round(1, 1, now - 90 * DAY + minute * 60, blocked=bool(minute % 2)))
    summary_flap = _median_ms(lambda: flapping.summary("bench-vantage", "svc0", "t0", now=now))
    lines.append(
        f"- **A target that flipped every round for 90 days** ({flapping.count():,} rows): its summary (4 views) "
        f"{summary_flap:.0f} ms."
    )
    flapping.close()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
