"""The `http` check's request as httpx would have made it (issue #22: the check speaks h11 itself):
every URL read the way httpx.URL reads it (host, port, path), and the headers framed as httpcore
framed them (Host first, Content-Length last, the config's own kept)."""

from __future__ import annotations

import httpx
import pytest

from probe.checks.http import _Target, _with_framing

URLS = [
    "https://t0001.bench.test/", "https://web.telegram.org:8443/k/", "https://x.test", "https://x.test:443/p",
    "http://x.test:80/p", "http://x.test:443/p", "https://1.2.3.4/x", "https://1.2.3.4:8080/",
    "https://x.test/path/with-dash_and~tilde.html?x=1&y=2-3", "https://x.test/a?", "https://x.test/a//b",
    "https://x.test/a?b/c=d&&",
    # what httpx rewrites, or refuses: read by httpx itself
    "https://T0001.Bench.Test/a?b=c", "http://x.test/a b", "https://x.test/%41", "https://x.test/a#frag",
    "https://xn--d1acpjx3f.xn--p1ai/", "https://x.test/a/../b", "https://x.test/a/.", "https://a-b.c-d.test/.well-known/x",
    "https://x.test/?q=1&r=%zz", "https://x-.test/", "https://пример.рф/путь", "https://x.test:99999/",
]


@pytest.mark.parametrize("url", URLS)
def test_a_url_is_read_as_httpx_reads_it(url):
    parsed = httpx.URL(url)
    target = _Target(url)
    assert (target.scheme, target.host, target.port, target.path) == (parsed.raw_scheme, parsed.raw_host, parsed.port, parsed.raw_path)


@pytest.mark.parametrize("url", ["https://[zz]/", "https://x.test:port/"])
def test_a_url_httpx_refuses_is_refused(url):
    with pytest.raises(httpx.InvalidURL):
        httpx.URL(url)
    with pytest.raises(httpx.InvalidURL):
        _Target(url)


def test_headers_are_framed_as_httpcore_framed_them():
    headers = [(b"Accept", b"*/*"), (b"Connection", b"close")]
    assert _with_framing(headers, _Target("https://x.test/"), None) == [(b"Host", b"x.test"), *headers]
    assert _with_framing(headers, _Target("https://x.test:8443/"), b"body") == [(b"Host", b"x.test:8443"), *headers, (b"Content-Length", b"4")]
    own = [(b"host", b"other.test"), (b"content-length", b"9")]
    assert _with_framing(own, _Target("https://x.test/"), b"body") == own
