"""One archive record per target per round, in OONI's archival shapes, with what the judge
needs to read it again.

Checks record what happened as typed observations (`probe.model`: `DNSQuery`, `TCPConnect`,
`TLSHandshake`, `HTTPExchange`), wherever in their evidence they keep them. Every such record is
mapped to OONI's list for it (`test_keys.queries`, `tcp_connect`, `tls_handshakes`, `requests`,
with each operation's `t0`/`t`, `transaction_id` and `failed_operation`); whatever else a check
observed is kept as JSON (`probe.model.to_json`) under `test_keys[<check name>]`, so every check
is archived, including ones added later. The one figure taken from a check's JSON form is the
throughput check's `bytes_per_second` (as probe.metrics takes it).

For `msgreach evidence --rejudge` (probe.evidence.rejudge) a line also keeps each check's
evidence record as the analysers read it (`observations`: probe.evidence.observations, without
the bulky fields kept once above), the round's facts the judge leaned on (`round_facts`: the
resolvers that resolved the control sites; a control's `control_class`), the controls' views it
weighed (`compared`: a control vantage, a helper abroad) and its reasons as data (`reasons`);
with the round's probe log for the destinations the target probed (`probes`: every check's
probes to each, in order, with their timing) and, for a failure that followed our own trigger
probe within its cooldown, `after_trigger` (probe.triggers), which the judge reads.

Volunteer safety
- No address of the vantage is written: the vantage's configured `source_address` is replaced by
  `[scrubbed]` (OONI's marker) wherever it appears, and so is every other public IP address in
  free text (failure strings, redirect locations, body samples, reasons) that is not an address
  the measurement itself resolved or connected to — a block page or an echo service may reflect
  the client's public address. Country, ASN and network name appear only as the volunteer set
  them (`ZZ` / `AS0` otherwise, as OONI writes "not disclosed").
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from enum import Enum
from functools import lru_cache
from typing import Any

from probe import __version__
from probe.addresses import split_host_port
from probe.config import Vantage
from probe.evidence.observations import dump
from probe.evidence.schema import SCHEMA
from probe.model import CheckResult, DNSQuery, HTTPExchange, TargetResult, TCPConnect, TLSHandshake, VantageResult, Verdict, is_technique, record_fields, to_json
from probe.redact import ip_version, normal_form, scrub
from probe.triggers import ProbeIndex

CONTROLS = "controls"

_OBSERVATIONS = (DNSQuery, TCPConnect, TLSHandshake, HTTPExchange)
_OONI_LISTS = ("queries", "tcp_connect", "tls_handshakes", "requests")


def records(result: VantageResult, vantage: Vantage | None = None) -> Iterator[dict[str, Any]]:
    """The archive records of one round, controls first."""
    for unscrubbed in unscrubbed_records(result, vantage):
        yield unscrubbed.scrubbed()


@dataclass(frozen=True)
class Unscrubbed:
    """A record before its scrub, with what the scrub reads: the addresses it keeps (those the
    measurement resolved or connected to) and those it always removes (the vantage's own)."""

    data: dict[str, Any]
    allowed: set[str]
    deny: set[str]

    def scrubbed(self) -> dict[str, Any]:
        kept: dict[str, Any] = scrub(self.data, allowed=self.allowed, deny=self.deny)
        return kept


def unscrubbed_records(result: VantageResult, vantage: Vantage | None = None) -> Iterator[Unscrubbed]:
    """`records` before the scrub (the archive encodes a record first, then scrubs only where its
    line holds an address to remove: probe.evidence.archive)."""
    index = ProbeIndex(result.probes)
    deny = _denied(vantage)
    for control in result.controls:
        yield _unscrubbed(result, CONTROLS, None, control, vantage, index, deny)
    for service in result.services:
        for target in service.targets:
            yield _unscrubbed(result, service.service, service.verdict, target, vantage, index, deny)


def record(
    result: VantageResult, service: str, service_verdict: str | None, target: TargetResult, vantage: Vantage | None = None, index: ProbeIndex | None = None,
) -> dict[str, Any]:
    return _unscrubbed(result, service, service_verdict, target, vantage, index or ProbeIndex(result.probes), _denied(vantage)).scrubbed()


def _denied(vantage: Vantage | None) -> set[str]:
    """The vantage's own address (its configured `source_address`), removed wherever it shows."""
    if vantage is not None and vantage.source_address:
        return {split_host_port(vantage.source_address, 0)[0]}
    return set()


def _unscrubbed(
    result: VantageResult, service: str, service_verdict: str | None, target: TargetResult, vantage: Vantage | None, index: ProbeIndex, deny: set[str],
) -> Unscrubbed:
    started, start_time = _start_times(result.started_at)
    keys = _TestKeys(target.host)
    for check in target.checks:
        keys.add(check)
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "time": started,
        "measurement_start_time": start_time,
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
        "test_runtime": round(keys.clock, 4),
        "throughput_bytes_per_second": keys.throughput,
        "test_keys": keys.as_json(target.verdict),
        "reasons": [r.as_json() for r in target.reasons],
        "observations": [{"check": check.check, **(dump(check.evidence) or {})} for check in target.checks],
    }
    if service == CONTROLS:
        data["control_class"] = target.control_class or "international"
    else:
        data["round_facts"] = {"healthy_resolvers": list(result.healthy_resolvers), "ipv6": result.ipv6}
    if target.compared:
        data["compared"] = [to_json(c) for c in target.compared]
    if target.after_trigger is not None:
        data["after_trigger"] = to_json(target.after_trigger)
    if target.held_from is not None:
        data["held_from"] = target.held_from
    probes = index.touched(service, target.target)
    if probes:  # the order and timing of every probe to the addresses this target probed
        data["probes"] = to_json(probes)
    return Unscrubbed(data, _measured_addresses(data), deny)


