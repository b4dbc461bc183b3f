"""tcp, tls and http checks, one at a time, against real loopback servers (well-behaved and
hostile): what each finds, what evidence it keeps, which verdict its failure argues for, and
that every one of them ends within its timeout."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from msgreach_helpers import measured, verdict_of

from probe import failures
from probe.checks import http, tcp, tls
from probe.checks.context import ControlPhase, Skip

LOOPBACK = "127.0.0.1"


# --- tcp -----------------------------------------------------------------------------------------


async def test_tcp_one_address_is_enough(env):
    ctx = env.context("two.good.test", target={"addresses": ["127.0.0.2", LOOPBACK]})
    result = await measured(ctx, tcp, tcp.Params())
    assert result.ok
    assert ctx.connected == [(LOOPBACK, env.ports["web"])]
    by_address = {c["address"]: c for c in result.as_json()["connects"]}
    assert by_address["127.0.0.2"]["failure"] == failures.CONNECTION_REFUSED
    assert by_address[LOOPBACK]["failure"] is None
    assert all(c["duration_seconds"] >= 0 for c in result.as_json()["connects"])


async def test_tcp_every_address_failing_is_ip_blocked(env):
    ctx = env.context("none.good.test", "refused", target={"addresses": [LOOPBACK, "127.0.0.2"]})
    result = await measured(ctx, tcp, tcp.Params())
    assert not result.ok
    assert verdict_of(result) == "ip_blocked"
    assert result.failure == failures.CONNECTION_REFUSED
    assert ctx.connected == []


async def test_tcp_dropped_syns_time_out_on_time(env):
    ctx = env.context("drop.good.test", "blackhole", target={"addresses": [LOOPBACK]}, timeout=0.5)
    started = time.monotonic()
    result = await measured(ctx, tcp, tcp.Params())
    assert verdict_of(result) == "ip_blocked" and result.failure == failures.TIMEOUT
    assert time.monotonic() - started < 1.5


async def test_tcp_every_port_is_tried(env):
    ctx = env.context("ports.good.test", target={"addresses": [LOOPBACK], "ports": [env.ports["refused"], env.ports["web"]]})
    result = await measured(ctx, tcp, tcp.Params())
    assert result.ok
    assert sorted(c["port"] for c in result.as_json()["connects"]) == sorted([env.ports["refused"], env.ports["web"]])


async def test_tcp_at_most_max_addresses_per_family(env):
    addresses = [f"127.0.0.{i}" for i in range(1, 9)]
    ctx = env.context("many.good.test", target={"addresses": addresses})
    ctx.max_addresses = 3
    result = await measured(ctx, tcp, tcp.Params())
    assert [c["address"] for c in result.as_json()["connects"]] == addresses[:3]


async def test_tcp_ipv6_only_where_a_control_reached_ipv6(env):
    """A v4-only line is not a v6 block: v6 addresses are tried only once a control was reached
    over v6 (or when there is nothing else, or for the controls themselves)."""
    target = {"addresses": [LOOPBACK, "::1"]}
    ctx = env.context("dual.good.test", target=target)
    result = await measured(ctx, tcp, tcp.Params())
    assert [c["address"] for c in result.as_json()["connects"]] == [LOOPBACK]
    ctx = env.context("dual.good.test", target=target, phase=ControlPhase(ipv6=True))
    result = await measured(ctx, tcp, tcp.Params())
    assert [c["address"] for c in result.as_json()["connects"]] == [LOOPBACK, "::1"]
    ctx = env.context("dual.good.test", target=target, service=False)
    assert len((await measured(ctx, tcp, tcp.Params())).as_json()["connects"]) == 2
    ctx = env.context("six.good.test", target={"addresses": ["::1"]})
    assert [c["address"] for c in (await measured(ctx, tcp, tcp.Params())).as_json()["connects"]] == ["::1"]


async def test_tcp_without_addresses_is_skipped(env):
    with pytest.raises(Skip):
        await tcp.run(env.context("nothing.good.test"), tcp.Params())


# --- tls -----------------------------------------------------------------------------------------


def _tls_ctx(env, server: str, host: str = "site.good.test", **kwargs):
    ctx = env.context(host, server, **kwargs)
    ctx.connected = [(LOOPBACK, env.ports[server])]
    return ctx


async def test_tls_ok_sets_the_endpoint_and_keeps_the_certificate(env):
    ctx = _tls_ctx(env, "web")
    result = await measured(ctx, tls, tls.Params())
    assert result.ok
    assert ctx.tls_endpoint == (LOOPBACK, env.ports["web"])
    assert result.as_json()["certificate"]["issuer"].endswith("O=msgreach tests")
    assert result.as_json()["handshakes"][0]["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert "decoy" not in result.as_json()


@pytest.mark.parametrize(
    ("server", "failure", "verdict"),
    [
        ("wrongname", failures.SSL_INVALID_HOSTNAME, "tls_mitm"),
        ("selfsigned", failures.SSL_UNKNOWN_AUTHORITY, "tls_mitm"),
        # expired, from the issuer the name trusts: the server's own fault, not another party's
        ("expired", failures.SSL_INVALID_CERTIFICATE, "down"),
    ],
)
async def test_tls_certificate_that_does_not_validate_keeps_its_facts(env, server, failure, verdict):
    ctx = _tls_ctx(env, server)
    result = await measured(ctx, tls, tls.Params())
    assert not result.ok
    assert result.failure == failure
    assert verdict_of(result) == verdict
    cert = result.as_json()["certificate"]  # kept although it did not validate
    assert cert["sha256"] and cert["not_after_timestamp"] > 0
    assert ctx.tls_endpoint is None
    if server == "expired":
        assert cert["not_after_timestamp"] < time.time()
    if server == "wrongname":
        assert "other.test" in cert["dns_names"]


async def test_sni_reset_while_the_decoy_completes_is_sni_blocked(env):
    ctx = _tls_ctx(env, "sni_front", host="blocked.good.test")
    result = await measured(ctx, tls, tls.Params())
    assert not result.ok
    assert verdict_of(result) == "sni_blocked"
    assert result.failure == failures.CONNECTION_RESET
    decoy = result.as_json()["decoy"]
    assert decoy["failure"] is None and decoy["sni"] == "example.org"
    assert decoy["address"] == LOOPBACK and decoy["port"] == env.ports["sni_front"]


async def test_the_sni_front_passes_other_names(env):
    ctx = _tls_ctx(env, "sni_front", host="fine.good.test")
    assert (await measured(ctx, tls, tls.Params())).ok


async def test_decoy_sni_is_configurable(env):
    ctx = _tls_ctx(env, "sni_front", host="blocked.good.test", decoy_sni="decoy.invalid")
    result = await measured(ctx, tls, tls.Params())
    assert result.as_json()["decoy"]["sni"] == "decoy.invalid"
    assert verdict_of(result) == "sni_blocked"


@pytest.mark.parametrize(
    ("server", "failure", "verdict"),
    [
        # cut for the decoy too: nothing separates the name, the contract lets tls_blocked stand
        ("reset", failures.CONNECTION_RESET, "tls_blocked"),
        ("hello_close", failures.EOF, "tls_blocked"),
        ("silent", failures.TIMEOUT, "tls_blocked"),
        # the server speaks, but not TLS, to any name: its own fault, no technique
        ("not_tls", failures.SSL_FAILED_HANDSHAKE, "down"),
        ("garbage_after_hello", failures.SSL_FAILED_HANDSHAKE, "down"),
        ("oversized_hello", failures.SSL_FAILED_HANDSHAKE, "down"),
        # its answer began (200 bytes of its handshake), then it reset or dripped, for any name:
        # a server breaking mid-answer, not a cut handshake (a censor cuts before any answer)
        ("answer_then_reset", failures.CONNECTION_RESET, "down"),
        ("answer_then_drip", failures.TIMEOUT, "down"),
    ],
)
async def test_tls_failing_for_the_decoy_too(env, server, failure, verdict):
    ctx = _tls_ctx(env, server, timeout=0.5)
    started = time.monotonic()
    result = await measured(ctx, tls, tls.Params())
    assert verdict_of(result) == verdict
    assert result.failure == failure
    assert result.as_json()["decoy"]["failure"] == failure
    assert time.monotonic() - started < 2.0  # handshake + decoy, each bounded


@pytest.mark.parametrize("server", ["answer_then_reset", "answer_then_drip"])
async def test_tls_keeps_how_much_of_the_answer_came(env, server):
    from servers.hostile import ANSWER_BYTES

    result = await measured(_tls_ctx(env, server, timeout=1.0), tls, tls.Params())
    (handshake,) = result.evidence.handshakes
    assert handshake.received_bytes >= ANSWER_BYTES and handshake.failed_operation == "tls_handshake"
    assert result.finding.reason.key == "server_answer_began" and result.finding.fault == "server"
    # A censor's cut comes before any answer: nothing received, and the technique stands.
    cut = await measured(_tls_ctx(env, "reset", timeout=1.0), tls, tls.Params())
    assert cut.evidence.handshakes[0].received_bytes == 0 and verdict_of(cut) == "tls_blocked"


async def test_tls_tries_the_next_endpoint(env):
    ctx = env.context("site.good.test")
    ctx.connected = [(LOOPBACK, env.ports["reset"]), (LOOPBACK, env.ports["web"])]
    result = await measured(ctx, tls, tls.Params())
    assert result.ok
    assert [h["failure"] for h in result.as_json()["handshakes"]] == [failures.CONNECTION_RESET, None]
    assert ctx.tls_endpoint == (LOOPBACK, env.ports["web"])


async def test_tls_sni_parameter(env):
    """An address target with a name to present (params.tls.sni)."""
    ctx = _tls_ctx(env, "web", host=LOOPBACK, target={"params": {"tls": {"sni": "named.good.test"}}})
    result = await measured(ctx, tls, ctx.params_for("tls", tls.Params))
    assert result.ok
    assert result.as_json()["handshakes"][0]["sni"] == "named.good.test"


async def test_tls_without_tcp_is_skipped(env):
    with pytest.raises(Skip):
        await tls.run(env.context("x.good.test"), tls.Params())


async def test_tls_prefers_non_80_ports(env):
    ctx = env.context("x.good.test")
    ctx.connected = [(LOOPBACK, 80), (LOOPBACK, env.ports["web"])]
    result = await measured(ctx, tls, tls.Params(tries=1))
    assert result.ok and ctx.tls_endpoint == (LOOPBACK, env.ports["web"])


# --- http ----------------------------------------------------------------------------------------


def _http_ctx(env, path: str, *, server: str = "web", host: str = "www.good.test", timeout: float = 2.0, **params):
    scheme = "http" if server == "plain" else None
    checks = ["dns", "tcp", "http"] if scheme else ["dns", "tcp", "tls", "http"]
    http_params = {"path": path, **({"scheme": scheme} if scheme else {}), **params}
    ctx = env.context(host, server, target={"checks": checks, "params": {"http": http_params}}, timeout=timeout)
    ctx.connected = [(LOOPBACK, env.ports[server])]
    if scheme is None:
        ctx.tls_endpoint = (LOOPBACK, env.ports[server])
    return ctx


async def _run_http(ctx):
    return await measured(ctx, http, ctx.params_for("http", http.Params))


async def test_http_ok(env):
    ctx = _http_ctx(env, "/", host="hello.good.test")
    result = await _run_http(ctx)
    assert result.ok
    assert result.as_json()["status_code"] == 200
    assert "hello from the msgreach tests" in result.as_json()["body_sample"]
    assert result.as_json()["url"] == f"https://hello.good.test:{env.ports['web']}/"
    assert (f"hello.good.test:{env.ports['web']}", "/") in env.requests  # Host header = the name


async def test_the_services_own_status_is_not_a_signal(env):
    result = await _run_http(_http_ctx(env, "/status-500"))
    assert result.ok and result.as_json()["status_code"] == 500


@pytest.mark.parametrize(
    ("path", "kind", "match"),
    [("/451", "status", "451"), ("/rt", "redirect", "warning.rt.ru"), ("/marker", "body", "Доступ к ресурсу ограничен")],
)
async def test_blockpage_fingerprints(env, path, kind, match):
    result = await _run_http(_http_ctx(env, path))
    assert not result.ok
    assert verdict_of(result) == "http_blocked" and result.failure == failures.HTTP_BLOCKPAGE
    assert result.as_json()["blockpage"] == {"kind": kind, "match": match}


async def test_redirect_to_a_blockpage_host_is_recorded_not_followed(env):
    result = await _run_http(_http_ctx(env, "/rt"))
    assert result.as_json()["redirects"] == [{"status_code": 302, "location": "http://warning.rt.ru/?id=17&st=0&dt=msgreach"}]


async def test_same_host_redirect_is_followed(env):
    result = await _run_http(_http_ctx(env, "/same"))
    assert result.ok
    assert result.as_json()["status_code"] == 200
    assert len(result.as_json()["redirects"]) == 1


async def test_redirect_loop_is_bounded(env):
    started = time.monotonic()
    result = await _run_http(_http_ctx(env, "/loop", max_redirects=3))
    assert result.ok  # a loop is the server's business, not a block
    assert len(result.as_json()["redirects"]) == 4  # the first request and three redirects
    assert time.monotonic() - started < 2


async def test_plain_http_blockpage(env):
    result = await _run_http(_http_ctx(env, "/451", server="plain"))
    assert verdict_of(result) == "http_blocked"
    assert result.as_json()["url"].startswith("http://")


async def test_plain_http_cut_for_every_host_claims_no_technique(env):
    """The server closes after every request, the decoy Host's too: no differential, no block."""
    result = await _run_http(_http_ctx(env, "/close", server="plain"))
    assert result.failure == failures.EOF
    evidence = result.as_json()
    assert evidence["decoy"]["failure"] == failures.EOF and evidence["decoy"]["host"] == "example.org"
    assert verdict_of(result) == "down"


