"""What loading a config costs: `msgreach check-config` on the embedded default, a 1 KB alias
bomb, and configs near the limits, each in its own process (wall time, CPU and peak RSS of the
whole process, Python start-up included). Also the in-process cost of the load alone.

    PYTHONPATH=. python3 bench/config_load.py [--repeats 5]

Prints a Markdown table for docs/benchmarks.md. Nothing here touches the network.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
) + "vantages: [{name: *j}]\n"


def _big_config(targets: int) -> str:
    rows = "\n".join(f"      - {{name: t{i}, host: t{i}.bench.test, ports: [443], checks: [dns, tcp, tls, http]}}" for i in range(targets))
    return (
        "vantages: [{name: bench, resolvers: [system]}]\n"
        "controls: [{name: ctl, host: ctl.bench.test, checks: [dns]}]\n"
        f"services:\n  - name: big\n    targets:\n{rows}\n"
    )


def _aliased_config(copies: int) -> str:
    """Many targets built from the first one with `<<`, within the value budget."""
    rows = "\n".join(f"      - {{<<: *t, name: t{i}}}" for i in range(1, copies))
    return (
        "vantages: [{name: bench, resolvers: [system]}]\n"
        "controls: [{name: ctl, host: ctl.bench.test, checks: [dns]}]\n"
        "services:\n  - name: big\n    targets:\n"
        "      - &t {name: t0, host: t.bench.test, ports: [443], checks: [dns, tcp, tls, http]}\n"
        f"{rows}\n"
    )


def _one(path: str) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, exit code) of one `check-config` process."""
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "probe", "check-config", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = {"`configs/default.yaml` (3 catalogs, controls, fingerprints)": str(REPO / "configs" / "default.yaml")}
        for name, text in (
            ("alias bomb (10^10 values if expanded)", BOMB),
            ("2,000 targets, 167 KB", _big_config(2000)),
            ("2,000 targets from one `<<` template", _aliased_config(2000)),
        ):
            path = Path(tmp) / f"{len(cases)}.yaml"
            path.write_text(text)
            cases[f"{name} ({len(text.encode()):,} bytes)" if "bytes" not in name else name] = str(path)
        baseline = [_one_python() for _ in range(args.repeats)]
        print(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}; "
              f"median of {args.repeats} runs (peak RSS: the largest); each a whole `check-config` process, start-up included.\n")
        print("| config | exit | process wall (s) | process CPU (s) | peak RSS (MiB) | `load()` alone, CPU (ms) |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| `python -c pass` (interpreter start-up alone) | 0 | {statistics.median(w for w, _ in baseline):.2f} | "
              f"{statistics.median(c for _, c in baseline):.2f} | | |")
        for name, path in cases.items():
            runs = [_one(path) for _ in range(args.repeats)]
            print(f"| {name} | {runs[0][3]} | {statistics.median(r[0] for r in runs):.2f} | {statistics.median(r[1] for r in runs):.2f} | "
                  f"{max(r[2] for r in runs):.0f} | {statistics.median(_load_cpu(path) for _ in range(args.repeats)) * 1000:.0f} |")


def _load_cpu(path: str) -> float:
    """CPU seconds of `probe.config.load` in this process (imports already done)."""
    from probe import config

    started = time.process_time()
    try:
        config.load(path)
    except config.ConfigError:
        pass
    return time.process_time() - started


def _one_python() -> tuple[float, float]:
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _, _, usage = os.wait4(child.pid, 0)
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
