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
from grafana_foundation_sdk.builders import geomap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # probe.model (standard library only) when run from elsewhere

from probe.model import BLOCKS, SERVICE_VERDICTS, VANTAGE_VERDICTS, Verdict
from probe.status_page import COLOURS  # the status page's verdict colours: one meaning, one colour

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRAFANA_VERSION = "11.6.0"  # what the pinned SDK's schema is for, and what deploy/central runs

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
#   since      msgreach exports msgreach_target_verdict_since_timestamp_seconds (its verdict history)
#   vantage_verdict  msgreach exports msgreach_vantage_verdict
#   helper     a vantage has a helper abroad (msgreach_helper_up)
NEEDS = frozenset({
    "rounds", "rules", "online", "failures", "dns_failures", "blocks", "alerts", "dns", "tls", "cert", "throughput",
    "since", "vantage_verdict", "helper",
})

# Service/target verdicts as numbers for state timelines, coloured as the status page colours
# them (probe.status_page.COLOURS: green ok, red every block, orange partial, brown down, indigo
# the monitor's own error, dark slate offline, purple allowlist), so a verdict looks the same on
# the volunteer's page and on the operators' dashboards. The vocabulary is probe.model's: a
# verdict the model adds gets a code (and the page's colour) without touching this table; the
# codes already used stay stable.
_CODES: dict[str, int] = {
    "ok": 0, "partial": 1, "throttled": 2, "quic_blocked": 3, "udp_blocked": 4, "protocol_blocked": 5, "http_blocked": 6,
    "tls_mitm": 7, "tls_blocked": 8, "sni_blocked": 9, "ip_blocked": 10, "dns_tampered": 11, "dns_blocked": 12,
    "error": 19, "down": 20, "vantage_offline": 21,
}


def colour(verdict: str) -> str:
    """The status page's background colour of a verdict (its "no verdict" grey if it has none)."""
    return COLOURS.get(verdict, COLOURS["none"])[0]


def _verdict_table() -> list[tuple[str, int, str]]:
    table_ = []
    for index, verdict in enumerate(SERVICE_VERDICTS):
        table_.append((str(verdict), _CODES.get(str(verdict), 100 + index), colour(str(verdict))))
    return sorted(table_, key=lambda row: row[1])


VERDICTS: list[tuple[str, int, str]] = _verdict_table()
# The vantage's own verdict (ok, allowlist, vantage_offline), in the page's colours too.
VANTAGE_CODES: list[tuple[str, int, str]] = [(str(v), i, colour(str(v))) for i, v in enumerate(VANTAGE_VERDICTS)]
# A check's success (msgreach_check_success) and a vantage's online state: passed like `ok`,
# failed like a block; offline like the page's `vantage_offline`.
CHECK_STATES: list[dm.ValueMap] = [dm.ValueMap(options={
    "0": dm.ValueMappingResult(text="failed", color=colour("ip_blocked"), index=0),
    "1": dm.ValueMappingResult(text="passed", color=colour("ok"), index=1),
})]
ONLINE_STATES: list[dm.ValueMap] = [dm.ValueMap(options={
    "0": dm.ValueMappingResult(text="offline", color=colour("vantage_offline"), index=0),
    "1": dm.ValueMappingResult(text="online", color=colour("ok"), index=1),
})]
# Import by file (Grafana's "Import dashboard"): Grafana asks for a Prometheus data source and puts
# its uid where ${DS_PROMETHEUS} stands, the `datasource` variable's default; provisioned from
# files (deploy/central, dashboards/provisioning), nothing is substituted and the variable falls
# back to the default data source (provisioned with isDefault: true).
DS_INPUT = "DS_PROMETHEUS"
BLOCK_REGEX = "|".join(str(v) for v in SERVICE_VERDICTS if v in BLOCKS or v is Verdict.PARTIAL)


