"""Reports to the centre: are they flowing, or held, and why? (issue #18, item 7)

The volunteer's Prometheus agent scrapes msgreach and remote-writes to the centre abroad, across
the censor that msgreach measures. msgreach never talks to the centre itself: it reads the
agent's own /metrics (`upload.agent_url`, a URL on this machine), bounded in time and bytes, and
compares the agent's newest sample with the newest one the centre accepted:

    lag = prometheus_remote_storage_highest_timestamp_in_seconds
          - prometheus_remote_storage_queue_highest_sent_timestamp_seconds

Reports are *held* when the lag passes `upload.held_after_seconds`. Why, from the agent's send
attempts since the previous reading (prometheus_remote_storage_sent_batch_duration_seconds): no
attempt finished, or they took seconds each — the line stalls, as a censor freezing connections
to hosting abroad makes it; or they came back at once — the centre, or something on the way,
refuses or cuts them. Samples the agent gave up on (samples_failed_total) are lost, and said so.

Shown on the status page (one notice), in /status.json (`upload`) and as
`msgreach_upload_held_seconds` and `msgreach_upload_agent_up` (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from probe import failures
from probe._prometheus_client import Collector, GaugeMetricFamily, Metric, text_string_to_metric_families
from probe.config import Config, Upload

log = logging.getLogger(__name__)

# Attempts that take this long on average did not get an answer (the agent's remote_timeout is
# 10 s as shipped, 30 s by Prometheus's default); a healthy request to the centre takes well
# under a second, a refused or reset one less.
_STALLED_ATTEMPT_SECONDS = 5.0
_WANTED = ("prometheus_remote_storage_", "process_start_time_seconds")
_WINDOW_SECONDS = 60.0  # the attempts of at least this long are weighed (remote_timeout 10 s + backoff 30 s fit)

State = Literal["flowing", "held", "unknown"]
Why = Literal["", "line_stalls", "centre_refuses"]


@dataclass(frozen=True, slots=True)
class AgentReading:
    """What the agent's /metrics said (summed over its remote-write queues; the furthest-behind
    queue's newest sent sample)."""

    at: float
    started_at: float | None
    newest_appended: float  # the newest sample the agent scraped (unix time)
    newest_sent: float  # the newest sample the centre accepted (0: none since the agent started)
    retried: float
    failed: float
    attempts: float
    attempt_seconds: float


@dataclass(frozen=True, slots=True)
class UploadStatus:
    state: State
    checked_at: float
    lag_seconds: float = 0.0
    why: Why = ""
    failed_samples: int = 0  # given up by the agent since it started: lost
    retried_samples: int = 0
    failure: str | None = None  # reading the agent failed (a failure string)

    @property
    def held_seconds(self) -> float:
        return self.lag_seconds if self.state == "held" else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state, "checked_at": self.checked_at, "lag_seconds": round(self.lag_seconds, 1),
            "held_seconds": round(self.held_seconds, 1), "why": self.why or None,
            "failed_samples": self.failed_samples, "retried_samples": self.retried_samples, "failure": self.failure,
        }


# --- reading the agent ------------------------------------------------------------------------------


async def fetch(settings: Upload) -> str:
    """The agent's /metrics text, within `timeout_seconds` and `max_bytes` (raises on either)."""
    import httpx

    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(settings.timeout_seconds):
        # trust_env=False: never through a proxy from the environment; the agent is on this machine.
        async with (
            httpx.AsyncClient(trust_env=False, follow_redirects=False) as client,
            client.stream("GET", settings.agent_url, headers={"Accept-Encoding": "identity"}) as response,
        ):
            if response.status_code != 200:
                raise failures.Failure(failures.PROTOCOL_ERROR, f"the agent answered HTTP {response.status_code}")
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > settings.max_bytes:
                    raise failures.Failure(failures.HTTP_BODY_TOO_LARGE, f"the agent's answer passed {settings.max_bytes} bytes")
                chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def parse(text: str, at: float) -> AgentReading:
    """The remote-write figures of an agent's exposition; Failure(protocol_error) if it has none."""
    lines = "\n".join(line for line in text.splitlines() if line.startswith(_WANTED)) + "\n"
    sums: dict[str, float] = {}
    sent: dict[str, float] = {}  # queue (remote_name) -> newest sample sent; absent until its first send
    try:
        for family in text_string_to_metric_families(lines):
            for sample in family.samples:
                queue = sample.labels.get("remote_name")
                if queue is not None:
                    sent.setdefault(queue, 0.0)
                    if sample.name == "prometheus_remote_storage_queue_highest_sent_timestamp_seconds":
                        sent[queue] = sample.value
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    except ValueError as exc:
        raise failures.Failure(failures.PROTOCOL_ERROR, f"the agent's metrics do not parse: {str(exc)[:80]}") from None
    if not sent:
        raise failures.Failure(failures.PROTOCOL_ERROR, "no remote-write queue in the agent's metrics")
    return AgentReading(
        at=at,
        started_at=sums.get("process_start_time_seconds"),
        newest_appended=sums.get("prometheus_remote_storage_highest_timestamp_in_seconds", 0.0),
        newest_sent=min(sent.values()),
        retried=sums.get("prometheus_remote_storage_samples_retried_total", 0.0),
        failed=sums.get("prometheus_remote_storage_samples_failed_total", 0.0),
        attempts=sums.get("prometheus_remote_storage_sent_batch_duration_seconds_count", 0.0),
        attempt_seconds=sums.get("prometheus_remote_storage_sent_batch_duration_seconds_sum", 0.0),
    )


