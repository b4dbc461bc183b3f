"""The field in 2026, second wave (../shared/reference/ENDPOINTS.md; issue 20), registered into the
lab's catalogue (`scenarios.SCENARIOS`) when this module is imported. Each acts in the censor
namespace, on both address families unless its name says otherwise.

What the apps send:
- `fingerprint-chrome|safari|firefox|openssl`  a ClientHello of one client family, matched at fixed
      offsets of its cipher list (nftables raw payload, as a DPI signature does), is reset; the
      other families pass. The features (bytes 76-89 of the TCP payload, after a 32-byte session
      id): chrome = 16 suites, GREASE, 1301 1302 1303, c02b; safari = 21 suites, GREASE, 1301
      1302 1303, c02c; firefox = 1301 1303 1302; openssl (s_client, Python) = 1302 1303 1301.
      Fixed offsets read the first segment only, whole or not.
- `fingerprint-mlkem`  a segment of a ClientHello carrying an X25519MLKEM768 key share (the
      key_share entry 11ec 04c0: group and its 1216-byte length) is reset (string match: any segment).
- `fingerprint-no-mlkem`  a ClientHello without that key share is reset (the box below, reassembled).
- `split-drop`  the first segment of a split ClientHello (a segment that starts a handshake
      record it does not hold whole) is dropped, and the rest of that flow, when it shows a family
      in `families` (option, default openssl) or none (cut before its cipher list); whole hellos
      pass. With `fingerprint-openssl` on too: the reset hello cannot be split past the censor.
- `sni-rst-whole`  the names are reset only in a ClientHello whole in one segment: a hello split
      across two segments passes (the DPI does not reassemble).
- `sni-rst-reassembled`  the names are reset in the reassembled ClientHello: splitting does not help.
- `flow-correlation`  SNI + fingerprint + address: a hello to the addresses with the target's name
      and a client family in `families` (option, default chrome) is reset, and so is any hello
      whose SNI does not resolve to the address it goes to (a decoy SNI is flagged).
  These and `fingerprint-no-mlkem` are tests/lab/hellodpi.py on an NFQUEUE (a box that reads records and looks names up).

Freezes counted in packets (wire-like segments while on: lab.set_wire_segments):
- `freeze-packets`  every TCP and UDP flow with the targets' hosting prefixes (their /24, /64) is
      frozen (all further packets dropped) once it carried `packets` packets (option, default 25)
      counted in both directions: an upload freezes as a download does.
- `freeze-packets-sni`  the same freeze for connections whose ClientHello carries the names, at any
      address (a decoy SNI to the same address is not frozen).
- `freeze-packets-domestic`  the address freeze on the targets' prefixes and on the domestic hosting
      range too (the domestic yardstick freezes: the line's freeze, not the service's).
- `freeze-upload`  flows with the targets' hosting prefixes frozen once the client has sent `bytes`
      (option, default 36000: some 25 full segments) of its own: an upload trips it, a download's
      ACKs do not (the freeze follows the direction).

Blocks that linger:
- `vpn-linger`  after a VPN signature from the client to any address (WireGuard handshake
      initiation: UDP payload of 148 bytes starting 01 00 00 00; OpenVPN's hard reset, opcode
      0x38, over UDP or TCP), that address is dropped whole, TCP and UDP, both ways, for
      `seconds` (option, default 120); each signature seen restarts the time.

Allowlists characterised (today's `allowlist` is the one keyed on names):
- `allowlist-address`  listed: destinations in the domestic hosting range (TCP and UDP).
- `allowlist-both`  listed: a listed name to a domestic address.
- `allowlist-ipv4`  today's name allowlist on IPv4 only; IPv6 is open.

IPv4 and IPv6 apart:
- `syn-drop-ipv6` / `syn-drop-ipv4`  SYNs to the targets' addresses of that family only dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .field_scenarios import RESOLVERS, AllowlistScenario
from .plan import (
    AUTHORITY,
    DOMESTIC_NET,
    IF_CENSOR_CLIENT,
    IF_CLIENT,
    IF_SERVERS,
    NS_CENSOR,
    NS_CLIENT,
    NS_SERVERS,
    LabTarget,
)
from .scenarios import (
    NOWHERE,
    SCENARIO_LIST,
    SCENARIOS,
    IptablesScenario,
    NftScenario,
    Scenario,
    _addresses,
    _addresses_of,
    _filter,
    _names,
    add_chain,
    add_table,
    chain_text,
    delete_chain,
    delete_table,
    sni_match,
    start_censor_daemon,
)

if TYPE_CHECKING:
    from .lab import Lab

_WAVE = "ENDPOINTS.md: the field in 2026, second wave"

# --- what the apps send ----------------------------------------------------------------------------

# A ClientHello's first segment: handshake record (byte 0), ClientHello (byte 5), a 32-byte
# session id (byte 43: every client here sends one), so the cipher list starts at byte 76.
_HELLO = "ip daddr {addrs} tcp dport 443 @ih,0,8 0x16 @ih,40,8 0x01 @ih,344,8 0x20"
_GREASE_FIRST = "@ih,624,16 & 0x0f0f == 0x0a0a"
FAMILY_SIGNATURES = {
    "chrome": f"@ih,608,16 0x0020 {_GREASE_FIRST} @ih,640,48 0x130113021303 @ih,688,16 0xc02b",
    "safari": f"@ih,608,16 0x002a {_GREASE_FIRST} @ih,640,48 0x130113021303 @ih,688,16 0xc02c",
    "firefox": "@ih,624,48 0x130113031302",
    "openssl": "@ih,624,48 0x130213031301",
}
_SENDS = {
    "chrome": "Chrome and Chrome/Android (BoringSSL; curl-cffi's chrome profiles)",
    "safari": "Safari and iOS (curl-cffi's safari profiles)",
    "firefox": "Firefox (NSS; curl-cffi's firefox profiles)",
    "openssl": "OpenSSL: s_client and Python's ssl (every msgreach check but the browser handshake)",
}
MLKEM_KEY_SHARE = "|11 ec 04 c0|"  # key_share entry: group X25519MLKEM768, key length 1216


def _fingerprint(family: str) -> NftScenario:
    return NftScenario(
        f"fingerprint-{family}", f"a ClientHello of the {family} family (cipher list at fixed offsets) is reset; other families pass",
        _WAVE + ": DPI keyed on the client's JA3/JA4 (teleproxy/teleproxy#39, tdesktop#30788)",
        "tls_blocked", "connection_reset", default_targets=("whatsapp/web",),
        evidence=f"keyed_on fingerprint where the target's real client sends {_SENDS[family]}; otherwise ok, "
        f"with {family} in filtered_fingerprints",
        template=_filter(f"{_HELLO} {FAMILY_SIGNATURES[family]} reject with tcp reset"),
    )


@dataclass
class MlkemScenario(IptablesScenario):
    """A TCP segment to the addresses' port 443 carrying an X25519MLKEM768 key share entry is
    reset, in whichever segment of the hello it travels (a string match reads every packet)."""

    def rules(self, targets: list[LabTarget]) -> list[list[str]]:
        return [["-p", "tcp", "-d", address, "--dport", "443", "-m", "string", "--algo", "bm", "--hex-string", MLKEM_KEY_SHARE,
                 "-j", "REJECT", "--reject-with", "tcp-reset"] for address in _addresses(targets)]


@dataclass
class HelloDpiScenario(Scenario):
    """tests/lab/hellodpi.py on NFQUEUE `queue`: the first packets of each client->server flow to
    the targets' port 443 are read by it (mangle FORWARD, fail-open if it is gone); the packets it
    marks are reset or dropped (filter FORWARD, the flow's later packets too when dropped)."""

    inspect: str = "reassemble"
    keyed_on_names: bool = True
    families_default: tuple[str, ...] = ()
    mlkem: bool | None = None
    correlate: bool = False
    action: str = "reset"
    queue: int = 21
    marks: tuple[str, str] = ("0x5d1", "0x5d2")  # reset, drop
    kind: str = "nfqueue (tests/lab/hellodpi.py)"

    def spec(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> dict[str, Any]:
        options = entry.get("options", {})
        families = [f for f in str(options.get("families", ",".join(self.families_default))).split(",") if f]
        unknown = set(families) - set(FAMILY_SIGNATURES)
        if unknown:
            raise ValueError(f"unknown client families {sorted(unknown)}; known: {sorted(FAMILY_SIGNATURES)}")
        return {
            "queue": self.queue, "inspect": self.inspect, "action": self.action, "correlate": self.correlate,
            "names": _names(targets) if self.keyed_on_names else [], "families": families, "mlkem": self.mlkem, "authority": AUTHORITY,
            "marks": {"reset": self.marks[0], "drop": self.marks[1]},
            "log": str(self.log(lab)), "ready": str(lab.dir / f"{self.name}.ready"),
        }

    def log(self, lab: Lab) -> Path:
        """Where the box writes one JSON line per decision (what it read, what it did, why)."""
        return lab.dir / f"hellodpi-{self.name}.jsonl"

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        spec = self.spec(lab, targets, entry)
        path = lab.dir / f"hellodpi-{self.name}.json"
        path.write_text(json.dumps(spec, indent=1))
        start_censor_daemon(lab, entry, f"hellodpi-{self.name}", [str(Path(__file__).with_name("hellodpi.py")), str(path)], Path(spec["ready"]))
        reset, drop = self.marks
        for family in self.families:
            addresses = _addresses_of(family, targets, lab.plan)
            queue = [["-i", IF_CENSOR_CLIENT, "-p", "tcp", "-d", a, "--dport", "443", "-m", "connbytes", "--connbytes", "0:8",
                      "--connbytes-dir", "original", "--connbytes-mode", "packets",
                      "-j", "NFQUEUE", "--queue-num", str(self.queue), "--queue-bypass"] for a in addresses]
            _add_chain_raw(self.chain, queue, family, "mangle")
            enforce = [
                ["-m", "connmark", "--mark", drop, "-j", "DROP"],
                ["-m", "mark", "--mark", drop, "-j", "CONNMARK", "--save-mark"],
                ["-m", "mark", "--mark", drop, "-j", "DROP"],
                ["-p", "tcp", "-m", "mark", "--mark", reset, "-j", "REJECT", "--reject-with", "tcp-reset"],
            ]
            _add_chain_raw(self.chain, enforce, family, "filter")

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        delete_chain(self.chain, table="mangle")
        delete_chain(self.chain, table="filter")


def _add_chain_raw(chain: str, rules: list[list[str]], family: str, table: str) -> None:
    """`add_chain` for one family, with rules already written for it (addresses included)."""
    from .lab import in_ns

    tool = {"ip": "iptables", "ip6": "ip6tables"}[family]
    in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-N", chain])
    for rule in rules:
        in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-A", chain, *rule])
    in_ns(NS_CENSOR, [tool, "-w", "-t", table, "-I", "FORWARD", "-j", chain])


# --- freezes counted in packets ----------------------------------------------------------------------


def _wire_interfaces(lab: Lab) -> list[tuple[str, str]]:
    """The senders' ends of the lab's links (and the helper's abroad, when it is there)."""
    from .abroad import IF_ABROAD, NS_ABROAD
    from .lab import lab_namespaces

    ends = [(NS_CLIENT, IF_CLIENT), (NS_SERVERS, IF_SERVERS)]
    if NS_ABROAD in lab_namespaces():
        ends.append((NS_ABROAD, IF_ABROAD))
    return ends


def _others_want_wire(lab: Lab, name: str) -> bool:
    return any(other != name and isinstance(SCENARIOS.get(other), FreezeScenario) for other in lab.state.get("scenarios", {}))


@dataclass
class FreezeScenario(Scenario):
    """`key`: address (the targets' hosting prefixes; with `domestic`, the domestic range too) or
    name (an SNI mark, at any address). A flow is frozen after `packets` packets (option)."""

    key: str = "address"
    domestic: bool = False
    mark: str = "0x5e1"
    packets: int = 25
    client_bytes: int | None = None  # count the client's own bytes instead (`ct original bytes`): uploads only
    default_targets: tuple[str, ...] = ("whatsapp/download",)
    kind: str = "nftables ct packets"

    def prefixes(self, lab: Lab, targets: list[LabTarget]) -> list[str]:
        """The /24 of each target address (its hosting prefix), and the domestic range if asked."""
        found = [".".join(a.split(".")[:3]) + ".0/24" for a in _addresses(targets, lab.plan)]
        return list(dict.fromkeys([*found, *([DOMESTIC_NET] if self.domestic else [])])) or [f"{NOWHERE}/32"]

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        from .lab import set_wire_segments

        packets = int(entry.get("options", {}).get("packets", self.packets))
        set_wire_segments(True, _wire_interfaces(lab))
        if self.key == "name":
            add_chain(self.chain, [["-p", "tcp", *sni_match(name), "-j", "CONNMARK", "--set-mark", self.mark] for name in _names(targets)], self.families)
            rules: tuple[str, ...] = (f"ct mark {self.mark} ct packets > {packets} drop",)
        else:
            prefixes = "{ " + ", ".join(self.prefixes(lab, targets)) + " }"
            count = f"ct packets > {packets}"
            if self.client_bytes is not None:
                count = f"ct original bytes > {int(entry.get('options', {}).get('bytes', self.client_bytes))}"
            rules = tuple(f"meta l4proto {{ tcp, udp }} ip {d} {prefixes} {count} drop" for d in ("daddr", "saddr"))
        add_table(self.table, chain_text("freeze { type filter hook forward priority 10; policy accept;", rules), self.families)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        from .lab import set_wire_segments

        delete_table(self.table)
        if self.key == "name":
            delete_chain(self.chain)
        if not _others_want_wire(lab, self.name):
            set_wire_segments(False, _wire_interfaces(lab))


# --- blocks that linger -----------------------------------------------------------------------------

_VPN_SIGNATURES = (
    "udp length 156 @ih,0,32 0x01000000",  # WireGuard handshake initiation: type 1, 148 bytes
    "udp length >= 22 @ih,0,8 0x38",  # OpenVPN P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7, key 0)
    "meta l4proto tcp @ih,0,8 0x00 @ih,16,8 0x38 ct original packets < 6",  # the same over TCP (2-byte length first)
)


@dataclass
class LingerScenario(Scenario):
    """A timed set of addresses: a VPN signature to an address puts it there for `seconds`."""

    seconds: int = 120
    default_targets: tuple[str, ...] = ("controls",)
    kind: str = "nftables set with timeout"

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        seconds = int(entry.get("options", {}).get("seconds", self.seconds))
        client = f"iifname {IF_CENSOR_CLIENT} ip daddr != {RESOLVERS}"
        rules = (
            *(f"{client} {signature} update @lingering {{ ip daddr }} drop" for signature in _VPN_SIGNATURES),
            "ip daddr @lingering drop",
            "ip saddr @lingering drop",
        )
        body = f"set lingering {{ type ipv4_addr; flags timeout; timeout {seconds}s; }}\n" + chain_text(
            "linger { type filter hook forward priority -5; policy accept;", rules
        )
        add_table(self.table, body, self.families)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        delete_table(self.table)


# --- the catalogue ---------------------------------------------------------------------------------------

_SYN_DROP = _filter("ip daddr {addrs} tcp flags & (syn|ack) == syn drop")

FIELD2026_SCENARIOS: list[Scenario] = [
    *(_fingerprint(family) for family in FAMILY_SIGNATURES),
    MlkemScenario(
        "fingerprint-mlkem", "a ClientHello with an X25519MLKEM768 key share (11ec 04c0) to the addresses is reset, in whichever segment; "
        "without one it passes", _WAVE + ": post-quantum key shares treated differently (sleep3r/mtproto.zig#375)", "tls_blocked", "connection_reset",
        default_targets=("whatsapp/web",),
        evidence="keyed_on fingerprint (the key share): the same family without X25519MLKEM768 passes",
    ),
    HelloDpiScenario(
        "fingerprint-no-mlkem", "a ClientHello without an X25519MLKEM768 key share to the addresses is reset (read reassembled); with one it passes",
        _WAVE + ": cover domains lacking X25519MLKEM768 flagged (sleep3r/mtproto.zig#375)", "tls_blocked", "connection_reset",
        default_targets=("whatsapp/web",), inspect="reassemble", keyed_on_names=False, mlkem=False, queue=25, marks=("0x5d9", "0x5da"),
        evidence="keyed_on fingerprint (no key share): hellos with X25519MLKEM768 pass",
    ),
    HelloDpiScenario(
        "split-drop", "the first segment of a split ClientHello is dropped (and its flow) when it shows the openssl family (option "
        "families) or is cut before its cipher list; whole hellos pass", _WAVE + ": a first segment of a split ClientHello dropped "
        "by signature (tdesktop#30734)", "ok", "",
        default_targets=("whatsapp/web",), inspect="split-drop", keyed_on_names=False, families_default=("openssl",), action="drop",
        queue=21, marks=("0x5d1", "0x5d2"),
        evidence="alone: ok (only split hellos fail); with fingerprint-openssl: the split retry fails too, no evasion claimed",
    ),
    HelloDpiScenario(
        "sni-rst-whole", "a ClientHello whole in one segment carrying the name is reset; a split one is not read and passes",
        _WAVE + ": MSS clamping split the hello before TCP reassembly (teleproxy/teleproxy#125)",
        "sni_blocked", "connection_reset", default_targets=("whatsapp/web",), inspect="whole", queue=22, marks=("0x5d3", "0x5d4"),
        evidence="keyed_on name; the split hello passes (splitting evades)",
    ),
    HelloDpiScenario(
        "sni-rst-reassembled", "a ClientHello carrying the name is reset after reassembly: a split one is reset too",
        _WAVE + ": TCP reassembly, MSS clamping no longer splits the hello (teleproxy/teleproxy#125)",
        "sni_blocked", "connection_reset", default_targets=("whatsapp/web",), inspect="reassemble", queue=23, marks=("0x5d5", "0x5d6"),
        evidence="keyed_on name; the split hello is reset too (splitting does not evade)",
    ),
    HelloDpiScenario(
        "flow-correlation", "a hello with the name and a listed client family (option families, default chrome) to the addresses is reset, "
        "and any hello whose SNI does not resolve to its destination (a decoy)",
        _WAVE + ": SNI + JA4 + IP:port with an A-record check (teleproxy/teleproxy#125)", "tls_blocked", "connection_reset",
        default_targets=("whatsapp/web",), inspect="reassemble", families_default=("chrome",), correlate=True, queue=24,
        marks=("0x5d7", "0x5d8"),
        evidence="keyed_on fingerprint (other families with the real name pass); the decoy fails too, for its name, not the address",
    ),
    FreezeScenario(
        "freeze-packets", "TCP and UDP flows with the targets' hosting prefixes frozen after 25 packets counted both ways (uploads too)",
        _WAVE + ": the freeze in packets, ~25 both ways, TCP and UDP (hyperion-cs/dpi-checkers)", "throttled", "stalled",
        evidence="keyed_on address; the upload freezes as the download does (direction: both); domestic yardstick ok",
    ),
    FreezeScenario(
        "freeze-packets-sni", "connections whose ClientHello carries the name frozen after 25 packets counted both ways, at any address",
        _WAVE + ": the freeze scored by SNI (XTLS/Xray-core#6293)", "throttled", "stalled", key="name", mark="0x5e4",
        evidence="keyed_on name: a decoy SNI to the same address is not frozen",
    ),
    FreezeScenario(
        "freeze-packets-domestic", "the address freeze on the targets' prefixes and on the domestic hosting range (the yardstick too)",
        _WAVE + ": Russian data centres included (XTLS/Xray-core#6293)", "ok", "",
        domestic=True,
        evidence="the domestic yardstick freezes the same way: the line's freeze, not the service's (no throttled verdict keyed on the service)",
    ),
    FreezeScenario(
        "freeze-upload", "flows with the targets' hosting prefixes frozen once the client sent 36000 bytes (option bytes): uploads, not downloads",
        _WAVE + ": the freeze in packets: uploads trigger it (hyperion-cs/dpi-checkers)", "throttled", "stalled",
        client_bytes=36000, mark="0x5e6",
        evidence="keyed_on direction (direction: upload): the download from the same address and name flows",
    ),
    LingerScenario(
        "vpn-linger", "after a WireGuard or OpenVPN signature to an address, that address is dropped whole (TCP, UDP, both ways) for 120 s "
        "(option seconds)",
        _WAVE + ": blocks that linger (net4people/bbs#417: OVH blocked 10 minutes after UDP to hosting)", "ok", "",
        evidence="no verdict changes: measurements to the address run before the signature probe, or again after the cooldown",
    ),
    AllowlistScenario(
        "allowlist-address", "allowlist by address: the domestic hosting range passes (TCP, UDP), data to any other address is reset",
        _WAVE + ": operators allowing by IP range (hxehex/russia-mobile-internet-whitelist#2)", "allowlist", "connection_reset",
        key="address", evidence="names or addresses: addresses (a foreign name at a domestic address passes, a domestic name abroad does not)",
    ),
    AllowlistScenario(
        "allowlist-both", "allowlist by name and address: only a listed name to a domestic address passes",
        _WAVE + ": operators allowing by both (hxehex/russia-mobile-internet-whitelist#13)", "allowlist", "connection_reset",
        key="both", evidence="names and addresses: both needed (a domestic address with no name fails too)",
    ),
    AllowlistScenario(
        "allowlist-ipv4", "today's name allowlist on IPv4 only; IPv6 is not filtered",
        _WAVE + ": results differ between IPv4 and IPv6 (net4people/bbs#650)", "allowlist", "connection_reset",
        families=("ip",), evidence="per family: IPv4 under the allowlist, IPv6 open",
    ),
    NftScenario(
        "syn-drop-ipv6", "SYNs to the targets' IPv6 addresses dropped; IPv4 untouched", _WAVE + ": IPv4 and IPv6 treated differently (net4people/bbs#650)",
        "ip_blocked", "generic_timeout_error", families=("ip6",), template=_SYN_DROP,
        evidence="family: ipv6 fails, ipv4 ok (where the vantage has IPv6)",
    ),
    NftScenario(
        "syn-drop-ipv4", "SYNs to the targets' IPv4 addresses dropped; IPv6 untouched", _WAVE + ": IPv4 and IPv6 treated differently (net4people/bbs#650)",
        "ip_blocked", "generic_timeout_error", families=("ip",), template=_SYN_DROP,
        evidence="family: ipv4 fails, ipv6 ok",
    ),
]

for _scenario in FIELD2026_SCENARIOS:
    if _scenario.name not in SCENARIOS:
        SCENARIO_LIST.append(_scenario)
        SCENARIOS[_scenario.name] = _scenario
