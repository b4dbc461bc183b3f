"""Small helpers shared by the test files (import them from here, not from conftest)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def msgreach_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m probe`."""
    script = Path(sys.executable).parent / "msgreach"
    return [str(script)] if script.exists() else [sys.executable, "-m", "probe"]


def require_root(what: str) -> None:
    """Skip when not root, but fail under CI (CI=true), where the test must run."""
    if os.geteuid() != 0:
        message = f"{what} needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " and CI=true: this test must run in CI")
        pytest.skip(message)


def require_tool(path: str | None, what: str) -> str:
    """Skip when a tool is missing, but fail under CI (CI=true), where it must be installed."""
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is missing and CI=true")
        pytest.skip(f"{what} is missing")
    return path


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
