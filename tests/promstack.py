"""Real Prometheus, Alertmanager, a webhook receiver and msgreach, started for a test and always
stopped: the operator tests' harness.

Everything listens on 127.0.0.1, either in this machine's namespace or inside a network
namespace (``ip netns exec``): a fresh ``mro-<random>`` one with loopback only (see
:func:`mro_namespace`), or the lab's client namespace. Prometheus configs written here scrape
only 127.0.0.1 of the namespace they run in.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from msgreach_helpers import free_port
from opstools import ROOT, require_tool

MRO_PREFIX = "mro-"

_HTTP_SCRIPT = r"""
import sys, urllib.request, urllib.error
url, data = sys.argv[1], (sys.argv[2].encode() if len(sys.argv) > 2 else None)
req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
try:
    r = urllib.request.urlopen(req, timeout=10); sys.stdout.write(str(r.status) + "\n" + r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(str(e.code) + "\n" + e.read().decode())
except Exception as e:
    sys.stdout.write("0\n" + repr(e))
"""




@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)


@dataclass
class Stack:
    """Processes of one test, all in ``netns`` (None: this machine's namespace)."""

    workdir: Path
    netns: str | None = None
    procs: list[Proc] = field(default_factory=list)

    # -- plumbing ------------------------------------------------------------------------------

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def port(self) -> int:
        # A fresh namespace has every port free; elsewhere ask the kernel.
        return free_port() if self.netns is None else 20000 + secrets.randbelow(20000)

    def start(self, name: str, *argv: str) -> Proc:
        log = self.workdir / f"{name}.log"
        f = log.open("ab")
        popen = subprocess.Popen(self.cmd(*argv), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        f.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def http(self, url: str, data: bytes | None = None) -> tuple[int, str]:
        """GET (or POST ``data``) from inside the stack's namespace: (status, body); 0 = no answer."""
        if self.netns is None:
            req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            except OSError as e:
                return 0, repr(e)
        argv = [sys.executable, "-c", _HTTP_SCRIPT, url] + ([data.decode()] if data is not None else [])
        done = subprocess.run(self.cmd(*argv), capture_output=True, text=True, timeout=30)
        status, _, body = done.stdout.partition("\n")
        return int(status or 0), body

    def wait_http(self, url: str, proc: Proc, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
            if self.http(url)[0] == 200:
                return
            time.sleep(0.3)
        raise AssertionError(f"{proc.name} not ready at {url} within {timeout}s:\n{proc.tail()}")

    # -- components ----------------------------------------------------------------------------

    def msgreach(self, config: dict[str, Any], name: str = "msgreach") -> Msgreach:
        port = self.port()
        config = {**config, "listen": {"address": f"127.0.0.1:{port}"}}
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        script = Path(sys.executable).parent / "msgreach"
        argv = [str(script)] if script.exists() else [sys.executable, "-m", "probe"]
        proc = self.start(name, *argv, "run", "--config", str(path), "--listen", f"127.0.0.1:{port}")
        m = Msgreach(self, proc, port)
        self.wait_http(f"{m.url}/healthz", proc, timeout=60)
        return m

    def prometheus(self, config: dict[str, Any], rule_files: list[Path], *, extra_flags: tuple[str, ...] = ()) -> Prometheus:
        binary = require_tool("prometheus")
        port = self.port()
        data = self.workdir / "prometheus-data"
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for rule_file in rule_files:
            shutil.copy(rule_file, rules_dir / rule_file.name)
        config = {**config, "rule_files": [str(rules_dir / r.name) for r in rule_files]}
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = self.start(
            "prometheus", binary, f"--config.file={path}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *extra_flags,
        )
        p = Prometheus(self, proc, port)
        self.wait_http(f"{p.url}/-/ready", proc)
        return p

    def alertmanager(self, config: dict[str, Any]) -> Alertmanager:
        binary = require_tool("prometheus-alertmanager", "alertmanager")
        port = self.port()
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = self.start(
            "alertmanager", binary, f"--config.file={path}", f"--storage.path={self.workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn",
        )
        a = Alertmanager(self, proc, port)
        self.wait_http(f"{a.url}/-/ready", proc)
        return a

    def webhook(self) -> Webhook:
        port = self.port()
        out = self.workdir / "deliveries.jsonl"
        out.touch()
        proc = self.start("webhook", sys.executable, str(ROOT / "tests" / "webhook_receiver.py"), "127.0.0.1", str(port), str(out))
        w = Webhook(proc, port, out)
        self.wait_http(f"{w.url}/", proc)
        return w


@dataclass
class Msgreach:
    stack: Stack
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> str:
        status, body = self.stack.http(f"{self.url}/metrics")
        assert status == 200, body
        return body


@dataclass
class Prometheus:
    stack: Stack
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: Any) -> tuple[int, dict]:
        query = urllib.parse.urlencode([(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])])
        status, body = self.stack.http(f"{self.url}{path}?{query}")
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"status": "error", "error": body}

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, doc = self.api("/api/v1/query", **params)
        if status != 200 or doc.get("status") != "success":
            raise PromQLError(expr, doc.get("error", doc))
        return doc["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        status, doc = self.api("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step}")
        if status != 200 or doc.get("status") != "success":
            raise PromQLError(expr, doc.get("error", doc))
        return doc["data"]["result"]

    def alerts(self) -> list[dict]:
        status, doc = self.api("/api/v1/alerts")
        assert status == 200, doc
        return doc["data"]["alerts"]

    def rule_health(self) -> list[tuple[str, str, str]]:
        """(name, health, lastError) of every loaded rule."""
        status, doc = self.api("/api/v1/rules")
        assert status == 200, doc
        return [(r["name"], r["health"], r.get("lastError", "")) for g in doc["data"]["groups"] for r in g["rules"]]


class PromQLError(AssertionError):
    def __init__(self, expr: str, error: Any):
        super().__init__(f"Prometheus refused the query: {error}\n  query: {expr}")
        self.expr = expr
        self.error = error


@dataclass
class Alertmanager:
    stack: Stack
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post_alerts(self, alerts: list[dict]) -> None:
        status, body = self.stack.http(f"{self.url}/api/v2/alerts", json.dumps(alerts).encode())
        assert status == 200, body


@dataclass
class Webhook:
    proc: Proc
    port: int
    out: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def deliveries(self) -> list[dict]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def alerts(self) -> Iterator[tuple[dict, dict]]:
        """(delivery, alert) for every alert of every notification received so far."""
        for d in self.deliveries():
            for a in d["body"].get("alerts", []):
                yield d, a


def alertmanager_config(webhook_url: str, *, fast: bool) -> dict:
    """configs/alertmanager/alertmanager.yml with every receiver (Telegram, e-mail, webhooks)
    replaced by one webhook to ``webhook_url`` (the receiver's name as the last path segment),
    its routes and inhibitions as shipped; ``fast``: every group timer 1 s. (The shipped
    receivers themselves deliver in tests/test_alertmanager.py.)"""
    config = yaml.safe_load((ROOT / "configs" / "alertmanager" / "alertmanager.yml").read_text())
    config["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}"}]} for r in config["receivers"]]
    config.pop("templates", None)  # relative to the shipped file; the webhooks use none
    config["global"] = {"resolve_timeout": config["global"]["resolve_timeout"]}  # no mail server here

    def shorten(route: dict) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    if fast:
        shorten(config["route"])
    return config


def wait_for(what: str, condition: Callable[[], Any], timeout: float, interval: float = 0.5, on_timeout: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{extra}")
        time.sleep(interval)


@contextlib.contextmanager
def mro_namespace() -> Iterator[str]:
    """A fresh network namespace ``mro-<random>`` with loopback only, deleted afterwards."""
    require_tool("ip")
    name = f"{MRO_PREFIX}{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        links = subprocess.run(["ip", "-n", name, "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
        for family in ("-4", "-6"):
            routes = subprocess.run(["ip", "-n", name, family, "route", "show", "default"], capture_output=True, text=True).stdout
            assert routes.strip() == "", f"{name} has a default route: {routes}"
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
