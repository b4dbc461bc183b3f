"""The config's typed models: what each key may hold, checked at load.

Everything `run` or `once` would trip over is refused here: durations are finite and capped,
counts bounded, booleans are not numbers, host names and addresses are valid, and the files a
config names (CA bundles, the listener's certificate and key, secrets) are loaded the way they
will be used. Check params are validated against `probe.params` (not the checks themselves, so
this module never imports the network stack) and stored typed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import Counter
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict
from urllib.parse import urlsplit

from probe.addresses import (
    endpoint,
    is_host,
    is_host_name,
    is_ip_literal,
    split_host_port,
)
from probe.config.files import check_ca_bundle, check_cert_chain, not_a_regular_file, read_helper_secret, read_secret
from probe.lean import lean_dataclass
from probe.params import (
    CHECK_PARAMS,
    AllowlistParams,
    CircumventionParams,
    DNSParams,
    HelperTransferParams,
    HTTPParams,
    MTProtoParams,
    QUICParams,
    STUNParams,
    TCPParams,
    ThroughputParams,
    TLSParams,
    UDPStreamParams,
    WhatsAppChatParams,
)
from probe.validation import AfterValidator, BaseModel, BeforeValidator, Field, field_validator, model_validator

# --- caps -----------------------------------------------------------------------------------------

MAX_CHECK_SECONDS = 600.0  # one check's timeout
MAX_INTERVAL_SECONDS = 86_400.0  # one round a day at the least
MAX_NAME = 64


def _name(value: str) -> str:
    """A label on every series and line: not empty, no surrounding spaces, no control characters."""
    if not value or value != value.strip():
        raise ValueError("must be non-empty, without leading or trailing spaces")
    if len(value) > MAX_NAME:
        raise ValueError(f"longer than {MAX_NAME} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not hold control characters")
    return value


def _host(value: str) -> str:
    if not is_host(value):
        raise ValueError(f"{value!r} is neither an IP address nor a valid host name (no spaces, labels of letters, digits, '-')")
    return value


def _host_name(value: str) -> str:
    if not is_host_name(value) or is_ip_literal(value):  # the cheap test first (probe.addresses.is_host)
        raise ValueError(f"{value!r} is not a valid host name")
    return value


def _ip(value: str) -> str:
    if not is_ip_literal(value):
        raise ValueError(f"{value!r} is not an IP address")
    return value


def _pem_bundle(value: Path | None) -> Path | None:
    return None if value is None else check_ca_bundle(value)


Name = Annotated[str, AfterValidator(_name)]
Title = Annotated[str, AfterValidator(lambda value: _name(value) if value else value)]
Host = Annotated[str, AfterValidator(_host)]
HostName = Annotated[str, AfterValidator(_host_name)]
IPAddress = Annotated[str, AfterValidator(_ip)]
CABundle = Annotated[Path | None, AfterValidator(_pem_bundle)]
Port = Annotated[int, Field(gt=0, lt=65536)]
CheckSeconds = Annotated[float, Field(gt=0, le=MAX_CHECK_SECONDS)]
def _network_text(value: Any) -> Any:
    """A network is written as text (`10.0.0.0/8`): `true` or `5` would be read as 0.0.0.1/32."""
    if not isinstance(value, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise ValueError("a network is written as text, such as 10.0.0.0/8")
    return value


Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network_text)]


def _count(low: int, high: int, default: int) -> Any:
    return Field(default, ge=low, le=high)


def _seconds(default: float | None, low: float, high: float, *, inclusive: bool = False) -> Any:
    bound: dict[str, Any] = {"ge": low} if inclusive else {"gt": low}
    return Field(default, le=high, **bound)


class _Model(BaseModel):
    """Every model: frozen, unknown keys refused, strict types, finite numbers (probe.validation)."""


# --- vantages ---------------------------------------------------------------------------------------


class Resolver(_Model):
    """A resolver of a vantage: `system`, `IP[:port]` (UDP, TCP fallback), `tls://IP[:port]`,
    or `https://…` (DoH). A control resolver is the yardstick the others are compared with."""

    address: str
    control: bool = False
    server_name: HostName | None = None  # DoT: name to validate the certificate against
    bootstrap: IPAddress | None = None  # DoH: address to reach the URL's host without DNS

    @property
    def kind(self) -> Literal["system", "udp", "dot", "doh"]:
        if self.address == "system":
            return "system"
        if self.address.startswith("tls://"):
            return "dot"
        if self.address.startswith("https://"):
            return "doh"
        return "udp"

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        if value == "system":
            return value
        if value.startswith("https://"):
            _http_url(value)
            return value
        host, _ = split_host_port(value.removeprefix("tls://"), 0)
        ipaddress.ip_address(host)  # raises ValueError with a clear message
        return value


class Vantage(_Model):
    """`vantages[]`: where the monitor measures from, its resolvers and source address."""

    name: Name = Field(default_factory=socket.gethostname)
    country: str = Field("", max_length=64)
    asn: str = Field("", max_length=64)
    network: str = Field("", max_length=128)
    resolvers: list[Resolver] = Field(default_factory=lambda: [Resolver(address="system")], min_length=1, max_length=64)
    source_address: str | None = None  # `IP` or `IP:port`
    socks5: str | None = None  # "host:port" of a SOCKS5 proxy every TCP connection and DNS query goes through
    socks5_auth: ProxyAuth | None = None
    ca_bundle: CABundle = None
    ca_bundle_mode: Literal["extend", "replace"] = "extend"
    # A control vantage (e.g. a proxy abroad) tells a global outage from a local block: a target
    # failing there the same way is `down`, not blocked.
    control: bool = False
    # Answers in these networks are not judged bogons (labs, split-horizon corporate DNS).
    bogon_exempt: list[Network] = Field(default_factory=list)

    @field_validator("resolvers", mode="before")
    @classmethod
    def _resolver_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"address": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("source_address")
    @classmethod
    def _valid_source(cls, value: str | None) -> str | None:
        if value is not None:
            host, _ = split_host_port(value, 0)
            if not is_ip_literal(host):
                raise ValueError(f"{value!r}: the source address must be an IP address of this machine (IP or IP:port)")
        return value

    @field_validator("socks5")
    @classmethod
    def _valid_socks5(cls, value: str | None) -> str | None:
        if value is None:
            return value
        rest = value.removeprefix("socks5://")
        if "://" in rest:
            raise ValueError(f"{value!r}: only socks5:// proxies are supported")
        if "@" in rest:
            raise ValueError(f"{value!r}: proxy credentials are not supported in the address (secrets never go in the config)")
        endpoint(rest)  # host:port, the port required
        return value

    @model_validator(mode="after")
    def _dns_through_the_proxy(self) -> Vantage:
        """Through a SOCKS5 proxy every DNS query goes through the proxy too, or the vantage would
        measure two networks at once: the operating system's resolver cannot, nor can a DoH URL
        whose host needs it."""
        if self.socks5 is None:
            if self.socks5_auth is not None:
                raise ValueError("socks5_auth needs socks5")
            return self
        for resolver in self.resolvers:
            if resolver.kind == "system":
                raise ValueError(
                    "resolver `system` cannot go through the socks5 proxy (the operating system asks its own network); "
                    "list resolvers by address: IP (asked over TCP through the proxy), tls://IP, or https://… with a bootstrap address"
                )
            if resolver.kind == "doh" and resolver.bootstrap is None and not is_ip_literal(urlsplit(resolver.address).hostname or ""):
                raise ValueError(f"resolver {resolver.address}: through the socks5 proxy a DoH URL needs `bootstrap` (its host cannot be resolved by the system)")
        return self


class ProxyAuth(_Model):
    """SOCKS5 username/password authentication (RFC 1929). Both come from a secret, never from
    the config: a file or an environment variable holding one line `username:password`."""

    credentials_file: Path | None = None
    credentials_env: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_readable_source(self) -> ProxyAuth:
        if (self.credentials_file is None) == (self.credentials_env is None):
            raise ValueError("set exactly one of credentials_file and credentials_env")
        self.credentials()  # refused at load, not at the first round
        return self

    def credentials(self) -> tuple[str, str]:
        """(username, password), read now (a rotated secret is picked up at the next round)."""
        if self.credentials_file is not None:
            try:
                text = read_secret(self.credentials_file)
            except ValueError as exc:
                raise ValueError(f"cannot read credentials_file: {exc}") from None
            where = f"credentials_file {self.credentials_file}"
        else:
            text = os.environ.get(self.credentials_env or "", "").strip()
            where = f"environment variable {self.credentials_env}"
        username, _, password = text.partition(":")
        if not username or not password:
            raise ValueError(f"{where} must hold `username:password`, both non-empty")
        for part in (username, password):
            if not part.isascii() or len(part) > 255:
                raise ValueError(f"{where}: SOCKS5 allows ASCII user names and passwords of up to 255 bytes")
        return username, password


# --- the listener -------------------------------------------------------------------------------------


class TLSListener(_Model):
    """`listen.tls`: the certificate and key the listener serves."""

    cert_file: Path
    key_file: Path

    @model_validator(mode="after")
    def _loads(self) -> TLSListener:
        check_cert_chain(self.cert_file, self.key_file)
        return self


class BasicAuth(_Model):
    """Secrets come from files or the environment, never the config; an empty one is refused
    (it would let anyone in: `curl -u user:` would pass)."""

    username: Name
    password_file: Path | None = None
    password_env: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_nonempty_source(self) -> BasicAuth:
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("set exactly one of password_file and password_env")
        if self.password_file is not None:
            read_secret(self.password_file)
        elif not os.environ.get(self.password_env or "", "").strip():
            raise ValueError(f"the environment variable {self.password_env} is unset or empty: the listener would accept an empty password")
        return self

    def password(self) -> str:
        if self.password_file is not None:
            return read_secret(self.password_file)
        return os.environ.get(self.password_env or "", "")


class Listen(_Model):
    """`listen`: where /metrics, /healthz and the status page are served, and how they are protected."""

    address: str = "127.0.0.1:9910"  # localhost unless the volunteer asks otherwise
    tls: TLSListener | None = None
    basic_auth: BasicAuth | None = None

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        endpoint(value, default_port=9910)
        return value


# --- the schedule -------------------------------------------------------------------------------------


class Timeouts(_Model):
    """Seconds each check may take; a check over its timeout fails as `generic_timeout_error`."""

    dns: CheckSeconds = 5.0
    tcp: CheckSeconds = 5.0
    tls: CheckSeconds = 8.0
    http: CheckSeconds = 10.0
    default: CheckSeconds = 15.0  # checks without their own entry (throughput, quic, …)
    extra: dict[str, CheckSeconds] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _known_checks(cls, extra: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(extra) - set(CHECK_PARAMS))
        if unknown:
            raise ValueError(f"timeouts for unknown check(s) {', '.join(map(repr, unknown))}; known: {', '.join(CHECK_PARAMS)}")
        return extra

    def for_check(self, check: str) -> float:
        if check in self.extra:
            return self.extra[check]
        if check in ("dns", "tcp", "tls", "http"):
            return float(getattr(self, check))
        return self.default


class Schedule(_Model):
    """`schedule`: how often rounds run, their deadline, concurrency and retries."""

    interval_seconds: float = _seconds(60.0, 1, MAX_INTERVAL_SECONDS, inclusive=True)
    jitter_seconds: float = _seconds(5.0, 0, 3600, inclusive=True)
    round_deadline_seconds: float | None = _seconds(None, 0, MAX_INTERVAL_SECONDS)  # default: 90% of the interval
    concurrency: int = _count(1, 1024, 16)
    retries: int = _count(0, 10, 1)  # a non-ok verdict is confirmed this many times first
    max_addresses: int = _count(1, 64, 4)  # per target and address family
    timeouts: Timeouts = Field(default_factory=Timeouts)
    # A service whose verdict turns into a block (from ok, from any other non-block verdict, or at
    # the first round after a start) is measured once more this long after the round, instead of
    # waiting a whole interval for the next one: the alert rules want two consecutive blocked
    # rounds. 0 turns it off; it is skipped when the next scheduled round would come first.
    confirm_after_seconds: float = _seconds(20.0, 0, MAX_INTERVAL_SECONDS, inclusive=True)
    # Blocks that linger (probe/triggers.py): after a trigger probe (a circumvention signature)
    # that failed to a destination, a failure to it this soon is measured again once this much time has passed
    # (or judged `error` when the round's deadline comes first), and a destination whose trigger
    # was followed by failures gets no new trigger until it passed. The field's reports: an
    # address blocked for 10 minutes after a signature (net4people/bbs#417). 0 turns it off.
    trigger_cooldown_seconds: float = _seconds(600.0, 0, MAX_INTERVAL_SECONDS, inclusive=True)

    @model_validator(mode="after")
    def _confirm_before_the_next_round(self) -> Schedule:
        # Only a value the config sets is refused: the default (20 s) just does nothing under a
        # shorter interval (the lab's 1-5 s rounds), where the next round confirms anyway.
        if "confirm_after_seconds" in self.model_fields_set and 0 < self.confirm_after_seconds >= self.interval_seconds:
            raise ValueError(
                f"confirm_after_seconds ({self.confirm_after_seconds:g}) must be shorter than interval_seconds "
                f"({self.interval_seconds:g}), or 0 to turn the confirmation round off"
            )
        return self

    @property
    def deadline(self) -> float:
        return self.round_deadline_seconds or max(self.interval_seconds * 0.9, 1.0)

    @property
    def confirm_delay(self) -> float | None:
        """Seconds after a round to confirm a new block, or None when no confirmation applies."""
        if self.confirm_after_seconds <= 0 or self.confirm_after_seconds >= self.interval_seconds:
            return None
        return self.confirm_after_seconds


# --- targets and services ------------------------------------------------------------------------------

CheckName = str


class CheckParamsByName(TypedDict, total=False):
    """A target's `params`: per check, that check's own model (typed after load)."""

    dns: DNSParams
    tcp: TCPParams
    tls: TLSParams
    http: HTTPParams
    mtproto: MTProtoParams
    whatsapp_chat: WhatsAppChatParams
    quic: QUICParams
    stun: STUNParams
    throughput: ThroughputParams
    allowlist: AllowlistParams
    udp_stream: UDPStreamParams  # the helper checks (docs/helper.md)
    circumvention: CircumventionParams
    helper_transfer: HelperTransferParams


assert set(CheckParamsByName.__annotations__) == set(CHECK_PARAMS), "CheckParamsByName must name every check of probe.params"


class Target(_Model):
    """One thing to reach: a host (or pinned addresses) and the checks to run on it, in order."""

    name: Name
    host: Host
    ports: list[Port] = Field(default_factory=lambda: [443], max_length=64)
    addresses: list[IPAddress] = Field(default_factory=list, max_length=64)  # pinned: DNS is skipped for connects
    checks: list[CheckName] = Field(default_factory=lambda: ["dns", "tcp", "tls", "http"], max_length=len(CHECK_PARAMS))
    # Per-check settings, validated by probe.params and stored as those models.
    params: CheckParamsByName = Field(default_factory=dict)
    ca_bundle: CABundle = None
    # What a control target stands for: an international or a domestic site (the vantage's
    # reach), or a yardstick for the protocol checks (a download, a STUN server).
    # `allowlist_probe`: a probe of what an allowlist is keyed on (names or addresses), measured
    # only under an allowlist regime (probe.checks.allowlist); it never makes a vantage online.
    control_class: Literal["international", "domestic", "yardstick", "allowlist_probe"] = "international"
    # Whose ClientHello the service's real client sends (probe.fingerprint.CLIENTS maps each to a
    # hello): the tls check measures with it as well as with Python's, and on a failure tries the
    # other hellos. None: Python's hello only, as before.
    client: Literal["android_app", "ios_app", "browser", "desktop_app"] | None = None

    @field_validator("ports")
    @classmethod
    def _some_ports(cls, ports: list[int]) -> list[int]:
        if not ports:
            raise ValueError("at least one port is needed")
        return ports

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, checks: list[str]) -> list[str]:
        for check in checks:
            if check not in CHECK_PARAMS:
                raise ValueError(f"unknown check {check!r}; known: {', '.join(sorted(CHECK_PARAMS))}")
        return checks

    @field_validator("params", mode="before")
    @classmethod
    def _known_params(cls, params: Any) -> Any:
        if isinstance(params, dict):
            for check in params:
                if check not in CHECK_PARAMS:
                    raise ValueError(f"params for unknown check {check!r}; known: {', '.join(sorted(CHECK_PARAMS))}")
        return params

    @property
    def is_ip(self) -> bool:
        return is_ip_literal(self.host)


class Networks(_Model):
    """Where a service's addresses are expected to be; answers elsewhere are suspect."""

    prefixes: list[Network] = Field(default_factory=list)

    def contains(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in prefix for prefix in self.prefixes)


