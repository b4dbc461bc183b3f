"""A slowloris: N idle TCP connections held open against one address, each reopened after the
other side closes it, from one source address, for a bounded time (standard library only).

    python3 tests/lab/flood.py --target 198.18.4.2:9920 --source 198.18.0.3 --connections 3000 --seconds 120

It prints `flooding N` once every connection has been tried, then, on SIGTERM/SIGINT or at the
end of `--seconds`, one JSON line: attempts, connected, refused (reset while connecting, or
closed within a second of it), held (open a second or longer), failed (no connection: refused,
unreachable, timed out).
Nothing is ever sent on a connection. Used by tests/lab/test_helper_load.py and
bench/helper_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time
from dataclasses import asdict, dataclass

_QUICK = 1.0  # closed within this many seconds of connecting: refused at once


@dataclass
class Tally:
    attempts: int = 0
    connected: int = 0
    refused: int = 0
    held: int = 0
    failed: int = 0


async def _slot(host: str, port: int, source: str, reopen: float, tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        tally.attempts += 1
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(source, 0)), 10)
        except ConnectionResetError:  # reset before the connection was even set up here
            tally.refused += 1
        except (OSError, TimeoutError):
            tally.failed += 1
        else:
            tally.connected += 1
            opened = time.monotonic()
            closed = asyncio.ensure_future(_closed(reader))
            waiter = asyncio.ensure_future(stop.wait())
            await asyncio.wait({closed, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if closed.done():
                if time.monotonic() - opened < _QUICK:
                    tally.refused += 1
                else:
                    tally.held += 1
            else:
                closed.cancel()
            writer.transport.abort()
        try:
            await asyncio.wait_for(stop.wait(), reopen)
        except TimeoutError:
            pass


async def _closed(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass  # an answer (a 408) is read and dropped; the slowloris never sends
    except OSError:
        pass


async def flood(target: str, source: str, connections: int, seconds: float, reopen: float) -> Tally:
    host, _, port = target.rpartition(":")
    tally, stop = Tally(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(seconds, stop.set)
    slots = [asyncio.ensure_future(_slot(host, int(port), source, reopen, tally, stop)) for _ in range(connections)]
    while tally.attempts < connections and not stop.is_set():
        await asyncio.sleep(0.05)
    print(f"flooding {tally.attempts}", flush=True)
    await asyncio.gather(*slots)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--source", required=True, help="the source address of every connection")
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long at the latest")
    parser.add_argument("--reopen", type=float, default=1.0, help="seconds before a closed connection is reopened")
    args = parser.parse_args()
    want = args.connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:  # raising the hard limit too needs root (the lab and the bench run as root)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    tally = asyncio.run(flood(args.target, args.source, args.connections, args.seconds, args.reopen))
    print(json.dumps(asdict(tally)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
