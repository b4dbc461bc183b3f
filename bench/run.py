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
from dataclasses import dataclass, field
from pathlib import Path

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


def address_of(index: int) -> str:
    """Target i (0-based) listens on its own loopback address: 127.77.1.1 … 127.77.4.250."""
    return f"127.77.{1 + index // 250}.{1 + index % 250}"


def name_of(index: int) -> str:
    return f"t{index + 1:04d}"


# --- processes --------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec: the child gets SIGTERM if this process dies, whatever the way."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def clean_env() -> dict[str, str]:
    """No proxy variables, nothing inherited that could route a probe elsewhere."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TERM")}
    env["PYTHONPATH"] = str(SOURCE["path"])
    return env


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
worker_rlimit_nofile 16384;
user nobody nogroup;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
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
                raise RuntimeError("nginx did not start: " + (tmp / "nginx-error.log").read_text()[-2000:])
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
        "services": [{"name": "bench", "targets": [
            {"name": name_of(i), "host": f"{name_of(i)}.{DOMAIN}", "addresses": [address_of(i)],
             "ports": [443], "checks": list(checks)} for i in range(n)]}],
    }
    path = tmp / f"msgreach-{n}-{interval:g}-{'-'.join(checks)}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Sample:
    wall: float  # seconds, the round / the N probes
    cpu: float  # seconds of CPU, the round only (no start-up)
    peak_rss_kb: int  # peak resident set of the process, start-up included
    extra: dict = field(default_factory=dict)


def run_waited(argv: list[str], stdout) -> tuple[int, float, int]:
    """Run to the end; returns exit status, user+sys CPU and ru_maxrss (KiB) of the child."""
    proc = start(argv, stdout=stdout, stderr=subprocess.PIPE)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        stop(proc)
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err[-2000:]}")
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def msgreach_round(tmp: Path, n: int, concurrency: int, checks: tuple[str, ...] = ("tcp", "tls", "http")) -> Sample:
    config = msgreach_config(tmp, n, concurrency, checks=checks)
    with open(tmp / "round.out", "w+") as out:
        _, total_cpu, maxrss = run_waited([sys.executable, str(REPO / "bench" / "msgreach_round.py"), str(config)], out)
        out.seek(0)
        facts = json.loads(out.read())
    ok = facts["verdicts"].get("ok", 0)
    if ok != n or facts["vantage_verdicts"] != ["ok"]:
        raise RuntimeError(f"msgreach: {ok}/{n} targets ok: {facts}")
    return Sample(facts["round_wall"], facts["round_cpu"], maxrss,
                  {"total_cpu": total_cpu, "startup_cpu": facts["startup_cpu"], "render_cpu": facts["render_cpu"],
                   "rss_idle_kb": facts["rss_idle_kb"]})


def msgreach_once_cli(tmp: Path, n: int, concurrency: int) -> dict:
    """The real command line, once: `python -m probe once --config X --format json`."""
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
    return {"process_wall": wall, "round_wall": document["duration_seconds"], "cpu": cpu, "maxrss_kb": maxrss}


def msgreach_steady(tmp: Path, n: int, concurrency: int, rounds: int, interval: float) -> dict:
    """`msgreach run` for a few rounds of N targets: RSS and CPU after each round (rounds are
    counted from its INFO log, not by scraping, which would cost the monitor CPU), then one
    /metrics scrape, timed, whose verdicts must all be `ok`."""
    import httpx

    config = msgreach_config(tmp, n, concurrency, interval)
    log = tmp / "run.log"
    with open(log, "w") as err:
        # The default log level prints msgreach's own round lines (libraries stay at WARNING).
        proc = start([sys.executable, "-m", "probe", "run", "--config", str(config),
                      "--listen", MSGREACH_LISTEN], stdout=subprocess.DEVNULL, stderr=err)
    try:
        rss, cpu, done = [], [], 0
        last_cpu = None
        deadline = time.monotonic() + rounds * interval * 2 + 60
        while done < rounds:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("msgreach run: rounds did not complete: " + log.read_text()[-2000:])
            time.sleep(0.1)
            count = len(re.findall(r"round bench: ok;", log.read_text()))
            if count > done:
                done = count
                now_cpu = proc_cpu(proc.pid)
                rss.append(proc_status_kb(proc.pid, "VmRSS"))
                cpu.append(now_cpu - (last_cpu if last_cpu is not None else 0.0))
                last_cpu = now_cpu
        before = proc_cpu(proc.pid)
        started = time.monotonic()
        text = httpx.get(f"http://{MSGREACH_LISTEN}/metrics", timeout=30, trust_env=False).text
        scrape_wall = time.monotonic() - started
        scrape_cpu = proc_cpu(proc.pid) - before
        ok = len(re.findall(r'^msgreach_target_verdict\{[^}]*verdict="ok"\} 1\.0$', text, re.M))
        if ok != n:
            raise RuntimeError(f"msgreach run: {ok}/{n} targets ok after {done} rounds")
        return {"rounds": rounds, "interval": interval, "rss_kb": rss, "hwm_kb": proc_status_kb(proc.pid, "VmHWM"),
                "cpu_per_round": cpu, "scrape_cpu": scrape_cpu, "scrape_wall": scrape_wall,
                "scrape_bytes": len(text.encode()), "series": sum(1 for line in text.splitlines() if line and line[0] != "#")}
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
    return Sample(wall, cpu, hwm, {"client_cpu": client_cpu})


# --- report -----------------------------------------------------------------------------------------

TOOLS = {
    "msgreach": "msgreach (tcp+tls+http checks)",
    "bb_http": "blackbox, `http` probe",
    "bb_three": "blackbox, tcp+tls+http probes",
}


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


# From a py-spy profile (`--native`, 250 Hz) of a 1,000-target round; not recomputed by the run.
PROFILE_NOTES = """
**Reading it.** msgreach's round runs on one Python thread and is CPU-bound there (cores busy
about 1.0): a round lasts as long as its CPU work, so its wall time follows its CPU time and a
higher `concurrency` would not shorten it. Since the three checks share one connection and one
handshake per target, msgreach's CPU for a round is below blackbox's tcp+tls+http probes (which
make three connections and two handshakes per target) and under twice blackbox's single `http`
probe (Go's TLS handshake costs about half of OpenSSL's through Python's asyncio). Its memory is
mostly the Python baseline (the RSS before the round), plus the round's results; `run` hands the
heap's free pages back after each round, so it stays flat over rounds. At the shipped catalogs' size (about 30 targets a round) all of this is a fraction of a
second of CPU a minute.

**Profile** (py-spy `--native`, 1,000-target round, before the one-connection change, commit
74cd082): about 36 % of the round's CPU was inside OpenSSL handshakes, two per target (now one),
and a quarter of that is OpenSSL 3.0's key-decoder machinery (`OSSL_DECODER_CTX_new_for_pkey`,
`ASN1_item_d2i_ex`: the known 3.0 slowdown, much smaller in 3.2+; Go's crypto/tls does not pay
it); about 10 % is `send()` on the sockets; the `http` check's httpx machinery and the cyclic GC
(about 4 %) follow. Done since: one connection and one handshake per target, the block-page
markers scanned as the body streams (no body kept), `/metrics` rendered once per round,
`gc.freeze()` after the config is loaded, and (second pass, below) the `http` request through
httpcore's pool instead of an httpx client per target, `once`'s JSON through the C encoder, the
system CAs read from the hashed directory.
"""


def command_line() -> str:
    """The command that produced the numbers, as run (minus output-only options)."""
    import shlex

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            argv.append(arg)
    return " ".join(["python3 bench/run.py", *map(shlex.quote, argv)])


def render(results: dict, facts: dict, args: argparse.Namespace, once: dict, steady: dict | None, elapsed: float) -> str:
    sizes = sorted(int(k) for k in results)
    lines = [
        START,
        "## TLS/HTTP checks: msgreach vs blackbox_exporter",
        "",
        f"Produced by `{command_line()}` as root from the repository root (about {elapsed / 60:.0f} min here; `--help` for options) on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, Linux {facts['kernel']}. "
        f"msgreach {facts['msgreach']} on Python {facts['python']} (httpx {facts['httpx']}); "
        f"{facts['blackbox']}; {facts['nginx']}; {facts['openssl']}. Load average (1/5/15 min) "
        f"{facts['load']} the run: the machine is shared, so wall times carry others' noise; CPU "
        "seconds much less so.",
        "",
        "**Setup.** One nginx serves every target: `tNNNN.bench.test` on its own loopback address "
        "(127.77.1.1 …), port 443, a 0.6 KB static page, one wildcard certificate from a CA made with "
        "openssl at bench time (EC P-256, TLS 1.3). The whole run is in a fresh network namespace with "
        "only loopback. Both tools present the target's name as SNI and validate the certificate "
        "against the test CA, and every probe of every round must succeed (all targets `ok`, every "
        f"`probe_success 1`) or the bench stops. Concurrency {args.concurrency} for both "
        f"(msgreach's default `schedule.concurrency`; the blackbox client keeps {args.concurrency} "
        "targets in flight). Each figure is the median of "
        f"{args.repeats} runs; runs of the three contenders alternate.",
        "",
        "- **msgreach**: one round of `msgreach once` (`bench/msgreach_round.py` does what `once` does, "
        "and times the phases) on one inline service of N targets, checks `[tcp, tls, http]`, pinned "
        "addresses (no DNS), `retries: 0`, one TCP control (a connect to the first target's address), the test CA as vantage `ca_bundle`. "
        "Per target that is 1 connection and 1 TLS handshake: the `tcp` check's connection carries "
        "the `tls` check's handshake (certificate facts kept), and the `http` check sends its GET "
        "(httpcore, httpx's connection layer) on that TLS stream.",
        "- **blackbox, `http` probe**: one `/probe?module=https_2xx&target=https://tNNNN.bench.test/` per "
        "target (1 connection, 1 handshake, GET; the name from a private /etc/hosts). The usual way to "
        "watch an HTTPS endpoint with blackbox; less work per target than msgreach.",
        "- **blackbox, tcp+tls+http probes**: per target a `tcp` connect probe, a `tcp` probe with "
        "`tls: true`, and the `http` probe, one after the other — the same network work as msgreach's "
        "three checks.",
        "",
        "CPU is the prober process's user+sys time for the round only (msgreach: `getrusage` around "
        "the round, start-up and JSON rendering excluded; exporter: `/proc/PID/stat` before/after the "
        "N probes). Peak RSS is the process's peak including start-up (msgreach: `ru_maxrss` of the "
        "process; exporter: `VmHWM`, a fresh exporter per run). Wall is the round (msgreach "
        "`duration_seconds`) or the N probes as seen by the client. nginx and the blackbox client "
        "run on the same CPUs and are not counted.",
        "",
        "A *check* below is one target measured: for msgreach its three checks tcp → tls → http, for "
        "blackbox one `http` probe or the three probes. *Cores busy* is CPU ÷ wall.",
        "",
        "| targets | | wall of a round (s) | CPU s per 1,000 checks | cores busy | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in sizes:
        row = results[str(n)]
        for key, label in TOOLS.items():
            samples = row[key]
            busy = statistics.median(s.cpu / s.wall for s in samples)
            lines.append(f"| {n:,} | {label} | {med(samples, 'wall'):.2f} | "
                         f"{med(samples, 'cpu') / n * 1000:.2f} | {busy:.1f} | {med(samples, 'peak_rss_kb') / 1024:.0f} |")
    lines += ["", "Ratios (msgreach ÷ blackbox; above 1 means msgreach costs more):", "",
              "| targets | vs | wall | CPU | peak RSS |", "|---:|---|---:|---:|---:|"]
    for n in sizes:
        row = results[str(n)]
        for key in ("bb_http", "bb_three"):
            ratio = [med(row["msgreach"], a) / max(med(row[key], a), 1e-9) for a in ("wall", "cpu", "peak_rss_kb")]
            lines.append(f"| {n:,} | {TOOLS[key]} | {ratio[0]:.1f}× | {ratio[1]:.1f}× | {ratio[2]:.1f}× |")

    biggest = str(sizes[-1])
    m = results[biggest]["msgreach"]
    lines += [
        "",
        f"Around the round (msgreach, {int(biggest):,} targets, medians): start-up (imports, config load) "
        f"{statistics.median(s.extra['startup_cpu'] for s in m):.2f} s CPU, RSS "
        f"{statistics.median(s.extra['rss_idle_kb'] for s in m) / 1024:.0f} MiB before the round; rendering the JSON "
        f"{statistics.median(s.extra['render_cpu'] for s in m):.2f} s CPU; the whole process "
        f"{statistics.median(s.extra['total_cpu'] for s in m):.2f} s CPU. The blackbox client used "
        f"{statistics.median(s.extra['client_cpu'] for s in results[biggest]['bb_http']):.2f} s CPU "
        "for the `http` probes (not counted above).",
    ]
    if "m_tcp" in results[biggest]:
        n = int(biggest)
        tcp, tcp_tls, full = (med(results[biggest][k], "cpu") / n * 1000 for k in ("m_tcp", "m_tcp_tls", "msgreach"))
        lines += ["", f"Where msgreach's CPU goes ({n:,} targets, the same round with fewer checks, CPU s per "
                  f"1,000 targets): `tcp` {tcp:.2f}; the `tls` check adds {tcp_tls - tcp:.2f}; the `http` check "
                  f"adds {full - tcp_tls:.2f} (the request through httpcore, httpx's connection layer, on the `tls` check's stream)."]
    if once:
        lines += ["", "Cross-check with the real command line, `python -m probe once --config … --format json` "
                  "(one run each, the whole process):", ""]
        for n, facts_once in sorted(once.items(), key=lambda kv: int(kv[0])):
            lines.append(f"- {int(n):,} targets: round {facts_once['round_wall']:.2f} s, process wall "
                         f"{facts_once['process_wall']:.2f} s, CPU {facts_once['cpu']:.2f} s, peak RSS "
                         f"{facts_once['maxrss_kb'] / 1024:.0f} MiB; all targets `ok`.")
    if steady:
        rss = ", ".join(f"{kb / 1024:.0f}" for kb in steady["rss_kb"])
        cpu = ", ".join(f"{c:.1f}" for c in steady["cpu_per_round"])
        lines += ["", f"Steady state: `msgreach run` on {args.steady_targets:,} targets, "
                  f"`interval_seconds: {steady['interval']:g}`: RSS after rounds 1…{steady['rounds']}: {rss} MiB "
                  f"(peak {steady['hwm_kb'] / 1024:.0f} MiB); CPU per round {cpu} s (the first includes start-up). "
                  f"One Prometheus scrape of its `/metrics` ({steady['series']:,} series, "
                  f"{steady['scrape_bytes'] / 1024 / 1024:.1f} MiB) took {steady['scrape_wall']:.2f} s and "
                  f"{steady['scrape_cpu']:.2f} s CPU."]
    lines += ["", PROFILE_NOTES.strip(), END]
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    """Replace this bench's section of docs/benchmarks.md, leaving the others' sections alone."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


