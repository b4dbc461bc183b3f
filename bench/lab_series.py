#!/usr/bin/env python3
"""One vantage's `/metrics` with the shipped catalogs: a `msgreach run` round in the censorship
lab (tests/lab: every catalog host served, nothing blocked), scraped as Prometheus scrapes
(OpenMetrics), saved for bench/central.py, and its series counted by family.

    export MRL_LAB_PREFIX=mri- MRL_LAB_DIR=/tmp/mri-lab      # a lab of your own beside others'
    python3 bench/lab_series.py /tmp/catalogs-metrics.txt

Brings the lab up (root), runs `msgreach run` with the lab config in the client namespace until
its first round is logged, scrapes, stops msgreach (by PID) and tears the lab down.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import PROMETHEUS_ACCEPT  # noqa: E402 - what Prometheus asks msgreach for
from tests.lab.lab import Lab  # noqa: E402
from tests.lab.plan import NS_CLIENT  # noqa: E402
from tests.lab.teardown import install  # noqa: E402

LISTEN = "127.0.0.1:9910"  # inside the lab's client namespace


def families(text: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            counts[re.split(r"[{ ]", line, maxsplit=1)[0]] += 1
    return counts


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    lab = Lab()
    teardown = install(lab)
    lab.up()
    try:
        config = lab.write_config(lab.dir / "series.yaml", interval=60, listen=LISTEN)
        log = lab.dir / "series-run.log"
        with open(log, "w") as err:
            proc = subprocess.Popen(["ip", "netns", "exec", NS_CLIENT, *lab.msgreach_argv(), "run", "--config", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
        try:
            deadline = time.monotonic() + 120
            while "round lab-client:" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("msgreach run: no round: " + log.read_text()[-2000:])
                time.sleep(0.5)
            scraped = subprocess.run(["ip", "netns", "exec", NS_CLIENT, "curl", "-sf", "--compressed", "-H", f"Accept: {PROMETHEUS_ACCEPT}",
                                      f"http://{LISTEN}/metrics"], capture_output=True, text=True, check=True, timeout=30).stdout
        finally:
            proc.terminate()
            proc.wait(20)
        out.write_text(scraped)
        round_line = re.findall(r"round lab-client: .*", log.read_text())[0]
        counts = families(scraped)
        print(json.dumps({"file": str(out), "round": round_line, "series": sum(counts.values()), "families": counts.most_common()}, indent=1))
        return 0
    finally:
        teardown.run()


if __name__ == "__main__":
    sys.exit(main())
