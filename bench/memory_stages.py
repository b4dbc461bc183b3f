"""RSS of a fresh `msgreach run` process after each stage of its start-up, and the packages
that grew it most (bench/memory.py runs this in the bench's namespace; JSON on stdout).

    python bench/memory_stages.py CONFIG

Imports nothing beyond what the interpreter has loaded at start (no typing, no importlib.abc:
that alone is 4 MiB), so that what it measures is msgreach's.
"""

from __future__ import annotations

import sys

# What a `run` process imports, in its order (probe/cli.py), then its config load.
STAGES = [
    ("interpreter", ""),
    ("probe.cli (argparse, logging, probe.config: the validator, YAML)", "import probe.cli"),
    ("probe.runner (asyncio, ssl, httpx/httpcore, the model, the judge)", "import probe.runner"),
    ("the checks tcp, tls, http", "import probe.checks.tcp, probe.checks.tls, probe.checks.http"),
    ("the config loaded (N targets)", "CONFIG = __import__('probe.config').config.load(sys.argv[1])"),
    ("probe.service (APScheduler, prometheus-client, the server, history, status page)", "import probe.service"),
]


def _rss_kib(field: str = "VmRSS", pid: str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class _PackageMeter:
    """RSS grown while each top-level package's modules executed (a nested import of another
    package is counted to that package): which packages a process pays for."""

    def __init__(self) -> None:
        self.grown: dict[str, int] = {}
        self._stack: list[list[object]] = []

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module"):
                package = ".".join(name.split(".")[:2]) if name.startswith("probe.") else name.split(".")[0]
                spec.loader = _Metered(loader, package, self)
            return spec
        return None


class _Metered:
    def __init__(self, loader: object, package: str, meter: _PackageMeter) -> None:
        self._loader, self._package, self._meter = loader, package, meter

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        stack = self._meter._stack
        start = _rss_kib()
        stack.append([self._package, 0])
        try:
            self._loader.exec_module(module)
        finally:
            package, nested = stack.pop()
            grown = _rss_kib() - start
            self._meter.grown[package] = self._meter.grown.get(package, 0) + grown - nested
            if stack:
                stack[-1][1] += grown

    def __getattr__(self, name: str) -> object:  # get_resource_reader, is_package, …
        return getattr(self._loader, name)


def stages(config: str) -> None:
    """RSS after each stage, and the packages that grew it."""
    meter = _PackageMeter()
    sys.meta_path.insert(0, meter)
    rows = []
    for label, code in STAGES:
        exec(code, globals())  # noqa: S102 - this file's own fixed statements
        rows.append((label, _rss_kib()))
    import json

    print(json.dumps({"stages": rows, "packages": sorted(meter.grown.items(), key=lambda kv: -kv[1])[:14], "pydantic": "pydantic" in sys.modules}))


if __name__ == "__main__":
    stages(sys.argv[1])
