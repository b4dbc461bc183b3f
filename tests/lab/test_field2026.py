"""The 2026 field's second wave in the lab (tests/lab/field2026_scenarios.py), each scenario proven
on the wire with plain clients from the client namespace — curl-cffi's impersonation profiles,
`openssl s_client`, Python's ssl, curl, raw sockets (tests/lab/hellos.py) — never with msgreach's
verdicts (the monitor's own tests come with its changes for issue 20).

Each test shows what the censor does to what it keys on, and that it leaves the rest alone: the
other client families, the hello without the key share, a decoy name, the other address family,
the domestic yardstick. Timeouts are short (3 s) and counted: the whole file takes a few minutes.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import field2026_scenarios  # noqa: F401 - registers the scenarios
from .lab import UPLOAD_PATH, Lab, in_ns
from .plan import (
    DOMESTIC_FRONT,
    IF_CLIENT,
    IF_SERVERS,
    NS_CENSOR,
    NS_CLIENT,
    NS_SERVERS,
    REPO,
    v6,
)
from .scenarios import SCENARIOS

pytestmark = pytest.mark.lab

HELLOS = Path(__file__).with_name("hellos.py")
WEB = "web.whatsapp.com"  # the target every hello scenario here is switched on for (whatsapp/web)
DECOY = "ya.ru"
# One client of each family, and a second of two of them (Chrome/Android without the post-quantum
# key share; Tor Browser: Firefox's family without it). What each sends: field2026_scenarios.
CLIENTS = ("chrome", "chrome131_android", "safari180_ios", "firefox", "tor145", "openssl", "python")
FAMILY = {"chrome": "chrome", "chrome131_android": "chrome", "safari180_ios": "safari", "firefox": "firefox", "tor145": "firefox",
          "openssl": "openssl", "python": "openssl"}
MLKEM = {"chrome", "firefox"}  # the profiles that send an X25519MLKEM768 key share
EARLY, LATE = 40, 200  # split points: before the cipher list (byte 76), after it


@contextlib.contextmanager
def scenario(lab: Lab, name: str, selectors: list[str] | None = None, **options: str) -> Iterator[None]:
    lab.scenario(name, True, selectors, options=options or None)
    try:
        yield
    finally:
        lab.scenario(name, False)


def hellos(lab: Lab, attempts: list[dict[str, Any]]) -> list[str]:
    """Run attempts (tests/lab/hellos.py) in the client namespace: one outcome each."""
    for attempt in attempts:
        attempt.setdefault("ca", str(lab.ca_path))
        attempt.setdefault("timeout", 3)
    path = lab.dir / "hello-attempts.json"
    path.write_text(json.dumps(attempts))
    proc = in_ns(NS_CLIENT, [sys.executable, str(HELLOS), str(path)], check=False, timeout=60 + 5 * len(attempts))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def attempt(lab: Lab, client: str, *, sni: str = WEB, host: str = WEB, family: int = 4, mode: str = "replay",
            split: int | None = None, address: str | None = None) -> dict[str, Any]:
    where = address or lab.plan.hosts[host]
    return {"client": client, "sni": sni, "address": where if family == 4 else v6(where), "mode": mode, "split": split}


def outcomes(lab: Lab, named: dict[str, dict[str, Any]]) -> dict[str, str]:
    return dict(zip(named, hellos(lab, list(named.values())), strict=False))


def box_log(lab: Lab, name: str) -> list[dict[str, Any]]:
    path = SCENARIOS[name].log(lab)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def box_alive(lab: Lab, name: str) -> bool:
    pids = lab.state["scenarios"][name]["pids"]
    return bool(pids) and all(Path(f"/proc/{pid}").exists() for pid in pids)


# --- what the apps send ----------------------------------------------------------------------------------


def test_every_client_completes_without_a_censor(clean_lab: Lab) -> None:
    """The baseline the fingerprint tests lean on: every client's real handshake validates and
    every replayed hello (whole or split) gets a ServerHello, on both families."""
    lab = clean_lab
    named = {f"{c} handshake": attempt(lab, c, mode="handshake") for c in CLIENTS}
    named |= {f"{c} replay v6": attempt(lab, c, family=6) for c in CLIENTS}
    named |= {f"{c} split {at}": attempt(lab, c, split=at) for c in ("chrome", "openssl") for at in (EARLY, LATE)}
    found = outcomes(lab, named)
    assert set(found.values()) == {"ok"}, found


@pytest.mark.parametrize("family", ["chrome", "safari", "firefox", "openssl"])
def test_a_censor_keyed_on_one_client_family(clean_lab: Lab, family: str) -> None:
    """fingerprint-<family>: that family's hellos are reset, whatever the name (a decoy too) and on
    both families; the other families pass. Fixed offsets read the first segment only: a hello
    split before its cipher list slips through, one split after it does not."""
    lab = clean_lab
    blocked = [c for c in CLIENTS if FAMILY[c] == family]
    passing = [c for c in CLIENTS if FAMILY[c] != family]
    one = blocked[0]
    named = {f"{c}": attempt(lab, c) for c in CLIENTS}
    named |= {
        "real handshake, blocked client": attempt(lab, one, mode="handshake"),
        "real handshake, another family": attempt(lab, passing[0], mode="handshake"),
        "blocked hello, IPv6": attempt(lab, one, family=6),
        "blocked hello, decoy name": attempt(lab, one, sni=DECOY),
        "blocked hello split early": attempt(lab, one, split=EARLY),
        "blocked hello split late": attempt(lab, one, split=LATE),
    }
    with scenario(lab, f"fingerprint-{family}", ["whatsapp/web"]):
        found = outcomes(lab, named)
    expected = {c: "reset" if c in blocked else "ok" for c in CLIENTS}
    expected |= {"real handshake, blocked client": "reset", "real handshake, another family": "ok", "blocked hello, IPv6": "reset",
                 "blocked hello, decoy name": "reset", "blocked hello split early": "ok", "blocked hello split late": "reset"}
    assert found == expected, found


def test_a_censor_keyed_on_the_post_quantum_key_share(clean_lab: Lab) -> None:
    """fingerprint-mlkem resets a hello with an X25519MLKEM768 key share wherever the share
    travels (a split does not help); the same families without it pass. fingerprint-no-mlkem is
    the reverse, on the reassembled hello."""
    lab = clean_lab
    clients = ("chrome", "chrome131_android", "firefox", "tor145", "openssl")
    named = {c: attempt(lab, c) for c in clients}
    named |= {"chrome split early": attempt(lab, "chrome", split=EARLY), "chrome split late": attempt(lab, "chrome", split=LATE),
              "chrome, IPv6": attempt(lab, "chrome", family=6), "chrome handshake": attempt(lab, "chrome", mode="handshake")}
    with scenario(lab, "fingerprint-mlkem", ["whatsapp/web"]):
        with_share = outcomes(lab, named)
    mlkem = {c: "reset" if c in MLKEM else "ok" for c in clients}
    assert with_share == mlkem | {"chrome split early": "reset", "chrome split late": "reset", "chrome, IPv6": "reset",
                                  "chrome handshake": "reset"}, with_share

    named = {c: attempt(lab, c) for c in clients}
    named |= {"openssl split early": attempt(lab, "openssl", split=EARLY), "openssl, IPv6": attempt(lab, "openssl", family=6)}
    with scenario(lab, "fingerprint-no-mlkem", ["whatsapp/web"]):
        without_share = outcomes(lab, named)
        assert box_alive(lab, "fingerprint-no-mlkem")
    assert without_share == {c: "ok" if c in MLKEM else "reset" for c in clients} | {"openssl split early": "reset", "openssl, IPv6": "reset"}, without_share


def test_a_split_hello_evades_a_box_that_reads_whole_hellos_only(clean_lab: Lab) -> None:
    """sni-rst-whole: the name is reset in a hello whole in one segment; split anywhere, it is not
    read. Chrome's and Firefox's hellos with the post-quantum share (about 1.8-2 KB) are split by
    any wire: they pass too (the box's log says they came in two segments)."""
    lab = clean_lab
    named = {
        "openssl whole": attempt(lab, "openssl"), "openssl split early": attempt(lab, "openssl", split=EARLY),
        "openssl split late": attempt(lab, "openssl", split=LATE), "android whole": attempt(lab, "chrome131_android"),
        "chrome (two segments on the wire)": attempt(lab, "chrome"), "openssl decoy": attempt(lab, "openssl", sni=DECOY),
        "openssl whole, IPv6": attempt(lab, "openssl", family=6),
    }
    with scenario(lab, "sni-rst-whole", ["whatsapp/web"]):
        found = outcomes(lab, named)
        assert box_alive(lab, "sni-rst-whole")
        log = box_log(lab, "sni-rst-whole")
    assert found == {"openssl whole": "reset", "openssl split early": "ok", "openssl split late": "ok", "android whole": "reset",
                     "chrome (two segments on the wire)": "ok", "openssl decoy": "ok", "openssl whole, IPv6": "reset"}, found
    assert any(e["decision"] == "reset" and e["sni"] == WEB for e in log), log
    assert any(e["decision"] == "pass" and "not a whole ClientHello" in e["why"] for e in log), log


def test_a_reassembling_box_is_not_evaded_by_a_split(clean_lab: Lab) -> None:
    """sni-rst-reassembled: the name is reset in the reassembled hello, however it is split; a
    decoy name passes."""
    lab = clean_lab
    named = {
        "openssl whole": attempt(lab, "openssl"), "openssl split early": attempt(lab, "openssl", split=EARLY),
        "openssl split late": attempt(lab, "openssl", split=LATE), "chrome (two segments)": attempt(lab, "chrome"),
        "chrome decoy": attempt(lab, "chrome", sni=DECOY), "openssl split early, IPv6": attempt(lab, "openssl", family=6, split=EARLY),
    }
    with scenario(lab, "sni-rst-reassembled", ["whatsapp/web"]):
        found = outcomes(lab, named)
        assert box_alive(lab, "sni-rst-reassembled")
        log = box_log(lab, "sni-rst-reassembled")
    assert found == {"openssl whole": "reset", "openssl split early": "reset", "openssl split late": "reset", "chrome (two segments)": "reset",
                     "chrome decoy": "ok", "openssl split early, IPv6": "reset"}, found
    assert any(e["decision"] == "reset" and e["segments"] == 2 for e in log), log  # a split one, read whole


def test_the_first_segment_of_a_split_hello_is_dropped_by_signature(clean_lab: Lab) -> None:
    """split-drop: whole hellos pass; the first segment of a split one is dropped when it shows the
    listed family (openssl) or is cut before its cipher list; a split Chrome hello passes. With
    fingerprint-openssl on too, the reset hello cannot be split past the censor (TELEGRAM_TLS and
    tdesktop#30734): whole reset, split early or late never through."""
    lab = clean_lab
    named = {
        "openssl whole": attempt(lab, "openssl"), "chrome whole (two segments)": attempt(lab, "chrome"),
        "openssl split early": attempt(lab, "openssl", split=EARLY), "openssl split late": attempt(lab, "openssl", split=LATE),
        "chrome split late": attempt(lab, "chrome", split=LATE), "chrome split early": attempt(lab, "chrome", split=EARLY),
    }
    with scenario(lab, "split-drop", ["whatsapp/web"]):
        alone = outcomes(lab, named)
        with scenario(lab, "fingerprint-openssl", ["whatsapp/web"]):
            both = outcomes(lab, {k: named[k] for k in ("openssl whole", "openssl split early", "openssl split late", "chrome whole (two segments)")})
        assert box_alive(lab, "split-drop")
    assert alone == {"openssl whole": "ok", "chrome whole (two segments)": "ok", "openssl split early": "timeout",
                     "openssl split late": "timeout", "chrome split late": "ok", "chrome split early": "timeout"}, alone
    # The dropped first segment is retransmitted together with the second: a whole hello that the
    # fingerprint rule may reset before the flow's drop mark is read. Either way, no evasion.
    assert both["openssl whole"] == "reset" and both["chrome whole (two segments)"] == "ok", both
    assert {both["openssl split early"], both["openssl split late"]} <= {"timeout", "reset"}, both


def test_flow_correlation_flags_a_decoy_whose_name_is_elsewhere(clean_lab: Lab) -> None:
    """flow-correlation: name + fingerprint + address. The target's name in a Chrome-family hello
    is reset; in another family it passes. A hello whose SNI does not resolve to the address it
    goes to is reset whatever its family: a domestic decoy, and the service's own other name."""
    lab = clean_lab
    named = {
        "name, chrome": attempt(lab, "chrome"), "name, chrome/android": attempt(lab, "chrome131_android"),
        "name, firefox": attempt(lab, "firefox"), "name, openssl": attempt(lab, "openssl"),
        "name, openssl, handshake": attempt(lab, "openssl", mode="handshake"),
        "decoy ya.ru, openssl": attempt(lab, "openssl", sni=DECOY), "decoy ya.ru, firefox": attempt(lab, "firefox", sni=DECOY),
        "static.whatsapp.net, openssl": attempt(lab, "openssl", sni="static.whatsapp.net"),
        "name, chrome, IPv6": attempt(lab, "chrome", family=6), "decoy, openssl, IPv6": attempt(lab, "openssl", sni=DECOY, family=6),
        "name, chrome split early": attempt(lab, "chrome", split=EARLY),
    }
    with scenario(lab, "flow-correlation", ["whatsapp/web"]):
        found = outcomes(lab, named)
        assert box_alive(lab, "flow-correlation")
    assert found == {
        "name, chrome": "reset", "name, chrome/android": "reset", "name, firefox": "ok", "name, openssl": "ok",
        "name, openssl, handshake": "ok", "decoy ya.ru, openssl": "reset", "decoy ya.ru, firefox": "reset",
        "static.whatsapp.net, openssl": "reset", "name, chrome, IPv6": "reset", "decoy, openssl, IPv6": "reset",
        "name, chrome split early": "reset",
    }, found
    # the family is an option: keyed on OpenSSL's hello instead, Chrome's passes
    with scenario(lab, "flow-correlation", ["whatsapp/web"], families="openssl"):
        found = outcomes(lab, {"name, chrome": attempt(lab, "chrome"), "name, openssl": attempt(lab, "openssl")})
    assert found == {"name, chrome": "ok", "name, openssl": "reset"}, found


# --- freezes counted in packets ------------------------------------------------------------------------------


def _gso_segments(ns: str, interface: str) -> int:
    return int(re.search(r"gso_max_segs (\d+)", in_ns(ns, ["ip", "-d", "link", "show", interface]).stdout)[1])


def transfer(lab: Lab, host: str, *, family: int = 4, upload: bool = False, sni: str | None = None, path: str = "/large") -> tuple[int, dict]:
    """curl from the client: download `path` (or upload 64 KB to UPLOAD_PATH) from host's address
    with `sni` (default: the host's name; another name is not validated)."""
    address = lab.plan.hosts[host] if family == 4 else f"[{v6(lab.plan.hosts[host])}]"
    name = sni or host
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{json}", "--cacert", str(lab.ca_path), "--max-time", "3", "--resolve", f"{name}:443:{address}"]
    if sni:
        argv.append("-k")
    if upload:
        body = lab.dir / "upload-64k.bin"
        body.write_bytes(bytes(range(256)) * 256)
        argv += ["-X", "PUT", "--data-binary", f"@{body}"]
        path = UPLOAD_PATH
    proc = in_ns(NS_CLIENT, [*argv, f"https://{name}{path}"], check=False, timeout=20)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


FROZEN, DONE = 28, 0  # curl: timed out, completed


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # small exchange, download, upload (both families), decoy SNI same address, another host in the prefix, domestic yardstick
        ("freeze-packets", {"small": DONE, "download": FROZEN, "upload": FROZEN, "upload v6": FROZEN, "download v6": FROZEN,
                            "decoy": FROZEN, "same prefix": FROZEN, "yardstick": DONE, "yardstick upload": DONE}),
        ("freeze-packets-sni", {"small": DONE, "download": FROZEN, "upload": FROZEN, "upload v6": FROZEN, "download v6": FROZEN,
                                "decoy": DONE, "same prefix": DONE, "yardstick": DONE, "yardstick upload": DONE}),
        ("freeze-packets-domestic", {"small": DONE, "download": FROZEN, "upload": FROZEN, "upload v6": FROZEN, "download v6": FROZEN,
                                     "decoy": FROZEN, "same prefix": FROZEN, "yardstick": FROZEN, "yardstick upload": FROZEN}),
    ],
)
def test_freezes_counted_in_packets_both_ways(clean_lab: Lab, name: str, expected: dict[str, int]) -> None:
    """A flow freezes after 25 packets counted in both directions: a handshake and a small answer
    fit, a 1 MB download and a 64 KB upload do not. Keyed on the hosting prefix (a decoy name and
    another host of the prefix freeze too), on the name (they do not), or on the line (the
    domestic yardstick freezes as well). While on, the lab's links carry one packet per MSS."""
    lab = clean_lab
    host, yardstick = "mmg.whatsapp.net", "mirror.yandex.ru"
    assert transfer(lab, host)[0] == DONE and transfer(lab, host, upload=True)[0] == DONE
    with scenario(lab, name, ["whatsapp/media"]):
        assert _gso_segments(NS_CLIENT, IF_CLIENT) == 1 and _gso_segments(NS_SERVERS, IF_SERVERS) == 1
        found = {
            "small": transfer(lab, host, path="/")[0], "download": transfer(lab, host)[0], "upload": transfer(lab, host, upload=True)[0],
            "upload v6": transfer(lab, host, family=6, upload=True)[0], "download v6": transfer(lab, host, family=6)[0],
            "decoy": transfer(lab, host, sni="example.org")[0], "same prefix": transfer(lab, "static.whatsapp.net")[0],
            "yardstick": transfer(lab, yardstick)[0], "yardstick upload": transfer(lab, yardstick, upload=True)[0],
        }
    assert found == expected, found
    assert _gso_segments(NS_CLIENT, IF_CLIENT) == 65535, "wire-like segments left on after the freeze"
    code, info = transfer(lab, host, upload=True)
    assert code == DONE and info["size_upload"] == 65536, info


