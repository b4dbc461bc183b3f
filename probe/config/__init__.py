"""Configuration: YAML files validated by typed models, with errors that name file, line and key.

The data path starts here: a `Config` holds the vantage points, the schedule and the services
(each loaded from a catalog in `configs/services/` and optionally patched), plus the controls,
the block-page fingerprints and the measurement helpers. Nothing downstream reads YAML.

- `probe.config.models`: what each key may hold (typed records checked by `probe.validation`),
  including the files it names;
- `probe.config.loader`: files, catalogs, patches and relative paths into one `Config`;
- `probe.config.safe_yaml`, `probe.config.files`: the bounded way every file is read;
- `probe.config.errors`: `Problem` and `ConfigError`.

Importing this package loads PyYAML and the standard library, never the network stack.
"""

from __future__ import annotations

from probe.addresses import is_ip_literal, split_host_port
from probe.config.errors import ConfigError, Problem
from probe.config.loader import configs_dir, load, load_yaml, resolve_paths
from probe.config.models import (
    BasicAuth,
    CheckName,
    Config,
    Evidence,
    Fingerprints,
    HelperRef,
    Listen,
    Networks,
    RawConfig,
    Resolver,
    Schedule,
    Service,
    ServiceRef,
    Target,
    Timeouts,
    TLSListener,
    Upload,
    Vantage,
)

__all__ = [
    "BasicAuth",
    "CheckName",
    "Config",
    "ConfigError",
    "Evidence",
    "Fingerprints",
    "HelperRef",
    "Listen",
    "Networks",
    "Problem",
    "RawConfig",
    "Resolver",
    "Schedule",
    "Service",
    "ServiceRef",
    "TLSListener",
    "Target",
    "Timeouts",
    "Upload",
    "Vantage",
    "configs_dir",
    "is_ip_literal",
    "load",
    "load_yaml",
    "resolve_paths",
    "split_host_port",
]
