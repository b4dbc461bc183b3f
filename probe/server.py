"""The HTTP listener: /metrics, /healthz, /status.json and the status page at /.

A small asyncio HTTP/1.1 server (GET and HEAD only) in the monitor's own event loop: no extra
thread, bounded requests, optional TLS and basic auth, localhost by default.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from probe import report, status_page
from probe.addresses import split_host_port
from probe.config import Listen
from probe.history import History
from probe.metrics import Exposition, State
from probe.status_texts import choose_language

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


class Server:
    def __init__(self, state: State, listen: Listen, started_at: float | None = None, history: History | None = None):
        self.state = state
        self.listen = listen
        self.started_at = started_at or time.time()
        self.history = history
        self.exposition = Exposition(state, history)
        self._server: asyncio.Server | None = None
        self._password = listen.basic_auth.password() if listen.basic_auth else None
        if self._password is not None and not self._password.strip():
            # The config refuses this at load; this is the last line before an open listener.
            raise ValueError("basic auth is configured but its secret is empty: refusing to serve")

    async def start(self, address: str | None = None) -> tuple[str, int]:
        host, port = split_host_port(address or self.listen.address, 9910)
        context = None
        if self.listen.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.listen.tls.cert_file), str(self.listen.tls.key_file))
        self._server = await asyncio.start_server(self._handle, host or "127.0.0.1", port, ssl=context, limit=_MAX_REQUEST_BYTES)
        bound = self._server.sockets[0].getsockname()
        log.info("serving on %s:%s", bound[0], bound[1])
        return bound[0], bound[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body = self._respond(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        try:
            pieces = (body,) if isinstance(body, bytes) else body
            length = sum(len(piece) for piece in pieces)
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

    def _respond(self, head: bytes) -> tuple[str, dict[str, str], Body]:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
            return "405 Method Not Allowed", {"Allow": "GET, HEAD"}, b""
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines if line)}
        if self._password is not None and not self._authorized(headers.get("authorization", "")):
            return "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="msgreach"'}, b"authentication required\n"
        path, _, query = parts[1].partition("?")
        if path == "/":
            return self._status_page(query, headers.get("accept-language", ""))
        if path == "/metrics":
            return self._metrics(gzip=accepts_gzip(headers.get("accept-encoding", "")))
        route: dict[str, Callable[[], tuple[str, dict[str, str], Body]]] = {
            "/healthz": self._healthz,
            "/status.json": self._status_json,
        }
        handler = route.get(path)
        if handler is None:
            return "404 Not Found", {"Content-Type": "text/plain"}, b"not found\n"
        return handler()

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        expected_user = self.listen.basic_auth.username if self.listen.basic_auth else ""
        return hmac.compare_digest(user, expected_user) & hmac.compare_digest(password, self._password or "")

    def _metrics(self, *, gzip: bool) -> tuple[str, dict[str, str], Body]:
        headers = {"Content-Type": CONTENT_TYPE_LATEST, "Vary": "Accept-Encoding"}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return "200 OK", headers, self.exposition.render(gzip=gzip)

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

    def _status_json(self) -> tuple[str, dict[str, str], bytes]:
        results = list(self.state.latest.values())
        started = min((r.started_at for r in results), default=time.time())
        ended = max((r.started_at + r.duration_seconds for r in results), default=started)
        # started_at/duration_seconds span the latest rounds shown (one per vantage).
        document: dict[str, Any] = report.as_document(results, started, ended - started)
        if self.history is not None:
            document["history"] = status_page.history_document(self.state, self.history)
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        return "200 OK", headers, json.dumps(document, ensure_ascii=False).encode()

    def _status_page(self, query: str, accept_language: str) -> tuple[str, dict[str, str], bytes]:
        healthy, reason = self.health()
        lang = choose_language(query, accept_language)
        page = status_page.render(self.state, healthy, reason, history=self.history, lang=lang)
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Language": lang,
            "Vary": "Accept-Language",
            "Cache-Control": "no-store",
            # Everything is inline; nothing may be fetched from elsewhere.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        }
        return "200 OK", headers, page.encode()
