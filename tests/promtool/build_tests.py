#!/usr/bin/env python3
"""Builds the promtool unit tests of the alert rules from readable verdict timelines.

A scenario says, per vantage and service, what msgreach reported round after round, e.g.
``"ok*30 ip_blocked*30 ok*21"`` (30 rounds ok, then 30 rounds ip_blocked, ...). This script
expands it into exactly what a Prometheus scraping msgreach would store: the full contract
state set of ``msgreach_service_verdict`` (one series per verdict, exactly one at 1),
``msgreach_service_reachable_ratio``, ``msgreach_vantage_online``, ``msgreach_vantage_info``,
``msgreach_last_round_timestamp_seconds`` and ``msgreach_rounds_total``, with the ``job`` and
``instance`` labels a scrape adds. It writes ``tests/promtool/*_test.yml``; `promtool test rules`
runs them (tests/test_prometheus_rules.py does, and checks the files are not stale).

Expected alerts are written in full: labels and templated annotations (summary, description,
dashboard); runbooks are static text and are taken from the rule file.

    python tests/promtool/build_tests.py          # rewrite
    python tests/promtool/build_tests.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RULES = {
    "default": ROOT / "configs" / "prometheus" / "rules" / "msgreach.yml",
    "fast": ROOT / "configs" / "prometheus" / "fast-profile" / "msgreach.yml",
}

# The contract's service verdicts (docs: /CONTRACT.md "Verdicts").
VERDICTS = (
    "dns_blocked", "dns_tampered", "ip_blocked", "sni_blocked", "tls_blocked", "tls_mitm",
    "http_blocked", "protocol_blocked", "quic_blocked", "udp_blocked", "throttled",
    "partial", "down", "vantage_offline", "ok",
)
RATIO = {"ok": 1.0, "partial": 0.5}  # msgreach_service_reachable_ratio; 0 otherwise


def expand(timeline: str) -> list[str]:
    out: list[str] = []
    for run in timeline.split():
        verdict, _, count = run.partition("*")
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r} in {timeline!r}")
        out += [verdict] * int(count or 1)
    return out


def compact(values: list[float | str]) -> str:
    """promtool's series notation: runs of a constant value as `vxN`, 'stale' as is."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        v = values[i]
        text = v if isinstance(v, str) else f"{v:g}"
        parts.append(text if j == i else f"{text}x{j - i}")
        i = j + 1
    return " ".join(parts)


@dataclass
class Vantage:
    name: str
    country: str
    asn: str
    network: str
    services: dict[str, str]
    extra_info: dict[str, str] = field(default_factory=dict)  # e.g. role="control" from relabelling
    stuck_after: int | None = None  # rounds stop arriving after this many (the process hangs)
    dies_after: int | None = None  # the target stops being scraped after this many samples

    def series(self, step_seconds: int) -> list[dict]:
        timelines = {s: expand(t) for s, t in self.services.items()}
        n = max(len(t) for t in timelines.values())
        for s, t in timelines.items():
            if len(t) != n:
                raise ValueError(f"{self.name}/{s}: {len(t)} samples, others have {n}")
        base = f'job="msgreach",instance="{self.name}:9910",vantage="{self.name}"'

        def cut(values: list) -> list:
            if self.dies_after is None:
                return values
            return values[: self.dies_after] + ["stale"]

        online = [0 if all(timelines[s][i] == "vantage_offline" for s in timelines) else 1 for i in range(n)]
        rounds = list(range(1, n + 1))
        if self.stuck_after is not None:
            rounds = rounds[: self.stuck_after] + [self.stuck_after] * (n - self.stuck_after)
        info_labels = {"country": self.country, "asn": self.asn, "network": self.network, **self.extra_info}
        info = ",".join(f'{k}="{v}"' for k, v in info_labels.items())
        out = [
            {"series": f"msgreach_vantage_info{{{base},{info}}}", "values": compact(cut([1] * n))},
            {"series": f"msgreach_vantage_online{{{base}}}", "values": compact(cut(online))},
            {"series": f"msgreach_rounds_total{{{base}}}", "values": compact(cut(rounds))},
            {
                "series": f"msgreach_last_round_timestamp_seconds{{{base}}}",
                "values": compact(cut([(r - 1) * step_seconds for r in rounds])),  # round r ended at sample r-1
            },
        ]
        for s, t in timelines.items():
            for verdict in VERDICTS:
                values = [1 if v == verdict else 0 for v in t]
                out.append({"series": f'msgreach_service_verdict{{{base},service="{s}",verdict="{verdict}"}}', "values": compact(cut(values))})
            out.append({"series": f'msgreach_service_reachable_ratio{{{base},service="{s}"}}', "values": compact(cut([RATIO.get(v, 0.0) for v in t]))})
        return out


