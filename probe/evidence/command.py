"""`msgreach evidence`: the verdict changes of a period, by service and vantage, from the archive.

Every argument and every line of the archive is untrusted input: a bad argument (an unparseable
or out-of-range time, a duration of millions of years) is a one-line error and exit 2, and no
line of the archive, however damaged, stops the report (see tests/test_evidence_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from probe.config import Config
from probe.evidence.reader import Reading, archive_files, read
from probe.judge import service_verdict_of
from probe.model import Verdict, worst

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class BadTimeArgument(ValueError):
    """A --since/--until that is no time msgreach can use: exit 2 with its message."""


def parse_time(value: str | None, now: datetime, default: datetime | None) -> datetime | None:
    """RFC 3339 (a date alone means its midnight, UTC if no offset) or a duration ago: 24h, 7d.
    The result is in UTC; a time outside what a date can hold is a `BadTimeArgument`."""
    if value is None or value == "":
        return default
    text = value.strip()
    match = _DURATION.match(text)
    if match is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadTimeArgument(f"{value!r} is neither an RFC 3339 time nor a duration such as 24h or 7d") from None
    try:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]) if match else _utc(parsed)
    except (OverflowError, ValueError):  # 99999999999d ago, 9999-12-31T23:59-01:00 in UTC
        raise BadTimeArgument(f"{value!r} is out of range: times run from year 1 to 9999") from None


def _utc(moment: datetime) -> datetime:
    """An aware UTC time (naive means UTC); OverflowError past year 1 or 9999."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _when(record: dict[str, Any]) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(str(record["time"])))
    except (ValueError, OverflowError):
        return None


def _text(value: Any) -> str | None:
    """A field of a record as text: the archive is read as untrusted input, whatever its types."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def changes(records: list[dict[str, Any]], since: datetime | None, until: datetime | None, services: list[str] | None = None, vantages: list[str] | None = None) -> list[dict[str, Any]]:
    """Verdict changes by service and vantage within [since, until].

    The state at the start is the last verdict recorded before `since` (or the first one in the
    period); a change is a verdict different from the previous record's for the same
    (vantage, service[, target])."""
    timed = [(when, index, r) for index, r in enumerate(records) if (when := _when(r)) is not None]
    timed.sort(key=lambda item: (item[0], item[1]))
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for when, _, item in timed:
        service, vantage = str(_text(item.get("service"))), str(_text(item.get("vantage")))
        if services and service not in services:
            continue
        if vantages and vantage not in vantages:
            continue
        if until is not None and when > until:
            continue
        group = groups.setdefault(
            (service, vantage),
            {"service": service, "vantage": vantage, "place": _place(item), "rounds": set(), "targets": {}, "service_state": None, "changes": [], "start": None, "seen_in_period": False},
        )
        in_period = since is None or when >= since
        target = str(item.get("target"))
        previous = group["targets"].get(target)
        verdict, reason = _text(item.get("verdict")), _text(item.get("reason")) or ""
        if in_period:
            group["seen_in_period"] = True
            group["rounds"].add(item.get("time"))
            if previous is not None and previous["verdict"] != verdict:
                group["changes"].append(
                    {"time": _stamp(when), "level": "target", "target": target, "from": previous["verdict"], "to": verdict, "reason": reason}
                )
        group["targets"][target] = {"verdict": verdict, "time": _stamp(when), "reason": reason}
        state = _text(item.get("service_verdict")) or _service_state(group["targets"])
        if in_period and group["service_state"] is not None and group["service_state"] != state:
            group["changes"].append({"time": _stamp(when), "level": "service", "target": None, "from": group["service_state"], "to": state, "reason": ""})
        if in_period and group["start"] is None:
            group["start"] = group["service_state"] or state
        group["service_state"] = state
    result = []
    for group in sorted(groups.values(), key=lambda g: (g["service"], g["vantage"])):
        if not group["seen_in_period"]:
            continue
        # Several targets of one round carry the same service verdict: keep one service change per moment.
        deduped, seen = [], set()
        for change in group["changes"]:
            key = (change["time"], change["level"], change["target"], change["from"], change["to"])
            if key not in seen:
                seen.add(key)
                deduped.append(change)
        deduped.sort(key=lambda c: (c["time"], c["level"] != "service", c["target"] or ""))
        result.append(
            {
                "service": group["service"],
                "vantage": group["vantage"],
                "place": group["place"],
                "rounds": len(group["rounds"]),
                "at_start": group["start"],
                "at_end": group["service_state"],
                "targets_at_end": {name: state["verdict"] for name, state in sorted(group["targets"].items())},
                "changes": deduped,
            }
        )
    return result


def selected(records: list[dict[str, Any]], since: datetime | None, until: datetime | None, services: list[str] | None = None, vantages: list[str] | None = None) -> list[dict[str, Any]]:
    """The records of the period, services and vantages asked for, in the archive's order."""
    kept = []
    for item in records:
        when = _when(item)
        if when is None or (since is not None and when < since) or (until is not None and when > until):
            continue
        if (services and _text(item.get("service")) not in services) or (vantages and _text(item.get("vantage")) not in vantages):
            continue
        kept.append(item)
    return kept