@lru_cache(maxsize=16)
def _start_times(started_at: float) -> tuple[str, str]:
    """The round's start as the line's `time` and OONI's `measurement_start_time` (the same for
    every line of a round: formatted once)."""
    started = datetime.fromtimestamp(started_at, timezone.utc)
    return started.isoformat(timespec="milliseconds").replace("+00:00", "Z"), started.strftime("%Y-%m-%d %H:%M:%S")


def _asn(value: str) -> str:
    value = value.strip().upper().removeprefix("AS")
    return f"AS{int(value)}" if value.isdigit() else "AS0"


@dataclass
class _TestKeys:
    """OONI-style test_keys of one target, built check by check. `t0`/`t` are seconds from the
    start of the target's (final) attempt: each operation's own, where it recorded them (a record
    made without them starts with its check, and its check after the one before)."""

    hostname: str
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {name: [] for name in _OONI_LISTS})
    checks: list[dict[str, Any]] = field(default_factory=list)
    remainders: dict[str, Any] = field(default_factory=dict)
    clock: float = 0.0
    throughput: float | None = None

    def add(self, check: CheckResult) -> None:
        # The check's start: the step's clock when it has one, else the durations so far.
        t0 = check.t0 if check.t0 is not None else self.clock
        self.clock = t0 + check.duration_seconds
        for path, observation in _observations(check.evidence):
            self._map(check, observation, path, t0)
        rest = _remainder(check.evidence)
        if rest not in (_DROPPED, {}, [], None):
            self.remainders[check.check] = rest
        if check.check == "throughput":  # its JSON form, typed or not yet (as probe.metrics reads it)
            speed = rest.get("bytes_per_second") if isinstance(rest, dict) else None
            if isinstance(speed, int | float) and not isinstance(speed, bool):
                self.throughput = speed
        summary: dict[str, Any] = {"check": check.check, "ok": check.ok, "failure": check.failure, "t0": round(t0, 4), "t": round(self.clock, 4)}
        operation = None if check.ok else _failed_operation(check)
        if operation is not None:
            summary["failed_operation"] = operation
        if check.finding is not None:
            summary["finding"] = check.finding.as_json()
        self.checks.append(summary)

    def _map(self, check: CheckResult, observation: Any, path: tuple[str, ...], t0: float) -> None:
        if isinstance(observation, DNSQuery):
            self.lists["queries"].append(_query(observation, self.hostname, t0))
        elif isinstance(observation, TCPConnect):
            self.lists["tcp_connect"].append(_connect(observation, t0, control=any("control" in name for name in path)))
        elif isinstance(observation, TLSHandshake):
            # The differentials of the tls/http checks (the decoy SNI, the same request on a fresh
            # connection) are kept under attributes named for them.
            self.lists["tls_handshakes"].append(_handshake(observation, t0, decoy=any("decoy" in name for name in path), same_name="same_name" in path))
        elif isinstance(observation, HTTPExchange):
            self.lists["requests"].append(_request(observation, check, t0))

    def as_json(self, verdict: str) -> dict[str, Any]:
        keys: dict[str, Any] = {**self.lists, "checks": self.checks}
        keys.update(self.remainders)
        keys["accessible"] = verdict == Verdict.OK
        keys["blocking"] = False if verdict == Verdict.OK else (verdict if is_technique(verdict) else None)
        return keys


