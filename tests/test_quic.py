"""quic: HTTP/3 with aioquic against aioquic's server (test-CA certificates), TSPU's QUIC rule
played by a UDP relay, hostile servers, and the comparison with TCP+TLS that makes the verdict."""

from __future__ import annotations

import sys

import pytest
from msgreach_helpers import free_udp_port, measured
from servers import h3

from probe import failures
from probe.checks import quic
from probe.checks.context import Skip
from probe.model import CheckResult, Fault, Finding, Verdict
from probe.runner import run_round

LOOPBACK = "127.0.0.1"
HOST = "quic.good.test"  # in the valid leaf's names (*.good.test)


@pytest.fixture(scope="module")
def udp(env) -> dict[str, int]:
    """UDP ports on 127.0.0.1: HTTP/3 servers per behaviour and certificate, and relays."""

    async def start() -> dict[str, int]:
        ports: dict[str, int] = {}
        valid = env.leaves["valid"]
        for behaviour in h3.BEHAVIOURS:
            ports[behaviour] = free_udp_port()
            server = await h3.start_h3(LOOPBACK, ports[behaviour], str(valid.cert), str(valid.key), behaviour)
            env.fleet.closers.append(server)
        for kind in ("wrongname", "expired", "selfsigned"):
            ports[kind] = free_udp_port()
            leaf = env.leaves[kind]
            env.fleet.closers.append(await h3.start_h3(LOOPBACK, ports[kind], str(leaf.cert), str(leaf.key)))
        transport, _, ports["tspu"] = await h3.start_filter((LOOPBACK, ports["ok"]))
        env.fleet.closers.append(transport)
        transport, _, ports["relay"] = await h3.start_filter((LOOPBACK, ports["ok"]), drop_quic_v1=False)
        env.fleet.closers.append(transport)
        transport, _, ports["small_only"] = await h3.start_filter((LOOPBACK, ports["ok"]), min_size=100_000)
        env.fleet.closers.append(transport)
        transport, ports["sni_filter"], ports["sni_censor"] = await h3.start_filter((LOOPBACK, ports["ok"]), drop_sni=HOST)
        env.fleet.closers.append(transport)
        return ports

    ports = env.loop.call(start())
    ports["closed"] = free_udp_port()
    return ports


def context(env, *, tls: bool | None = True, **kwargs):
    ctx = env.context(HOST, target={"addresses": [LOOPBACK], "checks": ["tcp", "tls", "quic"]}, **kwargs)
    if tls is not None:
        finding = None if tls else Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni")
        ctx.results.append(CheckResult("tls", tls, None if tls else failures.CONNECTION_RESET, 0.0, finding))
        if tls:
            ctx.tls_endpoint = (LOOPBACK, env.ports["web"])
    return ctx


async def check(env, port: int, *, tls: bool | None = True, **params) -> CheckResult:
    return await measured(context(env, tls=tls), quic, quic.Params(port=port, **params))


async def test_http3_request_completes(env, udp):
    result = await check(env, udp["ok"])
    assert result.ok, result
    assert result.evidence.attempt.status_code == 200 and result.evidence.attempt.body_bytes == len(h3.BODY)
    data = result.as_json()  # the attempt's fields at the top level, as always
    assert data["sni"] == HOST and data["tls_ok"] is True and data["status_code"] == 200
    assert data["handshake_seconds"] > 0 and "decoy" not in data


async def test_the_status_is_not_a_signal(env, udp):
    result = await check(env, udp["status_500"])
    assert result.ok and result.evidence.attempt.status_code == 500


async def test_through_a_plain_relay_it_works(env, udp):
    assert (await check(env, udp["relay"])).ok
    assert (await check(env, udp["small_only"])).ok  # the rule's size threshold matters


async def test_tspu_quic_rule_is_quic_blocked(env, udp):
    result = await check(env, udp["tspu"], handshake_timeout=0.8)
    assert (result.ok, result.failure, result.finding.technique, result.finding.fault) == (False, failures.TIMEOUT, Verdict.QUIC_BLOCKED, Fault.PATH)
    data = result.as_json()
    assert "status_code" not in data
    assert data["failure"] == failures.TIMEOUT  # the evidence never overwrites it
    # The decoy SNI is dropped too: the rule is keyed on QUIC itself, not on the name.
    assert data["keyed_on"] == "quic" and data["decoy"]["sni"] == "example.org" and data["decoy"]["failure"] == failures.TIMEOUT
    assert "keyed on QUIC itself" in str(result.finding.reason)


async def test_a_censor_reading_the_initials_sni_is_keyed_on_the_name(env, udp):
    result = await check(env, udp["sni_censor"], handshake_timeout=0.8)
    assert (result.failure, result.finding.technique, result.finding.fault) == (failures.TIMEOUT, Verdict.QUIC_BLOCKED, Fault.PATH)
    assert result.evidence.keyed_on == "name" and result.evidence.decoy.failure is None
    assert result.evidence.decoy.handshake_seconds is not None and "keyed on the name" in str(result.finding.reason)
    assert udp["sni_filter"].dropped > 0  # the filter really decrypted an Initial and found the name


