#!/usr/bin/env python3
"""How many vantages one centre holds: a real Prometheus (and, beside it, VictoriaMetrics)
ingesting N synthetic vantages' series by remote_write, with the shipped rules evaluated.

A vantage here is a real msgreach `/metrics` scrape (a file saved by bench/run.py or
bench/scale.py `--save-metrics`, or from a lab round: `--case`), its `vantage` label renamed per
copy, served by nginx; its durations and round timestamps are rewritten every `--round-seconds`
as a round would. One Prometheus agent (Debian's, agent mode) scrapes every copy every 15 s (the
shipped SCRAPE_INTERVAL) and remote-writes to both centres at once:

- Prometheus with the shipped centre config (deploy/central/prometheus/prometheus.yml: the
  remote-write receiver, out-of-order window) and the default rules (configs/prometheus/rules);
- VictoriaMetrics with the flags of deploy/central/compose.victoriametrics.yaml, and vmalert with
  the same rules.

Vantages are added in steps (`--case LABEL=FILE=N1,N2,…`); each step runs `--minutes` after
its series have arrived, then the centres' RSS, CPU, head series and rule evaluation time are
read, and every dashboard query is timed once. All in a fresh network namespace with only
loopback; every process is stopped at the end. Writes the `bench:central` section.

    python3 bench/central.py --case "1,000 targets=/tmp/x/metrics-1000.txt=4,8,16" \\
                             --case "shipped catalogs=/tmp/x/lab.txt=50,200,400"

Needs root, nginx, prometheus, victoria-metrics (vmalert).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 - bench/run.py: processes, namespaces, /proc readers, the doc writer

START, END = "<!-- bench:central:start -->", "<!-- bench:central:end -->"
REPO = bench.REPO
COMPOSE = REPO / "deploy" / "central" / "compose.victoriametrics.yaml"
PORTS = {"nginx": 18500, "agent": 18501, "prometheus": 18502, "vm": 18503, "vmalert": 18504}
STORES = ("prometheus", "victoria-metrics")
STORE_PORT = {"prometheus": "prometheus", "victoria-metrics": "vm"}
STORE_LABEL = {"prometheus": "Prometheus", "victoria-metrics": "VictoriaMetrics"}
SCRAPE_INTERVAL = "15s"  # deploy/volunteer/agent/run.sh's default
# Series that change every round; everything else in msgreach's exposition holds still between
# verdict changes (state sets, infos, certificate expiry).
ROUND_DURATION = re.compile(r"^(msgreach_(?:check|round|dns_lookup)_duration_seconds\{[^}]*\}) \S+$")
ROUND_TIME = re.compile(r"^(msgreach_last_round_timestamp_seconds\{[^}]*\}) \S+$")
ROUNDS = re.compile(r"^(msgreach_rounds_total\{[^}]*\}) (\S+)$")


# --- the synthetic vantages -------------------------------------------------------------------------


class Vantages:
    """N copies of one vantage's exposition under nginx's root, `vantage` renamed to vNNNN, and a
    thread that rewrites each copy once a round (durations jittered, the round's end time now, the
    round counter up): the samples change as a real vantage's do."""

    def __init__(self, root: Path, exposition: Path, round_seconds: float):
        self.root = root
        text = exposition.read_text()
        names = set(re.findall(r'vantage="([^"]*)"', text))
        if len(names) != 1:
            raise SystemExit(f"{exposition}: expected one vantage, found {sorted(names)}")
        self.template = text.replace(f'vantage="{names.pop()}"', 'vantage="{VANTAGE}"').splitlines()
        self.series = sum(1 for line in self.template if line and not line.startswith("#"))
        self.count = 0
        self.round_seconds = round_seconds
        self.round = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._rounds, daemon=True)

    def name(self, index: int) -> str:
        return f"v{index:04d}"

    def grow(self, count: int) -> None:
        with self._lock:
            for index in range(self.count, count):
                self._write(index)
            self.count = count

    def _write(self, index: int) -> None:
        now = time.time()
        lines = []
        for line in self.template:
            if (m := ROUND_DURATION.match(line)) is not None:
                line = f"{m.group(1)} {random.uniform(0.002, 0.4):.6f}"
            elif (m := ROUND_TIME.match(line)) is not None:
                line = f"{m.group(1)} {now:.3f}"
            elif (m := ROUNDS.match(line)) is not None:
                line = f"{m.group(1)} {float(m.group(2)) + self.round:.1f}"
            lines.append(line.replace("{VANTAGE}", self.name(index)))
        directory = self.root / self.name(index)
        directory.mkdir(exist_ok=True)
        (directory / "metrics.tmp").write_text("\n".join(lines) + "\n")
        (directory / "metrics.tmp").rename(directory / "metrics")  # nginx never serves half a file

    def _rounds(self) -> None:
        while not self._stop.wait(self.round_seconds):
            with self._lock:
                self.round += 1
                for index in range(self.count):
                    self._write(index)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def families(text: str) -> dict[str, int]:
    """Series per metric family in an exposition."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- the processes ----------------------------------------------------------------------------------


def nginx_config(tmp: Path, root: Path) -> str:
    temp = "\n".join(f"  {k}_temp_path {tmp}/nginx-{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
worker_processes 1;
user nobody nogroup;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{PORTS['nginx']};
    root {root};
    # msgreach answers Prometheus in OpenMetrics; so does this copy of it.
    types {{ }}
    default_type "application/openmetrics-text; version=1.0.0; charset=utf-8";
  }}
}}
"""