def _unique_targets(targets: list[Target]) -> list[Target]:
    counts = Counter(t.name for t in targets)  # not list.count per name: quadratic at 1,000 targets
    duplicates = sorted(n for n, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate target names: {', '.join(duplicates)}")
    if not targets:
        raise ValueError("a service needs at least one target")
    return targets


class Service(_Model):
    """A service (`services[]`, or a catalog file): its targets, networks and CA bundle."""

    name: Name
    title: Title = ""  # the name as the service spells it (`WhatsApp`), for people; default: `name`
    description: str = ""
    networks: Networks = Field(default_factory=Networks)
    ca_bundle: CABundle = None
    targets: list[Target]

    @field_validator("targets")
    @classmethod
    def _valid_targets(cls, targets: list[Target]) -> list[Target]:
        return _unique_targets(targets)


class ServiceRef(_Model):
    """A service in the main config: a catalog by name or path, optionally patched, or inline."""

    catalog: str | None = Field(None, min_length=1)
    name: Name | None = None
    title: Title | None = None
    description: str | None = None
    networks: Networks | None = None
    ca_bundle: CABundle = None
    targets: list[Target] | None = None
    # target name (or "*") -> fields to replace, e.g. {"dc1": {"addresses": ["198.18.2.10"]}}
    patch: dict[str, dict[str, Any]] = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _catalog_or_inline(self) -> ServiceRef:
        if self.catalog is None and (self.name is None or self.targets is None):
            raise ValueError("give either `catalog` or both `name` and `targets`")
        return self


class Fingerprints(_Model):
    """Block-page evidence: DNS answers, redirect hosts and body markers known to mean 'blocked'."""

    dns_addresses: list[IPAddress] = Field(default_factory=list)
    redirect_hosts: list[str] = Field(default_factory=list)
    body_markers: list[Annotated[str, Field(min_length=1, max_length=2048)]] = Field(default_factory=list)
    http_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=lambda: [451])

    def merged(self, other: Fingerprints) -> Fingerprints:
        return Fingerprints(
            dns_addresses=[*self.dns_addresses, *other.dns_addresses],
            redirect_hosts=[*self.redirect_hosts, *other.redirect_hosts],
            body_markers=[*self.body_markers, *other.body_markers],
            http_status=sorted({*self.http_status, *other.http_status}),
        )