async def test_plain_http_cut_for_the_real_host_only_is_http_blocked(env):
    """A Host-keyed censor: the same request with the decoy Host, on a fresh connection, passes."""
    ctx = _http_ctx(env, "/", server="plain", host="cut.good.test")
    result = await _run_http(ctx)
    assert result.failure == failures.CONNECTION_RESET
    evidence = result.as_json()
    assert evidence["decoy"]["failure"] is None and evidence["same_name"]["failure"] == failures.CONNECTION_RESET
    assert verdict_of(result) == "http_blocked"
    assert result.finding.differential == "decoy_host"


async def test_https_cut_after_the_request_is_compared_with_the_decoy(env):
    """The server closes after every request, the decoy's too: no evidence the name matters."""
    result = await _run_http(_http_ctx(env, "/close"))
    assert result.failure == failures.EOF
    assert result.as_json()["decoy"]["failure"] == failures.EOF
    assert verdict_of(result) == "down"


@pytest.mark.parametrize("server", ["web", "plain"])
async def test_a_redirect_then_close_without_connection_close_is_ok(env, server):
    """A keep-alive server that closes right after its redirect: every request goes on its own
    connection, so the followed redirect never meets a closed one (was sni_blocked/http_blocked)."""
    result = await _run_http(_http_ctx(env, "/redirect-close", server=server))
    assert result.ok, result.as_json()
    assert result.as_json()["redirects"][0]["status_code"] == 302


