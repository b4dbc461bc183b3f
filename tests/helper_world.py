"""A helper on loopback for tests and benchmarks: its settings, secret and measure config, and
monitor configs that use it. Everything listens on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import yaml

from probe import config as config_module
from probe.helper.server import Helper
from probe.helper.settings import HelperSettings, Limits

SECRET = b"loopback-test-secret-0123456789abcdef"


async def open_port() -> tuple[asyncio.AbstractServer, int]:
    """A TCP server that accepts and closes (a target that is up)."""
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once closed


def service(targets: dict[str, int]) -> dict[str, Any]:
    return {
        "name": "local",
        "targets": [
            {"name": name, "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [port], "checks": ["tcp"]}
            for name, port in targets.items()
        ],
    }


def controls(port: int) -> list[dict[str, Any]]:
    """One control site: a TCP connect to the local open port (the vantage is online)."""
    return [{"name": "local-control", "host": "127.0.0.1", "addresses": ["127.0.0.1"], "ports": [port], "checks": ["tcp"]}]


def write_measure_config(directory: Path, targets: dict[str, int]) -> Path:
    data = {
        "vantages": [{"name": "abroad", "resolvers": ["127.0.0.1:1"]}],
        "schedule": {"retries": 0, "timeouts": {"tcp": 2, "default": 5}},
        "controls": controls(next(iter(targets.values()))),
        "services": [service(targets)],
    }
    path = directory / "measure.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_secret(directory: Path, secret: bytes = SECRET) -> Path:
    path = directory / "helper.secret"
    path.write_bytes(secret + b"\n")
    os.chmod(path, 0o600)
    return path


async def start_helper(directory: Path, targets: dict[str, int], **limits: Any) -> Helper:
    measure = config_module.load(write_measure_config(directory, targets))
    settings = HelperSettings(secret_file=write_secret(directory), listen="127.0.0.1:0", probe_port=0, bulk_port=0, cache_seconds=0,
                              limits=Limits(**limits))
    helper = Helper(settings, SECRET, measure)
    await helper.start()
    return helper


def monitor_config(directory: Path, helper: Helper, targets: dict[str, int], extra: list[dict[str, Any]] = (), **schedule: Any) -> config_module.Config:
    data = {
        "vantages": [{"name": "vantage", "resolvers": ["127.0.0.1:1"]}],
        "schedule": {"retries": 0, "timeouts": {"tcp": 2, "default": 10}, **schedule},
        "controls": controls(next(iter(targets.values()))),
        "services": [service(targets), *extra],
        "helpers": [{"name": "abroad", "url": f"http://127.0.0.1:{helper.ports['api']}", "secret_file": str(write_secret(directory))}],
    }
    path = directory / "monitor.yaml"
    path.write_text(yaml.safe_dump(data))
    return config_module.load(path)
