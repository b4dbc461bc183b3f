"""Browser-like TLS handshakes, and the JA3/JA4 fingerprints of what a handshake sent.

In 2026 the TSPU keys some blocks on the ClientHello fingerprint: Python's ssl (OpenSSL) sends a
ClientHello no messaging app or browser sends, so a censor can treat msgreach differently from
the apps. `browser_handshake` completes a handshake with a browser's ClientHello (curl-cffi's
impersonation: BoringSSL with Chrome's or Firefox's extensions, ciphers, GREASE, ALPS,
certificate compression) to an address with a given SNI, the vantage's way.

How it goes the vantage's way and how it knows what it sent: curl connects to a tap on the
loopback; the tap reads the ClientHello, opens the real connection with `probe.net.open_tcp`
(the vantage's source address and SOCKS5 proxy, as every other check) and relays the bytes both
ways untouched. The censor therefore sees curl-cffi's ClientHello byte for byte, and the JA3 and
JA4 recorded are computed from the bytes that were actually sent on this connection (Chrome
permutes its extensions per connection, so its JA3 differs between handshakes; its JA4 sorts
them and does not). `python_fingerprint` computes the same for Python's ssl offline (an
SSLObject over memory BIOs writes its ClientHello without any network).

JA3: salesforce/ja3 (TLS version, ciphers, extensions, groups, point formats; GREASE removed;
MD5). JA4: FoxIO's JA4 for TLS over TCP (`t`, version, SNI or not, counts, ALPN's first and
last characters, then two truncated SHA-256 over sorted ciphers and sorted extensions without
SNI and ALPN, followed by the signature algorithms in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from probe import failures
from probe.model import ClientHelloFingerprint, FingerprintedHandshake, TLSHandshake
from probe.net import Route, open_tcp, ssl_context

_T = TypeVar("_T")
DEFAULT_BROWSER = "chrome"  # curl-cffi's alias for its newest Chrome
MAX_HELLO = 16 * 1024  # one TLS record's worth: a ClientHello larger than this is refused
_GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
EXT_SNI, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIGNATURE_ALGORITHMS, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0x0000, 0x000A, 0x000B, 0x000D, 0x0010, 0x002B
EXT_KEY_SHARE = 0x0033
X25519MLKEM768 = 0x11EC
SPLIT_AT = 40  # a split hello's first segment: inside the random, before the cipher list (a family's marks) and the SNI
_SPLIT_PAUSE = 0.1  # seconds between the two segments, so that each leaves on its own


# --- whose hello: the real clients' and the matrix's ----------------------------------------------


@dataclass(frozen=True)
class Hello:
    """A ClientHello msgreach can send: curl-cffi's impersonation `profile`, or None for Python's
    ssl (OpenSSL). `pq`: whether the profile offers an X25519MLKEM768 key share by default."""

    name: str
    profile: str | None
    pq: bool = False


# The hellos of the matrix, in the order tried. Profiles are curl-cffi's aliases for the newest
# of each (chrome131_android is its only recent Android one).
HELLOS: dict[str, Hello] = {
    "openssl": Hello("openssl", None),
    "chrome": Hello("chrome", "chrome", pq=True),
    "chrome_android": Hello("chrome_android", "chrome131_android"),
    "safari_ios": Hello("safari_ios", "safari_ios", pq=True),  # iOS 26's hello offers it
    "firefox": Hello("firefox", "firefox", pq=True),
}
# A catalog target's `client` -> the hello its real client sends (docs/checks.md says what each
# stands for and what is an approximation). The Android apps' HTTPS goes through BoringSSL
# (Conscrypt/Cronet): Chrome/Android's hello is the nearest curl-cffi has; the iOS apps' through
# Apple's stack (Safari/iOS); the web clients are browsers (Chrome); the desktop apps built on
# Qt/OpenSSL (Telegram Desktop) send OpenSSL's. No Telegram-app hello: the apps speak MTProto over
# TCP, not TLS; their fake-TLS hello (MTProxy) completes no real handshake, and the circumvention
# check's `mtproxy_faketls` already sends it.
CLIENTS: dict[str, str] = {"android_app": "chrome_android", "ios_app": "safari_ios", "browser": "chrome", "desktop_app": "openssl"}


# --- the ClientHello -------------------------------------------------------------------------------


@dataclass
class ClientHello:
    legacy_version: int
    ciphers: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)  # in the order sent
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    alpn: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)  # supported_versions
    sni: str | None = None
    key_shares: list[int] = field(default_factory=list)  # the groups of key_share's entries

    @property
    def pq(self) -> bool:
        return X25519MLKEM768 in self.key_shares


def hello_length(data: bytes) -> int | None:
    """Bytes of TLS records needed to hold the whole ClientHello, once the first record header
    and handshake header are in `data`; None while too few bytes are there to say."""
    if len(data) < 9:
        return None
    if data[0] != 0x16 or data[5] != 0x01:
        raise ValueError("not a TLS ClientHello")
    body = int.from_bytes(data[6:9], "big") + 4
    # A ClientHello split over records: each record adds a 5-byte header.
    records, size = 0, 0
    offset = 0
    while size < body:
        if len(data) < offset + 5:
            return None
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        records += 1
        size += length
        offset += 5 + length
    return offset


def parse_client_hello(data: bytes) -> ClientHello:
    """The fields JA3 and JA4 need, from the first bytes a client sent (TLS records)."""
    handshake = b""
    offset = 0
    while offset + 5 <= len(data) and data[offset] == 0x16:
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        handshake += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
    if len(handshake) < 4 or handshake[0] != 0x01:
        raise ValueError("not a TLS ClientHello")
    body = handshake[4 : 4 + int.from_bytes(handshake[1:4], "big")]
    try:
        return _parse_body(body)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated ClientHello: {exc}") from None


def _parse_body(body: bytes) -> ClientHello:
    (version,) = struct.unpack_from("!H", body, 0)
    at = 2 + 32
    at += 1 + body[at]  # session id
    (cipher_bytes,) = struct.unpack_from("!H", body, at)
    hello = ClientHello(version, list(struct.unpack_from(f"!{cipher_bytes // 2}H", body, at + 2)))
    at += 2 + cipher_bytes
    at += 1 + body[at]  # compression methods
    if at + 2 > len(body):
        return hello  # no extensions
    (total,) = struct.unpack_from("!H", body, at)
    at += 2
    end = at + total
    while at + 4 <= end:
        kind, length = struct.unpack_from("!HH", body, at)
        value = body[at + 4 : at + 4 + length]
        at += 4 + length
        hello.extensions.append(kind)
        _extension(hello, kind, value)
    return hello


def _u16_list(value: bytes, length_bytes: int = 2) -> list[int]:
    size = int.from_bytes(value[:length_bytes], "big")
    return list(struct.unpack_from(f"!{size // 2}H", value, length_bytes))


def _extension(hello: ClientHello, kind: int, value: bytes) -> None:
    if kind == EXT_GROUPS:
        hello.groups = _u16_list(value)
    elif kind == EXT_POINT_FORMATS and value:
        hello.point_formats = list(value[1 : 1 + value[0]])
    elif kind == EXT_SIGNATURE_ALGORITHMS:
        hello.signature_algorithms = _u16_list(value)
    elif kind == EXT_SUPPORTED_VERSIONS and value:
        hello.versions = list(struct.unpack_from(f"!{value[0] // 2}H", value, 1))
    elif kind == EXT_ALPN and len(value) >= 2:
        at = 2
        while at < len(value):
            size = value[at]
            hello.alpn.append(value[at + 1 : at + 1 + size].decode("latin-1"))
            at += 1 + size
    elif kind == EXT_KEY_SHARE and len(value) >= 2:
        at, end = 2, 2 + int.from_bytes(value[:2], "big")
        while at + 4 <= min(end, len(value)):
            group, size = struct.unpack_from("!HH", value, at)
            hello.key_shares.append(group)
            at += 4 + size
    elif kind == EXT_SNI and len(value) >= 5:
        size = int.from_bytes(value[3:5], "big")
        hello.sni = value[5 : 5 + size].decode("latin-1")


# --- JA3 and JA4 -----------------------------------------------------------------------------------


def _clean(values: list[int]) -> list[int]:
    return [v for v in values if v not in _GREASE]


def ja3(hello: ClientHello) -> tuple[str, str]:
    """(JA3 string, its MD5)."""
    parts = [
        str(hello.legacy_version),
        "-".join(str(c) for c in _clean(hello.ciphers)),
        "-".join(str(e) for e in _clean(hello.extensions)),
        "-".join(str(g) for g in _clean(hello.groups)),
        "-".join(str(p) for p in hello.point_formats),
    ]
    text = ",".join(parts)
    return text, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def ja4_raw_parts(hello: ClientHello) -> tuple[str, str, str]:
    """JA4's three parts before hashing: prefix, sorted ciphers, sorted extensions_sigalgs."""
    versions = _clean(hello.versions) or [hello.legacy_version]
    version = _VERSIONS.get(max(versions), "00")
    ciphers = _clean(hello.ciphers)
    extensions = _clean(hello.extensions)
    alpn = hello.alpn[0] if hello.alpn else ""
    alpn_code = (alpn[0] + alpn[-1]) if alpn and alpn.isascii() and (alpn[0] + alpn[-1]).isalnum() else (alpn.encode().hex()[:1] + alpn.encode().hex()[-1:] if alpn else "00")
    prefix = f"t{version}{'d' if EXT_SNI in extensions else 'i'}{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn_code}"
    cipher_text = ",".join(f"{c:04x}" for c in sorted(ciphers))
    ext_text = ",".join(f"{e:04x}" for e in sorted(e for e in extensions if e not in (EXT_SNI, EXT_ALPN)))
    if hello.signature_algorithms:
        ext_text += "_" + ",".join(f"{s:04x}" for s in hello.signature_algorithms)
    return prefix, cipher_text, ext_text


