"""Verdicts: the rules of probe.judge one by one, then every target verdict reachable without
namespaces, end to end (`msgreach once --format json` on a config pointing at loopback servers)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from msgreach_contract import BLOCK_VERDICTS, assert_contract_document, verdicts

from probe import failures
from probe.judge import (
    confirm_down_by_control,
    service_verdict,
    target_verdict,
    unmeasured_service,
    vantage_verdict,
    worst,
)
from probe.model import CheckResult, Fault, Finding, TargetResult, TCPConnect, TCPEvidence, Verdict
from probe.runner import run_all

LOOPBACK = "127.0.0.1"


# --- rules ---------------------------------------------------------------------------------------


def _check(name: str, ok: bool = True, technique: str | None = None, failure: str | None = None, fault: Fault = Fault.PATH, differential: str = "decoy") -> CheckResult:
    finding = None if ok or technique is None else Finding(Verdict(technique), fault, differential if fault is Fault.PATH else "")
    return CheckResult(name, ok, None if ok else (failure or "connection_reset"), 0.1, finding)


def _target(verdict: str, name: str = "t", checks: list[CheckResult] | None = None) -> TargetResult:
    return TargetResult("svc", name, "h.test", Verdict(verdict), checks or [])


def test_target_verdict_is_the_first_failing_check():
    checks = [_check("dns"), _check("tcp"), _check("tls", False, "sni_blocked"), _check("http", False, "http_blocked")]
    verdict, reason = target_verdict(checks)
    assert verdict == "sni_blocked"
    assert reason.startswith("tls: connection_reset") and "differential: decoy" in reason


def test_target_verdict_ok_when_every_check_passed():
    assert target_verdict([_check("dns"), _check("tcp")]) == ("ok", "")


def test_target_verdict_without_checks_is_an_error_of_the_monitor():
    assert target_verdict([])[0] == "error"


def test_a_failure_stating_no_finding_is_the_monitors_error():
    assert target_verdict([_check("tcp", False, None)])[0] == "error"


@pytest.mark.parametrize("technique", ["sni_blocked", "http_blocked", "dns_blocked", "dns_tampered", "protocol_blocked", "quic_blocked", "udp_blocked", "throttled"])
def test_a_technique_needs_its_differential(technique):
    """The differential rule: without a differential only ip_blocked, tls_blocked and tls_mitm stand."""
    assert target_verdict([_check("x", False, technique, fault=Fault.UNSEPARATED)])[0] == "down"
    assert target_verdict([_check("x", False, technique, fault=Fault.PATH, differential="")])[0] == "down"
    assert target_verdict([_check("x", False, technique, fault=Fault.PATH)])[0] == technique


@pytest.mark.parametrize("technique", ["ip_blocked", "tls_blocked", "tls_mitm"])
def test_what_the_contract_lets_stand_alone(technique):
    assert target_verdict([_check("x", False, technique, fault=Fault.UNSEPARATED)])[0] == technique


def test_the_servers_fault_is_down_and_the_monitors_is_error():
    assert target_verdict([_check("tls", False, "tls_blocked", fault=Fault.SERVER)])[0] == "down"
    assert target_verdict([_check("quic", False, "quic_blocked", fault=Fault.MONITOR)])[0] == "error"


@pytest.mark.parametrize("failure", [failures.LOCAL_RESOURCE, failures.UNAVAILABLE])
def test_a_monitor_failure_is_error_whatever_the_finding_says(failure):
    assert target_verdict([_check("tcp", False, "ip_blocked", failure=failure, fault=Fault.UNSEPARATED)])[0] == "error"


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([], "error"),  # the contract: `error` when nothing could be measured
        (["ok", "ok"], "ok"),
        (["ok", "ip_blocked"], "partial"),
        (["ok", "down", "sni_blocked"], "partial"),
        (["ip_blocked", "sni_blocked"], "ip_blocked"),
        (["throttled", "dns_blocked", "tls_mitm"], "dns_blocked"),
        (["http_blocked", "tls_blocked"], "tls_blocked"),
        (["ok", "down"], "ok"),  # a dead target is not a blocked one
        (["ok", "error"], "ok"),  # nor is one the monitor could not measure
        (["down", "down"], "down"),
        (["down", "error"], "down"),
        (["error", "error"], "error"),
        (["down", "ip_blocked"], "ip_blocked"),
        (["vantage_offline", "vantage_offline"], "vantage_offline"),
        (["ok", "vantage_offline"], "vantage_offline"),
    ],
)
def test_service_verdict(targets, expected):
    assert service_verdict([_target(v, f"t{i}") for i, v in enumerate(targets)]) == expected


def test_worst_follows_the_pipeline_order():
    order = ["dns_blocked", "dns_tampered", "ip_blocked", "sni_blocked", "tls_blocked", "tls_mitm", "http_blocked"]
    for i, better in enumerate(order):
        for worse in order[:i]:
            assert worst([Verdict(better), Verdict(worse)]) == worse
    assert worst([Verdict.THROTTLED, Verdict.DOWN]) == "throttled"
    assert worst([Verdict.DOWN, Verdict.OK]) == "down"


def _control(name: str, verdict: str) -> TargetResult:
    checks = [_check("dns"), _check("tcp", False, "ip_blocked", failures.TIMEOUT)] if verdict != "ok" else [_check("dns")]
    return TargetResult("controls", name, f"{name}.test", Verdict(verdict), checks)


@pytest.mark.parametrize(
    ("controls", "expected"),
    [
        ([("international", "ok"), ("domestic", "ok")], "ok"),
        ([("international", "ok"), ("domestic", "ip_blocked")], "ok"),
        ([("international", "ip_blocked"), ("international", "ok")], "ok"),
        ([("international", "ip_blocked"), ("domestic", "ok")], "allowlist"),
        ([("international", "ip_blocked"), ("domestic", "ip_blocked")], "vantage_offline"),
        # yardsticks (downloads, STUN) never make a vantage online
        ([("international", "ip_blocked"), ("yardstick", "ok")], "vantage_offline"),
        ([("international", "ip_blocked"), ("domestic", "ok"), ("yardstick", "ok")], "allowlist"),
        ([("yardstick", "ok")], "vantage_offline"),
        ([], "ok"),
    ],
)
def test_vantage_verdict(controls, expected):
    judged = [(kind, _control(f"c{i}", verdict)) for i, (kind, verdict) in enumerate(controls)]
    assert vantage_verdict(judged)[0] == expected


def test_allowlist_names_the_international_sites_and_their_stage():
    verdict, reason = vantage_verdict([("international", _control("intl", "ip_blocked")), ("domestic", _control("max", "ok"))])
    assert verdict == "allowlist"
    assert "intl (tcp: generic_timeout_error)" in reason


def test_control_vantage_failing_the_same_check_makes_it_down():
    mine = _target("ip_blocked", checks=[_check("dns"), _check("tcp", False, "ip_blocked", failures.CONNECTION_REFUSED)])
    mine.reason = "tcp: connection_refused"
    theirs = _target("ip_blocked", checks=[_check("dns"), _check("tcp", False, "ip_blocked", failures.TIMEOUT)])
    result = confirm_down_by_control(mine, theirs)
    assert result.verdict == "down"
    assert "control vantage fails tcp too" in result.reason


def test_control_vantage_failing_another_check_changes_nothing():
    mine = _target("dns_blocked", checks=[_check("dns", False, "dns_blocked")])
    theirs = _target("ip_blocked", checks=[_check("dns"), _check("tcp", False, "ip_blocked")])
    assert confirm_down_by_control(mine, theirs).verdict == "dns_blocked"


@pytest.mark.parametrize("control_verdict", ["ok", "vantage_offline", "error"])
def test_control_vantage_ok_offline_or_unmeasured_changes_nothing(control_verdict):
    mine = _target("sni_blocked", checks=[_check("tls", False, "sni_blocked")])
    theirs = _target(control_verdict, checks=[_check("tls", False, "sni_blocked")] if control_verdict != "ok" else [_check("tls")])
    assert confirm_down_by_control(mine, theirs).verdict == "sni_blocked"


def test_no_control_vantage_changes_nothing():
    mine = _target("ip_blocked", checks=[_check("tcp", False, "ip_blocked")])
    assert confirm_down_by_control(mine, None).verdict == "ip_blocked"


def test_ok_is_never_turned_down():
    theirs = _target("ip_blocked", checks=[_check("tcp", False, "ip_blocked")])
    assert confirm_down_by_control(_target("ok", checks=[_check("tcp")]), theirs).verdict == "ok"


def test_offline_service_claims_nothing():
    service = unmeasured_service("whatsapp", [("e1", "e1.whatsapp.net"), ("web", "web.whatsapp.com")])
    assert service.verdict == "vantage_offline"
    assert [t.verdict for t in service.targets] == ["vantage_offline", "vantage_offline"]
    assert all(t.checks == [] for t in service.targets)
    assert service.reachable_ratio == 0.0


# --- end to end ------------------------------------------------------------------------------------


def _service(name: str, *targets: dict) -> dict:
    return {"name": name, "targets": list(targets)}


@pytest.fixture(scope="module")
def every_verdict(env, tmp_path_factory, msgreach):
    """One `msgreach once --format json` round over a config with one service per verdict."""
    env.resolve("ok.good.test")
    env.resolve("nx.good.test", vantage={"rcode": "NXDOMAIN"})
    env.resolve("refuse.good.test", vantage={"rcode": "REFUSED"})
    env.resolve("bogon.good.test", vantage={"a": ["10.0.0.66"]})
    env.resolve("page.good.test", vantage={"a": ["127.0.66.6"]})
    env.resolve(BLOCKED := "blocked.good.test")
    env.resolve("reset.good.test")
    env.resolve("mitm.good.test")
    env.resolve("page451.good.test")
    env.resolve("gone.good.test", vantage={"rcode": "NXDOMAIN"}, control={"rcode": "NXDOMAIN"})
    services = [
        _service("ok", env.target("web", "ok.good.test")),
        _service("dnsblock", env.target("nx", "nx.good.test"), env.target("refused", "refuse.good.test")),
        _service("tamper", env.target("bogon", "bogon.good.test"), env.target("page", "page.good.test")),
        _service(
            "ipblock",
            env.target("refused", "dc.good.test", "refused", addresses=[LOOPBACK, "127.0.0.2"], checks=["tcp", "tls"]),
            env.target("dropped", "127.0.0.1", "blackhole", checks=["tcp"]),
        ),
        _service("sni", env.target("front", BLOCKED, "sni_front")),
        _service("tlsblock", env.target("reset", "reset.good.test", "reset")),
        _service("mitm", env.target("wrongname", "mitm.good.test", "wrongname")),
        _service("httpblock", env.target("451", "page451.good.test", params={"http": {"path": "/451"}})),
        _service("gone", env.target("nx", "gone.good.test")),
        _service("partial", env.target("up", "ok.good.test"), env.target("down", "ok.good.test", "refused", addresses=[LOOPBACK])),
        _service("outage", env.target("up", "ok.good.test"), env.target("gone", "gone.good.test")),
    ]
    directory = tmp_path_factory.mktemp("every")
    config = env.config(services, extra_fingerprints={"dns_addresses": ["127.0.66.6"]}, evidence={"path": str(directory / "evidence.jsonl")})
    path = env.write(directory, config)
    started = time.monotonic()
    completed = msgreach("once", "--config", str(path), "--format", "json", timeout=60)
    elapsed = time.monotonic() - started
    assert completed.returncode == 3, completed.stderr  # blocks found
    assert "Traceback" not in completed.stderr
    return json.loads(completed.stdout), elapsed, directory / "evidence.jsonl"


def test_every_verdict_document_follows_the_contract(every_verdict):
    document, elapsed, _ = every_verdict
    assert_contract_document(document)
    assert document["vantages"][0]["vantage"] == "test-vantage"
    assert document["vantages"][0]["verdict"] == "ok"
    assert elapsed < 20


@pytest.mark.parametrize(
    ("service", "service_verdict_", "targets"),
    [
        ("ok", "ok", {"web": "ok"}),
        ("dnsblock", "dns_blocked", {"nx": "dns_blocked", "refused": "dns_blocked"}),
        ("tamper", "dns_tampered", {"bogon": "dns_tampered", "page": "dns_tampered"}),
        ("ipblock", "ip_blocked", {"refused": "ip_blocked", "dropped": "ip_blocked"}),
        ("sni", "sni_blocked", {"front": "sni_blocked"}),
        ("tlsblock", "tls_blocked", {"reset": "tls_blocked"}),
        ("mitm", "tls_mitm", {"wrongname": "tls_mitm"}),
        ("httpblock", "http_blocked", {"451": "http_blocked"}),
        ("gone", "down", {"nx": "down"}),
        ("partial", "partial", {"up": "ok", "down": "ip_blocked"}),
        ("outage", "ok", {"up": "ok", "gone": "down"}),  # part of a service down is no block
    ],
)
def test_every_verdict(every_verdict, service, service_verdict_, targets):
    found = verdicts(every_verdict[0])
    assert found[service] == (service_verdict_, targets)


def test_every_verdict_evidence(every_verdict):
    document = every_verdict[0]
    targets = {(s["service"], t["target"]): t for s in document["vantages"][0]["services"] for t in s["targets"]}

    def check(service, target, name):
        return next(c for c in targets[(service, target)]["checks"] if c["check"] == name)

    assert check("dnsblock", "nx", "dns")["failure"] == failures.DNS_NXDOMAIN
    assert check("dnsblock", "refused", "dns")["failure"] == failures.DNS_REFUSED
    assert check("tamper", "bogon", "dns")["failure"] == failures.DNS_BOGON
    assert check("tamper", "page", "dns")["failure"] == failures.DNS_BLOCKPAGE
    assert check("ipblock", "refused", "tcp")["failure"] == failures.CONNECTION_REFUSED
    assert check("ipblock", "dropped", "tcp")["failure"] == failures.TIMEOUT
    assert check("sni", "front", "tls")["decoy"]["failure"] is None
    assert check("tlsblock", "reset", "tls")["failure"] == failures.CONNECTION_RESET
    assert check("mitm", "wrongname", "tls")["failure"] == failures.SSL_INVALID_HOSTNAME
    assert check("mitm", "wrongname", "tls")["certificate"]["dns_names"] == ["other.test", "*.other.test"]
    assert check("httpblock", "451", "http")["failure"] == failures.HTTP_BLOCKPAGE
    assert check("gone", "nx", "dns")["control_agrees"] is True
    # A DNS block does not stop the measurement: the control's address is tried too.
    assert check("dnsblock", "nx", "dns")["addresses_from"] == "control_resolver"
    assert check("dnsblock", "nx", "tls")["ok"] is True
    # Pinned / address targets skip DNS.
    assert [c["check"] for c in targets[("ipblock", "refused")]["checks"]] == ["tcp"]  # tls skipped: no connection
    assert "reason" in targets[("sni", "front")] and "tls" in targets[("sni", "front")]["reason"]


def test_the_vantage_controls_are_reported(env, every_verdict):
    vantage = every_verdict[0]["vantages"][0]
    assert [c["verdict"] for c in vantage["controls"]] == ["ok"]
    assert sorted(vantage["healthy_resolvers"]) == sorted([env.dns.address, env.control_dns.address])


def test_how_many_targets_are_down_is_said(every_verdict, tmp_path):
    """An `ok` service may have targets that are down: /status.json (the `once` document) and the
    page say how many."""
    from probe import config as config_module
    from probe import status_page
    from probe.metrics import State
    from probe.model import ServiceResult, VantageResult, VantageVerdict

    services = {s["service"]: s for s in every_verdict[0]["vantages"][0]["services"]}
    assert (services["outage"]["verdict"], services["outage"]["targets_down"]) == ("ok", 1)
    assert services["gone"]["targets_down"] == 1 and services["ok"]["targets_down"] == 0
    outage = ServiceResult("outage", Verdict.OK, [_target("ok", "up"), _target("down", "gone")])
    assert outage.targets_down == 1
    state = State(config_module.load(None))  # the embedded default: nothing is measured here
    state.latest["v"] = VantageResult("v", VantageVerdict.OK, [outage], [], time.time(), 1.0)
    page = status_page.render(state, True, "ok")
    assert "1 of 2 targets down" in page


# --- the archive judged again (msgreach evidence --rejudge) -------------------------------------------


def test_every_verdict_is_judged_again_the_same(every_verdict, msgreach):
    archive = every_verdict[2]
    completed = msgreach("evidence", "--rejudge", "--path", str(archive), timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = archive.read_text().splitlines()
    assert completed.stdout.strip().splitlines()[-1] == f"{len(lines)} of {len(lines)} line(s) re-judged; 0 verdict(s) differ"


def test_a_stored_verdict_the_observations_do_not_make_is_a_difference(every_verdict, msgreach, tmp_path):
    lines = [json.loads(line) for line in every_verdict[2].read_text().splitlines()]
    for line in lines:
        if (line["service"], line["target"]) == ("sni", "front"):
            line["verdict"] = "tls_blocked"  # what the decoy passing rules out
        if line["service"] == "gone":
            line["service_verdict"] = "dns_blocked"  # the control resolver agrees: down
    altered = tmp_path / "altered.jsonl"
    altered.write_text("".join(json.dumps(line) + "\n" for line in lines))
    completed = msgreach("evidence", "--rejudge", "--path", str(altered), timeout=60)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    differences = [row for row in completed.stdout.splitlines() if "re-judged " in row and row.startswith("20")]
    assert len(differences) == 2, completed.stdout
    assert any("target sni/front: stored tls_blocked, re-judged sni_blocked" in row for row in differences)
    assert any("service gone: stored dns_blocked, re-judged down" in row for row in differences)


async def test_vantage_offline_when_the_controls_fail(env, tmp_path):
    env.resolve("never-measured.good.test")
    controls = [
        env.target("ctl1", "control.good.test", "refused"),
        env.target("ctl2", "127.0.0.1", "reset", checks=["tcp", "tls"]),
    ]
    services = [_service("svc", env.target("t", "never-measured.good.test", params={"http": {"path": "/never-measured"}}))]
    config = env.load(tmp_path, env.config(services, controls=controls))
    [result] = await run_all(config)
    assert result.verdict == "vantage_offline"
    assert not result.online
    assert [s.verdict for s in result.services] == ["vantage_offline"]
    assert [t.verdict for t in result.services[0].targets] == ["vantage_offline"]
    assert result.services[0].targets[0].checks == []
    assert not any(path == "/never-measured" for _, path in env.requests)
    assert [c.verdict for c in result.controls] == ["ip_blocked", "tls_blocked"]


async def test_one_control_passing_is_enough(env, tmp_path):
    env.resolve("measured.good.test")
    controls = [env.target("dead", "control.good.test", "refused"), env.control_target()]
    config = env.load(tmp_path, env.config([_service("svc", env.target("t", "measured.good.test"))], controls=controls))
    [result] = await run_all(config)
    assert result.verdict == "ok" and result.services[0].verdict == "ok"


async def test_control_vantage_seeing_the_same_failure_makes_it_down(env, tmp_path):
    """Two vantages: `abroad` is a control vantage. Where both fail the same check the target is
    `down` at home; where only home fails (its resolver withholds the name) it stays blocked."""
    home_dns = env.spare_dns  # answers only the names set on it
    home_dns.set("control.good.test", a=[LOOPBACK])
    home_dns.set("withheld-home.good.test", rcode="NXDOMAIN")
    home_dns.set("same.good.test", a=[LOOPBACK])
    env.resolve("withheld-home.good.test")
    env.resolve("same.good.test")
    control_resolver = {"address": env.control_dns.address, "control": True}
    vantages = [
        env.vantage(name="home", resolvers=[home_dns.address, control_resolver]),
        env.vantage(name="abroad", control=True),
    ]
    services = [
        _service(
            "svc",
            env.target("both-fail", "same.good.test", "refused"),
            env.target("home-only", "withheld-home.good.test"),
        )
    ]
    config = env.load(tmp_path, env.config(services, vantages=vantages))
    home, abroad = await run_all(config)
    assert (home.vantage, abroad.vantage) == ("home", "abroad")
    abroad_targets = {t.target: t.verdict for t in abroad.services[0].targets}
    home_targets = {t.target: t for t in home.services[0].targets}
    assert abroad_targets == {"both-fail": "ip_blocked", "home-only": "ok"}
    assert home_targets["both-fail"].verdict == "down"
    assert "control vantage" in home_targets["both-fail"].reason
    assert home_targets["home-only"].verdict == "dns_blocked"
    assert home.services[0].verdict == "dns_blocked"


async def test_a_non_ok_verdict_is_confirmed_by_retries(env, tmp_path):
    env.resolve("retry-ok.good.test")
    services = [
        _service("svc", env.target("up", "retry-ok.good.test"), env.target("down", "retry-ok.good.test", "refused")),
    ]
    config = env.load(tmp_path, env.config(services, schedule={"retries": 2}))
    [result] = await run_all(config)
    attempts = {t.target: t.attempts for t in result.services[0].targets}
    assert attempts == {"up": 1, "down": 3}


async def test_a_lost_packet_does_not_flip_the_verdict(env, tmp_path, monkeypatch):
    """The first attempt fails, the retry passes: the published verdict is ok."""
    from probe.checks import tcp as tcp_module

    env.resolve("flaky.good.test")
    real = tcp_module.run
    calls = {"n": 0}

    async def flaky(ctx, params):
        if ctx.target.name == "flaky":
            calls["n"] += 1
            if calls["n"] == 1:
                return TCPEvidence([TCPConnect("127.0.0.1", env.ports["web"], failures.TIMEOUT, 1.0)])
        return await real(ctx, params)

    monkeypatch.setattr(tcp_module, "run", flaky)
    config = env.load(tmp_path, env.config([_service("svc", env.target("flaky", "flaky.good.test"))], schedule={"retries": 1}))
    [result] = await run_all(config)
    target = result.services[0].targets[0]
    assert (target.verdict, target.attempts) == ("ok", 2)


def _tls_attempts(monkeypatch, *attempts):
    """The tls check's evidence, one crafted TLSEvidence per attempt (the judge reads it as usual)."""
    from probe.checks import tls as tls_module

    queue = list(attempts)
    real = tls_module.run

    async def crafted(ctx, params):
        if ctx.target.name != "t":  # the controls measure as usual
            return await real(ctx, params)
        return queue.pop(0)()

    monkeypatch.setattr(tls_module, "run", crafted)


