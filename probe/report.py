"""`once` output: the contract's JSON document, or a table for people; its exit status; the
progress line it shows on a terminal."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, TextIO

from probe import __version__
from probe.model import BLOCKS, ProbeRecord, ServiceResult, TargetResult, VantageResult, VantageVerdict, Verdict, record_fields, to_json

CONTROLS = "controls"  # the service name of control targets (probe.runner.CONTROLS)

# `once`'s exit status (../shared/CONTRACT.md); 2, bad input, is the command line's own.
EXIT_NO_BLOCK = 0
EXIT_BLOCKED = 3
EXIT_OFFLINE = 4


def exit_status(results: list[VantageResult]) -> int:
    """3 when some vantage found a service blocked (a technique or `partial`), else 4 when some
    vantage was offline (what it could not judge may hide a block), else 0. `down` and `error`
    are not blocks: a script is told of censorship, not of outages or the monitor's own faults."""
    if any(s.verdict in BLOCKS or s.verdict == Verdict.PARTIAL for r in results for s in r.services):
        return EXIT_BLOCKED
    if any(r.verdict == VantageVerdict.VANTAGE_OFFLINE for r in results):
        return EXIT_OFFLINE
    return EXIT_NO_BLOCK


class Progress:
    """One line on a terminal, rewritten in place as targets are measured (`once` writes it to
    stderr only when stderr is a terminal, so pipes and logs never see it), erased at the end."""

    _EVERY = 0.1  # seconds between redraws: a 1,000-target round would otherwise write 1,000 lines

    def __init__(self, out: TextIO, total: int):
        self._out = out
        self._total = total
        self._done = 0
        self._blocked = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, target: TargetResult) -> None:
        self._done += 1
        self._blocked += target.service != CONTROLS and target.verdict in BLOCKS
        now = time.monotonic()
        if now - self._drawn >= self._EVERY or self._done == self._total:
            self._drawn = now
            blocked = f", {self._blocked} blocked" if self._blocked else ""
            self._out.write(f"\r\x1b[Kmsgreach: measured {self._done}/{self._total} targets{blocked}, {now - self._started:.0f} s")
            self._out.flush()

    def close(self) -> None:
        self._out.write("\r\x1b[K")
        self._out.flush()


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
        out.write(_target_line(value.as_json()))
        return
    inner = indent + "  "
    if isinstance(value, ProbeRecord):  # the round's probe log: thousands, each written in one piece
        members = _record_members(value, "\n" + inner)
        if members is not None:
            out.write("{" + members + "\n" + indent + "}")
            return
        value = to_json(value)
    if isinstance(value, dict) and value:
        flat = _flat_members(value, "\n" + inner)
        if flat is not None:  # the round's probe log: thousands of such records, one write each
            out.write("{" + flat + "\n" + indent + "}")
            return
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


# One C encoder for every target's line, where `_one_line` (`JSONEncoder.encode`) makes one per
# call; without the circular-reference bookkeeping (records hold no cycles). Where the json
# module has no C encoder, `_one_line`.
_c_make_encoder: Callable[..., Callable[[Any, int], Iterable[str]]] | None = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = (None if _c_make_encoder is None else
              _c_make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring,
                              None, ": ", ", ", False, False, True))


def _target_line(data: dict[str, Any]) -> str:
    return "".join(_c_encoder(data, 0)) if _c_encoder is not None else _one_line(data)


def _flat_members(value: dict[str, Any], prefix: str) -> str | None:
    """A dict's members as the indenting encoder writes them, when every value is a scalar; None
    when one is not."""
    members = []
    for key, item in value.items():
        text = _scalar(item)
        if text is None or type(key) is not str:
            return None
        members.append(prefix + _encode_string(key) + ": " + text)
    return ",".join(members)


def _record_members(record: ProbeRecord, prefix: str) -> str | None:
    """`_flat_members(to_json(record), prefix)`, read off the record's fields without building
    its dict (the probe log is most of the document: three records a target); None when a field
    is not a scalar."""
    keys = _member_keys.get(prefix)
    if keys is None:
        keys = _member_keys[prefix] = tuple(prefix + _encode_string(name) + ": " for name, _ in record_fields(ProbeRecord))
    members = []
    for key, (name, omit_none) in zip(keys, record_fields(ProbeRecord), strict=True):
        item = getattr(record, name)
        if item is None and omit_none:
            continue
        kind = type(item)  # the exact types first, spelled as `_scalar(to_json(item))` spells them
        if kind is str:
            text = _encode_string(item)
        elif kind is float and math.isfinite(item):
            text = float.__repr__(round(item, 4))
        elif kind is int:
            text = int.__repr__(item)
        else:
            scalar = _scalar(to_json(item))
            if scalar is None:
                return None
            text = scalar
        members.append(key + text)
    return ",".join(members)


_member_keys: dict[str, tuple[str, ...]] = {}  # per indent: the probe log's keys, as written


_encode_string = json.encoder.encode_basestring  # what the encoder writes a str as (ensure_ascii=False)


def _scalar(value: object) -> str | None:
    """A scalar as json's encoder writes it, without making an encoder per value (each
    `_one_line` of a number does); None for anything else."""
    if isinstance(value, str):
        return _encode_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else _one_line(value)  # NaN, Infinity as json spells them
    return None


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
            cells = [str(cell).ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
            lines.append(("  " + " ".join(cells) + ("  " + row[5] if row[5] else "")).rstrip())
        lines.append("")
    return "\n".join(lines)