def test_the_freeze_counts_packets_not_bytes(clean_lab: Lab) -> None:
    """The freeze is a packet count (option `packets`): with 60 allowed, the same download still
    freezes, and a 64 KB upload that takes about 50 packets each way also does; with 400, the
    upload completes while the 1 MB download (about 750 packets from the server) still freezes."""
    lab = clean_lab
    host = "mmg.whatsapp.net"
    with scenario(lab, "freeze-packets", ["whatsapp/media"], packets="60"):
        at_60 = (transfer(lab, host)[0], transfer(lab, host, upload=True)[0])
    with scenario(lab, "freeze-packets", ["whatsapp/media"], packets="400"):
        at_400 = (transfer(lab, host)[0], transfer(lab, host, upload=True)[0])
    assert at_60 == (FROZEN, FROZEN) and at_400 == (FROZEN, DONE), (at_60, at_400)


# --- blocks that linger --------------------------------------------------------------------------------------

_SIGNATURE = """
import socket, sys
address, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "wireguard":   # handshake initiation: type 1, three zero bytes, 144 more (148 in all)
    payload = bytes([1, 0, 0, 0]) + bytes(144)
else:                     # OpenVPN P_CONTROL_HARD_RESET_CLIENT_V2, key 0: opcode byte, session id, packet id
    payload = bytes([0x38]) + bytes(8) + bytes([0]) + bytes(4) + bytes(12)
sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
sock.sendto(payload, (address, port))
"""


