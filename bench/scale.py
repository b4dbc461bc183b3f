#!/usr/bin/env python3
"""How msgreach's CPU, memory and wall time grow with the number of targets (100 … 10,000), beside
blackbox_exporter's `http` probe on the same targets.

The world and the contenders are bench/run.py's (one nginx, a target per loopback address, a
fresh network namespace with only loopback): per size, `--repeats` interleaved runs of the real
`msgreach once` (the whole process) and of blackbox's `http` probe over the N targets, then one
`msgreach run` for `--rounds` rounds, scraped after each as Prometheus scrapes. Writes the
`bench:scale` section of docs/benchmarks.md.

    python3 bench/scale.py                                 # 100 … 10,000; about 12 min here
    python3 bench/scale.py --sizes 100,300 --no-write      # quick look
    python3 bench/scale.py --save-metrics /tmp/expositions # also keep each size's /metrics

Needs root, nginx, openssl, prometheus-blackbox-exporter (as bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 - bench/run.py: the world, the contenders, the report helpers

START, END = "<!-- bench:scale:start -->", "<!-- bench:scale:end -->"
KINDS = ("once", "bb_http")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300,1000,3000,10000", help=f"target counts (max {bench.MAX_TARGETS:,})")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats up to 3,000 targets")
    parser.add_argument("--large-repeats", type=int, default=1, help="repeats above 3,000 targets")
    parser.add_argument("--rounds", type=int, default=3, help="`msgreach run` rounds per size (the first carries the start-up)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--save-metrics", help="a directory: keep each size's last /metrics scrape (OpenMetrics) there")
    parser.add_argument("--json", help="also write the raw samples here")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of updating docs/benchmarks.md")
    args = parser.parse_args()
    args.size_list = sorted({int(s) for s in args.sizes.split(",")})
    if max(args.size_list) > bench.MAX_TARGETS:
        parser.error(f"at most {bench.MAX_TARGETS:,} targets")
    if args.rounds < 2:
        parser.error("--rounds: at least 2")
    return args


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares growth per target."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def render(results: dict[int, dict[str, list[bench.Sample]]], facts: dict[str, str], args: argparse.Namespace, elapsed: float) -> str:
    sizes = sorted(results)
    med = bench.med
    loads = [s.load1 for row in results.values() for samples in row.values() for s in samples]
    lines = [
        START,
        "## Scale: 100 to 10,000 targets",
        "",
        f"Produced by `python3 bench/scale.py --sizes {args.sizes} --repeats {args.repeats} --large-repeats "
        f"{args.large_repeats} --rounds {args.rounds}` as root (about {elapsed / 60:.0f} min here) on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}. Machine: {facts['nproc']} CPUs, Linux {facts['kernel']}, "
        f"msgreach {facts['msgreach']}, Python {facts['python']}, {facts['blackbox']}. Load average {facts['load']} "
        f"the run (1-minute figure {min(loads):.1f}–{max(loads):.1f} at the ends of the runs): the machine is shared, "
        "so read CPU seconds and ratios, not wall times.",
        "",
        "bench/run.py's world and contenders (its section above says what each counts): the real `msgreach once` "
        f"(the whole process) and blackbox's `http` probe, {args.repeats} interleaved repeat(s) per size up to 3,000 "
        f"targets and {args.large_repeats} above (medians); then one `msgreach run` per size for {args.rounds} "
        "rounds, each followed by one scrape as Prometheus makes it (its CPU: rounds 2 on; its RSS: `VmHWM`). "
        f"Every target of every run is `ok`. Above {bench.INLINE_TARGETS:,} targets they are split into services of "
        f"{bench.CATALOG_TARGETS:,}, a catalog file each (one YAML file holds at most 1 MiB and 100,000 values), "
        "which the loader validates once more than an inline service (more start-up CPU and memory).",
        "",
        "| targets | `once` wall (s) | `once` CPU (s) | per target (ms) | `once` peak RSS (MiB) | `run`: CPU a round (s) | "
        "`run` peak RSS (MiB) | `/metrics` series | scrape, gzip (KiB) | blackbox `http` CPU (s) | blackbox peak RSS (MiB) | "
        "`once` ÷ blackbox CPU | `run` ÷ blackbox CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        row = results[n]
        once, bb, steady = row["once"], row["bb_http"], row["steady"][0]
        run_ratio = steady.cpu / med(bb, "cpu")
        lines.append(
            f"| {n:,} | {med(once, 'wall'):.1f} | {med(once, 'cpu'):.2f} | {med(once, 'cpu') / n * 1000:.2f} | "
            f"{bench.mib(med(once, 'peak_rss_kb'))} | {steady.cpu:.2f} | {bench.mib(steady.peak_rss_kb)} | "
            f"{steady.extra['series']:,.0f} | {steady.extra['scrape_bytes'] / 1024:,.0f} | {med(bb, 'cpu'):.2f} | "
            f"{bench.mib(med(bb, 'peak_rss_kb'))} | {bench.ratio_text(bench.paired(row, 'once', 'bb_http'))} | {run_ratio:.2f}× |"
        )
    big = [n for n in sizes if n >= 1000]
    if len(big) >= 2:
        rss_once = slope([(n, med(results[n]["once"], "peak_rss_kb") / 1024) for n in big]) * 1000
        rss_run = slope([(n, results[n]["steady"][0].peak_rss_kb / 1024) for n in big]) * 1000
        cpu_once = slope([(n, med(results[n]["once"], "cpu")) for n in big]) * 1000
        cpu_run = slope([(n, results[n]["steady"][0].cpu) for n in big]) * 1000
        series = slope([(n, results[n]["steady"][0].extra["series"]) for n in big])
        biggest = sizes[-1]
        steady = results[biggest]["steady"][0]
        lines += [
            "",
            f"**Growth** (least squares over {', '.join(f'{n:,}' for n in big)} targets): `once` peak RSS "
            f"+{rss_once:.1f} MiB and `run` peak RSS +{rss_run:.1f} MiB per 1,000 targets; CPU +{cpu_once:.2f} s "
            f"(`once`) and +{cpu_run:.2f} s (a `run` round) per 1,000 targets; {series:.1f} series per target on "
            "`/metrics`. Below 1,000 targets the fixed cost dominates: Python's start-up, the imports and the "
            "config load are most of a small `once`.",
            "",
            f"At {biggest:,} targets a `run` round and its scrape take {steady.cpu:.0f} s of one core (rounds "
            f"{', '.join(f'{d:.0f}' for d in steady.rounds['duration'])} s long, `interval_seconds: "
            f"{steady.extra['interval']:g}`): msgreach's round runs on one thread, so one process measures at most "
            f"about {60 / (steady.cpu / biggest) / 1000:,.0f}k targets a minute on this CPU before its rounds overlap "
            "their interval.",
        ]
    lines += ["", "RSS after each `run` round, by size: " + "; ".join(
        f"{n:,}: " + ", ".join(bench.mib(kb) for kb in results[n]["steady"][0].rounds["rss_kb"]) + " MiB" for n in sizes) + ".", END]
    return "\n".join(lines) + "\n"


def inside_namespace(args: argparse.Namespace) -> int:
    bench.only_loopback()
    began = time.monotonic()
    save = Path(args.save_metrics).resolve() if args.save_metrics else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    with bench.lab(max(args.size_list)) as tmp:
        bench.describe_worktree()
        load_before = bench.loadavg()
        facts = bench.machine_facts()
        results: dict[int, dict[str, list[bench.Sample]]] = {}
        for n in args.size_list:
            repeats = args.repeats if n <= 3000 else args.large_repeats
            row = bench.measure(tmp, bench.Plan(n, KINDS, repeats, args.concurrency))
            interval = bench.steady_interval(bench.med(row["once"], "wall"))  # the process's wall: a little more than the round
            steady_plan = bench.Plan(n, ("steady",), 1, args.concurrency, args.rounds, save / f"metrics-{n}.txt" if save else None, interval)
            row.update(bench.measure(tmp, steady_plan))
            results[n] = row
        facts["load"] = f"{load_before} before, {bench.loadavg()} after"
        section = render(results, facts, args, time.monotonic() - began)
        if args.json:
            Path(args.json).write_text(json.dumps({"facts": facts, "results": {
                n: {k: [s.__dict__ for s in v] for k, v in row.items()} for n, row in results.items()}}, indent=1))
        if args.no_write:
            print(section)
        else:
            bench.write_section(section, START, END)
            print(f"[scale] wrote {bench.DOC.relative_to(bench.REPO)}", file=sys.stderr)
    return 0


def main() -> int:
    args = parse_args()
    bench.enter_namespace()
    return inside_namespace(args)


if __name__ == "__main__":
    sys.exit(main())
