"""http: one HTTP/1.1 request (probe.checks.http1: h11's grammar, read our own way) to the address the earlier stages chose,
with a body cap and the redirect history, and the block-page fingerprints met (the status, a
redirect's host, a marker in the whole capped body, looked for while it streams).

A request cut before any response began is sent again on fresh connections, with the real name
and with a decoy (SNI for https, Host for plain http): the differential the judge reads
(probe.judge.http). A response that began and then failed needs no differential: it is the
server's business.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

from probe import __version__, failures
from probe._socket_stream import SocketStream
from probe.checks import http1, tls
from probe.checks.context import Context, Skip
from probe.checks.observe import close_quietly, first_byte, recorded
from probe.model import BlockPage, HTTPExchange, HTTPProbe, Redirect
from probe.net import connect, ssl_context
from probe.params import HTTPParams as Params
from probe.redact import addresses_in, any_secret, scrub

NAME = "http"
_SAMPLE_BYTES = 2048  # of the body kept as evidence

__all__ = ["NAME", "Params", "run"]


async def run(ctx: Context, params: Params) -> HTTPExchange:
    endpoint = _endpoint(ctx, params)
    if endpoint is None:
        raise Skip("no connection to make the request on")
    address, port, scheme = endpoint
    url = f"{scheme}://{ctx.target.host}{'' if port in (80, 443) else f':{port}'}{params.path}"
    exchange = HTTPExchange(url, address)
    marker: str | None = None
    async with recorded(ctx, exchange, ctx.timeout, "http_round_trip"):
        marker = await _fetch(ctx, params, address, url, exchange)
    if exchange.failure is not None:
        if exchange.status_code is None and exchange.failure in failures.INTERFERENCE:
            await _same_request_again(ctx, params, exchange, port, scheme)
    else:
        exchange.blockpage = _blockpage(ctx, exchange, marker)
    _scrub(ctx, exchange)
    return exchange


async def _same_request_again(ctx: Context, params: Params, exchange: HTTPExchange, port: int, scheme: str) -> None:
    """A request cut before any response: the same request on fresh connections, with the real
    name and with a decoy (SNI for https, Host for http), both of the same shape."""
    address = exchange.address
    if scheme == "https":
        request = _request_bytes(params, ctx.target.host)
        exchange.same_name, exchange.decoy = await asyncio.gather(
            tls.handshake(ctx, address, port, ctx.target.host, verify=False, request=request),
            tls.decoy(ctx, address, port, request=request),
        )
    else:
        exchange.same_name, exchange.decoy = await asyncio.gather(
            _probe(ctx, params, address, port, ctx.target.host), _probe(ctx, params, address, port, ctx.decoy_sni)
        )


def _request_bytes(params: Params, host: str) -> bytes:
    return f"{params.method} {params.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


async def _probe(ctx: Context, params: Params, address: str, port: int, host: str) -> HTTPProbe:
    """One plain-HTTP request with `host` on a fresh connection, up to the first response byte."""
    record = HTTPProbe(address, port, host)
    async with recorded(ctx, record, ctx.timeout, "connect") as operation:
        stream = await connect(ctx.route, address, port)
        operation.close_at_end(stream)
        await first_byte(stream, _request_bytes(params, host), operation)
    return record


def _scrub(ctx: Context, exchange: HTTPExchange) -> None:
    """Server-supplied text may reflect the vantage's own public address (a block page often
    does): keep only the addresses this measurement itself used."""
    body = exchange.body_sample
    found = _addresses_in(body) if body is not None else ()
    if not found and not exchange.redirects:
        return  # nothing scrub would judge (most pages): nothing to replace
    allowed = {*ctx.addresses, *ctx.fingerprints.dns_addresses}
    if body is not None and any_secret(found, allowed=allowed):  # exactly when scrub would change it
        exchange.body_sample = scrub(body, allowed=allowed)
    for redirect in exchange.redirects:
        redirect.location = scrub(redirect.location, allowed=allowed)


# The same pages come back target after target and round after round (a service's page, a block
# page): the addresses in each are read once.
_addresses_in = lru_cache(maxsize=32)(addresses_in)


def _endpoint(ctx: Context, params: Params) -> tuple[str, int, str] | None:
    if ctx.tls_endpoint is not None and params.scheme != "http":
        return (*ctx.tls_endpoint, "https")
    wants_http = params.scheme == "http" or (params.scheme is None and "tls" not in ctx.target.checks)
    if wants_http:
        for address, port in ctx.connected:
            if port == 80 or params.scheme == "http":
                return address, port, "http"
    return None


async def _fetch(ctx: Context, params: Params, address: str, url: str, exchange: HTTPExchange) -> str | None:
    """The request and its same-host redirects; returns the block-page marker the last body
    carried, if any."""
    headers = list(_headers(tuple(params.headers.items())))
    # The connection the earlier stage left open (tls's validated stream, or tcp's to port 80)
    # carries the first request; a followed redirect opens its own.
    first = ctx.take_tls_stream() if urlsplit(url).scheme == "https" else ctx.take_stream(address, urlsplit(url).port or 80)
    method, content = params.method, params.body.encode() if params.body is not None else None
    markers = [m.encode() for m in ctx.fingerprints.body_markers]
    marker = None
    for _ in range(params.max_redirects + 1):
        target = _Target(url)
        stream, first = first, None
        try:
            if stream is None:
                stream = await _connect(ctx, address, target)
            response = await http1.request(stream, method.encode(), target.path, _with_framing(headers, target, content), content)
            exchange.status_code = response.status
            sample, exchange.body_length, marker = await _read_capped(response.body(), params.max_body_bytes, markers)
            exchange.body_sample = sample.decode("utf-8", "replace")
            location = _header(response.headers, b"location")
        finally:
            if stream is not None:
                close_quietly(stream)
        if response.status not in _REDIRECTS or not location:
            return marker
        redirect = urljoin(url, location)
        exchange.redirects.append(Redirect(response.status, redirect))
        if urlsplit(redirect).hostname != ctx.target.host or urlsplit(redirect).scheme != urlsplit(url).scheme:
            return marker  # recorded, not followed: another host is another measurement
        url, method, content = redirect, "GET", None
    return marker


@lru_cache(maxsize=64)
def _headers(config: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """The request's headers before its framing (`_with_framing`: Host, Content-Length), the same
    for every target of a config (hence kept)."""
    # `Connection: close`: every request (a redirect followed too) on its own connection, so a
    # server closing a kept-alive connection after its answer is never a cut request. No content
    # coding: the block-page markers are looked for in the bytes as they come.
    defaults = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": f"msgreach/{__version__}", "Connection": "close"}
    named = {name.lower(): (name, value) for name, value in (*defaults.items(), *config)}  # the config's win, any case
    return tuple((name.encode(), value.encode()) for name, value in named.values())


_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # what httpx calls `is_redirect` (with a Location)
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class _Target:
    """httpx's reading of the URL (IDNA host, percent-encoded path, dot segments removed), as the
    request needs it. A URL already in that form (lower-case ASCII name, no port or a number, a
    plain path) is read here; any other through httpx.URL, imported then: a round whose URLs are
    all plain never loads httpx (its import: docs/benchmarks.md, issue 22)."""

    __slots__ = ("host", "path", "port", "scheme")

    def __init__(self, url: str) -> None:
        plain = _PLAIN_URL.fullmatch(url)
        if plain is not None and "/." not in url and "xn--" not in url and int(plain["port"] or 1) <= 65535:
            scheme, port = plain["scheme"].encode(), int(plain["port"]) if plain["port"] else None
            self.scheme, self.host, self.path = scheme, plain["host"].encode(), (plain["path"] or "/").encode()
            self.port = None if port == _DEFAULT_PORTS[scheme] else port
            return
        from probe._httpcore import httpx

        parsed = httpx.URL(url)
        self.scheme, self.host, self.port, self.path = parsed.raw_scheme, parsed.raw_host, parsed.port, parsed.raw_path


_PLAIN_URL = re.compile(r"(?P<scheme>https?)://(?P<host>[a-z0-9]+(?:[.-][a-z0-9]+)*)(?::(?P<port>[1-9][0-9]{0,4}))?(?P<path>/[A-Za-z0-9._~/-]*(?:\?[A-Za-z0-9._~/=&-]*)?)?")


def _with_framing(headers: list[tuple[bytes, bytes]], target: _Target, content: bytes | None) -> list[tuple[bytes, bytes]]:
    """Host first and Content-Length last, unless the config gave them: what httpcore added."""
    given = {name.lower() for name, _ in headers}
    if b"host" not in given:
        port = target.port
        host = target.host if port is None or port == _DEFAULT_PORTS.get(target.scheme) else b"%b:%d" % (target.host, port)
        headers = [(b"Host", host), *headers]
    if content is not None and b"content-length" not in given and b"transfer-encoding" not in given:
        headers = [*headers, (b"Content-Length", str(len(content)).encode("ascii"))]
    return headers


async def _connect(ctx: Context, address: str, target: _Target) -> SocketStream:
    """A fresh connection for a followed redirect (or when no stage left one open): to the
    pinned address, the vantage's way, TLS validated with the real name for https."""
    port = target.port or _DEFAULT_PORTS[target.scheme]
    stream = await connect(ctx.route, address, port)
    if target.scheme == b"https":
        try:
            # ALPN http/1.1, as httpcore offered it
            await stream.start_tls(ssl_context(ctx.ca_bundles(), ctx.replace_trust(), alpn=("http/1.1",)), server_hostname=target.host.decode("ascii"))
        except BaseException:
            close_quietly(stream)
            raise
    return stream


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return value.decode("latin-1")
    return None


