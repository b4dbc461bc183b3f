#!/usr/bin/env python3
"""Protocol checks benchmark: what mtproto, whatsapp_chat, quic, stun and throughput cost in a
round of the shipped catalogs, and whether the worst rounds stay within the deadline.

Runs in the censorship lab (tests/lab: network namespaces, nothing leaves the machine), with the
engine's default timeouts and retries, interval 60 s (deadline 54 s), the shipped catalogs as the
lab config pins them. Each case is one `msgreach once` in the client namespace, repeated:

- `no censorship`, with the protocol checks, and without them (every protocol check removed
  from every target; a target left with no check removed too): what the new checks add;
- worst cases for the new checks, each on every service at once:
  `drop-after-connect` (every packet after the TCP handshake dropped, both ways: every TLS,
  MTProto and chat exchange waits for its timeout), `mtproto-first-bytes` + `quic-tspu` +
  `chat-rst` (the protocol rules), `police-150k` and `stall-16k` on the download targets;
- issue 20's freezes counted in packets on the download targets, each download also uploading
  64 KB to the lab's `/upload` (`upload_path`): `freeze-packets` (the hosting prefix, both ways),
  `freeze-packets-sni` (the name), `freeze-upload` (the client's own bytes): the cost of the
  throughput check's repeats (real, decoy, real, decoy; the upload again), which run only when
  the first transfer failed.

CPU is the `msgreach once` process's user+sys (getrusage of the child), wall the round's own
`duration_seconds`. Writes its section of docs/benchmarks.md (other sections are left alone).

    python3 bench/protocols.py                 # 3 repeats, writes docs/benchmarks.md
    python3 bench/protocols.py --repeats 1 --no-write
    python3 bench/protocols.py --lab-prefix mrx-   # a private lab beside a running `mrl-` one

Needs root and the lab's tools (see tests/lab).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

import yaml
from docsection import write_section  # bench/docsection.py: beside this script

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:protocols:start -->", "<!-- bench:protocols:end -->"
PROTOCOL_CHECKS = ("mtproto", "whatsapp_chat", "quic", "stun", "throughput")
DEFAULT_TIMEOUTS = {"dns": 5, "tcp": 5, "tls": 8, "http": 10, "default": 15}


def import_lab(prefix: str):
    """tests.lab's modules, with another namespace prefix if asked (before anything imports plan)."""
    sys.path.insert(0, str(REPO / "tests"))
    if prefix != "mrl-":
        os.environ.setdefault("MRL_LAB_DIR", f"/tmp/{prefix}lab")
        import lab.plan as plan

        plan.PREFIX = prefix
        for name in dir(plan):
            if name.startswith(("NS_", "IF_")) and isinstance(getattr(plan, name), str):
                setattr(plan, name, getattr(plan, name).replace("mrl-", prefix))
        plan.NAMESPACES = (plan.NS_CLIENT, plan.NS_CENSOR, plan.NS_SERVERS, plan.NS_RESOLVER)
    import lab.field2026_scenarios  # noqa: F401 - registers the 2026 field's scenarios
    import lab.lab as lab_module
    import lab.plan as plan
    import lab.protocol_scenarios  # noqa: F401 - registers the protocol scenarios
    import lab.scenarios as scenarios

    return lab_module, plan, scenarios


