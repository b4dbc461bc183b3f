"""Connections as a vantage makes them: from its source address, through its SOCKS5 proxy,
trusting its CA bundle. Every check that opens a TCP connection goes through `open_tcp`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from probe._httpcore import httpcore, httpx
from probe.addresses import split_host_port
from probe.config import Vantage
from probe.failures import PROTOCOL_ERROR, Failure

log = logging.getLogger(__name__)

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Route:
    """How a vantage reaches the network."""

    source_address: str | None = None
    socks5: tuple[str, int] | None = None
    socks5_credentials: tuple[str, str] | None = field(default=None, repr=False)  # never in a log line

    @classmethod
    def of(cls, vantage: Vantage) -> "Route":
        socks = split_host_port(vantage.socks5.removeprefix("socks5://"), 1080) if vantage.socks5 else None
        credentials = _socks5_credentials(vantage) if vantage.socks5_auth else None
        return cls(source_address=vantage.source_address, socks5=socks, socks5_credentials=credentials)


_read_credentials: dict[str, tuple[str, str]] = {}  # vantage -> the SOCKS5 credentials last read


def _socks5_credentials(vantage: Vantage) -> tuple[str, str]:
    """Read at every round (a rotated secret is picked up at the next one). A secret that cannot be
    read now (deleted, or swapped mid-rotation) leaves the round on the credentials read before,
    with an error in the log, rather than losing the round."""
    assert vantage.socks5_auth is not None
    try:
        credentials = vantage.socks5_auth.credentials()
    except ValueError as exc:
        kept = _read_credentials.get(vantage.name)
        if kept is None:
            raise
        log.error("vantage %s: %s; this round uses the credentials read before", vantage.name, exc)
        return kept
    _read_credentials[vantage.name] = credentials
    return credentials


# The caller bounds every check; the proxy library's own timeout must never be the shorter one.
_NO_PROXY_TIMEOUT = 24 * 3600.0


async def open_tcp(route: Route, address: str, port: int, *, limit: int = 2**16) -> Stream:
    """Connect to address:port (an IP literal) the way the vantage does. No timeout here: the
    caller bounds the whole check."""
    if route.socks5 is None:
        return await asyncio.open_connection(address, port, local_addr=_local(route, address), limit=limit)
    sock = await _socks5_connect(route, address, port)
    try:
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise


def _local(route: Route, remote: str) -> tuple[str, int] | None:
    if route.source_address is None:
        return None
    host, port = split_host_port(route.source_address, 0)
    try:
        if ipaddress.ip_address(host).version != ipaddress.ip_address(remote).version:
            return None  # a v4 source cannot bind a v6 connection; let the kernel choose
    except ValueError:
        pass
    return host, port


# The proxy's replies (RFC 1928 section 6) as the socket errors the failure taxonomy already knows,
# so a SOCKS vantage reports like a direct one.
_SOCKS_REPLIES = {
    1: lambda: ConnectionResetError("SOCKS5: general failure"),
    2: lambda: PermissionError(13, "SOCKS5: connection not allowed by ruleset"),
    3: lambda: OSError(101, "SOCKS5: network unreachable"),
    4: lambda: OSError(113, "SOCKS5: host unreachable"),
    5: lambda: ConnectionRefusedError(111, "SOCKS5: connection refused"),
    6: lambda: TimeoutError("SOCKS5: TTL expired"),
}


async def _socks5_connect(route: Route, address: str, port: int) -> socket.socket:
    """A socket connected to address:port through the vantage's SOCKS5 proxy (python-socks:
    CONNECT, with username/password authentication when configured). The address is sent as
    an IP literal: names were resolved by the measurement, through the proxy too."""
    from python_socks import ProxyError, ProxyType  # imported by vantages behind a proxy only
    from python_socks.async_.asyncio import Proxy

    assert route.socks5 is not None
    proxy_host, proxy_port = route.socks5
    username, password = route.socks5_credentials or (None, None)
    proxy = Proxy(ProxyType.SOCKS5, proxy_host, proxy_port, username=username, password=password, rdns=False)
    try:
        return await proxy.connect(address, port, timeout=_NO_PROXY_TIMEOUT, local_addr=_local(route, proxy_host))
    except ProxyError as exc:
        reply = _SOCKS_REPLIES.get(exc.error_code or 0)
        if reply is not None:
            raise reply() from None
        # No reply code: the proxy refused our credentials, or did not speak SOCKS5.
        raise Failure(PROTOCOL_ERROR, f"SOCKS5 proxy: {exc}") from None


def ssl_context(ca_bundles: tuple[Path, ...] = (), replace: bool = False, *, verify: bool = True, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A client context trusting the system store (unless replaced) plus the given bundles."""
    return _ssl_context(tuple(ca_bundles), replace, verify, alpn)


