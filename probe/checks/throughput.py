"""throughput: download the first `size` bytes (at least 256 KB) of a service's object, timed.

Throttling came before every full block in the region (Twitter 2021, YouTube 2024, WhatsApp
2025), and mobile networks freeze connections to some foreign prefixes after 16–20 KB: a check
that stops at the handshake sees neither. This one reports bytes per second (evidence
`bytes_per_second`, the contract metric `msgreach_download_throughput_bytes_per_second`) and,
when the transfer stops making progress for `stall_seconds`, the byte count where it stalled.

A slow transfer is compared with this round's control transfers (a yardstick in
`configs/services/controls.yaml`): `throttled` needs one of them fast, over the floor and
`control_ratio` times this one (probe.judge.throughput: the rules, which the check applies while
measuring, because a throttled transfer is repeated). The repeats alternate on fresh connections
to the same address: the decoy SNI, the real download again, the decoy again (issue 20: no keyed
claim from one pair; two fast decoys are the proof that the throttling is keyed on the name, the
method of "Throttling Twitter", IMC 2021). If every control is about as slow, the vantage's line
is slow: `slow: true, control_fast: false`, no failure (a bad line is no block, and a control's
own slowness is evidence, not a failure).

With `upload_path`, an upload (HTTP PUT of `upload_bytes`) to the same address and name follows
the download: freezes counted in packets both ways trip on uploads too. A frozen upload is tried
again. Every transfer records its connection's packets and bytes each way (TCP_INFO,
probe.checks.packets) where it ended or stalled.

A transfer that stops making progress records the byte count where it stalled
(`stalled_at_bytes`, the metric `msgreach_download_stall_offset_bytes`); a stall between
`FREEZE_WINDOW` bytes is named in the reason as the mobile networks' 16–20 KB freeze (counted
in bytes received after the TLS handshake, so a 16–20 KB freeze of the connection's bytes shows
a little lower: the window is 12–24 KiB).

An object that is not there (a status other than 200/206, or a body shorter than `size` that
ends normally) is not measured: the check passes with `measured: false` and the status in the
evidence, so a moved URL never reads as a block.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from probe import __version__, failures
from probe.checks.context import Context, Skip
from probe.checks.endpoints import connected_endpoints
from probe.checks.observe import Operation, recorded
from probe.checks.packets import PacketCounter, unsent_or_unacked
from probe.judge.throughput import FREEZE_WINDOW, fast_controls, freezes, is_slow, upload_froze
from probe.model import CheckResult, Download, DownloadRedirect, ThroughputEvidence, Upload
from probe.net import Stream, open_tcp, ssl_context
from probe.params import ThroughputParams as Params
from probe.resolvers import lookup

NAME = "throughput"

MIN_SIZE = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024
READ_SIZE = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_UPLOAD_POLL = 0.25  # seconds between looks at what the peer acknowledged of an upload

__all__ = ["FREEZE_WINDOW", "MIN_SIZE", "NAME", "Params", "run", "transfer", "upload"]


async def _read(reader: asyncio.StreamReader, stall: float, deadline: float) -> bytes | None:
    """The next bytes; b"" at EOF; None when the transfer's time cap is reached.
    Raises `Failure(stalled)` when nothing arrives for `stall` seconds."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    try:
        async with asyncio.timeout(min(stall, left)):
            return await reader.read(READ_SIZE)
    except TimeoutError:
        if stall <= left:
            raise failures.Failure(failures.STALLED, f"nothing for {stall:g} s") from None
        return None


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise failures.Failure(failures.PROTOCOL_ERROR, "reply is not HTTP/1.x")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def transfer(
    ctx: Context, address: str, port: int, scheme: str, host: str, path: str, params: Params, *, sni: str | None = None, verify: bool = True
) -> Download:
    """One timed download of `scheme://host/path` from `address` on a fresh connection (TLS
    with `sni`, default the host); evidence, never raises."""
    sni = sni or host
    out = Download(address, port, sni=sni if scheme == "https" else None)
    started = time.monotonic()
    times: list[float] = []  # when the first and the last byte came
    counter = PacketCounter()
    try:
        await _download_once(ctx, out, counter, scheme, host, path, params, sni, verify, times, started)
    finally:
        counter.close()
    _rate(out, times)
    return out


