"""The monitor's side of a helper: signed API calls on the line to it, and the round's hook that asks
control helpers to measure the round's targets and turns a block they see too into `down`.

Every call is one exchange on a fresh connection (probe/helper/line.py), bounded by the caller's
timeout and by the round's deadline, its answer capped while it is read. The round's exchanges
are kept per helper and summed up as the vantage's `HelperLine`s (msgreach_helper_up,
/status.json). The checks that measure through a helper (`udp_stream`, `circumvention`,
`helper_transfer`) find the round's helpers, and its deadline, with `round_helpers()` and
`round_deadline()`: a `HelperRound` sets them for the duration of the round.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from probe import failures
from probe.config import Config, HelperRef, Service, Target
from probe.config.loader import HELPER_CHECKS
from probe.helper import wire
from probe.helper.auth import load_secret
from probe.helper.line import Endpoint, LineFailure, exchange, resolve
from probe.model import (
    CheckResult,
    Fault,
    Finding,
    HelperExchange,
    HelperLine,
    TargetResult,
    Verdict,
)
from probe.net import Route
from probe.status_texts import helper_line_words

HELPER_CHECK = "helper"  # the check name under which a helper's result of a target is kept
SMALL_ANSWER = 16 * 1024  # cap on a stream, probe or bulk answer (a few hundred bytes when well-formed)
MEASURE_ANSWER = 1024 * 1024  # cap on one page of control measurements (an older helper's unpaged answer fits)
MEASURE_SECONDS = 120.0  # a control measurement outside a round (in a round: the round's deadline)


@dataclass
class _Round:
    helpers: tuple[HelperRef, ...]
    deadline: float | None  # time.monotonic() when the round must end
    exchanges: list[HelperExchange] = field(default_factory=list)  # in the order they ended


_ROUND: contextvars.ContextVar[_Round | None] = contextvars.ContextVar("msgreach_helper_round", default=None)


class HelperError(Exception):
    """The helper could not be asked, refused, or answered something unsigned or malformed;
    `exchange` is the record of the exchange that failed."""

    def __init__(self, exchange: HelperExchange):
        super().__init__(exchange.failure)
        self.exchange = exchange


def round_helpers() -> tuple[HelperRef, ...]:
    state = _ROUND.get()
    return state.helpers if state is not None else ()


def round_deadline() -> float | None:
    """When the round must end (time.monotonic()), or None outside a round."""
    state = _ROUND.get()
    return state.deadline if state is not None else None


def no_helper(check: str, started: float) -> CheckResult:
    """A helper check's result in a round without a helper: the monitor's own configuration."""
    finding = Finding(Verdict.ERROR, Fault.MONITOR, "", "no helper is configured for this round (`helpers:`)")
    return CheckResult(check, False, failures.NO_HELPER, time.monotonic() - started, finding, {})


def could_not_measure(check: str, started: float, failed: HelperError) -> CheckResult:
    """A helper check whose exchange with the helper failed: the line is the evidence, and it
    states no finding (probe.judge reads the line: the monitor could not measure)."""
    return CheckResult(check, False, failed.exchange.failure, time.monotonic() - started, None, failed.exchange)


def choose(name: str | None) -> HelperRef | None:
    helpers = round_helpers()
    if name is None:
        return helpers[0] if helpers else None
    return next((h for h in helpers if h.name == name), None)


def helper_only(target: Target) -> bool:
    """A target measured through a helper alone (call streams, freeze keys, circumvention): no
    control measurement of it is asked, it needs nothing the round's controls establish."""
    return bool(target.checks) and set(target.checks) <= HELPER_CHECKS


