"""A userspace DPI on an NFQUEUE: reads TLS ClientHellos the way a censor's box does, per flow.

The 2026 field (ENDPOINTS.md, "The field in 2026, second wave") has DPI that reassembles TCP
("MSS clamping no longer splits the hello"), DPI that drops the first segment of a split
ClientHello, and flow correlation of SNI + fingerprint + address with a check that the SNI
resolves to the destination. Kernel rules cannot compare a TLS record's length with the segment
that carries it or look a name up, so those censors are this program. The censor queues the
first packets of each client->server flow to it (tests/lab/field2026_scenarios.py) and acts on
the mark this program gives a packet in its verdict: RESET (the packet is answered with a TCP
reset) or DROP (the packet and the rest of its flow, both ways, are dropped).

How it reads (`inspect`):
  whole        a ClientHello is read only when one segment carries all of it; a hello split
               across segments is never read (splitting evades, as TSPU before 2026)
  reassemble   the flow's segments are put together until the hello is complete, then read; the
               completing segment gets the verdict (splitting does not evade)
  split-drop   the first segment of a flow is dropped when it starts a ClientHello that it does
               not hold whole (a split hello) and shows a family in `families` or none at all
               (cut before the cipher list); whole hellos pass. A hello larger than one segment
               (Chrome's or Firefox's with a post-quantum key share) is split on any wire.

What blocks a hello that is read (all given keys must match): `names` (its SNI), `families`
(its client family, from the cipher list at fixed places: chrome, safari, firefox, openssl),
`mlkem` (true: an X25519MLKEM768 key share, 0x11ec, is there; false: it is not). `correlate`:
a hello whose SNI does not resolve (A/AAAA at `authority`) to the address it goes to is blocked
as well, whatever the keys (a decoy SNI is flagged).

Standalone on purpose (no imports from the lab package; the nfnetlink_queue code is nfqdelay's,
its sibling): `ip netns exec mrl-censor python3 hellodpi.py SPEC.json`, SPEC holding `queue`,
`inspect`, the keys, `action` (reset|drop), `marks` {reset, drop}, `log` (JSON lines, one per
decision) and `ready` (a file made once the queue is bound). Its ClientHello reading shares no
code with msgreach's (probe/fingerprint.py).
"""

from __future__ import annotations

import ipaddress
import json
import select
import struct
import sys
import time
from dataclasses import dataclass, field

from nfqdelay import Queue, stop_on_signals  # type: ignore[import-not-found]  # the sibling script (run from this directory)

GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
MLKEM = 0x11EC
FLOW_SECONDS = 60.0  # a flow not seen for this long is forgotten
MAX_HELLO = 16 * 1024 + 5
MAX_FLOWS = 4096


# --- the ClientHello, as the box reads it -------------------------------------------------------------


@dataclass
class Hello:
    sni: str | None
    ciphers: list[int]
    key_shares: list[int]

    @property
    def family(self) -> str:
        """The client family by its cipher list (what a DPI matches at fixed offsets)."""
        c = self.ciphers
        if len(c) >= 5 and c[0] in GREASE and c[1:4] == [0x1301, 0x1302, 0x1303]:
            return {0xC02B: "chrome", 0xC02C: "safari"}.get(c[4], "other")
        if c[:3] == [0x1301, 0x1303, 0x1302]:
            return "firefox"
        if c[:3] == [0x1302, 0x1303, 0x1301]:
            return "openssl"
        return "other"

    @property
    def mlkem(self) -> bool:
        return MLKEM in self.key_shares


def record_length(data: bytes) -> int | None:
    """Bytes of the first TLS record (header included) when `data` starts a handshake record,
    None when it does not (or too little is there to say)."""
    if len(data) < 5 or data[0] != 0x16 or data[1] != 0x03:
        return None
    return 5 + int.from_bytes(data[3:5], "big")


def starts_hello(data: bytes) -> bool:
    return len(data) >= 1 and data[0] == 0x16 and (len(data) < 6 or data[5] == 0x01)