async def _download_once(ctx: Context, out: Download, counter: PacketCounter, scheme: str, host: str, path: str, params: Params,
                         sni: str, verify: bool, times: list[float], started: float) -> None:
    address, port = out.address, out.port
    async with recorded(ctx, out, None, "connect") as operation:
        operation.at_failure(lambda: _where_it_stopped(out))
        reader, writer = await _open(ctx, operation, counter, address, port, scheme, sni, verify, params, lambda: _count_packets(out, counter))
        lines = [f"GET {path} HTTP/1.1", f"Host: {_authority(host, port)}", f"User-Agent: msgreach/{__version__}", "Accept: */*", "Accept-Encoding: identity"]
        if params.range:
            lines.append(f"Range: bytes=0-{params.size - 1}")
        lines += [f"{k}: {v}" for k, v in params.headers.items()]
        operation.now("write")
        writer.write(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
        requested_at = time.monotonic()
        out.setup_seconds = round(requested_at - started, 4)
        deadline = requested_at + params.max_seconds
        operation.now("read")
        await _receive(reader, out, params, deadline, times)
        out.packets = counter.read()


async def _open(ctx: Context, operation: Operation, counter: PacketCounter, address: str, port: int, scheme: str, sni: str, verify: bool,
                params: Params, on_failure: Callable[[], None]) -> Stream:
    """The connection a download or an upload runs on (TLS with `sni` for https), bounded by
    `connect_timeout`, its packets counted from the start; `on_failure` reads what it got to."""
    async with asyncio.timeout(ctx.bounded(params.connect_timeout)):
        reader, writer = await open_tcp(ctx.route, address, port)
        operation.close_at_end(writer)
        counter.attach(writer)
        operation.at_failure(on_failure)
        if scheme == "https":
            operation.now("tls_handshake")
            context = ssl_context(ctx.ca_bundles(), ctx.replace_trust(), verify=verify, alpn=("http/1.1",))
            await writer.start_tls(context, server_hostname=sni)
    return reader, writer


def _authority(host: str, port: int) -> str:
    return host if port in (80, 443) else f"{host}:{port}"


def _count_packets(out: Download, counter: PacketCounter) -> None:
    out.packets = counter.read()


async def upload(
    ctx: Context, address: str, port: int, scheme: str, host: str, params: Params, *, sni: str | None = None, verify: bool = True
) -> Upload:
    """One upload of `upload_bytes` (an HTTP PUT to `upload_path`) on a fresh connection; evidence,
    never raises. It ends at the server's first answer byte (any answer: the path carried both
    ways); it froze when the peer acknowledged nothing more for `stall_seconds` and did not answer."""
    sni = sni or host
    out = Upload(address, port, params.upload_bytes, sni=sni if scheme == "https" else None)
    counter = PacketCounter()
    try:
        await _upload_once(ctx, out, counter, scheme, host, params, sni, verify)
    finally:
        counter.close()
    return out


async def _upload_once(ctx: Context, out: Upload, counter: PacketCounter, scheme: str, host: str, params: Params, sni: str, verify: bool) -> None:
    address, port = out.address, out.port
    async with recorded(ctx, out, None, "connect") as operation:
        reader, writer = await _open(ctx, operation, counter, address, port, scheme, sni, verify, params, lambda: _upload_stopped(out, counter))
        head = [f"PUT {params.upload_path} HTTP/1.1", f"Host: {_authority(host, port)}", f"User-Agent: msgreach/{__version__}",
                "Content-Type: application/octet-stream", f"Content-Length: {params.upload_bytes}", "Connection: close", "", ""]
        operation.now("write")
        writer.write("\r\n".join(head).encode())
        writer.write(os.urandom(params.upload_bytes))  # incompressible; bounded by the params (4 MB)
        out.sent_bytes = params.upload_bytes
        operation.now("read")
        await _answer(reader, writer, out, params, counter)
        _upload_stopped(out, counter)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: Upload, params: Params, counter: PacketCounter) -> None:
    """Wait for the server's answer while watching the peer acknowledge the body (TCP_INFO).
    Data still waiting, nothing more acknowledged and no answer for `stall_seconds` is a freeze
    (`stalled`); if the peer kept sending segments meanwhile (it acknowledged our window probes:
    its receive window is shut, it does not read), it is the server's, `peer_answering`.
    Everything acknowledged and no answer by `max_seconds` is a server that does not answer."""
    started = time.monotonic()
    progress, progress_at, segs_in = -1, started, 0
    reading = asyncio.ensure_future(reader.read(READ_SIZE))
    try:
        while True:
            done, _ = await asyncio.wait({reading}, timeout=_UPLOAD_POLL)
            if done:
                _answered(out, reading.result())
                return
            now = time.monotonic()
            counts = counter.read()
            out.acked_bytes = counts.bytes_acked if counts is not None else 0
            moved = out.acked_bytes if counts is not None else out.sent_bytes - writer.transport.get_write_buffer_size()
            if moved > progress:
                progress, progress_at, segs_in = moved, now, counts.segs_in if counts is not None else 0
            waiting = unsent_or_unacked(writer)
            if waiting is not False and now - progress_at >= params.stall_seconds:
                out.stalled_at_bytes = out.acked_bytes
                out.peer_answering = counts is not None and counts.segs_in > segs_in
                raise failures.Failure(failures.STALLED, f"nothing acknowledged for {params.stall_seconds:g} s")
            if now - started >= params.max_seconds:
                raise failures.Failure(failures.TIMEOUT, f"no answer in {params.max_seconds:g} s")
    finally:
        reading.cancel()


