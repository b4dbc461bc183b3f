"""A package imported without running its `__init__` until one of its own names is asked for.

Some packages' `__init__` imports much that a process using a few of their submodules never
needs: prometheus-client's brings its HTTP servers (http.server, socketserver, wsgiref,
urllib.request) and its own metric classes' machinery, APScheduler's reads its version through
`importlib.metadata` (docs/benchmarks.md, "Memory of `run`", issue #22). `skip_init(name)` puts
the package in `sys.modules` with its `__path__` only, so that its submodules import as usual;
the first attribute of the package itself that is read (`prometheus_client.REGISTRY`,
`apscheduler.__version__`) runs the real `__init__`, after which the package is exactly what a
plain import makes. A package already imported is left as it is.
"""

from __future__ import annotations

import importlib.util
import sys


def skip_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)  # __path__, __spec__, no code run
    loader = spec.loader

    def __getattr__(attribute: str) -> object:
        if package.__dict__.pop("__getattr__", None) is not None:  # once: the real __init__ now
            loader.exec_module(package)
        if attribute in package.__dict__:
            return package.__dict__[attribute]
        raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

    package.__getattr__ = __getattr__  # type: ignore[method-assign]  # PEP 562
    sys.modules[name] = package
