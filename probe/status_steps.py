"""A target's evidence as steps a person can follow (OONI Explorer's way): DNS → TCP → TLS → HTTP →
the protocol checks, each with its result and what was seen, and the differential that decided
the verdict, all as reasons (probe.status_texts) the page says in the reader's language.

It reads the checks' JSON evidence (the keys the archive and /status.json carry) and their
findings; it decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probe.model import CheckResult, TargetResult, Verdict
from probe.status_texts import REASONS, Param, Reason, as_reason

_MAX_LINES = 6  # per step: a catalog target with many addresses stays readable
_MAX_TEXT = 120  # characters of a text from the network (a redirect, a certificate's issuer)


@dataclass(frozen=True)
class Step:
    check: str
    ok: bool
    failure: str | None
    seen: tuple[Reason, ...] = ()
    decided: Reason | None = None  # set on the step whose failure decided the verdict


@dataclass(frozen=True)
class Explanation:
    """Why a target has its verdict: a short answer, the steps, and the engine's own note."""

    why: tuple[Reason, ...]
    steps: tuple[Step, ...] = ()
    note: tuple[Reason, ...] = ()  # the judge's reasons, clause by clause


def explain(target: TargetResult) -> Explanation:
    verdict = target.verdict
    judged = _judged(target)
    deciding = next((c for c in target.checks if not c.ok), None)
    decided = _decided(target, deciding) if deciding is not None else None
    steps = tuple(
        Step(c.check, c.ok, c.failure, tuple(_seen(c)), decided if c is deciding else None) for c in target.checks
    )
    if verdict == Verdict.OK:
        why: tuple[Reason, ...] = (Reason("why.ok"),)
    elif verdict == Verdict.VANTAGE_OFFLINE:
        why = (Reason("why.offline"),)
    elif deciding is not None and decided is not None:
        failed = Reason("why.failed", {"check": deciding.check, "failure": deciding.failure}) if deciding.failure else Reason("why.failed_plain", {"check": deciding.check})
        why = (failed, decided)
    else:
        why = judged
    return Explanation(why, steps, judged)


def _judged(target: TargetResult) -> tuple[Reason, ...]:
    """The judge's reasons for the verdict, said in the reader's language by their keys (a
    result with its English text only, from an older record, shows that text)."""
    if target.reasons:
        return tuple(as_reason(r) for r in target.reasons)
    return (as_reason(target.reason),) if target.reason else ()


def _decided(target: TargetResult, check: CheckResult) -> Reason:
    """The differential that decided, as a sentence; the judge's own finding when there is none."""
    finding = check.finding
    said = as_reason(finding.reason) if finding is not None and finding.reason else Reason("", {}, target.reason)
    if target.verdict == Verdict.ERROR:
        return Reason("fault.monitor", {}, said.english)
    if finding is None:
        return said
    fault = str(finding.fault)
    if target.verdict == Verdict.DOWN and fault not in ("server", "monitor"):
        # Downgraded by a control that fails the same way (a control vantage, the helper abroad).
        return Reason("diff.control_sees_it", {}, target.reason)
    keys = ([f"diff.{finding.differential}.{fault}"] if finding.differential else []) + [f"{fault}.{target.verdict}", f"fault.{fault}"]
    key = next((k for k in keys if k in REASONS["en"]), "")
    return Reason(key, {}, said.english) if key else said


def _seen(check: CheckResult) -> list[Reason]:
    data = check.as_json()
    reader = _READERS.get(check.check)
    lines = reader(data) if reader is not None else []
    if not lines:
        lines = [Reason("step.works")] if check.ok else ([Reason("step.failure", {"failure": check.failure})] if check.failure else [])
    return lines[:_MAX_LINES]