def _answered(out: Upload, data: bytes) -> None:
    if not data:
        raise failures.Failure(failures.EOF, "closed before an answer")
    out.answered = True
    parts = data.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit():
        out.status_code = int(parts[1])


def _upload_stopped(out: Upload, counter: PacketCounter) -> None:
    out.packets = counter.read()
    if out.packets is not None:
        out.acked_bytes = out.packets.bytes_acked


async def _receive(reader: asyncio.StreamReader, out: Download, params: Params, deadline: float, times: list[float]) -> None:
    """The response's head, then its body up to `size` bytes (counted, not kept)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await _read(reader, params.stall_seconds, deadline)
        if chunk is None:
            out.time_capped = True
            return
        if not chunk:
            raise failures.Failure(failures.EOF, "closed before the response headers")
        times[:] = [times[0] if times else time.monotonic(), time.monotonic()]
        out.received_bytes += len(chunk)
        head += chunk
        if len(head) > MAX_HEADER_BYTES and b"\r\n\r\n" not in head:
            raise failures.Failure(failures.PROTOCOL_ERROR, "response headers over 64 KB")
    head, _, body = head.partition(b"\r\n\r\n")
    if len(head) > MAX_HEADER_BYTES:
        raise failures.Failure(failures.PROTOCOL_ERROR, "response headers over 64 KB")
    status, headers = _parse_head(head)
    out.status_code = status
    if 300 <= status < 400 and "location" in headers:
        out.location = headers["location"][:300]
    length = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else None
    expected = min(params.size, length) if length is not None else params.size
    out.bytes = len(body)
    while out.bytes < expected:
        chunk = await _read(reader, params.stall_seconds, deadline)
        if chunk is None:
            out.time_capped = True
            break
        if not chunk:
            if length is not None:
                raise failures.Failure(failures.EOF, f"closed after {out.bytes} of {expected} bytes")
            break  # a body delimited by the close: it ended
        times[1] = time.monotonic()
        out.received_bytes += len(chunk)
        out.bytes += len(chunk)  # counted, not kept: bounded memory
    out.complete = out.bytes >= params.size


def _where_it_stopped(out: Download) -> None:
    if out.failure == failures.STALLED:
        out.stalled_at_bytes = out.received_bytes
    elif out.received_bytes:
        out.interrupted_at_bytes = out.received_bytes


def _rate(out: Download, times: list[float]) -> None:
    """Was this a measurement (and how fast), or an object that is not there?"""
    first_byte_at, last_byte_at = (times[0], times[1]) if times else (None, None)
    status = out.status_code
    if out.failure == failures.PROTOCOL_ERROR:
        out.measured, out.reason = False, "the server did not answer in HTTP/1.x"
        return
    broken = out.failure is not None or bool(out.time_capped)
    if status is not None and status not in (200, 206) and not broken:
        out.measured, out.reason = False, f"HTTP {status}: not the object"
        return
    if not broken and not out.complete:
        out.measured, out.reason = False, f"object of {out.bytes} bytes is smaller than size"
        return
    out.measured = True
    if first_byte_at is None:
        out.bytes_per_second = 0.0
        return
    end = time.monotonic() if broken else (last_byte_at or first_byte_at)
    out.bytes_per_second = round(out.bytes / max(end - first_byte_at, 1e-3), 1)


def _endpoint(ctx: Context, params: Params) -> tuple[str, int, str] | None:
    if params.scheme != "http" and ctx.tls_endpoint is not None:
        return (*ctx.tls_endpoint, "https")
    candidates = connected_endpoints(ctx)
    if params.scheme == "http" or (params.scheme is None and all(p == 80 for _, p in candidates)):
        for address, port in candidates:
            if port == 80 or params.scheme == "http":
                return address, port, "http"
        return None
    if ctx.result("tls") is not None:
        return None  # TLS ran and failed: its verdict stands, nothing to download over
    for address, port in candidates:
        if port != 80:
            return address, port, "https"
    return None


async def _resolve(ctx: Context, host: str) -> str | None:
    """An address for a redirect's host, from the vantage's first non-control resolver."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    resolver = next((r for r in ctx.vantage.resolvers if not r.control), ctx.vantage.resolvers[0])
    answer = await lookup(resolver, host, route=ctx.route, timeout=ctx.bounded(5.0), ca_bundles=ctx.ca_bundles())
    v4 = [a for a in answer.addresses if ipaddress.ip_address(a).version == 4]
    v6 = [a for a in answer.addresses if ipaddress.ip_address(a).version == 6]
    chosen = (v4 + v6) if not ctx.control_phase.ipv6 else (v6 + v4)
    return chosen[0] if chosen else None