def _stun_answers(address: str, port: int) -> bool:
    code = f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from servers.stun import answers; sys.exit(0 if answers({address!r}, {port}, 1.0) else 1)"
    return subprocess.run(["ip", "netns", "exec", NS_CLIENT, sys.executable, "-c", code], timeout=15, check=False).returncode == 0


def _lingering(family: str) -> str:
    return in_ns(NS_CENSOR, ["nft", "list", "set", family, "mrl_vpn_linger", "lingering"]).stdout


def test_a_vpn_signature_blocks_its_address_for_a_while(clean_lab: Lab) -> None:
    """vpn-linger (seconds=20 here): a WireGuard handshake initiation to the STUN yardstick's
    address drops that address whole (STUN over UDP, TCP) for 20 s; an OpenVPN reset to a web
    host's IPv6 address does the same there; other addresses, and the same host's other family,
    are untouched. Then everything answers again (waited for, bounded, not timed)."""
    lab = clean_lab
    stun = lab.plan.hosts["stun.l.google.com"]
    web6 = v6(lab.plan.hosts[WEB])
    assert _stun_answers(stun, 19302)
    with scenario(lab, "vpn-linger", seconds="20"):
        assert _stun_answers(stun, 19302), "the scenario alone blocks nothing"
        in_ns(NS_CLIENT, [sys.executable, "-c", _SIGNATURE, stun, "51820", "wireguard"])
        in_ns(NS_CLIENT, [sys.executable, "-c", _SIGNATURE, web6, "1194", "openvpn"])
        assert re.search(rf"elements = {{ {re.escape(stun)} (timeout 20s )?expires", _lingering("ip")), _lingering("ip")
        assert web6 in _lingering("ip6"), _lingering("ip6")
        blocked = {
            "stun udp": _stun_answers(stun, 19302),
            "web over IPv6": transfer(lab, WEB, family=6, path="/")[0],
            "web over IPv4": transfer(lab, WEB, path="/")[0],
            "another address": transfer(lab, "static.whatsapp.net", path="/")[0],
        }
        assert blocked == {"stun udp": False, "web over IPv6": FROZEN, "web over IPv4": DONE, "another address": DONE}, blocked
        deadline = time.monotonic() + 90  # 20 s of block; a loaded box gets room, the set's own timer decides
        while stun in _lingering("ip") and time.monotonic() < deadline:
            time.sleep(1)
        assert stun not in _lingering("ip"), "the block did not end"
        assert _stun_answers(stun, 19302) and transfer(lab, WEB, family=6, path="/")[0] == DONE


