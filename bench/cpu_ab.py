"""CPU of one `msgreach once` round, A against B: two source trees measured interleaved on the
same nginx and targets as bench/run.py (one namespace, loopback only), medians reported.

    sudo unshare -n -m python bench/cpu_ab.py TARGETS REPEATS [REV ...]
    sudo unshare -n -m python bench/cpu_ab.py TARGETS --py-spy OUT.txt   # one round of the working tree, profiled


Each REV (a commit, or `.` for the working tree) is measured REPEATS times, the revisions
alternating run by run; printed per revision: the round's CPU, the whole process's CPU (start-up,
round, JSON), the round's wall, with their medians. Every target must be `ok` or it stops.
Used for the per-change figures of docs/benchmarks.md (issue 22); run.py gives the headline.
"""

from __future__ import annotations

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
    targets = int(sys.argv[1])
    profile = sys.argv[3] if sys.argv[2] == "--py-spy" else None
    repeats = 1 if profile else int(sys.argv[2])
    revisions = [] if profile else sys.argv[3:] or ["."]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-cpu-ab-"))
    nginx = None
    try:
        sources: dict[str, Path] = {}
        for rev in revisions:
            if rev == ".":
                sources[rev] = bench.REPO
            else:
                (tmp / rev).mkdir()
                bench.export_revision(rev, tmp / rev)
                sources[rev] = Path(bench.SOURCE["path"])
        bench.make_certificates(tmp)
        nginx = bench.start_nginx(tmp, targets)
        if profile:
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


def _profile(tmp: Path, targets: int, out: str) -> None:
    """py-spy, native frames included, sampling one round (start-up and JSON too), collapsed stacks."""
    config = bench.msgreach_config(tmp, targets, 16)
    py_spy = Path(sys.executable).with_name("py-spy")
    subprocess.run([str(py_spy), "record", "--native", "--rate", "400", "--format", "raw", "--output", out, "--",
                    sys.executable, str(bench.REPO / "bench" / "msgreach_round.py"), str(config)],
                   check=True, env=bench.clean_env(), cwd=bench.REPO)


if __name__ == "__main__":
    sys.exit(main())
