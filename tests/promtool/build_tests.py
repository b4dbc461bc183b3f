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
dashboard and runbook_url, absolute on the tests' external URL); runbooks are static text and
are taken from the rule file.

    python tests/promtool/build_tests.py          # rewrite
    python tests/promtool/build_tests.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "configs" / "prometheus"))
sys.path.insert(0, str(ROOT))

from generate_rules import PROFILES

from probe.model import SERVICE_VERDICTS, VANTAGE_VERDICTS

RULES = {name: p.path for name, p in PROFILES.items()}
EXTERNAL_URL = "https://centre.example.org"  # Prometheus's --web.external-url in the tests: every link is absolute on it

VERDICTS = tuple(str(v) for v in SERVICE_VERDICTS)  # the full state set msgreach exports
REGIMES = tuple(str(v) for v in VANTAGE_VERDICTS)
RATIO = {"ok": 1.0, "partial": 0.5}  # msgreach_service_reachable_ratio; 0 otherwise
SCRAPES_PER_ROUND = 4  # 60 s rounds scraped every 15 s (default); 4 s rounds every 1 s (fast)


def expand(timeline: str, vocabulary: tuple[str, ...] = VERDICTS) -> list[str]:
    out: list[str] = []
    for run in timeline.split():
        verdict, _, count = run.partition("*")
        if verdict not in vocabulary:
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
        if isinstance(v, str):  # 'stale' has no run notation
            parts += [v] * (j - i + 1)
        else:
            parts.append(f"{v:g}" if j == i else f"{v:g}x{j - i}")
        i = j + 1
    return " ".join(parts)


@dataclass
class Vantage:
    """One msgreach, round by round. A round's result is first scraped at its first sample; each
    round is scraped SCRAPES_PER_ROUND times."""

    name: str
    country: str
    asn: str
    network: str
    services: dict[str, str]
    role: str = "vantage"
    regime: str | None = None  # the vantage verdict per round; default: vantage_offline when every service says so
    stuck_after: int | None = None  # rounds stop arriving after this many (the process hangs)
    dies_after: int | None = None  # the target stops being scraped after this many rounds
    restart_at: int | None = None  # the process restarts during this round (2 failed scrapes, then no round yet)
    step: int = 15  # seconds between scrapes
    # Rounds scraped other than SCRAPES_PER_ROUND times (round index -> scrapes): a confirmation
    # round (schedule.confirm_after_seconds, 20 s by default) follows a round that gave a new
    # block, e.g. {30: 1, 31: 3}: round 30 is scraped once, its confirmation round 31 three times
    # until the next scheduled round. The services it did not measure again repeat their verdict.
    scrapes: dict[int, int] | None = None
    helpers: dict[str, str] | None = None  # per helper abroad, its line round by round: "up*10 down*20"

    def counts(self, n: int) -> list[int]:
        return [(self.scrapes or {}).get(r, SCRAPES_PER_ROUND) for r in range(n)]

    def starts(self, n: int) -> list[int]:
        """The sample at which each round (0-based) is first scraped; and, at index n, the end."""
        out = [0]
        for count in self.counts(n):
            out.append(out[-1] + count)
        return out

    def at(self, round_: int, scrape: int = 0) -> str:
        """The time of a scrape of this vantage: round ``round_`` (0-based) is first scraped at its scrape 0."""
        return f"{(self.starts(round_ + 1)[round_] + scrape) * self.step}s"

    def series(self) -> list[dict]:
        timelines = {s: expand(t) for s, t in self.services.items()}
        n = max(len(t) for t in timelines.values())
        for s, t in timelines.items():
            if len(t) != n:
                raise ValueError(f"{self.name}/{s}: {len(t)} rounds, others have {n}")
        if self.regime is not None:
            regime = expand(self.regime, REGIMES)
            if len(regime) != n:
                raise ValueError(f"{self.name}: regime has {len(regime)} rounds, services {n}")
        else:
            regime = ["vantage_offline" if all(timelines[s][i] == "vantage_offline" for s in timelines) else "ok" for i in range(n)]
        k = SCRAPES_PER_ROUND
        counts, starts = self.counts(n), self.starts(n)
        base = f'job="msgreach",instance="{self.name}:9910",vantage="{self.name}"'
        rounds = list(range(1, n + 1))
        if self.stuck_after is not None:
            rounds = rounds[: self.stuck_after] + [self.stuck_after] * (n - self.stuck_after)
        ended = [starts[r - 1] for r in rounds]  # round r ended at (and is first scraped at) its first sample

        def per_sample(values: list, *, verdict: bool = False) -> list:
            out = [values[r] for r in range(n) for _ in range(counts[r])]
            if self.restart_at is not None:
                first = starts[self.restart_at]
                out[first : first + 2] = ["stale", "stale"]  # scrapes fail while the process restarts
                if verdict:
                    out[first + 2 : first + k] = ["stale"] * (k - 2)  # up again, no round finished yet
            if self.dies_after is not None:
                out = out[: starts[self.dies_after]] + ["stale"]
            return out

        counter = [float(r) for r in rounds]
        if self.restart_at is not None:  # the counter starts again after the restart
            counter = [r if i <= self.restart_at else r - self.restart_at - 1 for i, r in enumerate(counter)]
        info = f'country="{self.country}",asn="{self.asn}",network="{self.network}",role="{self.role}"'
        online = [0 if v == "vantage_offline" else 1 for v in regime]
        out = [
            {"series": f"msgreach_vantage_info{{{base},{info}}}", "values": compact(per_sample([1] * n))},
            {"series": f"msgreach_vantage_online{{{base}}}", "values": compact(per_sample(online, verdict=True))},
            {"series": f"msgreach_rounds_total{{{base}}}", "values": compact(per_sample(counter, verdict=True))},
            {
                "series": f"msgreach_last_round_timestamp_seconds{{{base}}}",
                "values": compact(per_sample([e * self.step for e in ended], verdict=True)),
            },
        ]
        for verdict in REGIMES:
            out.append({"series": f'msgreach_vantage_verdict{{{base},verdict="{verdict}"}}', "values": compact(per_sample([1 if v == verdict else 0 for v in regime], verdict=True))})
        for s, t in timelines.items():
            for verdict in VERDICTS:
                values = [1 if v == verdict else 0 for v in t]
                out.append({"series": f'msgreach_service_verdict{{{base},service="{s}",verdict="{verdict}"}}', "values": compact(per_sample(values, verdict=True))})
            out.append({"series": f'msgreach_service_reachable_ratio{{{base},service="{s}"}}', "values": compact(per_sample([RATIO.get(v, 0.0) for v in t], verdict=True))})
        for helper, line in (self.helpers or {}).items():
            states = expand(line, ("up", "down"))
            if len(states) != n:
                raise ValueError(f"{self.name}: helper {helper} has {len(states)} rounds, services {n}")
            out.append({"series": f'msgreach_helper_up{{{base},helper="{helper}"}}', "values": compact(per_sample([1 if v == "up" else 0 for v in states], verdict=True))})
        return out


