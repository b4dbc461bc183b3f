"""The lab's "abroad" namespace: a `msgreach helper` outside the censored region (issue #11).

    198.18.4.0/24   abroad link    censor .1   helper .2 (API and UDP streams :9920, probes :9921)

The helper reaches the lab's servers through the censor like everyone else (so a block on the
servers' addresses hits it too, as a real outage would), but resolves through the lab's
"internet" DNS and the control resolver, never the ISP resolver. Helper-side censor rules (a call
stream cut after N packets, a share of its packets dropped, one rule per circumvention
signature) are nftables/iptables tables in the censor namespace named `mrl_helper_*` /
`MRL_HELPER_*`, switched on and off by the tests.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .field_scenarios import RESOLVERS
from .lab import Lab, LabError, _kill, in_ns, sh
from .plan import (
    AUTHORITY,
    CONTROL_RESOLVER,
    CONTROL_RESOLVER_NAME,
    IF_CENSOR_CLIENT,
    NS_CENSOR,
    NS_CLIENT,
    PREFIX,
)
from .scenarios import add_table

NS_ABROAD = f"{PREFIX}abroad"
HOSTILE_DRIP_PORT, HOSTILE_FLOOD_PORT = 9940, 9941  # tests/lab/hostile_helper.py, beside the helper
IF_CENSOR_ABROAD = f"{PREFIX}cen-abr"
IF_ABROAD = f"{PREFIX}abr0"
CENSOR_ABROAD = "198.18.4.1"
HELPER = "198.18.4.2"
API_PORT = 9920
PROBE_PORT = 9921
BULK_PORT, BULK_TLS_PORT = 9922, 9923


class Abroad:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.dir = lab.dir / "abroad"
        self.secret_file = self.dir / "helper.secret"
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HELPER}:{API_PORT}"

    def up(self) -> Abroad:
        self.dir.mkdir(parents=True, exist_ok=True)
        if NS_ABROAD in sh(["ip", "netns", "list"], check=False).stdout:
            self.down()
        clear_censor_rules()  # a reused lab: what a killed run left on the way to the helper
        sh(["ip", "netns", "add", NS_ABROAD])
        in_ns(NS_ABROAD, ["ip", "link", "set", "lo", "up"])
        in_ns(NS_ABROAD, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        sh(["ip", "link", "add", IF_CENSOR_ABROAD, "netns", NS_CENSOR, "type", "veth", "peer", "name", IF_ABROAD, "netns", NS_ABROAD])
        in_ns(NS_CENSOR, ["ip", "addr", "add", f"{CENSOR_ABROAD}/24", "dev", IF_CENSOR_ABROAD])
        in_ns(NS_CENSOR, ["ip", "link", "set", IF_CENSOR_ABROAD, "up"])
        in_ns(NS_ABROAD, ["ip", "addr", "add", f"{HELPER}/24", "dev", IF_ABROAD])
        in_ns(NS_ABROAD, ["ip", "link", "set", IF_ABROAD, "up"])
        in_ns(NS_ABROAD, ["ip", "route", "add", "default", "via", CENSOR_ABROAD])
        self.secret_file.write_text(secrets.token_hex(32) + "\n")
        os.chmod(self.secret_file, 0o600)
        measure = self.dir / "measure.yaml"
        measure.write_text(yaml.safe_dump(self.measure_config(), sort_keys=False))
        settings = self.dir / "helper.yaml"
        settings.write_text(yaml.safe_dump({
            "secret_file": str(self.secret_file), "listen": f"{HELPER}:{API_PORT}", "probe_port": PROBE_PORT,
            "bulk_port": BULK_PORT, "measure": str(measure), "cache_seconds": 5,
        }))
        self.pid = self.lab.spawn("helper", NS_ABROAD, [*self.lab.msgreach_argv(), "--log-level", "INFO", "helper", "--config", str(settings)], log="helper.log")
        deadline = time.monotonic() + 30
        while in_ns(NS_CLIENT, ["curl", "-sf", "-m", "2", f"{self.url}/healthz"], check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise LabError(f"the helper did not come up: {(self.lab.dir / 'helper.log').read_text()[-2000:]}")
            time.sleep(0.3)
        return self

    def down(self) -> None:
        if self.pid is not None:
            _kill([self.pid])
            self.lab.state["pids"].pop("helper", None)
            self.lab._save()
            self.pid = None
        sh(["ip", "netns", "delete", NS_ABROAD], check=False)
        in_ns(NS_CENSOR, ["ip", "link", "delete", IF_CENSOR_ABROAD], check=False)
        clear_censor_rules()

    @contextmanager
    def hostile(self) -> Iterator[dict[str, str]]:
        """A hostile stand-in for the helper at the helper's address (issue #18): URLs that drip
        or flood their answers (tests/lab/hostile_helper.py), for the duration of the block."""
        script = Path(__file__).with_name("hostile_helper.py")
        pid = self.lab.spawn("hostile-helper", NS_ABROAD, [sys.executable, str(script), "--listen", HELPER,
                                                          "--drip-port", str(HOSTILE_DRIP_PORT), "--flood-port", str(HOSTILE_FLOOD_PORT)],
                             log="hostile-helper.log")
        try:
            deadline = time.monotonic() + 20
            while f":{HOSTILE_FLOOD_PORT} " not in in_ns(NS_ABROAD, ["ss", "-ltnH"], check=False).stdout:
                if time.monotonic() > deadline:
                    raise LabError(f"the hostile helper did not come up: {(self.lab.dir / 'hostile-helper.log').read_text()[-2000:]}")
                time.sleep(0.2)
            yield {"drip": f"http://{HELPER}:{HOSTILE_DRIP_PORT}", "flood": f"http://{HELPER}:{HOSTILE_FLOOD_PORT}"}
        finally:
            _kill([pid])
            self.lab.state["pids"].pop("hostile-helper", None)
            self.lab._save()

    def measure_config(self) -> dict[str, Any]:
        """What the helper measures: the lab's catalogs, resolved without the ISP resolver."""
        data = self.lab.config_data(retries=0, deadline=40)
        vantage = data["vantages"][0]
        vantage["name"] = "lab-abroad"
        vantage["country"] = "NL"
        vantage["resolvers"] = [AUTHORITY, {"address": f"tls://{CONTROL_RESOLVER}", "server_name": CONTROL_RESOLVER_NAME, "control": True}]
        return data

    def monitor_config(self, path: Path, *, services: list[str] | None = None, extra: list[dict[str, Any]] = (),
                       stream: dict[str, Any] | None = None, url: str | None = None, **kwargs: Any) -> Path:
        """The lab's vantage config with this helper under `helpers:` (and the call-stream targets
        of the chosen catalogs given `stream` parameters); `url`: another helper URL (a stand-in)."""
        data = self.lab.config_data(**kwargs)
        chosen = [s for s in data["services"] if services is None or s["catalog"] in services]
        for entry in chosen:
            if stream is not None and entry["catalog"] in ("whatsapp", "telegram"):
                entry.setdefault("patch", {})["call-stream"] = {"params": {"udp_stream": stream}}
        data["services"] = [*chosen, *extra]
        data["helpers"] = [{"name": "abroad", "url": url or self.url, "secret_file": str(self.secret_file)}]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