async def test_the_decoy_can_be_turned_off(env, udp):
    result = await check(env, udp["sni_censor"], handshake_timeout=0.5, decoy=False)
    assert result.finding.fault == Fault.PATH and result.evidence.decoy is None and "keyed_on" not in result.as_json()


async def test_nothing_listening_is_refused_not_a_timeout(env, udp):
    result = await check(env, udp["closed"], handshake_timeout=3)
    assert (result.failure, result.finding.technique, result.finding.fault) == (failures.CONNECTION_REFUSED, Verdict.QUIC_BLOCKED, Fault.PATH)


@pytest.mark.parametrize(
    ("kind", "failure"),
    [("wrongname", failures.SSL_INVALID_HOSTNAME), ("selfsigned", failures.SSL_UNKNOWN_AUTHORITY), ("expired", failures.SSL_INVALID_CERTIFICATE)],
)
async def test_certificate_problems_are_named(env, udp, kind, failure):
    result = await check(env, udp[kind])
    assert (result.ok, result.failure) == (False, failure), result.evidence
    assert result.finding.fault == Fault.SERVER  # the server's certificate: no technique, no decoy
    assert result.evidence.decoy is None


async def test_the_vantage_ca_bundle_is_trusted_only_when_configured(env, udp):
    ctx = context(env, vantage={"ca_bundle": None})
    result = await measured(ctx, quic, quic.Params(port=udp["ok"]))
    assert result.failure == failures.SSL_UNKNOWN_AUTHORITY


async def test_endless_body_is_capped(env, udp):
    result = await check(env, udp["endless"], max_body_bytes=100_000)
    assert result.ok
    assert 100_000 <= result.evidence.attempt.body_bytes < 100_000 + 64 * 1024


async def test_silent_server_times_out_with_evidence(env, udp):
    result = await check(env, udp["silent"], handshake_timeout=0.5)
    # The handshake completed; the response did not: the server's doing, not the path's.
    assert (result.failure, result.finding.fault) == (failures.TIMEOUT, Fault.SERVER)
    assert "handshake_seconds" in result.as_json() and result.evidence.decoy is None


async def test_without_tls_evidence_a_failure_is_not_a_block(env, udp):
    result = await check(env, udp["tspu"], tls=None, handshake_timeout=0.5)
    assert (result.ok, result.finding.fault) == (False, Fault.UNSEPARATED)


async def test_with_tls_failing_too_nothing_is_compared(env, udp):
    result = await check(env, udp["tspu"], tls=False, handshake_timeout=0.5)
    assert (result.ok, result.finding.fault) == (False, Fault.UNSEPARATED) and result.evidence.decoy is None


async def test_without_aioquic_the_check_says_so(env, udp, monkeypatch):
    monkeypatch.setitem(sys.modules, "aioquic", None)  # what `import aioquic` meets when it is not installed
    result = await check(env, udp["ok"])
    assert (result.ok, result.failure) == (False, failures.UNAVAILABLE)
    # The monitor's own fault: `error`, never `down` or a block.
    assert (result.finding.fault, result.finding.technique) == (Fault.MONITOR, Verdict.QUIC_BLOCKED)
    assert "aioquic is not installed" in result.as_json()["error"]


async def test_skipped_through_a_socks_proxy(env, udp):
    ctx = env.context(HOST, vantage={"socks5": "127.0.0.1:1080"}, target={"addresses": [LOOPBACK]})
    with pytest.raises(Skip):
        await quic.run(ctx, quic.Params(port=udp["ok"]))


def test_quic_close_codes():
    assert failures.quic_close(0x100 + 48) == failures.SSL_UNKNOWN_AUTHORITY
    assert failures.quic_close(0x100 + 42, "hostname 'a' doesn't match 'b'") == failures.SSL_INVALID_HOSTNAME
    assert failures.quic_close(0x100 + 40) == failures.SSL_FAILED_HANDSHAKE
    assert failures.quic_close(0) == failures.EOF
    assert failures.quic_close(0xA) == failures.PROTOCOL_ERROR


# --- through the runner: TCP+TLS pass, then QUIC -------------------------------------------------------


@pytest.mark.parametrize(("port", "verdict"), [("ok", "ok"), ("tspu", "quic_blocked")])
async def test_round_verdicts(env, udp, tmp_path, port, verdict):
    service = {
        "name": "whatsapp",
        "targets": [
            {
                "name": "web",
                "host": HOST,
                "addresses": [LOOPBACK],
                "ports": [env.ports["web"]],
                "checks": ["tcp", "tls", "quic"],
                "params": {"quic": {"port": udp[port], "handshake_timeout": 1.0}},
            }
        ],
    }
    config = env.load(tmp_path, env.config([service]))
    result = await run_round(config, config.vantages[0])
    target = result.services[0].targets[0]
    assert target.verdict == verdict, target.reason
    assert [c.check for c in target.checks] == ["tcp", "tls", "quic"]
