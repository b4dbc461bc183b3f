"""The contract's metrics, rendered at scrape time from the latest round of each vantage.

State is kept as results, not as gauges set one by one: a target that leaves the config leaves
/metrics with it, a reload keeps the counters, and every state set has exactly one series at 1.
Nothing here carries an address of the vantage itself: only names the volunteer configured.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import NamedTuple

from probe import __version__, judge
from probe._prometheus_client import (
    Collector,
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    ProcessCollector,
    Sample,
    floatToGoString,
    generate_openmetrics,
    generate_text,
)
from probe.config import Config
from probe.history import History
from probe.kept import KeptResults
from probe.model import (
    SERVICE_VERDICTS,
    TARGET_VERDICTS,
    VANTAGE_VERDICTS,
    CheckResult,
    DNSEvidence,
    Download,
    TargetResult,
    TCPEvidence,
    ThroughputEvidence,
    TLSEvidence,
    VantageResult,
    Verdict,
)
from probe.upload import UploadCollector, UploadStatus

CONTROLS = "controls"


@dataclass
class State:
    """What the monitor knows: the latest result of each vantage and the running counters."""

    config: Config
    # Each vantage's latest result, held packed between rounds (probe/kept.py: `run`'s memory);
    # a plain dict given is taken in.
    latest: KeptResults = field(default_factory=KeptResults)
    failures: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)  # (vantage, service, target, check, failure)
    rounds: Counter[str] = field(default_factory=Counter)  # vantage
    finished_at: dict[str, float] = field(default_factory=dict)  # vantage -> unix time
    evidence: EvidenceHealth = field(default_factory=lambda: EvidenceHealth())
    version: int = 0  # bumped by every change /metrics shows (a round, a reload)
    upload: UploadStatus | None = None  # reports to the centre (probe/upload.py): rendered per scrape

    def __post_init__(self) -> None:
        given: Mapping[str, VantageResult] = self.latest
        if not isinstance(given, KeptResults):  # a dict of results (a state built from them)
            self.latest = KeptResults(given)

    def record(self, result: VantageResult, measured: VantageResult | None = None) -> None:
        """A round's result. A confirmation round measured only some services (``measured``);
        ``result`` is then the vantage's whole picture, and only what was measured is counted."""
        self.version += 1
        self.latest[result.vantage] = result
        self.rounds[result.vantage] += 1
        self.finished_at[result.vantage] = result.started_at + result.duration_seconds
        for service, target in _targets(measured or result):
            for check in target.checks:
                if check.failure is not None and not check.ok:
                    self.failures[(result.vantage, service, target.target, check.check, _failure_label(check.failure))] += 1

    def prune(self, config: Config) -> None:
        """Forget what a reload removed (vantages, services, targets), so that their gauges and
        counters leave /metrics; keep everything still configured."""
        self.config = config
        self.version += 1
        vantages = {v.name for v in config.vantages}
        configured = {(s.name, t.name) for s in config.services for t in s.targets}
        configured |= {(CONTROLS, c.name) for c in config.controls}
        for name in [n for n in self.latest if n not in vantages]:
            del self.latest[name]
        for name, result in list(self.latest.items()):  # copies: a round in flight may hold the old ones
            services = [replace(s, targets=[t for t in s.targets if (s.service, t.target) in configured]) for s in result.services]
            controls = [c for c in result.controls if (CONTROLS, c.target) in configured]
            self.latest[name] = replace(result, controls=controls, services=[s for s in services if s.targets])
        for key in [k for k in self.failures if k[0] not in vantages or (k[1], k[2]) not in configured]:
            del self.failures[key]
        for counts in (self.rounds, self.finished_at):
            for name in [n for n in counts if n not in vantages]:
                del counts[name]
        self.evidence.prune(vantages)

    def record_evidence(self, vantage: str, written: bool, at: float) -> None:
        """Whether the evidence archive took the vantage's round (see EvidenceHealth)."""
        self.version += 1
        self.evidence.record(vantage, written, at)

    def control_reference(self) -> VantageResult | None:
        """The latest online result of a control vantage, if one is configured (only the control
        vantages' results are read: the others stay packed)."""
        controls = [self.latest[v.name] for v in self.config.vantages if v.control and v.name in self.latest]
        return judge.control_reference(controls, self.config.vantages)


