"""DNS: every resolver kind against a DNS server the tests control, and every judge of answers.

The judges (probe/checks/dns.py) run on real answers from two real servers: the vantage's
resolver and a control resolver, each told per name what to say.
"""

from __future__ import annotations

import time

import pytest
from msgreach_helpers import measured, verdict_of

from probe import failures
from probe.checks import dns as dns_check
from probe.checks.context import ControlPhase
from probe.config import Resolver
from probe.model import to_json
from probe.net import Route
from probe.resolvers import lookup

LOOPBACK = "127.0.0.1"


async def _lookup(resolver: Resolver, name: str, env, timeout: float = 1.0):
    return await lookup(resolver, name, route=Route(), timeout=timeout, ca_bundles=(env.ca.pem,))


# --- transports ----------------------------------------------------------------------------------


async def test_udp_answers_a_and_aaaa(env):
    env.dns.set("both.good.test", a=["127.0.0.2", "127.0.0.3"], aaaa=["::1"])
    answer = await _lookup(Resolver(address=env.dns.address), "both.good.test", env)
    assert answer.failure is None
    assert sorted(answer.addresses) == ["127.0.0.2", "127.0.0.3", "::1"]
    assert answer.duration_seconds > 0
    evidence = to_json(answer)
    assert evidence["resolver"] == env.dns.address and evidence["control"] is False


async def test_aaaa_only_is_an_answer(env):
    env.dns.set("six.good.test", aaaa=["::1"])
    answer = await _lookup(Resolver(address=env.dns.address), "six.good.test", env)
    assert answer.failure is None and answer.addresses == ["::1"]


async def test_truncated_udp_answer_falls_back_to_tcp(env):
    env.dns.set("tc.good.test", a=["127.0.0.4"], mode="truncate")
    answer = await _lookup(Resolver(address=env.dns.address), "tc.good.test", env)
    assert answer.failure is None and answer.addresses == ["127.0.0.4"]
    assert env.dns.count("tc.good.test", "udp") >= 1
    assert env.dns.count("tc.good.test", "tcp") >= 1


async def test_garbage_udp_reply_is_ignored_then_times_out_within_the_timeout(env):
    """A datagram that is not DNS does not end the wait (a forged reply must not win); with no
    real reply the lookup fails as a timeout, on time."""
    env.dns.set("junk.good.test", mode="garbage")
    started = time.monotonic()
    answer = await _lookup(Resolver(address=env.dns.address), "junk.good.test", env, timeout=0.5)
    assert answer.failure == failures.TIMEOUT
    assert time.monotonic() - started < 1.5


async def test_silent_resolver_times_out_within_the_timeout(env):
    started = time.monotonic()
    answer = await _lookup(Resolver(address=env.dead_dns.address), "anything.good.test", env, timeout=0.5)
    assert answer.failure == failures.TIMEOUT
    assert time.monotonic() - started < 1.5


async def test_resolver_nobody_listens_on(env):
    answer = await _lookup(Resolver(address=f"{LOOPBACK}:{env.ports['refused']}"), "x.good.test", env, timeout=0.5)
    assert answer.failure is not None and answer.addresses == []


async def test_dot(env):
    env.dns.set("dot-a.good.test", a=["127.0.0.5"])
    resolver = Resolver(address=env.dns.dot_address, server_name="dot.test")
    answer = await _lookup(resolver, "dot-a.good.test", env)
    assert answer.failure is None and answer.addresses == ["127.0.0.5"]
    assert env.dns.count("dot-a.good.test", "dot") == 2  # A and AAAA


async def test_dot_validates_the_server_name(env):
    env.dns.set("dot-b.good.test", a=["127.0.0.5"])
    resolver = Resolver(address=env.dns.dot_address, server_name="not-the-dot-server.test")
    answer = await _lookup(resolver, "dot-b.good.test", env)
    assert answer.failure == failures.SSL_INVALID_HOSTNAME


async def test_dot_needs_the_ca(env):
    resolver = Resolver(address=env.dns.dot_address, server_name="dot.test")
    answer = await lookup(resolver, "dot-b.good.test", route=Route(), timeout=1.0)
    assert answer.failure == failures.SSL_UNKNOWN_AUTHORITY


@pytest.mark.parametrize(("behaviour", "failure"), [({"rcode": "NXDOMAIN"}, failures.DNS_NXDOMAIN), ({"rcode": "REFUSED"}, failures.DNS_REFUSED)])
async def test_dot_failures(env, behaviour, failure):
    env.dns.set(f"dot-{failure}.good.test", **behaviour)
    resolver = Resolver(address=env.dns.dot_address, server_name="dot.test")
    assert (await _lookup(resolver, f"dot-{failure}.good.test", env)).failure == failure


