#!/usr/bin/env python3
"""The single source of msgreach's Prometheus recording and alerting rules.

Two profiles are generated from it, with the same expressions and different durations:

* ``default`` -> ``configs/prometheus/rules/msgreach.yml``: for msgreach's default schedule
  (a round every 60 s, Prometheus scraping every 15-30 s). Load this one in production.
* ``fast`` -> ``configs/prometheus/fast-profile/msgreach.yml``: for the censorship lab and the
  end-to-end tests (a round every 1-5 s, scrapes and evaluations every second). Never load it in
  production: it pages on blocks that lasted seconds.

Usage::

    python configs/prometheus/generate_rules.py          # rewrite both files
    python configs/prometheus/generate_rules.py --check  # exit 1 if a committed file is stale

Only the standard library and PyYAML (to check that what is written parses back).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run as a script from anywhere: probe.model is stdlib only

from probe.model import SERVICE_VERDICTS, VantageVerdict, Verdict, is_block, is_measured

# The vocabulary comes from probe.model: a block is any technique verdict and `partial` (some
# targets blocked: `is_block`); `down`, `error`, `vantage_offline` and `ok` are not. A technique
# added to the model is alerted on after regenerating, without touching the rules.
BLOCK_VERDICTS: tuple[str, ...] = tuple(str(v) for v in SERVICE_VERDICTS if is_block(v))
NOT_BLOCK_VERDICTS: tuple[str, ...] = tuple(str(v) for v in SERVICE_VERDICTS if str(v) not in BLOCK_VERDICTS)
BLOCK = "|".join(BLOCK_VERDICTS)
NOT_BLOCK = "|".join(NOT_BLOCK_VERDICTS)
FAILING = "|".join(str(v) for v in SERVICE_VERDICTS if v is not Verdict.OK and is_measured(v))
ALLOWLIST = str(VantageVerdict.ALLOWLIST)


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    scrape_interval: str  # what the rules are written for (the tests scrape at this pace)
    round_interval_seconds: int  # msgreach's schedule.interval_seconds the profile is written for
    eval_interval: str  # how often the rule group runs
    block_window: str  # the window of the control-vantage share and of the summaries
    agree_window: str  # two vantages of one country blocked at every scrape this long: page at once
    ok_lookback: str  # "was reachable for the past hours": ok seen within this window
    technique_memory: str  # a technique sustained this recently counts as "the previous one"
    control_share: float  # a control vantage failing this share of the window suppresses blocks
    silent_after_seconds: int  # no new round for this long: the vantage is silent
    offline_for: str  # vantage_online == 0 for this long: the vantage is offline
    info_lookback: str  # how long a vantage that stopped reporting is remembered
    wide_min_vantages: int  # vantages of one country / ASN that make a block "wide" (or agree)
    restart_bridge: str  # a vantage without verdicts (restarting) keeps its block state this long
    allowlist_memory: str  # block pages stay muted this long after a vantage's last allowlist round
    shutdown_min_vantages: int  # vantages of one ASN offline together: a regional shutdown
    helper_down_for: str  # msgreach_helper_up == 0 this long: the helper line is shown (never paged)
    notes: str


PROFILES = {
    "default": Profile(
        name="default",
        path=HERE / "rules" / "msgreach.yml",
        scrape_interval="15s",
        round_interval_seconds=60,
        eval_interval="15s",
        block_window="5m",
        agree_window="15s",
        ok_lookback="6h",
        technique_memory="1h",
        control_share=0.5,
        silent_after_seconds=300,
        offline_for="3m",
        info_lookback="1d",
        wide_min_vantages=2,
        restart_bridge="3m",
        allowlist_memory="5m",
        shutdown_min_vantages=2,
        helper_down_for="15m",
        notes=(
            "For msgreach's default schedule (rounds every 60 s, a confirmation round 20 s after a new block)\n"
            "and a 15 s scrape interval."
        ),
    ),
    "fast": Profile(
        name="fast",
        path=HERE / "fast-profile" / "msgreach.yml",
        scrape_interval="1s",
        round_interval_seconds=4,
        eval_interval="1s",
        block_window="12s",
        agree_window="1s",
        ok_lookback="15m",
        technique_memory="2m",
        control_share=0.5,
        silent_after_seconds=30,
        offline_for="3s",
        info_lookback="1h",
        wide_min_vantages=2,
        restart_bridge="10s",
        allowlist_memory="10s",
        shutdown_min_vantages=2,
        helper_down_for="15s",
        notes=(
            "FAST PROFILE, for the lab and end-to-end tests only: rounds every 1-5 s, scrape and\n"
            "evaluation every 1 s. It pages on blocks that lasted seconds: never load it in production."
        ),
    ),
}


# --- PromQL building blocks ---------------------------------------------------------------------

INFO = "vantage:msgreach_info:last"
INFO_LABELS = "country, asn, network, role"


def with_info(expr: str, keys: str) -> str:
    """``expr`` (one series per ``keys``) with the vantage's country/asn/network/role attached.

    A vantage without a ``msgreach_vantage_info`` series keeps its series (without those labels)
    instead of vanishing from every alert: a missing info series must never hide a block.
    """
    return (
        f"(\n  (\n{indent(expr, 4)}\n  )\n  * on (vantage) group_left ({INFO_LABELS})\n  {INFO}\n)\n"
        f"or on ({keys})\n(\n{indent(expr)}\n)"
    )


def latch_window(p: Profile) -> str:
    """A window that holds exactly the previous evaluation of a rule (1.5 intervals)."""
    value, unit = int(p.eval_interval[:-1]), p.eval_interval[-1]
    return f"{value * {'s': 1000, 'm': 60000}[unit] * 3 // 2}ms"


def block_start(name: str, state: str, keys: str, p: Profile) -> str:
    """The end time of the round that began the current run of ``state`` (one series per ``keys``
    while ``state`` holds at every evaluation; the start is kept while it keeps holding).

    A block is *sustained* once the current round is a later one than the round that began it:
    two consecutive rounds, each already confirmed by the engine's immediate retry, whatever the
    spacing of the rounds (jitter, slow rounds). A rule output reads its own previous value."""
    state = f"(\n{indent(state)}\n)"
    return (
        f"(\n  last_over_time({name}[{latch_window(p)}])\n  and on ({keys})\n{indent(state)}\n)\n"
        f"or on ({keys})\n"
        f"(\n  max by (vantage) (msgreach_last_round_timestamp_seconds)\n  * on (vantage) group_right ()\n{indent(state)}\n)\n"
        f"or on ({keys})\n"
        f"(\n  last_over_time({name}[{p.restart_bridge}])\n  unless on (vantage) msgreach_last_round_timestamp_seconds\n)"
    )


def later_round(start: str, keys: str) -> str:
    """1 when the vantage's current round is later than the round in ``start``, else 0."""
    return f"max by (vantage) (msgreach_last_round_timestamp_seconds)\n- on (vantage) group_right ()\n{start}\n> bool 0"


