"""A hostile stand-in for the helper abroad (issue #18), run in the lab's `abroad` namespace: it
reads a request as the helper would, then answers the way a hostile party on the line can.

    --drip-port   the head of a 200 with a 100 KB body, then one byte every 2 s (never ends)
    --flood-port  a 200 without a length, then zeros as fast as the line takes them, up to 10 GB

Standard library only; stops with SIGTERM (the lab's teardown). Bytes sent are logged per
connection, so a test can say the stand-in really flooded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

FLOOD_BYTES = 10 * 1024**3
DRIP_SECONDS = 2.0


async def _request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"{" * 100000:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(DRIP_SECONDS)


async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    chunk, sent = bytes(64 * 1024), 0
    try:
        while sent < FLOOD_BYTES:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    finally:
        print(f"flood: {sent} bytes sent", flush=True)


def _guarded(handler):  # a stand-alone script: no project types
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the monitor hung up: what it should do
        finally:
            writer.close()
    return serve


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--drip-port", type=int, required=True)
    parser.add_argument("--flood-port", type=int, required=True)
    args = parser.parse_args(argv)
    servers = [await asyncio.start_server(_guarded(drip), args.listen, args.drip_port),
               await asyncio.start_server(_guarded(flood), args.listen, args.flood_port)]
    print(f"hostile helper on {args.listen}: drip {args.drip_port}, flood {args.flood_port}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
