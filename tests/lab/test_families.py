"""IPv4 and IPv6 apart (issue 20, item 6) against the lab's censor with its own rules: SYNs to a
target's addresses of one family dropped (`syn-drop-ipv6`, `syn-drop-ipv4`), the other family
untouched. The lab's vantage reaches IPv6, so each family is judged on its own: the target is
`ip_blocked` with the failing family named, and every other target stays `ok`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from . import field2026_scenarios  # noqa: F401 - registers the scenarios
from .harness import once
from .lab import Lab


@pytest.mark.parametrize(("name", "family", "other"), [("syn-drop-ipv6", "ipv6", "ipv4"), ("syn-drop-ipv4", "ipv4", "ipv6")])
def test_one_family_blocked_is_named(lab: Lab, tmp_path: Path, name: str, family: str, other: str) -> None:
    path = tmp_path / "c.yaml"
    data = lab.config_data()
    data["services"] = [s for s in data["services"] if s["catalog"] == "whatsapp"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    lab.clear_scenarios()
    lab.scenario(name, True, ["whatsapp/web"])
    try:
        report = once(lab, config=path)
    finally:
        lab.scenario(name, False)
    assert report.vantage["verdict"] == "ok" and report.vantage.get("ipv6") is True, report.vantage.get("reason")
    web = report.target("whatsapp", "web")
    assert web["verdict"] == "ip_blocked", report.summary()
    assert f"every {family} address fails while {other} connects" in web["reason"], web["reason"]
    tcp = next(c for c in web["checks"] if c["check"] == "tcp")
    assert tcp["failure"] == "generic_timeout_error" and tcp["finding"]["differential"] == "other_family", tcp
    failed = {(":" in c["address"], c["failure"] is None) for c in tcp["connects"]}
    assert failed == {(family == "ipv6", False), (family == "ipv4", True)}, tcp["connects"]
    others = {t["target"]: t["verdict"] for t in report.service("whatsapp")["targets"] if t["target"] not in ("web", "web-http")}
    assert set(others.values()) == {"ok"}, report.summary()
