"""A tiny Alertmanager webhook receiver for tests: every POST is appended as one JSON line
(`{"received_at": unix time, "path": ..., "body": {...}}`) to the file given on the command line.
It also stands in for Telegram's Bot API (Alertmanager's `telegram_configs` with `api_url`
pointing here): a POST to `.../bot<token>/sendMessage` is recorded the same way (a form body as
a dict) and answered as the Bot API answers, so Alertmanager counts it delivered.

    python tests/webhook_receiver.py 127.0.0.1 5001 /tmp/deliveries.jsonl

Standalone (stdlib only) so that it can run inside a network namespace with `ip netns exec`.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                body = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode("utf-8", "replace")}
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps({"received_at": time.time(), "path": self.path, "body": body}) + "\n")
            self.send_response(200)
            if self.path.endswith("/sendMessage"):  # the Bot API's answer: the message as sent
                answer = json.dumps({"ok": True, "result": {"message_id": 1, "date": int(time.time()), "chat": {"id": 0, "type": "group"}}}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - readiness probe
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
