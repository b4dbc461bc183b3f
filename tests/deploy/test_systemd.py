"""The shipped systemd unit: valid for systemd itself (`systemd-analyze verify`, which needs no
running systemd: it parses the unit and checks its commands exist), hardened (`systemd-analyze
security --offline`, exposure at most 1.5 of 10), and the settings docs/deploy.md relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mrfkit import REPO

UNIT = REPO / "deploy" / "systemd" / "msgreach.service"
INSTALLED = "/opt/msgreach/bin/msgreach"  # where docs/deploy.md installs the virtualenv


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze missing (Debian package systemd)")
        pytest.skip("systemd-analyze missing (Debian package systemd)")
    return found


def _unit_here(tmp_path: Path) -> Path:
    """The unit with its command pointing at this checkout's msgreach: `verify` checks that the
    command exists and is executable, and /opt/msgreach is not installed on a test machine."""
    here = shutil.which("msgreach") or str(Path(sys.executable).parent / "msgreach")
    assert Path(here).is_file(), "the msgreach console script of this environment"
    text = UNIT.read_text()
    assert text.count(INSTALLED) == 1
    unit = tmp_path / "msgreach.service"
    unit.write_text(text.replace(INSTALLED, here))
    return unit


def _directives() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():  # repeated keys (SystemCallFilter=) are kept, in order
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(f"{section}.{key}", []).append(value)
    return values


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    run = subprocess.run([analyze, "verify", str(_unit_here(tmp_path))], capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 on unknown keys and bad values too, and says so on stderr: both must be clean.
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a bad value are reported."""
    analyze = _systemd_analyze()
    unit = _unit_here(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectClock=yes", "ProtectClok=yes").replace("UMask=0077", "UMask=banana"))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert "ProtectClok" in run.stderr and "banana" in run.stderr, run.stderr


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    unit = _unit_here(tmp_path)
    # --threshold: exit status 1 when the exposure (0-100 here, 0-10 as shown) is above it.
    run = subprocess.run([analyze, "security", "--offline=true", "--threshold=15", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    directives = _directives()
    for key, value in {
        "Service.DynamicUser": "yes",
        "Service.StateDirectory": "msgreach",
        "Service.ProtectSystem": "strict",
        "Service.NoNewPrivileges": "yes",
        "Service.CapabilityBoundingSet": "",
        "Service.ProtectHome": "yes",
        "Service.PrivateTmp": "yes",
        # msgreach keeps its state in $XDG_STATE_HOME/msgreach: the state directory above.
        "Service.Environment": "XDG_STATE_HOME=/var/lib",
        "Service.RestartPreventExitStatus": "2",
        "Install.WantedBy": "multi-user.target",
    }.items():
        assert directives.get(key) == [value], (key, directives.get(key))
    assert directives["Service.ExecStart"] == [f"{INSTALLED} run --config /etc/msgreach/config.yaml"]
    assert directives["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # msgreach reloads on SIGHUP


def test_the_install_steps_name_the_unit() -> None:
    deploy = (REPO / "docs" / "deploy.md").read_text()
    for step in ("deploy/systemd/msgreach.service", "systemctl enable --now msgreach", "systemctl status msgreach", INSTALLED.removesuffix("/bin/msgreach")):
        assert step in deploy, step
