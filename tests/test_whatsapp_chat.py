"""whatsapp_chat: OONI's semantics over several hosts (DNS, both ports, any one host working),
then the chat protocol's first bytes and a few seconds held open, against a responder and its
hostile variants (tests/servers/whatsapp.py)."""

from __future__ import annotations

import pytest
from msgreach_helpers import measured
from servers import whatsapp as responder

from probe import failures
from probe.checks import REGISTRY, whatsapp_chat
from probe.checks.context import Skip
from probe.model import Fault, Verdict
from probe.runner import run_round

HOSTS = {  # host -> loopback address; each address runs a different responder on the same port
    "e1.wa.test": "127.0.0.1",  # ok
    "e2.wa.test": "127.0.0.2",  # resets the connection on the chat protocol's first bytes
    "e3.wa.test": "127.0.0.3",  # nothing listens: connects are refused
    "e4.wa.test": "127.0.0.2",
}
WITHHELD = "e9.wa.test"  # the vantage resolver says NXDOMAIN, the control answers


@pytest.fixture(scope="module")
def chat(env) -> dict:
    seen: list[bytes] = []

    async def start() -> dict:
        ports = {}
        for behaviour in responder.BEHAVIOURS:
            _, ports[behaviour] = await env.fleet.serve(responder.handler(behaviour, seen), "127.0.0.1")
        # The same port on 127.0.0.2, answered by a censor-like reset.
        _, port = await env.fleet.serve(responder.handler("reset_on_hello", seen), "127.0.0.2", port=ports["ok"])
        assert port == ports["ok"]
        return ports

    ports = env.loop.call(start())
    for host, address in HOSTS.items():
        env.resolve(host, vantage={"a": [address]}, control={"a": [address]})
    env.resolve(WITHHELD, vantage={"rcode": "NXDOMAIN"}, control={"a": ["127.0.0.1"]})
    env.resolve("gone.wa.test", vantage={"rcode": "NXDOMAIN"}, control={"rcode": "NXDOMAIN"})
    return {"ports": ports, "seen": seen}


FAST = {"hold_seconds": 0.5, "reply_timeout": 0.5, "step_timeout": 1.0}


def context(env, host: str, ports: list[int], **target):
    return env.context(host, target={"ports": ports, "checks": ["whatsapp_chat"], **target})


async def single(env, behaviour_port: int, **params):
    """The target's own host, after `tcp` ran (the reuse path)."""
    ctx = context(env, "e1.wa.test", [behaviour_port], addresses=["127.0.0.1"])
    await measured(ctx, REGISTRY["tcp"])
    return await measured(ctx, whatsapp_chat, whatsapp_chat.Params(**{**FAST, **params}))


# --- the first bytes ---------------------------------------------------------------------------------


def test_client_hello_layout():
    ephemeral = bytes(range(32))
    hello = whatsapp_chat.client_hello(b"WA\x05\x02", ephemeral)
    assert hello == b"WA\x05\x02" + b"\x00\x00\x24" + b"\x12\x22\x0a\x20" + ephemeral


async def test_default_prologue_is_sent(env, chat):
    chat["seen"].clear()
    result = await single(env, chat["ports"]["ok"])
    assert result.ok, result
    assert chat["seen"] == [b"WA\x05\x02"]
    (host,) = result.evidence.hosts
    (exchange,) = host.exchanges
    assert exchange.stage == "held" and exchange.reply_bytes > 0


async def test_prologue_is_configurable(env, chat):
    chat["seen"].clear()
    assert (await single(env, chat["ports"]["ok"], prologue="57410603")).ok
    assert chat["seen"] == [b"WA\x06\x03"]
    with pytest.raises(ValueError):
        whatsapp_chat.Params(prologue="zz")


# --- hostile servers and censors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "failure", "stage", "replied", "fault"),
    [
        ("reset_on_hello", failures.CONNECTION_RESET, "first_bytes", False, Fault.PATH),
        ("close_on_hello", failures.EOF, "first_bytes", False, Fault.PATH),
        # Our bytes acknowledged, then nothing: a silent server, not a drop on the path.
        ("silent", failures.TIMEOUT, "first_bytes", False, Fault.SERVER),
        ("reset_after", failures.CONNECTION_RESET, "hold", True, Fault.PATH),  # a drop after the first bytes
        ("close_after", failures.EOF, "hold", True, Fault.PATH),
    ],
)
async def test_failures_after_connect(env, chat, behaviour, failure, stage, replied, fault):
    result = await single(env, chat["ports"][behaviour])
    assert (result.ok, result.failure, result.finding.technique, result.finding.fault) == (False, failure, Verdict.PROTOCOL_BLOCKED, fault)
    (exchange,) = result.evidence.hosts[0].exchanges
    assert exchange.failure == failure and exchange.stage == stage
    assert (exchange.reply_bytes > 0) is replied
    assert result.as_json()["hosts"][0]["verdict"] == ("protocol_blocked" if fault == Fault.PATH else "down")


