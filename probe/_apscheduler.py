"""APScheduler's asyncio scheduler and interval trigger, imported without what `run` never uses.

Importing `apscheduler.schedulers.asyncio` loads, besides the scheduler, `importlib.metadata`
(the package's `__init__` asks for its own version; the base scheduler reads its plugins' entry
points while its class is made) and `multiprocessing` (the process-pool executor's module, which
the base scheduler imports for its default thread pool): 1.6 MiB of a `run` process that
schedules coroutines on asyncio only (docs/benchmarks.md, "Memory of `run`", issue #22).
So, as probe/_httpcore.py does for trio, this one module imports them with those left out:

- the package's `__init__` is not run: `apscheduler.__version__` (`version`, `version_info`)
  is computed when first read, by the package's own code;
- entry points are not read: the scheduler gets its trigger, executor and job store as
  instances (`IntervalTrigger(...)`, the asyncio scheduler's defaults), never by plugin name
  ("interval" would raise LookupError here);
- the process-pool executor's module is not imported; the base scheduler's default thread
  pool (which the asyncio scheduler replaces with its own executor) imports it when made.

A process that imported any of them before gets the real ones; one that imports them after
gets them as usual (the stand-ins leave `sys.modules` once the scheduler is imported).
Modules of probe/ write `from probe._apscheduler import AsyncIOScheduler, IntervalTrigger`.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

_VERSION_NAMES = ("version", "version_info", "__version__")


def _package_version(name: str) -> Any:
    """`apscheduler.version` and friends, as the package's `__init__` would have set them."""
    if name not in _VERSION_NAMES:
        raise AttributeError(f"module 'apscheduler' has no attribute {name!r}")
    package = sys.modules["apscheduler"]
    spec = importlib.util.find_spec("apscheduler")
    if spec is not None and spec.origin is not None:
        with open(spec.origin, encoding="utf-8") as source:
            exec(compile(source.read(), spec.origin, "exec"), package.__dict__)  # noqa: S102 - the package's own __init__
    return package.__dict__[name]


def _default_thread_pool(*args: Any, **kwargs: Any) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor

    return ThreadPoolExecutor(*args, **kwargs)


def _stand_ins() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    if "apscheduler" not in sys.modules:
        spec = importlib.util.find_spec("apscheduler")
        if spec is not None:
            package = importlib.util.module_from_spec(spec)  # its __path__, without running __init__
            package.__getattr__ = _package_version  # type: ignore[method-assign]
            sys.modules["apscheduler"] = package  # stays: it is the package
    if "importlib.metadata" not in sys.modules:
        metadata = ModuleType("importlib.metadata")
        metadata.entry_points = lambda **_: ()  # type: ignore[attr-defined]  # no plugins by name
        found["importlib.metadata"] = metadata
    if "apscheduler.executors.pool" not in sys.modules:
        pool = ModuleType("apscheduler.executors.pool")
        pool.ThreadPoolExecutor = _default_thread_pool  # type: ignore[attr-defined]
        found["apscheduler.executors.pool"] = pool
    return found


_STAND_INS = _stand_ins()
sys.modules.update(_STAND_INS)
try:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.interval import IntervalTrigger
finally:
    for _name, _module in _STAND_INS.items():
        if sys.modules.get(_name) is _module:
            del sys.modules[_name]
    del _STAND_INS

__all__ = ["AsyncIOScheduler", "IntervalTrigger"]
