"""Small helpers shared by the test files (import them from here, not from conftest)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

BLOCKED_SNI = "blocked.good.test"  # the SNI the fixture's front resets (conftest's `sni_front`)


def msgreach_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m probe`."""
    script = Path(sys.executable).parent / "msgreach"
    return [str(script)] if script.exists() else [sys.executable, "-m", "probe"]


def under_ci() -> bool:
    """CI=true: every test must run there; what would be skipped elsewhere fails instead."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless_ci(message: str) -> None:
    """Skip the test, but fail it under CI, where whatever it lacks must be there."""
    if under_ci():
        pytest.fail(f"{message}, and CI=true: this test must run in CI")
    pytest.skip(message)


def require_root(what: str) -> None:
    """Skip when not root, but fail under CI (CI=true), where the test must run."""
    if os.geteuid() != 0:
        skip_unless_ci(f"{what} needs root")


def require_tool(path: str | None, what: str) -> str:
    """Skip when a tool is missing, but fail under CI (CI=true), where it must be installed."""
    if path is None:
        skip_unless_ci(f"{what} is missing")
    assert path is not None
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nothing is bound to now: the kernel answers a datagram with ICMP unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def verdict_of(result) -> str:
    """The verdict the judge gives a target whose only check is `result` (a CheckResult)."""
    from probe import judge

    return str(judge.target_verdict([result])[0])


async def measured(ctx, module, params=None):
    """One check on `ctx` as the runner runs it (probe.checks.measure): the check observes, the
    judge reads; the CheckResult is also appended to `ctx.results`."""
    from probe.checks.measure import measure

    result = await measure(ctx, module, params)
    assert result is not None, f"{module.NAME} did not apply (Skip)"
    return result