def partial_family(data: bytes) -> str | None:
    """The client family from the first bytes of a ClientHello (its cipher list), or None when
    those bytes are not there yet (a segment cut before them)."""
    try:
        p = 5 + 4 + 2 + 32
        p += 1 + data[p]
        (length,) = struct.unpack_from("!H", data, p)
        count = min(length // 2, 5)
        ciphers = list(struct.unpack_from(f"!{count}H", data, p + 2))
    except (IndexError, struct.error):
        return None
    return Hello(None, ciphers, []).family if count == 5 else None


def parse_hello(record: bytes) -> Hello | None:
    """The fields this box keys on, from one whole handshake record holding a ClientHello."""
    try:
        body = record[5:]
        if body[0] != 0x01:
            return None
        p = 4 + 2 + 32
        p += 1 + body[p]  # session id
        (length,) = struct.unpack_from("!H", body, p)
        ciphers = list(struct.unpack_from(f"!{length // 2}H", body, p + 2))
        p += 2 + length
        p += 1 + body[p]  # compression methods
        (length,) = struct.unpack_from("!H", body, p)
        p += 2
        end = min(p + length, len(body))
        sni, shares = None, []
        while p + 4 <= end:
            kind, size = struct.unpack_from("!HH", body, p)
            value = body[p + 4 : p + 4 + size]
            p += 4 + size
            if kind == 0x0000 and len(value) > 5:  # server_name: list length, type 0, name length
                sni = value[5 : 5 + int.from_bytes(value[3:5], "big")].decode("ascii", "replace")
            elif kind == 0x0033 and len(value) >= 2:  # key_share: list length, (group, length, key)*
                q = 2
                while q + 4 <= len(value):
                    group, key = struct.unpack_from("!HH", value, q)
                    shares.append(group)
                    q += 4 + key
        return Hello(sni, ciphers, shares)
    except (IndexError, struct.error):
        return None


# --- packets ------------------------------------------------------------------------------------------


@dataclass
class Segment:
    flow: tuple[str, int, str, int]
    seq: int
    payload: bytes

    @property
    def destination(self) -> str:
        return self.flow[2]


def tcp_segment(packet: bytes) -> Segment | None:
    """The TCP segment in an IPv4 or IPv6 packet (no IPv6 extension headers: the lab sends none)."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        header = (packet[0] & 0x0F) * 4
        if packet[9] != 6:
            return None
        total = int.from_bytes(packet[2:4], "big")
        source, destination = str(ipaddress.IPv4Address(packet[12:16])), str(ipaddress.IPv4Address(packet[16:20]))
    elif version == 6:
        header = 40
        if packet[6] != 6:
            return None
        total = 40 + int.from_bytes(packet[4:6], "big")
        source, destination = str(ipaddress.IPv6Address(packet[8:24])), str(ipaddress.IPv6Address(packet[24:40]))
    else:
        return None
    tcp = packet[header:total]
    if len(tcp) < 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", tcp)
    offset = (tcp[12] >> 4) * 4
    return Segment((source, sport, destination, dport), seq, bytes(tcp[offset:]))


# --- the box --------------------------------------------------------------------------------------------


@dataclass
class Flow:
    start: int  # sequence number of the first payload byte
    data: bytearray = field(default_factory=bytearray)
    segments: int = 0
    done: bool = False
    seen: float = field(default_factory=time.monotonic)


class Box:
    def __init__(self, spec: dict):
        self.inspect = spec["inspect"]
        self.names = set(spec.get("names") or [])
        self.families = set(spec.get("families") or [])
        self.mlkem = spec.get("mlkem")
        self.correlate = bool(spec.get("correlate"))
        self.authority: str = spec.get("authority", "")
        self.action = spec.get("action", "reset")
        self.marks = {k: int(str(v), 0) for k, v in spec["marks"].items()}
        self.log = open(spec["log"], "a", buffering=1)  # noqa: SIM115 - held for the box's life
        self.flows: dict[tuple[str, int, str, int], Flow] = {}
        self.resolved: dict[str, tuple[float, set[str]]] = {}

    def decide(self, packet: bytes) -> int | None:
        """The mark for this packet (None: let it through unmarked)."""
        segment = tcp_segment(packet)
        if segment is None or not segment.payload:
            return None
        self._expire()
        flow = self.flows.get(segment.flow)
        if flow is None:
            flow = self.flows[segment.flow] = Flow(segment.seq)
        flow.seen = time.monotonic()
        if flow.done:
            return None
        flow.segments += 1
        if self.inspect == "split-drop":
            return self._split_drop(segment, flow)
        if self.inspect == "whole":
            flow.done = True
            length = record_length(segment.payload)
            if length is None or len(segment.payload) < length:
                self._note(segment, flow, None, "pass", "not a whole ClientHello in this segment: not read")
                return None
            return self._judge(segment, flow, segment.payload[:length])
        # reassemble: in-order bytes only (a retransmission or a gap adds nothing)
        if segment.seq == (flow.start + len(flow.data)) & 0xFFFFFFFF:
            flow.data += segment.payload
        if not starts_hello(bytes(flow.data[:6])):
            flow.done = True
            return None
        length = record_length(bytes(flow.data))
        if length is None or len(flow.data) < length:
            if len(flow.data) > MAX_HELLO:
                flow.done = True
            return None
        flow.done = True
        return self._judge(segment, flow, bytes(flow.data[:length]))

    def _split_drop(self, segment: Segment, flow: Flow) -> int | None:
        """The first segment of a split hello, dropped unless it shows a family not in `families`
        (too short to show one: dropped; no `families`: every split hello)."""
        flow.done = True
        length = record_length(segment.payload)
        if not starts_hello(segment.payload) or (length is not None and len(segment.payload) >= length):
            return None
        family = partial_family(segment.payload)
        if self.families and family is not None and family not in self.families:
            self._note(segment, flow, None, "pass", f"the first segment of a split {family} ClientHello")
            return None
        self._note(segment, flow, None, "drop", f"the first segment of a split ClientHello ({family or 'family not shown'})")
        return self.marks["drop"]

    def _judge(self, segment: Segment, flow: Flow, record: bytes) -> int | None:
        hello = parse_hello(record)
        if hello is None:
            return None
        keyed = (
            (not self.names or hello.sni in self.names)
            and (not self.families or hello.family in self.families)
            and (self.mlkem is None or hello.mlkem == self.mlkem)
            and bool(self.names or self.families or self.mlkem is not None)
        )
        flagged = self.correlate and hello.sni is not None and segment.destination not in self._resolve(hello.sni)
        if not (keyed or flagged):
            self._note(segment, flow, hello, "pass", "")
            return None
        why = "keys matched" if keyed else f"{hello.sni} does not resolve to {segment.destination}"
        self._note(segment, flow, hello, self.action, why)
        return self.marks[self.action]

    def _resolve(self, name: str) -> set[str]:
        """The name's A and AAAA records at the authority (cached 30 s; on failure: none)."""
        cached = self.resolved.get(name)
        if cached and time.monotonic() - cached[0] < 30:
            return cached[1]
        import dns.exception
        import dns.message
        import dns.query
        import dns.rdatatype

        found: set[str] = set()
        for kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = dns.query.udp(dns.message.make_query(name, kind), self.authority, timeout=1)
            except (dns.exception.DNSException, OSError):
                continue  # a lost query: no address from it, the hello is flagged (the box fails closed)
            found |= {str(ipaddress.ip_address(r.address)) for rrset in answer.answer for r in rrset if hasattr(r, "address")}
        self.resolved[name] = (time.monotonic(), found)
        return found

    def _note(self, segment: Segment, flow: Flow, hello: Hello | None, decision: str, why: str) -> None:
        source, sport, destination, dport = segment.flow
        entry = {"time": time.time(), "flow": f"{source}:{sport}>{destination}:{dport}", "segments": flow.segments,
                 "decision": decision, "why": why}
        if hello is not None:
            entry.update(sni=hello.sni, family=hello.family, mlkem=hello.mlkem, ciphers=[f"{c:04x}" for c in hello.ciphers[:6]])
        self.log.write(json.dumps(entry) + "\n")

    def _expire(self) -> None:
        now = time.monotonic()
        if len(self.flows) > MAX_FLOWS or any(now - f.seen > FLOW_SECONDS for f in list(self.flows.values())[:16]):
            self.flows = {k: f for k, f in self.flows.items() if now - f.seen <= FLOW_SECONDS}
            while len(self.flows) > MAX_FLOWS:
                self.flows.pop(next(iter(self.flows)))


def main() -> int:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    stop = stop_on_signals()
    box = Box(spec)
    queue = Queue(int(spec["queue"]), copy_bytes=0xFFFF)
    open(spec["ready"], "w").close()
    while not stop.is_set():
        try:
            ready, _, _ = select.select([queue.sock], [], [], 0.5)
        except InterruptedError:
            continue
        if ready:
            for packet_id, packet in queue.received():
                try:
                    mark = box.decide(packet)
                except Exception as exc:  # noqa: BLE001 - a packet the box cannot read goes through, and is noted
                    print(f"hellodpi: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    mark = None
                queue.verdict(packet_id, mark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
