"""One `msgreach once` round, in-process, with the cost of each phase measured.

Does what `msgreach once --config FILE --format json` does (load the config, `run_all`, render
the JSON document) and prints one JSON line with: CPU seconds of the start-up (imports and config
load) and of the round, the round's wall time, RSS before and after, and the target verdicts.
The parent (bench/run.py) adds the process totals from wait4(): user+sys CPU and ru_maxrss.

    python bench/msgreach_round.py CONFIG [OUTPUT_JSON]
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time

_T0_CPU = time.process_time()


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    import asyncio
    import collections
    import json

    from probe import config as config_module
    from probe import report
    from probe.runner import prepare_process, run_all

    prepare_process()  # as `once` does (probe/cli.py), before the config
    config = config_module.load(sys.argv[1])
    gc.collect()  # and after it, as probe/cli.py's _load does
    gc.freeze()
    startup_cpu = _cpu()
    rss_idle = rss_kib()

    started_at, wall0, cpu0 = time.time(), time.monotonic(), _cpu()
    results = asyncio.run(run_all(config))
    wall1, cpu1 = time.monotonic(), _cpu()
    with open(sys.argv[2] if len(sys.argv) > 2 else os.devnull, "w") as out:  # as `once` writes it
        report.write_json(results, started_at, wall1 - wall0, out)
    cpu2 = _cpu()

    verdicts: collections.Counter[str] = collections.Counter()
    failures: collections.Counter[str] = collections.Counter()
    for vantage in results:
        for service in vantage.services:
            for target in service.targets:
                verdicts[target.verdict] += 1
                for check in target.checks:
                    if not check.ok:
                        failures[f"{check.check}:{check.failure}"] += 1
    print(json.dumps({
        "startup_cpu": startup_cpu,
        "round_cpu": cpu1 - cpu0,
        "render_cpu": cpu2 - cpu1,
        "round_wall": wall1 - wall0,
        "rss_idle_kb": rss_idle,
        "rss_after_kb": rss_kib(),
        "hwm_kb": rss_kib("VmHWM"),
        "verdicts": dict(verdicts),
        "failures": dict(failures.most_common(5)),
        "vantage_verdicts": [v.verdict for v in results],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
