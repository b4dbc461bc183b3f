"""Fixtures of the deploy tests: processes that are always stopped, namespaces always deleted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mrfkit import Processes  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "container: builds and runs the container image (podman, debootstrap; minutes)")
    config.addinivalue_line("markers", "fleet: msgreach vantages -> Prometheus agents -> a central receiver (minutes)")
    config.addinivalue_line("markers", "netns: needs root and mrf- network namespaces")


@pytest.fixture
def procs(tmp_path: Path):
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()
