"""Allowlists characterised (issue 20, item 5) against the lab's censors with their own rules: by
name (`allowlist`: the SNI or Host must be listed), by address (`allowlist-address`: the domestic
hosting range passes), by both (`allowlist-both`), and by name on IPv4 only (`allowlist-ipv4`).
The vantage's `allowlist` evidence says, per address family, what the allowlist follows, from the
three `allowlist_probe` controls (a domestic name at a foreign address, a foreign name at a
domestic address, a domestic address with no name); a clean line measures none of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from . import field2026_scenarios  # noqa: F401 - registers the scenarios
from .harness import Report, once
from .lab import Lab


def _controls_only(lab: Lab, path: Path) -> Path:
    data = lab.config_data(retries=0)
    data["services"] = []
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _keys(report: Report) -> dict[str, Any]:
    return {k["family"]: k["keyed_on"] for k in report.vantage.get("allowlist", [])}


def _probes_measured(report: Report) -> list[str]:
    return [c["target"] for c in report.controls() if c.get("control_class") == "allowlist_probe"]


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("allowlist", {"ipv4": "name", "ipv6": "name"}),
        ("allowlist-address", {"ipv4": "address", "ipv6": "address"}),
        ("allowlist-both", {"ipv4": "name_and_address", "ipv6": "name_and_address"}),
    ],
)
def test_the_allowlist_says_whether_names_or_addresses_pass(lab: Lab, tmp_path: Path, name: str, keys: dict[str, str]) -> None:
    config = _controls_only(lab, tmp_path / "c.yaml")
    lab.clear_scenarios()
    lab.scenario(name, True)
    try:
        report = once(lab, config=config)
    finally:
        lab.scenario(name, False)
    assert report.vantage["verdict"] == "allowlist", report.vantage.get("reason")
    assert _keys(report) == keys, report.vantage.get("allowlist")
    assert any(r["key"] == "allowlist_keyed" for r in report.vantage["reasons"]), report.vantage["reasons"]


def test_an_allowlist_on_ipv4_only_is_named_on_ipv4(lab: Lab, tmp_path: Path) -> None:
    config = _controls_only(lab, tmp_path / "c.yaml")
    lab.clear_scenarios()
    lab.scenario("allowlist-ipv4", True)
    try:
        report = once(lab, config=config)
    finally:
        lab.scenario("allowlist-ipv4", False)
    if report.vantage["verdict"] == "allowlist":
        assert _keys(report) == {"ipv4": "name", "ipv6": "open"}, report.vantage.get("allowlist")
    else:  # the international sites answered over IPv6: the vantage is online, no probe measured
        assert report.vantage["verdict"] == "ok" and not _probes_measured(report), report.controls()


def test_a_clean_line_measures_no_allowlist_probe(lab: Lab, tmp_path: Path) -> None:
    lab.clear_scenarios()
    report = once(lab, config=_controls_only(lab, tmp_path / "c.yaml"))
    assert report.vantage["verdict"] == "ok" and not _probes_measured(report) and "allowlist" not in report.vantage, report.vantage
