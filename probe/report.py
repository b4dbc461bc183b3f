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
    """What `as_json` returns, written to `out` as it is encoded: each target becomes JSON when
    the encoder reaches it, so neither the whole tree of dicts nor the whole text is ever held
    (at 1,000 targets they were the process's peak of memory)."""
    json.dump(as_document(results, started_at, duration, lazy=True), out, indent=2, ensure_ascii=False, default=_record)
    out.write("\n")


def _record(value: Any) -> Any:
    if isinstance(value, (VantageResult, ServiceResult)):
        return value.as_json(lazy=True)
    if isinstance(value, TargetResult):
        return value.as_json()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


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