def _failure_label(failure: str) -> str:
    # `unknown_failure: <text>` would give every odd error its own series.
    return failure.split(":", 1)[0]


def _targets(result: VantageResult) -> Iterator[tuple[str, TargetResult]]:
    for control in result.controls:
        yield CONTROLS, control
    for service in result.services:
        for target in service.targets:
            yield service.service, target


class _Family(Metric):
    """A metric family whose samples are made while `generate_latest` writes them, never held as
    a list: a large vantage's target-verdict state set alone is tens of thousands of samples,
    which a list of prometheus_client `Sample`s would hold all at once."""

    def __init__(self, name: str, documentation: str, typ: str, labels: Sequence[str], rows: Callable[[], Iterable[tuple[Sequence[str], float]]]):
        super().__init__(name, documentation, typ)
        self.samples = _Samples(f"{name}_total" if typ == "counter" else name, tuple(labels), rows)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class _Samples:
    """Re-iterable: each pass calls `rows` again (generate_latest passes once per render)."""

    name: str
    labels: tuple[str, ...]
    rows: Callable[[], Iterable[tuple[Sequence[str], float]]]

    def __iter__(self) -> Iterator[Sample]:
        for values, value in self.rows():
            yield Sample(self.name, dict(zip(self.labels, values, strict=False)), value)

    def lines(self) -> Iterator[str]:
        """The samples' lines, each as prometheus_client writes it in both formats (labels sorted
        by name, values escaped, the value as Go prints a float), without a `Sample` or a dict
        per series: the library's writer was most of a steady round's `/metrics` refresh
        (issue #22). Only for legacy names (`writes_lines`), which the library leaves as they are."""
        labels = self.labels
        order = sorted(range(len(labels)), key=labels.__getitem__)
        prefixes = [f'{labels[i]}="' for i in order]
        start = self.name + "{"
        escaped: dict[str, str] = {}  # label values repeat (vantages, services, checks, verdicts)
        for values, value in self.rows():
            text = _GO_FLOATS.get(value) if type(value) is int else None
            if text is None:
                text = floatToGoString(value)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
            if len(values) != len(labels):  # what zip() makes of it: the labels given a value
                pairs = sorted(zip(labels, values, strict=False))
                label_text = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in pairs)
                yield f"{self.name}{{{label_text}}} {text}\n" if pairs else f"{self.name} {text}\n"
                continue
            if not labels:
                yield f"{self.name} {text}\n"
                continue
            parts = []
            for prefix, index in zip(prefixes, order, strict=True):
                raw = values[index]
                value_text = escaped.get(raw)
                if value_text is None:
                    value_text = escaped[raw] = _escape_label_value(raw)
                parts.append(prefix + value_text)
            yield start + '",'.join(parts) + '"} ' + text + "\n"


_GO_FLOATS = {0: "0.0", 1: "1.0"}  # floatToGoString of the integer values most series have
_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # names prometheus_client writes unchanged


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _writes_lines(family: Metric) -> bool:
    """Whether `_Samples.lines` writes this family's samples as prometheus_client would."""
    samples: object = family.samples  # a list of Sample, as prometheus_client types it, or ours
    return isinstance(samples, _Samples) and all(_LEGACY_NAME.match(name) for name in (samples.name, *samples.labels))


