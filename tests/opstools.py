"""Finding the Prometheus/Alertmanager binaries the operator tests run.

A missing binary skips the test on a developer's machine, and fails it in CI (``CI=true``):
in CI a skipped operator test would be a silently untested alert rule.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


from msgreach_helpers import under_ci as in_ci  # noqa: E402 - the one place for the CI rule


def require_tool(*names: str) -> str:
    """The path of the first of ``names`` on PATH; skip (or fail in CI) when there is none."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"{' / '.join(names)} not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip")
    pytest.skip(message)


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a tool; the test fails (with the tool's output) if it exits non-zero."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc
