"""Every failure string the engine names (probe/failures.py), produced by a real socket condition
on loopback, through the same code the checks use."""

from __future__ import annotations

import logging
import ssl
import time

import pytest
from msgreach_helpers import measured, verdict_of

from probe import failures
from probe.checks import http, tcp, tls
from probe.checks.context import Context
from probe.config import Resolver
from probe.failures import Failure, classify
from probe.net import Route, connect, open_tcp
from probe.resolvers import lookup

LOOPBACK = "127.0.0.1"


async def _handshake(ctx: Context, port: int, sni: str, verify: bool = True) -> dict:
    return await tls.handshake(ctx, LOOPBACK, port, sni, verify=verify)


# --- TCP -----------------------------------------------------------------------------------------


async def test_connection_refused(env):
    ctx = env.context("refused.good.test", "refused")
    outcome = await tcp.connect_once(ctx, LOOPBACK, env.ports["refused"])
    assert outcome.failure == failures.CONNECTION_REFUSED


async def test_tcp_connect_timeout_is_generic_timeout_error(env):
    ctx = env.context("drop.good.test", "blackhole", timeout=0.5)
    started = time.monotonic()
    outcome = await tcp.connect_once(ctx, LOOPBACK, env.ports["blackhole"])
    assert outcome.failure == failures.TIMEOUT
    assert time.monotonic() - started < 1.5


async def test_tcp_connect_ok(env):
    ctx = env.context("ok.good.test")
    outcome = await tcp.connect_once(ctx, LOOPBACK, env.ports["web"])
    assert outcome.failure is None
    assert outcome.address == LOOPBACK and outcome.port == env.ports["web"]


async def test_source_address_not_on_this_host_is_network_unreachable(env):
    """A configured source address that the host does not have (EADDRNOTAVAIL): the bind fails
    before any packet is sent."""
    ctx = env.context("ok.good.test", vantage={"source_address": "192.0.2.77"})
    outcome = await tcp.connect_once(ctx, LOOPBACK, env.ports["web"])
    assert outcome.failure == failures.NETWORK_UNREACHABLE


async def test_source_address_is_used(env):
    ctx = env.context("ok.good.test", vantage={"source_address": "127.0.0.77"})
    reader, writer = await open_tcp(ctx.route, LOOPBACK, env.ports["web"])
    try:
        assert writer.get_extra_info("sockname")[0] == "127.0.0.77"
    finally:
        writer.close()
    # the tcp → tls → http path's own socket, too
    stream = await connect(ctx.route, LOOPBACK, env.ports["web"])
    try:
        assert stream.sock.getsockname()[0] == "127.0.0.77"
    finally:
        stream.close()


# --- TLS -----------------------------------------------------------------------------------------


async def test_tls_ok_keeps_certificate_facts(env):
    ctx = env.context("ok.good.test")
    outcome = await _handshake(ctx, env.ports["web"], "ok.good.test")
    assert outcome.failure is None
    cert = outcome.certificate
    assert "msgreach test CA" in cert.issuer
    assert "*.good.test" in cert.dns_names
    assert len(cert.sha256) == 64
    assert cert.not_after_timestamp > time.time()


async def test_connection_reset_after_client_hello(env):
    ctx = env.context("x.good.test", "reset")
    outcome = await _handshake(ctx, env.ports["reset"], "x.good.test")
    assert outcome.failure == failures.CONNECTION_RESET


async def test_eof_after_client_hello(env):
    """A FIN (no RST, no alert) in answer to the ClientHello is OONI's eof_error, not a reset."""
    ctx = env.context("x.good.test", "hello_close")
    outcome = await _handshake(ctx, env.ports["hello_close"], "x.good.test")
    assert outcome.failure == failures.EOF


async def test_tls_handshake_timeout(env):
    ctx = env.context("x.good.test", "silent", timeout=0.5)
    started = time.monotonic()
    outcome = await _handshake(ctx, env.ports["silent"], "x.good.test")
    assert outcome.failure == failures.TIMEOUT
    assert time.monotonic() - started < 1.5


async def test_ssl_failed_handshake_when_the_peer_does_not_speak_tls(env):
    ctx = env.context("x.good.test", "not_tls")
    outcome = await _handshake(ctx, env.ports["not_tls"], "x.good.test")
    assert outcome.failure == failures.SSL_FAILED_HANDSHAKE


async def test_ssl_invalid_hostname(env):
    ctx = env.context("x.good.test", "wrongname")
    outcome = await _handshake(ctx, env.ports["wrongname"], "x.good.test")
    assert outcome.failure == failures.SSL_INVALID_HOSTNAME


