"""Loading: the main file, the catalogs it names (services, controls, fingerprints), patches and
relative paths, into one validated `Config`, or a `ConfigError` naming every problem with file,
line and key. Every YAML file, the main one and each catalog, takes the same bounded path
(`probe.config.files`, `probe.config.safe_yaml`), and nothing touches the network: the addresses
the config binds are checked against this machine's own (`probe.config.local`), DNS is not asked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from probe.config.errors import ConfigError, Problem
from probe.config.files import MAX_YAML_BYTES, read_text
from probe.config.local import listen_problem, source_problem
from probe.config.models import Config, Evidence, Fingerprints, RawConfig, Service, ServiceRef, Target
from probe.config.safe_yaml import compose, parse, parse_data
from probe.config.state_dir import EVIDENCE_FILE, default_state_dir
from probe.validation import BaseModel, ValidationError

# --- where the shipped configs live -------------------------------------------------------------

_PACKAGE = Path(__file__).resolve().parent.parent
_PACKAGED = _PACKAGE / "_configs"  # inside a wheel (see pyproject force-include)
_SOURCE = _PACKAGE.parent / "configs"  # in a source checkout

# Keys whose values are file paths, relative to the file that names them.
_PATH_KEYS = ("ca_bundle", "cert_file", "key_file", "client_ca_file", "password_file", "secret_file", "credentials_file", "path", "state_dir")


def configs_dir() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE


def load(path: str | Path | None = None) -> Config:
    """Load and validate a config (the embedded default when `path` is None).

    Raises ConfigError listing every problem found, each with file, line and key path."""
    problems: list[Problem] = []
    if path is None:
        file, base = "<default>", configs_dir()
        raw, lines = _load_model_and_lines(RawConfig, configs_dir() / "default.yaml", problems)
    else:
        path = Path(path)
        file, base = str(path), path.parent
        raw, lines = _load_model_and_lines(RawConfig, path, problems)
    if raw is None:
        raise ConfigError(problems)
    config = _resolve(raw, file, base, problems, lines)
    if config is None:
        raise ConfigError(problems)
    return config


# --- one file --------------------------------------------------------------------------------------


def load_yaml(path: Path) -> tuple[Any, Node | None]:
    """A YAML file's data and node tree, read and parsed the bounded way. Raises ConfigError."""
    try:
        text = read_text(path, MAX_YAML_BYTES)
    except ValueError as exc:
        raise ConfigError([Problem(str(path), None, "", str(exc))]) from None
    return parse(text, str(path))


class Lines:
    """Where the keys of one YAML file are, for the problems found in it. The node tree that
    knows is composed again from the text only when a problem asks: a valid config never needs
    it, and for a config of thousands of targets it was most of the load's memory (about 6 KiB
    a target, kept through validation)."""

    def __init__(self, text: str | None = None, file: str = "") -> None:
        self._text, self._file = text, file
        self._node: Node | None = None

    def of(self, loc: tuple[Any, ...]) -> int | None:
        if self._text is not None:
            text, self._text = self._text, None
            try:
                self._node = compose(text, self._file)
            except ConfigError:  # it parsed once; it parses again
                self._node = None
        return line_of(self._node, loc)


NO_LINES = Lines()