class _Collector(Collector):
    def __init__(self, state: State):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        latest = state.latest
        check_labels = ["vantage", "service", "target", "check"]
        yield _Family("msgreach_check_success", "1 when the check passed in the latest round", "gauge", check_labels,
                      lambda: ((labels, 1 if check.ok else 0) for labels, check in self._checks()))
        yield _Family("msgreach_check_duration_seconds", "How long the check took in the latest round", "gauge", check_labels,
                      lambda: ((labels, check.duration_seconds) for labels, check in self._checks()))
        yield _Family("msgreach_check_failures", "Failed checks by failure string (OONI's vocabulary)", "counter", [*check_labels, "failure"],
                      lambda: ((list(key), count) for key, count in sorted(state.failures.items())))
        yield _Family("msgreach_target_verdict", "State set: the target's verdict (exactly one series is 1)", "gauge",
                      ["vantage", "service", "target", "verdict"], self._target_verdicts)
        yield _Family("msgreach_service_verdict", "State set: the service's verdict (exactly one series is 1)", "gauge",
                      ["vantage", "service", "verdict"], self._service_verdicts)
        yield _Family("msgreach_service_reachable_ratio", "Share of the service's targets that are ok", "gauge", ["vantage", "service"],
                      lambda: (([name, s.service], s.reachable_ratio) for name, result in latest.items() for s in result.services))
        yield _Family("msgreach_vantage_online", "1 when the vantage's controls are reachable", "gauge", ["vantage"],
                      lambda: (([name], 1 if result.online else 0) for name, result in latest.items()))
        yield _Family("msgreach_vantage_verdict", "State set: the vantage's verdict from its control sites (exactly one series is 1)", "gauge",
                      ["vantage", "verdict"],
                      lambda: (([name, v], 1 if v == result.verdict else 0) for name, result in latest.items() for v in VANTAGE_VERDICTS))
        yield _Family("msgreach_dns_lookup_duration_seconds", "DNS lookup time per resolver", "gauge", ["vantage", "service", "target", "resolver"],
                      lambda: (([*labels[:3], q.resolver], q.duration_seconds) for labels, check in self._checks()
                               if isinstance(check.evidence, DNSEvidence) for q in check.evidence.resolvers))
        yield _Family("msgreach_tls_cert_not_after_timestamp_seconds", "Expiry of the certificate presented (also when it did not validate)", "gauge",
                      ["vantage", "service", "target"],
                      lambda: ((labels[:3], check.evidence.certificate.not_after_timestamp) for labels, check in self._checks()
                               if isinstance(check.evidence, TLSEvidence) and check.evidence.certificate is not None))
        yield _Family("msgreach_target_family_reachable", "1 when an address of the family connected in the latest round's tcp check, 0 when every one failed",
                      "gauge", ["vantage", "service", "target", "family"], self._families)
        yield _Family("msgreach_round_duration_seconds", "Duration of the latest round", "gauge", ["vantage"],
                      lambda: (([name], result.duration_seconds) for name, result in latest.items()))
        yield _Family("msgreach_last_round_timestamp_seconds", "When the latest round ended (unix time)", "gauge", ["vantage"],
                      lambda: (([name], state.finished_at[name]) for name in latest))
        yield _Family("msgreach_rounds", "Rounds completed", "counter", ["vantage"],
                      lambda: (([name], count) for name, count in sorted(state.rounds.items())))
        yield _Family("msgreach_vantage_info", "The vantage's self-declared place (no addresses) and role", "gauge",
                      ["vantage", "country", "asn", "network", "role"],
                      lambda: (([v.name, v.country, v.asn, v.network, "control" if v.control else "vantage"], 1) for v in state.config.vantages))
        yield _Family("msgreach_build_info", "msgreach version", "gauge", ["version"], lambda: [([__version__], 1)])
        yield from state.evidence.metrics()

    def _checks(self) -> Iterator[tuple[list[str], CheckResult]]:
        """Every check of the latest rounds, with its labels; an offline vantage's checks say
        nothing about the targets and are left out."""
        for name, result in self._state.latest.items():
            for service_name, target in _targets(result):
                if target.verdict == Verdict.VANTAGE_OFFLINE:
                    continue
                for check in target.checks:
                    yield [name, service_name, target.target, check.check], check

    def _families(self) -> Iterator[tuple[list[str], float]]:
        """Each address family a service target's tcp check connected to (issue 20: IPv4 and
        IPv6 apart), reachable or not; the verdict names a family-specific block, this says it
        per family for the operator's panels and rules."""
        for labels, check in self._checks():
            if labels[1] == CONTROLS or not isinstance(check.evidence, TCPEvidence):
                continue
            reached: dict[str, bool] = {}
            for connect in check.evidence.connects:
                family = "ipv6" if ":" in connect.address else "ipv4"
                reached[family] = reached.get(family, False) or connect.failure is None
            for family, ok in sorted(reached.items()):
                yield [*labels[:3], family], 1 if ok else 0

    def _target_verdicts(self) -> Iterator[tuple[list[str], float]]:
        for name, result in self._state.latest.items():
            for service in result.services:
                for target in service.targets:
                    for verdict in TARGET_VERDICTS:
                        yield [name, service.service, target.target, verdict], 1 if verdict == target.verdict else 0

    def _service_verdicts(self) -> Iterator[tuple[list[str], float]]:
        for name, result in self._state.latest.items():
            for service in result.services:
                for verdict in SERVICE_VERDICTS:
                    yield [name, service.service, verdict], 1 if verdict == service.verdict else 0