def runbooks(profile: str) -> dict[str, str]:
    groups = yaml.safe_load(RULES[profile].read_text())["groups"]
    return {r["alert"]: r["annotations"]["runbook"] for g in groups for r in g["rules"] if "alert" in r}


# --- expected alerts: labels plus the templated annotations, stated independently of the rules ---

def place(v: Vantage) -> dict[str, str]:
    return {"vantage": v.name, "country": v.country, "asn": v.asn, "network": v.network}


def sudden(rb, v: Vantage, service: str, technique: str, window="5m", lookback="6h", rounds=3) -> dict:
    return {
        "exp_labels": {"severity": "critical", "category": "block", **place(v), "service": service, "technique": technique},
        "exp_annotations": {
            "summary": f"{service} blocked from {v.name} ({v.country} AS{v.asn}) by {technique}",
            "description": f"{service} was reachable from vantage {v.name} ({v.network}) within the last {lookback}; for at least {window} and {rounds} consecutive rounds every verdict has been a block. Current technique: {technique}.",
            "runbook": rb["MsgreachSuddenBlock"],
            "dashboard": f"/d/msgreach-service?var-service={service}&var-vantage={v.name}",
        },
    }


def wide(rb, service: str, count: int, country: str, asn: str | None = None, network: str | None = None) -> dict:
    if asn is None:
        labels = {"severity": "critical", "category": "block", "scope": "country", "country": country, "service": service}
        summary = f"{service} blocked from {count} vantages in {country}"
        description = f"{count} vantages in {country} have given {service} a block verdict at every scrape for 5m."
    else:
        labels = {"severity": "critical", "category": "block", "scope": "asn", "country": country, "asn": asn, "service": service}
        summary = f"{service} blocked from {count} vantages in AS{asn} ({country})"
        description = f"{count} vantages in AS{asn} have given {service} a block verdict at every scrape for 5m."
    return {
        "exp_labels": labels,
        "exp_annotations": {
            "summary": summary,
            "description": description,
            "runbook": rb["MsgreachWideBlock"],
            "dashboard": f"/d/msgreach-overview?var-country={country}&var-service={service}",
        },
    }


def technique_change(rb, v: Vantage, service: str, previous: str, technique: str) -> dict:
    return {
        "exp_labels": {"severity": "warning", "category": "block", **place(v), "service": service, "technique": technique, "previous_technique": previous},
        "exp_annotations": {
            "summary": f"{service} at {v.name}: {previous} -> {technique}",
            "description": f"At vantage {v.name} ({v.country} AS{v.asn}) the block of {service} changed from {previous} to {technique} (each sustained for 5m).",
            "runbook": rb["MsgreachTechniqueChange"],
            "dashboard": f"/d/msgreach-service?var-service={service}&var-vantage={v.name}",
        },
    }


def offline(rb, v: Vantage) -> dict:
    return {
        "exp_labels": {"severity": "warning", "category": "vantage", **place(v)},
        "exp_annotations": {
            "summary": f"Vantage {v.name} ({v.country} AS{v.asn}) is offline",
            "description": "msgreach_vantage_online has been 0 for 3m: the vantage cannot reach its control sites; no verdict from it means anything.",
            "runbook": rb["MsgreachVantageOffline"],
            "dashboard": f"/d/msgreach-vantage?var-vantage={v.name}",
        },
    }


def silent(rb, v: Vantage, age: str) -> dict:
    return {
        "exp_labels": {"severity": "warning", "category": "vantage", **place(v)},
        "exp_annotations": {
            "summary": f"Vantage {v.name} ({v.country}) sent no round for {age}",
            "description": f"The newest msgreach_last_round_timestamp_seconds of {v.name} is {age} old.",
            "runbook": rb["MsgreachVantageSilent"],
            "dashboard": f"/d/msgreach-vantage?var-vantage={v.name}",
        },
    }