def bridged(expr: str, name: str, p: Profile) -> str:
    """``expr``, or while the vantage exports no verdicts at all (a restart: scrapes fail, then no
    round has finished yet) the rule's own last value for up to ``restart_bridge``: a restart
    neither resolves a page nor, once the verdicts are back, raises it again."""
    return (
        f"(\n{indent(expr)}\n)\n"
        f"or on (vantage, service)\n"
        f"(\n  last_over_time({name}[{p.restart_bridge}])\n"
        f"  unless on (vantage, service) msgreach_service_verdict\n)"
    )


def indent(text: str, by: int = 2) -> str:
    return "\n".join((" " * by + line) if line else line for line in text.splitlines())


def service_state(verdict_matcher: str) -> str:
    """1 when the service's current verdict matches, 0 otherwise (one series per vantage/service)."""
    return (
        f'max by (vantage, service) (msgreach_service_verdict{{verdict{verdict_matcher}}} == 1)\n'
        f"or on (vantage, service)\n"
        f"max by (vantage, service) (msgreach_service_verdict) * 0"
    )


@dataclass
class Rule:
    doc: str
    body: dict


def record(name: str, expr: str, doc: str) -> Rule:
    return Rule(doc, {"record": name, "expr": expr})


def alert(name: str, expr: str, doc: str, *, for_: str | None, labels: dict, annotations: dict) -> Rule:
    body: dict = {"alert": name, "expr": expr}
    if for_:
        body["for"] = for_
    body["labels"] = labels
    body["annotations"] = {**annotations, "runbook_url": runbook_url(name)}
    return Rule(doc, body)


# Links in notifications (Telegram, e-mail, a pager) must be absolute: they are built on the
# external URL the operator gives Prometheus (`--web.external-url`, `$externalURL` in templates),
# where the centre's gateway serves Grafana at `/` and the repository's docs at `/docs/`
# (deploy/central). Elsewhere, serve or redirect those two paths at that URL (docs/operators.md).
EXTERNAL_URL = "{{ $externalURL }}"


def runbook_url(alertname: str) -> str:
    """The alert's section of docs/operators.md ("### <alertname>", whose anchor is its name in lower case)."""
    return f"{EXTERNAL_URL}/docs/operators.md#{alertname.lower()}"


