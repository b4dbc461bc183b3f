"""What a reader of the archive gets from one stored record: typed, whatever the line held.

The OONI export (`probe.evidence.ooni`) reads records only through `stored()`: this is the one
place that knows the keys `probe.evidence.records` writes, so a change there (new fields such as
`failed_operation` or `transaction_id`, a new schema version) changes this module alone.

A record is untrusted input (damage, another tool, an older schema): a field of the wrong type
reads as absent, an entry that is not an object is left out, and a record without the fields
that make it a measurement (time, target, verdict) is no `StoredTarget` at all. What the record
does not hold is None (or empty), never invented here: deriving what is missing is the
reader's business, and it says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from probe.evidence.schema import version_of

JSON = Any  # a JSON value as json.loads returns it


@dataclass(frozen=True, slots=True)
class StoredCheck:
    name: str
    ok: bool
    failure: str | None
    t0: float
    t: float
    failed_operation: str | None = None  # recorded by newer schemas; None when not recorded


@dataclass(frozen=True, slots=True)
class StoredQuery:
    """One resolver asked for the target's name (A and AAAA in one, as msgreach asks)."""

    engine: str
    resolver_address: str
    hostname: str
    answers: tuple[tuple[str, str], ...]  # (answer type "A"/"AAAA", address)
    failure: str | None
    t0: float
    t: float
    transaction_id: int | None
    control: bool  # a control resolver
    judgement: str | None  # how msgreach judged the answer (ok, withheld, tampered, …)


@dataclass(frozen=True, slots=True)
class StoredConnect:
    ip: str
    port: int
    failure: str | None
    t0: float
    t: float
    transaction_id: int | None
    control: bool  # an address only the control resolver gave


@dataclass(frozen=True, slots=True)
class StoredHandshake:
    address: str  # "ip:port" or "[ip6]:port"
    server_name: str
    failure: str | None
    tls_version: str | None
    alpn: str | None
    t0: float
    t: float
    transaction_id: int | None
    decoy: bool  # the decoy SNI to the same address
    same_name: bool  # the real name again on a fresh connection
    hello: str | None = None  # the ClientHello matrix's hello (schema 3), with:
    split: bool = False  # sent in two TCP segments
    pq: bool = False  # an X25519MLKEM768 key share was sent
    ja4: str | None = None


@dataclass(frozen=True, slots=True)
class StoredRequest:
    url: str
    address: str | None  # the IP the request went to
    status_code: int | None  # None: no response began
    body: str | None  # kept only when the check failed
    body_length: int | None
    location: str | None  # the last redirect's
    failure: str | None
    t0: float
    t: float
    transaction_id: int | None
    blockpage: bool  # a block-page fingerprint matched


@dataclass(frozen=True, slots=True)
class StoredTarget:
    schema: int | None
    started: datetime  # the round's start, UTC
    vantage: str
    probe_cc: str
    probe_asn: str
    probe_network_name: str
    software_version: str
    service: str
    target: str
    host: str
    verdict: str
    reason: str
    runtime: float
    checks: tuple[StoredCheck, ...]
    queries: tuple[StoredQuery, ...]
    tcp_connect: tuple[StoredConnect, ...]
    tls_handshakes: tuple[StoredHandshake, ...]
    requests: tuple[StoredRequest, ...]
    check_data: Mapping[str, JSON]  # what else each check observed, under its name

    @property
    def check_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks)

    def first_failure(self) -> StoredCheck | None:
        return next((c for c in self.checks if not c.ok), None)


def stored(record: Mapping[str, JSON]) -> StoredTarget | None:
    """The record as a StoredTarget, or None when it is no measurement of a target."""
    started = _time(record.get("time"))
    target, verdict = _text(record.get("target")), _text(record.get("verdict"))
    if started is None or target is None or verdict is None:
        return None
    keys = record.get("test_keys")
    keys = keys if isinstance(keys, dict) else {}
    return StoredTarget(
        schema=version_of(dict(record)),
        started=started,
        vantage=_text(record.get("vantage")) or "",
        probe_cc=_text(record.get("probe_cc")) or "ZZ",
        probe_asn=_text(record.get("probe_asn")) or "AS0",
        probe_network_name=_text(record.get("probe_network_name")) or "",
        software_version=_text(record.get("software_version")) or "",
        service=_text(record.get("service")) or "",
        target=target,
        host=_text(record.get("input")) or "",
        verdict=verdict,
        reason=_text(record.get("reason")) or "",
        runtime=_number(record.get("test_runtime")) or 0.0,
        checks=tuple(_check(c) for c in _objects(keys.get("checks"))),
        queries=tuple(_query(q) for q in _objects(keys.get("queries"))),
        tcp_connect=tuple(_connect(c) for c in _objects(keys.get("tcp_connect"))),
        tls_handshakes=tuple(_handshake(h) for h in _objects(keys.get("tls_handshakes"))),
        requests=tuple(_request(r) for r in _objects(keys.get("requests"))),
        check_data={name: keys[name] for name in _check_names(keys)},
    )


