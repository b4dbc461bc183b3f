"""The fleet's upload crosses the censor (issue #18, item 7): a volunteer's msgreach and its
Prometheus agent (the shipped run.sh, Debian's prometheus) remote-write to the centre (the
shipped gateway nginx.conf and central prometheus.yml) through a router that freezes
connections, in three namespaces (tests/deploy/upload_line.py).

1. The DPI's freeze: every packet of a connection past 16 KB or 25 packets (both directions) is
   dropped. The shipped settings put one small request on each connection, so no connection
   ever passes the conservative 12 KB budget and reports keep flowing: nothing is held.
2. The line frozen whole (a freeze no TLS handshake fits): reports are held; msgreach's
   /status.json, status page (English and Russian) and metrics say so, and why.
3. The line reopens: every sample scraped in all of it reaches the centre, none is counted
   failed by the agent.

Bounded: about 4 minutes (MSGREACH_UPLOAD_FREEZE sets the whole-line freeze, default 90 s).
Delays are printed, and asserted only against the issue's own bound (10 minutes); they are
measured in bench/upload_freeze.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from mrfkit import require, require_root_netns, wait_for
from upload_line import BUDGET_BYTES, Arrivals, Censor, Fleet, namespaces, percentile

pytestmark = [pytest.mark.fleet, pytest.mark.netns, pytest.mark.slow]

FROZEN = float(os.environ.get("MSGREACH_UPLOAD_FREEZE", "90"))
DPI_PHASE = 60.0
HELD_AFTER = 20.0


def _status(fleet: Fleet) -> dict:
    status, body = fleet.msgreach_get("/status.json")
    assert status == 200, body[-500:]
    return json.loads(body).get("upload") or {}


def _msgreach_metric(fleet: Fleet, name: str) -> float | None:
    status, body = fleet.msgreach_get("/metrics")
    assert status == 200
    for line in body.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_reports_cross_a_freezing_line_and_a_frozen_one_without_loss(tmp_path: Path, procs) -> None:
    require_root_netns()
    for tool in ("prometheus", "nginx", "nft", "conntrack", "curl", "openssl"):
        require(shutil.which(tool) is not None, f"needs {tool}")
    with namespaces() as ns:
        censor = Censor(ns.router)
        fleet = Fleet(ns, procs, tmp_path)
        fleet.start_centre()
        settings = fleet.start_gateway()
        upload = {"agent_url": "http://127.0.0.1:9090/metrics", "interval_seconds": 2, "held_after_seconds": HELD_AFTER}
        fleet.start_volunteer(settings, targets=12, round_interval=1, scrape="1s", upload=upload)
        arrivals = Arrivals(fleet, 'up{job="msgreach"}')
        began = time.time()

        def state() -> str | None:
            """Polls the centre for new samples, then asks msgreach how the upload is."""
            fleet.check_alive()
            arrivals.poll()
            return _status(fleet).get("state")

        wait_for(lambda: state() == "flowing" and arrivals.arrived, 60, interval=1, what="reports flowing")

        # 1. The DPI's freeze, per connection: reports keep flowing.
        censor.freeze(after_bytes=16384, after_packets=25)
        dpi_from = time.time()
        states = set()
        while time.time() < dpi_from + DPI_PHASE:
            states.add(state())
            time.sleep(2)
        dpi_to = time.time()
        assert censor.over_budget_packets() == 0, f"a connection to the centre carried more than {BUDGET_BYTES} bytes"
        assert states == {"flowing"}, states
        during_dpi = arrivals.delays(dpi_from, dpi_to - 5)
        assert during_dpi, "nothing scraped during the DPI freeze reached the centre"
        retried_in_dpi = fleet.agent_metrics().get("prometheus_remote_storage_samples_retried_total", 0)

        # 2. The line frozen whole: held, and said so.
        censor.freeze(after_bytes=600)
        frozen_from = time.time()
        wait_for(lambda: state() == "held", HELD_AFTER + 60, interval=2, what="msgreach to say reports are held")
        while time.time() < frozen_from + FROZEN:
            state()
            time.sleep(2)
        held = _status(fleet)
        assert held["state"] == "held" and held["why"] == "line_stalls", held
        assert held["held_seconds"] > HELD_AFTER and held["failed_samples"] == 0, held
        held_metric = _msgreach_metric(fleet, "msgreach_upload_held_seconds")
        assert held_metric is not None and held_metric > HELD_AFTER
        assert _msgreach_metric(fleet, "msgreach_upload_agent_up") == 1
        english, russian = fleet.msgreach_get("/?lang=en")[1], fleet.msgreach_get("/?lang=ru")[1]
        assert "Reports to the centre are held for" in english and "the line to the centre stalls" in english
        assert "Отчёты в центр задерживаются" in russian and "линия до центра зависает" in russian
        assert fleet.agent_metrics().get("prometheus_remote_storage_samples_failed_total", 0) == 0
        assert fleet.msgreach is not None and "reports to the centre are held" in fleet.msgreach.text()

        # 3. The line reopens: everything arrives, nothing was lost.
        censor.reopen()
        reopened = time.time()
        wait_for(lambda: state() == "flowing" and max(arrivals.arrived) > time.time() - 5, 180, interval=2, what="the agent to send what it held")
        arrivals.poll()
        end = time.time() - 3
        agent = fleet.agent_metrics()
        holes = [(round(a - began), round(b - a, 1)) for a, b in arrivals.gaps(began, end) if b - a > 1.5]
        report = {
            "dpi_freeze_delay_s": {"p50": round(percentile(during_dpi, 0.5), 1), "max": round(max(during_dpi), 1), "retried_samples": retried_in_dpi},
            "frozen_delay_s": {"p50": round(percentile(arrivals.delays(frozen_from, reopened), 0.5), 1), "max": round(max(arrivals.delays(frozen_from, reopened)), 1)},
            "samples": len(arrivals.arrived), "holes": holes[:10],
            "agent": {"retried": agent.get("prometheus_remote_storage_samples_retried_total"), "failed": agent.get("prometheus_remote_storage_samples_failed_total")},
            "over_budget_packets": censor.over_budget_packets(),
        }
        print("upload through the censor:", json.dumps(report))
        assert not holes, f"samples missing at the centre: {holes[:10]}"
        scraped = fleet.sample_times('msgreach_rounds_total{job="msgreach"}', began)
        assert len(scraped) >= len([t for t in arrivals.arrived if t >= began]) - 2  # msgreach's own series arrived as fully
        assert agent.get("prometheus_remote_storage_samples_failed_total", 0) == 0, "the agent dropped samples"
        assert agent.get("prometheus_remote_storage_samples_retried_total", 0) > 0, "the frozen line was never noticed"
        assert max(arrivals.delays(began, end)) < 600 + FROZEN, "a sample took longer than the freeze plus 10 minutes"
        assert max(during_dpi) < 600, "under the DPI's freeze a sample took more than 10 minutes"
        assert censor.over_budget_packets() == 0, f"a connection to the centre carried more than {BUDGET_BYTES} bytes"
        assert _status(fleet)["held_seconds"] == 0
