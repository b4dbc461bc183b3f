"""Quirky servers in the lab: one rule, whichever check meets them.

- A TLS server that begins its answer (200 bytes of its handshake) and then resets or drips,
  for any name: `down` (the README's `down` row: a server that drips or closes after its answer
  began), not `tls_blocked`; a censor cuts before any answer.
- A server that takes our first bytes (its kernel acknowledges them) and never answers: `down`
  for MTProto and for the WhatsApp chat alike. A censor dropping our bytes after the handshake
  leaves them unacknowledged: `protocol_blocked` for both, on the catalogs' own stand-ins.

The quirky servers are tests/lab/standins.py roles, started here on addresses of their own in
the servers namespace (as test_protocols.py starts its STUN relay).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .harness import Report, once, record
from .lab import Lab, _kill, in_ns
from .plan import NS_SERVERS, LabTarget
from .scenarios import NftScenario, _filter

pytestmark = pytest.mark.lab

SILENT, RESET, DRIP = "198.19.251.2", "198.19.251.3", "198.19.251.4"


def _dump(target: dict[str, Any]) -> str:
    return json.dumps(target, indent=1, ensure_ascii=False)[:4000]


@pytest.fixture(scope="module")
def quirks(lab: Lab) -> None:
    spec = [{"role": "silent", "address": SILENT, "port": 443}, {"role": "answer_then_reset", "address": RESET, "port": 443}, {"role": "answer_then_drip", "address": DRIP, "port": 443}]
    for address in (SILENT, RESET, DRIP):
        in_ns(NS_SERVERS, ["ip", "addr", "replace", f"{address}/32", "dev", "lo"])
    path = lab.dir / "quirks.json"
    path.write_text(json.dumps(spec))
    lab.spawn("quirks", NS_SERVERS, [sys.executable, str(Path(__file__).with_name("standins.py")), str(path)])
    yield
    _kill([lab.state["pids"].pop("quirks")] if "quirks" in lab.state["pids"] else [])
    lab._save()


@pytest.fixture(scope="module")
def config(lab: Lab, quirks: None) -> Path:
    """The lab config (no retries) and a service of quirky servers."""
    data = lab.config_data(retries=0)
    chat = {"hold_seconds": 1.0, "reply_timeout": 3.0}
    data["services"].append({
        "name": "quirks",
        "targets": [
            {"name": "tls-answer-reset", "host": "reset.quirks.lab.test", "addresses": [RESET], "ports": [443], "checks": ["tcp", "tls"]},
            {"name": "tls-answer-drip", "host": "drip.quirks.lab.test", "addresses": [DRIP], "ports": [443], "checks": ["tcp", "tls"]},
            {"name": "mtproto-silent", "host": SILENT, "ports": [443], "checks": ["tcp", "mtproto"], "params": {"mtproto": {"http_post": False}}},
            {"name": "chat-silent", "host": "silent.quirks.lab.test", "addresses": [SILENT], "ports": [443], "checks": ["tcp", "whatsapp_chat"], "params": {"whatsapp_chat": chat}},
        ],
    })  # fmt: skip
    path = lab.dir / "quirks.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def test_quirky_servers_are_down_whatever_checks_meet_them(clean_lab: Lab, config: Path) -> None:
    report = once(clean_lab, config=config, services=["quirks"])
    assert report.vantage["verdict"] == "ok", report.summary()
    for name, failure in (("tls-answer-reset", "connection_reset"), ("tls-answer-drip", "generic_timeout_error")):
        target = report.target("quirks", name)
        assert target["verdict"] == "down", _dump(target)
        check = Report.failed_check(target)
        assert (check["check"], check["failure"]) == ("tls", failure), _dump(target)
        assert check["handshakes"][0]["received_bytes"] >= 200 and check["finding"]["reason_key"] == "server_answer_began", _dump(target)
    for name, check_name in (("mtproto-silent", "mtproto"), ("chat-silent", "whatsapp_chat")):
        target = report.target("quirks", name)
        assert target["verdict"] == "down", _dump(target)
        check = Report.failed_check(target)
        assert (check["check"], check["failure"], check["finding"]["reason_key"]) == (check_name, "generic_timeout_error", "server_silent"), _dump(target)
    record("(quirky servers)", "quirks", "down", report, report.service("quirks")["verdict"])


@contextlib.contextmanager
def _payload_dropped(lab: Lab, selectors: list[str]):
    """The censor lets TCP's handshake through and drops every TCP packet that carries a payload
    to the targets (no ACK for our bytes ever comes back: they stay unacknowledged)."""
    spec = NftScenario(
        "payload-drop", "TCP payload to the addresses dropped after the handshake", "TSPU (IMC 2022): drop after the handshake",
        "protocol_blocked", "generic_timeout_error", template=_filter("ip daddr {addrs} meta l4proto tcp ip length > 64 drop"),
    )  # fmt: skip
    targets: list[LabTarget] = lab.plan.select(selectors)
    spec.apply(lab, targets, {})
    try:
        yield
    finally:
        spec.lift(lab, targets, {})


def test_a_censor_dropping_after_the_handshake_is_a_block_for_both(clean_lab: Lab) -> None:
    """The other side of the rule: the same silence, made by a censor (our bytes never
    acknowledged), is `protocol_blocked` for MTProto and for the WhatsApp chat alike."""
    with _payload_dropped(clean_lab, ["telegram/dc2", "whatsapp/chat"]):
        report = once(clean_lab, services=["telegram", "whatsapp"])
    for service, name, check_name in (("telegram", "dc2", "mtproto"), ("whatsapp", "chat", "whatsapp_chat")):
        target = report.target(service, name)
        assert target["verdict"] == "protocol_blocked", _dump(target)
        check = Report.failed_check(target)
        assert check["check"] == check_name and check["finding"]["fault"] == "path", _dump(target)
    record("payload-drop", "telegram/dc2, whatsapp/chat", "protocol_blocked", report, "protocol_blocked")
