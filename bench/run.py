#!/usr/bin/env python3
"""TLS/HTTP benchmark: msgreach against Debian's prometheus-blackbox-exporter, side by side.

Both probe the same N HTTPS targets served by one local nginx (a test CA made with openssl at
bench time, one wildcard certificate for *.bench.test, each target on its own loopback address,
a small static page), at the same concurrency, and every probe must succeed:

- msgreach: one inline service of N targets with checks [tcp, tls, http], pinned addresses,
  retries 0, one TCP control (a connect to the first target's address); one round as `msgreach
  once` does it (bench/msgreach_round.py).
- blackbox (http): the exporter's `http` prober, one /probe per target (`https://tNNNN.bench.test/`,
  the same SNI, the certificate validated against the test CA), driven by an asyncio client.
- blackbox (tcp+tls+http): three /probe per target (tcp connect, TLS handshake, HTTPS GET),
  the same stages as msgreach's three checks (which share one connection and one handshake).

Everything runs inside a fresh network namespace (`unshare --net --mount`) with only loopback,
so no packet can leave the machine; the exporter finds the names in an /etc/hosts bind-mounted
in that private mount namespace only. Every process started is stopped, the temp dir removed.

    python bench/run.py                       # sizes 100 and 1000, 3 repeats, writes docs/benchmarks.md
    python bench/run.py --sizes 100 --repeats 1 --no-write   # quick look

Needs root (namespaces, nginx on port 443), nginx, openssl, prometheus-blackbox-exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docsection  # bench/docsection.py: beside this script

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:tls-http:start -->", "<!-- bench:tls-http:end -->"
INSIDE = "MSGREACH_BENCH_NETNS"
EXPORTER = "/usr/bin/prometheus-blackbox-exporter"
EXPORTER_LISTEN = "127.0.0.1:9115"
MSGREACH_LISTEN = "127.0.0.1:9910"
DOMAIN = "bench.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SOURCE = {"path": REPO, "label": "working tree"}  # the msgreach measured (--rev: an exported commit)


MAX_TARGETS = 10_000
INLINE_TARGETS = 3_000  # up to this many, one inline service; above, services of CATALOG_TARGETS in catalog files
CATALOG_TARGETS = 2_500


def address_of(index: int) -> str:
    """Target i (0-based) listens on its own loopback address: 127.77.1.1 … 127.77.40.250."""
    return f"127.77.{1 + index // 250}.{1 + index % 250}"


def name_of(index: int) -> str:
    return f"t{index + 1:04d}"


# --- processes --------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec: the child gets SIGTERM if this process dies, whatever the way."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def clean_env() -> dict[str, str]:
    """No proxy variables, nothing inherited that could route a probe elsewhere; a fresh, empty
    state directory for every process (its evidence archive and verdict history), so that every
    run does the same work: not the home directory's, which grows and rotates from run to run."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TERM")}
    env["PYTHONPATH"] = str(SOURCE["path"])
    env["MSGREACH_STATE_DIR"] = tempfile.mkdtemp(prefix="msgreach-bench-state-", dir=_STATE_ROOT)
    return env


_STATE_ROOT = tempfile.mkdtemp(prefix="msgreach-bench-")
atexit.register(shutil.rmtree, _STATE_ROOT, ignore_errors=True)


def start(argv: list[str], **kwargs) -> subprocess.Popen:
    # cwd: the source measured, so `python -m probe` cannot pick up another checkout's probe/
    return subprocess.Popen(argv, env=clean_env(), cwd=SOURCE["path"], preexec_fn=_die_with_parent, **kwargs)


def export_revision(rev: str, tmp: Path) -> None:
    """Measure a commit, not whatever the working tree holds right now."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True).stdout.strip()
    dest = tmp / "src"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "probe", "configs"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    SOURCE.update(path=dest, label=f"commit {commit}")


def describe_worktree() -> None:
    done = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True)
    SOURCE["label"] = f"working tree at {done.stdout.strip()}" if done.returncode == 0 else "working tree"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_cpu(pid: int) -> float:
    """utime+stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def wait_http(url: str, timeout: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.05)


