#!/usr/bin/env python3
"""Helper under a slowloris: a `msgreach helper` subprocess, 3,000 idle connections held against
its API from one address (tests/lab/flood.py, reopened as soon as they are closed), and a
monitor's signed requests from another address meanwhile. Measured, not asserted:

- the signed requests served, and the time each took, before and during the flood;
- the helper's RSS (idle, and its peak during the flood), its CPU during the flood;
- what the helper refused (`msgreach_helper_refused_total`), what the flooder saw (connections
  held, reset at once), and the tracebacks in the helper's log.

Loopback only, bounded (`--seconds`), stops by itself. Run it as root (the flooder raises its
descriptor limit) in a network namespace of its own, so the flood touches nothing else:

    unshare -n sh -c 'ip link set lo up && python3 bench/helper_load.py'            # writes docs/benchmarks.md
    unshare -n sh -c 'ip link set lo up && python3 bench/helper_load.py --before-repo /tmp/old --before-label 3d65f65'  # and another checkout's
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import yaml
from docsection import write_section  # bench/docsection.py: beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from probe.helper import auth, wire

START, END = "<!-- bench:helper-load:start -->", "<!-- bench:helper-load:end -->"
CLK = os.sysconf("SC_CLK_TCK")
MONITOR, FLOODER = "127.0.0.1", "127.0.0.3"


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


def proc_status(pid: int, field: str) -> float:
    """A /proc/PID/status field in MiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


