"""The contract's metrics, rendered at scrape time from the latest round of each vantage.

State is kept as results, not as gauges set one by one: a target that leaves the config leaves
/metrics with it, a reload keeps the counters, and every state set has exactly one series at 1.
Nothing here carries an address of the vantage itself: only names the volunteer configured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probe import __version__
from probe.config import Config
from probe import judge
from probe.history import History
from probe.model import SERVICE_VERDICTS, TARGET_VERDICTS, VANTAGE_VERDICTS, DNSEvidence, TargetResult, TLSEvidence, VantageResult, Verdict, to_json

CONTROLS = "controls"


@dataclass
class State:
    """What the monitor knows: the latest result of each vantage and the running counters."""

    config: Config
    latest: dict[str, VantageResult] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)  # (vantage, service, target, check, failure)
    rounds: Counter = field(default_factory=Counter)  # vantage
    finished_at: dict[str, float] = field(default_factory=dict)  # vantage -> unix time

    version: int = 0  # bumped by every change /metrics shows (a round, a reload)

    def record(self, result: VantageResult) -> None:
        self.version += 1
        self.latest[result.vantage] = result
        self.rounds[result.vantage] += 1
        self.finished_at[result.vantage] = result.started_at + result.duration_seconds
        for service, target in _targets(result):
            for check in target.checks:
                if check.failure is not None and not check.ok:
                    self.failures[(result.vantage, service, target.target, check.check, _failure_label(check.failure))] += 1

    def control_reference(self) -> VantageResult | None:
        """The latest online result of a control vantage, if one is configured."""
        return judge.control_reference(self.latest.values(), self.config.vantages)


def _failure_label(failure: str) -> str:
    # `unknown_failure: <text>` would give every odd error its own series.
    return failure.split(":", 1)[0]


def _targets(result: VantageResult) -> Iterator[tuple[str, TargetResult]]:
    for control in result.controls:
        yield CONTROLS, control
    for service in result.services:
        for target in service.targets:
            yield service.service, target


class _Collector(Collector):
    def __init__(self, state: State):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        check_labels = ["vantage", "service", "target", "check"]
        success = GaugeMetricFamily("msgreach_check_success", "1 when the check passed in the latest round", labels=check_labels)
        duration = GaugeMetricFamily("msgreach_check_duration_seconds", "How long the check took in the latest round", labels=check_labels)
        failures = CounterMetricFamily("msgreach_check_failures", "Failed checks by failure string (OONI's vocabulary)", labels=[*check_labels, "failure"])
        target_verdict = GaugeMetricFamily("msgreach_target_verdict", "State set: the target's verdict (exactly one series is 1)", labels=["vantage", "service", "target", "verdict"])
        service_verdict = GaugeMetricFamily("msgreach_service_verdict", "State set: the service's verdict (exactly one series is 1)", labels=["vantage", "service", "verdict"])
        ratio = GaugeMetricFamily("msgreach_service_reachable_ratio", "Share of the service's targets that are ok", labels=["vantage", "service"])
        online = GaugeMetricFamily("msgreach_vantage_online", "1 when the vantage's controls are reachable", labels=["vantage"])
        dns_duration = GaugeMetricFamily("msgreach_dns_lookup_duration_seconds", "DNS lookup time per resolver", labels=["vantage", "service", "target", "resolver"])
        not_after = GaugeMetricFamily("msgreach_tls_cert_not_after_timestamp_seconds", "Expiry of the certificate presented (also when it did not validate)", labels=["vantage", "service", "target"])
        throughput = GaugeMetricFamily("msgreach_download_throughput_bytes_per_second", "Download throughput of the service's test object", labels=["vantage", "service", "target"])
        round_duration = GaugeMetricFamily("msgreach_round_duration_seconds", "Duration of the latest round", labels=["vantage"])
        last_round = GaugeMetricFamily("msgreach_last_round_timestamp_seconds", "When the latest round ended (unix time)", labels=["vantage"])
        rounds = CounterMetricFamily("msgreach_rounds", "Rounds completed", labels=["vantage"])
        info = GaugeMetricFamily("msgreach_vantage_info", "The vantage's self-declared place (no addresses) and role", labels=["vantage", "country", "asn", "network", "role"])
        vantage_verdict = GaugeMetricFamily("msgreach_vantage_verdict", "State set: the vantage's verdict from its control sites (exactly one series is 1)", labels=["vantage", "verdict"])
        build = GaugeMetricFamily("msgreach_build_info", "msgreach version", labels=["version"])

        build.add_metric([__version__], 1)
        for vantage in state.config.vantages:
            info.add_metric([vantage.name, vantage.country, vantage.asn, vantage.network, "control" if vantage.control else "vantage"], 1)
        for key, count in sorted(state.failures.items()):
            failures.add_metric(list(key), count)
        for name, count in sorted(state.rounds.items()):
            rounds.add_metric([name], count)

        for name, result in state.latest.items():
            online.add_metric([name], 1 if result.online else 0)
            for verdict in VANTAGE_VERDICTS:
                vantage_verdict.add_metric([name, verdict], 1 if verdict == result.verdict else 0)
            round_duration.add_metric([name], result.duration_seconds)
            last_round.add_metric([name], state.finished_at[name])
            for service in result.services:
                ratio.add_metric([name, service.service], service.reachable_ratio)
                for verdict in SERVICE_VERDICTS:
                    service_verdict.add_metric([name, service.service, verdict], 1 if verdict == service.verdict else 0)
            for service_name, target in _targets(result):
                if service_name != CONTROLS:
                    for verdict in TARGET_VERDICTS:
                        target_verdict.add_metric([name, service_name, target.target, verdict], 1 if verdict == target.verdict else 0)
                if target.verdict == Verdict.VANTAGE_OFFLINE:
                    continue
                for check in target.checks:
                    labels = [name, service_name, target.target, check.check]
                    success.add_metric(labels, 1 if check.ok else 0)
                    duration.add_metric(labels, check.duration_seconds)
                    _check_specific(check, [name, service_name, target.target], dns_duration, not_after, throughput)
        yield from (success, duration, failures, target_verdict, service_verdict, ratio, online, vantage_verdict, dns_duration, not_after, throughput, round_duration, last_round, rounds, info, build)


def _check_specific(check, labels: list[str], dns_duration: GaugeMetricFamily, not_after: GaugeMetricFamily, throughput: GaugeMetricFamily) -> None:
    evidence = check.evidence
    if isinstance(evidence, DNSEvidence):
        for query in evidence.resolvers:
            dns_duration.add_metric([*labels, query.resolver], query.duration_seconds)
    elif isinstance(evidence, TLSEvidence) and evidence.certificate is not None:
        not_after.add_metric(labels, evidence.certificate.not_after_timestamp)
    elif check.check == "throughput" and to_json(evidence).get("bytes_per_second") is not None:
        throughput.add_metric(labels, to_json(evidence)["bytes_per_second"])


def registry_for(state: State, history: History | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(state))
    if history is not None:
        registry.register(_VerdictSinceCollector(state, history))
    ProcessCollector(registry=registry)  # memory and CPU of the probe itself: volunteers ask
    return registry


class Exposition:
    """/metrics as bytes rendered once per change of the state (after a round, a reload), not
    once per scrape: at 1,000 targets a render is ~20,000 series, and Prometheus scrapes several
    times a round. The process' own CPU and memory are rendered per scrape (a few lines)."""

    def __init__(self, state: State, history: History | None = None):
        self._state = state
        self._msgreach = CollectorRegistry(auto_describe=False)
        self._msgreach.register(_Collector(state))
        if history is not None:  # recorded in the same step as the state: one version covers both
            self._msgreach.register(_VerdictSinceCollector(state, history))
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)  # memory and CPU of the probe itself: volunteers ask
        self._version = -1
        self._rendered = b""

    def refresh(self) -> None:
        """Render the state if it changed since the last render."""
        if self._state.version != self._version:
            self._version = self._state.version
            self._rendered = generate_latest(self._msgreach)

    def render(self) -> bytes:
        self.refresh()
        return self._rendered + generate_latest(self._process)


# --- verdict history (probe/history.py): when each target's current verdict began --------------
# Kept apart from _Collector on purpose: it reads the history store, not the latest results only.


class _VerdictSinceCollector(Collector):
    def __init__(self, state: State, history: History):
        self._state = state
        self._history = history

    def collect(self) -> Iterator[Metric]:
        since = GaugeMetricFamily(
            "msgreach_target_verdict_since_timestamp_seconds",
            "When the target's current verdict began (unix time; kept across restarts with a state file)",
            labels=["vantage", "service", "target"],
        )
        for name, result in self._state.latest.items():
            for service in result.services:
                for target in service.targets:
                    began = self._history.since(name, service.service, target.target)
                    if began is not None:
                        since.add_metric([name, service.service, target.target], began)
        yield since
