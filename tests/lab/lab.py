"""The censorship lab: four network namespaces wired through a censor, real servers, named scenarios.

    mrl-client ── mrl-censor ──┬── mrl-servers   nginx (TLS + HTTP for every catalog host), dnsmasq (the "internet" DNS)
      msgreach     nftables,   └── mrl-resolver  unbound ×2: the vantage's ISP resolver, the DoT control resolver
                   iptables, nginx (block pages, MITM)

The censor routes everything between the client and the rest; no namespace has a route out of
198.18.0.0/15, and no namespace is connected to the host's own network. Every name and
interface starts with `mrl-`; `down()` (and `cleanup_stale()` before every `up()`) removes all of
them and every process started inside them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import pki
from .plan import (
    AUTHORITY,
    BLOCKPAGE,
    CENSOR_CLIENT,
    CENSOR_RESOLVER,
    CENSOR_SERVERS,
    CLIENT,
    CONTROL_RESOLVER,
    CONTROL_RESOLVER_NAME,
    DOMESTIC_FRONT,
    IF_CENSOR_CLIENT,
    IF_CENSOR_RESOLVER,
    IF_CENSOR_SERVERS,
    IF_CLIENT,
    IF_RESOLVER,
    IF_SERVERS,
    ISP_RESOLVER,
    LAB_NET,
    LAB_NET6,
    MITM,
    NAMESPACES,
    NS_CENSOR,
    NS_CLIENT,
    NS_RESOLVER,
    NS_SERVERS,
    PREFIX,
    REPO,
    RESOLVER,
    SERVERS,
    Plan,
    load_plan,
    v6,
    v6_network,
)

DEFAULT_STATE_DIR = Path(os.environ.get("MRL_LAB_DIR", f"/tmp/{PREFIX}lab"))
TOOLS = ("ip", "nft", "iptables", "conntrack", "tc", "openssl", "nginx", "dnsmasq", "unbound", "unbound-control", "ss", "turnserver", "curl")
LARGE_BYTES = 1024 * 1024
UPLOAD_PATH = "/upload"  # every lab web host takes a POST or PUT body there (tests of freezes on uploads)


class LabError(RuntimeError):
    pass


def sh(argv: list[str], *, check: bool = True, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def in_ns(ns: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return sh(["ip", "netns", "exec", ns, *argv], **kwargs)


def lab_namespaces() -> list[str]:
    out = sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(PREFIX)]


def lab_links() -> list[str]:
    """`mrl-` interfaces in the host's own namespace (there should never be any)."""
    out = sh(["ip", "-o", "link", "show"], check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(PREFIX):
                names.append(name)
    return names


def ns_pids(ns: str) -> list[int]:
    out = sh(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _kill(pids: list[int], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL what is left: only the given pids (processes this lab started)."""
    pids = [p for p in pids if p != os.getpid() and _alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        _reap()
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def leftovers() -> dict[str, list]:
    """What of a lab exists on this host right now (empty lists: nothing)."""
    namespaces = lab_namespaces()
    return {
        "namespaces": namespaces,
        "links": lab_links(),
        "processes": [pid for ns in namespaces for pid in ns_pids(ns)],
    }


def cleanup_stale(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, list]:
    """Remove any lab left behind (a crashed run, a killed shell): processes in `mrl-` namespaces,
    the namespaces, `mrl-` links in the host namespace, recorded daemons. Returns what it found."""
    found = leftovers()
    recorded: list[int] = []
    state = state_dir / "state.json"
    if state.is_file():
        try:
            data = json.loads(state.read_text())
            recorded = [int(p) for p in data.get("pids", {}).values()]
            recorded += [int(p) for s in data.get("scenarios", {}).values() for p in s.get("pids", [])]
        except (ValueError, OSError):
            pass
    # Only processes inside lab namespaces or recorded by this lab, never anything matched by name.
    recorded = [p for p in recorded if _ours(p, state_dir)]
    _kill(sorted(set(found["processes"]) | set(recorded)))
    for ns in found["namespaces"]:
        sh(["ip", "netns", "delete", ns], check=False)
    for link in lab_links():
        sh(["ip", "link", "delete", link], check=False)
    # The state directory goes too (keys, logs), unless MRL_LAB_KEEP asks to keep it for a
    # post-mortem; only a directory that holds a lab state file is ever removed.
    if state.is_file():
        if os.environ.get("MRL_LAB_KEEP"):
            state.unlink(missing_ok=True)
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    return found


def _ours(pid: int, state_dir: Path) -> bool:
    """A recorded pid is still the lab's process: in a lab namespace, or started with a path
    inside the lab's state directory on its command line (every lab daemon is)."""
    if not _alive(pid):
        return False
    if _in_lab_ns(pid):
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return str(state_dir) in cmdline


def _in_lab_ns(pid: int) -> bool:
    """Is the process in one of the lab's namespaces? (inode comparison, no name matching)"""
    try:
        mine = os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return False
    for ns in lab_namespaces():
        try:
            if os.stat(f"/run/netns/{ns}").st_ino == mine:
                return True
        except OSError:
            continue
    return False


def acquire_lock(state_dir: Path, wait: float) -> int:
    """One lab session at a time: the namespaces have fixed names, and a second session's
    stale-lab cleanup would tear the first one's lab down under it. Waits up to `wait` seconds
    for the holder (a pytest session, `up --hold`); returns the lock's file descriptor."""
    path = Path(f"{state_dir}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = Path(path).read_text().strip() or "?"
                os.close(fd)
                raise LabError(f"another lab session (pid {holder}) holds {path}; waited {wait:.0f} s") from None
            time.sleep(1)


def _add_addresses(ns: str, prefixes: list[str]) -> None:
    """Many addresses on a namespace's loopback in one `ip -batch` (one process, not one each)."""
    lines = "".join(f"address add {p} dev lo{' nodad' if ':' in p else ''}\n" for p in prefixes)
    in_ns(ns, ["ip", "-batch", "-"], input=lines)


def set_wire_segments(on: bool, interfaces: list[tuple[str, str]]) -> None:
    """Segment like a wire (on) or like a veth (off) on the given (namespace, interface) ends.

    A veth hands TCP's large GSO buffers to the censor whole: a 64 KB upload crosses it as about
    five packets. A censor counting packets (`ct packets`) needs what a real line carries, one
    packet per MSS: `gso_max_segs 1` makes the sender segment before the veth."""
    for ns, interface in interfaces:
        in_ns(ns, ["ip", "link", "set", "dev", interface, "gso_max_segs", "1" if on else "65535"], check=False)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class Lab:
    def __init__(self, state_dir: Path | str = DEFAULT_STATE_DIR):
        self.dir = Path(state_dir)
        self.plan: Plan = load_plan()
        self.state: dict[str, Any] = {"pids": {}, "scenarios": {}}
        self._lock: int | None = None
        if (self.dir / "state.json").is_file():
            self.state = json.loads((self.dir / "state.json").read_text())

    # --- paths --------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.dir / "msgreach-lab.yaml"

    @property
    def ca_path(self) -> Path:
        return self.dir / "pki" / "ca.pem"

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.dir / "state.json")

    @property
    def is_up(self) -> bool:
        return set(NAMESPACES) <= set(lab_namespaces()) and (self.dir / "state.json").is_file()

    # --- bring up -----------------------------------------------------------------------------

    def up(self, wait: float = 0) -> Lab:
        """Build the lab. `wait`: seconds to wait for another session's lock (see acquire_lock);
        the lock is held until `down()` or the end of this process."""
        missing = missing_tools()
        if missing:
            raise LabError(f"the lab needs these commands, not found: {', '.join(missing)}")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, nftables)")
        if self._lock is None:
            self._lock = acquire_lock(self.dir, wait)
        cleanup_stale(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = {"pids": {}, "scenarios": {}, "started_at": time.time()}
        self._save()
        try:
            self._network()
            certs = pki.build(self.dir / "pki", sorted(self.plan.hosts), CONTROL_RESOLVER_NAME)
            self._authority()
            self._resolvers(certs)
            self._servers(certs)
            self._censor_servers(certs)
            self._wait_ready()
            self.write_config(self.config_path)
        except BaseException:
            self.down()
            raise
        return self

    def _network(self) -> None:
        for ns in NAMESPACES:
            sh(["ip", "netns", "add", ns])
            in_ns(ns, ["ip", "link", "set", "lo", "up"])
            # IPv6 (ULA twins of every address, tests/lab/plan.py): no duplicate-address wait, no
            # router advertisements taken (there are none: every route is static).
            in_ns(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
                       "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                       "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"])
        links = [
            (IF_CENSOR_CLIENT, CENSOR_CLIENT, NS_CLIENT, IF_CLIENT, CLIENT),
            (IF_CENSOR_SERVERS, CENSOR_SERVERS, NS_SERVERS, IF_SERVERS, SERVERS),
            (IF_CENSOR_RESOLVER, CENSOR_RESOLVER, NS_RESOLVER, IF_RESOLVER, RESOLVER),
        ]
        for censor_if, censor_ip, ns, peer_if, peer_ip in links:
            sh(["ip", "link", "add", censor_if, "netns", NS_CENSOR, "type", "veth", "peer", "name", peer_if, "netns", ns])
            in_ns(NS_CENSOR, ["ip", "addr", "add", f"{censor_ip}/24", "dev", censor_if])
            in_ns(NS_CENSOR, ["ip", "link", "set", censor_if, "up"])
            in_ns(ns, ["ip", "addr", "add", f"{peer_ip}/24", "dev", peer_if])
            in_ns(ns, ["ip", "link", "set", peer_if, "up"])
            in_ns(NS_CENSOR, ["ip", "addr", "add", f"{v6(censor_ip)}/64", "dev", censor_if, "nodad"])
            in_ns(ns, ["ip", "addr", "add", f"{v6(peer_ip)}/64", "dev", peer_if, "nodad"])
            # The censor is every namespace's only way anywhere; it has no default route itself.
            in_ns(ns, ["ip", "route", "add", "default", "via", censor_ip])
            in_ns(ns, ["ip", "-6", "route", "add", "default", "via", v6(censor_ip)])
        _add_addresses(NS_SERVERS, [f"{a}/32" for a in self.plan.server_addresses] + [f"{a}/128" for a in self.plan.addresses6])
        _add_addresses(NS_RESOLVER, [f"{a}/32" for a in (ISP_RESOLVER, CONTROL_RESOLVER)])
        _add_addresses(NS_CENSOR, [f"{a}/32" for a in (BLOCKPAGE, MITM)] + [f"{v6(a)}/128" for a in (BLOCKPAGE, MITM)])
        in_ns(NS_CENSOR, ["ip", "route", "add", "198.19.0.0/16", "via", SERVERS])
        in_ns(NS_CENSOR, ["ip", "route", "add", "198.18.53.0/24", "via", RESOLVER])
        in_ns(NS_CENSOR, ["ip", "-6", "route", "add", v6_network("198.19.0.0/16"), "via", v6(SERVERS)])
        in_ns(
            NS_CENSOR,
            ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.netfilter.nf_conntrack_acct=1",
             "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
             "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000",
             "net.ipv6.conf.all.forwarding=1", "net.ipv6.icmp.ratelimit=0"],
        )

    def spawn(self, key: str, ns: str, argv: list[str], *, log: str | None = None) -> int:
        """Start a daemon in a namespace (foreground mode), record its pid, return it."""
        logfile = open(self.dir / (log or f"{key}.log"), "ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )
        logfile.close()
        self.state["pids"][key] = proc.pid  # `ip netns exec` execs the command: same pid
        self._save()
        return proc.pid

    def _authority(self) -> None:
        d = self.dir / "dnsmasq"
        d.mkdir(exist_ok=True)
        hosts = "".join(f"{address} {name}\n" for name, address in sorted(self.plan.records().items()))
        hosts += "".join(f"{address} {name}\n" for name, address in sorted(self.plan.records6().items()))  # AAAA
        (d / "hosts").write_text(hosts)
        (d / "dnsmasq.conf").write_text(
            "\n".join(
                [
                    "no-resolv", "no-hosts", "no-poll", "bind-interfaces", f"listen-address={AUTHORITY}", "port=53",
                    f"addn-hosts={d / 'hosts'}", "local=/#/", "local-ttl=0", "user=root", "group=root",
                    f"pid-file={d / 'dnsmasq.pid'}", "log-queries", f"log-facility={d / 'queries.log'}", "",
                ]
            )
        )
        self.spawn("dnsmasq", NS_SERVERS, ["dnsmasq", "-k", f"--conf-file={d / 'dnsmasq.conf'}"])

    def _unbound_conf(self, name: str, listen: list[str], extra: list[str]) -> Path:
        d = self.dir / f"unbound-{name}"
        d.mkdir(exist_ok=True)
        lines = [
            "server:",
            "  verbosity: 1",
            "  use-syslog: no",
            '  logfile: ""',
            '  chroot: ""',
            '  username: ""',
            f'  directory: "{d}"',
            f'  pidfile: "{d}/unbound.pid"',
            "  num-threads: 1",
            "  do-ip6: no",
            "  interface-automatic: no",
            *[f"  interface: {item}" for item in listen],
            "  access-control: 198.18.0.0/15 allow",
            '  module-config: "iterator"',
            "  do-not-query-localhost: no",
            "  qname-minimisation: no",
            "  cache-max-ttl: 0",
            "  cache-max-negative-ttl: 0",
            "  so-reuseport: no",
            # A public resolver takes many connections at once: msgreach opens one DoT
            # connection per query, and on a slow line they overlap (the default 10 resets them).
            "  incoming-num-tcp: 1024",
            "  outgoing-num-tcp: 64",
            "  num-queries-per-thread: 4096",
            *[f"  {item}" for item in extra],
            "remote-control:",
            "  control-enable: yes",
            f'  control-interface: "{d}/control.sock"',
            "forward-zone:",
            '  name: "."',
            f"  forward-addr: {AUTHORITY}",
            "",
        ]
        conf = d / "unbound.conf"
        conf.write_text("\n".join(lines))
        return conf

    def _resolvers(self, certs: dict[str, tuple[Path, Path]]) -> None:
        isp = self._unbound_conf("isp", [f"{ISP_RESOLVER}@53"], [])
        key, pem = certs["dot"]
        control = self._unbound_conf(
            "control",
            [f"{CONTROL_RESOLVER}@853"],
            ["tls-port: 853", f'tls-service-key: "{key}"', f'tls-service-pem: "{pem}"'],
        )
        sh(["unbound-checkconf", str(isp)])
        sh(["unbound-checkconf", str(control)])
        self.spawn("unbound-isp", NS_RESOLVER, ["unbound", "-d", "-c", str(isp)])
        self.spawn("unbound-control", NS_RESOLVER, ["unbound", "-d", "-c", str(control)])

    def unbound(self, name: str, *args: str, check: bool = True) -> str:
        """`unbound-control` on the `isp` or `control` resolver (a unix socket: no namespace needed)."""
        conf = self.dir / f"unbound-{name}" / "unbound.conf"
        return sh(["unbound-control", "-c", str(conf), *args], check=check).stdout

    def _servers(self, certs: dict[str, tuple[Path, Path]]) -> None:
        d = self.dir / "nginx-servers"
        (d / "www").mkdir(parents=True, exist_ok=True)
        (d / "www" / "large").write_bytes(os.urandom(LARGE_BYTES))
        sink = d / "upload-sink.sock"
        servers = [_upload_sink(sink)]
        # One server block per host, listening on the host's own addresses only (IPv4 and its
        # IPv6 twin): a handshake with any other SNI (the decoy) gets that host's certificate, as
        # on a real front.
        for host, ports in sorted(self.plan.web().items()):
            addresses = [self.plan.hosts[host], f"[{v6(self.plan.hosts[host])}]"]
            key, pem = certs[host]
            listens = [f"{a}:{p} ssl" if p == 443 else f"{a}:{p}" for a in addresses for p in sorted(set(ports) | {80, 443})]
            servers.append(_server(listens, host, pem, key, d / "www", f"msgreach lab: {host}", self.plan.paths, sink))
        # The domestic front: every catalog name, each with its own certificate, at one domestic
        # address (a foreign name served from domestic hosting, for allowlists keyed on addresses).
        for host in sorted(self.plan.web()):
            key, pem = certs[host]
            listens = [f"{a}:443 ssl" for a in (DOMESTIC_FRONT, f"[{v6(DOMESTIC_FRONT)}]")]
            servers.append(_server(listens, host, pem, key, d / "www", f"msgreach lab: {host} (domestic front)", self.plan.paths, sink))
        (d / "nginx.conf").write_text(_nginx_conf(d, servers))
        self._start_nginx("nginx-servers", NS_SERVERS, d)
        self._standins(certs)
        self._stun()

    def _standins(self, certs: dict[str, tuple[Path, Path]]) -> None:
        """The services' own protocols (tests/lab/standins.py): chat, MTProto, HTTP/3."""
        by_address = {a: h for h, a in self.plan.hosts.items()}
        spec = []
        for role, address, port in self.plan.endpoints:
            if role in ("chat", "mtproto", "h3"):
                for served in filter(None, (address, self.plan.twin6(address))):
                    item: dict[str, Any] = {"role": role, "address": served, "port": port}
                    if role == "h3":
                        key, pem = certs[by_address[address]]
                        item.update(cert=str(pem), key=str(key))
                    spec.append(item)
        if not spec:
            return
        path = self.dir / "standins.json"
        path.write_text(json.dumps(spec, indent=1))
        self.spawn("standins", NS_SERVERS, [sys.executable, str(Path(__file__).with_name("standins.py")), str(path)])

    def _stun(self) -> None:
        """coturn in STUN-only mode for every STUN endpoint (one instance per port)."""
        ports: dict[int, list[str]] = {}
        for role, address, port in self.plan.endpoints:
            if role == "stun":
                ports.setdefault(port, []).append(address)
        for port, addresses in sorted(ports.items()):
            d = self.dir / f"coturn-{port}"
            d.mkdir(exist_ok=True)
            argv = ["turnserver", "-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--simple-log",
                    "--log-file", "stdout", "--pidfile", str(d / "turnserver.pid"), "-p", str(port)]
            for address in addresses:
                argv += ["-L", address]
                if (twin := self.plan.twin6(address)) is not None:
                    argv += ["-L", twin]
            self.spawn(f"coturn-{port}", NS_SERVERS, argv)

    def _censor_servers(self, certs: dict[str, tuple[Path, Path]]) -> None:
        """The censor's own servers: block pages (HTTP) and the MITM TLS endpoint."""
        d = self.dir / "nginx-censor"
        d.mkdir(parents=True, exist_ok=True)
        page = (
            "<html><head><title>Доступ ограничен</title></head><body>"
            "<p>Доступ к ресурсу ограничен на основании Федерального закона от 27.07.2006 № 149-ФЗ</p>"
            "<p>msgreach lab block page</p></body></html>"
        )
        redirect_names = " ".join(self.plan.redirect_hosts) or "warning.rt.ru"
        bp_key, bp_pem = certs["blockpage"]
        mitm_key, mitm_pem = certs["mitm"]
        wrong_key, wrong_pem = certs["wrongname"]
        bp6, mitm6 = f"[{v6(BLOCKPAGE)}]", f"[{v6(MITM)}]"  # the same servers on the IPv6 twins
        servers = [
            # A transparent proxy's answer for a blocked plain-HTTP site: redirect to the ISP page.
            f"server {{ listen {BLOCKPAGE}:80 default_server; listen {bp6}:80 default_server; location / {{ return 302 http://warning.rt.ru/?id=msgreach-lab; }} }}",
            # The block-page hosts themselves (followed redirects, DNS block-page answers).
            f"server {{ listen {BLOCKPAGE}:80; listen {bp6}:80; server_name {redirect_names}; location / {{ return 200 '{page}'; }} }}",
            f"server {{ listen {BLOCKPAGE}:8451; listen {bp6}:8451; location / {{ return 451 'Unavailable For Legal Reasons (msgreach lab)'; }} }}",
            f"server {{ listen {BLOCKPAGE}:8200; listen {bp6}:8200; location / {{ return 200 '{page}'; }} }}",
            f"server {{ listen {BLOCKPAGE}:443 ssl; listen {bp6}:443 ssl; ssl_certificate {bp_pem}; ssl_certificate_key {bp_key}; "
            f"location / {{ return 302 http://warning.rt.ru/?id=msgreach-lab; }} }}",
            f"server {{ listen {MITM}:443 ssl; listen {mitm6}:443 ssl; ssl_certificate {mitm_pem}; ssl_certificate_key {mitm_key}; "
            f"location / {{ return 200 'intercepted by the lab censor'; }} }}",
            f"server {{ listen {MITM}:8443 ssl; listen {mitm6}:8443 ssl; ssl_certificate {wrong_pem}; ssl_certificate_key {wrong_key}; "
            f"location / {{ return 200 'intercepted by the lab censor'; }} }}",
        ]
        (d / "nginx.conf").write_text(_nginx_conf(d, servers))
        self._start_nginx("nginx-censor", NS_CENSOR, d)

    def _start_nginx(self, key: str, ns: str, d: Path) -> None:
        in_ns(ns, ["nginx", "-t", "-q", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")])
        self.spawn(key, ns, ["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf"), "-g", "daemon off;"])

    def _wait_ready(self, timeout: float = 20.0) -> None:
        servers = {f"{AUTHORITY}:53", f"{DOMESTIC_FRONT}:443", f"[{v6(DOMESTIC_FRONT)}]:443"}
        for _role, address, port in self.plan.endpoints:
            servers.add(f"{address}:{port}")
            if (twin := self.plan.twin6(address)) is not None:
                servers.add(f"[{twin}]:{port}")
        for host in self.plan.web():
            address = self.plan.hosts[host]
            servers |= {f"{address}:443", f"{address}:80", f"[{v6(address)}]:443", f"[{v6(address)}]:80"}
        expected = {
            NS_SERVERS: servers,
            NS_RESOLVER: {f"{ISP_RESOLVER}:53", f"{CONTROL_RESOLVER}:853"},
            NS_CENSOR: {f"{BLOCKPAGE}:80", f"{MITM}:443", f"[{v6(BLOCKPAGE)}]:80", f"[{v6(MITM)}]:443"},
        }
        deadline = time.monotonic() + timeout
        missing: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            for key, pid in self.state["pids"].items():
                if not _alive(pid):
                    log = (self.dir / f"{key}.log").read_text(errors="replace")[-2000:]
                    raise LabError(f"{key} exited during lab start-up; its log:\n{log}")
            missing = {}
            for ns, want in expected.items():
                listening = {
                    line.split()[4].replace("0.0.0.0:", "*:")
                    for line in in_ns(ns, ["ss", "-Hlntu"]).stdout.splitlines()
                    if len(line.split()) > 4
                }
                if not want <= listening:
                    missing[ns] = want - listening
            if not missing:
                return
            time.sleep(0.1)
        raise LabError(f"lab servers not listening after {timeout:.0f} s: {missing}")

    # --- tear down ------------------------------------------------------------------------------

    def down(self) -> None:
        """Always safe to call, any number of times."""
        cleanup_stale(self.dir)  # kills the recorded daemons (and anything else in the namespaces)
        self.state = {"pids": {}, "scenarios": {}}
        if self._lock is not None:
            os.close(self._lock)  # closing releases the flock
            self._lock = None

    # --- scenarios --------------------------------------------------------------------------------

    def scenario(self, name: str, on: bool = True, targets: list[str] | None = None, options: dict[str, str] | None = None) -> None:
        """Switch a scenario on (for `targets`, else its default ones) or off. `options`: the
        scenario's own settings (e.g. `seconds` of a lingering block), kept with it while on."""
        from .scenarios import SCENARIOS, load_catalogue

        load_catalogue()
        if name not in SCENARIOS:
            raise LabError(f"no scenario {name!r}; known: {', '.join(SCENARIOS)}")
        if not self.is_up:
            raise LabError("the lab is not up (python -m tests.lab up)")
        scenario = SCENARIOS[name]
        active = self.state["scenarios"]
        if on:
            if name in active:
                self.scenario(name, on=False)
            chosen = targets or list(scenario.default_targets)
            selected = self.plan.select(chosen)
            active[name] = {"targets": chosen, "pids": [], "options": dict(options or {})}
            self._save()
            try:
                scenario.apply(self, selected, active[name])
            except BaseException:
                scenario.lift(self, selected, active[name])
                active.pop(name, None)
                self._save()
                raise
            finally:
                self.forget_flows()
            self._save()
        else:
            if name not in active:
                return
            entry = active[name]
            scenario.lift(self, self.plan.select(entry["targets"]), entry)
            _kill([p for p in entry.get("pids", []) if _ours(p, self.dir)])
            active.pop(name)
            self._save()
            self.forget_flows()

    def forget_flows(self) -> None:
        """Empty the censor's connection tracking table. NAT and `ct` rules act on a flow's first
        packet only, and a flow an earlier scenario left behind (ESTABLISHED after sni-drop-after
        dropped its FIN) outlives its socket: a new SYN that happens to reuse that source port is
        taken as part of the old flow, which skips a new scenario's DNAT (the tls-mitm matrix once
        saw the real server on a retry). Each scenario change starts from no flows."""
        in_ns(NS_CENSOR, ["conntrack", "--flush"])

    def clear_scenarios(self) -> None:
        for name in list(self.state.get("scenarios", {})):
            self.scenario(name, on=False)

    @property
    def active_scenarios(self) -> dict[str, list[str]]:
        return {name: entry["targets"] for name, entry in self.state.get("scenarios", {}).items()}

    # --- msgreach config ------------------------------------------------------------------------

    def config_data(
        self,
        *,
        interval: float = 60,
        timeouts: dict[str, float] | None = None,
        retries: int = 1,
        deadline: float | None = 55,
        listen: str = "127.0.0.1:9910",
    ) -> dict[str, Any]:
        """The lab config: the shipped catalogs unchanged; only resolvers, CA bundle, pinned
        addresses, the bogon exemption and the lab's block-page address differ."""
        services = []
        default = yaml.safe_load((REPO / "configs" / "default.yaml").read_text()) or {}
        names = [s["catalog"] for s in default.get("services", []) if "catalog" in s] or [
            c for c in self.plan.catalogs() if c != "controls"
        ]
        for catalog in names:
            entry: dict[str, Any] = {"catalog": catalog}
            patch = {
                t.name: {"addresses": [t.pinned[a] for a in t.pinned]}
                for t in self.plan.targets
                if t.catalog == catalog and t.pinned
            }
            if patch:
                entry["patch"] = patch
            services.append(entry)
        schedule: dict[str, Any] = {
            "interval_seconds": interval,
            "jitter_seconds": 0,
            "retries": retries,
            "timeouts": timeouts or {"dns": 3, "tcp": 3, "tls": 4, "http": 5, "default": 10},
        }
        if deadline is not None:
            schedule["round_deadline_seconds"] = deadline
        return {
            "vantages": [
                {
                    "name": "lab-client",
                    "country": "RU",
                    "network": "msgreach censorship lab",
                    "resolvers": [
                        ISP_RESOLVER,
                        {"address": f"tls://{CONTROL_RESOLVER}", "server_name": CONTROL_RESOLVER_NAME, "control": True},
                    ],
                    "ca_bundle": str(self.ca_path),
                    "bogon_exempt": [str(LAB_NET), str(LAB_NET6)],
                }
            ],
            "schedule": schedule,
            "listen": {"address": listen},
            "services": services,
            "controls": None,
            "extra_fingerprints": {"dns_addresses": [BLOCKPAGE, v6(BLOCKPAGE)]},
            # Every round the lab runs is archived: tests/lab/test_matrix.py judges it again.
            "evidence": {"path": str(self.dir / "evidence.jsonl")},
        }

    def write_config(self, path: Path | str, **kwargs: Any) -> Path:
        path = Path(path)
        data = self.config_data(**kwargs)
        header = "# msgreach lab config, written by `python -m tests.lab up` (tests/lab/lab.py). Do not edit.\n"
        path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return path

    # --- running things in the client namespace -----------------------------------------------

    def client(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return in_ns(NS_CLIENT, argv, **kwargs)

    def msgreach_argv(self) -> list[str]:
        """How to run msgreach: $MSGREACH (a command line), else the console script installed next
        to this interpreter, else this interpreter's `-m probe`."""
        override = os.environ.get("MSGREACH")
        if override:
            return override.split()
        script = Path(sys.executable).parent / "msgreach"
        return [str(script)] if script.exists() else [sys.executable, "-m", "probe"]


def _server(listens: list[str], name: str | None, pem: Path, key: Path, root: Path, body: str, paths: list[str] = (),
            sink: Path | None = None) -> str:
    lines = [f"listen {item};" for item in listens]
    if name:
        lines.append(f"server_name {name};")
    lines += [
        f"ssl_certificate {pem};",
        f"ssl_certificate_key {key};",
        f"location = /large {{ alias {root / 'large'}; }}",
        # Uploads (POST or PUT, up to 4 MB): the body is read whole before the answer (buffered
        # for the sink, which answers with its length), so an answer means the upload arrived.
        *([f"location = {UPLOAD_PATH} {{ client_max_body_size 4m; client_body_buffer_size 4m; proxy_request_buffering on; "
           f"proxy_pass http://unix:{sink}:/sink; }}"] if sink else []),
        # the objects the throughput checks download, on every host (the decoy SNI too)
        *[f"location = {path} {{ default_type application/octet-stream; alias {root / 'large'}; }}" for path in paths if path != "/"],
        f"location / {{ return 200 '{body}'; }}",
    ]
    return "server {\n    " + "\n    ".join(lines) + "\n}"


def _upload_sink(sink: Path) -> str:
    """Where `UPLOAD_PATH` bodies end, on a unix socket: the front already holds the whole body."""
    return f"server {{ listen unix:{sink}; location = /sink {{ return 200 '$content_length bytes received\\n'; }} }}"


def _nginx_conf(d: Path, servers: list[str]) -> str:
    return "\n".join(
        [
            "worker_processes 1;",
            f"pid {d / 'nginx.pid'};",
            f"error_log {d / 'error.log'} info;",
            "events { worker_connections 1024; }",
            "http {",
            f"  access_log {d / 'access.log'};",
            f"  client_body_temp_path {d / 'tmp-body'};",
            f"  proxy_temp_path {d / 'tmp-proxy'};",
            f"  fastcgi_temp_path {d / 'tmp-fastcgi'};",
            f"  uwsgi_temp_path {d / 'tmp-uwsgi'};",
            f"  scgi_temp_path {d / 'tmp-scgi'};",
            "  default_type text/html;",
            "  charset utf-8;",
            "  server_tokens off;",
            "  keepalive_timeout 10;",
            "  ssl_protocols TLSv1.2 TLSv1.3;",
            "  server_names_hash_bucket_size 128;",
            *["  " + s.replace("\n", "\n  ") for s in servers],
            "}",
            "",
        ]
    )
