"""The fleet's upload through a censor (issue #18, item 7), in three network namespaces:

    volunteer  198.18.210.2  msgreach run -> the Prometheus agent (deploy/volunteer/agent/run.sh)
        |                                     remote-writes to https://198.18.211.2:8443/api/v1/write
    router     198.18.210.1 / 198.18.211.1   the censor: nftables on the forward hook; `freeze()`
        |                                     drops every packet of a connection past N bytes or
        |                                     N packets (both directions), as Russian DPI does to
        |                                     foreign hosting since 2025 (ENDPOINTS.md)
    centre     198.18.211.2  the gateway (the shipped nginx.conf) -> central Prometheus (the
                             shipped prometheus.yml, remote-write receiver)

Names start with MRL_LAB_PREFIX (default `mrf-`, the deploy tests' own) and end with this
process's pid. No namespace has a default route or a link outside these three: nothing can
leave the machine. Used by tests/deploy/test_upload_freeze.py and bench/upload_freeze.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from mrfkit import (
    HERE,
    REPO,
    Proc,
    Processes,
    gateway_config,
    make_pki,
    msgreach_argv,
    msgreach_env,
    wait_for,
)

PREFIX = os.environ.get("MRL_LAB_PREFIX", "mrf-")
VOLUNTEER, ROUTER_V = "198.18.210.2", "198.18.210.1"
CENTRE, ROUTER_C = "198.18.211.2", "198.18.211.1"
GATEWAY_PORT = 8443
CENTRAL_PORT = 9090  # the central Prometheus, on the centre's loopback only
AGENT_PORT = 9090  # the agent's own web port, on the volunteer's loopback only
MSGREACH_PORT = 9910
WEB_PORT = 8080  # what the volunteer's msgreach measures (a local server)
BUDGET_BYTES = 12 * 1024  # the conservative freeze budget per connection, both directions
TABLE = "upload_line"


def _run(*argv: str, check: bool = True, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, input=input, timeout=timeout)


@dataclass
class Namespaces:
    volunteer: str
    router: str
    centre: str

    def all(self) -> tuple[str, str, str]:
        return (self.volunteer, self.router, self.centre)


@contextmanager
def namespaces() -> Iterator[Namespaces]:
    """The three namespaces and two veth pairs, always deleted afterwards."""
    pid = os.getpid()
    ns = Namespaces(f"{PREFIX}upv-{pid}", f"{PREFIX}upr-{pid}", f"{PREFIX}upc-{pid}")
    short, n = PREFIX[:3], pid % 1_000_000
    try:
        for name in ns.all():
            _run("ip", "netns", "del", name, check=False)
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        for (a, a_if, a_addr), (b, b_if, b_addr) in (
            ((ns.volunteer, f"{short}v1{n}", VOLUNTEER), (ns.router, f"{short}r1{n}", ROUTER_V)),
            ((ns.router, f"{short}r2{n}", ROUTER_C), (ns.centre, f"{short}c2{n}", CENTRE)),
        ):
            _run("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b)
            for name, dev, address in ((a, a_if, a_addr), (b, b_if, b_addr)):
                _run("ip", "-n", name, "addr", "add", f"{address}/24", "dev", dev)
                _run("ip", "-n", name, "link", "set", dev, "up")
        # Routes to each other's /24 only: no default route anywhere.
        _run("ip", "-n", ns.volunteer, "route", "add", "198.18.211.0/24", "via", ROUTER_V)
        _run("ip", "-n", ns.centre, "route", "add", "198.18.210.0/24", "via", ROUTER_C)
        _run("ip", "netns", "exec", ns.router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.netfilter.nf_conntrack_acct=1")
        yield ns
    finally:
        for name in ns.all():
            _run("ip", "netns", "del", name, check=False)


def ns_exec(ns: str, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
    return _run("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)


def ns_http(ns: str, url: str, timeout: float = 10) -> tuple[int, str]:
    """GET from inside a namespace with curl: (status, body); 0 when nothing answered."""
    done = ns_exec(ns, "curl", "-s", "--compressed", "-m", f"{timeout:g}", "-w", "\n%{http_code}", url, timeout=timeout + 5)
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body


# --- the censor ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """One connection to the gateway as the router's conntrack counted it (both directions)."""

    sport: int
    bytes: int
    packets: int


