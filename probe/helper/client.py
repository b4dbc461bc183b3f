"""The monitor's side of a helper: signed API calls on the line to it, and the round's helpers.

Every call is one exchange on a fresh connection (probe/helper/line.py), bounded by the caller's
timeout and, in a round, by the round's deadline, its answer capped while it is read. A
`HelperRound` holds one round's helpers: the helper checks reach them through their `Context`
(`ctx.helper_client`), whose clients it bounds by the round's deadline and whose exchanges it
keeps, summed up per helper as the vantage's `HelperLine`s (msgreach_helper_up, /status.json).
It also asks the control helpers to measure the round's targets (`ask`) and gives back, per
target, what each said of it (`views`): `HelperView` records, which the judge compares
(`probe.judge.judge_with_helpers`). Nothing here decides a verdict.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Self

from probe import failures
from probe.config import Config, HelperRef, Service, Target
from probe.config.loader import HELPER_CHECKS
from probe.helper import wire
from probe.helper.auth import load_secret
from probe.helper.line import Endpoint, LineFailure, exchange, resolve
from probe.model import HelperExchange, HelperLine, HelperView
from probe.net import Route
from probe.reasons import render

SMALL_ANSWER = 16 * 1024  # cap on a stream, probe or bulk answer (a few hundred bytes when well-formed)
MEASURE_ANSWER = 1024 * 1024  # cap on one page of control measurements (an older helper's unpaged answer fits)
MEASURE_SECONDS = 120.0  # a control measurement outside a round (in a round: the round's deadline)

Measured = dict[tuple[str, str], dict[str, Any]]  # (service, target) -> the helper's item for it


class HelperError(Exception):
    """The helper could not be asked, refused, or answered something unsigned or malformed;
    `exchange` is the record of the exchange that failed."""

    def __init__(self, exchange: HelperExchange):
        super().__init__(exchange.failure)
        self.exchange = exchange


def helper_only(target: Target) -> bool:
    """A target measured through a helper alone (call streams, freeze keys, circumvention): no
    control measurement of it is asked, it needs nothing the round's controls establish."""
    return bool(target.checks) and set(target.checks) <= HELPER_CHECKS


class HelperClient:
    """Signed calls to one helper. `within`: the round whose deadline bounds them and which keeps
    their exchanges (None: bounded by `timeout` alone, kept nowhere)."""

    def __init__(self, ref: HelperRef, route: Route, timeout: float = 10.0, *, within: HelperRound | None = None):
        self.ref = ref
        self.route = route
        self.timeout = timeout
        self.secret = load_secret(ref.secret_file)
        self.endpoint = Endpoint.of(ref.url)
        self._round = within
        self._address: str | None = None

    def _until(self, seconds: float | None) -> float:
        until = time.monotonic() + (self.timeout if seconds is None else seconds)
        return until if self._round is None else min(until, self._round.deadline)

    def _log(self, record: HelperExchange) -> None:
        if self._round is not None:
            self._round.log(record)

    async def address(self) -> str:
        """The helper's address (its URL's host, resolved when it is a name) for the API, UDP and probes."""
        if self._address is None:
            try:
                self._address = await resolve(self.endpoint.host, self._until(None))
            except Exception as exc:  # noqa: BLE001 - a name that does not resolve is the line's failure
                record = HelperExchange(self.ref.name, "resolve", failure=failures.classify(exc))
                self._log(record)
                raise HelperError(record) from None
        return self._address

    async def post(self, path: str, payload: dict[str, Any], *, cap: int = SMALL_ANSWER, seconds: float | None = None) -> dict[str, Any]:
        """One signed exchange, bounded by `seconds` (default: the client's timeout) and the round's
        deadline, its answer at most `cap` bytes; raises HelperError when it did not complete."""
        if self._round is not None and (broken := self._round.broken(self.ref.name)) is not None:
            # Not sent: the round's line to it already failed so. The record keeps that failure and its
            # numbers (what the line did), on this path, with no time of its own.
            raise HelperError(replace(broken, path=path, duration_seconds=0.0, first_byte_seconds=None))
        address = await self.address()
        try:
            answer, record = await exchange(self.ref.name, self.endpoint, address, self.route, self.secret, path, payload,
                                            until=self._until(seconds), cap=cap)
        except LineFailure as failed:
            self._log(failed.exchange)
            raise HelperError(failed.exchange) from None
        self._log(record)
        return answer

    def malformed(self, path: str) -> HelperError:
        """An answer that was signed but lacks what the protocol says it holds (an older or newer helper)."""
        return HelperError(HelperExchange(self.ref.name, path, failure=failures.HELPER_ANSWER_MALFORMED))

    async def measure(self, names: Sequence[tuple[str, str]], *, detail: str = wire.DETAIL_COMPACT,
                      seconds: float = MEASURE_SECONDS) -> Measured:
        """The helper's control measurement of `names`, by target name, in exchanges that each
        stay under the freeze budget (wire.FREEZE_BUDGET): requests of a few kilobytes, and
        answers paged to what is left (the helper answers from the same measurement)."""
        found: Measured = {}
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


# --- the round: helpers for the checks, control measurements, the line summed up ------------------------