def runbooks(profile: str) -> dict[str, str]:
    groups = yaml.safe_load(RULES[profile].read_text())["groups"]
    return {r["alert"]: r["annotations"]["runbook"] for g in groups for r in g["rules"] if "alert" in r}


# --- expected alerts: labels plus the templated annotations, stated independently of the rules ---


class Expect:
    """The expected alerts of one profile (durations in annotations come from its Profile)."""

    def __init__(self, profile: str):
        self.p = PROFILES[profile]
        self.rb = runbooks(profile)

    @staticmethod
    def place(v: Vantage) -> dict[str, str]:
        return {"vantage": v.name, "country": v.country, "asn": v.asn, "network": v.network, "role": v.role}

    def sudden(self, v: Vantage, service: str, technique: str) -> dict:
        p = self.p
        return {
            "exp_labels": {"severity": "critical", "category": "block", **self.place(v), "service": service, "technique": technique},
            "exp_annotations": {
                "summary": f"{service} blocked from {v.name} ({v.country} AS{v.asn}) by {technique}",
                "description": f"{service} was reachable from vantage {v.name} ({v.network}) within the last {p.ok_lookback}; now every verdict is a block, over 2 consecutive rounds or confirmed by another vantage of {v.country}. Current technique: {technique}.",
                "runbook": self.rb["MsgreachSuddenBlock"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachsuddenblock",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-service?var-service={service}&var-vantage={v.name}",
            },
        }

    def wide(self, service: str, count: int, country: str, asn: str | None = None) -> dict:
        if asn is None:
            labels = {"severity": "critical", "category": "block", "scope": "country", "country": country, "service": service}
            summary = f"{service} blocked from {count} vantages in {country}"
            description = f"{count} vantages in {country} have given {service} a block verdict over two rounds or more."
        else:
            labels = {"severity": "critical", "category": "block", "scope": "asn", "country": country, "asn": asn, "service": service}
            summary = f"{service} blocked from {count} vantages in AS{asn} ({country})"
            description = f"{count} vantages in AS{asn} have given {service} a block verdict over two rounds or more."
        return {
            "exp_labels": labels,
            "exp_annotations": {
                "summary": summary,
                "description": description,
                "runbook": self.rb["MsgreachWideBlock"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachwideblock",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-overview?var-country={country}&var-service={service}",
            },
        }

    def technique_change(self, v: Vantage, service: str, previous: str, technique: str) -> dict:
        return {
            "exp_labels": {"severity": "warning", "category": "block", **self.place(v), "service": service, "technique": technique, "previous_technique": previous},
            "exp_annotations": {
                "summary": f"{service} at {v.name}: {previous} -> {technique}",
                "description": f"At vantage {v.name} ({v.country} AS{v.asn}) the block of {service} changed from {previous} to {technique} (each sustained over two rounds).",
                "runbook": self.rb["MsgreachTechniqueChange"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachtechniquechange",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-service?var-service={service}&var-vantage={v.name}",
            },
        }

    def offline(self, v: Vantage) -> dict:
        return {
            "exp_labels": {"severity": "warning", "category": "vantage", **self.place(v)},
            "exp_annotations": {
                "summary": f"Vantage {v.name} ({v.country} AS{v.asn}) is offline",
                "description": f"msgreach_vantage_online has been 0 for {self.p.offline_for}: the vantage cannot reach its control sites; no verdict from it means anything.",
                "runbook": self.rb["MsgreachVantageOffline"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachvantageoffline",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-vantage?var-vantage={v.name}",
            },
        }

    def silent(self, v: Vantage, age: str) -> dict:
        return {
            "exp_labels": {"severity": "warning", "category": "vantage", **self.place(v)},
            "exp_annotations": {
                "summary": f"Vantage {v.name} ({v.country}) sent no round for {age}",
                "description": f"The newest msgreach_last_round_timestamp_seconds of {v.name} is {age} old.",
                "runbook": self.rb["MsgreachVantageSilent"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachvantagesilent",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-vantage?var-vantage={v.name}",
            },
        }

    def at_control(self, service: str) -> dict:
        return {
            "exp_labels": {"severity": "info", "category": "outage", "service": service},
            "exp_annotations": {
                "summary": f"{service} fails at a control vantage: block alerts for it are suppressed",
                "description": f"{service} failed at a control vantage during at least 50% of the last {self.p.block_window}; it is probably down for everyone.",
                "runbook": self.rb["MsgreachServiceFailingAtControl"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachservicefailingatcontrol",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-service?var-service={service}",
            },
        }

    def helper_down(self, v: Vantage, helper: str) -> dict:
        return {
            "exp_labels": {"severity": "info", "category": "helper", "vantage": v.name, "helper": helper},
            "exp_annotations": {
                "summary": f"{v.name} cannot use its helper {helper}: the line to it fails",
                "description": (
                    f"msgreach_helper_up of {v.name} for helper {helper} has been 0 for {self.p.helper_down_for}: "
                    "calls, circumvention and freeze keys are not measured there, and its blocks are not compared with the helper's."
                ),
                "runbook": self.rb["MsgreachHelperLineDown"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachhelperlinedown",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-vantage?var-vantage={v.name}",
            },
        }

    def allowlist(self, country: str, asn: str, count: int) -> dict:
        return {
            "exp_labels": {"severity": "critical", "category": "regime", "country": country, "asn": asn},
            "exp_annotations": {
                "summary": f"Allowlist regime in {country} AS{asn}: {count} vantage(s) reach only approved services",
                "description": (
                    f"{count} vantage(s) in AS{asn} ({country}) reach their domestic control sites but no "
                    "international one: every foreign service fails there for the regime, not for a block of its own."
                ),
                "runbook": self.rb["MsgreachAllowlistRegime"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachallowlistregime",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-overview?var-country={country}",
            },
        }

    def shutdown(self, country: str, asn: str, count: int) -> dict:
        return {
            "exp_labels": {"severity": "critical", "category": "regime", "country": country, "asn": asn},
            "exp_annotations": {
                "summary": f"Possible regional shutdown in {country} AS{asn}: {count} vantages offline",
                "description": f"{count} vantages in AS{asn} ({country}) have been offline or silent for {self.p.offline_for}.",
                "runbook": self.rb["MsgreachRegionalShutdown"],
                "runbook_url": f"{EXTERNAL_URL}/docs/operators.md#msgreachregionalshutdown",
                "dashboard": f"{EXTERNAL_URL}/d/msgreach-overview?var-country={country}",
            },
        }


ALERTS = (
    "MsgreachSuddenBlock", "MsgreachWideBlock", "MsgreachTechniqueChange", "MsgreachVantageOffline",
    "MsgreachVantageSilent", "MsgreachAllowlistRegime", "MsgreachRegionalShutdown", "MsgreachServiceFailingAtControl",
    "MsgreachHelperLineDown",
)


def expect(eval_time: str, **alerts: list[dict]) -> list[dict]:
    """One alert_rule_test per alert name at ``eval_time``: the named ones with the given alerts,
    every other alert explicitly silent."""
    unknown = set(alerts) - set(ALERTS)
    if unknown:
        raise ValueError(f"unknown alerts {unknown}")
    return [{"eval_time": eval_time, "alertname": name, "exp_alerts": alerts.get(name, [])} for name in ALERTS]


def quiet(*times: str) -> list[list[dict]]:
    return [expect(t) for t in times]


def at(round_: int, scrape: int = 0, step: int = 15) -> str:
    """The time of a scrape: round ``round_`` (0-based) is first scraped at its scrape 0."""
    return f"{(round_ * SCRAPES_PER_ROUND + scrape) * step}s"


def test(name: str, vantages: list[Vantage], checks: list[list[dict]], promql: list[dict] | None = None, step: int = 15) -> dict:
    for v in vantages:
        v.step = step
    series = [s for v in vantages for s in v.series()]
    out = {"name": name, "interval": f"{step}s", "external_url": EXTERNAL_URL, "input_series": series, "alert_rule_test": [c for group in checks for c in group]}
    if promql:
        out["promql_expr_test"] = promql
    return out


# --- the scenarios (default profile: rounds every minute, scraped every 15 s) ----------------------

RU1 = dict(name="ru-1", country="RU", asn="12389", network="Rostelecom")
RU2 = dict(name="ru-2", country="RU", asn="12389", network="Rostelecom")
RU3 = dict(name="ru-3", country="RU", asn="8359", network="MTS")
RU4 = dict(name="ru-4", country="RU", asn="8359", network="MTS")
KZ1 = dict(name="kz-1", country="KZ", asn="9198", network="Kazakhtelecom")
NL_CTL = dict(name="nl-ctl", country="NL", asn="1136", network="KPN", role="control")
DE_CTL = dict(name="de-ctl", country="DE", asn="3320", network="DTAG", role="control")


def info_labels(v: dict) -> str:
    return f'vantage="{v["name"]}",country="{v["country"]}",asn="{v["asn"]}",network="{v["network"]}",role="{v.get("role", "vantage")}"'


def default_tests() -> list[dict]:
    e = Expect("default")
    tests = []

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked*30 ok*21", "telegram": "ok*81"})
    page = [e.sudden(ru1, "whatsapp", "ip_blocked")]
    tests.append(test(
        "sudden block: pages when the second blocked round arrives (60 s after the first blocked scrape), "
        "labelled with the technique; resolves with the first ok round",
        [ru1],
        [
            *quiet(at(30), at(30, 3)),  # the first blocked round alone is not enough
            expect(at(31), MsgreachSuddenBlock=page),  # 60 s after the first blocked scrape
            expect(at(45), MsgreachSuddenBlock=page),
            expect(at(59, 3), MsgreachSuddenBlock=page),
            expect(at(60)),  # the first ok round resolves it
        ],
        promql=[{
            "expr": "vantage_service:msgreach_block_sustained:bool",
            "eval_time": at(40),
            "exp_samples": [
                {"labels": f"vantage_service:msgreach_block_sustained:bool{{{info_labels(RU1)},service=\"whatsapp\"}}", "value": 1},
                {"labels": f"vantage_service:msgreach_block_sustained:bool{{{info_labels(RU1)},service=\"telegram\"}}", "value": 0},
            ],
        }, {
            "expr": "vantage_service_technique:msgreach_block:active",
            "eval_time": at(40),
            "exp_samples": [
                {"labels": f"vantage_service_technique:msgreach_block:active{{{info_labels(RU1)},service=\"whatsapp\",technique=\"ip_blocked\"}}", "value": 1},
            ],
        }],
    ))

    ru1 = Vantage(**RU1, services={"telegram": "ok*30 sni_blocked*10 ok*5"})
    ru2 = Vantage(**RU2, services={"telegram": "ok*30 ip_blocked*10 ok*5"})
    tests.append(test(
        "two vantages of one country and ASN agreeing page faster: at the second blocked scrape of the first round",
        [ru1, ru2],
        [
            expect(at(30)),
            expect(at(30, 1), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "sni_blocked"), e.sudden(ru2, "telegram", "ip_blocked")]),
            expect(at(31), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "sni_blocked"), e.sudden(ru2, "telegram", "ip_blocked")],
                   MsgreachWideBlock=[e.wide("telegram", 2, "RU"), e.wide("telegram", 2, "RU", asn="12389")]),
            expect(at(40)),
        ],
    ))

    tests.append(test(
        "a one-round flap (one blocked round, confirmed by the engine's retry, then ok) never pages",
        [Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked ok*20 tls_blocked ok*20", "telegram": "ok*30 throttled ok*41"})],
        quiet(at(30), at(30, 3), at(31), at(31, 2), at(32), at(51, 2), at(52), at(60)),
    ))

    tests.append(test(
        "down (the control saw the same failure) and error (the monitor could not measure: a dead resolver, "
        "no file descriptors) are never blocks",
        [Vantage(**RU1, services={"whatsapp": "ok*30 down*40", "telegram": "ok*30 error*20 ok*20"})],
        quiet(at(31), at(32), at(50), at(69, 3)),
    ))

    flapping = " ".join(["ip_blocked ok vantage_offline ip_blocked ok"] * 6)  # a lossy line
    tests.append(test(
        "a lossy line (block, ok and offline rounds in turn, never two blocked rounds in a row) never pages",
        [Vantage(**RU1, services={"whatsapp": f"ok*30 {flapping} ok*11", "telegram": f"ok*30 {flapping.replace('ip_blocked', 'tls_blocked')} ok*11"})],
        quiet(at(31), at(33, 2), at(42), at(50, 1), at(59, 3), at(65)),
    ))

    restarting = Vantage(**RU1, restart_at=40, services={"whatsapp": "ok*81", "telegram": "ok*20 ip_blocked*61"})
    page = [e.sudden(restarting, "telegram", "ip_blocked")]
    tests.append(test(
        "a restart neither pages (ok before and after) nor resolves and re-raises a page that was firing",
        [restarting],
        [
            expect(at(21), MsgreachSuddenBlock=page),
            expect(at(40), MsgreachSuddenBlock=page),
            expect(at(40, 2), MsgreachSuddenBlock=page),  # no verdicts exported yet: the page holds
            expect(at(40, 3), MsgreachSuddenBlock=page),
            expect(at(41), MsgreachSuddenBlock=page),
            expect(at(42), MsgreachSuddenBlock=page),
        ],
    ))

    off = Vantage(**RU1, services={"whatsapp": "ok*30 vantage_offline*30 ok*11", "telegram": "ok*30 vantage_offline*30 ok*11"})
    tests.append(test(
        "an offline vantage (also: its only resolver died) raises only MsgreachVantageOffline (after 3m), never a block",
        [off],
        [
            expect(at(32, 3)),
            expect(at(33), MsgreachVantageOffline=[e.offline(off)]),
            expect(at(45), MsgreachVantageOffline=[e.offline(off)]),
            expect(at(59, 3), MsgreachVantageOffline=[e.offline(off)]),
            expect(at(60)),
            expect(at(66)),
        ],
    ))

    regime = "ok*30 allowlist*30 ok*11"
    ru1 = Vantage(**RU1, regime=regime, services={"whatsapp": "ok*30 tls_blocked*30 ok*11", "telegram": "ok*30 ip_blocked*30 ok*11"})
    ru2 = Vantage(**RU2, regime=regime, services={"whatsapp": "ok*30 tls_blocked*30 ok*11", "telegram": "ok*30 sni_blocked*30 ok*11"})
    ru3 = Vantage(**RU3, regime=regime, services={"whatsapp": "ok*30 tls_blocked*30 ok*11", "telegram": "ok*30 tls_blocked*30 ok*11"})
    ru4 = Vantage(**RU4, services={"whatsapp": "ok*71", "telegram": "ok*71"})
    tests.append(test(
        "the allowlist regime: one page per country/ASN after two rounds, no per-service block page, "
        "no wide block, no technique change",
        [ru1, ru2, ru3, ru4],
        [
            expect(at(30, 3)),
            expect(at(31), MsgreachAllowlistRegime=[e.allowlist("RU", "12389", 2), e.allowlist("RU", "8359", 1)]),
            expect(at(59, 3), MsgreachAllowlistRegime=[e.allowlist("RU", "12389", 2), e.allowlist("RU", "8359", 1)]),
            expect(at(60)),
            expect(at(70)),
        ],
    ))

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*30 vantage_offline*30 ok*11"})
    ru2 = Vantage(**RU2, services={"whatsapp": "ok*31 vantage_offline*29 ok*11"})
    ru3 = Vantage(**RU3, services={"whatsapp": "ok*30 vantage_offline*30 ok*11"})  # alone in its ASN
    shutdown = [e.shutdown("RU", "12389", 2)]
    offline3 = [e.offline(ru1), e.offline(ru2), e.offline(ru3)]
    tests.append(test(
        "a regional shutdown: two vantages of one ASN offline together page once for the ASN "
        "(a single offline vantage of another ASN does not); no block pages",
        [ru1, ru2, ru3],
        [
            expect(at(33), MsgreachVantageOffline=[e.offline(ru1), e.offline(ru3)]),
            expect(at(34), MsgreachVantageOffline=offline3, MsgreachRegionalShutdown=shutdown),
            expect(at(59, 3), MsgreachVantageOffline=offline3, MsgreachRegionalShutdown=shutdown),
            expect(at(60)),
        ],
    ))

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked*40", "telegram": "ok*30 dns_blocked*40"})
    ru3 = Vantage(**RU3, services={"whatsapp": "ok*30 tls_blocked*40", "telegram": "ok*70"})
    nl = Vantage(**NL_CTL, services={"whatsapp": "ok*30 ip_blocked*40", "telegram": "ok*70"})
    de = Vantage(**DE_CTL, services={"whatsapp": "ok*70", "telegram": "ok*30 down*40"})
    outage = [e.at_control("telegram"), e.at_control("whatsapp")]
    tests.append(test(
        "a service failing everywhere including at a control vantage (role=\"control\") is an outage: "
        "no block alert, one info",
        [ru1, ru3, nl, de],
        [
            expect(at(29, 3)),
            expect(at(30), MsgreachServiceFailingAtControl=outage),
            expect(at(31), MsgreachServiceFailingAtControl=outage),
            expect(at(50), MsgreachServiceFailingAtControl=outage),
        ],
        promql=[{
            "expr": "vantage:msgreach_info:last",
            "eval_time": at(50),
            "exp_samples": [{"labels": f"vantage:msgreach_info:last{{{info_labels(v)}}}", "value": 1} for v in (RU1, RU3, NL_CTL, DE_CTL)],
        }, {
            "expr": "service:msgreach_vantages_blocked:sum",
            "eval_time": at(50),
            "exp_samples": [  # control vantages are not counted
                {"labels": 'service:msgreach_vantages_blocked:sum{service="whatsapp"}', "value": 2},
                {"labels": 'service:msgreach_vantages_blocked:sum{service="telegram"}', "value": 1},
            ],
        }],
    ))

    ru1 = Vantage(**RU1, services={"telegram": "ok*30 sni_blocked*40"})
    ru2 = Vantage(**RU2, services={"telegram": "ok*31 partial*39"})  # partial is a block too
    ru3 = Vantage(**RU3, services={"telegram": "ok*70"})
    kz1 = Vantage(**KZ1, services={"telegram": "ok*30 ip_blocked*40"})
    tests.append(test(
        "a wide block: one service blocked from two vantages of one country and ASN, whatever the techniques",
        [ru1, ru2, ru3, kz1],
        [
            expect(at(30, 3)),
            expect(at(31), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "sni_blocked"), e.sudden(kz1, "telegram", "ip_blocked")]),
            expect(
                at(32),
                MsgreachWideBlock=[e.wide("telegram", 2, "RU"), e.wide("telegram", 2, "RU", asn="12389")],
                MsgreachSuddenBlock=[
                    e.sudden(ru1, "telegram", "sni_blocked"),
                    e.sudden(ru2, "telegram", "partial"),
                    e.sudden(kz1, "telegram", "ip_blocked"),
                ],
            ),
        ],
        promql=[
            {"expr": "country_service:msgreach_vantages_blocked:sum", "eval_time": at(36), "exp_samples": [
                {"labels": 'country_service:msgreach_vantages_blocked:sum{country="RU",service="telegram"}', "value": 2},
                {"labels": 'country_service:msgreach_vantages_blocked:sum{country="KZ",service="telegram"}', "value": 1},
            ]},
            {"expr": "country_service:msgreach_vantages_reporting:count", "eval_time": at(36), "exp_samples": [
                {"labels": 'country_service:msgreach_vantages_reporting:count{country="RU",service="telegram"}', "value": 3},
                {"labels": 'country_service:msgreach_vantages_reporting:count{country="KZ",service="telegram"}', "value": 1},
            ]},
            {"expr": "country_service:msgreach_reachable_ratio:avg", "eval_time": at(36), "exp_samples": [
                {"labels": 'country_service:msgreach_reachable_ratio:avg{country="RU",service="telegram"}', "value": 0.5},
                {"labels": 'country_service:msgreach_reachable_ratio:avg{country="KZ",service="telegram"}', "value": 0},
            ]},
            {"expr": "asn_service:msgreach_vantages_block_sustained:sum", "eval_time": at(36), "exp_samples": [
                {"labels": 'asn_service:msgreach_vantages_block_sustained:sum{country="RU",asn="12389",network="Rostelecom",service="telegram"}', "value": 2},
                {"labels": 'asn_service:msgreach_vantages_block_sustained:sum{country="RU",asn="8359",network="MTS",service="telegram"}', "value": 0},
                {"labels": 'asn_service:msgreach_vantages_block_sustained:sum{country="KZ",asn="9198",network="Kazakhtelecom",service="telegram"}', "value": 1},
            ]},
            {"expr": 'country_service_verdict:msgreach_vantages:count{country="RU"}', "eval_time": at(36), "exp_samples": [
                {"labels": 'country_service_verdict:msgreach_vantages:count{country="RU",service="telegram",verdict="sni_blocked"}', "value": 1},
                {"labels": 'country_service_verdict:msgreach_vantages:count{country="RU",service="telegram",verdict="partial"}', "value": 1},
                {"labels": 'country_service_verdict:msgreach_vantages:count{country="RU",service="telegram",verdict="ok"}', "value": 1},
            ]},
            {"expr": "country:msgreach_vantages_online:sum", "eval_time": at(36), "exp_samples": [
                {"labels": 'country:msgreach_vantages_online:sum{country="RU"}', "value": 3},
                {"labels": 'country:msgreach_vantages_online:sum{country="KZ"}', "value": 1},
            ]},
        ],
    ))

    ru1 = Vantage(**RU1, services={"telegram": "ok*30 throttled*30 ip_blocked*31"})
    techniques = " ".join(["tls_blocked sni_blocked"] * 30) + " tls_blocked"
    kz1 = Vantage(**KZ1, services={"telegram": f"ok*30 {techniques}"})  # another country: not wide
    change = [e.technique_change(ru1, "telegram", "throttled", "ip_blocked")]
    tests.append(test(
        "a technique change (throttled -> ip_blocked) is raised once the new technique is sustained; "
        "a technique flapping round to round is a block but never a change",
        [ru1, kz1],
        [
            expect(at(31), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "throttled"), e.sudden(kz1, "telegram", "sni_blocked")]),
            expect(at(60), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "ip_blocked"), e.sudden(kz1, "telegram", "tls_blocked")]),
            expect(at(61), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "ip_blocked"), e.sudden(kz1, "telegram", "sni_blocked")], MsgreachTechniqueChange=change),
            expect(at(90), MsgreachSuddenBlock=[e.sudden(ru1, "telegram", "ip_blocked"), e.sudden(kz1, "telegram", "tls_blocked")], MsgreachTechniqueChange=change),
        ],
    ))

    ru1 = Vantage(**RU1, services={"whatsapp": "ok*60 ip_blocked*420"})
    ru2 = Vantage(**RU2, services={"whatsapp": "ip_blocked*480"})
    ru3 = Vantage(**RU3, services={"whatsapp": "ok*30 down*400 ip_blocked*50"})  # last ok > 6h before the block
    asn = e.wide("whatsapp", 2, "RU", asn="12389")
    tests.append(test(
        "a sudden block keeps firing past the 6h lookback while it lasts; a block standing since the start, "
        "or starting more than 6h after the last ok round, is not sudden (but counts towards a wide block)",
        [ru1, ru2, ru3],
        [
            expect(at(61), MsgreachSuddenBlock=[e.sudden(ru1, "whatsapp", "ip_blocked")], MsgreachWideBlock=[e.wide("whatsapp", 2, "RU"), asn]),
            expect(at(430), MsgreachSuddenBlock=[e.sudden(ru1, "whatsapp", "ip_blocked")], MsgreachWideBlock=[e.wide("whatsapp", 2, "RU"), asn]),
            expect(at(479), MsgreachSuddenBlock=[e.sudden(ru1, "whatsapp", "ip_blocked")], MsgreachWideBlock=[e.wide("whatsapp", 3, "RU"), asn]),
        ],
    ))

    tests += confirmation_tests(e)

    stuck = Vantage(**RU1, stuck_after=30, services={"whatsapp": "ok*29 ip_blocked*51"})
    dead = Vantage(**RU3, dies_after=31, services={"whatsapp": "ok*80"})
    tests.append(test(
        "a silent vantage (hung process, or not scraped any more) raises MsgreachVantageSilent; "
        "a verdict repeated without new rounds is never a block",
        [stuck, dead],
        [
            expect(at(34)),
            expect(at(36), MsgreachVantageSilent=[e.silent(stuck, "7m 0s"), e.silent(dead, "6m 0s")]),
            expect(at(70), MsgreachVantageSilent=[e.silent(stuck, "41m 0s"), e.silent(dead, "40m 0s")]),
        ],
    ))

    frozen = Vantage(**RU1, services={"whatsapp": "ok*60"}, helpers={"abroad": "up*10 down*40 up*10"})
    flaky = Vantage(**RU3, services={"whatsapp": "ok*60"}, helpers={"abroad": "up*10 down*5 up*45"})
    tests.append(test(
        "the line to a helper abroad failing for 15 minutes is shown (info, never a page), a few failed "
        "rounds are not; no block alert either way",
        [frozen, flaky],
        [
            *quiet(at(10), at(24, 3)),
            expect(at(25, 1), MsgreachHelperLineDown=[e.helper_down(frozen, "abroad")]),
            expect(at(49, 3), MsgreachHelperLineDown=[e.helper_down(frozen, "abroad")]),
            expect(at(50, 1)),
        ],
    ))
    return tests