def recording_rules(p: Profile) -> list[Rule]:
    w = p.block_window
    blocked_now = f'max by (vantage, service) (msgreach_service_verdict{{verdict=~"{BLOCK}"}}) == 1'
    technique_now = (
        "max without (verdict) (label_replace(\n"
        f'  max by (vantage, service, verdict) (msgreach_service_verdict{{verdict=~"{BLOCK}"}}) == 1,\n'
        '  "technique", "$1", "verdict", "(.+)"\n'
        "))"
    )
    in_allowlist = f'max by (vantage) (msgreach_vantage_verdict{{verdict="{ALLOWLIST}"}}) == 1'
    sustained = "vantage_service:msgreach_block_sustained:bool"
    active = "vantage_service_technique:msgreach_block:active"
    rules = [
        record(
            INFO,
            f"topk by (vantage) (1, max by (vantage, {INFO_LABELS}) (msgreach_vantage_info))\n"
            f"or on (vantage)\n"
            f"topk by (vantage) (1, max by (vantage, {INFO_LABELS}) (last_over_time(msgreach_vantage_info[{p.info_lookback}])))",
            "Where each vantage is (country, asn, network) and its role (`vantage`, or `control` for a\n"
            "control vantage), one series per vantage; remembered for a while after the vantage\n"
            "stops reporting so that its silence can still be routed by country.",
        ),
        record(
            "vantage:msgreach_last_round_age:seconds",
            with_info(
                f"time() - max by (vantage) (max_over_time(msgreach_last_round_timestamp_seconds[{p.info_lookback}]) > 0)",
                "vantage",
            ),
            "Seconds since the vantage's latest round ended; keeps growing when the target is not\n"
            "scraped at all (process dead, host down), so it also covers `up == 0`.",
        ),
        record(
            "vantage:msgreach_online:max",
            with_info("max by (vantage) (msgreach_vantage_online)", "vantage"),
            "1 while the vantage's controls are reachable (msgreach_vantage_online).",
        ),
        record(
            "vantage:msgreach_unreachable:bool",
            f"max by (vantage, {INFO_LABELS}) (\n"
            "  (vantage:msgreach_online:max == bool 0)\n"
            "  or on (vantage)\n"
            f"  (vantage:msgreach_last_round_age:seconds > bool {p.silent_after_seconds})\n"
            ")",
            "1 while the vantage is offline (its control sites fail) or silent (no round reaches the\n"
            "centre): what a regional shutdown looks like from each vantage.",
        ),
        record(
            "vantage:msgreach_allowlist:bool",
            f'max by (vantage) (max_over_time(msgreach_vantage_verdict{{verdict="{ALLOWLIST}"}}[{p.allowlist_memory}]))',
            f"1 when the vantage was in the `allowlist` regime at any scrape of the last {p.allowlist_memory}:\n"
            "its services fail for the regime, not for a service's own block; their block pages are muted.",
        ),
        record(
            "vantage:msgreach_allowlist_start_round:timestamp",
            block_start("vantage:msgreach_allowlist_start_round:timestamp", in_allowlist, "vantage", p),
            "The end time of the round that began the vantage's current run of `allowlist` verdicts.",
        ),
        record(
            "vantage:msgreach_allowlist_sustained:bool",
            with_info(
                later_round("vantage:msgreach_allowlist_start_round:timestamp", "vantage")
                + "\nor on (vantage)\nmax by (vantage) (msgreach_vantage_verdict) * 0",
                "vantage",
            )
            + "\nor on (vantage)\n(\n"
            + f"  last_over_time(vantage:msgreach_allowlist_sustained:bool[{p.restart_bridge}])\n"
            + "  unless on (vantage) msgreach_last_round_timestamp_seconds\n)",
            "1 when the vantage has said `allowlist` at every scrape over two consecutive rounds (the same\n"
            "noise guard as a block), else 0.",
        ),
        record(
            "vantage_service:msgreach_blocked:bool",
            with_info(service_state(f'=~"{BLOCK}"'), "vantage, service"),
            "1 when the service's current verdict at the vantage is a block verdict, else 0.",
        ),
        record(
            "vantage_service:msgreach_ok:bool",
            with_info(service_state('="ok"'), "vantage, service"),
            "1 when the service's current verdict at the vantage is ok, else 0.",
        ),
        record(
            "vantage_service:msgreach_failing:bool",
            with_info(service_state(f'=~"{FAILING}"'), "vantage, service"),
            "1 when the service fails at the vantage in any way (a block or down), else 0; 0 while the\n"
            "vantage is offline or the monitor could not measure (error). Used to tell a global outage\n"
            "seen from a control vantage.",
        ),
        record(
            "vantage_service:msgreach_reachable_ratio:max",
            with_info("max by (vantage, service) (msgreach_service_reachable_ratio)", "vantage, service"),
            "Share of the service's targets that are ok at the vantage.",
        ),
        record(
            "vantage_service:msgreach_block_start_round:timestamp",
            block_start("vantage_service:msgreach_block_start_round:timestamp", blocked_now, "vantage, service", p),
            "The end time of the round that began the service's current run of block verdicts (any\n"
            "technique) at the vantage; absent while the verdict is not a block. Kept through a restart.",
        ),
        record(
            sustained,
            bridged(
                with_info(later_round("vantage_service:msgreach_block_start_round:timestamp", "vantage, service"), "vantage, service")
                + "\nor on (vantage, service)\nvantage_service:msgreach_blocked:bool * 0",
                sustained,
                p,
            ),
            "1 when the service has had a block verdict (any technique) at every scrape since a round\n"
            "earlier than the current one: two consecutive blocked rounds, each already confirmed by the\n"
            "engine's immediate retry; the later one is usually the engine's confirmation round\n"
            "(schedule.confirm_after_seconds after the first). One failed round, a flapping link or a\n"
            "stuck probe never makes it 1.\n"
            f"Kept for up to {p.restart_bridge} while the vantage exports no verdicts (a restart).",
        ),
        record(
            "vantage_service:msgreach_block_held:bool",
            "vantage_service:msgreach_blocked:bool\n"
            f'* on (vantage, service) group_left () (1 - max by (vantage, service) (max_over_time(msgreach_service_verdict{{verdict=~"{NOT_BLOCK}"}}[{p.agree_window}])))',
            f"1 when the service has had a block verdict at every scrape of the last {p.agree_window} (one round\n"
            "may be enough): alone it pages nothing, two vantages of one country agreeing do.",
        ),
        record(
            "vantage_service:msgreach_block_agreed:bool",
            f'vantage_service:msgreach_block_held:bool{{role!="control", country!=""}} == 1\n'
            "unless on (vantage) (vantage:msgreach_allowlist:bool == 1)\n"
            "and on (country, service)\n"
            "(\n"
            "  count by (country, service) (\n"
            f'    vantage_service:msgreach_block_held:bool{{role!="control", country!=""}} == 1\n'
            "    unless on (vantage) (vantage:msgreach_allowlist:bool == 1)\n"
            f"  ) >= {p.wide_min_vantages}\n"
            ")",
            f"1 at each vantage whose block of the service is held while at least {p.wide_min_vantages} vantages\n"
            "of its country (hence also of one ASN) hold one too: corroboration instead of a second round.",
        ),
        record(
            active,
            bridged(
                with_info(
                    "max without (verdict) (label_replace(\n"
                    f'  max by (vantage, service, verdict) (msgreach_service_verdict{{verdict=~"{BLOCK}"}} == 1),\n'
                    '  "technique", "$1", "verdict", "(.+)"\n'
                    "))",
                    "vantage, service, technique",
                ),
                active,
                p,
            ),
            "The current block technique (= the block verdict) per vantage and service; absent when the\n"
            f"service is not blocked. Kept for up to {p.restart_bridge} while the vantage restarts.",
        ),
        record(
            "vantage_service_technique:msgreach_block_start_round:timestamp",
            block_start("vantage_service_technique:msgreach_block_start_round:timestamp", technique_now, "vantage, service, technique", p),
            "Per technique: the end time of the round that began the current run of that very technique.",
        ),
        record(
            "vantage_service_technique:msgreach_block_sustained:bool",
            with_info(later_round("vantage_service_technique:msgreach_block_start_round:timestamp", "vantage, service, technique"), "vantage, service, technique"),
            "Per technique: 1 when that very technique held at every scrape over two consecutive rounds\n"
            "(absent otherwise). The memory of it is what the technique-change alert compares.",
        ),
        record(
            "service:msgreach_failing_at_control:bool",
            "max by (service) (clamp_max(\n"
            f'  (avg_over_time(vantage_service:msgreach_failing:bool{{role="control"}}[{w}]) >= bool {p.control_share})\n'
            '  + vantage_service:msgreach_failing:bool{role="control"},\n'
            "  1\n"
            "))",
            f"1 when the service fails at a control vantage now, or failed there for at least {p.control_share:.0%}\n"
            f"of the last {w}: what looks like a block elsewhere is then likely a global outage.",
        ),
    ]
    # Summaries for dashboards and people; control vantages are left out of every count.
    probe_vantages = '{role!="control"}'
    online = "and on (vantage) (vantage:msgreach_online:max == 1)"
    for level, by in (("service", "service"), ("country_service", "country, service"), ("asn_service", "country, asn, network, service")):
        rules += [
            record(
                f"{level}:msgreach_vantages_blocked:sum",
                f"sum by ({by}) (vantage_service:msgreach_blocked:bool{probe_vantages})",
                "Vantages whose current verdict for the service is a block.",
            ),
            record(
                f"{level}:msgreach_vantages_block_sustained:sum",
                f"sum by ({by}) (vantage_service:msgreach_block_sustained:bool{probe_vantages})",
                "Vantages where the service has been blocked over two consecutive rounds or more.",
            ),
            record(
                f"{level}:msgreach_vantages_ok:sum",
                f"sum by ({by}) (vantage_service:msgreach_ok:bool{probe_vantages})",
                "Vantages where the service is ok.",
            ),
            record(
                f"{level}:msgreach_vantages_reporting:count",
                f"count by ({by}) (vantage_service:msgreach_ok:bool{probe_vantages} {online})",
                "Online vantages that report a verdict for the service.",
            ),
            record(
                f"{level}:msgreach_reachable_ratio:avg",
                f"avg by ({by}) (vantage_service:msgreach_reachable_ratio:max{probe_vantages} {online})",
                "Average share of the service's targets that are ok, over online vantages.",
            ),
        ]
    rules += [
        record(
            "country_service_verdict:msgreach_vantages:count",
            "count by (country, service, verdict) (\n"
            "  (max by (vantage, service, verdict) (msgreach_service_verdict) == 1)\n"
            f"  * on (vantage) group_left (country, role) {INFO}{probe_vantages}\n"
            ")",
            "How many vantages of each country currently give each verdict, per service.",
        ),
    ]
    for level, by in (("", ""), ("country", "country"), ("asn", "country, asn, network")):
        prefix = f"{level}:" if level else ":"
        grouping = f"by ({by}) " if by else ""
        rules += [
            record(
                f"{prefix}msgreach_vantages_online:sum",
                f"sum {grouping}(vantage:msgreach_online:max{probe_vantages})",
                "Vantages whose controls are reachable.",
            ),
            record(
                f"{prefix}msgreach_vantages:count",
                f"count {grouping}(vantage:msgreach_last_round_age:seconds{probe_vantages})",
                f"Vantages known (reported a round in the last {p.info_lookback}).",
            ),
        ]
    return rules


