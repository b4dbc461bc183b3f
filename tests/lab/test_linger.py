"""Blocks that linger (issue 20, item 3) against the lab's censor: `vpn-linger` drops an address
whole for a while after a WireGuard or OpenVPN signature to it. The helper abroad gets the
circumvention signatures, and the call stream, the control views and the signatures' own
reports go to the same address: the round measures everything else first, and what fails right
after a signature is measured again once the cooldown is over (or, when the round's deadline
comes first, is the monitor's `error`), so the lingering block changes no other verdict."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import field2026_scenarios  # noqa: F401 - registers the scenarios
from .abroad import Abroad
from .harness import Report, once
from .lab import Lab

SECONDS = 30  # the censor's lingering block (the scenario's option): longer than a helper exchange's timeout
HELPER = "helper abroad"
# Signatures the scenario keys on; the others (TCP shadowsocks, the TLS-shaped ones) pass it.
VPN = {"wireguard", "openvpn"}
OTHERS = {"shadowsocks", "vless-reality", "mtproxy-faketls"}


@pytest.fixture(scope="module")
def abroad(lab: Lab) -> Iterator[Abroad]:
    lab.clear_scenarios()
    helper = Abroad(lab).up()
    yield helper
    helper.down()


@contextmanager
def lingering(lab: Lab) -> Iterator[None]:
    lab.scenario("vpn-linger", True, options={"seconds": str(SECONDS)})
    try:
        yield
    finally:
        lab.scenario("vpn-linger", False)


def _config(abroad: Abroad, path: Path, cooldown: float) -> Path:
    calls = {"name": "calls", "targets": [{"name": "call", "host": "helper", "checks": ["udp_stream"],
                                           "params": {"udp_stream": {"duration_seconds": 2, "grace_seconds": 0.5}}}]}
    abroad.monitor_config(path, services=["whatsapp"], extra=[calls, {"catalog": "circumvention"}], retries=0, deadline=170, interval=180)
    data = yaml.safe_load(path.read_text())
    data["schedule"]["trigger_cooldown_seconds"] = cooldown
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _to_helper(report: Report) -> list[dict[str, Any]]:
    return [p for p in report.vantage.get("probes", []) if p["destination"] == HELPER]


def _log(report: Report) -> list[tuple[Any, ...]]:
    return [(p["target"], p["kind"], p["attempt"], p["start"], p["end"], p["failure"]) for p in _to_helper(report)]


def _not_triggers_ok(report: Report) -> None:
    """Every verdict but the circumvention targets' is what a clean line gives: ok."""
    others = {f"{s}/{t['target']}": t["verdict"] for s, t in report.all_targets() if s != "circumvention"}
    assert report.vantage["verdict"] == "ok" and set(others.values()) == {"ok"}, report.summary()
    assert "calls/call" in others and any(name.startswith("whatsapp/") for name in others), others


def _triggers_last(report: Report) -> None:
    """Every measurement to the helper ended before the first signature was sent to it."""
    log = _to_helper(report)
    triggers = [p for p in log if p["kind"] == "trigger"]
    measurements = [p for p in log if p["kind"] == "measurement"]
    assert triggers and measurements, log
    first = min(p["start"] for p in triggers)
    assert max(p["end"] for p in measurements) <= first, _log(report)
    starts = sorted((p["start"], p["end"]) for p in triggers)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(starts, starts[1:], strict=False)), starts  # one at a time


def test_a_lingering_block_after_a_signature_changes_no_other_verdict(abroad: Abroad, lab: Lab, tmp_path: Path) -> None:
    config = _config(abroad, tmp_path / "c.yaml", cooldown=SECONDS + 3)
    with lingering(lab):
        report = once(lab, config=config, timeout=240)
    _not_triggers_ok(report)
    _triggers_last(report)
    circumvention = {t["target"]: t for t in report.service("circumvention")["targets"]}
    # The signatures the censor does not key on pass: the ones measured right after a VPN
    # signature failed, were measured again after the cooldown, and passed.
    assert {name: circumvention[name]["verdict"] for name in OTHERS} == dict.fromkeys(OTHERS, "ok"), report.summary()
    waited = [t for t in circumvention.values() if any(p["target"] == t["target"] and p["attempt"] == 1 and p["failure"] for p in _to_helper(report))
              and t["verdict"] == "ok"]
    assert waited, _log(report)
    # A VPN signature's own report came back through the blocked address, or not at all: never ok,
    # never another technique than the protocol's.
    assert {circumvention[name]["verdict"] for name in VPN} <= {"protocol_blocked", "error"}, report.summary()


def test_a_cooldown_longer_than_the_round_leaves_the_monitors_error_not_a_block(abroad: Abroad, lab: Lab, tmp_path: Path) -> None:
    config = _config(abroad, tmp_path / "c.yaml", cooldown=600)
    with lingering(lab):
        report = once(lab, config=config, timeout=240)
    _not_triggers_ok(report)
    _triggers_last(report)
    circumvention = {t["target"]: t for t in report.service("circumvention")["targets"]}
    after = {name: t for name, t in circumvention.items() if "after_trigger" in t}
    assert after and set(after) <= OTHERS | VPN - {"wireguard"}, report.summary()
    for name, target in after.items():
        assert target["verdict"] == "error", (name, target["verdict"], target["reason"])
        assert target["reasons"][-1]["key"] == "after_trigger" and target["after_trigger"]["destination"] == HELPER, target
    # The probes the block lifted for before they ran, if any, are ok: the service is as its targets say.
    assert {t["verdict"] for t in circumvention.values()} <= {"ok", "error", "protocol_blocked"}, report.summary()
