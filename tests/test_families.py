"""IPv4 and IPv6 apart (issue 20, item 6): where a control reached IPv6 this round, a target's
families are judged on their own; a family every address of which fails is named (`ip_blocked`,
reason `family_blocked`), not averaged away by the other; `msgreach_target_family_reachable`
says it per family. Against the lab's censor (SYNs of one family dropped):
tests/lab/test_families.py."""

from __future__ import annotations

from prometheus_client import generate_latest

from probe import judge
from probe.config import load
from probe.evidence.records import record
from probe.evidence.rejudge import rejudge
from probe.judge.analysis import RoundFacts, analyse
from probe.metrics import State, registry_for
from probe.model import ServiceResult, TargetResult, TCPConnect, TCPEvidence, VantageResult, VantageVerdict, Verdict

V4, V6 = "198.19.1.10", "fd00:198:19:1::10"
TIMEOUT = "generic_timeout_error"


def _tcp(v4_ok: bool, v6_ok: bool, *, ipv6: bool) -> TargetResult:
    evidence = TCPEvidence([TCPConnect(V4, 443, None if v4_ok else TIMEOUT), TCPConnect(V6, 443, None if v6_ok else TIMEOUT)])
    check = analyse("tcp", evidence, RoundFacts(healthy_resolvers=frozenset(), ipv6=ipv6))
    verdict = judge.judge_attempt([check], cut=False)
    return TargetResult("whatsapp", "web", "web.whatsapp.com", verdict.verdict, [check], verdict.reason, reasons=verdict.reasons)


def test_one_family_failing_is_named_where_the_vantage_has_both() -> None:
    for v4_ok, v6_ok, family in ((True, False, "ipv6"), (False, True, "ipv4")):
        target = _tcp(v4_ok, v6_ok, ipv6=True)
        assert target.verdict == Verdict.IP_BLOCKED, target.reason
        assert f"every {family} address fails while" in target.reason and "other_family" in target.reason, target.reason
        assert target.checks[0].failure == TIMEOUT


def test_a_server_that_refuses_on_one_family_is_not_called_blocked() -> None:
    """A quirky server: an AAAA published, nothing listening on IPv6 (its own refusal, a RST to
    the SYN): the other family connects, the target is ok."""
    evidence = TCPEvidence([TCPConnect(V4, 443), TCPConnect(V6, 443, "connection_refused")])
    check = analyse("tcp", evidence, RoundFacts(healthy_resolvers=frozenset(), ipv6=True))
    assert check.ok and judge.judge_attempt([check], cut=False).verdict == Verdict.OK


def test_without_ipv6_at_the_vantage_or_with_both_families_up_nothing_changes() -> None:
    assert _tcp(True, False, ipv6=False).verdict == Verdict.OK  # the vantage reached no control over IPv6
    assert _tcp(True, True, ipv6=True).verdict == Verdict.OK
    both = _tcp(False, False, ipv6=True)
    assert both.verdict == Verdict.IP_BLOCKED and "every expected address" in both.reason, both.reason  # as before


def test_the_family_is_a_metric_and_the_fact_is_archived_for_rejudge() -> None:
    target = _tcp(True, False, ipv6=True)
    result = VantageResult("lab", VantageVerdict.OK, [ServiceResult("whatsapp", target.verdict, [target])], [], 1.7e9, 1.0, ipv6=True)
    state = State(load("configs/default.yaml"))
    state.record(result)
    text = generate_latest(registry_for(state)).decode()
    assert 'msgreach_target_family_reachable{family="ipv4",service="whatsapp",target="web",vantage="lab"} 1.0' in text
    assert 'msgreach_target_family_reachable{family="ipv6",service="whatsapp",target="web",vantage="lab"} 0.0' in text
    line = record(result, "whatsapp", str(target.verdict), target)
    assert line["round_facts"]["ipv6"] is True
    assert rejudge([line]).differences == []
    line["round_facts"]["ipv6"] = False  # read as a vantage without IPv6: the v4 connect suffices
    assert [(d.level, d.rejudged) for d in rejudge([line]).differences] == [("target", "ok"), ("service", "ok")]


def test_the_page_steps_name_the_other_family_as_the_differential() -> None:
    from probe.status_steps import explain

    explanation = explain(_tcp(True, False, ipv6=True))
    assert explanation.why[-1].key == "diff.other_family.path", explanation.why
    assert any(r.key == "family_blocked" for r in explanation.note), explanation.note
