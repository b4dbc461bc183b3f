"""An HTTP/3 server (aioquic's QUIC and H3 stacks) and a UDP relay that can play TSPU's QUIC rule.

Server behaviours, for every request:

    ok        200 and a small body              status_500  500 (the service's own status)
    endless   200 and a body that never ends    silent      the handshake completes, no response

`QuicFilter` relays datagrams to a backend and back, dropping client datagrams of at least
`min_size` bytes whose bytes 1-4 are QUIC version 1 (`00 00 00 01`) when `drop_quic_v1` is
set: the TSPU signature (IMC 2022). With `drop_sni`, it drops instead the client's Initial
packets whose ClientHello carries that name (decrypted with the Initial keys, which RFC 9001
derives from the packet's own connection id, as a DPI box does): a censor keyed on the name, which
a decoy SNI to the same address passes. Run standalone (the lab does):
    python tests/servers/h3.py --listen 198.19.1.10:443 --cert leaf.pem --key leaf.key
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.events import ProtocolNegotiated
from aioquic.quic.packet import QuicPacketType, pull_quic_header

BEHAVIOURS = ("ok", "status_500", "endless", "silent")
BODY = b"hello over HTTP/3 from the msgreach tests\n"


class H3Server(QuicConnectionProtocol):
    def __init__(self, *args, behaviour: str = "ok", **kwargs):
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.h3: H3Connection | None = None
        self.tasks: set[asyncio.Task] = set()

    def quic_event_received(self, event) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                self.respond(h3_event.stream_id)

    def respond(self, stream_id: int) -> None:
        assert self.h3 is not None
        if self.behaviour == "silent":
            return
        if self.behaviour == "endless":
            self.h3.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/octet-stream")])
            task = asyncio.ensure_future(self._endless(stream_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            status = b"500" if self.behaviour == "status_500" else b"200"
            self.h3.send_headers(stream_id, [(b":status", status), (b"content-length", str(len(BODY)).encode())])
            self.h3.send_data(stream_id, BODY, end_stream=True)
        self.transmit()

    async def _endless(self, stream_id: int) -> None:
        chunk = b"x" * 16384
        try:
            while not self._closed.is_set():
                self.h3.send_data(stream_id, chunk, end_stream=False)
                self.transmit()
                await asyncio.sleep(0.005)
        except Exception:  # noqa: BLE001 - the client went away
            pass


async def start_h3(host: str, port: int, cert: str, key: str, behaviour: str = "ok"):
    """Serve HTTP/3 on host:port (UDP); returns the aioquic server (`.close()` stops it)."""
    assert behaviour in BEHAVIOURS, behaviour
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(cert, key)
    return await serve(host, port, configuration=configuration, create_protocol=partial(H3Server, behaviour=behaviour))


def initial_plaintext(data: bytes) -> bytes | None:
    """The decrypted payload of a client's Initial packet (the first in the datagram), or None."""
    try:
        buf = Buffer(data=data)
        header = pull_quic_header(buf, host_cid_length=8)
        if header.packet_type != QuicPacketType.INITIAL or header.version is None:
            return None
        crypto = CryptoPair()
        crypto.setup_initial(cid=header.destination_cid, is_client=False, version=header.version)
        _, payload, _ = crypto.decrypt_packet(data[: header.packet_length], buf.tell(), 0)
        return payload
    except Exception:  # noqa: BLE001 - not a decryptable Initial: not matched
        return None


class QuicFilter(asyncio.DatagramProtocol):
    """A UDP relay in front of `backend`: one upstream socket per client address."""

    def __init__(self, backend: tuple[str, int], *, drop_quic_v1: bool = True, min_size: int = 1001, drop_sni: str | None = None):
        self.backend, self.drop_quic_v1, self.min_size = backend, drop_quic_v1 or drop_sni is not None, min_size
        self.drop_sni = drop_sni.encode() if drop_sni else None
        self.upstreams: dict[tuple, asyncio.DatagramTransport] = {}
        self.dropped = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def matches(self, data: bytes) -> bool:
        if self.drop_sni is not None:
            payload = initial_plaintext(data)
            return payload is not None and self.drop_sni in payload
        return len(data) >= self.min_size and data[1:5] == b"\x00\x00\x00\x01"

    def datagram_received(self, data: bytes, addr) -> None:
        if self.drop_quic_v1 and self.matches(data):
            self.dropped += 1
            return
        upstream = self.upstreams.get(addr)
        if upstream is None:
            asyncio.ensure_future(self._open(addr, data))
        else:
            upstream.sendto(data)

    async def _open(self, addr, first: bytes) -> None:
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _addr) -> None:
                relay.transport.sendto(data, addr)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Back, remote_addr=self.backend)
        self.upstreams[addr] = transport
        transport.sendto(first)


async def start_filter(backend: tuple[str, int], host: str = "127.0.0.1", **kwargs) -> tuple[asyncio.DatagramTransport, QuicFilter, int]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(lambda: QuicFilter(backend, **kwargs), local_addr=(host, 0))
    return transport, protocol, transport.get_extra_info("sockname")[1]


async def _main(listens: list[str], cert: str, key: str, behaviour: str) -> None:
    for listen in listens:
        host, _, port = listen.rpartition(":")
        await start_h3(host.strip("[]"), int(port), cert, key, behaviour)
    print("h3 server ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", action="append", required=True, help="HOST:PORT (UDP, repeatable)")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--behaviour", default="ok", choices=BEHAVIOURS)
    args = parser.parse_args()
    asyncio.run(_main(args.listen, args.cert, args.key, args.behaviour))
