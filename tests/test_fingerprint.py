"""probe.fingerprint: JA3/JA4 from ClientHello bytes (checked against the published examples),
browser-like handshakes with curl-cffi to real TLS servers with the test CA, the vantage's route
(source address, SOCKS5), and a censor keyed on the ClientHello fingerprint in front of a real
server (tests/servers/fingerprint_censor.py), each way round."""

from __future__ import annotations

import asyncio
import struct
import sys

import pytest
from msgreach_helpers import measured
from servers import fingerprint_censor

from probe import failures, fingerprint
from probe.net import Route, ssl_context

LOOPBACK = "127.0.0.1"
NAME = "fp.good.test"  # in the valid leaf's names


# --- a ClientHello built by hand, for the published JA3 and JA4 examples -------------------------


def _ext(kind: int, body: bytes = b"") -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _u16s(values: list[int], length_bytes: int = 2) -> bytes:
    raw = b"".join(struct.pack("!H", v) for v in values)
    return len(raw).to_bytes(length_bytes, "big") + raw


def client_hello(version: int, ciphers: list[int], extensions: list[bytes]) -> bytes:
    body = struct.pack("!H", version) + bytes(32) + b"\x20" + bytes(32) + _u16s(ciphers) + b"\x01\x00"
    all_extensions = b"".join(extensions)
    body += struct.pack("!H", len(all_extensions)) + all_extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def test_ja3_of_the_ja3_readme_example():
    # salesforce/ja3: 769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0
    hello = client_hello(
        769,
        [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
        [_ext(0, b"\x00\x06\x00\x00\x03a.b"), _ext(10, _u16s([23, 24, 25])), _ext(11, b"\x01\x00")],
    )
    text, digest = fingerprint.ja3(fingerprint.parse_client_hello(hello))
    assert text == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert digest == "ada70206e40642a3e4461f35503241d5"


CHROME_CIPHERS = [0x0A0A, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
CHROME_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def test_ja4_of_the_ja4_readme_example():
    # FoxIO's JA4 README: Chrome, t13d1516h2_8daaf6152771_e5627efa2ab1 (GREASE ignored, SNI and
    # ALPN counted but not hashed, the signature algorithms in their order).
    alpn = b"\x02h2\x08http/1.1"
    extensions = [
        _ext(0x1A1A),
        _ext(0x0000, b"\x00\x0f\x00\x00\x0cfp.good.test"),
        _ext(0x0017), _ext(0xFF01, b"\x00"), _ext(0x000A, _u16s([0x1A1A, 29, 23, 24])), _ext(0x000B, b"\x01\x00"),
        _ext(0x0023), _ext(0x0010, struct.pack("!H", len(alpn)) + alpn), _ext(0x0005, b"\x01\x00\x00\x00\x00"),
        _ext(0x000D, _u16s(CHROME_SIGALGS)), _ext(0x0012), _ext(0x0033, b"\x00\x00"), _ext(0x002D, b"\x01\x01"),
        _ext(0x002B, _u16s([0x2A2A, 0x0304, 0x0303], 1)), _ext(0x001B, b"\x02\x00\x02"), _ext(0x4469, b"\x00\x03\x02h2"),
        _ext(0x0015, bytes(10)),
    ]  # fmt: skip
    hello = fingerprint.parse_client_hello(client_hello(0x0303, CHROME_CIPHERS, extensions))
    assert hello.sni == NAME and hello.alpn == ["h2", "http/1.1"] and hello.versions == [0x2A2A, 0x0304, 0x0303]
    assert fingerprint.ja4(hello) == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_a_hello_split_over_records_is_measured_whole():
    hello = client_hello(0x0303, [0x1301], [_ext(0x0000, b"\x00\x0f\x00\x00\x0cfp.good.test")])
    payload = hello[5:]
    split = b"\x16\x03\x01" + struct.pack("!H", 20) + payload[:20] + b"\x16\x03\x01" + struct.pack("!H", len(payload) - 20) + payload[20:]
    assert fingerprint.hello_length(split[:9]) is None or fingerprint.hello_length(split[:9]) > 9
    assert fingerprint.hello_length(split) == len(split)
    assert fingerprint.parse_client_hello(split).sni == NAME
    with pytest.raises(ValueError):
        fingerprint.parse_client_hello(b"GET / HTTP/1.1\r\n\r\n")


def test_pythons_own_hello_is_fingerprinted_offline(env):
    found = fingerprint.python_fingerprint(ssl_context((env.ca.pem,)), NAME)
    assert found.client == "python" and found.ja4.startswith("t13d")
    hello = fingerprint.parse_client_hello(fingerprint.python_client_hello(ssl_context(), NAME))
    assert hello.sni == NAME and hello.ciphers[0] == 0x1302  # OpenSSL's order: what the censor below keys on
    assert not any(c & 0x0F0F == 0x0A0A for c in hello.ciphers)  # OpenSSL never sends GREASE


# --- browser handshakes against real TLS servers ---------------------------------------------------


DIRECT = Route()


async def browser(env, port: int, sni: str = NAME, route: Route = DIRECT, **kwargs):
    return await fingerprint.browser_handshake(route, LOOPBACK, port, sni, ca_bundles=(env.ca.pem,), timeout=3.0, **kwargs)


async def test_a_browser_handshake_completes_and_records_what_it_sent(env):
    result = await browser(env, env.ports["web"])
    assert result.handshake.failure is None, result
    found = result.fingerprint
    assert found is not None and found.client == "browser:chrome"
    # Chrome's cipher set (the JA4 README's hash) and its ALPS extension: a browser's hello.
    assert found.ja4.split("_")[1] == "8daaf6152771" and found.ja4.endswith(found.ja4.split("_")[2])
    extensions = {int(e) for e in found.ja3.split(",")[2].split("-")}
    assert extensions & {17513, 17613}
    assert found.ja4 != fingerprint.python_fingerprint(ssl_context(), NAME).ja4


async def test_firefox_is_another_fingerprint(env):
    chrome, firefox = await browser(env, env.ports["web"]), await browser(env, env.ports["web"], browser="firefox")
    assert firefox.handshake.failure is None and firefox.fingerprint.client == "browser:firefox"
    assert firefox.fingerprint.ja4 != chrome.fingerprint.ja4


@pytest.mark.parametrize(
    ("server", "failure"),
    [("wrongname", failures.SSL_INVALID_HOSTNAME), ("selfsigned", failures.SSL_UNKNOWN_AUTHORITY), ("reset", failures.CONNECTION_RESET)],
)
async def test_failures_are_classified(env, server, failure):
    result = await browser(env, env.ports[server])
    assert result.handshake.failure == failure, result


async def test_the_trust_store_is_the_configured_one(env):
    result = await fingerprint.browser_handshake(Route(), LOOPBACK, env.ports["web"], NAME, timeout=3.0)
    assert result.handshake.failure == failures.SSL_UNKNOWN_AUTHORITY  # the test CA only when configured
    assert (await browser(env, env.ports["web"], verify=False)).handshake.failure is None


async def test_refused_is_the_real_connections_failure(env):
    result = await browser(env, env.ports["refused"])
    assert result.handshake.failure == failures.CONNECTION_REFUSED
    assert result.fingerprint is not None  # the hello was built, then had nowhere to go


async def test_source_address_and_socks5_are_the_vantages(env):
    peers: list[str] = []

    async def start() -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer.get_extra_info("peername")[0])
            await reader.read()

        _, port = await env.fleet.serve(handle, LOOPBACK, context=env.leaves["valid"].server_context())
        return port

    port = env.loop.call(start())
    assert (await browser(env, port, route=Route(source_address="127.0.0.2"))).handshake.failure is None
    for _ in range(200):  # the server's side finishes its handshake after ours
        if peers:
            break
        await asyncio.sleep(0.01)
    assert peers == ["127.0.0.2"]
    before = len(env.socks5.connects)
    assert (await browser(env, port, route=Route(socks5=(LOOPBACK, env.ports["socks5"])))).handshake.failure is None
    assert env.socks5.connects[before:] == [(LOOPBACK, port)]


async def test_without_curl_cffi_it_is_the_monitors_trouble(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "curl_cffi", None)
    result = await browser(env, env.ports["web"])
    assert result.handshake.failure == failures.UNAVAILABLE and result.fingerprint is None


# --- a censor keyed on the fingerprint ----------------------------------------------------------------


@pytest.fixture(scope="module")
def censors(env) -> dict[str, int]:
    async def start() -> dict[str, int]:
        backend = (LOOPBACK, env.ports["web"])
        ports = {}
        for block in fingerprint_censor.BLOCKS:
            _, ports[block] = await env.fleet.serve(fingerprint_censor.handler(backend, block), LOOPBACK)
        return ports

    return env.loop.call(start())


async def test_a_censor_on_pythons_fingerprint_resets_python_only(env, censors):
    python = await fingerprint.python_handshake(Route(), LOOPBACK, censors["python"], NAME, ca_bundles=(env.ca.pem,), timeout=3.0)
    chrome = await browser(env, censors["python"])
    assert python.handshake.failure == failures.CONNECTION_RESET
    assert chrome.handshake.failure is None
    assert python.fingerprint.ja4 != chrome.fingerprint.ja4  # the evidence says which hello was blocked


async def test_a_censor_on_the_browsers_fingerprint_resets_the_browser_only(env, censors):
    python = await fingerprint.python_handshake(Route(), LOOPBACK, censors["browser"], NAME, ca_bundles=(env.ca.pem,), timeout=3.0)
    chrome = await browser(env, censors["browser"])
    assert python.handshake.failure is None and python.handshake.tls_version == "TLSv1.3"
    assert chrome.handshake.failure == failures.CONNECTION_RESET


# --- the tls check with `fingerprint: both` ------------------------------------------------------


@pytest.mark.parametrize(("block", "verdict", "keyed"), [("python", "ok", "python"), ("browser", "tls_blocked", "browser")])
async def test_the_tls_check_follows_the_browsers_hello_and_names_a_fingerprint_block(env, censors, block, verdict, keyed):
    """A censor keyed on the ClientHello: with `fingerprint: both` the verdict is what the apps
    (browsers) meet, Python's hello to the same address and name is the differential, and the
    evidence says whose hello was cut, with both fingerprints."""
    from msgreach_helpers import measured, verdict_of

    from probe.checks import tls

    ctx = env.context(NAME, "web", target={"params": {"tls": {"fingerprint": "both"}}}, timeout=3.0)
    ctx.connected = [(LOOPBACK, censors[block])]
    result = await measured(ctx, tls, ctx.params_for("tls", tls.Params))
    assert verdict_of(result) == verdict
    evidence = result.evidence
    assert evidence.fingerprint_keyed == keyed
    assert evidence.browser.fingerprint.ja4 != evidence.python_hello.ja4
    if block == "browser":
        assert result.finding.differential == "python_hello" and "ClientHello fingerprint" in str(result.finding.reason)
    else:
        assert ctx.tls_endpoint is None  # the next stages speak Python's hello: nothing to send on


async def test_the_tls_check_with_both_hellos_passing(env):
    from probe.checks import tls

    ctx = env.context(NAME, "web", target={"params": {"tls": {"fingerprint": "both"}}}, timeout=3.0)
    ctx.connected = [(LOOPBACK, env.ports["web"])]
    result = await measured(ctx, tls, ctx.params_for("tls", tls.Params))
    assert result.ok and result.evidence.fingerprint_keyed is None
    assert result.as_json()["browser"]["fingerprint"]["ja4"].startswith("t13")
