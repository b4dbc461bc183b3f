"""Blocks that linger (issue 20): probes that can set off a censor's timed block, and the
round's log of every probe to each destination.

Field reports (ENDPOINTS.md, "The field in 2026, second wave": net4people/bbs#417) describe an
address blocked whole for minutes after a VPN signature was sent to it. A monitor that sends such
signatures would poison its own measurements of that address. So:
- a target with a trigger check (`TRIGGER_CHECKS`) is measured after every other target of the
  round (probe.runner), one at a time, on its own connections;
- `TriggerClock` remembers, across rounds, when a trigger that failed (the censor may have acted
  on its signature) went to each destination; a failure that begins within the cooldown after one (`schedule.trigger_cooldown_seconds`) to one of its
  destinations is measured again once the cooldown is over when the round's deadline allows,
  else judged `error` (`AfterTrigger`: it is our doing, not the target's);
- a destination a trigger was followed by failures to ("armed") gets no new trigger until its
  cooldown is over: its trigger targets are held at their last result meanwhile, so a lingering
  block we set off is not set off again round after round.

Only the probe log and these notes are kept with the evidence: the judge reads `AfterTrigger`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from types import UnionType
from typing import Literal, Union, get_args, get_origin, get_type_hints

from probe.config import Target
from probe.helper import wire
from probe.model import AfterTrigger, CheckResult, HelperExchange, NoHelper, ProbeRecord, TargetResult, Verdict

# Checks whose probes can set off a timed block: circumvention signatures (WireGuard, OpenVPN, …).
# A TLS check's decoy handshake already follows its real one on its own connection, so it is not
# moved; a decoy can only poison the confirming retry of a target that failed already.
TRIGGER_CHECKS = frozenset({"circumvention"})
TRIGGER = "trigger"
MEASUREMENT = "measurement"
# The helper exchanges a circumvention check makes before it sends any signature (the helper's
# address, then the registration of what it will send): one of these failing sent nothing.
_BEFORE_ANY_SIGNATURE = frozenset({"resolve", wire.API_EXPECT})


def is_trigger(target: Target) -> bool:
    return any(check in TRIGGER_CHECKS for check in target.checks)


def destinations(evidence: object) -> set[str]:
    """Where a check's records went: every `address` a record names, and `helper NAME` for a
    check through a helper abroad (its probes go to the helper's addresses)."""
    return set(_destinations(evidence, 0))


def _destinations(value: object, depth: int) -> Iterator[str]:
    if depth > 4:
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _destinations(item, depth + 1)
        return
    names = _walked_fields(type(value))
    if names is None:
        return
    for name in names:
        item = getattr(value, name)
        if name == "address" and isinstance(item, str) and item:
            yield item
        elif name == "helper" and isinstance(item, str) and item:
            yield f"helper {item}"
        elif isinstance(item, list | tuple) or _walked_fields(type(item)) is not None:
            yield from _destinations(item, depth + 1)


_WALKED: dict[type, tuple[str, ...] | None] = {}


def _walked_fields(cls: type) -> tuple[str, ...] | None:
    """The fields of a record class that can lead to a destination, None for anything that is
    not a record; read once per class (every check of every target is walked each round for the
    probe log). A field is left out only when its type says it can hold nothing the walk enters
    (text, numbers, flags, enums, dicts, sets, lists of those): a handshake's twenty fields are
    two to read."""
    try:
        return _WALKED[cls]
    except KeyError:
        names = None
        if is_dataclass(cls):
            try:
                hints = get_type_hints(cls)
            except Exception:  # noqa: BLE001 - a name only the type checker sees: every field is walked
                hints = {}
            names = tuple(f.name for f in fields(cls) if f.name in _NAMED or f.name not in hints or not _inert(hints[f.name]))
        _WALKED[cls] = names
        return names


_NAMED = frozenset({"address", "helper"})
_SCALARS = (str, int, float, bool, bytes, type(None), Enum)
_CONTAINERS_NOT_WALKED = (dict, set, frozenset)


def _inert(hint: object) -> bool:
    """Whether a value of this type can hold no record, list or tuple for the walk to enter."""
    origin = get_origin(hint)
    if origin is Union or origin is UnionType or origin is Literal:
        return origin is Literal or all(_inert(arg) for arg in get_args(hint))
    if origin in (list, tuple):
        return all(arg is Ellipsis or _inert(arg) for arg in get_args(hint))
    cls = origin if origin is not None else hint
    if not isinstance(cls, type) or is_dataclass(cls):
        return False
    return issubclass(cls, _CONTAINERS_NOT_WALKED) or (issubclass(cls, _SCALARS) and not issubclass(cls, list | tuple))


def probe_records(service: str, target: str, attempt: int, checks: Iterable[CheckResult], offset: float) -> list[ProbeRecord]:
    """One attempt's checks as entries of the probe log; `offset`: the attempt's start, in
    seconds since the round began (a check's `t0` counts from the attempt's start)."""
    entries = []
    for check in checks:
        start = offset + (check.t0 or 0.0)
        kind = TRIGGER if check.check in TRIGGER_CHECKS else MEASUREMENT
        for destination in sorted(destinations(check.evidence)):
            entries.append(ProbeRecord(
                destination, service, target, check.check, kind, attempt,
                round(start, 4), round(start + check.duration_seconds, 4), None if check.ok else check.failure,
            ))
    return entries


class ProbeIndex:
    """The round's probe log by destination, built once per round: each archive line takes the
    entries of the destinations its target probed (a scan of the whole log per target would be
    quadratic in a large vantage's targets)."""

    def __init__(self, log: Iterable[ProbeRecord]):
        self._log = list(log)
        self._by_destination: dict[str, list[int]] = {}
        self._of_target: dict[tuple[str, str], set[str]] = {}
        for index, probe in enumerate(self._log):
            self._by_destination.setdefault(probe.destination, []).append(index)
            self._of_target.setdefault((probe.service, probe.target), set()).add(probe.destination)

    def touched(self, service: str, target: str) -> list[ProbeRecord]:
        """Every probe (any target's) to the destinations the target probed, in the log's order."""
        indices = sorted({i for d in self._of_target.get((service, target), ()) for i in self._by_destination[d]})
        return [self._log[i] for i in indices]


def touched(log: Iterable[ProbeRecord], service: str, target: str) -> list[ProbeRecord]:
    """The log's entries for every destination the target probed: the order and timing of all
    probes (any target's) to its addresses, as archived with its line."""
    return ProbeIndex(log).touched(service, target)


@dataclass(slots=True)
class _Sent:
    at: float  # time.monotonic() when the trigger attempt ended
    by: str  # service/target


def _signature_may_have_gone(result: TargetResult) -> bool:
    """Whether a trigger check of the target may have sent its signature: every one stopped
    before it (no helper, or a failed exchange before any signature) is the only "no"."""
    for check in result.checks:
        if check.check not in TRIGGER_CHECKS:
            continue
        evidence = check.evidence
        if isinstance(evidence, NoHelper) or (isinstance(evidence, HelperExchange) and evidence.path in _BEFORE_ANY_SIGNATURE):
            continue
        return True
    return False


class TriggerClock:
    """When a trigger probe last went to each destination, across rounds (one per vantage, kept
    by `msgreach run`; `once` starts with none), which destinations are armed, and the last
    result of each trigger target (held while its destinations cool)."""

    def __init__(self) -> None:
        self._sent: dict[str, _Sent] = {}
        self._armed: dict[str, float] = {}
        self._held: dict[tuple[str, str], tuple[TargetResult, float, frozenset[str]]] = {}

    def sent(self, result: TargetResult, at: float, round_started_at: float) -> None:
        """A trigger target was measured (ended at `at`). One that failed may have set a timed
        block off (the censor acted on its signature): it arms its destinations. One whose
        signature arrived intact did not, as far as anything here can see: what fails after it
        is judged as ever (else a signature blocked alone could never be named after another
        passed). `error` arms too: a signature whose report the block then ate reads `error`;
        but not a check that stopped before sending any (no helper, or the line to the helper
        failed first): nothing was sent that could have set a block off."""
        where = frozenset(d for c in result.checks for d in destinations(c.evidence))
        if result.verdict != Verdict.OK and _signature_may_have_gone(result):
            for destination in where:
                self._sent[destination] = _Sent(at, f"{result.service}/{result.target}")
                self.arm(destination, at)
        self._held[(result.service, result.target)] = (result, round_started_at, where)

    def after(self, where: Iterable[str], started: float, cooldown: float) -> tuple[AfterTrigger, float] | None:
        """The latest failed trigger to one of `where` that ended before `started` and less than
        `cooldown` seconds earlier, and when its cooldown ends (monotonic); None if none."""
        latest: tuple[str, _Sent] | None = None
        for destination in where:
            sent = self._sent.get(destination)
            if sent is not None and sent.at <= started < sent.at + cooldown and (latest is None or sent.at > latest[1].at):
                latest = (destination, sent)
        if latest is None:
            return None
        destination, sent = latest
        return AfterTrigger(destination, sent.by, round(started - sent.at, 3), cooldown), sent.at + cooldown

    def arm(self, destination: str, at: float) -> None:
        self._armed[destination] = max(at, self._armed.get(destination, at))

    def held(self, service: str, target: str, now: float, cooldown: float) -> TargetResult | None:
        """The trigger target's last result, when one of its destinations is still cooling
        (armed less than `cooldown` ago): a copy marked with the round it was measured in."""
        last = self._held.get((service, target))
        if last is None:
            return None
        result, measured_at, where = last
        if not any(now < self._armed.get(d, float("-inf")) + cooldown for d in where):
            return None
        return TargetResult(
            result.service, result.target, result.host, result.verdict, result.checks, result.reason, result.attempts,
            result.incomplete, result.reasons, result.control_class, list(result.compared), result.after_trigger, measured_at,
        )
