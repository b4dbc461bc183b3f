"""The lab for pytest: built once per session, torn down whatever happens.

- Not root: every lab test is skipped (with the reason), except under CI=true or MRL_LAB=require,
  where a lab that cannot run is a failure, never a silent skip.
- Root: the lab is built or the tests fail loudly (missing tools, a daemon that dies…).
- Teardown: the session fixture's finalizer, atexit, and SIGTERM/SIGINT/SIGHUP handlers; a stale
  lab from an earlier run is removed before the new one is built. After the session,
  `pytest_sessionfinish` checks that no `mrl-` namespace, interface or process is left and fails
  the run if one is.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .harness import Report, once
from .lab import Lab, LabError, acquire_lock, leftovers, missing_tools
from .teardown import install as install_teardown

HERE = Path(__file__).parent
_built = {"lab": False}


def _must_run() -> bool:
    from msgreach_helpers import under_ci  # tests/ is on the path (tests/conftest.py)

    return under_ci() or os.environ.get("MRL_LAB") == "require"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.lab)


def gate() -> None:
    if os.geteuid() != 0:
        message = "the censorship lab needs root (network namespaces, nftables)"
        if _must_run():
            pytest.fail(f"{message}, and CI=true / MRL_LAB=require: it must run here", pytrace=False)
        pytest.skip(message)
    missing = missing_tools()
    if missing:
        pytest.fail(f"the censorship lab needs {', '.join(missing)} (Debian packages: see .ci/apt-packages.txt)", pytrace=False)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Lab:
    gate()
    lab = Lab()
    teardown = install_teardown(lab)
    request.addfinalizer(teardown.run)
    try:
        lab.up(wait=float(os.environ.get("MRL_LAB_WAIT", "1800")))  # another session: wait our turn
    except LabError as exc:
        pytest.fail(f"the censorship lab could not be built: {exc}", pytrace=False)
    _built["lab"] = True
    return lab


@pytest.fixture
def clean_lab(lab: Lab) -> Lab:
    """The lab with no scenario active, before and after the test (rebuilt if a teardown test
    ran earlier in this session)."""
    if not lab.is_up:
        lab.up(wait=float(os.environ.get("MRL_LAB_WAIT", "1800")))
    lab.clear_scenarios()
    yield lab
    lab.clear_scenarios()


@pytest.fixture(scope="session")
def baseline(lab: Lab) -> Report:
    """One round with no censorship at all: every later expectation leans on it being all ok."""
    lab.clear_scenarios()
    return once(lab)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _built["lab"]:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        lock = acquire_lock(Lab().dir, 0)
    except LabError as exc:  # another session took over the (fixed) names after ours ended
        if reporter is not None:
            reporter.write_line(f"lab leftover check not done: {exc}", yellow=True)
        return
    try:
        found = leftovers()
    finally:
        os.close(lock)
    if any(found.values()):
        message = f"the censorship lab left things behind: {found}"
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