def line_of(node: Node | None, loc: tuple[Any, ...]) -> int | None:
    """Walk the YAML node tree along a validation error's location; the deepest line found wins."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    node = value_node
                    line = key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def resolve_paths(data: Any, base: Path, keys: tuple[str, ...] = _PATH_KEYS) -> Any:
    """Relative file paths in a config are relative to the file that names them."""
    if isinstance(data, dict):
        return {
            k: (
                v if k == "params"  # check settings (an HTTP path, say) are not file paths
                else str(base / v) if k in keys and isinstance(v, str) and v and not os.path.isabs(v)
                else resolve_paths(v, base, keys)
            )
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [resolve_paths(item, base, keys) for item in data]
    return data


def _validation_problems(exc: ValidationError, file: str, lines: Lines, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
        key = ".".join(str(p) for p in (*prefix, *loc))
        message = error["msg"].removeprefix("Value error, ")
        problems.append(Problem(file, lines.of(loc), key, message))
    return problems


def load_model(model: type[BaseModel], path: Path, problems: list[Problem]) -> Any:
    """One file validated by `model` (None, with its problems added, if invalid)."""
    return _load_model_and_lines(model, path, problems)[0]


def _load_model_and_lines(model: type[BaseModel], path: Path, problems: list[Problem]) -> tuple[Any, Lines]:
    """The validated model (None if invalid) and where the file's keys are, for line numbers."""
    try:
        text = read_text(path, MAX_YAML_BYTES)
    except ValueError as exc:
        problems.append(Problem(str(path), None, "", str(exc)))
        return None, NO_LINES
    try:
        data = parse_data(text, str(path))
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None, NO_LINES
    lines = Lines(text, str(path))
    try:
        return model.model_validate(resolve_paths(data if data is not None else {}, path.parent)), lines
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, str(path), lines))
        return None, lines


# --- catalogs, patches --------------------------------------------------------------------------------


def _catalog_path(ref: str, kind: str, base: Path) -> Path:
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        path = Path(ref)
        return path if path.is_absolute() else base / path
    return configs_dir() / kind / f"{ref}.yaml"


def _loc(key: str) -> tuple[Any, ...]:
    """'targets.5.ports' -> ('targets', 5, 'ports'), a location `line_of` can walk."""
    return tuple(int(part) if part.isdigit() else part for part in key.split(".") if part)


def _targets_of(ref: ServiceRef) -> list[Any]:
    """The config's own targets for the service: validated already, so taken as they are (the
    service's validation does not copy or check them again: dumping and validating a large
    config's targets twice would be most of its load), unless a patch must change them, as
    dicts."""
    if not ref.patch:
        return list(ref.targets or [])
    return [t.model_dump() for t in ref.targets or []]


def _service_from_ref(ref: ServiceRef, index: int, file: str, base: Path, problems: list[Problem], lines: Lines = NO_LINES) -> Service | None:
    key = f"services.{index}"
    if ref.catalog is not None:
        path = _catalog_path(ref.catalog, "services", base)
        if not path.is_file():
            line = lines.of(("services", index, "catalog"))
            problems.append(Problem(file, line, f"{key}.catalog", f"no catalog {ref.catalog!r} ({path})"))
            return None
        service = load_model(Service, path, problems)
        if service is None:
            return None
        data = service.model_dump(mode="python")
    else:
        data = {"name": ref.name, "targets": _targets_of(ref)}
    for field in ("name", "title", "description", "networks", "ca_bundle"):
        value = getattr(ref, field)
        if value is not None:
            data[field] = value.model_dump() if isinstance(value, BaseModel) else value
    if ref.targets is not None and ref.catalog is not None:
        data["targets"] = _targets_of(ref)
    names = {t.name if isinstance(t, Target) else t["name"] for t in data["targets"]}
    for target_name, fields in ref.patch.items():
        if target_name != "*" and target_name not in names:
            line = lines.of(("services", index, "patch", target_name))
            problems.append(Problem(file, line, f"{key}.patch.{target_name}", f"no target {target_name!r} in service {data['name']!r}"))
            continue
        for target in data["targets"]:
            if target_name in ("*", target["name"]):
                target.update(resolve_paths(fields, base))
    try:
        return Service.model_validate(data)
    except ValidationError as exc:
        for problem in _validation_problems(exc, file, NO_LINES):
            loc = _loc(problem.key)
            # A problem in a catalog's target that the config patched: point at the patch.
            if ref.targets is None and len(loc) >= 2 and loc[0] == "targets" and isinstance(loc[1], int) and loc[1] < len(data["targets"]):
                patched = next((n for n in (data["targets"][loc[1]]["name"], "*") if n in ref.patch), None)
                if patched is not None:
                    loc = ("patch", patched, *loc[2:])
            full = ("services", index, *loc)
            found = Problem(file, lines.of(full), ".".join(str(part) for part in full), problem.message)
            if found not in problems:  # a "*" patch breaks every target the same way: say it once
                problems.append(found)
        return None


