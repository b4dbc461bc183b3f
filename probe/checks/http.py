"""http: one request through httpx to the address the earlier stages chose, with a body cap and
the redirect history, judged only by block-page fingerprints.

The service's own status code and page are never a signal (OONI's worst false positives came
from services changing them): only a 451, a redirect to a known block-page host, or a known
block-page marker in the body mean `http_blocked`. A connection that dies after the handshake
is compared with the same request under a decoy SNI, like the TLS check does.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from probe import __version__, failures
from probe.checks import tls
from probe.checks.base import CheckResult, Context, Skip, Stopwatch
from probe.net import http_client, ssl_context
from probe.redact import scrub

NAME = "http"
BLOCK_VERDICT = "http_blocked"  # what running past every timeout means


from probe.params import HTTPParams as Params


async def run(ctx: Context, params: Params) -> CheckResult:
    endpoint = _endpoint(ctx, params)
    if endpoint is None:
        raise Skip("no connection to make the request on")
    address, port, scheme = endpoint
    url = f"{scheme}://{ctx.target.host}{'' if port in (80, 443) else f':{port}'}{params.path}"
    evidence: dict[str, Any] = {"url": url, "address": address, "redirects": []}
    with Stopwatch() as watch:
        try:
            async with asyncio.timeout(ctx.timeout):
                await _fetch(ctx, params, address, url, evidence)
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            failure = failures.classify(exc)
            if failure in failures.INTERFERENCE and scheme == "https":
                request = f"{params.method} {params.path} HTTP/1.1\r\nHost: {ctx.target.host}\r\nConnection: close\r\n\r\n".encode()
                evidence["decoy"] = await tls.decoy(ctx, address, port, request=request)
                verdict = "sni_blocked" if evidence["decoy"]["failure"] is None else "tls_blocked"
            elif failure in failures.INTERFERENCE:
                verdict = "http_blocked"  # plain HTTP cut after the request: the request was judged
            else:
                # The server answered, just not as HTTP we understand: a server's quirk, not a block.
                evidence["server_quirk"] = failure
                return CheckResult(NAME, True, None, watch.seconds, None, evidence)
            return CheckResult(NAME, False, failure, watch.seconds, verdict, evidence)

    # Server-supplied text may reflect the vantage's own public address (a block page often
    # does): keep only the addresses this measurement itself used.
    for key in ("body_sample", "redirects"):
        if key in evidence:
            evidence[key] = scrub(evidence[key], allowed={*ctx.addresses, *ctx.fingerprints.dns_addresses})
    blockpage = _blockpage(ctx, evidence)
    if blockpage:
        evidence["blockpage"] = blockpage
        return CheckResult(NAME, False, failures.HTTP_BLOCKPAGE, watch.seconds, "http_blocked", evidence)
    return CheckResult(NAME, True, None, watch.seconds, None, evidence)


def _endpoint(ctx: Context, params: Params) -> tuple[str, int, str] | None:
    if ctx.tls_endpoint is not None and params.scheme != "http":
        return (*ctx.tls_endpoint, "https")
    wants_http = params.scheme == "http" or (params.scheme is None and "tls" not in ctx.target.checks)
    if wants_http:
        for address, port in ctx.connected:
            if port == 80 or params.scheme == "http":
                return address, port, "http"
    return None


async def _fetch(ctx: Context, params: Params, address: str, url: str, evidence: dict[str, Any]) -> None:
    headers = {"User-Agent": f"msgreach/{__version__}", **params.headers}
    async with http_client(ctx.route, address, ssl_context(ctx.ca_bundles(), ctx.replace_trust()), ctx.timeout) as client:
        method, body = params.method, params.body
        for _ in range(params.max_redirects + 1):
            async with client.stream(method, url, headers=headers, content=body) as response:
                evidence["status_code"] = response.status_code
                evidence["body_sample"], evidence["body_length"] = await _read_capped(response, params.max_body_bytes)
                location = response.headers.get("location")
            if not response.is_redirect or not location:
                return
            target = urljoin(url, location)
            evidence["redirects"].append({"status_code": response.status_code, "location": target})
            if urlsplit(target).hostname != ctx.target.host or urlsplit(target).scheme != urlsplit(url).scheme:
                return  # recorded, not followed: another host is another measurement
            url, method, body = target, "GET", None


async def _read_capped(response: httpx.Response, cap: int) -> tuple[str, int]:
    """The first `cap` bytes of the raw body (an endless body costs `cap` bytes, no more)."""
    received = bytearray()
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= cap:
            del received[cap:]
            break
    return received[:2048].decode("utf-8", "replace"), len(received)


def _blockpage(ctx: Context, evidence: dict[str, Any]) -> dict[str, str] | None:
    fingerprints = ctx.fingerprints
    if evidence.get("status_code") in fingerprints.http_status:
        return {"kind": "status", "match": str(evidence["status_code"])}
    for redirect in evidence["redirects"]:
        host = urlsplit(redirect["location"]).hostname or ""
        for blocked in fingerprints.redirect_hosts:
            if host == blocked or host.endswith("." + blocked):
                return {"kind": "redirect", "match": blocked}
    body = evidence.get("body_sample", "")
    for marker in fingerprints.body_markers:
        if marker in body:
            return {"kind": "body", "match": marker}
    return None