# --- allowlists characterised --------------------------------------------------------------------------------

ALLOWLIST_PROBES = ("domestic name, domestic address", "foreign name, foreign address", "domestic name, foreign address",
                    "foreign name, domestic address", "no name, domestic address")


def _allowlist_probes(lab: Lab, family: int) -> dict[str, dict[str, Any]]:
    """What a monitor probes (issue 20): each a real `openssl s_client` handshake."""
    where = {
        "domestic name, domestic address": (lab.plan.hosts[DECOY], DECOY),
        "foreign name, foreign address": (lab.plan.hosts[WEB], WEB),
        "domestic name, foreign address": (lab.plan.hosts[WEB], DECOY),
        "foreign name, domestic address": (DOMESTIC_FRONT, WEB),
        "no name, domestic address": (lab.plan.hosts[DECOY], ""),
    }
    return {k: attempt(lab, "openssl", sni=sni, address=address, family=family, mode="handshake") for k, (address, sni) in where.items()}


@pytest.mark.parametrize(
    ("name", "passes"),
    [
        ("allowlist", {"domestic name, domestic address", "domestic name, foreign address"}),
        ("allowlist-address", {"domestic name, domestic address", "foreign name, domestic address", "no name, domestic address"}),
        ("allowlist-both", {"domestic name, domestic address"}),
    ],
)
def test_allowlists_by_name_by_address_by_both(clean_lab: Lab, name: str, passes: set[str]) -> None:
    """The probes that tell the allowlists apart: what passes says whether names, addresses or
    both are listed; the rest is reset. Both families alike."""
    lab = clean_lab
    with scenario(lab, name):
        found = {family: outcomes(lab, _allowlist_probes(lab, family)) for family in (4, 6)}
    expected = {k: "ok" if k in passes else "reset" for k in ALLOWLIST_PROBES}
    assert found == {4: expected, 6: expected}, found


def test_an_allowlist_on_ipv4_only(clean_lab: Lab) -> None:
    lab = clean_lab
    with scenario(lab, "allowlist-ipv4"):
        found = {family: outcomes(lab, _allowlist_probes(lab, family)) for family in (4, 6)}
    by_name = {"domestic name, domestic address", "domestic name, foreign address"}
    assert found[4] == {k: "ok" if k in by_name else "reset" for k in ALLOWLIST_PROBES}, found
    assert found[6] == dict.fromkeys(ALLOWLIST_PROBES, "ok"), found


# --- IPv4 and IPv6 apart ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dropped"), [("syn-drop-ipv6", 6), ("syn-drop-ipv4", 4)])
def test_one_address_family_blocked(clean_lab: Lab, name: str, dropped: int) -> None:
    lab = clean_lab
    with scenario(lab, name, ["whatsapp/web"]):
        found = {family: transfer(lab, WEB, family=family, path="/")[0] for family in (4, 6)}
        other = transfer(lab, "static.whatsapp.net", family=dropped, path="/")[0]
    assert found == {dropped: FROZEN, 10 - dropped: DONE} and other == DONE, (found, other)
