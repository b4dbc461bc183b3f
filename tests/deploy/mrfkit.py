"""Shared by the deploy/fleet/safety tests: network namespaces prefixed `mrf-` (never with an
uplink), processes that are always stopped, certificates, local servers, waiting for HTTP.

Nothing here sends a packet beyond this machine: every namespace made here has only loopback,
dummy interfaces or veth pairs between two `mrf-` namespaces.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the helpers every test shares (also in subprocesses)

from msgreach_helpers import free_port, skip_unless_ci, under_ci  # noqa: E402,F401 - re-exported to the deploy tests

PREFIX = "mrf-"
IN_CI = under_ci()


def require(condition: bool, why: str) -> None:
    """Skip when a prerequisite is missing, except in CI, where a missing prerequisite fails."""
    if not condition:
        skip_unless_ci(why)


def require_root_netns() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces)")
    require(shutil.which("ip") is not None, "needs iproute2 (`ip`)")


def msgreach_argv(*args: str) -> list[str]:
    """The working tree's msgreach (not whatever is installed): `python -m probe`."""
    return [sys.executable, "-m", "probe", *args]


def msgreach_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env




def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


class Processes:
    """Starts processes with their output in files, and stops every one of them, by pid."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], *, netns: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
        log = self.directory / f"{name}.log"
        handle = open(log, "ab")
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        handle.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        if proc.popen.poll() is None:
            try:
                os.kill(proc.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(10)
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


# --- namespaces --------------------------------------------------------------------------------


@dataclass
class Netns:
    name: str
    addresses: list[str] = field(default_factory=list)  # "ADDR/PREFIX" on the namespace's link

    def exec(self, *argv: str, timeout: float = 60, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check, capture_output=True, text=True, timeout=timeout, input=input)


def _delete_netns(name: str) -> None:
    # Processes we started there are stopped by their owners first; `ip netns del` then frees it.
    ip("netns", "del", name, check=False)


@contextmanager
def netns(tag: str) -> Iterator[Netns]:
    """A fresh namespace `mrf-<tag>-<pid>` with loopback up and nothing else (no uplink)."""
    require_root_netns()
    name = f"{PREFIX}{tag}-{os.getpid()}"
    _delete_netns(name)
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield Netns(name)
    finally:
        _delete_netns(name)


def link(a: Netns, b: Netns, a_addresses: list[str], b_addresses: list[str]) -> None:
    """A veth pair between two mrf- namespaces (neither has any other link: still no uplink)."""
    tag = str(os.getpid())[-6:]
    left, right = f"mrfa{tag}", f"mrfb{tag}"
    ip("link", "add", left, "netns", a.name, "type", "veth", "peer", "name", right, "netns", b.name)
    for ns, dev, addresses in ((a, left, a_addresses), (b, right, b_addresses)):
        for address in addresses:
            extra = ["nodad"] if ipaddress.ip_interface(address).version == 6 else []
            ip("-n", ns.name, "addr", "add", address, "dev", dev, *extra)
            ns.addresses.append(address)
        ip("-n", ns.name, "link", "set", dev, "up")


def leftover_namespaces() -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX) and line.split()[0].endswith(f"-{os.getpid()}")]


# --- certificates (made with `cryptography`, an engine dependency) -----------------------------


def make_pki(directory: Path, names: list[str], addresses: list[str] = ()) -> dict[str, Path]:
    """A throwaway CA and one server certificate for `names` / `addresses`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mrf test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else addresses[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(paths["key"], 0o600)
    return paths


# --- the centre's gateway ---------------------------------------------------------------------


def gateway_config(directory: Path, listen: str, central: str, tls: dict[str, Path], users: Path) -> Path:
    """The shipped deploy/central/gateway/nginx.conf with the container's paths and names swapped
    for a test's: `listen` (HOST:PORT), the central Prometheus at `central` (HOST:PORT), Grafana
    nowhere (its side is not part of these tests)."""
    text = (REPO / "deploy" / "central" / "gateway" / "nginx.conf").read_text()
    tmp = directory / "nginx-tmp"
    tmp.mkdir(exist_ok=True)
    replacements = {
        "server prometheus:9090;": f"server {central};",
        "server grafana:3000;": f"server 127.0.0.1:{free_port()};",
        "listen 8443 ssl;": f"listen {listen} ssl;",
        "/etc/nginx/tls/fullchain.pem": str(tls["cert"]),
        "/etc/nginx/tls/privkey.pem": str(tls["key"]),
        "/etc/nginx/secrets/volunteers.htpasswd": str(users),
        "/tmp/nginx": f"{tmp}/nginx",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    config = directory / "nginx.conf"
    config.write_text(text)
    return config


# --- HTTP --------------------------------------------------------------------------------------


def http_get(url: str, *, auth: tuple[str, str] | None = None, cafile: Path | None = None, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; status 0 and the error text when nothing answered."""
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


CONTRACT_FAMILIES = (
    "msgreach_check_success",
    "msgreach_check_duration_seconds",
    "msgreach_target_verdict",
    "msgreach_service_verdict",
    "msgreach_service_reachable_ratio",
    "msgreach_vantage_online",
    "msgreach_round_duration_seconds",
    "msgreach_last_round_timestamp_seconds",
    "msgreach_rounds_total",
    "msgreach_vantage_info",
    "msgreach_build_info",
)
