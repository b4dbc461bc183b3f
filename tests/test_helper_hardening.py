"""The helper under hostile input and load, on loopback (issue #18, item 3).

- Its settings and secret are read the way the monitor reads its config: a FIFO or a device is
  refused at once, duplicate keys, infinite or absurd limits and wrong types are refused, exit 2
  with file, line and key, no traceback.
- A real `msgreach helper` subprocess answers every malformed request with 400/401/408/413 and
  counts it (`msgreach_helper_refused_total`), drops malformed datagrams, and its log holds no
  traceback.
- TCP connections are capped per source address and in all: the excess is reset at once and
  counted, an idle connection is closed after the head deadline, and another address is served
  meanwhile.
- Stream sessions close when their stream ends (its last datagram, or silence), so a client that
  opens session after session for cut streams is never refused for sessions it no longer uses;
  per-client and global caps hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from helper_world import (
    SECRET,
    open_port,
    start_helper,
    write_measure_config,
    write_secret,
)
from prometheus_client.parser import text_string_to_metric_families

from probe import cli
from probe.helper import auth, bulk, wire
from probe.helper.sessions import Sessions, StreamSession
from probe.helper.settings import Limits

REPO = Path(__file__).resolve().parents[1]

# --- the settings file and the secret ------------------------------------------------------------------


def _helper_cli(settings: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["helper", "--config", str(settings)])
    return code, err.getvalue()


def _settings(tmp_path: Path, text: str) -> Path:
    write_secret(tmp_path)
    path = tmp_path / "helper.yaml"
    path.write_text("secret_file: helper.secret\nlisten: 127.0.0.1:0\n" + text)
    return path


@pytest.mark.parametrize("text, line, key, words", [
    ("listen: 127.0.0.1:1\n", 3, "listen", "duplicate key"),
    ("limits:\n  max_stream_seconds: .inf\n", 4, "limits.max_stream_seconds", "finite"),
    ("limits:\n  max_stream_seconds: 1.0e+9\n", 4, "limits.max_stream_seconds", "less than or equal"),
    ("limits:\n  requests_per_minute: 1000000000000\n", 4, "limits.requests_per_minute", "less than or equal"),
    ("limits:\n  sessions_per_client: true\n", 4, "limits.sessions_per_client", "integer"),
    ("limits:\n  max_sessions: 100000\n  max_stream_seconds: 3600\n  max_stream_pps: 1000\n", 3, "limits", "at most"),
    ("cache_seconds: .nan\n", 3, "cache_seconds", "finite"),
    ("log_clients: 1\n", 3, "log_clients", "boolean"),
    ("probe_port: 70000\n", 3, "probe_port", "less than or equal"),
    ("limit:\n  requests_per_minute: 5\n", 3, "limit", "Extra inputs"),
], ids=["duplicate", "inf", "absurd-seconds", "absurd-rate", "bool-for-int", "bookkeeping", "nan", "int-for-bool", "port", "unknown-key"])
def test_bad_settings_are_refused_with_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, words: str) -> None:
    settings = _settings(tmp_path, text)
    code, err = _helper_cli(settings)
    assert code == 2 and "Traceback" not in err, err
    rows = [row.strip() for row in err.splitlines() if row.strip().startswith(f"{settings}:{line}: {key}:")]
    assert rows and words in rows[0], err


def test_bad_listen_address_is_refused_at_load(tmp_path: Path) -> None:
    settings = tmp_path / "helper.yaml"
    settings.write_text(f"secret_file: {write_secret(tmp_path)}\nlisten: 'not an address'\n")
    code, err = _helper_cli(settings)
    assert code == 2 and f"{settings}:2: listen:" in err and "HOST:PORT" in err, err


def test_a_fifo_or_a_device_as_settings_or_secret_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened blocking, this would hang the helper for ever
    for special in (fifo, Path("/dev/zero")):
        code, err = _helper_cli(special)
        assert code == 2 and f"{special}: <top>: " in err and "not a regular file" in err, err
        settings = tmp_path / "helper.yaml"
        settings.write_text(f"listen: 127.0.0.1:0\nsecret_file: {special}\n")
        code, err = _helper_cli(settings)
        assert code == 2 and f"{settings}:2: secret_file: " in err and "not a regular file" in err, err


def test_a_short_secret_is_refused_where_it_is_named(tmp_path: Path) -> None:
    settings = tmp_path / "helper.yaml"
    settings.write_text(f"listen: 127.0.0.1:0\nprobe_port: 0\nsecret_file: {write_secret(tmp_path, b'x' * 15)}\n")
    code, err = _helper_cli(settings)
    assert code == 2 and f"{settings}:3: secret_file: " in err and "shorter than 16 bytes" in err, err


# --- hostile input to a running helper -------------------------------------------------------------------


_SERVING = re.compile(r"API and streams on port (\d+), probes on (\d+), bulk on (\d+) \(TLS (\d+)\)")


class HelperProcess:
    """`msgreach helper` as an operator runs it, its log in a file (checked for tracebacks)."""

    def __init__(self, directory: Path, nofile: int | None = None, **limits: object):
        measure = write_measure_config(directory, {"open": 9})
        settings = directory / "helper.yaml"
        settings.write_text(yaml.safe_dump({
            "secret_file": str(write_secret(directory)), "listen": "127.0.0.1:0", "probe_port": 0, "bulk_port": 0,
            "measure": str(measure), "limits": limits,
        }))
        self.log = directory / "helper.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "probe", "--log-level", "INFO", "helper", "--config", str(settings)],
                                         cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=None if nofile is None else lambda: _descriptor_limit(nofile))  # noqa: PLW1509 - no threads
        self.ports: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while not self.ports:
            found = _SERVING.search(self.log.read_text(errors="replace"))
            if found:
                self.ports = dict(zip(("api", "probe", "bulk", "bulk_tls"), map(int, found.groups()), strict=True))
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the helper did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.log.read_text(errors="replace")

    def metrics(self) -> str:
        """/metrics, from an address of its own (127.0.0.1 may be at its connection cap)."""
        status, body = _raw(self.ports["api"], b"GET /metrics HTTP/1.1\r\n\r\n", source="127.0.0.9")
        assert status == 200, status
        return body.decode()

    def refused(self) -> dict[tuple[str, str], float]:
        text = self.metrics()
        return {
            (s.labels["channel"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "msgreach_helper_refused"
            for s in family.samples if s.name.endswith("_total")
        }

    def gauge(self, name: str, **labels: str) -> float:
        text = self.metrics()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _descriptor_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.fixture
def helper_process(tmp_path: Path) -> Iterator[HelperProcess]:
    helper = HelperProcess(tmp_path, connections_per_client=8)
    try:
        yield helper
    finally:
        log = helper.stop()
        assert "Traceback" not in log, log[-3000:]


def _raw(port: int, data: bytes, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """Send bytes as they are; the status and body of the answer (0 when closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer:
        return 0, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _signed(path: str, body: bytes, **override: str) -> bytes:
    headers = {**auth.sign_request(SECRET, "POST", path, body), **override}
    lines = [f"POST {path} HTTP/1.1", "Host: helper", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body


_STREAM = {"packets": 10, "size": 172}

# (what is sent, the status, the channel and reason counted)
_HOSTILE: dict[str, tuple[object, int, str]] = {
    "non-ASCII signature": (lambda: _signed(wire.API_STREAM, json.dumps(_STREAM).encode(), **{auth.SIGNATURE_HEADER: "é" * 64}), 401, "malformed"),
    "non-ASCII nonce": (lambda: _signed(wire.API_STREAM, json.dumps(_STREAM).encode(), **{auth.NONCE_HEADER: "ü" * 32}), 401, "malformed"),
    "non-ASCII digits in the time": (lambda: _signed(wire.API_STREAM, b"{}", **{auth.TIME_HEADER: "²³"}), 401, "malformed"),
    "a 5,000-digit time": (lambda: _signed(wire.API_STREAM, b"{}", **{auth.TIME_HEADER: "9" * 5000}), 401, "malformed"),
    "non-ASCII header name": (lambda: b"POST /v1/stream HTTP/1.1\r\n\xc3\xa9t\xc3\xa9: 1\r\n\r\n", 400, "malformed"),
    "a header line without a colon": (lambda: b"POST /v1/stream HTTP/1.1\r\nnonsense\r\n\r\n", 400, "malformed"),
    "a request line of garbage": (lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed"),
    "a head over 8 KB": (lambda: b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", 400, "malformed"),
    "Content-Length 1e3": (lambda: b"POST /v1/stream HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "malformed"),
    "Content-Length of 40 digits": (lambda: b"POST /v1/stream HTTP/1.1\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", 400, "malformed"),
    "Content-Length -5": (lambda: b"POST /v1/stream HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "malformed"),
    "Content-Length over the cap": (lambda: b"POST /v1/stream HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n", 413, "too_large"),
    "packets 1e400": (lambda: _signed(wire.API_STREAM, b'{"packets": 1e400, "size": 172}'), 400, "bad_json"),
    "packets NaN": (lambda: _signed(wire.API_STREAM, b'{"packets": NaN, "size": 172}'), 400, "bad_json"),
    "packets of 5,000 digits": (lambda: _signed(wire.API_STREAM, b'{"packets": ' + b"9" * 5000 + b', "size": 172}'), 400, "bad_json"),
    "packets 10^15": (lambda: _signed(wire.API_STREAM, b'{"packets": 1000000000000000, "size": 172}'), 400, "out_of_bounds"),
    "packets true": (lambda: _signed(wire.API_STREAM, b'{"packets": true, "size": 172}'), 400, "bad_request"),
    "packets as text": (lambda: _signed(wire.API_STREAM, b'{"packets": "10", "size": 172}'), 400, "bad_request"),
    "JSON 100,000 levels deep": (lambda: _signed(wire.API_STREAM, b'{"packets": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"), 400, "bad_json"),
    "JSON 20 levels deep": (lambda: _signed(wire.API_STREAM, b'{"packets": ' + b"[" * 20 + b"]" * 20 + b"}"), 400, "bad_json"),
    "a body that is not UTF-8": (lambda: _signed(wire.API_STREAM, b'{"packets": "\xff\xfe"}'), 400, "bad_json"),
    "a body that is a list": (lambda: _signed(wire.API_STREAM, b"[1, 2]"), 400, "bad_json"),
    "probe payloads of numbers": (lambda: _signed(wire.API_EXPECT, b'{"transport": "udp", "payloads": [123]}'), 400, "bad_request"),
    "non-ASCII probe payloads": (lambda: _signed(wire.API_EXPECT, '{"transport": "udp", "payloads": ["\u00e9\u00e9\u00e9\u00e9"]}'.encode()), 400, "bad_request"),
    "a transport that is a list": (lambda: _signed(wire.API_EXPECT, b'{"transport": ["tcp"], "payloads": ["AAAAAAAAAAA="]}'), 400, "bad_request"),
    "a report id that is nested": (lambda: _signed(wire.API_REPORT, b'{"id": [[[[1]]]]}'), 400, "bad_request"),
    "measure targets as text": (lambda: _signed(wire.API_MEASURE, b'{"targets": "all"}'), 400, "bad_request"),
}


def test_every_malformed_request_is_refused_and_counted_never_a_500_or_a_traceback(helper_process: HelperProcess) -> None:
    port = helper_process.ports["api"]
    expected: dict[tuple[str, str], int] = {}
    for name, (make, status, reason) in _HOSTILE.items():
        answer_status, body = _raw(port, make())  # type: ignore[operator]
        assert (answer_status, body.strip().decode()) == (status, reason), name
        expected[("http", reason)] = expected.get(("http", reason), 0) + 1
    refused = helper_process.refused()
    for key, count in expected.items():
        assert refused.get(key) == count, (key, refused)
    # the helper still serves a good request
    status, body = _raw(port, _signed(wire.API_STREAM, json.dumps(_STREAM).encode()))
    assert status == 200 and "session" in json.loads(body), body


def test_malformed_bulk_lines_and_datagrams_are_dropped_and_counted(helper_process: HelperProcess) -> None:
    lines = [
        b'{"time": "1", "nonce": "00", "bytes": 1e400, "signature": "00"}\n',
        b'{"time": "1", "nonce": "00", "bytes": true, "signature": "00"}\n',
        b'{"time": "1", "nonce": "00", "bytes": "100", "signature": "00"}\n',
        '{"time": "1", "nonce": "\u00fc\u00fc", "bytes": 100, "signature": "00"}\n'.encode(),
        b'{"time": ' + b"[" * 5000 + b"]" * 5000 + b', "bytes": 100}\n',
        b"\xff\xfe\xfd\n",
        b"x" * 9000 + b"\n",  # no line within the head limit
        b'{"time": "1", "nonce": "00", "bytes": 100, "signature": "00", "direction": "sideways"}\n',  # upload or nothing
    ]
    for line in lines:
        status, _ = _raw(helper_process.ports["bulk"], line)
        assert status == 0  # nothing sent back: not one byte of bulk for a bad line
    unsigned = bulk.signed_line(b"not the secret of this helper!!!", 1000, str(int(time.time())), "ab" * 16)
    assert _raw(helper_process.ports["bulk"], unsigned) == (0, b"")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x00", os.urandom(wire.TRAILER_BYTES + 1), os.urandom(1200), os.urandom(60000)):
            sock.sendto(junk, ("127.0.0.1", helper_process.ports["api"]))
            sock.sendto(junk, ("127.0.0.1", helper_process.ports["probe"]))
    deadline = time.monotonic() + 30
    while True:
        refused = helper_process.refused()
        stream = refused.get(("stream", "malformed"), 0) + refused.get(("stream", "unauthenticated"), 0)
        if stream >= 5 and refused.get(("probe", "unexpected"), 0) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert refused.get(("bulk", "malformed")) == len(lines), refused
    assert refused.get(("bulk", "bad_signature")) == 1, refused
    assert stream == 5 and refused.get(("probe", "unexpected")) == 5, refused


# --- connections -------------------------------------------------------------------------------------------


def test_connections_over_the_per_address_cap_are_reset_at_once_and_others_are_served(helper_process: HelperProcess) -> None:
    port = helper_process.ports["api"]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(8)]  # the cap: 8 per address
    try:
        deadline = time.monotonic() + 30
        def open_now():
            return helper_process.gauge("msgreach_helper_open_connections", channel="http") - 1  # not the /metrics request itself
        while open_now() < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_now() == 8
        for _ in range(20):  # reset without a byte read from them or sent to them (perhaps before connect() returns)
            with pytest.raises(ConnectionResetError), socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                if not sock.recv(1):
                    raise ConnectionResetError
        # another address is served meanwhile, a signed request included
        assert _raw(port, b"GET /healthz HTTP/1.1\r\n\r\n", source="127.0.0.2")[0] == 200
        status, _ = _raw(port, _signed(wire.API_STREAM, json.dumps(_STREAM).encode()), source="127.0.0.2")
        assert status == 200
        assert helper_process.refused().get(("http", "too_many_connections")) == 20
        # the idle ones are closed after the head deadline (408), freeing their address's slots
        for sock in idle:
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        deadline = time.monotonic() + 30
        while open_now() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the helper gives a slot back once the connection is closed on its side
        assert _raw(port, b"GET /healthz HTTP/1.1\r\n\r\n")[0] == 200
        assert helper_process.refused().get(("http", "timeout")) == 8
    finally:
        for sock in idle:
            sock.close()


def test_a_tls_handshake_that_never_comes_holds_a_bulk_slot_for_the_head_deadline_only(helper_process: HelperProcess) -> None:
    idle = socket.create_connection(("127.0.0.1", helper_process.ports["bulk_tls"]), timeout=30)
    try:
        assert idle.recv(1) == b""  # closed by the helper, not held for asyncio's 60 s handshake timeout
    finally:
        idle.close()
    assert helper_process.refused().get(("bulk", "timeout")) == 1


def test_connections_from_many_addresses_never_exhaust_the_descriptors(tmp_path: Path) -> None:
    """With 128 descriptors in all, the helper takes at most 64 connections: the rest are reset
    at once (`connections_full`), never an `accept()` failing for want of a descriptor (asyncio
    then logs a traceback for each, thousands a minute)."""
    helper = HelperProcess(tmp_path, nofile=128)
    held: list[socket.socket] = []
    try:
        for n in range(6):  # 6 × 40 connections from 6 addresses: under the per-address cap, over the global one
            for _ in range(40):
                try:
                    held.append(socket.create_connection(("127.0.0.1", helper.ports["api"]), timeout=30, source_address=(f"127.0.2.{n + 1}", 0)))
                except OSError:
                    pass  # reset before the connect completed here: refused, as it should be
        for sock in held:  # the held ones go: their slots are free again (/metrics needs one)
            sock.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                refused = helper.refused()
                break
            except (ConnectionError, AssertionError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert refused.get(("http", "connections_full"), 0) >= 240 - 64, refused
        assert refused.get(("accept", "out_of_resources"), 0) == 0, refused
    finally:
        for sock in held:
            sock.close()
        log = helper.stop()
    assert "Traceback" not in log and "out of system resource" not in log, log[-3000:]


# --- stream sessions -----------------------------------------------------------------------------------


def _session(packets: int = 100, opened: float = 0.0, client: str = "a") -> StreamSession:
    return StreamSession(client, b"k" * 32, packets, opened, bytearray(packets))


def test_a_session_ends_with_its_stream() -> None:
    limits = Limits(stream_idle_seconds=5, stream_start_seconds=30)
    complete = _session(packets=3)
    for seq, at in ((0, 1.0), (1, 1.02), (2, 1.04)):
        assert not complete.ended(at, limits) and complete.accept(seq, at)
    assert complete.ended(1.05, limits)  # its last datagram arrived
    cut = _session()
    for seq in range(10):  # a call cut by the censor after 10 packets at 50 a second
        cut.accept(seq, 1.0 + seq / 50)
    assert not cut.ended(6.1, limits) and cut.ended(6.2, limits)  # silent for stream_idle_seconds
    never = _session()  # dropped from the first packet on
    assert not never.ended(29.9, limits) and never.ended(30.1, limits)
    slow = _session()  # one packet every 2 s: five of its intervals, not 5 s
    for seq in range(4):
        slow.accept(seq, 1.0 + 2 * seq)
    assert not slow.ended(7.0 + 9.9, limits) and slow.ended(7.0 + 10.1, limits)
    assert _session(packets=100).ended(130.1, Limits(max_stream_seconds=120))  # at the latest


def test_session_caps_count_only_the_streams_still_running() -> None:
    limits = Limits(sessions_per_client=4, max_sessions=6)
    sessions = Sessions(limits)
    for i in range(4):
        assert sessions.refusal("a", 0.0) is None
        sessions.add(bytes([i]) * 8, _session(packets=2))
    assert sessions.refusal("a", 0.0) == "too_many_sessions"
    sessions.add(b"b" * 8, _session(client="b"))
    sessions.add(b"c" * 8, _session(client="c"))
    assert sessions.refusal("d", 0.0) == "sessions_full"
    for i in range(4):  # a's streams end
        session, _ = sessions.get(bytes([i]) * 8, 1.0)
        assert session is not None and session.accept(0, 1.0) and session.accept(1, 1.0)
    assert sessions.refusal("a", 1.0) is None and len(sessions) == 2
    assert sessions.get(b"\x00" * 8, 1.0) == (None, "unauthenticated")


async def _open(url: str, source: str = "127.0.0.1", packets: int = 3) -> httpx.Response:
    body = json.dumps({"packets": packets, "size": 172}).encode()
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        return await client.post(url + wire.API_STREAM, content=body, headers=auth.sign_request(SECRET, "POST", wire.API_STREAM, body))


def _stream(port: int, opened: dict, seqs: range) -> int:
    """Send the session's datagrams `seqs`; how many echoes came back."""
    session = bytes.fromhex(opened["session"])
    key = auth.session_key(SECRET, session)
    echoed = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for seq in seqs:
            sock.sendto(wire.seal(key, session, seq, wire.neutral_body(172)), ("127.0.0.1", port))
            sock.recvfrom(2048)
            echoed += 1
    return echoed


async def test_a_client_opening_stream_after_stream_is_not_refused_for_streams_that_ended(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port}, sessions_per_client=4, max_sessions=6, stream_idle_seconds=0.3)
    url = f"http://127.0.0.1:{helper.ports['api']}"
    try:
        for _ in range(3):  # rounds of complete streams: each session closes with its last datagram
            opened = [(await _open(url)).json() for _ in range(4)]
            assert all("session" in o for o in opened), opened
            assert [await asyncio.to_thread(_stream, helper.ports["stream"], o, range(3)) for o in opened] == [3] * 4
        cut = [(await _open(url)).json() for _ in range(4)]  # streams cut after their first datagram
        for opened in cut:
            await asyncio.to_thread(_stream, helper.ports["stream"], opened, range(1))
        refused = await _open(url)
        assert (refused.status_code, refused.text.strip()) == (429, "too_many_sessions")  # still running, as far as the helper knows
        await asyncio.sleep(0.6)  # silent for longer than stream_idle_seconds: ended
        assert (await _open(url)).status_code == 200
        others = [await _open(url, source="127.0.0.2") for _ in range(5)]
        assert [r.status_code for r in others] == [200, 200, 200, 200, 429]
        assert others[-1].text.strip() == "too_many_sessions"
        assert (await _open(url, source="127.0.0.3")).status_code == 200
        assert (await _open(url, source="127.0.0.3")).text.strip() == "sessions_full"  # 1 + 4 + 1 open: the cap of all
    finally:
        await helper.close()
        server.close()
