"""Allowlists characterised (issue 20, item 5): the judge reads the `allowlist_probe` controls
into what the allowlist follows, per address family, and says it in both of the page's
languages. Against the lab's censors (by name, by address, by both, on IPv4 only):
tests/lab/test_allowlist_key.py."""

from __future__ import annotations

import pytest

from probe import judge
from probe.judge.analysis import RoundFacts, analyse
from probe.judge.verdicts import ALLOWLIST_PROBES
from probe.model import AllowlistEvidence, AllowlistFamily, TargetResult, TCPConnect, TCPEvidence, TLSHandshake, VantageVerdict, Verdict
from probe.reasons import render
from probe.status_texts import REASONS

FACTS = RoundFacts(control_target=True)
V4, V6 = "198.19.9.10", "fd00:198:19:9::10"
RESET = "connection_reset"


def _handshake(address: str, passed: bool) -> TLSHandshake:
    return TLSHandshake(address, 443, "x", None if passed else RESET, received_bytes=None if passed else 0)


def _probe(kind: str, v4: list[bool], v6: list[bool] | None = None) -> TargetResult:
    handshakes = [h for i in range(len(v4)) for h in (_handshake(V4, v4[i]), *([_handshake(V6, v6[i])] if v6 else []))]
    check = analyse("allowlist", AllowlistEvidence(kind, None, handshakes), FACTS)
    verdict = judge.judge_attempt([check], cut=False)
    result = TargetResult("controls", kind, "h", verdict.verdict, [check], verdict.reason, reasons=verdict.reasons)
    result.control_class = "allowlist_probe"
    return result


def _site(name: str, kind: str, ok: bool) -> tuple[str, TargetResult]:
    evidence = TCPEvidence([TCPConnect(V4, 443, None if ok else RESET)])
    check = analyse("tcp", evidence, FACTS)
    verdict = judge.judge_attempt([check], cut=False)
    return kind, TargetResult("controls", name, name, verdict.verdict, [check], verdict.reason)


ALLOWLIST = [_site("domestic", "domestic", True), _site("international", "international", False)]


@pytest.mark.parametrize(
    ("passes", "keyed_on"),
    [
        ((True, False, False), "name"),
        ((False, True, True), "address"),
        ((False, False, False), "name_and_address"),
        ((True, True, True), "open"),
        ((True, True, False), None),  # no allowlist the three probes describe: no claim
    ],
)
def test_the_three_probes_tell_names_from_addresses(passes: tuple[bool, bool, bool], keyed_on: str | None) -> None:
    probes = [_probe(kind, [p, p]) for kind, p in zip(ALLOWLIST_PROBES, passes, strict=True)]
    judgement = judge.judge_vantage([*ALLOWLIST, *(("allowlist_probe", p) for p in probes)])
    assert judgement.verdict == VantageVerdict.ALLOWLIST
    assert [(k.family, k.keyed_on) for k in judgement.allowlist] == [("ipv4", keyed_on)]
    keyed = [r for r in judgement.reasons if r.key == "allowlist_keyed"]
    assert len(keyed) == (keyed_on is not None)
    for reason in keyed:
        assert render(reason).startswith("on ipv4 the allowlist ")
        assert REASONS["ru"]["allowlist_keyed"].format(family="ipv4", keyed_on=REASONS["ru"][f"keyed_on_{keyed_on}"]).startswith("по ipv4")


def test_each_family_is_read_on_its_own() -> None:
    """By name on IPv4, open on IPv6 (the lab's `allowlist-ipv4`)."""
    probes = [
        _probe(ALLOWLIST_PROBES[0], [True, True], [True, True]),
        _probe(ALLOWLIST_PROBES[1], [False, False], [True, True]),
        _probe(ALLOWLIST_PROBES[2], [False, False], [True, True]),
    ]
    judgement = judge.judge_vantage([*ALLOWLIST, *(("allowlist_probe", p) for p in probes)])
    assert [(k.family, k.keyed_on) for k in judgement.allowlist] == [("ipv4", "name"), ("ipv6", "open")]
    assert judgement.allowlist[0].as_json() == {
        "family": "ipv4", "keyed_on": "name",
        "probes": {"domestic_name_foreign_address": "passed", "foreign_name_domestic_address": "stopped", "domestic_address_no_name": "stopped"},
    }


def test_tries_that_disagree_claim_nothing() -> None:
    """A lossy line: one try of a probe passes, the other is stopped: no key on that family."""
    probes = [_probe(ALLOWLIST_PROBES[0], [True, False]), _probe(ALLOWLIST_PROBES[1], [False, False]), _probe(ALLOWLIST_PROBES[2], [False, False])]
    judgement = judge.judge_vantage([*ALLOWLIST, *(("allowlist_probe", p) for p in probes)])
    assert judgement.allowlist == (AllowlistFamily("ipv4", None, tuple(zip(ALLOWLIST_PROBES, ("mixed", "stopped", "stopped"), strict=True))),)
    assert not [r for r in judgement.reasons if r.key == "allowlist_keyed"]


def test_a_server_that_answers_with_an_alert_passed_the_censor() -> None:
    """A foreign name at a domestic server: its alert (bytes came back) is the server's, not a stop."""
    alert = TLSHandshake(V4, 443, "x", "ssl_failed_handshake", received_bytes=7)
    check = analyse("allowlist", AllowlistEvidence(ALLOWLIST_PROBES[1], "www.microsoft.com", [alert, alert]), FACTS)
    assert check.ok


def test_probes_never_make_a_vantage_online_and_are_ignored_outside_an_allowlist() -> None:
    passing = [("allowlist_probe", _probe(kind, [True])) for kind in ALLOWLIST_PROBES]
    offline = [_site("domestic", "domestic", False), _site("international", "international", False)]
    assert judge.judge_vantage([*offline, *passing]).verdict == VantageVerdict.VANTAGE_OFFLINE
    online = [_site("international", "international", True)]
    judgement = judge.judge_vantage([*online, *passing])
    assert judgement.verdict == VantageVerdict.OK and judgement.allowlist == ()
    stopped = _probe(ALLOWLIST_PROBES[2], [False, False])
    assert stopped.verdict != Verdict.OK and "a domestic address with no name" in stopped.reason, stopped.reason


def test_the_page_says_what_the_allowlist_follows_in_both_languages() -> None:
    from probe.model import VantageResult
    from probe.status_causes import cause_of
    from probe.status_texts import words

    probes = [_probe(kind, [p, p]) for kind, p in zip(ALLOWLIST_PROBES, (False, True, True), strict=True)]
    judgement = judge.judge_vantage([*ALLOWLIST, *(("allowlist_probe", p) for p in probes)])
    controls = [t for _, t in ALLOWLIST] + probes
    result = VantageResult("v", judgement.verdict, [], controls, 1.7e9, 1.0, reasons=judgement.reasons, allowlist=list(judgement.allowlist))
    cause = cause_of(result, {"domestic": "domestic", "international": "international", **{p.target: "allowlist_probe" for p in probes}})
    assert cause is not None and cause.kind == "allowlist" and len(cause.keyed) == 1
    assert words(cause.keyed[0], "en") == "on ipv4 the allowlist follows addresses (anything to a domestic address passes, a domestic name abroad does not)"
    assert words(cause.keyed[0], "ru").startswith("по ipv4 белый список следует адресам"), words(cause.keyed[0], "ru")
    assert result.as_json()["allowlist"] == [a.as_json() for a in judgement.allowlist]
