"""Target, service and vantage verdicts from what the analysers found.

The differential rule of the contract, applied to a target's first failing check (pipeline
order: a DNS block is what a user meets first; the rest stays evidence):
- the monitor's own fault (a missing dependency, no file descriptors, a bug) is `error`;
- a failure the differential pins on the server (it fails the same for a decoy, it spoke
  garbage, the control resolver agrees, its answer began and then failed) is `down`;
- a technique stands when its differential separated the path from the server;
- without a differential, only what the contract lets stand alone stands (`ip_blocked`,
  `tls_blocked`, `tls_mitm`: one vantage cannot tell a refused or silent address from a censor's,
  the fleet's rules and control vantages do); anything else is `down`, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from probe.failures import HELPER_CANNOT_SAY
from probe.failures import MONITOR as MONITOR_FAILURES
from probe.judge.allowlist import PASSED, STOPPED, UNMEASURED, outcomes_by_family
from probe.model import (
    AfterTrigger,
    AllowlistEvidence,
    AllowlistFamily,
    CheckResult,
    Comparison,
    Fault,
    HelperView,
    ServiceResult,
    TargetResult,
    VantageResult,
    VantageVerdict,
    Verdict,
    is_technique,
    severity,
)
from probe.reasons import Reason, render_clauses, text

if TYPE_CHECKING:
    from probe.config import Vantage

# Techniques the contract lets stand without a differential of their own.
STANDS_ALONE = frozenset({Verdict.IP_BLOCKED, Verdict.TLS_BLOCKED, Verdict.TLS_MITM})
HELPER_CHECK = "helper"  # the check under which a control helper's view of a target is kept: never one of its own
CONTROL_VANTAGE = "the control vantage"


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict and the clauses that explain it."""

    verdict: Verdict
    reasons: tuple[Reason, ...] = ()

    @property
    def reason(self) -> str:
        return render_clauses(self.reasons)


@dataclass(frozen=True, slots=True)
class VantageJudgement:
    verdict: VantageVerdict
    reasons: tuple[Reason, ...] = ()
    allowlist: tuple[AllowlistFamily, ...] = ()  # under `allowlist`, with its probes measured: its key per family

    @property
    def reason(self) -> str:
        return render_clauses(self.reasons)


# --- a target ---------------------------------------------------------------------------------------


def judge_target(checks: Sequence[CheckResult]) -> Judgement:
    """A target's verdict from its checks' outcomes, in pipeline order."""
    judged = [c for c in checks if c.check != HELPER_CHECK]
    for result in judged:
        if result.ok:
            continue
        where = Reason("check_failed", {"check": result.check, "failure": str(result.failure)})
        finding = result.finding
        if (result.failure or "").split(":", 1)[0] in MONITOR_FAILURES:
            return Judgement(Verdict.ERROR, (where, Reason("monitor_could_not_measure")))
        if finding is None:
            return Judgement(Verdict.ERROR, (where, Reason("no_finding")))
        said = (where,) if not finding.reason else (where, finding.reason if isinstance(finding.reason, Reason) else text(finding.reason))
        if finding.fault is Fault.MONITOR:
            return Judgement(Verdict.ERROR, said)
        if finding.fault is Fault.SERVER:
            return Judgement(Verdict.DOWN, said)
        if finding.fault is Fault.PATH and finding.differential:
            return Judgement(finding.technique, (*said, Reason("differential", {"differential": finding.differential})))
        if finding.technique in STANDS_ALONE:
            return Judgement(finding.technique, said)
        return Judgement(Verdict.DOWN, (*said, Reason("no_differential")))
    if not judged:
        return Judgement(Verdict.ERROR, (Reason("no_check_ran"),))
    return Judgement(Verdict.OK)


