"""mtproto: req_pq_multi over abridged and intermediate, and OONI's POST, against a responder
written from the public spec (tests/servers/mtproto.py), hostile variants of it, and a censor
in front of it that resets connections whose first bytes are MTProto's."""

from __future__ import annotations

import os
import struct

import pytest
from msgreach_helpers import measured, verdict_of
from servers import mtproto as responder
from servers.fingerprint_censor import first_bytes_front

from probe import failures
from probe.checks import REGISTRY, mtproto
from probe.model import CheckResult, Fault, Verdict
from probe.runner import run_round

LOOPBACK = "127.0.0.1"


def first_bytes_censor(prefixes: tuple[bytes, ...], backend: tuple[str, int], *, reset_unknown: bool = False):
    """An in-path DPI rule on a connection's first bytes: reset it if they start with one of
    `prefixes`, else relay it to `backend` byte for byte. `reset_unknown` turns the rule round,
    TSPU's rule for protocols it cannot name (obfuscated2 looks random): reset what starts with
    none of them."""
    return first_bytes_front(backend, lambda first: any(first.startswith(p) for p in prefixes) is not reset_unknown)


KNOWN_FIRST_BYTES = (b"\xef", b"\xee\xee\xee\xee", b"POST", b"GET ", b"\x16\x03")  # plain MTProto, HTTP, TLS


@pytest.fixture(scope="module")
def dc(env) -> dict[str, int]:
    """Ports on 127.0.0.1: one responder per behaviour, plus censors in front of a good one."""
    served: list[str] = []

    async def start() -> dict[str, int]:
        ports = {}
        for behaviour in responder.BEHAVIOURS:
            _, ports[behaviour] = await env.fleet.serve(responder.handler(behaviour, served), LOOPBACK)
        _, ports["ok2"] = await env.fleet.serve(responder.handler("ok", served), LOOPBACK)
        good = (LOOPBACK, ports["ok"])
        _, ports["censor_all"] = await env.fleet.serve(first_bytes_censor((b"\xef", b"\xee\xee\xee\xee"), good), LOOPBACK)
        _, ports["censor_abridged"] = await env.fleet.serve(first_bytes_censor((b"\xef",), good), LOOPBACK)
        _, ports["censor_obfuscated2"] = await env.fleet.serve(first_bytes_censor(KNOWN_FIRST_BYTES, good, reset_unknown=True), LOOPBACK)
        return ports

    ports = env.loop.call(start())
    ports["refused"] = env.ports["refused"]
    ports["served"] = served  # type: ignore[assignment]
    return ports


def context(env, ports: list[int], **kwargs):
    return env.context(LOOPBACK, target={"addresses": [LOOPBACK], "ports": ports, "checks": ["tcp", "mtproto"]}, **kwargs)


async def run_check(env, ports: list[int], params: dict | None = None, *, with_tcp: bool = True, timeout: float = 3.0) -> CheckResult:
    ctx = context(env, ports, timeout=timeout)
    if with_tcp:
        await measured(ctx, REGISTRY["tcp"])
    return await measured(ctx, mtproto, mtproto.Params(**(params or {})))


# --- the wire format, against the responder's independent reading of the spec ------------------


def test_request_is_what_the_spec_describes():
    nonce = os.urandom(16)
    payload = mtproto.req_pq_multi(nonce, now=1_700_000_000.5)
    auth_key_id, message_id, length, constructor = struct.unpack_from("<qqII", payload)
    assert (auth_key_id, length, constructor) == (0, 20, 0xBE7E8EF1)
    assert message_id % 4 == 0 and message_id >> 32 == 1_700_000_000
    assert payload[24:] == nonce and len(payload) == 40
    assert mtproto.frame("abridged", payload) == b"\xef\x0a" + payload
    assert mtproto.frame("intermediate", payload) == b"\xee\xee\xee\xee\x28\x00\x00\x00" + payload
    assert responder.nonce_of(payload) == nonce


def test_long_abridged_packets_use_the_three_byte_length():
    payload = b"\x00" * (4 * 200)
    assert mtproto.frame("abridged", payload, first=False)[:4] == b"\x7f\xc8\x00\x00"


def test_res_pq_parses_and_must_echo_the_nonce():
    nonce = os.urandom(16)
    facts = mtproto.parse_res_pq(responder.res_pq(nonce), nonce)
    assert facts["key_fingerprints"] == [f"{responder.SAMPLE_FINGERPRINT:016x}"]
    assert facts["pq_bytes"] == 8 and facts["server_message_id_odd"]
    with pytest.raises(failures.Failure) as caught:
        mtproto.parse_res_pq(responder.res_pq(nonce), os.urandom(16))
    assert caught.value.failure == failures.PROTOCOL_ERROR
    for broken in (responder.res_pq(nonce)[:50], b"\x01" + responder.res_pq(nonce)[1:], responder.res_pq(nonce, 0x12345678)):
        with pytest.raises(failures.Failure):
            mtproto.parse_res_pq(broken, nonce)