class Evidence(_Model):
    """`evidence`: the evidence archive, where it is written and how much of it is kept."""

    enabled: bool = True
    path: Path | None = None  # JSON lines archive; None: `evidence.jsonl` in the state directory
    max_bytes: int = _count(1024, 2**40, 64 * 1024 * 1024)
    keep_files: int = _count(1, 1000, 4)

    @field_validator("path")
    @classmethod
    def _regular_file(cls, value: Path | None) -> Path | None:
        # A link would send the archive wherever it points; a FIFO or a device is no archive.
        why = not_a_regular_file(value) if value is not None else None
        if why:
            raise ValueError(why)
        return value


class HelperRef(_Model):
    """A measurement helper msgreach asks (over HTTP(S), authenticated by a shared secret)."""

    name: Name
    url: str
    secret_file: Path
    control: bool = True

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        _http_url(value, schemes=("http", "https"))
        return value

    @field_validator("secret_file")
    @classmethod
    def _secret_readable(cls, value: Path) -> Path:
        read_helper_secret(value)  # as the helper reads it: a secret it would refuse is refused here
        return value


class Upload(_Model):
    """The Prometheus agent on this machine that uploads the vantage's metrics to the centre:
    msgreach reads the agent's own /metrics to say when reports are held (probe/upload.py)."""

    agent_url: str  # e.g. http://127.0.0.1:9090/metrics; never a host across the internet
    interval_seconds: float = _seconds(15.0, 1, 3600, inclusive=True)
    timeout_seconds: float = _seconds(2.0, 0, 60)
    max_bytes: int = _count(1024, 64 * 1024 * 1024, 2 * 1024 * 1024)  # the agent's /metrics is ~100-200 KB
    held_after_seconds: float = _seconds(120.0, 0, 86_400)

    @field_validator("agent_url")
    @classmethod
    def _local_url(cls, value: str) -> str:
        _http_url(value, schemes=("http",))
        host = urlsplit(value).hostname or ""
        if is_ip_literal(host):
            address = ipaddress.ip_address(host)
            if not (address.is_loopback or address.is_private) or address.is_unspecified:
                raise ValueError(f"{value!r}: the agent runs on this machine; use a loopback or private address, not {host}")
        elif host != "localhost" and "." in host:
            # A name with dots would be resolved, possibly to an address across the censor's line.
            raise ValueError(f"{value!r}: the agent runs on this machine; use 127.0.0.1, localhost or a container name without dots")
        return value


