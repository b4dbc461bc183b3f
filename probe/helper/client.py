"""The monitor's side of a helper: signed API calls, and the per-round hook that asks control
helpers to measure the round's targets and turns a block they see too into `down`.

The checks that measure through a helper (`udp_stream`, `circumvention`) find the round's
helpers with `round_helpers()`: the hook sets them for the duration of the round's measurement.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hmac
import json
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from probe import failures
from probe._httpcore import httpx
from probe.config import Config, HelperRef, Service, Vantage, split_host_port
from probe.helper import wire
from probe.helper.auth import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    answer_signature,
    load_secret,
    sign_request,
)
from probe.model import CheckResult, Fault, Finding, TargetResult, Verdict
from probe.net import Route

log = logging.getLogger(__name__)
_HELPERS: contextvars.ContextVar[tuple[HelperRef, ...]] = contextvars.ContextVar("msgreach_helpers", default=())
HELPER_CHECK = "helper"  # the check name under which a helper's result of a target is kept
HELPER_ERROR = "helper_error"  # the helper could not say anything about the target


class HelperError(Exception):
    """The helper could not be asked, refused, or answered something unsigned or malformed."""


def round_helpers() -> tuple[HelperRef, ...]:
    return _HELPERS.get()


def no_helper(check: str, started: float) -> CheckResult:
    """A helper check's result in a round without a helper: the monitor's own configuration."""
    finding = Finding(Verdict.ERROR, Fault.MONITOR, "", "no helper is configured for this round (`helpers:`)")
    return CheckResult(check, False, failures.NO_HELPER, time.monotonic() - started, finding, {})


def choose(name: str | None) -> HelperRef | None:
    helpers = round_helpers()
    if name is None:
        return helpers[0] if helpers else None
    return next((h for h in helpers if h.name == name), None)


class HelperClient:
    def __init__(self, ref: HelperRef, route: Route, timeout: float = 10.0):
        self.ref = ref
        self.route = route
        self.timeout = timeout
        self.secret = load_secret(ref.secret_file)
        parts = urlsplit(ref.url)
        self.host = parts.hostname or ""
        self._base_path = parts.path.rstrip("/")

    async def address(self) -> str:
        """The helper's address (its URL's host, resolved when it is a name) for UDP and probes."""
        infos = await asyncio.get_running_loop().getaddrinfo(self.host, None, type=socket.SOCK_STREAM)
        if not infos:
            raise HelperError(f"{self.host} did not resolve")
        return str(infos[0][4][0])

    async def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        full = self._base_path + path
        headers = {"Content-Type": "application/json", **sign_request(self.secret, "POST", full, body)}
        local = split_host_port(self.route.source_address, 0)[0] if self.route.source_address else None
        transport = httpx.AsyncHTTPTransport(local_address=local, retries=0, verify=_tls_context())
        try:
            async with httpx.AsyncClient(transport=transport, timeout=self.timeout, trust_env=False) as client:
                response = await client.post(self.ref.url + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise HelperError(f"helper {self.ref.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise HelperError(f"helper {self.ref.name} refused: HTTP {response.status_code} {response.text.strip()[:100]}")
        expected = answer_signature(self.secret, headers[NONCE_HEADER], 200, response.content)
        if not hmac.compare_digest(expected, response.headers.get(SIGNATURE_HEADER, "")):
            raise HelperError(f"helper {self.ref.name}: the answer is not signed with our secret")
        try:
            answer = json.loads(response.content)
        except ValueError as exc:
            raise HelperError(f"helper {self.ref.name}: the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise HelperError(f"helper {self.ref.name}: unexpected answer")
        return answer


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying context for every call (building one loads the trust store: ~20 ms of CPU)."""
    return ssl.create_default_context()


# --- the round hook ---------------------------------------------------------------------------------


@dataclass
class HelperEvidence:
    """What a control helper saw of the same target in the same round (kept beside the vantage's)."""

    helper: str
    verdict: str | None = None
    reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    age_seconds: float | None = None
    error: str | None = None


