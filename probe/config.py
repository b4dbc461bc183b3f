"""Configuration: YAML files validated by typed models, with errors that name file, line and key.

The data path starts here: a `Config` holds the vantage points, the schedule and the services
(each loaded from a catalog in `configs/services/` and optionally patched), plus the controls
and the block-page fingerprints. Nothing downstream reads YAML.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator, model_validator

# --- where the shipped configs live -------------------------------------------------------------

_PACKAGED = Path(__file__).parent / "_configs"  # inside a wheel (see pyproject force-include)
_SOURCE = Path(__file__).parent.parent / "configs"  # in a source checkout


def configs_dir() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE


# --- models ---------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resolver(_Model):
    """A resolver of a vantage: `system`, `IP[:port]` (UDP, TCP fallback), `tls://IP[:port]`,
    or `https://…` (DoH). A control resolver is the yardstick the others are compared with."""

    address: str
    control: bool = False
    server_name: str | None = None  # DoT: name to validate the certificate against
    bootstrap: str | None = None  # DoH: address to reach the URL's host without DNS

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
        if value == "system" or value.startswith("https://"):
            return value
        host, _ = split_host_port(value.removeprefix("tls://"), 0)
        ipaddress.ip_address(host)  # raises ValueError with a clear message
        return value


class TLSListener(_Model):
    cert_file: Path
    key_file: Path


class BasicAuth(_Model):
    username: str
    password_file: Path | None = None  # secrets come from files or the environment, never the config
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "BasicAuth":
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("set exactly one of password_file and password_env")
        return self

    def password(self) -> str:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return os.environ.get(self.password_env or "", "")


class Listen(_Model):
    address: str = "127.0.0.1:9910"  # localhost unless the volunteer asks otherwise
    tls: TLSListener | None = None
    basic_auth: BasicAuth | None = None


class Vantage(_Model):
    name: str = Field(default_factory=socket.gethostname)
    country: str = ""
    asn: str = ""
    network: str = ""
    resolvers: list[Resolver] = Field(default_factory=lambda: [Resolver(address="system")])
    source_address: str | None = None
    socks5: str | None = None  # "host:port" of a SOCKS5 proxy every TCP connection goes through
    ca_bundle: Path | None = None
    ca_bundle_mode: Literal["extend", "replace"] = "extend"
    # A control vantage (e.g. a proxy abroad) tells a global outage from a local block: a target
    # failing there the same way is `down`, not blocked.
    control: bool = False
    # Answers in these networks are not judged bogons (labs, split-horizon corporate DNS).
    bogon_exempt: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)

    @field_validator("resolvers", mode="before")
    @classmethod
    def _resolver_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"address": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("socks5", "source_address")
    @classmethod
    def _valid_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value.removeprefix("socks5://"), 1080)
        return value


class Timeouts(_Model):
    """Seconds each check may take; a check over its timeout fails as `generic_timeout_error`."""

    dns: float = Field(5.0, gt=0)
    tcp: float = Field(5.0, gt=0)
    tls: float = Field(8.0, gt=0)
    http: float = Field(10.0, gt=0)
    default: float = Field(15.0, gt=0)  # checks without their own entry (throughput, quic, …)
    extra: dict[str, PositiveFloat] = Field(default_factory=dict)

    def for_check(self, check: str) -> float:
        if check in self.extra:
            return self.extra[check]
        if check in ("dns", "tcp", "tls", "http"):
            return getattr(self, check)
        return self.default


class Schedule(_Model):
    interval_seconds: float = Field(60.0, ge=1)
    jitter_seconds: float = Field(5.0, ge=0)
    round_deadline_seconds: float | None = Field(None, gt=0)  # default: 90% of the interval
    concurrency: int = Field(16, ge=1, le=1024)
    retries: int = Field(1, ge=0, le=10)  # a non-ok verdict is confirmed this many times first
    max_addresses: int = Field(4, ge=1, le=64)  # per target and address family
    timeouts: Timeouts = Field(default_factory=Timeouts)

    @property
    def deadline(self) -> float:
        return self.round_deadline_seconds or max(self.interval_seconds * 0.9, 1.0)


CheckName = str


class Target(_Model):
    """One thing to reach: a host (or pinned addresses) and the checks to run on it, in order."""

    name: str
    host: str
    ports: list[int] = Field(default_factory=lambda: [443])
    addresses: list[str] = Field(default_factory=list)  # pinned: DNS is skipped for connects
    checks: list[CheckName] = Field(default_factory=lambda: ["dns", "tcp", "tls", "http"])
    # Per-check settings, validated by each check's own `Params` model (see probe/checks).
    params: dict[CheckName, dict[str, Any]] = Field(default_factory=dict)
    ca_bundle: Path | None = None

    @field_validator("ports")
    @classmethod
    def _valid_ports(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range 1-65535")
        if not ports:
            raise ValueError("at least one port is needed")
        return ports

    @field_validator("addresses")
    @classmethod
    def _valid_addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            ipaddress.ip_address(address)
        return addresses

    @model_validator(mode="after")
    def _known_checks(self) -> "Target":
        from probe.checks import REGISTRY  # late: checks import config types

        for check in self.checks:
            if check not in REGISTRY:
                raise ValueError(f"unknown check {check!r}; known: {', '.join(sorted(REGISTRY))}")
        for check, params in self.params.items():
            if check not in REGISTRY:
                raise ValueError(f"params for unknown check {check!r}")
            try:
                REGISTRY[check].Params.model_validate(params)
            except ValidationError as exc:  # name the key inside params, not just the target
                raise ValueError("; ".join(
                    f"params.{check}.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
                )) from None
        return self

    @property
    def is_ip(self) -> bool:
        return is_ip_literal(self.host)


class Networks(_Model):
    """Where a service's addresses are expected to be; answers elsewhere are suspect."""

    prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    asns: list[int] = Field(default_factory=list)  # documentation: no ASN database is shipped

    def contains(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in prefix for prefix in self.prefixes)


