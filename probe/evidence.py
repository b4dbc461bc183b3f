"""The evidence archive: one JSON line per target per round, size-rotated, crash-safe, bounded.

Gauges say *that* something changed; a report needs *what was seen*. After every round the
monitor (and `msgreach once`) appends one JSON object per target — controls included — to a
JSON-lines file: the resolvers' answers, the addresses tried, failure strings, certificate
facts, HTTP status and redirect chain, throughput, the verdict and why. Keys follow OONI's
measurement vocabulary where one exists, so lines can be set beside OONI's public data; the
mapping is documented in docs/deploy.md ("Evidence archive").

Durability
- Each line is written with one `os.write` on an `O_APPEND` descriptor, so the kernel places it
  after everything written before, whoever else appends. A process killed mid-write (even
  `kill -9`) can leave at most one torn line at the end of the file; every earlier line is
  untouched. The next writer ends such a torn fragment with a newline before appending, and
  readers skip lines that do not parse (and count them).
- fsync policy: the file is fsynced once per round, after that round's lines (one fsync per
  vantage per interval); the directory is fsynced after a rotation. A crash of the process loses
  nothing already written; a power loss loses at most the round being written.
- Writers (e.g. `msgreach run` and a `msgreach once` at the same time) serialise on an advisory
  `flock` of the archive's directory, so rotation never races an append.

Disk use
- When the next line would make the file exceed `max_bytes`, the file is rotated: `F` -> `F.1`
  -> `F.2` ... and the oldest beyond `keep_files` files in all (the live one included) is
  deleted. No file ever exceeds `max_bytes`; a line that alone would (a huge body sample) is
  shrunk first. Disk use is at most `keep_files * max_bytes`.

Volunteer safety
- No address of the vantage is written: the vantage's configured `source_address` is replaced by
  `[scrubbed]` (OONI's marker) wherever it appears, and so is every other public IP address in
  free text (failure strings, redirect locations, body samples, reasons) that is not an address
  the measurement itself resolved or connected to — a block page or an echo service may reflect
  the client's public address. Country, ASN and network name appear only as the volunteer set
  them (`ZZ` / `AS0` otherwise, as OONI writes "not disclosed").
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from probe import __version__
from probe.addresses import split_host_port
from probe.config import Config, Evidence, Vantage
from probe.redact import SCRUBBED, ip_version as _ip_version, normal as _normal, scrub  # noqa: F401 - re-exported
from probe.model import BLOCKS, CheckResult, TargetResult, VantageResult, Verdict, to_json

log = logging.getLogger(__name__)

SCHEMA = "msgreach-evidence/1"
CONTROLS = "controls"
_MAX_REASON = 300  # characters of the reason kept in a line shrunk to fit max_bytes


# --- writing -----------------------------------------------------------------------------------


class Archive:
    """Appends rounds to the JSON-lines file named by `evidence.path`, rotating by size.

    Never raises from `append`: a full or read-only disk must not stop the measurements; the
    problem is logged (once per kind of error until it clears)."""

    def __init__(self, evidence: Evidence, vantages: Iterable[Vantage] = ()):
        if evidence.path is None:
            raise ValueError("the evidence archive needs a path")
        self.path = Path(evidence.path)
        self.max_bytes = evidence.max_bytes
        self.keep_files = evidence.keep_files
        self.vantages = {v.name: v for v in vantages}
        self._lock = threading.Lock()
        self._last_error: str | None = None
        self._cleaned = False

    def append(self, result: VantageResult) -> int:
        """Append one line per target of the round; return how many lines were written."""
        lines = [self._fit(encode(record)) for record in records(result, self.vantages.get(result.vantage))]
        try:
            with self._lock, self._directory_lock():
                written = self._append_locked(lines)
        except OSError as exc:
            message = f"{type(exc).__name__}: {exc.strerror or exc}"
            if message != self._last_error:
                log.error("evidence archive %s: cannot write (%s); measurements go on without it", self.path, message)
                self._last_error = message
            return 0
        if self._last_error is not None:
            log.info("evidence archive %s: writing again", self.path)
            self._last_error = None
        return written

    # The directory lock: one writer at a time across processes (rotation renames files).
    @contextmanager
    def _directory_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _append_locked(self, lines: list[bytes]) -> int:
        if not self._cleaned:
            self._remove_beyond_bound()
            self._cleaned = True
        fd = self._open()
        try:
            size = os.fstat(fd).st_size
            for line in lines:
                if size > 0 and size + len(line) > self.max_bytes:
                    os.close(fd)
                    fd = -1
                    self._rotate()
                    fd = self._open()
                    size = os.fstat(fd).st_size
                _write_line(fd, line)
                size += len(line)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        return len(lines)

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A writer died mid-line: end the fragment so the next line starts clean.
                _write_line(fd, b"\n")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _rotate(self) -> None:
        keep_rotated = self.keep_files - 1
        if keep_rotated == 0:
            self.path.unlink(missing_ok=True)
        else:
            self.rotated(keep_rotated).unlink(missing_ok=True)
            for index in range(keep_rotated - 1, 0, -1):
                if self.rotated(index).exists():
                    os.replace(self.rotated(index), self.rotated(index + 1))
            os.replace(self.path, self.rotated(1))
        _fsync_directory(self.path.parent)

    def _remove_beyond_bound(self) -> None:
        """Rotated files a larger `keep_files` left behind count against the bound: delete them."""
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)$")
        for entry in self.path.parent.iterdir():
            match = pattern.match(entry.name)
            if match and int(match.group(1)) >= self.keep_files:
                entry.unlink(missing_ok=True)

    def _fit(self, line: bytes) -> bytes:
        """A line never exceeds max_bytes: drop bulky evidence first, then all but the verdict."""
        if len(line) <= self.max_bytes:
            return line
        record = json.loads(line)
        record["truncated"] = True
        for request in record.get("test_keys", {}).get("requests", []):
            request.get("response", {})["body"] = None
        line = encode(record)
        if len(line) <= self.max_bytes:
            return line
        keep = ("schema", "time", "vantage", "service", "target", "input", "verdict", "reason", "service_verdict", "vantage_verdict", "truncated")
        stub = {key: record[key] for key in keep if key in record}
        stub["reason"] = str(stub.get("reason", ""))[:_MAX_REASON]
        return encode(stub)


def _write_line(fd: int, data: bytes) -> None:
    """One write() for the whole line; only a short write (disk full, signal) loops."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


