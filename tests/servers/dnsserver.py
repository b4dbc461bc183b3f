"""A DNS server the tests control, built with dnspython's message API: plain DNS over UDP and TCP
on one port, DNS over TLS, and DNS over HTTPS (RFC 8484 POST), all answering from one zone.

    server = DNSServer()
    await server.start()                          # on the server loop; sets server.port
    server.set("good.test", a=["127.0.0.1"])
    server.set("gone.test", rcode="NXDOMAIN")
    server.set("tc.test", a=["127.0.0.1"], mode="truncate")   # UDP: TC bit, TCP: the answer

Behaviours per name (`mode`): `answer` (the records and rcode given), `drop` (never answer),
`garbage` (bytes that are not DNS), `truncate` (see above). Names not in the zone get
`default` (NXDOMAIN unless changed). Every query is recorded in `queries`.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

GARBAGE = b"\x13\x37this is not a DNS message at all\xff\xfe\x00"


@dataclass(frozen=True)
class Behaviour:
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    rcode: str = "NOERROR"  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED
    mode: str = "answer"  # answer | drop | garbage | truncate
    delay: float = 0.0
    doh_status: int = 200  # DoH only: the HTTP status to answer with


@dataclass
class DNSServer:
    host: str = "127.0.0.1"
    default: Behaviour = field(default_factory=lambda: Behaviour(rcode="NXDOMAIN"))
    zone: dict[str, Behaviour] = field(default_factory=dict)
    queries: list[tuple[str, str, str]] = field(default_factory=list)  # (transport, name, type)
    port: int = 0
    dot_port: int = 0
    doh_port: int = 0

    def __post_init__(self) -> None:
        self._closers: list = []
        self._tasks: set[asyncio.Task] = set()

    # --- configuration (any thread: plain dict writes) -----------------------------------------

    def set(self, name: str, *, a: list[str] = (), aaaa: list[str] = (), **kwargs) -> None:
        self.zone[_norm(name)] = Behaviour(a=tuple(a), aaaa=tuple(aaaa), **kwargs)

    def behaviour(self, name: str) -> Behaviour:
        return self.zone.get(_norm(name), self.default)

    def count(self, name: str, transport: str | None = None) -> int:
        return sum(1 for t, n, _ in self.queries if n == _norm(name) and transport in (None, t))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def dot_address(self) -> str:
        return f"tls://{self.host}:{self.dot_port}"

    @property
    def doh_url(self) -> str:
        return f"https://{self.host}:{self.doh_port}/dns-query"

    # --- answering ------------------------------------------------------------------------------

    async def answer(self, wire: bytes, transport: str) -> bytes | None:
        """The reply to one query as bytes, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - a test server ignores what it cannot parse
            return None
        question = query.question[0] if query.question else None
        name = question.name.to_text() if question is not None else ""
        rdtype = dns.rdatatype.to_text(question.rdtype) if question is not None else ""
        self.queries.append((transport, _norm(name), rdtype))
        behaviour = self.behaviour(name)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.mode == "drop":
            return None
        if behaviour.mode == "garbage":
            return GARBAGE
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.set_rcode(dns.rcode.from_text(behaviour.rcode))
        if behaviour.mode == "truncate" and transport == "udp":
            response.flags |= dns.flags.TC
            return response.to_wire()
        if question is not None and behaviour.rcode == "NOERROR":
            records = {dns.rdatatype.A: behaviour.a, dns.rdatatype.AAAA: behaviour.aaaa}.get(question.rdtype, ())
            if records:
                response.answer.append(dns.rrset.from_text_list(question.name, 30, "IN", question.rdtype, list(records)))
        return response.to_wire()

    # --- transports -----------------------------------------------------------------------------

    async def start(self) -> DNSServer:
        """UDP and TCP on the same port (retried until a port is free for both)."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), local_addr=(self.host, self.port))
            port = transport.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(self._tcp_client("tcp"), self.host, port)
            except OSError:
                transport.close()
                continue
            self.port = port
            self._closers += [transport, tcp]
            return self
        raise RuntimeError("no port free for both UDP and TCP")

    async def start_dot(self, context: ssl.SSLContext) -> DNSServer:
        server = await asyncio.start_server(self._tcp_client("dot"), self.host, 0, ssl=context)
        self.dot_port = server.sockets[0].getsockname()[1]
        self._closers.append(server)
        return self

    async def start_doh(self, context: ssl.SSLContext) -> DNSServer:
        server = await asyncio.start_server(self._doh_client, self.host, 0, ssl=context)
        self.doh_port = server.sockets[0].getsockname()[1]
        self._closers.append(server)
        return self

    async def close(self) -> None:
        for closer in self._closers:
            closer.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tcp_client(self, transport: str):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    length = int.from_bytes(await reader.readexactly(2), "big")
                    reply = await self.answer(await reader.readexactly(length), transport)
                    if reply is None:
                        await asyncio.sleep(3600)  # silent: hold the connection open
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        return handle

    async def _doh_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:] if line)
            )
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            try:
                name = dns.message.from_wire(body).question[0].name.to_text()
            except Exception:  # noqa: BLE001
                name = ""
            reply = await self.answer(body, "doh")
            if reply is None:
                await asyncio.sleep(3600)
            status = self.behaviour(name).doh_status if name else 400
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/dns-message\r\n"
                f"Content-Length: {len(reply)}\r\nConnection: close\r\n\r\n".encode() + reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer):
        self.server = server

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        async def reply() -> None:
            answer = await self.server.answer(data, "udp")
            if answer is not None and not self.transport.is_closing():
                self.transport.sendto(answer, addr)

        self.server._spawn(reply())


def _norm(name: str) -> str:
    return name.lower().rstrip(".")

