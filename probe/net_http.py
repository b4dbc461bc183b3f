"""HTTP through httpx to a pinned address, the vantage's way (probe.net's connections): for the
clients that want httpx's API (DNS over HTTPS). Apart from probe.net so that a round whose checks
never use httpx does not load it (the `http` check speaks HTTP/1.1 itself: probe.checks.http1)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from probe._httpcore import httpcore, httpx
from probe.net import Route, Stream, open_tcp

__all__ = ["http_client", "http_pool"]


def http_client(route: Route, address: str, context: ssl.SSLContext, timeout: float, *, first: Stream | None = None) -> httpx.AsyncClient:
    """An httpx client whose every connection goes to `address` (whatever the URL's host, which
    still gives the SNI, certificate name and Host header), the vantage's way. `first`: an open
    connection (plain, or already TLS) for the first request, instead of a new one."""
    transport = _PinnedTransport(route, address, context, first)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def http_pool(route: Route, address: str, context: ssl.SSLContext, *, first: Stream | None = None) -> httpcore.AsyncConnectionPool:
    """httpx's connection layer (httpcore) alone, pinned as `http_client` is (the transport of
    `http_client`; the `http` check speaks HTTP/1.1 itself: probe.checks.http1)."""
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

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> _PinnedStream:
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