def _hs(sni, failure=None, hello="chrome"):
    from probe.model import TLSHandshake

    return TLSHandshake("127.0.0.1", 443, sni, failure, duration_seconds=0.01, hello=hello)


def _agreed_sni_block():
    """The real hello cut, the decoy with it passing, the pair agreeing on its repeat: sni_blocked."""
    from probe.model import FingerprintedHandshake, TLSEvidence

    name = "keyed.good.test"
    return TLSEvidence(
        handshakes=[_hs(name, failures.TIMEOUT, "openssl")], browser=FingerprintedHandshake(_hs(name, failures.TIMEOUT)), client="browser",
        decoy=_hs("example.org"), matrix=[_hs(name, failures.TIMEOUT, "firefox")], repeats=[_hs(name, failures.TIMEOUT), _hs("example.org")],
    )


def _slipped_through():
    """The real hello passed where Python's was cut, then failed on its repeat: no agreement."""
    from probe.model import FingerprintedHandshake, TLSEvidence

    name = "keyed.good.test"
    return TLSEvidence(
        handshakes=[_hs(name, failures.TIMEOUT, "openssl")], browser=FingerprintedHandshake(_hs(name)), client="browser",
        repeats=[_hs(name, failures.TIMEOUT)],
    )


@pytest.mark.parametrize(
    ("first", "second", "verdict", "last_reason"),
    [
        (_agreed_sni_block, _slipped_through, "sni_blocked", "retry_inconclusive"),  # the agreed attempt stands
        (_slipped_through, _agreed_sni_block, "sni_blocked", "differential"),  # the retry named it: as always
        (_slipped_through, _slipped_through, "tls_blocked", "no_agreement"),  # nothing agreed: no technique
    ],
)
async def test_an_inconclusive_retry_leaves_the_agreed_attempt_standing(env, tmp_path, monkeypatch, first, second, verdict, last_reason):
    """A confirming retry that fails at the same check without agreeing repeats (a censor that
    lets a hello through now and then) confirms the block and contradicts nothing."""
    env.resolve("keyed.good.test")
    _tls_attempts(monkeypatch, first, second)
    config = env.load(tmp_path, env.config([_service("svc", env.target("t", "keyed.good.test", checks=["tls"]))], schedule={"retries": 1}))
    [result] = await run_all(config)
    target = result.services[0].targets[0]
    assert (target.verdict, target.attempts, target.reasons[-1].key) == (verdict, 2, last_reason), target.reason


