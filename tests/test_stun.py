"""stun: Binding Requests against Debian's coturn, hostile UDP peers, a content-matching censor,
and the control logic that turns a silent relay into `udp_blocked` (or not)."""

from __future__ import annotations

import asyncio
import struct

import pytest
from msgreach_helpers import free_udp_port, measured
from servers import stun as servers

from probe import failures
from probe.checks import stun
from probe.checks.context import ControlPhase, Skip
from probe.model import CheckResult, Fault, TargetResult, Verdict
from probe.net import udp_socket
from probe.runner import run_round

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def coturn():
    if not servers.Coturn.available():
        pytest.fail("coturn's turnserver is needed (Debian package coturn, in .ci/apt-packages.txt)")
    server = servers.Coturn(LOOPBACK).start()
    yield server
    server.stop()


class _ContentCensor(asyncio.DatagramProtocol):
    """A UDP relay in front of a server that drops every datagram carrying STUN's magic cookie
    at bytes 4-7 (a content rule), and relays the rest."""

    def __init__(self, backend: tuple[str, int]):
        self.backend = backend
        self.clients: dict[tuple, asyncio.DatagramTransport] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if data[4:8] == struct.pack("!I", servers.MAGIC_COOKIE):
            return
        self.transport.sendto(data, self.backend)


@pytest.fixture(scope="module")
def udp(env) -> dict[str, int]:
    async def start() -> dict[str, int]:
        ports = {}
        for behaviour in servers.BEHAVIOURS:
            _, ports[behaviour] = await servers.start_hostile(behaviour)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _ContentCensor((LOOPBACK, 9)), local_addr=(LOOPBACK, 0))
        ports["content_censor"] = transport.get_extra_info("sockname")[1]
        return ports

    ports = env.loop.call(start())
    ports["closed"] = free_udp_port()  # nothing listens: the kernel answers ICMP unreachable
    return ports


def context(env, ports: list[int], *, facts: ControlPhase | None = None, control: bool = False, **target):
    ctx = env.context(
        LOOPBACK,
        target={"addresses": [LOOPBACK], "ports": ports, "checks": ["stun"], **target},
        phase=facts,
        service=False if control else None,
    )
    return ctx


FAST = stun.Params(attempts=2, initial_rto=0.2)


def control_facts(ok: bool, name: str = "stun-control") -> ControlPhase:
    check = CheckResult("stun", ok, None if ok else failures.TIMEOUT)
    return ControlPhase(controls={name: TargetResult("controls", name, "stun.test", Verdict.OK if ok else Verdict.UDP_BLOCKED, [check])})


# --- the wire format ------------------------------------------------------------------------------


def test_binding_request_layout_and_fingerprint():
    import zlib

    txid = bytes(range(12))
    message = stun.binding_request(txid, fingerprint=True)
    kind, length, cookie = struct.unpack_from("!HHI", message)
    assert (kind, length, cookie, message[8:20]) == (0x0001, 8, 0x2112A442, txid)
    attribute, size, crc = struct.unpack_from("!HHI", message, 20)
    assert (attribute, size) == (0x8028, 4)
    assert crc == (zlib.crc32(message[:20]) ^ 0x5354554E) & 0xFFFFFFFF
    bare = stun.binding_request(txid, fingerprint=False, software="x")
    assert struct.unpack_from("!H", bare, 2)[0] == len(bare) - 20 == 8  # SOFTWARE "x", padded


def test_parse_response_ignores_other_transactions():
    txid = bytes(12)
    other = struct.pack("!HHI", 0x0101, 0, 0x2112A442) + b"\x01" * 12
    assert stun.parse_response(other, txid) is None
    assert stun.parse_response(b"short", txid) is None
    with pytest.raises(failures.Failure):
        stun.parse_response(struct.pack("!HHI", 0x0101, 8, 0x2112A442) + txid, txid)  # length lies


# --- against coturn ---------------------------------------------------------------------------------


async def test_coturn_answers(env, coturn):
    result = await measured(context(env, [coturn.port]), stun, stun.Params())
    assert result.ok, result
    (binding,) = result.evidence.bindings
    assert binding.response == "success" and binding.mapped_family == "ipv4"
    assert binding.requests == 1
    assert "127.0.0.1" not in str({k: v for k, v in result.as_json()["bindings"][0].items() if k != "address"})  # the mapped address is not kept


async def test_coturn_answers_with_every_option(env, coturn):
    result = await measured(context(env, [coturn.port]), stun, stun.Params(fingerprint=False, software="msgreach"))
    assert result.ok


async def test_one_answering_port_is_enough(env, coturn, udp):
    result = await measured(context(env, [udp["silent"], coturn.port]), stun, FAST)
    assert result.ok
    assert [b.failure for b in result.evidence.bindings] == [failures.TIMEOUT, None]


