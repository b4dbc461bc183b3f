"""The one judge: observations become findings, findings become verdicts. Nothing else in
msgreach makes a `Finding`, names a `Fault` or decides a verdict.

- `analyse` (probe.judge.analysis): a check's observations, with the round's facts, read by that
  check's analyser (one small module per check here: `dns`, `tcp`, `tls`, …) into the check's
  outcome (ok, failure string, Finding). The runner's step calls it as soon as a check returns.
- `probe.judge.verdicts`: a target's outcomes into its verdict (the first failing check, by the
  differential rule), a service's targets into the service's, a vantage's control sites into
  the vantage's; a control vantage or helper abroad that fails the same turns a block `down`.
- `probe.judge.rules`: the rules several analysers share (a silent server, an answer that
  began and then failed), so that one behaviour reads the same whichever check meets it.

Every reason is a `probe.reasons.Reason` (a key and its parameters), rendered in English from
one table.
"""

from probe.judge.analysis import ANALYSERS, Analysis, RoundFacts, analyse, technique_of
from probe.judge.verdicts import (
    HELPER_CHECK,
    STANDS_ALONE,
    Judgement,
    VantageJudgement,
    confirm_down_by_control,
    control_reference,
    find_target,
    helper_check,
    helper_source,
    judge_attempt,
    judge_target,
    judge_vantage,
    judge_with_helpers,
    retry_cut,
    retry_inconclusive,
    service_verdict,
    service_verdict_of,
    target_verdict,
    unmeasured_service,
    vantage_verdict,
    worst,
)

__all__ = [
    "ANALYSERS",
    "HELPER_CHECK",
    "STANDS_ALONE",
    "Analysis",
    "Judgement",
    "RoundFacts",
    "VantageJudgement",
    "analyse",
    "confirm_down_by_control",
    "control_reference",
    "find_target",
    "helper_check",
    "helper_source",
    "judge_with_helpers",
    "judge_attempt",
    "judge_target",
    "judge_vantage",
    "retry_cut",
    "retry_inconclusive",
    "service_verdict",
    "service_verdict_of",
    "target_verdict",
    "technique_of",
    "unmeasured_service",
    "vantage_verdict",
    "worst",
]
