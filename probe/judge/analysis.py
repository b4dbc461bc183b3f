"""A check's observations read into its outcome: ok or not, the failure string, the Finding.

One analyser per check (a module of this package named after the check) with
- `TECHNIQUE`: the verdict the check's stage would mean (what its failure argues, and what a
  check that ran past every bound argues, with no differential);
- `analyse(evidence, facts) -> Analysis`: the outcome from the check's typed record and the
  round's facts.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType

from probe.model import CheckResult, Fault, Finding, Unfinished, Verdict
from probe.params import CHECK_PARAMS
from probe.reasons import Reason


@dataclass(frozen=True, slots=True)
class RoundFacts:
    """What the judge knows besides a check's own observations: whether the target is one of the
    vantage's controls, and which resolvers resolved the control sites this round (None: not
    known yet, in the control phase itself), whether a control site was reached over IPv6. The evidence archive keeps them with each target."""

    control_target: bool = False
    healthy_resolvers: frozenset[str] | None = None
    # A control site was reached over IPv6 this round: a target's IPv4 and IPv6 are judged apart.
    ipv6: bool = False


@dataclass(frozen=True, slots=True)
class Analysis:
    """A check's outcome as the judge reads it."""

    ok: bool
    failure: str | None = None
    finding: Finding | None = None

    @classmethod
    def passed(cls) -> Analysis:
        return _PASSED

    @classmethod
    def failed(cls, failure: str, finding: Finding) -> Analysis:
        return cls(False, failure, finding)


_PASSED = Analysis(True)

class _Analysers(Mapping[str, ModuleType]):
    """Check name -> its analyser module, imported on first use (as the checks are)."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in CHECK_PARAMS:
            raise KeyError(name)
        # sys.modules first: every check of every target asks (import_module's path costs more)
        return sys.modules.get(f"{__package__}.{name}") or importlib.import_module(f"{__package__}.{name}")

    def __iter__(self) -> Iterator[str]:
        return iter(CHECK_PARAMS)

    def __len__(self) -> int:
        return len(CHECK_PARAMS)


ANALYSERS: Mapping[str, ModuleType] = _Analysers()


def technique_of(check: str) -> Verdict:
    """What a failure of `check` would mean (its analyser's `TECHNIQUE`)."""
    technique = ANALYSERS[check].TECHNIQUE
    assert isinstance(technique, Verdict)
    return technique


def analyse(check: str, evidence: object, facts: RoundFacts, duration_seconds: float = 0.0) -> CheckResult:
    """The check's result: its evidence with the judge's reading of it."""
    if isinstance(evidence, Unfinished):
        analysis = _unfinished(check, evidence)
    else:
        analysis = ANALYSERS[check].analyse(evidence, facts)
    return CheckResult(check, analysis.ok, analysis.failure, duration_seconds, analysis.finding, evidence)


def _unfinished(check: str, evidence: Unfinished) -> Analysis:
    """A check that returned nothing: past every bound, its stage's technique with nothing to
    separate it (it stands only where the contract lets it stand alone); raising, a bug of ours."""
    if evidence.how == "overran":
        return Analysis.failed(evidence.failure, Finding(technique_of(check), Fault.UNSEPARATED, "", Reason("check_overran")))
    return Analysis.failed(evidence.failure, Finding(technique_of(check), Fault.MONITOR, "", Reason("check_crashed")))
