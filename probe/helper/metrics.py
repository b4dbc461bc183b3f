"""The helper's own Prometheus metrics (prefix `msgreach_helper_`): what it served and what it
refused. No label carries a client address."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector


class HelperMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("msgreach_helper_requests", "Signed API requests served, by endpoint", ["endpoint"], registry=r)
        self.refused = Counter(
            "msgreach_helper_refused", "Requests and datagrams refused, by channel and reason (never a crash)",
            ["channel", "reason"], registry=r,
        )
        self.datagrams = Counter("msgreach_helper_stream_datagrams", "Authenticated stream datagrams echoed", registry=r)
        self.stream_bytes = Counter("msgreach_helper_stream_bytes", "Stream bytes received (each echoed with at most as many)", registry=r)
        self.probe_arrivals = Counter("msgreach_helper_probe_arrivals", "Circumvention probe payloads that arrived, by transport", ["transport"], registry=r)
        self.bulk_bytes = Counter("msgreach_helper_bulk_bytes", "Bytes sent in authenticated bulk transfers", registry=r)
        self.bulk_bytes_received = Counter("msgreach_helper_bulk_received_bytes", "Bytes received in authenticated bulk uploads", registry=r)
        self.measurements = Counter("msgreach_helper_measurements", "Catalog targets measured (not answered from the cache)", registry=r)
        self.sessions = Gauge("msgreach_helper_open_sessions", "Open stream sessions and probe expectations", registry=r)
        self.connections = Gauge("msgreach_helper_open_connections", "Open TCP connections, by channel (http, probe, bulk)", ["channel"], registry=r)
        self.clients = Gauge("msgreach_helper_tracked_clients", "Clients whose rate bounds are being tracked", registry=r)
        ProcessCollector(registry=r)

    def refuse(self, channel: str, reason: str) -> None:
        self.refused.labels(channel, reason).inc()