async def with_helpers(
    config: Config, vantage: Vantage, services: list[Service], measure: Callable[[], Awaitable[list[list[Any]]]]
) -> list[list[Any]]:
    """Run the round's service measurements (`measure`, one list of TargetResults per service)
    with the configured helpers: checks can use them, and each control helper measures the same
    targets meanwhile. A target blocked here that fails the same check there becomes `down`."""
    helpers = tuple(getattr(config, "helpers", ()) or ())
    if not helpers:
        return await measure()
    token = _HELPERS.set(helpers)
    try:
        route = Route.of(vantage)
        names = [(s.name, t.name) for s in services for t in s.targets]
        timeout = max(min(config.schedule.deadline, 120.0), 1.0)
        asks = [asyncio.create_task(_ask(h, route, names, timeout)) for h in helpers if h.control]
        per_service = await measure()
    finally:
        _HELPERS.reset(token)
    answers = await asyncio.gather(*asks)
    return [[_confirm(s.name, t, answers) for t in targets] for s, targets in zip(services, per_service)]


async def _ask(ref: HelperRef, route: Route, names: list[tuple[str, str]], timeout: float) -> tuple[str, dict[tuple[str, str], dict[str, Any]] | str]:
    try:
        client = HelperClient(ref, route, timeout)
        answer = await client.post(wire.API_MEASURE, {"targets": [{"service": s, "target": t} for s, t in names]})
        found = {}
        for item in answer.get("targets", []):
            if isinstance(item, dict) and isinstance(item.get("service"), str) and isinstance(item.get("target"), str):
                found[(item["service"], item["target"])] = item
        return ref.name, found
    except Exception as exc:  # noqa: BLE001 - a helper's trouble never ends the round
        return ref.name, f"{type(exc).__name__}: {exc}"


def _confirm(service: str, result: Any, answers: list[tuple[str, Any]]) -> Any:
    from probe.judge import (
        confirm_down_by_control,  # late: the judge imports the checks' types
    )
    for helper, found in answers:
        if isinstance(found, str):
            evidence = HelperEvidence(helper, error=found)
        else:
            item = found.get((service, result.target))
            if item is None or "error" in item:
                evidence = HelperEvidence(helper, error=(item or {}).get("error", "no answer for this target"))
            elif item.get("helper_vantage") not in (None, "ok", "allowlist"):
                evidence = HelperEvidence(helper, item.get("verdict"), item.get("reason", ""), item.get("checks", []), item.get("age_seconds"),
                                          error=f"the helper's own controls failed ({item.get('helper_vantage')}): not compared")
            else:
                theirs = _target_from_json(service, item)
                result = confirm_down_by_control(result, theirs, source=f"helper {helper}")
                evidence = HelperEvidence(helper, str(theirs.verdict), theirs.reason, item.get("checks", []), item.get("age_seconds"))
        failed = next((c for c in evidence.checks if isinstance(c, dict) and not c.get("ok")), None)
        if evidence.verdict == "ok":
            failure = None
        elif evidence.error is not None:
            failure = HELPER_ERROR  # the text is in `error`
        else:
            failure = (failed or {}).get("failure") or str(evidence.verdict)
        result.checks.append(CheckResult(HELPER_CHECK, evidence.verdict == "ok", failure, 0.0, None, evidence))
    return result


def _target_from_json(service: str, item: dict[str, Any]) -> TargetResult:
    checks = []
    for data in item.get("checks", []):
        if not isinstance(data, dict):
            continue
        rest = {k: v for k, v in data.items() if k not in ("check", "ok", "failure", "duration_seconds", "finding")}
        finding = None
        if isinstance(data.get("finding"), dict):
            raw = data["finding"]
            try:
                finding = Finding(Verdict(raw["technique"]), Fault(raw["fault"]), raw.get("differential", ""), raw.get("reason", ""))
            except (KeyError, ValueError):
                finding = None
        checks.append(CheckResult(str(data.get("check")), bool(data.get("ok")), data.get("failure"), float(data.get("duration_seconds") or 0), finding, rest))
    try:
        verdict = Verdict(item.get("verdict"))
    except ValueError:
        verdict = Verdict.ERROR
    return TargetResult(service, str(item.get("target")), str(item.get("host", "")), verdict, checks, str(item.get("reason", "")))
