"""The Grafana dashboards: committed JSON == generated from dashboards/generate.py, and what
they reference exists (contract metrics, recorded names, variables, datasource).

The queries themselves are run against a real Prometheus in tests/test_dashboard_queries.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from opstools import ROOT, in_ci

DASHBOARDS = ROOT / "dashboards"
UIDS = ("msgreach-overview", "msgreach-service", "msgreach-vantage")

# The contract's metric families (CONTRACT.md "Metrics"); counters as exposed (_total).
CONTRACT_METRICS = {
    "msgreach_check_success", "msgreach_check_duration_seconds", "msgreach_check_failures_total",
    "msgreach_target_verdict", "msgreach_service_verdict", "msgreach_service_reachable_ratio",
    "msgreach_vantage_online", "msgreach_dns_lookup_duration_seconds",
    "msgreach_tls_cert_not_after_timestamp_seconds", "msgreach_download_throughput_bytes_per_second",
    "msgreach_round_duration_seconds", "msgreach_last_round_timestamp_seconds", "msgreach_rounds_total",
    "msgreach_vantage_info", "msgreach_build_info", "msgreach_vantage_verdict",
    "msgreach_target_verdict_since_timestamp_seconds", "msgreach_helper_up",
}


@pytest.fixture(scope="module")
def generator():
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("grafana-foundation-sdk is not installed (pip install -r dashboards/requirements.txt) and CI=true")
        pytest.skip("grafana-foundation-sdk not installed (pip install -r dashboards/requirements.txt)")
    from dashboards import generate

    return generate


def committed(uid: str) -> dict:
    return json.loads((DASHBOARDS / f"{uid}.json").read_text())


def test_committed_json_is_what_the_code_generates(generator):
    generated = generator.render_all()
    assert sorted(generated) == sorted(UIDS)
    for uid, text in generated.items():
        assert (DASHBOARDS / f"{uid}.json").read_text() == text, f"dashboards/{uid}.json is stale: run python -m dashboards.generate"
    assert (DASHBOARDS / "queries.yaml").read_text() == generator.render_queries(), "dashboards/queries.yaml is stale"


def test_check_mode_of_the_generator(generator):
    proc = subprocess.run([sys.executable, "-m", "dashboards.generate", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_stray_dashboard_files():
    assert sorted(p.stem for p in DASHBOARDS.glob("*.json")) == sorted(UIDS)  # Grafana loads every *.json here


def test_query_list_matches_the_dashboards():
    """dashboards/queries.yaml (what the query tests run, with each query's needs) lists exactly
    the committed dashboards' queries."""
    listed = yaml.safe_load((DASHBOARDS / "queries.yaml").read_text())
    in_dashboards = sorted(
        (uid, p["title"], t["refId"], t["expr"], bool(t.get("instant")))
        for uid in UIDS for p in committed(uid)["panels"] for t in p.get("targets", [])
    ) + [
        (uid, f"annotation: {a['name']}", "annotation", a["expr"], False)
        for uid in UIDS for a in committed(uid)["annotations"]["list"] if "expr" in a
    ]
    in_dashboards.sort()
    assert sorted((q["dashboard"], q["panel"], q["ref_id"], q["expr"], q["instant"]) for q in listed) == in_dashboards
    assert all(q["needs"] for q in listed)


@pytest.mark.parametrize("uid", UIDS)
def test_dashboard_structure(uid):
    d = committed(uid)
    assert d["uid"] == uid
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "country", "vantage", "service"]
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert panels, uid
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("targets"), f"{p['title']} has no query"
        assert p.get("description"), f"{p['title']} has no description"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            assert t["refId"]
        # every panel stays inside the 24-column grid
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24


