"""The floor: what Python's asyncio pays for the network work of one target with nothing else
(connect, TLS 1.3 handshake validated against the bench CA, a GET, the answer read to its end),
on the same nginx and targets as bench/run.py, concurrency 16. Two ways of driving TLS:

- `streams`: asyncio's own (`open_connection(ssl=...)`: the pure-Python SSLProtocol over memory BIOs);
- `starttls`: the same, as msgreach connects: a plain connection, then `start_tls` on it;
- `sslsocket`: a non-blocking `ssl.SSLSocket` driven by the loop's readers and writers (the
  handshake and the record layer in C).

    sudo unshare -n -m python bench/floor.py TARGETS REPEATS

Prints the CPU seconds per 1,000 targets of each (medians), and with `--msgreach-context` the
same with the context msgreach builds (system CAs from the hashed directory plus the bench CA).
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run as bench  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _streams(context: ssl.SSLContext, address: str, host: str) -> int:
    reader, writer = await asyncio.open_connection(address, 443, ssl=context, server_hostname=host)
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    return len(body)


async def _starttls(context: ssl.SSLContext, address: str, host: str) -> int:
    """msgreach's way: a plain connection (the tcp check's), upgraded (the tls check's)."""
    reader, writer = await asyncio.open_connection(address, 443)
    await writer.start_tls(context, server_hostname=host)
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    return len(body)


async def _wait(loop: asyncio.AbstractEventLoop, sock: socket.socket, writing: bool) -> None:
    future = loop.create_future()
    fd = sock.fileno()
    (loop.add_writer if writing else loop.add_reader)(fd, future.set_result, None)
    try:
        await future
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)


async def _sslsocket(context: ssl.SSLContext, address: str, host: str) -> int:
    loop = asyncio.get_running_loop()
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setblocking(False)
    await loop.sock_connect(raw, (address, 443))
    tls = context.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await _wait(loop, tls, False)
            except ssl.SSLWantWriteError:
                await _wait(loop, tls, True)
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        received = 0
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLWantReadError:
                await _wait(loop, tls, False)
                continue
            if not chunk:
                return received
            received += len(chunk)
    finally:
        tls.close()


async def _round(kind: str, context: ssl.SSLContext, n: int) -> float:
    one = {"streams": _streams, "starttls": _starttls, "sslsocket": _sslsocket}[kind]
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            if await one(context, bench.address_of(i), f"{bench.name_of(i)}.{bench.DOMAIN}") < 100:
                raise RuntimeError("short answer")

    cpu0 = _cpu()
    await asyncio.gather(*(worker() for _ in range(16)))
    return _cpu() - cpu0


def main() -> int:
    n, repeats = int(sys.argv[1]), int(sys.argv[2])
    msgreach_context = "--msgreach-context" in sys.argv
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="msgreach-floor-"))
    nginx = None
    try:
        bench.make_certificates(tmp)
        nginx = bench.start_nginx(tmp, n)
        if msgreach_context:
            from probe.net import ssl_context

            context = ssl_context((tmp / "ca.pem",), alpn=("http/1.1",))
        else:
            context = ssl.create_default_context(cafile=str(tmp / "ca.pem"))
        samples: dict[str, list[float]] = {"streams": [], "starttls": [], "sslsocket": []}
        for _ in range(repeats):
            for kind in samples:
                samples[kind].append(asyncio.run(_round(kind, context, n)))
        for kind, runs in samples.items():
            print(f"{kind:>10}: {1000 * statistics.median(runs) / n:.3f} s CPU per 1,000 targets {[round(r, 2) for r in runs]}")
    finally:
        bench.stop(nginx)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