async def test_doh_by_address(env):
    env.dns.set("doh-a.good.test", a=["127.0.0.6"])
    answer = await _lookup(Resolver(address=env.dns.doh_url), "doh-a.good.test", env)
    assert answer.failure is None and answer.addresses == ["127.0.0.6"]
    assert env.dns.count("doh-a.good.test", "doh") == 2


async def test_doh_by_name_with_bootstrap(env):
    env.dns.set("doh-b.good.test", a=["127.0.0.6"])
    resolver = Resolver(address=f"https://doh.test:{env.dns.doh_port}/dns-query", bootstrap=LOOPBACK)
    answer = await _lookup(resolver, "doh-b.good.test", env)
    assert answer.failure is None and answer.addresses == ["127.0.0.6"]


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ({"rcode": "NXDOMAIN"}, failures.DNS_NXDOMAIN),
        ({"rcode": "SERVFAIL"}, failures.DNS_SERVFAIL),
        ({}, failures.DNS_NO_ANSWER),
        ({"a": ["127.0.0.1"], "doh_status": 500}, failures.DNS_SERVFAIL),  # the DoH server's HTTP error
        ({"mode": "garbage"}, failures.DNS_BAD_RESPONSE),
        ({"mode": "drop"}, failures.TIMEOUT),
    ],
)
async def test_doh_failures(env, behaviour, failure):
    name = f"doh-{failure}-{len(behaviour)}.good.test"
    env.dns.set(name, **behaviour)
    started = time.monotonic()
    answer = await _lookup(Resolver(address=env.dns.doh_url), name, env, timeout=0.5)
    assert answer.failure == failure
    assert time.monotonic() - started < 1.5


async def test_doh_to_a_server_with_an_untrusted_certificate(env):
    resolver = Resolver(address=f"https://{LOOPBACK}:{env.ports['selfsigned']}/dns-query")
    answer = await _lookup(resolver, "x.good.test", env)
    assert answer.failure == failures.SSL_UNKNOWN_AUTHORITY


# --- judges --------------------------------------------------------------------------------------


def _ctx(env, host, *, resolvers=None, healthy=None, service=None, vantage=None, target=None):
    resolvers = resolvers or [env.dns.address, {"address": env.control_dns.address, "control": True}]
    facts = ControlPhase(healthy_resolvers=frozenset(healthy) if healthy is not None else None)
    return env.context(host, vantage={"resolvers": resolvers, **(vantage or {})}, phase=facts, service=service, target=target)


def _by_resolver(result) -> dict[str, dict]:
    return {r["resolver"]: r for r in result.as_json()["resolvers"]}


async def test_healthy_resolver_agreeing_with_the_control_is_ok(env):
    env.resolve("agree.good.test")
    ctx = _ctx(env, "agree.good.test", healthy={env.dns.address, env.control_dns.address})
    result = await measured(ctx, dns_check, dns_check.Params())
    assert result.ok and result.finding is None and result.failure is None
    assert _by_resolver(result)[env.dns.address]["judgement"] == "ok"
    assert _by_resolver(result)[env.control_dns.address]["judgement"] == "control"
    assert ctx.addresses == [LOOPBACK] and ctx.addresses_from == "dns"


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ({"rcode": "NXDOMAIN"}, failures.DNS_NXDOMAIN),
        ({}, failures.DNS_NO_ANSWER),
        ({"rcode": "SERVFAIL"}, failures.DNS_SERVFAIL),
        ({"rcode": "REFUSED"}, failures.DNS_REFUSED),
        ({"mode": "drop"}, failures.TIMEOUT),
    ],
)
async def test_withheld_while_the_control_answers_is_dns_blocked(env, behaviour, failure):
    name = f"withheld-{failure}.good.test"
    env.resolve(name, vantage=behaviour)
    ctx = _ctx(env, name, healthy={env.dns.address, env.control_dns.address})
    result = await measured(ctx, dns_check, dns_check.Params())
    assert not result.ok
    assert verdict_of(result) == "dns_blocked"
    assert result.failure == failure
    assert _by_resolver(result)[env.dns.address]["judgement"] == "withheld"
    # The measurement goes on with the control's answer: is the address blocked too?
    assert ctx.addresses == [LOOPBACK] and ctx.addresses_from == "control_resolver"


async def test_unhealthy_resolver_is_ignored(env):
    """A resolver that failed the control names too says nothing about one service."""
    env.resolve("sick.good.test", vantage={"rcode": "SERVFAIL"})
    ctx = _ctx(env, "sick.good.test", healthy={env.control_dns.address})
    result = await measured(ctx, dns_check, dns_check.Params())
    assert result.ok, result
    assert _by_resolver(result)[env.dns.address]["judgement"] == "unhealthy"
    assert ctx.addresses_from == "control_resolver"