# --- the lab: certificates, nginx, hosts ----------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(tmp: Path) -> None:
    """A throwaway CA (EC P-256) and a wildcard certificate for *.bench.test, made here, never kept."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=msgreach bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN=*.{DOMAIN}", cwd=tmp)
    (tmp / "ext.cnf").write_text(
        f"subjectAltName=DNS:*.{DOMAIN}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=tmp)


PAGE = "<!doctype html>\n<html><head><title>bench</title></head><body>\n" + "<p>msgreach benchmark page.</p>\n" * 16 + "</body></html>\n"


def nginx_config(tmp: Path, n: int) -> str:
    listens = "\n".join(f"    listen {address_of(i)}:443 ssl;" for i in range(n))
    temp = "\n".join(f"  {k}_temp_path {tmp}/nginx-{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile {n + 4096};
user nobody nogroup;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections {n + 2048}; }}  # every listening socket counts as a connection
http {{
  access_log off;
{temp}
  server {{
{listens}
    server_name *.{DOMAIN};
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.key;
    keepalive_timeout 5s;
    root {tmp}/www;
    location / {{ index index.html; }}
  }}
}}
"""


def start_nginx(tmp: Path, n: int) -> subprocess.Popen:
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text(PAGE)
    os.chmod(tmp, 0o755)  # the workers (nobody) read the page
    (tmp / "nginx.conf").write_text(nginx_config(tmp, n))
    proc = start(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    import socket

    while True:
        try:
            socket.create_connection((address_of(n - 1), 443), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start: " + (tmp / "nginx-error.log").read_text()[-2000:]) from None
            time.sleep(0.05)


def private_hosts(tmp: Path, n: int) -> None:
    """The exporter resolves tNNNN.bench.test by /etc/hosts — a private copy, bind-mounted in this
    process's own mount namespace (the machine's /etc/hosts is untouched)."""
    lines = ["127.0.0.1 localhost", *(f"{address_of(i)} {name_of(i)}.{DOMAIN}" for i in range(n))]
    (tmp / "hosts").write_text("\n".join(lines) + "\n")
    subprocess.run(["mount", "--bind", str(tmp / "hosts"), "/etc/hosts"], check=True)


# --- msgreach ---------------------------------------------------------------------------------------


def msgreach_config(tmp: Path, n: int, concurrency: int, interval: float = 60.0,
                    checks: tuple[str, ...] = ("tcp", "tls", "http")) -> Path:
    import yaml

    config = {
        "vantages": [{"name": "bench", "resolvers": ["system"], "ca_bundle": str(tmp / "ca.pem"),
                      "bogon_exempt": ["127.0.0.0/8"]}],
        "schedule": {"interval_seconds": interval, "jitter_seconds": 0, "concurrency": concurrency,
                     "retries": 0, "round_deadline_seconds": 600},
        "listen": {"address": MSGREACH_LISTEN},
        # A control is required; one TCP connect to the first target's address per round.
        "controls": [{"name": "ctl", "host": address_of(0), "ports": [443], "checks": ["tcp"]}],
    }
    stem = f"msgreach-{n}-{interval:g}-{'-'.join(checks)}"
    targets = [{"name": name_of(i), "host": f"{name_of(i)}.{DOMAIN}", "addresses": [address_of(i)],
                "ports": [443], "checks": list(checks)} for i in range(n)]
    if n <= INLINE_TARGETS:
        config["services"] = [{"name": "bench", "targets": targets}]
    else:  # a YAML file holds at most 1 MiB and 100,000 values: services of CATALOG_TARGETS, a catalog file each
        config["services"] = []
        for part, first in enumerate(range(0, n, CATALOG_TARGETS), 1):
            catalog = tmp / f"{stem}-bench{part}.yaml"
            catalog.write_text(yaml.safe_dump({"name": f"bench{part}", "targets": targets[first:first + CATALOG_TARGETS]}, sort_keys=False))
            config["services"].append({"catalog": str(catalog)})
    path = tmp / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
@dataclass
class Sample:
    """One run of one contender. What `cpu` counts depends on the contender (see CONTENDERS)."""

    wall: float  # seconds: the round, the N probes, or the whole `once` process
    cpu: float  # seconds of CPU
    peak_rss_kb: int  # peak resident set of the process, start-up included
    load1: float  # the 1-minute load average when the run ended: the noise it ran in
    extra: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, list[float]] = field(default_factory=dict)  # `run`: per-round figures


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# Linux keeps a process's ru_maxrss across fork and exec: a child forked from this process (tens
# of MiB by the later runs) and then exec'd reports at least this process's RSS, whatever its
# own. So the child is forked by a small interpreter started for it (-S: about 8 MiB, below any
# msgreach process), which waits for it and writes the child's own rusage to a pipe.
_SPAWN = """
import ctypes, os, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    ctypes.CDLL("libc.so.6").prctl(1, 15)  # PR_SET_PDEATHSIG: SIGTERM when the spawner dies
    os.execvp(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(fd, f"{usage.ru_utime + usage.ru_stime!r} {usage.ru_maxrss}".encode())
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run_waited(argv: list[str], stdout) -> tuple[int, float, int]:
    """Run to the end; returns exit status, user+sys CPU and ru_maxrss (KiB) of the child alone
    (see _SPAWN)."""
    read_end, write_end = os.pipe()
    try:
        proc = start([sys.executable, "-S", "-c", _SPAWN, str(write_end), *argv], stdout=stdout, stderr=subprocess.PIPE, pass_fds=(write_end,))
    finally:
        os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as facts:
            cpu, maxrss = facts.read().decode().split()
        proc.wait()
    except BaseException:
        stop(proc)
        raise
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err[-2000:]}")
    return proc.returncode, float(cpu), int(maxrss)


def msgreach_round(tmp: Path, n: int, concurrency: int, checks: tuple[str, ...] = ("tcp", "tls", "http")) -> Sample:
    """The round alone, in bench/msgreach_round.py: CPU of the round (no start-up, no JSON)."""
    config = msgreach_config(tmp, n, concurrency, checks=checks)
    with open(tmp / "round.out", "w+") as out:
        _, total_cpu, maxrss = run_waited([sys.executable, str(REPO / "bench" / "msgreach_round.py"), str(config)], out)
        out.seek(0)
        facts = json.loads(out.read())
    ok = facts["verdicts"].get("ok", 0)
    if ok != n or facts["vantage_verdicts"] != ["ok"]:
        raise RuntimeError(f"msgreach: {ok}/{n} targets ok: {facts}")
    return Sample(facts["round_wall"], facts["round_cpu"], maxrss, load1(),
                  {"total_cpu": total_cpu, "startup_cpu": facts["startup_cpu"], "render_cpu": facts["render_cpu"],
                   "rss_idle_kb": facts["rss_idle_kb"]})


def msgreach_once(tmp: Path, n: int, concurrency: int) -> Sample:
    """The real command line, `python -m probe once --config X --format json`: the whole
    process's CPU (start-up, the round, the JSON) and peak RSS, from wait4()."""
    config = msgreach_config(tmp, n, concurrency)
    started = time.monotonic()
    with open(tmp / "once.json", "w+") as out:
        _, cpu, maxrss = run_waited([sys.executable, "-m", "probe", "once", "--config", str(config), "--format", "json"], out)
        wall = time.monotonic() - started
        out.seek(0)
        document = json.load(out)
    verdicts = [t["verdict"] for v in document["vantages"] for s in v["services"] for t in s["targets"]]
    if verdicts.count("ok") != n:
        raise RuntimeError(f"msgreach once: {verdicts.count('ok')}/{n} ok")
    return Sample(wall, cpu, maxrss, load1(), {"round_wall": document["duration_seconds"]})


# What Prometheus sends when it scrapes (2.42+): OpenMetrics first, gzip.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
ROUND_LINE = re.compile(r"round bench: ok;.*; ([0-9.]+) s$", re.M)  # the vantage is `bench`


def msgreach_steady(tmp: Path, n: int, concurrency: int, rounds: int, interval: float, save_metrics: Path | None = None) -> Sample:
    """`msgreach run` for `rounds` rounds of N targets, scraped once after each round as
    Prometheus scrapes (OpenMetrics, gzip), so each round's CPU includes what one scrape costs.
    Rounds are read from its INFO log; CPU and RSS sampled when each round's line appears.

    Sample.cpu is the median CPU of rounds 2…k (the first one carries the start-up), peak RSS
    the process's VmHWM after the last, wall the median round duration from the log."""
    import httpx

    config = msgreach_config(tmp, n, concurrency, interval)
    log = tmp / "run.log"
    with open(log, "w") as err:
        # The default log level prints msgreach's own round lines (libraries stay at WARNING).
        proc = start([sys.executable, "-m", "probe", "run", "--config", str(config),
                      "--listen", MSGREACH_LISTEN], stdout=subprocess.DEVNULL, stderr=err)
    try:
        rss: list[float] = []
        cpu: list[float] = []
        scrape_cpu: list[float] = []
        durations: list[float] = []
        last_cpu = 0.0
        deadline = time.monotonic() + rounds * interval * 2 + 120
        url = f"http://{MSGREACH_LISTEN}/metrics"
        text = ""
        while len(durations) < rounds:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("msgreach run: rounds did not complete: " + log.read_text()[-2000:])
            time.sleep(0.1)
            found = ROUND_LINE.findall(log.read_text())
            if len(found) > len(durations):
                durations = [float(d) for d in found]
                before = proc_cpu(proc.pid)
                response = httpx.get(url, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
                                     timeout=60, trust_env=False)
                response.raise_for_status()
                now_cpu = proc_cpu(proc.pid)
                scrape_cpu.append(now_cpu - before)
                rss.append(proc_status_kb(proc.pid, "VmRSS"))
                cpu.append(now_cpu - last_cpu)
                last_cpu = now_cpu
                text = response.text
                sent = int(response.headers.get("content-length", "0"))
        ok = len(re.findall(r'^msgreach_target_verdict\{[^}]*verdict="ok"\} 1(\.0)?$', text, re.M))
        if ok != n:
            raise RuntimeError(f"msgreach run: {ok}/{n} targets ok after {len(durations)} rounds")
        if save_metrics is not None:
            save_metrics.write_text(text)
        series = sum(1 for line in text.splitlines() if line and line[0] != "#")
        steady = cpu[1:] or cpu
        return Sample(statistics.median(durations[1:] or durations), statistics.median(steady),
                      proc_status_kb(proc.pid, "VmHWM"), load1(),
                      {"interval": interval, "series": series, "scrape_bytes": sent, "scrape_text_bytes": len(text.encode()),
                       "scrape_cpu": statistics.median(scrape_cpu[1:] or scrape_cpu)},
                      {"rss_kb": rss, "cpu": cpu, "duration": durations})
    finally:
        stop(proc)


# --- blackbox_exporter ------------------------------------------------------------------------------

MODULES = {
    "http": ("https_2xx", "https://{host}/"),
    "tcp": ("tcp_connect", "{host}:443"),
    "tls": ("tls_connect", "{host}:443"),
}


def blackbox_config(tmp: Path) -> Path:
    import yaml

    tls = {"ca_file": str(tmp / "ca.pem")}
    config = {"modules": {
        "https_2xx": {"prober": "http", "timeout": "10s", "http": {
            "method": "GET", "valid_status_codes": [200], "fail_if_not_ssl": True,
            "preferred_ip_protocol": "ip4", "ip_protocol_fallback": False, "tls_config": tls}},
        "tcp_connect": {"prober": "tcp", "timeout": "5s", "tcp": {
            "preferred_ip_protocol": "ip4", "ip_protocol_fallback": False}},
        "tls_connect": {"prober": "tcp", "timeout": "8s", "tcp": {
            "preferred_ip_protocol": "ip4", "ip_protocol_fallback": False, "tls": True, "tls_config": tls}},
    }}
    path = tmp / "blackbox.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def drive_blackbox(n: int, concurrency: int, checks: tuple[str, ...]) -> list[str]:
    """N targets, `concurrency` at a time; each target's probes one after the other (as msgreach
    runs a target's checks). Returns the failures (empty when every probe_success is 1).

    A deliberately thin HTTP/1.1 client (one keep-alive connection per slot, no parsing beyond
    Content-Length): it shares the CPUs with the exporter, so it should cost as little as it can."""
    from urllib.parse import quote

    host, port = EXPORTER_LISTEN.split(":")
    failed: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(n):
        queue.put_nowait(index)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not queue.empty():
                name = f"{name_of(queue.get_nowait())}.{DOMAIN}"
                for check in checks:
                    module, target = MODULES[check]
                    writer.write(f"GET /probe?module={module}&target={quote(target.format(host=name), safe='')} HTTP/1.1\r\n"
                                 f"Host: {EXPORTER_LISTEN}\r\n\r\n".encode())
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                    if length:
                        body = await reader.readexactly(int(length.group(1)))
                    else:  # chunked
                        body = b""
                        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                            body += (await reader.readexactly(size + 2))[:-2]
                        await reader.readuntil(b"\r\n")
                    if not head.startswith(b"HTTP/1.1 200") or b"\nprobe_success 1\n" not in body:
                        failed.append(f"{name} {check}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def blackbox_round(tmp: Path, n: int, concurrency: int, checks: tuple[str, ...]) -> Sample:
    proc = start([EXPORTER, f"--config.file={blackbox_config(tmp)}", f"--web.listen-address={EXPORTER_LISTEN}",
                  "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://{EXPORTER_LISTEN}/-/healthy")
        cpu0, client0, wall0 = proc_cpu(proc.pid), time.process_time(), time.monotonic()
        failed = asyncio.run(drive_blackbox(n, concurrency, checks))
        wall, client_cpu = time.monotonic() - wall0, time.process_time() - client0
        cpu = proc_cpu(proc.pid) - cpu0
        hwm = proc_status_kb(proc.pid, "VmHWM")
    finally:
        stop(proc)
    if failed:
        raise RuntimeError(f"blackbox: {len(failed)} probes failed, e.g. {failed[:3]}")
    return Sample(wall, cpu, hwm, load1(), {"client_cpu": client_cpu})


# --- the runs ---------------------------------------------------------------------------------------

CONTENDERS = {
    "once": "msgreach `once`, the whole process",
    "steady": "msgreach `run`, a steady round + its scrape",
    "round": "msgreach, the round alone",
    "bb_http": "blackbox, `http` probe",
    "bb_three": "blackbox, tcp+tls+http probes",
}
BREAKDOWN = ("m_tcp", "m_tcp_tls")  # the same round with fewer checks: where msgreach's CPU goes
MSGREACH = ("once", "steady", "round")
PEERS = ("bb_http", "bb_three")


@dataclass
class Plan:
    """What one size measures: which contenders, how many interleaved repeats, `run`'s rounds."""

    n: int
    kinds: tuple[str, ...]
    repeats: int
    concurrency: int
    steady_rounds: int = 0
    save_metrics: Path | None = None
    interval: float | None = None  # `run`'s interval_seconds; None: from a warm-up round


def steady_interval(round_wall: float) -> float:
    """`run`'s interval for the bench: rounds never overlap, and there is time to scrape."""
    return max(5.0, float(round(round_wall * 1.5 + 1)))


def measure(tmp: Path, plan: Plan) -> dict[str, list[Sample]]:
    """`plan.repeats` runs of every contender, interleaved: each repeat runs them all, in an
    order rotated by one from the previous repeat's, so that none always runs first or after the
    same neighbour while the shared machine's load drifts. Unless the plan gives `run`'s interval,
    a warm-up round (not counted) fills the page cache and sets it to 1.5 rounds."""
    n, c = plan.n, plan.concurrency
    interval = plan.interval if plan.interval is not None else steady_interval(msgreach_round(tmp, n, c).wall)
    runners = {
        "once": lambda: msgreach_once(tmp, n, c),
        "round": lambda: msgreach_round(tmp, n, c),
        "steady": lambda: msgreach_steady(tmp, n, c, plan.steady_rounds, interval, plan.save_metrics),
        "bb_http": lambda: blackbox_round(tmp, n, c, ("http",)),
        "bb_three": lambda: blackbox_round(tmp, n, c, ("tcp", "tls", "http")),
        "m_tcp": lambda: msgreach_round(tmp, n, c, ("tcp",)),
        "m_tcp_tls": lambda: msgreach_round(tmp, n, c, ("tcp", "tls")),
    }
    row: dict[str, list[Sample]] = {k: [] for k in plan.kinds}
    for rep in range(plan.repeats):
        shift = rep % len(plan.kinds)
        for kind in plan.kinds[shift:] + plan.kinds[:shift]:
            row[kind].append(runners[kind]())
            s = row[kind][-1]
            print(f"[bench] n={n} run {rep + 1} {kind}: wall {s.wall:.2f}s cpu {s.cpu:.2f}s rss {s.peak_rss_kb // 1024}MiB load {s.load1:.1f}",
                  file=sys.stderr, flush=True)
    return row


# --- report -----------------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    exporter = subprocess.run([EXPORTER, "--version"], capture_output=True, text=True)
    exporter_version = (exporter.stdout + exporter.stderr).splitlines()[0]
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    ssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    import httpx

    version = subprocess.run([sys.executable, "-m", "probe", "--version"], env=clean_env(), cwd=SOURCE["path"],
                             capture_output=True, text=True, check=True).stdout.split()[-1]
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "msgreach": f"{version} ({SOURCE['label']})",
        "httpx": httpx.__version__,
        "blackbox": exporter_version,
        "nginx": nginx.removeprefix("nginx version: "),
        "openssl": ssl,
    }


def med(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def paired(row: dict[str, list[Sample]], kind: str, peer: str, attr: str = "cpu") -> list[float]:
    """Repeat by repeat, kind ÷ peer: the two ran minutes apart at most, under the same load."""
    return [getattr(a, attr) / max(getattr(b, attr), 1e-9) for a, b in zip(row[kind], row[peer], strict=False)]


def ratio_text(ratios: list[float]) -> str:
    """The median ratio, and its range over the repeats when there are several."""
    text = f"{statistics.median(ratios):.2f}×"
    return text + (f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else "")


def mib(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def command_line() -> str:
    """The command that produced the numbers, as run (minus output-only options)."""
    import shlex

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg in ("--json", "--save-metrics"):
            skip = True
        elif not arg.startswith(("--json=", "--save-metrics=")):
            argv.append(arg)
    return " ".join(["python3 bench/run.py", *map(shlex.quote, argv)])


# Issue #22's acceptance lines, read off the headline table.
CPU_GOAL = 1.0  # × blackbox's `http` probe
RSS_GOAL_MIB = 40


def render(results: dict[int, dict[str, list[Sample]]], facts: dict[str, str], args: argparse.Namespace, elapsed: float) -> str:
    sizes = sorted(results)
    h = args.headline
    head = results[h]
    loads = [s.load1 for row in results.values() for samples in row.values() for s in samples]
    lines = [
        START,
        "## TLS/HTTP checks: msgreach vs blackbox_exporter",
        "",
        f"Produced by `{command_line()}` as root from the repository root (about {elapsed / 60:.0f} min here; "
        f"`--help` for options) on {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, Linux {facts['kernel']}. "
        f"msgreach {facts['msgreach']} on Python {facts['python']} (httpx {facts['httpx']}); "
        f"{facts['blackbox']}; {facts['nginx']}; {facts['openssl']}. Load average (1/5/15 min) "
        f"{facts['load']} the run, the 1-minute figure between {min(loads):.1f} and {max(loads):.1f} at the ends "
        "of the runs: the machine is shared with other work, so wall times carry others' noise; CPU seconds much "
        "less so, and the ratios are taken repeat by repeat, between runs made a minute or two apart.",
        "",
        f"### The headline: {h:,} targets, against blackbox's `http` probe",
        "",
        f"Each figure is the median of {args.repeats} interleaved repeats (every repeat runs every contender, the "
        "order rotated from one repeat to the next); a ratio is the median of the repeats' own ratios, with "
        "their range. msgreach makes one connection, one TLS handshake and one GET per target, as "
        "blackbox's `http` probe does: that probe is the peer. The tcp+tls+http trio (three probes, three "
        "connections, two handshakes per target) is beside it.",
        "",
        f"| {h:,} targets | CPU per target (ms) | ÷ blackbox `http` | ÷ blackbox tcp+tls+http | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in (*MSGREACH, *PEERS):
        if kind not in head:
            continue
        vs = ["1×" if kind == peer else ratio_text(paired(head, kind, peer)) if kind in MSGREACH or peer == "bb_http" else ""
              for peer in PEERS]
        lines.append(f"| {CONTENDERS[kind]} | {med(head[kind], 'cpu') / h * 1000:.2f} | {vs[0]} | {vs[1]} | "
                     f"{mib(med(head[kind], 'peak_rss_kb'))} |")
    lines += ["", "Issue #22's acceptance lines:", "", "| goal | measured | met |", "|---|---:|---|"]
    for kind, what in (("once", "the whole `once` process"), ("steady", "steady `run` rounds")):
        if kind in head:
            r = statistics.median(paired(head, kind, "bb_http"))
            lines.append(f"| CPU ≤ {CPU_GOAL:g}× blackbox's `http` probe, {what}, {h:,} targets | {r:.2f}× | "
                         f"{'yes' if r <= CPU_GOAL else '**no**'} |")
    for kind, what in (("once", "`once`"), ("steady", "steady `run`")):
        if kind in head:
            peak = med(head[kind], "peak_rss_kb") / 1024
            lines.append(f"| peak RSS ≤ {RSS_GOAL_MIB} MiB, {what}, {h:,} targets | {peak:.0f} MiB | "
                         f"{'yes' if peak <= RSS_GOAL_MIB else '**no**'} |")
    lines += [
        "",
        "What each row counts. **`once`**: the real command line, `python -m probe once --config … --format json`, "
        "the whole process (start-up, config load, the round, its evidence appended to the archive, the JSON "
        "document), CPU and peak RSS from `wait4()` (of the process alone: a small spawner forks it, since Linux "
        "keeps `ru_maxrss` across fork and exec). **`run`**: `python -m probe run`, scraped once after each "
        "round as Prometheus scrapes (OpenMetrics, gzip); the CPU between the ends of two consecutive rounds "
        "(the round, its evidence archived, its verdict history, its `/metrics` render and the scrape), the median of rounds 2 on (the first carries the start-up); peak RSS is "
        "the process's `VmHWM` after the last round. **The round alone**: `bench/msgreach_round.py` does what "
        "`once` does and measures the round only (`getrusage` around it). **blackbox**: the exporter's CPU "
        "(`/proc/PID/stat`) over the N probes, and its `VmHWM`, a fresh exporter per run; the exporter is a "
        "daemon, so its start-up is not counted, and neither is the client that drives it (below).",
    ]
    lines += [
        "",
        "### Setup",
        "",
        "One nginx serves every target: `tNNNN.bench.test` on its own loopback address (127.77.1.1 …), port "
        "443, a 0.6 KB static page, one wildcard certificate from a CA made with openssl at bench time (EC "
        "P-256, TLS 1.3). The whole run is in a fresh network namespace with only loopback. Both tools present "
        "the target's name as SNI and validate the certificate against the test CA, and every probe of every "
        "run must succeed (all targets `ok`, every `probe_success 1`) or the bench stops. Concurrency "
        f"{args.concurrency} for both (msgreach's default `schedule.concurrency`; the blackbox client keeps "
        f"{args.concurrency} targets in flight).",
        "",
        "- **msgreach**: one inline service of N targets, checks `[tcp, tls, http]`, pinned addresses (no DNS), "
        "`retries: 0`, one TCP control (a connect to the first target's address), the test CA as vantage "
        "`ca_bundle`. Per target that is 1 connection and 1 TLS handshake: the `tcp` check's connection "
        "carries the `tls` check's handshake (certificate facts kept), and the `http` check sends its GET on "
        "that TLS stream.",
        "- **blackbox, `http` probe**: one `/probe?module=https_2xx&target=https://tNNNN.bench.test/` per target "
        "(1 connection, 1 handshake, GET; the name from a private /etc/hosts). The usual way to watch an "
        "HTTPS endpoint with blackbox, and the same network work as msgreach's.",
        "- **blackbox, tcp+tls+http probes**: per target a `tcp` connect probe, a `tcp` probe with `tls: true`, "
        "and the `http` probe, one after the other.",
        "",
        "### Every size",
        "",
        "*Wall*: the round (`once`: the whole process; blackbox: the N probes as the client saw them). "
        "*Cores busy*: CPU ÷ wall.",
        "",
        "| targets | | wall (s) | CPU per target (ms) | cores busy | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in sizes:
        row = results[n]
        for kind in (*MSGREACH, *PEERS):
            if kind not in row:
                continue
            busy = statistics.median(s.cpu / s.wall for s in row[kind])
            lines.append(f"| {n:,} | {CONTENDERS[kind]} | {med(row[kind], 'wall'):.2f} | {med(row[kind], 'cpu') / n * 1000:.2f} | "
                         f"{busy:.1f} | {mib(med(row[kind], 'peak_rss_kb'))} |")
    lines += ["", "Ratios, repeat by repeat (msgreach ÷ blackbox's `http` probe; above 1 means msgreach costs more):", "",
              "| targets | | CPU | wall | peak RSS |", "|---:|---|---:|---:|---:|"]
    for n in sizes:
        row = results[n]
        for kind in MSGREACH:
            if kind in row and "bb_http" in row:
                lines.append(f"| {n:,} | {CONTENDERS[kind]} | {ratio_text(paired(row, kind, 'bb_http'))} | "
                             f"{ratio_text(paired(row, kind, 'bb_http', 'wall'))} | "
                             f"{ratio_text(paired(row, kind, 'bb_http', 'peak_rss_kb'))} |")

    biggest = sizes[-1]
    if "round" in results[biggest]:
        m = results[biggest]["round"]
        lines += [
            "",
            f"Around the round (msgreach, {biggest:,} targets, medians): start-up (imports, config load) "
            f"{statistics.median(s.extra['startup_cpu'] for s in m):.2f} s CPU, RSS "
            f"{mib(statistics.median(s.extra['rss_idle_kb'] for s in m))} MiB before the round; rendering the JSON "
            f"{statistics.median(s.extra['render_cpu'] for s in m):.2f} s CPU. The blackbox client used "
            f"{statistics.median(s.extra['client_cpu'] for s in results[biggest]['bb_http']):.2f} s CPU for the "
            "`http` probes (not counted above).",
        ]
    if all(k in head for k in BREAKDOWN):
        tcp, tcp_tls, full = (med(head[k], "cpu") / h * 1000 for k in (*BREAKDOWN, "round"))
        lines += ["", f"Where msgreach's CPU goes ({h:,} targets, the same round with fewer checks, ms per target): "
                  f"`tcp` {tcp:.2f}; the `tls` check adds {tcp_tls - tcp:.2f}; the `http` check adds {full - tcp_tls:.2f}."]
    if "steady" in head:
        runs = head["steady"]
        middle = sorted(runs, key=lambda s: s.cpu)[len(runs) // 2]  # the repeat whose steady CPU is the median
        rss = ", ".join(mib(kb) for kb in middle.rounds["rss_kb"])
        cpu = ", ".join(f"{c:.2f}" for c in middle.rounds["cpu"])
        lines += ["", f"`run` on {h:,} targets, `interval_seconds: {middle.extra['interval']:g}`, the median repeat: RSS "
                  f"after rounds 1…{len(middle.rounds['rss_kb'])}: {rss} MiB (peak {mib(middle.peak_rss_kb)} MiB); CPU "
                  f"per round {cpu} s (the first includes start-up). Each scrape: {middle.extra['series']:,.0f} series, "
                  f"{middle.extra['scrape_bytes'] / 1024:.0f} KiB gzip ({middle.extra['scrape_text_bytes'] / 1024 / 1024:.1f} MiB "
                  f"of text), {statistics.median(s.extra['scrape_cpu'] for s in runs) * 1000:.0f} ms of msgreach's CPU (median)."]
    lines += ["", "The history of these figures, and what changed them, is in the sections below.", END]
    return "\n".join(lines) + "\n"


def write_section(section: str, start_marker: str = START, end_marker: str = END) -> None:
    """Replace one bench's section of docs/benchmarks.md, leaving everything else as it is."""
    docsection.write_section(section, start_marker, end_marker, DOC)


# --- main -------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,3000", help=f"target counts (max {MAX_TARGETS:,})")
    parser.add_argument("--headline", type=int, default=1000, help="the size of the headline table (one of --sizes)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every contender")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--steady-rounds", type=int, default=4, help="`msgreach run` rounds per repeat, headline size (0: skip)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of updating docs/benchmarks.md")
    parser.add_argument("--json", help="also write the raw samples here")
    parser.add_argument("--save-metrics", help="keep the headline `run`'s last /metrics scrape (OpenMetrics) here")
    parser.add_argument("--rev", help="measure this git revision (exported to the temp dir) instead of the working tree")
    args = parser.parse_args()
    args.size_list = sorted({int(s) for s in args.sizes.split(",")})
    if max(args.size_list) > MAX_TARGETS:
        parser.error(f"at most {MAX_TARGETS:,} targets ({address_of(0)}–{address_of(MAX_TARGETS - 1)})")
    if args.headline not in args.size_list:
        parser.error("--headline must be one of --sizes")
    if args.steady_rounds == 1:
        parser.error("--steady-rounds: 0, or at least 2 (the first round carries the start-up)")
    return args


@contextlib.contextmanager
def lab(n_max: int) -> Iterator[Path]:
    """The targets' world, in this namespace: certificates, /etc/hosts, nginx; nginx stopped,
    /etc/hosts unmounted and the temp dir removed whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-bench-"))
    nginx = None
    try:
        make_certificates(tmp)
        private_hosts(tmp, n_max)
        nginx = start_nginx(tmp, n_max)
        yield tmp
    finally:
        stop(nginx)
        subprocess.run(["umount", "/etc/hosts"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def only_loopback() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.strip().splitlines()
    if len(links) != 1 or ": lo:" not in links[0]:
        raise SystemExit(f"bench: expected a namespace with only loopback, found: {links}")


def inside_namespace(args: argparse.Namespace) -> int:
    only_loopback()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    with lab(max(args.size_list)) as tmp:
        if args.rev:
            export_revision(args.rev, tmp)
        else:
            describe_worktree()
        load_before = loadavg()
        facts = machine_facts()
        results: dict[int, dict[str, list[Sample]]] = {}
        for n in args.size_list:
            headline = n == args.headline
            kinds = ("once", "round", "bb_http", "bb_three")
            if headline:
                kinds += ("steady",) * bool(args.steady_rounds) + BREAKDOWN
            plan = Plan(n, kinds, args.repeats, args.concurrency, args.steady_rounds,
                        Path(args.save_metrics).resolve() if args.save_metrics and headline else None)
            results[n] = measure(tmp, plan)
        facts["load"] = f"{load_before} before, {loadavg()} after"
        section = render(results, facts, args, time.monotonic() - began)
        if args.json:
            Path(args.json).write_text(json.dumps({"facts": facts, "results": {
                n: {k: [s.__dict__ for s in v] for k, v in row.items()} for n, row in results.items()}}, indent=1))
        if args.no_write:
            print(section)
        else:
            write_section(section)
            print(f"[bench] wrote {DOC.relative_to(REPO)}", file=sys.stderr)
        return 0


def enter_namespace() -> None:
    """Re-run this script in a fresh network namespace (loopback only: nothing can leave) and a
    private mount namespace (for the exporter's /etc/hosts). exec keeps the PID, which marks
    "inside"; returns when already inside."""
    if os.environ.get(INSIDE) == str(os.getpid()):
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (network namespace, nginx on port 443)")
    os.environ[INSIDE] = str(os.getpid())
    os.execvp("unshare", ["unshare", "--net", "--mount", "--propagation", "private",
                          sys.executable, str(Path(sys.argv[0]).resolve()), *sys.argv[1:]])


def main() -> int:
    args = parse_args()
    enter_namespace()
    return inside_namespace(args)


if __name__ == "__main__":
    sys.exit(main())
