"""The line to a helper abroad (issue #18): every exchange bounded in time and bytes, whatever the
other end does. Hostile stand-ins for the helper on loopback (frozen, dripping, reset, flooding,
garbage, unsigned), a TLS reverse proxy in front of a real helper, and rounds of msgreach's own
runner through them: helper-dependent targets read `error` with the line's reason, nothing else
changes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from helper_world import (
    SECRET,
    closed_port,
    controls,
    open_port,
    service,
    start_helper,
    write_secret,
)

from probe import config as config_module
from probe.config import HelperRef
from probe.helper import line, wire
from probe.helper.auth import NONCE_HEADER, SIGNATURE_HEADER, answer_signature
from probe.helper.client import SMALL_ANSWER, HelperClient, HelperError, HelperRound
from probe.net import Route
from probe.runner import run_round

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.lower(): v for k, _, v in (part.partition(": ") for part in lines if part)}
    return headers, await reader.readexactly(int(headers.get("content-length", "0")))


def _answer(headers: dict[str, str], body: bytes, *, signature: str | None = None, chunked: bool = False) -> bytes:
    signature = answer_signature(SECRET, headers[NONCE_HEADER], 200, body) if signature is None else signature
    if chunked:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        return f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{SIGNATURE_HEADER}: {signature}\r\n\r\n".encode() + chunks
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{SIGNATURE_HEADER}: {signature}\r\n\r\n".encode() + body


async def _stand_in(handler: Handler) -> tuple[asyncio.AbstractServer, int]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test ended while the stand-in still held the line
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _client(tmp_path: Path, port: int, scheme: str = "http", host: str = "127.0.0.1", within: HelperRound | None = None) -> HelperClient:
    return HelperClient(HelperRef(name="abroad", url=f"{scheme}://{host}:{port}", secret_file=write_secret(tmp_path)), Route(), timeout=30, within=within)


async def _post(tmp_path: Path, handler: Handler, *, cap: int = SMALL_ANSWER, seconds: float | None = None) -> line.HelperExchange:
    server, port = await _stand_in(handler)
    try:
        with pytest.raises(HelperError) as failed:
            await _client(tmp_path, port).post(wire.API_STREAM, {"packets": 5, "size": 172}, cap=cap, seconds=seconds)
        return failed.value.exchange
    finally:
        server.close()


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds of a second, not of seconds: the behaviour under test is the same."""
    monkeypatch.setattr(line, "STALL_SECONDS", 0.5)
    monkeypatch.setattr(line, "RATE_GRACE_SECONDS", 0.5)


async def test_a_signed_answer_completes_and_is_counted_each_way(tmp_path: Path) -> None:
    async def helper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers, body = await _request(reader)
        assert json.loads(body) == {"packets": 5, "size": 172}
        writer.write(_answer(headers, b'{"session": "00", "port": 1}'))

    server, port = await _stand_in(helper)
    state = HelperRound(_empty_config(), Route(), deadline=10**9)
    try:
        with state:
            answer = await _client(tmp_path, port, within=state).post(wire.API_STREAM, {"packets": 5, "size": 172})
        assert answer == {"session": "00", "port": 1}
        (summary,) = state.lines()
        assert summary.up and summary.exchanges == 1 and summary.failed == 0
        assert 250 < summary.largest_sent_bytes < 600 and 100 < summary.largest_received_bytes < 250, summary
    finally:
        server.close()


async def test_an_answer_that_freezes_after_a_few_kilobytes_is_helper_line_frozen(tmp_path: Path, quick: None) -> None:
    async def frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12000\r\n\r\n" + b"x" * 3000)
        await writer.drain()
        await asyncio.sleep(60)  # the rest never comes (a censor drops it)

    record = await _post(tmp_path, frozen, seconds=60)  # the deadline is far: the stall bound ends it
    assert record.failure == "helper_line_frozen" and record.status == 200
    assert record.received_bytes == len(b"HTTP/1.1 200 OK\r\nContent-Length: 12000\r\n\r\n") + 3000
    assert line_words(record) == f"the line to the helper abroad froze after {(record.sent_bytes + record.received_bytes) / 1024:.1f} KB"


async def test_an_answer_that_drips_is_helper_line_dripping(tmp_path: Path, quick: None) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)  # a byte at a time, never a pause long enough to stall

    record = await _post(tmp_path, drip, seconds=60)
    assert record.failure == "helper_line_dripping" and 0 < record.received_bytes < 1000, record