async def test_dead_resolver_in_a_round_is_unhealthy(env, tmp_path):
    """End to end: a resolver that answers nothing fails the control names, so it is not
    trusted for the services; the target is measured through the control's answers."""
    from probe.runner import run_all

    env.resolve("via-control.good.test")
    resolvers = [env.dead_dns.address, env.dns.address, {"address": env.control_dns.address, "control": True}]
    services = [{"name": "svc", "targets": [env.target("t", "via-control.good.test")]}]
    config = env.load(tmp_path, env.config(services, vantages=[env.vantage(resolvers=resolvers)], schedule={"timeouts": {"dns": 0.5}}))
    [result] = await run_all(config)
    assert result.verdict == "ok"
    assert env.dead_dns.address not in result.healthy_resolvers
    assert env.dns.address in result.healthy_resolvers
    target = result.services[0].targets[0]
    assert target.verdict == "ok"
    judged = _by_resolver(target.checks[0])
    assert judged[env.dead_dns.address]["judgement"] == "unhealthy"


@pytest.mark.parametrize("rcode", ["NXDOMAIN", "SERVFAIL"])
async def test_global_failure_agreed_by_the_control_is_down(env, rcode):
    name = f"gone-{rcode}.good.test"
    env.resolve(name, vantage={"rcode": rcode}, control={"rcode": rcode})
    ctx = _ctx(env, name, healthy={env.dns.address, env.control_dns.address})
    result = await measured(ctx, dns_check, dns_check.Params())
    assert not result.ok
    assert verdict_of(result) == "down"
    assert result.as_json()["control_agrees"] is True
    assert _by_resolver(result)[env.dns.address]["judgement"] == "global"


async def test_nxdomain_with_no_control_reachable_is_down_not_blocked(env):
    env.dns.set("alone.good.test", rcode="NXDOMAIN")
    resolvers = [env.dns.address, {"address": env.dead_dns.address, "control": True}]
    ctx = _ctx(env, "alone.good.test", resolvers=resolvers, healthy={env.dns.address})
    ctx.timeout = 0.5
    result = await measured(ctx, dns_check, dns_check.Params())
    assert verdict_of(result) == "down"
    assert result.as_json()["control_agrees"] is False
    assert _by_resolver(result)[env.dns.address]["judgement"] == "inconclusive"


async def test_no_control_resolver_at_all_nxdomain_is_down(env):
    env.dns.set("nocontrol.good.test", rcode="NXDOMAIN")
    ctx = _ctx(env, "nocontrol.good.test", resolvers=[env.dns.address])
    result = await measured(ctx, dns_check, dns_check.Params())
    assert verdict_of(result) == "down" and result.failure == failures.DNS_NXDOMAIN


@pytest.mark.parametrize("bogon", ["10.1.2.3", "192.168.1.1", "0.0.0.0", "169.254.1.1", "100.64.0.1", "::1", "fe80::1"])
async def test_bogon_answer_is_tampered(env, bogon):
    name = f"bogon-{bogon.replace(':', '-').replace('.', '-')}.good.test"
    key = "aaaa" if ":" in bogon else "a"
    env.resolve(name, vantage={key: [bogon]})
    ctx = _ctx(env, name)
    result = await measured(ctx, dns_check, dns_check.Params())
    assert verdict_of(result) == "dns_tampered"
    assert result.failure == failures.DNS_BOGON
    assert bogon not in ctx.addresses  # the bogon is never connected to: the control's answer is


async def test_bogon_exemption(env):
    """127.0.0.0/8 is exempt in the test vantage (the lab's servers live there); without the
    exemption the same answer is a bogon."""
    env.resolve("lab.good.test")
    exempt = await measured(_ctx(env, "lab.good.test"), dns_check, dns_check.Params())
    assert exempt.ok
    strict = await measured(_ctx(env, "lab.good.test", vantage={"bogon_exempt": []}), dns_check, dns_check.Params())
    assert verdict_of(strict) == "dns_tampered" and strict.failure == failures.DNS_BOGON


def test_bogon_table():
    assert dns_check.is_bogon("10.0.0.1")
    assert dns_check.is_bogon("127.0.0.1")
    assert dns_check.is_bogon("198.18.0.1")
    assert dns_check.is_bogon("2001:db8::1")
    assert not dns_check.is_bogon("149.154.167.51")
    assert not dns_check.is_bogon("2001:67c:4e8:f002::a")
    import ipaddress

    assert not dns_check.is_bogon("127.0.0.1", [ipaddress.ip_network("127.0.0.0/8")])