@lru_cache(maxsize=64)
def _ssl_context(ca_bundles: tuple[Path, ...], replace: bool, verify: bool, alpn: tuple[str, ...]) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if not (replace and ca_bundles):
            _load_system_trust(context)
        for bundle in ca_bundles:
            context.load_verify_locations(cafile=str(bundle))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def _load_system_trust(context: ssl.SSLContext) -> None:
    """The system's CA certificates. From its hashed directory when there is one: OpenSSL then
    reads a CA when a chain needs it, where the bundle file made every context parse and hold all
    of them (memory and CPU per context: docs/benchmarks.md)."""
    directory = hashed_ca_directory()
    if directory is not None:
        context.load_verify_locations(capath=directory)
        return
    context.load_default_certs()
    try:  # Debian's store, when the interpreter's default paths point elsewhere
        context.load_verify_locations(cafile="/etc/ssl/certs/ca-certificates.crt")
    except OSError:
        pass


_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


@lru_cache(maxsize=1)
def hashed_ca_directory() -> str | None:
    """OpenSSL's CA directory (SSL_CERT_DIR, else the default) if it holds hashed names
    (`c_rehash`, Debian's update-ca-certificates). None when SSL_CERT_FILE names a bundle from
    elsewhere: that one may hold CAs the directory does not (a bundle inside the directory, as
    Debian's ca-certificates.crt, is made from the same certificates)."""
    bundle = os.environ.get("SSL_CERT_FILE")
    for directory in (ssl.get_default_verify_paths().capath, "/etc/ssl/certs"):
        try:
            if not directory or not any(_HASHED_NAME.fullmatch(name) for name in os.listdir(directory)):
                continue
        except OSError:
            continue
        if bundle and os.path.dirname(os.path.realpath(bundle)) != os.path.realpath(directory):
            return None
        return directory
    return None


def udp_socket(route: Route, address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket connected to address:port from the vantage's source address.
    Connected, so ICMP errors come back as errors. (SOCKS5 is TCP only: UDP goes direct.)"""
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if route.source_address:
            host, _ = split_host_port(route.source_address, 0)
            if ipaddress.ip_address(host).version == ipaddress.ip_address(address).version:
                sock.bind((host, 0))
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def http_client(route: Route, address: str, context: ssl.SSLContext, timeout: float, *, first: Stream | None = None) -> httpx.AsyncClient:
    """An httpx client whose every connection goes to `address` (whatever the URL's host, which
    still gives the SNI, certificate name and Host header), the vantage's way. `first`: an open
    connection (plain, or already TLS) for the first request, instead of a new one."""
    transport = _PinnedTransport(route, address, context, first)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def http_pool(route: Route, address: str, context: ssl.SSLContext, *, first: Stream | None = None) -> httpcore.AsyncConnectionPool:
    """httpx's connection layer (httpcore) alone, pinned as `http_client` is (the transport of
    `http_client`; the `http` check drives h11 itself: probe.checks.http1)."""
    return httpcore.AsyncConnectionPool(ssl_context=context, network_backend=_PinnedBackend(route, address, first), max_connections=2, retries=0)


class _PinnedStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one of our asyncio connections."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        async with asyncio.timeout(timeout):
            return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._writer.write(buffer)
        async with asyncio.timeout(timeout):
            await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> "_PinnedStream":
        if self._writer.get_extra_info("ssl_object") is not None:
            return self  # the tls stage's handshake, validated with the same trust: not twice
        async with asyncio.timeout(timeout):
            await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects every request to one address, the vantage's way (source address, SOCKS5)."""

    def __init__(self, route: Route, address: str, first: Stream | None = None):
        self._route, self._address, self._first = route, address, first

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None) -> _PinnedStream:
        if self._first is not None:
            first, self._first = self._first, None
            return _PinnedStream(*first)
        async with asyncio.timeout(timeout):
            return _PinnedStream(*await open_tcp(self._route, self._address, port))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, route: Route, address: str, context: Any, first: Stream | None = None):
        super().__init__(verify=context)
        # httpx has no public hook for the network backend; its pool is replaced with one that
        # uses ours (pinned address, the vantage's route). Pinned by httpx<1 in pyproject.
        self._pool = http_pool(route, address, context, first=first)
