"""The checks, one module each, all with the same shape (see `probe.checks.base`).

To add a check: write `probe/checks/NAME.py` with `NAME`, `Params` and `run`, and list it here.
"""

from __future__ import annotations

from types import ModuleType

from probe.checks import dns, http, tcp, tls

REGISTRY: dict[str, ModuleType] = {module.NAME: module for module in (dns, tcp, tls, http)}
