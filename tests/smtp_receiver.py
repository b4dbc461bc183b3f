"""A tiny SMTP server for tests: every message is appended as one JSON line
(`{"received_at": unix time, "from": ..., "to": [...], "data": "<the message>"}`) to the file
given on the command line. Plain SMTP, no TLS, no AUTH (Alertmanager then skips both when
`require_tls: false`); enough for Alertmanager's e-mail notifier.

    python tests/smtp_receiver.py 127.0.0.1 2525 /tmp/mails.jsonl

Standalone (stdlib only), like tests/webhook_receiver.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

_MAX_LINE = 64 * 1024
_MAX_MESSAGE = 4 * 1024 * 1024


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: str) -> None:
    async def reply(line: str) -> None:
        writer.write((line + "\r\n").encode())
        await writer.drain()

    await reply("220 localhost test SMTP")
    sender, recipients = "", []
    try:
        while line := await asyncio.wait_for(reader.readline(), 30):
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                await reply("250 localhost")
            elif verb == "MAIL":
                sender, recipients = command.partition(":")[2].strip(), []
                await reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command.partition(":")[2].strip())
                await reply("250 ok")
            elif verb == "DATA":
                await reply("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while (chunk := await reader.readline()) not in (b".\r\n", b".\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                    if len(data) > _MAX_MESSAGE:
                        raise ValueError("message too large")
                with open(out, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"received_at": time.time(), "from": sender, "to": recipients, "data": data.decode("utf-8", "replace")}) + "\n")
                await reply("250 queued")
            elif verb == "QUIT":
                await reply("221 bye")
                break
            elif verb in ("RSET", "NOOP"):
                await reply("250 ok")
            else:
                await reply("502 not implemented")
    except (TimeoutError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main() -> None:
    host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = await asyncio.start_server(lambda r, w: _session(r, w, out), host, port, limit=_MAX_LINE)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