def judge_attempt(checks: Sequence[CheckResult], *, cut: bool, after_trigger: AfterTrigger | None = None) -> Judgement:
    """One attempt at a target; `cut`: the round's deadline ended it before every check
    returned. A check that never finished is not ok, and no evidence of a block either.
    `after_trigger`: the attempt began within the cooldown after our own trigger probe to one of
    its destinations (probe.triggers): a failure then may be a timed block we set off, which
    says nothing of the target: `error`, the monitor's doing."""
    judgement = judge_target(checks)
    if after_trigger is not None and judgement.verdict != Verdict.OK:
        clause = Reason("after_trigger", {
            "destination": after_trigger.destination, "trigger": after_trigger.trigger,
            "seconds": round(after_trigger.seconds), "cooldown": round(after_trigger.cooldown),
        })
        return Judgement(Verdict.ERROR, (*judgement.reasons, clause))
    if not cut:
        return judgement
    if judgement.verdict == Verdict.OK:
        judgement = Judgement(Verdict.DOWN, (Reason("check_still_running"),))
    return Judgement(judgement.verdict, (*judgement.reasons, Reason("round_deadline")))


def target_verdict(checks: Sequence[CheckResult]) -> tuple[Verdict, str]:
    """(verdict, reason in English) of a target's checks: `judge_target`, flat."""
    judgement = judge_target(checks)
    return judgement.verdict, judgement.reason


def retry_cut(result: TargetResult) -> TargetResult:
    """The confirming retry was cut off by the round's deadline: the complete attempt before it
    stands, and says so."""
    _explain(result, result.verdict, (*_reasons_of(result), Reason("retry_cut")))
    return result


def retry_inconclusive(earlier: TargetResult, judgement: Judgement, checks: Sequence[CheckResult]) -> TargetResult | None:
    """The confirming retry failed at the same check as the attempt before it, but could not say
    how (`no_agreement`: its repeats disagreed, as when a censor that does not reassemble lets a
    hello through now and then): it confirms the failure and contradicts nothing, so the earlier
    attempt, which named its technique over agreeing repeats, stands and says so. None: the retry
    decides as usual (it passed, named something, or failed elsewhere)."""
    if not (is_technique(earlier.verdict) and is_technique(judgement.verdict)) or not any(r.key == "no_agreement" for r in judgement.reasons):
        return None
    if not any(r.key == "differential" for r in earlier.reasons):  # the earlier one named nothing either
        return None
    mine, theirs = _first_failed(earlier), _first_failed_of(checks)
    if mine is None or theirs is None or mine.check != theirs.check:
        return None
    _explain(earlier, earlier.verdict, (*_reasons_of(earlier), Reason("retry_inconclusive", {"failure": str(theirs.failure)})))
    return earlier


def confirm_down_by_control(result: TargetResult, control: TargetResult | None, helper: str | None = None) -> TargetResult:
    """A block that a control (the control vantage, or the helper abroad named `helper`) sees at
    the same check is an outage: `down`, with the control's failure in the reason."""
    if control is None:
        return result
    source = helper_source(helper) if helper is not None else CONTROL_VANTAGE
    theirs = _first_failed(control)
    result.compared.append(Comparison(source, str(control.verdict), theirs.check if theirs else None, theirs.failure if theirs else None, helper))
    if not is_technique(result.verdict) or control.verdict in (Verdict.OK, Verdict.VANTAGE_OFFLINE, Verdict.ERROR):
        return result
    mine = _first_failed(result)
    if mine is not None and theirs is not None and mine.check == theirs.check:
        by = Reason("by_helper", {"helper": helper}) if helper is not None else Reason("by_control_vantage")
        clause = Reason("control_fails_too", {"source": by, "check": theirs.check, "failure": str(theirs.failure)})
        _explain(result, Verdict.DOWN, (*_reasons_of(result), clause))
    return result


def helper_source(helper: str) -> str:
    """How a control helper is named where its view is weighed (`compared`, the reasons)."""
    return f"helper {helper}"


def judge_with_helpers(result: TargetResult, views: Sequence[HelperView]) -> TargetResult:
    """The target judged with what the control helpers abroad said of it in the same round: each
    view kept as the target's `helper` check (ok when the helper found the target ok), and a
    block a helper sees at the same check is `down` (`confirm_down_by_control`). A helper that
    could not say, or whose own controls failed, is not compared."""
    judged = replace(result, checks=[*result.checks, *(helper_check(view) for view in views)], compared=list(result.compared))
    for view in views:
        theirs = _their_result(view)
        if theirs is not None:
            judged = confirm_down_by_control(judged, theirs, view.helper)
    return judged