# --- the evidence archive's health (probe/evidence): is the disk taking the rounds? --------------


@dataclass
class EvidenceHealth:
    """Per vantage: rounds the archive could not write, and when it last wrote one."""

    write_failures: Counter[str] = field(default_factory=Counter)  # vantage
    last_success: dict[str, float] = field(default_factory=dict)  # vantage -> unix time

    def record(self, vantage: str, written: bool, at: float) -> None:
        if written:
            self.last_success[vantage] = at
        else:
            self.write_failures[vantage] += 1

    def prune(self, vantages: set[str]) -> None:
        for table in (self.write_failures, self.last_success):
            for name in [n for n in table if n not in vantages]:
                del table[name]

    def metrics(self) -> Iterator[Metric]:
        failures = CounterMetricFamily("msgreach_evidence_write_failures", "Rounds the evidence archive could not write (disk full, read-only, permissions)", labels=["vantage"])
        last = GaugeMetricFamily("msgreach_evidence_last_write_success_timestamp_seconds", "When the evidence archive last wrote a round of the vantage (unix time)", labels=["vantage"])
        for name, count in sorted(self.write_failures.items()):
            failures.add_metric([name], count)
        for name, at in sorted(self.last_success.items()):
            last.add_metric([name], at)
        yield from (failures, last)


def collectors(state: State, history: History | None = None) -> list[Collector]:
    """Every msgreach family, in one place: what `msgreach run` serves and what `registry_for` gives."""
    # msgreach_udp_stream_loss_ratio, msgreach_helper_up, msgreach_helper_exchange_max_bytes
    from probe.helper.monitor_metrics import HelperLineCollector, UDPStreamCollector

    found: list[Collector] = [_Collector(state), _DownloadCollector(state), UDPStreamCollector(state), HelperLineCollector(state)]
    if history is not None:  # recorded in the same step as the state: one version covers both
        found.append(_VerdictSinceCollector(state, history))
    return found


def registry_for(state: State, history: History | None = None) -> CollectorRegistry:
    """A registry of every family, the process' own included (for tests and tools)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors(state, history):
        registry.register(collector)
    registry.register(UploadCollector(state))
    ProcessCollector(registry=registry)  # memory and CPU of the probe itself: volunteers ask
    return registry


class _SingleFamily:
    """One family, in the shape `generate_latest` reads (anything with `collect()`)."""

    def __init__(self, family: Metric):
        self._family = family

    def collect(self) -> list[Metric]:
        return [self._family]


def render(families: Iterable[Collector], *, openmetrics: bool = False) -> bytes:
    """The text exposition of `families`, written one family at a time: the lines of only one
    family exist at once, not those of every series of a large vantage. OpenMetrics
    ends with its `# EOF` line."""
    return b"".join(_rendered(families, openmetrics=openmetrics)) + (_EOF if openmetrics else b"")


def _rendered(families: Iterable[Collector], *, openmetrics: bool = False) -> Iterator[bytes]:
    for collector in families:
        for family in collector.collect():
            yield from (_in_openmetrics_batches(family) if openmetrics else _in_batches(family))


# Samples written at a time: one family (the target verdicts) can hold many thousands. A batch's
# text and its bytes are held at once while a render is compressed: 250 lines, about 30 KiB each,
# not 1,000 (issue #22: the render after a round is part of `run`'s peak).
_BATCH = 250


def _in_batches(family: Metric) -> Iterator[bytes]:
    """A family's text, `_BATCH` samples at a time: its HELP and TYPE lines once, then the lines
    of each batch (what generate_latest writes for the whole family, without its lines all held)."""
    if _writes_lines(family):
        part = Metric(family.name, family.documentation, family.type)
        yield generate_text(_SingleFamily(part))  # HELP and TYPE
        yield from _line_batches(family)
        return
    samples = iter(family.samples)
    first = True
    while True:
        batch = list(islice(samples, _BATCH))
        part = Metric(family.name, family.documentation, family.type)
        part.samples = batch
        text = generate_text(_SingleFamily(part))
        yield text if first else text.split(b"\n", 2)[2]
        first = False
        if len(batch) < _BATCH:
            return


_EOF = b"# EOF\n"


def _line_batches(family: Metric) -> Iterator[bytes]:
    """The sample lines of one of msgreach's own families, `_BATCH` at a time."""
    lines = family.samples.lines()  # type: ignore[attr-defined]  # a _Samples (_writes_lines)
    while batch := list(islice(lines, _BATCH)):
        yield "".join(batch).encode("utf-8")


