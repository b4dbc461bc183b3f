#!/usr/bin/env python3
"""What issue 20's items 3, 5 and 6 cost a round, in the censorship lab (as root; bounded, stops
by itself, tears down what it built).

One `msgreach once` per run, in the lab's client namespace, with the helper abroad
(tests/lab/abroad.py): WhatsApp, a 2 s call stream to the helper and the circumvention catalog
(5 signatures to the helper). Figures: the round's `duration_seconds` and the verdicts.

1. **Clean line**: this checkout against another (`--base DIR`, a checkout of the commit before,
   run with the same interpreter): the trigger targets now run last, one at a time.
2. **`vpn-linger`** (the address blocked for `--seconds` after a WireGuard or OpenVPN signature):
   the base and this checkout's verdicts, and this checkout's round with a cooldown of
   `--seconds` + 3 (measured again after it) and of 600 s (longer than the round: `error`).
3. **Allowlist** (`allowlist` scenario, controls only): the base round against this one, which
   measures the three allowlist probes under the regime.

    python3 bench/linger_round.py --base /tmp/base --runs 3     # prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.lab.abroad import Abroad  # noqa: E402
from tests.lab.lab import NS_CLIENT, Lab  # noqa: E402


def _once(lab: Lab, config: Path, base: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    argv = [sys.executable, "-m", "probe"]
    if base is not None:
        env["PYTHONPATH"] = str(base)
    proc = subprocess.run(["ip", "netns", "exec", NS_CLIENT, *argv, "once", "--config", str(config), "--format", "json"],
                          capture_output=True, text=True, timeout=400, env=env, cwd="/tmp")
    vantage: dict[str, Any] = json.loads(proc.stdout)["vantages"][0]
    return vantage


def _verdicts(vantage: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for service in vantage["services"]:
        for target in service["targets"]:
            counts[target["verdict"]] = counts.get(target["verdict"], 0) + 1
    return counts


def _config(abroad: Abroad, path: Path, *, controls_only: bool = False, cooldown: float | None = None) -> Path:
    calls = {"name": "calls", "targets": [{"name": "call", "host": "helper", "checks": ["udp_stream"],
                                           "params": {"udp_stream": {"duration_seconds": 2, "grace_seconds": 0.5}}}]}
    abroad.monitor_config(path, services=[] if controls_only else ["whatsapp"], extra=[] if controls_only else [calls, {"catalog": "circumvention"}],
                          deadline=170, interval=180)
    data = yaml.safe_load(path.read_text())
    if cooldown is not None:
        data["schedule"]["trigger_cooldown_seconds"] = cooldown
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _row(name: str, runs: list[dict[str, Any]]) -> str:
    durations = [v["duration_seconds"] for v in runs]
    verdicts = " / ".join(", ".join(f"{k} {n}" for k, n in sorted(_verdicts(v).items())) or v["verdict"] for v in runs[:1])
    return f"| {name} | {min(durations):.1f} | {statistics.median(durations):.1f} | {max(durations):.1f} | {verdicts} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the commit to compare with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    lab = Lab(os.environ.get("MRL_LAB_DIR", "/tmp/mrl-lab")).up(wait=600)
    abroad = Abroad(lab).up()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            plain = _config(abroad, work / "plain.yaml")
            lab.clear_scenarios()
            rows.append(_row("clean line, before", [_once(lab, plain, args.base) for _ in range(args.runs)]))
            rows.append(_row("clean line, after", [_once(lab, plain, None) for _ in range(args.runs)]))
            lingering = {"seconds": str(args.seconds)}
            for name, config, base in (
                ("vpn-linger, before", plain, args.base),
                (f"vpn-linger, after (cooldown {args.seconds + 3} s)", _config(abroad, work / "short.yaml", cooldown=args.seconds + 3), None),
                ("vpn-linger, after (cooldown 600 s)", _config(abroad, work / "long.yaml", cooldown=600), None),
            ):
                runs = []
                for _ in range(args.runs):
                    lab.scenario("vpn-linger", True, options=lingering)
                    try:
                        runs.append(_once(lab, config, base))
                    finally:
                        lab.scenario("vpn-linger", False)
                rows.append(_row(name, runs))
            controls = _config(abroad, work / "controls.yaml", controls_only=True)
            for name, base in (("allowlist, controls only, before", args.base), ("allowlist, controls only, after (3 probes)", None)):
                runs = []
                for _ in range(args.runs):
                    lab.scenario("allowlist", True)
                    try:
                        runs.append(_once(lab, controls, base))
                    finally:
                        lab.scenario("allowlist", False)
                rows.append(_row(name, runs))
    finally:
        abroad.down()
        lab.down()
    print("| round | min s | median s | max s | target verdicts (first run) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