async def _read_capped(chunks: AsyncIterator[bytes], cap: int, markers: list[bytes]) -> tuple[bytes, int, str | None]:
    """Read at most `cap` bytes of the raw body, keeping only the sample and a window the
    length of the longest marker: (sample, bytes read, the first block-page marker met in the
    whole capped body). An endless body costs time up to the cap, and no memory."""
    sample = bytearray()
    window = b""
    overlap = max((len(m) for m in markers), default=1) - 1
    length = 0
    async for chunk in chunks:
        chunk = chunk[: cap - length]
        length += len(chunk)
        if len(sample) < _SAMPLE_BYTES:
            sample += chunk[: _SAMPLE_BYTES - len(sample)]
        window = window[-overlap:] + chunk if overlap else chunk
        found = next((m for m in markers if m in window), None)
        if found is not None:
            return bytes(sample), length, found.decode()
        if length >= cap:
            break
    return bytes(sample), length, None


def _blockpage(ctx: Context, exchange: HTTPExchange, marker: str | None) -> BlockPage | None:
    """Block-page fingerprints: the status, the redirects, a marker met in the body."""
    fingerprints = ctx.fingerprints
    if exchange.status_code in fingerprints.http_status:
        return BlockPage("status", str(exchange.status_code))
    for redirect in exchange.redirects:
        host = urlsplit(redirect.location).hostname or ""
        for blocked in fingerprints.redirect_hosts:
            if host == blocked or host.endswith("." + blocked):
                return BlockPage("redirect", blocked)
    return BlockPage("body", marker) if marker is not None else None
