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
