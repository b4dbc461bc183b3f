"""Reports to the centre (probe/upload.py): msgreach reads the local Prometheus agent's /metrics,
bounded, and says when uploads are held and why. The whole line through a censor is in
tests/deploy/test_upload_freeze.py; here the reading, the judging and the words, against real
servers (a real Prometheus agent whose centre refuses it, servers that drip or flood)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from probe import failures
from probe.config import Upload
from probe.upload import (
    AgentReading,
    UploadStatus,
    UploadWatch,
    fetch,
    judge,
    parse,
)
from probe.validation import ValidationError

CI = __import__("os").environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the config: the agent is on this machine ------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:9090/metrics", "http://localhost:9090/metrics", "http://agent:9090/metrics", "http://10.1.2.3:9090/metrics", "http://[::1]:9090/metrics"])
def test_an_agent_on_this_machine_is_accepted(url: str) -> None:
    assert Upload(agent_url=url).agent_url == url


@pytest.mark.parametrize("url", [
    "http://93.184.216.34:9090/metrics",  # a public address: across the internet, across the censor
    "http://centre.example.org/metrics",  # a name with dots is resolved, possibly to anywhere
    "https://127.0.0.1:9090/metrics",  # the agent serves plain HTTP on loopback
    "http://user:pw@127.0.0.1:9090/metrics",
    "http://0.0.0.0:9090/metrics",
])
def test_an_agent_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        Upload(agent_url=url)


# --- judging -----------------------------------------------------------------------------------------


def _reading(at: float, appended: float, sent: float, *, attempts: float = 10, seconds: float = 1.0, failed: float = 0, started: float = 1000.0) -> AgentReading:
    return AgentReading(at=at, started_at=started, newest_appended=appended, newest_sent=sent, retried=0, failed=failed, attempts=attempts, attempt_seconds=seconds)


def test_reports_that_keep_up_are_flowing() -> None:
    status = judge(_reading(2000, appended=1995, sent=1990), None, held_after=120)
    assert (status.state, status.held_seconds) == ("flowing", 0.0)
    assert status.lag_seconds == 5


def test_a_lag_past_the_threshold_with_attempts_that_hang_is_a_stalled_line() -> None:
    before = _reading(2000, appended=1995, sent=1800, attempts=10, seconds=5)
    after = _reading(2015, appended=2010, sent=1800, attempts=11, seconds=15)  # one attempt, 10 s: no answer
    status = judge(after, before, held_after=120)
    assert (status.state, status.why, status.held_seconds) == ("held", "line_stalls", 210)


def test_no_attempt_finishing_is_a_stalled_line_too() -> None:
    before = _reading(2000, appended=1995, sent=1800, attempts=10, seconds=5)
    status = judge(_reading(2015, appended=2010, sent=1800, attempts=10, seconds=5), before, held_after=120)
    assert status.why == "line_stalls"


def test_attempts_that_come_back_at_once_while_nothing_is_accepted_are_refused() -> None:
    before = _reading(2000, appended=1995, sent=1800, attempts=10, seconds=0.5)
    status = judge(_reading(2015, appended=2010, sent=1800, attempts=40, seconds=0.9), before, held_after=120)
    assert (status.state, status.why) == ("held", "centre_refuses")


def test_a_restarted_agent_is_judged_on_its_own_attempts() -> None:
    before = _reading(2000, appended=1995, sent=1800, attempts=500, seconds=50, started=1000)
    after = _reading(2015, appended=2010, sent=0, attempts=3, seconds=0.1, started=1850)  # nothing accepted since its start
    status = judge(after, before, held_after=120)
    assert (status.state, status.why, status.lag_seconds) == ("held", "centre_refuses", 160)


def test_an_agent_that_has_scraped_nothing_holds_nothing() -> None:
    assert judge(_reading(2000, appended=0, sent=0), None, held_after=1).state == "flowing"


# --- the words ---------------------------------------------------------------------------------------


def _notice(status: UploadStatus | None, lang: str) -> str:
    """The page's notices about the upload, as the reader sees them (HTML, in `lang`)."""
    from html import escape
    from types import SimpleNamespace

    from probe.status_page import NOTICE_SOURCES
    from probe.status_texts import say

    state = SimpleNamespace(upload=status)  # what the notice sources read of the state
    return "".join(escape(say(n.reason, lang).text()) for source in NOTICE_SOURCES for n in source(state))  # type: ignore[arg-type]


