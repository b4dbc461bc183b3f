"""The human status page: each service's verdict per vantage, and the evidence behind it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape

from probe import __version__
from probe.metrics import State
from probe.model import TargetResult, Verdict

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.ok{background:#d8f5d8}.bad{background:#f8d0d0}.meh{background:#f5ecc8}
details pre{white-space:pre-wrap;font-size:.8em;max-width:60em}
"""


def _css(verdict: str) -> str:
    if verdict == Verdict.OK:
        return "ok"
    if verdict in ("down", "vantage_offline", "partial"):
        return "meh"
    return "bad"


def _target_row(target: TargetResult) -> str:
    evidence = json.dumps([c.as_json() for c in target.checks], indent=1, ensure_ascii=False)
    return (
        f"<tr><td>{escape(target.target)}</td><td>{escape(target.host)}</td>"
        f"<td class='{_css(target.verdict)}'>{escape(target.verdict)}</td><td>{escape(target.reason)}"
        f"<details><summary>evidence</summary><pre>{escape(evidence)}</pre></details></td></tr>"
    )


def render(state: State, healthy: bool, health_reason: str) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>msgreach</title>",
        "<meta http-equiv='refresh' content='30'>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>msgreach {escape(__version__)}</h1>",
        f"<p>Health: <b>{'ok' if healthy else escape(health_reason)}</b>. "
        "Machine-readable: <a href='/metrics'>/metrics</a>, <a href='/status.json'>/status.json</a>.</p>",
    ]
    if not state.latest:
        parts.append("<p>No round has finished yet.</p>")
    for name, result in state.latest.items():
        when = datetime.fromtimestamp(result.started_at, timezone.utc).isoformat(timespec="seconds")
        parts.append(f"<h2>Vantage {escape(name)}: <span class='{_css(result.verdict)}'>{escape(result.verdict)}</span></h2>")
        parts.append(f"<p>Round started {escape(when)}, took {result.duration_seconds:.1f} s. Healthy resolvers: {escape(', '.join(result.healthy_resolvers) or 'none')}.</p>")
        parts.append("<table><tr><th>service</th><th>verdict</th><th>targets ok</th></tr>")
        for service in result.services:
            ok = sum(t.verdict == Verdict.OK for t in service.targets)
            parts.append(f"<tr><td><a href='#{escape(name)}-{escape(service.service)}'>{escape(service.service)}</a></td><td class='{_css(service.verdict)}'>{escape(service.verdict)}</td><td>{ok}/{len(service.targets)}</td></tr>")
        parts.append("</table>")
        sections = [("controls", result.controls)] + [(s.service, s.targets) for s in result.services]
        for title, targets in sections:
            parts.append(f"<h3 id='{escape(name)}-{escape(title)}'>{escape(title)}</h3>")
            parts.append("<table><tr><th>target</th><th>host</th><th>verdict</th><th>why</th></tr>")
            parts.extend(_target_row(t) for t in targets)
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
