"""The status page for people: a banner that says what is blocked now, how and since when; per
measuring point, why it is offline (or under an allowlist) and what to check; each service's
state in words, since when, how much of the chosen period (24 hours, 7, 30 or 90 days) it was
reachable, as bars, and its changes; each server checked, with the steps that decided its
verdict (DNS → TCP → TLS → HTTP → protocol checks) and a link to its JSON.

One self-contained HTML document (inline CSS and script, no external resource), English or
Russian, readable on a phone. Everything it says comes from reason templates
(probe/status_texts.py); times are shown in the reader's zone by the script (UTC without it, and
on hover). Every name from the config or the network is escaped; no address of the vantage
appears (the evidence is scrubbed by the engine, and the page shows nothing else about the
vantage but its name).

Other parts of msgreach add lines at the top through NOTICE_SOURCES (a function from the state
to `Notice`s): the page renders them as a list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

from probe import __version__
from probe.history import VIEW_NAMES, History, Summary
from probe.metrics import State
from probe.model import (
    BLOCKS,
    SERVICE_VERDICTS,
    VANTAGE_VERDICTS,
    HelperLine,
    ServiceResult,
    TargetResult,
    VantageResult,
    Verdict,
    is_block,
    kilobytes,
    severity,
)
from probe.status_assets import SCRIPT, STYLE
from probe.status_causes import Cause, cause_of, classes_of
from probe.status_steps import Step, explain
from probe.status_texts import (
    CHECKS,
    HELPER_LINE,
    MEANINGS,
    NAMES,
    PHRASES,
    Moment,
    Param,
    Reason,
    Said,
    failure_words,
    helper_line_words,
    join_names,
    say,
)

DEFAULT_VIEW = "24h"
_CURRENT = " aria-current='true'"

# Distinct colours per kind of state (the legend explains each verdict); text colour on the badge.
_BLOCK_COLOUR = "#c62828"
COLOURS: dict[str, tuple[str, str]] = {
    "ok": ("#1b7f3b", "#fff"),
    **{str(v): (_BLOCK_COLOUR, "#fff") for v in SERVICE_VERDICTS if v in BLOCKS},  # in order: the page's bytes the same in every process
    "partial": ("#f29900", "#000"),
    "down": ("#795548", "#fff"),
    "error": ("#3f51b5", "#fff"),
    "vantage_offline": ("#263238", "#fff"),
    "allowlist": ("#8e24aa", "#fff"),
    "none": ("#d0d0d0", "#000"),
}
LEGEND_ORDER: tuple[str, ...] = ("ok", *(str(v) for v in SERVICE_VERDICTS if v in BLOCKS), "partial", "down", "error", "vantage_offline", "allowlist", "none")


@dataclass(frozen=True)
class Notice:
    """A line above everything: `problem` (red) or `info` (amber)."""

    level: str
    reason: Reason


NoticeSource = Callable[[State], Iterable[Notice]]


def _upload_notices(state: State) -> list[Notice]:
    """Reports to the centre held, dropped by the agent, or not known (probe/upload.py); nothing
    while they flow."""
    status = state.upload
    if status is None:
        return []
    found = []
    if status.state == "held":
        why = Reason(f"upload.{status.why or 'line_stalls'}")
        found.append(Notice("info", Reason("notice.upload_held", {"minutes": max(1, int(status.lag_seconds // 60)), "why": why})))
    elif status.state == "unknown":
        found.append(Notice("info", Reason("notice.upload_unknown", {"detail": status.failure or ""})))
    if status.failed_samples:
        found.append(Notice("problem", Reason("notice.upload_lost", {"count": status.failed_samples})))
    return found


NOTICE_SOURCES: list[NoticeSource] = [_upload_notices]  # other lines above everything: reports to the centre


def notices(state: State, healthy: bool, health_reason: str) -> list[Notice]:
    found = [] if healthy else [Notice("problem", Reason("notice.monitor_problem", {"reason": health_reason}))]
    for source in NOTICE_SOURCES:
        found.extend(source(state))
    return found


def choose_view(query: str) -> str:
    """`?view=24h|7d|30d|90d` (default 24h)."""
    value = parse_qs(query).get("view", [DEFAULT_VIEW])[0]
    return value if value in VIEW_NAMES else DEFAULT_VIEW


def _colour_css() -> str:
    return "\n".join(f".v-{name}{{background:{bg};color:{fg}}}" for name, (bg, fg) in COLOURS.items())


def _time(at: float) -> str:
    """A time: UTC in the document, the reader's zone once the script ran (UTC in its title)."""
    moment = Moment(at)
    iso = moment.utc().replace(" UTC", "Z").replace(" ", "T")
    return f"<time datetime='{iso}' data-t='{at:.0f}' title='{moment.utc()}'>{moment.utc()}</time>"


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


