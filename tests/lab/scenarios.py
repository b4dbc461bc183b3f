"""Named censorship scenarios: each reproduces one technique seen in the wild (sources in
../shared/reference/ENDPOINTS.md) and is switched on and off at run time.

- DNS techniques change what the vantage's ISP resolver (unbound, `unbound-control`) answers;
  the global outage changes the control resolver's answers too.
- Packet techniques are nftables tables (`ip mrl_<name>`) or iptables-nft chains (`MRL_<NAME>`,
  for `-m string` SNI matching and NFQUEUE) in the censor namespace; switching off deletes them.
  Each is written once, for IPv4, and applied to both families: the same table in the `ip6`
  family and the same chain in ip6tables, with every lab address, network and IPv4-only
  expression turned into its IPv6 twin (`ip6_rule`). A scenario's `families` narrows that
  (`("ip",)`: IPv4 only, `("ip6",)`: IPv6 only).
- Targets are catalog selectors: `whatsapp`, `whatsapp/web`, or a host name (see Plan.select).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .plan import (
    BLOCKPAGE,
    BOGON_FORGED,
    FORGED,
    IF_CENSOR_CLIENT,
    LAB_NET,
    MITM,
    NS_CENSOR,
    LabTarget,
    v6,
    v6_network,
)

if TYPE_CHECKING:
    from .lab import Lab


@dataclass
class Scenario:
    name: str
    technique: str
    source: str  # where the technique is documented (ENDPOINTS.md section / paper)
    expected: str  # the target verdict the contract asks for (for docs/lab.md)
    failure: str = ""  # the failure string expected in the evidence
    default_targets: tuple[str, ...] = ("whatsapp",)
    kind: str = ""
    families: tuple[str, ...] = ("ip", "ip6")  # nftables families (ip: IPv4, ip6: IPv6) the rules act in
    evidence: str = ""  # what the monitor's evidence should say beyond the verdict (docs/lab.md)

    @property
    def table(self) -> str:
        """Its nftables table's name (one per family)."""
        return "mrl_" + self.name.replace("-", "_")

    @property
    def chain(self) -> str:
        """Its iptables chain's name (in each table it uses, both families)."""
        return "MRL_" + self.name.upper().replace("-", "_")

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        raise NotImplementedError

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        raise NotImplementedError


def _names(targets: list[LabTarget]) -> list[str]:
    """Every name the targets make the engine resolve (a check's own host list included)."""
    return list(dict.fromkeys([*(t.host for t in targets if not t.is_ip), *(h for t in targets for h in t.extra_hosts)]))


def _addresses(targets: list[LabTarget], plan=None) -> list[str]:
    from .plan import load_plan

    hosts = (plan or load_plan()).hosts
    return list(dict.fromkeys([*(a for t in targets for a in t.lab_addresses), *(hosts[h] for t in targets for h in t.extra_hosts)]))


def _addresses_of(family: str, targets: list[LabTarget], plan) -> list[str]:
    """The targets' addresses in one family: IPv4, or the IPv6 twins of those that have one."""
    addresses = _addresses(targets, plan)
    if family == "ip":
        return addresses
    return [twin for a in addresses if (twin := plan.twin6(a)) is not None]


NOWHERE = "198.18.255.255"  # an address nothing has: a rule for no target still parses


# --- IPv6: the same rule for the other family ----------------------------------------------------

_V4 = re.compile(r"(?<![\w.:\[])(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?(:\d+)?(?![\w.])")
_V4_ONLY = (
    (re.compile(r"\bip (daddr|saddr)\b"), r"ip6 \1"),
    (re.compile(r"\bip length (<|>|<=|>=) (\d+)"), lambda m: f"ip6 length {m[1]} {int(m[2]) - 20}"),  # ip6's excludes its header
    (re.compile(r"\bicmp type host-unreachable\b"), "icmpv6 type addr-unreachable"),  # both EHOSTUNREACH
    (re.compile(r"\bipv4_addr\b"), "ipv6_addr"),  # a set of addresses
)


