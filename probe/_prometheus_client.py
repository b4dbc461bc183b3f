"""prometheus-client's parts msgreach uses, imported without the package's `__init__`.

The package's `__init__` imports its exposition module, and with it its HTTP servers and push
gateway client (http.server, socketserver, wsgiref, urllib.request), and its metric classes'
machinery (values, mmap_dict, decorators): 1.2 MiB of a `run` process that builds its own
families and serves them itself (docs/benchmarks.md, "Memory of `run`", issue #22). Only the
modules below are loaded; the Prometheus text format (`prometheus_client.exposition`) is
imported when a client asks for it instead of OpenMetrics (Prometheus asks for OpenMetrics).
Reading any name of the package itself (`prometheus_client.REGISTRY`) runs its `__init__` as
usual (probe/_lazy_package.py). Modules of probe/ import prometheus-client from here.
"""

from probe._lazy_package import skip_init

skip_init("prometheus_client")

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric  # noqa: E402 - after skip_init
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE  # noqa: E402
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from prometheus_client.process_collector import ProcessCollector  # noqa: E402
from prometheus_client.registry import Collector, CollectorRegistry  # noqa: E402
from prometheus_client.samples import Sample  # noqa: E402
from prometheus_client.utils import floatToGoString  # noqa: E402


def generate_text(registry: Collector) -> bytes:
    """The Prometheus text format of `registry` (prometheus_client's `generate_latest`)."""
    from prometheus_client.exposition import generate_latest

    return generate_latest(registry)


def text_content_type() -> str:
    """The Content-Type of the Prometheus text format, as prometheus-client names it."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return str(CONTENT_TYPE_LATEST)


__all__ = [
    "OPENMETRICS_CONTENT_TYPE", "Collector", "CollectorRegistry", "CounterMetricFamily", "GaugeMetricFamily", "Metric", "ProcessCollector",
    "Sample", "floatToGoString", "generate_openmetrics", "generate_text", "text_content_type", "text_string_to_metric_families",
]
