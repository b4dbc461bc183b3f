"""What a `run` process holds of its latest round between rounds, and what packing it costs.

One real round against bench/run.py's nginx and targets, in this process (the monitor's own
round, the archive and the history on, a temporary state directory); then of the kept result:
the Python memory of one copy of it (tracemalloc, a copy unpickled), its pickle and the pickle
compressed (bytes), and the CPU of packing and unpacking it (`time.process_time`, medians).
With a path, the round's pickle is saved there (to render the page and `/status.json` of the
same round with two trees).

    sudo unshare -n -m python bench/kept_round.py [TARGETS] [REPEATS] [SAVE]    # default 1000 5

One JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run as bench  # noqa: E402 - bench/run.py: certificates, hosts, nginx, the config


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
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-kept-"))
    os.environ["MSGREACH_STATE_DIR"] = str(tmp / "state")
    nginx = None
    try:
        bench.make_certificates(tmp)
        bench.private_hosts(tmp, targets)
        nginx = bench.start_nginx(tmp, targets)
        path = bench.msgreach_config(tmp, targets, 16, 60.0)
        from probe import config as config_module
        from probe.runner import prepare_process
        from probe.service import Monitor

        prepare_process()
        config = config_module.load(str(path))
        vantage = config.vantages[0].name
        out: dict[str, object] = {"targets": targets}

        async def measure() -> None:
            monitor = Monitor(config, None)
            await monitor.round(vantage)
            result = monitor.state.latest[vantage]
            blob = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
            packed = zlib.compress(blob, 1)
            if save is not None:
                save.write_bytes(blob)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            copy = pickle.loads(blob)
            out["objects_kib"] = round((tracemalloc.get_traced_memory()[0] - before) / 1024)
            del copy
            tracemalloc.stop()
            out["pickle_kib"] = round(len(blob) / 1024)
            out["packed_kib"] = round(len(packed) / 1024)
            out["pack_ms"] = _cpu(lambda: zlib.compress(pickle.dumps(result, pickle.HIGHEST_PROTOCOL), 1), repeats)
            out["unpack_ms"] = _cpu(lambda: pickle.loads(zlib.decompress(packed)), repeats)
            await monitor.stop()
            monitor.history.close()

        asyncio.run(measure())
        print(json.dumps(out))
        return 0
    finally:
        bench.stop(nginx)
        subprocess.run(["umount", "/etc/hosts"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