def _in_openmetrics_batches(family: Metric) -> Iterator[bytes]:
    """`_in_batches` in OpenMetrics: the family's metadata lines (`# HELP`, `# TYPE`, `# UNIT`)
    once, each batch's samples, no `# EOF` (the whole exposition ends with one)."""
    if _writes_lines(family):
        part = Metric(family.name, family.documentation, family.type, family.unit)
        yield generate_openmetrics(_SingleFamily(part)).removesuffix(_EOF)  # type: ignore[no-untyped-call]  # HELP, TYPE, UNIT
        yield from _line_batches(family)
        return
    samples = iter(family.samples)
    first = True
    while True:
        batch = list(islice(samples, _BATCH))
        part = Metric(family.name, family.documentation, family.type, family.unit)
        part.samples = batch
        text = generate_openmetrics(_SingleFamily(part)).removesuffix(_EOF)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
        if not first:
            lines = text.split(b"\n")
            text = b"\n".join(line for line in lines if not line.startswith(b"# "))
        yield text
        first = False
        if len(batch) < _BATCH:
            return


class _Render(NamedTuple):
    """msgreach's families in one format, as a state's version made them: the deflate stream of
    their text, flushed to a byte boundary but not finished (its pieces as zlib gave them: never
    joined, so a render is never held twice), with the text's CRC-32 and length, what a gzip
    scrape's trailer needs."""

    version: int
    deflated: tuple[bytes, ...]
    crc: int
    size: int


class Exposition:
    """/metrics rendered once per change of the state (after a round, a reload), not once per
    scrape: a large vantage renders tens of thousands of series, and Prometheus scrapes several
    times a round. Kept compressed, as Prometheus asks for gzip: a fraction of the text is held,
    and goes over a volunteer's uplink when the monitor is scraped from afar; a client that does
    not ask for gzip gets the text. The process' own CPU and memory, and the upload to the centre
    (read more often than rounds run), are rendered per scrape."""

    def __init__(self, state: State, history: History | None = None):
        self._state = state
        self._collectors = collectors(state, history)
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)  # memory and CPU of the probe itself: volunteers ask
        self._process.register(UploadCollector(state))
        # Per format (False: Prometheus text, True: OpenMetrics). After a round, `refresh` makes
        # the format the last scrape asked for (Prometheus asks for OpenMetrics); the other, when asked.
        self._cached: dict[bool, _Render] = {}
        # Before the first scrape: OpenMetrics, as Prometheus asks (the text format's module is
        # loaded only when a client asks for that format: probe/_prometheus_client.py).
        self._asked_openmetrics = True

    def refresh(self, *, openmetrics: bool | None = None) -> None:
        """Render the state if it changed since the last render in this format (by default the
        format of the last scrape). A stale render of either format is let go first."""
        if openmetrics is None:
            openmetrics = self._asked_openmetrics
        for fmt, cached in list(self._cached.items()):
            if cached.version != self._state.version:
                del self._cached[fmt]  # the old bytes go before the new ones are made (no await in here)
        if openmetrics not in self._cached:
            compressor = _deflater()  # let go once the render is made
            crc = size = 0
            chunks = []
            for text in _rendered(self._collectors, openmetrics=openmetrics):
                crc, size = zlib.crc32(text, crc), size + len(text)
                if chunk := compressor.compress(text):
                    chunks.append(chunk)
            chunks.append(compressor.flush(zlib.Z_SYNC_FLUSH))  # all of it in the bytes, ending on a byte boundary
            self._cached[openmetrics] = _Render(self._state.version, tuple(chunks), crc, size)

    def render(self, *, gzip: bool = False, openmetrics: bool = False) -> tuple[bytes, ...]:
        """The response body in pieces, written one after the other: msgreach's families, then the
        process' own lines (and OpenMetrics' `# EOF`). `gzip`: one gzip member, whole (what
        every client reads): the cached deflate stream, then the process' lines compressed on
        their own as its last block (a block needs nothing of the ones before it), and the
        trailer over both."""
        self._asked_openmetrics = openmetrics
        self.refresh(openmetrics=openmetrics)
        cached = self._cached[openmetrics]
        process = render([self._process], openmetrics=True) if openmetrics else generate_text(self._process)
        if gzip:
            ending = _deflater()
            last = ending.compress(process) + ending.flush()
            trailer = struct.pack("<II", zlib.crc32(process, cached.crc), (cached.size + len(process)) & 0xFFFFFFFF)
            return (_GZIP_HEADER, *cached.deflated, last + trailer)
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        return b"".join(inflate.decompress(chunk) for chunk in cached.deflated), process