def test_the_notice_says_held_how_long_and_why_in_both_languages() -> None:
    status = UploadStatus("held", 0.0, lag_seconds=754, why="line_stalls", failed_samples=0)
    english, russian = _notice(status, "en"), _notice(status, "ru")
    assert "held for 12 min" in english and "freezes connections" in english
    assert "задерживаются уже 12 мин" in russian and "замораживающий" in russian
    assert _notice(UploadStatus("flowing", 0.0, lag_seconds=3), "en") == ""
    assert _notice(None, "en") == ""


def test_lost_samples_and_an_unreadable_agent_are_said() -> None:
    lost = _notice(UploadStatus("flowing", 0.0, failed_samples=2999), "en")
    assert "2999 samples could not be delivered" in lost
    unknown = _notice(UploadStatus("unknown", 0.0, failure="connection_refused <x>"), "ru")
    assert "не удалось прочитать локальный агент" in unknown and "&lt;x&gt;" in unknown


# --- reading: bounded in time and bytes ---------------------------------------------------------------


async def _serve(handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_an_agent_that_drips_is_given_up_within_the_timeout() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100):
            writer.write(b"#")
            await writer.drain()
            await asyncio.sleep(0.2)

    server, port = await _serve(drip)
    async with server:
        started = time.monotonic()
        status = await UploadWatch(Upload(agent_url=f"http://127.0.0.1:{port}/metrics", timeout_seconds=1)).check()
        assert time.monotonic() - started < 3
    assert (status.state, status.failure) == ("unknown", failures.TIMEOUT)


async def test_an_agent_answer_past_the_cap_is_refused_while_reading() -> None:
    sent = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        try:
            while sent < 1_000_000_000:
                writer.write(b"# " + b"x" * 65534)
                sent += 65536
                await writer.drain()
        except ConnectionError:
            pass

    server, port = await _serve(flood)
    async with server:
        with pytest.raises(failures.Failure) as caught:
            await fetch(Upload(agent_url=f"http://127.0.0.1:{port}/metrics", max_bytes=100_000, timeout_seconds=10))
    assert caught.value.failure == failures.HTTP_BODY_TOO_LARGE
    assert sent < 10_000_000  # stopped at the cap, not after the whole answer


async def test_an_answer_that_is_not_an_agents_is_a_protocol_error() -> None:
    async def page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"up 1\nprocess_start_time_seconds 5\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server, port = await _serve(page)
    async with server:
        status = await UploadWatch(Upload(agent_url=f"http://127.0.0.1:{port}/metrics")).check()
    assert (status.state, status.failure) == ("unknown", failures.PROTOCOL_ERROR)


async def test_no_agent_listening_is_connection_refused() -> None:
    status = await UploadWatch(Upload(agent_url=f"http://127.0.0.1:{_free_port()}/metrics")).check()
    assert (status.state, status.failure) == ("unknown", failures.CONNECTION_REFUSED)


# --- a real agent whose centre refuses every send --------------------------------------------------------


def test_a_real_agent_refused_by_its_centre_reads_held_and_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        if CI:
            pytest.fail("CI needs Debian's prometheus")
        pytest.skip("needs Debian's prometheus")
    agent_port, refused = _free_port(), _free_port()  # nothing listens at `refused`: every send is refused at once
    (tmp_path / "agent.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"
        f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{agent_port}']}}]}}]\n"
        f"remote_write: [{{url: 'http://127.0.0.1:{refused}/api/v1/write', queue_config: {{min_backoff: 100ms, max_backoff: 200ms}}}}]\n"
    )
    agent = subprocess.Popen(
        [prometheus, "--enable-feature=agent", f"--config.file={tmp_path / 'agent.yml'}", f"--storage.agent.path={tmp_path / 'wal'}",
         f"--web.listen-address=127.0.0.1:{agent_port}", "--log.level=error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        settings = Upload(agent_url=f"http://127.0.0.1:{agent_port}/metrics", held_after_seconds=3)
        watch = UploadWatch(settings)
        deadline = time.monotonic() + 60
        status = asyncio.run(watch.check())
        while (status.state != "held" or status.retried_samples == 0) and time.monotonic() < deadline:
            time.sleep(1)
            status = asyncio.run(watch.check())
        assert (status.state, status.why) == ("held", "centre_refuses"), status
        assert "reports to the centre are held" in caplog.text  # once, when it began (a volunteer reads the log)
        assert caplog.text.count("reports to the centre are held") == 1
        assert status.failed_samples == 0  # connection refused is retried, never dropped
        assert status.retried_samples > 0
        reading = parse(asyncio.run(fetch(settings)), time.time())
        assert reading.newest_sent == 0 and reading.newest_appended > time.time() - 10
    finally:
        agent.kill()  # a terminated agent waits up to its flush deadline (1 min) for the refused sends
        agent.wait(10)