def at_control(rb, service: str) -> dict:
    return {
        "exp_labels": {"severity": "info", "category": "outage", "service": service},
        "exp_annotations": {
            "summary": f"{service} fails at a control vantage: block alerts for it are suppressed",
            "description": f"{service} failed at a control vantage during at least 50% of the last 5m; it is probably down for everyone.",
            "runbook": rb["MsgreachServiceFailingAtControl"],
            "dashboard": f"/d/msgreach-service?var-service={service}",
        },
    }


ALERTS = (
    "MsgreachSuddenBlock", "MsgreachWideBlock", "MsgreachTechniqueChange", "MsgreachVantageOffline",
    "MsgreachVantageSilent", "MsgreachServiceFailingAtControl",
)


def expect(eval_time: str, **alerts: list[dict]) -> list[dict]:
    """One alert_rule_test per alert name at ``eval_time``: the named ones with the given alerts,
    every other alert explicitly silent."""
    unknown = set(alerts) - set(ALERTS)
    if unknown:
        raise ValueError(f"unknown alerts {unknown}")
    return [{"eval_time": eval_time, "alertname": name, "exp_alerts": alerts.get(name, [])} for name in ALERTS]


def test(name: str, vantages: list[Vantage], checks: list[list[dict]], promql: list[dict] | None = None, interval="1m") -> dict:
    step = {"1m": 60, "1s": 1}[interval]
    series = [s for v in vantages for s in v.series(step)]
    out = {"name": name, "interval": interval, "input_series": series, "alert_rule_test": [c for group in checks for c in group]}
    if promql:
        out["promql_expr_test"] = promql
    return out


# --- the scenarios (default profile: rounds every minute, one scrape per round) -------------------

RU1 = dict(name="ru-1", country="RU", asn="12389", network="Rostelecom")
RU2 = dict(name="ru-2", country="RU", asn="12389", network="Rostelecom")
RU3 = dict(name="ru-3", country="RU", asn="8359", network="MTS")
KZ1 = dict(name="kz-1", country="KZ", asn="9198", network="Kazakhtelecom")
NL_CTL = dict(name="nl-ctl", country="NL", asn="1136", network="KPN")
DE_CTL = dict(name="de-ctl", country="DE", asn="3320", network="DTAG")