class Service(_Model):
    name: str
    description: str = ""
    networks: Networks = Field(default_factory=Networks)
    ca_bundle: Path | None = None
    targets: list[Target]

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[Target]) -> list[Target]:
        names = [t.name for t in targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate target names: {', '.join(duplicates)}")
        if not targets:
            raise ValueError("a service needs at least one target")
        return targets


class ServiceRef(_Model):
    """A service in the main config: a catalog by name or path, optionally patched, or inline."""

    catalog: str | None = None
    name: str | None = None
    description: str | None = None
    networks: Networks | None = None
    ca_bundle: Path | None = None
    targets: list[Target] | None = None
    # target name (or "*") -> fields to replace, e.g. {"dc1": {"addresses": ["198.18.2.10"]}}
    patch: dict[str, dict[str, Any]] = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _catalog_or_inline(self) -> "ServiceRef":
        if self.catalog is None and (self.name is None or self.targets is None):
            raise ValueError("give either `catalog` or both `name` and `targets`")
        return self


class Fingerprints(_Model):
    """Block-page evidence: DNS answers, redirect hosts and body markers known to mean 'blocked'."""

    dns_addresses: list[str] = Field(default_factory=list)
    redirect_hosts: list[str] = Field(default_factory=list)
    body_markers: list[str] = Field(default_factory=list)
    http_status: list[int] = Field(default_factory=lambda: [451])

    def merged(self, other: "Fingerprints") -> "Fingerprints":
        return Fingerprints(
            dns_addresses=[*self.dns_addresses, *other.dns_addresses],
            redirect_hosts=[*self.redirect_hosts, *other.redirect_hosts],
            body_markers=[*self.body_markers, *other.body_markers],
            http_status=sorted({*self.http_status, *other.http_status}),
        )


class Evidence(_Model):
    path: Path | None = None  # JSON lines archive; None = off
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    keep_files: int = Field(4, ge=1, le=1000)


class RawConfig(_Model):
    """The main config file as written by a person (catalog references still unresolved)."""

    vantages: list[Vantage] = Field(default_factory=lambda: [Vantage()])
    schedule: Schedule = Field(default_factory=Schedule)
    listen: Listen = Field(default_factory=Listen)
    services: list[ServiceRef] = Field(
        default_factory=lambda: [ServiceRef(catalog=n) for n in ("whatsapp", "telegram", "signal")]
    )
    controls: list[Target] | None = None  # None: the shipped controls catalog
    fingerprints: list[str] = Field(default_factory=lambda: ["blockpages"])  # catalogs or paths
    extra_fingerprints: Fingerprints = Field(default_factory=Fingerprints)
    decoy_sni: str = "example.org"
    evidence: Evidence = Field(default_factory=Evidence)
    # Verdict history for the status page and the verdict-since metric (probe/history.py).
    # None: beside the evidence archive when there is one, else in memory only.
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


@dataclass(frozen=True)
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
    state_dir: Path | None = None


# --- errors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        message = " ".join(self.message.split())  # one problem, one line
        return f"{where}: {self.key or '<top>'}: {message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --- loading ---------------------------------------------------------------------------------------


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """'1.2.3.4:53' / '[::1]:53' / '::1' / 'host' -> (host, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad port in {value!r}")
        return host, int(port)
    return value, default_port


def _compose(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML keeping the node tree, so validation errors can be given a line number."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or exc
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses: no mark, a position
            line = text.count("\n", 0, exc.position) + 1
            problem = f"{exc.reason} (character {exc.character!r})"
        raise ConfigError([Problem(file, line, "", f"not valid YAML: {problem}")]) from None
    except RecursionError:
        raise ConfigError([Problem(file, None, "", "not valid YAML: nested too deeply")]) from None
    return data, node


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Walk the YAML node tree along a pydantic error location; the deepest line found wins."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    node = value_node
                    line = key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _validation_problems(exc: ValidationError, file: str, node: yaml.Node | None, prefix: tuple = ()) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
        key = ".".join(str(p) for p in (*prefix, *loc))
        message = error["msg"].removeprefix("Value error, ")
        problems.append(Problem(file, _line_of(node, loc), key, message))
    return problems


def _load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), None, "", "not UTF-8 text")]) from None
    return _compose(text, str(path))


def _catalog_path(ref: str, kind: str, base: Path) -> Path:
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        path = Path(ref)
        return path if path.is_absolute() else base / path
    return configs_dir() / kind / f"{ref}.yaml"


def _resolve_paths(data: Any, base: Path, keys: tuple[str, ...] = ("ca_bundle", "cert_file", "key_file", "password_file", "path", "state_dir")) -> Any:
    """Relative file paths in a config are relative to the file that names them."""
    if isinstance(data, dict):
        return {
            k: (
                v if k == "params"  # check settings (an HTTP path, say) are not file paths
                else str(base / v) if k in keys and isinstance(v, str) and not os.path.isabs(v)
                else _resolve_paths(v, base, keys)
            )
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_resolve_paths(item, base, keys) for item in data]
    return data


def _load_model(model: type[BaseModel], path: Path, problems: list[Problem], prefix: tuple = ()) -> Any:
    return _load_model_and_node(model, path, problems, prefix)[0]


def _load_model_and_node(model: type[BaseModel], path: Path, problems: list[Problem], prefix: tuple = ()) -> tuple[Any, yaml.Node | None]:
    """The validated model (None if invalid) and the YAML node tree, for later line numbers."""
    try:
        data, node = _load_yaml(path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None, None
    try:
        return model.model_validate(_resolve_paths(data if data is not None else {}, path.parent)), node
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, str(path), node, prefix))
        return None, node
    except RecursionError:  # e.g. `a: &x [*x]`, an alias that contains itself
        problems.append(Problem(str(path), None, "", "nested too deeply, or an alias that contains itself"))
        return None, node


def _loc(key: str) -> tuple[Any, ...]:
    """'targets.5.ports' -> ('targets', 5, 'ports'), a location `_line_of` can walk."""
    return tuple(int(part) if part.isdigit() else part for part in key.split(".") if part)


def _service_from_ref(ref: ServiceRef, index: int, file: str, base: Path, problems: list[Problem], node: yaml.Node | None = None) -> Service | None:
    key = f"services.{index}"
    if ref.catalog is not None:
        path = _catalog_path(ref.catalog, "services", base)
        if not path.is_file():
            line = _line_of(node, ("services", index, "catalog"))
            problems.append(Problem(file, line, f"{key}.catalog", f"no catalog {ref.catalog!r} ({path})"))
            return None
        service = _load_model(Service, path, problems)
        if service is None:
            return None
        data = service.model_dump(mode="python")
    else:
        data = {"name": ref.name, "targets": [t.model_dump() for t in ref.targets or []]}
    for field in ("name", "description", "networks", "ca_bundle"):
        value = getattr(ref, field)
        if value is not None:
            data[field] = value.model_dump() if isinstance(value, BaseModel) else value
    if ref.targets is not None and ref.catalog is not None:
        data["targets"] = [t.model_dump() for t in ref.targets]
    names = {t["name"] for t in data["targets"]}
    for target_name, fields in ref.patch.items():
        if target_name != "*" and target_name not in names:
            line = _line_of(node, ("services", index, "patch", target_name))
            problems.append(Problem(file, line, f"{key}.patch.{target_name}", f"no target {target_name!r} in service {data['name']!r}"))
            continue
        for target in data["targets"]:
            if target_name in ("*", target["name"]):
                target.update(_resolve_paths(fields, base))
    try:
        return Service.model_validate(data)
    except ValidationError as exc:
        for problem in _validation_problems(exc, file, None):
            loc = _loc(problem.key)
            # A problem in a catalog's target that the config patched: point at the patch.
            if ref.targets is None and len(loc) >= 2 and loc[0] == "targets" and isinstance(loc[1], int) and loc[1] < len(data["targets"]):
                patched = next((n for n in (data["targets"][loc[1]]["name"], "*") if n in ref.patch), None)
                if patched is not None:
                    loc = ("patch", patched, *loc[2:])
            full = ("services", index, *loc)
            found = Problem(file, _line_of(node, full), ".".join(str(part) for part in full), problem.message)
            if found not in problems:  # a "*" patch breaks every target the same way: say it once
                problems.append(found)
        return None


def _resolve(raw: RawConfig, file: str, base: Path, problems: list[Problem], node: yaml.Node | None = None) -> Config | None:
    services = []
    for index, ref in enumerate(raw.services):
        if ref.enabled:
            service = _service_from_ref(ref, index, file, base, problems, node)
            if service is not None:
                services.append(service)
    names = [s.name for s in services]
    if len(set(names)) != len(names):
        problems.append(Problem(file, None, "services", "service names must be unique"))

    controls = raw.controls
    if controls is None:
        catalog = _load_model(Service, configs_dir() / "services" / "controls.yaml", problems)
        controls = catalog.targets if catalog else []

    fingerprints = Fingerprints()
    for index, ref in enumerate(raw.fingerprints):
        path = _catalog_path(ref, "fingerprints", base)
        if not path.is_file():
            line = _line_of(node, ("fingerprints", index))
            problems.append(Problem(file, line, f"fingerprints.{index}", f"no fingerprints catalog {ref!r} ({path})"))
            continue
        loaded = _load_model(Fingerprints, path, problems)
        if loaded is not None:
            fingerprints = fingerprints.merged(loaded)
    fingerprints = fingerprints.merged(raw.extra_fingerprints)

    if problems:
        return None
    return Config(
        vantages=raw.vantages,
        schedule=raw.schedule,
        listen=raw.listen,
        services=services,
        controls=controls,
        fingerprints=fingerprints,
        decoy_sni=raw.decoy_sni,
        evidence=raw.evidence,
        source=file,
        state_dir=raw.state_dir,
    )


def load(path: str | Path | None = None) -> Config:
    """Load and validate a config (the embedded default when `path` is None).

    Raises ConfigError listing every problem found, each with file, line and key path."""
    problems: list[Problem] = []
    if path is None:
        file, base = "<default>", configs_dir()
        raw, node = _load_model_and_node(RawConfig, configs_dir() / "default.yaml", problems)
    else:
        path = Path(path)
        file, base = str(path), path.parent
        raw, node = _load_model_and_node(RawConfig, path, problems)
    if raw is None:
        raise ConfigError(problems)
    config = _resolve(raw, file, base, problems, node)
    if config is None:
        raise ConfigError(problems)
    return config