def verdict_code(metric: str, selector: str, by: str, codes: list[tuple[str, int, str]] | None = None) -> str:
    """The current verdict of a state set as one number per series (see VERDICTS).

    The lookup table is inlined (label_replace on vector()), so the panel needs no recording rule;
    a verdict missing from the table shows as a gap rather than as a wrong colour."""
    table_expr = " or ".join(f'label_replace(vector({code}), "verdict", "{name}", "", "")' for name, code, _ in (codes or VERDICTS))
    return f"max by ({by}) (({metric}{{{selector}}} == 1) * on (verdict) group_left () ({table_expr}))"


def verdict_mappings(codes: list[tuple[str, int, str]] | None = None) -> list[dm.ValueMap]:
    return [
        dm.ValueMap(options={str(code): dm.ValueMappingResult(text=name, color=color, index=i) for i, (name, code, color) in enumerate(codes or VERDICTS)})
    ]


class _Raw:
    """A ready JSON object where the SDK expects a builder (data links: title + url)."""

    def __init__(self, value: dict):
        self.value = value

    def build(self) -> dict:
        return self.value


def link(title: str, url: str) -> dict:
    """A data link (Grafana keeps the time range and the datasource with ${__url_time_range})."""
    return {"title": title, "url": url, "targetBlank": False}


def to_service(vantage: str, service: str) -> _Raw:
    return _Raw(link("Service dashboard", f"/d/msgreach-service?var-vantage={vantage}&var-service={service}&${{__url_time_range}}&var-datasource=${{datasource}}"))


def to_vantage(vantage: str) -> _Raw:
    return _Raw(link("Vantage dashboard", f"/d/msgreach-vantage?var-vantage={vantage}&${{__url_time_range}}&var-datasource=${{datasource}}"))


def prop(name: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=name, value=value)


