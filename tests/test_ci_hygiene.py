"""CI and the tests stop only the processes they started, by PID: nothing in `.ci/`, the tests,
the benchmarks or the deploy scripts kills or stops a process by name, and `.ci/run` keeps
Debian from starting services at install instead of stopping them afterwards."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match itself.
_BY_NAME = re.compile(r"\b(?:p" + r"kill|kill" + r"all|pid" + r"of|fuser\s+-k|systemctl\s+(?:stop|kill)|service\s+\S+\s+stop)\b")


def _scripts() -> list[Path]:
    found = [REPO / ".ci" / "run"]
    for directory in ("tests", "bench", "deploy", ".ci"):
        for path in (REPO / directory).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", "") and "__pycache__" not in path.parts:
                found.append(path)
    return sorted(set(found))


def test_nothing_stops_a_process_by_name() -> None:
    offenders = []
    for path in _scripts():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _BY_NAME.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_ci_forbids_service_starts_during_the_install_and_restores_the_policy() -> None:
    run = (REPO / ".ci" / "run").read_text()
    install = run.index("apt-get install")
    assert run.index("exit 101") < install < run.index("restore_policy\ntrap - EXIT")
    assert "trap restore_policy EXIT" in run[:install]
