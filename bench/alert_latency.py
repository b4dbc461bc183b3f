#!/usr/bin/env python3
"""Detection latency of msgreach's alerting, block onset -> verdict on /metrics -> alert firing
in Prometheus -> webhook delivery by Alertmanager, with the default and the fast profile.

    sudo python3 bench/alert_latency.py [--profile fast|default ...] [--block-only]   # from the repository root

Runs the operators' end-to-end flow of tests/alerting_flow.py in the censorship lab (tests/lab;
built here and torn down afterwards): msgreach run, Debian's prometheus with the profile's rules,
prometheus-alertmanager with the shipped routes (the fast profile also shortens its timers to
1 s), a webhook receiver; `syn-rst` on Telegram on and off, then `uplink-cut`. Writes
bench/out/alert-latency-<profile>.json and prints a Markdown table. The default profile takes
about 20 minutes (it waits for real 60 s rounds, a 3 min `for:`, Alertmanager's 5 min group_interval
and 7 minutes of watching after the uplink cut); `--block-only` about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from alerting_flow import PROFILES, Flow  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.teardown import install as install_teardown  # noqa: E402

ROWS = [
    ("block (syn-rst on Telegram) -> verdict on /metrics", "block_to_metrics"),
    ("block -> MsgreachSuddenBlock firing in Prometheus (for: 0)", "block_to_alert_active"),
    ("block -> delivered to the webhook", "block_to_webhook"),
    ("unblock -> ok on /metrics", "unblock_to_metrics"),
    ("unblock -> resolution delivered", "unblock_to_resolved_webhook"),
    ("uplink cut -> vantage offline on /metrics", "cut_to_offline_metrics"),
    ("uplink cut -> MsgreachVantageOffline pending (fires after its for:)", "cut_to_offline_alert_active"),
    ("uplink cut -> delivered to the webhook", "cut_to_offline_webhook"),
]


def run(profile: str, lab: Lab, block_only: bool = False) -> dict:
    p = PROFILES[profile]
    quiet: dict = {"fired_in_prometheus": None, "delivered": None}
    with tempfile.TemporaryDirectory(prefix=f"alert-latency-{profile}-") as tmp:
        flow = Flow(lab, Path(tmp), p)
        try:
            flow.start()
            flow.baseline()
            fired = flow.block()
            if not block_only:  # the resolution and the uplink cut take ~15 more minutes on the default profile
                flow.unblock()
                quiet = flow.cut_uplink(quiet_after=20 if profile == "fast" else 420)
        finally:
            flow.close()
            lab.clear_scenarios()
    result = asdict(flow.timings)
    result["alert_labels"] = fired["labels"]
    result["after_uplink_cut"] = quiet
    out = ROOT / "bench" / "out" / f"alert-latency-{profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES))
    parser.add_argument("--block-only", action="store_true", help="measure the block onset only (no unblock, no uplink cut)")
    args = parser.parse_args()
    profiles = args.profile or ["fast", "default"]
    lab = Lab()
    teardown = install_teardown(lab)
    results = {}
    try:
        lab.up(wait=1800)
        for profile in profiles:
            started = time.time()
            results[profile] = run(profile, lab, args.block_only)
            print(f"{profile}: done in {time.time() - started:.0f} s", file=sys.stderr)
    finally:
        teardown.run()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"\nmsgreach commit {rev}; {platform.node() and 'this machine'}: {platform.machine()}, Linux {platform.release()}\n")
    print("| step | " + " | ".join(profiles) + " |")
    print("|---|" + "---:|" * len(profiles))
    for label, key in ROWS:
        cells = [f"{results[p][key]:.1f} s" if results[p].get(key) is not None else "-" for p in profiles]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for p in profiles:
        if args.block_only:
            continue
        print(f"\n{p}: after the uplink cut, fired in Prometheus: {results[p]['after_uplink_cut']['fired_in_prometheus']}; "
              f"delivered: {results[p]['after_uplink_cut']['delivered']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
