"""Rules several analysers share, so that one behaviour of a server or a path reads the same
whichever check meets it.

After TCP connected, a failed exchange is the path's doing only when nothing pins it on the
server: a server that answered in something else (garbage, an alert, an error code), a server
whose answer began and then stopped (it drips, or closes mid-answer: a censor's reset or drop
comes before the answer), and a silent server (our bytes were acknowledged, so they reached a
TCP stack that never answered: a censor dropping them leaves them unacknowledged) are the
server's. What is left, a reset, a close or silence before any answer with our bytes not known
to be delivered, is a cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from probe import failures
from probe.judge.analysis import Analysis
from probe.model import Fault, Finding, HelperExchange, NoHelper, Verdict
from probe.reasons import Reason


class AfterConnect(Enum):
    """How an exchange on a connected socket failed, as far as the server's side can tell."""

    SERVER_SPOKE = "server_spoke"  # it answered, not in the protocol
    ANSWER_BEGAN = "answer_began"  # its answer began, then stopped
    SILENT = "silent"  # our bytes were acknowledged; nothing came back
    CUT = "cut"  # reset, closed or silent before any answer: what a censor does


def after_connect(failure: str, received_bytes: int | None = None, unacked_segments: int | None = None) -> AfterConnect:
    """The one rule for a failure after TCP connected (`received_bytes`: what the server sent
    before it; `unacked_segments`: ours it never acknowledged, None when unknown, e.g. through
    a proxy)."""
    if failure not in failures.INTERFERENCE:
        return AfterConnect.SERVER_SPOKE
    if received_bytes:
        return AfterConnect.ANSWER_BEGAN
    if failure == failures.TIMEOUT and unacked_segments == 0:
        return AfterConnect.SILENT
    return AfterConnect.CUT


def most_common(found: Sequence[str | None]) -> str:
    """The most frequent failure (the first met among equals)."""
    words = [f or "" for f in found]
    return max(dict.fromkeys(words), key=words.count)


def is_monitor_failure(failure: str | None) -> bool:
    """The monitor's own trouble (a missing dependency, no descriptors): never the network's."""
    return (failure or "").split(":", 1)[0] in failures.MONITOR


def unmeasured_through_helper(evidence: HelperExchange | NoHelper, technique: Verdict) -> Analysis:
    """A helper check that could not measure: the round has no such helper (the monitor's own
    configuration), or an exchange with it did not complete. The line to the helper crosses the
    censor, but it is the monitor's instrument, not the path under test: a frozen, dripping,
    reset or garbage-answering line is the monitor's trouble (`error`), never a block."""
    if isinstance(evidence, NoHelper):
        return Analysis.failed(failures.NO_HELPER, Finding(technique, Fault.MONITOR, "", Reason("no_helper_configured")))
    reason = Reason("helper_line_failed", {"line": evidence.failure_reason()})
    return Analysis.failed(evidence.failure or failures.HELPER_CANNOT_SAY, Finding(technique, Fault.MONITOR, "", reason))
