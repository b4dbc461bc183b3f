"""http: one request through httpx to the address the earlier stages chose, with a body cap and
the redirect history, judged only by block-page fingerprints.

The service's own status code and page are never a signal (OONI's worst false positives came
from services changing them): only a 451, a redirect to a known block-page host, or a known
block-page marker in the body (the whole capped body, not only the sample kept) mean
`http_blocked` by themselves. A request cut before any response began is sent again on fresh
connections, with the real name and with a decoy (SNI for https, Host for plain http): only the
decoy passing while the real name fails names a technique. A response that began and then
failed (a drip, an early close) is the server's business: no technique.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlsplit

from probe import __version__, failures
from probe._httpcore import httpcore, httpx
from probe.checks import tls
from probe.checks.base import CheckResult, Context, Fault, Finding, Skip, Stopwatch, Verdict, first_byte, observed
from probe.model import BlockPage, HTTPExchange, HTTPProbe, Redirect
from probe.net import http_pool, open_tcp, ssl_context
from probe.redact import scrub
from probe.params import HTTPParams as Params

NAME = "http"
BLOCK_VERDICT = Verdict.HTTP_BLOCKED  # what running past every timeout means
_SAMPLE_BYTES = 2048  # of the body kept as evidence



async def run(ctx: Context, params: Params) -> CheckResult:
    endpoint = _endpoint(ctx, params)
    if endpoint is None:
        raise Skip("no connection to make the request on")
    address, port, scheme = endpoint
    url = f"{scheme}://{ctx.target.host}{'' if port in (80, 443) else f':{port}'}{params.path}"
    exchange = HTTPExchange(url, address)
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(ctx.timeout):
                marker = await _fetch(ctx, params, address, url, exchange)
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            failure = failures.classify(exc)
            finding = await _differential(ctx, params, exchange, port, scheme, failure)
            _scrub(ctx, exchange)
            return CheckResult(NAME, False, failure, watch.seconds, finding, exchange)

    _scrub(ctx, exchange)
    exchange.blockpage = _blockpage(ctx, exchange, marker)
    if exchange.blockpage is not None:
        finding = Finding(Verdict.HTTP_BLOCKED, Fault.PATH, "blockpage_fingerprint", f"block page ({exchange.blockpage.kind}: {exchange.blockpage.match})")
        return CheckResult(NAME, False, failures.HTTP_BLOCKPAGE, watch.seconds, finding, exchange)
    return CheckResult(NAME, True, None, watch.seconds, None, exchange)


async def _differential(ctx: Context, params: Params, exchange: HTTPExchange, port: int, scheme: str, failure: str) -> Finding:
    """Whose fault a failed request is. A response that began is the server's business (a drip,
    an early close); a request cut before any response is sent again on fresh connections, with
    the real name and with a decoy (SNI for https, Host for http), both of the same shape."""
    if exchange.status_code is not None:
        return Finding(Verdict.HTTP_BLOCKED, Fault.SERVER, "", "the server's response began, then failed: not a cut request")
    if failure not in failures.INTERFERENCE:
        return Finding(Verdict.HTTP_BLOCKED, Fault.SERVER if failure == failures.PROTOCOL_ERROR else Fault.UNSEPARATED, "", "the server did not answer as HTTP")
    address = exchange.address
    if scheme == "https":
        request = _request_bytes(params, ctx.target.host)
        exchange.same_name, exchange.decoy = await asyncio.gather(
            tls.handshake(ctx, address, port, ctx.target.host, verify=False, request=request),
            tls.decoy(ctx, address, port, request=request),
        )
        differential = "decoy_sni"
    else:
        exchange.same_name, exchange.decoy = await asyncio.gather(
            _probe(ctx, params, address, port, ctx.target.host), _probe(ctx, params, address, port, ctx.decoy_sni)
        )
        differential = "decoy_host"
    if exchange.same_name.failure is None:
        return Finding(Verdict.HTTP_BLOCKED, Fault.SERVER, differential, "the same request with the real name on a fresh connection is answered")
    if exchange.decoy.failure is None:
        technique = Verdict.SNI_BLOCKED if scheme == "https" else Verdict.HTTP_BLOCKED
        return Finding(technique, Fault.PATH, differential, f"the same request with the decoy {exchange.decoy.sni if scheme == 'https' else exchange.decoy.host} is answered")
    return Finding(Verdict.HTTP_BLOCKED, Fault.UNSEPARATED, "", f"the decoy request fails too ({exchange.decoy.failure})")


def _request_bytes(params: Params, host: str) -> bytes:
    return f"{params.method} {params.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


async def _probe(ctx: Context, params: Params, address: str, port: int, host: str) -> HTTPProbe:
    """One plain-HTTP request with `host` on a fresh connection, up to the first response byte."""
    record = HTTPProbe(address, port, host)
    async with observed(record, ctx.timeout) as writers:
        reader, writer = await open_tcp(ctx.route, address, port)
        writers.append(writer)
        await first_byte(reader, writer, _request_bytes(params, host))
    return record


def _scrub(ctx: Context, exchange: HTTPExchange) -> None:
    """Server-supplied text may reflect the vantage's own public address (a block page often
    does): keep only the addresses this measurement itself used."""
    allowed = {*ctx.addresses, *ctx.fingerprints.dns_addresses}
    if exchange.body_sample is not None:
        exchange.body_sample = scrub(exchange.body_sample, allowed=allowed)
    for redirect in exchange.redirects:
        redirect.location = scrub(redirect.location, allowed=allowed)


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
    # `Connection: close`: every request (a redirect followed too) on its own connection, so a
    # server closing a kept-alive connection after its answer is never a cut request. No content
    # coding: the block-page markers are looked for in the bytes as they come.
    defaults = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": f"msgreach/{__version__}", "Connection": "close"}
    named = {name.lower(): (name, value) for name, value in (*defaults.items(), *params.headers.items())}  # the config's win, any case
    headers = [(name.encode(), value.encode()) for name, value in named.values()]
    # The connection the earlier stage left open (tls's validated stream, or tcp's to port 80)
    # carries the first request; a followed redirect opens its own.
    first = ctx.take_tls_stream() if urlsplit(url).scheme == "https" else ctx.take_stream(address, urlsplit(url).port or 80)
    timeouts = {"timeout": {"connect": ctx.timeout, "read": ctx.timeout, "write": ctx.timeout, "pool": ctx.timeout}}
    async with http_pool(ctx.route, address, ssl_context(ctx.ca_bundles(), ctx.replace_trust()), first=first) as pool:
        method, content = params.method, params.body.encode() if params.body is not None else None
        markers = [m.encode() for m in ctx.fingerprints.body_markers]
        marker = None
        for _ in range(params.max_redirects + 1):
            async with pool.stream(method, _url(url), headers=headers, content=content, extensions=timeouts) as response:
                exchange.status_code = response.status
                sample, exchange.body_length, marker = await _read_capped(response.aiter_stream(), params.max_body_bytes, markers)
                exchange.body_sample = sample.decode("utf-8", "replace")
                location = _header(response.headers, b"location")
            if response.status not in _REDIRECTS or not location:
                return marker
            target = urljoin(url, location)
            exchange.redirects.append(Redirect(response.status, target))
            if urlsplit(target).hostname != ctx.target.host or urlsplit(target).scheme != urlsplit(url).scheme:
                return marker  # recorded, not followed: another host is another measurement
            url, method, content = target, "GET", None


_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # what httpx calls `is_redirect` (with a Location)


def _url(url: str) -> httpcore.URL:
    """httpx's reading of the URL (IDNA host, percent-encoded path), in httpcore's form."""
    parsed = httpx.URL(url)
    return httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path)


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