WIDE_RUNBOOK = (
    "1. Open the Overview dashboard, table 'Current verdicts by country': which techniques, which networks.\n"
    "2. scope=country over several ASNs: a national policy (national DNS, TSPU rule); scope=asn: that ISP.\n"
    "3. The per-vantage MsgreachSuddenBlock alerts (same group) carry the technique of each vantage."
)


def dashboard_link(name: str, params: str) -> str:
    return f"{EXTERNAL_URL}/d/msgreach-{name}?{params}"


def alerting_rules(p: Profile) -> list[Rule]:
    w = p.block_window
    not_control = '{role!="control"}'
    suppressed = "unless on (service) (service:msgreach_failing_at_control:bool == 1)"
    regime = "unless on (vantage) (vantage:msgreach_allowlist:bool == 1)"
    # Runbooks are static text (the labels are in summary/description/dashboard): one place to read.
    evidence = (
        'Evidence: `msgreach_target_verdict{vantage="<vantage>",service="<service>"} == 1` says which\n'
        "targets fail; `msgreach_check_success` and `msgreach_check_failures_total` say which check and\n"
        "with which failure string; `msgreach once --service <service> --format json` on the vantage\n"
        "prints the full evidence of one round."
    )
    return [
        alert(
            "MsgreachSuddenBlock",
            f"vantage_service_technique:msgreach_block:active{not_control}\n"
            "* on (vantage, service) group_left ()\n"
            "(\n"
            "  (\n"
            "    vantage_service:msgreach_block_sustained:bool == 1\n"
            "    or on (vantage, service)\n"
            "    vantage_service:msgreach_block_agreed:bool == 1\n"
            "  )\n"
            "  and on (vantage, service)\n"
            "  (\n"
            f'    max by (vantage, service) (max_over_time(msgreach_service_verdict{{verdict="ok"}}[{p.ok_lookback}])) == 1\n'
            "    or on (vantage, service)\n"
            '    max by (vantage, service) (ALERTS{alertname="MsgreachSuddenBlock", alertstate="firing"})\n'
            "  )\n"
            f"  {suppressed}\n"
            f"  {regime}\n"
            ")",
            f"A service reachable from a vantage within the last {p.ok_lookback} has had a block verdict at\n"
            "every scrape over two consecutive rounds (each confirmed by the engine's retry; the second is usually the\n"
            "engine's confirmation round, 20 s after the first), or at every scrape for\n"
            f"{p.agree_window} while another vantage of the same country says the same. Once firing it stays\n"
            "firing (through ALERTS) for as long as the block is sustained, whatever the lookback, and\n"
            "through a restart of the vantage; its `technique` label follows the current verdict. Not\n"
            "raised at control vantages, nor while the service also fails at a control vantage (a global\n"
            "outage), nor at a vantage in the `allowlist` regime (MsgreachAllowlistRegime pages for that).",
            for_=None,
            labels={"severity": "critical", "category": "block"},
            annotations={
                "summary": "{{ $labels.service }} blocked from {{ $labels.vantage }} ({{ $labels.country }} AS{{ $labels.asn }}) by {{ $labels.technique }}",
                "description": (
                    f"{{{{ $labels.service }}}} was reachable from vantage {{{{ $labels.vantage }}}} ({{{{ $labels.network }}}}) within the last {p.ok_lookback}; "
                    f"now every verdict is a block, over 2 consecutive rounds or confirmed by another vantage of {{{{ $labels.country }}}}. Current technique: {{{{ $labels.technique }}}}."
                ),
                "runbook": (
                    "1. Check the vantage is healthy: no MsgreachVantageOffline/Silent for it (those inhibit this alert).\n"
                    "2. Is it wide? A MsgreachWideBlock for the same country or ASN means a policy, not a local fault.\n"
                    "3. " + evidence + "\n"
                    "4. Compare with OONI Explorer for the same country/ASN and service."
                ),
                "dashboard": dashboard_link("service", "var-service={{ $labels.service }}&var-vantage={{ $labels.vantage }}"),
            },
        ),
        alert(
            "MsgreachWideBlock",
            "count by (country, service) (\n"
            f'  vantage_service:msgreach_block_sustained:bool{{role!="control", country!=""}} == 1\n'
            f"  {suppressed}\n"
            f"  {regime}\n"
            f") >= {p.wide_min_vantages}",
            f"The same service has a sustained block verdict from at least {p.wide_min_vantages} vantages of one\n"
            "country: a policy rather than a local fault. Does not need the service to have been\n"
            "reachable before (a standing national block is still wide).",
            for_=None,
            labels={"severity": "critical", "category": "block", "scope": "country"},
            annotations={
                "summary": "{{ $labels.service }} blocked from {{ $value }} vantages in {{ $labels.country }}",
                "description": "{{ $value }} vantages in {{ $labels.country }} have given {{ $labels.service }} a block verdict over two rounds or more.",
                "runbook": WIDE_RUNBOOK,
                "dashboard": dashboard_link("overview", "var-country={{ $labels.country }}&var-service={{ $labels.service }}"),
            },
        ),
        alert(
            "MsgreachWideBlock",
            "count by (country, asn, service) (\n"
            f'  vantage_service:msgreach_block_sustained:bool{{role!="control", asn!=""}} == 1\n'
            f"  {suppressed}\n"
            f"  {regime}\n"
            f") >= {p.wide_min_vantages}",
            f"The same service has a sustained block verdict from at least {p.wide_min_vantages} vantages of one ASN.",
            for_=None,
            labels={"severity": "critical", "category": "block", "scope": "asn"},
            annotations={
                "summary": "{{ $labels.service }} blocked from {{ $value }} vantages in AS{{ $labels.asn }} ({{ $labels.country }})",
                "description": "{{ $value }} vantages in AS{{ $labels.asn }} have given {{ $labels.service }} a block verdict over two rounds or more.",
                "runbook": WIDE_RUNBOOK,
                "dashboard": dashboard_link("overview", "var-country={{ $labels.country }}&var-service={{ $labels.service }}"),
            },
        ),
        alert(
            "MsgreachTechniqueChange",
            "max without (technique) (label_replace(\n"
            f"  max_over_time(vantage_service_technique:msgreach_block_sustained:bool{not_control}[{p.technique_memory}]) == 1\n"
            "  unless on (vantage, service, technique) (vantage_service_technique:msgreach_block_sustained:bool == 1),\n"
            '  "previous_technique", "$1", "technique", "(.+)"\n'
            "))\n"
            "* on (vantage, service) group_left (technique)\n"
            "(\n"
            f"  vantage_service_technique:msgreach_block_sustained:bool{not_control} == 1\n"
            f"  {suppressed}\n"
            f"  {regime}\n"
            ")",
            f"The block technique changed: another technique was sustained at the vantage within the last\n"
            f"{p.technique_memory} and a new one is now sustained (e.g. throttled -> ip_blocked). A technique that\n"
            "flaps from round to round is never sustained and never raises this. Resolves by itself once the\n"
            "previous technique leaves the memory window.",
            for_=None,
            labels={"severity": "warning", "category": "block"},
            annotations={
                "summary": "{{ $labels.service }} at {{ $labels.vantage }}: {{ $labels.previous_technique }} -> {{ $labels.technique }}",
                "description": (
                    "At vantage {{ $labels.vantage }} ({{ $labels.country }} AS{{ $labels.asn }}) the block of {{ $labels.service }} "
                    "changed from {{ $labels.previous_technique }} to {{ $labels.technique }} (each sustained over two rounds)."
                ),
                "runbook": (
                    "A censor changing method is news: throttling turning into a full block often precedes a\n"
                    "national block. " + evidence
                ),
                "dashboard": dashboard_link("service", "var-service={{ $labels.service }}&var-vantage={{ $labels.vantage }}"),
            },
        ),
        alert(
            "MsgreachVantageOffline",
            "vantage:msgreach_online:max == 0",
            "The vantage's own controls fail: it judges nothing else (its services say vantage_offline).\n"
            "Inhibits the block alerts of that vantage in Alertmanager.",
            for_=p.offline_for,
            labels={"severity": "warning", "category": "vantage"},
            annotations={
                "summary": "Vantage {{ $labels.vantage }} ({{ $labels.country }} AS{{ $labels.asn }}) is offline",
                "description": f"msgreach_vantage_online has been 0 for {p.offline_for}: the vantage cannot reach its control sites; no verdict from it means anything.",
                "runbook": (
                    "1. Usually the volunteer's connection: ask them, or wait.\n"
                    "2. If every vantage of a country goes offline at once, suspect a shutdown (compare IODA).\n"
                    "3. `msgreach_check_success{service=\"controls\"}` shows which control check fails."
                ),
                "dashboard": dashboard_link("vantage", "var-vantage={{ $labels.vantage }}"),
            },
        ),
        alert(
            "MsgreachVantageSilent",
            f"vantage:msgreach_last_round_age:seconds > {p.silent_after_seconds}",
            f"No round from the vantage for {p.silent_after_seconds} s: msgreach stopped, hangs, or is not scraped\n"
            f"(target down). Remembered for {p.info_lookback} after the last round. Inhibits the block alerts of\n"
            "that vantage and its offline alert.",
            for_=None,
            labels={"severity": "warning", "category": "vantage"},
            annotations={
                "summary": "Vantage {{ $labels.vantage }} ({{ $labels.country }}) sent no round for {{ $value | humanizeDuration }}",
                "description": "The newest msgreach_last_round_timestamp_seconds of {{ $labels.vantage }} is {{ $value | humanizeDuration }} old.",
                "runbook": (
                    "1. `up{job=~\"msgreach.*\"}`: is the target scraped at all?\n"
                    "2. On the vantage: `systemctl status msgreach`, `curl localhost:9910/healthz`.\n"
                    "3. A round longer than the interval (many timeouts) also delays rounds: see round duration on the Vantage dashboard."
                ),
                "dashboard": dashboard_link("vantage", "var-vantage={{ $labels.vantage }}"),
            },
        ),
        alert(
            "MsgreachAllowlistRegime",
            "count by (country, asn) (\n"
            f"  vantage:msgreach_allowlist_sustained:bool{not_control} == 1\n"
            ")",
            "Vantages of one country and ASN are in the `allowlist` regime: their domestic control sites\n"
            "pass and every international one fails (a regional shutdown where only approved services\n"
            "work), over two consecutive rounds. One page per country/ASN, whatever the number of\n"
            "vantages and services; the per-service block pages of those vantages are muted meanwhile.",
            for_=None,
            labels={"severity": "critical", "category": "regime"},
            annotations={
                "summary": "Allowlist regime in {{ $labels.country }} AS{{ $labels.asn }}: {{ $value }} vantage(s) reach only approved services",
                "description": (
                    "{{ $value }} vantage(s) in AS{{ $labels.asn }} ({{ $labels.country }}) reach their domestic control sites but no "
                    "international one: every foreign service fails there for the regime, not for a block of its own."
                ),
                "runbook": (
                    "1. Vantage dashboard, 'Vantage verdict' panel: which vantages, since when.\n"
                    "2. `msgreach_check_success{service=\"controls\"}` of those vantages: which international control sites fail, at which check.\n"
                    "3. Compare with IODA and OONI for the region; the services' own verdicts stay on the dashboards as evidence."
                ),
                "dashboard": dashboard_link("overview", "var-country={{ $labels.country }}"),
            },
        ),
        alert(
            "MsgreachRegionalShutdown",
            "count by (country, asn) (\n"
            f'  vantage:msgreach_unreachable:bool{{role!="control", asn!=""}} == 1\n'
            f") >= {p.shutdown_min_vantages}",
            f"At least {p.shutdown_min_vantages} vantages of one ASN are offline or silent together for {p.offline_for}: a\n"
            "regional shutdown rather than volunteers' connections. One page per country/ASN; it inhibits\n"
            "the per-vantage offline/silent warnings of that ASN in Alertmanager (offline vantages give no\n"
            "block verdicts, so their per-service pages are quiet already).",
            for_=p.offline_for,
            labels={"severity": "critical", "category": "regime"},
            annotations={
                "summary": "Possible regional shutdown in {{ $labels.country }} AS{{ $labels.asn }}: {{ $value }} vantages offline",
                "description": f"{{{{ $value }}}} vantages in AS{{{{ $labels.asn }}}} ({{{{ $labels.country }}}}) have been offline or silent for {p.offline_for}.",
                "runbook": (
                    "1. Compare with IODA (BGP, active probing) for the ASN and region.\n"
                    "2. Vantage dashboard: did the vantages go offline at the same minute (a shutdown) or one by one?\n"
                    "3. Ask the volunteers through an out-of-band channel only if it is safe for them."
                ),
                "dashboard": dashboard_link("overview", "var-country={{ $labels.country }}"),
            },
        ),
        alert(
            "MsgreachServiceFailingAtControl",
            "service:msgreach_failing_at_control:bool == 1",
            "The service fails at a control vantage too: block alerts for it are held back everywhere\n"
            "(a global outage looks like a block from each vantage alone).",
            for_=None,
            labels={"severity": "info", "category": "outage"},
            annotations={
                "summary": "{{ $labels.service }} fails at a control vantage: block alerts for it are suppressed",
                "description": f"{{{{ $labels.service }}}} failed at a control vantage during at least {p.control_share:.0%} of the last {w}; it is probably down for everyone.",
                "runbook": "Check the service's status page. Block alerts resume by themselves once the control vantage sees it again.",
                "dashboard": dashboard_link("service", "var-service={{ $labels.service }}"),
            },
        ),
        alert(
            "MsgreachHelperLineDown",
            "max by (vantage, helper) (msgreach_helper_up) == 0",
            "The line from a vantage to its helper abroad fails (frozen, dripping, reset, garbage): the\n"
            "helper-dependent targets read `error` and the control measurements are missing; no verdict\n"
            "changes for it. Shown, never paged (severity info: the digest receiver).",
            for_=p.helper_down_for,
            labels={"severity": "info", "category": "helper"},
            annotations={
                "summary": "{{ $labels.vantage }} cannot use its helper {{ $labels.helper }}: the line to it fails",
                "description": (
                    f"msgreach_helper_up of {{{{ $labels.vantage }}}} for helper {{{{ $labels.helper }}}} has been 0 for {p.helper_down_for}: "
                    "calls, circumvention and freeze keys are not measured there, and its blocks are not compared with the helper's."
                ),
                "runbook": (
                    "1. The vantage's status page (or /status.json, `helpers`) says how the line fails: frozen after N KB, reset, dripping.\n"
                    "2. A line frozen at a few KB: the helper's address is in a range the censor freezes; move the helper, or put it behind TLS.\n"
                    "3. Refused (HTTP 401/429): the secret or the clock of the vantage, or the helper's per-client limits."
                ),
                "dashboard": dashboard_link("vantage", "var-vantage={{ $labels.vantage }}"),
            },
        ),
    ]


