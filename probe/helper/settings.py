"""The helper's own settings file (`msgreach helper --config FILE`): where it listens, its
secret, its bounds, and which msgreach config holds the catalogs it measures.

Read the way the monitor reads its config (`probe.config.files`, `probe.config.safe_yaml`): a
regular file of bounded size, duplicate keys refused, every number finite, strict in type (`true`
is not 1) and capped, each problem with file, line and key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from probe.addresses import is_host
from probe.config import ConfigError, Problem, resolve_paths
from probe.config.files import MAX_YAML_BYTES, read_text
from probe.config.loader import Lines
from probe.config.safe_yaml import parse_data

SECRET_ENV = "MSGREACH_HELPER_SECRET_FILE"
_STREAM_BOOKKEEPING_BYTES = 256 * 1024 * 1024  # one byte per expected packet of every open session


def listen_address(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port); an empty host binds every address, port 0
    takes any free port (tests, benchmarks). ValueError says what is wrong."""
    host, _, port = value.rpartition(":")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) < 65536):
        raise ValueError(f"bad listen address {value!r}: HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    if host and not is_host(host):
        raise ValueError(f"bad listen address {value!r}: {host!r} is neither an IP address nor a host name")
    return host or "0.0.0.0", int(port)


def _listen(value: str) -> str:
    listen_address(value)
    return value


def _count(default: int, low: int, high: int) -> Any:
    return Field(default, ge=low, le=high, strict=True)


def _seconds(default: float, low: float, high: float) -> Any:
    return Field(default, gt=low, le=high, strict=True, allow_inf_nan=False)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Limits(_Model):
    requests_per_minute: int = _count(120, 1, 100_000)  # signed API calls per client
    udp_bytes_per_minute: int = _count(3_000_000, 1000, 10**10)  # stream bytes per client (two voice streams ≈ 1.2 MB)
    probe_bytes_per_minute: int = _count(200_000, 1000, 10**9)  # circumvention probe bytes per client
    bulk_bytes_per_minute: int = _count(8_000_000, 1000, 10**10)  # bulk transfers per client (a round: 3 × 256 KB per target)
    sessions_per_client: int = _count(16, 1, 256)  # open streams, and open probe expectations (each)
    max_sessions: int = _count(1024, 1, 100_000)  # open streams of all clients together
    stream_idle_seconds: float = _seconds(5.0, 0.1, 600)  # a stream silent this long has ended (or was cut): its session closes
    stream_start_seconds: float = _seconds(30.0, 0.1, 600)  # a session whose first datagram has not come by then closes
    max_stream_seconds: float = _seconds(120.0, 0, 3600)
    max_stream_pps: int = _count(100, 1, 1000)
    max_clients: int = _count(10_000, 1, 1_000_000)
    max_body_bytes: int = _count(64 * 1024, 1024, 16 * 1024 * 1024)
    connections_per_client: int = _count(64, 1, 100_000)  # open TCP connections per source address (API, probes, bulk)
    max_connections: int = _count(4096, 16, 1_000_000)  # all together (lowered to what the descriptor limit carries)

    @model_validator(mode="after")
    def _bookkeeping_fits(self) -> Limits:
        size = self.max_sessions * self.max_stream_seconds * self.max_stream_pps
        if size > _STREAM_BOOKKEEPING_BYTES:
            raise ValueError(
                f"max_sessions × max_stream_seconds × max_stream_pps is {size:,.0f} packets to keep track of "
                f"(one byte each): at most {_STREAM_BOOKKEEPING_BYTES:,}"
            )
        return self


class HelperSettings(_Model):
    secret_file: Path | None = None  # required (or $MSGREACH_HELPER_SECRET_FILE)
    listen: Annotated[str, AfterValidator(_listen)] = "0.0.0.0:9920"  # the HTTP API and /metrics; UDP streams use the same port number
    probe_port: int = _count(9921, 0, 65535)  # circumvention catchers, TCP and UDP (0: any)
    bulk_port: int = _count(9922, 0, 65534)  # bulk transfers: plain TCP here, TLS on the next port (0: any two)
    measure: Path | None = None  # the msgreach config whose catalogs it measures; None: the embedded default
    cache_seconds: float = Field(30.0, ge=0, le=3600, strict=True, allow_inf_nan=False)  # a target measured this recently is answered from memory
    log_clients: StrictBool = False  # client addresses appear in no log line unless this is set
    limits: Limits = Field(default_factory=Limits)


def load(path: str | Path | None) -> HelperSettings:
    """The settings (defaults without a file); ConfigError names file, line and key of every problem."""
    data: Any = {}
    file = str(path) if path else "<default>"
    lines = Lines()
    if path is not None:
        try:
            text = read_text(Path(path), MAX_YAML_BYTES)
        except ValueError as exc:
            raise ConfigError([Problem(file, None, "", str(exc))]) from None
        data = parse_data(text, file)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError([Problem(file, 1, "", "the helper config must be a mapping")])
        data = resolve_paths(data, Path(path).parent, ("secret_file", "measure"))
        lines = Lines(text, file)
    if data.get("secret_file") is None and os.environ.get(SECRET_ENV):
        data["secret_file"] = os.environ[SECRET_ENV]
    try:
        return HelperSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([
            Problem(file, lines.of(tuple(e["loc"])), ".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]) from None


def secret_problem(path: str | Path | None, message: str) -> Problem:
    """A problem with the secret, placed where the secret was named: the settings file's
    `secret_file` line, or the environment variable."""
    if path is not None:
        try:
            text = read_text(Path(path), MAX_YAML_BYTES)
            data = parse_data(text, str(path))
        except (ConfigError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("secret_file") is not None:
            return Problem(str(path), Lines(text, str(path)).of(("secret_file",)), "secret_file", message)
    if os.environ.get(SECRET_ENV):
        return Problem(f"${SECRET_ENV}", None, "secret_file", message)
    return Problem(str(path) if path else "<default>", None, "secret_file", message)
