"""The vocabulary and the result types of a round: what was observed, what it argues, what was
decided. Standard library only, so that every other module (config, checks, judge, metrics, the
status page, the rule and dashboard generators) can import it without pulling in the network
stack, and nothing imports in a circle.

The data path: checks *observe* (typed records below, in OONI's archival shapes, one per
operation, produced where the operation happens, each with its classified failure, the name of
the operation that failed, `t0`/`t` from the start of the measurement and a `transaction_id`);
`probe.judge` alone reads them: one analyser per check states a `Finding`, and the target,
service and vantage verdicts follow, by the differential rule of the contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field, fields, is_dataclass
from enum import StrEnum
from typing import Any

from probe.lean import lean_dataclass
from probe.reasons import ENGLISH, JSONReason, Reason, ReasonParam, render


class Verdict(StrEnum):
    """Target and service verdicts (../shared/CONTRACT.md), worst first.

    Full blocks before degradations, degradations before `partial`, then what is not a block:
    `down` (the control sees it too), `error` (the monitor's own fault), `vantage_offline`."""

    DNS_BLOCKED = "dns_blocked"
    DNS_TAMPERED = "dns_tampered"
    IP_BLOCKED = "ip_blocked"
    SNI_BLOCKED = "sni_blocked"
    TLS_BLOCKED = "tls_blocked"
    TLS_MITM = "tls_mitm"
    HTTP_BLOCKED = "http_blocked"
    PROTOCOL_BLOCKED = "protocol_blocked"
    QUIC_BLOCKED = "quic_blocked"
    UDP_BLOCKED = "udp_blocked"
    THROTTLED = "throttled"
    PARTIAL = "partial"  # service level only
    DOWN = "down"
    ERROR = "error"
    VANTAGE_OFFLINE = "vantage_offline"
    OK = "ok"


class VantageVerdict(StrEnum):
    """What a vantage's control sites say about its own network (the contract's vantage verdicts)."""

    OK = "ok"
    ALLOWLIST = "allowlist"
    VANTAGE_OFFLINE = "vantage_offline"


# Ordered views of the vocabulary, for the engine, the metrics, the pages and the generators.
SERVICE_VERDICTS: tuple[Verdict, ...] = tuple(Verdict)
TARGET_VERDICTS: tuple[Verdict, ...] = tuple(v for v in Verdict if v is not Verdict.PARTIAL)
TECHNIQUES: frozenset[Verdict] = frozenset(SERVICE_VERDICTS[: SERVICE_VERDICTS.index(Verdict.PARTIAL)])
BLOCKS = TECHNIQUES  # the name the rule and dashboard generators know
VANTAGE_VERDICTS: tuple[VantageVerdict, ...] = tuple(VantageVerdict)

# Every verdict, target, service and vantage, worst first: a vantage's `allowlist` is worse than
# `ok` and better than being offline (the history's bars, `worst` below).
WORST_FIRST: tuple[str, ...] = (
    *(str(v) for v in SERVICE_VERDICTS if v is not Verdict.OK),
    str(VantageVerdict.ALLOWLIST),
    str(Verdict.OK),
)
_RANK = {verdict: index for index, verdict in enumerate(WORST_FIRST)}


def severity(verdict: str) -> int:
    """Position in the worst-first order, lower is worse; a word outside the vocabulary (an old
    history row, a damaged archive line) ranks worst, so that it shows rather than hides."""
    return _RANK.get(str(verdict), -1)


def worst(verdicts: Iterable[str]) -> str:
    """The worst of `verdicts` (any mix of target, service and vantage verdicts)."""
    return min(verdicts, key=severity)


def is_technique(verdict: str) -> bool:
    """A target verdict that names how something was blocked (`dns_blocked` … `throttled`)."""
    return verdict in _TECHNIQUE_WORDS


def is_block(verdict: str) -> bool:
    """A block, as the page, the evidence and the alert rules count them: a technique, or a
    service's `partial` (some targets blocked). `down`, `error`, `vantage_offline`, `ok` are not."""
    return verdict in _TECHNIQUE_WORDS or verdict == Verdict.PARTIAL


def is_measured(verdict: str) -> bool:
    """Whether the verdict claims anything about the service: not the monitor's own `error`, not
    an offline vantage's `vantage_offline` (the history leaves both out of its shares)."""
    return verdict not in (Verdict.ERROR, Verdict.VANTAGE_OFFLINE)


_TECHNIQUE_WORDS = frozenset(str(v) for v in TECHNIQUES)


class Fault(StrEnum):
    """Whose fault a failure is, as far as the differential of its check can tell."""

    PATH = "path"  # the differential separates the path from the server: a technique
    SERVER = "server"  # the differential fails the same way, or the server spoke: no technique
    MONITOR = "monitor"  # the monitor itself could not measure (a missing dependency, no descriptors)
    UNSEPARATED = "unseparated"  # nothing could be compared


@lean_dataclass(frozen=True, slots=True)
class Finding:
    """What a failed check's observations argue for, as `probe.judge` reads them: the technique
    the check's stage would mean, whose fault the differential says it is, and which
    differential that was. Made in probe/judge/ only."""

    technique: Verdict
    fault: Fault
    differential: str = ""  # e.g. "decoy_sni", "decoy_host", "control_resolver", "control_stun"
    reason: Reason | None = None

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {"technique": str(self.technique), "fault": str(self.fault)}
        if self.differential:
            data["differential"] = self.differential
        if self.reason:
            data["reason"] = render(self.reason)
            if isinstance(self.reason, Reason):
                data.update(_reason_json(self.reason))
        return data


def _reason_json(reason: Reason) -> dict[str, object]:
    """The key and parameters beside the rendered text, for readers in other languages."""
    data = reason.as_json()
    return {"reason_key": data["key"], **({"reason_params": data["params"]} if "params" in data else {})}


def reasons_json(reasons: tuple[Reason, ...]) -> list[JSONReason]:
    return [reason.as_json() for reason in reasons]


# --- observations: OONI archival shapes (model/archival.go), one record per operation -------------


def to_json(value: Any) -> Any:
    """A record (or list/dict of records) as JSON data: dataclass fields in order, None dropped
    where a field says `omit_none`, nested records serialised the same way."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return round(value, 4)
    if kind is list:  # before the record tests below, which a list would fail at every call
        return [to_json(item) for item in value]
    if kind is Certificate:
        return _certificate_json(value)
    shape = _shapes.get(kind)
    if shape is None and is_dataclass(kind) and not hasattr(kind, "as_json"):
        shape = record_fields(kind)
    if shape is not None:
        data = {}
        for name, omit_none in shape:
            item = getattr(value, name)
            if item is None and omit_none:
                continue
            # The plain fields inline, as the calls above would give them: most of a record's
            # fields are, and the call per field was most of its cost (issue #22).
            plain = type(item)
            data[name] = item if plain is str or plain is int or plain is bool or item is None else round(item, 4) if plain is float else to_json(item)
        return data
    if is_dataclass(value) and not isinstance(value, type) and hasattr(value, "as_json"):
        return value.as_json()
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, StrEnum):
        return str(value)
    return value


def _certificate_json(certificate: Certificate) -> dict[str, Any]:
    """A certificate's JSON, made once per certificate and shared: the handshakes that met it hold
    the one frozen record (probe.checks.tls), and a round's JSON and archive lines wrote it two to
    four times per target (issue #22). Callers only read it (it is encoded, or copied by the scrub)."""
    known = _certificates.get(id(certificate))
    if known is None or known[0] is not certificate:  # the record held: its id is not reused
        if len(_certificates) >= _MAX_CERTIFICATES:
            _certificates.clear()
        data = {name: to_json(getattr(certificate, name)) for name, omit_none in record_fields(Certificate) if not (omit_none and getattr(certificate, name) is None)}
        known = _certificates[id(certificate)] = (certificate, data)
    return known[1]


_certificates: dict[int, tuple[Certificate, dict[str, Any]]] = {}
_MAX_CERTIFICATES = 64  # a round meets a few; a bound all the same


def record_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """A record class's fields in order, each with whether it is left out when None
    (`omit_none`), read once per class: `dataclasses.fields()` builds its answer at every call,
    and every record of every round's JSON and archive asks. Not for a class with its own
    `as_json` (to_json reads this cache first, and such a class writes itself)."""
    shape = _shapes.get(cls)
    if shape is None:
        shape = _shapes[cls] = tuple((f.name, bool(f.metadata.get("omit_none"))) for f in fields(cls))
    return shape


_shapes: dict[type, tuple[tuple[str, bool], ...]] = {}


def _opt() -> Any:
    return field(default=None, metadata={"omit_none": True})


def _judged(default: object = None, *, omit_none: bool = False) -> Any:
    """A field the judge writes (its reading, kept beside the observations for people): the
    archive's observations leave it out, and reading them again writes it anew."""
    return field(default=default, metadata={"judged": True, "omit_none": omit_none})


def _people() -> Any:
    """An optional field kept for people (the evidence, the archive's OONI lists) that no
    analyser reads: the archive's observations leave it out."""
    return field(default=None, metadata={"omit_none": True, "for_people": True})


# Every operation record ends with these (OONI's archival fields, keyword-only): which
# operation failed (`resolve`, `connect`, `tls_handshake`, `write`, `read`, `http_round_trip`,
# `quic_handshake`), when it began and ended in seconds from the start of the target's
# measurement (`t0`, `t`), and the id of the connection it belongs to (`transaction_id`: one per
# fresh connection, from 1, per measurement).
def _operation() -> Any:
    return field(default=None, kw_only=True, metadata={"omit_none": True})


@lean_dataclass(slots=True)
class DNSQuery:
    """One resolver asked for one name's A and AAAA (OONI DNSQueryEntry, both types in one)."""

    resolver: str
    control: bool
    addresses: list[str] = field(default_factory=list)
    failure: str | None = None
    duration_seconds: float = 0.0
    # The judge's reading of this answer (probe.judge.dns): ok|withheld|tampered|global|
    # inconclusive|unhealthy|control, and the failure or the fact behind it.
    judgement: str = _judged("")
    reason: str | None = _judged()
    # The answer against the reference lists of the config, met when the answer came: addresses
    # in a bogon range (the vantage's exemptions applied), known block-page addresses, and
    # whether every address lies outside the service's known networks (None: none are known).
    bogons: list[str] | None = _opt()
    blockpage_addresses: list[str] | None = _opt()
    outside_networks: bool | None = _opt()
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class TCPConnect:
    """One TCP connect (OONI TCPConnectEntry)."""

    address: str
    port: int
    failure: str | None = None
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(frozen=True, slots=True)
class Certificate:
    """The server certificate a TLS handshake met: subject, issuer, validity, SHA-256 and names."""

    # Frozen: one record stands for a certificate across the handshakes that met it (probe.checks.tls).
    subject: str
    issuer: str
    not_before: str
    not_after: str
    not_after_timestamp: float
    sha256: str
    dns_names: list[str] = field(default_factory=list)


@lean_dataclass(slots=True)
class TLSHandshake:
    """One TLS handshake on a fresh connection (OONI TLSHandshake), optionally with one request's
    first bytes (the decoy and same-shape differentials)."""

    address: str
    port: int
    sni: str
    failure: str | None = None
    tls_version: str | None = _opt()
    alpn: str | None = _opt()
    certificate: Certificate | None = _people()
    response_started: bool | None = _opt()  # a request was sent and a first byte came back
    duration_seconds: float = 0.0
    # Bytes the server sent on the connection before the handshake failed: its answer began
    # (a censor's reset or drop comes before any).
    received_bytes: int | None = _opt()
    # The ClientHello matrix (probe.fingerprint.HELLOS): which hello was sent ("openssl",
    # "chrome", "chrome_android", "safari_ios", "firefox"), whether it went in two TCP segments,
    # whether it carried an X25519MLKEM768 key share (read from the bytes sent), and its JA4.
    # Unset on a target without a `client` (Python's hello, as always).
    hello: str | None = _opt()
    split: bool | None = _opt()
    pq: bool | None = _opt()
    ja4: str | None = _people()
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class Redirect:
    """A redirect the HTTP check followed: its status code and where it pointed."""

    status_code: int
    location: str


@lean_dataclass(slots=True)
class BlockPage:
    """A block-page fingerprint that matched: by status, redirect or body, and what matched."""

    kind: str  # "status", "redirect" or "body"
    match: str


@lean_dataclass(slots=True)
class HTTPExchange:
    """One HTTP request and what came back (OONI RequestEntry, flattened). `status_code` set means
    the server's response began: what fails after it is the server's or the transfer's business."""

    url: str
    address: str
    redirects: list[Redirect] = field(default_factory=list)
    status_code: int | None = _opt()
    body_sample: str | None = _people()  # the first 2 KiB, scrubbed of the vantage's address
    body_length: int | None = _opt()
    # A block-page fingerprint met: the status, a redirect's host, or a marker in the body (looked
    # for while the body streams: the body itself is not kept).
    blockpage: BlockPage | None = _opt()
    decoy: TLSHandshake | HTTPProbe | None = _opt()  # the same request, decoy SNI (https) or Host (http)
    same_name: TLSHandshake | HTTPProbe | None = _opt()  # the same request, real name, fresh connection
    failure: str | None = _operation()  # the request's own failure (a block page is not one)
    duration_seconds: float = field(default=0.0, kw_only=True)
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class HTTPProbe:
    """One plain-HTTP request on a fresh connection, up to the first byte of the response: the
    decoy-Host differential and its same-shape twin with the real Host."""

    address: str
    port: int
    host: str
    failure: str | None = None
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


# --- each check's evidence ---------------------------------------------------------------------


@lean_dataclass(slots=True)
class DNSEvidence:
    """What the `dns` check observed: each resolver's queries and the addresses they gave."""

    resolvers: list[DNSQuery] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    addresses_from: str = ""  # "pinned", "dns" or "control_resolver"
    control_agrees: bool | None = _judged(omit_none=True)  # when no resolver gave an address: did the control fail the same way


@lean_dataclass(slots=True)
class TCPEvidence:
    """What the `tcp` check observed: each connect, and those to the control resolver's addresses."""

    connects: list[TCPConnect] = field(default_factory=list)
    control_connects: list[TCPConnect] | None = _opt()  # the control resolver's addresses, tried when ours fail


@lean_dataclass(slots=True)
class TLSEvidence:
    """What the `tls` check observed: each handshake, and the certificate they met."""

    handshakes: list[TLSHandshake] = field(default_factory=list)
    certificate: Certificate | None = _people()
    decoy: TLSHandshake | None = _opt()
    # `fingerprint: browser|both`: the browser-like handshake and Python's hello, fingerprinted
    browser: FingerprintedHandshake | None = _opt()
    python_hello: ClientHelloFingerprint | None = _people()
    fingerprint_keyed: str | None = _judged(omit_none=True)  # "python" or "browser": the hello the path cut while the other passed
    # A target with a `client` (its real client's hello: probe.fingerprint.CLIENTS): which client,
    # and when its hello failed, the matrix (the other hellos, the key share toggled, the hello
    # split, all with the real name, to the same address) and the alternated repeats (the real
    # hello again, then the attempt that passed again) a keyed claim needs. `repeats` None: none
    # were needed (or an archive from before them); [] : needed, and no time was left.
    client: str | None = _opt()
    matrix: list[TLSHandshake] | None = _opt()
    repeats: list[TLSHandshake] | None = _opt()
    keyed_on: str | None = _judged(omit_none=True)  # "fingerprint" | "name": what a block follows, agreed over the repeats
    filtered_fingerprints: list[str] | None = _judged(omit_none=True)  # hellos the path cut while the real client's passed
    split_evades: bool | None = _judged(omit_none=True)  # the real hello, split in two segments, passed where whole it did not


# --- results -----------------------------------------------------------------------------------


@lean_dataclass(slots=True)
class Unfinished:
    """The evidence of a check that returned none: it ran past every bound (`overran`), or it
    raised (`crashed`, a bug of msgreach), with the failure that ended it."""

    how: str  # "overran" | "crashed"
    failure: str

    def as_json(self) -> dict[str, object]:
        return {"unfinished": self.how}


@lean_dataclass(slots=True)
class CheckResult:
    """One check on one target: what it observed (`evidence`: the check's typed record) and the
    judge's reading of it (`ok`, the failure string, and when it failed its Finding), made by
    `probe.judge.analyse` as soon as the check returned.

    `evidence` is the check's record of this module (the helper checks': theirs, or the failed
    `HelperExchange`, or `NoHelper`), `Unfinished` when it returned none, or a control helper's
    `HelperView` under the `helper` check."""

    check: str
    ok: bool
    failure: str | None = None
    duration_seconds: float = 0.0
    finding: Finding | None = None
    evidence: object = field(default_factory=dict)
    t0: float | None = None  # when the check began, seconds from the start of the measurement

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "check": self.check,
            "ok": self.ok,
            "failure": self.failure,
            "duration_seconds": round(self.duration_seconds, 4),
        }
        evidence = to_json(self.evidence)
        if isinstance(evidence, dict):
            # The check's keys stand: a record's own `failure` (the HTTP request's) is its business.
            data.update(evidence if not data.keys() & evidence.keys() else {k: v for k, v in evidence.items() if k not in data})
        if self.finding is not None:
            data["finding"] = self.finding.as_json()
        return data


@lean_dataclass(slots=True)
class Comparison:
    """What a control (a control vantage, a helper abroad) saw of the same target in the same
    round, as the judge compared it: its verdict and its first failing check."""

    source: str  # "the control vantage", "helper NAME"
    verdict: str
    check: str | None = None
    failure: str | None = None
    helper: str | None = field(default=None, metadata={"omit_none": True})  # a helper abroad's name


@lean_dataclass(frozen=True, slots=True)
class ProbeRecord:
    """One check's probes to one destination in a round (the round's probe log, issue 20: blocks
    that linger): an address the check connected or sent to, or `helper NAME` for a helper
    abroad; `kind` `trigger` for a probe that can set off a censor's timed block (a circumvention
    signature), else `measurement`; `start`/`end` in seconds since the round began."""

    destination: str
    service: str
    target: str
    check: str
    kind: str
    attempt: int
    start: float
    end: float
    failure: str | None = None


@lean_dataclass(frozen=True, slots=True)
class AfterTrigger:
    """A failed attempt that began `seconds` after a trigger probe (`trigger`: service/target) to
    one of its destinations, within the cooldown: a censor's timed block set off by our own probe
    cannot be told from a block of the target, so the failure judges nothing."""

    destination: str
    trigger: str
    seconds: float
    cooldown: float


@lean_dataclass(slots=True)
class TargetResult:
    """One target's verdict in a round, with its checks and the reason in English."""

    service: str  # "controls" for a control target
    target: str
    host: str
    verdict: Verdict
    checks: list[CheckResult] = field(default_factory=list)
    reason: str = ""  # `reasons` rendered in English (probe.reasons)
    attempts: int = 1
    incomplete: bool = False
    reasons: tuple[Reason, ...] = ()
    control_class: str = ""  # a control target's: international, domestic or yardstick
    compared: list[Comparison] = field(default_factory=list)  # the controls' views the judge weighed
    after_trigger: AfterTrigger | None = None  # its failure followed our own trigger probe (judged `error`)
    held_from: float | None = None  # a trigger target not sent this round (cooldown): the round (unix time) it was measured in

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.check == name), None)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "target": self.target,
            "host": self.host,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "attempts": self.attempts,
            "checks": [c.as_json() for c in self.checks],
        }
        if self.reasons:
            data["reasons"] = reasons_json(self.reasons)
        if self.control_class:
            data["control_class"] = self.control_class
        if self.compared:
            data["compared"] = [to_json(c) for c in self.compared]
        if self.incomplete:
            data["incomplete"] = True
        if self.after_trigger is not None:
            data["after_trigger"] = to_json(self.after_trigger)
        if self.held_from is not None:
            data["held_from"] = self.held_from
        return data


