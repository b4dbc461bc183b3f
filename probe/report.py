"""`once` output: the contract's JSON document, or a table for people."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, TextIO

from probe import __version__
from probe.model import ServiceResult, TargetResult, VantageResult


def as_document(results: list[VantageResult], started_at: float, duration: float, *, lazy: bool = False) -> dict[str, Any]:
    return {
        "version": __version__,
        "started_at": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
        "duration_seconds": round(duration, 3),
        "vantages": results if lazy else [r.as_json() for r in results],
    }


def as_json(results: list[VantageResult], started_at: float, duration: float) -> str:
    return json.dumps(as_document(results, started_at, duration), indent=2, ensure_ascii=False)


def write_json(results: list[VantageResult], started_at: float, duration: float, out: TextIO) -> None:
    """The document `as_json` returns (equal once parsed), written as it is encoded: the skeleton
    indented, each target on one line. Neither the whole tree of dicts nor the whole text is ever
    held (for a large round they would be the process's peak of memory), and each target goes through
    the json module's C encoder, which does not indent (the pure-Python indenting encoder is
    much slower; docs/benchmarks.md)."""
    _write(as_document(results, started_at, duration, lazy=True), out, "")
    out.write("\n")


_one_line = json.JSONEncoder(ensure_ascii=False).encode  # one-shot, no indent: the C encoder


def _write(value: Any, out: TextIO, indent: str) -> None:
    if isinstance(value, (VantageResult, ServiceResult)):
        value = value.as_json(lazy=True)
    elif isinstance(value, TargetResult):
        out.write(_one_line(value.as_json()))
        return
    inner = indent + "  "
    if isinstance(value, dict) and value:
        out.write("{")
        for index, (key, item) in enumerate(value.items()):
            out.write(("," if index else "") + "\n" + inner + _one_line(key) + ": ")
            _write(item, out, inner)
        out.write("\n" + indent + "}")
    elif isinstance(value, list) and value:
        out.write("[")
        for index, item in enumerate(value):
            out.write(("," if index else "") + "\n" + inner)
            _write(item, out, inner)
        out.write("\n" + indent + "]")
    else:
        out.write(_one_line(value))


def as_table(results: list[VantageResult]) -> str:
    lines: list[str] = []
    for vantage in results:
        lines.append(f"vantage {vantage.vantage}: {vantage.verdict}  ({vantage.duration_seconds:.1f} s)")
        rows = [("", "control", c.target, c.host, c.verdict, c.reason) for c in vantage.controls]
        for service in vantage.services:
            rows.append(("", service.service, "", "", service.verdict, ""))
            rows.extend(("  ", "", t.target, t.host, t.verdict, t.reason) for t in service.targets)
        widths = [max(len(str(r[i])) for r in rows) if rows else 0 for i in range(5)]
        for row in rows:
            cells = [str(cell).ljust(width) for cell, width in zip(row[:5], widths)]
            lines.append(("  " + " ".join(cells) + ("  " + row[5] if row[5] else "")).rstrip())
        lines.append("")
    return "\n".join(lines)
