"""/metrics in the Prometheus text format and in OpenMetrics: CPU, peak memory and size of one
render of a vantage with N targets (what `msgreach run` does once per round, in the format the
last scrape asked for; Prometheus asks for OpenMetrics).

    python bench/exposition_formats.py [--targets 1000] [--repeat 7]

Synthetic results (every target ok, four checks each): no network, no round; only the render
(`probe.metrics.Exposition.refresh`) is timed. Results: docs/benchmarks.md, "/metrics formats".
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe import config as config_module
from probe.history import History
from probe.metrics import Exposition, State
from probe.model import (
    CheckResult,
    ServiceResult,
    TargetResult,
    VantageResult,
    VantageVerdict,
    Verdict,
)

CHECKS = ("dns", "tcp", "tls", "http")


def state_of(targets: int) -> State:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.yaml"
        rows = "".join(f"      - {{name: t{i}, host: t{i}.bench.test, checks: [dns, tcp, tls, http]}}\n" for i in range(targets))
        path.write_text(
            "vantages: [{name: bench, resolvers: ['127.0.0.1:53']}]\n"
            "controls: [{name: ctl, host: ctl.bench.test, checks: [dns]}]\n"
            f"services:\n  - name: svc\n    targets:\n{rows}"
        )
        config = config_module.load(path)
    state = State(config)
    results = [
        TargetResult("svc", f"t{i}", f"t{i}.bench.test", Verdict.OK, [CheckResult(c, True, None, 0.01 * (i % 7 + 1)) for c in CHECKS])
        for i in range(targets)
    ]
    controls = [TargetResult("controls", "ctl", "ctl.bench.test", Verdict.OK, [CheckResult("dns", True, None, 0.02)])]
    state.record(VantageResult("bench", VantageVerdict.OK, [ServiceResult("svc", Verdict.OK, results)], controls, time.time(), 3.0))
    return state


def measure(state: State, openmetrics: bool, repeat: int) -> dict[str, float]:
    exposition = Exposition(state, History())
    cpu = []
    for _ in range(repeat):
        state.version += 1  # a new round: the render is made again
        started = time.process_time()
        exposition.refresh(openmetrics=openmetrics)
        cpu.append(time.process_time() - started)
    state.version += 1
    tracemalloc.start()
    exposition.refresh(openmetrics=openmetrics)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    body = b"".join(exposition.render(openmetrics=openmetrics))
    kept = b"".join(exposition.render(gzip=True, openmetrics=openmetrics))
    def ours(text):
        return text.split(b"# HELP process_")[0]
    assert ours(gzip.decompress(kept)) == ours(body)
    return {"cpu_ms": statistics.median(cpu) * 1000, "peak_mib": peak / 2**20, "text_kib": len(body) / 1024, "gzip_kib": len(kept) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    state = state_of(args.targets)
    print(f"{args.targets} targets x {len(CHECKS)} checks, median of {args.repeat} renders")
    print(f"{'format':<12} {'CPU ms':>8} {'peak MiB':>9} {'text KiB':>9} {'gzip KiB':>9}")
    for name, openmetrics in (("text 0.0.4", False), ("OpenMetrics", True)):
        m = measure(state, openmetrics, args.repeat)
        print(f"{name:<12} {m['cpu_ms']:8.0f} {m['peak_mib']:9.1f} {m['text_kib']:9.0f} {m['gzip_kib']:9.0f}")


if __name__ == "__main__":
    main()