def reachable_share(window: str) -> str:
    """Share of the measured time (not offline, not the monitor's own error) the service was ok."""
    return (
        f'sum by (vantage, service) (sum_over_time(msgreach_service_verdict{{{VS},verdict="ok"}}[{window}]))\n'
        f'/ sum by (vantage, service) (sum_over_time(msgreach_service_verdict{{{VS},verdict!~"vantage_offline|error"}}[{window}]))'
    )


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
        self.annotations: list[dict] = []

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

    def annotate(self, name: str, expr: str, *, title: str, text: str, tags: str, colour: str, needs: tuple[str, ...], value_is_time: bool = False) -> None:
        """A Prometheus annotation query (written out in full in build(): the SDK's model lacks
        titleFormat, textFormat, tagKeys, step and useValueForTime)."""
        self.queries.append(Query(self.uid, f"annotation: {name}", "annotation", expr, False, frozenset(needs)))
        self.annotations.append({
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "enable": True,
            "expr": expr,
            "iconColor": colour,
            "name": name,
            "step": "1m",
            "tagKeys": tags,
            "textFormat": text,
            "titleFormat": title,
            "useValueForTime": value_is_time,
        })

    def build(self) -> dict:
        _QUERIES.extend(self.queries)
        data = json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))
        builtin = {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
        data["annotations"] = {"list": [builtin, *self.annotations]}
        data["__inputs"] = [{
            "name": DS_INPUT, "label": "Prometheus", "description": "The Prometheus that holds msgreach's samples and rules",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
        }]
        panel_types = sorted({p["type"] for p in data.get("panels", []) if p.get("type") != "row"})
        data["__requires"] = [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": kind, "version": ""} for kind in panel_types),
        ]
        return data


# --- template variables ---------------------------------------------------------------------------


def variables(b: Board, *, service_multi: bool = True, vantage_multi: bool = True) -> None:
    b.builder = (
        b.builder.with_variable(
            db.DatasourceVariable("datasource").label("Data source").type("prometheus").current(
                dm.VariableOption(selected=True, text=f"${{{DS_INPUT}}}", value=f"${{{DS_INPUT}}}")
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


def annotations(b: Board) -> None:
    """Verdict changes (at the time each target's current verdict began, from msgreach's verdict
    history) and msgreach's firing alerts, on every time panel of the dashboard."""
    b.annotate(
        "Verdict changes",
        "max by (vantage, service, target, verdict) (\n"
        f"  msgreach_target_verdict_since_timestamp_seconds{{{VS}}} * 1000\n"
        f"  * on (vantage, service, target) group_right () (msgreach_target_verdict{{{VS}}} == 1)\n"
        ")",
        title="{{service}} / {{target}} at {{vantage}}: {{verdict}}",
        text="The target's verdict became {{verdict}} (msgreach_target_verdict_since_timestamp_seconds).",
        tags="vantage,service,verdict",
        colour="orange",
        needs=("rounds", "since"),
        value_is_time=True,
    )
    b.annotate(
        "Alerts",
        'max by (alertname, severity, country, asn, vantage, service, technique) (ALERTS{alertname=~"Msgreach.*",alertstate="firing"})',
        title="{{alertname}}",
        text="{{severity}}: {{service}} {{technique}} at {{vantage}} ({{country}} AS{{asn}})",
        tags="alertname,severity",
        colour="red",
        needs=("alerts",),
    )


def legend_bottom() -> cb.VizLegendOptions:
    return cb.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.BOTTOM).show_legend(True)


def ts(title: str, description: str, unit: str = "short", w: int = 12, h: int = 8) -> timeseries.Panel:
    return timeseries.Panel().title(title).description(description).unit(unit).span(w).height(h).legend(legend_bottom())


def check_states(title: str, description: str, h: int) -> statetimeline.Panel:
    """A full-width state timeline of checks passed (green) and failed (red), one row a series."""
    return (
        statetimeline.Panel().title(title).description(description).span(24).height(h)
        .mappings(CHECK_STATES)
        .show_value(common.VisibilityMode.NEVER).merge_values(True).row_height(0.8)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )


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
    annotations(b)

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

    b.row("Reachability")
    t = "Reachability and blocked since (service x vantage)"
    b.panel(
        table.Panel().title(t)
        .description(
            "Share of the measured time each service was ok at each vantage over 24 hours and 7 days (time offline or "
            "in the monitor's own error does not count), the current verdict, and since when it has been blocked "
            "(from msgreach's verdict history). Click a vantage or a service for its dashboard."
        )
        .span(24).height(10)
        .with_target(b.target(t, "A", reachable_share("24h"), instant=True, table_format=True))
        .with_target(b.target(t, "B", reachable_share("7d"), instant=True, table_format=True))
        .with_target(b.target(t, "C", verdict_code("msgreach_service_verdict", VS, "vantage, service"), instant=True, table_format=True))
        .with_target(b.target(
            t, "D",
            f"min by (vantage, service) (\n  msgreach_target_verdict_since_timestamp_seconds{{{VS}}} * 1000\n"
            f'  and on (vantage, service, target) (msgreach_target_verdict{{{VS},verdict=~"{BLOCK_REGEX}"}} == 1)\n)',
            instant=True, table_format=True, needs=("rounds", "since", "blocks"),
        ))
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True},
            "renameByName": {"Value #A": "reachable 24 h", "Value #B": "reachable 7 d", "Value #C": "verdict", "Value #D": "blocked since"},
        }))
        .override_by_name("reachable 24 h", [prop("unit", "percentunit"), prop("custom.cellOptions", {"type": "color-text"})])
        .override_by_name("reachable 7 d", [prop("unit", "percentunit"), prop("custom.cellOptions", {"type": "color-text"})])
        .override_by_name("verdict", [prop("mappings", verdict_mappings()), prop("custom.cellOptions", {"type": "color-background"})])
        .override_by_name("blocked since", [prop("unit", "dateTimeAsIso")])
        .override_by_name("vantage", [prop("links", [to_vantage("${__data.fields.vantage}").build()])])
        .override_by_name("service", [prop("links", [to_service("${__data.fields.vantage}", "${__data.fields.service}").build()])])
        .thresholds(thresholds((None, "red"), (0.5, "orange"), (0.95, "green")))
    )
    t = "Vantage verdicts by country / ASN"
    b.panel(
        table.Panel().title(t)
        .description("How many vantages of each country and ASN are ok, in the allowlist regime (only domestic sites work) or offline, now.")
        .span(12).height(8)
        .with_target(b.target(
            t, "A",
            f'count by (country, asn, verdict) (\n  max by (vantage, verdict) (msgreach_vantage_verdict{{{V}}} == 1)\n'
            '  * on (vantage) group_left (country, asn) vantage:msgreach_info:last{country=~"$country"}\n)',
            instant=True, table_format=True, needs=("rounds", "rules", "vantage_verdict"),
        ))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {"Value": "vantages"}}))
        .override_by_name("verdict", [prop("mappings", [dm.ValueMap(options={name: dm.ValueMappingResult(color=colour, index=i) for name, i, colour in VANTAGE_CODES})]), prop("custom.cellOptions", {"type": "color-background"})])
    )
    t = "Offline or silent vantages by country / ASN"
    b.panel(
        table.Panel().title(t)
        .description("Vantages offline (control sites fail) or silent (no round reaches the centre); several of one ASN at once is what MsgreachRegionalShutdown pages on.")
        .span(12).height(8)
        .with_target(b.target(
            t, "A", 'sum by (country, asn, network) (vantage:msgreach_unreachable:bool{country=~"$country",role!="control"})',
            instant=True, table_format=True, needs=("rules",),
        ))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {"Value": "offline or silent"}}))
    )
    t = "Reachable share by country (map)"
    b.panel(
        geomap.Panel().title(t)
        .description("Average share of the services' targets that are ok over each country's online vantages (countries by their ISO code).")
        .span(24).height(10)
        .with_target(b.target(
            t, "A", 'avg by (country) (country_service:msgreach_reachable_ratio:avg{country=~"$country",service=~"$service"})',
            instant=True, table_format=True, needs=("rules", "online"),
        ))
        .view(geomap.MapViewConfig().id("coords").lat(50).lon(60).zoom(2))
        .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
        .basemap(cb.MapLayerOptions().type("default").name("Basemap"))
        .layers([
            cb.MapLayerOptions().type("markers").name("Countries").tooltip(True)
            .location(cb.FrameGeometrySource().mode(common.FrameGeometrySourceMode.LOOKUP).lookup("country").gazetteer("public/gazetteer/countries.json"))
            .config({"showLegend": True, "style": {"color": {"field": "Value", "fixed": "dark-green"}, "size": {"fixed": 10}, "opacity": 0.8}})
        ])
        .unit("percentunit").min(0).max(1)
        .thresholds(thresholds((None, "red"), (0.5, "orange"), (0.95, "green")))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )

    b.row("Verdicts")
    t = "Service verdict per vantage"
    b.panel(
        statetimeline.Panel().title(t)
        .description("The service verdict of each round, in the status page's colours: green ok, red blocked (the technique on hover), orange partial, brown down, indigo the monitor's own error, dark slate vantage offline. Click a row for its service dashboard.")
        .span(24).height(12)
        .with_target(b.target(t, "A", verdict_code("msgreach_service_verdict", VS, "vantage, service"), "{{vantage}} / {{service}}"))
        .data_links([to_service("${__field.labels.vantage}", "${__field.labels.service}"), to_vantage("${__field.labels.vantage}")])
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
    annotations(b)

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
    t = "Current verdict and since, per target"
    b.panel(
        table.Panel().title(t)
        .description("Each target's current verdict and when it began (msgreach's verdict history, kept across restarts with a state directory).")
        .span(24).height(8)
        .with_target(b.target(t, "A", verdict_code("msgreach_target_verdict", VS, "vantage, service, target"), instant=True, table_format=True))
        .with_target(b.target(t, "B", f"max by (vantage, service, target) (msgreach_target_verdict_since_timestamp_seconds{{{VS}}}) * 1000", instant=True, table_format=True, needs=("rounds", "since")))
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {"Value #A": "verdict", "Value #B": "since"}}))
        .override_by_name("verdict", [prop("mappings", verdict_mappings()), prop("custom.cellOptions", {"type": "color-background"})])
        .override_by_name("since", [prop("unit", "dateTimeAsIso")])
        .override_by_name("vantage", [prop("links", [to_vantage("${__data.fields.vantage}").build()])])
    )
    t = "Check success by target and check"
    b.panel(
        check_states(t, "Each check of each target, round after round (msgreach_check_success): green passed, red failed; the failure string is in 'Failure reasons' below.", 12)
        .with_target(b.target(t, "A", f"max by (vantage, target, check) (msgreach_check_success{{{VS}}})", "{{vantage}} {{target}} {{check}}", needs=("rounds", "online")))
    )

    t = "Reachable share of targets"
    b.panel(
        ts(t, "msgreach_service_reachable_ratio: share of the service's targets that are ok.", "percentunit", w=24)
        .with_target(b.target(t, "A", f"max by (vantage, service) (msgreach_service_reachable_ratio{{{VS}}})", "{{vantage}} {{service}}"))
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
    annotations(b)

    t = "Online"
    b.panel(
        stat.Panel().title(t).description("msgreach_vantage_online: 1 when the vantage's control sites are reachable.").span(8).height(5)
        .with_target(b.target(t, "A", f"max by (vantage) (msgreach_vantage_online{{{V}}})", "{{vantage}}", instant=True))
        .mappings(ONLINE_STATES)
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
        .with_target(b.target(t, "A", f"max by (vantage, country, asn, network, role) (msgreach_vantage_info{{{V}}})", instant=True, table_format=True))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}))
    )
    t = "Online over time"
    b.panel(
        statetimeline.Panel().title(t).description("Online (controls reachable) or offline, per scrape.").span(24).height(6)
        .with_target(b.target(t, "A", f"max by (vantage) (msgreach_vantage_online{{{V}}})", "{{vantage}}"))
        .mappings(ONLINE_STATES)
        .show_value(common.VisibilityMode.NEVER).merge_values(True)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )

    t = "Vantage verdict"
    b.panel(
        statetimeline.Panel().title(t)
        .description("msgreach_vantage_verdict: ok, allowlist (domestic control sites pass, every international one fails: only approved services work) or vantage_offline.")
        .span(24).height(6)
        .with_target(b.target(t, "A", verdict_code("msgreach_vantage_verdict", V, "vantage", VANTAGE_CODES), "{{vantage}}", needs=("rounds", "vantage_verdict")))
        .mappings(verdict_mappings(VANTAGE_CODES))
        .show_value(common.VisibilityMode.NEVER).merge_values(True)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
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

    b.row("Helper abroad")
    t = "Line to the helper"
    b.panel(
        statetimeline.Panel().title(t)
        .description("msgreach_helper_up: 1 when every exchange with the helper abroad completed within its deadline and size in the round; "
                     "0 when the line froze, dripped, was reset or answered garbage (calls, circumvention and freeze keys then read error). "
                     "MsgreachHelperLineDown (info, never paged) after 15 minutes; the vantage's status page says how the line fails.")
        .span(24).height(5)
        .with_target(b.target(t, "A", f"max by (vantage, helper) (msgreach_helper_up{{{V}}})", "{{vantage}} → {{helper}}", needs=("rounds", "helper")))
        .mappings([dm.ValueMap(options={"0": dm.ValueMappingResult(text="line fails", color="red", index=0), "1": dm.ValueMappingResult(text="up", color="green", index=1)})])
        .show_value(common.VisibilityMode.NEVER).merge_values(True)
    )

    b.row("Controls and resolvers")
    t = "Control checks"
    b.panel(
        check_states(t, 'msgreach_check_success{service="controls"}: the sites that must work for any verdict to mean something; green passed, red failed.', 10)
        .with_target(b.target(t, "A", f'max by (vantage, target, check) (msgreach_check_success{{{V},service="controls"}})', "{{vantage}} {{target}} {{check}}"))
    )
    t = "Resolver lookup time"
    b.panel(
        ts(t, "msgreach_dns_lookup_duration_seconds averaged over targets, per resolver: a resolver at its timeout is down or blocked.", "s", w=24)
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
