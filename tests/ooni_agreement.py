"""Does an OONI export say what the archive says? Shared by tests/test_evidence_ooni.py and the
lab's tests/lab/test_ooni_export.py.

Every exported line is loaded with OONI's own parser (`oonidata.dataclient.load_measurement`,
the `oonidata` package from PyPI), and the nettest's flags, read back from the parsed object, are
compared with the verdict the archive recorded for that target, by the rule docs/deploy.md
("OONI export") states: `ok` -> `ok`/no failure; a block -> `blocked`/true; `down` and `error`
-> no status (null), the failure kept; `telegram_tcp_blocking` only for `ip_blocked`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from msgreach_helpers import require_tool

from probe.model import BLOCKS

NETTEST_CLASSES = {
    "telegram": "Telegram",
    "whatsapp": "Whatsapp",
    "signal": "Signal",
    "stunreachability": "StunReachability",
    "web_connectivity": "WebConnectivity",
    "urlgetter": "UrlGetter",
}
STATUSES = {  # status flag -> its failure flag
    "telegram_web_status": "telegram_web_failure",
    "whatsapp_endpoints_status": None,
    "registration_server_status": "registration_server_failure",
    "whatsapp_web_status": "whatsapp_web_failure",
    "signal_backend_status": "signal_backend_failure",
}


def load_measurement() -> Any:
    """OONI's parser; skipped without it, but a failure under CI (.ci/run installs it)."""
    try:
        from oonidata.dataclient import load_measurement as loader
    except ImportError:
        loader = None
    return require_tool(loader, "oonidata (pip install --no-deps oonidata==0.3.0, see .ci/run)")


def verdict_key(item: dict[str, Any]) -> tuple[str, str, str, str]:
    """What ties an export line to its archive record: vantage, service, target, round start."""
    if "annotations" in item:
        notes = item["annotations"]
        return notes["msgreach_vantage"], notes["msgreach_service"], notes["msgreach_target"], item["measurement_start_time"]
    start = item["measurement_start_time"]
    return item["vantage"], item["service"], item["target"], start


def disagreements(lines: Iterable[str], records: Iterable[dict[str, Any]]) -> tuple[list[str], list[tuple[str, str]]]:
    """(What disagrees, and the (test_name, verdict) pairs seen) over every exported line."""
    load = load_measurement()
    verdicts = {verdict_key(r): str(r["verdict"]) for r in records}
    problems: list[str] = []
    seen: list[tuple[str, str]] = []
    for line in lines:
        raw = json.loads(line)
        parsed = load(raw)  # raises on a measurement OONI's parser cannot read
        name = raw["test_name"]
        where = f"{name} {raw['input']}"
        if type(parsed).__name__ != NETTEST_CLASSES[name]:
            problems.append(f"{where}: parsed as {type(parsed).__name__}")
        verdict = verdicts[verdict_key(raw)]
        seen.append((name, verdict))
        problems += [f"{where} ({verdict}): {p}" for p in _flag_problems(name, raw["test_keys"], parsed.test_keys, verdict)]
    return problems, seen


def _flag_problems(name: str, raw: dict[str, Any], keys: Any, verdict: str) -> list[str]:
    ok, blocked = verdict == "ok", verdict in BLOCKS
    judged = ok or blocked or verdict == "down"
    problems = []

    def expect(flag: str, want: object) -> None:
        got = getattr(keys, flag)
        if got != want:
            problems.append(f"{flag} is {got!r}, not {want!r}")

    for status, failure in STATUSES.items():
        if status in raw:
            expect(status, "ok" if ok else ("blocked" if blocked else None))
            if failure is not None and (getattr(keys, failure) is None) != ok:
                problems.append(f"{failure} is {getattr(keys, failure)!r}")
    if "telegram_tcp_blocking" in raw:
        expect("telegram_tcp_blocking", (verdict == "ip_blocked") if judged else None)
        expect("telegram_http_blocking", blocked if judged else None)
    if name == "whatsapp" and "whatsapp_endpoints_status" in raw and bool(keys.whatsapp_endpoints_blocked) != blocked:
        problems.append(f"whatsapp_endpoints_blocked is {keys.whatsapp_endpoints_blocked!r}")
    if name == "web_connectivity":
        expect("accessible", True if ok else (False if judged else None))
        if bool(keys.blocking) != blocked or (keys.blocking is None) == judged:
            problems.append(f"blocking is {keys.blocking!r}")
    if name in ("stunreachability", "urlgetter") and (keys.failure is None) != ok:
        problems.append(f"failure is {keys.failure!r}")
    return problems
