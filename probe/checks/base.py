"""What every check shares: the context it runs in and the result it returns.

A check is a module with `NAME`, a `Params` model (probe.params), and one coroutine

    async def run(ctx: Context, params: Params) -> CheckResult

A target's checks run in the order its config lists them, sharing one `Context`: `dns` fills
`ctx.addresses`, `tcp` fills `ctx.connected`, `tls` fills `ctx.tls_endpoint`, and later checks
read what earlier ones found. A check whose prerequisite is missing raises `Skip`.

A check observes: its evidence is a typed record (probe.model), produced where each operation
happens. A failed result states a `Finding` (the technique its stage would mean, and whose fault
its differential says it is); `probe.judge` alone decides the verdict. Checks never raise
anything but `Skip`: errors become results via `probe.failures.classify`, and the runner bounds
every check by its timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe import failures
from probe.config import Fingerprints, Service, Target, Vantage
from probe.model import CheckResult, Fault, Finding, TargetResult, Verdict
from probe.net import Route, Stream
from probe.params import Params

__all__ = ["CheckResult", "Context", "Fault", "Finding", "Params", "RoundFacts", "Skip", "Stopwatch", "Verdict"]


class Skip(Exception):
    """The check does not apply (e.g. TLS when no TCP connection was made)."""


@dataclass(frozen=True)
class RoundFacts:
    """What the control phase of a round established, for the service checks to lean on."""

    controls: dict[str, TargetResult] = field(default_factory=dict)
    healthy_resolvers: frozenset[str] | None = None  # None: not known yet (control phase)
    ipv6: bool = False  # a control was reached over IPv6


@dataclass
class Context:
    """Shared by one target's checks, in order."""

    vantage: Vantage
    route: Route
    service: Service | None  # None for a control target
    target: Target
    fingerprints: Fingerprints
    decoy_sni: str
    max_addresses: int
    timeout: float  # of the check being run; set by the runner
    facts: RoundFacts = field(default_factory=RoundFacts)
    addresses: list[str] = field(default_factory=list)
    addresses_from: str = ""  # "pinned", "dns" or "control_resolver"
    connected: list[tuple[str, int]] = field(default_factory=list)
    tls_endpoint: tuple[str, int] | None = None  # where a validated handshake completed
    results: list[CheckResult] = field(default_factory=list)
    # Connections an earlier stage made and left open for the next one (one connection per
    # target where the stages allow it): the tcp check's, keyed by address:port, and the tls
    # check's validated stream at `tls_endpoint`. Taken by the stage that uses them; the runner
    # closes what is left.
    open_streams: dict[tuple[str, int], Stream] = field(default_factory=dict)
    tls_stream: Stream | None = None

    @property
    def is_control(self) -> bool:
        return self.service is None

    def ca_bundles(self) -> tuple[Path, ...]:
        bundles = [self.vantage.ca_bundle, self.service.ca_bundle if self.service else None, self.target.ca_bundle]
        return tuple(b for b in bundles if b is not None)

    def replace_trust(self) -> bool:
        return self.vantage.ca_bundle_mode == "replace"

    def take_stream(self, address: str, port: int) -> Stream | None:
        return self.open_streams.pop((address, port), None)

    def take_tls_stream(self) -> Stream | None:
        stream, self.tls_stream = self.tls_stream, None
        return stream

    def wants(self, check: str, after: str) -> bool:
        """Whether `check` runs after `after` on this target (a later stage will use a stream)."""
        checks = list(self.target.checks)
        return after in checks and check in checks[checks.index(after) + 1 :]

    def close_streams(self) -> None:
        for _, writer in [*self.open_streams.values(), *([self.tls_stream] if self.tls_stream else [])]:
            writer.close()
        self.open_streams.clear()
        self.tls_stream = None

    def result(self, check: str) -> CheckResult | None:
        for result in self.results:
            if result.check == check:
                return result
        return None

    def params_for(self, check: str, model: type[Params]) -> Params:
        stored = self.target.params.get(check)  # validated and typed at load
        return stored if stored is not None else model()


class Stopwatch:
    """`with Stopwatch() as sw: …`; `sw.seconds` reads the running time inside the block (a
    check may return from within it) and the final time after it."""

    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        self._stopped: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = time.monotonic()

    @property
    def seconds(self) -> float:
        return (self._stopped if self._stopped is not None else time.monotonic()) - self.started


@asynccontextmanager
async def observed(record: Any, timeout: float) -> AsyncIterator[list[asyncio.StreamWriter]]:
    """One operation on fresh connections, recorded: bounded by `timeout`, timed into
    `record.duration_seconds`, any exception turned into `record.failure` (never raised), and
    every writer the body appends to the yielded list closed at the end."""
    writers: list[asyncio.StreamWriter] = []
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(timeout):
                yield writers
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            record.failure = failures.classify(exc)
        finally:
            for writer in writers:
                writer.close()
    record.duration_seconds = watch.seconds


async def first_byte(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
    """Send `request` and wait for the first byte of the answer; a close before it is `eof_error`."""
    writer.write(request)
    if not await reader.read(1):
        raise failures.Failure(failures.EOF, "closed before any response byte")