def recorded_names() -> set[str]:
    rules = yaml.safe_load((ROOT / "configs" / "prometheus" / "rules" / "msgreach.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


@pytest.mark.parametrize("uid", UIDS)
def test_queries_reference_only_contract_metrics_and_recorded_names(uid):
    recorded = recorded_names()
    exprs = [t["expr"] for p in committed(uid)["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in committed(uid)["annotations"]["list"] if "expr" in a]
    exprs += [v["query"]["query"] for v in committed(uid)["templating"]["list"] if isinstance(v.get("query"), dict)]
    for expr in exprs:
        for name in re.findall(r"\b(msgreach_[a-z_]+)\b", re.sub(r"[a-z_]*:msgreach_[a-z_]+:[a-z_]+", "", expr)):
            assert name in CONTRACT_METRICS, f"{name} is not a contract metric (in {expr})"
        for name in re.findall(r"\b([a-z_]*:msgreach_[a-z_]+:[a-z_]+)\b", expr):
            assert name in recorded, f"{name} is not recorded by configs/prometheus/rules (in {expr})"
        for var in re.findall(r"\$(\w+)", expr):
            assert var in {"vantage", "country", "service", "__rate_interval"}, f"unknown variable ${var} in {expr}"


def test_alert_annotations_link_to_these_dashboards():
    rules = (ROOT / "configs" / "prometheus" / "rules" / "msgreach.yml").read_text()
    linked = set(re.findall(r"/d/(msgreach-[a-z]+)\?", rules))
    assert linked and linked <= set(UIDS)
    for uid in linked:
        variables = {v["name"] for v in committed(uid)["templating"]["list"]}
        for var in re.findall(rf"/d/{uid}\?([^\"]+)", rules):
            for pair in var.split("&"):
                assert pair.split("=")[0].removeprefix("var-") in variables, pair


def test_provisioning_files():
    ds = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources" / "msgreach-prometheus.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    # The datasource variable defaults to the import input (Grafana's "Import dashboard" puts the
    # chosen data source there); provisioned, it falls back to the default data source: this one.
    assert source["isDefault"] is True
    for uid in UIDS:
        dashboard = committed(uid)
        (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert var["type"] == "datasource" and var["query"] == "prometheus"
        assert var["current"]["value"] == "${DS_PROMETHEUS}"
        (wanted,) = dashboard["__inputs"]
        assert wanted == {"name": "DS_PROMETHEUS", "label": "Prometheus", "description": wanted["description"],
                          "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}
        required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
        assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
        assert {p["type"] for p in dashboard["panels"] if p["type"] != "row"} == {i for t, i in required if t == "panel"}
        # Every panel and annotation reads the variable, never a fixed data source.
        assert "${DS_PROMETHEUS}" not in json.dumps([dashboard["panels"], dashboard["annotations"]])
    prov = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards" / "msgreach.yaml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


@pytest.mark.parametrize("uid", UIDS)
def test_annotations_list_verdict_changes_and_alerts(uid):
    annotations = committed(uid)["annotations"]["list"]
    builtin, *queries = annotations
    assert builtin["builtIn"] == 1 and builtin["type"] == "dashboard"
    by_name = {a["name"]: a for a in queries}
    assert set(by_name) == {"Verdict changes", "Alerts"}
    changes = by_name["Verdict changes"]
    assert changes["useValueForTime"] is True and "msgreach_target_verdict_since_timestamp_seconds" in changes["expr"]
    assert "ALERTS" in by_name["Alerts"]["expr"]
    for a in queries:
        assert a["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and a["titleFormat"] and a["enable"]


def test_overview_links_to_the_service_and_vantage_dashboards():
    text = json.dumps(committed("msgreach-overview"))
    assert "/d/msgreach-service?var-vantage=" in text and "/d/msgreach-vantage?var-vantage=" in text
    panels = {p["title"]: p for p in committed("msgreach-overview")["panels"]}
    timeline = panels["Service verdict per vantage"]
    assert {link["title"] for link in timeline["fieldConfig"]["defaults"]["links"]} == {"Service dashboard", "Vantage dashboard"}
    reach = panels["Reachability and blocked since (service x vantage)"]
    renamed = reach["transformations"][1]["options"]["renameByName"]
    assert set(renamed.values()) == {"reachable 24 h", "reachable 7 d", "verdict", "blocked since"}
    assert any(p["type"] == "geomap" for p in panels.values())
    assert "Vantage verdicts by country / ASN" in panels


def test_verdict_colours_cover_the_models_vocabulary(generator):
    from probe.model import SERVICE_VERDICTS, VANTAGE_VERDICTS

    assert {name for name, _, _ in generator.VERDICTS} == {str(v) for v in SERVICE_VERDICTS}
    assert len({code for _, code, _ in generator.VERDICTS}) == len(generator.VERDICTS)
    assert [name for name, _, _ in generator.VANTAGE_CODES] == [str(v) for v in VANTAGE_VERDICTS]


def _mappings(panel: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}
    if "fieldConfig" not in panel:  # a row
        return found
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        found.update(mapping.get("options", {}))
    for override in panel["fieldConfig"].get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "mappings":
                for mapping in prop["value"]:
                    found.update(mapping.get("options", {}))
    return found


def test_verdicts_wear_the_status_pages_colours():
    """One verdict, one colour: the page a volunteer opens and the operators' dashboards agree
    (probe/status_page.py's COLOURS), in every state timeline and table that maps verdicts."""
    from probe.status_page import COLOURS

    checked = 0
    for uid in UIDS:
        for panel in committed(uid)["panels"]:
            for _code, result in _mappings(panel).items():
                name = result.get("text")
                if name in COLOURS:
                    assert result["color"] == COLOURS[name][0], (uid, panel["title"], name, result["color"])
                    checked += 1
                elif name in ("passed", "online"):
                    assert result["color"] == COLOURS["ok"][0], (uid, panel["title"], name)
                elif name == "failed":
                    assert result["color"] == COLOURS["ip_blocked"][0], (uid, panel["title"])
                elif name == "offline":
                    assert result["color"] == COLOURS["vantage_offline"][0], (uid, panel["title"])
    assert checked > 40


def test_verdicts_and_checks_are_state_timelines():
    """Verdicts and check results are states, not 0/1 lines: state timelines wherever they are
    drawn over time."""
    kinds = {(uid, p["title"]): p["type"] for uid in UIDS for p in committed(uid)["panels"]}
    for panel in (("msgreach-overview", "Service verdict per vantage"), ("msgreach-service", "Target verdict"),
                  ("msgreach-service", "Check success by target and check"), ("msgreach-vantage", "Control checks"),
                  ("msgreach-vantage", "Vantage verdict"), ("msgreach-vantage", "Online over time")):
        assert kinds[panel] == "state-timeline", panel
    for uid in UIDS:
        for p in committed(uid)["panels"]:
            if p["type"] == "timeseries":
                exprs = " ".join(t["expr"] for t in p.get("targets", []))
                assert "msgreach_check_success" not in exprs or "avg by" in exprs, (uid, p["title"])  # a share may be a line


def test_grafana_version_matches_the_dashboards_schema():
    """deploy/central runs the Grafana whose schema the dashboards are generated for (the SDK's
    pinned build): a newer schemaVersion than the server knows is refused or mis-migrated."""
    pin = re.search(r"!(\d+\.\d+)\.", (DASHBOARDS / "requirements.txt").read_text()).group(1)
    compose = yaml.safe_load((ROOT / "deploy" / "central" / "compose.yaml").read_text())
    image = compose["services"]["grafana"]["image"]
    tag = re.search(r"grafana-oss:(\d+\.\d+)\.\d+", image).group(1)
    assert tag == pin, f"deploy/central runs Grafana {tag}, the dashboards are generated for {pin}"
    full = re.search(r"grafana-oss:(\d+\.\d+\.\d+)", image).group(1)
    for uid in UIDS:
        (grafana,) = [r for r in committed(uid)["__requires"] if r["id"] == "grafana"]
        assert grafana["version"] == full
    assert {committed(uid)["schemaVersion"] for uid in UIDS} == {41}  # Grafana 11.6's schema
