"""`msgreach once` as the command line runs it, with the CPU of each phase written to the JSON
file named by MSGREACH_BENCH_PHASES (for bench/once_ab.py): start-up (the interpreter, imports,
the command line: everything before the config's load), the config's load, the round
(`asyncio.run`), the evidence archive's appends, the JSON, and `main_end`, the CPU when `main`
returned (the parent subtracts it from wait4's total: the exit).

    MSGREACH_BENCH_PHASES=OUT.json python bench/once_phases.py once --config FILE --format json

The phases are timed by wrapping the functions `once` calls (the same ones in every revision
since issue 22), so what runs is what `python -m probe once` runs (`probe.__main__.run`'s
collector switched off through start-up included, in revisions that have it).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


PHASES: dict[str, float] = {"startup": 0.0, "config": 0.0, "round": 0.0, "archive": 0.0, "json": 0.0}


def _timed(name: str, function: Callable[..., Any], *, first_marks_startup: bool = False) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = _cpu()
        if first_marks_startup and not PHASES["startup"]:
            PHASES["startup"] = started
        try:
            return function(*args, **kwargs)
        finally:
            PHASES[name] += _cpu() - started

    return timed


def main() -> None:
    import gc
    import importlib.util

    launcher = importlib.util.find_spec("probe.__main__")
    if launcher and launcher.origin and "def run(" in open(launcher.origin).read():
        gc.disable()  # as probe.__main__.run does before the imports (not in every revision)
    from probe import cli, report
    from probe import config as config_module
    from probe.evidence import archive

    config_module.load = _timed("config", config_module.load, first_marks_startup=True)
    report.write_json = _timed("json", report.write_json)
    archive.Archive.append = _timed("archive", archive.Archive.append)  # type: ignore[method-assign]
    asyncio.run = _timed("round", asyncio.run)
    real_main = cli.main

    def main_then_write(argv: list[str] | None = None) -> int:
        code = real_main(argv)
        PHASES["main_end"] = _cpu()
        with open(os.environ["MSGREACH_BENCH_PHASES"], "w") as out:
            json.dump(PHASES, out)
        return code

    cli.main = main_then_write  # type: ignore[assignment]
    entry = getattr(cli, "entry", None)
    if entry is not None:
        entry()  # ends the process as `msgreach` does
    raise SystemExit(main_then_write())


if __name__ == "__main__":
    sys.argv[0] = "msgreach"
    main()