async def test_a_line_reset_after_the_request_is_connection_reset(tmp_path: Path) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with an RST
        writer.transport.abort()

    record = await _post(tmp_path, reset)
    assert (record.failure, record.received_bytes) == ("connection_reset", 0) and record.sent_bytes > 0


@pytest.mark.parametrize("declared", [True, False])
async def test_a_ten_gigabyte_answer_is_refused_at_the_cap(tmp_path: Path, declared: bool) -> None:
    sent = [0]

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        length = f"Content-Length: {10 * 1024 ** 3}\r\n" if declared else ""
        writer.write(f"HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n".encode())
        chunk = bytes(64 * 1024)
        while sent[0] < 10 * 1024 ** 3:
            writer.write(chunk)
            await writer.drain()
            sent[0] += len(chunk)

    cap = 256 * 1024
    record = await _post(tmp_path, flood, cap=cap)
    assert record.failure == "helper_answer_too_large", record
    assert record.received_bytes <= cap + 1  # reading stopped at the cap: nothing past it was held
    if declared:
        assert record.received_bytes <= 16 * 1024  # refused on its head, after the first read


@pytest.mark.parametrize("reply, failure", [
    (os.urandom(3000), "helper_answer_malformed"),  # not HTTP
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100, "eof_error"),  # closed mid-answer
    (b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 13\r\n\r\nrate_limited\n", "helper_refused"),
])
async def test_garbage_an_early_close_and_a_refusal_each_have_their_failure(tmp_path: Path, reply: bytes, failure: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(reply)

    record = await _post(tmp_path, answer)
    assert record.failure == failure, record
    if failure == "helper_refused":
        assert (record.status, record.detail) == (429, "rate_limited")


@pytest.mark.parametrize("signature", ["", "00" * 32, "not-hex"])
async def test_an_answer_not_signed_with_our_secret_is_never_used(tmp_path: Path, signature: str) -> None:
    async def forged(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers, _ = await _request(reader)
        writer.write(_answer(headers, b'{"session": "00", "port": 1}', signature=signature))

    assert (await _post(tmp_path, forged)).failure == "helper_answer_unsigned"


async def test_no_answer_by_the_deadline_is_a_timeout(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await asyncio.sleep(60)

    record = await _post(tmp_path, silent, seconds=0.5)
    assert (record.failure, record.received_bytes) == ("generic_timeout_error", 0) and record.sent_bytes > 0


async def test_a_chunked_answer_of_a_reverse_proxy_is_read(tmp_path: Path) -> None:
    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers, _ = await _request(reader)
        writer.write(_answer(headers, b'{"session": "0a0b", "port": 7}', chunked=True))

    server, port = await _stand_in(proxy)
    try:
        assert await _client(tmp_path, port).post(wire.API_STREAM, {}) == {"session": "0a0b", "port": 7}
    finally:
        server.close()


async def test_the_exchange_ends_by_the_rounds_deadline(tmp_path: Path) -> None:
    """Inside a round, the round's deadline bounds every exchange, whatever the caller's timeout."""
    import time

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await asyncio.sleep(60)

    server, port = await _stand_in(silent)
    try:
        with HelperRound(_empty_config(), Route(), deadline=time.monotonic() + 0.5) as state, pytest.raises(HelperError) as failed:
            await _client(tmp_path, port, within=state).post(wire.API_STREAM, {}, seconds=60)
        assert failed.value.exchange.failure == "generic_timeout_error"
        with state, pytest.raises(HelperError) as late:
            await asyncio.sleep(0.6)
            await _client(tmp_path, port, within=state).post(wire.API_STREAM, {}, seconds=60)
        assert late.value.exchange.failure == "helper_no_time"
    finally:
        server.close()


def line_words(record: line.HelperExchange) -> str:
    from probe.helper.client import words

    return words(record)


def _empty_config() -> config_module.Config:
    return config_module.load(None)


# --- a TLS reverse proxy in front of a real helper -------------------------------------------------------


async def test_an_https_helper_behind_a_tls_proxy_is_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from probe import net

    sys.path.insert(0, str(Path(__file__).parent))
    from servers.testca import TestCA

    ca = TestCA(tmp_path / "ca")
    leaf = ca.issue("helper", ["helper.lab.test", "127.0.0.1"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.pem))  # the system's trust, as the line uses it
    net.hashed_ca_directory.cache_clear()
    net._ssl_context.cache_clear()
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})

    async def terminate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", helper.ports["api"])

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    proxy = await asyncio.start_server(terminate, "127.0.0.1", 0, ssl=leaf.server_context())
    try:
        client = _client(tmp_path, proxy.sockets[0].getsockname()[1], scheme="https")
        found = await client.measure([("local", "open")])
        assert found[("local", "open")]["verdict"] == "ok"
        wrong = _client(tmp_path, proxy.sockets[0].getsockname()[1], scheme="https", host="localhost")  # not the certificate's name
        with pytest.raises(HelperError) as failed:
            await wrong.measure([("local", "open")])
        assert failed.value.exchange.failure == "ssl_invalid_hostname"
    finally:
        proxy.close()
        await helper.close()
        server.close()
        net.hashed_ca_directory.cache_clear()
        net._ssl_context.cache_clear()


# --- rounds through a hostile line: helper-dependent targets `error`, nothing else changes ---------------


CALL = {"name": "calls", "targets": [{"name": "call-stream", "host": "helper", "checks": ["udp_stream"],
                                      "params": {"udp_stream": {"duration_seconds": 1, "grace_seconds": 0.3}}}]}
FREEZE = {"name": "freeze", "targets": [{"name": "freeze-key", "host": "www.whatsapp.com", "checks": ["helper_transfer"],
                                         "params": {"helper_transfer": {"bytes": 32768}}}]}


def _round_config(tmp_path: Path, url: str, targets: dict[str, int], helper_targets: bool = True) -> config_module.Config:
    data = {
        "vantages": [{"name": "vantage", "resolvers": ["127.0.0.1:1"]}],
        "schedule": {"retries": 0, "round_deadline_seconds": 20, "timeouts": {"tcp": 2, "default": 5}},
        "controls": controls(next(iter(targets.values()))),
        "services": [service(targets), *([CALL, FREEZE, {"catalog": "circumvention"}] if helper_targets else [])],
        "helpers": [{"name": "abroad", "url": url, "secret_file": str(write_secret(tmp_path))}],
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(data))
    return config_module.load(path)


async def test_a_round_through_a_dripping_line_reads_error_for_the_helper_targets_only(tmp_path: Path, quick: None) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    server, port = await open_port()
    stand_in, stand_in_port = await _stand_in(drip)
    try:
        targets = {"open": port, "dead": closed_port()}
        config = _round_config(tmp_path, f"http://127.0.0.1:{stand_in_port}", targets)
        result = await run_round(config, config.vantages[0])
        by_service = {s.service: s for s in result.services}
        mine = {t.target: t for t in by_service["local"].targets}
        assert (mine["open"].verdict, mine["dead"].verdict) == ("ok", "ip_blocked")  # as without a helper
        assert mine["dead"].checks[-1].failure == "helper_line_dripping"  # the control's entry says why it is missing
        for name in ("calls", "freeze", "circumvention"):
            for target in by_service[name].targets:
                assert target.verdict == "error" and "dripped" in target.reason, (name, target.as_json())
        (summary,) = result.helpers
        assert not summary.up and summary.last_failure.failure == "helper_line_dripping" and "dripped" in summary.reason
        assert result.duration_seconds < config.schedule.deadline + 5  # bounded by the round, not by the drip
    finally:
        stand_in.close()
        server.close()


# --- compact answers, paged under the freeze budget ---------------------------------------------------------


def test_compact_answers_page_to_the_budget_and_say_where_the_rest_begins() -> None:
    items = [{"service": "s", "target": f"t{i}", "verdict": "ip_blocked", "reason": "x" * 500, "age_seconds": 1.0, "helper_vantage": "ok",
              "checks": [{"check": "dns", "ok": True}, {"check": "tcp", "ok": False, "failure": "connection_refused", "connects": ["y" * 900]}]}
             for i in range(40)]
    page = wire.measure_answer(items, wire.MeasureShape(wire.DETAIL_COMPACT, 4000))
    assert page["targets"][0] == {"service": "s", "target": "t0", "verdict": "ip_blocked", "check": "tcp", "failure": "connection_refused",
                                  "reason": "x" * wire.REASON_CHARS, "age_seconds": 1.0, "helper_vantage": "ok"}
    assert 0 < page["next"] == len(page["targets"]) < 40 and len(json.dumps(page, ensure_ascii=False).encode()) <= 4000
    assert wire.measure_answer(items[:1], wire.MeasureShape(wire.DETAIL_COMPACT, 1024)) == {"targets": [wire.compact(items[0])]}
    assert "next" not in wire.measure_answer(items, wire.MeasureShape())  # an older monitor's request: all, in full
    with pytest.raises(ValueError):
        wire.MeasureShape.of({"max_answer_bytes": 10 ** 12})
    with pytest.raises(ValueError):
        wire.MeasureShape.of({"detail": "everything"})


async def test_a_large_round_is_asked_in_pages_each_under_the_freeze_budget(tmp_path: Path) -> None:
    server, port = await open_port()
    targets = {f"target-with-a-long-name-{i:03d}": port for i in range(150)}
    helper = await start_helper(tmp_path, targets)
    try:
        config = _round_config(tmp_path, f"http://127.0.0.1:{helper.ports['api']}", targets, helper_targets=False)
        result = await run_round(config, config.vantages[0])
        assert all(t.verdict == "ok" and t.checks[-1].check == "helper" and t.checks[-1].ok for t in result.services[0].targets)
        (summary,) = result.helpers
        assert summary.up and summary.exchanges > 2, summary  # the names alone take two requests
        # every exchange: its request and its answer, together, under the budget
        assert summary.largest_sent_bytes + summary.largest_received_bytes <= wire.FREEZE_BUDGET, summary
        assert helper.metrics.registry.get_sample_value("msgreach_helper_measurements_total") == 150  # each target once, pages or not
    finally:
        await helper.close()
        server.close()


async def test_helper_only_targets_are_not_sent_to_the_control_measurement(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        config = _round_config(tmp_path, f"http://127.0.0.1:{helper.ports['api']}", {"open": port})
        result = await run_round(config, config.vantages[0])
        by_service = {s.service: s for s in result.services}
        assert by_service["local"].targets[0].checks[-1].check == "helper"
        for name in ("calls", "freeze", "circumvention"):
            assert all(c.check != "helper" for t in by_service[name].targets for c in t.checks), name
        assert helper.metrics.registry.get_sample_value("msgreach_helper_refused_total", {"channel": "measure", "reason": "unknown_target"}) is None
    finally:
        await helper.close()
        server.close()


def test_neutral_bytes_never_share_a_byte_with_the_signature_at_its_offset() -> None:
    from probe.helper.signatures import PROTOCOLS

    for _ in range(200):
        for _transport, build in PROTOCOLS.values():
            signature = build("www.example.org")
            neutral = wire.neutral_like(signature)
            assert len(neutral) == len(signature) and all(a != b for a, b in zip(neutral, signature, strict=False)) and neutral.isascii()


# --- msgreach_helper_up ------------------------------------------------------------------------------------


async def test_helper_up_says_whether_the_latest_rounds_exchanges_all_completed(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from prometheus_client import generate_latest

    from probe.metrics import State, registry_for

    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    config = _round_config(tmp_path, f"http://127.0.0.1:{helper.ports['api']}", {"open": port}, helper_targets=False)
    state = State(config)
    registry = registry_for(state)
    labels = {"vantage": "vantage", "helper": "abroad"}
    try:
        assert registry.get_sample_value("msgreach_helper_up", labels) is None  # no round yet, no series
        state.record(await run_round(config, config.vantages[0]))
        assert registry.get_sample_value("msgreach_helper_up", labels) == 1
        assert 0 < registry.get_sample_value("msgreach_helper_exchange_max_bytes", {**labels, "direction": "received"}) < wire.FREEZE_BUDGET
        await helper.close()
        state.record(await run_round(config, config.vantages[0]))
        assert registry.get_sample_value("msgreach_helper_up", labels) == 0
        assert state.latest["vantage"].services[0].targets[0].verdict == "ok"  # the line, not the target
    finally:
        await helper.close()
        server.close()
    promtool = shutil.which("promtool")
    if promtool is not None:
        check = await asyncio.to_thread(subprocess.run, [promtool, "check", "metrics"], input=generate_latest(registry), capture_output=True,
                                        check=False, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


# --- /status.json and the status page --------------------------------------------------------------------


async def test_the_status_page_and_status_json_say_how_the_line_to_the_helper_is(tmp_path: Path, quick: None) -> None:
    from probe import report, status_page
    from probe.metrics import State

    async def frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + b"x" * 2000)
        await writer.drain()
        await asyncio.sleep(60)

    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    stand_in, stand_in_port = await _stand_in(frozen)
    try:
        state = State(_round_config(tmp_path, f"http://127.0.0.1:{helper.ports['api']}", {"open": port}, helper_targets=False))
        state.record(await run_round(state.config, state.config.vantages[0]))
        assert "Helper abroad abroad: the line works (1 exchanges in the last round, none over" in status_page.render(state, True, "ok", lang="en")
        state.config = _round_config(tmp_path, f"http://127.0.0.1:{stand_in_port}", {"open": port}, helper_targets=False)
        result = await run_round(state.config, state.config.vantages[0])
        state.record(result)
        document = report.as_document([result], result.started_at, result.duration_seconds)
        (line_json,) = json.loads(json.dumps(document))["vantages"][0]["helpers"]
        assert line_json["up"] is False and line_json["last_failure"]["failure"] == "helper_line_frozen"
        assert line_json["reason"].startswith("the line to the helper abroad froze after 2.")
        english, russian = (status_page.render(state, True, "ok", lang=lang) for lang in ("en", "ru"))
        assert "Helper abroad abroad: the line to the helper abroad froze after 2." in english
        assert "Помощник за рубежом abroad: связь с помощником за рубежом замерла после 2." in russian
    finally:
        stand_in.close()
        await helper.close()
        server.close()


# --- calls: a helper that answers late is not a cut -----------------------------------------------------------


async def test_echoes_a_busy_helper_sends_late_are_waited_for(tmp_path: Path) -> None:
    """The helper echoes every packet sent after 1 s of a 2 s stream 1 s late (its loop fell behind,
    busy with a control measurement): a quarter of the echoes come after the 0.5 s grace, still
    coming when it ends."""
    import threading

    from probe.helper.auth import session_key

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    stop = threading.Event()
    timers: list[threading.Timer] = []

    def echo() -> None:
        while not stop.is_set():
            try:
                data, peer = udp.recvfrom(2048)
            except TimeoutError:
                continue
            parts = wire.split(data)
            assert parts is not None
            reply = wire.seal(session_key(SECRET, parts.session), parts.session, parts.seq, wire.echo_body(parts.body), wire.DOWN)
            if parts.seq < 50:
                udp.sendto(reply, peer)
            else:
                timers.append(threading.Timer(1.0, udp.sendto, (reply, peer)))
                timers[-1].start()

    async def api(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers, _ = await _request(reader)
        body = json.dumps({"session": os.urandom(8).hex(), "port": udp.getsockname()[1]}).encode()
        writer.write(_answer(headers, body))

    server, port = await _stand_in(api)
    control, control_port = await open_port()
    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    try:
        data = {
            "vantages": [{"name": "vantage", "resolvers": ["127.0.0.1:1"]}],
            "schedule": {"retries": 0, "timeouts": {"default": 10}},
            "controls": controls(control_port), "services": [{"name": "calls", "targets": [{"name": "call", "host": "helper", "checks": ["udp_stream"],
                                          "params": {"udp_stream": {"duration_seconds": 2, "packets_per_second": 50, "grace_seconds": 0.5}}}]}],
            "helpers": [{"name": "abroad", "url": f"http://127.0.0.1:{port}", "secret_file": str(write_secret(tmp_path))}],
        }
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
        config = config_module.load(tmp_path / "c.yaml")
        result = await run_round(config, config.vantages[0])
        target = result.services[0].targets[0]
        evidence = target.as_json()["checks"][0]
        assert evidence["call"]["echoed"] == 100 and evidence["control"]["echoed"] == 100, evidence
        assert target.verdict == "ok", target.as_json()
    finally:
        stop.set()
        thread.join(5)
        for timer in timers:
            timer.join(5)
        udp.close()
        server.close()
        control.close()


def test_a_call_checks_json_keeps_its_own_duration_beside_the_streams_length() -> None:
    from probe.model import CheckResult, EchoedStream, UDPStreamEvidence

    evidence = UDPStreamEvidence("abroad", 50, 172, 20.0, EchoedStream("call"), EchoedStream("control"), 0.2)
    data = CheckResult("udp_stream", True, None, 21.4, None, evidence).as_json()
    assert (data["duration_seconds"], data["stream_seconds"]) == (21.4, 20.0)
