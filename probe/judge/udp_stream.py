"""udp_stream: a call-like UDP stream to the helper abroad against a control stream of the same
sizes and rate carrying neutral bytes (the differential `control_stream`).

- the call stream cut (or dropped from its first packet) while the control stream flows:
  `udp_blocked`, with when it was cut;
- the call stream losing at least the target's `loss_floor` while the control loses under half
  of it: `throttled`;
- both streams in trouble: the path to the helper, or the helper, not the call: nothing separates
  a block (`down`).
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.judge.rules import unmeasured_through_helper
from probe.model import EchoedStream, Fault, Finding, HelperExchange, NoHelper, UDPStreamEvidence, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.UDP_BLOCKED
DIFFERENTIAL = "control_stream"


def analyse(evidence: UDPStreamEvidence | HelperExchange | NoHelper, facts: RoundFacts) -> Analysis:
    if not isinstance(evidence, UDPStreamEvidence):
        return unmeasured_through_helper(evidence, TECHNIQUE)
    call, control, floor = evidence.call, evidence.control, evidence.loss_floor
    cut = call.cut_after_seconds is not None
    if not cut and call.loss_ratio < floor:
        return Analysis.passed()
    failure = failures.UDP_STREAM_CUT if cut else failures.UDP_STREAM_LOSS
    if control.cut_after_seconds is not None or control.loss_ratio >= floor / 2:
        what = _how(call) if cut else Reason("stream.lost", {"share": _share(call.loss_ratio)})
        theirs = Reason("stream.lost", {"share": _share(control.loss_ratio)})
        if control.cut_after_seconds is not None:
            theirs = Reason("stream.lost_and", {"share": _share(control.loss_ratio), "how": _how(control)})
        reason = Reason("stream_both_fail", {"call": what, "control": theirs})
        return Analysis.failed(failure, Finding(TECHNIQUE, Fault.UNSEPARATED, DIFFERENTIAL, reason))
    losses = {"call_loss": _share(call.loss_ratio), "control_loss": _share(control.loss_ratio)}
    if cut:
        return Analysis.failed(failure, Finding(TECHNIQUE, Fault.PATH, DIFFERENTIAL, Reason("stream_call_cut", {"how": _how(call), **losses})))
    reason = Reason("stream_call_lossy", {**losses, "floor": _share(floor)})
    return Analysis.failed(failure, Finding(Verdict.THROTTLED, Fault.PATH, DIFFERENTIAL, reason))


def _how(stream: EchoedStream) -> Reason:
    if not stream.cut_after_seconds:
        return Reason("stream.dropped")
    return Reason("stream.cut", {"seconds": f"{stream.cut_after_seconds:.1f}"})


def _share(ratio: float) -> str:
    return f"{ratio:.0%}"