# --- the check against the responder ---------------------------------------------------------------


async def test_every_probe_works_against_a_live_dc(env, dc):
    result = await run_check(env, [dc["ok"], dc["ok2"]], timeout=5.0)  # 8 exchanges at once on a busy machine
    assert result.ok, result
    assert result.evidence.works == {"abridged": True, "intermediate": True, "obfuscated2": True, "http": True}
    probes = result.evidence.probes
    assert len(probes) == 8 and all(p.failure is None for p in probes)
    assert {p.status_code for p in probes if p.probe == "http"} == {501}
    assert all(p.key_fingerprints for p in probes if p.probe != "http")
    # The responder decrypted obfuscated2 and answered in it (padded intermediate inside).
    assert "obfuscated2/padded" in dc["served"]


async def test_one_working_endpoint_per_probe_is_enough(env, dc):
    result = await run_check(env, [dc["silent"], dc["ok"]], timeout=0.5)
    assert result.ok
    assert any(p.failure == failures.TIMEOUT for p in result.evidence.probes)


PLAIN = ("abridged", "intermediate")


@pytest.mark.parametrize(
    ("behaviour", "failure", "fault"),
    [
        # The data centre answered, in something other than MTProto: the server's doing.
        ("wrong_nonce", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("garbage", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("transport_error", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("not_respq", failures.PROTOCOL_ERROR, Fault.SERVER),
        ("endless", failures.PROTOCOL_ERROR, Fault.SERVER),  # a packet longer than any resPQ: refused, not buffered
        ("huge", failures.PROTOCOL_ERROR, Fault.SERVER),
        # TCP connected, then the exchange was cut before any answer: what a censor does.
        ("close", failures.EOF, Fault.PATH),
        # The same rule as the WhatsApp chat check's (probe.judge.rules): our bytes acknowledged,
        # then nothing, is a silent server; an answer that began and then stopped (a valid answer
        # at 5 bytes/s does not fit in the timeout) is a server that drips. Neither is a block.
        ("silent", failures.TIMEOUT, Fault.SERVER),
        ("drip", failures.TIMEOUT, Fault.SERVER),
    ],
)
async def test_hostile_dc_findings_with_a_classified_failure(env, dc, behaviour, failure, fault):
    result = await run_check(env, [dc[behaviour]], {"http_post": False, "transports": PLAIN}, timeout=0.6)
    assert not result.ok
    assert (result.failure, result.finding.technique, result.finding.fault) == (failure, Verdict.PROTOCOL_BLOCKED, fault)
    # The check's own bound gave the answer (with evidence), not the runner's cut.
    assert {p.failure for p in result.evidence.probes} == {failure}
    assert result.evidence.works == {"abridged": False, "intermediate": False}


@pytest.mark.parametrize("behaviour", ["ok", "wrong_nonce", "transport_error", "silent"])
async def test_obfuscated2_reads_the_same_answers(env, dc, behaviour):
    timeout = 0.6 if behaviour == "silent" else 3.0  # silence waits the bound out; the others answer at once
    result = await run_check(env, [dc[behaviour]], {"http_post": False, "transports": ["obfuscated2"]}, timeout=timeout)
    assert result.ok is (behaviour == "ok"), result
    if behaviour == "transport_error":
        assert all("-404" in p.detail for p in result.evidence.probes)


def test_obfuscated2_header_reads_as_no_other_protocol():
    for _ in range(200):
        header = mtproto.obfuscated2_header()
        assert len(header) == 64 and header[0] != 0xEF and header[:4] not in (b"POST", b"GET ", b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd")
        assert header[4:8] != bytes(4) and header[56:60] == mtproto.PADDED_INTERMEDIATE
    session = mtproto.Obfuscated2(mtproto.obfuscated2_header())
    # On the wire the tag is encrypted: the first 56 bytes go as they are, the rest does not.
    assert session.header[56:60] != mtproto.PADDED_INTERMEDIATE


async def test_transport_error_code_is_in_the_evidence(env, dc):
    result = await run_check(env, [dc["transport_error"]], {"http_post": False})
    assert all("-404" in p.detail for p in result.evidence.probes)


async def test_censor_matching_mtproto_first_bytes_is_protocol_blocked(env, dc):
    result = await run_check(env, [dc["censor_all"]])
    assert (result.ok, result.finding.technique, result.failure) == (False, Verdict.PROTOCOL_BLOCKED, failures.CONNECTION_RESET)
    assert result.finding.fault == Fault.PATH
    # The censor lets HTTP and obfuscated2 through: the DC answers, plain MTProto is what is blocked.
    assert result.evidence.works == {"abridged": False, "intermediate": False, "obfuscated2": True, "http": True}
    assert "abridged, intermediate failed" in str(result.finding.reason) and "plain MTProto" in str(result.finding.reason)
    assert result.finding.differential == "framing"


async def test_censor_dropping_obfuscated2_is_named(env, dc):
    result = await run_check(env, [dc["censor_obfuscated2"]])
    assert (result.ok, result.finding.technique, result.finding.fault) == (False, Verdict.PROTOCOL_BLOCKED, Fault.PATH)
    assert result.evidence.works == {"abridged": True, "intermediate": True, "obfuscated2": False, "http": True}
    assert str(result.finding.reason).startswith("obfuscated2 failed") and "matches obfuscated2" in str(result.finding.reason)
    assert result.as_json()["works"]["obfuscated2"] is False


async def test_a_censor_on_one_transport_is_reported_for_that_transport(env, dc):
    result = await run_check(env, [dc["censor_abridged"]])
    assert not result.ok and result.finding.technique == Verdict.PROTOCOL_BLOCKED
    assert result.evidence.works == {"abridged": False, "intermediate": True, "obfuscated2": True, "http": True}


async def test_transports_can_be_chosen(env, dc):
    result = await run_check(env, [dc["censor_abridged"]], {"transports": ["intermediate"], "http_post": False})
    assert result.ok
    assert {p.probe for p in result.evidence.probes} == {"intermediate"}


async def test_without_a_tcp_check_an_unreachable_dc_is_ip_blocked(env, dc):
    result = await run_check(env, [dc["refused"]], with_tcp=False)
    assert (result.ok, result.finding.technique, result.failure) == (False, Verdict.IP_BLOCKED, failures.CONNECTION_REFUSED)
    assert result.finding.fault == Fault.UNSEPARATED


async def test_without_a_tcp_check_the_pinned_addresses_are_used(env, dc):
    ctx = env.context("127.0.0.1", target={"ports": [dc["ok"]], "checks": ["mtproto"]})
    ctx.addresses = []  # as the runner leaves it for a target without `dns`
    result = await measured(ctx, mtproto, mtproto.Params())
    assert result.ok and ctx.addresses == ["127.0.0.1"]


async def test_skipped_when_tcp_connected_nowhere(env, dc):
    from probe.checks.context import Skip

    ctx = context(env, [dc["refused"]])
    await measured(ctx, REGISTRY["tcp"])
    with pytest.raises(Skip):
        await mtproto.run(ctx, mtproto.Params())


# --- through the runner ----------------------------------------------------------------------------


def telegram(dc_port: int) -> dict:
    return {
        "name": "telegram",
        "targets": [
            {"name": "dc1", "host": "149.154.175.50", "addresses": [LOOPBACK], "ports": [dc_port], "checks": ["tcp", "mtproto"]}
        ],
    }


@pytest.mark.parametrize(("port", "verdict"), [("ok", "ok"), ("censor_all", "protocol_blocked"), ("refused", "ip_blocked")])
async def test_round_verdicts(env, dc, tmp_path, port, verdict):
    config = env.load(tmp_path, env.config([telegram(dc[port])]))
    result = await run_round(config, config.vantages[0])
    target = result.services[0].targets[0]
    assert target.verdict == verdict, target.reason
    assert result.services[0].verdict == verdict


# --- one rule for the service's own protocols (probe.judge.rules) ------------------------------------


async def test_mtproto_and_the_chat_read_one_silent_server_alike(env):
    """A server that accepts, takes our first bytes (its kernel acknowledges them) and never
    answers: the same server, the same verdict, whichever protocol met it."""
    from probe.checks import whatsapp_chat

    port = env.ports["silent"]
    ctx = context(env, [port], timeout=0.6)
    await measured(ctx, REGISTRY["tcp"])
    dc = await measured(ctx, mtproto, mtproto.Params(http_post=False, transports=["abridged"]))
    ctx = env.context(LOOPBACK, target={"addresses": [LOOPBACK], "ports": [port], "checks": ["tcp", "whatsapp_chat"]}, timeout=0.6)
    await measured(ctx, REGISTRY["tcp"])
    chat = await measured(ctx, whatsapp_chat, whatsapp_chat.Params(hold_seconds=0.3, reply_timeout=0.6))
    assert verdict_of(dc) == verdict_of(chat) == "down"
    assert dc.finding.reason.key == chat.finding.reason.key == "server_silent"
    assert dc.evidence.probes[0].unacked_segments == 0 == chat.evidence.hosts[0].exchanges[0].unacked_segments