# --- censor rules on the way to the helper ------------------------------------------------------------

_FORWARD = "chain f {{ type filter hook forward priority {priority}; policy accept;\n{rules}\n}}"
_PRIORITY = {"allowlist-silent": 5}  # after iptables' marks (0), before the allowlist scenario's reset (10)
_RTP = f"ip daddr {HELPER} udp dport {API_PORT} @th,64,2 2"  # the call stream's RTP packets (version bits 10)

NFT_RULES: dict[str, str] = {
    # the call stream is cut once its flow has carried `after` packets (~after/50 seconds)
    "stream-cut": _RTP + " ct original packets > {after} drop",
    "stream-loss": _RTP + " numgen random mod 100 < {percent} drop",
    "wireguard": f"ip daddr {HELPER} udp dport {PROBE_PORT} @th,64,32 0x01000000 drop",
    "openvpn": f"ip daddr {HELPER} udp dport {PROBE_PORT} @th,64,8 0x38 drop",
    "shadowsocks": f"ip daddr {HELPER} tcp dport {PROBE_PORT} @ih,0,1 1 reject with tcp reset",
    "mtproxy_faketls": f"ip daddr {HELPER} tcp dport {PROBE_PORT} @ih,0,40 0x1603010200 reject with tcp reset",
    # TLS from the helper's (foreign) address freezes after 16 KB whatever the name
    "freeze-address": f"ip saddr {HELPER} tcp sport {BULK_TLS_PORT} ct reply bytes > 16384 drop",
    # Bulk flows to the helper freeze once the client sent 36,000 bytes of its own (some 25 full
    # segments): uploads trip it, a download's ACKs do not (issue 20: the freeze follows the direction)
    "freeze-upload": f"ip daddr {HELPER} tcp dport {{{{ {BULK_PORT}, {BULK_TLS_PORT} }}}} ct original bytes > 36000 drop\n"
                     f"ip saddr {HELPER} tcp sport {{{{ {BULK_PORT}, {BULK_TLS_PORT} }}}} ct original bytes > 36000 drop",  # {{ }}: format()
    # The line to the helper itself (issue #18). Every TCP connection with the helper freezes once
    # it carried `after` bytes, both directions counted (Russia's freeze of foreign hosting, 2025).
    "line-freeze": f"ip daddr {HELPER} meta l4proto tcp ct bytes > {{after}} drop\nip saddr {HELPER} meta l4proto tcp ct bytes > {{after}} drop",
    # The request to the helper's API is answered with a reset (its data segment: PSH).
    "line-reset": f"ip daddr {HELPER} tcp dport {API_PORT} tcp flags & psh == psh reject with tcp reset",
    # With the `allowlist` scenario: the data of unlisted connections is dropped, not reset (a
    # silent allowlist: every international control then waits out its timeouts, and a round's
    # controls take half of it; this chain runs before the scenario's reset).
    "allowlist-silent": f"iifname {IF_CENSOR_CLIENT} ip daddr != {RESOLVERS} tcp flags & psh == psh ct mark != {{mark}} drop",
    # Everything to and from the helper loses `percent` % of its packets, each way.
    "line-loss": f"ip daddr {HELPER} numgen random mod 100 < {{percent}} drop\nip saddr {HELPER} numgen random mod 100 < {{percent}} drop",
}
# The helper has IPv4 only; a rule on the client's own traffic acts on both families, as the
# scenario it goes with does (tests/lab/scenarios.py, ip6_rule).
_FAMILIES = {"allowlist-silent": ("ip", "ip6")}
REALITY_SNI = "www.microsoft.com"


