"""The evidence archive's cost per round, on a saved round: the same round appended by any tree.

    sudo unshare -n -m python bench/archive_append.py save ROUND.pickle [TARGETS]   # default 1000
    python bench/archive_append.py append ROUND.pickle [REPEATS] [--profile]          # default 5
    python bench/archive_append.py lines ROUND.pickle OUT.jsonl [--as-appended]      # the lines alone
    python bench/archive_append.py document ROUND.pickle OUT.json                    # `once`'s JSON of it
    python bench/archive_append.py build ROUND.pickle N [--document]                 # for callgrind

`save` measures one real round in this process against bench/run.py's nginx and N loopback TLS
targets (checks tcp, tls, http; the archive off) and pickles the round's result with its
vantage's config. `append` appends that round REPEATS times to a fresh archive in a temporary
directory (`Archive.append`: the records built, scrubbed, encoded, written and fsynced) and
prints the CPU of each append (`time.process_time`) and their median, in milliseconds, as JSON
on the last line. `lines` writes the round's archive lines (`records` then `encode`; with
--as-appended as `append` makes them, `encoded_records`) to a file, so two trees' lines can be compared byte for byte; `document` writes
`once`'s JSON document of the round (`probe.report.write_json`), for the same comparison. `build`
makes the round's lines (or, with --document, its JSON document) N times in memory and prints
the CPU of each: under callgrind, the instructions of N=2 less those of N=0, halved, are one
round's (load-proof).

Run with PYTHONPATH naming the tree to measure (the pickle holds probe.model's classes by name:
both trees must define them alike).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pickle
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def save(out: Path, targets: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from served import served_targets  # bench/served.py: bench/run.py's targets, set up and torn down

    with served_targets(targets, "msgreach-archive-") as path:
        from probe import config as config_module
        from probe.runner import prepare_process, run_round

        prepare_process()
        config = config_module.load(str(path))
        vantage = config.vantages[0]
        result: Any = asyncio.run(run_round(config, vantage))
        ok = sum(1 for s in result.services for t in s.targets if t.verdict == "ok")
        print(f"{ok}/{targets} targets ok", file=sys.stderr)
        out.write_bytes(pickle.dumps((result, vantage)))


def _evidence(path: Path) -> Any:
    from probe.config import Evidence

    return Evidence(path=str(path))


def append(saved: Path, repeats: int, profile: bool) -> None:
    from probe.evidence.archive import Archive

    result, vantage = pickle.loads(saved.read_bytes())
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-archive-"))
    try:
        archive = Archive(_evidence(tmp / "evidence.jsonl"), [vantage])
        times = []
        for number in range(repeats):
            profiler = cProfile.Profile() if profile and number == repeats - 1 else None
            start = time.process_time()
            written = profiler.runcall(archive.append, result) if profiler else archive.append(result)
            times.append(time.process_time() - start)
            if profiler is not None:
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        print(json.dumps({"lines": written, "ms": [round(t * 1000, 1) for t in times], "median_ms": round(statistics.median(times) * 1000, 1)}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lines(saved: Path, out: Path, as_appended: bool) -> None:
    from probe.evidence.archive import encode, encoded_records
    from probe.evidence.records import records

    result, vantage = pickle.loads(saved.read_bytes())
    with out.open("wb") as file:
        if as_appended:  # as `append` writes them (`encoded_records`)
            file.writelines(encoded_records(result, vantage))
        else:
            for record in records(result, vantage):
                file.write(encode(record))


def document(saved: Path, out: Path) -> None:
    from probe.report import write_json

    result, _ = pickle.loads(saved.read_bytes())
    with out.open("w", encoding="utf-8") as file:
        write_json([result], result.started_at, result.duration_seconds, file)


def build(saved: Path, repeats: int, as_document: bool) -> None:
    import io

    from probe.evidence.archive import encoded_records
    from probe.report import write_json

    result, vantage = pickle.loads(saved.read_bytes())
    times = []
    for _ in range(repeats):
        start = time.process_time()
        if as_document:
            write_json([result], result.started_at, result.duration_seconds, io.StringIO())
        else:
            for _line in encoded_records(result, vantage):
                pass
        times.append(time.process_time() - start)
    print(json.dumps({"ms": [round(t * 1000, 1) for t in times]}))


def main() -> None:
    command, saved = sys.argv[1], Path(sys.argv[2])
    rest = [a for a in sys.argv[3:] if not a.startswith("--")]
    if command == "save":
        save(saved, int(rest[0]) if rest else 1000)
    elif command == "append":
        append(saved, int(rest[0]) if rest else 5, "--profile" in sys.argv)
    elif command == "lines":
        lines(saved, Path(rest[0]), "--as-appended" in sys.argv)
    elif command == "document":
        document(saved, Path(rest[0]))
    elif command == "build":
        build(saved, int(rest[0]), "--document" in sys.argv)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
