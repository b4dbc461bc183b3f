"""`msgreach run`'s steady rounds only (bench/run.py's `msgreach_steady`: the real process, scraped
after each round as Prometheus scrapes), for the tree given: RSS after each round, the peak
(VmHWM), CPU per round. For A/B runs of two trees (a commit exported with `git archive`) without
the rest of bench/run.py's contenders.

    sudo unshare -n -m python bench/run_steady.py TREE [TARGETS] [ROUNDS] [INTERVAL]   # default . 1000 5 10

The tree's own bench/run.py sets up nginx and the targets; its `probe` is the one `run` executes
(PYTHONPATH). One JSON line on stdout. The history and the archive go to a temporary state
directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    tree = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    targets = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    sys.path.insert(0, str(tree / "bench"))
    sys.path.insert(0, str(tree))
    os.chdir(tree)
    import run as bench  # the tree's bench/run.py

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-steady-"))
    os.environ["MSGREACH_STATE_DIR"] = str(tmp / "state")
    os.environ["PYTHONPATH"] = str(tree)
    nginx = None
    try:
        bench.make_certificates(tmp)
        bench.private_hosts(tmp, targets)
        nginx = bench.start_nginx(tmp, targets)
        sample = bench.msgreach_steady(tmp, targets, 16, rounds, interval)
        print(json.dumps({
            "tree": str(tree), "peak_mib": round(sample.peak_rss_kb / 1024, 1), "rss_mib": [round(r / 1024, 1) for r in sample.rounds["rss_kb"]],
            "cpu": [round(c, 2) for c in sample.rounds["cpu"]], "steady_cpu": round(sample.cpu, 2), "load": sample.load1,
        }))
        return 0
    finally:
        bench.stop(nginx)
        subprocess.run(["umount", "/etc/hosts"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
