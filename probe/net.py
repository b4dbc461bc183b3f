"""Connections as a vantage makes them: from its source address, through its SOCKS5 proxy,
trusting its CA bundle. Every check that opens a TCP connection goes through `open_tcp` (asyncio
streams), or `connect` (our own socket: the tcp → tls → http path, probe._socket_stream)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from probe._socket_stream import SocketStream
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
    def of(cls, vantage: Vantage) -> Route:
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


async def connect(route: Route, address: str, port: int) -> SocketStream:
    """`open_tcp`'s connection (the same routes, the same errors) on a socket of our own. No
    timeout here: the caller bounds the whole check."""
    if route.socks5 is not None:
        sock = await _socks5_connect(route, address, port)
    else:
        sock = socket.socket(family_of(address), socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio's transports set it
            local = _local(route, address)
            if local is not None:
                _bind(sock, local)
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
        except BaseException:
            sock.close()
            raise
    try:
        return SocketStream(sock)
    except BaseException:
        sock.close()
        raise


def _bind(sock: socket.socket, local: tuple[str, int]) -> None:
    try:
        sock.bind(local)
    except OSError as exc:  # asyncio's words for it, with the same errno
        raise OSError(exc.errno, f"error while attempting to bind on address {local!r}: {(exc.strerror or '').lower()}") from None


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
_SOCKS_REPLIES: dict[int, Callable[[], OSError]] = {
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
    try:  # the usual case, told by the C parser (ipaddress's takes ten times as long per connect)
        socket.inet_pton(socket.AF_INET, address)
        return socket.AF_INET
    except OSError:
        pass
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
