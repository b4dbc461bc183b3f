"""`msgreach evidence --rejudge`: every stored verdict computed again from the stored observations.

Each archive line keeps its checks' evidence records as the analysers read them
(`observations`), the round's facts (`round_facts`, a control's `control_class`) and the
controls' views the judge weighed (`compared`). Re-judging a line runs today's judge on them:
each check's analyser, the target's verdict (the attempt, cut by the deadline or not), the
controls' comparisons; then, per round (a vantage's lines of one start time), the vantage's
verdict from its control lines and each service's from its targets'. Every verdict that comes
out different from the stored one is a difference.

A line written before observations were kept, or cut down to fit (`truncated`), cannot be read
again: it is counted, not compared.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from probe import judge
from probe.evidence.observations import Unreadable, load
from probe.judge.analysis import RoundFacts, analyse
from probe.model import AfterTrigger, CheckResult, HelperView, TargetResult, VantageVerdict, Verdict

CONTROLS = "controls"
Line = dict[str, Any]


@dataclass(frozen=True)
class Difference:
    time: str
    vantage: str
    level: str  # "target", "service" or "vantage"
    name: str  # service/target, service, or the vantage
    stored: str
    rejudged: str
    reason: str = ""

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.time} {self.vantage} {self.level} {self.name}: stored {self.stored}, re-judged {self.rejudged}{why}"


@dataclass
class Rejudging:
    lines: int = 0  # lines read
    judged: int = 0  # lines re-judged
    unreadable: list[str] = field(default_factory=list)  # why lines could not be re-judged
    differences: list[Difference] = field(default_factory=list)


class NotRejudgeable(ValueError):
    """A line that does not hold what the judge needs."""


def rejudge(records: Iterable[Line]) -> Rejudging:
    """Every round of `records` (archive lines, as `probe.evidence.archive.read` gives them)."""
    outcome = Rejudging()
    for lines in _rounds(records):
        _round(lines, outcome)
    return outcome


def _rounds(records: Iterable[Line]) -> Iterator[list[Line]]:
    """The lines of each round: one vantage, one start time (a round's lines are written together)."""
    rounds: dict[tuple[str, str], list[Line]] = {}
    for line in records:
        if isinstance(line, dict):
            rounds.setdefault((str(line.get("vantage")), str(line.get("time"))), []).append(line)
    yield from rounds.values()


def _round(lines: list[Line], outcome: Rejudging) -> None:
    outcome.lines += len(lines)
    judged: dict[int, TargetResult] = {}
    for index, line in enumerate(lines):
        try:
            judged[index] = target(line)
        except NotRejudgeable as exc:
            outcome.unreadable.append(f"{line.get('time')} {line.get('vantage')} {line.get('service')}/{line.get('target')}: {exc}")
    outcome.judged += len(judged)
    first = lines[0]
    when, vantage = str(first.get("time")), str(first.get("vantage"))

    controls = [(lines[i], judged[i]) for i in judged if lines[i].get("service") == CONTROLS]
    offline = False
    if controls and len(controls) == sum(1 for line in lines if line.get("service") == CONTROLS):
        judged_vantage = judge.judge_vantage([(str(line.get("control_class") or "international"), result) for line, result in controls])
        offline = judged_vantage.verdict == VantageVerdict.VANTAGE_OFFLINE
        _compare(outcome, when, vantage, "vantage", vantage, first.get("vantage_verdict"), judged_vantage.verdict, judged_vantage.reason)
    elif str(first.get("vantage_verdict")) == VantageVerdict.VANTAGE_OFFLINE:
        offline = True  # the controls could not be read again: the stored word stands for the services

    services: dict[str, list[tuple[Line, TargetResult | None]]] = {}
    for index, line in enumerate(lines):
        if line.get("service") != CONTROLS:
            services.setdefault(str(line.get("service")), []).append((line, judged.get(index)))
    for index, line in enumerate(lines):
        result = judged.get(index)
        if result is None:
            continue
        if offline and line.get("service") != CONTROLS:
            result.verdict = Verdict.VANTAGE_OFFLINE  # an offline vantage measured nothing
        name = f"{line.get('service')}/{line.get('target')}"
        _compare(outcome, when, vantage, "target", name, line.get("verdict"), result.verdict, result.reason)
    for service, members in services.items():
        if all(result is not None for _, result in members):
            service_verdict = judge.service_verdict([result for _, result in members if result is not None])
            _compare(outcome, when, vantage, "service", service, members[0][0].get("service_verdict"), service_verdict)


def _compare(outcome: Rejudging, when: str, vantage: str, level: str, name: str, stored: object, rejudged: str, reason: str = "") -> None:
    if str(stored) != str(rejudged):
        outcome.differences.append(Difference(when, vantage, level, name, str(stored), str(rejudged), reason))


def target(line: Line) -> TargetResult:
    """One line's target, judged again from its observations: its checks' evidence, then the
    control helpers' views of it and the control vantage's, as the round weighed them."""
    if line.get("truncated"):
        raise NotRejudgeable("the line was cut down to fit the archive's size bound")
    observations = line.get("observations")
    if not isinstance(observations, list):
        raise NotRejudgeable("no observations (written before msgreach kept them)")
    service = str(line.get("service"))
    facts = _facts(line, control=service == CONTROLS)
    checks: list[CheckResult] = []
    views: list[HelperView] = []
    for entry in observations:
        if not isinstance(entry, dict) or not isinstance(entry.get("check"), str):
            raise NotRejudgeable("an observation without its check")
        name = entry["check"]
        try:
            evidence = load(entry)
        except Unreadable as exc:
            raise NotRejudgeable(f"{name}: {exc}") from None
        if name == judge.HELPER_CHECK:
            if not isinstance(evidence, HelperView):
                raise NotRejudgeable(f"{name}: not a helper's view")
            views.append(evidence)
            continue
        try:
            checks.append(analyse(name, evidence, facts))
        except KeyError as exc:
            raise NotRejudgeable(f"{name}: {exc}") from None
    attempt = judge.judge_attempt(checks, cut=bool(line.get("incomplete")), after_trigger=_after_trigger(line))
    result = TargetResult(service, str(line.get("target")), str(line.get("input")), attempt.verdict, checks, attempt.reason, reasons=attempt.reasons)
    if views:
        result = judge.judge_with_helpers(result, views)
    for comparison in line.get("compared") or ():
        if isinstance(comparison, dict) and comparison.get("helper") is None:  # the control vantage's (the helpers' are above)
            judge.confirm_down_by_control(result, _control_view(comparison))
    return result


def _after_trigger(line: Line) -> AfterTrigger | None:
    """The trigger probe the line's failure followed, as the round noted it (schema 3)."""
    note = line.get("after_trigger")
    if note is None:
        return None
    try:
        return AfterTrigger(str(note["destination"]), str(note["trigger"]), float(note["seconds"]), float(note["cooldown"]))
    except (TypeError, KeyError, ValueError):
        raise NotRejudgeable("an after_trigger note without its fields") from None


def _facts(line: Line, *, control: bool) -> RoundFacts:
    if control:
        return RoundFacts(control_target=True, healthy_resolvers=None)
    facts = line.get("round_facts")
    healthy = facts.get("healthy_resolvers") if isinstance(facts, dict) else None
    if not isinstance(healthy, list):
        raise NotRejudgeable("no round facts")
    ipv6 = facts.get("ipv6") is True if isinstance(facts, dict) else False  # schema 3: families judged apart
    return RoundFacts(control_target=False, healthy_resolvers=frozenset(str(r) for r in healthy), ipv6=ipv6)


def _control_view(comparison: dict[str, Any]) -> TargetResult:
    """A control's view of the target, as the judge weighed it: its verdict and its first failing check."""
    try:
        verdict = Verdict(str(comparison.get("verdict")))
    except ValueError:
        verdict = Verdict.ERROR
    check = comparison.get("check")
    checks = [CheckResult(str(check), False, comparison.get("failure"))] if isinstance(check, str) else []
    return TargetResult("", "", "", verdict, checks)


def print_rejudging(outcome: Rejudging, out: TextIO = sys.stdout) -> int:
    """The differences, one a line, then a summary; 0 when every verdict read again is the one
    stored (and some line could be read again), 1 otherwise."""
    for difference in outcome.differences:
        print(str(difference), file=out)
    for why in outcome.unreadable[:20]:
        print(f"not re-judged: {why}", file=out)
    if len(outcome.unreadable) > 20:
        print(f"not re-judged: … and {len(outcome.unreadable) - 20} more", file=out)
    print(
        f"{outcome.judged} of {outcome.lines} line(s) re-judged; {len(outcome.differences)} verdict(s) differ"
        + (f"; {len(outcome.unreadable)} line(s) could not be read again" if outcome.unreadable else ""),
        file=out,
    )
    return 0 if outcome.judged and not outcome.differences else 1
