"""STUN servers for the tests: Debian's coturn (`turnserver --stun-only`), the real thing, and a
small hostile UDP responder for what a real server never does.

Hostile behaviours (per datagram received):

    garbage      random bytes back                    wrong_txid   a Binding success for another transaction
    malformed    our transaction, a length that lies  error        a Binding error response (420)
    flood        200 stray datagrams, then nothing    silent       nothing (a dropped request)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from msgreach_helpers import free_udp_port  # noqa: F401 - the one place; servers.stun's users import it from here too

MAGIC_COOKIE = 0x2112A442
BEHAVIOURS = ("garbage", "wrong_txid", "malformed", "error", "flood", "silent")




def binding_request() -> tuple[bytes, bytes]:
    txid = os.urandom(12)
    return struct.pack("!HHI", 0x0001, 0, MAGIC_COOKIE) + txid, txid


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Does host:port answer a Binding Request (our own minimal client, for readiness)?"""
    request, txid = binding_request()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            data = sock.recv(2048)
        except OSError:
            return False
    return len(data) >= 20 and data[8:20] == txid


class Coturn:
    """coturn's turnserver answering STUN only, on host:port (UDP), as a subprocess."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, netns: str | None = None):
        self.host, self.port = host, port or free_udp_port(host)
        self.netns = netns
        self.process: subprocess.Popen | None = None
        self.directory = Path(tempfile.mkdtemp(prefix="msgreach-coturn-"))

    @staticmethod
    def available() -> bool:
        return shutil.which("turnserver") is not None

    def command(self) -> list[str]:
        command = [
            "turnserver", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--no-rfc5780", "-n",
            "--listening-ip", self.host, "--listening-port", str(self.port),
            "--log-file", str(self.directory / "turn.log"), "--simple-log",
            "--pidfile", str(self.directory / "turn.pid"), "--userdb", str(self.directory / "turndb"),
            "--no-software-attribute",
        ]  # fmt: skip
        return ["ip", "netns", "exec", self.netns, *command] if self.netns else command

    def start(self, wait: float = 10.0) -> Coturn:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.netns:
            return self  # readiness is the caller's business (it lives in another namespace)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {self.process.returncode}: {self.log()[-2000:]}")
            if answers(self.host, self.port, 0.2):
                return self
        self.stop()
        raise RuntimeError(f"turnserver did not answer on {self.host}:{self.port}: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.directory / "turn.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


class _Hostile(asyncio.DatagramProtocol):
    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr) -> None:
        self.requests += 1
        if len(data) < 20 or self.transport is None:
            return
        txid = data[8:20]
        header = lambda kind, length, tid: struct.pack("!HHI", kind, length, MAGIC_COOKIE) + tid  # noqa: E731
        if self.behaviour == "garbage":
            self.transport.sendto(os.urandom(64), addr)
        elif self.behaviour == "wrong_txid":
            self.transport.sendto(header(0x0101, 0, os.urandom(12)), addr)
        elif self.behaviour == "malformed":
            self.transport.sendto(header(0x0101, 400, txid) + b"\x00" * 8, addr)
        elif self.behaviour == "error":
            reason = b"Unknown Attribute"
            value = b"\x00\x00\x04\x14" + reason + b"\x00" * (-len(reason) % 4)
            self.transport.sendto(header(0x0111, 4 + len(value), txid) + struct.pack("!HH", 0x0009, 4 + len(reason)) + value, addr)
        elif self.behaviour == "flood":
            for _ in range(200):
                self.transport.sendto(os.urandom(32), addr)


async def start_hostile(behaviour: str, host: str = "127.0.0.1") -> tuple[asyncio.DatagramTransport, int]:
    assert behaviour in BEHAVIOURS, behaviour
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Hostile(behaviour), local_addr=(host, 0))
    return transport, transport.get_extra_info("sockname")[1]