def _deflater() -> zlib._Compress:
    """A raw deflate stream at level 6 with a 4 KiB window and zlib's memLevel 5: about 40 KiB of
    state, not zlib's default 32 KiB window and memLevel 8 (about 260 KiB), held while a round is
    rendered. The exposition's repeats are a few lines apart: at 1,000 targets the render comes
    out the same size (109 KiB against 111) for the same CPU (bench, docs/benchmarks.md)."""
    return zlib.compressobj(6, zlib.DEFLATED, -12, 5)


# gzip's member header (RFC 1952) as zlib writes it at level 6: deflate, no name, no time, Unix.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"


# --- downloads: the throughput check's typed record (probe.model.ThroughputEvidence) ---------------


class _DownloadCollector(Collector):
    """Rate of each measured download, and where a stalled one stopped: the mobile networks'
    16–20 KB freeze is a stall offset in that window, visible across rounds and vantages."""

    def __init__(self, state: State):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        labels = ["vantage", "service", "target"]
        rate = GaugeMetricFamily("msgreach_download_throughput_bytes_per_second", "Download throughput of the service's test object", labels=labels)
        stall = GaugeMetricFamily(
            "msgreach_download_stall_offset_bytes", "Bytes received when the latest download stalled (absent when it did not stall)", labels=labels
        )
        for name, result in self._state.latest.items():
            for service_name, target in _targets(result):
                if target.verdict == Verdict.VANTAGE_OFFLINE:
                    continue
                for check in target.checks:
                    download = _download(check)
                    if download is None:
                        continue
                    if download.bytes_per_second is not None:
                        rate.add_metric([name, service_name, target.target], download.bytes_per_second)
                    if download.stalled_at_bytes is not None:
                        stall.add_metric([name, service_name, target.target], download.stalled_at_bytes)
        yield from (rate, stall)


def _download(check: CheckResult) -> Download | None:
    evidence = check.evidence
    return evidence.download if isinstance(evidence, ThroughputEvidence) else None
# --- verdict history (probe/history.py): when each target's current verdict began --------------
# Kept apart from _Collector on purpose: it reads the history store, not the latest results only.


class _VerdictSinceCollector(Collector):
    def __init__(self, state: State, history: History):
        self._state = state
        self._history = history

    def collect(self) -> Iterator[Metric]:
        yield _Family("msgreach_target_verdict_since_timestamp_seconds",
                      "When the target's current verdict began (unix time; kept across restarts with a state file)", "gauge",
                      ["vantage", "service", "target"], self._since)

    def _since(self) -> Iterator[tuple[list[str], float]]:
        for name, result in self._state.latest.items():
            for service in result.services:
                for target in service.targets:
                    began = self._history.since(name, service.service, target.target)
                    if began is not None:
                        yield [name, service.service, target.target], began
