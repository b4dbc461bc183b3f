"""`msgreach evidence --format ooni`: every measured target of the archive as one OONI measurement
(OONI's data format, df-000-base and the nettest specs), one JSON object per line.

Which nettest a target becomes (`test_name`):
- `stunreachability` (ts-025) for a target with a `stun` check;
- `telegram`, `whatsapp`, `signal` (ts-020, ts-018, ts-029) for those catalogs' targets;
- `web_connectivity` (ts-017) for any other target with an `http` check (controls included);
- `urlgetter` (ts-027) for the rest (downloads, TCP/TLS-only targets).

`test_keys` carry OONI's lists (`queries`, `tcp_connect`, `tls_handshakes`, `requests`,
`network_events`), each entry with its `transaction_id`, and the nettest's own flags, set from
msgreach's verdict for the target: `ok` where the verdict is `ok`, `blocked` (or `true`) where it
is a block, and for `down` and `error` — msgreach's differential says it is no block, or nothing
could be measured — the status is null and the failure kept. msgreach's own verdict, reason,
checks and observations are under `test_keys.x_msgreach`; `annotations` name the vantage, the
service, the target, the verdict, the archive's schema and what the export derived.

Each operation's `t0`/`t` and `transaction_id`, and the operation that failed a check
(`failed_operation`), are the ones recorded where the operation happened (schema 2). Derived,
and named in `annotations.msgreach_derived` (docs/deploy.md, "OONI export"): network events (one
start and one done event per operation, from its t0/t) and one DNS entry per answer type
(msgreach asks A and AAAA in one lookup); for a record of schema 1, which did not record them,
transaction ids (by order of start) and `failed_operation` (from the failing check's name).

Records are read through `probe.evidence.stored` only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from probe.evidence.schema import PREFIX
from probe.evidence.stored import JSON, StoredCheck, StoredConnect, StoredHandshake, StoredQuery, StoredRequest, StoredTarget, stored
from probe.model import BLOCKS, Verdict
from probe.redact import ip_version

DATA_FORMAT_VERSION = "0.2.0"
MESSENGERS = frozenset({"telegram", "whatsapp", "signal"})

# OONI's names for the operation a failure happened in (netxlite), by msgreach's check: what a
# schema-1 record, which did not record the operation, is read with.
_SCHEMA_1_OPERATION = {"dns": "resolve", "tcp": "connect", "tls": "tls_handshake", "http": "http_round_trip", "throughput": "http_round_trip", "quic": "quic_handshake"}
_EXTENSIONS = {"dnst": 0, "httpt": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0}
_UNJUDGED = frozenset({Verdict.ERROR, Verdict.VANTAGE_OFFLINE})
_VERDICTS = frozenset(Verdict)

Measurement = dict[str, Any]


def write(records: Iterable[dict[str, JSON]], out: TextIO, archive: Iterable[dict[str, JSON]] = ()) -> int:
    """Write the measurements of `records` (read against every record of `archive`, see
    `Profile`), one per line; return how many."""
    count = 0
    for item in measurements(records, archive):
        out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")
        count += 1
    return count


def measurements(records: Iterable[dict[str, JSON]], archive: Iterable[dict[str, JSON]] = ()) -> Iterator[Measurement]:
    """One OONI measurement per measured target of `records`: a record with checks, not under
    `vantage_offline`. Each target is read against its rounds in `records` and `archive`."""
    read = {id(record): stored(record) for record in archive}  # each record read once, even when in both
    chosen = [read[id(record)] if id(record) in read else stored(record) for record in records]
    targets = [t for t in chosen if t is not None and t.checks and t.verdict != Verdict.VANTAGE_OFFLINE]
    profiles = Profile.of_archive([*targets, *(t for t in read.values() if t is not None)])
    for target in targets:
        yield measurement(target, profiles[target.service, target.target])


@dataclass
class Profile:
    """What the archive shows of one target over all its rounds. A round whose early check
    failed skips the later ones (no TCP, no MTProto; no TLS, no request), so the nettest, the
    flags a target gets and its input are read from every round, not just the one exported."""

    checks: set[str] = field(default_factory=set)
    url: str | None = None  # the first request's, in any round
    download_url: str | None = None
    tls_port: str | None = None  # of the first handshake, in any round
    tcp_port: int | None = None
    stun_port: int | None = None

    @classmethod
    def of_archive(cls, targets: Iterable[StoredTarget]) -> dict[tuple[str, str], Profile]:
        profiles: dict[tuple[str, str], Profile] = {}
        for target in targets:
            profile = profiles.setdefault((target.service, target.target), cls())
            profile.checks.update(target.check_names)
            if profile.url is None and target.requests and target.requests[0].url:
                profile.url = target.requests[0].url
            download = target.check_data.get("throughput")
            if profile.download_url is None and isinstance(download, dict) and isinstance(download.get("url"), str):
                profile.download_url = str(download["url"])
            if profile.tls_port is None and target.tls_handshakes:
                profile.tls_port = target.tls_handshakes[0].address.rsplit(":", 1)[-1]
            if profile.tcp_port is None and target.tcp_connect:
                profile.tcp_port = target.tcp_connect[0].port
            profile.stun_port = profile.stun_port or _stun_port(target)
        return profiles


def nettest(target: StoredTarget, profile: Profile) -> str:
    if "stun" in profile.checks:
        return "stunreachability"
    if target.service in MESSENGERS:
        return target.service
    return "web_connectivity" if "http" in profile.checks else "urlgetter"


def measurement(target: StoredTarget, profile: Profile | None = None) -> Measurement:
    profile = profile if profile is not None else Profile.of_archive([target])[target.service, target.target]
    name = nettest(target, profile)
    lists = _Lists.of(target)
    started = target.started.strftime("%Y-%m-%d %H:%M:%S")
    derived = [
        what
        for what, yes in (
            ("transaction_id", lists.derived_ids),
            ("network_events", True),
            ("failed_operation", name == "urlgetter" and _derives_operation(target)),
            ("query_type", bool(target.queries)),
        )
        if yes
    ]
    keys: dict[str, JSON] = {**lists.as_json(), **_FLAGS[name](target, profile)}
    keys["x_msgreach"] = {
        "verdict": target.verdict,
        "reason": target.reason,
        "service": target.service,
        "target": target.target,
        "checks": [_check(c) for c in target.checks],
        "observations": dict(target.check_data),
    }
    return {
        "annotations": {
            "engine_name": "msgreach",
            "engine_version": target.software_version,
            "platform": "linux",
            "msgreach_vantage": target.vantage,
            "msgreach_service": target.service,
            "msgreach_target": target.target,
            "msgreach_verdict": target.verdict,
            "msgreach_schema": f"{PREFIX}{target.schema}" if target.schema is not None else "",
            "msgreach_derived": ",".join(derived),
        },
        "data_format_version": DATA_FORMAT_VERSION,
        "extensions": dict(_EXTENSIONS),
        "input": _input(target, name, profile),
        "measurement_start_time": started,
        "probe_asn": target.probe_asn,
        "probe_cc": target.probe_cc,
        "probe_ip": "127.0.0.1",  # OONI's own "not disclosed"; msgreach never records it
        "probe_network_name": target.probe_network_name,
        "report_id": _report_id(target, name),
        "software_name": "msgreach",
        "software_version": target.software_version,
        "test_keys": keys,
        "test_name": name,
        "test_runtime": target.runtime,
        "test_start_time": started,
        "test_version": target.software_version,
    }


def _check(check: StoredCheck) -> dict[str, JSON]:
    data: dict[str, JSON] = {"check": check.name, "ok": check.ok, "failure": check.failure, "t0": check.t0, "t": check.t}
    if check.failed_operation is not None:
        data["failed_operation"] = check.failed_operation
    return data


def _report_id(target: StoredTarget, name: str) -> str:
    """OONI's shape (time, nettest, country, ASN, collector, token); one report per vantage,
    round and nettest, the same on every export. `n0`: submitted to no OONI collector."""
    token = hashlib.sha256(f"{target.vantage}\0{target.started.isoformat()}\0{name}".encode()).hexdigest()[:16]
    asn = target.probe_asn.removeprefix("AS") or "0"
    return f"{target.started:%Y%m%dT%H%M%SZ}_{name}_{target.probe_cc}_{asn}_n0_{token}"


def _input(target: StoredTarget, name: str, profile: Profile) -> str:
    """The target as OONI writes an input: a URL, `stun://`, `tlshandshake://`, `tcpconnect://`.
    (OONI's messenger nettests measure a whole service and have none; here each target is one.)"""
    host = f"[{target.host}]" if ":" in target.host else target.host
    if name == "stunreachability":
        return f"stun://{host}:{profile.stun_port or _STUN_PORT}"
    if profile.url or profile.download_url:
        return str(profile.url or profile.download_url)
    if profile.tls_port:
        return f"tlshandshake://{host}:{profile.tls_port}"
    if profile.tcp_port:
        return f"tcpconnect://{host}:{profile.tcp_port}"
    return target.host  # never measured past DNS in this archive


_STUN_PORT = 3478


def _stun_port(target: StoredTarget) -> int | None:
    stun = target.check_data.get("stun")
    bindings = stun.get("bindings") if isinstance(stun, dict) else None
    if isinstance(bindings, list) and bindings and isinstance(bindings[0], dict) and isinstance(bindings[0].get("port"), int):
        return int(bindings[0]["port"])
    return None


# --- the nettests' own flags, from msgreach's verdict -------------------------------------------------


def _is_block(verdict: str) -> bool:
    return verdict in BLOCKS


def _judged(verdict: str) -> bool:
    """A verdict about the network: a block, `down` or `ok` (not `error`, nor an unknown word)."""
    return verdict in _VERDICTS and verdict not in _UNJUDGED


def _status(target: StoredTarget) -> str | None:
    """OONI's `ok`/`blocked`; null where msgreach found no block but it did not work either."""
    if target.verdict == Verdict.OK:
        return "ok"
    return "blocked" if _is_block(target.verdict) else None


def _failure(target: StoredTarget) -> str | None:
    if target.verdict == Verdict.OK:
        return None
    failed = target.first_failure()
    return failed.failure if failed is not None and failed.failure else f"unknown_failure: {target.verdict}"


def _failed_operation(target: StoredTarget) -> str | None:
    failed = target.first_failure()
    if failed is None or target.verdict == Verdict.OK:
        return None
    return _SCHEMA_1_OPERATION.get(failed.name) if _derives_operation(target) else failed.failed_operation


def _derives_operation(target: StoredTarget) -> bool:
    """A schema-1 record's failed check: its operation was not recorded, it is read from the check."""
    failed = target.first_failure()
    return failed is not None and target.verdict != Verdict.OK and (target.schema or 1) < 2


def _telegram(target: StoredTarget, profile: Profile) -> dict[str, JSON]:
    keys: dict[str, JSON] = {"failure": None, "failed_operation": None}
    if "mtproto" in profile.checks or ip_version(target.host):  # a data centre: OONI's "access points"
        judged = _judged(target.verdict)
        keys["telegram_tcp_blocking"] = target.verdict == Verdict.IP_BLOCKED if judged else None
        keys["telegram_http_blocking"] = _is_block(target.verdict) if judged else None
    if target.host == "web.telegram.org":
        keys["telegram_web_status"] = _status(target)
        keys["telegram_web_failure"] = _failure(target)
    return keys


def _whatsapp(target: StoredTarget, profile: Profile) -> dict[str, JSON]:
    keys: dict[str, JSON] = {"failure": None, "failed_operation": None}
    if "whatsapp_chat" in profile.checks:
        keys["whatsapp_endpoints_status"] = _status(target)
        keys["whatsapp_endpoints_blocked"] = _blocked_endpoints(target)
        keys["whatsapp_endpoints_dns_inconsistent"] = []  # a legacy key, always empty (ts-018)
    if target.host == "v.whatsapp.net":
        keys["registration_server_status"] = _status(target)
        keys["registration_server_failure"] = _failure(target)
    if target.host == "web.whatsapp.com":
        keys["whatsapp_web_status"] = _status(target)
        keys["whatsapp_web_failure"] = _failure(target)
    return keys


def _blocked_endpoints(target: StoredTarget) -> list[str]:
    if not _is_block(target.verdict):
        return []
    chat = target.check_data.get("whatsapp_chat")
    hosts = chat.get("blocked_hosts") if isinstance(chat, dict) else None
    named = [h for h in hosts if isinstance(h, str)] if isinstance(hosts, list) else []
    return named or [target.host]


def _signal(target: StoredTarget, profile: Profile) -> dict[str, JSON]:
    return {"failure": None, "failed_operation": None, "signal_backend_status": _status(target), "signal_backend_failure": _failure(target)}


def _stunreachability(target: StoredTarget, profile: Profile) -> dict[str, JSON]:
    return {"endpoint": f"{target.host}:{profile.stun_port or _STUN_PORT}", "failure": _failure(target)}


# web_connectivity's `blocking`: where on the path (ts-017), by msgreach's technique
_WEB_BLOCKING = {Verdict.DNS_BLOCKED: "dns", Verdict.DNS_TAMPERED: "dns", Verdict.IP_BLOCKED: "tcp_ip"}


def _web_connectivity(target: StoredTarget, profile: Profile) -> dict[str, JSON]:
    blocking: str | bool | None = None
    accessible: bool | None = None
    if target.verdict == Verdict.OK:
        accessible, blocking = True, False
    elif _is_block(target.verdict):
        accessible = False
        blocking = _WEB_BLOCKING.get(Verdict(target.verdict), "http-failure")
        if target.verdict == Verdict.HTTP_BLOCKED and any(r.blockpage for r in target.requests):
            blocking = "http-diff"
    elif target.verdict == Verdict.DOWN:
        accessible, blocking = False, False  # OONI's "the site is down": the control fails too
    dns = next((c for c in target.checks if c.name == "dns"), None)
    web = next((c for c in target.checks if c.name in ("tls", "http") and not c.ok), None)
    consistency = "inconsistent" if target.verdict == Verdict.DNS_TAMPERED else ("consistent" if dns is not None and dns.ok else None)
    return {
        "accessible": accessible,
        "blocking": blocking,
        "dns_consistency": consistency,
        "dns_experiment_failure": dns.failure if dns is not None else None,
        "http_experiment_failure": web.failure if web is not None else None,
        "control": None,  # msgreach's differentials are not a web_connectivity test helper
        "control_failure": None,
    }


def _urlgetter(target: StoredTarget, profile: Profile) -> dict[str, JSON]:
    return {"failure": _failure(target), "failed_operation": _failed_operation(target)}


_FLAGS: dict[str, Callable[[StoredTarget, Profile], dict[str, JSON]]] = {
    "telegram": _telegram,
    "whatsapp": _whatsapp,
    "signal": _signal,
    "stunreachability": _stunreachability,
    "web_connectivity": _web_connectivity,
    "urlgetter": _urlgetter,
}


# --- OONI's lists (model/archival.go), transaction ids and network events ------------------------------


Operation = StoredQuery | StoredConnect | StoredHandshake | StoredRequest
_KIND_ORDER = {StoredQuery: 0, StoredConnect: 1, StoredHandshake: 2, StoredRequest: 3}


@dataclass
class _Lists:
    operations: list[tuple[int, Operation]]  # (transaction id, operation), in order of start
    derived_ids: bool

    @classmethod
    def of(cls, target: StoredTarget) -> _Lists:
        """Every operation with its transaction id: the recorded one, else the next by order of
        start (ties: DNS, TCP, TLS, HTTP, then as stored)."""
        ordered: list[Operation] = [*target.queries, *target.tcp_connect, *target.tls_handshakes, *target.requests]
        ordered.sort(key=lambda op: (op.t0, _KIND_ORDER[type(op)]))
        recorded = [op.transaction_id for op in ordered if op.transaction_id is not None]
        following = max(recorded, default=0) + 1
        operations = []
        for op in ordered:
            if op.transaction_id is not None:
                operations.append((op.transaction_id, op))
            else:
                operations.append((following, op))
                following += 1
        return cls(operations, derived_ids=len(recorded) < len(ordered))

    def as_json(self) -> dict[str, JSON]:
        lists: dict[str, list[JSON]] = {"queries": [], "tcp_connect": [], "tls_handshakes": [], "requests": []}
        events: list[tuple[float, int, dict[str, JSON]]] = []
        for tid, op in self.operations:
            if isinstance(op, StoredQuery):
                lists["queries"] += _queries(op, tid)
                events += _events(op.t0, op.t, tid, "resolve_start", "resolve_done", op.failure)
            elif isinstance(op, StoredConnect):
                lists["tcp_connect"].append(_connect(op, tid))
                address = _endpoint(op.ip, op.port)
                events.append((op.t, tid, {"address": address, "failure": op.failure, "operation": "connect", "proto": "tcp", "t0": op.t0, "t": op.t, "transaction_id": tid}))
            elif isinstance(op, StoredHandshake):
                lists["tls_handshakes"].append(_handshake(op, tid))
                events += _events(op.t0, op.t, tid, "tls_handshake_start", "tls_handshake_done", op.failure, address=op.address)
            else:
                lists["requests"].append(_request(op, tid))
                events += _events(op.t0, op.t, tid, "http_transaction_start", "http_transaction_done", op.failure)
        events.sort(key=lambda item: (item[0], item[1]))
        return {**lists, "network_events": [event for _, _, event in events]}


def _events(t0: float, t: float, tid: int, start: str, done: str, failure: str | None, address: str | None = None) -> list[tuple[float, int, dict[str, JSON]]]:
    first: dict[str, JSON] = {"failure": None, "operation": start, "t": t0, "transaction_id": tid}
    last: dict[str, JSON] = {"failure": failure, "operation": done, "t0": t0, "t": t, "transaction_id": tid}
    if address:
        first["address"] = last["address"] = address
    return [(t0, tid, first), (t, tid, last)]


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _queries(query: StoredQuery, tid: int) -> list[JSON]:
    """OONI has one entry per query type; msgreach asks A and AAAA in one lookup: an entry per
    type answered, both when the lookup failed or found nothing."""
    types = sorted({kind for kind, _ in query.answers}) if query.answers and query.failure is None else ["A", "AAAA"]
    tags = ["msgreach:control_resolver"] if query.control else []
    if query.judgement:
        tags.append(f"msgreach:judgement={query.judgement}")
    entries = []
    for kind in types:
        entries.append(
            {
                "answers": [{"answer_type": kind, ("ipv4" if kind == "A" else "ipv6"): address, "ttl": None} for k, address in query.answers if k == kind],
                "engine": query.engine,
                "failure": query.failure,
                "hostname": query.hostname,
                "query_type": kind,
                "resolver_hostname": None,
                "resolver_port": None,
                "resolver_address": query.resolver_address,
                "t0": query.t0,
                "t": query.t,
                "tags": tags,
                "transaction_id": tid,
            }
        )
    return entries


def _connect(connect: StoredConnect, tid: int) -> JSON:
    return {
        "ip": connect.ip,
        "port": connect.port,
        "status": {"failure": connect.failure, "success": connect.failure is None},
        "t0": connect.t0,
        "t": connect.t,
        "tags": ["msgreach:control_address"] if connect.control else [],
        "transaction_id": tid,
    }


def _handshake(handshake: StoredHandshake, tid: int) -> JSON:
    tags = [tag for tag, yes in (("msgreach:decoy_sni", handshake.decoy), ("msgreach:same_name", handshake.same_name)) if yes]
    if handshake.hello is not None:  # the ClientHello matrix: which hello went (OONI has no field for it)
        tags.append(f"msgreach:hello={handshake.hello}")
        tags += [tag for tag, yes in (("msgreach:split_hello", handshake.split), ("msgreach:x25519mlkem768", handshake.pq)) if yes]
        if handshake.ja4:
            tags.append(f"msgreach:ja4={handshake.ja4}")
    return {
        "network": "tcp",
        "address": handshake.address,
        "cipher_suite": "",  # not recorded
        "failure": handshake.failure,
        "negotiated_protocol": handshake.alpn or "",
        "no_tls_verify": False,
        "peer_certificates": None,  # msgreach keeps the certificate's facts (x_msgreach), not its DER
        "server_name": handshake.server_name,
        "t0": handshake.t0,
        "t": handshake.t,
        "tags": tags,
        "tls_version": handshake.tls_version or "",
        "transaction_id": tid,
    }


def _request(request: StoredRequest, tid: int) -> JSON:
    parts = urlsplit(request.url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443 if parts.scheme == "https" else 80
    headers = {"Location": request.location} if request.location else {}
    body = request.body or ""
    return {
        "network": "tcp",
        "address": _endpoint(request.address, port) if request.address else "",
        "failure": request.failure,
        "request": {
            "body": "",
            "body_is_truncated": False,
            "headers_list": [],  # not recorded
            "headers": {},
            "method": "",  # not recorded (the catalogs' `method`, GET unless set)
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp",
            "url": request.url,
        },
        "response": {
            "body": body,
            "body_is_truncated": request.body_length is not None and request.body_length > len(body.encode()),
            "code": request.status_code or 0,
            "headers_list": [[name, value] for name, value in headers.items()],
            "headers": headers,
            "x_body_length": request.body_length or 0,
        },
        "t0": request.t0,
        "t": request.t,
        "tags": ["msgreach:blockpage"] if request.blockpage else [],
        "transaction_id": tid,
    }
