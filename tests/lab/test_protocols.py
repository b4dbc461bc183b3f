"""The protocol checks in the lab: each new verdict produced by a censor rule acting on the
protocol (MTProto's first bytes, TSPU's QUIC rule, STUN by port and by content, policing by
address or by SNI, the 16 KB stall), `ok` for what the rule does not touch, and a bad line with
no censorship still `ok` everywhere with every new check on.

The lab's stand-ins answer every protocol (tests/lab/standins.py, coturn). Configs here are
the lab config plus what only a test needs: the lab's 1 MiB `/large` as the download object, and
a Telegram STUN relay (coturn on an address of its own, started here: no catalog pins a relay
address, since no service publishes one).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import protocol_scenarios  # noqa: F401 - registers the scenarios
from .harness import Report, once, record
from .lab import Lab, _kill, in_ns
from .plan import CATALOGS, NS_CLIENT, NS_SERVERS, REPO, LabTarget
from .scenarios import SCENARIOS

pytestmark = pytest.mark.lab

SERVICES = ("whatsapp", "telegram", "signal")
FLOOR = 40_000  # the check's default floor, bytes/s
RELAY = "198.19.250.2"  # the Telegram relay stand-in (servers namespace)
RELAY_PORTS = (3478, 596, 597)


def _dump(target: dict) -> str:
    return json.dumps(target, indent=1, ensure_ascii=False)[:4000]


def _raw_targets(catalog: str) -> list[dict[str, Any]]:
    return (yaml.safe_load((CATALOGS / f"{catalog}.yaml").read_text(encoding="utf-8")) or {}).get("targets", [])


def _large(target: dict[str, Any]) -> dict[str, Any]:
    if "throughput" in target.get("checks", []):
        target = {**target, "params": {**target.get("params", {}), "throughput": {"path": "/large"}}}
    return target


def protocol_config(lab: Lab, name: str = "protocols.yaml", **kwargs: Any) -> Path:
    """The lab config, downloads from /large, a Telegram `calls` target on the STUN stand-in."""
    data = lab.config_data(retries=0, **kwargs)
    for entry in data["services"]:
        targets = [_large(t) for t in _raw_targets(entry["catalog"])]
        for target in targets:  # the lab's pins, as config_data patches them
            target.update(entry.get("patch", {}).get(target["name"], {}))
        if entry["catalog"] == "telegram":
            targets.append({"name": "calls", "host": "91.108.56.100", "addresses": [RELAY], "ports": list(RELAY_PORTS), "checks": ["stun"]})
        entry.pop("patch", None)
        entry["targets"] = targets
    data["controls"] = [_large(t) for t in _raw_targets("controls")]
    path = lab.dir / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def stun_answers(address: str, port: int) -> bool:
    """From the client namespace: does address:port answer a Binding Request?"""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from servers.stun import answers; "
        f"sys.exit(0 if answers({address!r}, {port:d}, 0.5) else 1)"
    )
    return subprocess.run(["ip", "netns", "exec", NS_CLIENT, sys.executable, "-c", code], timeout=10).returncode == 0


@pytest.fixture(scope="module")
def relay(lab: Lab):
    """coturn (STUN only) on RELAY, one instance per port, recorded like the lab's daemons."""
    in_ns(NS_SERVERS, ["ip", "addr", "replace", f"{RELAY}/32", "dev", "lo"])
    keys = []
    for port in RELAY_PORTS:
        d = lab.dir / f"relay-{port}"
        d.mkdir(exist_ok=True)
        key = f"relay-stun-{port}"
        lab.spawn(key, NS_SERVERS, [
            "turnserver", "-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--no-rfc5780",
            "--simple-log", "--log-file", "stdout", "--pidfile", str(d / "turnserver.pid"), "--userdb", str(d / "turndb"),
            "-L", RELAY, "-p", str(port),
        ])  # fmt: skip
        keys.append(key)
    deadline = time.monotonic() + 15
    while not all(stun_answers(RELAY, p) for p in RELAY_PORTS):
        assert time.monotonic() < deadline, "the relay stand-in does not answer STUN"
        time.sleep(0.2)
    yield RELAY
    _kill([lab.state["pids"].pop(k) for k in keys if k in lab.state["pids"]])
    lab._save()


@pytest.fixture(scope="module")
def config(lab: Lab, relay: str) -> Path:
    return protocol_config(lab)


@contextlib.contextmanager
def rule(lab: Lab, scenario: str, selectors: list[str] | None = None, addresses: list[str] = ()):
    """A scenario on for catalog targets (selectors) or for bare lab addresses."""
    spec = SCENARIOS[scenario]
    if selectors is not None:
        lab.scenario(scenario, True, selectors)
        try:
            yield
        finally:
            lab.scenario(scenario, False)
        return
    targets = [LabTarget("lab", f"address-{a}", a, [], [a]) for a in addresses]
    entry: dict[str, Any] = {"targets": [], "pids": []}
    spec.apply(lab, targets, entry)
    try:
        yield
    finally:
        spec.lift(lab, targets, entry)


