"""The lab's address plan, derived from the shipped catalogs (never hardcoded per host).

Everything lives in 198.18.0.0/15 (RFC 2544 benchmarking space, a bogon nobody routes):

    198.18.0.0/24   client link      censor .1   client .2
    198.18.1.0/24   servers link     censor .1   servers .2
    198.18.2.0/24   resolver link    censor .1   resolver .2
    198.18.53.1     vantage ("ISP") resolver, plain DNS, unbound   (resolver namespace)
    198.18.53.2     control resolver, DNS over TLS only, unbound   (resolver namespace)
    198.18.66.1     block-page server of the censor (HTTP 302/451/body, also named warning.rt.ru…)
    198.18.66.2     MITM TLS endpoint of the censor (untrusted / wrong-name certificates)
    198.18.99.99    what the forging resolver answers (nothing lives there)
    198.19.53.53    the lab's "internet" DNS (dnsmasq, servers namespace): every name below
    198.19.N.10-99  one address per host name of catalog N (whatsapp 1, telegram 2, signal 3,
                    controls 9, any other catalog from 10 up)
    198.19.N.100-   stand-ins for addresses a catalog pins (Telegram's data centres)
    198.19.200.0/24 the "domestic hosting" range: the hosts of the domestic control sites and
                    yardsticks (.10 on), and at .2 a domestic front that serves every catalog
                    name with its own certificate (a foreign name at a domestic address)

IPv6 twins, ULA (fd00::/8), no route out either: every lab IPv4 address 198.A.B.C that a name or
a lab server has is also fd00:198:A:B::C (the decimal digits kept, read as hex), every /24 a
/64 (`v6`, `v6_network`). The names get AAAA records beside their A records; the resolvers, the
"internet" DNS and the pinned stand-ins (catalogs pin IPv4 addresses) stay IPv4-only.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from probe.addresses import is_ip_literal

REPO = Path(__file__).resolve().parents[2]
CATALOGS = REPO / "configs" / "services"
FINGERPRINTS = REPO / "configs" / "fingerprints"

LAB_NET = ipaddress.ip_network("198.18.0.0/15")
LAB_NET6 = ipaddress.ip_network("fd00:198:18::/47")  # the twins of LAB_NET (see v6)

CLIENT_NET = "198.18.0.0/24"
CENSOR_CLIENT = "198.18.0.1"
CLIENT = "198.18.0.2"
CENSOR_SERVERS = "198.18.1.1"
SERVERS = "198.18.1.2"
CENSOR_RESOLVER = "198.18.2.1"
RESOLVER = "198.18.2.2"
ISP_RESOLVER = "198.18.53.1"
CONTROL_RESOLVER = "198.18.53.2"
CONTROL_RESOLVER_NAME = "dns.lab.test"
AUTHORITY = "198.19.53.53"
BLOCKPAGE = "198.18.66.1"
MITM = "198.18.66.2"
FORGED = "198.18.99.99"
BOGON_FORGED = "10.10.34.34"  # the forged answer Iran's resolvers gave (a bogon by design)
DOMESTIC_BLOCK = 200
DOMESTIC_NET = f"198.19.{DOMESTIC_BLOCK}.0/24"  # "domestic hosting": where the domestic controls live
DOMESTIC_FRONT = f"198.19.{DOMESTIC_BLOCK}.2"  # serves every catalog name at a domestic address

# Catalog -> third octet of its 198.19.N.0/24. Unknown catalogs get 10, 11, … in name order.
KNOWN_BLOCKS = {"whatsapp": 1, "telegram": 2, "signal": 3, "controls": 9}

# Namespaces and interfaces: the `mrl-` prefix is this lab's, and only this lab's. Another
# prefix (MRL_LAB_PREFIX, 4 characters such as `mrx-`) gives a private lab beside a running one.
PREFIX = os.environ.get("MRL_LAB_PREFIX", "mrl-")
assert len(PREFIX) == 4 and PREFIX.endswith("-"), "MRL_LAB_PREFIX: 3 characters and a dash"
NS_CLIENT = f"{PREFIX}client"
NS_CENSOR = f"{PREFIX}censor"
NS_SERVERS = f"{PREFIX}servers"
NS_RESOLVER = f"{PREFIX}resolver"
NAMESPACES = (NS_CLIENT, NS_CENSOR, NS_SERVERS, NS_RESOLVER)
IF_CENSOR_CLIENT = f"{PREFIX}cen-cli"
IF_CENSOR_SERVERS = f"{PREFIX}cen-srv"
IF_CENSOR_RESOLVER = f"{PREFIX}cen-res"
IF_CLIENT = f"{PREFIX}cli0"
IF_SERVERS = f"{PREFIX}srv0"
IF_RESOLVER = f"{PREFIX}res0"


def v6(address: str) -> str:
    """The IPv6 twin of a lab IPv4 address: 198.19.1.10 -> fd00:198:19:1::10."""
    ip = ipaddress.IPv4Address(address)
    assert ip in LAB_NET, address
    a, b, c, d = str(ip).split(".")
    return str(ipaddress.IPv6Address(f"fd00:{a}:{b}:{c}::{d}"))


def v6_network(network: str) -> str:
    """The IPv6 twin of a lab IPv4 network: /15 -> /47, /16 -> /48, /24 -> /64, /32 -> /128."""
    net = ipaddress.IPv4Network(network)
    assert net.subnet_of(LAB_NET), network
    a, b, c, _ = str(net.network_address).split(".")
    twins = {15: f"fd00:{a}:{b}::/47", 16: f"fd00:{a}:{b}::/48", 24: f"fd00:{a}:{b}:{c}::/64"}
    if net.prefixlen == 32:
        return f"{v6(str(net.network_address))}/128"
    return str(ipaddress.IPv6Network(twins[net.prefixlen]))


def is_domestic(raw_target: dict) -> bool:
    """A domestic control site or yardstick (tests/lab/field_scenarios.allowlisted_names)."""
    return raw_target.get("control_class") == "domestic" or str(raw_target.get("name", "")).endswith("-domestic")


@dataclass
class LabTarget:
    catalog: str
    name: str
    host: str  # a name, or the pinned real address for IP targets
    ports: list[int]
    lab_addresses: list[str]  # where the lab serves it
    pinned: dict[str, str] = field(default_factory=dict)  # real pinned address -> lab stand-in
    checks: list[str] = field(default_factory=lambda: ["dns", "tcp", "tls", "http"])
    params: dict = field(default_factory=dict)
    extra_hosts: list[str] = field(default_factory=list)  # names a check measures itself (whatsapp_chat hosts)

    @property
    def role(self) -> str:
        """What the lab runs on this target's addresses and ports."""
        if "mtproto" in self.checks:
            return "mtproto"
        if "whatsapp_chat" in self.checks:
            return "chat"
        if "stun" in self.checks:
            return "stun"
        return "web"

    @property
    def is_ip(self) -> bool:
        return is_ip_literal(self.host)


