"""The command line as a user meets it: exit codes (`once`: 0 measured and nothing blocked, 3 a
block found, 4 the vantage offline; 2 for bad arguments or config, with one paragraph on stderr
and no traceback), --version, the table and JSON formats of `once` and its progress line on a
terminal. Every round here runs against loopback servers only."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from msgreach_contract import assert_contract_document

import probe

LOOPBACK = "127.0.0.1"


def _one_paragraph(stderr: str) -> None:
    assert stderr.strip(), "an error must say why"
    assert "Traceback" not in stderr
    assert "\n\n" not in stderr.strip(), f"more than one paragraph:\n{stderr}"


@pytest.fixture(scope="module")
def loopback_config(env, tmp_path_factory):
    env.resolve("cli-ok.good.test")
    env.resolve("cli-nx.good.test", vantage={"rcode": "NXDOMAIN"})
    services = [
        {"name": "alpha", "targets": [env.target("web", "cli-ok.good.test")]},
        {"name": "beta", "targets": [env.target("web", "cli-nx.good.test")]},
    ]
    return env.write(tmp_path_factory.mktemp("cli"), env.config(services))


def test_version(msgreach):
    completed = msgreach("--version", timeout=30)
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"msgreach {probe.__version__}"


def test_python_dash_m_probe_is_the_same_program():
    completed = subprocess.run([sys.executable, "-m", "probe", "--version"], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0 and completed.stdout.strip() == f"msgreach {probe.__version__}"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["once", "--format", "xml"],
        ["once", "--no-such-flag"],
        ["check-config"],
        ["run", "--listen"],
    ],
    ids=["no-command", "unknown-command", "bad-format", "unknown-flag", "missing-file-argument", "missing-listen-value"],
)
def test_bad_arguments_exit_2(msgreach, args):
    completed = msgreach(*args, timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)
    assert completed.stdout == ""


def test_once_with_a_missing_config(msgreach, tmp_path):
    completed = msgreach("once", "--config", str(tmp_path / "nope.yaml"), timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)
    assert "nope.yaml" in completed.stderr and "cannot read" in completed.stderr


def test_once_with_a_broken_config_lists_every_problem(msgreach, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("vantages:\n  - colour: blue\nschedule:\n  retries: many\nservices: []\n")
    completed = msgreach("once", "--config", str(path), timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)
    assert f"{path}:2: vantages.0.colour" in completed.stderr
    assert f"{path}:4: schedule.retries" in completed.stderr
    assert completed.stdout == ""


def test_run_with_a_broken_config(msgreach, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("listen: [not, a, mapping]\nservices: []\n")
    completed = msgreach("run", "--config", str(path), timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)


def test_once_with_an_unknown_service(msgreach, loopback_config):
    completed = msgreach("once", "--config", str(loopback_config), "--service", "icq", timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)
    assert "icq" in completed.stderr and "alpha" in completed.stderr


def test_once_json_exits_3_when_a_block_is_found(msgreach, loopback_config):
    completed = msgreach("once", "--config", str(loopback_config), "--format", "json", timeout=60)
    assert completed.returncode == 3, completed.stderr
    document = json.loads(completed.stdout)
    assert_contract_document(document)
    services = {s["service"]: s["verdict"] for s in document["vantages"][0]["services"]}
    assert services == {"alpha": "ok", "beta": "dns_blocked"}
    assert document["version"] == probe.__version__


@pytest.mark.parametrize("entry", ["script", "module"])
def test_once_ends_with_its_whole_output_and_status_when_stdout_is_buffered(loopback_config, entry):
    """`once` ends its process without the interpreter's teardown (probe.cli.entry): whatever
    stdout and stderr still buffer is written first, and the exit status stays. Block-buffered
    stdout, as a pipe gives it (the test environment may set PYTHONUNBUFFERED)."""
    from msgreach_helpers import msgreach_command

    command = msgreach_command() if entry == "script" else [sys.executable, "-m", "probe"]
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for output in ("json", "table"):
        completed = subprocess.run([*command, "once", "--config", str(loopback_config), "--format", output],
                                   capture_output=True, text=True, timeout=60, env=environment)
        assert completed.returncode == 3, completed.stderr
        if output == "json":
            assert json.loads(completed.stdout)["vantages"][0]["services"][1]["verdict"] == "dns_blocked"
        else:
            assert completed.stdout.endswith("\n\n") and "dns_blocked" in completed.stdout, completed.stdout


def test_the_collector_runs_again_when_start_up_ends(loopback_config, tmp_path):
    """probe.__main__ turns the cyclic collector off for start-up: the config's load (`run`,
    `once`) and the command line of every other command turn it on again (`helper` and `run`
    live long: without it their cyclic garbage would pile up)."""
    import gc

    from probe import cli

    try:
        gc.disable()
        assert cli.main(["check-config", str(loopback_config)]) == 0
        assert gc.isenabled()
        gc.disable()
        cli._load(str(loopback_config))
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_once_json_is_the_default_when_not_on_a_terminal(msgreach, loopback_config):
    completed = msgreach("once", "--config", str(loopback_config), "--service", "alpha", timeout=60)
    assert completed.returncode == 0, completed.stderr  # measured, nothing blocked
    document = json.loads(completed.stdout)
    assert [s["service"] for s in document["vantages"][0]["services"]] == ["alpha"]
    assert "measured" not in completed.stderr  # no progress line where stderr is not a terminal


def test_once_table(msgreach, loopback_config):
    completed = msgreach("once", "--config", str(loopback_config), "--format", "table", timeout=60)
    assert completed.returncode == 3, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("vantage test-vantage: ok")
    assert any(line.split()[:3] == ["control", "ctl", "control.good.test"] for line in lines)
    assert any(line.split()[:2] == ["alpha", "ok"] for line in lines)
    assert any(line.split()[:2] == ["beta", "dns_blocked"] for line in lines)
    beta_target = next(line for line in lines if "cli-nx.good.test" in line)
    assert "dns_blocked" in beta_target and "dns: dns_nxdomain_error" in beta_target


def test_once_on_an_offline_vantage_exits_4(msgreach, env, tmp_path):
    config = env.config(
        [{"name": "svc", "targets": [env.target("web", "cli-ok.good.test")]}],
        controls=[env.target("ctl", "control.good.test", "refused")],
    )
    completed = msgreach("once", "--config", str(env.write(tmp_path, config)), "--format", "json", timeout=60)
    assert completed.returncode == 4, completed.stderr
    assert json.loads(completed.stdout)["vantages"][0]["verdict"] == "vantage_offline"


def _once_with_stderr_on_a_terminal(config: Path) -> tuple[int, str, bytes]:
    """`once --format json` with stdout a pipe and stderr a pseudo-terminal, as in a shell
    that pipes the JSON on: (exit status, stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "once", "--config", str(config), "--format", "json"],
            stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(terminal)
    shown = b""
    try:
        while True:  # drain the terminal until the child closes it (a full pty would block it)
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                raise AssertionError(f"no output and no exit: {shown[-500:]!r}")
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout.decode(), shown


