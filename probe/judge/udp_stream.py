"""udp_stream: a call-like UDP stream to the helper abroad against a control stream of the same
sizes and rate carrying neutral bytes (the differential `control_stream`).

- the call stream cut (or dropped from its first packet) while the control stream flows:
  `udp_blocked`, with when it was cut;
- the call stream losing at least the target's `loss_floor` while the control loses under half
  of it, and more than chance on one lossy line would make of the two streams' counts (a
  two-proportion test, z >= 3): `throttled`; a difference chance could make claims nothing;
- both streams in trouble: the path to the helper, or the helper, not the call: nothing separates
  a block (`down`).
"""

from __future__ import annotations

import math

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
    if not _more_than_chance(call, control):
        reason = Reason("stream_loss_by_chance", {**losses, "floor": _share(floor)})
        return Analysis.failed(failure, Finding(Verdict.THROTTLED, Fault.UNSEPARATED, DIFFERENTIAL, reason))
    reason = Reason("stream_call_lossy", {**losses, "floor": _share(floor)})
    return Analysis.failed(failure, Finding(Verdict.THROTTLED, Fault.PATH, DIFFERENTIAL, reason))


_SEPARATED_Z = 3.0  # a uniformly lossy line gives two streams this far apart about once in 700 rounds


def _more_than_chance(call: EchoedStream, control: EchoedStream) -> bool:
    """Whether the call stream lost more than the control by more than one lossy line's chance
    (two-proportion z-test over the datagrams each sent): short streams on a lossy line differ."""
    if call.sent <= 0 or control.sent <= 0:
        return False
    pooled = (call.loss_ratio * call.sent + control.loss_ratio * control.sent) / (call.sent + control.sent)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / call.sent + 1 / control.sent))
    if spread == 0:
        return call.loss_ratio > control.loss_ratio
    return (call.loss_ratio - control.loss_ratio) / spread >= _SEPARATED_Z


def _how(stream: EchoedStream) -> Reason:
    if not stream.cut_after_seconds:
        return Reason("stream.dropped")
    return Reason("stream.cut", {"seconds": f"{stream.cut_after_seconds:.1f}"})


def _share(ratio: float) -> str:
    return f"{ratio:.0%}"