def ja4(hello: ClientHello) -> str:
    prefix, ciphers, extensions = ja4_raw_parts(hello)
    return f"{prefix}_{_sha12(ciphers)}_{_sha12(extensions)}"


def fingerprint_of(client: str, data: bytes) -> ClientHelloFingerprint:
    hello = parse_client_hello(data)
    text, digest = ja3(hello)
    return ClientHelloFingerprint(client, text, digest, ja4(hello), hello.pq)


def python_client_hello(context: ssl.SSLContext, sni: str) -> bytes:
    """The ClientHello Python's ssl sends with `context` for `sni`, written to memory (no network)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def python_fingerprint(context: ssl.SSLContext, sni: str) -> ClientHelloFingerprint:
    return fingerprint_of("python", python_client_hello(context, sni))


# --- a handshake with a browser's ClientHello ------------------------------------------------------


@dataclass
class _Tap:
    """The loopback relay curl connects to: records the ClientHello, then carries the bytes to
    the real address over the vantage's route."""

    route: Route
    address: str
    port: int
    split: bool = False  # write the hello in two segments (SPLIT_AT), TCP_NODELAY
    hello: bytes = b""
    upstream_failure: str | None = None  # the real connection could not be made
    received: list[int] = field(default_factory=lambda: [0])  # bytes the server sent (its answer began)
    connected: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def close(self) -> None:
        """End the relay (curl is done with it): both connections aborted."""
        for writer in self.writers:
            _abort(writer)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        self.writers.append(writer)
        try:
            data = b""
            while (need := hello_length(data)) is None or len(data) < need:
                chunk = await reader.read(MAX_HELLO)
                if not chunk or len(data) + len(chunk) > MAX_HELLO + 5 * 4:
                    return
                data += chunk
            self.hello = data
            try:
                up_reader, upstream = await open_tcp(self.route, self.address, self.port)
            except Exception as exc:  # noqa: BLE001 - the real connection's failure is the evidence
                self.upstream_failure = failures.classify(exc)
                return
            self.connected = True
            self.writers.append(upstream)
            if self.split:
                await _write_split(upstream, data)
            else:
                upstream.write(data)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer, self.received))
        except (ConnectionError, OSError, ValueError):
            pass  # a reset or close once relaying: curl meets it too, and its report is the one kept
        finally:
            _abort(writer)
            if upstream is not None:
                _abort(upstream)
            self.done.set()


