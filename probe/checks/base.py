"""What every check shares: the context it runs in and the result it returns.

A check is a module with `NAME`, a pydantic `Params` model, and one coroutine

    async def run(ctx: Context, params: Params) -> CheckResult

A target's checks run in the order its config lists them, sharing one `Context`: `dns` fills
`ctx.addresses`, `tcp` fills `ctx.connected`, `tls` fills `ctx.tls_endpoint`, and later checks
read what earlier ones found. A check whose prerequisite is missing raises `Skip`.

A failed result names the target verdict its evidence argues for (`verdict`); `probe.verdict`
decides what is published. Checks never raise anything but `Skip`: errors become results via
`probe.failures.classify`, and the runner bounds every check by its timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.config import Fingerprints, Service, Target, Vantage
from probe.net import Route
from probe.params import Params

if TYPE_CHECKING:
    from probe.verdict import TargetResult


class Skip(Exception):
    """The check does not apply (e.g. TLS when no TCP connection was made)."""


@dataclass
class CheckResult:
    check: str
    ok: bool
    failure: str | None = None
    duration_seconds: float = 0.0
    verdict: str | None = None  # the target verdict this failure argues for
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "failure": self.failure,
            "duration_seconds": round(self.duration_seconds, 4),
            **self.evidence,
        }


@dataclass(frozen=True)
class RoundFacts:
    """What the control phase of a round established, for the service checks to lean on."""

    controls: dict[str, "TargetResult"] = field(default_factory=dict)
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

    @property
    def is_control(self) -> bool:
        return self.service is None

    def ca_bundles(self) -> tuple[Path, ...]:
        bundles = [self.vantage.ca_bundle, self.service.ca_bundle if self.service else None, self.target.ca_bundle]
        return tuple(b for b in bundles if b is not None)

    def replace_trust(self) -> bool:
        return self.vantage.ca_bundle_mode == "replace"

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

    def __enter__(self) -> "Stopwatch":
        self.started = time.monotonic()
        self._stopped: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = time.monotonic()

    @property
    def seconds(self) -> float:
        return (self._stopped if self._stopped is not None else time.monotonic()) - self.started
