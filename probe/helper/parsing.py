"""What the helper reads from the network, parsed the strict way: an HTTP request head, its
Content-Length, a JSON body and the fields in it.

Everything here comes from strangers. Each function returns a value of the expected type or
raises `Malformed` with the reason the helper counts (`msgreach_helper_refused_total`): never
another exception, so no input reaches the "a bug" path (500 and a traceback). Numbers are
bounded before Python builds them (a 10,000-digit integer, `1e400`, `NaN`), nesting is bounded,
and text that must be ASCII (signatures, nonces, hex ids) is checked as such.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_HEADERS = 64
MAX_DEPTH = 8  # the API's bodies are two levels deep
_MAX_NUMBER_CHARS = 20  # a 64-bit integer, or a float written plainly
_HEX = frozenset("0123456789abcdef")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Malformed(ValueError):
    """Input the helper refuses: `reason` is what it counts, `status` what it answers (HTTP)."""

    def __init__(self, reason: str = "malformed", status: int = 400):
        super().__init__(reason)
        self.reason, self.status = reason, status


def request_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, path without the query, headers with lower-case names) of an HTTP/1.x head."""
    request_line, *lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not _is_token(parts[0]) or not parts[1].startswith("/") or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise Malformed()
    if not (parts[1].isascii() and parts[1].isprintable()) or len(lines) > MAX_HEADERS:
        raise Malformed()
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _is_token(name):
            raise Malformed()
        headers[name.lower()] = value.strip(" \t")
    return parts[0], parts[1].split("?", 1)[0], headers


def content_length(headers: dict[str, str], max_bytes: int) -> int:
    value = headers.get("content-length", "0")
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise Malformed()
    length = int(value)
    if length > max_bytes:
        raise Malformed("too_large", 413)
    return length


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object of at most MAX_DEPTH levels with finite, bounded numbers."""
    try:
        data = json.loads(body or b"{}", parse_int=_integer, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: thousands of levels
        raise Malformed("bad_json") from None
    if not isinstance(data, dict) or _depth(data) > MAX_DEPTH:
        raise Malformed("bad_json")
    return data


def integer(value: object, low: int, high: int, reason: str = "out_of_bounds") -> int:
    """A JSON integer (not a bool, not a float) in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed("bad_request")
    if not low <= value <= high:
        raise Malformed(reason)
    return value


def ascii_text(value: object, max_chars: int) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isprintable() or len(value) > max_chars:
        raise Malformed()
    return value


def is_hex(value: str, chars: int) -> bool:
    """Lower-case hex of exactly `chars` characters (ASCII only: `compare_digest` refuses others)."""
    return len(value) == chars and all(c in _HEX for c in value)


def _is_token(value: str) -> bool:
    return bool(value) and all(c in _TOKEN for c in value)


def _depth(value: object) -> int:
    """How deeply arrays and objects nest in a parsed value (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:  # deeper is refused anyway: no need to walk it
                stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _integer(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise ValueError("number too long")
    return int(text)


def _finite(text: str) -> float:
    value = float(text) if len(text) <= _MAX_NUMBER_CHARS else float("inf")
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")