async def test_an_inconclusive_retry_keeps_no_attempt_that_named_nothing(env, tmp_path, monkeypatch):
    """The rule keeps an agreed technique only: a retry of a non-technique (down) decides as usual."""
    from probe.model import FingerprintedHandshake, TLSEvidence

    def everything_cut():
        name = "keyed.good.test"
        return TLSEvidence(handshakes=[_hs(name, failures.TIMEOUT, "openssl")], browser=FingerprintedHandshake(_hs(name, failures.SSL_FAILED_HANDSHAKE)),
                           client="browser", decoy=_hs("example.org", failures.SSL_FAILED_HANDSHAKE))

    env.resolve("keyed.good.test")
    _tls_attempts(monkeypatch, everything_cut, _slipped_through)
    config = env.load(tmp_path, env.config([_service("svc", env.target("t", "keyed.good.test", checks=["tls"]))], schedule={"retries": 1}))
    [result] = await run_all(config)
    target = result.services[0].targets[0]
    assert (target.verdict, target.reasons[-1].key) == ("tls_blocked", "no_agreement"), target.reason


async def test_service_filter(env, tmp_path):
    env.resolve("only.good.test")
    services = [_service("a", env.target("t", "only.good.test")), _service("b", env.target("t", "only.good.test"))]
    config = env.load(tmp_path, env.config(services))
    [result] = await run_all(config, ["b"])
    assert [s.service for s in result.services] == ["b"]


