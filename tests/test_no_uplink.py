"""The shipped default config, run the only way it may run on this machine: inside a network
namespace with loopback only (`mrt-<random>`, no uplink, deleted afterwards even on failure).

- `msgreach once --format json` exits 0 within 60 s with a contract document whose vantage is
  `vantage_offline` and whose services are called nothing but that.
- `msgreach run` serves every contract metric family, `promtool check metrics` says nothing,
  /healthz is 200, the status page renders; SIGHUP reloads without resetting counters and a
  broken config on reload is refused with the running one kept.

These need root (skipped otherwise, but failed when CI=true).
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import yaml
from msgreach_contract import BLOCK_VERDICTS, METRIC_FAMILIES, assert_contract_document
from msgreach_helpers import msgreach_command, require_root, require_tool
from prometheus_client.parser import text_string_to_metric_families

from probe.config import configs_dir

pytestmark = pytest.mark.netns


@dataclass
class Namespace:
    name: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def exec(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def popen(self, *args: str, stdout, stderr) -> subprocess.Popen:
        process = subprocess.Popen(self.exec(*msgreach_command(), *args), stdout=stdout, stderr=stderr)
        self.processes.append(process)
        return process

    def get(self, url: str) -> tuple[int, str]:
        """An HTTP GET made from inside the namespace: (status, body); (0, error) if no answer."""
        script = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status); sys.stdout.write(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); sys.stdout.write(e.read().decode())\n"
            "except Exception as e:\n"
            "    print(0); sys.stdout.write(repr(e))\n"
        )
        completed = subprocess.run(self.exec(sys.executable, "-c", script, url), capture_output=True, text=True, timeout=30)
        status, _, body = completed.stdout.partition("\n")
        return int(status or 0), body


@pytest.fixture
def netns():
    require_root("a network namespace")
    require_tool(shutil.which("ip"), "`ip` (iproute2)")
    namespace = Namespace(f"mrt-{secrets.token_hex(4)}")
    subprocess.run(["ip", "netns", "add", namespace.name], check=True, capture_output=True)
    try:
        subprocess.run(namespace.exec("ip", "link", "set", "lo", "up"), check=True, capture_output=True)
        # No uplink: loopback is the only link, and nothing routes anywhere else.
        links = subprocess.run(["ip", "-n", namespace.name, "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
        for family in ("-4", "-6"):
            routes = subprocess.run(["ip", "-n", namespace.name, family, "route", "show", "default"], capture_output=True, text=True).stdout
            assert routes.strip() == "", routes
        yield namespace
    finally:
        for process in namespace.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        subprocess.run(["ip", "netns", "del", namespace.name], capture_output=True)
    assert namespace.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _wait(what: str, condition: Callable[[], object], timeout: float = 30.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"msgreach exited ({process.returncode}) while waiting for {what}")
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _metrics(namespace: Namespace, port: int) -> str | None:
    status, body = namespace.get(f"http://127.0.0.1:{port}/metrics")
    return body if status == 200 else None


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def _promtool(text: str) -> subprocess.CompletedProcess:
    promtool = require_tool(shutil.which("promtool"), "promtool (Debian package prometheus)")
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


# --- once ----------------------------------------------------------------------------------------


def test_once_on_the_default_config_without_uplink(netns, msgreach):
    started = time.monotonic()
    completed = msgreach("once", "--format", "json", prefix=netns.exec(), timeout=90)
    elapsed = time.monotonic() - started
    assert completed.returncode == 4, completed.stderr  # the vantage is offline: nothing judged
    assert elapsed < 60, f"took {elapsed:.1f} s"
    assert "Traceback" not in completed.stderr
    document = json.loads(completed.stdout)
    assert_contract_document(document)
    [vantage] = document["vantages"]
    assert vantage["vantage"] == socket.gethostname()
    assert vantage["verdict"] == "vantage_offline"
    assert {s["service"] for s in vantage["services"]} == {"whatsapp", "telegram", "signal"}
    for service in vantage["services"]:
        assert service["verdict"] not in BLOCK_VERDICTS, service
        assert service["verdict"] == "vantage_offline"
        assert service["targets"]
        for target in service["targets"]:
            assert target["verdict"] == "vantage_offline", target
    # The controls were measured, and failed: that is the evidence for `vantage_offline`.
    assert vantage["controls"] and all(c["verdict"] != "ok" for c in vantage["controls"])


def test_a_route_to_nowhere_is_network_unreachable(netns):
    script = (
        "import socket\nfrom probe.failures import classify\n"
        "s = socket.socket()\n"
        "try:\n    s.connect(('192.0.2.1', 443))\nexcept OSError as e:\n    print(classify(e))\n"
    )
    completed = subprocess.run(netns.exec(sys.executable, "-c", script), capture_output=True, text=True, timeout=30)
    assert completed.stdout.strip() == "network_unreachable", completed.stderr


# --- run -----------------------------------------------------------------------------------------


def test_run_on_the_default_config_serves_the_contract(netns, tmp_path):
    port = 9910  # the default listen address, inside the namespace
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        process = netns.popen("run", stdout=out, stderr=err)
    text = _wait(
        "a round in /metrics",
        lambda: (t := _metrics(netns, port)) and (_value(t, "msgreach_rounds_total") or 0) >= 1 and t,
        timeout=60,
        process=process,
    )
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert [name for name in METRIC_FAMILIES if name not in declared] == []
    checked = _promtool(text)
    assert checked.returncode == 0 and checked.stdout.strip() == "" and checked.stderr.strip() == "", checked.stdout + checked.stderr
    vantage = socket.gethostname()
    assert _value(text, "msgreach_vantage_online", vantage=vantage) == 0
    # State sets: one series at 1 per service, and it is vantage_offline.
    for service in ("whatsapp", "telegram", "signal"):
        assert _value(text, "msgreach_service_verdict", vantage=vantage, service=service, verdict="vantage_offline") == 1
        ones = [
            s for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "msgreach_service_verdict" and s.labels["service"] == service and s.value == 1
        ]
        assert len(ones) == 1

    status, body = netns.get(f"http://127.0.0.1:{port}/healthz")
    assert (status, body) == (200, "ok\n")
    status, page = netns.get(f"http://127.0.0.1:{port}/")
    assert status == 200
    assert "<html" in page and f"Measuring point {vantage}" in page and "whatsapp" in page and "vantage_offline" in page

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def test_sighup_reload_keeps_counters_and_refuses_a_broken_config(netns, tmp_path):
    port = 9911
    config = yaml.safe_load((configs_dir() / "default.yaml").read_text())
    config["vantages"][0].update({"name": "ns-vantage", "country": "XX"})
    config["schedule"] = {"interval_seconds": 1, "jitter_seconds": 0}
    path = tmp_path / "msgreach.yaml"
    path.write_text(yaml.safe_dump(config))
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        process = netns.popen("run", "--config", str(path), "--listen", f"127.0.0.1:{port}", stdout=out, stderr=err)

    rounds: list[float] = []

    def rounds_at_least(n: float, **labels: str):
        """A condition: rounds_total >= n and the vantage's info carries `labels`."""

        def condition():
            text = _metrics(netns, port)
            if text is None:
                return None
            value = _value(text, "msgreach_rounds_total", vantage="ns-vantage") or 0
            rounds.append(value)
            if value >= n and _value(text, "msgreach_vantage_info", vantage="ns-vantage", **labels) == 1:
                return text
            return None

        return condition

    _wait("two rounds", rounds_at_least(2, country="XX"), timeout=60, process=process)

    # A valid change: applied, and the counters go on from where they were.
    config["vantages"][0]["country"] = "YY"
    path.write_text(yaml.safe_dump(config))
    before = rounds[-1]
    process.send_signal(signal.SIGHUP)
    _wait("the reloaded config", rounds_at_least(before + 2, country="YY"), timeout=30, process=process)
    assert rounds == sorted(rounds), f"rounds_total went back: {rounds}"

    # A broken change: refused, the running config kept, rounds go on.
    path.write_text("vantages: [\n")
    before = rounds[-1]
    process.send_signal(signal.SIGHUP)
    text = _wait("rounds after a refused reload", rounds_at_least(before + 2, country="YY"), timeout=30, process=process)
    assert rounds == sorted(rounds), f"rounds_total went back: {rounds}"
    assert _value(text, "msgreach_vantage_info", vantage="ns-vantage", country="YY") == 1
    assert "reload refused" in (tmp_path / "stderr").read_text()
    assert netns.get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert "Traceback" not in (tmp_path / "stderr").read_text()
