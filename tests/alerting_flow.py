"""The operators' end-to-end flow through the censorship lab, shared by the CI test
(tests/lab/test_alerting_e2e.py, fast profile) and the latency benchmark (bench/alert_latency.py,
both profiles):

    lab (tests/lab) ── mrl-client namespace ─────────────────────────────────────────────────
      msgreach run ──/metrics──> prometheus (shipped rules) ──> alertmanager (shipped routes,
      receivers pointed at) ──> webhook receiver owned by the test; all on the namespace's 127.0.0.1

1. Telegram reachable; `syn-rst` switched on for every Telegram target (its addresses answer
   SYNs with RST): MsgreachSuddenBlock must reach the receiver labelled service=telegram,
   vantage=lab-client, technique=ip_blocked (routed to oncall-ru: the lab vantage says RU).
2. Switched off: the resolution must arrive.
3. `uplink-cut` (the client's line dropped at the censor): MsgreachVantageOffline must arrive,
   and nothing else: no block alert fires in Prometheus, none reaches the receiver.

Each step's latency is measured from the switch: to the verdict on /metrics, to the alert
becoming active in Prometheus (its activeAt), to the webhook delivery (the receiver's clock).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opstools import ROOT
from promstack import Stack, alertmanager_config, wait_for

VANTAGE = "lab-client"
SERVICE = "telegram"
TECHNIQUE = "ip_blocked"
BLOCK_ALERTS = {"MsgreachSuddenBlock", "MsgreachWideBlock", "MsgreachTechniqueChange"}
EXTERNAL_URL = "https://centre.example.org"  # Prometheus's --web.external-url, as the centre sets it


@dataclass(frozen=True)
class Profile:
    name: str
    rules: Path
    msgreach_interval: float
    scrape_interval: str
    alertmanager_fast: bool
    timeouts: dict[str, float]
    deadline: float
    step_timeout: float  # how long any one step may take


PROFILES = {
    "fast": Profile(
        "fast", ROOT / "configs" / "prometheus" / "fast-profile" / "msgreach.yml", 2, "1s", True,
        {"dns": 2, "tcp": 2, "tls": 2, "http": 2, "default": 4}, 10, 90,
    ),
    # What production runs: msgreach's default interval, the shipped rules and Alertmanager timers;
    # the lab's own (shorter) check timeouts keep the lab's rounds short.
    "default": Profile(
        "default", ROOT / "configs" / "prometheus" / "rules" / "msgreach.yml", 60, "15s", False,
        {"dns": 3, "tcp": 3, "tls": 4, "http": 5, "default": 10}, 55, 900,
    ),
}


@dataclass
class Timings:
    profile: str
    block_to_metrics: float | None = None
    block_to_alert_active: float | None = None
    block_to_webhook: float | None = None
    unblock_to_metrics: float | None = None
    unblock_to_resolved_webhook: float | None = None
    cut_to_offline_metrics: float | None = None
    cut_to_offline_alert_active: float | None = None
    cut_to_offline_webhook: float | None = None
    allowlist_to_metrics: float | None = None
    allowlist_to_alert_active: float | None = None
    allowlist_to_webhook: float | None = None
    notes: list[str] = field(default_factory=list)


class Flow:
    def __init__(self, lab: Any, workdir: Path, profile: Profile):
        from lab.plan import NS_CLIENT  # tests/lab, importable as `lab` (tests/ is on sys.path)

        self.lab, self.profile = lab, profile
        self.stack = Stack(workdir, NS_CLIENT)
        self.timings = Timings(profile.name)

    # -- setup ---------------------------------------------------------------------------------

    def start(self) -> None:
        p, st = self.profile, self.stack
        self.hook = st.webhook()
        self.am = st.alertmanager(alertmanager_config(self.hook.url, fast=p.alertmanager_fast))
        config = self.lab.config_data(interval=p.msgreach_interval, deadline=p.deadline, retries=1, timeouts=p.timeouts)
        self.msgreach = st.msgreach(config)
        self.prom = st.prometheus(
            {
                "global": {"scrape_interval": p.scrape_interval, "evaluation_interval": p.scrape_interval},
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am.port}"]}]}]},
                "scrape_configs": [{"job_name": "msgreach", "static_configs": [{"targets": [self.msgreach.target]}]}],
            },
            [p.rules],
            extra_flags=(f"--web.external-url={EXTERNAL_URL}",),  # the alerts' links are absolute on it
        )

    def close(self) -> None:
        self.stack.close()

    def diagnostics(self) -> str:
        return "\n".join(f"--- {proc.name}\n{proc.tail(25)}" for proc in self.stack.procs) + f"\n--- deliveries\n{self.hook.deliveries()}"

    # -- observations --------------------------------------------------------------------------

    def verdict(self) -> str | None:
        for line in self.msgreach.metrics().splitlines():
            if line.startswith("msgreach_service_verdict{") and f'service="{SERVICE}"' in line and f'vantage="{VANTAGE}"' in line and line.endswith(" 1.0"):
                return line.split('verdict="')[1].split('"')[0]
        return None

    def online(self) -> float | None:
        for line in self.msgreach.metrics().splitlines():
            if line.startswith(f'msgreach_vantage_online{{vantage="{VANTAGE}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return None

    def regime(self) -> str | None:
        for line in self.msgreach.metrics().splitlines():
            if line.startswith("msgreach_vantage_verdict{") and f'vantage="{VANTAGE}"' in line and line.endswith(" 1.0"):
                return line.split('verdict="')[1].split('"')[0]
        return None

    def prom_alert(self, name: str, **labels: str) -> dict | None:
        for a in self.prom.alerts():
            if a["labels"]["alertname"] == name and a["state"] == "firing" and all(a["labels"].get(k) == v for k, v in labels.items()):
                return a
        return None

    def delivered(self, name: str, status: str, since: float, **labels: str) -> tuple[dict, dict] | None:
        for d, a in self.hook.alerts():
            if d["received_at"] >= since and a["labels"]["alertname"] == name and a["status"] == status and all(a["labels"].get(k) == v for k, v in labels.items()):
                return d, a
        return None

    def wait(self, what: str, condition, timeout: float | None = None, interval: float = 0.25):
        return wait_for(what, condition, timeout or self.profile.step_timeout, interval, on_timeout=self.diagnostics)

    # -- the steps -----------------------------------------------------------------------------

    def baseline(self) -> None:
        """Telegram ok at the vantage, seen by Prometheus (the "was reachable" half of the rule)."""
        self.wait(f"{SERVICE} ok on /metrics", lambda: self.verdict() == "ok", timeout=max(120, 3 * self.profile.msgreach_interval))
        self.wait(
            f"{SERVICE} ok in Prometheus",
            lambda: self.prom.query(f'msgreach_service_verdict{{vantage="{VANTAGE}",service="{SERVICE}",verdict="ok"}} == 1'),
            timeout=120,
        )

    def block(self) -> dict:
        t = self.timings
        on = time.time()
        self.lab.scenario("syn-rst", True, [SERVICE])
        self.wait(f"{SERVICE} {TECHNIQUE} on /metrics", lambda: self.verdict() == TECHNIQUE)
        t.block_to_metrics = time.time() - on
        firing = self.wait("MsgreachSuddenBlock firing in Prometheus", lambda: self.prom_alert("MsgreachSuddenBlock", service=SERVICE))
        t.block_to_alert_active = _ts(firing["activeAt"]) - on
        delivery, alert = self.wait(
            "MsgreachSuddenBlock at the webhook", lambda: self.delivered("MsgreachSuddenBlock", "firing", on, service=SERVICE)
        )
        t.block_to_webhook = delivery["received_at"] - on
        return {"path": delivery["path"], "labels": alert["labels"], "annotations": alert["annotations"], "since": on}

    def unblock(self) -> dict:
        t = self.timings
        off = time.time()
        self.lab.scenario("syn-rst", False)
        self.wait(f"{SERVICE} ok on /metrics", lambda: self.verdict() == "ok")
        t.unblock_to_metrics = time.time() - off
        delivery, alert = self.wait(
            "the resolution at the webhook", lambda: self.delivered("MsgreachSuddenBlock", "resolved", off, service=SERVICE)
        )
        t.unblock_to_resolved_webhook = delivery["received_at"] - off
        return {"path": delivery["path"], "labels": alert["labels"]}

    def cut_uplink(self, quiet_after: float) -> dict:
        """Cut the line; wait for the offline alert, then ``quiet_after`` seconds more, and report
        everything that was delivered or fired since the cut."""
        t = self.timings
        cut = time.time()
        self.lab.scenario("uplink-cut", True)
        self.wait("vantage offline on /metrics", lambda: self.online() == 0)
        t.cut_to_offline_metrics = time.time() - cut
        firing = self.wait("MsgreachVantageOffline firing in Prometheus", lambda: self.prom_alert("MsgreachVantageOffline", vantage=VANTAGE))
        t.cut_to_offline_alert_active = _ts(firing["activeAt"]) - cut
        delivery, _ = self.wait(
            "MsgreachVantageOffline at the webhook", lambda: self.delivered("MsgreachVantageOffline", "firing", cut, vantage=VANTAGE)
        )
        t.cut_to_offline_webhook = delivery["received_at"] - cut
        fired_in_prometheus: set[str] = set()
        end = time.time() + quiet_after
        while time.time() < end:  # watch Prometheus itself: no block alert may even fire
            fired_in_prometheus |= {a["labels"]["alertname"] for a in self.prom.alerts() if a["state"] == "firing"}
            time.sleep(1)
        delivered = sorted({(d["path"].rsplit("/", 1)[-1], a["labels"]["alertname"], a["status"]) for d, a in self.hook.alerts() if d["received_at"] >= cut})
        self.lab.scenario("uplink-cut", False)
        return {"fired_in_prometheus": sorted(fired_in_prometheus), "delivered": delivered}

    def allowlist(self, quiet_after: float) -> dict:
        """Switch the lab's regional allowlist on (domestic sites only; every service fails):
        wait for MsgreachAllowlistRegime at the webhook, then ``quiet_after`` seconds more, and
        report everything that fired or was delivered since the switch; then switch it off.
        The scenario is tests/lab/field_scenarios.py's: the caller imports that module (from the
        package its lab comes from), which registers it."""
        t = self.timings
        on = time.time()
        self.lab.scenario("allowlist", True)
        try:
            self.wait("the allowlist regime on /metrics", lambda: self.regime() == "allowlist")
            t.allowlist_to_metrics = time.time() - on
            firing = self.wait("MsgreachAllowlistRegime firing in Prometheus", lambda: self.prom_alert("MsgreachAllowlistRegime", country="RU"))
            t.allowlist_to_alert_active = _ts(firing["activeAt"]) - on
            delivery, alert = self.wait(
                "MsgreachAllowlistRegime at the webhook", lambda: self.delivered("MsgreachAllowlistRegime", "firing", on, country="RU")
            )
            t.allowlist_to_webhook = delivery["received_at"] - on
            fired_in_prometheus: set[str] = set()
            end = time.time() + quiet_after
            while time.time() < end:  # the services fail all along: no block alert may even fire
                fired_in_prometheus |= {a["labels"]["alertname"] for a in self.prom.alerts() if a["state"] == "firing"}
                time.sleep(1)
            services = {
                line.split('service="')[1].split('"')[0]: line.split('verdict="')[1].split('"')[0]
                for line in self.msgreach.metrics().splitlines()
                if line.startswith("msgreach_service_verdict{") and line.endswith(" 1.0")
            }
            delivered = sorted({(d["path"].rsplit("/", 1)[-1], a["labels"]["alertname"], a["status"]) for d, a in self.hook.alerts() if d["received_at"] >= on})
        finally:
            self.lab.scenario("allowlist", False)
        return {
            "path": delivery["path"], "labels": alert["labels"], "annotations": alert["annotations"],
            "fired_in_prometheus": sorted(fired_in_prometheus), "delivered": delivered, "services": services,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self.timings), indent=2) + "\n")


def _ts(rfc3339: str) -> float:
    """Prometheus' activeAt (RFC 3339 with nanoseconds) as unix time."""
    import datetime as dt

    head, _, frac = rfc3339.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp()
    digits = "".join(c for c in frac if c.isdigit())
    return base + (float(f"0.{digits}") if digits else 0.0)
