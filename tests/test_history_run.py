"""`msgreach run` keeps its verdict history (in `state_dir`, or by default in
~/.local/state/msgreach): it feeds msgreach_target_verdict_since_timestamp_seconds and the status
page, and "since", the bars and the changes survive `kill -9` and a restart of the real process
(measuring the loopback servers of tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from msgreach_helpers import free_port
from prometheus_client.parser import text_string_to_metric_families

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
    def __init__(self, config: Path, port: int, environ: dict[str, str] | None = None):
        env = {**(os.environ if environ is None else environ), "PYTHONPATH": str(ROOT)}
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


def _until(predicate, run: _Run, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            pytest.fail(f"msgreach run exited {run.proc.returncode}: {run.proc.stderr.read()}")
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, KeyError):
            pass
        time.sleep(0.3)
    pytest.fail("not in time")


def test_a_restart_with_no_state_dir_keeps_since_bars_and_changes(env, tmp_path):
    """The README's way: no `state_dir`, no evidence key. The first log line names the default
    directory; after `kill -9` and a restart in which beta's verdict changed, alpha's "since" is
    the first run's, and beta's bars and changes still show the first run's block."""
    env.resolve("hr-ok.good.test")
    env.resolve("hr-nx2.good.test", vantage={"rcode": "NXDOMAIN"})
    home = tmp_path / "home"
    environ = {k: v for k, v in os.environ.items() if k not in ("MSGREACH_STATE_DIR", "XDG_STATE_HOME", "STATE_DIRECTORY")}
    environ["HOME"] = str(home)
    state = home / ".local" / "state" / "msgreach"

    def write(beta_host: str) -> Path:
        services = [
            {"name": "alpha", "targets": [env.target("web", "hr-ok.good.test")]},
            {"name": "beta", "targets": [env.target("web", beta_host)]},
        ]
        return env.write(tmp_path, env.config(services, schedule={"interval_seconds": 2, "round_deadline_seconds": 1.8}))

    first = _Run(write("hr-nx2.good.test"), free_port(), environ)
    try:
        announced = first.proc.stderr.readline()
        assert f"state in {state} " in announced and "evidence archive" in announced, announced
        since = first.metrics_with_since()
        blocked_at = since[("beta", "web")]
        time.sleep(2.5)
    finally:
        first.kill()
    assert (state / HISTORY_FILE).is_file() and (state / "evidence.jsonl").is_file()

    second = _Run(write("hr-ok.good.test"), free_port(), environ)  # beta works now
    try:
        def beta_ok():
            history = httpx.get(second.url + "/status.json", trust_env=False, timeout=5).json()["history"]["test-vantage"]["services"]
            return history if history["beta"]["verdict"] == "ok" else None

        services = _until(beta_ok, second)
        again = second.metrics_with_since()
        assert again[("alpha", "web")] == since[("alpha", "web")]  # unchanged: it began in the first run
        assert again[("beta", "web")] > blocked_at
        beta = services["beta"]["targets"]["web"]
        assert [c["verdict"] for c in beta["changes"]][:2] == ["ok", "dns_blocked"]
        assert beta["changes"][1]["at"] == pytest.approx(blocked_at, abs=0.01)
        assert beta["bars_24h"][-1]["worst"] == "dns_blocked"  # the hour's bar still holds the first run's block
        assert beta["bars_90d"][-1]["worst"] == "dns_blocked"
        page = httpx.get(second.url + "/", trust_env=False, timeout=5).text
        assert "DNS block" in page  # in the changes of the page, after the restart
    finally:
        second.kill()


def test_a_planted_link_is_refused_said_first_and_the_monitor_measures_on(env, tmp_path):
    env.resolve("hr-ok.good.test")
    state = tmp_path / "state"
    state.mkdir()
    (state / HISTORY_FILE).symlink_to(tmp_path / "elsewhere")
    config = env.write(tmp_path, {**env.config([{"name": "alpha", "targets": [env.target("web", "hr-ok.good.test")]}], schedule={"interval_seconds": 2}), "state_dir": "state"})
    run = _Run(config, free_port())
    try:
        first = run.proc.stderr.readline()
        assert " ERROR " in first and "cannot keep the verdict history" in first and "symbolic link" in first, first
        assert run.metrics_with_since()  # measuring, with the history in memory
        assert not (tmp_path / "elsewhere").exists()
    finally:
        run.kill()