def helper_check(view: HelperView) -> CheckResult:
    """A control helper's view of a target, as the target's `helper` check: never judged as one
    of its checks (`judge_target` passes it over), it says what the helper saw."""
    if view.line is not None:
        return CheckResult(HELPER_CHECK, False, view.line.failure, 0.0, None, view)
    if view.error is not None or view.verdict is None:
        return CheckResult(HELPER_CHECK, False, HELPER_CANNOT_SAY, 0.0, None, view)
    if not _comparable(view):
        view.error = f"the helper's own controls failed ({view.helper_vantage}): not compared"
        return CheckResult(HELPER_CHECK, False, HELPER_CANNOT_SAY, 0.0, None, view)
    if view.verdict == Verdict.OK:
        return CheckResult(HELPER_CHECK, True, None, 0.0, None, view)
    return CheckResult(HELPER_CHECK, False, view.failure or view.verdict, 0.0, None, view)


def _comparable(view: HelperView) -> bool:
    """The helper's own vantage worked (its controls passed, or only an allowlist stopped them)."""
    return view.helper_vantage in (None, VantageVerdict.OK, VantageVerdict.ALLOWLIST)


def _their_result(view: HelperView) -> TargetResult | None:
    """The helper's result of the target, as `confirm_down_by_control` compares it (its verdict
    and first failing check), or None when there is nothing to compare."""
    if view.line is not None or view.error is not None or view.verdict is None or not _comparable(view):
        return None
    try:
        verdict = Verdict(view.verdict)
    except ValueError:
        verdict = Verdict.ERROR
    checks = [CheckResult(view.failed_check, False, view.failure)] if view.failed_check is not None else []
    return TargetResult("", "", "", verdict, checks, view.reason)


def _first_failed(target: TargetResult) -> CheckResult | None:
    return _first_failed_of(target.checks)


def _first_failed_of(checks: Sequence[CheckResult]) -> CheckResult | None:
    return next((c for c in checks if not c.ok and c.check != HELPER_CHECK), None)


def _reasons_of(result: TargetResult) -> tuple[Reason, ...]:
    """A result's clauses; a result made elsewhere (a helper's answer) has its text only."""
    if result.reasons or not result.reason:
        return result.reasons
    return (text(result.reason),)


def _explain(result: TargetResult, verdict: Verdict, reasons: tuple[Reason, ...]) -> None:
    result.verdict, result.reasons, result.reason = verdict, reasons, render_clauses(reasons)


def unmeasured_service(name: str, targets: Iterable[tuple[str, str]]) -> ServiceResult:
    """A service of an offline vantage: nothing was measured, nothing is claimed."""
    reasons = (Reason("vantage_controls_failed"),)
    return ServiceResult(
        name,
        Verdict.VANTAGE_OFFLINE,
        [TargetResult(name, target, host, Verdict.VANTAGE_OFFLINE, reason=render_clauses(reasons), reasons=reasons) for target, host in targets],
    )


# --- a service --------------------------------------------------------------------------------------


def service_verdict(targets: Sequence[TargetResult]) -> Verdict:
    return service_verdict_of([t.verdict for t in targets])


def service_verdict_of(verdicts: Sequence[Verdict]) -> Verdict:
    """The contract's rule, word for word: `partial` when some targets are `ok` and others
    blocked; else the worst of its blocked targets; with no blocked target, `ok` when some
    target is `ok` (`down` and `error` targets are shown and counted, but an outage of part of
    a service is not a block), `down` when every judged target is `down`, `error` when nothing
    could be measured. An offline vantage judged nothing: `vantage_offline`."""
    if Verdict.VANTAGE_OFFLINE in verdicts:
        return Verdict.VANTAGE_OFFLINE
    blocked = [v for v in verdicts if is_technique(v)]
    if blocked:
        return Verdict.PARTIAL if Verdict.OK in verdicts else worst(blocked)
    if Verdict.OK in verdicts:
        return Verdict.OK
    if Verdict.DOWN in verdicts:  # the judged ones (not `error`) are all down
        return Verdict.DOWN
    return Verdict.ERROR


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    return min(verdicts, key=severity)


# --- a vantage --------------------------------------------------------------------------------------


