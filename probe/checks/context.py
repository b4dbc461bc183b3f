"""What a check runs in: one target's `Context`, shared by its checks in order.

A check is a module with `NAME`, a `Params` model (probe/params.py), and one coroutine

    async def run(ctx: Context, params: Params) -> <its evidence record, from probe.model>

It observes, nothing more: every operation becomes a typed record (probe.checks.observe) with
its classified failure, and the check returns its evidence; the step that ran it
(probe.checks.measure) has the judge read it (probe.judge.analyse). A check still decides
what to measure next (a decoy, a control's addresses, the hosts of a list), and reads what
earlier checks found: `dns` fills `ctx.addresses`, `tcp` fills `ctx.connected`, `tls` fills
`ctx.tls_endpoint`. A check whose prerequisite is missing raises `Skip`; it raises nothing
else (the step bounds it in time and turns anything it raises into the monitor's error).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from probe._socket_stream import SocketStream
from probe.config import Fingerprints, Service, Target, Vantage
from probe.judge import RoundFacts
from probe.model import CheckResult, TargetResult
from probe.net import Route
from probe.params import Params

if TYPE_CHECKING:  # the helper's line (h11, its signatures) is loaded by the helper checks only
    from probe.helper.client import HelperClient, HelperRound

__all__ = ["CheckResult", "Context", "ControlPhase", "MeasurementClock", "Params", "Skip"]


class Skip(Exception):
    """The check does not apply (e.g. TLS when no TCP connection was made)."""


@dataclass(frozen=True)
class ControlPhase:
    """What the control phase of a round established, for the service checks to lean on: the
    control targets' results, the resolvers that resolved them (None: still in the control
    phase), whether a control was reached over IPv6."""

    controls: dict[str, TargetResult] = field(default_factory=dict)
    healthy_resolvers: frozenset[str] | None = None
    ipv6: bool = False


class MeasurementClock:
    """The start of one attempt at a target, for the records' `t0`/`t` (seconds since), and
    the transaction ids of its connections (OONI's `transaction_id`: 1, 2, …)."""

    __slots__ = ("_ids", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._ids = itertools.count(1)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def transaction(self) -> int:
        return next(self._ids)


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
    control_phase: ControlPhase = field(default_factory=ControlPhase)
    clock: MeasurementClock = field(default_factory=MeasurementClock)
    helper_round: HelperRound | None = None  # the round's helpers abroad, for the checks that measure through one
    addresses: list[str] = field(default_factory=list)
    addresses_from: str = ""  # "pinned", "dns" or "control_resolver"
    connected: list[tuple[str, int]] = field(default_factory=list)
    tls_endpoint: tuple[str, int] | None = None  # where a validated handshake completed
    results: list[CheckResult] = field(default_factory=list)
    # Connections an earlier stage made and left open for the next one (one connection per
    # target where the stages allow it): the tcp check's, keyed by address:port, and the tls
    # check's validated stream at `tls_endpoint`. Taken by the stage that uses them; the runner
    # closes what is left.
    open_streams: dict[tuple[str, int], SocketStream] = field(default_factory=dict)
    tls_stream: SocketStream | None = None

    @property
    def is_control(self) -> bool:
        return self.service is None

    def round_facts(self) -> RoundFacts:
        """What the judge reads a check's observations with."""
        return RoundFacts(control_target=self.is_control, healthy_resolvers=self.control_phase.healthy_resolvers, ipv6=self.control_phase.ipv6)

    def helper_client(self, name: str | None) -> HelperClient | None:
        """A client of the round's helper abroad named `name` (the first when None), bounded by this
        check's timeout and the round's deadline; None when the round has no such helper."""
        return self.helper_round.client(name, self.route, self.timeout) if self.helper_round is not None else None

    def ca_bundles(self) -> tuple[Path, ...]:
        bundles = [self.vantage.ca_bundle, self.service.ca_bundle if self.service else None, self.target.ca_bundle]
        return tuple(b for b in bundles if b is not None)

    def replace_trust(self) -> bool:
        return self.vantage.ca_bundle_mode == "replace"

    def take_stream(self, address: str, port: int) -> SocketStream | None:
        return self.open_streams.pop((address, port), None)

    def take_tls_stream(self) -> SocketStream | None:
        stream, self.tls_stream = self.tls_stream, None
        return stream

    def wants(self, check: str, after: str) -> bool:
        """Whether `check` runs after `after` on this target (a later stage will use a stream)."""
        checks = list(self.target.checks)
        return after in checks and check in checks[checks.index(after) + 1 :]

    def close_streams(self) -> None:
        for stream in [*self.open_streams.values(), *([self.tls_stream] if self.tls_stream else [])]:
            stream.close()
        self.open_streams.clear()
        self.tls_stream = None

    def result(self, check: str) -> CheckResult | None:
        for result in self.results:
            if result.check == check:
                return result
        return None

    def control_results(self, check: str, name: str | None = None) -> list[tuple[str, CheckResult]]:
        """This round's results of `check` on the control targets (optionally one named control)."""
        found: list[tuple[str, CheckResult]] = []
        for control_name, control in self.control_phase.controls.items():
            if name is not None and control_name != name:
                continue
            found.extend((control_name, result) for result in control.checks if result.check == check)
        return found

    def bounded(self, limit: float) -> float:
        """One operation's bound: the check's configured timeout, or the check's own (shorter) limit."""
        return min(self.timeout, limit) if self.timeout > 0 else limit

    def params_for(self, check: str, model: type[Params]) -> Params:
        stored = self.target.params.get(check)  # validated and typed at load
        return stored if isinstance(stored, Params) else _defaults(model)


_default_params: dict[type[Params], Params] = {}


def _defaults(model: type[Params]) -> Params:
    """A check's default settings, one (frozen) record per model: a target without settings of its
    own asks at every check of every round, and building one validates every field."""
    found = _default_params.get(model)
    if found is None:
        found = _default_params[model] = model()
    return found