# --- finding the typed observations in a check's evidence ------------------------------------------


def _observations(value: Any) -> list[tuple[tuple[str, ...], Any]]:
    """Every typed observation inside `value` (nested ones too: an HTTP exchange's decoy
    handshake), with the attribute names that lead to it, in field order."""
    found: list[tuple[tuple[str, ...], Any]] = []
    _collect(value, (), found)
    return found


def _collect(value: Any, path: tuple[str, ...], found: list[tuple[tuple[str, ...], Any]]) -> None:
    # Into a list, not a generator's `yield from` chain: each level of it cost a frame per item.
    if isinstance(value, _OBSERVATIONS):
        found.append((path, value))
    shape = _shape(type(value))
    if shape is _LEAF:
        return
    if shape is _SEQUENCE:
        for item in value:
            if _shape(type(item)) is not _LEAF:
                _collect(item, path, found)
    elif shape is _MAPPING:
        for item in value.values():
            if _shape(type(item)) is not _LEAF:
                _collect(item, path, found)
    else:
        for name in _holding(type(value)):
            item = getattr(value, name)
            if _shape(type(item)) is not _LEAF:
                _collect(item, (*path, name), found)


def _holding(cls: type) -> tuple[str, ...]:
    """A record class's fields that may hold a typed observation, as their annotations say (read
    once per class): a handshake's certificate or a redirect chain holds none, and walking them
    for one was most of the walk (issue #22). A field whose annotation says nothing (`object`,
    `Any`), or a class whose annotations do not resolve, is walked."""
    holding = _holdings.get(cls)
    if holding is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # noqa: BLE001 - any failure to resolve means: walk every field
            hints = {}
        holding = _holdings[cls] = tuple(name for name in _shape(cls) if name not in hints or _may_hold(hints[name], {cls}))
    return holding


_holdings: dict[type, tuple[str, ...]] = {}
_NO_OBSERVATION = (str, int, float, bool, bytes, type(None))