def judge_vantage(controls: Sequence[tuple[str, TargetResult]]) -> VantageJudgement:
    """The vantage's verdict from its control targets, each with its class (`international`,
    `domestic` or `yardstick`). Only control *sites* count: a download or STUN yardstick passing
    never makes a vantage online (a portal that intercepts TCP only leaves UDP alone)."""
    if not controls:
        return VantageJudgement(VantageVerdict.OK, (Reason("no_controls"),))
    international = [t for kind, t in controls if kind == "international"]
    domestic = [t for kind, t in controls if kind == "domestic"]
    if any(t.verdict == Verdict.OK for t in international):
        return VantageJudgement(VantageVerdict.OK)
    if not international and any(t.verdict == Verdict.OK for t in domestic):
        return VantageJudgement(VantageVerdict.OK, (Reason("no_international_controls"),))
    if international and any(t.verdict == Verdict.OK for t in domestic):
        failed = tuple(_site_failure(t) for t in international)
        keys = allowlist_key([t for kind, t in controls if kind == ALLOWLIST_PROBE])
        said = tuple(Reason("allowlist_keyed", {"family": k.family, "keyed_on": Reason(f"keyed_on_{k.keyed_on}")}) for k in keys if k.keyed_on is not None)
        return VantageJudgement(VantageVerdict.ALLOWLIST, (Reason("allowlist", {"failed": failed}), *said), keys)
    return VantageJudgement(VantageVerdict.VANTAGE_OFFLINE, (Reason("no_control_site_passes"),))


# The allowlist's key from its probes' outcomes on one family: (domestic name at a foreign
# address, foreign name at a domestic address, domestic address with no name).
_KEYS: dict[tuple[str, ...], str] = {
    (PASSED, STOPPED, STOPPED): "name",
    (STOPPED, PASSED, PASSED): "address",
    (STOPPED, STOPPED, STOPPED): "name_and_address",
    (PASSED, PASSED, PASSED): "open",
}
ALLOWLIST_PROBES = ("domestic_name_foreign_address", "foreign_name_domestic_address", "domestic_address_no_name")
ALLOWLIST_PROBE = "allowlist_probe"


def allowlist_key(probes: Sequence[TargetResult]) -> tuple[AllowlistFamily, ...]:
    """What the allowlist follows on each address family, from the `allowlist_probe` controls:
    a key only where all three probes were measured on the family and each one's tries agreed
    (a lossy line's mixed outcomes claim nothing). No probes measured: nothing."""
    outcomes: dict[str, dict[str, str]] = {}
    for target in probes:
        check = target.check("allowlist")
        if check is None or not isinstance(check.evidence, AllowlistEvidence):
            continue
        for family, outcome in outcomes_by_family(check.evidence.handshakes):
            outcomes.setdefault(family, {})[check.evidence.probe] = outcome
    keys = []
    for family in sorted(outcomes):
        seen = tuple(outcomes[family].get(probe, UNMEASURED) for probe in ALLOWLIST_PROBES)
        keys.append(AllowlistFamily(family, _KEYS.get(seen), tuple(zip(ALLOWLIST_PROBES, seen, strict=True))))
    return tuple(keys)


def vantage_verdict(controls: Sequence[tuple[str, TargetResult]]) -> tuple[VantageVerdict, str]:
    """(verdict, reason in English): `judge_vantage`, flat."""
    judgement = judge_vantage(controls)
    return judgement.verdict, judgement.reason


def _site_failure(target: TargetResult) -> Reason:
    failed = _first_failed(target)
    if failed is None:
        return Reason("site_verdict", {"site": target.target, "verdict": str(target.verdict)})
    return Reason("site_failed", {"site": target.target, "check": failed.check, "failure": str(failed.failure)})


def control_reference(results: Iterable[VantageResult], vantages: Iterable[Vantage]) -> VantageResult | None:
    """The result the other vantages compare with: the first online control vantage's. One path
    for `once` (this round's results) and `run` (each vantage's latest)."""
    by_name = {r.vantage: r for r in results}
    for vantage in vantages:
        result = by_name.get(vantage.name)
        if vantage.control and result is not None and result.online:
            return result
    return None


def find_target(vantage: VantageResult, service: str, target: str) -> TargetResult | None:
    for s in vantage.services:
        if s.service == service:
            return next((t for t in s.targets if t.target == target), None)
    return None
