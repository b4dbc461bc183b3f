"""Addresses the config asks this machine to bind: the listener's and a vantage's source address.

`run` binds both (the listener at start, the source address for every connection), so the load
checks them the same way, and `check-config` refuses what `run` would trip over: a listen host
that is no address (`notanaddress`, `300.1.1.1`), an address no interface of this machine has.
The check binds a UDP socket to the address with port 0 and closes it: nothing is sent, and the
port the listener will take is left alone (whether it is free is a matter of the moment). The
listener takes an IP address or `localhost` (the hosts file's): a load never asks DNS.

Standard library only. Each function returns the problem as a sentence, or None.
"""

from __future__ import annotations

import errno
import re
import socket

from probe.addresses import is_ip_literal, split_host_port

_DOTTED_DIGITS = re.compile(r"[0-9.]+")


def listen_problem(address: str, default_port: int = 9910) -> str | None:
    """Why `run` could not listen on `address` (IP:PORT or localhost:PORT), or None."""
    try:
        host, port = split_host_port(address, default_port)
    except ValueError as exc:
        return str(exc)
    if is_ip_literal(host):
        return _unbindable(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    if _DOTTED_DIGITS.fullmatch(host):
        return f"{host!r} is not an IP address (four numbers 0-255)"
    if host != "localhost":
        # A name would be looked up in DNS at every start, and could then bind anywhere.
        return f"{host!r}: listen on an IP address of this machine (0.0.0.0 for all, 127.0.0.1 for this machine only) or localhost"
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({_reason(exc)})"
    for family, _, _, _, sockaddr in found:
        problem = _unbindable(family, str(sockaddr[0]))
        if problem is not None:
            return problem
    return None


def source_problem(address: str) -> str | None:
    """Why connections could not start from `address` (IP or IP:port), or None."""
    try:
        host, _ = split_host_port(address, 0)
    except ValueError as exc:
        return str(exc)
    if not is_ip_literal(host):
        return f"{host!r} is not an IP address"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _unbindable(family, host)


def _unbindable(family: int, host: str) -> str | None:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{host} is not an address of this machine: no interface has it"
        return f"cannot bind {host} ({_reason(exc)})"
    return None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