def others_ok(report: Report, service: str, hit: set[str]) -> list[str]:
    return [f"{t['target']}: {t['verdict']} ({t.get('reason')})" for t in report.service(service)["targets"] if t["target"] not in hit and t["verdict"] != "ok"]


# --- no censorship ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proto_baseline(lab: Lab, config: Path) -> Report:
    lab.clear_scenarios()
    return once(lab, config=config)


def test_baseline_every_protocol_answers(proto_baseline: Report) -> None:
    baseline = proto_baseline
    assert baseline.vantage["verdict"] == "ok", baseline.summary()
    for control in baseline.controls():
        assert control["verdict"] == "ok", _dump(control)
    for service, target in baseline.all_targets():
        assert target["verdict"] == "ok", f"{service}: {_dump(target)}"
    for dc in ("dc1", "dc2", "dc3", "dc4", "dc5"):
        check = Report.check(baseline.target("telegram", dc), "mtproto")
        assert check["works"] == {"abridged": True, "intermediate": True, "obfuscated2": True, "http": True}, _dump(check)
    quic = Report.check(baseline.target("whatsapp", "web"), "quic")
    assert quic["status_code"] == 200 and quic["tls_ok"] is True, _dump(quic)
    chat = Report.check(baseline.target("whatsapp", "chat"), "whatsapp_chat")
    assert chat["working_hosts"] >= 1 and chat["blocked_hosts"] == [], _dump(chat)
    for service in SERVICES:
        download = Report.check(baseline.target(service, "download"), "throughput")
        assert download["measured"] and download["complete"] and download["bytes_per_second"] >= FLOOR, _dump(download)
    calls = Report.check(baseline.target("telegram", "calls"), "stun")
    assert {b["failure"] for b in calls["bindings"]} == {None}, _dump(calls)
    record("(none)", "protocol checks", "ok", baseline, baseline.service("telegram")["verdict"])


def test_shipped_catalogs_are_ok_in_the_lab_too(clean_lab: Lab) -> None:
    """The unpatched lab config (the catalogs' own download paths, which the lab serves)."""
    report = once(clean_lab)
    bad = [f"{s}/{t['target']}: {t['verdict']}" for s, t in report.all_targets() if t["verdict"] != "ok"]
    bad += [f"controls/{c['target']}: {c['verdict']}" for c in report.controls() if c["verdict"] != "ok"]
    assert not bad, bad


# --- protocol_blocked: MTProto's first bytes -----------------------------------------------------------


def test_mtproto_first_bytes_rule_is_protocol_blocked(clean_lab: Lab, config: Path) -> None:
    with rule(clean_lab, "mtproto-first-bytes", ["telegram"]):
        report = once(clean_lab, config=config, services=["telegram"])
    dcs = {"dc1", "dc2", "dc3", "dc4", "dc5"}
    for dc in sorted(dcs):
        target = report.target("telegram", dc)
        assert target["verdict"] == "protocol_blocked", _dump(target)
        check = Report.failed_check(target)
        assert (check["check"], check["failure"]) == ("mtproto", "connection_reset"), _dump(target)
        # TCP connected, OONI's plain-HTTP POST and obfuscated2 got their answers: plain MTProto is
        # what is blocked.
        assert check["works"] == {"abridged": False, "intermediate": False, "obfuscated2": True, "http": True}, _dump(target)
        assert Report.check(target, "tcp")["ok"], _dump(target)
    assert not others_ok(report, "telegram", dcs)
    assert report.service("telegram")["verdict"] == "partial", report.summary()
    record("mtproto-first-bytes", "telegram", "protocol_blocked", report, "protocol_blocked", "dc1-dc5")


# --- quic_blocked: TSPU's QUIC rule ---------------------------------------------------------------------


def test_tspu_quic_rule_is_quic_blocked(clean_lab: Lab, config: Path) -> None:
    with rule(clean_lab, "quic-tspu", ["whatsapp/web"]):
        report = once(clean_lab, config=config, services=["whatsapp"])
    web = report.target("whatsapp", "web")
    assert web["verdict"] == "quic_blocked", _dump(web)
    quic = Report.failed_check(web)
    assert (quic["check"], quic["failure"], quic["tls_ok"]) == ("quic", "generic_timeout_error", True), _dump(web)
    assert all(Report.check(web, c)["ok"] for c in ("dns", "tcp", "tls", "http")), _dump(web)
    assert not others_ok(report, "whatsapp", {"web"})
    record("quic-tspu", "whatsapp/web", "quic_blocked", report, web["verdict"])


