"""The checks, one module each, all with the same shape (see `probe.checks.context`): `NAME`,
`Params` and `async def run(ctx, params)` returning the check's evidence record (probe.model).

To add a check (docs/architecture.md, "Adding a check"): its `Params` model in `probe/params.py`
(`CHECK_PARAMS`, whose order is the checks' order everywhere), its records in `probe/model.py`,
`probe/checks/NAME.py` observing, and `probe/judge/NAME.py` reading the observations
(`TECHNIQUE`, `analyse`). tests/test_check_shape.py holds the three together.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType

from probe.params import CHECK_PARAMS

NAMES: tuple[str, ...] = tuple(CHECK_PARAMS)


class _Registry(Mapping[str, ModuleType]):
    """Check name -> module, imported on first use: a vantage pays the import (and the memory)
    of the checks its config runs only (aioquic for `quic`, curl-cffi for browser handshakes…)."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in NAMES:
            raise KeyError(name)
        # sys.modules first: every check of every target asks (import_module's path costs more)
        return sys.modules.get(f"{__name__}.{name}") or importlib.import_module(f"{__name__}.{name}")

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


REGISTRY: Mapping[str, ModuleType] = _Registry()
