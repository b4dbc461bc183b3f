"""Teardown, checked (named to run last): the session's lab goes without a trace, a lab killed
with SIGKILL is removed before the next one is built, and `up --hold` ends cleanly on SIGTERM.
(`pytest_sessionfinish` in conftest.py checks again after every fixture is gone.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import gate
from .lab import Lab, _alive, in_ns, leftovers, sh
from .plan import NAMESPACES, REPO

pytestmark = pytest.mark.lab


def _nothing_left() -> None:
    found = leftovers()
    assert found == {"namespaces": [], "links": [], "processes": []}, found


def _up_hold() -> subprocess.Popen:
    """`python -m tests.lab up --hold` in its own process group; returns once it holds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.lab", "up", "--hold"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    output = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        output += line
        if "holding" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"`up --hold` did not come up:\n{output}")


def test_session_lab_goes_without_a_trace(lab: Lab) -> None:
    daemons = list(lab.state["pids"].values())
    assert daemons and all(_alive(p) for p in daemons)
    lab.down()
    _nothing_left()
    assert not any(_alive(p) for p in daemons), daemons
    assert not (lab.dir / "state.json").exists()


def test_killed_lab_is_cleaned_before_the_next(lab: Lab) -> None:
    proc = _up_hold()
    daemons = [int(p) for ns in NAMESPACES for p in sh(["ip", "netns", "pids", ns]).stdout.split()]
    os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: the lab stays behind
    proc.wait(timeout=10)
    assert set(NAMESPACES) <= set(leftovers()["namespaces"])
    # A stray of our own inside the stale lab, and a stale root-namespace link.
    stray = subprocess.Popen(["ip", "netns", "exec", "mrl-client", "sleep", "600"], start_new_session=True)
    sh(["ip", "link", "add", "mrl-stale0", "type", "veth", "peer", "name", "mrl-stale1"])
    try:
        fresh = Lab()
        fresh.up()
        for pid in [*daemons, stray.pid]:
            assert not _alive(pid), f"stale process {pid} survived the new lab's start"
        assert "mrl-stale0" not in leftovers()["links"]
        assert in_ns("mrl-client", ["true"]).returncode == 0
        fresh.down()
    finally:
        stray.kill()
        stray.wait()
        sh(["ip", "link", "delete", "mrl-stale0"], check=False)
    _nothing_left()


def test_sigterm_tears_down_up_hold() -> None:
    gate()
    proc = _up_hold()
    assert set(NAMESPACES) <= set(leftovers()["namespaces"])
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    _nothing_left()