def _text(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _endpoint(item: Mapping[str, Any]) -> str:
    address = str(item.get("address", ""))
    return f"[{address}]:{item.get('port')}" if ":" in address else f"{address}:{item.get('port')}"


def _outcome(item: Mapping[str, Any], ok: str) -> Reason:
    failure = item.get("failure")
    return Reason("step.failure", {"failure": str(failure)}) if failure else Reason(ok)


def _dns(data: Mapping[str, Any]) -> list[Reason]:
    if data.get("addresses_from") == "pinned":
        return [Reason("dns.pinned", {"addresses": _addresses(data.get("addresses"))})]
    lines = []
    for resolver in data.get("resolvers") or []:
        control = "_control" if resolver.get("control") else ""
        addresses = _addresses(resolver.get("addresses"))
        params: dict[str, Param] = {"resolver": _text(resolver.get("resolver", "")), "addresses": addresses}
        if addresses:
            line = Reason(f"dns.answer{control}", params)
        else:
            line = Reason(f"dns.failed{control}", {**params, "failure": str(resolver.get("failure") or "dns_no_answer")})
        judgement = str(resolver.get("judgement") or "")
        if f"dns.judged.{judgement}" in REASONS["en"]:
            line = Reason(f"dns.judged.{judgement}", {"line": line})
        lines.append(line)
    return lines


def _addresses(value: object) -> list[Param]:
    return [_text(a) for a in (value if isinstance(value, list) else [])[:4]]


def _tcp(data: Mapping[str, Any]) -> list[Reason]:
    lines = []
    for connect in [*(data.get("connects") or []), *(data.get("control_connects") or [])]:
        if connect.get("failure"):
            lines.append(Reason("step.failed_at", {"endpoint": _endpoint(connect), "failure": str(connect["failure"])}))
        else:
            lines.append(Reason("step.connected", {"endpoint": _endpoint(connect), "ms": round(float(connect.get("duration_seconds") or 0) * 1000)}))
    return lines


def _tls(data: Mapping[str, Any]) -> list[Reason]:
    lines = [
        Reason("tls.handshake", {"endpoint": _endpoint(h), "sni": _text(h.get("sni", "")), "result": _outcome(h, "tls.completed")})
        for h in (data.get("handshakes") or [])[:3]
    ]
    certificate = data.get("certificate")
    if isinstance(certificate, Mapping):
        names = [_text(n) for n in (certificate.get("dns_names") or [])[:3]] or [_text(certificate.get("subject", ""))]
        lines.append(Reason("tls.certificate", {"names": names, "issuer": _text(certificate.get("issuer", ""))}))
    decoy = data.get("decoy")
    if isinstance(decoy, Mapping):
        lines.append(Reason("tls.decoy", {"sni": _text(decoy.get("sni", "")), "result": _outcome(decoy, "tls.completed")}))
    return _hellos(data) + lines  # a target with a client: its hello and what was read first


def _hellos(data: Mapping[str, Any]) -> list[Reason]:
    """A target with a `client`: its real client's hello, the matrix, and what the judge read."""
    if not data.get("client"):
        return []
    lines = []
    browser = data.get("browser")
    real = browser.get("handshake") if isinstance(browser, Mapping) else None
    if isinstance(real, Mapping):
        lines.append(Reason("tls.client_hello", {"client": _text(data["client"]), "hello": _text(real.get("hello", "")), "result": _outcome(real, "tls.completed")}))
    if data.get("filtered_fingerprints"):
        lines.append(Reason("tls.filtered", {"hellos": [_text(h) for h in data["filtered_fingerprints"][:6]]}))
    if data.get("keyed_on"):
        lines.append(Reason("tls.keyed_on", {"key": _text(data["keyed_on"])}))
    if data.get("split_evades"):
        lines.append(Reason("tls.split_evades"))
    matrix = [m for m in data.get("matrix") or [] if isinstance(m, Mapping)]
    passed = [_hello_name(m) for m in matrix if not m.get("failure")]
    if matrix:  # the detail last: the page shows a few lines per step
        lines.append(Reason("tls.matrix", {"passed": passed[:6] or ["—"], "cut": [_hello_name(m) for m in matrix if m.get("failure")][:6] or ["—"]}))
    return lines


def _hello_name(attempt: Mapping[str, Any]) -> str:
    name = _text(attempt.get("hello", ""))
    return name + (" (split)" if attempt.get("split") else "") + (" +X25519MLKEM768" if attempt.get("pq") else "")


def _http(data: Mapping[str, Any]) -> list[Reason]:
    url = _text(data.get("url", ""))
    lines = []
    for redirect in (data.get("redirects") or [])[:3]:
        lines.append(Reason("http.redirect", {"status": str(redirect.get("status_code")), "location": _text(redirect.get("location", ""))}))
    if data.get("status_code") is not None:
        lines.insert(0, Reason("http.answer", {"url": url, "status": str(data["status_code"])}))
    elif data.get("failure"):
        lines.insert(0, Reason("http.no_answer", {"url": url, "failure": str(data["failure"])}))
    blockpage = data.get("blockpage")
    if isinstance(blockpage, Mapping):
        lines.append(Reason("http.blockpage", {"kind": _text(blockpage.get("kind", "")), "match": _text(blockpage.get("match", ""))}))
    for key, template in (("decoy", "http.decoy"), ("same_name", "http.same_name")):
        probe = data.get(key)
        if isinstance(probe, Mapping):
            name = probe.get("sni") or probe.get("host") or ""
            lines.append(Reason(template, {"name": _text(name), "result": _outcome(probe, "http.answered")}))
    return lines


def _mtproto(data: Mapping[str, Any]) -> list[Reason]:
    works = data.get("works") or {}
    return [Reason("mtproto.framing", {"framing": _text(kind), "result": Reason("step.works" if ok else "step.fails")}) for kind, ok in works.items()]


def _whatsapp_chat(data: Mapping[str, Any]) -> list[Reason]:
    lines = []
    for host in data.get("hosts") or []:
        if host.get("failure"):
            lines.append(Reason("step.failed_at", {"endpoint": _text(host.get("host", "")), "failure": str(host["failure"])}))
        else:
            lines.append(Reason("chat.host_ok", {"host": _text(host.get("host", ""))}))
    return lines


_READERS = {"dns": _dns, "tcp": _tcp, "tls": _tls, "http": _http, "mtproto": _mtproto, "whatsapp_chat": _whatsapp_chat}