def test_once_shows_progress_on_a_terminal_and_keeps_stdout_clean(loopback_config):
    status, stdout, shown = _once_with_stderr_on_a_terminal(loopback_config)
    assert status == 3, shown[-2000:]
    json.loads(stdout)  # the document alone: the progress line went to the terminal only
    # controls (1) and targets (2) of the one vantage; the line is rewritten in place, then erased
    assert b"\rmsgreach: measured" in shown.replace(b"\x1b[K", b"") and b"/3 targets" in shown, shown
    assert b"measured 3/3 targets, 1 blocked" in shown, shown
    assert shown.endswith(b"\r\x1b[K") or shown.rstrip(b"\r\n").endswith(b"\x1b[K"), shown[-200:]


def test_run_with_an_impossible_listen_address(msgreach, loopback_config):
    completed = msgreach("run", "--config", str(loopback_config), "--listen", f"{LOOPBACK}:99999", timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)


def test_run_on_a_port_already_taken(msgreach, loopback_config):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = msgreach("run", "--config", str(loopback_config), "--listen", f"{LOOPBACK}:{port}", timeout=30)
    assert completed.returncode == 2
    _one_paragraph(completed.stderr)
    assert "cannot serve" in completed.stderr


def test_every_module_imports_first():
    """No import cycle hides behind the order the tests happen to import modules in (the CLI
    imports probe.report first; a cycle there broke `once`)."""
    script = (
        "import importlib, pkgutil, sys, probe, probe.checks\n"
        "names = ['probe.' + m.name for m in pkgutil.iter_modules(probe.__path__) if m.name != '__main__']\n"
        "names += ['probe.checks.' + m.name for m in pkgutil.iter_modules(probe.checks.__path__)]\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'probe' or m.startswith('probe.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) >= 15


@pytest.mark.parametrize("flag, libraries, ours", [(None, "WARNING", "INFO"), ("INFO", "WARNING", "INFO"), ("WARNING", "WARNING", "WARNING"), ("ERROR", "ERROR", "ERROR"), ("DEBUG", "DEBUG", "DEBUG")])
def test_log_level_leaves_libraries_at_warning_unless_debug(flag, libraries, ours):
    """`--log-level INFO` (the container's old default) must not make the scheduler announce every
    job run: libraries follow only DEBUG (and ERROR, which quiets everything)."""
    code = (
        "import logging, sys; from probe.cli import _setup_logging; _setup_logging(sys.argv[1] or None); "
        "print(logging.getLevelName(logging.getLogger('apscheduler.scheduler').getEffectiveLevel()), "
        "logging.getLevelName(logging.getLogger('probe.service').getEffectiveLevel()))"
    )
    out = subprocess.run([sys.executable, "-c", code, flag or ""], capture_output=True, text=True, check=True, cwd=Path(probe.__file__).parent.parent).stdout.split()
    assert out == [libraries, ours]
