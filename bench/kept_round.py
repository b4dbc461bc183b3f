"""What a `run` process holds of its latest round between rounds, and what packing it costs.

One real round against bench/run.py's nginx and targets, in this process (`run_round`, as the
monitor makes it); then of its result:
the Python memory of one copy of it (tracemalloc, a copy unpickled), what probe/kept.py holds of
it packed, the memory packing takes on top (tracemalloc's peak) and a copy unpacked (what a page
or `/status.json` reads), and the CPU of packing and
unpacking it (`time.process_time`, medians).
With a path, the round's pickle is saved there (to render the page and `/status.json` of the
same round with two trees).

    sudo unshare -n -m python bench/kept_round.py [TARGETS] [REPEATS] [SAVE]    # default 1000 5

One JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import gc
import json
import pickle
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from served import served_targets  # noqa: E402 - bench/served.py: bench/run.py's targets, set up and torn down


def _cpu(step: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        step()  # type: ignore[operator]
        times.append(time.process_time() - start)
    return round(statistics.median(times) * 1000, 1)


def main() -> int:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    save = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    with served_targets(targets, "msgreach-kept-") as path:
        from probe import config as config_module
        from probe.kept import KeptResults
        from probe.runner import prepare_process, run_round

        prepare_process()
        config = config_module.load(str(path))
        vantage = config.vantages[0].name
        out: dict[str, object] = {"targets": targets}

        async def measure() -> None:
            result = await run_round(config, config.vantages[0])  # the records as a round makes them
            blob = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
            if save is not None:
                save.write_bytes(blob)
            kept = KeptResults({vantage: result})
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            copy = pickle.loads(blob)
            out["objects_kib"] = round((tracemalloc.get_traced_memory()[0] - before) / 1024)
            del copy
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            kept.pack()
            out["pack_peak_kib"] = round((tracemalloc.get_traced_memory()[1] - before) / 1024)
            before = tracemalloc.get_traced_memory()[0]
            kept[vantage]  # what a page or /status.json unpacks, held until the answer is sent
            out["unpacked_kib"] = round((tracemalloc.get_traced_memory()[0] - before) / 1024)
            kept.release()
            tracemalloc.stop()
            out["packed_kib"] = round(kept.packed_bytes() / 1024)

            def pack() -> None:
                kept[vantage] = result
                kept.pack()

            def unpack() -> None:
                kept.release()
                kept[vantage]

            out["pack_ms"] = _cpu(pack, repeats)
            out["unpack_ms"] = _cpu(unpack, repeats)

        asyncio.run(measure())
        print(json.dumps(out))
        return 0


if __name__ == "__main__":
    sys.exit(main())