class _Page:
    """One rendering: the language, the view, and how things are said in them."""

    def __init__(self, lang: str, view: str, titles: dict[str, str]):
        self.lang = lang
        self.view = view
        self.titles = titles
        self.names = NAMES[lang]
        self.meanings = MEANINGS[lang]
        self.phrases = PHRASES[lang]

    def text(self, key: str) -> str:
        return escape(self.phrases[key])

    def said(self, reason: Reason | str) -> str:
        return self.html(say(reason, self.lang))

    def html(self, said: Said) -> str:
        inner = "".join(_time(p.at) if isinstance(p, Moment) else escape(p) for p in said.parts)
        if said.lang != self.lang:  # the English fallback: marked, and read as English
            return f"<span lang='{said.lang}' class='untranslated' title='{self.text('untranslated')}'>{inner}</span>"
        return inner

    def clauses(self, reasons: Iterable[Reason]) -> str:
        """The judge's clauses, joined as it joins them (`; `, a parenthesis after a space)."""
        out = ""
        for reason in reasons:
            said = say(reason, self.lang)
            html = self.html(said)
            if out:
                out += " " if said.text().startswith("(") else "; "
            out += html
        return out

    def title(self, service: str) -> str:
        return self.titles.get(service, service)

    def badge(self, verdict: str | None) -> str:
        key = verdict if verdict in COLOURS else "none"
        code = f"<code>{escape(verdict)}</code>" if verdict else ""
        return f"<span class='badge v-{key}' title='{escape(self.meanings.get(key, ''))}'>{escape(self.names.get(key, key))}{code}</span>"

    def since(self, verdict: str | None, since: float | None) -> str:
        if since is None or verdict is None:
            return ""
        key = "ok_since" if verdict == "ok" else ("blocked_since" if is_block(verdict) else "state_since")
        return self.said(Reason(key, {"time": Moment(since)}))

    def share(self, summary: Summary | None) -> str:
        if summary is None or summary.verdict is None:
            return self.text("no_history")
        period = Reason(f"period_{self.view}")
        share = summary.shares.get(self.view)
        if share is None:
            return self.said(Reason("not_measured", {"period": period}))
        return self.said(Reason("share", {"share": _percent(share), "period": period}))

    def bars(self, summary: Summary | None, small: bool = False) -> str:
        """A strip: each bar's class says its worst state, `data-p` the share reachable. The
        strip carries its start and the bars' width: the script makes each bar's title (its
        period in the reader's zone and in UTC, the share, the state) from them, since 24 to 45
        bars per strip and per server would otherwise be most of the page."""
        bars = summary.bars.get(self.view, []) if summary is not None else []
        cells = []
        for bar in bars:
            key = bar.worst if bar.worst in COLOURS else "none"
            share = "" if bar.worst is None or bar.ok_share is None else f" data-p='{bar.ok_share * 100:.0f}'"
            cells.append(f"<i class='bar v-{key}'{share}></i>")
        klass = f"bars b{self.view}" + (" small" if small else "")
        timing = f" data-s='{bars[0].start:.0f}' data-w='{bars[0].end - bars[0].start:.0f}'" if bars else ""
        return f"<div class='{klass}'{timing} role='img' aria-label='{self.text('strip_' + self.view)}'>{''.join(cells)}</div>"

    def changes(self, summary: Summary | None) -> str:
        items = [] if summary is None else summary.changes
        rows = "".join(f"<li>{_time(at)} {self.badge(verdict)}</li>" for at, verdict in items)
        return f"<ol class='changes'>{rows}</ol>"