# --- one record per target ---------------------------------------------------------------------


def records(result: VantageResult, vantage: Vantage | None = None) -> Iterator[dict[str, Any]]:
    """The archive lines of one round, controls first."""
    for control in result.controls:
        yield record(result, CONTROLS, None, control, vantage)
    for service in result.services:
        for target in service.targets:
            yield record(result, service.service, service.verdict, target, vantage)


def record(result: VantageResult, service: str, service_verdict: str | None, target: TargetResult, vantage: Vantage | None = None) -> dict[str, Any]:
    started = datetime.fromtimestamp(result.started_at, timezone.utc)
    test_keys, runtime, throughput = _test_keys(target)
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "time": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "measurement_start_time": started.strftime("%Y-%m-%d %H:%M:%S"),
        "software_name": "msgreach",
        "software_version": __version__,
        "vantage": result.vantage,
        "probe_cc": (vantage.country.upper() if vantage and vantage.country else "ZZ"),
        "probe_asn": _asn(vantage.asn if vantage else ""),
        "probe_network_name": vantage.network if vantage else "",
        "vantage_verdict": result.verdict,
        "service": service,
        "service_verdict": service_verdict,
        "target": target.target,
        "input": target.host,
        "verdict": target.verdict,
        "reason": target.reason,
        "attempts": target.attempts,
        "incomplete": target.incomplete,
        "test_runtime": round(runtime, 4),
        "throughput_bytes_per_second": throughput,
        "test_keys": test_keys,
    }
    deny = set()
    if vantage is not None and vantage.source_address:
        deny.add(split_host_port(vantage.source_address, 0)[0])
    return scrub(data, allowed=_measured_addresses(data), deny=deny)


def _asn(value: str) -> str:
    value = value.strip().upper().removeprefix("AS")
    return f"AS{int(value)}" if value.isdigit() else "AS0"


def _test_keys(target: TargetResult) -> tuple[dict[str, Any], float, float | None]:
    """OONI-style test_keys from a target's checks; `t0`/`t` are seconds from the start of the
    target's (final) attempt, reconstructed from the checks' durations (they run in order)."""
    keys: dict[str, Any] = {"queries": [], "tcp_connect": [], "tls_handshakes": [], "requests": [], "checks": []}
    clock = 0.0
    throughput = None
    for check in target.checks:
        t0, clock = clock, clock + check.duration_seconds
        rest = dict(to_json(check.evidence))
        mapper = _MAPPERS.get(check.check)
        if mapper is not None:
            mapper(keys, check, rest, target, t0)
        if check.check == "throughput" and isinstance(rest.get("bytes_per_second"), int | float):
            throughput = rest["bytes_per_second"]
        summary = {"check": check.check, "ok": check.ok, "failure": check.failure, "finding": check.finding.as_json() if check.finding else None, "t0": round(t0, 4), "t": round(clock, 4)}
        summary.update(rest)  # evidence no OONI list holds stays here, under the check's own keys
        keys["checks"].append(summary)
    keys["accessible"] = target.verdict == Verdict.OK
    keys["blocking"] = False if target.verdict == Verdict.OK else (target.verdict if target.verdict in BLOCKS else None)
    return keys, clock, throughput


