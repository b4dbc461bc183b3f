"""The HTTP listener: /metrics, /healthz, /status.json and the status page at /.

A small asyncio HTTP/1.1 server (GET and HEAD only) in the monitor's own event loop: no extra
thread, bounded requests, optional TLS and basic auth (`probe.access`: the config's `listen`
keys or exporter-toolkit's web config), localhost by default. /metrics is served in the
Prometheus text format, or in OpenMetrics to a scraper that asks for it (Prometheus does).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from probe import report
from probe._prometheus_client import OPENMETRICS_CONTENT_TYPE, text_content_type
from probe.access import Access
from probe.addresses import split_host_port
from probe.config import Listen
from probe.history import History
from probe.metrics import Exposition, State

log = logging.getLogger(__name__)
_MAX_REQUEST_BYTES = 8192
_READ_TIMEOUT = 10.0
Body = bytes | tuple[bytes, ...]  # a response body, or its pieces written one after the other


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header asks for gzip (`gzip`, `x-gzip`, not with q=0)."""
    for coding in accept_encoding.lower().split(","):
        name, _, parameters = coding.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip"):
            q = parameters.strip().removeprefix("q=").strip() if parameters.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def accepts_openmetrics(accept: str) -> bool:
    """Whether an Accept header asks for OpenMetrics (not with q=0)."""
    for media in accept.lower().split(","):
        kind, *parameters = (part.strip() for part in media.split(";"))
        if kind == "application/openmetrics-text":
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in parameters)
    return False


class Server:
    def __init__(
        self, state: State, listen: Listen, started_at: float | None = None, history: History | None = None, access: Access | None = None
    ):
        self.state = state
        self.listen = listen
        self.started_at = started_at or time.time()
        self.history = history
        self.exposition = Exposition(state, history)
        self._server: asyncio.Server | None = None
        self.access = access if access is not None else Access.of_listen(listen)

    async def start(self, address: str | None = None) -> tuple[str, int]:
        host, port = split_host_port(address or self.listen.address, 9910)
        self._server = await asyncio.start_server(self._handle, host or "127.0.0.1", port, ssl=self.access.tls, limit=_MAX_REQUEST_BYTES)
        bound = self._server.sockets[0].getsockname()
        log.info("serving on %s:%s", bound[0], bound[1])
        return bound[0], bound[1]

    async def reload_web_config(self, path: str) -> None:
        """SIGHUP with `--web.config.file`: the file read again, in a worker thread; a bad one is
        refused whole and the running settings kept (as for the config)."""
        from probe.config import ConfigError
        from probe.config.webconfig import load_web_config

        try:
            web = await asyncio.to_thread(load_web_config, path)
            self.access.update(web)
        except (ConfigError, ValueError) as exc:
            log.error("web config reload refused, keeping the running one:\n%s", exc)
            return
        log.info("web config reloaded from %s", path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body = await self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        except Exception:  # noqa: BLE001 - a page that fails to render is our bug: said once in the log, a 500 to the reader
            log.exception("the listener could not answer %r", head.split(b"\r\n", 1)[0][:200].decode("latin-1"))
            status, headers, body = "500 Internal Server Error", {"Content-Type": "text/plain"}, b"internal error: see the monitor's log\n"
        try:
            pieces = (body,) if isinstance(body, bytes) else body
            length = sum(len(piece) for piece in pieces)
            headers.update(self.access.headers)  # the web config's headers, on every answer
            lines = [f"HTTP/1.1 {status}", f"Content-Length: {length}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            if not head.startswith(b"HEAD "):
                for piece in pieces:  # written as they are: a large /metrics is not copied into one
                    writer.write(piece)
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[str, dict[str, str], Body]:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
            return "405 Method Not Allowed", {"Allow": "GET, HEAD"}, b""
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines if line)}
        if self.access.protected and not await self.access.admits(headers.get("authorization", "")):
            return "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="msgreach"', "Content-Type": "text/plain"}, b"authentication required\n"
        try:
            return self._respond(parts[1], headers)
        finally:
            self.state.latest.release()  # the results a page or a render unpacked: packed again (probe/kept.py)

    def _respond(self, target: str, headers: dict[str, str]) -> tuple[str, dict[str, str], Body]:
        path, _, query = target.partition("?")
        if path == "/":
            return self._status_page(query, headers.get("accept-language", ""))
        if path == "/metrics":
            return self._metrics(
                gzip=accepts_gzip(headers.get("accept-encoding", "")), openmetrics=accepts_openmetrics(headers.get("accept", ""))
            )
        if path == "/status.json":
            return self._status_json(query)
        route: dict[str, Callable[[], tuple[str, dict[str, str], Body]]] = {
            "/healthz": self._healthz,
        }
        handler = route.get(path)
        if handler is None:
            return "404 Not Found", {"Content-Type": "text/plain"}, b"not found\n"
        return handler()

    def _metrics(self, *, gzip: bool, openmetrics: bool) -> tuple[str, dict[str, str], Body]:
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else text_content_type()
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return "200 OK", headers, self.exposition.render(gzip=gzip, openmetrics=openmetrics)

    def health(self) -> tuple[bool, str]:
        """Healthy while every vantage finishes rounds on time (the first one gets a grace)."""
        schedule = self.state.config.schedule
        allowed = 2 * schedule.interval_seconds + schedule.jitter_seconds + schedule.deadline
        now = time.time()
        for vantage in self.state.config.vantages:
            last = self.state.finished_at.get(vantage.name, self.started_at)
            if now - last > allowed:
                return False, f"vantage {vantage.name}: no round finished for {now - last:.0f} s"
        return True, "ok"

    def _healthz(self) -> tuple[str, dict[str, str], bytes]:
        healthy, reason = self.health()
        return ("200 OK" if healthy else "503 Service Unavailable"), {"Content-Type": "text/plain"}, (reason + "\n").encode()

    def _status_json(self, query: str = "") -> tuple[str, dict[str, str], bytes]:
        from probe import status_page  # with its texts, loaded when a person first looks (issue #22: memory)

        headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        if "target" in parse_qs(query):  # one target's evidence: the status page's JSON links
            found = status_page.target_document(self.state, query)
            if found is None:
                return "404 Not Found", {"Content-Type": "text/plain"}, b"no such target\n"
            return "200 OK", headers, json.dumps(found, ensure_ascii=False).encode()
        results = list(self.state.latest.values())
        started = min((r.started_at for r in results), default=time.time())
        ended = max((r.started_at + r.duration_seconds for r in results), default=started)
        # started_at/duration_seconds span the latest rounds shown (one per vantage).
        document: dict[str, Any] = report.as_document(results, started, ended - started)
        if self.history is not None:
            document["history"] = status_page.history_document(self.state, self.history)
        if self.state.upload is not None:
            document["upload"] = self.state.upload.as_json()  # reports to the centre (probe/upload.py)
        return "200 OK", headers, json.dumps(document, ensure_ascii=False).encode()

    def _status_page(self, query: str, accept_language: str) -> tuple[str, dict[str, str], bytes]:
        from probe import status_page
        from probe.status_texts import choose_language

        healthy, reason = self.health()
        lang = choose_language(query, accept_language)
        page = status_page.render(self.state, healthy, reason, history=self.history, lang=lang, view=status_page.choose_view(query))
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Language": lang,
            "Vary": "Accept-Language",
            "Cache-Control": "no-store",
            # Everything is inline; nothing may be fetched from elsewhere.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        }
        return "200 OK", headers, page.encode()
