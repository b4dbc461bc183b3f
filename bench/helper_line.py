#!/usr/bin/env python3
"""Helper line benchmark (issue #18): what each exchange with a helper puts on the line, and how
long the line's bounds take to tell a hostile line from a working one.

Loopback only, bounded, stops by itself. The helper is msgreach's own (`probe.helper.server`, in
this process) measuring local TCP targets (half up, half refused, so answers carry short and long
reasons); the monitor side is msgreach's `HelperClient` in a `HelperRound`, which records every
exchange (HTTP bytes each way: on a plain `http://` line the TCP payload itself).

1. **Exchange sizes**: the control measurement of N targets (33: the shipped catalogs' size; 100;
   256, the helper's maximum per request) as the monitor asks it (compact, paged under the
   freeze budget) and as an older monitor got it (full evidence, one answer); a stream opening,
   each circumvention registration and report, the bulk ports.
2. **A TLS line**: the bytes of a TLS 1.3 handshake (the kernel's TCP_INFO, both ways) with a
   one-certificate EC chain and with an RSA-2048 leaf and intermediate, against the allowance the
   budget keeps for `https://` helpers.
3. **Delays**: each exchange on loopback (median of 20), and how long a hostile line takes to end
   an exchange with its failure at the shipped bounds: frozen after 3 KB, dripping one byte every
   2 s, a 10 GB answer, a reset, garbage.
4. **A round with slow controls**: controls that take 8 s, a 5 s call stream: the call stream runs
   beside the controls (helper-only targets start with them), so the round takes about 8 s, not 13.

    python3 bench/helper_line.py            # writes its section of docs/benchmarks.md
    python3 bench/helper_line.py --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import ssl
import statistics
import struct
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from docsection import write_section  # bench/docsection.py: beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from helper_world import SECRET, write_secret

from probe import config as config_module
from probe.config import HelperRef
from probe.helper import line, wire
from probe.helper.client import HelperClient, HelperError, HelperRound
from probe.helper.server import Helper
from probe.helper.settings import HelperSettings, Limits
from probe.helper.signatures import PROTOCOLS
from probe.model import HelperExchange
from probe.net import Route
from probe.runner import run_round

START, END = "<!-- bench:helper-line:start -->", "<!-- bench:helper-line:end -->"
SIZES = (33, 100, 256)
NAMES = ("web", "registration", "media-upload", "chat-e1", "g-whatsapp-net", "dc2-obfuscated2", "static-content", "call-relay")


def _target_names(count: int) -> list[str]:
    """Names as long as the shipped catalogs' (8 to 16 characters)."""
    return [f"{NAMES[i % len(NAMES)]}-{i}" for i in range(count)]


