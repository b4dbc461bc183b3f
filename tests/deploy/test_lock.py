"""The image's hash locks agree with pyproject.toml, offline: every dependency (and every build
requirement) is pinned at a version its specifier allows, every pin carries hashes, and the
packages the pins need (as installed here) are pinned too; the Dockerfile installs from the lock
with --require-hashes and starts from a base pinned by digest. The check fails when pyproject
gains a dependency the lock lacks (shown on a copy of pyproject with one more)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from mrfkit import REPO, require
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = REPO / "deploy" / "requirements.lock"
BUILD_LOCK = REPO / "deploy" / "build-requirements.lock"
# The image's interpreter: the lock is resolved for Python 3.11 on Linux (deploy/lock.sh).
IMAGE = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux",
         "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?\\?$")


def pins(lock_text: str) -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) of the pins that apply to the image."""
    found: dict[str, tuple[Version, int]] = {}
    current: str | None = None  # the pin the hash lines below belong to (None: one for another platform)
    seen_pin = False
    for raw in lock_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            assert seen_pin and re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line), line
            if current is not None:
                version, hashes = found[current]
                found[current] = (version, hashes + 1)
            continue
        match = _PIN.match(line)
        assert match, f"not an exact pin: {raw!r}"
        seen_pin = True
        marker = match["marker"]
        if marker and not Requirement(f"x; {marker.strip()}").marker.evaluate(IMAGE):  # type: ignore[union-attr]
            current = None
            continue
        current = canonicalize_name(match["name"])
        found[current] = (Version(match["version"]), 0)
    return found


def lock_problems(requirements: list[str], lock_text: str) -> list[str]:
    """What keeps `lock_text` from installing `requirements` in the image."""
    pinned = pins(lock_text)
    problems = [f"{name}=={version} has no hash" for name, (version, hashes) in pinned.items() if hashes == 0]
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(IMAGE):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is not in the lock: run deploy/lock.sh")
        elif not requirement.specifier.contains(pinned[name][0], prereleases=True):
            problems.append(f"{requirement}: the lock pins {pinned[name][0]}: run deploy/lock.sh")
    return problems


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_lock_has_every_dependency_of_pyproject() -> None:
    assert lock_problems(_pyproject()["project"]["dependencies"], LOCK.read_text()) == []


def test_the_build_lock_has_every_build_requirement() -> None:
    assert lock_problems(_pyproject()["build-system"]["requires"], BUILD_LOCK.read_text()) == []


def test_the_check_fails_when_pyproject_gains_a_dependency_the_lock_lacks() -> None:
    dependencies = _pyproject()["project"]["dependencies"]
    assert lock_problems([*dependencies, "left-pad>=1.0"], LOCK.read_text()) == ["left-pad>=1.0 is not in the lock: run deploy/lock.sh"]
    raised = [d if not d.startswith("httpx") else "httpx>=99" for d in dependencies]
    assert lock_problems(raised, LOCK.read_text()) != []


def test_what_the_pins_need_is_pinned() -> None:
    """The pins' own requirements (read from the packages installed here at the pinned version)
    are in the lock too: a lock missing a transitive dependency fails `pip check` in the image;
    this finds it without a build. A package installed here at another version says nothing of
    the pinned one and is skipped (the image's `pip check` covers it)."""
    pinned = pins(LOCK.read_text())
    missing = []
    read = 0
    for name, (version, _) in pinned.items():
        try:
            if Version(metadata.version(name)) != version:
                continue
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        read += 1
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({**IMAGE, "extra": ""}):
                continue
            if canonicalize_name(requirement.name) not in pinned:
                missing.append(f"{name} needs {requirement}")
    assert not missing, missing
    # CI installs the lock before anything else (.ci/run); a developer's environment may hold other versions.
    require(read > 0, "no pinned package is installed here at its pinned version (pip install --require-hashes --no-deps -r deploy/requirements.lock)")


def test_the_dockerfile_installs_from_the_lock_on_a_pinned_base() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+@sha256:[0-9a-f]{64}$", dockerfile, re.MULTILINE), "the base image is pinned by digest"
    assert "pip install --no-compile --require-hashes --no-deps -r deploy/requirements.lock" in dockerfile
    assert "pip install --require-hashes --no-deps -r deploy/build-requirements.lock" in dockerfile
    assert "--no-build-isolation" in dockerfile  # msgreach's wheel built with the locked hatchling, nothing fetched
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert all("--require-hashes" in line or line.strip().endswith("msgreach-*.whl \\") for line in installs), installs
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "!deploy/requirements.lock" in ignored and "!deploy/build-requirements.lock" in ignored