def _service_state(targets: dict[str, dict[str, Any]]) -> str:
    """A service's verdict from its targets' latest, by the judge's rule (a line without the
    stored service verdict); a word outside the vocabulary (a damaged line) shows as it is."""
    words = [str(t["verdict"]) for t in targets.values()]
    try:
        return str(service_verdict_of([Verdict(w) for w in words]))
    except ValueError:
        return worst(words)


def _place(item: dict[str, Any]) -> str:
    parts = [_text(p) for p in (item.get("probe_cc"), item.get("probe_asn"), item.get("probe_network_name")) if p and p not in ("ZZ", "AS0")]
    return ", ".join(p for p in parts if p)


def render_table(groups: list[dict[str, Any]], since: datetime | None, until: datetime | None, reading: Reading, path: Path) -> str:
    lines = [
        f"Verdict changes from {_stamp(since) if since else 'the beginning'} to {_stamp(until) if until else 'now'}",
        f"archive {path} ({len(reading.files)} file(s), {len(reading.records)} record(s)"
        + (f", {reading.skipped} unreadable line(s) skipped" if reading.skipped else "")
        + (f", {sum(reading.refused.values())} record(s) of another schema refused" if reading.refused else "")
        + (f", {reading.oversized} overlong line(s) skipped" if reading.oversized else "")
        + ")",
        "",
    ]
    if not groups:
        lines.append("No records in this period.")
        return "\n".join(lines)
    service = None
    for group in groups:
        if group["service"] != service:
            service = group["service"]
            lines.append(service)
        place = f" ({group['place']})" if group["place"] else ""
        count = len(group["changes"])
        if not count:
            lines.append(f"  vantage {group['vantage']}{place}: no change, {group['at_end']} throughout ({group['rounds']} round(s))")
            continue
        lines.append(f"  vantage {group['vantage']}{place}: {count} change(s) in {group['rounds']} round(s); {group['at_start']} at the start, {group['at_end']} at the end")
        width = max(len(c["target"] or "service") for c in group["changes"])
        for change in group["changes"]:
            what = "service" if change["level"] == "service" else change["target"]
            indent = "" if change["level"] == "service" else "  "
            row = f"    {change['time']}  {indent}{what:<{width}}{'' if indent else '  '}  {change['from']} -> {change['to']}"
            if change["reason"]:
                row += f"   ({change['reason']})"
            lines.append(row)
    return "\n".join(lines)


def print_changes(args: argparse.Namespace, config: Config | None) -> int:
    """`msgreach evidence`: print the verdict changes of a period, by service and vantage."""
    path_arg = getattr(args, "path", None)
    path = Path(path_arg) if path_arg else (config.evidence.path if config is not None else None)
    if path is None:
        print("msgreach: no evidence archive: the config sets no `evidence.path`; give --path FILE", file=sys.stderr)
        return 2
    now = datetime.now(timezone.utc)
    try:
        since = parse_time(getattr(args, "since", None), now, None)
        until = parse_time(getattr(args, "until", None), now, None)
    except BadTimeArgument as exc:
        print(f"msgreach: error: {exc}", file=sys.stderr)
        return 2
    if since and until and since > until:
        print("msgreach: error: --since is after --until", file=sys.stderr)
        return 2
    path = Path(path)
    if not archive_files(path):
        print(f"msgreach: no evidence archive at {path} (nothing recorded yet?)", file=sys.stderr)
        return 1
    try:
        reading = read(path)
    except OSError as exc:
        print(f"msgreach: cannot read the evidence archive {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for note in reading.notes():
        print(f"msgreach: evidence archive: {note}", file=sys.stderr)
    if getattr(args, "rejudge", False):
        from probe.evidence.rejudge import print_rejudging, rejudge

        return print_rejudging(rejudge(selected(reading.records, since, until, getattr(args, "services", None), getattr(args, "vantages", None))))
    if getattr(args, "format", "table") == "ooni":
        return _write_ooni(selected(reading.records, since, until, getattr(args, "services", None), getattr(args, "vantages", None)), reading)
    groups = changes(reading.records, since, until, getattr(args, "services", None), getattr(args, "vantages", None))
    if getattr(args, "format", "table") == "json":
        document = {
            "archive": str(path),
            "files": [str(f) for f in reading.files],
            "records": len(reading.records),
            "skipped_lines": reading.skipped,
            "oversized_lines": reading.oversized,
            "refused_records": reading.refused,
            "refused_files": reading.refused_files,
            "since": _stamp(since) if since else None,
            "until": _stamp(until) if until else None,
            "groups": groups,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(render_table(groups, since, until, reading, path))
    return 0


def _write_ooni(records: list[dict[str, Any]], reading: Reading) -> int:
    from probe.evidence import ooni

    try:
        ooni.write(records, sys.stdout, reading.records)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    return 0
