"""Shared fixtures: a test CA, DNS servers, TLS/HTTP servers (well-behaved and hostile) on
loopback, and helpers to write configs pointing at them and to run the CLI.

Everything listens on 127.0.0.1 with ephemeral ports, on one background event loop for the
whole session (see tests/servers/). Test configs always name their own resolvers and controls,
so nothing the engine does can leave the machine.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # `servers` package, whatever the import mode

from msgreach_helpers import BLOCKED_SNI, msgreach_command, require_root  # noqa: E402,F401 - re-exported
from servers.dnsserver import Behaviour, DNSServer  # noqa: E402
from servers.hostile import (  # noqa: E402
    Fleet,
    answer_then_drip,
    answer_then_reset,
    close_after_hello,
    garbage_after_hello,
    http_handler,
    not_tls,
    oversized_hello,
    reset_after_hello,
    silent,
    sni_front,
)
from servers.loop import ServerLoop  # noqa: E402
from servers.socks5 import Socks5Proxy  # noqa: E402
from servers.testca import Leaf, TestCA  # noqa: E402

LOOPBACK = "127.0.0.1"
CONTROL_HOST = "control.good.test"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: needs root to create a network namespace (mrt-*)")
    # msgreach keeps history and evidence in a state directory by default (~/.local/state/msgreach):
    # never the tester's own, and never one shared with another session (session-wide servers
    # inherit this one; each test gets its own below).
    _SESSION_STATE.append(tempfile.mkdtemp(prefix="msgreach-test-state-"))
    os.environ["MSGREACH_STATE_DIR"] = _SESSION_STATE[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    for directory in _SESSION_STATE:
        shutil.rmtree(directory, ignore_errors=True)


_SESSION_STATE: list[str] = []


@pytest.fixture(autouse=True)
def _own_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test's `run`/`once` (in process or not) keeps its default state apart from the others'."""
    monkeypatch.setenv("MSGREACH_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@dataclass
class Env:
    """The loopback world the tests measure; session-scoped, mutate only DNS names you own."""

    loop: ServerLoop
    ca: TestCA
    leaves: dict[str, Leaf]
    dns: DNSServer  # the vantage's resolver (UDP/TCP, DoT, DoH)
    control_dns: DNSServer  # the control resolver
    dead_dns: DNSServer  # answers nothing, ever (do not set names on it)
    spare_dns: DNSServer  # another resolver, NXDOMAIN for any name a test did not set
    ports: dict[str, int]  # server name -> port on 127.0.0.1
    fleet: Fleet
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def socks5(self) -> Socks5Proxy:
        return self.fleet.socks5

    def resolve(self, name: str, vantage: dict[str, Any] | None = None, control: dict[str, Any] | None = None) -> None:
        """Set what the vantage and control resolvers say for `name` (default: 127.0.0.1)."""
        default = {"a": [LOOPBACK]}
        self.dns.set(name, **(default if vantage is None else vantage))
        self.control_dns.set(name, **(default if control is None else control))

    def target(self, name: str, host: str, server: str = "web", **fields: Any) -> dict[str, Any]:
        return {"name": name, "host": host, "ports": [self.ports[server]], **fields}

    def control_target(self) -> dict[str, Any]:
        return self.target("ctl", CONTROL_HOST, "web", checks=["dns", "tcp", "tls", "http"])

    def vantage(self, **fields: Any) -> dict[str, Any]:
        return {
            "name": "test-vantage",
            "country": "XX",
            "asn": "64500",
            "network": "loopback",
            "resolvers": [self.dns.address, {"address": self.control_dns.address, "control": True}],
            "bogon_exempt": ["127.0.0.0/8"],
            "ca_bundle": str(self.ca.pem),
            **fields,
        }

    def config(
        self,
        services: list[dict[str, Any]] | None = None,
        *,
        vantages: list[dict[str, Any]] | None = None,
        controls: list[dict[str, Any]] | None = None,
        schedule: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        timeouts = {"dns": 1.0, "tcp": 1.0, "tls": 1.0, "http": 2.0}
        base_schedule = {"interval_seconds": 60, "jitter_seconds": 0, "retries": 0, "round_deadline_seconds": 30, "timeouts": timeouts}
        for key, value in (schedule or {}).items():
            if key == "timeouts":
                base_schedule["timeouts"] = {**timeouts, **value}
            else:
                base_schedule[key] = value
        return {
            "vantages": vantages if vantages is not None else [self.vantage()],
            "schedule": base_schedule,
            "services": services if services is not None else [],
            "controls": controls if controls is not None else [self.control_target()],
            **extra,
        }

    def context(
        self,
        host: str,
        server: str = "web",
        *,
        vantage: dict[str, Any] | None = None,
        target: dict[str, Any] | None = None,
        service: dict[str, Any] | None | bool = None,
        fingerprints: Any = None,
        phase: Any = None,
        timeout: float = 1.0,
        decoy_sni: str = "example.org",
    ):
        """A check Context for one target, as the runner builds it (service=False: a control)."""
        from probe.checks.context import Context, ControlPhase
        from probe.config import Service, Target, Vantage
        from probe.net import Route

        vantage_model = Vantage.model_validate(self.vantage(**(vantage or {})))
        target_model = Target.model_validate(self.target("t", host, server, **(target or {})))
        service_model = None
        if service is not False:
            service_model = Service.model_validate({"name": "svc", "targets": [target_model.model_dump()], **(service or {})})
        ctx = Context(
            vantage=vantage_model,
            route=Route.of(vantage_model),
            service=service_model,
            target=target_model,
            fingerprints=fingerprints or shipped_fingerprints(),
            decoy_sni=decoy_sni,
            max_addresses=4,
            timeout=timeout,
            control_phase=phase or ControlPhase(),
        )
        if target_model.addresses:
            ctx.addresses, ctx.addresses_from = list(target_model.addresses), "pinned"
        return ctx

    def write(self, directory: Path, config: dict[str, Any], name: str = "msgreach.yaml") -> Path:
        path = directory / name
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
        return path

    def load(self, directory: Path, config: dict[str, Any]):
        from probe import config as config_module

        return config_module.load(self.write(directory, config))


def shipped_fingerprints():
    """The block-page fingerprints msgreach ships (configs/fingerprints/blockpages.yaml)."""
    from probe.config import Fingerprints, configs_dir

    return Fingerprints.model_validate(yaml.safe_load((configs_dir() / "fingerprints" / "blockpages.yaml").read_text()))


def _start(loop: ServerLoop, tmp: Path) -> Env:
    ca = TestCA(tmp / "pki")
    now = dt.datetime.now(dt.timezone.utc)
    leaves = {
        "valid": ca.issue("valid", ["good.test", "*.good.test", "dot.test", "doh.test", LOOPBACK]),
        "wrongname": ca.issue("wrongname", ["other.test", "*.other.test"]),
        "expired": ca.issue("expired", ["*.good.test"], not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)),
        "selfsigned": ca.self_signed("selfsigned", ["*.good.test"]),
    }
    fleet = Fleet()
    requests: list[tuple[str, str]] = []
    dns, control_dns, dead_dns, spare_dns = DNSServer(), DNSServer(), DNSServer(default=Behaviour(mode="drop")), DNSServer()

    async def start() -> dict[str, int]:
        await dns.start()
        await dns.start_dot(leaves["valid"].server_context())
        await dns.start_doh(leaves["valid"].server_context())
        await control_dns.start()
        await dead_dns.start()
        await spare_dns.start()
        handler = http_handler(fleet, requests)
        ports = {}
        _, ports["web"] = await fleet.serve(handler, LOOPBACK, context=leaves["valid"].server_context())
        _, ports["plain"] = await fleet.serve(handler, LOOPBACK)
        for kind in ("wrongname", "expired", "selfsigned"):
            _, ports[kind] = await fleet.serve(handler, LOOPBACK, context=leaves[kind].server_context())
        _, ports["reset"] = await fleet.serve(reset_after_hello, LOOPBACK)
        _, ports["hello_close"] = await fleet.serve(close_after_hello, LOOPBACK)
        _, ports["silent"] = await fleet.serve(silent, LOOPBACK)
        _, ports["answer_then_reset"] = await fleet.serve(answer_then_reset, LOOPBACK)
        _, ports["answer_then_drip"] = await fleet.serve(answer_then_drip, LOOPBACK)
        _, ports["not_tls"] = await fleet.serve(not_tls, LOOPBACK)
        _, ports["garbage_after_hello"] = await fleet.serve(garbage_after_hello, LOOPBACK)
        _, ports["oversized_hello"] = await fleet.serve(oversized_hello, LOOPBACK)
        _, ports["sni_front"] = await fleet.serve(sni_front({BLOCKED_SNI}, (LOOPBACK, ports["web"])), LOOPBACK)
        _, ports["sni_drop"] = await fleet.serve(sni_front({BLOCKED_SNI}, (LOOPBACK, ports["web"]), "drop"), LOOPBACK)
        socks = Socks5Proxy()
        _, ports["socks5"] = await fleet.serve(socks.handle, LOOPBACK)
        fleet.socks5 = socks
        _, ports["refused"] = fleet.refused(LOOPBACK)
        _, ports["blackhole"] = fleet.blackhole(LOOPBACK)
        return ports

    ports = loop.call(start())
    env = Env(loop, ca, leaves, dns, control_dns, dead_dns, spare_dns, ports, fleet, requests)
    env.resolve(CONTROL_HOST)
    return env


@pytest.fixture(scope="session")
def server_loop():
    loop = ServerLoop()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def env(server_loop: ServerLoop, tmp_path_factory: pytest.TempPathFactory) -> Env:
    env = _start(server_loop, tmp_path_factory.mktemp("env"))
    yield env

    async def close() -> None:
        for server in (env.dns, env.control_dns, env.dead_dns, env.spare_dns):
            await server.close()
        await env.fleet.close()

    server_loop.call(close())


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def msgreach():
    """Run the CLI: msgreach("once", "--config", path, timeout=30) -> CompletedProcess."""

    def run(*args: str, timeout: float = 60, prefix: list[str] = (), env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *msgreach_command(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    return run