def _resolve(raw: RawConfig, file: str, base: Path, problems: list[Problem], lines: Lines = NO_LINES) -> Config | None:
    services = []
    for index, ref in enumerate(raw.services):
        if ref.enabled:
            service = _service_from_ref(ref, index, file, base, problems, lines)
            if service is not None:
                services.append(service)
    if not raw.helpers:
        services = _without_helper_targets(services, raw, file, lines, problems)
    names = [s.name for s in services]
    if len(set(names)) != len(names):
        problems.append(Problem(file, lines.of(("services",)), "services", "service names must be unique"))

    controls = raw.controls
    if controls is None:
        catalog = load_model(Service, configs_dir() / "services" / "controls.yaml", problems)
        controls = catalog.targets if catalog else []

    fingerprints = Fingerprints()
    for index, fingerprints_ref in enumerate(raw.fingerprints):
        path = _catalog_path(fingerprints_ref, "fingerprints", base)
        if not path.is_file():
            line = lines.of(("fingerprints", index))
            problems.append(Problem(file, line, f"fingerprints.{index}", f"no fingerprints catalog {fingerprints_ref!r} ({path})"))
            continue
        loaded = load_model(Fingerprints, path, problems)
        if loaded is not None:
            fingerprints = fingerprints.merged(loaded)
    fingerprints = fingerprints.merged(raw.extra_fingerprints)
    _check_local_addresses(raw, file, lines, problems)

    if problems:
        return None
    state_dir, evidence = _state(raw)
    return Config(
        vantages=raw.vantages,
        schedule=raw.schedule,
        listen=raw.listen,
        services=services,
        controls=controls,
        fingerprints=fingerprints,
        decoy_sni=raw.decoy_sni,
        evidence=evidence,
        source=file,
        helpers=raw.helpers,
        state_dir=state_dir,
        upload=raw.upload,
    )


def _check_local_addresses(raw: RawConfig, file: str, lines: Lines, problems: list[Problem]) -> None:
    """What `run` would fail to bind: the listener's address, each vantage's source address."""
    problem = listen_problem(raw.listen.address)
    if problem is not None:
        problems.append(Problem(file, lines.of(("listen", "address")), "listen.address", problem))
    for index, vantage in enumerate(raw.vantages):
        if vantage.source_address is not None and (problem := source_problem(vantage.source_address)) is not None:
            loc = ("vantages", index, "source_address")
            problems.append(Problem(file, lines.of(loc), ".".join(map(str, loc)), problem))


def _state(raw: RawConfig) -> tuple[Path | None, Evidence]:
    """The state directory and the archive's path: kept by default (probe.config.state_dir);
    `evidence.enabled: false` turns the archive off (its path is then None downstream)."""
    state_dir = raw.state_dir or default_state_dir(raw.evidence.path)
    evidence = raw.evidence
    if not evidence.enabled:
        evidence = evidence.model_copy(update={"path": None})
    elif evidence.path is None and state_dir is not None:
        evidence = evidence.model_copy(update={"path": state_dir / EVIDENCE_FILE})
    return state_dir, evidence


# Checks that measure through a helper abroad (docs/helper.md).
HELPER_CHECKS = frozenset({"udp_stream", "circumvention", "helper_transfer"})


def _without_helper_targets(services: list[Service], raw: RawConfig, file: str, lines: Lines, problems: list[Problem]) -> list[Service]:
    """Without `helpers:`, targets measured through a helper (the optional call-stream and
    freeze-key targets of the catalogs) are left out; a service made only of them
    (circumvention) is a config problem."""
    kept = []
    for service in services:
        targets = [t for t in service.targets if not HELPER_CHECKS & set(t.checks)]
        if not targets:
            index = next((i for i, ref in enumerate(raw.services) if ref.enabled and service.name in (ref.name, ref.catalog)), None)
            key = f"services.{index}" if index is not None else "services"
            line = lines.of(("services", index)) if index is not None else None
            problems.append(Problem(file, line, key, f"service {service.name!r} is measured through a helper: list one under `helpers:`"))
            continue
        kept.append(service if len(targets) == len(service.targets) else service.model_copy(update={"targets": targets}))
    return kept
