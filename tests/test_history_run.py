"""`msgreach run` with a `state_dir`: the verdict history is kept in it, feeds
msgreach_target_verdict_since_timestamp_seconds and the status page, and survives `kill -9`
and a restart of the real process (measuring the loopback servers of tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from msgreach_helpers import free_port

from probe.history import HISTORY_FILE

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"




def _since(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "msgreach_target_verdict_since_timestamp_seconds":
            for sample in family.samples:
                out[(sample.labels["service"], sample.labels["target"])] = sample.value
    return out


class _Run:
    def __init__(self, config: Path, port: int):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "run", "--config", str(config), "--listen", f"{LOOPBACK}:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.url = f"http://{LOOPBACK}:{port}"

    def metrics_with_since(self, timeout: float = 60) -> dict[tuple[str, str], float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"msgreach run exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                since = _since(httpx.get(f"{self.url}/metrics", trust_env=False, timeout=5).text)
                if since:
                    return since
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail("no msgreach_target_verdict_since_timestamp_seconds in time")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def config(env, tmp_path):
    env.resolve("hr-ok.good.test")
    env.resolve("hr-nx.good.test", vantage={"rcode": "NXDOMAIN"})
    services = [
        {"name": "alpha", "targets": [env.target("web", "hr-ok.good.test")]},
        {"name": "beta", "targets": [env.target("web", "hr-nx.good.test")]},
    ]
    data = env.config(services, schedule={"interval_seconds": 2, "round_deadline_seconds": 1.8})
    data["state_dir"] = "state"  # relative to the config file
    return env.write(tmp_path, data)


def test_since_survives_kill_9_and_a_restart(config):
    port = free_port()
    first = _Run(config, port)
    try:
        since = first.metrics_with_since()
        assert set(since) == {("alpha", "web"), ("beta", "web")}
        page = httpx.get(first.url + "/", trust_env=False, timeout=5).text
        assert "Blocked since" in page and "DNS block" in page
        time.sleep(2.5)  # another round or so, then no clean shutdown at all
    finally:
        first.kill()
    assert (config.parent / "state" / HISTORY_FILE).is_file()

    second = _Run(config, free_port())
    try:
        again = second.metrics_with_since()
        assert again == since  # the verdicts did not change: they began when the first run saw them
        history = httpx.get(second.url + "/status.json", trust_env=False, timeout=5).json()["history"]
        beta = history["test-vantage"]["services"]["beta"]
        assert beta["verdict"] == "dns_blocked" and beta["since"] == pytest.approx(since[("beta", "web")], abs=0.01)
    finally:
        second.kill()