def config(lab, path: Path, *, protocols: bool, uploads: bool = False) -> Path:
    data = lab.config_data(interval=60, timeouts=DEFAULT_TIMEOUTS, retries=1)
    if uploads:  # every download target also uploads 64 KB to the lab's /upload (lab.UPLOAD_PATH)
        for entry in data["services"]:
            raw = yaml.safe_load((REPO / "configs" / "services" / f"{entry['catalog']}.yaml").read_text())
            for target in raw["targets"]:
                if "throughput" in target.get("checks", ()):
                    params = {**target.get("params", {})}
                    params["throughput"] = {**params.get("throughput", {}), "upload_path": "/upload"}
                    entry.setdefault("patch", {}).setdefault(target["name"], {})["params"] = params
    shipped = yaml.safe_load((REPO / "configs" / "default.yaml").read_text()).get("schedule", {})
    data["schedule"]["concurrency"] = shipped.get("concurrency", 16)  # as the embedded default config runs
    if not protocols:
        for entry in data["services"]:
            raw = yaml.safe_load((REPO / "configs" / "services" / f"{entry['catalog']}.yaml").read_text())
            targets = []
            for target in raw["targets"]:
                checks = [c for c in target.get("checks", ["dns", "tcp", "tls", "http"]) if c not in PROTOCOL_CHECKS]
                if checks:
                    target = {**target, "checks": checks, "params": {k: v for k, v in target.get("params", {}).items() if k not in PROTOCOL_CHECKS}}
                    target.update(entry.get("patch", {}).get(target["name"], {}))
                    targets.append(target)
            entry.pop("patch", None)
            entry["targets"] = targets
        raw = yaml.safe_load((REPO / "configs" / "services" / "controls.yaml").read_text())
        data["controls"] = [t for t in raw["targets"] if not set(t.get("checks", [])) & set(PROTOCOL_CHECKS)]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def once(lab, plan, cfg: Path) -> tuple[dict, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["ip", "netns", "exec", plan.NS_CLIENT, *lab.msgreach_argv(), "once", "--config", str(cfg), "--format", "json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3, 4):  # measured: no block, a block, offline
        raise SystemExit(f"msgreach once failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout), cpu


def summarize(document: dict, cpu: float) -> dict:
    vantage = document["vantages"][0]
    per_check: dict[str, list[float]] = defaultdict(list)
    verdicts: dict[str, int] = defaultdict(int)
    incomplete = 0
    targets = [*vantage.get("controls", []), *(t for s in vantage["services"] for t in s["targets"])]
    for target in targets:
        verdicts[target["verdict"]] += 1
        incomplete += bool(target.get("incomplete"))
        for check in target["checks"]:
            per_check[check["check"]].append(check["duration_seconds"])
    return {
        "wall": vantage["duration_seconds"], "cpu": cpu, "targets": len(targets), "incomplete": incomplete,
        "verdicts": dict(verdicts), "checks": {k: (len(v), max(v), sum(v)) for k, v in per_check.items()},
    }  # fmt: skip


def run_case(lab, plan, scenarios, name: str, cfg: Path, rules: list[tuple[str, list[str]]], repeats: int) -> list[dict]:
    runs = []
    for _ in range(repeats):
        lab.clear_scenarios()
        for scenario, selectors in rules:
            lab.scenario(scenario, True, selectors)
        try:
            runs.append(summarize(*once(lab, plan, cfg)))
        finally:
            lab.clear_scenarios()
        print(f"{name}: round {runs[-1]['wall']:.1f} s, CPU {runs[-1]['cpu']:.2f} s, {runs[-1]['verdicts']}", flush=True)
    return runs


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def section(results: dict[str, list[dict]], args: argparse.Namespace, meta: dict) -> str:
    lines = [
        START,
        "## Protocol checks: their cost in a round of the shipped catalogs",
        "",
        f"Produced by `python3 bench/protocols.py` as root from the repository root on {date.today().isoformat()}, "
        f"{args.repeats} repeat(s) per case, medians. Machine: {meta['machine']}. msgreach {meta['version']} ({meta['source']}). "
        f"Load average {meta['load_before']} before, {meta['load_after']} after: the machine is shared.",
        "",
        "**Setup.** The censorship lab (tests/lab: namespaces, nginx, unbound, dnsmasq, coturn, the lab's MTProto, "
        "WhatsApp-chat and HTTP/3 stand-ins), the shipped catalogs as the lab config pins them, the engine's default "
        "timeouts (dns 5, tcp 5, tls 8, http 10, other checks 15 s), `retries: 1`, the embedded default config's "
        f"`concurrency` ({meta['concurrency']}), interval 60 s, so the round's deadline is 54 s. One `msgreach once` per run; wall is the round's `duration_seconds`, CPU the process's user+sys. "
        "`drop-after-connect` drops every packet after the TCP handshake to every service address, both ways.",
        "",
        "| case | targets | round wall (s) | CPU (s) | incomplete targets | verdicts |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, runs in results.items():
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(runs[-1]["verdicts"].items()))
        lines.append(
            f"| {name} | {runs[-1]['targets']} | {median(runs, 'wall'):.1f} | {median(runs, 'cpu'):.2f} | "
            f"{max(r['incomplete'] for r in runs)} | {verdicts} |"
        )
    base = results.get("no censorship, protocol checks on")
    if base:
        lines += ["", "Per check, no censorship (last run): how many ran, the slowest, and their summed time (they overlap).", "",
                  "| check | runs | slowest (s) | summed (s) |", "|---|---:|---:|---:|"]  # fmt: skip
        for check, (count, slowest, total) in sorted(base[-1]["checks"].items()):
            lines.append(f"| {check} | {count} | {slowest:.2f} | {total:.1f} |")
    with_, without = results.get("no censorship, protocol checks on"), results.get("no censorship, protocol checks off")
    if with_ and without:
        lines += [
            "",
            f"**What the protocol checks cost** (no censorship): the round goes from {median(without, 'wall'):.1f} s to "
            f"{median(with_, 'wall'):.1f} s and from {median(without, 'cpu'):.2f} s to {median(with_, 'cpu'):.2f} s CPU. "
            "The floor of the wall time is `whatsapp_chat`'s `hold_seconds` (3 s: each chat connection is held open to see "
            "drops after the first bytes) and the downloads (256 KB each, three services and two controls).",
        ]
    clean, frozen = results.get("no censorship, downloads uploading 64 KB"), results.get("freeze-packets on the downloads, uploading")
    if clean and frozen:
        lines += [
            "",
            "**The freezes' repeats** (issue 20: no keyed claim from one pair). They run only when the first transfer failed: "
            f"with every download also uploading 64 KB and no censorship the round took {median(clean, 'wall'):.1f} s. A failed "
            "download is followed by the decoy, the real download again and the decoy again, each capped at half `max_seconds` "
            "but a second past the stall bound (5 s); a frozen upload by the upload again; the confirming retry repeats the attempt. The worst case, "
            f"`freeze-packets` with uploads (six stalls of some 4 s per attempt, twice), took {median(frozen, 'wall'):.1f} s of the 54 s.",
        ]
    worst = max(results.items(), key=lambda item: median(item[1], "wall"))
    lines += ["", f"**Deadline.** The slowest case, `{worst[0]}`, took {median(worst[1], 'wall'):.1f} s of the 54 s; "
              f"{'no target was cut off by the deadline' if all(r['incomplete'] == 0 for rs in results.values() for r in rs) else 'some targets were cut off by the deadline (see the table)'}."]  # fmt: skip
    lines.append(
        "With 16 targets at a time (`schedule.concurrency`'s default when a config sets none), "
        "`drop-after-connect` needed two waves of the slowest targets (TLS and its decoy, 16 s, twice): "
        "55 s on this machine, one target cut off by the deadline. The embedded default config "
        "(configs/default.yaml) sets `concurrency: 64`."
    )
    lines.append(END)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--lab-prefix", default="mrl-", help="namespace prefix of the lab to build (default mrl-)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the censorship lab)")
    lab_module, plan, scenarios = import_lab(args.lab_prefix)
    scenarios.SCENARIOS["drop-after-connect"] = scenarios.NftScenario(
        "drop-after-connect", "every packet after the TCP handshake dropped, both ways", "worst case", "", "",
        template=scenarios._filter("ip daddr {addrs} meta l4proto tcp ct original packets > 2 drop", "ip saddr {addrs} meta l4proto tcp ct reply packets > 1 drop"),
    )  # fmt: skip
    from probe import __version__

    meta = {
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, Python {platform.python_version()}",
        "version": __version__,
        "source": subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip(),
        "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "concurrency": yaml.safe_load((REPO / "configs" / "default.yaml").read_text()).get("schedule", {}).get("concurrency", 16),
    }
    lab = lab_module.Lab()
    lab.up()
    try:
        on = config(lab, lab.dir / "bench-protocols-on.yaml", protocols=True)
        off = config(lab, lab.dir / "bench-protocols-off.yaml", protocols=False)
        up = config(lab, lab.dir / "bench-protocols-uploads.yaml", protocols=True, uploads=True)
        services = ["whatsapp", "telegram", "signal"]
        downloads = [f"{s}/download" for s in services]
        cases = [
            ("no censorship, protocol checks on", on, []),
            ("no censorship, protocol checks off", off, []),
            ("drop-after-connect, every service", on, [("drop-after-connect", services)]),
            ("protocol rules (MTProto first bytes, TSPU QUIC, chat RST)", on,
             [("mtproto-first-bytes", ["telegram"]), ("quic-tspu", ["whatsapp/web"]), ("chat-rst", ["whatsapp"])]),
            ("police-150k on the downloads", on, [("police-150k", downloads)]),
            ("stall-16k on the downloads", on, [("stall-16k", downloads)]),
            ("no censorship, downloads uploading 64 KB", up, []),
            ("freeze-packets on the downloads, uploading", up, [("freeze-packets", downloads)]),
            ("freeze-packets-sni on the downloads, uploading", up, [("freeze-packets-sni", downloads)]),
            ("freeze-upload on the downloads, uploading", up, [("freeze-upload", downloads)]),
        ]  # fmt: skip
        results = {}
        for name, cfg, rules in cases:
            rules = [(s, sel) for s, sel in rules if s in scenarios.SCENARIOS]
            results[name] = run_case(lab, plan, scenarios, name, cfg, rules, args.repeats)
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
