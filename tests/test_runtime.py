"""`msgreach run` as a volunteer runs it, as a real subprocess against the loopback fleet: what it
prints at the default log level, SIGTERM in the middle of a slow round, a SIGHUP reload that
renames a vantage and removes a target, and a disk under the evidence archive that fills up or is
read-only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from msgreach_helpers import free_port, msgreach_command
from prometheus_client.parser import text_string_to_metric_families

LOOPBACK = "127.0.0.1"




class Monitor:
    """A `msgreach run` subprocess with its stderr in a file; stopped by its pid, always."""

    def __init__(self, config: Path, directory: Path, *, prefix: list[str] = ()):
        self.port = free_port()
        self.log = directory / f"msgreach-{self.port}.log"
        with open(self.log, "wb") as handle:
            self.popen = subprocess.Popen(
                [*prefix, *msgreach_command(), "run", "--config", str(config), "--listen", f"{LOOPBACK}:{self.port}"],
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, condition, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            assert self.popen.poll() is None, f"msgreach exited ({self.popen.returncode}) waiting for {what}:\n{self.text()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.text()[-3000:]}")

    def metrics(self) -> dict[str, list]:
        text = httpx.get(f"http://{LOOPBACK}:{self.port}/metrics", timeout=10, trust_env=False).text
        found: dict[str, list] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append(sample)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
                raise AssertionError(f"msgreach did not stop on signal {sig} within {timeout} s:\n{self.text()[-3000:]}") from None
        return self.popen.returncode


@pytest.fixture
def monitors():
    started: list[Monitor] = []
    yield started
    for monitor in started:
        if monitor.popen.poll() is None:
            os.kill(monitor.popen.pid, signal.SIGKILL)
            monitor.popen.wait(10)


def test_sigterm_mid_round_exits_0_without_a_traceback(env, tmp_path, monitors):
    """A round blocked in a TLS handshake with a silent server (30 s timeout) is interrupted."""
    env.resolve("slow-round.good.test")
    services = [{"name": "slow", "targets": [env.target("silent", "slow-round.good.test", "silent")]}]
    config = env.write(tmp_path, env.config(services, schedule={"timeouts": {"tls": 30, "http": 30}, "round_deadline_seconds": 120}))
    monitor = Monitor(config, tmp_path)
    monitors.append(monitor)
    monitor.wait_for("the round's DNS query", lambda: any(name.startswith("slow-round.good.test") for _, name, _ in env.dns.queries))
    time.sleep(0.5)  # into the handshake (and if not yet: still mid-round)
    started = time.monotonic()
    assert monitor.stop(signal.SIGTERM) == 0, monitor.text()
    assert time.monotonic() - started < 20  # did not wait for the 30 s handshake
    log = monitor.text()
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "round test-vantage:" not in log  # the interrupted round was not reported as finished
    assert "serving on" in log


def _reload_config(env, names: tuple[str, str], targets: list[str]) -> dict:
    env.resolve("reload.good.test")
    catalog = {"ok": env.target("ok", "reload.good.test"), "gone": env.target("gone", "reload.good.test", "refused")}
    services = [{"name": "svc", "targets": [catalog[name] for name in targets]}]
    vantages = [env.vantage(name=names[0]), env.vantage(name=names[1])]
    return env.config(services, vantages=vantages)


def test_default_log_level_and_a_reload_that_renames_and_removes(env, tmp_path, monitors):
    """At the default log level a volunteer sees where msgreach listens and one line per round;
    after a SIGHUP that renames a vantage and removes a target, neither leaves a series behind in
    /metrics (gauges and failure counters), while what stayed keeps its counters."""
    config = env.write(tmp_path, _reload_config(env, ("kept", "old-name"), ["ok", "gone"]))
    monitor = Monitor(config, tmp_path)
    monitors.append(monitor)
    monitor.wait_for("two rounds", lambda: monitor.text().count("round ") >= 2)
    log = monitor.text()
    assert f"serving on {LOOPBACK}:{monitor.port}" in log
    assert "round kept: ok; svc partial; 1 of 2 target(s) not ok (gone ip_blocked)" in log, log
    before = monitor.metrics()
    assert {s.labels["target"] for s in before["msgreach_check_failures_total"]} == {"gone"}
    assert {s.labels["vantage"] for s in before["msgreach_rounds_total"]} == {"kept", "old-name"}

    env.write(tmp_path, _reload_config(env, ("kept", "new-name"), ["ok"]))
    os.kill(monitor.popen.pid, signal.SIGHUP)
    monitor.wait_for("the reload", lambda: "config reloaded" in monitor.text())
    logged_before = monitor.text().count("round kept:")
    after = monitor.metrics()
    logged_after = monitor.text().count("round kept:")
    for name, samples in after.items():
        for sample in samples:
            assert sample.labels.get("vantage") != "old-name", (name, sample)
            assert sample.labels.get("target") != "gone", (name, sample)
    assert "msgreach_check_failures_total" not in after
    # The counter was kept: it counts every round logged since the start, the one after the reload too.
    [kept_rounds] = [s.value for s in after["msgreach_rounds_total"] if s.labels["vantage"] == "kept"]
    assert logged_before <= kept_rounds <= logged_after and kept_rounds >= 1
    assert monitor.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare (a private mount namespace for a tmpfs)")
@pytest.mark.parametrize(("mount_options", "error"), [("size=64k", "No space left on device"), ("ro", "Read-only file system")], ids=["full", "read-only"])
def test_a_failing_disk_under_the_archive_is_a_metric(env, tmp_path, monitors, mount_options, error):
    """The archive's directory is a tmpfs in a mount namespace of the monitor's own: 64 KiB that
    rounds fill up, or read-only from the start. Rounds that cannot be written are counted per
    vantage, the last written one is timed, the error is logged once, and measuring goes on."""
    state = tmp_path / "state"
    state.mkdir()
    env.resolve("disk.good.test")
    services = [{"name": "svc", "targets": [env.target(f"t{index}", "disk.good.test") for index in range(6)]}]
    # The verdict history lives elsewhere: this disk is the archive's alone.
    config = env.write(
        tmp_path, env.config(services, schedule={"interval_seconds": 1}, evidence={"path": str(state / "evidence.jsonl")}, state_dir=str(tmp_path / "history"))
    )
    mount = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", f'mount -t tmpfs -o {mount_options} tmpfs "{state}" && exec "$@"', "sh"]
    monitor = Monitor(config, tmp_path, prefix=mount)
    monitors.append(monitor)

    def failures() -> float:
        samples = monitor.metrics().get("msgreach_evidence_write_failures_total", []) if "serving on" in monitor.text() else []
        return sum(s.value for s in samples if s.labels["vantage"] == "test-vantage")

    monitor.wait_for("write failures", lambda: failures() >= 2, timeout=120)
    metrics = monitor.metrics()
    last = [s.value for s in metrics.get("msgreach_evidence_last_write_success_timestamp_seconds", []) if s.labels["vantage"] == "test-vantage"]
    if mount_options == "ro":
        assert last == []  # never written
    else:
        assert len(last) == 1 and time.time() - 120 < last[0] < time.time()  # rounds were written before the disk filled
    rounds = [s.value for s in metrics["msgreach_rounds_total"] if s.labels["vantage"] == "test-vantage"]
    assert rounds and rounds[0] > failures() - 1  # measuring went on
    assert error in monitor.text() and monitor.text().count("cannot write") == 1  # said once, in the log
    assert monitor.stop() == 0
    assert not any(state.iterdir())  # the tmpfs was the monitor's own: nothing reached the real directory
