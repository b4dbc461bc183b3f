#!/usr/bin/env python3
"""The fleet's upload through a censor (issue #18, item 7): how late samples reach the centre,
how big each connection is, and whether any is lost, over long freezes.

    sudo python3 bench/upload_freeze.py [--minutes 30] [--targets 40] [--rtt-ms 80]   # from the repository root

Runs tests/deploy/upload_line.py's three namespaces (volunteer, censor, centre) with the shipped
agent run.sh, gateway nginx.conf and central prometheus.yml, the shipped scrape interval (15 s),
and msgreach measuring `--targets` local targets (40 give about the series of the shipped
catalogs). The router delays every packet by half of `--rtt-ms` (a line abroad). Then:

1. warm-up, 2 minutes;
2. the DPI's freeze for `--minutes`: every packet of a connection to the centre past 16 KB or 25
   packets (both directions) dropped;
3. the line frozen whole for `--minutes` (a freeze no TLS handshake fits), then reopened, until
   the agent has caught up (at most 15 minutes).

It polls the centre every 3 s for the samples of `up{job="msgreach"}` (one per scrape): a
sample's delay is the first poll that saw it minus its timestamp. Every 20 s it reads the
router's conntrack (bytes and packets of each connection to the centre, both directions), the
agent's remote-write counters and msgreach's /status.json. Writes bench/out/upload-freeze.json
and prints Markdown for docs/benchmarks.md. About 2 × minutes + 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

from mrfkit import Processes
from upload_line import (
    BUDGET_BYTES,
    Arrivals,
    Censor,
    Fleet,
    namespaces,
    percentile,
)

POLL, SNAPSHOT = 3.0, 20.0


class Recorder:
    """Everything measured in one phase."""

    def __init__(self, fleet: Fleet, censor: Censor, arrivals: Arrivals):
        self.fleet, self.censor, self.arrivals = fleet, censor, arrivals
        self.connections: dict[int, tuple[int, int]] = {}  # source port -> (bytes, packets), the largest seen
        self.states: list[tuple[float, str | None]] = []
        self._snapshot_at = 0.0

    def tick(self) -> None:
        self.fleet.check_alive()
        self.arrivals.poll()
        now = time.time()
        if now - self._snapshot_at >= SNAPSHOT:
            self._snapshot_at = now
            for c in self.censor.connections():
                old = self.connections.get(c.sport, (0, 0))
                self.connections[c.sport] = (max(old[0], c.bytes), max(old[1], c.packets))
            status, body = self.fleet.msgreach_get("/status.json")
            self.states.append((now, json.loads(body).get("upload", {}).get("state") if status == 200 else None))

    def run_for(self, seconds: float, until=None) -> float:
        end = time.time() + seconds
        while time.time() < end:
            self.tick()
            if until is not None and until():
                break
            time.sleep(POLL)
        return time.time()

    def connection_figures(self) -> dict[str, float]:
        sizes = [b for b, _ in self.connections.values()]
        packets = [p for _, p in self.connections.values()]
        return {
            "connections": len(sizes),
            "bytes_p50": percentile(sizes, 0.5), "bytes_p95": percentile(sizes, 0.95), "bytes_max": max(sizes, default=0),
            "packets_p50": percentile(packets, 0.5), "packets_p95": percentile(packets, 0.95), "packets_max": max(packets, default=0),
        }


def _delays(values: list[float]) -> dict[str, float]:
    return {"samples": len(values), "p50": round(percentile(values, 0.5), 1), "p95": round(percentile(values, 0.95), 1), "max": round(max(values, default=float("nan")), 1)}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of each freeze (default 30)")
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--rtt-ms", type=float, default=80.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "upload-freeze.json")
    parser.add_argument("--keep", action="store_true", help="keep the logs, configs and WAL (printed directory)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="msgreach-upload-"))
    print(f"working in {directory}", flush=True)
    procs = Processes(directory)
    result: dict = {"date": date.today().isoformat(), "minutes": args.minutes, "targets": args.targets, "rtt_ms": args.rtt_ms}
    load_before = os.getloadavg()
    try:
        with namespaces() as ns:
            censor = Censor(ns.router)
            fleet = Fleet(ns, procs, directory)
            fleet.start_centre()
            settings = fleet.start_gateway()
            if args.rtt_ms > 0:
                censor.delay(procs, directory, args.rtt_ms / 2)  # constant: no reordering, which real lines rarely do
            upload = {"agent_url": "http://127.0.0.1:9090/metrics"}  # shipped interval and threshold
            fleet.start_volunteer(settings, targets=args.targets, round_interval=60, scrape="15s", upload=upload)
            arrivals = Arrivals(fleet, 'up{job="msgreach"}')
            recorder = Recorder(fleet, censor, arrivals)
            began = time.time()
            recorder.run_for(120)
            series = fleet.query('scrape_samples_scraped{job="msgreach"}')
            result["series_per_scrape"] = int(float(series[0]["value"][1])) if series else None
            agent = fleet.agent_metrics()
            result["bytes_per_sample"] = round(agent["prometheus_remote_storage_bytes_total"] / agent["prometheus_remote_storage_samples_total"], 1)

            print(f"DPI freeze (16 KB / 25 packets per connection) for {args.minutes:g} min", flush=True)
            censor.freeze(after_bytes=16384, after_packets=25)
            dpi_from = time.time()
            recorder.connections.clear()
            dpi_to = recorder.run_for(args.minutes * 60)
            recorder.run_for(60)  # the last samples of the phase arrive
            agent = fleet.agent_metrics()
            result["dpi"] = {
                "delay_s": _delays(arrivals.delays(dpi_from, dpi_to)),
                **recorder.connection_figures(),
                "over_budget_packets": censor.over_budget_packets(),
                "retried": agent.get("prometheus_remote_storage_samples_retried_total", 0),
                "failed": agent.get("prometheus_remote_storage_samples_failed_total", 0),
                "held_readings": sum(1 for t, s in recorder.states if dpi_from <= t <= dpi_to and s == "held"),
                "readings": sum(1 for t, _ in recorder.states if dpi_from <= t <= dpi_to),
            }
            print(json.dumps(result["dpi"]), flush=True)

            print(f"line frozen whole for {args.minutes:g} min", flush=True)
            censor.freeze(after_bytes=600)
            frozen_from = time.time()
            reopened = recorder.run_for(args.minutes * 60)
            wal_bytes = _du(directory / "wal")
            pending = fleet.agent_metrics()
            censor.reopen()
            recorder.connections.clear()

            def caught_up() -> bool:
                return bool(arrivals.arrived) and max(arrivals.arrived) >= time.time() - 20 and len(arrivals.delays(frozen_from, reopened)) >= (reopened - frozen_from) / 15 - 2

            done = recorder.run_for(15 * 60, until=caught_up)
            recorder.run_for(60)
            agent = fleet.agent_metrics()
            held = [t for t, s in recorder.states if t >= frozen_from and s == "held"]
            flowing_again = [t for t, s in recorder.states if t >= reopened and s == "flowing"]
            result["frozen"] = {
                "delay_s": _delays(arrivals.delays(frozen_from, reopened)),
                "caught_up_after_reopening_s": round(done - reopened, 1),
                "first_held_after_s": round(held[0] - frozen_from, 1) if held else None,
                "flowing_after_reopening_s": round(flowing_again[0] - reopened, 1) if flowing_again else None,
                "wal_bytes_at_reopening": wal_bytes,
                "pending_at_reopening": pending.get("prometheus_remote_storage_samples_pending", 0),
                "catch_up": recorder.connection_figures(),
                "over_budget_packets": censor.over_budget_packets(),
                "retried": agent.get("prometheus_remote_storage_samples_retried_total", 0),
                "failed": agent.get("prometheus_remote_storage_samples_failed_total", 0),
            }
            holes = [(round(a - began), round(b - a, 1)) for a, b in arrivals.gaps(began, time.time() - 20) if b - a > 22.5]
            result["holes"] = holes
            result["samples_at_centre"] = len(arrivals.arrived)
            print(json.dumps(result["frozen"]), flush=True)
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    prometheus = subprocess.run(["prometheus", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    result["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(), "prometheus": prometheus, "load_before": load_before, "load_after": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0 if not result["holes"] and result["dpi"]["failed"] == 0 and result["frozen"]["failed"] == 0 else 1


def markdown(r: dict) -> str:
    d, f = r["dpi"], r["frozen"]
    return "\n".join([
        f"| | DPI freeze (16 KB / 25 packets per connection), {r['minutes']:g} min | line frozen whole, {r['minutes']:g} min, then reopened |",
        "|---|---:|---:|",
        f"| samples scraped in the phase that reached the centre | {d['delay_s']['samples']} | {f['delay_s']['samples']} |",
        f"| delay scrape → centre, p50 / p95 / max (s) | {d['delay_s']['p50']} / {d['delay_s']['p95']} / {d['delay_s']['max']} | {f['delay_s']['p50']} / {f['delay_s']['p95']} / {f['delay_s']['max']} |",
        f"| connections (counted) | {d['connections']} | {f['catch_up']['connections']} (catch-up) |",
        f"| bytes per connection, both directions, p50 / p95 / max | {d['bytes_p50']} / {d['bytes_p95']} / {d['bytes_max']} | {f['catch_up']['bytes_p50']} / {f['catch_up']['bytes_p95']} / {f['catch_up']['bytes_max']} |",
        f"| packets per connection, p50 / p95 / max | {d['packets_p50']} / {d['packets_p95']} / {d['packets_max']} | {f['catch_up']['packets_p50']} / {f['catch_up']['packets_p95']} / {f['catch_up']['packets_max']} |",
        f"| packets in connections past {BUDGET_BYTES // 1024} KB | {d['over_budget_packets']} | {f['over_budget_packets']} (cumulative) |",
        f"| agent: samples retried / failed (cumulative) | {d['retried']:.0f} / {d['failed']:.0f} | {f['retried']:.0f} / {f['failed']:.0f} |",
        f"| msgreach said `held` | {d['held_readings']} of {d['readings']} readings | first after {f['first_held_after_s']} s; `flowing` again {f['flowing_after_reopening_s']} s after reopening |",
        f"| caught up after reopening (s) | — | {f['caught_up_after_reopening_s']} |",
        f"| agent WAL at reopening (bytes) | — | {f['wal_bytes_at_reopening']} |",
        "",
        (f"{r['series_per_scrape']} series per scrape, {r['bytes_per_sample']} bytes per sample on the wire (snappy), RTT {r['rtt_ms']:g} ms; "
         f"{r['samples_at_centre']} samples of `up` at the centre, holes: {r['holes'] or 'none'}."),
    ])


if __name__ == "__main__":
    sys.exit(main())
