"""The helper's protocol, authentication and bounds, on loopback with a real helper in-process
(its HTTP API, UDP echo and probe catchers) and msgreach's own runner on both sides."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helper_world import (
    SECRET,
    closed_port,
    monitor_config,
    open_port,
    start_helper,
    write_secret,
)

from probe.helper import auth, wire
from probe.helper.limits import Buckets
from probe.runner import run_round

# --- authentication ---------------------------------------------------------------------------------


def test_signed_request_is_accepted_once() -> None:
    verifier = auth.Verifier(SECRET)
    headers = auth.sign_request(SECRET, "POST", "/v1/measure", b"{}")
    assert verifier.refuse("POST", "/v1/measure", headers, b"{}") is None
    assert verifier.refuse("POST", "/v1/measure", headers, b"{}") == "replayed"


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda h, b: (h, b + b" "), "bad_signature"),  # body changed
        (lambda h, b: ({**h, auth.SIGNATURE_HEADER: "00" * 32}, b), "bad_signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != auth.NONCE_HEADER}, b), "unauthenticated"),
        (lambda h, b: ({}, b), "unauthenticated"),
        (lambda h, b: ({**h, auth.TIME_HEADER: "soon"}, b), "malformed"),
    ],
)
def test_tampered_or_unsigned_requests_are_refused(change, reason: str) -> None:
    headers, body = change(auth.sign_request(SECRET, "POST", "/v1/measure", b"{}"), b"{}")
    assert auth.Verifier(SECRET).refuse("POST", "/v1/measure", headers, body) == reason


def test_another_secret_or_path_or_an_old_time_is_refused() -> None:
    headers = auth.sign_request(b"another-secret-of-the-right-size", "POST", "/v1/measure", b"{}")
    assert auth.Verifier(SECRET).refuse("POST", "/v1/measure", headers, b"{}") == "bad_signature"
    headers = auth.sign_request(SECRET, "POST", "/v1/stream", b"{}")
    assert auth.Verifier(SECRET).refuse("POST", "/v1/measure", headers, b"{}") == "bad_signature"
    old = auth.sign_request(SECRET, "POST", "/v1/measure", b"{}", now=time.time() - 120)
    assert auth.Verifier(SECRET).refuse("POST", "/v1/measure", old, b"{}") == "stale"


def test_nonce_cache_is_bounded_and_forgets_after_the_window() -> None:
    cache = auth.NonceCache(window=10, capacity=3)
    assert all(cache.add(n, 0) for n in "abc")
    assert not cache.add("d", 1)  # full: refused, never grown
    assert not cache.add("a", 1)  # replay
    assert cache.add("d", 25) and len(cache) == 1  # the old ones expired


def test_secret_file_is_required_and_long_enough(tmp_path: Path) -> None:
    with pytest.raises(auth.SecretError):
        auth.load_secret(None)
    with pytest.raises(auth.SecretError):
        auth.load_secret(tmp_path / "absent")
    with pytest.raises(auth.SecretError):
        auth.load_secret(write_secret(tmp_path, b"short"))
    assert auth.load_secret(write_secret(tmp_path)) == SECRET


def test_buckets_bound_each_client() -> None:
    buckets = Buckets(per_minute=60)
    assert all(buckets.allow("a", now=0) for _ in range(60))
    assert not buckets.allow("a", now=0)
    assert buckets.allow("b", now=0)  # another client has its own bucket
    assert buckets.allow("a", now=1.5)  # refilled at one per second


# --- the wire format ---------------------------------------------------------------------------------


def test_datagrams_and_their_echo_have_the_same_size() -> None:
    key, session = auth.session_key(SECRET, b"12345678"), b"12345678"
    for body in (wire.stun_opening_body(172), wire.rtp_body(1, 7, 960, 172), wire.neutral_body(172)):
        datagram = wire.seal(key, session, 3, body)
        assert len(datagram) == 172
        parts = wire.split(datagram)
        assert parts is not None and parts.session == session and parts.seq == 3 and parts.body == body
        assert len(wire.seal(key, session, 3, wire.echo_body(body), wire.DOWN)) == len(datagram)


def test_the_call_stream_opens_with_a_well_formed_stun_request() -> None:
    datagram = wire.seal(b"k" * 32, b"s" * 8, 0, wire.stun_opening_body(172))
    assert int.from_bytes(datagram[2:4], "big") == len(datagram) - 20  # STUN length covers the trailer attribute
    assert datagram[4:8] == bytes.fromhex("2112a442")
    assert wire.is_stun_request(datagram) and not wire.is_stun_request(wire.neutral_body(172))
    assert wire.rtp_body(1, 7, 960, 172)[0] >> 6 == 2 and wire.neutral_body(172)[0] >> 6 == 1


# --- a helper on loopback ------------------------------------------------------------------------------


async def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.post(url + path, content=body, headers=headers)


def _refused(helper, channel: str, reason: str) -> float:
    return helper.metrics.registry.get_sample_value("msgreach_helper_refused_total", {"channel": channel, "reason": reason}) or 0.0


async def test_unauthenticated_and_replayed_requests_are_refused_and_counted(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    url = f"http://127.0.0.1:{helper.ports['api']}"
    try:
        body = json.dumps({"targets": [{"service": "local", "target": "open"}]}).encode()
        unsigned = await _post(url, wire.API_MEASURE, body, {})
        assert unsigned.status_code == 401 and _refused(helper, "http", "unauthenticated") == 1
        headers = auth.sign_request(SECRET, "POST", wire.API_MEASURE, body)
        first = await _post(url, wire.API_MEASURE, body, headers)
        assert first.status_code == 200, first.text
        assert first.headers[auth.SIGNATURE_HEADER] == auth.answer_signature(SECRET, headers[auth.NONCE_HEADER], 200, first.content)
        assert json.loads(first.content)["targets"][0]["verdict"] == "ok"
        replay = await _post(url, wire.API_MEASURE, body, headers)
        assert replay.status_code == 401 and replay.text.strip() == "replayed" and _refused(helper, "http", "replayed") == 1
        forged = await _post(url, wire.API_MEASURE, body, auth.sign_request(b"not-the-helpers-secret-at-all!!", "POST", wire.API_MEASURE, body))
        assert forged.status_code == 401 and _refused(helper, "http", "bad_signature") == 1
        garbage = await _post(url, wire.API_MEASURE, b"\xff" * 10, {"x-msgreach-time": "1"})
        assert garbage.status_code == 401
        async with httpx.AsyncClient(trust_env=False) as client:
            metrics = (await client.get(url + "/metrics")).text
        assert 'msgreach_helper_refused_total{channel="http",reason="replayed"} 1.0' in metrics
        assert "127.0.0.1" not in metrics  # no client address in any series
    finally:
        await helper.close()
        server.close()


async def test_the_helper_measures_only_its_own_catalog_targets(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    url = f"http://127.0.0.1:{helper.ports['api']}"
    try:
        request = {"targets": [
            {"service": "local", "target": "elsewhere", "host": "198.51.100.7", "ports": [22]},
            {"service": "other", "target": "open"},
            {"service": "local", "target": "open", "host": "198.51.100.7"},  # a host is ignored: names only
        ]}
        body = json.dumps(request).encode()
        answer = await _post(url, wire.API_MEASURE, body, auth.sign_request(SECRET, "POST", wire.API_MEASURE, body))
        targets = json.loads(answer.content)["targets"]
        assert [t.get("error") for t in targets] == ["unknown_target", "unknown_target", None]
        assert targets[2]["host"] == "127.0.0.1" and targets[2]["verdict"] == "ok"
        assert helper.metrics.registry.get_sample_value("msgreach_helper_measurements_total") == 1  # only its own target
    finally:
        await helper.close()
        server.close()


async def test_bad_datagrams_are_dropped_and_counted_and_the_helper_keeps_serving(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        def send_junk() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.5)
                for junk in (b"", b"x", b"\x00" * 100, wire.seal(b"k" * 32, b"s" * 8, 0, wire.neutral_body(172))):
                    sock.sendto(junk, ("127.0.0.1", helper.ports["stream"]))
                    sock.sendto(junk or b"?", ("127.0.0.1", helper.ports["probe"]))
                with pytest.raises(TimeoutError):
                    sock.recvfrom(2048)  # nothing is answered to an unauthenticated datagram

        await asyncio.to_thread(send_junk)
        await asyncio.sleep(0.2)
        assert _refused(helper, "stream", "malformed") >= 2 and _refused(helper, "stream", "unauthenticated") >= 1
        assert _refused(helper, "probe", "unexpected") >= 3
        config = monitor_config(tmp_path, helper, {"open": port})
        result = await run_round(config, config.vantages[0])
        assert result.services[0].targets[0].verdict == "ok"
    finally:
        await helper.close()
        server.close()


async def test_stream_datagrams_are_echoed_once_never_larger(tmp_path: Path) -> None:
    from probe.config import HelperRef
    from probe.helper.client import HelperClient, HelperError
    from probe.net import Route

    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        client = HelperClient(HelperRef(name="h", url=f"http://127.0.0.1:{helper.ports['api']}", secret_file=write_secret(tmp_path)), Route())
        opened = await client.post(wire.API_STREAM, {"packets": 3, "size": 172})
        session = bytes.fromhex(opened["session"])
        key = auth.session_key(SECRET, session)
        datagram = wire.seal(key, session, 0, wire.stun_opening_body(172))

        def exchange() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2)
                sock.sendto(datagram, ("127.0.0.1", opened["port"]))
                echo, _ = sock.recvfrom(2048)
                assert len(echo) == len(datagram) and echo[:2] == b"\x01\x01"  # a Binding success, same size
                sock.settimeout(0.5)
                sock.sendto(datagram, ("127.0.0.1", opened["port"]))  # replayed: dropped
                beyond = wire.seal(key, session, 3, wire.neutral_body(172))  # past the session's packets
                sock.sendto(beyond, ("127.0.0.1", opened["port"]))
                with pytest.raises(TimeoutError):
                    sock.recvfrom(2048)

        await asyncio.to_thread(exchange)
        assert _refused(helper, "stream", "replayed") == 2
        with pytest.raises(HelperError) as refused:
            await client.post(wire.API_STREAM, {"packets": 10**9, "size": 172})
        assert (refused.value.exchange.failure, refused.value.exchange.status, refused.value.exchange.detail) == ("helper_refused", 400, "out_of_bounds")
    finally:
        await helper.close()
        server.close()


# --- the monitor's side: control measurement, streams, circumvention ---------------------------------------


async def test_a_target_failing_at_the_helper_too_is_down_and_one_failing_only_here_keeps_its_technique(tmp_path: Path) -> None:
    server, port = await open_port()
    dead = closed_port()
    helper = await start_helper(tmp_path, {"open": port, "dead": dead, "here-only": port})
    try:
        config = monitor_config(tmp_path, helper, {"open": port, "dead": dead, "here-only": closed_port()})
        result = await run_round(config, config.vantages[0])
        targets = {t.target: t for t in result.services[0].targets}
        assert targets["open"].verdict == "ok"
        assert targets["dead"].verdict == "down" and "abroad" in targets["dead"].reason, targets["dead"]
        assert targets["here-only"].verdict == "ip_blocked", targets["here-only"]
        kept = targets["here-only"].as_json()["checks"][-1]
        assert kept["check"] == "helper" and kept["helper"] == "abroad" and kept["verdict"] == "ok" and "failed_check" not in kept
        dead_helper = targets["dead"].as_json()["checks"][-1]
        assert dead_helper["verdict"] == "ip_blocked" and dead_helper["failure"] == "connection_refused"
    finally:
        await helper.close()
        server.close()


async def test_without_a_reachable_helper_the_round_keeps_its_own_verdicts(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    config = monitor_config(tmp_path, helper, {"open": port, "dead": closed_port()})
    await helper.close()
    try:
        result = await run_round(config, config.vantages[0])
        targets = {t.target: t for t in result.services[0].targets}
        assert targets["dead"].verdict == "ip_blocked"
        kept = targets["dead"].checks[-1].as_json()
        assert kept["check"] == "helper" and kept["failure"] == "connection_refused" and kept["error"] == "the helper abroad refused the connection"
        assert kept["line"]["path"] == "/v1/measure" and kept["line"]["sent_bytes"] == 0
        assert [(line.helper, line.up, line.last_failure.failure) for line in result.helpers] == [("abroad", False, "connection_refused")]
    finally:
        server.close()


CALL = {"name": "calls", "targets": [{"name": "call-stream", "host": "helper", "checks": ["udp_stream"],
                                      "params": {"udp_stream": {"duration_seconds": 1.5, "grace_seconds": 0.5}}}]}
CIRCUMVENTION = {"catalog": "circumvention"}


async def test_call_stream_and_circumvention_pass_on_a_clean_path(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        config = monitor_config(tmp_path, helper, {"open": port}, [CALL, CIRCUMVENTION])
        result = await run_round(config, config.vantages[0])
        by_service = {s.service: s for s in result.services}
        call = by_service["calls"].targets[0]
        assert call.verdict == "ok", call.as_json()
        evidence = call.as_json()["checks"][0]
        assert evidence["call"]["sent"] == 75 and evidence["call"]["loss_ratio"] < 0.2 and evidence["call"]["opening_answered"]
        assert evidence["control"]["sent"] == 75 and len(evidence["call"]["buckets"]) == 2
        for target in by_service["circumvention"].targets:
            assert target.verdict == "ok", target.as_json()
            probes = target.as_json()["checks"][0]["probes"]
            assert [p["arrived_bytes"] for p in probes] == [p["size"] for p in probes]
    finally:
        await helper.close()
        server.close()


def test_without_helpers_the_helper_targets_are_left_out_and_circumvention_is_refused(tmp_path: Path) -> None:
    from probe import config as config_module
    from probe.config import ConfigError

    config = config_module.load()
    assert all("udp_stream" not in t.checks for s in config.services for t in s.targets)
    path = tmp_path / "c.yaml"
    path.write_text("services:\n  - catalog: circumvention\n")
    with pytest.raises(ConfigError, match="helpers"):
        config_module.load(path)


def test_helper_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    settings = tmp_path / "helper.yaml"
    settings.write_text("listen: 127.0.0.1:0\n")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "probe", "helper", "--config", str(settings)], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "secret" in proc.stderr and "Traceback" not in proc.stderr
    settings.write_text(f"listen: 127.0.0.1:0\nsecret_file: {write_secret(tmp_path, b'short')}\n")
    proc = subprocess.run([sys.executable, "-m", "probe", "helper", "--config", str(settings)], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "shorter" in proc.stderr


async def test_bulk_transfers_from_the_helper_complete_on_a_clean_path(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        freeze = {"name": "freeze", "targets": [{"name": "freeze-key", "host": "www.whatsapp.com", "checks": ["helper_transfer"],
                                                "params": {"helper_transfer": {"bytes": 65536}}}]}
        config = monitor_config(tmp_path, helper, {"open": port}, [freeze])
        result = await run_round(config, config.vantages[0])
        target = next(s for s in result.services if s.service == "freeze").targets[0]
        assert target.verdict == "ok", target.as_json()
        evidence = target.as_json()["checks"][0]
        assert evidence["keyed_on"] == "none_here"
        assert [(t["kind"], t["sni"], t["received_bytes"]) for t in evidence["transfers"][:3]] == [
            ("plain", None, 65536), ("tls_decoy", "example.org", 65536), ("tls_name", "www.whatsapp.com", 65536)]
        # The same three as uploads (64 KB each by default): counted by the helper, its count answered.
        uploads = evidence["transfers"][3:]
        assert [(t["kind"], t["sni"], t["answered_bytes"]) for t in uploads] == [
            ("plain_upload", None, 65536), ("tls_decoy_upload", "example.org", 65536), ("tls_name_upload", "www.whatsapp.com", 65536)]
        assert all(t["packets"]["segs_out"] > 0 and t["acked_bytes"] > 65536 for t in uploads)
        assert helper.metrics.registry.get_sample_value("msgreach_helper_bulk_bytes_total") == 3 * 65536
        assert helper.metrics.registry.get_sample_value("msgreach_helper_bulk_received_bytes_total") == 3 * 65536
    finally:
        await helper.close()
        server.close()


async def test_an_unsigned_bulk_request_gets_nothing(tmp_path: Path) -> None:
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", helper.ports["bulk"])
        writer.write(b'{"time": "1", "nonce": "00", "bytes": 100000, "signature": "00"}\n')
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert _refused(helper, "bulk", "malformed") + _refused(helper, "bulk", "bad_signature") == 1
    finally:
        await helper.close()
        server.close()


async def test_the_helpers_metrics_pass_promtool(tmp_path: Path) -> None:
    import shutil

    from prometheus_client import generate_latest

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: prometheus)")
    server, port = await open_port()
    helper = await start_helper(tmp_path, {"open": port})
    try:
        helper.metrics.refuse("http", "replayed")
        helper.metrics.requests.labels("measure").inc()
        helper.metrics.probe_arrivals.labels("udp").inc()
        text = generate_latest(helper.metrics.registry)
    finally:
        await helper.close()
        server.close()
    check = await asyncio.to_thread(subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, check=False, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
