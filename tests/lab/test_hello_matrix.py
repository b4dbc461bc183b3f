"""The tls check's ClientHello matrix under the 2026 field's censors (issue 20, item 1 and item 4
for TLS): msgreach's own verdicts, with each censor's rules in the namespace lab
(tests/lab/field2026_scenarios.py). Target: whatsapp/media (mmg.whatsapp.net, `client:
android_app`, checks dns, tcp, tls: its verdict is the tls check's).

- `fingerprint-openssl`: a hello the app does not send is cut -> `ok`, with openssl in
  `filtered_fingerprints`;
- `fingerprint-chrome`: the app's own hello (Chrome/Android, the chrome family) is cut ->
  `tls_blocked` keyed on the fingerprint, agreed over the repeats; the hello split before its
  cipher list is not read by this first-segment DPI, and the evidence says splitting evades;
- `fingerprint-mlkem` on whatsapp/web (`client: browser`, Chrome with X25519MLKEM768): the
  browser's hello is cut for its key share -> `tls_blocked` keyed on the fingerprint, the same
  hello without the key share (`chrome-pq`) among those that pass;
- `flow-correlation`: the chrome family with the real name is cut, and so is the decoy (its name
  does not resolve to the address) -> `tls_blocked` keyed on the fingerprint, not on the name;
- `sni-rst-reassembled`: the name is cut whatever the hello -> `sni_blocked` keyed on the name,
  the decoy with the app's hello.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from . import field2026_scenarios  # noqa: F401 - registers the scenarios
from .harness import Report, once
from .lab import Lab

pytestmark = pytest.mark.lab

TARGET = "whatsapp/media"


@contextlib.contextmanager
def scenario(lab: Lab, name: str, target: str = TARGET) -> Iterator[None]:
    lab.scenario(name, True, [target])
    try:
        yield
    finally:
        lab.scenario(name, False)


def _tls(report: Report) -> tuple[dict[str, Any], dict[str, Any]]:
    target = report.target("whatsapp", "media")
    return target, Report.check(target, "tls")


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1)[:4000]


def test_a_hello_the_app_does_not_send_cut_is_ok_with_a_note(clean_lab: Lab) -> None:
    with scenario(clean_lab, "fingerprint-openssl"):
        report = once(clean_lab, services=["whatsapp"])
    target, tls = _tls(report)
    assert target["verdict"] == "ok", _dump(target)
    assert tls["filtered_fingerprints"] == ["openssl"], _dump(tls)
    assert tls["browser"]["handshake"]["hello"] == "chrome_android"


def test_the_apps_hello_cut_is_keyed_on_the_fingerprint_and_splitting_evades(clean_lab: Lab) -> None:
    with scenario(clean_lab, "fingerprint-chrome"):
        report = once(clean_lab, services=["whatsapp"])
    target, tls = _tls(report)
    assert target["verdict"] == "tls_blocked", _dump(target)
    assert tls["keyed_on"] == "fingerprint", _dump(tls)
    assert tls["finding"]["reason_key"] == "keyed_on_fingerprint", _dump(tls)
    assert tls["split_evades"] is True, _dump(tls)
    passing = {a["hello"] for a in tls["matrix"] if a["failure"] is None and not a["split"]}
    assert {"safari_ios", "firefox"} <= passing and "chrome" not in passing, _dump(tls)
    assert [r["hello"] for r in tls["repeats"]] == ["chrome_android", "openssl"], _dump(tls)
    assert report.target("whatsapp", "static")["verdict"] == "ok"  # untouched targets stay ok


def test_a_key_share_cut_is_keyed_on_the_fingerprint_with_the_hello_without_it_passing(clean_lab: Lab) -> None:
    with scenario(clean_lab, "fingerprint-mlkem", "whatsapp/web"):
        report = once(clean_lab, services=["whatsapp"])
    target = report.target("whatsapp", "web")
    tls = Report.check(target, "tls")
    assert target["verdict"] == "tls_blocked", _dump(target)
    assert tls["keyed_on"] == "fingerprint" and tls["browser"]["handshake"]["pq"] is True, _dump(tls)
    toggled = [a for a in tls["matrix"] if a["hello"] == "chrome" and not a["split"]]
    assert toggled and toggled[0]["pq"] is False and toggled[0]["failure"] is None, _dump(tls)
    assert "chrome-pq" in tls["finding"]["reason_params"]["passing"], _dump(tls)
    firefox = [a for a in tls["matrix"] if a["hello"] == "firefox"]
    assert firefox[0]["pq"] is True and firefox[0]["failure"] is not None, _dump(tls)  # Firefox's key share is cut too


def test_flow_correlation_flags_the_decoy_and_the_claim_is_the_fingerprint(clean_lab: Lab) -> None:
    with scenario(clean_lab, "flow-correlation"):
        report = once(clean_lab, services=["whatsapp"])
    target, tls = _tls(report)
    assert target["verdict"] == "tls_blocked", _dump(target)
    assert tls["keyed_on"] == "fingerprint", _dump(tls)
    assert tls["decoy"]["failure"] is not None, _dump(tls)  # its name does not resolve there: flagged


def test_the_name_cut_whatever_the_hello_is_keyed_on_the_name(clean_lab: Lab) -> None:
    with scenario(clean_lab, "sni-rst-reassembled"):
        report = once(clean_lab, services=["whatsapp"])
    target, tls = _tls(report)
    assert target["verdict"] == "sni_blocked", _dump(target)
    assert tls["keyed_on"] == "name" and tls["decoy"]["hello"] == "chrome_android", _dump(tls)
    assert tls.get("split_evades") is None, _dump(tls)