async def test_a_block_page_marker_after_the_first_2_kib_is_seen(env):
    result = await _run_http(_http_ctx(env, "/late-marker"))
    assert verdict_of(result) == "http_blocked"
    assert result.as_json()["blockpage"]["kind"] == "body"
    assert result.as_json()["body_length"] > 10_000


async def test_a_public_address_the_server_reflects_is_scrubbed(env):
    """A page or a redirect showing the vantage's public address keeps it out of the evidence,
    the same page met again as the first time (the addresses in a page are read once); private
    addresses stay."""
    for _ in range(2):
        result = await _run_http(_http_ctx(env, "/reflect"))
        sample = result.as_json()["body_sample"]
        assert "81.2.69.160" not in sample and "[scrubbed]" in sample and "10.1.2.3" in sample
    result = await _run_http(_http_ctx(env, "/reflect-redirect"))
    location = result.as_json()["redirects"][0]["location"]
    assert "81.2.69.160" not in location and "81-2-69-160" not in location and "[scrubbed]" in location
    result = await _run_http(_http_ctx(env, "/"))
    assert result.as_json()["body_sample"] == "<html><body>hello from the msgreach tests</body></html>"


@pytest.mark.parametrize("server", ["web", "plain"])
async def test_a_response_that_is_not_http_is_not_ok_and_no_block(env, server):
    result = await _run_http(_http_ctx(env, "/garbage", server=server))
    assert not result.ok
    assert verdict_of(result) == "down"


