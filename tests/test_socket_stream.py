"""Our own socket for the tcp → tls → http path (probe/_socket_stream.py), against the real test
servers: what the checks rely on of it, as asyncio's streams gave it."""

from __future__ import annotations

import ssl

import pytest

from probe import failures
from probe.checks.observe import PeerBytes
from probe.net import connect, ssl_context

LOOPBACK = "127.0.0.1"


def _context(env, name: str = "ok.good.test") -> ssl.SSLContext:
    ctx = env.context(name)
    return ssl_context(ctx.ca_bundles(), ctx.replace_trust(), alpn=("http/1.1",))


async def test_a_validated_handshake_carries_a_request_to_its_answer(env):
    ctx = env.context("ok.good.test")
    stream = await connect(ctx.route, LOOPBACK, env.ports["web"])
    try:
        assert stream.get_extra_info("ssl_object") is None  # plain until the handshake
        await stream.start_tls(_context(env), server_hostname="ok.good.test")
        tls = stream.get_extra_info("ssl_object")
        assert isinstance(tls, ssl.SSLSocket) and tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.selected_alpn_protocol() in (None, "http/1.1") and tls.getpeercert(binary_form=True)
        assert stream.get_extra_info("peername") == (LOOPBACK, env.ports["web"])
        stream.write(b"GET / HTTP/1.1\r\nHost: ok.good.test\r\nConnection: close\r\n\r\n")
        await stream.drain()
        answer = b""
        while chunk := await stream.read(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")  # and the server's close read as b""
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("server", "failure", "peer_closed"),
    [("reset", failures.CONNECTION_RESET, False), ("hello_close", failures.EOF, True), ("not_tls", failures.SSL_FAILED_HANDSHAKE, False)],
)
async def test_a_failed_handshake_reads_as_asyncio_s_did_and_leaves_the_socket_open(env, server, failure, peer_closed):
    ctx = env.context("ok.good.test")
    stream = await connect(ctx.route, LOOPBACK, env.ports[server])
    peer = PeerBytes(stream)
    try:
        with pytest.raises(OSError) as raised:
            await stream.start_tls(_context(env), server_hostname="ok.good.test", before_step=peer.step)
        assert failures.classify(raised.value) == failure
        assert stream.peer_closed is peer_closed
        received = peer.since()  # the kernel's count, on the socket still open: the FIN is no byte
        assert received is not None and (received > 0) is (server == "not_tls")
    finally:
        stream.close()


async def test_a_refused_connect_is_the_socket_s_error(env):
    ctx = env.context("ok.good.test")
    with pytest.raises(ConnectionRefusedError) as raised:
        await connect(ctx.route, LOOPBACK, env.ports["refused"])
    assert failures.classify(raised.value) == failures.CONNECTION_REFUSED


async def test_a_write_s_error_is_raised_by_the_next_read(env):
    """As asyncio's transport did: `write` never raises, the connection's error comes with the
    next `drain` or `read` (first_byte names that operation `read`)."""
    ctx = env.context("ok.good.test")
    stream = await connect(ctx.route, LOOPBACK, env.ports["web"])
    try:
        stream.sock.shutdown(2)  # SHUT_RDWR: a send now fails with EPIPE
        stream.write(b"GET / HTTP/1.1\r\n\r\n")
        with pytest.raises(BrokenPipeError) as raised:
            await stream.read(1)
        assert failures.classify(raised.value) == failures.CONNECTION_RESET
    finally:
        stream.close()
