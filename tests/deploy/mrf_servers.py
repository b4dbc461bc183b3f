"""Tiny local servers for the deploy tests (run as separate processes, often inside an mrf-
namespace): an HTTP(S) server whose pages can reflect the client's address, the way block pages
and "what is my IP" pages do, and a DNS responder that answers every name with one address.

    python mrf_servers.py http --bind 0.0.0.0 --port 80 [--tls CERT KEY] [--delay-max 0.2]
    python mrf_servers.py dns --bind 0.0.0.0 --port 53 --answer 85.143.10.1 [--answer6 2a02:...]

Routes: /            200, a small page
        /echo        200, "your address is <client>", and its host name as ISPs write it
        /blocked     451, a block page naming the client's address, dotted, dashed, underscored
        /redirect    302 to http://warning.rt.ru/?ip=<client>&host=<a-b-c-d>.dynamic.rt.ru
                     (a Russian ISP's block-page host)
Every request is logged to stdout with the client's address (the test checks it was used).
"""

from __future__ import annotations

import argparse
import random
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    delay_max = 0.0
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.delay_max:
            time.sleep(random.uniform(0, self.delay_max))
        client = self.client_address[0]
        v4 = client.removeprefix("::ffff:")
        dashed, underscored = v4.replace(".", "-"), v4.replace(".", "_")  # v6 clients: unchanged
        path = self.path.split("?", 1)[0]
        headers: dict[str, str] = {}
        if path == "/echo":
            status, body = 200, f"<html><body>your address is {client} (host {dashed}.dynamic.rt.ru)</body></html>\n"
        elif path == "/blocked":
            page = f"Access restricted by order. Your IP: {client}; host: dsl-{dashed}.pppoe.rt.ru; ticket {underscored}"
            status, body = 451, f"<html><body>{page}</body></html>\n"
        elif path == "/redirect":
            status, body = 302, ""
            headers["Location"] = f"http://warning.rt.ru/?ip={client}&host={dashed}.dynamic.rt.ru&id=42"
        else:
            status, body = 200, "<html><body>hello from the mrf test server</body></html>\n" + "x" * 512
        data = body.encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(f"http client={self.client_address[0]} {format % args}", flush=True)


def serve_http(args: argparse.Namespace) -> None:
    Handler.delay_max = args.delay_max
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    server = Server((args.bind, args.port), Handler)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"http listening on {args.bind}:{args.port} tls={bool(args.tls)}", flush=True)
    server.serve_forever()


def serve_dns(args: argparse.Namespace) -> None:
    import dns.message
    import dns.rdatatype
    import dns.rrset

    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    print(f"dns listening on {args.bind}:{args.port}", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - garbage is ignored
            continue
        response = dns.message.make_response(query)
        question = query.question[0]
        if question.rdtype == dns.rdatatype.A and args.answer:
            response.answer.append(dns.rrset.from_text(question.name, 30, "IN", "A", args.answer))
        elif question.rdtype == dns.rdatatype.AAAA and args.answer6:
            response.answer.append(dns.rrset.from_text(question.name, 30, "IN", "AAAA", args.answer6))
        print(f"dns client={peer[0]} {question.name} {dns.rdatatype.to_text(question.rdtype)}", flush=True)
        sock.sendto(response.to_wire(), peer)


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    http = commands.add_parser("http")
    http.add_argument("--bind", default="127.0.0.1")
    http.add_argument("--port", type=int, required=True)
    http.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    http.add_argument("--delay-max", type=float, default=0.0)
    dns_ = commands.add_parser("dns")
    dns_.add_argument("--bind", default="127.0.0.1")
    dns_.add_argument("--port", type=int, default=53)
    dns_.add_argument("--answer")
    dns_.add_argument("--answer6")
    args = parser.parse_args()
    try:
        serve_http(args) if args.command == "http" else serve_dns(args)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