class HelperClient:
    def __init__(self, ref: HelperRef, route: Route, timeout: float = 10.0):
        self.ref = ref
        self.route = route
        self.timeout = timeout
        self.secret = load_secret(ref.secret_file)
        self.endpoint = Endpoint.of(ref.url)
        self._address: str | None = None

    def _until(self, seconds: float | None) -> float:
        until = time.monotonic() + (self.timeout if seconds is None else seconds)
        deadline = round_deadline()
        return until if deadline is None else min(until, deadline)

    async def address(self) -> str:
        """The helper's address (its URL's host, resolved when it is a name) for the API, UDP and probes."""
        if self._address is None:
            try:
                self._address = await resolve(self.endpoint.host, self._until(None))
            except Exception as exc:  # noqa: BLE001 - a name that does not resolve is the line's failure
                record = HelperExchange(self.ref.name, "resolve", failure=failures.classify(exc))
                _log(record)
                raise HelperError(record) from None
        return self._address

    async def post(self, path: str, payload: dict[str, Any], *, cap: int = SMALL_ANSWER, seconds: float | None = None) -> dict[str, Any]:
        """One signed exchange, bounded by `seconds` (default: the client's timeout) and the round's
        deadline, its answer at most `cap` bytes; raises HelperError when it did not complete."""
        address = await self.address()
        try:
            answer, record = await exchange(self.ref.name, self.endpoint, address, self.route, self.secret, path, payload,
                                            until=self._until(seconds), cap=cap)
        except LineFailure as failed:
            _log(failed.exchange)
            raise HelperError(failed.exchange) from None
        _log(record)
        return answer

    def malformed(self, path: str) -> HelperError:
        """An answer that was signed but lacks what the protocol says it holds (an older or newer helper)."""
        return HelperError(HelperExchange(self.ref.name, path, failure=failures.HELPER_ANSWER_MALFORMED))

    async def measure(self, names: Sequence[tuple[str, str]], *, detail: str = wire.DETAIL_COMPACT,
                      seconds: float = MEASURE_SECONDS) -> dict[tuple[str, str], dict[str, Any]]:
        """The helper's control measurement of `names`, by target name, in exchanges that each
        stay under the freeze budget (wire.FREEZE_BUDGET): requests of a few kilobytes, and
        answers paged to what is left (the helper answers from the same measurement)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in wire.request_pages(names):
            remaining, continuation = chunk, False
            while remaining:
                request = {"targets": [{"service": s, "target": t} for s, t in remaining], "detail": detail, "continuation": continuation}
                request["max_answer_bytes"] = wire.answer_budget(len(json.dumps(request)), tls=self.endpoint.scheme == "https")
                answer = await self.post(wire.API_MEASURE, request, cap=MEASURE_ANSWER, seconds=seconds)
                items, following = answer.get("targets"), answer.get("next")
                if not isinstance(items, list) or not (following is None or (isinstance(following, int) and 0 < following < len(remaining))):
                    raise self.malformed(wire.API_MEASURE)
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("service"), str) and isinstance(item.get("target"), str):
                        found[(item["service"], item["target"])] = item
                remaining, continuation = (remaining[following:] if following is not None else []), True
        return found


def _log(record: HelperExchange) -> None:
    state = _ROUND.get()
    if state is not None:
        state.exchanges.append(record)


# --- the round: helpers for the checks, control measurements, the line summed up ------------------------


class HelperRound:
    """The helpers of one round (issues #11, #18). Entered, it gives the helper checks their
    helpers and the round's deadline; `ask` starts the control helpers' measurement of the targets
    that are not helper-only, `confirm` applies it; `lines` sums up every exchange per helper."""

    def __init__(self, config: Config, route: Route, deadline: float):
        self.helpers = tuple(config.helpers or ())
        self._route = route
        self._state = _Round(self.helpers, deadline)
        self._token: contextvars.Token[_Round | None] | None = None
        self._asks: list[asyncio.Task[tuple[str, dict[tuple[str, str], dict[str, Any]] | HelperExchange]]] = []

    def __enter__(self) -> Self:
        self._token = _ROUND.set(self._state)
        return self

    def __exit__(self, *exc: object) -> None:
        for ask in self._asks:
            ask.cancel()  # a round that ended early (offline, cancelled) waits for nothing
        if self._token is not None:
            _ROUND.reset(self._token)

    def ask(self, services: Sequence[Service]) -> None:
        names = [(s.name, t.name) for s in services for t in s.targets if not helper_only(t)]
        if names:
            self._asks = [asyncio.create_task(_ask(ref, self._route, names)) for ref in self.helpers if ref.control]

    async def confirm(self, services: Sequence[Service], per_service: list[list[TargetResult]]) -> list[list[TargetResult]]:
        """Each target's results with the control helpers' view of it (a `helper` check each), a
        block they see too turned into `down`. The asks end by the round's deadline themselves."""
        if not self._asks:
            return per_service
        answers = list(await asyncio.gather(*self._asks))
        return [
            [result if helper_only(target) else _confirm(service.name, result, answers) for target, result in zip(service.targets, results)]
            for service, results in zip(services, per_service)
        ]

    def lines(self) -> list[HelperLine]:
        return summarise(self._state.exchanges)

    def exchanges(self) -> list[HelperExchange]:
        """Every exchange of the round so far, in the order they ended."""
        return list(self._state.exchanges)


def summarise(exchanges: Sequence[HelperExchange]) -> list[HelperLine]:
    """Per helper, in the order first met: up when every exchange completed; the last failure."""
    lines: dict[str, HelperLine] = {}
    for record in exchanges:
        line = lines.setdefault(record.helper, HelperLine(record.helper, True))
        line.exchanges += 1
        line.largest_sent_bytes = max(line.largest_sent_bytes, record.sent_bytes)
        line.largest_received_bytes = max(line.largest_received_bytes, record.received_bytes)
        if record.failure is not None:
            line.up = False
            line.failed += 1
            line.last_failure, line.reason = record, words(record)
    return list(lines.values())


def words(record: HelperExchange, lang: str = "en") -> str:
    """How the exchange failed, for people."""
    return helper_line_words(lang, record)


_OMIT_NONE = {"omit_none": True}  # probe.model.to_json leaves these out when None


@dataclass
class HelperEvidence:
    """What a control helper saw of the same target in the same round (kept beside the vantage's):
    its verdict, reason and first failing check (what the judge compares), or why it could not say."""

    helper: str
    verdict: str | None = None
    reason: str = ""
    failed_check: str | None = field(default=None, metadata=_OMIT_NONE)
    age_seconds: float | None = None
    error: str | None = field(default=None, metadata=_OMIT_NONE)
    line: HelperExchange | None = field(default=None, metadata=_OMIT_NONE)  # the exchange that failed, when the line kept the helper from answering


async def _ask(ref: HelperRef, route: Route, names: list[tuple[str, str]]) -> tuple[str, dict[tuple[str, str], dict[str, Any]] | HelperExchange]:
    try:
        return ref.name, await HelperClient(ref, route).measure(names)
    except HelperError as failed:
        return ref.name, failed.exchange
    except Exception as exc:  # noqa: BLE001 - a helper's trouble never ends the round (e.g. its secret file went away)
        return ref.name, HelperExchange(ref.name, wire.API_MEASURE, failure=failures.classify(exc))


def _confirm(service: str, result: TargetResult, answers: list[tuple[str, dict[tuple[str, str], dict[str, Any]] | HelperExchange]]) -> TargetResult:
    from probe.judge import (
        confirm_down_by_control,  # late: the judge imports the checks' types
    )

    for helper, found in answers:
        failure: str | None
        if isinstance(found, HelperExchange):
            evidence = HelperEvidence(helper, error=words(found), line=found)
            failure = found.failure
        else:
            item = found.get((service, result.target))
            if item is None or "error" in item:
                evidence, failure = HelperEvidence(helper, error=str((item or {}).get("error", "no answer for this target"))), failures.HELPER_CANNOT_SAY
            elif item.get("helper_vantage") not in (None, "ok", "allowlist"):
                theirs = _their_result(service, item)
                error = f"the helper's own controls failed ({item.get('helper_vantage')}): not compared"
                evidence, failure = HelperEvidence(helper, str(theirs.verdict), theirs.reason, _failed_check(theirs), _age(item), error), failures.HELPER_CANNOT_SAY
            else:
                theirs = _their_result(service, item)
                result = confirm_down_by_control(result, theirs, source=f"helper {helper}")
                failed = next((c for c in theirs.checks if not c.ok), None)
                evidence = HelperEvidence(helper, str(theirs.verdict), theirs.reason, _failed_check(theirs), _age(item))
                failure = None if theirs.verdict == Verdict.OK else (failed.failure if failed and failed.failure else str(theirs.verdict))
        result.checks.append(CheckResult(HELPER_CHECK, evidence.verdict == "ok" and evidence.error is None, failure, 0.0, None, evidence))
    return result


def _failed_check(target: TargetResult) -> str | None:
    return next((c.check for c in target.checks if not c.ok), None)


def _age(item: dict[str, Any]) -> float | None:
    age = item.get("age_seconds")
    return float(age) if isinstance(age, int | float) and not isinstance(age, bool) else None


def _their_result(service: str, item: dict[str, Any]) -> TargetResult:
    """The helper's result of a target, from its compact item (verdict, first failing check and its
    failure: what `confirm_down_by_control` compares) or, from an older helper, its full checks."""
    checks: list[CheckResult] = []
    if isinstance(item.get("checks"), list):
        for data in item["checks"]:
            if isinstance(data, dict):
                checks.append(CheckResult(str(data.get("check")), bool(data.get("ok")), _text(data.get("failure"))))
    elif isinstance(item.get("check"), str):
        checks.append(CheckResult(item["check"], False, _text(item.get("failure"))))
    try:
        verdict = Verdict(str(item.get("verdict")))
    except ValueError:
        verdict = Verdict.ERROR
    return TargetResult(service, str(item.get("target")), str(item.get("host", "")), verdict, checks, str(item.get("reason", ""))[: wire.REASON_CHARS])


def _text(value: object) -> str | None:
    return value[:120] if isinstance(value, str) else None
