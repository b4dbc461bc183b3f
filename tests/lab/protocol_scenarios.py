"""Censorship scenarios for the protocol checks (mtproto, quic, stun, throughput), registered into
the lab's catalogue (`scenarios.SCENARIOS`) when this module is imported.

Each is an nftables table in the censor namespace acting on the selected targets' addresses,
matched on what the technique matches in the wild (sources in ../shared/reference/ENDPOINTS.md):

- `mtproto-first-bytes`  a connection whose first payload bytes are MTProto's transport headers
                         (abridged 0xef, intermediate 0xeeeeeeee) is reset: plain MTProto is easy
                         to fingerprint. TLS and HTTP to the same addresses pass.
- `quic-tspu`            UDP/443 datagrams of >= 1001 bytes (UDP payload) whose bytes 1-4 are QUIC
                         version 1 are dropped: TSPU's QUIC rule (IMC 2022).
- `stun-port-drop`       UDP to ports 3478, 596, 597 of the addresses dropped (calls restricted).
- `stun-content-drop`    UDP datagrams carrying STUN's magic cookie (bytes 4-7) to the addresses
                         dropped, whatever the port.
- `police-sni`           connections whose ClientHello carries the name are policed to ~150
                         kbit/s (iptables string match marks the connection, nftables polices the
                         mark): SNI-keyed throttling, Twitter 2021 (IMC 2021). A decoy SNI to the
                         same address is fast.
The lab's own `police-150k` and `stall-16k` (by address) make `throttled` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .plan import LabTarget
from .scenarios import (
    SCENARIO_LIST,
    SCENARIOS,
    IptablesScenario,
    NftScenario,
    Scenario,
    _filter,
    _names,
    add_table,
    delete_table,
)

if TYPE_CHECKING:
    from .lab import Lab

_TSPU = "TSPU (IMC 2022)"


@dataclass
class SniPoliceScenario(IptablesScenario):
    """iptables marks connections by SNI (string match on the ClientHello); an nftables table
    polices the marked connections' packets from the server."""

    mark: str = "0x5b1"
    rate_bytes: int = 18750

    def rules(self, targets: list[LabTarget]) -> list[list[str]]:
        from .scenarios import sni_match

        return [["-p", "tcp", *sni_match(name), "-j", "CONNMARK", "--set-mark", self.mark] for name in _names(targets)]

    def apply(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        body = _filter(f"ct mark {self.mark} ct direction reply limit rate over {self.rate_bytes} bytes/second burst {self.rate_bytes} bytes drop").format()
        add_table(self.table, body, self.families)
        super().apply(lab, targets, entry)

    def lift(self, lab: Lab, targets: list[LabTarget], entry: dict[str, Any]) -> None:
        super().lift(lab, targets, entry)
        delete_table(self.table)


PROTOCOL_SCENARIOS: list[Scenario] = [
    NftScenario(
        "mtproto-first-bytes", "connections whose first bytes are MTProto's transport header (0xef, 0xeeeeeeee) are reset",
        "ENDPOINTS.md: plain MTProto is easy to fingerprint", "protocol_blocked", "connection_reset",
        default_targets=("telegram",),
        template=_filter(
            "ip daddr {addrs} tcp dport {{ 80, 443 }} @ih,0,8 0xef reject with tcp reset",
            "ip daddr {addrs} tcp dport {{ 80, 443 }} @ih,0,32 0xeeeeeeee reject with tcp reset",
        ),
    ),
    NftScenario(
        "quic-tspu", "UDP/443 datagrams of >= 1001 bytes carrying QUIC v1 (bytes 1-4 = 00 00 00 01) dropped",
        _TSPU + ": QUIC blocking", "quic_blocked", "generic_timeout_error", default_targets=("whatsapp/web",),
        template=_filter("ip daddr {addrs} udp dport 443 udp length >= 1009 @ih,8,32 0x00000001 drop"),
    ),
    NftScenario(
        "stun-port-drop", "UDP to ports 3478, 596 and 597 of the addresses dropped", "ENDPOINTS.md: calls restricted from Aug 2025",
        "udp_blocked", "generic_timeout_error", default_targets=(),
        template=_filter("ip daddr {addrs} udp dport {{ 3478, 596, 597 }} drop"),
    ),
    NftScenario(
        "stun-content-drop", "UDP datagrams to the addresses carrying STUN's magic cookie (2112a442 at bytes 4-7) dropped",
        "ENDPOINTS.md: STUN Binding Requests to Telegram relays filtered", "udp_blocked", "generic_timeout_error", default_targets=(),
        template=_filter("ip daddr {addrs} meta l4proto udp @ih,32,32 0x2112a442 drop"),
    ),
    SniPoliceScenario(
        "police-sni", "connections whose ClientHello carries the name policed to ~150 kbit/s (decoy SNI fast)",
        "Twitter throttling, IMC 2021 (SNI-keyed, 130-150 kbps)", "throttled", "throttled", default_targets=("telegram/download",),
    ),
]

for _scenario in PROTOCOL_SCENARIOS:
    if _scenario.name not in SCENARIOS:
        SCENARIO_LIST.append(_scenario)
        SCENARIOS[_scenario.name] = _scenario
