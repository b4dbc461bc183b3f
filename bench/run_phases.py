"""Memory of `msgreach run`, phase by phase: RSS and its peak around each round and each scrape.

Does what `msgreach run` does for its rounds, in-process (the monitor's round, its publication:
state, history, the `/metrics` render), against the same nginx and targets as bench/run.py, and
prints per round: RSS before, after the round and its peak during it, after a gzip scrape (as
Prometheus makes it) and its peak. The peak is reset between phases (`/proc/self/clear_refs`).

    sudo unshare -n -m python bench/run_phases.py [TARGETS] [ROUNDS]     # default 1000 5

Its own namespaces: only loopback, /etc/hosts bind-mounted privately (bench/run.py's helpers).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msgreach_round import rss_kib as _kib  # noqa: E402 - a field of /proc/self/status, in KiB
from served import served_targets  # noqa: E402 - bench/served.py: bench/run.py's targets, set up and torn down


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def main() -> int:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with served_targets(targets, "msgreach-phases-") as path:
        from probe import config as config_module
        from probe.metrics import Exposition
        from probe.runner import prepare_process
        from probe.service import Monitor

        prepare_process()
        config = config_module.load(str(path))
        gc.collect()
        gc.freeze()
        print(f"{targets} targets; RSS after start-up {_kib() / 1024:.0f} MiB", flush=True)

        async def measure() -> None:
            monitor = Monitor(config, None)
            monitor.exposition = Exposition(monitor.state, monitor.history)
            for number in range(1, rounds + 1):
                _reset_peak()
                before = _kib()
                await monitor.round(config.vantages[0].name)
                after, round_peak = _kib(), _kib("VmHWM")
                _reset_peak()
                body = monitor.exposition.render(gzip=True)
                scraped, scrape_peak = _kib(), _kib("VmHWM")
                del body
                print(f"round {number}: RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB (peak {round_peak / 1024:.0f}); "
                      f"after a scrape {scraped / 1024:.0f} MiB (peak {scrape_peak / 1024:.0f})", flush=True)
            await monitor.stop()

        asyncio.run(measure())
        return 0


if __name__ == "__main__":
    sys.exit(main())