def _sni(name: str) -> list[str]:
    return ["-m", "string", "--algo", "bm", "--hex-string", f"|00 {len(name):04x}|{name}"]


_IPTABLES = {
    # The `allowlist` regime (field_scenarios.py) lets the helper's TCP through, as if its address
    # were listed: its UDP is still dropped like all UDP but DNS (issue #18: calls measured anyway).
    "allowlisted": lambda mark: [["-d", HELPER, "-p", "tcp", "-j", "CONNMARK", "--set-mark", mark]],
    "vless_reality": lambda: [["-d", HELPER, "-p", "tcp", "--dport", str(PROBE_PORT), *_sni(REALITY_SNI), "-j", "REJECT", "--reject-with", "tcp-reset"]],
    # connections whose ClientHello carries the name freeze after 16 KB from the server, at any address
    "freeze-name": lambda name: [
        ["-m", "connmark", "--mark", "0x5b1", "-m", "connbytes", "--connbytes", "16384:", "--connbytes-dir", "reply", "--connbytes-mode", "bytes", "-j", "DROP"],
        ["-p", "tcp", *_sni(name), "-j", "CONNMARK", "--set-mark", "0x5b1"],
    ],
}


_TABLE_PREFIX = "mrl_helper_"
_CHAIN_PREFIX = "MRL_HELPER_"


def _censor_tables() -> list[tuple[str, str]]:
    """(family, name) of each nft table `censor` made that is in the censor now."""
    tables = [line.split()[1:] for line in in_ns(NS_CENSOR, ["nft", "list", "tables"]).stdout.splitlines()]
    return [(t[0], t[1]) for t in tables if len(t) == 2 and t[1].startswith(_TABLE_PREFIX)]


def clear_censor_rules() -> list[str]:
    """Remove every rule `censor` left in the censor, and say which: a run killed inside the block
    leaves its table or chain, and the next run reusing the lab would carry it into tests that
    expect a clean line (a call stream losing 40 % to a leftover `stream-loss` reads `throttled`)."""
    removed = []
    for family, name in _censor_tables():
        in_ns(NS_CENSOR, ["nft", "delete", "table", family, name])
        removed.append(f"{family} {name}")
    rules = in_ns(NS_CENSOR, ["iptables", "-w", "-S"]).stdout.splitlines()
    for jump in [r.split()[1:] for r in rules if r.startswith("-A FORWARD ") and f"-j {_CHAIN_PREFIX}" in r]:
        in_ns(NS_CENSOR, ["iptables", "-w", "-D", *jump])
    for chain in [r.split()[1] for r in rules if r.startswith(f"-N {_CHAIN_PREFIX}")]:
        in_ns(NS_CENSOR, ["iptables", "-w", "-F", chain])
        in_ns(NS_CENSOR, ["iptables", "-w", "-X", chain])
        removed.append(chain)
    return removed


@contextmanager
def censor(rule: str, **fields: Any) -> Iterator[None]:
    """One censor rule on the way to the helper, for the duration of the block; its removal is
    checked (a failed one raises, never leaves the rule to the next test)."""
    if rule in _IPTABLES:  # a name, wherever it sits in the ClientHello: a string match
        chain = _CHAIN_PREFIX + rule.upper().replace("-", "_")
        in_ns(NS_CENSOR, ["iptables", "-w", "-N", chain])
        for spec in _IPTABLES[rule](**fields):
            in_ns(NS_CENSOR, ["iptables", "-w", "-A", chain, *spec])
        in_ns(NS_CENSOR, ["iptables", "-w", "-I", "FORWARD", "-j", chain])
        try:
            yield
        finally:
            in_ns(NS_CENSOR, ["iptables", "-w", "-D", "FORWARD", "-j", chain])
            in_ns(NS_CENSOR, ["iptables", "-w", "-F", chain])
            in_ns(NS_CENSOR, ["iptables", "-w", "-X", chain])
        return
    table = _TABLE_PREFIX + rule.replace("-", "_")
    body = _FORWARD.format(rules=NFT_RULES[rule].format(**fields), priority=_PRIORITY.get(rule, 0))
    families = _FAMILIES.get(rule, ("ip",))
    if any(name == table for _, name in _censor_tables()):
        raise LabError(f"censor rule {table} is already in place: a leftover (clear_censor_rules) or a nested block")
    add_table(table, body, families)
    try:
        yield
    finally:
        for family in families:
            in_ns(NS_CENSOR, ["nft", "delete", "table", family, table])
