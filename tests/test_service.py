"""`msgreach run` in process: a SIGHUP reload reads and validates the config in a worker thread,
so the listener keeps answering while a file is slow to load; and the listener refuses to serve
with an empty basic-auth secret even if a config got past validation."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest
from msgreach_helpers import free_port

from probe import config as config_module
from probe.config import BasicAuth, Listen
from probe.service import serve


def _config(directory: Path, port: int, country: str) -> Path:
    path = directory / "msgreach.yaml"
    path.write_text(
        f"vantages: [{{name: inproc, country: {country}, resolvers: [system]}}]\n"
        f"controls: [{{name: self, host: 127.0.0.1, ports: [{port}], checks: [tcp]}}]\n"
        "schedule: {interval_seconds: 60, jitter_seconds: 0, retries: 0}\n"
        f"services: [{{name: local, targets: [{{name: closed, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp]}}]}}]\n"
    )
    return path


async def _status(port: int, path: str) -> str:
    """The status line of a GET, or raises TimeoutError if the listener does not answer."""
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        line = await reader.readline()
        writer.close()
    return line.decode().strip()


async def _until(predicate, what: str) -> None:
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_listener_answers_while_a_reload_is_slow(tmp_path, monkeypatch):
    port = free_port()
    path = _config(tmp_path, port, "XX")
    config = config_module.load(path)
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    real_load = config_module.load

    def slow_load(file):  # a config on a slow disk, or a hostile file: the load takes its time
        entered.set()
        release.wait(30)
        try:
            return real_load(file)
        finally:
            finished.set()

    monkeypatch.setattr(config_module, "load", slow_load)
    # Other tests of this process (the lab's teardown) may have put handlers of their own on these
    # signals: the test starts from the defaults, so that it sees serve()'s own handlers arrive.
    saved = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    monitor = asyncio.create_task(serve(config, listen=f"127.0.0.1:{port}", config_path=str(path)))
    try:
        await _until(lambda: signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None), "the SIGHUP handler")
        assert (await _status(port, "/healthz")).startswith("HTTP/1.1 200")
        _config(tmp_path, port, "YY")
        os.kill(os.getpid(), signal.SIGHUP)
        assert await asyncio.to_thread(entered.wait, 30), "the reload never started"
        status = await _status(port, "/healthz")
        assert not finished.is_set(), "the listener answered only after the load finished: the load blocked the event loop"
        assert status.startswith("HTTP/1.1 200")
        release.set()
        assert await asyncio.to_thread(finished.wait, 30)
        for _ in range(100):  # the swap happens on the loop right after the thread returns
            if b'country="YY"' in await _body(port, "/metrics"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the reloaded config never showed in /metrics")
    finally:
        release.set()
        if not monitor.done():
            os.kill(os.getpid(), signal.SIGTERM)  # serve()'s own handler: an orderly stop
        try:
            assert await asyncio.wait_for(monitor, 30) == 0
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


async def _body(port: int, path: str) -> bytes:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        body = await reader.read()  # the listener closes after each answer
        writer.close()
    return body


@pytest.mark.parametrize("secret", ["", "  \n"])
def test_the_server_refuses_an_empty_secret_that_got_past_the_config(monkeypatch, secret):
    """`model_construct` skips validation, as a future code path might: the server still refuses."""
    from probe.metrics import State
    from probe.server import Server

    monkeypatch.setenv("MSGREACH_TEST_EMPTY", secret)
    listen = Listen.model_construct(address="127.0.0.1:0", tls=None, basic_auth=BasicAuth.model_construct(username="u", password_file=None, password_env="MSGREACH_TEST_EMPTY"))
    config = config_module.load(None)
    with pytest.raises(ValueError, match="secret is empty"):
        Server(State(config), listen)