def confirmed(timeline: str, verdict: str) -> dict[int, int]:
    """The scrapes of the rounds of ``timeline`` when msgreach confirms every new ``verdict`` round
    with a confirmation round 20 s later: the new block's round is scraped once, the confirmation
    round (the next one in the timeline) three times, until the next scheduled round."""
    rounds = expand(timeline)
    out: dict[int, int] = {}
    for i, v in enumerate(rounds):
        if v == verdict and (i == 0 or rounds[i - 1] != verdict) and i not in out:
            out[i], out[i + 1] = 1, 3
    return out


def confirmation_tests(e: Expect) -> list[dict]:
    """The engine's confirmation round (schedule.confirm_after_seconds, 20 s after a round that gave
    a service a new block): the rules' "two consecutive rounds" are met by it, 15-30 s after the
    first blocked scrape instead of 60-75 s; everything that must stay silent still does."""
    tests = []
    ru1 = Vantage(**RU1, scrapes={30: 1, 31: 3}, services={"whatsapp": "ok*30 ip_blocked*31 ok*10", "telegram": "ok*71"})
    kz1 = Vantage(**KZ1, scrapes={30: 2, 31: 2}, services={"whatsapp": "ok*30 ip_blocked*31 ok*10", "telegram": "ok*71"})
    tests.append(test(
        "confirmation round: a new block confirmed 20 s later by the confirmation round pages at the "
        "confirmation's first scrape (15 or 30 s after the first blocked scrape), not a round later",
        [ru1, kz1],
        [
            expect(ru1.at(30)),  # the first blocked round alone is not enough
            # 15 s later: ru1's confirmation round; kz1 still shows its first blocked round
            expect(ru1.at(31), MsgreachSuddenBlock=[e.sudden(ru1, "whatsapp", "ip_blocked")]),
            expect(kz1.at(31), MsgreachSuddenBlock=[e.sudden(ru1, "whatsapp", "ip_blocked"), e.sudden(kz1, "whatsapp", "ip_blocked")]),
            expect(ru1.at(60, 3), MsgreachSuddenBlock=[e.sudden(ru1, "whatsapp", "ip_blocked"), e.sudden(kz1, "whatsapp", "ip_blocked")]),
            expect(ru1.at(61)),  # the first ok round resolves it
        ],
    ))

    whatsapp = "ok*30 ip_blocked ok*20 ip_blocked ok*20"  # the block flaps: the confirmation finds it ok
    telegram = "ok*30 tls_blocked ok*20 tls_blocked ok*20"
    ru1 = Vantage(**RU1, scrapes=confirmed(whatsapp, "ip_blocked"), services={"whatsapp": whatsapp, "telegram": telegram})
    kz1 = Vantage(**KZ1, scrapes={30: 2, 31: 2, 51: 2, 52: 2}, services={"whatsapp": whatsapp, "telegram": telegram})
    tests.append(test(
        "confirmation round: a one-round flap that the confirmation round finds ok never pages",
        [ru1, kz1],
        quiet(ru1.at(30), ru1.at(31), ru1.at(31, 2), kz1.at(30, 1), kz1.at(31), kz1.at(31, 1), ru1.at(33), ru1.at(51), ru1.at(52), kz1.at(52, 1), ru1.at(60)),
    ))

    lossy = " ".join(["ip_blocked ok ok vantage_offline ip_blocked ok ok"] * 6)  # every block's confirmation is ok
    whatsapp = f"ok*30 {lossy} ok*11"
    ru1 = Vantage(**RU1, scrapes=confirmed(whatsapp, "ip_blocked"), services={"whatsapp": whatsapp, "telegram": whatsapp.replace("ip_blocked", "tls_blocked")})
    times = [ru1.at(r, s) for r in range(30, 30 + 42) for s in range(ru1.counts(r + 1)[r])]
    tests.append(test(
        "confirmation round: a lossy line (blocks whose confirmation round is ok, offline rounds) never pages",
        [ru1],
        quiet(*times[::3]),
    ))

    restarting = Vantage(**RU1, restart_at=40, scrapes={41: 1, 42: 3}, services={"whatsapp": "ok*82", "telegram": "ok*20 ip_blocked*62"})
    page = [e.sudden(restarting, "telegram", "ip_blocked")]
    tests.append(test(
        "confirmation round: after a restart the first round's block is confirmed again (the verdict was "
        "unknown); a page that was firing holds through it, and nothing else pages",
        [restarting],
        [
            expect(restarting.at(21), MsgreachSuddenBlock=page),
            expect(restarting.at(40, 2), MsgreachSuddenBlock=page),
            expect(restarting.at(41), MsgreachSuddenBlock=page),
            expect(restarting.at(42), MsgreachSuddenBlock=page),
            expect(restarting.at(43), MsgreachSuddenBlock=page),
        ],
    ))

    regime = "ok*30 allowlist*31 ok*10"
    blocks = {"whatsapp": "ok*30 tls_blocked*31 ok*10", "telegram": "ok*30 ip_blocked*31 ok*10"}
    ru1 = Vantage(**RU1, regime=regime, scrapes={30: 1, 31: 3}, services=blocks)
    ru2 = Vantage(**RU2, regime=regime, scrapes={30: 1, 31: 3}, services={**blocks, "telegram": "ok*30 sni_blocked*31 ok*10"})
    ru3 = Vantage(**RU3, regime=regime, scrapes={30: 2, 31: 2}, services=blocks)
    ru4 = Vantage(**RU4, services={"whatsapp": "ok*71", "telegram": "ok*71"})
    both = [e.allowlist("RU", "12389", 2), e.allowlist("RU", "8359", 1)]
    tests.append(test(
        "confirmation round: the allowlist regime pages once per country/ASN at its confirmation round, "
        "never a block page, a wide block or a technique change",
        [ru1, ru2, ru3, ru4],
        [
            expect(ru1.at(30)),
            expect(ru1.at(31), MsgreachAllowlistRegime=[e.allowlist("RU", "12389", 2)]),
            expect(ru3.at(31), MsgreachAllowlistRegime=both),
            expect(ru1.at(60, 3), MsgreachAllowlistRegime=both),
            expect(ru1.at(61)),
            expect(ru1.at(70)),
        ],
    ))
    return tests