# --- the entries ---------------------------------------------------------------------------------


def _check(entry: Mapping[str, JSON]) -> StoredCheck:
    return StoredCheck(
        name=_text(entry.get("check")) or "",
        ok=entry.get("ok") is True,
        failure=_text(entry.get("failure")),
        t0=_number(entry.get("t0")) or 0.0,
        t=_number(entry.get("t")) or 0.0,
        failed_operation=_text(entry.get("failed_operation")),
    )


def _query(entry: Mapping[str, JSON]) -> StoredQuery:
    answers = []
    for answer in _objects(entry.get("answers")):
        kind = _text(answer.get("answer_type"))
        address = _text(answer.get("ipv4") if kind == "A" else answer.get("ipv6"))
        if kind in ("A", "AAAA") and address:
            answers.append((kind, address))
    return StoredQuery(
        engine=_text(entry.get("engine")) or "",
        resolver_address=_text(entry.get("resolver_address")) or "",
        hostname=_text(entry.get("hostname")) or "",
        answers=tuple(answers),
        failure=_text(entry.get("failure")),
        **_timing(entry),
        control=entry.get("control") is True,
        judgement=_text(entry.get("judgement")),
    )


def _connect(entry: Mapping[str, JSON]) -> StoredConnect:
    status = entry.get("status")
    status = status if isinstance(status, dict) else {}
    return StoredConnect(
        ip=_text(entry.get("ip")) or "",
        port=_integer(entry.get("port")) or 0,
        failure=_text(status.get("failure")),
        **_timing(entry),
        control=entry.get("control") is True,
    )


def _handshake(entry: Mapping[str, JSON]) -> StoredHandshake:
    return StoredHandshake(
        address=_text(entry.get("address")) or "",
        server_name=_text(entry.get("server_name")) or "",
        failure=_text(entry.get("failure")),
        tls_version=_text(entry.get("tls_version")),
        alpn=_text(entry.get("negotiated_protocol")),
        **_timing(entry),
        decoy=entry.get("decoy") is True,
        same_name=entry.get("same_name") is True,
        **_client_hello(entry.get("client_hello")),
    )


def _client_hello(value: JSON) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {"hello": _text(value.get("hello")), "split": value.get("split") is True, "pq": value.get("pq") is True, "ja4": _text(value.get("ja4"))}


def _request(entry: Mapping[str, JSON]) -> StoredRequest:
    request = entry.get("request")
    response = entry.get("response")
    request = request if isinstance(request, dict) else {}
    response = response if isinstance(response, dict) else {}
    headers = response.get("headers")
    return StoredRequest(
        url=_text(request.get("url")) or "",
        address=_text(entry.get("address")),
        status_code=_integer(response.get("code")),
        body=_text(response.get("body")),
        body_length=_integer(response.get("body_length")),
        location=_text(headers.get("Location")) if isinstance(headers, dict) else None,
        failure=_text(entry.get("failure")),
        **_timing(entry),
        blockpage=isinstance(entry.get("blockpage"), dict),
    )


def _timing(entry: Mapping[str, JSON]) -> dict[str, Any]:
    return {"t0": _number(entry.get("t0")) or 0.0, "t": _number(entry.get("t")) or 0.0, "transaction_id": _integer(entry.get("transaction_id"))}


_LISTS = frozenset({"queries", "tcp_connect", "tls_handshakes", "requests", "checks", "accessible", "blocking"})


def _check_names(keys: Mapping[str, JSON]) -> list[str]:
    """`test_keys` entries holding a check's own observations (everything but OONI's lists)."""
    return [name for name in keys if name not in _LISTS]


# --- untrusted values ----------------------------------------------------------------------------


def _objects(value: JSON) -> list[Mapping[str, JSON]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: JSON) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: JSON) -> float | None:
    if type(value) is float:  # the common case, first
        return value if math.isfinite(value) else None  # json.loads takes NaN and Infinity; JSON has none
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of 400 digits
        return None
    return number if math.isfinite(number) else None


def _integer(value: JSON) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: JSON) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    try:
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except OverflowError:
        return None
