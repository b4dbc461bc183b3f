#!/usr/bin/env python3
"""Memory of `msgreach once` and `msgreach run` at N loopback TLS targets (issue #22: <= 40 MiB).

The setup is bench/run.py's (one nginx, N targets `tNNNN.bench.test` on their own loopback
addresses, checks tcp, tls, http, pinned addresses, retries 0, one TCP control), in a fresh
network namespace with only loopback. For the working tree, and with `--rev` for a commit
exported beside it, measured in turn (the order alternating from one repeat to the next):

- start-up: RSS after each stage of a `run` process's imports and its config load, in a fresh
  interpreter (bench/memory_stages.py), and the packages that grew it most (RSS while each package's
  own modules executed, nested packages counted apart);
- `once`: the real command line, `python -m probe once --config … --format json`, its peak RSS
  (ru_maxrss) and CPU;
- `run`: `python -m probe run` for R rounds, RSS after each round and the peak (VmHWM); and the
  same rounds in this process, phase by phase, with what Python's allocator and glibc's hold
  (bench/memory_rounds.py).

Memory is what load does not change; the load average is reported anyway (a shared machine).

    python3 bench/memory.py --rev main            # 1,000 targets, 3 repeats, 5 rounds; writes docs/benchmarks.md
    python3 bench/memory.py --repeats 1 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docsection import write_section  # noqa: E402 - bench/docsection.py
from memory_stages import STAGES  # noqa: E402 - the stages' labels (bench/memory_stages.py)

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:memory:start -->", "<!-- bench:memory:end -->"
INSIDE = "MSGREACH_BENCH_NETNS"

# --- in the namespace --------------------------------------------------------------------------------


def _measure_stages(bench: Any, config: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "memory_stages.py"), str(config)], env=bench.clean_env(),
                          cwd=bench.SOURCE["path"], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _measure_rounds(bench: Any, config: Path, rounds: int, state: Path) -> dict[str, Any]:
    env = {**bench.clean_env(), "MSGREACH_STATE_DIR": str(state)}  # a fresh history and archive
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "memory_rounds.py"), str(config), str(rounds)], env=env,
                          cwd=bench.SOURCE["path"], capture_output=True, text=True, timeout=60 + 120 * rounds, check=True)
    return json.loads(done.stdout)


def _one_source(bench: Any, tmp: Path, n: int, rounds: int, interval: float) -> dict[str, Any]:
    config = bench.msgreach_config(tmp, n, 16, interval)
    result = {"stages": _measure_stages(bench, config)}
    result["phases"] = _measure_rounds(bench, config, rounds, Path(tempfile.mkdtemp(prefix="state-", dir=tmp)))
    once = bench.msgreach_once(tmp, n, 16)  # bench/run.py's Sample: peak_rss_kb, cpu, rounds
    result["once"] = {"maxrss_kb": once.peak_rss_kb, "cpu": once.cpu}
    run = bench.msgreach_steady(tmp, n, 16, rounds, interval)
    result["run"] = {"hwm_kb": run.peak_rss_kb, "rss_kb": run.rounds["rss_kb"], "cpu": run.rounds["cpu"]}
    return result


def inside(args: argparse.Namespace) -> int:
    import run as bench  # bench/run.py: certificates, hosts, nginx, configs, `once` and `run`

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.strip().splitlines()
    if len(links) != 1 or ": lo:" not in links[0]:
        raise SystemExit(f"bench: expected a namespace with only loopback, found: {links}")
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-memory-"))
    nginx = None
    try:
        bench.describe_worktree()
        sources = {"tree": dict(bench.SOURCE)}
        if args.rev:
            bench.export_revision(args.rev, tmp)
            sources["rev"] = dict(bench.SOURCE)
        load_before = bench.loadavg()
        bench.make_certificates(tmp)
        bench.private_hosts(tmp, args.targets)
        nginx = bench.start_nginx(tmp, args.targets)
        samples: dict[str, list[dict[str, Any]]] = {key: [] for key in sources}
        for repeat in range(args.repeats):
            order = list(sources) if repeat % 2 == 0 else list(reversed(sources))
            for key in order:
                bench.SOURCE.clear()
                bench.SOURCE.update(sources[key])
                sample = _one_source(bench, tmp, args.targets, args.rounds, args.interval)
                samples[key].append(sample)
                print(f"[memory] {key} #{repeat + 1}: once {sample['once']['maxrss_kb'] // 1024} MiB; run after rounds "
                      f"{[kb // 1024 for kb in sample['run']['rss_kb']]} MiB, peak {sample['run']['hwm_kb'] // 1024} MiB", file=sys.stderr, flush=True)
        facts = {"load": f"{load_before} before, {bench.loadavg()} after", "labels": {k: v["label"] for k, v in sources.items()},
                 "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d", time.gmtime())}
        if args.json:
            Path(args.json).write_text(json.dumps({"facts": facts, "samples": samples}, indent=1))
        section = render(args, facts, samples)
        if args.no_write:
            print(section)
        else:
            write_section_of_memory(section)
        return 0
    finally:
        bench.stop(nginx)
        subprocess.run(["umount", "/etc/hosts"], capture_output=True)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


# --- report --------------------------------------------------------------------------------------------


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def render(args: argparse.Namespace, facts: dict[str, Any], samples: dict[str, list[dict[str, Any]]]) -> str:
    keys = list(samples)
    labels = facts["labels"]
    med = statistics.median
    lines = [
        START,
        f"## Memory of `once` and `run` at {args.targets:,} targets (issue #22)",
        "",
        f"Produced by `python3 bench/memory.py{' --rev ' + args.rev if args.rev else ''} --targets {args.targets} --repeats {args.repeats} "
        f"--rounds {args.rounds}` as root on {facts['date']} (Python {facts['python']}); load average {facts['load']}. "
        "bench/run.py's setup (nginx, loopback TLS targets, checks tcp, tls, http, a fresh network namespace); "
        f"medians of {args.repeats} runs, the two versions measured in turn. Memory does not depend on the load; "
        "one process's RSS varies by about 1 MiB from run to run.",
        "",
        "| | " + " | ".join(labels[k] for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    lines.append("| `once`: peak RSS (MiB) | " + " | ".join(_mib(med(s["once"]["maxrss_kb"] for s in samples[k])) for k in keys) + " |")
    lines.append("| `once`: CPU of the whole process (s) | " + " | ".join(f"{med(s['once']['cpu'] for s in samples[k]):.2f}" for k in keys) + " |")
    lines.append("| `run`: peak RSS, VmHWM (MiB) | " + " | ".join(_mib(med(s["run"]["hwm_kb"] for s in samples[k])) for k in keys) + " |")
    for index in range(args.rounds):
        lines.append(f"| `run`: RSS after round {index + 1} (MiB) | "
                     + " | ".join(_mib(med(s["run"]["rss_kb"][index] for s in samples[k])) for k in keys) + " |")
    lines += ["", f"Start-up, stage by stage (RSS in MiB after each, a fresh interpreter, the config of {args.targets:,} targets; medians):", "",
              "| stage | " + " | ".join(labels[k] for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for index, (label, _) in enumerate(STAGES):
        lines.append(f"| {label.replace('N targets', f'{args.targets:,} targets')} | "
                     + " | ".join(_mib(med(s["stages"]["stages"][index][1] for s in samples[k])) for k in keys) + " |")
    lines += ["", f"A `run` round, phase by phase (bench/memory_rounds.py: the monitor's rounds in one process, as `run` makes them; "
              f"MiB, medians of the runs, round {args.rounds}; start-up: after the imports and the config):", "",
              "| | " + " | ".join(labels[k] for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    rows = [
        ("start-up: RSS", lambda p: p["startup"]["rss"] * 1024),
        ("start-up: Python objects (pymalloc blocks in use)", lambda p: p["startup"]["pymalloc_used"]),
        ("start-up: glibc heap in use", lambda p: p["startup"]["glibc_used"]),
        ("round: RSS at its start", lambda p: p["rounds"][-1]["start"] * 1024),
        ("round: RSS when measured (peak during)", lambda p: (p["rounds"][-1]["measured"] * 1024, p["rounds"][-1]["measured_peak"] * 1024)),
        ("round: RSS when published (peak during)", lambda p: (p["rounds"][-1]["published"] * 1024, p["rounds"][-1]["published_peak"] * 1024)),
        ("round: RSS after the heap's trim", lambda p: p["rounds"][-1]["trimmed"] * 1024),
        ("round: Python objects after it", lambda p: p["rounds"][-1]["pymalloc_used"]),
        ("round: pymalloc arenas after it", lambda p: p["rounds"][-1]["pymalloc_arenas"]),
        ("round: glibc heap in use / free after it", lambda p: (p["rounds"][-1]["glibc_used"], p["rounds"][-1]["glibc_free"])),
    ]
    for label, value in rows:
        cells = []
        for key in keys:
            values = [value(s["phases"]) for s in samples[key]]
            if isinstance(values[0], tuple):
                cells.append(" / ".join(f"{med(v[i] for v in values) / 2**20:.1f}" for i in range(2)) if "free" in label
                             else f"{med(v[0] for v in values) / 2**20:.1f} ({med(v[1] for v in values) / 2**20:.1f})")
            else:
                cells.append(f"{med(values) / 2**20:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key in keys:
        packages = samples[key][0]["stages"]["packages"]
        lines += ["", f"What grew it most, {labels[key]} (MiB of RSS while the package's own modules ran; first run): "
                  + ", ".join(f"{name} {_mib(kib)}" for name, kib in packages if kib >= 256) + "."]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section_of_memory(section: str) -> None:
    write_section(section, START, END)
    print("[memory] wrote docs/benchmarks.md", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="`msgreach run` rounds")
    parser.add_argument("--interval", type=float, default=15.0, help="`run`'s interval_seconds")
    parser.add_argument("--rev", help="also measure this git revision (exported to the temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of updating docs/benchmarks.md")
    parser.add_argument("--json", help="also write the raw samples here")
    args = parser.parse_args()
    if os.environ.get(INSIDE) != str(os.getpid()):
        if os.geteuid() != 0:
            raise SystemExit("bench: run as root (network namespace, nginx on port 443)")
        os.environ[INSIDE] = str(os.getpid())  # exec keeps the PID: that marks "inside"
        os.execvp("unshare", ["unshare", "--net", "--mount", "--propagation", "private", sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    return inside(args)


if __name__ == "__main__":
    sys.exit(main())
