"""Censorship regimes of the 2025–26 field (../shared/reference/ENDPOINTS.md, "The field in
2025–26"), registered into the lab's catalogue (`scenarios.SCENARIOS`) when this module is imported.

- `allowlist`            a regional allowlist ("white lists" in mobile shutdowns): TCP handshakes
                         complete, but the first data of a connection whose ClientHello SNI or HTTP
                         Host is not on the list is reset; UDP other than DNS is dropped. Listed: the
                         catalog's domestic control sites and domestic yardsticks (MAX, Gosuslugi, VK,
                         Yandex). iptables marks listed connections (string match on the SNI / Host),
                         an nftables chain after it resets unmarked data. The lab's resolvers are
                         exempt (they stand for the vantage's ISP and the control resolver).
- `portal-tcp`           an intercepting portal that takes TCP only: every TCP 443 from the client is
                         redirected to the censor's MITM server, every TCP 80 to its block page;
                         DNS and UDP are left alone (the STUN yardsticks still answer).
- `udp-mobile`           mobile-style UDP drop: every UDP datagram from the client is dropped but
                         DNS (port 53).
- `fingerprint-python`   ClientHellos whose first cipher suite is OpenSSL's TLS 1.3 choice (0x1302,
                         what Python's ssl sends, no browser does) are reset; `fingerprint-browser`
                         the reverse (a GREASE first cipher, 0x?a?a: BoringSSL browsers). Two bytes
                         at a fixed offset (after a 32-byte session id), as tests/servers/
                         fingerprint_censor.py reads them.
- `obfs2-drop`           to the addresses, a connection whose first bytes are none of plain MTProto
                         (0xef, 0xeeeeeeee), HTTP (`POST`, `GET `) or TLS (0x16 0x03) is reset: the rule for
                         protocols a DPI cannot name, which catches obfuscated2's random-looking header.
                         Its reverse is the lab's `mtproto-first-bytes` (plain MTProto reset,
                         obfuscated2 passes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from .plan import CATALOGS, DOMESTIC_NET, IF_CENSOR_CLIENT, LabTarget
from .scenarios import (
    SCENARIO_LIST,
    SCENARIOS,
    IptablesScenario,
    NftScenario,
    Scenario,
    _chain,
    _filter,
    add_table,
    chain_text,
    delete_table,
    sni_match,
)

if TYPE_CHECKING:
    from .lab import Lab

RESOLVERS = "198.18.53.0/24"  # the lab's ISP and control resolvers: not what these regimes test
_FIELD = "ENDPOINTS.md: the field in 2025-26"


def allowlisted_names() -> list[str]:
    """The hosts of the controls catalog's domestic sites and domestic yardsticks."""
    targets = (yaml.safe_load((CATALOGS / "controls.yaml").read_text(encoding="utf-8")) or {}).get("targets", [])
    return [t["host"] for t in targets if t.get("control_class") == "domestic" or t["name"].endswith("-domestic")]


@dataclass
class AllowlistScenario(IptablesScenario):
    """`key`: what lists a connection. `name`: a listed SNI or Host (iptables marks the
    connection); `address`: a destination in the domestic hosting range (DOMESTIC_NET), UDP
    there included; `both`: a listed name to a domestic address. Unlisted TCP data is reset,
    UDP but DNS dropped (to domestic addresses too, unless the key is the address)."""

    mark: str = "0x5c1"
    default_targets: tuple[str, ...] = ("controls",)
    key: str = "name"

    def rules(self, targets: list[LabTarget]) -> list[list[str]]:
        rules: list[list[str]] = []
        if self.key == "address":
            return rules
        for name in allowlisted_names():
            rules.append(["-i", IF_CENSOR_CLIENT, "-p", "tcp", *sni_match(name), "-j", "CONNMARK", "--set-mark", self.mark])
            rules.append(["-i", IF_CENSOR_CLIENT, "-p", "tcp", "-m", "string", "--algo", "bm", "--string", f"Host: {name}\r", "-j", "CONNMARK", "--set-mark", self.mark])
        return rules

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        super().apply(lab, targets, entry)  # the marks first: the chain below reads them
        listed_range = f"{{ {RESOLVERS}, {DOMESTIC_NET} }}"
        udp_exempt = RESOLVERS if self.key == "name" else listed_range
        client = f"iifname {IF_CENSOR_CLIENT}"
        # Data on a connection that is not listed: reset (PSH marks the last segment of each
        # write, so every first message meets this).
        data = "tcp flags & psh == psh"
        rules = [f"{client} ip daddr != {udp_exempt} meta l4proto udp udp dport != 53 drop"]
        if self.key in ("name", "both"):
            rules.append(f"{client} ip daddr != {RESOLVERS} {data} ct mark != {self.mark} reject with tcp reset")
        if self.key in ("address", "both"):
            rules.append(f"{client} ip daddr != {listed_range} {data} reject with tcp reset")
        body = chain_text("allowlist { type filter hook forward priority 10; policy accept;", rules)
        add_table(self.table, body, self.families)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        delete_table(self.table)
        super().lift(lab, targets, entry)