def ip6_rule(rule: str) -> str:
    """An IPv4 rule (nftables text, or iptables arguments joined) for IPv6: every lab address or
    network its twin (`dnat to A:P` as `[A6]:P`), `ip saddr/daddr` as `ip6 …`, `ip length` as
    the IPv6 payload length, ICMP host-unreachable as ICMPv6 address-unreachable (the client
    reads both as EHOSTUNREACH). An address outside the lab has no twin: an error."""

    def twin(match: re.Match[str]) -> str:
        address, prefix, port = match[1], match[2], match[3]
        if ipaddress.ip_address(address) not in LAB_NET:
            raise ValueError(f"{address} in {rule!r} has no IPv6 twin (not a lab address)")
        if prefix and prefix != "/32":
            return v6_network(address + prefix)
        if port:
            return f"[{v6(address)}]{port}"
        return v6(address)

    out = _V4.sub(twin, rule)
    for pattern, replacement in _V4_ONLY:
        out = pattern.sub(replacement, out)
    return out


def ip6_args(argv: list[str]) -> list[str]:
    """iptables arguments for ip6tables: lab addresses and networks their twins."""
    return [ip6_rule(arg) if _V4.fullmatch(arg) else arg for arg in argv]


_IPTABLES = {"ip": "iptables", "ip6": "ip6tables"}


def add_table(name: str, body: str, families: tuple[str, ...] = ("ip", "ip6")) -> None:
    """An nftables table of the censor, written for IPv4, in each family (`ip6_rule` for IPv6)."""
    from .lab import in_ns

    for family in families:
        text = ip6_rule(body) if family == "ip6" else body
        in_ns(NS_CENSOR, ["nft", "-f", "-"], input=f"table {family} {name} {{\n{text}\n}}\n")


def add_chain(chain: str, rules: list[list[str]], families: tuple[str, ...] = ("ip", "ip6"), table: str = "filter") -> None:
    """An iptables(-nft) chain of the censor, jumped to first from FORWARD of `table`, in each
    family (ip6tables with `ip6_args`)."""
    from .lab import in_ns

    for family in families:
        tool = _IPTABLES[family]
        in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-N", chain])
        for rule in rules:
            in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-A", chain, *(ip6_args(rule) if family == "ip6" else rule)])
        in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-I", "FORWARD", "-j", chain])


def delete_chain(chain: str, table: str = "filter") -> None:
    from .lab import in_ns

    for tool in _IPTABLES.values():
        while in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-D", "FORWARD", "-j", chain], check=False).returncode == 0:
            pass
        in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-F", chain], check=False)
        in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-X", chain], check=False)