@dataclass
class Plan:
    targets: list[LabTarget]
    hosts: dict[str, str]  # DNS name -> lab address (one each)
    extra_names: dict[str, str]  # names that are not catalog hosts (block-page hosts, DoT name)
    ports: list[int]
    redirect_hosts: list[str]
    # (role, address, port) the servers namespace must serve; role: web | chat | mtproto | stun | h3
    endpoints: list[tuple[str, str, int]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # objects the throughput checks download

    def web(self) -> dict[str, list[int]]:
        """host name -> the TCP ports its nginx server block listens on."""
        by_address = {a: h for h, a in self.hosts.items()}
        out: dict[str, list[int]] = {}
        for role, address, port in self.endpoints:
            if role == "web":
                out.setdefault(by_address[address], []).append(port)
        return out

    @property
    def addresses6(self) -> list[str]:
        """Where the servers namespace also answers over IPv6: the twins of the named hosts."""
        return list(dict.fromkeys([*(v6(a) for a in self.hosts.values()), v6(DOMESTIC_FRONT)]))

    def twin6(self, address: str) -> str | None:
        """The IPv6 twin of a lab address when the lab serves it over IPv6 too (named hosts,
        the domestic front, the censor's block-page and MITM servers), else None."""
        if address in self.hosts.values() or address in (DOMESTIC_FRONT, BLOCKPAGE, MITM):
            return v6(address)
        return None

    def records6(self) -> dict[str, str]:
        """AAAA records: every name whose address has an IPv6 twin."""
        return {name: twin for name, address in self.records().items() if (twin := self.twin6(address))}

    @property
    def server_addresses(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(self.hosts.values())
        for target in self.targets:
            for address in target.lab_addresses:
                seen[address] = None
        seen[AUTHORITY] = None
        seen[DOMESTIC_FRONT] = None
        return list(seen)

    def records(self) -> dict[str, str]:
        return {**self.hosts, **self.extra_names}

    def catalogs(self) -> list[str]:
        return list(dict.fromkeys(t.catalog for t in self.targets))

    def select(self, selectors: list[str]) -> list[LabTarget]:
        """`whatsapp` (every target of a catalog), `whatsapp/web` (one target), or a host name."""
        chosen: list[LabTarget] = []
        for selector in selectors:
            catalog, _, name = selector.partition("/")
            found = [
                t
                for t in self.targets
                if (t.catalog == catalog and (not name or t.name == name)) or (not name and t.host == selector)
            ]
            if not found:
                known = ", ".join(sorted({t.catalog for t in self.targets} | {f"{t.catalog}/{t.name}" for t in self.targets}))
                raise ValueError(f"no lab target matches {selector!r}; use a catalog, catalog/target or host ({known})")
            chosen.extend(t for t in found if t not in chosen)
        return chosen


def _catalog_files() -> list[Path]:
    return sorted(p for p in CATALOGS.glob("*.yaml"))


def load_plan() -> Plan:
    files = _catalog_files()
    names = []
    data = {}
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        name = doc.get("name", path.stem)
        names.append(name)
        data[name] = doc
    blocks = dict(KNOWN_BLOCKS)
    spare = 10
    for name in sorted(names):
        if name not in blocks:
            blocks[name] = spare
            spare += 1

    targets: list[LabTarget] = []
    hosts: dict[str, str] = {}
    ports: set[int] = set()
    next_domestic = 10
    for name in names:
        block = blocks[name]
        next_host, next_pin = 10, 100
        pins: dict[str, str] = {}
        for raw in data[name].get("targets", []):
            if {"udp_stream", "circumvention", "helper_transfer"} & set(raw.get("checks", [])):
                continue  # measured through a helper (tests/lab/abroad.py), not served by the lab
            host = str(raw["host"])
            target_ports = [int(p) for p in raw.get("ports", [443])]
            ports.update(target_ports)
            pinned = [str(a) for a in raw.get("addresses", [])]
            params = dict(raw.get("params") or {})
            extra_hosts = [str(h) for h in (params.get("whatsapp_chat") or {}).get("hosts", [])]
            target = LabTarget(
                name, raw["name"], host, target_ports, [],
                checks=list(raw.get("checks", ["dns", "tcp", "tls", "http"])), params=params, extra_hosts=extra_hosts,
            )
            for extra_host in extra_hosts:
                if extra_host not in hosts:
                    hosts[extra_host] = f"198.19.{block}.{next_host}"
                    next_host += 1
            if pinned:
                for real in pinned:
                    if real not in pins:
                        pins[real] = f"198.19.{block}.{next_pin}"
                        next_pin += 1
                    target.pinned[real] = pins[real]
                target.lab_addresses = [pins[a] for a in pinned]
            if not target.is_ip:
                if host not in hosts and is_domestic(raw):
                    hosts[host] = f"198.19.{DOMESTIC_BLOCK}.{next_domestic}"
                    next_domestic += 1
                elif host not in hosts:
                    hosts[host] = f"198.19.{block}.{next_host}"
                    next_host += 1
                if not pinned:
                    target.lab_addresses = [hosts[host]]
            targets.append(target)

    redirect_hosts: list[str] = []
    blockpages = FINGERPRINTS / "blockpages.yaml"
    if blockpages.is_file():
        redirect_hosts = list((yaml.safe_load(blockpages.read_text(encoding="utf-8")) or {}).get("redirect_hosts", []))
    extra = {h: BLOCKPAGE for h in redirect_hosts if h not in hosts}
    extra[CONTROL_RESOLVER_NAME] = CONTROL_RESOLVER
    ports.update({80, 443})
    endpoints: dict[tuple[str, str, int], None] = {}
    taken: dict[tuple[str, str, int], str] = {}
    paths: dict[str, None] = {}
    for target in targets:
        role = target.role
        addresses = list(target.lab_addresses) + [hosts[h] for h in target.extra_hosts]
        for address in addresses:
            for port in target.ports:
                proto = "udp" if role == "stun" else "tcp"
                if (proto, address, port) not in taken:  # first role wins a shared address:port
                    taken[(proto, address, port)] = role
                    endpoints[(role, address, port)] = None
            if "quic" in target.checks:
                port = int((target.params.get("quic") or {}).get("port", 443))
                endpoints[("h3", address, port)] = None
        path = (target.params.get("throughput") or {}).get("path")
        if "throughput" in target.checks:
            paths[path or "/"] = None
    plan = Plan(targets, hosts, extra, sorted(ports), redirect_hosts, list(endpoints), list(paths))
    for address in [*plan.server_addresses, *hosts.values()]:
        assert ipaddress.ip_address(address) in LAB_NET, address  # never a real address
    for address in plan.addresses6:
        assert ipaddress.ip_address(address) in LAB_NET6, address
    return plan
