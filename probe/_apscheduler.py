"""APScheduler's asyncio scheduler and interval trigger, imported without what `run` never uses.

Importing `apscheduler.schedulers.asyncio` loads, besides the scheduler, `importlib.metadata`
(the package's `__init__` asks for its own version; the base scheduler reads its plugins' entry
points while its class is made) and `multiprocessing` (the process-pool executor's module, which
the base scheduler imports for its default thread pool): 1.6 MiB of a `run` process that
schedules coroutines on asyncio only (docs/benchmarks.md, "Memory of `run`", issue #22).
So, as probe/_httpcore.py does for trio, this one module imports them with those left out:

- the package's `__init__` runs when a name of its own is first read (`apscheduler.__version__`;
  probe/_lazy_package.py);
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

import sys
from types import ModuleType
from typing import Any

from probe._lazy_package import skip_init


def _default_thread_pool(*args: Any, **kwargs: Any) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor

    return ThreadPoolExecutor(*args, **kwargs)


def _stand_ins() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    skip_init("apscheduler")  # its __init__ runs when apscheduler.__version__ is read
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