async def test_shipped_blockpage_address_is_tampered(env):
    """5.3.3.17 is in the shipped fingerprints (Ertelecom's block page). It is never connected
    to: the measurement goes on with the control's answer."""
    env.resolve("rt-page.good.test", vantage={"a": ["5.3.3.17"]})
    ctx = _ctx(env, "rt-page.good.test")
    result = await measured(ctx, dns_check, dns_check.Params())
    assert verdict_of(result) == "dns_tampered"
    assert result.failure == failures.DNS_BLOCKPAGE
    assert ctx.addresses == [LOOPBACK] and ctx.addresses_from == "control_resolver"


async def test_tampering_wins_over_withholding(env):
    """Two vantage resolvers, one lying and one withholding: the lie is reported."""
    env.resolve("both-bad.good.test", vantage={"rcode": "NXDOMAIN"})
    env.spare_dns.set("both-bad.good.test", a=["10.9.9.9"])
    resolvers = [env.dns.address, env.spare_dns.address, {"address": env.control_dns.address, "control": True}]
    result = await measured(_ctx(env, "both-bad.good.test", resolvers=resolvers), dns_check, dns_check.Params())
    assert verdict_of(result) == "dns_tampered" and result.failure == failures.DNS_BOGON


async def test_one_resolver_withholding_is_a_block_even_if_another_answers(env):
    env.resolve("half.good.test", vantage={"rcode": "NXDOMAIN"})
    env.spare_dns.set("half.good.test", a=[LOOPBACK])
    resolvers = [env.dns.address, env.spare_dns.address, {"address": env.control_dns.address, "control": True}]
    ctx = _ctx(env, "half.good.test", resolvers=resolvers)
    result = await measured(ctx, dns_check, dns_check.Params())
    assert verdict_of(result) == "dns_blocked"
    assert ctx.addresses_from == "dns"  # the resolver that answered is used to connect


NETWORKS = {"networks": {"prefixes": ["127.0.0.0/24"]}}


async def test_outside_networks_and_disjoint_from_control_is_inconsistent(env):
    env.resolve("elsewhere.good.test", vantage={"a": ["127.0.5.5"]})
    result = await measured(_ctx(env, "elsewhere.good.test", service=NETWORKS), dns_check, dns_check.Params())
    assert verdict_of(result) == "dns_tampered"
    assert result.failure == failures.DNS_INCONSISTENT


async def test_inside_networks_is_ok_even_if_the_control_disagrees(env):
    env.resolve("inside.good.test", vantage={"a": ["127.0.0.9"]})
    result = await measured(_ctx(env, "inside.good.test", service=NETWORKS), dns_check, dns_check.Params())
    assert result.ok


async def test_outside_networks_but_shared_with_the_control_is_ok(env):
    env.resolve("cdn.good.test", vantage={"a": ["127.0.5.5"]}, control={"a": ["127.0.5.5", "127.0.5.6"]})
    result = await measured(_ctx(env, "cdn.good.test", service=NETWORKS), dns_check, dns_check.Params())
    assert result.ok


async def test_no_networks_configured_no_inconsistency(env):
    env.resolve("nonet.good.test", vantage={"a": ["127.0.5.5"]})
    result = await measured(_ctx(env, "nonet.good.test"), dns_check, dns_check.Params())
    assert result.ok


async def test_controls_are_not_judged_by_service_networks(env):
    env.resolve("ctl-elsewhere.good.test", vantage={"a": ["127.0.5.5"]})
    ctx = _ctx(env, "ctl-elsewhere.good.test", service=False)
    assert (await measured(ctx, dns_check, dns_check.Params())).ok


async def test_pinned_addresses_are_kept_whatever_dns_says(env):
    env.resolve("pinned.good.test", vantage={"a": ["127.0.0.8"]})
    ctx = _ctx(env, "pinned.good.test", target={"addresses": ["127.0.0.1"]})
    result = await measured(ctx, dns_check, dns_check.Params())
    assert result.ok
    assert ctx.addresses == ["127.0.0.1"] and ctx.addresses_from == "pinned"


async def test_an_address_target_skips_dns(env):
    from probe.checks.context import Skip

    with pytest.raises(Skip):
        await dns_check.run(_ctx(env, "127.0.0.1"), dns_check.Params())


async def test_dns_over_every_resolver_kind_in_one_check(env):
    env.resolve("kinds.good.test")
    resolvers = [
        env.dns.address,
        {"address": env.dns.dot_address, "server_name": "dot.test"},
        env.dns.doh_url,
        {"address": env.control_dns.address, "control": True},
    ]
    result = await measured(_ctx(env, "kinds.good.test", resolvers=resolvers), dns_check, dns_check.Params())
    assert result.ok
    assert [r["judgement"] for r in result.as_json()["resolvers"]] == ["ok", "ok", "ok", "control"]
