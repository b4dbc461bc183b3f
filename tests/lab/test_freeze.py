"""Issue 20, freezes in packets and both directions, named by msgreach itself (tests/lab/field2026_scenarios.py).

Each test runs `msgreach once` in the client namespace on a config of the throughput targets
only (WhatsApp's download, and the controls with their download yardsticks), each also
uploading 64 KB to the lab's `/upload` (every lab web host takes the body), with the censor's
own nftables rules on:

- `freeze-upload` (the client's own bytes counted: uploads trip it, a download's ACKs do not):
  `throttled`, keyed on the direction, `direction: upload`;
- `freeze-packets` (25 packets both ways, the hosting prefix): `throttled`, both directions, and
  not keyed on the name (the decoy to the same address freezes too, twice);
- `freeze-packets-sni` (the name, at any address): `throttled`, keyed on the name (both decoys fast);
- `freeze-packets-domestic` (the domestic yardstick freezes the same way): `ok`, the line's freeze;
- ten short rounds on a line losing 10 % of packets each way: no block claimed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import field2026_scenarios  # noqa: F401 - registers the scenarios
from .harness import Report, once
from .lab import UPLOAD_PATH, Lab
from .plan import REPO

pytestmark = pytest.mark.lab

SERVICE, TARGET = "whatsapp", "download"


@contextlib.contextmanager
def scenario(lab: Lab, name: str, selectors: list[str] | None = None, **options: str) -> Iterator[None]:
    lab.scenario(name, True, selectors, options=options or None)
    try:
        yield
    finally:
        lab.scenario(name, False)


def _with_upload(target: dict[str, Any]) -> dict[str, Any]:
    params = dict(target.get("params") or {})
    params["throughput"] = {**params.get("throughput", {}), "upload_path": UPLOAD_PATH}
    return {**target, "params": params}


def freeze_config(lab: Lab) -> Path:
    """The lab's config with WhatsApp's download target only and the controls (their download
    yardsticks uploading too); the schedule's default timeout as shipped (15 s: the repeats fit
    in a check's bound of three times it), no round deadline to cut the repeats short."""
    data = lab.config_data(timeouts={"dns": 3, "tcp": 3, "tls": 4, "http": 5, "default": 15}, deadline=None, interval=300)
    catalog = yaml.safe_load((REPO / "configs" / "services" / f"{SERVICE}.yaml").read_text())
    (target,) = [t for t in catalog["targets"] if t["name"] == TARGET]
    data["services"] = [{"name": SERVICE, "targets": [_with_upload(target)]}]
    controls = yaml.safe_load((REPO / "configs" / "services" / "controls.yaml").read_text())["targets"]
    data["controls"] = [_with_upload(t) if "throughput" in t.get("checks", ()) else t for t in controls]
    path = lab.dir / "freeze-config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def config(lab: Lab) -> Path:
    return freeze_config(lab)


def throughput_of(report: Report) -> tuple[dict[str, Any], dict[str, Any]]:
    target = report.target(SERVICE, TARGET)
    return target, Report.check(target, "throughput")


def _dump(target: dict[str, Any]) -> str:
    return json.dumps(target, indent=1, ensure_ascii=False)[:6000]


def test_an_upload_triggered_freeze_is_named_with_its_direction(clean_lab: Lab, config: Path) -> None:
    with scenario(clean_lab, "freeze-upload", [f"{SERVICE}/{TARGET}"]):
        report = once(clean_lab, config=config, timeout=240)
    target, check = throughput_of(report)
    assert target["verdict"] == "throttled", _dump(target)
    assert (check["keyed_on"], check["direction"]) == ("direction", "upload"), _dump(check)
    assert check["complete"] and check["upload"]["failure"] == "stalled" and check["upload_again"]["failure"] == "stalled"
    # Packets counted both ways where the upload froze, and the download carried more.
    frozen = check["upload_again"]["packets"]
    assert frozen["segs_out"] > 0 and check["packets"]["segs_in"] + check["packets"]["segs_out"] > frozen["segs_in"] + frozen["segs_out"]
    assert "keyed on the direction" in target["reason"], target["reason"]


def test_a_freeze_on_the_address_is_not_called_the_name(clean_lab: Lab, config: Path) -> None:
    with scenario(clean_lab, "freeze-packets", [f"{SERVICE}/{TARGET}"]):
        report = once(clean_lab, config=config, timeout=240)
    target, check = throughput_of(report)
    assert target["verdict"] == "throttled", _dump(target)
    assert check["direction"] == "both" and check.get("keyed_on") is None, _dump(check)
    assert check["decoy"]["failure"] == "stalled"
    assert check["decoy_again"]["failure"] == "stalled" and check["again"]["failure"] == "stalled"
    assert "not keyed on the name" in target["reason"] and "packets both ways" in target["reason"], target["reason"]


def test_a_freeze_on_the_name_is_keyed_on_the_name(clean_lab: Lab, config: Path) -> None:
    with scenario(clean_lab, "freeze-packets-sni", [f"{SERVICE}/{TARGET}"]):
        report = once(clean_lab, config=config, timeout=240)
    target, check = throughput_of(report)
    assert target["verdict"] == "throttled", _dump(target)
    assert check["keyed_on"] == "name" and check["direction"] == "both", _dump(check)
    assert check["decoy"]["complete"] and check["decoy_again"]["complete"]


def test_a_freeze_the_domestic_yardstick_shares_is_the_lines(clean_lab: Lab, config: Path) -> None:
    with scenario(clean_lab, "freeze-packets-domestic", [f"{SERVICE}/{TARGET}"]):
        report = once(clean_lab, config=config, timeout=240)
    target, check = throughput_of(report)
    assert target["verdict"] == "ok", _dump(target)
    assert check["control_freezes"].get("download-domestic") == "both", _dump(check)
    # The line's freeze is said (when the service's transfer got as far as being compared).
    assert check.get("line_freeze") == ["download-domestic"] or check.get("control_fast") is False, _dump(check)


def test_ten_rounds_on_a_lossy_line_claim_no_block(clean_lab: Lab, config: Path) -> None:
    """10 % loss each way (and the lossy scenario's delay): no round reads a block, keyed or not."""
    verdicts = []
    with scenario(clean_lab, "lossy", ["controls"], loss="10"):
        for _ in range(10):
            report = once(clean_lab, config=config, timeout=240)
            target, check = throughput_of(report)
            verdicts.append((target["verdict"], check.get("keyed_on"), check.get("transfer_failure")))
    assert all(verdict in ("ok", "down") and keyed is None for verdict, keyed, _ in verdicts), verdicts