# --- main -------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="target counts (max 3000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--steady-rounds", type=int, default=5, help="`msgreach run` rounds (0: skip)")
    parser.add_argument("--steady-targets", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of updating docs/benchmarks.md")
    parser.add_argument("--json", help="also write the raw samples here")
    parser.add_argument("--rev", help="measure this git revision (exported to the temp dir) instead of the working tree")
    args = parser.parse_args()
    args.size_list = [int(s) for s in args.sizes.split(",")]
    if max(args.size_list + [args.steady_targets]) > 3000:
        parser.error("at most 3000 targets (127.77.1.1–127.77.12.250)")
    return args


def inside_namespace(args: argparse.Namespace) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.strip().splitlines()
    if len(links) != 1 or ": lo:" not in links[0]:
        raise SystemExit(f"bench: expected a namespace with only loopback, found: {links}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    n_max = max(args.size_list + [args.steady_targets if args.steady_rounds else 0])
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-bench-"))
    nginx = None
    try:
        if args.rev:
            export_revision(args.rev, tmp)
        else:
            describe_worktree()
        load_before = loadavg()
        make_certificates(tmp)
        private_hosts(tmp, n_max)
        nginx = start_nginx(tmp, n_max)
        facts = machine_facts()
        results: dict[str, dict[str, list[Sample]]] = {}
        for n in args.size_list:
            row = results.setdefault(str(n), {k: [] for k in TOOLS})
            for rep in range(args.repeats):
                row["msgreach"].append(msgreach_round(tmp, n, args.concurrency))
                if n == max(args.size_list):  # where msgreach's CPU goes: the same round, fewer checks
                    row.setdefault("m_tcp", []).append(msgreach_round(tmp, n, args.concurrency, ("tcp",)))
                    row.setdefault("m_tcp_tls", []).append(msgreach_round(tmp, n, args.concurrency, ("tcp", "tls")))
                row["bb_http"].append(blackbox_round(tmp, n, args.concurrency, ("http",)))
                row["bb_three"].append(blackbox_round(tmp, n, args.concurrency, ("tcp", "tls", "http")))
                print(f"[bench] n={n} run {rep + 1}: " + "; ".join(
                    f"{k} wall {row[k][-1].wall:.2f}s cpu {row[k][-1].cpu:.2f}s rss {row[k][-1].peak_rss_kb // 1024}MiB"
                    for k in TOOLS), file=sys.stderr, flush=True)
        once = {str(n): msgreach_once_cli(tmp, n, args.concurrency) for n in args.size_list}
        print(f"[bench] once: {once}", file=sys.stderr, flush=True)
        steady = None
        if args.steady_rounds:
            round_wall = med(results[str(max(args.size_list))]["msgreach"], "wall") if args.steady_targets == max(args.size_list) else 10
            interval = max(5.0, round(round_wall * 1.5 + 1))
            steady = msgreach_steady(tmp, args.steady_targets, args.concurrency, args.steady_rounds, interval)
            print(f"[bench] steady: {steady}", file=sys.stderr, flush=True)
        facts["load"] = f"{load_before} before, {loadavg()} after"
        section = render(results, facts, args, once, steady, time.monotonic() - began)
        if args.json:
            Path(args.json).write_text(json.dumps({"facts": facts, "once": once, "steady": steady, "results": {
                n: {k: [s.__dict__ for s in v] for k, v in row.items()} for n, row in results.items()}}, indent=1))
        if args.no_write:
            print(section)
        else:
            write_section(section)
            print(f"[bench] wrote {DOC.relative_to(REPO)}", file=sys.stderr)
        return 0
    finally:
        stop(nginx)
        subprocess.run(["umount", "/etc/hosts"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    args = parse_args()
    if os.environ.get(INSIDE) != str(os.getpid()):
        if os.geteuid() != 0:
            raise SystemExit("bench: run as root (network namespace, nginx on port 443)")
        # A fresh network namespace (loopback only: nothing can leave) and a private mount
        # namespace (for the exporter's /etc/hosts). exec keeps the PID, which marks "inside".
        os.environ[INSIDE] = str(os.getpid())
        os.execvp("unshare", ["unshare", "--net", "--mount", "--propagation", "private",
                              sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    return inside_namespace(args)


if __name__ == "__main__":
    sys.exit(main())