async def test_http_needs_a_connection(env):
    ctx = env.context("x.good.test")
    with pytest.raises(Skip):
        await http.run(ctx, http.Params())


async def test_endless_body_is_capped_in_time_and_memory(env):
    cap = 200_000
    ctx = _http_ctx(env, "/endless", max_body_bytes=cap)
    tracemalloc.start()
    try:
        started = time.monotonic()
        result = await _run_http(ctx)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert result.as_json()["body_length"] == cap
    assert len(result.as_json()["body_sample"]) <= 2048
    assert elapsed < 2
    assert peak < 8 * cap, f"peak {peak} bytes while reading a body capped at {cap}"


async def test_slow_drip_fails_as_a_timeout_on_time(env):
    ctx = _http_ctx(env, "/drip", timeout=0.8)
    started = time.monotonic()
    result = await _run_http(ctx)
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.failure == failures.TIMEOUT
    assert elapsed < 2 * 0.8 + 0.5  # the request, then the decoy handshake, each bounded
    assert result.as_json()["status_code"] == 200  # headers came: evidence of how far it got


async def test_slow_drip_for_every_name_is_not_sni_blocked(env):
    """The response began (status and headers) and then dripped: the server's business."""
    result = await _run_http(_http_ctx(env, "/drip", timeout=0.8))
    assert verdict_of(result) == "down"
    assert result.finding.fault == "server"