def _url(scheme: str, host: str, port: int, path: str) -> str:
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}{'' if port == default else f':{port}'}{path}"


async def _download(ctx: Context, address: str, port: int, scheme: str, params: Params, evidence: ThroughputEvidence) -> Download:
    """The download, following redirects (recorded in `evidence.redirects`)."""
    host, path = ctx.target.host, params.path
    while True:
        out = await transfer(ctx, address, port, scheme, host, path, params)
        location = out.location
        if location is None or out.status_code not in _REDIRECTS or len(evidence.redirects) >= params.max_redirects:
            return out
        url = urljoin(_url(scheme, host, port, path), location)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return out
        hop = DownloadRedirect(out.status_code, url)
        evidence.redirects.append(hop)
        next_address = address if parts.hostname == host else await _resolve(ctx, parts.hostname)
        if next_address is None:
            out.reason = f"redirect to {parts.hostname}, which did not resolve"
            return out
        hop.address = next_address
        scheme, host, address = parts.scheme, parts.hostname, next_address
        port = parts.port or (443 if scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        evidence.url = url


def _control_rate(result: CheckResult) -> float | None:
    """A control's measured rate this round, if its transfer was a measurement and not cut."""
    evidence = result.evidence
    if not isinstance(evidence, ThroughputEvidence) or evidence.download is None:
        return None
    download = evidence.download
    return download.bytes_per_second if download.measured and download.failure is None else None


def _reported_rate(result: CheckResult) -> float | None:
    evidence = result.evidence
    return evidence.download.bytes_per_second if isinstance(evidence, ThroughputEvidence) and evidence.download else None


async def run(ctx: Context, params: Params) -> ThroughputEvidence:
    endpoint = _endpoint(ctx, params)
    if endpoint is None:
        raise Skip("no connection to download over")
    address, port, scheme = endpoint
    evidence = ThroughputEvidence(_url(scheme, ctx.target.host, port, params.path), params.size)
    evidence.floor_bytes_per_second = params.floor_bytes_per_second
    budget = _Budget(ctx, params)
    out = await _download(ctx, address, port, scheme, params, evidence)
    evidence.download = out
    if params.upload_path is not None:
        evidence.upload = await upload(ctx, address, port, scheme, ctx.target.host, params)
    slow = is_slow(out, params.floor_bytes_per_second)
    upload_frozen = evidence.upload is not None and upload_froze(evidence.upload)
    if not slow and not upload_frozen:
        return evidence
    evidence.slow = slow
    if ctx.is_control:
        return evidence  # a yardstick: its rate is the evidence, its slowness no failure of its own
    controls = ctx.control_results(NAME, params.control)
    evidence.controls = {name: _reported_rate(r) for name, r in controls}
    evidence.control_freezes = {name: way for name, r in controls if (way := _froze(r)) is not None} or None
    if slow:
        rate = 0.0 if out.failure else out.bytes_per_second or 0.0  # a stalled or cut transfer: the floor alone
        fast = fast_controls([(name, _control_rate(r)) for name, r in controls], rate, params.floor_bytes_per_second, params.control_ratio)
        evidence.control_fast = bool(fast)
        if fast:  # else every control transfer is as slow (or none is configured): the line is slow
            evidence.fast_controls = fast
            await _alternate(ctx, out, params, evidence, budget)
    if upload_frozen and budget.allows("upload_again", evidence):  # one frozen upload is no claim (issue 20 item 4)
        evidence.upload_again = await upload(ctx, address, port, scheme, ctx.target.host, params)
    return evidence


class _Budget:
    """The repeats run only while a whole transfer still fits in the check's bound (the runner
    gives a check three times its timeout): one that does not fit is not started, and the
    evidence says so (`skipped`): no agreement then, so no claim."""

    def __init__(self, ctx: Context, params: Params) -> None:
        self._end = time.monotonic() + 3 * ctx.timeout
        self._need = ctx.bounded(params.connect_timeout) + repeat_cap(params)

    def allows(self, attempt: str, evidence: ThroughputEvidence) -> bool:
        if self._end - time.monotonic() >= self._need:
            return True
        evidence.skipped = [*(evidence.skipped or ()), attempt]
        return False


def repeat_cap(params: Params) -> float:
    """A repeat's time cap: half the first transfer's, but a second past the stall bound (a freeze
    must end as `stalled`, with where, not as a capped transfer). It only has to show slow or not
    (a fast one ends long before; a slow one's rate is known by then), and a round with a
    throttled service and its confirming retry must still fit its deadline."""
    return min(params.max_seconds, max(params.max_seconds / 2, params.stall_seconds + 1))


async def _alternate(ctx: Context, out: Download, params: Params, evidence: ThroughputEvidence, budget: _Budget) -> None:
    """After a slow download: the decoy, the real download again, the decoy again (real, decoy,
    real, decoy on fresh connections to the same address), so that a key is named only when
    they agree; a real download that is fast the second time ends it (no claim to make). Each
    is capped at `repeat_cap`."""
    params = params.model_copy(update={"max_seconds": repeat_cap(params)})
    url = urlsplit(evidence.url)
    host, path = url.hostname or ctx.target.host, url.path + (f"?{url.query}" if url.query else "")
    decoy = params.decoy and url.scheme == "https"
    if decoy and budget.allows("decoy", evidence):
        evidence.decoy = await transfer(ctx, out.address, out.port, "https", host, path, params, sni=ctx.decoy_sni, verify=False)
        evidence.sni_keyed = None if not evidence.decoy.measured else not is_slow(evidence.decoy, params.floor_bytes_per_second)
    if not budget.allows("again", evidence):
        return
    evidence.again = await transfer(ctx, out.address, out.port, url.scheme, host, path, params)
    if decoy and is_slow(evidence.again, params.floor_bytes_per_second) and budget.allows("decoy_again", evidence):
        evidence.decoy_again = await transfer(ctx, out.address, out.port, "https", host, path, params, sni=ctx.decoy_sni, verify=False)


def _froze(result: CheckResult) -> str | None:
    """Which of a control's transfers stalled this round: download, upload, both, or None."""
    evidence = result.evidence
    if not isinstance(evidence, ThroughputEvidence):
        return None
    return freezes(evidence.download is not None and evidence.download.failure == failures.STALLED,
                   evidence.upload is not None and upload_froze(evidence.upload))