def _engine(resolver: str) -> tuple[str, str]:
    """OONI's (engine, resolver_address) for a configured resolver string."""
    if resolver == "system":
        return "getaddrinfo", ""
    if resolver.startswith("https://"):
        return "doh", resolver
    engine, default_port = ("dot", 853) if resolver.startswith("tls://") else ("udp", 53)
    try:
        host, port = split_host_port(resolver.removeprefix("tls://"), default_port)
    except ValueError:
        return engine, resolver
    return engine, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _map_dns(keys: dict[str, Any], check: CheckResult, rest: dict[str, Any], target: TargetResult, t0: float) -> None:
    for answer in rest.pop("resolvers", []):
        engine, address = _engine(str(answer.get("resolver", "")))
        answers = []
        for ip in answer.get("addresses") or []:
            version = _ip_version(ip)
            answers.append({"answer_type": "AAAA", "ipv6": ip} if version == 6 else {"answer_type": "A", "ipv4": ip})
        keys["queries"].append(
            {
                "engine": engine,
                "resolver_address": address,
                "hostname": target.host,
                "answers": answers,
                "failure": answer.get("failure"),
                "t0": round(t0, 4),
                "t": round(t0 + float(answer.get("duration_seconds") or 0.0), 4),
                # msgreach's own: the resolver's role and how its answer was judged
                "control": answer.get("control", False),
                "judgement": answer.get("judgement"),
                "judgement_reason": answer.get("reason"),
            }
        )


def _map_tcp(keys: dict[str, Any], check: CheckResult, rest: dict[str, Any], target: TargetResult, t0: float) -> None:
    for connect in rest.pop("connects", []):
        failure = connect.get("failure")
        keys["tcp_connect"].append(
            {
                "ip": connect.get("address"),
                "port": connect.get("port"),
                "status": {"success": failure is None, "failure": failure},
                "t0": round(t0, 4),
                "t": round(t0 + float(connect.get("duration_seconds") or 0.0), 4),
            }
        )


def _handshake(entry: dict[str, Any], t0: float, decoy: bool) -> dict[str, Any]:
    address, port = entry.get("address"), entry.get("port")
    mapped = {
        "address": f"[{address}]:{port}" if _ip_version(address) == 6 else f"{address}:{port}",
        "server_name": entry.get("sni"),
        "failure": entry.get("failure"),
        "tls_version": entry.get("tls_version"),
        "negotiated_protocol": entry.get("alpn"),
        "t0": round(t0, 4),
        "t": round(t0 + float(entry.get("duration_seconds") or 0.0), 4),
        "decoy": decoy,  # msgreach's own: a handshake with the decoy SNI to the same address
    }
    if "certificate" in entry:
        mapped["certificate"] = entry["certificate"]  # facts, not OONI's DER peer_certificates
    return mapped


def _map_tls(keys: dict[str, Any], check: CheckResult, rest: dict[str, Any], target: TargetResult, t0: float) -> None:
    for entry in rest.pop("handshakes", []):
        keys["tls_handshakes"].append(_handshake(entry, t0, decoy=False))
    if isinstance(rest.get("decoy"), dict):
        keys["tls_handshakes"].append(_handshake(rest.pop("decoy"), t0, decoy=True))


def _map_http(keys: dict[str, Any], check: CheckResult, rest: dict[str, Any], target: TargetResult, t0: float) -> None:
    body = rest.pop("body_sample", None)
    response = None
    if "status_code" in rest:
        redirects = rest.get("redirects") or []
        response = {
            "code": rest.pop("status_code"),
            # a body is evidence when something failed; a working page would only fill the disk
            "body": body if (not check.ok or rest.get("blockpage")) else None,
            "body_length": rest.pop("body_length", None),
            "headers": {"Location": redirects[-1]["location"]} if redirects else {},
        }
    else:
        rest.pop("body_length", None)
    keys["requests"].append(
        {
            "request": {"url": rest.pop("url", None)},
            "response": response,
            "failure": check.failure,
            "address": rest.pop("address", None),
            "redirects": rest.pop("redirects", []),  # msgreach's own: the chain, hop by hop
            "t0": round(t0, 4),
            "t": round(t0 + check.duration_seconds, 4),
        }
    )
    if isinstance(rest.get("decoy"), dict):
        keys["tls_handshakes"].append(_handshake(rest.pop("decoy"), t0, decoy=True))


