"""The checks, one module each, all with the same shape (see `probe.checks.base`).

To add a check: write `probe/checks/NAME.py` with `NAME`, `Params` and `run`, add NAME to `NAMES`, and put
its `Params` model in `probe/params.py` (`CHECK_PARAMS`), where the config validates it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

# In the order the config lists them (`probe.params.CHECK_PARAMS`; a test holds the two together).
NAMES = ("dns", "tcp", "tls", "http", "mtproto", "whatsapp_chat", "quic", "stun", "throughput", "udp_stream", "circumvention", "helper_transfer")


class _Registry(Mapping[str, ModuleType]):
    """Check name -> module, imported on first use: a vantage pays the import (and the memory)
    of the checks its config runs only (aioquic for `quic`, curl-cffi for browser handshakes…)."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in NAMES:
            raise KeyError(name)
        return importlib.import_module(f"{__name__}.{name}")

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


REGISTRY: Mapping[str, ModuleType] = _Registry()