async def test_sni_dropped_while_the_decoy_completes_is_sni_blocked(env):
    """TSPU's SNI-IV: the ClientHello naming the blocked host gets no answer at all."""
    ctx = _tls_ctx(env, "sni_drop", host="blocked.good.test", timeout=0.5)
    started = time.monotonic()
    result = await measured(ctx, tls, tls.Params())
    assert verdict_of(result) == "sni_blocked"
    assert result.failure == failures.TIMEOUT
    assert result.as_json()["decoy"]["failure"] is None
    assert time.monotonic() - started < 2.5


# --- through a SOCKS5 proxy (the vantage's `socks5:`) --------------------------------------------


def _socks_vantage(env) -> dict:
    return {"socks5": f"{LOOPBACK}:{env.ports['socks5']}"}


async def test_tcp_through_socks5(env):
    ctx = env.context("proxied.good.test", target={"addresses": [LOOPBACK]}, vantage=_socks_vantage(env))
    result = await measured(ctx, tcp, tcp.Params())
    assert result.ok
    assert (LOOPBACK, env.ports["web"]) in env.socks5.connects


async def test_socks5_refusal_is_connection_refused(env):
    ctx = env.context("proxied.good.test", "refused", target={"addresses": [LOOPBACK]}, vantage=_socks_vantage(env))
    result = await measured(ctx, tcp, tcp.Params())
    assert verdict_of(result) == "ip_blocked"
    assert result.failure == failures.CONNECTION_REFUSED
    assert (LOOPBACK, env.ports["refused"]) in env.socks5.connects


async def test_a_whole_round_through_socks5(env, tmp_path):
    from probe.runner import run_all

    env.resolve("via-proxy.good.test")
    services = [
        {
            "name": "svc",
            "targets": [
                env.target("ok", "via-proxy.good.test"),
                env.target("sni", "blocked.good.test", "sni_front"),
                env.target("page", "via-proxy.good.test", params={"http": {"path": "/451"}}),
            ],
        }
    ]
    env.resolve("blocked.good.test")
    config = env.load(tmp_path, env.config(services, vantages=[env.vantage(**_socks_vantage(env))]))
    before = len(env.socks5.connects)
    [result] = await run_all(config)
    assert result.verdict == "ok"
    assert {t.target: t.verdict for t in result.services[0].targets} == {"ok": "ok", "sni": "sni_blocked", "page": "http_blocked"}
    # controls and targets: tcp, tls, http and the decoy all went through the proxy, the three
    # stages on one connection per target (control, ok, page; sni's plus its decoy)
    assert len(env.socks5.connects) - before >= 5


