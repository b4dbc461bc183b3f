"""Steady `run`'s memory, two trees alternated on one set of targets: for each pair, `msgreach run`
scraped after each round as Prometheus scrapes (bench/run.py's `msgreach_steady`: VmHWM, RSS after
each round) and, with `--phases`, the monitor's rounds in one process phase by phase
(bench/memory_rounds.py). One nginx and one hosts file serve every run, so A and B meet the same
targets, turn about.

    sudo unshare -n -m python bench/mem_ab.py A B [--targets 1000] [--pairs 2] [--rounds 4] [--interval 10] [--phases]

A and B: source trees (a commit exported with `git archive`, or a worktree); each is what
`python -m probe` runs (PYTHONPATH and cwd). This tree's bench/run.py and memory_rounds.py drive
both. One JSON line per run on stdout, a summary at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402 - bench/run.py: certificates, hosts, nginx, `run`
from served import served_targets  # noqa: E402 - one nginx and hosts file for both trees


def _phases(tree: Path, config: Path, rounds: int, state: Path) -> dict[str, float]:
    """Round `rounds`'s phases (MiB): RSS at its start, the peaks while measured and published,
    RSS after the trim."""
    env = {**bench.clean_env(), "MSGREACH_STATE_DIR": str(state)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "memory_rounds.py"), str(config), str(rounds)], env=env,
                          cwd=tree, capture_output=True, text=True, timeout=60 + 120 * rounds, check=True)
    last = json.loads(done.stdout)["rounds"][-1]
    return {k: round(last[k] / 1024, 1) for k in ("start", "measured_peak", "published_peak", "trimmed")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs=2, type=Path)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--phases", action="store_true")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    bench.only_loopback()
    peaks: dict[str, list[float]] = {str(t): [] for t in trees}
    with served_targets(args.targets, "msgreach-mem-ab-", interval=args.interval) as config:
        tmp = config.parent  # msgreach_steady writes its own config beside it
        for pair in range(args.pairs):
            for tree in trees if pair % 2 == 0 else trees[::-1]:
                bench.SOURCE.update(path=tree, label=str(tree))
                sample = bench.msgreach_steady(tmp, args.targets, 16, args.rounds, args.interval)
                line: dict[str, object] = {
                    "tree": str(tree), "peak_mib": round(sample.peak_rss_kb / 1024, 1),
                    "rss_mib": [round(r / 1024, 1) for r in sample.rounds["rss_kb"]],
                    "steady_cpu": round(sample.cpu, 2), "scrape_cpu": round(sample.extra["scrape_cpu"], 3),
                    "scrape_bytes": sample.extra["scrape_bytes"], "load": sample.load1,
                }
                if args.phases:
                    line["phases"] = _phases(tree, config, args.rounds, Path(tempfile.mkdtemp(prefix="state-", dir=tmp)))
                peaks[str(tree)].append(line["peak_mib"])  # type: ignore[arg-type]
                print(json.dumps(line), flush=True)
    print(json.dumps({"median_peak_mib": {t: statistics.median(p) for t, p in peaks.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
