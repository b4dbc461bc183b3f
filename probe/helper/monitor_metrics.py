"""The monitor's metric families for its helpers (registered by `probe.metrics.collectors`):
- `msgreach_udp_stream_loss_ratio{vantage,service,target}`: the share of the call stream's packets
  that did not come back in the latest round;
- `msgreach_helper_up{vantage,helper}` (the contract's): 1 when every exchange with the helper in
  the vantage's latest round completed within its deadline and size, 0 when one did not (a
  frozen, dripping, reset or garbage-answering line); no series for a helper the round did not ask;
- `msgreach_helper_exchange_max_bytes{vantage,helper,direction}`: the largest exchange of that
  round, `sent` and `received` (HTTP bytes): against the 16 KB freezes of foreign lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from probe._prometheus_client import Collector, GaugeMetricFamily, Metric
from probe.model import UDPStreamEvidence


class UDPStreamCollector(Collector):
    def __init__(self, state: Any):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        loss = GaugeMetricFamily(
            "msgreach_udp_stream_loss_ratio", "Share of the call-like UDP stream to the helper that was lost (latest round)",
            labels=["vantage", "service", "target"],
        )
        for vantage, result in self._state.latest.items():
            for service in result.services:
                for target in service.targets:
                    for check in target.checks:
                        if isinstance(check.evidence, UDPStreamEvidence):
                            loss.add_metric([vantage, service.service, target.target], check.evidence.call.loss_ratio)
        yield loss


class HelperLineCollector(Collector):
    def __init__(self, state: Any):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("msgreach_helper_up", "1 when every exchange with the helper in the latest round completed within its deadline and size",
                               labels=["vantage", "helper"])
        largest = GaugeMetricFamily("msgreach_helper_exchange_max_bytes", "The largest exchange with the helper in the latest round, each way (HTTP bytes)",
                                    labels=["vantage", "helper", "direction"])
        for vantage, result in self._state.latest.items():
            for line in result.helpers:
                up.add_metric([vantage, line.helper], 1 if line.up else 0)
                largest.add_metric([vantage, line.helper, "sent"], line.largest_sent_bytes)
                largest.add_metric([vantage, line.helper, "received"], line.largest_received_bytes)
        yield from (up, largest)
