"""SOCKS5 vantages against the real proxy in tests/servers/socks5.py: username/password
authentication from a secret file or the environment (never the config), every DNS query through
the proxy (UDP resolvers over TCP, DoT, DoH), `system` refused, and the proxy's replies mapped
to the same failures as a direct connection's."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from msgreach_helpers import measured
from servers.socks5 import Socks5Proxy

from probe import failures
from probe.checks import tcp
from probe.config import Resolver, Vantage
from probe.net import Route
from probe.resolvers import lookup

LOOPBACK = "127.0.0.1"
USER, PASSWORD = "volunteer-7", "s3cret:with:colons"


@pytest.fixture(scope="module")
def proxy(env) -> tuple[Socks5Proxy, int]:
    """A proxy of its own that demands a username and password."""
    socks = Socks5Proxy(credentials=(USER, PASSWORD))
    _, port = env.loop.call(env.fleet.serve(socks.handle, LOOPBACK))
    return socks, port


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "socks5-credentials"
    path.write_text(f"{USER}:{PASSWORD}\n")
    return path


def _route(port: int, credentials: tuple[str, str] | None = (USER, PASSWORD)) -> Route:
    return Route(socks5=(LOOPBACK, port), socks5_credentials=credentials)


async def test_tcp_through_an_authenticating_proxy(env, proxy, secret):
    socks, port = proxy
    vantage = {"socks5": f"{LOOPBACK}:{port}", "socks5_auth": {"credentials_file": str(secret)}}
    ctx = env.context("proxied.good.test", target={"addresses": [LOOPBACK]}, vantage=vantage)
    result = await measured(ctx, tcp, tcp.Params())
    assert result.ok, result
    assert (LOOPBACK, env.ports["web"]) in socks.connects
    assert socks.logins[-1] == (USER, True)


@pytest.mark.parametrize("credentials", [(USER, "wrong"), None], ids=["wrong-password", "no-credentials"])
async def test_a_refused_login_is_a_protocol_error_and_nothing_is_connected(env, proxy, credentials):
    socks, port = proxy
    before = len(socks.connects)
    ctx = env.context("proxied.good.test", target={"addresses": [LOOPBACK]}, vantage={"socks5": f"{LOOPBACK}:{port}"})
    ctx.route = _route(port, credentials)
    result = await measured(ctx, tcp, tcp.Params())
    assert not result.ok and result.failure == failures.PROTOCOL_ERROR
    assert len(socks.connects) == before
    if credentials is not None:
        assert socks.logins[-1] == (USER, False)


async def test_proxy_replies_keep_their_failures(env, proxy):
    socks, port = proxy
    ctx = env.context("proxied.good.test", "refused", target={"addresses": [LOOPBACK]})
    ctx.route = _route(port)
    result = await measured(ctx, tcp, tcp.Params())
    assert result.failure == failures.CONNECTION_REFUSED  # reply 5, as a direct connect's ECONNREFUSED
    assert (LOOPBACK, env.ports["refused"]) in socks.connects


@pytest.mark.parametrize("kind", ["udp", "dot", "doh"])
async def test_every_resolver_kind_goes_through_the_proxy(env, proxy, kind):
    socks, port = proxy
    name = f"socks-{kind}.good.test"
    env.dns.set(name, a=["127.0.0.9"])
    resolver, transport, server_port = {
        "udp": (Resolver(address=env.dns.address), "tcp", env.dns.port),  # UDP resolvers are asked over TCP
        "dot": (Resolver(address=env.dns.dot_address, server_name="dot.test"), "dot", env.dns.dot_port),
        "doh": (Resolver(address=env.dns.doh_url), "doh", env.dns.doh_port),
    }[kind]
    before = socks.connects.count((LOOPBACK, server_port))
    answer = await lookup(resolver, name, route=_route(port), timeout=3.0, ca_bundles=(env.ca.pem,))
    assert answer.failure is None and answer.addresses == ["127.0.0.9"]
    assert env.dns.count(name, transport) == 2 and env.dns.count(name) == 2  # A and AAAA, nothing around the proxy
    assert socks.connects.count((LOOPBACK, server_port)) - before >= 1


async def test_dns_failures_through_the_proxy_keep_their_names(env, proxy):
    _, port = proxy
    env.dns.set("socks-nx.good.test", rcode="NXDOMAIN")
    answer = await lookup(Resolver(address=env.dns.address), "socks-nx.good.test", route=_route(port), timeout=3.0)
    assert answer.failure == failures.DNS_NXDOMAIN
    env.dns.set("socks-garbage.good.test", mode="garbage")
    answer = await lookup(Resolver(address=env.dns.address), "socks-garbage.good.test", route=_route(port), timeout=3.0)
    assert answer.failure == failures.DNS_BAD_RESPONSE


def test_credentials_come_from_a_file_or_the_environment_and_stay_out_of_reprs(tmp_path, secret, monkeypatch):
    monkeypatch.setenv("MSGREACH_TEST_SOCKS5", f"{USER}:{PASSWORD}")
    for auth in ({"credentials_file": str(secret)}, {"credentials_env": "MSGREACH_TEST_SOCKS5"}):
        vantage = Vantage.model_validate({"name": "v", "resolvers": ["127.0.0.1"], "socks5": "127.0.0.1:1080", "socks5_auth": auth})
        route = Route.of(vantage)
        assert route.socks5_credentials == (USER, PASSWORD)
        assert PASSWORD not in repr(route) and PASSWORD not in repr(vantage)


def _check_config(msgreach, tmp_path, vantage: dict, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "msgreach.yaml"
    path.write_text(yaml.safe_dump({"vantages": [{"name": "v", **vantage}], "services": []}))
    return msgreach("check-config", str(path), timeout=30, env=env)


@pytest.mark.parametrize(
    ("vantage", "message"),
    [
        ({"socks5": "127.0.0.1:1080"}, "resolver `system` cannot go through the socks5 proxy"),  # the default resolvers
        ({"socks5": "127.0.0.1:1080", "resolvers": ["127.0.0.1", "system"]}, "resolver `system` cannot go through the socks5 proxy"),
        ({"socks5": "127.0.0.1:1080", "resolvers": ["https://dns.example/dns-query"]}, "needs `bootstrap`"),
        ({"resolvers": ["127.0.0.1"], "socks5_auth": {"credentials_env": "MSGREACH_TEST_SOCKS5"}}, "socks5_auth needs socks5"),
        ({"socks5": "127.0.0.1:1080", "resolvers": ["127.0.0.1"], "socks5_auth": {"credentials_env": "MSGREACH_UNSET_VARIABLE"}}, "must hold `username:password`"),
        ({"socks5": "127.0.0.1:1080", "resolvers": ["127.0.0.1"], "socks5_auth": {"credentials_file": "/nonexistent/secret"}}, "cannot read credentials_file"),
        ({"socks5": "127.0.0.1:1080", "resolvers": ["127.0.0.1"], "socks5_auth": {"credentials_env": "MSGREACH_TEST_SOCKS5", "credentials_file": "x"}}, "exactly one"),
    ],
)
def test_check_config_refuses_what_cannot_go_through_the_proxy(msgreach, tmp_path, vantage, message):
    run = _check_config(msgreach, tmp_path, vantage, env={"MSGREACH_TEST_SOCKS5": f"{USER}:{PASSWORD}"})
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_check_config_accepts_a_proxied_vantage(msgreach, tmp_path, secret):
    vantage = {
        "socks5": "127.0.0.1:1080",
        "resolvers": ["127.0.0.1", "tls://127.0.0.1", {"address": "https://dns.example/dns-query", "bootstrap": "127.0.0.1", "control": True}],
        "socks5_auth": {"credentials_file": str(secret)},
    }
    run = _check_config(msgreach, tmp_path, vantage)
    assert run.returncode == 0, run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    assert os.environ.get("MSGREACH_UNSET_VARIABLE") is None


async def test_a_secret_gone_mid_rotation_keeps_the_credentials_read_before(env, proxy, secret, tmp_path, caplog):
    """The credentials file is read at every round; a round that finds it gone (deleted, swapped
    mid-rotation) measures with the credentials read before and says so, instead of being lost."""
    from probe.runner import run_round

    socks, port = proxy
    env.resolve("rotated.good.test")
    vantage = env.vantage(socks5=f"{LOOPBACK}:{port}", socks5_auth={"credentials_file": str(secret)})  # UDP resolvers: asked over TCP, proxied
    target = env.target("rot", "rotated.good.test", checks=["tcp"], addresses=[LOOPBACK])
    control = env.target("ctl", "rotated.good.test", checks=["tcp"], addresses=[LOOPBACK])
    config = env.load(tmp_path, env.config([{"name": "svc", "targets": [target]}], vantages=[vantage], controls=[control]))
    first = await run_round(config, config.vantages[0])
    assert first.services[0].targets[0].verdict == "ok"
    logins = len(socks.logins)
    secret.unlink()
    second = await run_round(config, config.vantages[0])
    assert second.services[0].targets[0].verdict == "ok"
    assert socks.logins[logins:] and all(login == (USER, True) for login in socks.logins[logins:])
    assert "this round uses the credentials read before" in caplog.text
    assert PASSWORD not in caplog.text
