#!/usr/bin/env python3
"""The ClientHello matrix's cost (issue 20): a round of the shipped catalogs with every target's
real client's hello failing, against the round's deadline.

Runs in the censorship lab (tests/lab, nothing leaves the machine) with the engine's default
timeouts, `retries: 1`, interval 60 s (deadline 54 s) and the embedded default config's
concurrency, as bench/protocols.py does (whose helpers it uses). One `msgreach once` per run:

- `no censorship`: the shipped catalogs (targets with a `client` send its hello beside Python's),
  and the same catalogs with every `client` removed (Python's hello only): what the apps' hellos
  cost on the ok path;
- the matrix forced on every service: `fingerprint-chrome` (every Chrome-family hello reset:
  the real hello of every `android_app` and `browser` target fails, the matrix and the repeats
  run, Safari's, Firefox's and Python's hellos pass), the same family *dropped*
  (`fingerprint-chrome-drop`, defined here: the real hello and its repeat wait for their
  timeouts, the slowest keyed claim), and `drop-after-connect` (every exchange after the TCP
  handshake dropped: every hello of the matrix waits).

    python3 bench/hello_matrix.py --lab-prefix mrm-            # 2 repeats, writes docs/benchmarks.md
    python3 bench/hello_matrix.py --repeats 1 --no-write

Needs root and the lab's tools (see tests/lab).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import yaml
from docsection import write_section  # bench/docsection.py: beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocols  # noqa: E402 - the lab helpers of bench/protocols.py

REPO = protocols.REPO
START, END = "<!-- bench:hello-matrix:start -->", "<!-- bench:hello-matrix:end -->"


def config(lab, path: Path, *, clients: bool) -> Path:
    """The lab's config of the shipped catalogs; without `client` keys when asked."""
    data = lab.config_data(interval=60, timeouts=protocols.DEFAULT_TIMEOUTS, retries=1)
    shipped = yaml.safe_load((REPO / "configs" / "default.yaml").read_text()).get("schedule", {})
    data["schedule"]["concurrency"] = shipped.get("concurrency", 16)
    if not clients:
        for entry in data["services"]:
            raw = yaml.safe_load((REPO / "configs" / "services" / f"{entry['catalog']}.yaml").read_text())
            targets = []
            for target in raw["targets"]:
                target = {k: v for k, v in target.items() if k != "client"}
                target.update(entry.get("patch", {}).get(target["name"], {}))
                targets.append(target)
            entry.pop("patch", None)
            entry["targets"] = targets
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tls_seconds(runs: list[dict]) -> str:
    slowest = max(r["checks"].get("tls", (0, 0.0, 0.0))[1] for r in runs)
    return f"{slowest:.1f}"


def section(results: dict[str, list[dict]], args: argparse.Namespace, meta: dict) -> str:
    lines = [
        START,
        "## The ClientHello matrix: a round with every real hello failing (issue 20)",
        "",
        f"Produced by `python3 bench/hello_matrix.py` as root on {meta['date']}, {args.repeats} repeat(s) per case, medians "
        f"(slowest tls check: the largest of the runs). Machine: {meta['machine']}. msgreach {meta['version']} ({meta['source']}). "
        f"Load average {meta['load_before']} before, {meta['load_after']} after: the machine is shared.",
        "",
        "**Setup.** The censorship lab, the shipped catalogs as the lab config pins them, the engine's default timeouts "
        "(tls 8 s), `retries: 1`, interval 60 s, so the round's deadline is 54 s; concurrency as the embedded default config "
        f"({meta['concurrency']}). One `msgreach once` per run; wall is the round's `duration_seconds`, CPU the process's user+sys.",
        "",
        "| case | targets | round wall (s) | CPU (s) | slowest tls (s) | incomplete targets | verdicts |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, runs in results.items():
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(runs[-1]["verdicts"].items()))
        lines.append(
            f"| {name} | {runs[-1]['targets']} | {protocols.median(runs, 'wall'):.1f} | {protocols.median(runs, 'cpu'):.2f} | "
            f"{_tls_seconds(runs)} | {max(r['incomplete'] for r in runs)} | {verdicts} |"
        )
    worst = max(results, key=lambda n: protocols.median(results[n], "wall"))
    lines += [
        "",
        f"**Deadline.** The slowest case, `{worst}`, took {protocols.median(results[worst], 'wall'):.1f} s of the 54 s. "
        "A tls check is bounded by 3 × its timeout (25 s with the outer second); the matrix and the repeats take what is "
        "left of it and stop short of it.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--lab-prefix", default="mrl-", help="namespace prefix of the lab to build (default mrl-)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the censorship lab)")
    lab_module, plan, scenarios = protocols.import_lab(args.lab_prefix)
    import lab.field2026_scenarios as field2026

    scenarios.SCENARIOS["drop-after-connect"] = scenarios.NftScenario(
        "drop-after-connect", "every packet after the TCP handshake dropped, both ways", "worst case", "", "",
        template=scenarios._filter("ip daddr {addrs} meta l4proto tcp ct original packets > 2 drop", "ip saddr {addrs} meta l4proto tcp ct reply packets > 1 drop"),
    )  # fmt: skip
    scenarios.SCENARIOS["fingerprint-chrome-drop"] = scenarios.NftScenario(
        "fingerprint-chrome-drop", "a ClientHello of the chrome family is dropped", "worst case", "", "",
        template=field2026._filter(f"{field2026._HELLO} {field2026.FAMILY_SIGNATURES['chrome']} drop"),
    )  # fmt: skip
    from datetime import date

    from probe import __version__

    meta = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, Python {platform.python_version()}",
        "version": __version__,
        "source": subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip(),
        "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "concurrency": yaml.safe_load((REPO / "configs" / "default.yaml").read_text()).get("schedule", {}).get("concurrency", 16),
    }
    lab = lab_module.Lab()
    lab.up()
    try:
        shipped = config(lab, lab.dir / "bench-hello-shipped.yaml", clients=True)
        bare = config(lab, lab.dir / "bench-hello-no-client.yaml", clients=False)
        services = ["whatsapp", "telegram", "signal"]
        cases = [
            ("no censorship, catalogs as shipped (client hellos)", shipped, []),
            ("no censorship, no `client` keys (Python's hello only)", bare, []),
            ("fingerprint-chrome (reset), every service: the matrix forced", shipped, [("fingerprint-chrome", services)]),
            ("fingerprint-chrome-drop, every service: the matrix forced, real hellos timing out", shipped, [("fingerprint-chrome-drop", services)]),
            ("drop-after-connect, every service: every hello timing out", shipped, [("drop-after-connect", services)]),
            ("drop-after-connect, every service, no `client` keys (before the matrix)", bare, [("drop-after-connect", services)]),
        ]
        results = {name: protocols.run_case(lab, plan, scenarios, name, cfg, rules, args.repeats) for name, cfg, rules in cases}
    finally:
        lab.down()
    meta["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = section(results, args, meta)
    print(text)
    if not args.no_write:
        write_section(text, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