# What a line does to every exchange alike (a timeout or a reset may be one packet's bad luck).
_LINE_BROKEN = frozenset({
    failures.HELPER_LINE_FROZEN, failures.HELPER_LINE_DRIPPING, failures.HELPER_ANSWER_TOO_LARGE,
    failures.HELPER_ANSWER_MALFORMED, failures.HELPER_ANSWER_UNSIGNED,
})


class HelperRound:
    """The helpers of one round. `client` gives a helper check its helper, bounded by the round's
    deadline; `ask` starts the control helpers' measurement of the targets that are not
    helper-only, `views` gives what each said of each target; `lines` sums up every exchange per
    helper. Used as a context manager, a round that ends early (offline, cancelled) stops its asks."""

    def __init__(self, config: Config, route: Route, deadline: float):
        self.helpers = tuple(config.helpers or ())
        self.deadline = deadline  # time.monotonic() when the round must end
        self._route = route
        self._exchanges: list[HelperExchange] = []  # in the order they ended
        self._broken: dict[str, HelperExchange] = {}  # per helper, the exchange that showed its line broken
        self._asked: list[tuple[str, str]] = []  # (service, target) sent to the control helpers
        self._asks: list[asyncio.Task[tuple[str, Measured | HelperExchange]]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for ask in self._asks:
            ask.cancel()

    def client(self, name: str | None, route: Route, timeout: float) -> HelperClient | None:
        """A client of the helper named `name` (the first configured when None), or None when
        the round has no such helper."""
        ref = next((h for h in self.helpers if name is None or h.name == name), None)
        return HelperClient(ref, route, timeout, within=self) if ref is not None else None

    def log(self, record: HelperExchange) -> None:
        self._exchanges.append(record)
        if record.failure in _LINE_BROKEN:
            self._broken.setdefault(record.helper, record)

    def broken(self, helper: str) -> HelperExchange | None:
        """The exchange that showed the line to `helper` frozen, dripping or answering what no
        helper sends, in this round: the round's later exchanges to it fail at once with it,
        instead of each spending its bounds on the same line (a frozen line would otherwise take
        the round's time from every other helper check, the serialised signatures last)."""
        return self._broken.get(helper)

    def ask(self, services: Sequence[Service]) -> None:
        self._asked = [(s.name, t.name) for s in services for t in s.targets if not helper_only(t)]
        if self._asked:
            self._asks = [asyncio.create_task(self._ask(ref, self._asked)) for ref in self.helpers if ref.control]

    async def _ask(self, ref: HelperRef, names: list[tuple[str, str]]) -> tuple[str, Measured | HelperExchange]:
        try:
            return ref.name, await HelperClient(ref, self._route, within=self).measure(names)
        except HelperError as failed:
            return ref.name, failed.exchange
        except Exception as exc:  # noqa: BLE001 - a helper's trouble never ends the round (e.g. its secret file went away)
            return ref.name, HelperExchange(ref.name, wire.API_MEASURE, failure=failures.classify(exc))

    async def views(self) -> Mapping[tuple[str, str], list[HelperView]]:
        """What each control helper said of each target asked, by (service, target), once the
        asks ended (they end by the round's deadline themselves)."""
        if not self._asks:
            return {}
        answers = list(await asyncio.gather(*self._asks))
        return {key: [view_of(helper, found, key) for helper, found in answers] for key in self._asked}

    def lines(self) -> list[HelperLine]:
        return summarise(self._exchanges)

    def exchanges(self) -> list[HelperExchange]:
        """Every exchange of the round so far, in the order they ended."""
        return list(self._exchanges)


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


def words(record: HelperExchange) -> str:
    """How the exchange failed, for people (English; the page says it in its reader's language)."""
    return render(record.failure_reason())


# --- what a control helper said of one target -----------------------------------------------------------


def view_of(helper: str, found: Measured | HelperExchange, key: tuple[str, str]) -> HelperView:
    """The helper's answer about the target `key` as it gave it: its compact item (verdict, first
    failing check and its failure) or, from an older helper, its full checks; or why there is
    none (the exchange that failed, the helper's own error, no item for the target)."""
    if isinstance(found, HelperExchange):
        return HelperView(helper, error=words(found), line=found)
    item = found.get(key)
    if item is None or "error" in item:
        said = _text(item.get("error")) if item is not None else None
        return HelperView(helper, error=said or "no answer for this target")
    check, failure = _first_failure(item)
    verdict = item.get("verdict")
    vantage = item.get("helper_vantage")
    return HelperView(
        helper,
        verdict=verdict if isinstance(verdict, str) else None,
        reason=str(item.get("reason", ""))[: wire.REASON_CHARS],
        failed_check=check,
        failure=failure,
        age_seconds=_age(item),
        helper_vantage=vantage if isinstance(vantage, str) else None,
    )


def _first_failure(item: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The helper's first failing check and its failure: a compact item names it (`check`,
    `failure`), an older helper's full answer lists every check."""
    checks = item.get("checks")
    if isinstance(checks, list):
        failed = next((c for c in checks if isinstance(c, dict) and not c.get("ok")), None)
        return (_text(failed.get("check")), _text(failed.get("failure"))) if failed is not None else (None, None)
    return _text(item.get("check")), _text(item.get("failure"))


def _age(item: Mapping[str, Any]) -> float | None:
    age = item.get("age_seconds")
    return float(age) if isinstance(age, int | float) and not isinstance(age, bool) else None


def _text(value: object) -> str | None:
    return value[:120] if isinstance(value, str) else None