_MAPPERS = {"dns": _map_dns, "tcp": _map_tcp, "tls": _map_tls, "http": _map_http}


# --- scrubbing ---------------------------------------------------------------------------------

def _measured_addresses(data: dict[str, Any]) -> set[str]:
    """Addresses the measurement resolved, connected or spoke to: remote ends, safe to keep."""
    keys = data["test_keys"]
    found: set[str] = set()
    for query in keys["queries"]:
        found.update(a.get("ipv4") or a.get("ipv6") for a in query["answers"])
        if query["resolver_address"] and query["engine"] != "doh":
            found.add(query["resolver_address"].rsplit(":", 1)[0].strip("[]"))
    found.update(c["ip"] for c in keys["tcp_connect"] if c.get("ip"))
    for handshake in keys["tls_handshakes"]:
        found.add(handshake["address"].rsplit(":", 1)[0].strip("[]"))
    found.update(r["address"] for r in keys["requests"] if r.get("address"))
    if _ip_version(data["input"]):
        found.add(data["input"])
    return {_normal(a) for a in found if a and _ip_version(a)}


# --- reading -------------------------------------------------------------------------------------


@dataclass
class Reading:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: int = 0  # lines that did not parse: a torn last line after a crash, or damage


def archive_files(path: Path) -> list[Path]:
    """The archive's files, oldest first: F.N … F.1, F."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    rotated = []
    if path.parent.is_dir():
        for entry in path.parent.iterdir():
            match = pattern.match(entry.name)
            if match:
                rotated.append((int(match.group(1)), entry))
    files = [entry for _, entry in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def read(path: str | Path) -> Reading:
    """Every parseable record of the archive, oldest file first; unparseable lines are counted."""
    reading = Reading()
    for file in archive_files(Path(path)):
        reading.files.append(file)
        with open(file, "rb") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    reading.skipped += 1
                    continue
                if isinstance(item, dict) and "time" in item and "target" in item:
                    reading.records.append(item)
                else:
                    reading.skipped += 1
    return reading


# --- `msgreach evidence`: verdict changes of a period -------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class _BadArgument(ValueError):
    pass


def parse_time(value: str | None, now: datetime, default: datetime | None) -> datetime | None:
    """RFC 3339 (a date alone means its midnight, UTC if no offset) or a duration ago: 24h, 7d."""
    if value is None or value == "":
        return default
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _BadArgument(f"{value!r} is neither an RFC 3339 time nor a duration such as 24h or 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _when(record: dict[str, Any]) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(record["time"]))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


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
        service, vantage = str(item.get("service")), str(item.get("vantage"))
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
        verdict = item.get("verdict")
        if in_period:
            group["seen_in_period"] = True
            group["rounds"].add(item.get("time"))
            if previous is not None and previous["verdict"] != verdict:
                group["changes"].append(
                    {"time": _stamp(when), "level": "target", "target": target, "from": previous["verdict"], "to": verdict, "reason": item.get("reason") or ""}
                )
        group["targets"][target] = {"verdict": verdict, "time": _stamp(when), "reason": item.get("reason") or ""}
        state = item.get("service_verdict") or _service_state(group["targets"])
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


def _service_state(targets: dict[str, dict[str, Any]]) -> str:
    verdicts = {t["verdict"] for t in targets.values()}
    return verdicts.pop() if len(verdicts) == 1 else "mixed"


def _place(item: dict[str, Any]) -> str:
    parts = [p for p in (item.get("probe_cc"), item.get("probe_asn"), item.get("probe_network_name")) if p and p not in ("ZZ", "AS0")]
    return ", ".join(parts)


def render_table(groups: list[dict[str, Any]], since: datetime | None, until: datetime | None, reading: Reading, path: Path) -> str:
    lines = [
        f"Verdict changes from {_stamp(since) if since else 'the beginning'} to {_stamp(until) if until else 'now'}",
        f"archive {path} ({len(reading.files)} file(s), {len(reading.records)} record(s)"
        + (f", {reading.skipped} unreadable line(s) skipped" if reading.skipped else "")
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
    except _BadArgument as exc:
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
    groups = changes(reading.records, since, until, getattr(args, "services", None), getattr(args, "vantages", None))
    if getattr(args, "format", "table") == "json":
        document = {
            "archive": str(path),
            "files": [str(f) for f in reading.files],
            "records": len(reading.records),
            "skipped_lines": reading.skipped,
            "since": _stamp(since) if since else None,
            "until": _stamp(until) if until else None,
            "groups": groups,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(render_table(groups, since, until, reading, path))
    return 0
