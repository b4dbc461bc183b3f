"""Addresses as written in configs and evidence: IP literals, host names, `host:port`.

Standard library only, so the config, the network layer and the tests share one reading of
`1.2.3.4:53`, `[::1]:53` and `::1` without importing each other.
"""

from __future__ import annotations

import ipaddress
import re

# A DNS name as msgreach accepts it: labels of letters, digits, `-` and `_` (SRV-style and some
# CDN names use `_`), 1-63 characters each, 253 in all, an optional final dot.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an IP address, or None. A host name is told without `ipaddress`, whose exception
    was most of what every check and archive record paid to ask about a target's name: an IPv6
    address has a colon, an IPv4 one only digits and dots."""
    if ":" not in text and not text.replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_ip_literal(host: str) -> bool:
    return ip_address(host) is not None


def is_host_name(host: str) -> bool:
    """A syntactically valid DNS name (not an IP literal check: `1.2.3.4` passes too)."""
    name = host.removesuffix(".")
    if not name or len(name) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def is_host(host: str) -> bool:
    """An IP literal or a DNS name: what may stand before `:port`."""
    # The name test first: it is cheap, and passes IPv4 literals too; `ip_address` raising for
    # each of a config's thousands of names was most of the check.
    return is_host_name(host) or is_ip_literal(host)


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """'1.2.3.4:53' / '[::1]:53' / '::1' / 'host' -> (host, port).

    Raises ValueError for a port that is not a number in 1-65535."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in {value!r}")
        port = rest.removeprefix(":")
        return host, _port(port, value) if port else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, _port(port, value)
    return value, default_port


def _port(text: str, value: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in {value!r}")
    return int(text)


def endpoint(value: str, *, default_port: int | None = None) -> tuple[str, int]:
    """A strict `host:port`: the host an IP literal or a DNS name; the port required unless a
    default is given. Raises ValueError saying what is wrong."""
    sentinel = 0 if default_port is None else default_port
    host, port = split_host_port(value, sentinel)
    if default_port is None and port == 0:
        raise ValueError(f"{value!r} needs a port (host:port)")
    if not is_host(host):
        raise ValueError(f"{host!r} in {value!r} is neither an IP address nor a host name")
    return host, port