# --- judging -----------------------------------------------------------------------------------------


def judge(current: AgentReading, baseline: AgentReading | None, held_after: float) -> UploadStatus:
    """Held when the centre's newest sample from here lags the agent's newest by more than
    `held_after` seconds; why, from the attempts since `baseline` (an earlier reading of the same
    agent process; without one, since the agent started)."""
    if current.newest_sent > 0:
        lag = max(0.0, current.newest_appended - current.newest_sent)
    elif current.newest_appended > 0 and current.started_at is not None:
        lag = max(0.0, current.newest_appended - current.started_at)  # nothing accepted since the agent started
    else:
        lag = 0.0  # nothing scraped yet: nothing to send
    failed, retried = int(current.failed), int(current.retried)
    if lag <= held_after:
        return UploadStatus("flowing", current.at, lag, failed_samples=failed, retried_samples=retried)
    base = baseline if baseline is not None and baseline.started_at == current.started_at else None
    attempts = current.attempts - (base.attempts if base else 0.0)
    seconds = current.attempt_seconds - (base.attempt_seconds if base else 0.0)
    stalls = attempts <= 0 or seconds / attempts >= _STALLED_ATTEMPT_SECONDS
    return UploadStatus("held", current.at, lag, "line_stalls" if stalls else "centre_refuses", failed_samples=failed, retried_samples=retried)


class UploadWatch:
    """Reads the agent every `interval_seconds` (a job of `msgreach run`) and judges the reading
    against one at least `_WINDOW_SECONDS` older: between two close readings a shard may just be
    waiting out its backoff (up to 30 s as shipped) with no attempt finished, which alone says
    nothing about why."""

    def __init__(self, settings: Upload):
        self.settings = settings
        self._readings: deque[AgentReading] = deque(maxlen=64)
        self._state: State | None = None

    async def check(self) -> UploadStatus:
        now = time.time()
        try:
            reading = parse(await fetch(self.settings), now)
        except Exception as exc:  # noqa: BLE001 - every way the read fails is one failure string
            return self._logged(UploadStatus("unknown", checked_at=now, failure=failures.classify(exc)))
        older = [r for r in self._readings if r.started_at == reading.started_at]
        baseline = next((r for r in reversed(older) if r.at <= now - _WINDOW_SECONDS), older[0] if older else None)
        self._readings.append(reading)
        return self._logged(judge(reading, baseline, self.settings.held_after_seconds))

    def _logged(self, status: UploadStatus) -> UploadStatus:
        """A line in the log when the state changes (a volunteer reads `docker compose logs`)."""
        if status.state != self._state:
            if status.state == "held":
                # The page's words, loaded only when reports are held (`run` loads them for the page).
                from probe.status_texts import Reason, say

                why = say(Reason(f"upload.{status.why or 'line_stalls'}"), "en").text()  # the page's words (probe/status_texts.py)
                log.warning("reports to the centre are held (%.0f s behind): %s", status.lag_seconds, why)
            elif status.state == "unknown":
                log.warning("cannot read the local agent at %s: %s", self.settings.agent_url, status.failure)
            elif self._state is not None:
                log.info("reports to the centre flow again")
            self._state = status.state
        return status


# --- what the volunteer sees -----------------------------------------------------------------------

class HasUpload(Protocol):
    """What the collector reads (probe.metrics.State)."""

    upload: UploadStatus | None
    config: Config


class UploadCollector(Collector):
    """msgreach_upload_held_seconds and msgreach_upload_agent_up, one series per vantage (the
    agent uploads them all); nothing when `upload` is not configured."""

    def __init__(self, state: HasUpload):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        status, config = self._state.upload, self._state.config
        held = GaugeMetricFamily(
            "msgreach_upload_held_seconds",
            "How long reports to the centre have been held: the local agent's newest sample minus the newest the centre accepted, when over upload.held_after_seconds; else 0",
            labels=["vantage"],
        )
        up = GaugeMetricFamily("msgreach_upload_agent_up", "1 when the local Prometheus agent's metrics could be read at the latest try", labels=["vantage"])
        if status is not None and config.upload is not None:
            for vantage in config.vantages:
                up.add_metric([vantage.name], 0 if status.state == "unknown" else 1)
                if status.state != "unknown":
                    held.add_metric([vantage.name], status.held_seconds)
        yield from (held, up)
