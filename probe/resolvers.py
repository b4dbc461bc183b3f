"""Asking one resolver for a name's A and AAAA records, whatever kind of resolver it is."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path
from urllib.parse import urlsplit

from probe import failures
from probe._dnspython import dns
from probe.addresses import is_ip_literal, split_host_port
from probe.config import Resolver
from probe.model import DNSQuery
from probe.net import Route, open_tcp, ssl_context
from probe.net_http import http_client

_RCODE_FAILURE = {
    dns.rcode.NXDOMAIN: failures.DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: failures.DNS_SERVFAIL,
    dns.rcode.REFUSED: failures.DNS_REFUSED,
}
# When A and AAAA disagree, the more telling failure is reported.
_FAILURE_RANK = [failures.DNS_NXDOMAIN, failures.DNS_SERVFAIL, failures.DNS_REFUSED, failures.DNS_BAD_RESPONSE, failures.TIMEOUT]


_UDP_RETRY_SECONDS = 1.0


async def lookup(resolver: Resolver, name: str, *, route: Route, timeout: float, ca_bundles: tuple[Path, ...] = ()) -> DNSQuery:
    """A and AAAA for `name`, in parallel, bounded by `timeout`. Never raises."""
    started = time.monotonic()
    answer = DNSQuery(resolver=resolver.address, control=resolver.control)
    try:
        async with asyncio.timeout(timeout):
            if resolver.kind == "system":
                answer.addresses = await _system(name)
            else:
                results = await asyncio.gather(
                    *(_query(resolver, name, rdtype, route, timeout, ca_bundles) for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)),
                    return_exceptions=True,
                )
                addresses = [a for r in results if isinstance(r, list) for a in r]
                answer.addresses = list(dict.fromkeys(addresses))
                if not answer.addresses:
                    answer.failure = _worst([failures.classify(r) if isinstance(r, BaseException) else failures.DNS_NO_ANSWER for r in results])
    except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
        answer.failure = failures.classify(exc)
    answer.duration_seconds = time.monotonic() - started
    return answer


def _worst(found: list[str]) -> str:
    for failure in _FAILURE_RANK:
        if failure in found:
            return failure
    return found[0]


async def _system(name: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _query(resolver: Resolver, name: str, rdtype: dns.rdatatype.RdataType, route: Route, timeout: float, ca_bundles: tuple[Path, ...]) -> list[str]:
    query = dns.message.make_query(name, rdtype)
    source = route.source_address and split_host_port(route.source_address, 0)[0]
    if route.socks5 is not None and resolver.kind in ("udp", "dot"):
        response = await _through_proxy(resolver, query, route, ca_bundles)
    elif resolver.kind == "udp":
        host, port = split_host_port(resolver.address, 53)
        # ignore_errors: a forged or garbage datagram does not end the wait for the real reply.
        response = await _udp_retransmitting(query, host, port, source, timeout)
    elif resolver.kind == "dot":
        host, port = split_host_port(resolver.address.removeprefix("tls://"), 853)
        response = await dns.asyncquery.tls(
            query, host, timeout=timeout, port=port, source=source,
            ssl_context=ssl_context(ca_bundles), server_hostname=resolver.server_name or host,
        )
    else:
        response = await _doh(resolver, query, route, timeout, ca_bundles)
    rcode = response.rcode()
    if rcode in _RCODE_FAILURE:
        raise failures.Failure(_RCODE_FAILURE[rcode])
    return [rdata.address for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset]


async def _through_proxy(resolver: Resolver, query: dns.message.Message, route: Route, ca_bundles: tuple[Path, ...]) -> dns.message.Message:
    """DNS over TCP (RFC 7766), or over TLS for a DoT resolver, on a connection through the
    vantage's SOCKS5 proxy: a SOCKS5 CONNECT carries TCP only, and a query sent around the proxy
    would measure another network. (`system` is refused with socks5 at config load.)"""
    tls = resolver.kind == "dot"
    host, port = split_host_port(resolver.address.removeprefix("tls://"), 853 if tls else 53)
    reader, writer = await open_tcp(route, host, port)
    try:
        if tls:
            await writer.start_tls(ssl_context(ca_bundles), server_hostname=resolver.server_name or host)
        wire = query.to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        data = await reader.readexactly(length)
    finally:
        writer.close()
    try:
        response = dns.message.from_wire(data)
    except dns.exception.DNSException as exc:
        raise failures.Failure(failures.DNS_BAD_RESPONSE, str(exc)) from None
    if not query.is_response(response):
        raise failures.Failure(failures.DNS_BAD_RESPONSE, "a reply to another query")
    return response


async def _udp_retransmitting(query: dns.message.Message, host: str, port: int, source: str | None, timeout: float) -> dns.message.Message:
    """Resend the query every second until the timeout, as stub resolvers do: one lost datagram
    on a lossy line must not read as a resolver withholding the name."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise failures.Failure(failures.TIMEOUT, "no DNS reply")
        try:
            # ignore_errors: a forged or garbage datagram does not end the wait for the real reply.
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, host, timeout=min(_UDP_RETRY_SECONDS, remaining), port=port, source=source,
                ignore_unexpected=True, ignore_errors=True,
            )
            return response
        except dns.exception.Timeout:
            continue


async def _doh(resolver: Resolver, query: dns.message.Message, route: Route, timeout: float, ca_bundles: tuple[Path, ...]) -> dns.message.Message:
    """RFC 8484 POST through the same pinned httpx client the HTTP check uses, so DoH goes the
    vantage's way (source address, SOCKS5) and its failures get the same names."""
    url = urlsplit(resolver.address)
    host = url.hostname or ""
    address = resolver.bootstrap or (host if is_ip_literal(host) else (await _system(host))[0])
    headers = {"Content-Type": "application/dns-message", "Accept": "application/dns-message"}
    async with http_client(route, address, ssl_context(ca_bundles), timeout) as client:
        async with client.stream("POST", resolver.address, content=query.to_wire(), headers=headers) as response:
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > 65535:  # no DNS message is larger
                    raise failures.Failure(failures.DNS_BAD_RESPONSE, "DoH body over 64 KiB")
    if response.status_code != 200:
        raise failures.Failure(failures.DNS_SERVFAIL, f"DoH HTTP status {response.status_code}")
    try:
        return dns.message.from_wire(bytes(body))
    except dns.exception.DNSException as exc:
        raise failures.Failure(failures.DNS_BAD_RESPONSE, str(exc)) from None

