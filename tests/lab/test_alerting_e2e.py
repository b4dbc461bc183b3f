"""Operators end to end, through the censorship lab (fast profile of the shipped rules):
a block switched on reaches the webhook as MsgreachSuddenBlock labelled with service, vantage
and technique; switched off, the resolution arrives; the vantage's uplink cut, only the vantage
alert arrives. While the block is on, every dashboard panel query must return data (the lab
guarantees all of it but DNS failures: TLS handshakes, certificates, downloads, failures, a block, an alert). Debian's prometheus and prometheus-alertmanager, the shipped rules and
Alertmanager routes, a receiver owned by the test; see tests/alerting_flow.py.

Latencies are written to bench/out/alert-latency-fast.json (docs/benchmarks.md quotes them).
"""

from __future__ import annotations

import pytest

import panel_queries
from alerting_flow import PROFILES, SERVICE, TECHNIQUE, VANTAGE, Flow
from opstools import ROOT, require_tool

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

    # Everything but DNS failures (syn-rst fails TCP; the lab's resolvers answer).
    lab_provides = {n for q in panel_queries.queries() for n in q["needs"]} - {"dns_failures"}
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