async def _write_split(writer: asyncio.StreamWriter, data: bytes) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(data[:SPLIT_AT])
    await writer.drain()
    await asyncio.sleep(_SPLIT_PAUSE)
    writer.write(data[SPLIT_AT:])


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tally: list[int] | None = None) -> None:
    """Carry bytes one way (counted into `tally`); pass on the end as it came: a close as a close,
    a reset as a reset (curl must meet what the censor or the server did)."""
    try:
        while chunk := await reader.read(65536):
            if tally is not None:
                tally[0] += len(chunk)
            writer.write(chunk)
            await writer.drain()
    except ConnectionResetError:
        _reset(writer)
        return
    if writer.can_write_eof() and not writer.is_closing():
        try:
            writer.write_eof()
        except OSError:
            pass


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # idempotent: an aborted transport ignores a second abort


async def browser_handshake(
    route: Route,
    address: str,
    port: int,
    sni: str,
    *,
    browser: str = DEFAULT_BROWSER,
    ca_bundles: tuple[Path, ...] = (),
    replace_trust: bool = False,
    verify: bool = True,
    timeout: float = 5.0,
    pq: bool | None = None,
    split: bool = False,
) -> FingerprintedHandshake:
    """One TLS handshake to address:port with `sni` and a browser's ClientHello (curl-cffi's
    impersonation target `browser`); never raises. Without curl-cffi the handshake fails with
    `check_unavailable` (the monitor's own trouble). `pq`: offer an X25519MLKEM768 key share (True)
    or leave it out (False) whatever the profile does; `split`: the hello goes in two segments."""
    record = TLSHandshake(address, port, sni)
    try:
        from curl_cffi import Curl  # noqa: F401 - a dependency, imported when needed
    except ImportError:
        record.failure = failures.UNAVAILABLE
        return FingerprintedHandshake(record)
    async with _tapped(route, address, port, split, record) as (tap, tap_port):
        trust = _trust_file(tuple(Path(b) for b in ca_bundles), replace_trust) if verify else None
        error = await _in_thread(_curl_connect, sni, port, tap_port, browser, trust, verify, timeout, pq)
        if tap.upstream_failure is not None:
            record.failure = tap.upstream_failure  # the real connection's own failure says more
        elif error is not None:
            record.failure = _curl_failure(*error)
        else:
            record.tls_version = None  # libcurl does not report it for a connect-only transfer
    if record.failure is not None and tap.received[0]:
        record.received_bytes = tap.received[0]  # the server's answer began: not a cut handshake
    fingerprint = fingerprint_of(f"browser:{browser}", tap.hello) if tap.hello else None
    if not tap.connected and tap.upstream_failure is None and record.failure is None:
        record.failure = failures.UNKNOWN + ": the handshake never reached the address"
    return FingerprintedHandshake(record, fingerprint)