async def test_ssl_unknown_authority_self_signed(env):
    ctx = env.context("x.good.test", "selfsigned")
    outcome = await _handshake(ctx, env.ports["selfsigned"], "x.good.test")
    assert outcome.failure == failures.SSL_UNKNOWN_AUTHORITY


async def test_ssl_unknown_authority_without_the_ca_bundle(env):
    ctx = env.context("x.good.test", vantage={"ca_bundle": None})
    outcome = await _handshake(ctx, env.ports["web"], "x.good.test")
    assert outcome.failure == failures.SSL_UNKNOWN_AUTHORITY


async def test_ca_bundle_replace_mode_trusts_only_the_bundle(env):
    ctx = env.context("x.good.test", vantage={"ca_bundle_mode": "replace"})
    assert (await _handshake(ctx, env.ports["web"], "x.good.test")).failure is None


async def test_ca_bundle_per_target(env):
    ctx = env.context("x.good.test", vantage={"ca_bundle": None}, target={"ca_bundle": str(env.ca.pem)})
    assert (await _handshake(ctx, env.ports["web"], "x.good.test")).failure is None


async def test_ssl_invalid_certificate_expired(env):
    ctx = env.context("x.good.test", "expired")
    outcome = await _handshake(ctx, env.ports["expired"], "x.good.test")
    assert outcome.failure == failures.SSL_INVALID_CERTIFICATE


# --- DNS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ({"rcode": "NXDOMAIN"}, failures.DNS_NXDOMAIN),
        ({"rcode": "SERVFAIL"}, failures.DNS_SERVFAIL),
        ({"rcode": "REFUSED"}, failures.DNS_REFUSED),
        ({}, failures.DNS_NO_ANSWER),  # NOERROR, empty answer, for A and AAAA
        ({"mode": "drop"}, failures.TIMEOUT),
    ],
)
async def test_dns_failures_over_udp(env, behaviour, failure):
    name = f"f-{failure}.good.test"
    env.dns.set(name, **behaviour)
    started = time.monotonic()
    answer = await lookup(Resolver(address=env.dns.address), name, route=Route(), timeout=0.5)
    assert answer.failure == failure
    assert answer.addresses == []
    assert time.monotonic() - started < 1.5


async def test_dns_bad_response_over_tcp(env):
    """Bytes that are not DNS, where a reply was due: over DoT, where the stream is ours."""
    env.dns.set("garbage.good.test", mode="garbage")
    resolver = Resolver(address=env.dns.dot_address, server_name="dot.test")
    answer = await lookup(resolver, "garbage.good.test", route=Route(), timeout=1, ca_bundles=(env.ca.pem,))
    assert answer.failure == failures.DNS_BAD_RESPONSE


async def test_dns_bogon_blockpage_inconsistent(env):
    """The three failures the DNS judge gives answers (one target each)."""
    from probe.checks import dns as dns_check
    from probe.config import Fingerprints

    env.resolve("bogon.good.test", vantage={"a": ["10.10.10.10"]})
    env.resolve("page.good.test", vantage={"a": ["127.0.66.6"]})
    env.resolve("odd.good.test", vantage={"a": ["127.0.55.5"]})
    fingerprints = Fingerprints(dns_addresses=["127.0.66.6"])
    found = {}
    for host in ("bogon.good.test", "page.good.test", "odd.good.test"):
        ctx = env.context(host, service={"networks": {"prefixes": ["127.0.0.0/24"]}}, fingerprints=fingerprints)
        result = await measured(ctx, dns_check, dns_check.Params())
        assert verdict_of(result) == "dns_tampered"
        found[host] = result.failure
    assert found == {
        "bogon.good.test": failures.DNS_BOGON,
        "page.good.test": failures.DNS_BLOCKPAGE,
        "odd.good.test": failures.DNS_INCONSISTENT,
    }


# --- HTTP ----------------------------------------------------------------------------------------


async def _http(env, path: str, *, server: str = "web", timeout: float = 2.0):
    ctx = env.context("www.good.test", server, target={"params": {"http": {"path": path}}}, timeout=timeout)
    ctx.connected = [(LOOPBACK, env.ports[server])]
    ctx.tls_endpoint = (LOOPBACK, env.ports[server])
    return await measured(ctx, http, ctx.params_for("http", http.Params))


@pytest.mark.parametrize("path", ["/451", "/rt", "/marker"])
async def test_http_blockpage(env, path):
    result = await _http(env, path)
    assert result.failure == failures.HTTP_BLOCKPAGE
    assert verdict_of(result) == "http_blocked"