class Helper:
    def __init__(self, directory: Path, repo: Path, nofile: int):
        self.api, probe, bulk = free_ports(3)
        self.secret = os.urandom(24).hex().encode()
        (directory / "secret").write_bytes(self.secret + b"\n")
        target = socket.socket()  # the helper's one catalog target: a local port that accepts
        target.bind(("127.0.0.1", 0))
        target.listen(4096)
        self.target = target
        port = target.getsockname()[1]
        local = {"name": "local-control", "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [port], "checks": ["tcp"]}
        (directory / "measure.yaml").write_text(yaml.safe_dump({
            "vantages": [{"name": "bench", "resolvers": ["127.0.0.1:1"]}], "schedule": {"retries": 0, "timeouts": {"tcp": 3}},
            "controls": [local], "services": [{"name": "local", "targets": [{**local, "name": "t"}]}],
        }))
        (directory / "helper.yaml").write_text(yaml.safe_dump({
            "secret_file": str(directory / "secret"), "listen": f"127.0.0.1:{self.api}", "probe_port": probe, "bulk_port": bulk,
            "measure": str(directory / "measure.yaml"), "cache_seconds": 0,
        }))
        self.log = directory / "helper.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "probe", "helper", "--config", str(directory / "helper.yaml")], cwd=repo,
                                         env={**os.environ, "PYTHONPATH": str(repo)}, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=lambda: _soft_nofile(nofile))  # noqa: PLW1509 - no threads yet
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.api), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the helper did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def signed(self, path: str, payload: dict) -> tuple[bool, float]:
        """One signed request from the monitor's address: (answered 200, seconds)."""
        body = json.dumps(payload).encode()
        headers = auth.sign_request(self.secret, "POST", path, body)
        started = time.monotonic()
        try:
            with httpx.Client(transport=httpx.HTTPTransport(local_address=MONITOR), timeout=10, trust_env=False) as client:
                ok = client.post(f"http://127.0.0.1:{self.api}{path}", content=body, headers=headers).status_code == 200
        except httpx.HTTPError:
            ok = False
        return ok, time.monotonic() - started

    def refused(self) -> dict[str, float]:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9"), timeout=10, trust_env=False) as client:
                text = client.get(f"http://127.0.0.1:{self.api}/metrics").text
        except httpx.HTTPError:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("msgreach_helper_refused_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.removeprefix("msgreach_helper_refused_total")] = float(value)
        return out

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.target.close()
        return self.log.read_text(errors="replace")


def _soft_nofile(soft: int) -> None:
    """Start the helper as a distribution would: a soft descriptor limit of 1024 under a higher hard one."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))


def requests(helper: Helper, count: int, every: float) -> list[tuple[bool, float]]:
    """Signed requests, alternating a control measurement (one local target) and /v1/bulk."""
    out = []
    for i in range(count):
        started = time.monotonic()
        if i % 2:
            out.append(helper.signed(wire.API_BULK, {}))
        else:
            out.append(helper.signed(wire.API_MEASURE, {"targets": [{"service": "local", "target": "t"}]}))
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return out


def run(args: argparse.Namespace, repo: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="msgreach-bench-helper-load-") as tmp:
        helper = Helper(Path(tmp), repo, args.helper_nofile)
        flooder = None
        try:
            quiet = requests(helper, 10, 0.2)
            idle_rss = proc_status(helper.proc.pid, "VmRSS")
            flooder = subprocess.Popen([sys.executable, str(REPO / "tests" / "lab" / "flood.py"), "--target", f"127.0.0.1:{helper.api}",
                                        "--source", FLOODER, "--connections", str(args.connections), "--seconds", str(args.seconds + 60)],
                                       stdout=subprocess.PIPE, text=True)
            assert flooder.stdout is not None
            flooder.stdout.readline()  # "flooding N": every connection tried
            cpu0, t0 = proc_cpu(helper.proc.pid), time.monotonic()
            rss = [proc_status(helper.proc.pid, "VmRSS")]
            flooded: list[tuple[bool, float]] = []
            while time.monotonic() - t0 < args.seconds:
                flooded += requests(helper, 2, 1.0)
                rss.append(proc_status(helper.proc.pid, "VmRSS"))
            cpu, window = proc_cpu(helper.proc.pid) - cpu0, time.monotonic() - t0
            refused = helper.refused()
            hwm = proc_status(helper.proc.pid, "VmHWM")
            flooder.send_signal(signal.SIGTERM)
            tally = json.loads(flooder.communicate(timeout=60)[0].strip().splitlines()[-1])
            after = requests(helper, 6, 0.5)
        finally:
            if flooder is not None and flooder.poll() is None:
                flooder.kill()
                flooder.wait()
            log = helper.stop()
    return {"quiet": quiet, "flooded": flooded, "after": after, "idle_rss": idle_rss, "peak_rss": max(rss), "hwm": hwm, "cpu": cpu,
            "window": window, "refused": refused, "tally": tally, "tracebacks": log.count("Traceback"), "log_lines": log.count("\n")}


def _served(samples: list[tuple[bool, float]]) -> str:
    times = [t for ok, t in samples if ok]
    median = f"{statistics.median(times) * 1000:.0f}" if times else "–"
    slowest = f"{max(times) * 1000:.0f}" if times else "–"
    return f"{len(times)} of {len(samples)} | {median} | {slowest}"


def section(args: argparse.Namespace, results: list[tuple[str, dict]]) -> str:
    load = os.getloadavg()
    lines = [
        START,
        "## Helper under a slowloris: 3,000 idle connections from one address (issue #18)",
        "",
        (f"Produced by `python3 bench/helper_load.py --connections {args.connections} --seconds {args.seconds:g}"
         f"{' --before-repo ' + args.before_label if args.before_repo else ''}` on {date.today().isoformat()}: "
         f"{os.cpu_count()} CPUs, Python {platform.python_version()}, Linux {platform.release()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
         "after the run (a shared machine: times carry others' load). Loopback in a network namespace of its own; the helper is a `msgreach helper` "
         f"subprocess with the shipped limits, started with a soft descriptor limit of {args.helper_nofile:,} (hard "
         f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}) as distributions start services; the flooder (`tests/lab/flood.py`) holds "
         f"{args.connections:,} idle connections from {FLOODER}, each reopened a second after it is closed; the monitor's signed requests "
         f"(alternately a control measurement of one local target and `/v1/bulk`, one a second during the flood) come from {MONITOR}. One run each."),
        "",
        "| helper | signed requests | served | median (ms) | slowest (ms) |",
        "|---|---|---:|---:|---:|",
    ]
    for label, result in results:
        lines += [
            f"| {label} | before the flood | {_served(result['quiet'])} |",
            f"| {label} | during the flood ({result['window']:.0f} s) | {_served(result['flooded'])} |",
            f"| {label} | after the flood | {_served(result['after'])} |",
        ]
    lines += ["", ("| helper | RSS idle (MiB) | RSS peak in the flood (MiB) | CPU in the flood (cores) | connection attempts | reset at once | "
                   "held ≥ 1 s | not connected | refused, as the helper counted | log lines | tracebacks |"),
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for label, result in results:
        tally = result["tally"]
        refusals = ", ".join(f"{k.split('reason=')[-1].strip(chr(34) + '}')} {v:,.0f}" for k, v in sorted(result["refused"].items())) or "–"
        lines.append(f"| {label} | {result['idle_rss']:.0f} | {result['peak_rss']:.0f} | {result['cpu'] / result['window']:.2f} | {tally['attempts']:,} | "
                     f"{tally['refused']:,} | {tally['held']:,} | {tally['failed']:,} | {refusals} | {result['log_lines']:,} | {result['tracebacks']:,} |")
    lines += [
        "",
        ("Now each address holds at most `connections_per_client` (64) connections, each for the 5 s head deadline at most; every other "
         "connection from it is reset as soon as it is accepted, and the helper's descriptors never run out. Before, the helper held every "
         "connection for its 10 s read timeout, ran out of descriptors at its soft limit, and asyncio logged each failed `accept()` with a "
         "traceback while the monitor's own connections waited in the backlog."),
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the flood is measured")
    parser.add_argument("--helper-nofile", type=int, default=1024, help="the helper's soft descriptor limit at start (the hard one is kept)")
    parser.add_argument("--before-repo", help="also flood this checkout's helper first, for a before/after table")
    parser.add_argument("--before-label", default="before", help="how the table names --before-repo (a commit, say)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = []
    if args.before_repo:
        results.append((args.before_label, run(args, Path(args.before_repo))))
    results.append(("this checkout" if args.before_repo else "msgreach helper", run(args, REPO)))
    text = section(args, results)
    print(text)
    if not args.no_write:
        write_section(text, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