def _may_hold(hint: Any, seen: set[type]) -> bool:
    """Whether a value of the annotation `hint` may be or hold a typed observation."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return False
    if origin is not None:  # a union, list[...], dict[...], tuple[...]
        return any(_may_hold(arg, seen) for arg in typing.get_args(hint) if arg is not Ellipsis)
    if not isinstance(hint, type) or hint is object:
        return True  # Any, a type variable, a string left unresolved: anything
    if issubclass(hint, _OBSERVATIONS):
        return True
    if hint in _NO_OBSERVATION or issubclass(hint, Enum):
        return False
    if is_dataclass(hint):
        if hint in seen:  # a record nested in itself: its fields are being asked already
            return False
        try:
            hints = typing.get_type_hints(hint)
        except Exception:  # noqa: BLE001
            return True
        return any(_may_hold(h, seen | {hint}) for h in hints.values())
    return True


# What a value is, read once per class (every value of every record of every round asks, and
# `dataclasses.fields()` builds its answer at each call): a record's field names, or one of these.
_LEAF: tuple[str, ...] = ("<leaf>",)  # nothing inside: str, numbers, None, enums, …
_SEQUENCE: tuple[str, ...] = ("<list>",)
_MAPPING: tuple[str, ...] = ("<dict>",)
_shapes: dict[type, tuple[str, ...]] = {}


def _shape(cls: type) -> tuple[str, ...]:
    shape = _shapes.get(cls)
    if shape is None:
        if is_dataclass(cls):
            shape = tuple(f.name for f in fields(cls))
        elif issubclass(cls, list | tuple):
            shape = _SEQUENCE
        elif issubclass(cls, dict):
            shape = _MAPPING
        else:
            shape = _LEAF
        _shapes[cls] = shape
    return shape


def _failed_operation(check: CheckResult) -> str | None:
    """The operation that failed the check (OONI's `failed_operation`), as the operation records
    in its evidence say: the one whose failure is the check's, else the first that failed."""
    failed = [found for found in _operations(check.evidence) if found[0] is not None]
    return next((operation for operation, failure in failed if failure == check.failure), failed[0][0] if failed else None)


def _operations(value: Any) -> Iterator[tuple[str | None, str | None]]:
    """(failed_operation, failure) of every operation record inside `value`, in field order."""
    shape = _shape(type(value))
    if shape is _LEAF:
        return
    if shape is _SEQUENCE:
        for item in value:
            yield from _operations(item)
    elif shape is _MAPPING:
        for item in value.values():
            yield from _operations(item)
    else:
        if "failed_operation" in shape or hasattr(value, "failed_operation"):
            yield value.failed_operation, getattr(value, "failure", None)
        for name in shape:
            yield from _operations(getattr(value, name))


_DROPPED: Any = object()  # marks what an OONI list already holds


def _remainder(value: Any) -> Any:
    """`to_json(value)` without the observations mapped to OONI's lists (written once, there)."""
    if isinstance(value, _OBSERVATIONS):
        return _DROPPED
    kind = type(value)
    shape = _shape(kind)
    if shape is _LEAF:
        return to_json(value)
    if shape is _SEQUENCE:
        kept = [k for k in (_remainder(item) for item in value) if k is not _DROPPED]
        return _DROPPED if value and not kept else kept
    if shape is _MAPPING:
        return {k: r for k, v in value.items() if (r := _remainder(v)) is not _DROPPED}
    if hasattr(kind, "as_json") or not _holding(kind):  # nothing to drop inside: to_json's (a certificate's is shared)
        return to_json(value)
    data = {}
    for name, omit_none in record_fields(kind):
        item = getattr(value, name)
        if item is None and omit_none:
            continue
        kept = _remainder(item)
        if kept is not _DROPPED:
            data[name] = kept
    return data


# --- OONI's shapes (model/archival.go) ---------------------------------------------------------------


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


def _is_ipv6(address: str) -> bool:
    return ":" in address and ip_version(address) == 6  # an IPv6 address has a colon: the others are not parsed (issue #22)


def _query(query: DNSQuery, hostname: str, t0: float) -> dict[str, Any]:
    engine, address = _engine(str(query.resolver))
    answers = [{"answer_type": "AAAA", "ipv6": ip} if _is_ipv6(ip) else {"answer_type": "A", "ipv4": ip} for ip in query.addresses]
    return {
        "engine": engine,
        "resolver_address": address,
        "hostname": hostname,
        "answers": answers,
        "failure": query.failure,
        **_clock(query, t0),
        # msgreach's own: the resolver's role and how its answer was judged
        "control": query.control,
        "judgement": query.judgement or None,
        "judgement_reason": query.reason,
    }


def _connect(connect: TCPConnect, t0: float, control: bool) -> dict[str, Any]:
    mapped = {
        "ip": connect.address,
        "port": connect.port,
        "status": {"success": connect.failure is None, "failure": connect.failure},
        **_clock(connect, t0),
    }
    if control:
        mapped["control"] = True  # msgreach's own: an address only the control resolver gave
    return mapped


def _handshake(handshake: TLSHandshake, t0: float, decoy: bool, same_name: bool) -> dict[str, Any]:
    address, port = handshake.address, handshake.port
    mapped: dict[str, Any] = {
        "address": f"[{address}]:{port}" if _is_ipv6(address) else f"{address}:{port}",
        "server_name": handshake.sni,
        "failure": handshake.failure,
        "tls_version": handshake.tls_version,
        "negotiated_protocol": handshake.alpn,
        **_clock(handshake, t0),
        "decoy": decoy,  # msgreach's own: a handshake with the decoy SNI to the same address
    }
    if same_name:
        mapped["same_name"] = True  # msgreach's own: the real name again, on a fresh connection
    if handshake.hello is not None:  # msgreach's own: the ClientHello matrix's hello (JA4 as FoxIO's)
        mapped["client_hello"] = {"hello": handshake.hello, "split": bool(handshake.split), "pq": handshake.pq, "ja4": handshake.ja4}
    if handshake.certificate is not None:
        mapped["certificate"] = to_json(handshake.certificate)  # facts, not OONI's DER peer_certificates
    if handshake.response_started is not None:
        mapped["response_started"] = handshake.response_started
    return mapped


def _request(exchange: HTTPExchange, check: CheckResult, t0: float) -> dict[str, Any]:
    response = None
    if exchange.status_code is not None:
        response = {
            "code": exchange.status_code,
            # a body is evidence when something failed; a working page would only fill the disk
            "body": exchange.body_sample if not check.ok else None,
            "body_length": exchange.body_length,
            "headers": {"Location": exchange.redirects[-1].location} if exchange.redirects else {},
        }
    entry: dict[str, Any] = {
        "request": {"url": exchange.url},
        "response": response,
        "failure": check.failure,  # the check's: the exchange's own outcome, or the block page's
        **_clock(exchange, t0, check.duration_seconds),
        # msgreach's own: where the request went, the redirect chain hop by hop, the block page
        # matched, and the plain-HTTP differentials (a TLS one is in tls_handshakes)
        "address": exchange.address,
        "redirects": to_json(exchange.redirects),
    }
    if exchange.blockpage is not None:
        entry["blockpage"] = to_json(exchange.blockpage)
    for name in ("decoy", "same_name"):
        probe = getattr(exchange, name)
        if probe is not None and not isinstance(probe, TLSHandshake):
            entry[name] = to_json(probe)
    return entry


def _clock(record: DNSQuery | TCPConnect | TLSHandshake | HTTPExchange, t0: float, duration: float | None = None) -> dict[str, Any]:
    """`t0`/`t` (the record's own, else from its check's start), and, where the record has them,
    `transaction_id` and `failed_operation`."""
    start = record.t0 if record.t0 is not None else t0
    end = record.t if record.t is not None else start + (record.duration_seconds if duration is None else duration)
    data: dict[str, Any] = {"t0": round(start, 4), "t": round(end, 4)}
    if record.transaction_id is not None:
        data["transaction_id"] = record.transaction_id
    if record.failed_operation is not None:
        data["failed_operation"] = record.failed_operation
    return data


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
    if ip_version(data["input"]):
        found.add(data["input"])
    return {n for a in found if a and (n := normal_form(a)) is not None}