def start_censor_daemon(lab: Lab, entry: dict[str, Any], name: str, argv: list[str], ready: Path) -> None:
    """A program of the scenario's own in the censor namespace (recorded with the scenario, so
    switching it off ends it); returns once it has made its `ready` file. Its log: name.log."""
    ready.unlink(missing_ok=True)
    with open(lab.dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", NS_CENSOR, sys.executable, *argv],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    entry["pids"].append(proc.pid)
    lab._save()
    deadline = time.monotonic() + 10
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {(lab.dir / f'{name}.log').read_text()[-1000:]}")
        time.sleep(0.05)


def delete_table(name: str) -> None:
    from .lab import in_ns

    for family in ("ip", "ip6"):
        in_ns(NS_CENSOR, ["nft", "delete", "table", family, name], check=False)


def load_catalogue() -> None:
    """Register every scenario module's scenarios (each registers itself on import)."""
    import importlib

    # in the order the catalogue (and docs/lab.md's table) lists them
    for module in ("protocol_scenarios", "field_scenarios", "field2026_scenarios"):
        importlib.import_module(f"{__package__}.{module}")


# --- DNS at the resolver -------------------------------------------------------------------------


@dataclass
class ResolverScenario(Scenario):
    """`mode`: nxdomain | refuse | answer (with `answer` as the forged A record)."""

    mode: str = "nxdomain"
    answer: str = ""
    resolvers: tuple[str, ...] = ("isp",)
    kind: str = "resolver"

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        for resolver in self.resolvers:
            for name in _names(targets):
                if self.mode == "answer":
                    lab.unbound(resolver, "local_zone", f"{name}.", "redirect")
                    lab.unbound(resolver, "local_data", f"{name}. 5 IN A {self.answer}")
                else:
                    lab.unbound(resolver, "local_zone", f"{name}.", f"always_{self.mode}")
            lab.unbound(resolver, "flush_requestlist", check=False)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        for resolver in self.resolvers:
            for name in _names(targets):
                lab.unbound(resolver, "local_data_remove", f"{name}.", check=False)
                lab.unbound(resolver, "local_zone_remove", f"{name}.", check=False)
            lab.unbound(resolver, "flush_zone", ".", check=False)


# --- nftables in the censor ----------------------------------------------------------------------


@dataclass
class NftScenario(Scenario):
    """`rules(addresses)` gives the body of table `ip mrl_<name>` (chains included)."""

    template: str = ""
    kind: str = "nftables"
    per_address: bool = False  # one copy of each rule per address (a policer's bucket each)

    def body(self, lab: Lab, targets: list[LabTarget], family: str = "ip") -> str:
        """The table's body for IPv4 (`ip`) or, translated by `ip6_rule`, IPv6 (`ip6`)."""
        # IPv6: the twins of the targets' addresses (a pinned stand-in has none: no rule there)
        addresses = _addresses_of(family, targets, lab.plan) or [NOWHERE if family == "ip" else v6(NOWHERE)]
        fields = {"client_if": IF_CENSOR_CLIENT, "blockpage": BLOCKPAGE, "mitm": MITM}
        if not self.per_address:
            text = self.template.format(addrs=f"{{ {', '.join(addresses)} }}", **fields)
        else:
            # chain header once, then the rule lines for every address
            header, _, rest = self.template.partition("\n")
            rules, _, footer = rest.rpartition("\n")
            lines = [rules.format(addrs=a, **fields) for a in addresses]
            text = header.format(**fields) + "\n" + "\n".join(lines) + "\n" + footer.format(**fields)
        return ip6_rule(text) if family == "ip6" else text

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        from .lab import in_ns

        for family in self.families:
            in_ns(NS_CENSOR, ["nft", "-f", "-"], input=f"table {family} {self.table} {{\n{self.body(lab, targets, family)}\n}}\n")

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:

        delete_table(self.table)


def _chain(header: str, rules: tuple[str, ...]) -> str:
    # Braces of the chain itself are doubled: the table body goes through str.format once more.
    return "chain " + header.replace("{", "{{") + "\n" + "\n".join(rules) + "\n}}"


def chain_text(header: str, rules: tuple[str, ...] | list[str]) -> str:
    """A chain's text as nftables reads it (`_chain` is for templates, formatted once more)."""
    return "chain " + header + "\n" + "\n".join(rules) + "\n}"


def _filter(*rules: str) -> str:
    return _chain("filter_fwd { type filter hook forward priority 0; policy accept;", rules)


def _input(*rules: str) -> str:
    return _chain("filter_in { type filter hook input priority 0; policy accept;", rules)


def _dnat(port: int, to: str) -> str:
    return _chain(
        "nat_pre { type nat hook prerouting priority dstnat; policy accept;",
        (f"iifname {{client_if}} ip daddr {{addrs}} tcp dport {port} dnat to {to}",),
    )


# --- iptables (string match, NFQUEUE) in the censor ------------------------------------------------


@dataclass
class IptablesScenario(Scenario):
    """`rules(targets)` -> iptables rule specs appended to chain MRL_<NAME>, jumped to from FORWARD."""

    kind: str = "iptables"

    def rules(self, targets: list[LabTarget]) -> list[list[str]]:
        raise NotImplementedError

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        add_chain(self.chain, self.rules(targets), self.families)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        delete_chain(self.chain)


def sni_match(name: str) -> list[str]:
    """The SNI as a ClientHello carries it: name type 0, 2-byte length, the name. Matching the
    length too keeps `telegram.org` from matching `web.telegram.org`."""
    return ["-m", "string", "--algo", "bm", "--hex-string", f"|00 {len(name):04x}|{name}"]


@dataclass
class SniScenario(IptablesScenario):
    """`action`: rst (reset the ClientHello), drop (ClientHello never delivered), or
    drop-after (ClientHello delivered, everything after it dropped both ways)."""

    action: str = "rst"
    mark: str = "0x5a1"

    def rules(self, targets: list[LabTarget]) -> list[list[str]]:
        rules: list[list[str]] = []
        if self.action == "drop-after":
            rules.append(["-m", "connmark", "--mark", self.mark, "-j", "DROP"])
        for name in _names(targets):
            match = ["-p", "tcp", *sni_match(name)]
            if self.action == "rst":
                rules.append([*match, "-j", "REJECT", "--reject-with", "tcp-reset"])
            elif self.action == "drop":
                rules.append([*match, "-j", "DROP"])
            else:
                rules.append([*match, "-j", "CONNMARK", "--set-mark", self.mark])
        return rules


@dataclass
class LossyScenario(IptablesScenario):
    """A bad client line without censorship: random loss (nftables numgen, each direction) and delay
    with jitter (NFQUEUE + tests/lab/nfqdelay.py, since this kernel has no netem)."""

    loss_percent: int = 5
    delay_ms: int = 100
    jitter_ms: int = 50
    queue: int = 7
    default_targets: tuple[str, ...] = ("controls",)
    kind: str = "nftables+nfqueue"

    def rules(self, targets: list[LabTarget]) -> list[list[str]]:
        # Only the client's line is bad: the resolvers and servers talk to each other unimpaired.
        queue = ["-j", "NFQUEUE", "--queue-num", str(self.queue), "--queue-bypass"]
        return [["-i", IF_CENSOR_CLIENT, *queue], ["-o", IF_CENSOR_CLIENT, *queue]]

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:

        ready = lab.dir / f"nfqdelay-{self.queue}.ready"
        script = Path(__file__).with_name("nfqdelay.py")
        start_censor_daemon(lab, entry, "nfqdelay", [str(script), "--queue", str(self.queue), "--delay-ms", str(self.delay_ms),
                                                     "--jitter-ms", str(self.jitter_ms), "--ready-file", str(ready)], ready)
        # the line loses packets of both families alike (option `loss`: the percentage)
        loss = int(entry.get("options", {}).get("loss", self.loss_percent))
        add_table("mrl_lossy", _filter(*(f"{d}ifname {IF_CENSOR_CLIENT} numgen random mod 100 < {loss} drop" for d in "io")).format())
        super().apply(lab, targets, entry)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        from .lab import _kill

        super().lift(lab, targets, entry)
        delete_table("mrl_lossy")
        _kill(entry.get("pids", []))
        entry["pids"] = []


# --- the catalogue ---------------------------------------------------------------------------------

_TSPU = "TSPU (IMC 2022)"
_BLOCKPAGES = "ooni/data fingerprints, Russia rows"

SCENARIO_LIST: list[Scenario] = [
    ResolverScenario(
        "dns-nxdomain", "ISP resolver answers NXDOMAIN for the names", "NSDI: removed names answer NXDOMAIN (whatsapp.com from 2026-02-11)",
        "dns_blocked", "dns_nxdomain_error", mode="nxdomain",
    ),
    ResolverScenario(
        "dns-refused", "ISP resolver refuses the names", "ISP resolvers refusing blocked names (OONI dns_refused_error)",
        "dns_blocked", "dns_refused_error", mode="refuse",
    ),
    ResolverScenario(
        "dns-forged", f"ISP resolver answers a forged address ({FORGED}) outside the service's networks", "DNS injection / lying resolvers (OONI dns consistency)",
        "dns_tampered", "dns_inconsistent", mode="answer", answer=FORGED,
    ),
    ResolverScenario(
        "dns-bogon", f"ISP resolver answers a bogon ({BOGON_FORGED})", "OONI netxlite bogon.go; forged private answers",
        "dns_tampered", "dns_bogon_error", mode="answer", answer=BOGON_FORGED,
    ),
    ResolverScenario(
        "dns-blockpage", f"ISP resolver answers the block-page server ({BLOCKPAGE}, listed as a block-page address)", _BLOCKPAGES + " (DNS answers)",
        "dns_tampered", "dns_blockpage_address", mode="answer", answer=BLOCKPAGE,
    ),
    ResolverScenario(
        "global-outage", "the names NXDOMAIN at the control resolver too (the service is down, not blocked)", "Meta's 2021 outage (names vanished worldwide)",
        "down", "dns_nxdomain_error", mode="nxdomain", resolvers=("isp", "control"),
    ),
    NftScenario(
        "syn-drop", "SYNs to the service's addresses dropped", _TSPU + ": IP blocking drops all packets",
        "ip_blocked", "generic_timeout_error", template=_filter("ip daddr {addrs} tcp flags & (syn|ack) == syn drop"),
    ),
    NftScenario(
        "syn-rst", "SYNs to the service's addresses answered with RST", _TSPU + ": earlier reports of RST on SYN",
        "ip_blocked", "connection_refused", template=_filter("ip daddr {addrs} tcp flags & (syn|ack) == syn reject with tcp reset"),
    ),
    NftScenario(
        "icmp-unreachable", "packets to the service's addresses answered with ICMP host unreachable", "router ACL blocking (reject with ICMP)",
        "ip_blocked", "host_unreachable", template=_filter("ip daddr {addrs} reject with icmp type host-unreachable"),
    ),
    SniScenario(
        "sni-rst", "a ClientHello carrying the name is answered with RST (iptables -m string)", _TSPU + ": SNI-I",
        "sni_blocked", "connection_reset", action="rst",
    ),
    SniScenario(
        "sni-drop", "a ClientHello carrying the name is dropped, retransmissions too (never delivered)", _TSPU + ": SNI-IV",
        "sni_blocked", "generic_timeout_error", action="drop", mark="0x5a2",
    ),
    SniScenario(
        "sni-drop-after", "the ClientHello is delivered, then every packet of the connection is dropped both ways", _TSPU + ": SNI-II",
        "sni_blocked", "generic_timeout_error", action="drop-after", mark="0x5a3",
    ),
    NftScenario(
        "tls-rst", "any ClientHello to the addresses is reset, whatever its SNI (the decoy fails too)", "protocol/IP-based TLS interference",
        "tls_blocked", "connection_reset", template=_filter("ip daddr {addrs} tcp dport 443 ip length > 100 reject with tcp reset"),
    ),
    NftScenario(
        "tls-mitm", "TLS to the addresses is redirected to the censor's server with a certificate from an untrusted CA", "national MITM certificates (Kazakhstan 2019)",
        "tls_mitm", "ssl_unknown_authority", template=_dnat(443, f"{MITM}:443"),
    ),
    NftScenario(
        "tls-mitm-wrongname", "TLS to the addresses is redirected to a server with a trusted certificate for another name", "transparent proxies presenting their own certificate",
        "tls_mitm", "ssl_invalid_hostname", template=_dnat(443, f"{MITM}:8443"),
    ),
    NftScenario(
        "http-redirect", "plain HTTP to the addresses gets a 302 to warning.rt.ru", _BLOCKPAGES + " (redirect hosts)",
        "http_blocked", "http_blockpage", template=_dnat(80, f"{BLOCKPAGE}:80"),
    ),
    NftScenario(
        "http-451", "plain HTTP to the addresses gets HTTP 451", _BLOCKPAGES + " (block.ip.center.rt.ru: HTTP 451)",
        "http_blocked", "http_blockpage", template=_dnat(80, f"{BLOCKPAGE}:8451"),
    ),
    NftScenario(
        "http-blockpage-body", "plain HTTP to the addresses gets a 200 block page (\"Доступ к ресурсу ограничен\")", _BLOCKPAGES + " (body markers)",
        "http_blocked", "http_blockpage", template=_dnat(80, f"{BLOCKPAGE}:8200"),
    ),
    NftScenario(
        "chat-rst", "the WhatsApp chat opening (Noise prologue `WA`) answered with RST, TCP connects untouched", "DPI on WhatsApp's chat protocol (ooni/probe#2383 context)",
        "protocol_blocked", "connection_reset",
        template=_filter("ip daddr {addrs} @ih,0,16 0x5741 reject with tcp reset"),
    ),
    NftScenario(
        "police-150k", "traffic from the address policed to ~150 kbit/s (drop over the rate)", "Twitter throttling, IMC 2021 (130-150 kbps)",
        "throttled", "throttled", default_targets=("whatsapp/download",), per_address=True,
        template=_filter("ip saddr {addrs} limit rate over 18750 bytes/second burst 18750 bytes drop"),
    ),
    NftScenario(
        "stall-16k", "connections to the address stall after 16 KB from the server", "mobile 16-20 KB freeze (Nov 2025)",
        "throttled", "stalled", default_targets=("whatsapp/download",),
        template=_filter("ip saddr {addrs} ct reply bytes > 16384 drop", "ip daddr {addrs} ct reply bytes > 16384 drop"),
    ),
    NftScenario(
        "uplink-cut", "everything from and to the client dropped at the censor (the line is down)", "vantage outage",
        "vantage_offline", "generic_timeout_error", default_targets=("controls",),
        template=_filter("iifname {client_if} drop", "oifname {client_if} drop")
        + "\n" + _input("iifname {client_if} drop"),
    ),
    LossyScenario(
        "lossy", "5% loss each way and 100 ms ± 50 ms delay on every packet, no censorship", "a bad mobile line (no false positives)",
        "ok", "",
    ),
]
SCENARIOS: dict[str, Scenario] = {s.name: s for s in SCENARIO_LIST}
