"""CPU of one `msgreach once` round, A against B: two source trees measured interleaved on the
same nginx and targets as bench/run.py (one namespace, loopback only), medians reported.

    sudo unshare -n -m python bench/cpu_ab.py TARGETS REPEATS [REV ...]
    sudo unshare -n -m python bench/cpu_ab.py TARGETS --py-spy OUT.txt [REV]   # one `once` round, profiled
    sudo unshare -n -m python bench/cpu_ab.py TARGETS,TARGETS2 --callgrind [REV ...]   # instructions, load-proof

With --callgrind each REV runs once per size under valgrind's callgrind (no cache simulation:
instructions executed, which neither load nor the machine changes), and the difference between
the two sizes divided by the targets between them is the instructions per target of the round
and its JSON, start-up excluded.


Each REV (a commit, or `.` for the working tree) is measured REPEATS times, the revisions
alternating run by run; printed per revision: the round's CPU, the whole process's CPU (start-up,
round, JSON), the round's wall, with their medians. Every target must be `ok` or it stops.
Used for the per-change figures of docs/benchmarks.md (issue 22); run.py gives the headline.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 - bench/run.py: certificates, hosts, nginx, the config

# The checks of every target (default tcp,tls,http): MSGREACH_BENCH_CHECKS=tcp,tls for the cost of
# the http check by difference.
CHECKS = tuple(os.environ.get("MSGREACH_BENCH_CHECKS", "tcp,tls,http").split(","))


def main() -> int:
    if sys.argv[2] == "--callgrind":
        return _callgrind([int(n) for n in sys.argv[1].split(",")], sys.argv[3:] or ["."])
    targets = int(sys.argv[1])
    profile = sys.argv[3] if sys.argv[2] == "--py-spy" else None
    repeats = 1 if profile else int(sys.argv[2])
    revisions = (sys.argv[4:] or ["."]) if profile else sys.argv[3:] or ["."]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-cpu-ab-"))
    nginx = None
    try:
        sources = _sources(tmp, revisions)
        bench.make_certificates(tmp)
        nginx = bench.start_nginx(tmp, targets)
        if profile:
            bench.SOURCE["path"] = sources[revisions[0]]
            _profile(tmp, targets, profile)
            return 0
        samples: dict[str, list[bench.Sample]] = {rev: [] for rev in revisions}
        for _ in range(repeats):
            for rev in revisions:
                bench.SOURCE["path"] = sources[rev]
                samples[rev].append(bench.msgreach_round(tmp, targets, 16, checks=CHECKS))
        print(f"{targets} targets, {repeats} runs each, load {bench.loadavg()}")
        for rev, runs in samples.items():
            rounds = [s.cpu for s in runs]
            totals = [s.extra["total_cpu"] for s in runs]
            walls = [s.wall for s in runs]
            startup = statistics.median(s.extra["startup_cpu"] for s in runs)
            render = statistics.median(s.extra["render_cpu"] for s in runs)
            print(f"{rev:>10}: round CPU median {statistics.median(rounds):.3f} s {[round(x, 2) for x in rounds]};"
                  f" process CPU median {statistics.median(totals):.3f} s (start-up {startup:.3f}, JSON {render:.3f});"
                  f" round wall median {statistics.median(walls):.2f} s")
    finally:
        bench.stop(nginx)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _sources(tmp: Path, revisions: list[str]) -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for rev in revisions:
        if rev == ".":
            sources[rev] = bench.REPO
        else:
            (tmp / rev).mkdir()
            bench.export_revision(rev, tmp / rev)
            sources[rev] = Path(bench.SOURCE["path"])
            # Compiled now, as the working tree's are: else the first run of an exported revision
            # pays the compilation of every module it imports.
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(sources[rev])], check=True)
    return sources


def _patient(config: Path) -> Path:
    """Check timeouts long enough for a run 50 times slower (a handshake cut by its timeout would
    be another measurement)."""
    import yaml

    data = yaml.safe_load(config.read_text())
    data["schedule"]["timeouts"] = {"tcp": 300, "tls": 300, "http": 300}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def _callgrind(sizes: list[int], revisions: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-callgrind-"))
    nginx = None
    try:
        sources = _sources(tmp, revisions)
        bench.make_certificates(tmp)
        nginx = bench.start_nginx(tmp, max(sizes))
        counts: dict[str, list[int]] = {rev: [] for rev in revisions}
        for n in sizes:
            config = _patient(bench.msgreach_config(tmp, n, 16, checks=CHECKS))
            for rev in revisions:
                bench.SOURCE["path"] = sources[rev]
                out = tmp / f"callgrind-{n}-{rev}.out"
                with open(tmp / "round.json", "w+") as facts:
                    bench.run_waited(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                                      str(bench.REPO / "bench" / "msgreach_round.py"), str(config)], facts)
                    facts.seek(0)
                    verdicts = json.loads(facts.read())["verdicts"]
                if verdicts.get("ok", 0) != n:
                    raise RuntimeError(f"{rev}: {verdicts}")
                summary = next(line for line in out.read_text().splitlines() if line.startswith(("summary:", "totals:")))
                counts[rev].append(int(summary.split()[1]))
        low, high = sizes[0], sizes[-1]
        print(f"instructions (callgrind), {low} and {high} targets, checks {','.join(CHECKS)}")
        for rev, (a, b) in counts.items():
            print(f"{rev:>10}: {a / 1e9:.2f} G and {b / 1e9:.2f} G; per target {(b - a) / (high - low) / 1e6:.3f} M; start-up and fixed costs {(a - (b - a) / (high - low) * low) / 1e9:.2f} G")
    finally:
        bench.stop(nginx)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _profile(tmp: Path, targets: int, out: str) -> None:
    """py-spy, native frames included, sampling one round (start-up and JSON too), collapsed stacks."""
    config = bench.msgreach_config(tmp, targets, 16)
    py_spy = Path(sys.executable).with_name("py-spy")
    subprocess.run([str(py_spy), "record", "--native", "--rate", "400", "--format", "raw", "--output", out, "--",
                    sys.executable, str(bench.REPO / "bench" / "msgreach_round.py"), str(config)],
                   check=True, env=bench.clean_env(), cwd=bench.SOURCE["path"])


if __name__ == "__main__":
    sys.exit(main())
