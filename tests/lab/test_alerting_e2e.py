"""Operators end to end, through the censorship lab (fast profile of the shipped rules):
a block switched on reaches the webhook as MsgreachSuddenBlock labelled with service, vantage
and technique; switched off, the resolution arrives; the vantage's uplink cut, only the vantage
alert arrives. While the block is on, every dashboard panel query must return data (the lab
guarantees all of it but DNS failures: TLS handshakes, certificates, downloads, failures, a block, an alert). Debian's prometheus and prometheus-alertmanager, the shipped rules and
Alertmanager routes, a receiver owned by the test; see tests/alerting_flow.py. The lab's regional
allowlist (every service fails, domestic sites pass) pages MsgreachAllowlistRegime and nothing
else.

Latencies are written to bench/out/alert-latency-fast.json (docs/benchmarks.md quotes them).
"""

from __future__ import annotations

import panel_queries
import pytest
from alerting_flow import BLOCK_ALERTS, EXTERNAL_URL, PROFILES, SERVICE, TECHNIQUE, VANTAGE, Flow
from opstools import ROOT, require_tool

from . import field_scenarios  # noqa: F401 - registers the lab's `allowlist` scenario

ALL = {"country": ".*", "vantage": f"({VANTAGE})", "service": "(signal|telegram|whatsapp)"}

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def flow(clean_lab, tmp_path):
    require_tool("prometheus")
    require_tool("prometheus-alertmanager", "alertmanager")
    f = Flow(clean_lab, tmp_path, PROFILES["fast"])
    try:
        f.start()
        yield f
    finally:
        f.close()
        clean_lab.clear_scenarios()


def test_block_on_off_and_uplink_cut_reach_the_receiver(flow):
    flow.baseline()

    fired = flow.block()
    labels = fired["labels"]
    assert labels["service"] == SERVICE
    assert labels["vantage"] == VANTAGE
    assert labels["technique"] == TECHNIQUE
    assert labels["severity"] == "critical" and labels["country"] == "RU"
    assert fired["path"].endswith("/oncall-ru"), fired["path"]  # routed by country
    assert "runbook" in fired["annotations"] and TECHNIQUE in fired["annotations"]["summary"]
    # Links a phone can open: absolute on Prometheus's external URL (docs/operators.md, Alerts).
    assert fired["annotations"]["runbook_url"] == f"{EXTERNAL_URL}/docs/operators.md#msgreachsuddenblock"
    assert fired["annotations"]["dashboard"] == f"{EXTERNAL_URL}/d/msgreach-service?var-service={SERVICE}&var-vantage={VANTAGE}"

    # Everything but DNS failures (syn-rst fails TCP; the lab's resolvers answer) and the line to
    # a helper abroad (this flow runs none; tests/test_dashboard_queries.py proves that panel).
    lab_provides = {n for q in panel_queries.queries() for n in q["needs"]} - {"dns_failures", "helper"}
    checked, found = panel_queries.problems(flow.prom, ALL, lab_provides)
    assert checked > 30 and not found, "\n".join(found)

    resolved = flow.unblock()
    assert resolved["labels"]["technique"] == TECHNIQUE and resolved["path"].endswith("/oncall-ru")

    # Longer than the fast profile's block window (12 s) plus a few rounds: a block alert would
    # have had every chance to fire.
    quiet = flow.cut_uplink(quiet_after=30)
    assert not set(quiet["fired_in_prometheus"]) & {"MsgreachSuddenBlock", "MsgreachWideBlock", "MsgreachTechniqueChange"}, quiet
    firing = [d for d in quiet["delivered"] if d[2] == "firing"]
    assert firing == [("vantage-keepers", "MsgreachVantageOffline", "firing")], quiet

    t = flow.timings
    flow.save(ROOT / "bench" / "out" / "alert-latency-fast.json")
    # The fast profile's promise: rounds ~4 s, window 12 s, Alertmanager 1 s timers.
    assert t.block_to_webhook < 60, t


def test_the_allowlist_regime_pages_once_and_no_block(flow):
    """Every service fails under the regime (with evidence on /metrics), yet the only page is
    MsgreachAllowlistRegime, routed by country; no block alert even fires in Prometheus."""
    flow.baseline()
    # Longer than the fast profile's block window (12 s) and several rounds: were the regime not
    # muting them, the services' blocks would have paged.
    regime = flow.allowlist(quiet_after=30)
    assert regime["labels"]["alertname"] == "MsgreachAllowlistRegime" and regime["labels"]["severity"] == "critical", regime
    assert regime["path"].endswith("/oncall-ru"), regime["path"]
    assert "runbook" in regime["annotations"] and "RU" in regime["annotations"]["summary"], regime
    failing = {s for s, v in regime["services"].items() if v != "ok"}
    assert SERVICE in failing, regime["services"]  # the services do fail: the silence is the rules' doing
    assert not set(regime["fired_in_prometheus"]) & BLOCK_ALERTS, regime
    firing = [d for d in regime["delivered"] if d[2] == "firing"]
    assert firing == [("oncall-ru", "MsgreachAllowlistRegime", "firing")], regime