class Censor:
    """The router's rules: a counter of packets in connections past the budget (what a
    conservative sender must keep at zero) and, when frozen, the freeze itself."""

    def __init__(self, ns: str):
        self.ns = ns
        self._nft(f"""
table inet {TABLE} {{
  counter over_budget {{ }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    tcp dport {GATEWAY_PORT} ct bytes > {BUDGET_BYTES} counter name over_budget
    tcp sport {GATEWAY_PORT} ct bytes > {BUDGET_BYTES} counter name over_budget
    jump freeze
  }}
  chain freeze {{ }}
}}
""")

    def _nft(self, script: str) -> None:
        done = _run("ip", "netns", "exec", self.ns, "nft", "-f", "-", input=script, check=False)
        assert done.returncode == 0, f"nft: {done.stderr}\n{script}"

    def freeze(self, *, after_bytes: int | None = None, after_packets: int | None = None) -> None:
        """Every packet of a connection to or from the gateway past ``after_bytes`` bytes or
        ``after_packets`` packets (both directions counted, as the DPI does) is dropped."""
        rules = []
        for match in (f"ct bytes > {after_bytes}" if after_bytes is not None else None, f"ct packets > {after_packets}" if after_packets is not None else None):
            if match is not None:
                rules += [f"add rule inet {TABLE} freeze tcp dport {GATEWAY_PORT} {match} drop", f"add rule inet {TABLE} freeze tcp sport {GATEWAY_PORT} {match} drop"]
        assert rules, "freeze after how many bytes or packets?"
        self._nft("\n".join([f"flush chain inet {TABLE} freeze", *rules]) + "\n")

    def delay(self, procs: Processes, directory: Path, one_way_ms: float, jitter_ms: float = 0.0) -> None:
        """Every packet through the router waits `one_way_ms` (± jitter): a line abroad's round
        trip without netem (this kernel has none), by NFQUEUE and tests/lab/nfqdelay.py."""
        ready = directory / "nfqdelay.ready"
        script = REPO / "tests" / "lab" / "nfqdelay.py"
        proc = procs.start("nfqdelay", [os.environ.get("PYTHON", "python3"), str(script), "--queue", "17", "--delay-ms", f"{one_way_ms:g}",
                                        "--jitter-ms", f"{jitter_ms:g}", "--ready-file", str(ready)], netns=self.ns)
        wait_for(lambda: ready.exists() or not proc.alive(), 10, what="nfqdelay")
        assert proc.alive(), proc.text()
        _run("ip", "netns", "exec", self.ns, "iptables", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "17", "--queue-bypass")

    def reopen(self) -> None:
        self._nft(f"flush chain inet {TABLE} freeze\n")

    def over_budget_packets(self) -> int:
        done = _run("ip", "netns", "exec", self.ns, "nft", "-j", "list", "counter", "inet", TABLE, "over_budget")
        for item in json.loads(done.stdout)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise AssertionError(done.stdout)

    def connections(self) -> list[Connection]:
        """Connections to the gateway the router tracks now (closed ones stay ~2 min in TIME_WAIT)."""
        done = _run("ip", "netns", "exec", self.ns, "conntrack", "-L", "-p", "tcp", "--dport", str(GATEWAY_PORT), check=False)
        found = []
        for line in done.stdout.splitlines():
            sport = re.search(r"sport=(\d+)", line)
            packets = [int(x) for x in re.findall(r"packets=(\d+)", line)]
            sizes = [int(x) for x in re.findall(r"bytes=(\d+)", line)]
            if sport and packets and sizes:
                found.append(Connection(int(sport.group(1)), sum(sizes), sum(packets)))
        return found


# --- the centre and the volunteer ----------------------------------------------------------------


