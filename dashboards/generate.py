"""msgreach's Grafana dashboards, written as code with grafana-foundation-sdk.

    python -m dashboards.generate           # rewrite dashboards/*.json (+ queries.yaml)
    python -m dashboards.generate --check   # exit 1 if a committed JSON differs from the code

Three dashboards (uids are stable: the alert annotations link to them):

* ``msgreach-overview``: verdict of every service at every vantage over time, current verdicts
  by country, active alerts, vantages online;
* ``msgreach-service``: per target and check, success over time, failure reasons, DNS
  consistency and lookup times per resolver, TLS handshake times, certificates, throughput;
* ``msgreach-vantage``: online state, last round, round duration, controls, resolver health.

Template variables on each: ``datasource``, ``country``, ``vantage`` (limited to the chosen
countries), ``service``. Every query is also listed, with what it needs to return data, in
``dashboards/queries.yaml``, so that tests/test_dashboard_queries.py can run each one against a
real Prometheus and fail on a query that does not parse or returns nothing where data is
guaranteed.

Requires ``grafana-foundation-sdk`` (pinned in dashboards/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).resolve().parent
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

# What a query needs to return data (see tests/test_dashboard_queries.py):
#   rounds     msgreach completed a round (verdicts, online, rounds, info, control checks)
#   rules      the shipped recording rules are loaded (configs/prometheus/rules)
#   online     a vantage is online, so the services' own checks ran
#   failures   some check failed (msgreach_check_failures_total has a series)
#   blocks     some service has a block verdict
#   alerts     some msgreach alert is pending or firing
#   dns        a DNS check measured a resolver; tls: a TLS handshake was attempted;
#   cert       a certificate was seen; throughput: a download was measured
#   dns_failures  a DNS check failed (a DNS block or a dead resolver)
NEEDS = frozenset({"rounds", "rules", "online", "failures", "dns_failures", "blocks", "alerts", "dns", "tls", "cert", "throughput"})

# Service/target verdicts as numbers for state timelines, with their colours: greens are fine,
# yellows/oranges degrade, reds block, greys mean "no verdict about censorship".
VERDICTS: list[tuple[str, int, str]] = [
    ("ok", 0, "green"),
    ("partial", 1, "yellow"),
    ("throttled", 2, "orange"),
    ("quic_blocked", 3, "orange"),
    ("udp_blocked", 4, "orange"),
    ("protocol_blocked", 5, "red"),
    ("http_blocked", 6, "red"),
    ("tls_mitm", 7, "dark-red"),
    ("tls_blocked", 8, "red"),
    ("sni_blocked", 9, "red"),
    ("ip_blocked", 10, "dark-red"),
    ("dns_tampered", 11, "purple"),
    ("dns_blocked", 12, "dark-purple"),
    ("down", 20, "text"),
    ("vantage_offline", 21, "blue"),
]


def verdict_code(metric: str, selector: str, by: str) -> str:
    """The current verdict of a state set as one number per series (see VERDICTS).

    The lookup table is inlined (label_replace on vector()), so the panel needs no recording rule;
    a verdict missing from the table shows as a gap rather than as a wrong colour."""
    table_expr = " or ".join(f'label_replace(vector({code}), "verdict", "{name}", "", "")' for name, code, _ in VERDICTS)
    return f"max by ({by}) (({metric}{{{selector}}} == 1) * on (verdict) group_left () ({table_expr}))"


def verdict_mappings() -> list[dm.ValueMap]:
    return [
        dm.ValueMap(options={str(code): dm.ValueMappingResult(text=name, color=color, index=i) for i, (name, code, color) in enumerate(VERDICTS)})
    ]


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool
    needs: frozenset[str]


_QUERIES: list[Query] = []


class Board:
    """A dashboard under construction that remembers what each of its queries needs."""

    def __init__(self, uid: str, title: str, description: str):
        self.uid = uid
        self.builder = (
            db.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["msgreach"])
            .time("now-6h", "now")
            .refresh("1m")
            .timezone("utc")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .editable()
        )
        self.queries: list[Query] = []

    def target(self, panel: str, ref_id: str, expr: str, legend: str = "", *, instant: bool = False, table_format: bool = False, needs: tuple[str, ...] = ("rounds",)):
        unknown = set(needs) - NEEDS
        if unknown:
            raise ValueError(f"unknown needs {unknown}")
        self.queries.append(Query(self.uid, panel, ref_id, expr, instant, frozenset(needs)))
        q = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DS)
        if legend:
            q = q.legend_format(legend)
        if instant:
            q = q.instant()
        else:
            q = q.range()
        if table_format:
            q = q.format(pm.PromQueryFormat.TABLE)
        return q

    def _next_id(self) -> int:
        self._ids = getattr(self, "_ids", 0) + 1  # stable ids: links to a panel survive regeneration
        return self._ids

    def row(self, title: str) -> None:
        self.builder = self.builder.with_row(db.Row(title).id(self._next_id()))

    def panel(self, panel) -> None:
        self.builder = self.builder.with_panel(panel.id(self._next_id()).datasource(DS))

    def build(self) -> dict:
        _QUERIES.extend(self.queries)
        return json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))


# --- template variables ---------------------------------------------------------------------------


def variables(b: Board, *, service_multi: bool = True, vantage_multi: bool = True) -> None:
    b.builder = (
        b.builder.with_variable(
            db.DatasourceVariable("datasource").label("Data source").type("prometheus").current(
                dm.VariableOption(selected=True, text="Prometheus", value="prometheus")
            )
        )
        .with_variable(
            db.QueryVariable("country")
            .label("Country")
            .datasource(DS)
            .query({"query": "label_values(msgreach_vantage_info, country)", "refId": "country"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")  # "All" also keeps vantages that declared no country
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
        .with_variable(
            db.QueryVariable("vantage")
            .label("Vantage")
            .datasource(DS)
            .query({"query": 'label_values(msgreach_vantage_info{country=~"$country"}, vantage)', "refId": "vantage"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(vantage_multi)
            .include_all(True)  # no all_value: "All" means all vantages of the chosen countries
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
        .with_variable(
            db.QueryVariable("service")
            .label("Service")
            .datasource(DS)
            .query({"query": 'label_values(msgreach_service_verdict{vantage=~"$vantage"}, service)', "refId": "service"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(service_multi)
            .include_all(True)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    )


def links(b: Board) -> None:
    b.builder = b.builder.link(
        db.DashboardLink("msgreach").type(dm.DashboardLinkType.DASHBOARDS).tags(["msgreach"]).as_dropdown(True).include_vars(True).keep_time(True)
    )


V = 'vantage=~"$vantage"'
VS = 'vantage=~"$vantage",service=~"$service"'


def legend_bottom() -> cb.VizLegendOptions:
    return cb.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.BOTTOM).show_legend(True)


def ts(title: str, description: str, unit: str = "short", w: int = 12, h: int = 8) -> timeseries.Panel:
    return timeseries.Panel().title(title).description(description).unit(unit).span(w).height(h).legend(legend_bottom())


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(value=v, color=c) for v, c in steps])


# --- Overview -------------------------------------------------------------------------------------


def overview() -> dict:
    b = Board(
        "msgreach-overview",
        "msgreach / Overview",
        "Is WhatsApp/Telegram/Signal reachable from each vantage, and if not, how is it blocked?",
    )
    variables(b)
    links(b)

    t = "Vantages online"
    b.panel(
        stat.Panel().title(t).description("Vantages whose control sites are reachable, out of those that reported a round.").span(6).height(5)
        .with_target(b.target(t, "A", f"sum(max by (vantage) (msgreach_vantage_online{{{V}}}))", "online", instant=True))
        .with_target(b.target(t, "B", f"count(max by (vantage) (msgreach_vantage_online{{{V}}}))", "known", instant=True))
        .color_mode(common.BigValueColorMode.VALUE).graph_mode(common.BigValueGraphMode.AREA)
    )
    t = "Vantages offline or silent"
    b.panel(
        stat.Panel().title(t).description("Offline: controls unreachable. Silent: no round for 5 minutes (process down or not scraped).").span(6).height(5)
        .with_target(b.target(t, "A", f"count(max by (vantage) (msgreach_vantage_online{{{V}}}) == 0) or vector(0)", "offline", instant=True))
        .with_target(b.target(t, "B", f"count(vantage:msgreach_last_round_age:seconds{{{V}}} > 300) or vector(0)", "silent", instant=True, needs=("rules",)))
        .thresholds(thresholds((None, "green"), (1, "orange")))
    )
    t = "Blocked (vantage x service)"
    b.panel(
        stat.Panel().title(t).description("Vantage/service pairs whose current verdict is a block (anything but ok, down, vantage_offline).").span(6).height(5)
        .with_target(b.target(t, "A", f"sum(vantage_service:msgreach_blocked:bool{{{VS}}})", "now", instant=True, needs=("rules",)))
        .with_target(b.target(t, "B", f"sum(vantage_service:msgreach_block_sustained:bool{{{VS}}})", "sustained", instant=True, needs=("rules",)))
        .thresholds(thresholds((None, "green"), (1, "red")))
    )
    t = "Alerts firing"
    b.panel(
        stat.Panel().title(t).description("msgreach alerts firing now, by severity.").span(6).height(5)
        .with_target(b.target(t, "A", 'count by (severity) (ALERTS{alertname=~"Msgreach.*",alertstate="firing"}) or vector(0)', "{{severity}}", instant=True))
        .thresholds(thresholds((None, "green"), (1, "red")))
    )

    b.row("Verdicts")
    t = "Service verdict per vantage"
    b.panel(
        statetimeline.Panel().title(t)
        .description("The service verdict of each round (colours: green ok, yellow/orange degraded, red blocked, purple DNS, grey down, blue vantage offline).")
        .span(24).height(12)
        .with_target(b.target(t, "A", verdict_code("msgreach_service_verdict", VS, "vantage, service"), "{{vantage}} / {{service}}"))
        .mappings(verdict_mappings())
        .show_value(common.VisibilityMode.NEVER).merge_values(True).row_height(0.8)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )
    t = "Current verdicts by country"
    b.panel(
        table.Panel().title(t)
        .description("How many vantages of each country give each verdict now (control vantages excluded).")
        .span(12).height(10)
        .with_target(b.target(t, "A", 'sum by (country, service, verdict) (country_service_verdict:msgreach_vantages:count{country=~"$country",service=~"$service"})', instant=True, table_format=True, needs=("rules",)))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {"Value": "vantages"}}))
    )
    t = "Reachable share by country"
    b.panel(
        table.Panel().title(t)
        .description("Average share of each service's targets that are ok, over the country's online vantages; and how many vantages are blocked.")
        .span(12).height(10)
        .with_target(b.target(t, "A", 'country_service:msgreach_reachable_ratio:avg{country=~"$country",service=~"$service"}', instant=True, table_format=True, needs=("rules",)))
        .with_target(b.target(t, "B", 'country_service:msgreach_vantages_blocked:sum{country=~"$country",service=~"$service"}', instant=True, table_format=True, needs=("rules",)))
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {"Value #A": "reachable share", "Value #B": "vantages blocked"}}))
    )

    b.row("Alerts")
    t = "Active alerts"
    b.panel(
        table.Panel().title(t)
        .description("msgreach alerts pending or firing now (Prometheus' ALERTS series).")
        .span(24).height(8)
        .with_target(b.target(
            t, "A",
            'max by (alertname, alertstate, severity, country, vantage, service, technique, scope) '
            '(ALERTS{alertname=~"Msgreach.*",country=~"$country|",vantage=~"$vantage|",service=~"$service|"})',
            instant=True, table_format=True, needs=("alerts",),
        ))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}))
    )

    b.row("Trends")
    t = "Reachable share by country over time"
    b.panel(
        ts(t, "Average share of targets ok over online vantages, per country and service.", "percentunit")
        .with_target(b.target(t, "A", 'country_service:msgreach_reachable_ratio:avg{country=~"$country",service=~"$service"}', "{{country}} {{service}}", needs=("rules",)))
        .min(0).max(1)
    )
    t = "Vantages blocked per service"
    b.panel(
        ts(t, "Vantages whose verdict for the service is a block, over time (control vantages excluded).")
        .with_target(b.target(t, "A", 'service:msgreach_vantages_blocked:sum{service=~"$service"}', "{{service}} now", needs=("rules",)))
        .with_target(b.target(t, "B", 'service:msgreach_vantages_block_sustained:sum{service=~"$service"}', "{{service}} sustained", needs=("rules",)))
    )
    return b.build()


# --- Service --------------------------------------------------------------------------------------


def service() -> dict:
    b = Board(
        "msgreach-service",
        "msgreach / Service",
        "One service in depth: which targets and checks fail, with which failure, DNS, TLS, throughput.",
    )
    variables(b)
    links(b)

    t = "Target verdict"
    b.panel(
        statetimeline.Panel().title(t)
        .description("The verdict of each target, round after round.")
        .span(24).height(12)
        .with_target(b.target(t, "A", verdict_code("msgreach_target_verdict", VS, "vantage, service, target"), "{{vantage}} / {{service}} / {{target}}"))
        .mappings(verdict_mappings())
        .show_value(common.VisibilityMode.NEVER).merge_values(True).row_height(0.8)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )
    t = "Reachable share of targets"
    b.panel(
        ts(t, "msgreach_service_reachable_ratio: share of the service's targets that are ok.", "percentunit")
        .with_target(b.target(t, "A", f"max by (vantage, service) (msgreach_service_reachable_ratio{{{VS}}})", "{{vantage}} {{service}}"))
        .min(0).max(1)
    )
    t = "Check success by target and check"
    b.panel(
        ts(t, "1 when the check passed in the latest round (msgreach_check_success), per vantage, target and check.")
        .with_target(b.target(t, "A", f"max by (vantage, target, check) (msgreach_check_success{{{VS}}})", "{{vantage}} {{target}} {{check}}", needs=("rounds", "online")))
        .min(0).max(1)
    )

    b.row("Failures")
    t = "Failure reasons"
    b.panel(
        ts(t, "Failed checks per failure string (OONI's vocabulary: connection_reset, generic_timeout_error, dns_nxdomain_error, ...).", w=24)
        .with_target(b.target(
            t, "A", f"sum by (check, failure) (increase(msgreach_check_failures_total{{{VS}}}[$__rate_interval]))", "{{check}}: {{failure}}",
            needs=("rounds", "online", "failures"),
        ))
        .draw_style(common.GraphDrawStyle.BARS).stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    )
    t = "Failures by target (last hour)"
    b.panel(
        table.Panel().title(t).description("Failed checks in the last hour by vantage, target, check and failure.").span(24).height(8)
        .with_target(b.target(
            t, "A", f"sum by (vantage, target, check, failure) (increase(msgreach_check_failures_total{{{VS}}}[1h])) > 0",
            instant=True, table_format=True, needs=("rounds", "online", "failures"),
        ))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {"Value": "failures"}}))
    )

    b.row("DNS")
    t = "DNS consistency"
    b.panel(
        ts(t, "Targets whose verdict says DNS: dns_blocked (the vantage's resolver fails while a control answers) or dns_tampered (bogon/block-page/foreign answers).")
        .with_target(b.target(
            t, "A", f'sum by (vantage, verdict) (msgreach_target_verdict{{{VS},verdict=~"dns_blocked|dns_tampered"}})', "{{vantage}} {{verdict}}",
        ))
        .with_target(b.target(t, "B", f'avg by (vantage) (msgreach_check_success{{{VS},check="dns"}})', "{{vantage}} DNS checks ok (share)", needs=("rounds", "online")))
    )
    t = "DNS lookup duration per resolver"
    b.panel(
        ts(t, "msgreach_dns_lookup_duration_seconds, slowest target per vantage and resolver.", "s")
        .with_target(b.target(t, "A", f"max by (vantage, resolver) (msgreach_dns_lookup_duration_seconds{{{VS}}})", "{{vantage}} {{resolver}}", needs=("rounds", "online", "dns")))
    )

    b.row("TLS and throughput")
    t = "TLS handshake time"
    b.panel(
        ts(t, 'msgreach_check_duration_seconds{check="tls"}: time of the TLS check (handshake with the real SNI), per target.', "s")
        .with_target(b.target(t, "A", f'max by (vantage, target) (msgreach_check_duration_seconds{{{VS},check="tls"}})', "{{vantage}} {{target}}", needs=("rounds", "online", "tls")))
    )
    t = "Certificate expiry"
    b.panel(
        ts(t, "Days until the presented certificate expires (also when it did not validate: a MITM certificate shows here too).", "d")
        .with_target(b.target(t, "A", f"(max by (vantage, target) (msgreach_tls_cert_not_after_timestamp_seconds{{{VS}}}) - time()) / 86400", "{{vantage}} {{target}}", needs=("rounds", "online", "cert")))
    )
    t = "Download throughput"
    b.panel(
        ts(t, "msgreach_download_throughput_bytes_per_second of each service's test object (throttling shows here first).", "Bps", w=24)
        .with_target(b.target(t, "A", f"max by (vantage, service, target) (msgreach_download_throughput_bytes_per_second{{{VS}}})", "{{vantage}} {{service}} {{target}}", needs=("rounds", "online", "throughput")))
    )
    t = "Check durations"
    b.panel(
        ts(t, "msgreach_check_duration_seconds per check (slowest target): timeouts show as flat lines at the configured timeout.", "s", w=24)
        .with_target(b.target(t, "A", f"max by (vantage, check) (msgreach_check_duration_seconds{{{VS}}})", "{{vantage}} {{check}}", needs=("rounds", "online")))
    )
    return b.build()


# --- Vantage --------------------------------------------------------------------------------------


def vantage() -> dict:
    b = Board(
        "msgreach-vantage",
        "msgreach / Vantage",
        "Health of the vantages themselves: online, rounds arriving, round duration, controls, resolvers.",
    )
    variables(b)
    links(b)

    t = "Online"
    b.panel(
        stat.Panel().title(t).description("msgreach_vantage_online: 1 when the vantage's control sites are reachable.").span(8).height(5)
        .with_target(b.target(t, "A", f"max by (vantage) (msgreach_vantage_online{{{V}}})", "{{vantage}}", instant=True))
        .mappings([dm.ValueMap(options={"0": dm.ValueMappingResult(text="offline", color="red", index=0), "1": dm.ValueMappingResult(text="online", color="green", index=1)})])
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )
    t = "Last round"
    b.panel(
        stat.Panel().title(t).description("Seconds since the vantage's latest round ended (msgreach_last_round_timestamp_seconds).").span(8).height(5)
        .with_target(b.target(t, "A", f"time() - max by (vantage) (msgreach_last_round_timestamp_seconds{{{V}}})", "{{vantage}}", instant=True))
        .unit("s").thresholds(thresholds((None, "green"), (180, "orange"), (300, "red"))).color_mode(common.BigValueColorMode.BACKGROUND)
    )
    t = "Vantage info"
    b.panel(
        table.Panel().title(t).description("What each vantage declares about its place (msgreach_vantage_info): no addresses.").span(8).height(5)
        .with_target(b.target(t, "A", f"max by (vantage, country, asn, network) (msgreach_vantage_info{{{V}}})", instant=True, table_format=True))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}))
    )
    t = "Online over time"
    b.panel(
        statetimeline.Panel().title(t).description("Online (controls reachable) or offline, per scrape.").span(24).height(6)
        .with_target(b.target(t, "A", f"max by (vantage) (msgreach_vantage_online{{{V}}})", "{{vantage}}"))
        .mappings([dm.ValueMap(options={"0": dm.ValueMappingResult(text="offline", color="red", index=0), "1": dm.ValueMappingResult(text="online", color="green", index=1)})])
        .show_value(common.VisibilityMode.NEVER).merge_values(True)
    )

    b.row("Rounds")
    t = "Round duration"
    b.panel(
        ts(t, "msgreach_round_duration_seconds: a round near the interval means checks are timing out.", "s")
        .with_target(b.target(t, "A", f"max by (vantage) (msgreach_round_duration_seconds{{{V}}})", "{{vantage}}"))
    )
    t = "Rounds per minute"
    b.panel(
        ts(t, "rate(msgreach_rounds_total): should be steady at 60 / interval.", "short")
        .with_target(b.target(t, "A", f"sum by (vantage) (rate(msgreach_rounds_total{{{V}}}[$__rate_interval])) * 60", "{{vantage}}"))
    )
    t = "Time since last round"
    b.panel(
        ts(t, "Age of the latest round (MsgreachVantageSilent fires above 5 minutes); keeps growing while the vantage is not scraped.", "s", w=24)
        .with_target(b.target(t, "A", f"vantage:msgreach_last_round_age:seconds{{{V}}}", "{{vantage}}", needs=("rules",)))
    )

    b.row("Controls and resolvers")
    t = "Control checks"
    b.panel(
        ts(t, 'msgreach_check_success{service="controls"}: the sites that must work for any verdict to mean something.')
        .with_target(b.target(t, "A", f'max by (vantage, target, check) (msgreach_check_success{{{V},service="controls"}})', "{{vantage}} {{target}} {{check}}"))
        .min(0).max(1)
    )
    t = "Resolver lookup time"
    b.panel(
        ts(t, "msgreach_dns_lookup_duration_seconds averaged over targets, per resolver: a resolver at its timeout is down or blocked.", "s")
        .with_target(b.target(t, "A", f"avg by (vantage, resolver) (msgreach_dns_lookup_duration_seconds{{{V}}})", "{{vantage}} {{resolver}}", needs=("rounds", "online", "dns")))
    )
    t = "DNS failures by reason"
    b.panel(
        ts(t, "Failed DNS checks per failure string (dns_nxdomain_error, dns_servfail_error, generic_timeout_error, ...), all services.", w=24)
        .with_target(b.target(
            t, "A", f'sum by (vantage, failure) (increase(msgreach_check_failures_total{{{V},check="dns"}}[$__rate_interval]))', "{{vantage}} {{failure}}",
            needs=("rounds", "online", "failures", "dns_failures"),
        ))
        .draw_style(common.GraphDrawStyle.BARS)
    )
    return b.build()


BOARDS = {"msgreach-overview": overview, "msgreach-service": service, "msgreach-vantage": vantage}


def render_all() -> dict[str, str]:
    """uid -> JSON text, as committed."""
    _QUERIES.clear()
    return {uid: json.dumps(build(), indent=2, sort_keys=True) + "\n" for uid, build in BOARDS.items()}


def queries() -> list[Query]:
    """Every panel query of every dashboard, with what it needs to return data."""
    render_all()
    return list(_QUERIES)


def render_queries() -> str:
    """dashboards/queries.yaml: every panel query with what it needs to return data, so that the
    tests can run the committed dashboards' queries without this generator's dependencies.
    (YAML, not JSON: Grafana's file provider would try to load any *.json here as a dashboard.)"""
    import yaml

    listed = [
        {"dashboard": q.dashboard, "panel": q.panel, "ref_id": q.ref_id, "instant": q.instant, "needs": sorted(q.needs), "expr": q.expr}
        for q in queries()
    ]
    header = "# GENERATED by python -m dashboards.generate: every panel query and what it needs to return data.\n"
    return header + yaml.safe_dump(listed, sort_keys=False, width=1 << 16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="generate msgreach's Grafana dashboards")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed JSON file is stale")
    args = parser.parse_args(argv)
    stale = 0
    files = {f"{uid}.json": text for uid, text in render_all().items()}
    files["queries.yaml"] = render_queries()
    for name, text in files.items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"stale: {path} (run python -m dashboards.generate)", file=sys.stderr)
                stale += 1
        else:
            path.write_text(text)
            print(f"wrote dashboards/{path.name}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
