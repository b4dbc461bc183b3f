"""Where a `run` round's memory goes: RSS at each phase of R rounds, and what holds it (Python's
allocator, glibc's), the monitor's own rounds in this process (as bench/run_phases.py does).

    python bench/memory_rounds.py CONFIG [ROUNDS]    # JSON on stdout; bench/memory.py runs it

Per round: RSS when it starts, when the measurement ends (`run_round`), after the publication
(state, history, archive, the /metrics render) and after the heap is trimmed, with the peak in
between (VmHWM, reset at each phase through /proc/self/clear_refs); then pymalloc's blocks in use
and free (`sys._debugmallocstats`) and glibc's bytes in use and free (`mallinfo2`).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import os
import sys


def _kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _allocators() -> dict[str, int]:
    """pymalloc's and glibc's own accounts, in bytes."""
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)  # _debugmallocstats writes to the C stderr
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    with os.fdopen(read) as text:
        stats = {}
        for line in text:
            key, _, value = line.rpartition("=")
            if key:
                try:
                    stats[key.strip()] = int(value.replace(",", "").strip())
                except ValueError:
                    pass
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    glibc = libc.mallinfo2()
    return {"pymalloc_arenas": stats.get("# arenas allocated current", 0) * 1024 * 1024, "pymalloc_used": stats.get("# bytes in allocated blocks", 0),
            "glibc_used": glibc.uordblks + glibc.hblkhd, "glibc_free": glibc.fordblks}


def main() -> int:
    config_path, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    from probe import config as config_module
    from probe import service
    from probe.metrics import Exposition
    from probe.runner import prepare_process

    prepare_process()
    config = config_module.load(config_path)
    gc.collect()
    gc.freeze()
    startup = {"rss": _kib(), **_allocators()}
    measured: list[dict[str, int]] = []
    marks: dict[str, int] = {}

    def mark(name: str) -> None:
        marks[name], marks[name + "_peak"] = _kib(), _kib("VmHWM")
        _reset_peak()

    run_round = service.run_round

    async def timed_round(*args: object, **kwargs: object) -> object:
        result = await run_round(*args, **kwargs)  # type: ignore[arg-type]
        mark("measured")
        return result

    service.run_round = timed_round  # type: ignore[assignment]

    async def measure() -> None:
        monitor = service.Monitor(config, None)
        monitor.exposition = Exposition(monitor.state, monitor.history)
        refresh = monitor.exposition.refresh

        def refreshed() -> None:
            refresh()
            mark("published")

        monitor.exposition.refresh = refreshed  # type: ignore[method-assign]
        for _ in range(rounds):
            marks.clear()
            mark("start")
            await monitor.round(config.vantages[0].name)  # measures, publishes, trims
            mark("trimmed")
            measured.append({**marks, **_allocators()})
        await monitor.stop()

    asyncio.run(measure())
    print(json.dumps({"startup": startup, "rounds": measured}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
