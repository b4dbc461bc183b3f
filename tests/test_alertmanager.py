"""configs/alertmanager/alertmanager.yml: checked by amtool, routed as documented, its
grouping and inhibitions exercised by a real Alertmanager (Debian's prometheus-alertmanager) that
delivers to a webhook receiver owned by the test, and its shipped receivers (Telegram, e-mail,
webhooks to relays) delivering, with msgreach.tmpl's texts, to real receiver processes: a
Telegram Bot API stand-in and an SMTP server. All on 127.0.0.1.

The routing tests use the shipped file with every receiver replaced by one webhook to the test's
receiver (keeping the receiver's name in the path) and the group timers at 1 s; the delivery test
keeps the receivers and changes only where they send: the Bot API URL, the mail server, the
relays' URLs.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import shutil
import socket
import sys
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


EXTERNAL = "https://centre.example.org"  # Prometheus's --web.external-url: the rules' links are absolute on it


def rule_alert(name: str, **labels: str) -> dict:
    """An alert as the rules send it: the annotations a notification shows, links absolute."""
    sent = alert(name, **labels)
    sent["annotations"] = {
        "summary": f"{labels.get('service', 'vantage')} {name} at {labels.get('vantage', labels.get('country'))}",
        "description": "what happened, in a sentence",
        "runbook": "1. what to check",
        "runbook_url": f"{EXTERNAL}/docs/operators.md#{name.lower()}",
        "dashboard": f"{EXTERNAL}/d/msgreach-service?var-service={labels.get('service', '')}&var-vantage={labels.get('vantage', '')}",
    }
    return sent


def test_the_shipped_receivers_deliver_to_real_receivers(stack):
    """Telegram (through a Bot API stand-in), e-mail (an SMTP server) and the relays' webhooks,
    as configured in the shipped file, each with a message that links the runbook and the
    dashboard."""
    hook = stack.webhook()
    smtp_port = stack.port()
    mails = stack.workdir / "mails.jsonl"
    mails.touch()
    smtp = stack.start("smtp", sys.executable, str(ROOT / "tests" / "smtp_receiver.py"), "127.0.0.1", str(smtp_port), str(mails))

    def smtp_up() -> bool:
        assert smtp.alive(), smtp.tail()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", smtp_port)) == 0

    wait_for("the SMTP receiver", smtp_up, timeout=20)

    config = yaml.safe_load(CONFIG.read_text())
    shutil.copy(CONFIG.parent / "msgreach.tmpl", stack.workdir / "msgreach.tmpl")  # `templates:` is relative to the config
    chats = {}
    for receiver in config["receivers"]:
        for telegram in receiver.get("telegram_configs", []):
            telegram["api_url"] = f"{hook.url}/telegram/{receiver['name']}"
            chats[receiver["name"]] = telegram["chat_id"]
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{hook.url}/{receiver['name']}"
    assert set(chats) == {"oncall", "oncall-ru", "oncall-central-asia"} and len(set(chats.values())) == 3
    assert {r["name"] for r in config["receivers"] if r.get("email_configs")} == {"vantage-keepers"}
    config["global"].update(smtp_smarthost=f"127.0.0.1:{smtp_port}", smtp_require_tls=False)
    for key in ("smtp_auth_username", "smtp_auth_password_file"):
        config["global"].pop(key)  # the shipped file names a secret file this machine has not
    for route in [config["route"], *config["route"]["routes"]]:
        route["group_wait"], route["group_interval"] = "1s", "1s"
    am = stack.alertmanager(config)
    am.post_alerts([
        rule_alert("MsgreachSuddenBlock", vantage="ru-2", **BLOCK),
        rule_alert("MsgreachWideBlock", **{**BLOCK, "country": "KZ", "asn": "9198", "scope": "asn"}),
        rule_alert("MsgreachVantageOffline", vantage="ru-1", **VANTAGE),
        rule_alert("MsgreachTechniqueChange", vantage="ru-2", previous_technique="throttled", **{**BLOCK, "severity": "warning"}),
        rule_alert("MsgreachServiceFailingAtControl", service="signal", severity="info", category="outage"),
    ])

    def telegram(receiver: str) -> dict | None:
        return next((d["body"] for d in hook.deliveries() if d["path"].startswith(f"/telegram/{receiver}/bot") and d["path"].endswith("/sendMessage")), None)

    def webhook(receiver: str) -> dict | None:
        return next((d["body"] for d in hook.deliveries() if d["path"] == f"/{receiver}"), None)

    def mail() -> email.message.EmailMessage | None:
        lines = [json.loads(line) for line in mails.read_text().splitlines() if line.strip()]
        return email.message_from_string(lines[0]["data"], policy=email.policy.default) if lines else None  # type: ignore[return-value]

    def everything():
        found = (telegram("oncall-ru"), telegram("oncall-central-asia"), mail(), webhook("operators"), webhook("digest"))
        return found if all(found) else None

    ru, central_asia, message, operators, digest = wait_for(
        "a Telegram message to each on-call group, an e-mail and the relays' webhooks", everything, timeout=60,
        on_timeout=lambda: f"webhook: {hook.deliveries()}\nmails: {mails.read_text()}\n{am.proc.tail()}",
    )
    assert str(ru["chat_id"]) == str(chats["oncall-ru"]) and str(central_asia["chat_id"]) == str(chats["oncall-central-asia"])
    assert ru["parse_mode"] == "HTML"
    assert f'<a href="{EXTERNAL}/docs/operators.md#msgreachsuddenblock">runbook</a>' in ru["text"], ru["text"]
    assert f'<a href="{EXTERNAL}/d/msgreach-service?var-service=telegram&amp;var-vantage=ru-2">dashboard</a>' in ru["text"], ru["text"]
    assert "MsgreachSuddenBlock" in ru["text"] and "telegram MsgreachSuddenBlock at ru-2" in ru["text"]
    assert "#msgreachwideblock" in central_asia["text"]
    assert message["To"] == "vantage-keepers@example.org" and "MsgreachVantageOffline" in message["Subject"]
    bodies = [part.get_content() for part in message.walk() if part.get_content_type() in ("text/plain", "text/html")]
    assert len(bodies) == 2 and all(f"{EXTERNAL}/docs/operators.md#msgreachvantageoffline" in body for body in bodies), bodies
    assert operators["alerts"][0]["annotations"]["runbook_url"] == f"{EXTERNAL}/docs/operators.md#msgreachtechniquechange"
    assert digest["alerts"][0]["labels"]["alertname"] == "MsgreachServiceFailingAtControl"
