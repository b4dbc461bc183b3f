"""The monitor's metric family for call streams (registered by `probe.metrics.registry_for`):
`msgreach_udp_stream_loss_ratio{vantage,service,target}`, the share of the call stream's packets
that did not come back in the latest round."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probe.model import to_json


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
                        if check.check != "udp_stream":
                            continue
                        evidence = to_json(check.evidence)
                        ratio = (evidence.get("call") or {}).get("loss_ratio") if isinstance(evidence, dict) else None
                        if isinstance(ratio, int | float):
                            loss.add_metric([vantage, service.service, target.target], float(ratio))
        yield loss