async def test_silence_records_whether_our_bytes_were_acknowledged(env, chat):
    result = await single(env, chat["ports"]["silent"])
    (exchange,) = result.evidence.hosts[0].exchanges
    assert exchange.unacked_segments == 0  # the server's kernel acknowledged: a silent server, not a drop


async def test_hello_none_only_holds(env, chat):
    result = await single(env, chat["ports"]["silent"], hello="none")
    assert result.ok
    (exchange,) = result.evidence.hosts[0].exchanges
    assert exchange.reply_bytes == 0 and exchange.unacked_segments == 0


async def test_one_port_working_is_enough(env, chat):
    ctx = context(env, "e1.wa.test", [chat["ports"]["reset_on_hello"], chat["ports"]["ok"]], addresses=["127.0.0.1"])
    await measured(ctx, REGISTRY["tcp"])
    result = await measured(ctx, whatsapp_chat, whatsapp_chat.Params(**FAST))
    assert result.ok and len(result.evidence.hosts[0].exchanges) == 2


async def test_skipped_when_tcp_connected_nowhere(env, chat):
    ctx = context(env, "e1.wa.test", [env.ports["refused"]], addresses=["127.0.0.1"])
    await measured(ctx, REGISTRY["tcp"])
    with pytest.raises(Skip):
        await whatsapp_chat.run(ctx, whatsapp_chat.Params(**FAST))


# --- several hosts: OONI's semantics -----------------------------------------------------------------------


async def many(env, chat, hosts: list[str], **target):
    ports = [chat["ports"]["ok"], env.ports["refused"]]  # the second port never works: one port is enough
    ctx = context(env, hosts[0], ports, **target)
    return await measured(ctx, whatsapp_chat, whatsapp_chat.Params(hosts=hosts, **FAST))


async def test_any_host_working_means_reachable(env, chat):
    result = await many(env, chat, ["e1.wa.test", "e2.wa.test", "e3.wa.test", WITHHELD])
    assert result.ok, result
    data = result.as_json()  # the JSON keys as always
    by_host = {h["host"]: h for h in data["hosts"]}
    assert {h: o["verdict"] for h, o in by_host.items()} == {
        "e1.wa.test": "ok",
        "e2.wa.test": "protocol_blocked",
        "e3.wa.test": "ip_blocked",
        WITHHELD: "dns_blocked",
    }
    assert data["working_hosts"] == 1
    assert data["blocked_hosts"] == ["e2.wa.test", "e3.wa.test", WITHHELD]
    assert [c["failure"] for c in by_host["e3.wa.test"]["connects"]] == [failures.CONNECTION_REFUSED] * 2


async def test_no_host_working_takes_the_most_common_reason(env, chat):
    result = await many(env, chat, ["e2.wa.test", "e3.wa.test", "e4.wa.test"])
    assert (result.ok, result.finding.technique, result.failure) == (False, Verdict.PROTOCOL_BLOCKED, failures.CONNECTION_RESET)
    assert result.finding.fault == Fault.PATH and str(result.finding.reason).startswith("2 of 3 hosts")


async def test_ties_go_to_the_worse_verdict(env, chat):
    result = await many(env, chat, ["e2.wa.test", "e3.wa.test", WITHHELD])
    assert result.finding.technique == Verdict.DNS_BLOCKED


async def test_names_that_resolve_nowhere_are_down(env, chat):
    result = await many(env, chat, ["gone.wa.test"])
    assert not result.ok and result.as_json()["hosts"][0]["verdict"] == "down"
    assert result.finding.fault != Fault.PATH


async def test_pinned_addresses_serve_every_host(env, chat):
    result = await many(env, chat, ["gone.wa.test", "e3.wa.test"], addresses=["127.0.0.1"])
    assert result.ok and result.evidence.working_hosts == 2
    assert {h.addresses_from for h in result.evidence.hosts} == {"pinned"}


# --- through the runner ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("hosts", "verdict"), [(["e2.wa.test", "e1.wa.test"], "ok"), (["e2.wa.test", "e4.wa.test"], "protocol_blocked")])
async def test_round_verdicts(env, chat, tmp_path, hosts, verdict):
    service = {
        "name": "whatsapp",
        "targets": [
            {
                "name": "chat",
                "host": hosts[0],
                "ports": [chat["ports"]["ok"]],
                "checks": ["whatsapp_chat"],
                "params": {"whatsapp_chat": {"hosts": hosts, **FAST}},
            }
        ],
    }
    config = env.load(tmp_path, env.config([service]))
    result = await run_round(config, config.vantages[0])
    target = result.services[0].targets[0]
    assert target.verdict == verdict, target.reason


async def test_hosts_are_measured_by_the_runners_step(env, chat, monkeypatch):
    """One copy of the step: the per-host dns and tcp go through probe.checks.measure.measure."""
    from probe.checks import measure

    ran: list[str] = []
    original = measure.measure

    async def spy(ctx, module, params=None):
        ran.append(module.NAME)
        return await original(ctx, module, params)

    monkeypatch.setattr(whatsapp_chat, "measure", spy)
    result = await many(env, chat, ["e1.wa.test", "e3.wa.test"])
    assert result.ok and sorted(ran) == ["dns", "dns", "tcp", "tcp"]