async def test_http_eof_without_response(env):
    result = await _http(env, "/close")
    assert result.failure == failures.EOF


# --- what the taxonomy does with the rest --------------------------------------------------------


def test_unknown_exception_becomes_unknown_failure_logged_once(caplog):
    class WeirdError(Exception):
        pass

    with caplog.at_level(logging.WARNING, logger="probe.failures"):
        first = classify(WeirdError("the flux capacitor"))
        second = classify(WeirdError("again"))
    assert first == "unknown_failure: WeirdError: the flux capacitor"
    assert second.startswith("unknown_failure: WeirdError")
    assert len([r for r in caplog.records if "WeirdError" in r.getMessage()]) == 1


def test_unknown_failure_text_is_short():
    assert len(classify(RuntimeError("x" * 1000))) <= len("unknown_failure: ") + 120


def test_wrapped_causes_are_classified():
    """httpx and dnspython wrap the socket error; the chain is followed."""
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        assert classify(outer) == failures.CONNECTION_REFUSED


def test_failure_carries_its_string():
    assert classify(Failure(failures.STALLED, "after 16 KB")) == failures.STALLED


def test_cert_verification_codes():
    def verify_error(code: int) -> ssl.SSLCertVerificationError:
        error = ssl.SSLCertVerificationError(1, "certificate verify failed")
        error.verify_code = code
        return error

    assert classify(verify_error(62)) == failures.SSL_INVALID_HOSTNAME
    assert classify(verify_error(20)) == failures.SSL_UNKNOWN_AUTHORITY
    assert classify(verify_error(10)) == failures.SSL_INVALID_CERTIFICATE  # expired


async def test_a_check_that_crashes_becomes_unknown_failure_not_a_block(env, tmp_path, monkeypatch):
    from probe.checks import tcp as tcp_module
    from probe.runner import run_all

    async def broken(ctx, params):
        raise ZeroDivisionError("a bug in a check")

    env.resolve("crash.good.test")
    services = [{"name": "svc", "targets": [env.target("t", "crash.good.test", checks=["dns", "tcp"])]}]
    controls = [env.target("ctl", "control.good.test", checks=["dns"])]  # the controls must not crash
    config = env.load(tmp_path, env.config(services, controls=controls))
    monkeypatch.setattr(tcp_module, "run", broken)
    [result] = await run_all(config)
    target = result.services[0].targets[0]
    tcp_result = next(c for c in target.checks if c.check == "tcp")
    assert tcp_result.failure.startswith("unknown_failure: ZeroDivisionError")
    assert target.verdict == "error"  # a bug of msgreach argues for no block: the monitor's own fault


async def test_out_of_file_descriptors_is_the_monitors_error_not_ip_blocked(env):
    """No descriptor left for a socket says nothing about the network (it published ip_blocked
    for half of 1,000 targets): `local_resource_exhausted`, judged `error`."""
    import os
    import resource

    from probe.checks import tcp as tcp_module

    ctx = env.context("x.good.test", "web", target={"addresses": [LOOPBACK, "127.0.0.2"]})
    ctx.addresses = [LOOPBACK, "127.0.0.2"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers = []  # take every free number below the highest: the limit then leaves none
    while (fd := os.open(os.devnull, os.O_RDONLY)) < top:
        fillers.append(fd)
    os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))  # not one more socket
    try:
        result = await measured(ctx, tcp_module, tcp_module.Params())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)
    assert result.failure == failures.LOCAL_RESOURCE
    assert {c.failure for c in result.evidence.connects} == {failures.LOCAL_RESOURCE}
    assert verdict_of(result) == "error"


def test_msgreach_raises_its_descriptor_limit_and_sizes_concurrency_to_it():
    import resource

    from probe.runner import concurrency_for

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert concurrency_for(1024, soft_limit=1024) < 1024 // 2  # each target holds several sockets
    assert concurrency_for(16, soft_limit=65536) == 16
    assert concurrency_for(64, soft_limit=20) >= 1


def test_unknown_failure_text_is_scrubbed_of_public_addresses():
    """An unforeseen error's text may name the vantage's public address (a proxy's message, a
    server's banner): scrubbed like every other string msgreach keeps."""
    failure = failures.classify(RuntimeError("upstream said: your address is 81.2.69.160, go away"))
    assert failure.startswith("unknown_failure: RuntimeError")
    assert "81.2.69.160" not in failure and "[scrubbed]" in failure