def render(
    state: State,
    healthy: bool,
    health_reason: str,
    *,
    history: History | None = None,
    lang: str = "en",
    view: str = DEFAULT_VIEW,
    now: float | None = None,
) -> str:
    now = time.time() if now is None else now
    titles = {s.name: s.title or s.name for s in state.config.services}
    page = _Page(lang, view if view in VIEW_NAMES else DEFAULT_VIEW, titles)
    texts = {"lang": lang, "updated": page.phrases["updated"], "reachable": page.phrases["reachable"], "names": page.names}
    parts = [
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<link rel='icon' href='data:,'>",  # no favicon request
        f"<title>msgreach — {page.text('title')}</title>",
        f"<style>{STYLE}\n{_colour_css()}</style></head><body>",
        "<header>",
        _languages(page),
        f"<h1>{page.text('title')}</h1>",
        f"<p id='updated' class='meta'>{page.said(Reason('updated', {'time': Moment(now)}))}</p>",
        f"<p class='times'>{page.text('times')}</p>",
        _notices(page, notices(state, healthy, health_reason)),
        "</header><main id='main'>",
        _banner(page, state, history),
        _views(page),
    ]
    classes = classes_of(state.config.controls)
    for result in state.latest.values():
        parts.append(_vantage(page, history, result, classes, now))
    parts.append(_legend(page))
    parts.append("</main>")
    parts.append(
        f"<footer>{page.text('machine')} <a href='/metrics'>/metrics</a>, <a href='/status.json'>/status.json</a>. "
        f"msgreach {escape(__version__)}</footer>"
    )
    parts.append(f"<script type='application/json' id='texts'>{_json_for_script(texts)}</script>")
    parts.append(f"<script>{SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _query(page: _Page, **changes: str) -> str:
    return "?" + urlencode({"lang": page.lang, "view": page.view, **changes})


def _languages(page: _Page) -> str:
    links = "".join(
        f"<a href='{_query(page, lang=code)}' hreflang='{code}'{_CURRENT if code == page.lang else ''}>{label}</a>"
        for code, label in (("en", "English"), ("ru", "Русский"))
    )
    return f"<nav class='lang' id='langs' aria-label='{page.text('language')}'>{links}</nav>"


def _views(page: _Page) -> str:
    links = "".join(
        f"<a href='{_query(page, view=name)}' data-view='{name}'{_CURRENT if name == page.view else ''}>{page.text('view_' + name)}</a>"
        for name in VIEW_NAMES
    )
    return f"<nav class='views' aria-label='{page.text('view')}'>{page.text('view')}: {links}</nav>"


def _notices(page: _Page, found: list[Notice]) -> str:
    items = "".join(f"<li class='{escape(n.level)}'>{page.said(n.reason)}</li>" for n in found)
    return f"<ul id='notices'>{items}</ul>"


# --- the banner: what is blocked now, how, since when ---------------------------------------------


def _banner(page: _Page, state: State, history: History | None) -> str:
    if not state.latest:
        return f"<section id='banner' class='b-none'><p>{page.said(Reason('banner.no_round'))}</p></section>"
    classes = classes_of(state.config.controls)
    several = len(state.latest) > 1
    kinds: list[str] = []
    blocks: list[str] = []
    for name, result in state.latest.items():
        kind, html = _banner_of(page, history, result, classes)
        kinds.append(kind)
        who = f"<p class='who'>{escape(page.phrases['vantage'])} {escape(name)}</p>" if several else ""
        blocks.append(f"<div class='b-vantage b-{kind}'>{who}{html}</div>")
    kind = next((k for k in ("block", "offline", "allowlist") if k in kinds), "ok")
    return f"<section id='banner' class='b-{kind}' aria-label='{page.text('now')}'>{''.join(blocks)}</section>"


def _banner_of(page: _Page, history: History | None, result: VantageResult, classes: dict[str, str]) -> tuple[str, str]:
    """The kind of news (`block`, `offline`, `allowlist`, `ok`) and its paragraphs."""
    since = history.since(result.vantage) if history is not None else None
    verdict = str(result.verdict)
    if verdict == str(Verdict.VANTAGE_OFFLINE):
        cause = cause_of(result, classes)
        cause_reason = cause.reason if cause is not None else Reason("cause.unknown")
        params: dict[str, Param] = {"cause": cause_reason}
        if since:
            params["time"] = Moment(since)
        html = f"<p>{page.said(Reason('banner.offline' if since else 'banner.offline_now', params))}</p>"
        if cause is not None:
            html += f"<p><strong>{page.text('what_to_check')}:</strong> {page.said(cause.advice)}</p>"
        return "offline", html
    html = ""
    if verdict == "allowlist":
        html += f"<p>{page.said(Reason('banner.allowlist', {'time': Moment(since if since else result.started_at)}))}</p>"
    blocked = sorted((s for s in result.services if is_block(str(s.verdict))), key=lambda s: severity(_how(s)))  # worst technique first
    if blocked:
        items = "".join(f"<li>{page.said(_blocked_item(page, history, result.vantage, s))}</li>" for s in blocked)
        html += f"<p class='headline'>{page.said(Reason('banner.blocked'))}</p><ul>{items}</ul>"
    else:
        working = [page.title(s.service) for s in result.services if s.verdict == Verdict.OK]
        reason = Reason("banner.works", {"services": join_names(working, page.lang)}) if working else Reason("banner.none_measured")
        html += f"<p class='headline'>{page.said(reason)}</p>"
    for verdict_name, key in ((Verdict.DOWN, "banner.down"), (Verdict.ERROR, "banner.error")):
        names = [page.title(s.service) for s in result.services if s.verdict == verdict_name]
        if names:
            html += f"<p>{page.said(Reason(key, {'services': join_names(names, page.lang)}))}</p>"
    return ("block" if blocked else ("allowlist" if verdict == "allowlist" else "ok")), html


def _how(service: ServiceResult) -> str:
    """The technique a blocked service meets: its own verdict, or a partial one's worst target's."""
    verdict = str(service.verdict)
    if verdict != str(Verdict.PARTIAL):
        return verdict
    return min((str(t.verdict) for t in service.targets if is_block(str(t.verdict))), key=severity, default=verdict)


def _blocked_item(page: _Page, history: History | None, vantage: str, service: ServiceResult) -> Reason:
    key = "banner.partial_item" if service.verdict == Verdict.PARTIAL else "banner.blocked_item"
    verdict = _how(service)
    since = history.since(vantage, service.service) if history is not None else None
    params: dict[str, Param] = {"service": page.title(service.service), "verdict": verdict}
    if since is None:
        return Reason(key + "_now", params)
    return Reason(key, {**params, "time": Moment(since)})


# --- a measuring point, its services and their servers ------------------------------------------


def _summary(history: History | None, vantage: str, service: str = "", target: str = "", now: float | None = None) -> Summary | None:
    return history.summary(vantage, service, target, now=now) if history is not None else None


def _vantage(page: _Page, history: History | None, result: VantageResult, classes: dict[str, str], now: float) -> str:
    name = result.vantage
    verdict = str(result.verdict)
    summary = _summary(history, name, now=now)
    parts = [
        f"<section class='vantage' data-k='{escape(_key(name))}'>",
        f"<h2>{escape(page.phrases['vantage'])} {escape(name)} {page.badge(verdict)}</h2>",
        f"<p class='explain'>{escape(page.meanings.get(verdict, ''))}</p>",
        *_helper_lines(page.lang, result.helpers),
    ]
    cause = cause_of(result, classes)
    if cause is not None:
        parts.append(_cause(page, cause))
    parts.append(f"<p class='meta'>{page.since(verdict, summary.since if summary else None)}</p>")
    last = Reason("last_round", {"time": Moment(result.started_at), "seconds": f"{result.duration_seconds:.1f}"})
    parts.append(f"<p class='meta'>{page.said(last)}</p>")
    for service in result.services:
        parts.append(_service(page, history, name, service, now))
    controls = "".join(_target(page, None, name, "controls", t, now) for t in result.controls)
    parts.append(f"<details data-d='{escape(_key(name, 'controls'))}'><summary>{page.text('controls')}</summary>{controls}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _cause(page: _Page, cause: Cause) -> str:
    sites = "".join(f"<li>{page.said(site)}</li>" for site in cause.sites)
    return (
        f"<div class='cause' data-cause='{escape(cause.kind)}'><p>{page.said(cause.reason)}</p>"
        + "".join(f"<p class='keyed'>{page.said(keyed)}</p>" for keyed in cause.keyed)
        + f"<p><strong>{page.text('what_to_check')}:</strong> {page.said(cause.advice)}</p>"
        f"{f'<ul>{sites}</ul>' if sites else ''}</div>"
    )


def _helper_lines(lang: str, lines: list[HelperLine]) -> list[str]:
    """One line per helper abroad the round used (issue #18): working, or how its line failed."""
    words = HELPER_LINE[lang]
    out = []
    for line in lines:
        if line.last_failure is None:
            state = words["up"].format(exchanges=line.exchanges, kb=kilobytes(line.largest_sent_bytes + line.largest_received_bytes))
        else:
            state = helper_line_words(lang, line.last_failure)
        klass = "meta" if line.up else "meta problem"
        out.append(f"<p class='{klass}' data-f='helper'>{escape(words['title'].format(helper=line.helper))}: {escape(state)}</p>")
    return out


def _service(page: _Page, history: History | None, vantage: str, service: ServiceResult, now: float) -> str:
    verdict = str(service.verdict)
    summary = _summary(history, vantage, service.service, now=now)
    key = _key(vantage, service.service)
    targets = "".join(_target(page, history, vantage, service.service, t, now) for t in service.targets)
    return "\n".join([
        f"<article class='service' id='{escape(vantage)}-{escape(service.service)}' data-k='{escape(key)}'>",
        f"<h3>{escape(page.title(service.service))} {page.badge(verdict)}</h3>",
        f"<p class='explain'>{escape(page.meanings.get(verdict, ''))}</p>",
        _targets_down(page, service),
        f"<p class='since'>{page.since(verdict, summary.since if summary else None)}</p>",
        f"<p class='share'>{page.share(summary)}</p>",
        f"<div class='strip-label'>{page.text('strip_' + page.view)}</div>{page.bars(summary)}",
        f"<details data-d='{escape(_key(vantage, service.service, '', 'targets'))}'><summary>{page.text('targets')}</summary>{targets}</details>",
        f"<details data-d='{escape(_key(vantage, service.service, '', 'changes'))}'><summary>{page.text('changes')}</summary>{page.changes(summary)}</details>",
        "</article>",
    ])


def _targets_down(page: _Page, service: ServiceResult) -> str:
    """How many of the service's targets are down (an `ok` service may have some: an outage of
    part of a service is not a block); nothing when none is."""
    down = service.targets_down
    if not down:
        return ""
    return f"<p class='down' data-f='down'>{page.said(Reason('targets_down', {'down': down, 'total': len(service.targets)}))}</p>"


def _target(page: _Page, history: History | None, vantage: str, service: str, target: TargetResult, now: float) -> str:
    verdict = str(target.verdict)
    summary = _summary(history, vantage, service, target.target, now) if service != "controls" else None
    explanation = explain(target)
    why = page.clauses(explanation.why) if explanation.why == explanation.note else " ".join(page.said(r) for r in explanation.why)
    link = "/status.json?" + urlencode({"vantage": vantage, "service": service, "target": target.target})
    note = f"<p class='note'>{page.text('engine_says')}: {page.clauses(explanation.note)}</p>" if explanation.note else ""
    key = _key(vantage, service, target.target)
    return (
        f"<div class='target' data-k='{escape(key)}'>"
        f"<div class='t-head'><strong>{escape(target.target)}</strong> <small>{escape(target.host)}</small> {page.badge(verdict)}"
        f" <small class='since'>{page.since(verdict, summary.since if summary else None)}</small></div>"
        f"{page.bars(summary, small=True) if summary is not None else ''}"
        f"<p class='why'>{why}</p>"
        f"<details data-d='{escape(_key(vantage, service, target.target, 'steps'))}'><summary>{page.text('steps')}</summary>"
        f"{_steps(page, explanation.steps)}{note}<p><a href='{escape(link)}'>{page.text('json')}</a></p></details>"
        "</div>"
    )


def _steps(page: _Page, steps: tuple[Step, ...]) -> str:
    rows = []
    for step in steps:
        if step.ok:
            result = f"<span class='ok'>{page.text('passed')}</span>"
        else:
            words = failure_words(step.failure, page.lang) if step.failure else ""
            code = f" <code>{escape(step.failure)}</code>" if step.failure else ""
            result = f"<span class='fail'>{escape(words)}</span>{code}"
        seen = "".join(f"<li>{page.said(line)}</li>" for line in step.seen)
        decided = f"<p class='decided'><strong>{page.text('decided')}:</strong> {page.said(step.decided)}</p>" if step.decided else ""
        klass = " class='decided'" if step.decided else ""
        name = escape(CHECKS[page.lang].get(step.check, step.check))
        rows.append(f"<tr{klass} data-check='{escape(step.check)}'><td>{name}</td><td>{result}</td><td><ul>{seen}</ul>{decided}</td></tr>")
    head = f"<thead><tr><th>{page.text('col_step')}</th><th>{page.text('col_result')}</th><th>{page.text('col_seen')}</th></tr></thead>"
    return f"<table class='steps'>{head}<tbody>{''.join(rows)}</tbody></table>"


def _legend(page: _Page) -> str:
    items = "".join(f"<dt>{page.badge(None if key == 'none' else key)}</dt><dd>{escape(page.meanings[key])}</dd>" for key in LEGEND_ORDER)
    return f"<section id='legend'><h2>{page.text('legend')}</h2><dl class='legend'>{items}</dl></section>"


def _key(*parts: str) -> str:
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' that could end the element."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- /status.json: the contract's document plus the history; one target's evidence ---------------


def history_document(state: State, history: History | None, now: float | None = None) -> dict[str, Any]:
    """{vantage: {summary, services: {service: {summary, targets: {target: summary}}}}} of the
    vantages and services in the latest results."""
    if history is None:
        return {}
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    for name, result in state.latest.items():
        services = {}
        for service in result.services:
            targets = {t.target: history.summary(name, service.service, t.target, now=now).as_json() for t in service.targets}
            services[service.service] = {**history.summary(name, service.service, now=now).as_json(), "targets": targets}
        out[name] = {**history.summary(name, now=now).as_json(), "services": services}
    return out


def target_document(state: State, query: str) -> dict[str, Any] | None:
    """`/status.json?vantage=…&service=…&target=…`: that target's latest result (the page's JSON
    link), or None when there is no such target."""
    asked = {key: values[0] for key, values in parse_qs(query).items()}
    result = state.latest.get(asked.get("vantage", ""))
    if result is None:
        return None
    service, name = asked.get("service", ""), asked.get("target", "")
    targets = result.controls if service == "controls" else next((s.targets for s in result.services if s.service == service), [])
    found = next((t for t in targets if t.target == name), None)
    if found is None:
        return None
    return {"vantage": result.vantage, "service": service, "started_at": result.started_at, **found.as_json()}


VOCABULARY = {"service_verdicts": [str(v) for v in SERVICE_VERDICTS], "vantage_verdicts": [str(v) for v in VANTAGE_VERDICTS], "ok": str(Verdict.OK)}