def msgreach_config(directory: Path, vantage: str, targets: int, interval: float, upload: dict[str, Any] | None) -> Path:
    """A vantage measuring `targets` targets on a local server (about 20 series each)."""
    config: dict[str, Any] = {
        "vantages": [{"name": vantage, "country": "ZZ", "resolvers": ["system"]}],
        "controls": [{"name": "ctl", "host": "127.0.0.1", "ports": [WEB_PORT], "checks": ["tcp"]}],
        "schedule": {"interval_seconds": interval, "jitter_seconds": 0, "retries": 0},
        "services": [{
            "name": "local",
            "targets": [
                {"name": f"web{i}", "host": "127.0.0.1", "ports": [WEB_PORT], "checks": ["tcp", "http"], "params": {"http": {"scheme": "http"}}}
                for i in range(targets)
            ],
        }],
    }
    if upload is not None:
        config["upload"] = upload
    path = directory / "msgreach.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Fleet:
    """One volunteer (msgreach + agent) and the centre (gateway + central Prometheus)."""

    ns: Namespaces
    procs: Processes
    directory: Path
    vantage: str = "v1"
    central: Proc | None = None
    agent: Proc | None = None
    msgreach: Proc | None = None
    started_at: float = field(default_factory=time.time)

    # -- start ----------------------------------------------------------------------------------

    def start_centre(self) -> None:
        prometheus = shutil.which("prometheus")
        assert prometheus is not None
        shipped = yaml.safe_load((REPO / "deploy" / "central" / "prometheus" / "prometheus.yml").read_text())
        shipped.pop("alerting", None)
        shipped.pop("rule_files", None)  # the rules are tested elsewhere; here only the receiving side
        shipped["scrape_configs"] = []
        config = self.directory / "central.yml"
        config.write_text(yaml.safe_dump(shipped))
        self.central = self.procs.start("central", [
            prometheus, f"--config.file={config}", f"--storage.tsdb.path={self.directory / 'central-data'}",
            f"--web.listen-address=127.0.0.1:{CENTRAL_PORT}", "--web.enable-remote-write-receiver", "--log.level=warn",
        ], netns=self.ns.centre)
        wait_for(lambda: self._alive(self.central) and ns_http(self.ns.centre, f"http://127.0.0.1:{CENTRAL_PORT}/-/ready")[0] == 200, 60, what="the central Prometheus")

    def start_gateway(self) -> dict[str, str]:
        """The gateway with one volunteer added by the operator's script; returns its .env."""
        nginx = shutil.which("nginx")
        assert nginx is not None
        self.tls = make_pki(self.directory, [], [CENTRE])
        secrets = self.directory / "secrets"
        secrets.mkdir()
        users = secrets / "volunteers.htpasswd"
        users.write_text("")
        env = dict(os.environ, CENTRE_HOSTNAME=f"{CENTRE}:{GATEWAY_PORT}", SECRETS_DIR=str(secrets), VOLUNTEERS_DIR=str(self.directory / "volunteers"))
        add = subprocess.run([str(REPO / "deploy" / "central" / "add-volunteer.sh"), self.vantage], capture_output=True, text=True, env=env, timeout=30, check=False)
        assert add.returncode == 0, add.stderr
        settings = dict(line.split("=", 1) for line in Path(add.stdout.strip()).read_text().splitlines() if line and not line.startswith("#"))
        config = gateway_config(self.directory, f"{CENTRE}:{GATEWAY_PORT}", f"127.0.0.1:{CENTRAL_PORT}", self.tls, users)
        gateway = self.procs.start("gateway", [nginx, "-p", str(self.directory), "-c", str(config), "-e", "stderr", "-g", "daemon off; user root;"], netns=self.ns.centre)
        wait_for(lambda: self._alive(gateway) and ns_http(self.ns.centre, f"https://{CENTRE}:{GATEWAY_PORT}/api/v1/write")[0] in (403, 0) and self._gateway_listening(), 20, what="the gateway")
        return settings

    def _gateway_listening(self) -> bool:
        return f"{CENTRE}:{GATEWAY_PORT}" in ns_exec(self.ns.centre, "ss", "-ltn").stdout

    def start_volunteer(self, settings: dict[str, str], *, targets: int, round_interval: float, scrape: str, agent_env: dict[str, str] | None = None,
                        upload: dict[str, Any] | None = None) -> None:
        self.procs.start("web", [os.environ.get("PYTHON", "python3"), str(HERE / "mrf_servers.py"), "http", "--port", str(WEB_PORT)], netns=self.ns.volunteer)
        config = msgreach_config(self.directory, self.vantage, targets, round_interval, upload)
        self.msgreach = self.procs.start("msgreach", msgreach_argv("run", "--config", str(config), "--listen", f"127.0.0.1:{MSGREACH_PORT}"),
                                         netns=self.ns.volunteer, env=msgreach_env())
        env = dict(os.environ, **settings)
        env.update(
            MSGREACH_TARGET=f"127.0.0.1:{MSGREACH_PORT}", SCRAPE_INTERVAL=scrape, SCRAPE_TIMEOUT="900ms" if scrape == "1s" else "10s",
            AGENT_LISTEN=f"127.0.0.1:{AGENT_PORT}", AGENT_CONFIG_DIR=str(self.directory / "agent"), AGENT_WAL=str(self.directory / "wal"),
            REMOTE_WRITE_CA_FILE=str(self.tls["ca"]),
        )
        env.update(agent_env or {})
        self.agent = self.procs.start("agent", ["sh", str(REPO / "deploy" / "volunteer" / "agent" / "run.sh")], netns=self.ns.volunteer, env=env)
        wait_for(lambda: self._alive(self.agent) and ns_http(self.ns.volunteer, f"http://127.0.0.1:{AGENT_PORT}/-/ready")[0] == 200, 60, what="the agent")
        wait_for(lambda: self._alive(self.msgreach) and self.msgreach_get("/healthz")[0] == 200, 60, what="msgreach")

    def _alive(self, proc: Proc | None) -> bool:
        assert proc is not None
        assert proc.alive(), f"{proc.name} exited:\n{proc.text()[-3000:]}"
        return True

    def check_alive(self) -> None:
        for proc in (self.central, self.agent, self.msgreach):
            self._alive(proc)

    # -- read -----------------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        status, body = ns_http(self.ns.centre, f"http://127.0.0.1:{CENTRAL_PORT}/api/v1/query?{urllib.parse.urlencode(params)}")
        if status != 200:
            return []
        return json.loads(body)["data"]["result"]

    def sample_times(self, series: str, since: float) -> list[float]:
        """Timestamps of every sample of one series the centre holds since `since`."""
        now = time.time()
        result = self.query(f"{series}[{int(now - since) + 1}s]", at=now)
        assert len(result) <= 1, result
        return [float(t) for t, _ in result[0]["values"]] if result else []

    def agent_metrics(self) -> dict[str, float]:
        """The agent's prometheus_remote_storage_* values (summed over remotes) and its start time."""
        status, body = ns_http(self.ns.volunteer, f"http://127.0.0.1:{AGENT_PORT}/metrics")
        assert status == 200, body[-500:]
        values: dict[str, float] = {}
        for line in body.splitlines():
            if line.startswith(("prometheus_remote_storage_", "process_start_time_seconds")):
                name = line.split("{", 1)[0].split(" ", 1)[0]
                values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return values

    def msgreach_get(self, path: str) -> tuple[int, str]:
        return ns_http(self.ns.volunteer, f"http://127.0.0.1:{MSGREACH_PORT}{path}")


class Arrivals:
    """When each sample of a series reached the centre: polled, each new timestamp is stamped
    with the poll that first saw it (so a delay is known to within one poll period)."""

    def __init__(self, fleet: Fleet, series: str):
        self.fleet = fleet
        self.series = series
        self.since = time.time()
        self.arrived: dict[float, float] = {}  # sample timestamp -> first seen at

    def poll(self) -> int:
        now = time.time()
        new = 0
        for stamp in self.fleet.sample_times(self.series, self.since - 5):
            if stamp not in self.arrived:
                self.arrived[stamp] = now
                new += 1
        return new

    def delays(self, start: float = 0.0, end: float = float("inf")) -> list[float]:
        return sorted(seen - stamp for stamp, seen in self.arrived.items() if start <= stamp <= end)

    def gaps(self, start: float, end: float) -> list[tuple[float, float]]:
        """Holes between consecutive samples of [start, end] (scrape times)."""
        stamps = sorted(t for t in self.arrived if start <= t <= end)
        return list(pairwise(stamps))


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")