async def _accepting() -> tuple[asyncio.AbstractServer, int]:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _helper(directory: Path, names: list[str], up: int) -> Helper:
    dead = _refused_port()
    targets = [{"name": n, "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [up if i % 2 else dead], "checks": ["tcp"]}
               for i, n in enumerate(names)]
    data = {"vantages": [{"name": "abroad", "resolvers": ["127.0.0.1:1"]}], "schedule": {"retries": 0, "timeouts": {"tcp": 2}},
            "controls": [{"name": "c", "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [up], "checks": ["tcp"]}],
            "services": [{"name": "whatsapp", "targets": targets}]}
    (directory / "measure.yaml").write_text(yaml.safe_dump(data))
    settings = HelperSettings(secret_file=write_secret(directory), listen="127.0.0.1:0", probe_port=0, bulk_port=0, cache_seconds=300,
                              limits=Limits(requests_per_minute=100_000, sessions_per_client=256))  # the bench asks more than a monitor
    helper = Helper(settings, SECRET, config_module.load(directory / "measure.yaml"))
    await helper.start()
    return helper


def _client(directory: Path, port: int) -> HelperClient:
    return HelperClient(HelperRef(name="abroad", url=f"http://127.0.0.1:{port}", secret_file=write_secret(directory)), Route(), timeout=30)


def _round() -> HelperRound:
    return HelperRound(config_module.load(None), Route(), deadline=time.monotonic() + 600)


def _within(client: HelperClient, state: HelperRound) -> HelperClient:
    """The same helper, its exchanges kept by the round `state` (as a helper check's are)."""
    return HelperClient(client.ref, client.route, client.timeout, within=state)


async def exchange_sizes(directory: Path) -> dict[str, Any]:
    server, up = await _accepting()
    out: dict[str, Any] = {"measure": []}
    try:
        for count in SIZES:
            names = _target_names(count)
            helper = await _helper(directory, names, up)
            try:
                client = _client(directory, helper.ports["api"])
                pairs = [("whatsapp", n) for n in names]
                await client.measure(pairs)  # measured once (cache_seconds 300): the rest is the line's cost
                with _round() as state:
                    await _within(client, state).measure(pairs)
                compact = list(state.exchanges())
                with _round() as state:
                    await _within(client, state).measure(pairs, detail=wire.DETAIL_FULL)
                full = list(state.exchanges())
                unpaged = await _unpaged(client, pairs)
                out["measure"].append({"targets": count, "compact": compact, "full_paged": full, "full_unpaged": unpaged})
            finally:
                await helper.close()
        helper = await _helper(directory, _target_names(2), up)
        try:
            client = _client(directory, helper.ports["api"])
            with _round() as state:
                client = _within(client, state)
                await client.post(wire.API_STREAM, {"packets": 1000, "size": 172})
                for protocol, (transport, build) in PROTOCOLS.items():
                    signature = build("www.microsoft.com")
                    import base64

                    expected = await client.post(wire.API_EXPECT, {"transport": transport, "payloads": [
                        base64.b64encode(signature).decode(), base64.b64encode(wire.neutral_like(signature)).decode()]})
                    out.setdefault("expect", {})[protocol] = state.exchanges()[-1]
                    await client.post(wire.API_REPORT, {"id": expected["id"]})
                await client.post(wire.API_BULK, {})
            kinds = {x.path: x for x in state.exchanges()}
            out["stream"], out["report"], out["bulk"] = kinds[wire.API_STREAM], kinds[wire.API_REPORT], kinds[wire.API_BULK]
            out["delays"] = await _delays(client)
        finally:
            await helper.close()
    finally:
        server.close()
    return out


async def _unpaged(client: HelperClient, pairs: list[tuple[str, str]]) -> HelperExchange:
    """What an older monitor asked: every target in one request, full evidence, no budget."""
    with _round() as state:
        for chunk in wire.request_pages(pairs):  # the request itself stays a page of names
            await _within(client, state).post(wire.API_MEASURE, {"targets": [{"service": s, "target": t} for s, t in chunk]}, cap=16 * 1024 * 1024)
    exchanges = state.exchanges()
    return HelperExchange("abroad", wire.API_MEASURE, sum(x.sent_bytes for x in exchanges), sum(x.received_bytes for x in exchanges),
                          sum(x.duration_seconds for x in exchanges))


async def _delays(client: HelperClient) -> dict[str, float]:
    timings: dict[str, list[float]] = {"stream": [], "bulk": [], "measure (2 targets, cached)": []}
    for _ in range(20):
        started = time.perf_counter()
        await client.post(wire.API_STREAM, {"packets": 10, "size": 172})
        timings["stream"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await client.post(wire.API_BULK, {})
        timings["bulk"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await client.measure([("whatsapp", n) for n in _target_names(2)])
        timings["measure (2 targets, cached)"].append(time.perf_counter() - started)
    return {kind: statistics.median(values) for kind, values in timings.items()}


# --- hostile lines: how long until the exchange ends, at the shipped bounds ---------------------------


async def _hostile(directory: Path, behaviour: str) -> HelperExchange:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(v) for k, _, v in (h.partition(": ") for h in head.decode().split("\r\n")) if k.lower() == "content-length"), 0)
            await reader.readexactly(length)
            if behaviour == "frozen after 3 KB":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + b"{" * 3000)
                await writer.drain()
                await asyncio.sleep(120)
            elif behaviour == "dripping 1 B / 2 s":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(2)
            elif behaviour == "a 10 GB answer (no length)":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                for _ in range(10 * 1024 ** 3 // 65536):
                    writer.write(bytes(65536))
                    await writer.drain()
            elif behaviour == "reset after the request":
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            elif behaviour == "garbage":
                writer.write(os.urandom(4096))
                await writer.drain()
                await asyncio.sleep(120)
        except (ConnectionError, asyncio.CancelledError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        client = _client(directory, server.sockets[0].getsockname()[1])
        try:
            await client.post(wire.API_MEASURE, {"targets": []}, cap=1024 * 1024, seconds=50)
        except HelperError as failed:
            return failed.exchange
        raise AssertionError(f"{behaviour}: the exchange completed")
    finally:
        server.close()


async def hostile_lines(directory: Path) -> list[tuple[str, HelperExchange]]:
    kinds = ("frozen after 3 KB", "dripping 1 B / 2 s", "a 10 GB answer (no length)", "reset after the request", "garbage")
    return [(kind, await _hostile(directory, kind)) for kind in kinds]


# --- TLS handshake bytes ---------------------------------------------------------------------------------


def tls_handshake_bytes(directory: Path, shape: str) -> tuple[int, int]:
    """(client sent, client received) TCP payload bytes of one TLS 1.3 handshake and one byte each
    way after it (TCP_INFO bytes_acked / bytes_received). `shape`: "ec", a one-certificate EC P-256
    chain (the tests' CA); "rsa", an RSA-2048 leaf and intermediate (a public CA's shape)."""
    import threading

    leaf_pem, key_pem, root_pem = _chain(shape)
    for name, data in (("leaf.pem", leaf_pem), ("leaf.key", key_pem), ("root.pem", root_pem)):
        (directory / f"{shape}-{name}").write_bytes(data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(directory / f"{shape}-leaf.pem"), str(directory / f"{shape}-leaf.key"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
            tls.send(b"y")
            tls.recv(1)

    thread = threading.Thread(target=serve)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(directory / f"{shape}-root.pem"))
    with socket.create_connection(listener.getsockname()) as raw, client_context.wrap_socket(raw, server_hostname="helper.bench.test") as tls:
        tls.send(b"x")  # one byte each way: the server's session tickets have come by the answer
        tls.recv(1)
        info = tls.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        acked, received = struct.unpack_from("QQ", info, 120)
        tls.send(b"z")
    thread.join(5)
    listener.close()
    return acked, received


def _chain(shape: str) -> tuple[bytes, bytes, bytes]:
    """(leaf and intermediates, leaf key, root) PEM for `shape`."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def key() -> Any:
        return rsa.generate_private_key(65537, 2048) if shape == "rsa" else ec.generate_private_key(ec.SECP256R1())

    def cert(subject: str, issuer: str, public: Any, signer: Any, ca: bool) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(public)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("helper.bench.test")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    pem = serialization.Encoding.PEM
    root_key, leaf_key = key(), key()
    root = cert("bench root", "bench root", root_key.public_key(), root_key, True)
    if shape == "rsa":
        middle_key = key()
        middle = cert("bench intermediate", "bench root", middle_key.public_key(), root_key, True)
        chain = cert("helper.bench.test", "bench intermediate", leaf_key.public_key(), middle_key, False).public_bytes(pem) + middle.public_bytes(pem)
    else:
        chain = cert("helper.bench.test", "bench root", leaf_key.public_key(), root_key, False).public_bytes(pem)
    private = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return chain, private, root.public_bytes(pem)


# --- a round with slow controls ------------------------------------------------------------------------


async def slow_controls_round(directory: Path) -> tuple[float, float, str]:
    async def slow_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(8)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    control = await asyncio.start_server(slow_http, "127.0.0.1", 0)
    server, up = await _accepting()
    helper = await _helper(directory, ["web"], up)
    try:
        data = {
            "vantages": [{"name": "vantage", "resolvers": ["127.0.0.1:1"]}],
            "schedule": {"retries": 0, "timeouts": {"tcp": 2, "http": 20, "default": 10}},
            "controls": [{"name": "slow-control", "host": "control.bench.test", "addresses": ["127.0.0.1"], "ports": [control.sockets[0].getsockname()[1]],
                          "checks": ["tcp", "http"], "params": {"http": {"scheme": "http"}}}],
            "services": [{"name": "calls", "targets": [{"name": "call-stream", "host": "helper", "checks": ["udp_stream"],
                                                        "params": {"udp_stream": {"duration_seconds": 5}}}]}],
            "helpers": [{"name": "abroad", "url": f"http://127.0.0.1:{helper.ports['api']}", "secret_file": str(write_secret(directory))}],
        }
        (directory / "slow.yaml").write_text(yaml.safe_dump(data))
        config = config_module.load(directory / "slow.yaml")
        result = await run_round(config, config.vantages[0])
        controls = result.controls[0].checks
        return result.duration_seconds, sum(c.duration_seconds for c in controls), str(result.services[0].targets[0].verdict)
    finally:
        await helper.close()
        server.close()
        control.close()


# --- the section -----------------------------------------------------------------------------------------


def _kb(count: int) -> str:
    return f"{count / 1024:.1f}"


def section(sizes: dict[str, Any], tls: dict[str, tuple[int, int]], hostile: list[tuple[str, HelperExchange]], slow: tuple[float, float, str]) -> str:
    load = os.getloadavg()
    lines = [
        START,
        "## Helper line: bytes per exchange, and how fast a hostile line is told (issue #18)",
        "",
        (f"Produced by `python3 bench/helper_line.py` on {date.today().isoformat()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
         f"Linux {platform.release()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after the run (a shared machine). Loopback; "
         "msgreach's own helper and client; HTTP bytes per connection (on an `http://` line, the TCP payload itself; a censor's count "
         "adds about 0.5 KB of TCP/IP headers for a connection's dozen packets)."),
        "",
        (f"**Control measurement**, per connection (request + answer, KB), against the freeze budget of {wire.FREEZE_BUDGET // 1024} KB "
         "(both ways together). Half the targets fail (their answers carry a reason and a failure):"),
        "",
        "| targets | compact, paged (what msgreach asks): exchanges | largest sent | largest received | largest total | full, paged: exchanges | largest total | full, one answer (older monitors): received |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sizes["measure"]:
        compact, full, unpaged = row["compact"], row["full_paged"], row["full_unpaged"]
        lines.append(
            f"| {row['targets']} | {len(compact)} | {_kb(max(x.sent_bytes for x in compact))} | {_kb(max(x.received_bytes for x in compact))} "
            f"| {_kb(max(x.sent_bytes + x.received_bytes for x in compact))} | {len(full)} | {_kb(max(x.sent_bytes + x.received_bytes for x in full))} "
            f"| {_kb(unpaged.received_bytes)} |"
        )
    lines += [
        "",
        "**The other exchanges** (KB sent / received):",
        "",
        "| exchange | sent | received |",
        "|---|---:|---:|",
        f"| stream opening (one per stream; a call target opens two) | {_kb(sizes['stream'].sent_bytes)} | {_kb(sizes['stream'].received_bytes)} |",
        *(f"| circumvention registration, {p} | {_kb(x.sent_bytes)} | {_kb(x.received_bytes)} |" for p, x in sizes["expect"].items()),
        f"| circumvention report | {_kb(sizes['report'].sent_bytes)} | {_kb(sizes['report'].received_bytes)} |",
        f"| bulk ports | {_kb(sizes['bulk'].sent_bytes)} | {_kb(sizes['bulk'].received_bytes)} |",
        "",
        (f"**TLS** (an `https://` helper URL, e.g. behind a reverse proxy), a TLS 1.3 handshake and a byte each way (TCP_INFO): "
         f"a one-certificate EC P-256 chain {_kb(tls['ec'][0])} KB from the client and {_kb(tls['ec'][1])} KB to it; an RSA-2048 leaf "
         f"and intermediate (a public CA's shape) {_kb(tls['rsa'][0])} KB and {_kb(tls['rsa'][1])} KB. The budget keeps "
         f"{wire.TLS_HANDSHAKE_BYTES // 1024} KB for the handshake on `https://` lines: their pages are that much smaller."),
        "",
        "**Delays on loopback** (median of 20 exchanges, each on a fresh connection): "
        + ", ".join(f"{kind} {seconds * 1000:.1f} ms" for kind, seconds in sizes["delays"].items()) + ".",
        "",
        (f"**A hostile line, at the shipped bounds** (stall {line.STALL_SECONDS:g} s once the answer began, a rate floor of "
         f"{line.RATE_FLOOR} B/s after {line.RATE_GRACE_SECONDS:g} s, a request unacknowledged for {line.STALL_SECONDS:g} s, a 1 MiB cap on a "
         "measurement page): when the exchange ended, and with what:"),
        "",
        "| the line | ended after (s) | failure | bytes received |",
        "|---|---:|---|---:|",
        *(f"| {kind} | {x.duration_seconds:.1f} | `{x.failure}` | {x.received_bytes:,} |" for kind, x in hostile),
        "",
        (f"**Calls and slow controls**: controls that take {slow[1]:.1f} s (an HTTP control answering after 8 s) and a 5 s call stream "
         f"(with its 1 s grace): the round took {slow[0]:.1f} s (verdict `{slow[2]}`): the call stream ran beside the controls (helper-only "
         "targets waited for the controls before, like every target: 8 + 6 s by construction)."),
        END,
    ]
    return "\n".join(lines) + "\n"


async def bench() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        sizes = await exchange_sizes(directory)
        tls = {shape: tls_handshake_bytes(directory, shape) for shape in ("ec", "rsa")}
        hostile = await hostile_lines(directory)
        slow = await slow_controls_round(directory)
    return section(sizes, tls, hostile, slow)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = asyncio.run(bench())
    print(text)
    if not args.no_write:
        write_section(text, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
