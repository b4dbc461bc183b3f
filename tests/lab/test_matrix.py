"""The verdict matrix: each scenario switched on for WhatsApp, Telegram and Signal at once, one
`msgreach once --format json` round in the client namespace, then per service: the contract
verdict, the failure string and the evidence of every target the technique touches, `ok` for
every target it does not touch (so `partial` where a service has both), and nothing else off.

Which targets a technique touches is derived from the catalogs (the stage it acts on and each
target's checks), so the matrix follows the catalogs as they grow.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from .harness import Report, once, record
from .lab import Lab
from .plan import BLOCKPAGE, BOGON_FORGED, CONTROL_RESOLVER, FORGED, ISP_RESOLVER, LabTarget
from .scenarios import SCENARIOS

pytestmark = pytest.mark.lab

SERVICES = ("whatsapp", "telegram", "signal")

# scenario -> the pipeline stage it acts on
STAGE = {
    "dns-nxdomain": "dns",
    "dns-refused": "dns",
    "dns-forged": "dns",
    "dns-bogon": "dns",
    "dns-blockpage": "dns",
    "global-outage": "dns",
    "syn-drop": "tcp",
    "syn-rst": "tcp",
    "icmp-unreachable": "tcp",
    "sni-rst": "tls",
    "sni-drop": "tls",
    "sni-drop-after": "tls",
    "tls-rst": "tls",
    "tls-mitm": "tls",
    "tls-mitm-wrongname": "tls",
    "http-redirect": "http",
    "http-451": "http",
    "http-blockpage-body": "http",
    "chat-rst": "whatsapp_chat",
    # quic, mtproto, stun and the rate techniques (police-150k, stall-16k, police-sni) are
    # judged in test_protocols.py, with configs that point the downloads at the lab's object.
}


# Checks that run earlier stages themselves, per host (tests/lab/protocols.py, probe/checks/).
COMPOSITE = {"whatsapp_chat": ("dns", "tcp")}


def touched(target: LabTarget, stage: str) -> bool:
    checks = [*target.checks, *(s for c in target.checks for s in COMPOSITE.get(c, ()))]
    if stage == "dns":
        return "dns" in checks and not target.is_ip and not target.pinned
    if stage == "tcp":
        return "tcp" in checks
    if stage == "tls":
        return "tls" in checks
    if stage == "http":  # plain HTTP: the engine speaks HTTP without TLS only where no tls check runs
        return "http" in checks and "tls" not in checks
    return stage in checks  # the protocol checks: quic, mtproto, whatsapp_chat, throughput


@dataclass
class Case:
    scenario: str
    service: str

    @property
    def id(self) -> str:
        return f"{self.scenario}-{self.service}"


def _cases() -> list[Case]:
    from .plan import load_plan

    plan = load_plan()
    cases = []
    for scenario, stage in STAGE.items():
        for service in SERVICES:
            if any(touched(t, stage) for t in plan.targets if t.catalog == service):
                cases.append(Case(scenario, service))
    return cases


CASES = _cases()
_reports: dict[str, Report] = {}


@pytest.fixture
def report_for(clean_lab: Lab):
    """scenario -> the report of one round with it on for every service (cached per session)."""

    def get(scenario: str) -> Report:
        if scenario not in _reports:
            clean_lab.scenario(scenario, True, list(SERVICES))
            try:
                _reports[scenario] = once(clean_lab)
            finally:
                clean_lab.scenario(scenario, False)
        return _reports[scenario]

    return get


def _dump(target: dict) -> str:
    return json.dumps(target, indent=1, ensure_ascii=False)[:4000]


def _seen(report: Report, service: str, targets: list[LabTarget]) -> str:
    """What the touched targets got, e.g. `sni_blocked:connection_reset`, for docs/lab.md."""
    seen = set()
    for target in targets:
        got = report.target(service, target.name)
        failure = Report.failed_check(got)["failure"] if got["verdict"] != "ok" else ""
        seen.add(f"{got['verdict']}:{failure}" if failure else got["verdict"])
    return ", ".join(sorted(seen))


def _resolver(check: dict, address: str) -> dict:
    for answer in check["resolvers"]:
        if answer["resolver"] == address:
            return answer
    raise AssertionError(f"no answer from {address} in {check['resolvers']}")


def assert_evidence(scenario: str, lab: Lab, target: LabTarget, got: dict) -> None:
    """The failing check is the one the technique acts on, with the right failure and evidence."""
    spec = SCENARIOS[scenario]
    stage = STAGE[scenario]
    check = Report.failed_check(got)
    context = f"{scenario} {target.catalog}/{target.name}:\n{_dump(got)}"
    if stage in COMPOSITE.get(check["check"], ()):  # per-host evidence: a blocked host failed at this stage
        hosts = [h for h in check["hosts"] if h["verdict"] == spec.expected]
        assert hosts and all(h["stage"] == stage and h["failure"] == spec.failure for h in hosts), context
        return
    # Where the lab serves it: the IPv4 addresses and their IPv6 twins (AAAA records; the vantage
    # reaches its controls over IPv6, so the engine resolves, connects and handshakes on both).
    real = [*target.lab_addresses, *(twin for a in target.lab_addresses if (twin := lab.plan.twin6(a)) is not None)]
    if scenario == "dns-forged" and check["check"] == "tcp":
        # A service with no expected networks (Signal, on shared clouds): the answer alone proves
        # nothing, so the proof is at the connect stage: every forged address fails and the
        # control resolver's addresses connect.
        assert check["failure"] == spec.failure and got["verdict"] == "dns_tampered", context
        assert {c["address"] for c in check["connects"]} == {FORGED}, context
        assert all(c["failure"] is not None for c in check["connects"]), context
        assert any(c["failure"] is None and c["address"] in real for c in check["control_connects"]), context
        dns = next(c for c in got["checks"] if c["check"] == "dns")
        assert _resolver(dns, ISP_RESOLVER)["addresses"] == [FORGED], context
        return
    assert check["check"] == stage, context
    assert check["failure"] == spec.failure, context

    if stage == "dns":
        isp, control = _resolver(check, ISP_RESOLVER), _resolver(check, f"tls://{CONTROL_RESOLVER}")
        forged = {"dns-forged": FORGED, "dns-bogon": BOGON_FORGED, "dns-blockpage": BLOCKPAGE}.get(scenario)
        if forged:
            assert isp["addresses"] == [forged], context
        else:
            assert isp["addresses"] == [] and isp["failure"] == spec.failure, context
        if scenario == "global-outage":
            assert control["addresses"] == [] and control["failure"] == "dns_nxdomain_error", context
        else:
            assert control["addresses"] == real and control["failure"] is None, context
    elif stage == "tcp":
        connects = check["connects"]
        assert connects and all(c["failure"] == spec.failure for c in connects), context
        assert sorted({c["address"] for c in connects}) == sorted(real), context
        assert sorted({c["port"] for c in connects}) == sorted(target.ports), context
    elif stage == "tls":
        if scenario.startswith("sni-"):
            assert check["decoy"]["failure"] is None and check["decoy"]["sni"] == "example.org", context
            assert check["decoy"]["address"] in real, context
        elif scenario == "tls-rst":
            assert check["decoy"]["failure"] is not None, context
        elif scenario == "tls-mitm":
            assert "Lab Censor" in check["certificate"]["issuer"], context  # the untrusted MITM CA
        elif scenario == "tls-mitm-wrongname":
            assert check["certificate"]["dns_names"] == ["mitm.lab.test"], context
            assert "msgreach lab CA" in check["certificate"]["issuer"], context
    elif stage == "http":
        if scenario == "http-redirect":
            assert check["status_code"] == 302, context
            assert [urlsplit(r["location"]).hostname for r in check["redirects"]] == ["warning.rt.ru"], context
            assert check["blockpage"]["kind"] == "redirect", context
        elif scenario == "http-451":
            assert check["status_code"] == 451 and check["blockpage"]["kind"] == "status", context
        else:
            assert check["blockpage"] == {"kind": "body", "match": "Доступ к ресурсу ограничен"}, context
    elif stage == "whatsapp_chat":
        for host in check["hosts"]:
            assert host["verdict"] == "protocol_blocked" and host["exchanges"], context
            assert all(c["failure"] is None for c in host.get("connects", [])), context  # TCP itself works
            assert all(e["stage"] == "first_bytes" for e in host["exchanges"]), context


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matrix(clean_lab: Lab, report_for, case: Case) -> None:
    lab = clean_lab
    spec = SCENARIOS[case.scenario]
    report = report_for(case.scenario)
    assert report.vantage["verdict"] == "ok", report.summary()
    stage = STAGE[case.scenario]
    targets = [t for t in lab.plan.targets if t.catalog == case.service]
    hit = [t for t in targets if touched(t, stage)]
    problems = []
    for target in targets:
        got = report.target(case.service, target.name)
        want = spec.expected if target in hit else "ok"
        if got["verdict"] != want:
            problems.append(f"{target.name}: {got['verdict']} ({got.get('reason')}), expected {want}:\n{_dump(got)}")
        elif target in hit:
            try:
                assert_evidence(case.scenario, lab, target, got)
            except AssertionError as exc:
                problems.append(str(exc))
    service = report.service(case.service)["verdict"]
    if spec.expected == "down":
        want_service = "down" if len(hit) == len(targets) else None  # down + ok mixed: not asserted
    else:
        want_service = spec.expected if len(hit) == len(targets) else "partial"
    if want_service is not None and service != want_service:
        problems.append(f"service verdict {service}, expected {want_service}")
    record(case.scenario, case.service, want_service or spec.expected, report, service, _seen(report, case.service, hit))
    assert not problems, f"{case.id}:\n" + "\n".join(problems)


def test_baseline_everything_ok(lab: Lab, baseline: Report) -> None:
    """No censorship: every control, every target of every service `ok`, all checks passed."""
    assert baseline.vantage["verdict"] == "ok", baseline.summary()
    for control in baseline.controls():
        assert control["verdict"] == "ok", _dump(control)
    for service, target in baseline.all_targets():
        assert target["verdict"] == "ok", f"{service}: {_dump(target)}"
        assert all(c["ok"] for c in target["checks"]), _dump(target)
    for service in SERVICES:
        assert baseline.service(service)["verdict"] == "ok", baseline.summary()
    # The lab config only swapped resolvers and pins: every catalog target is measured.
    assert {(t.catalog, t.name) for t in lab.plan.targets if t.catalog in SERVICES} == {
        (s, t["target"]) for s, t in baseline.all_targets()
    }
    record("(none)", "all", "ok", baseline, baseline.service("whatsapp")["verdict"])


@pytest.mark.parametrize(
    "scenario, selector, service, target",
    [
        ("syn-drop", "whatsapp/registration", "whatsapp", "registration"),  # web and web-http share an address
        ("sni-rst", "signal/cdn", "signal", "cdn"),
        ("dns-nxdomain", "telegram/t-me", "telegram", "t-me"),
    ],
)
def test_partial_when_one_target_is_blocked(clean_lab: Lab, scenario: str, selector: str, service: str, target: str) -> None:
    lab = clean_lab
    lab.scenario(scenario, True, [selector])
    report = once(lab, services=[service])
    got = report.target(service, target)
    assert got["verdict"] == SCENARIOS[scenario].expected, _dump(got)
    others = [t for t in report.service(service)["targets"] if t["target"] != target]
    assert others and all(t["verdict"] == "ok" for t in others), report.summary()
    assert report.service(service)["verdict"] == "partial", report.summary()
    record(scenario, selector, "partial", report, report.service(service)["verdict"])


def test_global_outage_is_down_not_blocked(clean_lab: Lab) -> None:
    """Meta, October 2021: the names vanish for everyone. The control resolver agrees: `down`."""
    lab = clean_lab
    lab.scenario("global-outage", True, ["whatsapp"])
    report = once(lab, services=["whatsapp"])
    assert report.service("whatsapp")["verdict"] == "down", report.summary()
    for target in report.service("whatsapp")["targets"]:
        check = Report.failed_check(target)
        assert target["verdict"] == "down" and check["failure"] == "dns_nxdomain_error", _dump(target)
        if check["check"] == "dns":
            assert check.get("control_agrees") is True, _dump(target)
        else:  # a check that resolves its own host list (whatsapp_chat): every host is down
            assert check["hosts"] and all(h["verdict"] == "down" and h["stage"] == "dns" for h in check["hosts"]), _dump(target)
    record("global-outage", "whatsapp", "down", report, report.service("whatsapp")["verdict"])


def test_uplink_cut_is_vantage_offline_and_nothing_else(clean_lab: Lab) -> None:
    lab = clean_lab
    lab.scenario("uplink-cut", True)
    report = once(lab)
    assert report.vantage["verdict"] == "vantage_offline", report.summary()
    for control in report.controls():
        assert control["verdict"] != "ok", _dump(control)
    for service in SERVICES:
        assert report.service(service)["verdict"] == "vantage_offline", report.summary()
    for service, target in report.all_targets():
        assert target["verdict"] == "vantage_offline", f"{service}: {_dump(target)}"
    record("uplink-cut", "(all)", "vantage_offline", report, report.vantage["verdict"])


def test_zz_every_stored_verdict_is_judged_again_the_same(lab: Lab) -> None:
    """The evidence archive of every round this session ran (the matrix's scenarios cover every
    verdict) read again by the judge (`msgreach evidence --rejudge`): every verdict reproduced."""
    archive = lab.dir / "evidence.jsonl"
    assert archive.exists(), "the lab config archives every round"
    completed = subprocess.run([*lab.msgreach_argv(), "evidence", "--rejudge", "--path", str(archive)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    from probe.evidence import read

    stored = {str(line.get("verdict")) for line in read(archive).records}
    expected = {SCENARIOS[scenario].expected for scenario in _reports}
    assert expected <= stored, f"the archive lacks {expected - stored}"
    record("(rejudge)", "every round", "reproduced", None, completed.stdout.strip().splitlines()[-1])