def default_tests() -> list[dict]:
    rb = runbooks("default")
    tests = []

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked*30 ok*21", "telegram": "ok*81"})
    tests.append(test(
        "sudden block: fires once blocked at every round for 5m, labelled with the technique; resolves when lifted",
        [ru1],
        [
            expect("34m"),  # 5 blocked rounds, but the window still holds the last ok one
            expect("35m", MsgreachSuddenBlock=[sudden(rb, ru1, "whatsapp", "ip_blocked")]),
            expect("59m", MsgreachSuddenBlock=[sudden(rb, ru1, "whatsapp", "ip_blocked")]),
            expect("60m"),  # the first ok round resolves it
        ],
        promql=[{
            "expr": "vantage_service:msgreach_block_sustained:bool",
            "eval_time": "40m",
            "exp_samples": [
                {"labels": 'vantage_service:msgreach_block_sustained:bool{vantage="ru-1",service="whatsapp",country="RU",asn="12389",network="Rostelecom"}', "value": 1},
                {"labels": 'vantage_service:msgreach_block_sustained:bool{vantage="ru-1",service="telegram",country="RU",asn="12389",network="Rostelecom"}', "value": 0},
            ],
        }, {
            "expr": "vantage_service_technique:msgreach_block:active",
            "eval_time": "40m",
            "exp_samples": [
                {"labels": 'vantage_service_technique:msgreach_block:active{vantage="ru-1",service="whatsapp",technique="ip_blocked",country="RU",asn="12389",network="Rostelecom"}', "value": 1},
            ],
        }],
    ))

    tests.append(test(
        "a single failed round never alerts",
        [Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked ok*50", "telegram": "ok*30 throttled*2 ok*49"})],
        [expect("31m"), expect("32m"), expect("35m"), expect("36m"), expect("50m")],
    ))

    tests.append(test(
        "down (the engine saw the control fail the same way) is not a block",
        [Vantage(**RU1, services={"whatsapp": "ok*30 down*40", "telegram": "ok*30 down*20 ok*20"})],
        [expect("36m"), expect("50m"), expect("69m")],
    ))

    flapping = " ".join(["ip_blocked ok vantage_offline"] * 10)  # a lossy Wi-Fi: block, ok, offline, ...
    tests.append(test(
        "a flapping lossy link (block, ok and offline rounds in turn) never alerts",
        [Vantage(**RU1, services={"whatsapp": f"ok*30 {flapping} ok*11", "telegram": f"ok*30 {flapping.replace('ip_blocked', 'tls_blocked')} ok*11"})],
        [expect("35m"), expect("42m"), expect("50m"), expect("59m"), expect("65m")],
    ))

    off = Vantage(**RU1, services={"whatsapp": "ok*30 vantage_offline*30 ok*11", "telegram": "ok*30 vantage_offline*30 ok*11"})
    tests.append(test(
        "an offline vantage raises only MsgreachVantageOffline (after 3m), never a block",
        [off],
        [
            expect("32m"),
            expect("33m", MsgreachVantageOffline=[offline(rb, off)]),
            expect("45m", MsgreachVantageOffline=[offline(rb, off)]),
            expect("59m", MsgreachVantageOffline=[offline(rb, off)]),
            expect("60m"),
            expect("66m"),
        ],
    ))

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked*40", "telegram": "ok*30 dns_blocked*40"})
    ru3 = Vantage(**RU3, services={"whatsapp": "ok*30 tls_blocked*40", "telegram": "ok*70"})
    nl = Vantage(**NL_CTL, extra_info={"role": "control"}, services={"whatsapp": "ok*30 ip_blocked*40", "telegram": "ok*70"})
    de = Vantage(**DE_CTL, extra_info={"control": "true"}, services={"whatsapp": "ok*70", "telegram": "ok*30 down*40"})
    tests.append(test(
        "a service failing everywhere including at a control vantage is an outage: no block alert, one info",
        [ru1, ru3, nl, de],
        [
            expect("32m"),
            expect("36m", MsgreachServiceFailingAtControl=[at_control(rb, "telegram"), at_control(rb, "whatsapp")]),
            expect("50m", MsgreachServiceFailingAtControl=[at_control(rb, "telegram"), at_control(rb, "whatsapp")]),
        ],
        promql=[{
            "expr": "vantage:msgreach_info:last",
            "eval_time": "50m",
            "exp_samples": [
                {"labels": 'vantage:msgreach_info:last{vantage="ru-1",country="RU",asn="12389",network="Rostelecom"}', "value": 1},
                {"labels": 'vantage:msgreach_info:last{vantage="ru-3",country="RU",asn="8359",network="MTS"}', "value": 1},
                {"labels": 'vantage:msgreach_info:last{vantage="nl-ctl",country="NL",asn="1136",network="KPN",role="control"}', "value": 1},
                {"labels": 'vantage:msgreach_info:last{vantage="de-ctl",country="DE",asn="3320",network="DTAG",role="control"}', "value": 1},
            ],
        }, {
            "expr": "service:msgreach_vantages_blocked:sum",
            "eval_time": "50m",
            "exp_samples": [  # control vantages are not counted
                {"labels": 'service:msgreach_vantages_blocked:sum{service="whatsapp"}', "value": 2},
                {"labels": 'service:msgreach_vantages_blocked:sum{service="telegram"}', "value": 1},
            ],
        }],
    ))

    ru1 = Vantage(**RU1, services={"telegram": "ok*30 sni_blocked*40"})
    ru2 = Vantage(**RU2, services={"telegram": "ok*30 partial*40"})  # partial is a block too
    ru3 = Vantage(**RU3, services={"telegram": "ok*70"})
    kz1 = Vantage(**KZ1, services={"telegram": "ok*30 ip_blocked*40"})
    tests.append(test(
        "a wide block: one service blocked from two vantages of one country and ASN, whatever the techniques",
        [ru1, ru2, ru3, kz1],
        [
            expect("34m"),
            expect(
                "36m",
                MsgreachWideBlock=[wide(rb, "telegram", 2, "RU"), wide(rb, "telegram", 2, "RU", asn="12389")],
                MsgreachSuddenBlock=[
                    sudden(rb, ru1, "telegram", "sni_blocked"),
                    sudden(rb, ru2, "telegram", "partial"),
                    sudden(rb, kz1, "telegram", "ip_blocked"),
                ],
            ),
        ],
        promql=[
            {"expr": "country_service:msgreach_vantages_blocked:sum", "eval_time": "36m", "exp_samples": [
                {"labels": 'country_service:msgreach_vantages_blocked:sum{country="RU",service="telegram"}', "value": 2},
                {"labels": 'country_service:msgreach_vantages_blocked:sum{country="KZ",service="telegram"}', "value": 1},
            ]},
            {"expr": "country_service:msgreach_vantages_reporting:count", "eval_time": "36m", "exp_samples": [
                {"labels": 'country_service:msgreach_vantages_reporting:count{country="RU",service="telegram"}', "value": 3},
                {"labels": 'country_service:msgreach_vantages_reporting:count{country="KZ",service="telegram"}', "value": 1},
            ]},
            {"expr": "country_service:msgreach_reachable_ratio:avg", "eval_time": "36m", "exp_samples": [
                {"labels": 'country_service:msgreach_reachable_ratio:avg{country="RU",service="telegram"}', "value": 0.5},
                {"labels": 'country_service:msgreach_reachable_ratio:avg{country="KZ",service="telegram"}', "value": 0},
            ]},
            {"expr": "asn_service:msgreach_vantages_block_sustained:sum", "eval_time": "36m", "exp_samples": [
                {"labels": 'asn_service:msgreach_vantages_block_sustained:sum{country="RU",asn="12389",network="Rostelecom",service="telegram"}', "value": 2},
                {"labels": 'asn_service:msgreach_vantages_block_sustained:sum{country="RU",asn="8359",network="MTS",service="telegram"}', "value": 0},
                {"labels": 'asn_service:msgreach_vantages_block_sustained:sum{country="KZ",asn="9198",network="Kazakhtelecom",service="telegram"}', "value": 1},
            ]},
            {"expr": 'country_service_verdict:msgreach_vantages:count{country="RU"}', "eval_time": "36m", "exp_samples": [
                {"labels": 'country_service_verdict:msgreach_vantages:count{country="RU",service="telegram",verdict="sni_blocked"}', "value": 1},
                {"labels": 'country_service_verdict:msgreach_vantages:count{country="RU",service="telegram",verdict="partial"}', "value": 1},
                {"labels": 'country_service_verdict:msgreach_vantages:count{country="RU",service="telegram",verdict="ok"}', "value": 1},
            ]},
            {"expr": "country:msgreach_vantages_online:sum", "eval_time": "36m", "exp_samples": [
                {"labels": 'country:msgreach_vantages_online:sum{country="RU"}', "value": 3},
                {"labels": 'country:msgreach_vantages_online:sum{country="KZ"}', "value": 1},
            ]},
        ],
    ))

    ru1 = Vantage(**RU1, services={"telegram": "ok*30 throttled*30 ip_blocked*31"})
    techniques = " ".join(["tls_blocked sni_blocked"] * 30) + " tls_blocked"
    ru2 = Vantage(**KZ1, services={"telegram": f"ok*30 {techniques}"})  # another country: not wide
    tests.append(test(
        "a technique change (throttled -> ip_blocked) is raised once the new technique is sustained; "
        "a technique flapping round to round is a block but never a change",
        [ru1, ru2],
        [
            expect("36m", MsgreachSuddenBlock=[sudden(rb, ru1, "telegram", "throttled"), sudden(rb, ru2, "telegram", "tls_blocked")]),
            expect("61m", MsgreachSuddenBlock=[sudden(rb, ru1, "telegram", "ip_blocked"), sudden(rb, ru2, "telegram", "sni_blocked")]),
            expect("64m", MsgreachSuddenBlock=[sudden(rb, ru1, "telegram", "ip_blocked"), sudden(rb, ru2, "telegram", "tls_blocked")]),
            expect(
                "65m",
                MsgreachSuddenBlock=[sudden(rb, ru1, "telegram", "ip_blocked"), sudden(rb, ru2, "telegram", "sni_blocked")],
                MsgreachTechniqueChange=[technique_change(rb, ru1, "telegram", "throttled", "ip_blocked")],
            ),
            expect(
                "90m",
                MsgreachSuddenBlock=[sudden(rb, ru1, "telegram", "ip_blocked"), sudden(rb, ru2, "telegram", "tls_blocked")],
                MsgreachTechniqueChange=[technique_change(rb, ru1, "telegram", "throttled", "ip_blocked")],
            ),
        ],
    ))

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*60 ip_blocked*420"})
    ru2 = Vantage(**RU2, services={"whatsapp": "ip_blocked*480"})
    ru3 = Vantage(**RU3, services={"whatsapp": "ok*30 down*400 ip_blocked*50"})  # last ok > 6h before the block
    asn = wide(rb, "whatsapp", 2, "RU", asn="12389")
    tests.append(test(
        "a sudden block keeps firing past the 6h lookback while it lasts; a block standing since the start, "
        "or starting more than 6h after the last ok round, is not sudden (but counts towards a wide block)",
        [ru1, ru2, ru3],
        [
            expect("65m", MsgreachSuddenBlock=[sudden(rb, ru1, "whatsapp", "ip_blocked")], MsgreachWideBlock=[wide(rb, "whatsapp", 2, "RU"), asn]),
            expect("430m", MsgreachSuddenBlock=[sudden(rb, ru1, "whatsapp", "ip_blocked")], MsgreachWideBlock=[wide(rb, "whatsapp", 2, "RU"), asn]),
            expect("479m", MsgreachSuddenBlock=[sudden(rb, ru1, "whatsapp", "ip_blocked")], MsgreachWideBlock=[wide(rb, "whatsapp", 3, "RU"), asn]),
        ],
    ))

    stuck = Vantage(**RU1, stuck_after=30, services={"whatsapp": "ok*29 ip_blocked*51"})
    dead = Vantage(**RU3, dies_after=31, services={"whatsapp": "ok*80"})
    tests.append(test(
        "a silent vantage (hung process, or not scraped any more) raises MsgreachVantageSilent; "
        "a verdict repeated without new rounds is never a block",
        [stuck, dead],
        [
            expect("34m"),
            expect("36m", MsgreachVantageSilent=[silent(rb, stuck, "7m 0s"), silent(rb, dead, "6m 0s")]),
            expect("70m", MsgreachVantageSilent=[silent(rb, stuck, "41m 0s"), silent(rb, dead, "40m 0s")]),
        ],
    ))
    return tests


def fast_tests() -> list[dict]:
    """The fast profile: same rules, seconds instead of minutes (rounds and scrapes every second)."""
    rb = runbooks("fast")
    v = Vantage(**RU1, services={"whatsapp": "ok*60 ip_blocked*20 ok*40", "telegram": "ok*60 ip_blocked ok*59"})
    fast = sudden(rb, v, "whatsapp", "ip_blocked", window="12s", lookback="15m", rounds=2)
    off = Vantage(**RU3, services={"whatsapp": "ok*90 vantage_offline*10 ok*20"})
    off_alert = offline(rb, off)
    off_alert["exp_annotations"]["description"] = off_alert["exp_annotations"]["description"].replace("3m", "3s")
    return [test(
        "fast profile: a block sustained 12 s pages, a single failed round does not; offline after 3 s",
        [v, off],
        [
            expect("71s"),
            expect("72s", MsgreachSuddenBlock=[fast]),
            expect("79s", MsgreachSuddenBlock=[fast]),
            expect("80s"),
            expect("92s"),
            expect("93s", MsgreachVantageOffline=[off_alert]),
            expect("99s", MsgreachVantageOffline=[off_alert]),
            expect("100s"),
        ],
        interval="1s",
    )]


def render(profile: str, tests: list[dict]) -> str:
    rel = Path("..") / ".." / RULES[profile].relative_to(ROOT)
    doc = {"rule_files": [str(rel)], "evaluation_interval": "30s" if profile == "default" else "1s", "tests": tests}
    header = (
        "# GENERATED by tests/promtool/build_tests.py from readable verdict timelines -- edit that file.\n"
        f"# Run: promtool test rules tests/promtool/{profile}_test.yml\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=160, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the promtool rule tests")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = 0
    for profile, tests in (("default", default_tests()), ("fast", fast_tests())):
        path = HERE / f"{profile}_test.yml"
        text = render(profile, tests)
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"stale: {path} (run python tests/promtool/build_tests.py)", file=sys.stderr)
                stale += 1
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