# --- a round always ends -------------------------------------------------------------------------


async def test_a_check_ignoring_its_timeout_is_cut_by_the_runner(env, tmp_path, monkeypatch):
    from probe.checks import tcp as tcp_module

    async def hangs(ctx, params):
        await asyncio.sleep(3600)

    env.resolve("hang.good.test")
    config = env.load(
        tmp_path,
        env.config(
            [_service("svc", env.target("t", "hang.good.test", checks=["dns", "tcp"]))],
            controls=[{**env.control_target(), "checks": ["dns"]}],  # a control that needs no tcp
            schedule={"timeouts": {"tcp": 0.3}},
        ),
    )
    monkeypatch.setattr(tcp_module, "run", hangs)
    started = time.monotonic()
    [result] = await run_all(config)
    assert time.monotonic() - started < 0.3 * 3 + 1 + 1
    tcp_result = result.services[0].targets[0].checks[-1]
    assert (tcp_result.check, tcp_result.failure) == ("tcp", failures.TIMEOUT)


async def test_the_round_ends_by_its_deadline(env, tmp_path):
    env.resolve("slow.good.test")
    services = [_service("svc", env.target("slow", "slow.good.test", "silent"), env.target("fast", "slow.good.test"))]
    config = env.load(
        tmp_path, env.config(services, schedule={"round_deadline_seconds": 1.5, "timeouts": {"tls": 10}})
    )
    started = time.monotonic()
    [result] = await run_all(config)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5
    slow = {t.target: t for t in result.services[0].targets}["slow"]
    assert slow.incomplete
    assert "round deadline" in slow.reason
    assert [c.check for c in slow.checks] == ["dns", "tcp"]  # tls was still running
    assert {t.target: t.verdict for t in result.services[0].targets}["fast"] == "ok"


async def test_a_target_cut_by_the_deadline_is_not_ok(env, tmp_path):
    env.resolve("cut.good.test")
    services = [_service("svc", env.target("slow", "cut.good.test", "silent"))]
    config = env.load(tmp_path, env.config(services, schedule={"round_deadline_seconds": 1.0, "timeouts": {"tls": 10}}))
    [result] = await run_all(config)
    target = result.services[0].targets[0]
    assert target.incomplete
    assert target.verdict != "ok"


def test_no_block_verdict_is_claimed_for_a_dead_target(every_verdict):
    found = verdicts(every_verdict[0])
    assert found["gone"][0] not in BLOCK_VERDICTS