def fast_tests() -> list[dict]:
    """The fast profile: same rules, seconds instead of minutes (4 s rounds scraped every second)."""
    e = Expect("fast")
    v = Vantage(**RU1, services={"whatsapp": "ok*30 ip_blocked*10 ok*20", "telegram": "ok*30 ip_blocked ok*29"})
    page = [e.sudden(v, "whatsapp", "ip_blocked")]
    off = Vantage(**RU3, services={"whatsapp": "ok*45 vantage_offline*5 ok*10"})
    def at1(r, s=0):
        return at(r, s, step=1)
    return [test(
        "fast profile: a block pages with its second round (4 s after the first blocked scrape), a single "
        "failed round does not; offline after 3 s",
        [v, off],
        [
            expect(at1(30, 3)),
            expect(at1(31), MsgreachSuddenBlock=page),
            expect(at1(39, 3), MsgreachSuddenBlock=page),
            expect(at1(40)),
            expect(at1(45, 2)),
            expect(at1(45, 3), MsgreachVantageOffline=[e.offline(off)]),
            expect(at1(49, 3), MsgreachVantageOffline=[e.offline(off)]),
            expect(at1(50)),
        ],
        step=1,
    )]


def render(profile: str, tests: list[dict]) -> str:
    rel = Path("..") / ".." / RULES[profile].relative_to(ROOT)
    doc = {"rule_files": [str(rel)], "evaluation_interval": PROFILES[profile].eval_interval, "tests": tests}
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