# --- udp_blocked: STUN by port, by content ----------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["stun-port-drop", "stun-content-drop"])
def test_stun_drops_are_udp_blocked_while_the_control_answers(clean_lab: Lab, config: Path, scenario: str) -> None:
    with rule(clean_lab, scenario, addresses=[RELAY]):
        report = once(clean_lab, config=config, services=["telegram"])
    calls = report.target("telegram", "calls")
    assert calls["verdict"] == "udp_blocked", _dump(calls)
    check = Report.failed_check(calls)
    assert check["failure"] == "generic_timeout_error" and all(b["requests"] == 3 for b in check["bindings"]), _dump(calls)
    assert check["controls"] == {"stun": True, "stun-2": True}, _dump(calls)
    assert not others_ok(report, "telegram", {"calls"})
    record(scenario, "telegram/calls", "udp_blocked", report, calls["verdict"])


def test_stun_dropped_everywhere_is_not_a_block_of_the_service(clean_lab: Lab, config: Path, lab: Lab) -> None:
    controls = [t for t in lab.plan.targets if t.catalog == "controls" and "stun" in t.checks]
    addresses = [RELAY, *(a for t in controls for a in t.lab_addresses)]
    with rule(clean_lab, "stun-content-drop", addresses=addresses):
        report = once(clean_lab, config=config, services=["telegram"])
    assert report.target("telegram", "calls")["verdict"] == "down", report.summary()
    assert report.vantage["verdict"] == "ok"  # the STUN controls failing do not take the vantage offline


# --- throttled: policing by address and by SNI, the 16 KB stall ---------------------------------------------


def test_policing_is_throttled(clean_lab: Lab, config: Path) -> None:
    with rule(clean_lab, "police-150k", ["telegram/download"]):
        report = once(clean_lab, config=config, services=["telegram"])
    target = report.target("telegram", "download")
    assert target["verdict"] == "throttled", _dump(target)
    check = Report.failed_check(target)
    assert check["failure"] == "throttled" and check["bytes_per_second"] < FLOOR and check["time_capped"], _dump(target)
    assert max(check["controls"].values()) >= FLOOR and check["control_fast"], _dump(target)
    assert check["sni_keyed"] is False, _dump(target)  # policed by address: the decoy is slow too
    record("police-150k", "telegram/download", "throttled", report, target["verdict"])


def test_sni_keyed_policing_is_throttled_and_proven_by_the_decoy(clean_lab: Lab, config: Path) -> None:
    with rule(clean_lab, "police-sni", ["telegram/download"]):
        report = once(clean_lab, config=config, services=["telegram"])
    target = report.target("telegram", "download")
    assert target["verdict"] == "throttled", _dump(target)
    check = Report.failed_check(target)
    assert check["sni_keyed"] is True and check["decoy"]["bytes_per_second"] >= FLOOR, _dump(target)
    record("police-sni", "telegram/download", "throttled", report, target["verdict"], "sni_keyed")


def test_stall_after_16_kb_is_throttled_with_the_byte_count(clean_lab: Lab, config: Path) -> None:
    with rule(clean_lab, "stall-16k", ["telegram/download"]):
        report = once(clean_lab, config=config, services=["telegram"])
    target = report.target("telegram", "download")
    assert target["verdict"] == "throttled", _dump(target)
    check = Report.failed_check(target)
    # At most 16 KB: the counter is the connection's (TLS handshake included), and with the
    # veth's segmentation offload the first burst may already pass it (then 0 bytes).
    assert check["failure"] == "stalled" and check["stalled_at_bytes"] <= 16384, _dump(target)
    record("stall-16k", "telegram/download", "throttled", report, target["verdict"])


# --- a bad line, no censorship ----------------------------------------------------------------------------


def test_lossy_line_is_ok_with_every_protocol_check(clean_lab: Lab, relay: str) -> None:
    """5% loss each way, 100 ms ± 50 ms per packet each way, no censorship, three rounds with the
    engine's default timeouts and one retry (what volunteers run): no protocol check fails, the
    controls' included (STUN, downloads). (The lab's own 20-round test covers the engine's other
    checks on this line: a plain-DNS query lost there still fails `dns`, which sends one datagram.)"""
    lab = clean_lab
    config = protocol_config(lab, "protocols-lossy.yaml", timeouts={"dns": 5, "tcp": 5, "tls": 8, "http": 10})
    data = yaml.safe_load(config.read_text())
    data["schedule"]["retries"] = 1
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    mine = {"mtproto", "whatsapp_chat", "quic", "stun", "throughput"}
    bad, seen = [], set()
    with rule(lab, "lossy", ["controls"]):
        for round_number in range(3):
            report = once(lab, config=config)
            assert report.vantage["verdict"] == "ok", report.summary()
            everything = [("controls", c) for c in report.controls()] + report.all_targets()
            for service, target in everything:
                for check in target["checks"]:
                    if check["check"] in mine:
                        seen.add(check["check"])
                        if not check["ok"]:
                            bad.append((round_number, f"{service}/{target['target']}", check["check"], check["failure"]))
    assert seen == mine
    assert not bad, bad
    record("lossy", "protocol checks", "ok", report, "ok")