async def test_one_connection_per_target_for_tcp_tls_and_http(env, tmp_path):
    """tcp connects, tls handshakes on that connection, http sends its request on the TLS stream:
    the server sees one connection and one handshake for a target whose stages all pass."""
    from probe.runner import run_all

    env.resolve("onecon.good.test")
    services = [{"name": "svc", "targets": [env.target("t", "onecon.good.test", checks=["dns", "tcp", "tls", "http"], params={"http": {"path": "/onecon"}})]}]
    config = env.load(tmp_path, env.config(services, controls=[env.control_target()]))
    before = len([r for r in env.requests if r[1] == "/onecon"])
    accepted = env.fleet.stats[f"accepted:{env.ports['web']}"]
    [result] = await run_all(config)
    target = result.services[0].targets[0]
    assert target.verdict == "ok", target.reason
    tcp_connects = target.check("tcp").evidence.connects
    assert len([c for c in tcp_connects if c.failure is None]) == 1
    assert len([r for r in env.requests if r[1] == "/onecon"]) - before == 1
    # the control target's stages and this target's: one connection each, nothing more
    assert env.fleet.stats[f"accepted:{env.ports['web']}"] - accepted == 2


async def test_the_streamed_document_is_the_document(env, tmp_path):
    """`once` writes its JSON as it encodes it (probe.report.write_json): the same document (keys
    in the same order) as the one rendered at once, each target on one line, for a round with
    several services, verdicts and controls."""
    import io

    from probe import report
    from probe.runner import run_all

    env.resolve("stream.good.test")
    env.resolve("blocked.good.test")
    services = [
        {"name": "one", "targets": [env.target("ok", "stream.good.test"), env.target("sni", "blocked.good.test", "sni_front")]},
        {"name": "two", "targets": [env.target("page", "stream.good.test", params={"http": {"path": "/451"}})]},
    ]
    config = env.load(tmp_path, env.config(services, controls=[env.control_target()]))
    results = await run_all(config)
    streamed = io.StringIO()
    report.write_json(results, 1_700_000_000.0, 2.5, streamed)
    text = streamed.getvalue()
    assert text.endswith("}\n")
    ordered = json.loads(text, object_pairs_hook=list)
    assert ordered == json.loads(report.as_json(results, 1_700_000_000.0, 2.5), object_pairs_hook=list)
    target_lines = [line for line in text.splitlines() if line.lstrip().startswith('{"target": ')]
    assert len(target_lines) == 4 and all(json.loads(line.strip().rstrip(",")) for line in target_lines)  # 3 targets, 1 control
    document = json.loads(streamed.getvalue())
    verdicts = {t["target"]: t["verdict"] for s in document["vantages"][0]["services"] for t in s["targets"]}
    assert verdicts == {"ok": "ok", "sni": "sni_blocked", "page": "http_blocked"}
    assert document["vantages"][0]["controls"]


async def test_http_request_headers_and_config_overrides(env, tmp_path):
    """The `http` check's request: Host, Accept, identity coding, msgreach's User-Agent and
    `Connection: close`; a target's `params.http.headers` replace a default whatever the case of
    its name (never sent twice)."""
    from probe.runner import run_all

    env.resolve("headers.good.test")
    target = env.target("hdr", "headers.good.test", params={"http": {"path": "/echo-headers", "headers": {"user-agent": "Mozilla/5.0 test"}}})
    config = env.load(tmp_path, env.config([{"name": "svc", "targets": [target]}]))
    [vantage] = await run_all(config)
    result = vantage.services[0].targets[0]
    assert result.verdict == "ok", result.reason
    lines = result.check("http").evidence.body_sample.splitlines()
    sent = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    assert [v for k, v in sent if k == "user-agent"] == ["Mozilla/5.0 test"]
    assert sorted(k for k, _ in sent) == ["accept", "accept-encoding", "connection", "host", "user-agent"]
    assert dict(sent) == {"accept": "*/*", "accept-encoding": "identity", "connection": "close", "host": f"headers.good.test:{env.ports['web']}", "user-agent": "Mozilla/5.0 test"}
