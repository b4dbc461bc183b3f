"""Keeping the vantage's own addresses out of what msgreach writes: evidence and logs.

A volunteer's public address must not end up in anything msgreach keeps or sends. msgreach never
asks anyone for it, but remote ends can reflect it back: block pages ("your IP: …"), redirects to
block-page hosts carrying it in the query string, what-is-my-IP pages, error texts naming a local
address. So free text is scrubbed on the way out:

- `scrub(value, allowed=…, deny=…)`: in every string of a JSON-like value, replace each *public*
  (globally routable) IPv4/IPv6 address that is not in `allowed` — the remote ends the
  measurement itself resolved or connected to — and every address in `deny` (e.g. a configured
  `source_address`), with `[scrubbed]`, the marker OONI uses for the probe's address. IPv4 is
  recognised dotted and in the dashed and underscored forms ISP host names carry
  (`81-2-69-160.dynamic.isp.example`, `81_2_69_160`).
- `LogScrubber`: a logging filter that does the same to every log record (message and
  traceback) with nothing allowed: logs need no public address to be useful, and libraries
  logging at DEBUG (httpcore dumps response headers) must not leak one.

Private, loopback and other non-global addresses are kept: they identify nobody on the
internet, and labs use them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Set
from typing import Any

from probe.addresses import ip_address

SCRUBBED = "[scrubbed]"

# Dotted, also glued to a host name (`ip81.2.69.160`, `81.2.69.160.dynamic.isp.example`), never a
# piece of a longer dotted number (a version string `1.2.3.4.5`).
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
# Dashed or underscored, as ISPs write the client's address in host names on block pages and in
# redirects (`81-2-69-160.dynamic.isp.example`, `dsl-81-2-69-160`, `81_2_69_160`). A longer run
# of numbers (`5-81-2-69-160`) is judged by each four in a row: one public address scrubs it all.
_IPV4_SEPARATED = re.compile(r"(?<!\d)\d{1,3}(?:[-_]\d{1,3}){3,}(?!\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\d)")
_DIGIT = re.compile(r"\d")  # both IPv4 forms have digits
_PLAIN = frozenset({int, float, bool, type(None)})  # no text in them


def ip_version(value: Any) -> int | None:
    ip = ip_address(str(value).split("%")[0])
    return None if ip is None else ip.version


def normal_form(address: str) -> str | None:
    """The address as `ipaddress` writes it (a zone left out), or None: not an address."""
    ip = ip_address(address.split("%")[0])
    return None if ip is None else str(ip)


def scrub(value: Any, *, allowed: Set[str] = frozenset(), deny: Set[str] = frozenset()) -> Any:
    """`value` with public addresses outside `allowed`, and all of `deny`, replaced by `[scrubbed]`."""
    allowed, deny = _lists(allowed, deny)

    # One scrub walks a whole record, where the same addresses and strings come back many times:
    # each is judged once per call (plain dicts: a functools cache per call costs more).
    judged: dict[str, bool] = {}
    scrubbed: dict[str, str] = {}

    def secret(text: str) -> bool:
        found = judged.get(text)
        if found is None:
            found = judged[text] = _is_secret(text, allowed, deny)
        return found

    def replace(match: re.Match[str]) -> str:
        return SCRUBBED if secret(match.group(0)) else match.group(0)

    def replace_separated(match: re.Match[str]) -> str:
        numbers = re.split(r"[-_]", match.group(0))
        windows = (".".join(numbers[i : i + 4]) for i in range(len(numbers) - 3))
        return SCRUBBED if any(secret(window) for window in windows) else match.group(0)

    def walk(item: Any) -> Any:
        kind = type(item)  # the exact types first: most of a record is numbers, flags and plain dicts
        if kind in _PLAIN:
            return item
        if kind is dict:
            return walk_dict(item)
        if isinstance(item, str):
            return clean(item)
        if isinstance(item, dict):
            return walk_dict(item)
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    def walk_dict(item: dict[Any, Any]) -> dict[Any, Any]:
        # Plain values inline: a call per value was most of a record's scrub (issue #22).
        out = {}
        for key, value in item.items():
            kind = type(value)
            out[key] = value if kind in _PLAIN else clean(value) if kind is str else walk(value)
        return out

    def clean(item: str) -> str:
        if "." not in item and ":" not in item and "-" not in item and "_" not in item:
            return item
        found = scrubbed.get(item)
        if found is None:
            found = scrubbed[item] = text(item)
        return found

    def text(item: str) -> str:
        # Each pattern only where it can match: the IPv6 one tries every position of a text
        # (a 2 KB body sample per target, docs/benchmarks.md), and needs two colons.
        if item.count(":") >= 2:
            item = _IPV6.sub(replace, item)
        if _DIGIT.search(item) is None:
            return item
        return _IPV4_SEPARATED.sub(replace_separated, _IPV4.sub(replace, item))

    return walk(value)


def addresses_in(text: str) -> tuple[tuple[str, bool], ...]:
    """The addresses `scrub` judges in the string `text`, each as (its normal form, whether it is
    global): its patterns' matches that are addresses (IPv6 first, then dotted IPv4, then each
    four of a separated run), read in `text` as it is. `scrub` leaves `text` unchanged exactly
    when none of them is secret (`any_secret`): while none is, nothing is replaced, so each
    pattern reads the text as it was. What the archive asks of a string, once per round, before
    it asks for a walk of the record (issue #22)."""
    if "." not in text and ":" not in text and "-" not in text and "_" not in text:
        return ()
    found: list[str] = []
    if text.count(":") >= 2:
        found.extend(match.group(0) for match in _IPV6.finditer(text))
    if _DIGIT.search(text) is not None:
        found.extend(match.group(0) for match in _IPV4.finditer(text))
        for match in _IPV4_SEPARATED.finditer(text):
            numbers = re.split(r"[-_]", match.group(0))
            found.extend(".".join(numbers[i : i + 4]) for i in range(len(numbers) - 3))
    return tuple(address for address in map(_judged_address, found) if address is not None)


def any_secret(addresses: Iterable[tuple[str, bool]], *, allowed: Set[str] = frozenset(), deny: Set[str] = frozenset()) -> bool:
    """Whether `scrub(…, allowed=allowed, deny=deny)` would replace any of `addresses` (found by
    `addresses_in`): as `_is_secret` judges each."""
    allowed, deny = _lists(allowed, deny)
    return any(address in deny or (is_global and address not in allowed) for address, is_global in addresses)


def _judged_address(text: str) -> tuple[str, bool] | None:
    """What `_is_secret` reads of a text: the address's normal form and whether it is global."""
    ip = ip_address(text)
    if ip is None:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
        ip = ip.ipv4_mapped
    return str(ip), ip.is_global


def _lists(allowed: Set[str], deny: Set[str]) -> tuple[set[str], set[str]]:
    """(allowed, deny) as the judgement reads them: normal forms, the denied never allowed."""
    denied = normal_forms(deny)
    return set(allowed) - denied, denied


def normal_forms(addresses: Iterable[str]) -> set[str]:
    """The normal forms of those of `addresses` that are addresses."""
    return {n for a in addresses if (n := normal_form(a)) is not None}


def _is_secret(text: str, allowed: set[str], deny: set[str]) -> bool:
    judged = _judged_address(text)
    if judged is None:
        return False
    address, is_global = judged
    return address in deny or (is_global and address not in allowed)


class LogScrubber(logging.Filter):
    """Scrubs public addresses from log records (message and traceback) before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the formatter's problem
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True

    @classmethod
    def install(cls) -> None:
        """On every handler of the root logger (filters on a handler see all propagated records)."""
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, cls) for f in handler.filters):
                handler.addFilter(cls())