# --- YAML output (written by hand to keep the comments; parsed back to check) ---------------------


def scalar(value: object) -> str:
    return yaml.safe_dump(value, default_style='"', width=1 << 20).strip() if isinstance(value, str) else str(value)


def emit_rule(rule: Rule) -> str:
    out = [f"      # {line}".rstrip() for line in rule.doc.splitlines()]
    first = True
    for key, value in rule.body.items():
        lead = "      - " if first else "        "
        first = False
        if key == "expr":
            out.append(f"{lead}expr: |-")
            out += [f"          {line}" for line in value.splitlines()]
        elif isinstance(value, dict):
            out.append(f"{lead}{key}:")
            for k, v in value.items():
                if isinstance(v, str) and "\n" in v:
                    out.append(f"          {k}: |-")
                    out += [f"            {line}".rstrip() for line in v.splitlines()]
                else:
                    out.append(f"          {k}: {scalar(v)}")
        else:
            out.append(f"{lead}{key}: {value}")
    return "\n".join(out)


def render(p: Profile) -> str:
    header = [
        "# GENERATED by configs/prometheus/generate_rules.py -- do not edit; edit the generator and run it.",
        f"# Profile: {p.name}. " + p.notes.splitlines()[0],
        *[f"# {line}" for line in p.notes.splitlines()[1:]],
        "# What each rule means and how to load it: docs/operators.md.",
        "groups:",
    ]
    # ONE group on purpose: rules of a group run in order, so every alert sees the recording rules
    # of the same evaluation. Separate groups run in no fixed order (a random one-interval lag).
    rules = recording_rules(p) + alerting_rules(p)
    body = [
        f"  - name: msgreach\n    interval: {p.eval_interval}\n    rules:",
        "\n\n".join(emit_rule(r) for r in recording_rules(p)),
        "",
        "      # ---- alerts (after the recording rules they read) ----",
        "",
        "\n\n".join(emit_rule(r) for r in alerting_rules(p)),
    ]
    text = "\n".join(header + body) + "\n"
    parsed = yaml.safe_load(text)
    expected = [{"name": "msgreach", "interval": p.eval_interval, "rules": [r.body for r in rules]}]
    if parsed != {"groups": expected}:  # the hand-written YAML must say exactly what was meant
        raise SystemExit(f"internal error: rendered YAML for {p.name} does not parse back to the rules")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs from the generated one")
    args = parser.parse_args(argv)
    stale = []
    for p in PROFILES.values():
        text = render(p)
        if args.check:
            if not p.path.exists() or p.path.read_text() != text:
                stale.append(p.path)
        else:
            p.path.parent.mkdir(parents=True, exist_ok=True)
            p.path.write_text(text)
            print(f"wrote {p.path.relative_to(HERE.parent.parent)}")
    for path in stale:
        print(f"stale: {path} (run python configs/prometheus/generate_rules.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
