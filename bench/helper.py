#!/usr/bin/env python3
"""Helper benchmark: what a `msgreach helper` costs serving 100 monitors, what a `udp_stream`
costs a monitor per round, and how long a round takes with a helper on.

Everything on loopback (127.0.0.0/8), bounded, stops by itself. The helper is a real
`msgreach helper` subprocess (its CPU from /proc/PID/stat, its peak RSS from VmHWM); the monitors
are msgreach's own runner in this process, each from its own loopback source address
(127.0.1.N, so each is its own client for the helper's per-client bounds). The helper's catalog
is `--targets` TCP targets on a local port (its control measurements; nothing leaves the host).

1. **100 monitors, one round each, at once**: per monitor the control measurement of the
   targets, one call stream (call + control, `--stream-seconds`, 50 pps, 172 B), and the
   circumvention catalog (5 protocols). The helper's CPU seconds over the whole window and
   cores busy while the streams run, its peak RSS, datagrams echoed.
2. **One udp_stream per round** (one monitor alone): wall, monitor CPU, bytes on the wire.
3. **A round with a helper on**: one monitor, `--targets` TCP targets, without helpers, with a
   control helper (cold cache: the helper measures) and again (warm cache).

    python3 bench/helper.py                      # writes its section of docs/benchmarks.md
    python3 bench/helper.py --monitors 10 --stream-seconds 5 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import yaml
from docsection import write_section  # bench/docsection.py: beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from probe import config as config_module
from probe.model import to_json
from probe.runner import run_round

START, END = "<!-- bench:helper:start -->", "<!-- bench:helper:end -->"
CLK = os.sysconf("SC_CLK_TCK")
CONTROL_PORT = [0]  # the local accept server's port, once it runs


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def targets_service(names: int, port: int) -> dict:
    return {"name": "local", "targets": [
        {"name": f"t{i:03d}", "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [port], "checks": ["tcp"]} for i in range(names)
    ]}


class HelperProcess:
    def __init__(self, directory: Path, targets: int, target_port: int):
        self.dir = directory
        self.api, self.probe, self.bulk = free_ports(3)
        self.secret = directory / "secret"
        self.secret.write_text(os.urandom(24).hex() + "\n")
        measure = directory / "measure.yaml"
        measure.write_text(yaml.safe_dump({
            "vantages": [{"name": "bench-helper", "resolvers": ["127.0.0.1:1"]}],
            "schedule": {"retries": 0, "timeouts": {"tcp": 3}}, "controls": controls(target_port), "services": [targets_service(targets, target_port)],
        }))
        settings = directory / "helper.yaml"
        settings.write_text(yaml.safe_dump({
            "secret_file": str(self.secret), "listen": f"127.0.0.1:{self.api}", "probe_port": self.probe, "bulk_port": self.bulk,
            "measure": str(measure), "cache_seconds": 30, "limits": {"sessions_per_client": 16},
        }))
        self.log = directory / f"helper-{self.api}.log"
        with open(self.log, "wb") as log:  # a file, not a pipe: a full pipe would stall the helper
            self.proc = subprocess.Popen([sys.executable, "-m", "probe", "helper", "--config", str(settings)], cwd=REPO,
                                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.api), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the helper did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        errors = self.log.read_text(errors="replace").count("Traceback")
        if errors:
            print(f"helper log: {errors} tracebacks; last lines:\n{self.log.read_text(errors='replace')[-1500:]}", file=sys.stderr)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def controls(port: int) -> list[dict]:
    return [{"name": "local-control", "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [port], "checks": ["tcp"]}]


def monitor_config(directory: Path, helper: HelperProcess | None, index: int, services: list[dict], control_port: int = 0, **schedule) -> config_module.Config:
    data = {
        "vantages": [{"name": f"m{index:03d}", "resolvers": ["127.0.0.1:1"], "source_address": f"127.0.1.{index + 1}"}],
        "schedule": {"retries": 0, "concurrency": 16, "timeouts": {"tcp": 3, "default": 15, "extra": {"udp_stream": 30}}, **schedule},
        "controls": controls(control_port or CONTROL_PORT[0]), "services": services,
        "helpers": [{"name": "bench", "url": f"http://127.0.0.1:{helper.api}", "secret_file": str(helper.secret)}] if helper else [],
    }
    path = directory / f"monitor-{index}.yaml"
    path.write_text(yaml.safe_dump(data))
    return config_module.load(path)


def call_service(seconds: float) -> dict:
    return {"name": "calls", "targets": [{"name": "call-stream", "host": "helper", "checks": ["udp_stream"],
                                          "params": {"udp_stream": {"duration_seconds": seconds}}}]}


async def accept_server() -> tuple[asyncio.AbstractServer, int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
    server = await asyncio.start_server(accept, "127.0.0.1", 0, backlog=4096)
    return server, server.sockets[0].getsockname()[1]


async def many_monitors(directory: Path, helper: HelperProcess, monitors: int, targets: int, target_port: int, seconds: float) -> dict:
    services = [targets_service(targets, target_port), call_service(seconds), {"catalog": "circumvention"}]
    configs = [monitor_config(directory, helper, i, services, round_deadline_seconds=seconds + 60) for i in range(monitors)]
    cpu0, t0 = proc_cpu(helper.proc.pid), time.monotonic()
    results = await asyncio.gather(*(run_round(c, c.vantages[0]) for c in configs))
    wall, cpu = time.monotonic() - t0, proc_cpu(helper.proc.pid) - cpu0
    verdicts: dict[str, int] = {}
    echoed = 0
    for result in results:
        for service in result.services:
            for target in service.targets:
                verdicts[f"{service.service}:{target.verdict}"] = verdicts.get(f"{service.service}:{target.verdict}", 0) + 1
                for check in target.checks:
                    if check.check == "udp_stream":
                        evidence = to_json(check.evidence)
                        echoed += sum((evidence.get(k) or {}).get("echoed", 0) for k in ("call", "control"))
    return {"wall": wall, "cpu": cpu, "hwm": proc_hwm_mib(helper.proc.pid), "verdicts": verdicts, "echoed": echoed}


async def one_stream(directory: Path, helper: HelperProcess, seconds: float) -> dict:
    config = monitor_config(directory, helper, 200, [call_service(seconds)], round_deadline_seconds=seconds + 60)
    config = replace(config, helpers=[h.model_copy(update={"control": False}) for h in config.helpers])
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    result = await run_round(config, config.vantages[0])
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    check = result.services[0].targets[0].checks[0]
    evidence = to_json(check.evidence)
    size = evidence.get("packet_size", 172)
    packets = sum((evidence.get(k) or {}).get("sent", 0) + (evidence.get(k) or {}).get("echoed", 0) for k in ("call", "control"))
    return {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "bytes": packets * (size + 28), "verdict": str(result.services[0].targets[0].verdict)}


async def round_with_helper(directory: Path, helper: HelperProcess, targets: int, target_port: int) -> dict:
    services = [targets_service(targets, target_port)]
    without = monitor_config(directory, None, 201, services)
    with_helper = monitor_config(directory, helper, 202, services)
    out = {}
    for label, config in (("without helpers", without), ("with a control helper, cold cache", with_helper), ("with a control helper, warm cache", with_helper)):
        t0 = time.monotonic()
        result = await run_round(config, config.vantages[0])
        out[label] = (time.monotonic() - t0, sum(t.verdict == "ok" for t in result.services[0].targets))
    return out


async def bench(args: argparse.Namespace) -> str:
    server, target_port = await accept_server()
    CONTROL_PORT[0] = target_port
    with tempfile.TemporaryDirectory(prefix="msgreach-bench-helper-") as tmp:
        directory = Path(tmp)
        helper = HelperProcess(directory, args.targets, target_port)
        try:
            idle_hwm = proc_hwm_mib(helper.proc.pid)
            many = await asyncio.wait_for(many_monitors(directory, helper, args.monitors, args.targets, target_port, args.stream_seconds), args.stream_seconds + 240)
            helper.stop()
            helper = HelperProcess(directory, args.targets, target_port)
            single = await asyncio.wait_for(one_stream(directory, helper, args.stream_seconds), args.stream_seconds + 120)
            rounds = await asyncio.wait_for(round_with_helper(directory, helper, args.targets, target_port), 240)
        finally:
            helper.stop()
            server.close()
    load = os.getloadavg()
    lines = [
        START,
        "## Helper: 100 monitors, a call stream, a round with a helper on",
        "",
        (f"Produced by `python3 bench/helper.py --monitors {args.monitors} --targets {args.targets} --stream-seconds {args.stream_seconds:g}` "
        f"on {date.today().isoformat()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, Linux {platform.release()}; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after the run (a shared machine: wall times carry others' noise). Loopback only; the helper is a "
        "`msgreach helper` subprocess, the monitors are msgreach's runner in the bench process, each from its own 127.0.1.N address. One run."),
        "",
        (f"**{args.monitors} monitors, one round each, all at once** (per monitor: control measurement of {args.targets} targets, one "
        f"{args.stream_seconds:g} s call stream with its control stream at 50 pps × 172 B, the 5 circumvention probes):"),
        "",
        "| helper CPU (s) | window (s) | cores busy | peak RSS (MiB) | idle RSS (MiB) | datagrams echoed | CPU µs per datagram |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        (f"| {many['cpu']:.2f} | {many['wall']:.1f} | {many['cpu'] / many['wall']:.2f} | {many['hwm']:.0f} | {idle_hwm:.0f} | {many['echoed']:,} | "
        f"{(many['cpu'] / many['echoed'] * 1e6) if many['echoed'] else float('nan'):.0f} |"),
        "",
        ("Verdicts of that round (service:verdict → targets): " + ", ".join(f"{k} {v}" for k, v in sorted(many["verdicts"].items())) + ". "
        f"The monitors share {os.cpu_count()} CPUs with the helper here: streams the bench process could not send on time count as lost, so this is a "
        "lower bound on what the helper can echo, not a loss figure for the helper."),
        "",
        (f"**One udp_stream per round** (one monitor, {args.stream_seconds:g} s, call + control): wall {single['wall']:.1f} s, monitor CPU "
        f"{single['cpu']:.2f} s, {single['bytes'] / 1024:.0f} KiB on the wire both ways (IP+UDP headers included), verdict `{single['verdict']}`. "
        "With the default 20 s stream that is most of a 60 s round's budget for the target, run concurrently with the others."),
        "",
        f"**A round with a helper on** (one monitor, {args.targets} TCP targets):",
        "",
        "| round | wall (s) | targets ok |",
        "|---|---:|---:|",
        *(f"| {label} | {wall:.2f} | {ok} |" for label, (wall, ok) in rounds.items()),
        "",
        ("The control measurement runs beside the round's own checks; a round waits for the helper's answer (bounded by the round deadline), "
        "so with a cold cache the round takes about as long as the helper's own measurement of the same targets."),
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=100)
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536)) if resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 65536 else None
    section = asyncio.run(bench(args))
    print(section)
    if not args.no_write:
        write_section(section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
