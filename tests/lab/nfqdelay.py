"""Delay every packet of an NFQUEUE by a random time: netem's `delay D J` without netem.

The lab kernel may be built without sch_netem (this one is), so the censor's "bad line"
scenario queues packets with nftables (`queue num N bypass`) and this program gives each one its
verdict (accept) after D ± J milliseconds, uniformly drawn, so packets also reorder as on a
jittery line. Loss is done by nftables itself (`numgen random`).

Standalone on purpose (no imports from the lab package): it runs as
`ip netns exec mrl-censor python3 nfqdelay.py --queue 7 --delay-ms 100 --jitter-ms 50`.
Speaks the nfnetlink_queue protocol directly (linux/netfilter/nfnetlink_queue.h).
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META, NFQNL_COPY_PACKET = 1, 2
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_MARK = 3
NFQA_PAYLOAD = 10
NF_ACCEPT = 1


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


class Queue:
    """One NFQUEUE. `copy_bytes`: how much of each packet to read (0: none, its id only)."""

    def __init__(self, number: int, copy_bytes: int = 0):
        self.number = number
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 * 1024 * 1024)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind((0, 0))
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)))
        self._config(
            _attr(NFQA_CFG_PARAMS, struct.pack("!IB", copy_bytes, NFQNL_COPY_PACKET if copy_bytes else NFQNL_COPY_META))
            + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 8192))
            + _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
            + _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
        )

    def _message(self, kind: int, flags: int, attrs: bytes) -> bytes:
        self.seq += 1
        payload = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(self.number)) + attrs
        return struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | kind, NLM_F_REQUEST | flags, self.seq, 0) + payload

    def _config(self, attrs: bytes) -> None:
        self.sock.send(self._message(NFQNL_MSG_CONFIG, NLM_F_ACK, attrs))
        while True:
            data = self.sock.recv(65536)
            for kind, body in _messages(data):
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack("=i", body[:4])
                    if code != 0:
                        raise OSError(-code, f"nfqueue config: {os.strerror(-code)}")
                    return

    def verdict(self, packet_id: int, mark: int | None = None) -> None:
        """Accept the packet, with `mark` as its new firewall mark when given (what later rules
        act on: the verdict itself can only accept or drop)."""
        attrs = _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        if mark is not None:
            attrs += _attr(NFQA_MARK, struct.pack("!I", mark))
        self.sock.send(self._message(NFQNL_MSG_VERDICT, 0, attrs))

    def packets(self) -> list[int]:
        """Ids of the packets waiting in the socket now (non-blocking)."""
        return [packet_id for packet_id, _ in self.received()]

    def received(self) -> list[tuple[int, bytes]]:
        """(id, the packet from its IP header on: up to `copy_bytes`) of the packets waiting now."""
        found = []
        while True:
            try:
                data = self.sock.recv(262144, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return found
            except OSError as exc:  # ENOBUFS: the kernel dropped messages; fail-open covers them
                if exc.errno == 105:
                    continue
                raise
            for kind, body in _messages(data):
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    packet_id, payload = None, b""
                    for attr_kind, value in _attrs(body[4:]):
                        if attr_kind == NFQA_PACKET_HDR:
                            packet_id = struct.unpack("!I", value[:4])[0]
                        elif attr_kind == NFQA_PAYLOAD:
                            payload = value
                    if packet_id is not None:
                        found.append((packet_id, payload))


def _messages(data: bytes):
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        yield kind, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def _attrs(data: bytes):
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        yield kind & 0x3FFF, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the loop ends, what is held is let go."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, default=7)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=50.0)
    parser.add_argument("--ready-file", help="created once the queue is bound")
    args = parser.parse_args()

    stop = stop_on_signals()
    queue = Queue(args.queue)
    if args.ready_file:
        open(args.ready_file, "w").close()
    pending: list[tuple[float, int]] = []
    low = max(args.delay_ms - args.jitter_ms, 0.0) / 1000
    high = (args.delay_ms + args.jitter_ms) / 1000
    handled = 0
    while not stop.is_set():
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, packet_id = heapq.heappop(pending)
            queue.verdict(packet_id)
        wait = max(pending[0][0] - now, 0) if pending else 0.5
        try:
            ready, _, _ = select.select([queue.sock], [], [], wait)
        except InterruptedError:
            continue
        if ready:
            now = time.monotonic()
            for packet_id in queue.packets():
                heapq.heappush(pending, (now + random.uniform(low, high), packet_id))
                handled += 1
    for _, packet_id in pending:  # let what is held go rather than strand it
        queue.verdict(packet_id)
    print(f"nfqdelay: {handled} packets delayed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
