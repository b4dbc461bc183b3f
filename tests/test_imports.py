"""Imports in one direction (issue #9): `import probe.config` loads no network stack, and no
module of probe/ imports, directly or through others, itself: module-level and late (inside
functions) imports both count, and so does the package `__init__` that importing a submodule
from outside its package runs; imports under `if TYPE_CHECKING:` never run and do not."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parent.parent / "probe"

# What the config must not pull in: the network stack, the scheduler, the metrics, the checks;
# nor pydantic, which the config no longer uses (probe.validation: 13 MiB less, issue #22).
HEAVY = ("httpx", "httpcore", "dns", "cryptography", "apscheduler", "prometheus_client", "probe.net", "probe.checks", "probe.resolvers", "aioquic", "pydantic")


def test_importing_the_config_loads_no_network_stack():
    code = "import sys, json, probe.config, probe.params, probe.addresses; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PROBE.parent)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout)
    assert "probe.config.models" in loaded and "probe.validation" in loaded  # the probe itself is real
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], heavy


def test_a_monitor_process_never_loads_pydantic_nor_trio():
    """What `run` and `once` import, and the config, the web config and the helper's settings
    they load: neither pydantic (13 MiB of the process at issue #22) nor trio, which httpcore
    would import whenever it is installed (probe/_httpcore.py; 4.6 MiB) is among them, httpx
    loaded (probe.net_http: as a DoH resolver or an upload loads it). A process that wants trio
    still gets it afterwards."""
    code = (
        "import sys, json, importlib.util, probe.cli, probe.runner, probe.service, probe.server, probe.report, probe.metrics, probe.net_http; "
        "import probe.config.webconfig, probe.helper.settings; from probe import config; config.load(None); "
        "loaded = sorted(sys.modules); installed = importlib.util.find_spec('trio') is not None; "
        "after = installed and __import__('trio').__name__ == 'trio'; "
        "print(json.dumps({'loaded': loaded, 'trio_installed': installed, 'trio_after': after}))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PROBE.parent)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    loaded = found["loaded"]
    assert "probe.service" in loaded and "probe.config.models" in loaded and "httpcore" in loaded
    assert sorted(m for m in loaded if m == "pydantic" or m.startswith(("pydantic.", "pydantic_core"))) == []
    assert sorted(m for m in loaded if m == "trio" or m.startswith("trio.")) == []
    assert found["trio_after"] == found["trio_installed"]


def test_a_round_of_tcp_tls_and_http_checks_loads_neither_httpx_nor_httpcore():
    """The `http` check speaks h11 itself (probe.checks.http1), a plain URL is read without
    httpx, and a failure is classified without importing them: their import is CPU of every
    `once` process (issue #22). A URL httpx must read loads it then."""
    code = (
        "import sys, json, probe.cli, probe.runner, probe.service, probe.report, probe.metrics; "
        "from probe.checks import http, tcp, tls; from probe import failures; "
        "http._Target('https://t0001.bench.test:8443/a/b?c=d'); failures.classify(ConnectionResetError(104, 'reset')); "
        "before = sorted(m for m in sys.modules if m.startswith(('httpx', 'httpcore'))); "
        "http._Target('https://Bench.test/a b'); "
        "print(json.dumps({'before': before, 'after': 'httpx' in sys.modules}))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PROBE.parent)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found == {"before": [], "after": True}


def test_the_status_page_and_the_web_config_load_when_used():
    """A `run` process loads the status page's modules (and their texts) when a person first
    asks for it, and the web config's models with --web.config.file only (issue #22: memory)."""
    code = "import sys, json, probe.cli, probe.runner, probe.service; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PROBE.parent)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout)
    assert "probe.server" in loaded
    assert [m for m in ("probe.status_page", "probe.status_texts", "probe.status_steps", "probe.config.webconfig") if m in loaded] == []


def test_the_scheduler_loads_without_plugins_metadata_nor_process_pools():
    """APScheduler's asyncio scheduler without `importlib.metadata` and `multiprocessing`
    (probe/_apscheduler.py; 1.6 MiB of a `run` process, issue #22); its version is still its
    own, and a process that wants either module still gets the real one afterwards."""
    code = (
        "import sys, json, probe.cli, probe.runner, probe.service; loaded = sorted(sys.modules); "
        "import apscheduler, importlib.metadata, multiprocessing; "
        "real = importlib.metadata.version('APScheduler'); "
        "from apscheduler.executors.pool import ProcessPoolExecutor; "
        "print(json.dumps({'loaded': loaded, 'version': apscheduler.__version__, 'real': real, "
        "'pool': ProcessPoolExecutor.__module__, 'spawn': multiprocessing.get_context('spawn').get_start_method()}))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PROBE.parent)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert "apscheduler.schedulers.asyncio" in found["loaded"]
    unused = ("importlib.metadata", "multiprocessing", "concurrent.futures.process", "zipfile", "apscheduler.executors.pool")
    assert [m for m in unused if m in found["loaded"]] == []
    assert found["version"] == found["real"].split("-")[0]
    assert (found["pool"], found["spawn"]) == ("apscheduler.executors.pool", "spawn")


def test_metrics_load_without_prometheus_clients_servers_until_the_text_format_is_asked():
    """prometheus-client's families, registry and OpenMetrics writer without its `__init__`,
    which imports its HTTP servers (probe/_prometheus_client.py; 1.2 MiB, issue #22); the text
    format's module when a scraper asks for it; the package whole as soon as a name of its own
    is read, and the same `generate_latest` as a plain import gives."""
    code = (
        "import sys, json, asyncio, probe.cli, probe.runner, probe.service; from probe.metrics import Exposition, State; "
        "from probe import config; state = State(config.load(None)); exposition = Exposition(state); exposition.refresh(); "
        "ours = b''.join(exposition.render(openmetrics=True)); loaded = sorted(sys.modules); "
        "text = b''.join(exposition.render()); after_text = sorted(sys.modules); "
        "import prometheus_client; from prometheus_client import REGISTRY, generate_latest; "
        "import prometheus_client.exposition as exposition_module; "
        "print(json.dumps({'loaded': loaded, 'after_text': after_text, 'om': ours.endswith(b'# EOF\\n'), 'text': b'# TYPE msgreach_build_info gauge' in text, "
        "'same': generate_latest is exposition_module.generate_latest, 'registry': type(REGISTRY).__name__}))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=PROBE.parent)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert "prometheus_client.openmetrics.exposition" in found["loaded"] and found["om"]
    servers = ("prometheus_client.exposition", "http.server", "socketserver", "wsgiref", "prometheus_client.metrics", "prometheus_client.values")
    assert [m for m in servers if m in found["loaded"]] == []
    assert "prometheus_client.exposition" in found["after_text"] and found["text"]
    assert (found["same"], found["registry"]) == (True, "CollectorRegistry")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROBE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PROBE.rglob("*.py") if "_configs" not in path.parts}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Modules of probe/ that `name` imports anywhere but under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from probe.checks import tcp` imports the module probe.checks.tcp;
                # `from probe.x import name` imports probe.x.
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    found = {m for m in found if m in modules}
    # Importing probe.checks.base from outside probe.checks runs probe/checks/__init__.py first
    # (and whatever it imports). From inside the package that __init__ is already running or
    # done, so a submodule's own parent packages are not edges.
    for module in list(found):
        parts = module.split(".")
        for depth in range(2, len(parts)):
            parent = ".".join(parts[:depth])
            if parent in modules and not (name == parent or name.startswith(parent + ".")):
                found.add(parent)
    return {m for m in found if m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_late_imports():
    graph = import_graph()
    assert "probe.config" in graph["probe.cli"] and "probe.runner" in graph["probe.cli"]  # runner: inside a function
    assert "probe.net" in graph["probe.checks.context"]
    assert "probe.config" in graph["probe.net"] and "probe.checks" in graph["probe.runner"]
    assert "probe.checks" not in graph["probe.checks.tcp"]  # its own package: not an edge
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_probe():
    found = cycles(import_graph())
    assert found == [], "import cycles in probe/: " + "; ".join(" <-> ".join(c) for c in found)