def _http_url(value: str, schemes: tuple[str, ...] = ("https",)) -> None:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname or not is_host(parts.hostname):
        raise ValueError(f"{value!r} is not a valid {' or '.join(s + '://' for s in schemes)} URL with a host")
    if parts.username or parts.password:
        raise ValueError(f"{value!r}: no credentials in URLs (secrets never go in the config)")
    if port == 0:
        raise ValueError(f"{value!r}: bad port")


# --- the whole file ----------------------------------------------------------------------------------


class RawConfig(_Model):
    """The main config file as written by a person (catalog references still unresolved)."""

    vantages: list[Vantage] = Field(default_factory=lambda: [Vantage()])
    schedule: Schedule = Field(default_factory=Schedule)
    listen: Listen = Field(default_factory=Listen)
    services: list[ServiceRef] = Field(
        default_factory=lambda: [ServiceRef(catalog=n) for n in ("whatsapp", "telegram", "signal")]
    )
    controls: list[Target] | None = None  # None: the shipped controls catalog
    fingerprints: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=lambda: ["blockpages"])  # catalogs or paths
    extra_fingerprints: Fingerprints = Field(default_factory=Fingerprints)
    decoy_sni: HostName = "example.org"
    evidence: Evidence = Field(default_factory=Evidence)
    helpers: list[HelperRef] = Field(default_factory=list)
    upload: Upload | None = None  # the local Prometheus agent's upload to the centre (off when unset)
    # Verdict history for the status page and the verdict-since metric (probe/history.py), and
    # the evidence archive unless `evidence.path` says otherwise. None: the default state
    # directory (probe.config.state_dir).
    state_dir: Path | None = None

    @field_validator("vantages")
    @classmethod
    def _unique_vantages(cls, vantages: list[Vantage]) -> list[Vantage]:
        names = [v.name for v in vantages]
        if len(set(names)) != len(names):
            raise ValueError("vantage names must be unique")
        if not vantages:
            raise ValueError("at least one vantage is needed")
        return vantages

    @field_validator("controls")
    @classmethod
    def _some_controls(cls, controls: list[Target] | None) -> list[Target] | None:
        if controls is not None and not controls:
            raise ValueError("at least one control target is needed: without one, no block verdict has a yardstick (leave `controls` out for the shipped ones)")
        if controls is not None:
            _unique_targets(controls)
        return controls

    @field_validator("helpers")
    @classmethod
    def _unique_helpers(cls, helpers: list[HelperRef]) -> list[HelperRef]:
        names = [h.name for h in helpers]
        if len(set(names)) != len(names):
            raise ValueError("helper names must be unique")
        return helpers


@lean_dataclass(frozen=True)
class Config:
    """The resolved configuration the rest of the program uses."""

    vantages: list[Vantage]
    schedule: Schedule
    listen: Listen
    services: list[Service]
    controls: list[Target]
    fingerprints: Fingerprints
    decoy_sni: str
    evidence: Evidence
    source: str  # file the config came from, or "<default>"
    helpers: list[HelperRef] = field(default_factory=list)
    state_dir: Path | None = None
    upload: Upload | None = None