@lean_dataclass(slots=True)
class ServiceResult:
    """One service's verdict in a round, with its targets'."""

    service: str
    verdict: Verdict
    targets: list[TargetResult]

    @property
    def reachable_ratio(self) -> float:
        return sum(t.verdict == Verdict.OK for t in self.targets) / len(self.targets) if self.targets else 0.0

    @property
    def targets_down(self) -> int:
        """Targets that are `down`: shown and counted, not a block (an `ok` service may have some)."""
        return sum(t.verdict == Verdict.DOWN for t in self.targets)

    def as_json(self, *, lazy: bool = False) -> dict[str, Any]:
        """`lazy`: the targets stay records, for an encoder that turns each into JSON when it
        reaches it (`probe.report.write_json`)."""
        return {
            "service": self.service,
            "verdict": str(self.verdict),
            "targets_down": self.targets_down,
            "targets": self.targets if lazy else [t.as_json() for t in self.targets],
        }


@lean_dataclass(slots=True)
class VantageResult:
    """One vantage's round: its verdict, services, controls, timing and healthy resolvers."""

    vantage: str
    verdict: VantageVerdict
    services: list[ServiceResult]
    controls: list[TargetResult]
    started_at: float  # unix time
    duration_seconds: float
    healthy_resolvers: list[str] = field(default_factory=list)
    reason: str = ""  # `reasons` rendered in English
    reasons: tuple[Reason, ...] = ()
    helpers: list[HelperLine] = field(default_factory=list)  # the line to each helper abroad this round
    probes: list[ProbeRecord] = field(default_factory=list)  # every check's probes to each destination, in order
    allowlist: list[AllowlistFamily] = field(default_factory=list)  # under `allowlist`: its key, per address family
    ipv6: bool = False  # a control site was reached over IPv6: each target's families were judged apart

    @property
    def online(self) -> bool:
        """Services were judged (the vantage is not offline; under `allowlist` they still are)."""
        return self.verdict != VantageVerdict.VANTAGE_OFFLINE

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run() formats the main task's repr, result included, when it
        # puts SIGINT's handler back; the full dataclass repr of a large round is costly to make,
        # for a string nobody reads.
        targets = sum(len(s.targets) for s in self.services)
        return f"VantageResult({self.vantage!r}, {self.verdict}, {len(self.services)} services, {targets} targets, {len(self.controls)} controls)"

    def as_json(self, *, lazy: bool = False) -> dict[str, Any]:
        """`lazy`: services, controls and the probe log stay records (see `ServiceResult.as_json`)."""
        data: dict[str, Any] = {
            "vantage": self.vantage,
            "verdict": str(self.verdict),
            "services": self.services if lazy else [s.as_json() for s in self.services],
            "controls": self.controls if lazy else [c.as_json() for c in self.controls],
            "healthy_resolvers": self.healthy_resolvers,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.reason:
            data["reason"] = self.reason
            data["reasons"] = reasons_json(self.reasons)
        if self.helpers:
            data["helpers"] = to_json(self.helpers)
        if self.probes:
            data["probes"] = self.probes if lazy else to_json(self.probes)
        if self.allowlist:
            data["allowlist"] = [a.as_json() for a in self.allowlist]
        if self.ipv6:
            data["ipv6"] = True
        return data


# --- protocol records: what the protocol checks observe (mtproto, whatsapp_chat, quic, stun, --------
# --- throughput), one record per operation, produced where it happens ------------------------------
# JSON keys are the ones these checks always wrote (consumers and the evidence archive rely on them).


@lean_dataclass(slots=True)
class MTProtoProbe:
    """One exchange on a fresh connection to one data-centre endpoint: `req_pq_multi` in one
    framing (`abridged`, `intermediate`, `obfuscated2`), or OONI's plain-HTTP `POST /` (`http`)."""

    address: str
    port: int
    probe: str
    connected: bool = False
    failure: str | None = None
    detail: str | None = _opt()
    status_code: int | None = _opt()  # http: the DC's status line
    server_message_id_odd: bool | None = _opt()  # resPQ facts
    pq_bytes: int | None = _opt()
    key_fingerprints: list[str] | None = _people()
    duration_seconds: float = 0.0
    # After a failure on a connected socket (TCP_INFO): bytes the server sent (its answer began)
    # and our segments it never acknowledged (the path drops them).
    received_bytes: int | None = _opt()
    unacked_segments: int | None = _opt()
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class MTProtoEvidence:
    """What the MTProto check observed: each probe, and which probe kinds worked somewhere."""

    probes: list[MTProtoProbe] = field(default_factory=list)
    works: dict[str, bool] = field(default_factory=dict)  # per probe kind: passed on some endpoint


@lean_dataclass(slots=True)
class ChatExchange:
    """whatsapp_chat on one host's address:port: connect, our first bytes, the server's, the hold.
    `stage` is how far it got (`connect`, `first_bytes`, `hold`, `held` = all the way)."""

    address: str
    port: int
    failure: str | None = None
    stage: str = "connect"
    reply_bytes: int = 0
    unacked_segments: int | None = _opt()  # our bytes never acknowledged: the path drops them
    detail: str | None = _opt()
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class ChatHost:
    """One chat host: its DNS and TCP steps (the `dns` and `tcp` checks, run by the check on
    this host), then the exchanges on the ports that connected.

    The last four fields are the judge's reading of this host (probe.judge.whatsapp_chat), for
    people reading the evidence: what its failure argues as a verdict of its own (`ok`, a
    technique, `down`, `error`), the failure, the stage it failed at, and the Finding."""

    host: str
    addresses: list[str] = field(default_factory=list)
    addresses_from: str = ""
    dns: DNSEvidence | None = _opt()  # when the check resolved the host itself
    connects: list[TCPConnect] | None = _opt()
    control_connects: list[TCPConnect] | None = _opt()
    dns_failure: str | None = _opt()
    exchanges: list[ChatExchange] = field(default_factory=list)
    verdict: str = _judged("ok")
    failure: str | None = _judged()
    stage: str | None = _judged(omit_none=True)
    finding: Finding | None = _judged(omit_none=True)


@lean_dataclass(slots=True)
class ChatEvidence:
    """What the WhatsApp chat check observed: each host's steps, and how many hosts worked."""

    hosts: list[ChatHost] = field(default_factory=list)
    working_hosts: int = _judged(0)  # hosts whose every step passed (the judge's count)
    blocked_hosts: list[str] = field(default_factory=list, metadata={"judged": True})  # hosts whose failure names a technique


@lean_dataclass(slots=True)
class QUICAttempt:
    """One HTTP/3 GET on a fresh QUIC connection (handshake, then one response)."""

    address: str
    port: int
    sni: str
    failure: str | None = None
    detail: str | None = _opt()
    handshake_seconds: float | None = _opt()
    status_code: int | None = _opt()
    body_bytes: int | None = _opt()
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class QUICEvidence:
    """The attempt with the real name (its fields at the top level, as always), TCP+TLS's
    outcome, and on a failure the decoy-SNI attempt to the same address: `keyed_on` is `name`
    when the decoy completes its handshake, `quic` when it fails too."""

    attempt: QUICAttempt | None = None
    tls_ok: bool | None = None
    decoy: QUICAttempt | None = None
    keyed_on: str | None = _judged()
    error: str | None = None  # the check could not run (a missing dependency)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.attempt is not None:
            data.update({k: v for k, v in to_json(self.attempt).items() if k not in ("failure", "duration_seconds")})
            data["tls_ok"] = self.tls_ok
        if self.decoy is not None:
            data["decoy"] = to_json(self.decoy)
            data["keyed_on"] = self.keyed_on
        if self.error is not None:
            data["error"] = self.error
        return data


@lean_dataclass(slots=True)
class STUNBinding:
    """One RFC 5389 Binding transaction (with its retransmissions) to one address:port."""

    address: str
    port: int
    failure: str | None = None
    requests: int = 0
    response: str | None = _opt()  # success | error: either proves the datagrams got through
    mapped_family: str | None = _opt()  # the vantage's mapped address is never kept, its family is
    error_code: int | None = _opt()
    rtt_seconds: float | None = _opt()
    stray_datagrams: int | None = _opt()
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class STUNEvidence:
    """What the STUN check observed: each binding, and whether the controls answered."""

    bindings: list[STUNBinding] = field(default_factory=list)
    controls: dict[str, bool] | None = _opt()  # control STUN targets this round: answered or not
    control_answered: bool | None = _judged(omit_none=True)


@lean_dataclass(slots=True)
class DownloadRedirect(Redirect):
    """A redirect the download followed, with the address it went to next (resolved as the apps do)."""

    address: str | None = _opt()


@lean_dataclass(slots=True)
class PacketCounts:
    """What the kernel counted on one TCP connection when its transfer ended or stalled (Linux
    TCP_INFO, linux/tcp.h): segments each way (`segs_out`/`segs_in`, handshake and ACKs
    included; `data_segs_*` those carrying data, where the kernel has them), our bytes the peer
    acknowledged and the bytes it sent us in order. A censor freezing "after ~25 packets both
    ways" shows here as a count, whichever side sent them (probe.checks.packets)."""

    segs_out: int
    segs_in: int
    bytes_acked: int
    bytes_received: int
    data_segs_out: int | None = _opt()
    data_segs_in: int | None = _opt()


@lean_dataclass(slots=True)
class Download:
    """One timed download on a fresh connection. `stalled_at_bytes` is where the transfer stopped
    making progress (the mobile networks' 16–20 KB freeze shows here); `measured` says whether
    it was a measurement at all (an object that is not there is not)."""

    address: str
    port: int
    failure: str | None = None
    status_code: int | None = None
    bytes: int = 0  # body bytes
    received_bytes: int = 0  # headers included
    sni: str | None = _opt()
    setup_seconds: float | None = _opt()
    location: str | None = _opt()
    time_capped: bool | None = _opt()
    complete: bool | None = _opt()
    stalled_at_bytes: int | None = _opt()
    interrupted_at_bytes: int | None = _opt()
    duration_seconds: float = 0.0
    measured: bool = False
    reason: str | None = _opt()
    bytes_per_second: float | None = _opt()
    packets: PacketCounts | None = _opt()  # the connection's counts where it ended or stalled
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class Upload:
    """One upload of `size` bytes (an HTTP PUT, or the helper's signed upload) on a fresh
    connection. `sent_bytes`: written by us; `acked_bytes`: acknowledged by the peer (TCP_INFO),
    which is what a freeze stops; `stalled_at_bytes`: acknowledged bytes when nothing more was
    acknowledged for the stall bound. An answer from the server (any status, even an early
    close after it) means the path carried both ways: `answered`."""

    address: str
    port: int
    size: int
    failure: str | None = None
    sni: str | None = _opt()
    sent_bytes: int = 0
    acked_bytes: int = 0
    status_code: int | None = _opt()
    answered: bool = False
    stalled_at_bytes: int | None = _opt()
    peer_answering: bool | None = _opt()  # in a stall, the peer still sent segments: its window shut, not the path
    packets: PacketCounts | None = _opt()
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class ThroughputEvidence:
    """The download (its fields at the top level, as always; its failure and duration under
    other names), the control comparison and, when throttled, the decoy-SNI download."""

    url: str
    size: int
    redirects: list[DownloadRedirect] = field(default_factory=list)
    download: Download | None = None
    slow: bool | None = None
    controls: dict[str, float | None] | None = None
    control_fast: bool | None = None
    fast_controls: list[str] | None = None  # the controls whose transfer was fast (probe.judge.throughput)
    decoy: Download | None = None
    sni_keyed: bool | None = None  # the first decoy was fast (the judge's key needs the second too: `keyed_on`)
    # Issue 20 item 4: no keyed claim from one pair. After a slow first download and its decoy,
    # the real download again, then the decoy again (real, decoy, real, decoy): only when they
    # agree does the judge name a key.
    again: Download | None = _opt()
    decoy_again: Download | None = _opt()
    # The upload (params `upload_path`), to the same address with the same name; once more when
    # it froze (the same agreement rule).
    upload: Upload | None = _opt()
    upload_again: Upload | None = _opt()
    # The yardsticks (controls) whose own transfer stalled this round, and in which direction
    # ("download", "upload", "both"): a freeze the line puts on domestic hosting too.
    control_freezes: dict[str, str] | None = _opt()
    floor_bytes_per_second: float | None = _opt()  # the params' floor, for the judge to read the repeats by
    skipped: list[str] | None = _opt()  # repeats not started: they no longer fit in the check's bound
    keyed_on: str | None = _judged(omit_none=True)  # "name" | "direction": what the judge read the freeze as
    direction: str | None = _judged(omit_none=True)  # "download" | "upload" | "both": which transfer froze
    line_freeze: list[str] | None = _judged(omit_none=True)  # yardsticks frozen the same way: the line's freeze
    note: str | None = _judged(omit_none=True)  # why a freeze did not fail the check (the line's)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "size": self.size, "redirects": to_json(self.redirects)}
        if self.download is not None:
            data.update({k: v for k, v in to_json(self.download).items() if k not in ("failure", "duration_seconds")})
            data["transfer_failure"] = self.download.failure
            data["transfer_seconds"] = round(self.download.duration_seconds, 4)
        for name in ("slow", "controls", "control_fast", "fast_controls"):
            if getattr(self, name) is not None:
                data[name] = to_json(getattr(self, name))
        if self.decoy is not None:
            data["decoy"] = to_json(self.decoy)
            data["sni_keyed"] = self.sni_keyed
        for name in ("again", "decoy_again", "upload", "upload_again", "control_freezes", "skipped", "keyed_on", "direction", "line_freeze", "note"):
            if getattr(self, name) is not None:
                data[name] = to_json(getattr(self, name))
        return data


@lean_dataclass(slots=True)
class ClientHelloFingerprint:
    """The ClientHello a handshake sent, as JA3 (string and MD5) and JA4 (FoxIO's, TCP)."""

    client: str  # "python" (Python's ssl over OpenSSL) or "browser:<curl-cffi impersonation target>"
    ja3: str
    ja3_md5: str
    ja4: str
    pq: bool = False  # an X25519MLKEM768 key share was sent


@lean_dataclass(slots=True)
class FingerprintedHandshake:
    """One TLS handshake with a known ClientHello fingerprint (probe.fingerprint)."""

    handshake: TLSHandshake
    fingerprint: ClientHelloFingerprint | None = field(default=None, metadata={"for_people": True})  # None: nothing was sent (no TCP connection)


# --- the line to a helper abroad (probe/helper/line.py): it crosses the censor the vantage measures -


@lean_dataclass(slots=True)
class HelperExchange:
    """One signed request to a helper abroad and its answer, on a connection of its own, bounded
    by a total deadline and a size cap on the answer. Bytes are those of HTTP (request and answer,
    heads included), as far as they went: what a freeze "after N KB" counts."""

    helper: str
    path: str  # the API path: /v1/measure, /v1/stream, ...
    sent_bytes: int = 0
    received_bytes: int = 0
    duration_seconds: float = 0.0
    first_byte_seconds: float | None = _opt()  # when the answer began
    status: int | None = _opt()  # the answer's HTTP status, when its head came
    failure: str | None = None  # probe.failures: OONI's for the socket, helper_* for the rest
    detail: str | None = _opt()  # a refusal's reason as the helper gave it (e.g. rate_limited)

    def failure_reason(self) -> Reason:
        """How the exchange failed, for people: its failure string with its numbers (the bytes
        both ways together, as a freeze counts them)."""
        failure = self.failure or ""
        code = failure.split(":", 1)[0]
        params: dict[str, ReasonParam] = {
            "kb": kilobytes(self.sent_bytes + self.received_bytes),
            "seconds": f"{self.duration_seconds:.0f}",
            "http": f"{self.status or ''} {self.detail or ''}".strip(),
            "failure": failure,
        }
        return Reason(f"line.{code}" if f"line.{code}" in ENGLISH else "line.other", params)


def kilobytes(count: int) -> str:
    """Bytes as KB for people: one decimal under 10 KB (a freeze "after 0.4 KB" is not "after 0")."""
    return f"{count / 1024:.1f}" if count < 10 * 1024 else f"{count / 1024:.0f}"


@lean_dataclass(slots=True)
class HelperLine:
    """The line to one helper in one round, from every exchange on it: `up` when each of them
    completed within its deadline and size (msgreach_helper_up); the last failed one, kept whole,
    says how the line failed (/status.json, the status page)."""

    helper: str
    up: bool
    exchanges: int = 0
    failed: int = 0
    largest_sent_bytes: int = 0  # of one exchange: what the freeze budget is about
    largest_received_bytes: int = 0
    last_failure: HelperExchange | None = _opt()
    reason: str = ""  # the last failure in words (English; the page says it in its own language)


# --- the helper checks: measured through a helper abroad (probe/helper/), and its view of a target -


@lean_dataclass(slots=True)
class NoHelper:
    """A helper check in a round without the helper it asks for (the config's `helpers:`):
    nothing was measured."""

    helper: str | None = None  # the name the check asked for; None: any helper


@lean_dataclass(slots=True)
class SecondBucket:
    """One second of a stream (by sending time): packets sent in it, and how many came back."""

    second: int
    sent: int
    echoed: int


@lean_dataclass(slots=True)
class EchoedStream:
    """One UDP stream to the helper, each datagram echoed back once (udp_stream): `call` (a
    STUN-shaped opening, then RTP) or `control` (neutral bytes of the same sizes and rate).
    `cut_after_seconds`: when a loss run began that lasted to the end, a second or longer."""

    kind: str
    sent: int = 0
    echoed: int = 0
    loss_ratio: float = 1.0
    opening_answered: bool = False
    cut_after_seconds: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    failure: str | None = None  # the stream could not be sent at all (no socket)
    buckets: list[SecondBucket] = field(default_factory=list)
    duration_seconds: float = 0.0  # sending and the wait for the last echoes
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class UDPStreamEvidence:
    """The call stream and its control, sent side by side; `loss_floor` is the loss the target's
    settings call throttling (the judge reads it with the streams)."""

    helper: str
    packets_per_second: int
    packet_size: int
    stream_seconds: float  # the stream's length (not `duration_seconds`: that is the check's own, in its JSON)
    call: EchoedStream
    control: EchoedStream
    loss_floor: float


@lean_dataclass(slots=True)
class SignatureProbe:
    """The first packets of a circumvention protocol's handshake (`signature`), or printable
    neutral bytes of the same size (`neutral`), sent to the helper's probe port; the helper
    reports how many bytes of it arrived intact. `copies`: datagrams sent (UDP), one for TCP."""

    kind: str
    size: int
    arrived_bytes: int = 0
    failure: str | None = None  # what the sending side met (a refused connect, a reset)
    copies: int = 1
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class AllowlistEvidence:
    """A probe of an allowlist's key (probe.checks.allowlist): which pairing of name and address
    it tests (`probe`), the name sent (`sni`, None: none), and its handshakes, alternated between
    the address families (`TLSHandshake.address` says which)."""

    probe: str
    sni: str | None
    handshakes: list[TLSHandshake] = field(default_factory=list)


@lean_dataclass(frozen=True, slots=True)
class AllowlistFamily:
    """What an allowlist is keyed on, on one address family (the judge's reading of the
    `allowlist_probe` controls): `keyed_on` `name`, `address`, `name_and_address`, `open` (every
    probe passed: no allowlist on this family) or None (the probes did not agree, or were not
    measured); each probe's outcome: `passed`, `stopped`, `mixed` (its tries disagreed) or
    `unmeasured`."""

    family: str  # "ipv4" or "ipv6"
    keyed_on: str | None
    probes: tuple[tuple[str, str], ...] = ()  # (probe, outcome)

    def as_json(self) -> dict[str, object]:
        return {"family": self.family, "keyed_on": self.keyed_on, "probes": dict(self.probes)}


@lean_dataclass(slots=True)
class CircumventionEvidence:
    """What a circumvention probe through a helper observed: the signature, then the neutral bytes."""

    helper: str
    protocol: str
    transport: str  # "udp" or "tcp"
    probes: list[SignatureProbe] = field(default_factory=list)  # the signature, then the neutral bytes


@lean_dataclass(slots=True)
class BulkTransfer:
    """One bulk transfer with the helper on a fresh connection: `plain` TCP, or TLS with the
    decoy SNI (`tls_decoy`) or the target's name (`tls_name`); a download, or an upload (kinds
    ending `_upload`: we send, the helper counts and answers). `stalled_at_bytes`: where no byte
    came (a download) or nothing more was acknowledged (an upload) for the stall bound (a
    freeze); `packets`: the connection's counts each way when it ended or froze."""

    kind: str
    sni: str | None = None  # None: plain TCP
    received_bytes: int = 0
    stalled_at_bytes: int | None = None
    failure: str | None = None
    sent_bytes: int | None = _opt()  # an upload's body, written
    acked_bytes: int | None = _opt()  # of the connection, acknowledged by the helper (TCP_INFO)
    answered_bytes: int | None = _opt()  # an upload's count as the helper answered it
    packets: PacketCounts | None = _opt()
    duration_seconds: float = 0.0
    failed_operation: str | None = _operation()
    t0: float | None = _operation()
    t: float | None = _operation()
    transaction_id: int | None = _operation()


@lean_dataclass(slots=True)
class HelperTransferEvidence:
    """What the helper's bulk transfers observed: each transfer, and what the judge read them by."""

    helper: str
    bytes: int  # the size each transfer asks for
    keyed_on: str | None = _judged()  # "name" | "address" | "direction" | "none_here": what the judge read the freeze as
    transfers: list[BulkTransfer] = field(default_factory=list)  # plain, tls_decoy, tls_name, then the same as uploads
    upload_bytes: int | None = _opt()  # the size each upload sends (None: no uploads)
    direction: str | None = _judged(omit_none=True)  # "download" | "upload" | "both": which transfers froze


@lean_dataclass(slots=True)
class HelperView:
    """What a control helper abroad said of the same target in the same round, as it said it:
    its verdict, reason and first failing check with that check's failure, how old its
    measurement was, and what it said of its own vantage (`helper_vantage`). When it said
    nothing of the target: why (`error`, and `line`, the exchange that failed, when the line to
    it kept it from answering). The judge compares it (probe.judge.controls)."""

    helper: str
    verdict: str | None = None
    reason: str = ""
    failed_check: str | None = _opt()
    failure: str | None = _opt()  # the failing check's
    age_seconds: float | None = None
    helper_vantage: str | None = _opt()
    error: str | None = _opt()
    line: HelperExchange | None = _opt()
