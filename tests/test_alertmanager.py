"""configs/alertmanager/alertmanager.yml: checked by amtool, routed as documented, and its
grouping and inhibitions exercised by a real Alertmanager (Debian's prometheus-alertmanager) that
delivers to a webhook receiver owned by the test, all on 127.0.0.1.

The live test uses the shipped file with two changes only: every receiver URL points at the
test's receiver (keeping the receiver's name in the path), and the group timers are 1 s.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml

from opstools import ROOT, require_tool, run
from promstack import Stack, alertmanager_config, wait_for

CONFIG = ROOT / "configs" / "alertmanager" / "alertmanager.yml"


def test_amtool_check_config():
    amtool = require_tool("amtool")
    out = run([amtool, "check-config", str(CONFIG)])
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "MsgreachSuddenBlock", "severity": "critical", "category": "block", "country": "RU"}, "oncall-ru"),
        ({"alertname": "MsgreachWideBlock", "severity": "critical", "category": "block", "country": "KZ", "scope": "asn"}, "oncall-central-asia"),
        ({"alertname": "MsgreachSuddenBlock", "severity": "critical", "category": "block", "country": "IR"}, "oncall"),
        ({"alertname": "MsgreachSuddenBlock", "severity": "critical", "category": "block"}, "oncall"),  # a vantage without a country
        ({"alertname": "MsgreachTechniqueChange", "severity": "warning", "category": "block", "country": "RU"}, "operators"),
        ({"alertname": "MsgreachVantageOffline", "severity": "warning", "category": "vantage", "country": "RU"}, "vantage-keepers"),
        ({"alertname": "MsgreachVantageSilent", "severity": "warning", "category": "vantage"}, "vantage-keepers"),
        ({"alertname": "MsgreachServiceFailingAtControl", "severity": "info", "category": "outage"}, "digest"),
        ({"alertname": "MsgreachHelperLineDown", "severity": "info", "category": "helper", "vantage": "ru-1", "helper": "abroad"}, "digest"),
        ({"alertname": "MsgreachAllowlistRegime", "severity": "critical", "category": "regime", "country": "RU", "asn": "12389"}, "oncall-ru"),
        ({"alertname": "MsgreachRegionalShutdown", "severity": "critical", "category": "regime", "country": "KZ", "asn": "9198"}, "oncall-central-asia"),
    ],
)
def test_routing(labels, receiver):
    amtool = require_tool("amtool")
    out = run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *(f"{k}={v}" for k, v in labels.items())])
    assert out.stdout.split() == [receiver]


def test_every_alert_of_the_rules_has_a_route_that_is_not_the_fallback():
    rules = yaml.safe_load((ROOT / "configs" / "prometheus" / "rules" / "msgreach.yml").read_text())
    amtool = require_tool("amtool")
    for rule in (r for g in rules["groups"] for r in g["rules"] if "alert" in r):
        labels = {"alertname": rule["alert"], **rule["labels"]}
        out = run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *(f"{k}={v}" for k, v in labels.items())])
        receiver = out.stdout.strip()
        if rule["labels"]["severity"] == "critical":
            assert receiver.startswith("oncall"), (rule["alert"], receiver)
        else:
            assert receiver in {"operators", "vantage-keepers", "digest"}, (rule["alert"], receiver)


def alert(name: str, **labels: str) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"test {name}"},
        "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
    }


BLOCK = {"severity": "critical", "category": "block", "country": "RU", "asn": "12389", "service": "telegram", "technique": "sni_blocked"}
VANTAGE = {"severity": "warning", "category": "vantage", "country": "RU", "asn": "12389"}


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.close()


def test_inhibitions_and_grouping_in_a_real_alertmanager(stack):
    hook = stack.webhook()
    am = stack.alertmanager(alertmanager_config(hook.url, fast=True))

    # ru-1 is offline and ru-3 silent: their block alerts must be muted; ru-2's must page, and
    # ru-2 and ru-4 (same alert, country and service) arrive in one notification.
    am.post_alerts([
        alert("MsgreachVantageOffline", vantage="ru-1", **VANTAGE),
        alert("MsgreachVantageSilent", vantage="ru-3", **VANTAGE),
        alert("MsgreachVantageOffline", vantage="ru-3", **VANTAGE),
    ])
    time.sleep(1.5)
    am.post_alerts([
        alert("MsgreachSuddenBlock", vantage="ru-1", **BLOCK),
        alert("MsgreachTechniqueChange", vantage="ru-1", previous_technique="throttled", **{**BLOCK, "severity": "warning"}),
        alert("MsgreachSuddenBlock", vantage="ru-2", **BLOCK),
        alert("MsgreachSuddenBlock", vantage="ru-3", **BLOCK),
        alert("MsgreachSuddenBlock", vantage="ru-4", **BLOCK),
    ])

    def delivered():
        return {(d["path"].rsplit("/", 1)[-1], a["labels"]["alertname"], a["labels"].get("vantage")) for d, a in hook.alerts()}

    expected = {
        ("vantage-keepers", "MsgreachVantageOffline", "ru-1"),
        ("vantage-keepers", "MsgreachVantageSilent", "ru-3"),
        ("oncall-ru", "MsgreachSuddenBlock", "ru-2"),
        ("oncall-ru", "MsgreachSuddenBlock", "ru-4"),
    }
    wait_for("the expected notifications", lambda: expected <= delivered(), timeout=30, on_timeout=lambda: f"got {delivered()}")
    time.sleep(4)  # several group intervals: anything inhibited would have gone out by now
    assert delivered() == expected

    # Alertmanager itself says why the others were held back.
    status, body = stack.http(f"{am.url}/api/v2/alerts")
    import json

    states = {(a["labels"]["alertname"], a["labels"]["vantage"]): a["status"] for a in json.loads(body)}
    assert states[("MsgreachSuddenBlock", "ru-1")]["inhibitedBy"]
    assert states[("MsgreachTechniqueChange", "ru-1")]["inhibitedBy"]
    assert states[("MsgreachSuddenBlock", "ru-3")]["inhibitedBy"]
    assert states[("MsgreachVantageOffline", "ru-3")]["inhibitedBy"]  # silent mutes offline
    assert not states[("MsgreachSuddenBlock", "ru-2")]["inhibitedBy"]

    # Grouping: ru-2 and ru-4 came in one notification, grouped by alertname/country/service.
    groups = [d for d in hook.deliveries() if d["path"].endswith("/oncall-ru")]
    assert any({a["labels"]["vantage"] for a in d["body"]["alerts"]} == {"ru-2", "ru-4"} for d in groups), groups
    assert all(d["body"]["groupLabels"] == {"alertname": "MsgreachSuddenBlock", "country": "RU", "service": "telegram"} for d in groups)


def test_a_regional_shutdown_pages_once_and_mutes_the_offline_warnings_of_its_asn(stack):
    hook = stack.webhook()
    am = stack.alertmanager(alertmanager_config(hook.url, fast=True))
    shutdown = {"severity": "critical", "category": "regime", "country": "RU", "asn": "12389"}
    am.post_alerts([alert("MsgreachRegionalShutdown", **shutdown)])
    time.sleep(1.5)
    am.post_alerts([
        alert("MsgreachVantageOffline", vantage="ru-1", **VANTAGE),
        alert("MsgreachVantageOffline", vantage="ru-2", **VANTAGE),
        alert("MsgreachVantageOffline", vantage="ru-3", **{**VANTAGE, "asn": "8359"}),  # another ASN
    ])

    def delivered():
        return {(d["path"].rsplit("/", 1)[-1], a["labels"]["alertname"], a["labels"].get("vantage")) for d, a in hook.alerts()}

    expected = {("oncall-ru", "MsgreachRegionalShutdown", None), ("vantage-keepers", "MsgreachVantageOffline", "ru-3")}
    wait_for("the expected notifications", lambda: expected <= delivered(), timeout=30, on_timeout=lambda: f"got {delivered()}")
    time.sleep(4)
    assert delivered() == expected