@contextlib.asynccontextmanager
async def _tapped(route: Route, address: str, port: int, split: bool, record: TLSHandshake) -> AsyncIterator[tuple[_Tap, int]]:
    """A tap on the loopback for one handshake, relaying to address:port; the record's duration."""
    tap = _Tap(route, address, port, split)
    server = await asyncio.start_server(tap.handle, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        yield tap, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        tap.close()
        if tap.writers:  # the relay's task ends on the aborted connections: wait for it, briefly
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await tap.done.wait()
        record.duration_seconds = round(loop.time() - started, 4)


async def hello_handshake(
    route: Route,
    address: str,
    port: int,
    sni: str,
    hello: str,
    *,
    pq: bool | None = None,
    split: bool = False,
    ca_bundles: tuple[Path, ...] = (),
    replace_trust: bool = False,
    verify: bool = True,
    timeout: float = 5.0,
) -> TLSHandshake:
    """One handshake of the ClientHello matrix: `hello` (a name in HELLOS), its key share as
    `pq` says (None: the profile's own), whole or split; the record says which hello went, whether
    it carried X25519MLKEM768 and its JA4, read from the bytes sent. Never raises."""
    spec = HELLOS[hello]
    if spec.profile is None:
        record, sent = await _python_via_tap(route, address, port, sni, split, ca_bundles, replace_trust, verify, timeout)
    else:
        done = await browser_handshake(
            route, address, port, sni, browser=spec.profile, ca_bundles=ca_bundles, replace_trust=replace_trust, verify=verify, timeout=timeout, pq=pq, split=split
        )
        record, sent = done.handshake, done.fingerprint
    record.hello, record.split = hello, split
    if sent is not None:
        record.ja4 = sent.ja4
        record.pq = sent.pq
    return record


async def _python_via_tap(
    route: Route, address: str, port: int, sni: str, split: bool, ca_bundles: tuple[Path, ...], replace_trust: bool, verify: bool, timeout: float
) -> tuple[TLSHandshake, ClientHelloFingerprint | None]:
    """Python's handshake through the tap (so that it can be split, and its bytes are read)."""
    context = ssl_context(tuple(ca_bundles), replace_trust, verify=verify)
    record = TLSHandshake(address, port, sni)
    async with _tapped(route, address, port, split, record) as (tap, tap_port):
        writer = None
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection("127.0.0.1", tap_port)
                await writer.start_tls(context, server_hostname=sni)
            ssl_object = writer.get_extra_info("ssl_object")
            record.tls_version = ssl_object.version() if ssl_object is not None else None
        except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
            record.failure = tap.upstream_failure or failures.classify(exc)
        finally:
            if writer is not None:
                _abort(writer)
    if record.failure is not None and tap.received[0]:
        record.received_bytes = tap.received[0]
    return record, (fingerprint_of("python", tap.hello) if tap.hello else None)


def _curl_connect(sni: str, port: int, tap_port: int, browser: str, trust: str | None, verify: bool, timeout: float, pq: bool | None = None) -> tuple[int, str] | None:
    """Connect and handshake only (CONNECT_ONLY), through the tap; (curl code, message) or None."""
    from curl_cffi import Curl, CurlError
    from curl_cffi.const import CurlOpt

    curl = Curl()
    try:
        # The name resolves to the tap (the URL's port is the tap's: only the name is sent, as SNI).
        curl.setopt(CurlOpt.URL, f"https://{sni}:{tap_port}/")
        curl.setopt(CurlOpt.RESOLVE, [f"{sni}:{tap_port}:127.0.0.1"])
        curl.setopt(CurlOpt.CONNECT_ONLY, 1)
        curl.setopt(CurlOpt.PROXY, "")  # never an environment's proxy: the tap is the route
        curl.setopt(CurlOpt.NOPROXY, "*")
        curl.setopt(CurlOpt.TIMEOUT_MS, max(int(timeout * 1000), 1))
        curl.setopt(CurlOpt.SSL_VERIFYPEER, 1 if verify else 0)
        curl.setopt(CurlOpt.SSL_VERIFYHOST, 2 if verify else 0)
        if trust is not None:
            curl.setopt(CurlOpt.CAINFO, trust)
        if curl.impersonate(_target(browser), default_headers=False) != 0:
            return -1, f"curl-cffi cannot impersonate {browser!r}"
        if pq is not None:  # the profile's groups with X25519MLKEM768 first, or without it
            curl.setopt(CurlOpt.SSL_EC_CURVES, _WITH_PQ if pq else _WITHOUT_PQ)
        # GREASE ECH, as Chrome sends when the name has no ECH config: the same hello, and no
        # HTTPS-record DNS lookup first (through a censor dropping DNS it would wait to the timeout).
        curl.setopt(CurlOpt.ECH, "grease")
        # The name resolves to the tap (RESOLVE), yet curl still asks the system resolver for its
        # HTTPS record, and after a failed handshake waits for that answer: through a resolver a
        # censor drops (or the lab's client namespace) every reset read as a timeout. Its resolver
        # pointed at a closed loopback port, the lookup fails at once (DoH where c-ares is not built in).
        if curl.setopt(CurlOpt.DNS_SERVERS, _NO_RESOLVER) != 0:
            curl.setopt(CurlOpt.DOH_URL, f"https://{_NO_RESOLVER}/dns-query")
        curl.perform()
        return None
    except CurlError as exc:
        return getattr(exc, "code", 0) or 0, str(exc)
    finally:
        curl.close()


# curl blocks a thread for a handshake, to its timeout when the path drops it: a round's matrices
# run many at once (a few per failing target), and an attempt queued behind dropped ones for a
# thread would outlast its bound (a decoy read as a timeout). Each gets a thread of its own, up to
# this many at once; the threads end with their handshake (none kept idle: no memory held after).
_CURL_THREADS = 128


@lru_cache(maxsize=1)
def _curl_slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(_CURL_THREADS)


async def _in_thread(function: Callable[..., _T], *args: object) -> _T:
    """`function(*args)` in a thread of its own; its result or exception."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if done.done():  # the caller gave up (its bound): nobody waits for this any more
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        with _curl_slots():
            try:
                outcome: tuple[_T | None, BaseException | None] = (function(*args), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="msgreach-curl", daemon=True).start()
    return await done


_NO_RESOLVER = "127.0.0.1:9"  # discard's port: nothing listens there
_WITHOUT_PQ = "X25519:P-256:P-384"
_WITH_PQ = "X25519MLKEM768:" + _WITHOUT_PQ


def _target(browser: str) -> str:
    """curl-cffi's alias (`chrome`, `firefox`…) as the concrete target its libcurl knows."""
    from curl_cffi.requests.impersonate import resolve_latest_browser_type

    return str(resolve_latest_browser_type(browser))  # type: ignore[no-untyped-call]  # curl-cffi ships no types


# curl's error codes (libcurl-errors.3) and OpenSSL/BoringSSL reasons, in failures' vocabulary.
_CURL_CONNECT, _CURL_TIMEOUT, _CURL_SSL_CONNECT, _CURL_PEER_CERT, _CURL_SEND, _CURL_RECV = 7, 28, 35, 60, 55, 56


def _curl_failure(code: int, message: str) -> str:
    if code == -1:
        return f"{failures.UNAVAILABLE}: {message}"
    text = message.lower()
    if code == _CURL_TIMEOUT or "timed out" in text:
        return failures.TIMEOUT
    if "reset by peer" in text or "connection reset" in text:
        return failures.CONNECTION_RESET
    if code == _CURL_PEER_CERT or "certificate" in text:
        if "self-signed" in text or "self signed" in text or "issuer" in text or "unknown ca" in text:
            return failures.SSL_UNKNOWN_AUTHORITY
        if "subject name" in text or "hostname" in text or "does not match" in text:
            return failures.SSL_INVALID_HOSTNAME
        return failures.SSL_INVALID_CERTIFICATE
    if code == _CURL_CONNECT:
        return failures.CONNECTION_REFUSED
    if "eof" in text or "unexpected eof" in text or "closed" in text or code in (_CURL_RECV, _CURL_SEND):
        return failures.EOF
    if code == _CURL_SSL_CONNECT:
        return failures.SSL_FAILED_HANDSHAKE
    return f"{failures.UNKNOWN}: curl {code}: {message[:80]}"


_SYSTEM_STORE = Path("/etc/ssl/certs/ca-certificates.crt")


@lru_cache(maxsize=16)
def _trust_file(bundles: tuple[Path, ...], replace: bool) -> str | None:
    """A PEM file for curl trusting what `probe.net.ssl_context` trusts: the system store plus
    the bundles, or the bundles alone (curl takes one file). None: curl-cffi's default store."""
    if not bundles:
        return None
    parts = [] if replace or not _SYSTEM_STORE.is_file() else [_SYSTEM_STORE.read_bytes()]
    descriptor, path = tempfile.mkstemp(prefix="msgreach-trust-", suffix=".pem")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(b"\n".join([*parts, *(b.read_bytes() for b in bundles)]))
    return path


async def python_handshake(
    route: Route, address: str, port: int, sni: str, *, ca_bundles: tuple[Path, ...] = (), replace_trust: bool = False, timeout: float = 5.0
) -> FingerprintedHandshake:
    """The same handshake with Python's ssl, and the fingerprint of its ClientHello: the pair the
    tls check compares (`fingerprint: both`)."""
    context = ssl_context(tuple(ca_bundles), replace_trust)
    record = TLSHandshake(address, port, sni)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await open_tcp(route, address, port)
            await writer.start_tls(context, server_hostname=sni)
        ssl_object = writer.get_extra_info("ssl_object")
        record.tls_version = ssl_object.version() if ssl_object is not None else None
    except Exception as exc:  # noqa: BLE001 - every failure becomes evidence
        record.failure = failures.classify(exc)
    finally:
        if writer is not None:
            _abort(writer)
        record.duration_seconds = round(loop.time() - started, 4)
    return FingerprintedHandshake(record, python_fingerprint(context, sni))
