"""`once`'s JSON document as `probe.report.write_json` streams it: byte for byte what json's own
indenting encoder writes, where no target line is involved."""

from __future__ import annotations

import io
import json

from probe import report
from probe.model import ProbeRecord, VantageResult, VantageVerdict


def _probe(destination: str, start: float, end: float, attempt: int = 1, failure: str | None = None) -> ProbeRecord:
    return ProbeRecord(destination, "svc", "t\u00e9", "tcp", "measurement", attempt, start, end, failure)


def test_the_streamed_skeleton_is_what_json_writes_byte_for_byte():
    """The probe log's records (written member by member without json's encoder) read as json
    writes them: escapes, non-ASCII text, None, big and small numbers, NaN and the infinities."""
    probes = [
        _probe('198.18.0.1 "quoted"\n\u2028\x00', 1e-07, 12345678.123456),
        _probe("\u0442\u0435\u0441\u0442", 0.1, float("inf"), attempt=2**70, failure="generic_timeout_error"),
        _probe("x", -0.0, float("nan")),
        _probe("y", float("-inf"), 1e16),
    ]
    result = VantageResult("v\u00e9", VantageVerdict.OK, [], [], 1_700_000_000.0, 2.5,
                           healthy_resolvers=["system", "1.1.1.1"], probes=probes)
    streamed = io.StringIO()
    report.write_json([result], 1_700_000_000.0, 2.5, streamed)
    expected = json.dumps(report.as_document([result], 1_700_000_000.0, 2.5), indent=2, ensure_ascii=False) + "\n"
    assert streamed.getvalue() == expected


def test_a_target_line_is_what_json_writes_on_one_line():
    """Each target on one line, through one C encoder kept for them all: json.dumps's bytes."""
    from probe.model import CheckResult, ServiceResult, TargetResult, Verdict

    target = TargetResult("svc", "t\u00e9", "h\u00e9.test", Verdict.OK,
                          checks=[CheckResult("tcp", True, None, 0.1234567), CheckResult("http", False, "generic_timeout_error", 1e-07)],
                          reason='quoted "\u2028" and \\ escaped', held_from=1.5e16)
    result = VantageResult("v", VantageVerdict.OK, [ServiceResult("svc", Verdict.OK, [target, target])], [], 1_700_000_000.0, 2.5)
    streamed = io.StringIO()
    report.write_json([result], 1_700_000_000.0, 2.5, streamed)
    line = json.dumps(target.as_json(), ensure_ascii=False)
    assert [text.strip().rstrip(",") for text in streamed.getvalue().split("\n") if '"target": ' in text] == [line, line]