def agent_config(vantages: Vantages, stores: tuple[str, ...]) -> dict:
    targets = [{"targets": [f"127.0.0.1:{PORTS['nginx']}"],
                "labels": {"vantage": vantages.name(i), "__metrics_path__": f"/{vantages.name(i)}/metrics"}}
               for i in range(vantages.count)]
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "10s"},
        # honor_labels: the series' own `vantage` stays, the target's only fills in where there is
        # none (process_*, up): what each volunteer's agent does with its external label.
        "scrape_configs": [{"job_name": "msgreach", "honor_labels": True, "static_configs": targets}],
        "remote_write": [{"url": f"http://127.0.0.1:{PORTS[STORE_PORT[store]]}/api/v1/write"} for store in stores],
    }


def centre_config(tmp: Path) -> Path:
    """The shipped centre config with the shipped rules; no Alertmanager, no self-scrape."""
    config = yaml.safe_load((REPO / "deploy" / "central" / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(REPO / "configs" / "prometheus" / "rules" / "*.yml")]
    config.pop("alerting")
    config["scrape_configs"] = []
    path = tmp / "centre.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def compose_flags(service: str, local: dict[str, str]) -> list[str]:
    """The service's flags from the VictoriaMetrics compose file, some given local values."""
    command = yaml.safe_load(COMPOSE.read_text())["services"][service]["command"]
    out = []
    for arg in command:
        name = arg.split("=", 1)[0]
        arg = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", arg)
        out.append(f"{name}={local[name]}" if name in local else arg)
    return out


@dataclass
class Centre:
    """The processes of one run, and their names for the report."""

    procs: dict[str, bench.subprocess.Popen] = field(default_factory=dict)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            bench.stop(proc)


def start_all(tmp: Path, vantages: Vantages, stores: tuple[str, ...]) -> Centre:
    centre = Centre()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": open(tmp / "centre.log", "w")}  # noqa: SIM115 - closed with the process
    (tmp / "nginx.conf").write_text(nginx_config(tmp, vantages.root))
    centre.procs["nginx"] = bench.start(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")], **quiet)
    vm_url = f"http://127.0.0.1:{PORTS['vm']}"
    if "prometheus" in stores:
        centre.procs["prometheus"] = bench.start([
            "prometheus", f"--config.file={centre_config(tmp)}", f"--storage.tsdb.path={tmp / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{PORTS['prometheus']}", "--web.enable-remote-write-receiver", "--log.level=warn"], **quiet)
        bench.wait_http(f"http://127.0.0.1:{PORTS['prometheus']}/-/ready", 60)
    if "victoria-metrics" in stores:
        centre.procs["victoria-metrics"] = bench.start(["victoria-metrics", *compose_flags("victoria-metrics", {
            "-storageDataPath": str(tmp / "vm"), "-httpListenAddr": f"127.0.0.1:{PORTS['vm']}"}), "-loggerLevel=WARN"], **quiet)
        bench.wait_http(f"{vm_url}/health", 60)
        centre.procs["vmalert"] = bench.start(["vmalert", *compose_flags("vmalert", {
            "-rule": str(REPO / "configs" / "prometheus" / "rules" / "*.yml"), "-datasource.url": vm_url,
            "-remoteWrite.url": vm_url, "-remoteRead.url": vm_url, "-notifier.url": "http://127.0.0.1:9",  # nothing listens: alerts go nowhere
            "-external.url": "https://centre.example.org"}), f"-httpListenAddr=127.0.0.1:{PORTS['vmalert']}", "-loggerLevel=ERROR"], **quiet)
    (tmp / "agent.yml").write_text(yaml.safe_dump(agent_config(vantages, stores)))
    centre.procs["agent"] = bench.start([
        "prometheus", "--enable-feature=agent", f"--config.file={tmp / 'agent.yml'}", f"--storage.agent.path={tmp / 'agent'}",
        f"--web.listen-address=127.0.0.1:{PORTS['agent']}", "--web.enable-lifecycle", "--log.level=warn"], **quiet)
    bench.wait_http(f"http://127.0.0.1:{PORTS['agent']}/-/ready", 60)
    return centre


def reload_agent(tmp: Path, vantages: Vantages, stores: tuple[str, ...]) -> None:
    import httpx

    (tmp / "agent.yml").write_text(yaml.safe_dump(agent_config(vantages, stores)))
    httpx.post(f"http://127.0.0.1:{PORTS['agent']}/-/reload", timeout=30, trust_env=False).raise_for_status()


# --- reading the centres ----------------------------------------------------------------------------


def get_json(url: str) -> dict:
    import httpx

    response = httpx.get(url, timeout=120, trust_env=False)
    response.raise_for_status()
    return response.json()


def instant(base: str, expr: str) -> list[dict]:
    return get_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")["data"]["result"]


def own_metric(port: int, name: str) -> float:
    """A gauge from a Go server's own /metrics (summed over its series)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30, trust_env=False).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")))


def stored_series(name: str) -> float:
    if name == "prometheus":
        return own_metric(PORTS["prometheus"], "prometheus_tsdb_head_series")
    return float(get_json(f"http://127.0.0.1:{PORTS['vm']}/api/v1/series/count")["data"][0])


def rule_seconds(store: str) -> float:
    """How long one evaluation of the msgreach rule group took: Prometheus's last one, vmalert's
    median iteration (its summary's recent window). (vmalert's per-rule `evaluationTime` in its
    API is not a rule's own time: it grows along the group.)"""
    if store == "prometheus":
        return own_metric(PORTS["prometheus"], "prometheus_rule_group_last_duration_seconds")
    return own_metric(PORTS["vmalert"], 'vmalert_iteration_duration_seconds{group="msgreach", file="'
                      + str(REPO / "configs" / "prometheus" / "rules" / "msgreach.yml") + '",quantile="0.5"}')


def dashboard_queries(base: str) -> tuple[int, float, list[tuple[float, str]]]:
    """Every dashboard query once, "All" selected: (queries, total s, the three slowest (s, panel))."""
    queries = yaml.safe_load((REPO / "dashboards" / "queries.yaml").read_text())
    total = 0.0
    times: list[tuple[float, str]] = []
    now = time.time()
    for q in queries:
        expr = q["expr"]
        for var, value in (("$country", ".*"), ("$vantage", ".+"), ("$service", ".+"), ("$__rate_interval", "1m")):
            expr = expr.replace(var, value)
        params = {"query": expr, "time": f"{now:.3f}"} if q["instant"] else {
            "query": expr, "start": f"{now - 6 * 3600:.3f}", "end": f"{now:.3f}", "step": "60"}
        path = "/api/v1/query" if q["instant"] else "/api/v1/query_range"
        began = time.monotonic()
        get_json(f"{base}{path}?{urllib.parse.urlencode(params)}")
        took = time.monotonic() - began
        total += took
        times.append((took, f"{q['dashboard']} / {q['panel']}"))
    return len(queries), total, sorted(times, reverse=True)[:3]


@dataclass
class Point:
    case: str
    vantages: int
    series_per_vantage: int
    per_centre: dict[str, dict[str, float]]
    queries: dict[str, tuple[int, float, list[tuple[float, str]]]]
    load1: float


def measure_point(case: str, vantages: Vantages, centre: Centre, minutes: float, stores: tuple[str, ...]) -> Point:
    expected = vantages.count * vantages.series
    deadline = time.monotonic() + 600
    while min(stored_series(s) for s in stores) < 0.98 * expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"series did not arrive: {expected} expected, " + ", ".join(f"{stored_series(s)} in {s}" for s in stores))
        time.sleep(5)
    # Steady state: CPU over the last part of the window, RSS and series at its end.
    time.sleep(minutes * 60 / 3)
    cpu0 = {name: bench.proc_cpu(p.pid) for name, p in centre.procs.items()}
    t0 = time.monotonic()
    rules: dict[str, list[float]] = {store: [] for store in stores}
    while time.monotonic() - t0 < minutes * 60 * 2 / 3:  # the rules' time, every evaluation interval
        time.sleep(15)
        for store in stores:
            rules[store].append(rule_seconds(store))
    elapsed = time.monotonic() - t0
    per_centre: dict[str, dict[str, float]] = {}
    for name, proc in centre.procs.items():
        per_centre[name] = {"rss_kb": bench.proc_status_kb(proc.pid, "VmRSS"), "hwm_kb": bench.proc_status_kb(proc.pid, "VmHWM"),
                            "cores": (bench.proc_cpu(proc.pid) - cpu0[name]) / elapsed}
    for store in stores:
        per_centre[store]["series"] = stored_series(store)
        per_centre["prometheus" if store == "prometheus" else "vmalert"]["rules_s"] = statistics.median(rules[store])
    queries = {store: dashboard_queries(f"http://127.0.0.1:{PORTS[STORE_PORT[store]]}") for store in stores}
    point = Point(case, vantages.count, vantages.series, per_centre, queries, bench.load1())
    print(f"[central] {case} x{vantages.count}: " + json.dumps(point.__dict__, default=str), file=sys.stderr, flush=True)
    return point


def run_case(case: str, exposition: Path, counts: list[int], minutes: float, round_seconds: float, stores: tuple[str, ...]) -> list[Point]:
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-central-"))
    root = tmp / "www"
    root.mkdir()
    tmp.chmod(0o755)
    vantages = Vantages(root, exposition, round_seconds)
    vantages.grow(counts[0])
    centre = None
    try:
        centre = start_all(tmp, vantages, stores)
        vantages.start()
        baseline = {name: bench.proc_status_kb(p.pid, "VmRSS") for name, p in centre.procs.items()}
        points = []
        for count in counts:
            if count != vantages.count:
                vantages.grow(count)
                reload_agent(tmp, vantages, stores)
            points.append(measure_point(case, vantages, centre, minutes, stores))
        points[0].per_centre["_baseline"] = {k: float(v) for k, v in baseline.items()}
        return points
    finally:
        vantages.stop()
        if centre is not None:
            centre.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------------


def per_series_kib(points: list[Point], name: str) -> float:
    """RSS growth per stored series between the case's smallest and largest step."""
    a, b = points[0].per_centre[name], points[-1].per_centre[name]
    return (b["rss_kb"] - a["rss_kb"]) / max(b["series"] - a["series"], 1)


def render(points: list[Point], facts: dict[str, str], args: argparse.Namespace, elapsed: float) -> str:
    cases = list(dict.fromkeys(p.case for p in points))
    lines = [
        START,
        "## The centre: how many vantages one Prometheus holds",
        "",
        f"Produced by `python3 bench/central.py {' '.join(f'--case {c!r}' for c in args.case_text)} --minutes {args.minutes:g}"
        f"{'' if args.store == 'both' else ' --store ' + args.store}` "
        f"as root (about {elapsed / 60:.0f} min here) on {time.strftime('%Y-%m-%d', time.gmtime())}: {facts['nproc']} CPUs, "
        f"Linux {facts['kernel']}; {facts['prometheus']}; {facts['vm']}. Load average {facts['load']} the run: "
        "the machine is shared; the centres' CPU seconds are their own, their wall-clock pace is not.",
        "",
        "**Setup.** A vantage is one real msgreach `/metrics` scrape (OpenMetrics) copied N times under "
        "other `vantage` names and served by nginx; every round (60 s) each copy's durations, round end "
        "time and round counter change, as a vantage's do. One Prometheus agent scrapes every copy every "
        f"{SCRAPE_INTERVAL} (the volunteers' agents' default) and remote-writes to two centres at once: "
        "**Prometheus** with the shipped centre config (deploy/central/prometheus/prometheus.yml, the remote-write "
        "receiver) and the shipped default rules, and **VictoriaMetrics** with the flags of "
        "deploy/central/compose.victoriametrics.yaml plus **vmalert** with the same rules. Vantages are added in "
        f"steps; each step runs {args.minutes:g} min once its series have all arrived (CPU: the last two thirds "
        "of it, and the rule group's evaluation time, its median sampled every 15 s; RSS and stored series: at its end), then every dashboard query "
        "(dashboards/queries.yaml, every variable on \"All\", range queries over 6 h at a 60 s step) is run once "
        "against each centre. The agent, nginx and the bench share the CPUs and are not counted. One run: a "
        "bounded run sees at most a few minutes of samples per series, no head compaction (every 2 h) and no "
        "restart (WAL replay), which both need more memory than the steady state measured here.",
        "",
        "| vantages × series each | stored series (Prometheus / VM) | Prometheus RSS (MiB) | Prometheus CPU (cores) | "
        "rules (s, Prometheus) | VictoriaMetrics RSS (MiB) | VM CPU (cores) | vmalert RSS (MiB) / rules (s) | "
        "dashboards, all queries: Prometheus / VM (s) | slowest query, Prometheus (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        pr, vm, va = (p.per_centre.get(k) for k in ("prometheus", "victoria-metrics", "vmalert"))
        qp, qv = (p.queries.get(k) for k in ("prometheus", "victoria-metrics"))
        cells = [
            f"{pr['series']:,.0f}" if pr else "—", f"{vm['series']:,.0f}" if vm else "—",
            f"{pr['rss_kb'] / 1024:,.0f}" if pr else "—", f"{pr['cores']:.2f}" if pr else "—", f"{pr['rules_s']:.3f}" if pr else "—",
            f"{vm['rss_kb'] / 1024:,.0f}" if vm else "—", f"{vm['cores']:.2f}" if vm else "—",
            f"{va['rss_kb'] / 1024:.0f} / {va['rules_s']:.2f}" if va else "—",
            f"{qp[1]:.1f}" if qp else "—", f"{qv[1]:.1f}" if qv else "—", f"{qp[2][0][0]:.2f}" if qp else "—",
        ]
        lines.append(f"| {p.case}: {p.vantages:,} × {p.series_per_vantage:,} | {cells[0]} / {cells[1]} | {' | '.join(cells[2:8])} | "
                     f"{cells[8]} / {cells[9]} | {cells[10]} |")
    lines += ["", "One vantage's series, by family (the exposition each case copies):", ""]
    for label, path, _ in args.cases:
        counts = families(path.read_text())
        total = sum(counts.values())
        top = ", ".join(f"`{name}` {n:,} ({n / total:.0%})" for name, n in list(counts.items())[:4])
        lines.append(f"- {label}: {total:,} series; {top}.")
    last = points[-1]
    slowest = [f"{STORE_LABEL[store]}: " + "; ".join(f"{s:.2f} s {panel}" for s, panel in q[2]) for store, q in last.queries.items()]
    lines += ["", f"Slowest at the last step ({last.case}, {last.vantages:,} vantages): dashboard queries, " + "; ".join(slowest)
              + "."]
    lines += ["", "Growth per stored series (RSS between a case's first and last step):", ""]
    for case in cases:
        pts = [p for p in points if p.case == case]
        if len(pts) < 2:
            continue
        lines.append(f"- {case}: " + ", ".join(f"{STORE_LABEL[store]} {per_series_kib(pts, store) * 1024:,.0f} bytes per series"
                                               for store in STORES if store in pts[0].per_centre) + ".")
    lines.append(END)
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", required=True, dest="case_text",
                        help="LABEL=EXPOSITION_FILE=N1,N2,… (vantage counts, in steps); repeatable")
    parser.add_argument("--minutes", type=float, default=3.0, help="per step, once its series have arrived")
    parser.add_argument("--round-seconds", type=float, default=60.0)
    parser.add_argument("--store", choices=("both", *STORES), default="both",
                        help="the centre(s) fed: one alone leaves the CPUs to it (the rules' time is then its own)")
    parser.add_argument("--json", help="also write the raw points here")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of updating docs/benchmarks.md")
    args = parser.parse_args()
    args.cases = []
    for text in args.case_text:
        label, path, counts = text.rsplit("=", 2)
        args.cases.append((label, Path(path).resolve(), sorted(int(n) for n in counts.split(","))))
        if not Path(path).is_file():
            parser.error(f"{path}: no such file")
    return args


def versions() -> dict[str, str]:
    prom = subprocess.run(["prometheus", "--version"], capture_output=True, text=True)
    vm = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "victoria-metrics"], capture_output=True, text=True)
    return {"prometheus": (prom.stdout + prom.stderr).splitlines()[0], "vm": f"victoria-metrics {vm.stdout.strip()} (Debian)"}


def main() -> int:
    args = parse_args()
    bench.enter_namespace()
    bench.only_loopback()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks stop every process
    began = time.monotonic()
    facts = {"nproc": str(bench.os.cpu_count()), "kernel": bench.platform.release(), **versions()}
    load_before = bench.loadavg()
    points: list[Point] = []
    for label, path, counts in args.cases:
        points += run_case(label, path, counts, args.minutes, args.round_seconds, STORES if args.store == "both" else (args.store,))
    facts["load"] = f"{load_before} before, {bench.loadavg()} after"
    section = render(points, facts, args, time.monotonic() - began)
    if args.json:
        Path(args.json).write_text(json.dumps([p.__dict__ for p in points], indent=1, default=str))
    if args.no_write:
        print(section)
    else:
        bench.write_section(section, START, END)
        print(f"[central] wrote {bench.DOC.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
