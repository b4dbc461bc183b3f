"""`msgreach evidence --format ooni` on real measurements: the shipped catalogs measured in the lab
(`msgreach once` in the client namespace, the archive on), one round clean and one round with
Telegram IP-blocked by RST, WhatsApp's names reset by SNI and its chat opening reset, and
Signal's names gone everywhere (an outage, `down`). Every measured target of both rounds,
controls included, is exported, loaded with OONI's own parser (oonidata) and its nettest's
flags compared with the verdicts the archive recorded (tests/ooni_agreement.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ooni_agreement import disagreements, load_measurement

from probe.evidence import read

from .harness import once
from .lab import Lab

pytestmark = pytest.mark.lab

CENSOR = {"syn-rst": ["telegram"], "sni-rst": ["whatsapp"], "chat-rst": ["whatsapp"], "global-outage": ["signal"]}


def test_the_ooni_export_of_a_lab_run_loads_with_oonidata_and_agrees(clean_lab: Lab, tmp_path: Path) -> None:
    load_measurement()  # skip early (not under CI) when OONI's parser is not installed
    archive = tmp_path / "evidence.jsonl"
    data = clean_lab.config_data(retries=0)
    data["evidence"] = {"path": str(archive)}
    config = tmp_path / "msgreach-ooni.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    clean = once(clean_lab, config=config)
    for scenario, targets in CENSOR.items():
        clean_lab.scenario(scenario, True, targets)
    censored = once(clean_lab, config=config)

    records = read(archive).records
    verdicts = {(r["service"], r["verdict"]) for r in records}
    assert {("telegram", "ip_blocked"), ("whatsapp", "sni_blocked"), ("whatsapp", "protocol_blocked"), ("signal", "down"), ("signal", "ok")} <= verdicts, (clean.summary(), censored.summary())
    export = subprocess.run([*clean_lab.msgreach_argv(), "evidence", "--path", str(archive), "--format", "ooni"], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0 and export.stderr == "", export.stderr
    lines = export.stdout.splitlines()
    measured = [r for r in records if r["test_keys"]["checks"] and r["verdict"] != "vantage_offline"]
    assert len(lines) == len(measured) > 0
    problems, seen = disagreements(lines, records)
    assert problems == [], "\n".join(problems)
    names = {name for name, _ in seen}
    assert {"telegram", "whatsapp", "signal", "web_connectivity", "stunreachability", "urlgetter"} <= names, names
    exported = [json.loads(line) for line in lines]
    flags = {key for item in exported for key in item["test_keys"] if key.endswith(("_status", "_blocking"))}
    assert {"telegram_tcp_blocking", "telegram_web_status", "whatsapp_endpoints_status", "registration_server_status", "whatsapp_web_status", "signal_backend_status"} <= flags
    inputs: dict[tuple[str, str], set[str]] = {}
    for item in exported:  # a target's input is the same in a clean and a blocked round
        inputs.setdefault((item["annotations"]["msgreach_service"], item["annotations"]["msgreach_target"]), set()).add(item["input"])
    assert {key: found for key, found in inputs.items() if len(found) != 1} == {}
