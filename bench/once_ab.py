"""The whole `msgreach once` process, A against B: the real command line (`python -m probe once
--config X --format json`, start-up, config load, the round, the evidence archive, the JSON,
exit) of two source trees, interleaved run by run on bench/run.py's nginx and targets, and, in
the same process, where its CPU went outside the round (start-up, config load, round, archive,
JSON, exit: bench/once_phases.py wraps the same `probe.cli.main`).

    sudo unshare -n -m python bench/once_ab.py TARGETS REPEATS [REV ...]

Each run gets a fresh state directory (XDG_STATE_HOME), so every `once` appends its round to an
empty evidence archive, as a first `once` on a volunteer's machine does, and no run's archive
lands in the account's own. Printed per revision: medians of the process's CPU (wait4) and
peak RSS, and of each phase. Every target must be `ok` or it stops. For issue 22's figures in
docs/benchmarks.md ("`once` beyond the round").
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

import cpu_ab  # noqa: E402 - its exported revisions
import run as bench  # noqa: E402 - bench/run.py: certificates, hosts, nginx, the config

PHASES = ("startup", "config", "round", "archive", "json", "exit")


def main() -> int:
    targets, repeats = int(sys.argv[1]), int(sys.argv[2])
    revisions = sys.argv[3:] or ["."]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-once-ab-"))
    nginx = None
    try:
        sources = cpu_ab._sources(tmp, revisions)
        bench.make_certificates(tmp)
        nginx = bench.start_nginx(tmp, targets)
        config = bench.msgreach_config(tmp, targets, 16)
        runs: dict[str, list[dict[str, float]]] = {rev: [] for rev in revisions}
        for _ in range(repeats):
            for rev in revisions:
                runs[rev].append(_once(tmp, sources[rev], config, targets))
        print(f"{targets} targets, {repeats} runs each, load {bench.loadavg()}")
        for rev, samples in runs.items():
            median = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
            phases = ", ".join(f"{p} {median[p]:.3f}" for p in PHASES)
            print(f"{rev:>10}: process CPU median {median['cpu']:.3f} s {[round(s['cpu'], 2) for s in samples]};"
                  f" peak RSS {median['rss_mib']:.1f} MiB; phases (CPU s): {phases}")
    finally:
        bench.stop(nginx)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _once(tmp: Path, source: Path, config: Path, targets: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="state-", dir=tmp))
    env = {**bench.clean_env(), "PYTHONPATH": str(source), "XDG_STATE_HOME": str(state)}
    argv = [sys.executable, str(bench.REPO / "bench" / "once_phases.py"), "once", "--config", str(config), "--format", "json"]
    with open(tmp / "once.json", "w+") as out, open(tmp / "phases.json", "w+") as phases:
        proc = subprocess.Popen(argv, env={**env, "MSGREACH_BENCH_PHASES": phases.name}, cwd=source,
                                stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if code != 0:
            raise RuntimeError(f"once exited {code}: {err[-2000:]}")
        out.seek(0)
        document = json.load(out)
        figures = json.loads(Path(phases.name).read_text())
    ok = [t["verdict"] for v in document["vantages"] for s in v["services"] for t in s["targets"]].count("ok")
    if ok != targets:
        raise RuntimeError(f"once: {ok}/{targets} ok")
    shutil.rmtree(state, ignore_errors=True)
    cpu = usage.ru_utime + usage.ru_stime
    figures["exit"] = cpu - figures.pop("main_end")
    return {"cpu": cpu, "rss_mib": usage.ru_maxrss / 1024, **figures}


if __name__ == "__main__":
    sys.exit(main())
