"""Plain TLS clients for the lab's tests, run in the client namespace: real handshakes with
curl-cffi's impersonation profiles, `openssl s_client` and Python's ssl, and raw replays of the
ClientHello each of them sends, whole or split across two TCP segments.

    ip netns exec mrl-client python3 tests/lab/hellos.py ATTEMPTS.json   ->  one JSON list of outcomes

An attempt: {"client": a curl-cffi profile (chrome, chrome131_android, safari180_ios, firefox, …)
| "openssl" | "python", "address", "sni" ("" with openssl: none), "mode": "handshake" | "replay", "split": a byte offset
(replay only: the hello goes as two writes with a pause between, TCP_NODELAY), "ca", "timeout"}.

An outcome: "ok" (handshake: validated; replay: the server answered with a ServerHello),
"reset", "timeout", "closed", "alert", or "error: …". Replays send the bytes the client sent to a
local tap (captured once per client and name), so what the censor sees is that client's hello;
the server's answer is read only as far as its first record.

Standalone on purpose (no imports from the lab package).
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

_PAUSE = 0.2  # seconds between the two segments of a split hello (each leaves on its own)


def _hello_bytes(data: bytes) -> int | None:
    """Length of the first TLS record (the ClientHello) once its header is in `data`."""
    if len(data) < 5:
        return None
    return 5 + int.from_bytes(data[3:5], "big")


def capture(client: str, sni: str, ca: str | None) -> bytes:
    """The ClientHello `client` sends for `sni`, read by a tap on the loopback (no network)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    found: dict[str, bytes] = {}

    def tap() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        data = b""
        try:
            while (need := _hello_bytes(data)) is None or len(data) < need:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        found["hello"] = data[: _hello_bytes(data) or len(data)]
        try:  # a fatal alert (handshake_failure): the client gives up at once, not at its timeout
            conn.sendall(bytes.fromhex("15030300020228"))
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=tap, daemon=True)
    thread.start()
    try:
        _handshake(client, "127.0.0.1", port, sni, ca, 3)
    finally:
        thread.join(6)
        listener.close()
    if not found.get("hello"):
        raise RuntimeError(f"{client} sent no ClientHello to the tap")
    return found["hello"]


def replay(hello: bytes, address: str, sni: str, split: int | None, timeout: float) -> str:
    """Send `hello` to address:443 (whole, or split at `split` into two segments); what comes back."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, 443))
    except OSError as exc:
        return _failure(exc)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if split:
            sock.sendall(hello[:split])
            time.sleep(_PAUSE)
            sock.sendall(hello[split:])
        else:
            sock.sendall(hello)
        answer = b""
        while len(answer) < 6:
            chunk = sock.recv(4096)
            if not chunk:
                return "closed"
            answer += chunk
    except OSError as exc:
        return _failure(exc)
    finally:
        sock.close()
    if answer[0] == 0x16 and answer[5] == 0x02:
        return "ok"
    return "alert" if answer[0] == 0x15 else f"error: unexpected {answer[:6].hex()}"


def _failure(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) == errno.ECONNRESET:
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return errno.errorcode[exc.errno].lower()
    return f"error: {type(exc).__name__}: {exc}"


def _handshake(client: str, address: str, port: int, sni: str, ca: str | None, timeout: float) -> str:
    if client == "python":
        return _python(address, port, sni, ca, timeout)
    if client == "openssl":
        return _openssl(address, port, sni, ca, timeout)
    return _curl_cffi(client, address, port, sni, ca, timeout)


def _python(address: str, port: int, sni: str, ca: str | None, timeout: float) -> str:
    context = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock, context.wrap_socket(sock, server_hostname=sni):
            return "ok"
    except ssl.SSLError as exc:
        return f"error: {exc.reason}"
    except OSError as exc:
        return _failure(exc)


def _openssl(address: str, port: int, sni: str, ca: str | None, timeout: float) -> str:
    host = f"[{address}]" if ":" in address else address
    # no name: no SNI at all (the server's default certificate; the chain is still validated)
    argv = ["openssl", "s_client", "-connect", f"{host}:{port}", *(["-servername", sni] if sni else ["-noservername"]), "-verify_return_error"]
    if ca:
        argv += ["-CAfile", ca]
    try:
        proc = subprocess.run(argv, input="", capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timeout"
    if "Cipher is" in proc.stdout and "Cipher is (NONE)" not in proc.stdout and proc.returncode == 0:
        return "ok"
    text = proc.stdout + proc.stderr
    if "errno=104" in text or "Connection reset" in text:
        return "reset"
    return f"error: {text.strip().splitlines()[-1] if text.strip() else proc.returncode}"


def _curl_cffi(profile: str, address: str, port: int, sni: str, ca: str | None, timeout: float) -> str:
    """A handshake (CONNECT_ONLY) with curl-cffi's impersonation of `profile` (an alias such as
    `chrome` or a concrete target such as `chrome131_android`)."""
    from curl_cffi import Curl, CurlError
    from curl_cffi.const import CurlOpt
    from curl_cffi.requests.impersonate import resolve_latest_browser_type

    host = f"[{address}]" if ":" in address else address
    curl = Curl()
    try:
        curl.setopt(CurlOpt.URL, f"https://{sni}:{port}/")
        curl.setopt(CurlOpt.RESOLVE, [f"{sni}:{port}:{host}"])
        curl.setopt(CurlOpt.CONNECT_ONLY, 1)
        curl.setopt(CurlOpt.PROXY, "")
        curl.setopt(CurlOpt.TIMEOUT_MS, int(timeout * 1000))
        curl.setopt(CurlOpt.SSL_VERIFYPEER, 1 if ca else 0)
        curl.setopt(CurlOpt.SSL_VERIFYHOST, 2 if ca else 0)
        if ca:
            curl.setopt(CurlOpt.CAINFO, ca)
        if curl.impersonate(resolve_latest_browser_type(profile), default_headers=False) != 0:
            return f"error: curl-cffi cannot impersonate {profile}"
        # GREASE ECH, as the browsers send it for a name without ECH config, and no HTTPS-record
        # lookup first (the profiles' default: in the lab it would wait for a resolver it cannot reach).
        curl.setopt(CurlOpt.ECH, "grease")
        curl.perform()
    except CurlError as exc:
        text = str(exc)
        if "reset" in text.lower():
            return "reset"
        if "(28)" in text or "timed out" in text.lower():
            return "timeout"
        return f"error: {text[:200]}"
    finally:
        curl.close()
    return "ok"


def run(attempts: list[dict]) -> list[str]:
    # Every hello to replay is captured first, at once: curl-cffi gives up on the tap only at
    # its timeout (3 s), whatever the tap answers, and it lets other threads run meanwhile.
    wanted = list(dict.fromkeys((a["client"], a["sni"]) for a in attempts if a.get("mode", "handshake") == "replay"))
    with ThreadPoolExecutor(max_workers=max(len(wanted), 1)) as pool:
        hellos = dict(zip(wanted, pool.map(lambda key: capture(key[0], key[1], None), wanted), strict=False))
    outcomes = []
    for attempt in attempts:
        client, address, sni = attempt["client"], attempt["address"], attempt["sni"]
        timeout = float(attempt.get("timeout", 3))
        if attempt.get("mode", "handshake") == "handshake":
            outcomes.append(_handshake(client, address, 443, sni, attempt.get("ca"), timeout))
        else:
            outcomes.append(replay(hellos[(client, sni)], address, sni, attempt.get("split"), timeout))
    return outcomes


if __name__ == "__main__":
    with open(sys.argv[1]) as attempts_file:
        print(json.dumps(run(json.load(attempts_file))))
