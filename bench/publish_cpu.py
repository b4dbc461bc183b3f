"""CPU of a steady `run` round's bookkeeping, step by step: the verdict history, the evidence
archive, the state and the `/metrics` render (what `Monitor._publish` does after the
measurement), and one gzip OpenMetrics scrape.

One real round against bench/run.py's nginx and targets, in this process (the monitor's own
round, with the archive and the history on, in a temporary state directory); then the round's
result is published again K times, each a minute later than the one before (the steady case: the
same verdicts extend the history's spans), and each step's CPU (`time.process_time`) is taken.

    sudo unshare -n -m python bench/publish_cpu.py [TARGETS] [REPEATS] [--profile]    # default 1000 7

With --profile, cProfile's top functions of each step (cumulative) go to stderr.

Prints the median CPU per step in milliseconds, and the least of the repeats, as JSON on the last line.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import pstats
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from served import served_targets  # noqa: E402 - bench/served.py: bench/run.py's targets, set up and torn down


def main() -> int:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    profile = "--profile" in sys.argv
    with served_targets(targets, "msgreach-publish-") as path:
        from probe import config as config_module
        from probe.metrics import Exposition
        from probe.runner import prepare_process
        from probe.service import Monitor

        prepare_process()
        config = config_module.load(str(path))
        vantage = config.vantages[0].name
        steps: dict[str, list[float]] = {"history": [], "archive": [], "state": [], "refresh": [], "scrape": []}

        async def measure() -> None:
            monitor = Monitor(config, None)
            monitor.exposition = Exposition(monitor.state, monitor.history)
            await monitor.round(vantage)
            result = monitor.state.latest[vantage]
            ok = sum(1 for s in result.services for t in s.targets if t.verdict == "ok")
            if ok != targets:
                raise RuntimeError(f"{ok}/{targets} targets ok")
            assert monitor.archive is not None and monitor.exposition is not None
            gc.collect()
            for number in range(1, repeats + 1):
                again = replace(result, started_at=result.started_at + 60 * number)
                for name, step in (
                    ("history", lambda: monitor.history.record(again)),
                    ("archive", lambda: monitor.archive.append(again)),  # type: ignore[union-attr]
                    ("state", lambda: monitor.state.record(again)),
                    ("refresh", lambda: monitor.exposition.refresh()),  # type: ignore[union-attr]
                    ("scrape", lambda: monitor.exposition.render(gzip=True, openmetrics=True)),  # type: ignore[union-attr]
                ):
                    profiler = cProfile.Profile() if profile and number == repeats else None
                    start = time.process_time()
                    if profiler is not None:
                        profiler.runcall(step)
                    else:
                        step()
                    steps[name].append(time.process_time() - start)
                    if profiler is not None:
                        print(f"--- {name}", file=sys.stderr)
                        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
            await monitor.stop()
            monitor.history.close()

        asyncio.run(measure())
        medians = {name: round(statistics.median(values) * 1000, 1) for name, values in steps.items()}
        medians["total"] = round(sum(medians.values()), 1)
        # The least of the repeats: what the step costs with the least interference from other load.
        least = {name: round(min(values) * 1000, 1) for name, values in steps.items()}
        least["total"] = round(sum(least.values()), 1)
        print(json.dumps({"targets": targets, "repeats": repeats, "ms": medians, "min_ms": least}))
        return 0


if __name__ == "__main__":
    sys.exit(main())