# --- hostile peers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "failure", "fault"),
    [
        ("silent", failures.TIMEOUT, Fault.PATH),
        # The peer answered, not in STUN: its own doing, even with the control answering.
        ("garbage", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("wrong_txid", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("malformed", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("flood", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("closed", failures.CONNECTION_REFUSED, Fault.PATH),
    ],
)
async def test_hostile_peers_fail_with_a_classified_failure(env, udp, behaviour, failure, fault):
    result = await measured(context(env, [udp[behaviour]], facts=control_facts(True)), stun, FAST)
    assert (result.ok, result.failure, result.finding.technique, result.finding.fault) == (False, failure, Verdict.UDP_BLOCKED, fault)
    (binding,) = result.evidence.bindings
    assert binding.failure == failure
    if behaviour == "silent":
        assert binding.requests == 2  # retransmitted


async def test_flood_is_counted_and_bounded(env, udp):
    result = await measured(context(env, [udp["flood"]]), stun, FAST)
    (binding,) = result.evidence.bindings
    assert binding.failure == failures.PROTOCOL_ERROR and binding.stray_datagrams > 0
    client = stun._Client()
    for _ in range(1000):  # nobody reading: what is not read is dropped, not buffered
        client.datagram_received(b"x" * 1500, ("127.0.0.1", 1))
    assert client.received.qsize() == 64


async def test_an_error_response_still_proves_the_path(env, udp):
    result = await measured(context(env, [udp["error"]]), stun, FAST)
    assert result.ok
    (binding,) = result.evidence.bindings
    assert (binding.response, binding.error_code) == ("error", 420)


async def test_the_check_timeout_caps_retransmissions(env, udp):
    ctx = context(env, [udp["silent"]])
    ctx.timeout = 0.3
    result = await measured(ctx, stun, stun.Params(attempts=7, initial_rto=0.2))
    (binding,) = result.evidence.bindings
    assert binding.failure == failures.TIMEOUT and binding.requests < 7


# --- the control decides the verdict -----------------------------------------------------------------


async def test_silent_relay_with_answering_control_is_udp_blocked(env, udp):
    result = await measured(context(env, [udp["content_censor"]], facts=control_facts(True)), stun, FAST)
    assert (result.finding.technique, result.finding.fault, result.failure) == (Verdict.UDP_BLOCKED, Fault.PATH, failures.TIMEOUT)
    assert result.finding.differential == "control_stun" and "stun-control" in str(result.finding.reason)
    assert result.evidence.controls == {"stun-control": True} and result.as_json()["controls"] == {"stun-control": True}


async def test_silent_control_too_is_down(env, udp):
    result = await measured(context(env, [udp["silent"]], facts=control_facts(False)), stun, FAST)
    assert result.finding.fault == Fault.SERVER and result.evidence.control_answered is False


async def test_no_control_configured_is_down(env, udp):
    result = await measured(context(env, [udp["silent"]]), stun, FAST)
    assert result.finding.fault == Fault.UNSEPARATED and result.evidence.controls == {}


async def test_a_named_control_is_the_one_compared(env, udp):
    facts = ControlPhase(controls={**control_facts(True, "other").controls, **control_facts(False, "mine").controls})
    result = await measured(context(env, [udp["silent"]], facts=facts), stun, stun.Params(attempts=1, initial_rto=0.2, control="mine"))
    assert result.finding.fault == Fault.SERVER


async def test_skipped_through_a_socks_proxy(env, udp):
    ctx = env.context(LOOPBACK, vantage={"socks5": "127.0.0.1:1080"}, target={"addresses": [LOOPBACK], "ports": [udp["silent"]]})
    with pytest.raises(Skip):
        await stun.run(ctx, FAST)


async def test_source_address_is_used(env, coturn):
    ctx = env.context(LOOPBACK, vantage={"source_address": "127.0.0.2"}, target={"addresses": [LOOPBACK], "ports": [coturn.port]})
    sock = udp_socket(ctx.route, LOOPBACK, coturn.port)
    try:
        assert sock.getsockname()[0] == "127.0.0.2"
    finally:
        sock.close()
    assert (await measured(ctx, stun, stun.Params())).ok


# --- through the runner ----------------------------------------------------------------------------


def round_config(env, coturn_port: int, relay_port: int, control_port: int):
    control = {"name": "stun-control", "host": "stun.control.test", "addresses": [LOOPBACK], "ports": [control_port], "checks": ["stun"]}
    service = {
        "name": "telegram",
        "targets": [{"name": "calls", "host": "91.108.56.1", "addresses": [LOOPBACK], "ports": [relay_port], "checks": ["stun"]}],
    }
    return env.config([service], controls=[env.control_target(), control], schedule={"timeouts": {"extra": {"stun": 1.0}}})


@pytest.mark.parametrize(
    ("relay", "control", "verdict"),
    [("coturn", "coturn", "ok"), ("content_censor", "coturn", "udp_blocked"), ("silent", "silent", "down")],
)
async def test_round_verdicts(env, coturn, udp, tmp_path, relay, control, verdict):
    port = lambda name: coturn.port if name == "coturn" else udp[name]  # noqa: E731
    config = env.load(tmp_path, round_config(env, coturn.port, port(relay), port(control)))
    result = await run_round(config, config.vantages[0])
    assert result.online
    assert result.services[0].targets[0].verdict == verdict, result.services[0].targets[0].reason

