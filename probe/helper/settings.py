"""The helper's own settings file (`msgreach helper --config FILE`): where it listens, its
secret, its bounds, and which msgreach config holds the catalogs it measures."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from probe.config import ConfigError, Problem

SECRET_ENV = "MSGREACH_HELPER_SECRET_FILE"


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int = Field(120, ge=1)  # signed API calls per client
    udp_bytes_per_minute: int = Field(3_000_000, ge=1000)  # stream bytes per client (two voice streams ≈ 1.2 MB)
    probe_bytes_per_minute: int = Field(200_000, ge=1000)  # circumvention probe bytes per client
    bulk_bytes_per_minute: int = Field(8_000_000, ge=1000)  # bulk transfers per client (a round: 3 × 256 KB per target)
    sessions_per_client: int = Field(16, ge=1, le=256)  # open streams, and open probe expectations (each)
    max_stream_seconds: float = Field(120.0, gt=0)
    max_stream_pps: int = Field(100, ge=1, le=1000)
    max_clients: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=1024)


class HelperSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    secret_file: Path | None = None  # required (or $MSGREACH_HELPER_SECRET_FILE)
    listen: str = "0.0.0.0:9920"  # the HTTP API and /metrics; UDP streams use the same port number
    probe_port: int = Field(9921, ge=0, lt=65536)  # circumvention catchers, TCP and UDP (0: any)
    bulk_port: int = Field(9922, ge=0, lt=65535)  # bulk transfers: plain TCP here, TLS on the next port (0: any two)
    measure: Path | None = None  # the msgreach config whose catalogs it measures; None: the embedded default
    cache_seconds: float = Field(30.0, ge=0)  # a target measured this recently is answered from memory
    log_clients: bool = False  # client addresses appear in no log line unless this is set
    limits: Limits = Field(default_factory=Limits)


def load(path: str | Path | None) -> HelperSettings:
    """The settings (defaults without a file); ConfigError names file and key of every problem."""
    data: dict = {}
    file = str(path) if path else "<default>"
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError([Problem(file, None, "", f"cannot read: {exc}")]) from None
        if not isinstance(data, dict):
            raise ConfigError([Problem(file, None, "", "the helper config must be a mapping")])
        base = Path(path).parent
        for key in ("secret_file", "measure"):
            if isinstance(data.get(key), str) and not os.path.isabs(data[key]):
                data[key] = str(base / data[key])
    if data.get("secret_file") is None and os.environ.get(SECRET_ENV):
        data["secret_file"] = os.environ[SECRET_ENV]
    try:
        return HelperSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([
            Problem(file, None, ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()
        ]) from None