def _portal() -> str:
    from .plan import BLOCKPAGE, MITM

    return _chain(
        "portal { type nat hook prerouting priority dstnat; policy accept;",
        (
            f"iifname {{client_if}} ip daddr != {RESOLVERS} tcp dport 443 dnat to {MITM}:443",
            f"iifname {{client_if}} ip daddr != {RESOLVERS} tcp dport 80 dnat to {BLOCKPAGE}:80",
        ),
    )


FIELD_SCENARIOS: list[Scenario] = [
    AllowlistScenario(
        "allowlist", "regional allowlist: TCP completes, data of connections without a listed SNI/Host is reset, UDP but DNS dropped",
        _FIELD + ": regional allowlists (net4people/bbs#516, #579)", "allowlist", "connection_reset",
    ),
    NftScenario(
        "portal-tcp", "TCP 443 from the client redirected to the censor's MITM server, TCP 80 to its block page; DNS and UDP untouched",
        "captive portals and intercepting proxies that take TCP only", "vantage_offline", "ssl_unknown_authority",
        default_targets=("controls",), template=_portal(),
    ),
    NftScenario(
        "udp-mobile", "every UDP datagram from the client dropped but DNS", _FIELD + ": odd UDP dropped broadly on mobile (net4people/bbs#546)",
        "quic_blocked", "generic_timeout_error", default_targets=("controls",),
        template=_filter(f"iifname {{client_if}} ip daddr != {RESOLVERS} meta l4proto udp udp dport != 53 drop"),
    ),
    NftScenario(
        "fingerprint-python", "ClientHellos whose first cipher suite is 0x1302 (OpenSSL's order, Python's ssl) reset; browsers' pass",
        _FIELD + ": TSPU keys on the ClientHello fingerprint (XTLS/Xray-core#6293, net4people/bbs#662)", "tls_blocked", "connection_reset",
        default_targets=("whatsapp/web",),
        template=_filter("ip daddr {addrs} tcp dport 443 @ih,0,8 0x16 @ih,40,8 0x01 @ih,344,8 0x20 @ih,624,16 0x1302 reject with tcp reset"),
    ),
    NftScenario(
        "fingerprint-browser", "ClientHellos whose first cipher suite is GREASE (BoringSSL browsers) reset; Python's pass",
        _FIELD + ": fingerprint-keyed filtering, the reverse", "ok", "", default_targets=("whatsapp/web",),
        template=_filter("ip daddr {addrs} tcp dport 443 @ih,0,8 0x16 @ih,40,8 0x01 @ih,344,8 0x20 @ih,624,16 & 0x0f0f == 0x0a0a reject with tcp reset"),
    ),
    NftScenario(
        "obfs2-drop", "connections to the addresses whose first bytes are none of plain MTProto, HTTP or TLS reset (catches obfuscated2)",
        _FIELD + ": MTProto framings treated differently", "protocol_blocked", "connection_reset", default_targets=("telegram",),
        template=_filter(
            "ip daddr {addrs} tcp dport {{ 80, 443 }} @ih,0,8 != 0xef @ih,0,32 != 0xeeeeeeee @ih,0,32 != 0x504f5354 "
            "@ih,0,32 != 0x47455420 @ih,0,16 != 0x1603 reject with tcp reset"
        ),
    ),
]

for _scenario in FIELD_SCENARIOS:
    if _scenario.name not in SCENARIOS:
        SCENARIO_LIST.append(_scenario)
        SCENARIOS[_scenario.name] = _scenario
