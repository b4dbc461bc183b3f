"""The status page for volunteers: per measuring point, each service's state in words, since
when, how much of the last 24 hours and 7 days it was reachable (as bars), the verdict changes,
the servers checked and the evidence behind each verdict.

One self-contained HTML document (inline CSS and script, no external resource), English or
Russian, readable on a phone. Its script fetches /status.json every 30 s and updates the states,
bars and changes in place: no reload, so an opened evidence panel stays open. Every name from
the config or the network is escaped; no address of the vantage appears (the evidence is
scrubbed by the engine, and the page shows nothing else about the vantage but its name).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from html import escape
from typing import Any

from probe import __version__
from probe.history import History, Summary
from probe.metrics import State
from probe.model import BLOCKS, SERVICE_VERDICTS, VANTAGE_VERDICTS, Verdict, is_block
from probe.status_texts import MEANINGS, NAMES, PHRASES

REFRESH_SECONDS = 30
_CURRENT = " aria-current='true'"

# Distinct colours per kind of state (the legend explains each verdict); text colour on the badge.
_BLOCK_COLOUR = "#c62828"
COLOURS: dict[str, tuple[str, str]] = {
    "ok": ("#1b7f3b", "#fff"),
    **{str(v): (_BLOCK_COLOUR, "#fff") for v in BLOCKS},
    "partial": ("#f29900", "#000"),
    "down": ("#795548", "#fff"),
    "error": ("#3f51b5", "#fff"),
    "vantage_offline": ("#263238", "#fff"),
    "allowlist": ("#8e24aa", "#fff"),
    "none": ("#d0d0d0", "#000"),
}
LEGEND_ORDER: tuple[str, ...] = ("ok", *(str(v) for v in SERVICE_VERDICTS if v in BLOCKS), "partial", "down", "error", "vantage_offline", "allowlist", "none")

_STYLE = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:.75em;color:#1a1a1a;max-width:64em;line-height:1.4;overflow-wrap:anywhere}
header h1{font-size:1.4em;margin:.2em 0}
nav.lang{float:right;font-size:.95em}
nav.lang a{margin-left:.4em}
nav.lang a[aria-current]{font-weight:bold;text-decoration:none;color:#1a1a1a}
.vantage{border-top:3px solid #888;margin-top:1.2em;padding-top:.4em}
.vantage h2{font-size:1.2em;margin:.3em 0}
.service{border:1px solid #ccc;border-radius:8px;padding:.6em .8em;margin:.8em 0}
.service h3{font-size:1.1em;margin:0 0 .3em;display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.badge{display:inline-block;border-radius:4px;padding:.1em .5em;font-weight:600;font-size:.95em}
.badge code{font-weight:normal;font-size:.8em;opacity:.85;margin-left:.3em}
.explain{margin:.2em 0 .4em;font-size:.95em}
.strip-label{font-size:.85em;color:#555;margin-top:.4em}
.bars{display:flex;gap:2px;height:1.6em;width:100%;max-width:100%}
.bars .bar{flex:1 1 0;min-width:0;border-radius:2px}
.bars.small{height:1em;min-width:6em}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.4em 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:.3em .4em;text-align:left;vertical-align:top}
details{margin:.4em 0}
details pre{white-space:pre-wrap;word-break:break-all;font-size:.78em;max-width:100%;overflow-x:auto}
ol.changes{padding-left:1.4em;margin:.3em 0}
dl.legend{display:grid;grid-template-columns:auto 1fr;gap:.3em .6em;align-items:start}
dl.legend dt{margin:0}
dl.legend dd{margin:0}
.notice{background:#fff3cd;border:1px solid #e0c060;padding:.4em .6em;border-radius:6px}
.problem{background:#fde2e2;border:1px solid #d88;padding:.4em .6em;border-radius:6px}
footer{margin-top:2em;font-size:.85em;color:#555}
@media (max-width:40em){
  body{padding:.5em}
  table.targets thead{display:none}
  table.targets,table.targets tbody,table.targets tr,table.targets td{display:block;width:100%}
  table.targets tr{border:1px solid #ddd;margin:.4em 0}
  table.targets td{border:0}
}
"""


def _colour_css() -> str:
    rules = [f".v-{name}{{background:{bg};color:{fg}}}" for name, (bg, fg) in COLOURS.items()]
    return "\n".join(rules)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


class _Page:
    def __init__(self, lang: str):
        self.lang = lang
        self.names = NAMES[lang]
        self.meanings = MEANINGS[lang]
        self.say = PHRASES[lang]

    def badge(self, verdict: str | None, *, field: str = "verdict") -> str:
        key = verdict if verdict in COLOURS else "none"
        code = f"<code>{escape(verdict)}</code>" if verdict else ""
        return f"<span class='badge v-{key}' data-f='{field}' title='{escape(self.meanings.get(key, ''))}'>{escape(self.names.get(key, key))}{code}</span>"

    def since(self, verdict: str | None, since: float | None) -> str:
        if since is None or verdict is None:
            return ""
        if verdict == "ok":
            phrase = "ok_since"
        elif is_block(verdict):
            phrase = "blocked_since"
        else:
            phrase = "state_since"
        return self.say[phrase].format(time=_when(since))

    def share(self, summary: Summary | None) -> str:
        if summary is None or summary.verdict is None:
            return self.say["no_history"]
        if summary.share_7d is None:
            return self.say["not_measured"]
        return self.say["share"].format(day=_percent(summary.share_24h), week=_percent(summary.share_7d))

    def bars(self, summary: Summary | None, field: str, small: bool = False) -> str:
        bars = getattr(summary, field) if summary is not None else []
        cells = []
        for bar in bars:
            key = bar.worst if bar.worst in COLOURS else "none"
            title = f"{_when(bar.start)} – {_when(bar.end)}: " + (
                self.names["none"] if bar.worst is None else f"{self.say['reachable']} {_percent(bar.ok_share)}, {self.names.get(key, key)}"
            )
            cells.append(f"<span class='bar v-{key}' title='{escape(title)}'></span>")
        klass = "bars small" if small else "bars"
        return f"<div class='{klass}' data-f='{field}' role='img' aria-label='{escape(self.say['last_24h' if field == 'bars_24h' else 'last_7d'])}'>{''.join(cells)}</div>"

    def changes(self, summary: Summary | None) -> str:
        items = [] if summary is None else summary.changes
        rows = "".join(f"<li><time>{escape(_when(at))}</time> {self.badge(verdict, field='change')}</li>" for at, verdict in items)
        return f"<ol class='changes' data-f='changes'>{rows}</ol>"


def _summary(history: History | None, vantage: str, service: str = "", target: str = "", now: float | None = None) -> Summary | None:
    return history.summary(vantage, service, target, now=now) if history is not None else None


def render(state: State, healthy: bool, health_reason: str, *, history: History | None = None, lang: str = "en", now: float | None = None) -> str:
    now = time.time() if now is None else now
    page = _Page(lang)
    say = page.say
    other = "ru" if lang == "en" else "en"
    parts = [
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<link rel='icon' href='data:,'>",  # no favicon request
        f"<title>msgreach — {escape(say['title'])}</title>",
        f"<style>{_STYLE}\n{_colour_css()}</style></head><body>",
        "<header>",
        f"<nav class='lang' aria-label='{escape(say['language'])}'>"
        + "".join(
            f"<a href='?lang={code}' hreflang='{code}'{_CURRENT if code == lang else ''}>{label}</a>"
            for code, label in (("en", "English"), ("ru", "Русский"))
        )
        + "</nav>",
        f"<h1>{escape(say['title'])}</h1>",
        f"<p id='updated' data-lang-other='{other}'></p>",
        "<p id='notice' class='notice' hidden></p>",
    ]
    if not healthy:  # only a problem is worth a line; "ok" above an offline point misled volunteers
        parts.append(f"<p class='problem'>{escape(say['monitor_problem'].format(reason=health_reason))}</p>")
    parts.append("</header><main id='main'>")
    if not state.latest:
        parts.append(f"<p>{escape(say['no_round'])}</p>")
    for name, result in state.latest.items():
        parts.append(_vantage(page, history, name, result, now))
    parts.append(_legend(page))
    parts.append("</main>")
    parts.append(
        f"<footer>{escape(say['machine'])} <a href='/metrics'>/metrics</a>, <a href='/status.json'>/status.json</a>. "
        f"msgreach {escape(__version__)}</footer>"
    )
    texts = {"names": page.names, "meanings": page.meanings, "phrases": say, "colours": sorted(COLOURS), "blocks": sorted(str(v) for v in BLOCKS)}
    parts.append(f"<script type='application/json' id='texts'>{_json_for_script(texts)}</script>")
    parts.append(f"<script>{_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _vantage(page: _Page, history: History | None, name: str, result: Any, now: float) -> str:
    say = page.say
    verdict = str(result.verdict)
    summary = _summary(history, name, now=now)
    parts = [
        f"<section class='vantage' data-k='{escape(_key(name))}'>",
        f"<h2>{escape(say['vantage'])} {escape(name)} {page.badge(verdict)}</h2>",
        f"<p class='explain' data-f='meaning'>{escape(page.meanings.get(verdict, ''))}</p>",
        f"<p class='meta' data-f='since'>{escape(page.since(verdict, summary.since if summary else None))}</p>",
        f"<p class='meta'>{escape(say['last_round'].format(time=_when(result.started_at), seconds=f'{result.duration_seconds:.1f}'))}</p>",
    ]
    for service in result.services:
        parts.append(_service(page, history, name, service, now))
    parts.append(f"<details><summary>{escape(say['controls'])}</summary>{_targets_table(page, None, name, 'controls', result.controls, now)}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _service(page: _Page, history: History | None, vantage: str, service: Any, now: float) -> str:
    say = page.say
    verdict = str(service.verdict)
    summary = _summary(history, vantage, service.service, now=now)
    return "\n".join([
        f"<article class='service' id='{escape(vantage)}-{escape(service.service)}' data-k='{escape(_key(vantage, service.service))}'>",
        f"<h3>{escape(service.service)} {page.badge(verdict)}</h3>",
        f"<p class='explain' data-f='meaning'>{escape(page.meanings.get(verdict, ''))}</p>",
        _targets_down(page, service),
        f"<p data-f='since'>{escape(page.since(verdict, summary.since if summary else None))}</p>",
        f"<p data-f='share'>{escape(page.share(summary))}</p>",
        f"<div class='strip-label'>{escape(say['last_24h'])}</div>{page.bars(summary, 'bars_24h')}",
        f"<div class='strip-label'>{escape(say['last_7d'])}</div>{page.bars(summary, 'bars_7d')}",
        f"<details><summary>{escape(say['targets'])}</summary>{_targets_table(page, history, vantage, service.service, service.targets, now)}</details>",
        f"<details><summary>{escape(say['changes'])}</summary>{page.changes(summary)}</details>",
        "</article>",
    ])


def _targets_down(page: _Page, service: Any) -> str:
    """How many of the service's targets are down (an `ok` service may have some: an outage of
    part of a service is not a block); hidden when none is."""
    down, total = service.targets_down, len(service.targets)
    text = page.say["targets_down"].format(down=down, total=total) if down else ""
    return f"<p data-f='down'{'' if down else ' hidden'}>{escape(text)}</p>"


def _targets_table(page: _Page, history: History | None, vantage: str, service: str, targets: list, now: float) -> str:
    say = page.say
    head = (
        f"<table class='targets'><thead><tr><th>{escape(say['col_target'])}</th><th>{escape(say['col_state'])}</th>"
        f"<th>{escape(say['last_24h'])}</th><th>{escape(say['col_why'])}</th></tr></thead><tbody>"
    )
    rows = [head]
    for target in targets:
        verdict = str(target.verdict)
        summary = _summary(history, vantage, service, target.target, now) if history is not None and service != "controls" else None
        evidence = json.dumps([c.as_json() for c in target.checks], indent=1, ensure_ascii=False)
        rows.append(
            f"<tr data-k='{escape(_key(vantage, service, target.target))}'><td>{escape(target.target)}<br><small>{escape(target.host)}</small></td>"
            f"<td>{page.badge(verdict)}<br><small data-f='since'>{escape(page.since(verdict, summary.since if summary else None))}</small></td>"
            f"<td>{page.bars(summary, 'bars_24h', small=True)}</td>"
            f"<td>{escape(target.reason)}<details><summary>{escape(say['evidence'])}</summary><pre>{escape(evidence)}</pre></details></td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _legend(page: _Page) -> str:
    items = "".join(
        f"<dt>{page.badge(None if key == 'none' else key, field='legend')}</dt><dd>{escape(page.meanings[key])}</dd>" for key in LEGEND_ORDER
    )
    return f"<section id='legend'><h2>{escape(page.say['legend'])}</h2><dl class='legend'>{items}</dl></section>"


def _key(vantage: str, service: str = "", target: str = "") -> str:
    return json.dumps([vantage, service, target], ensure_ascii=False, separators=(",", ":"))  # as JSON.stringify


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' that could end the element."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- /status.json: the contract's document plus the history --------------------------------------


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


VOCABULARY = {"service_verdicts": [str(v) for v in SERVICE_VERDICTS], "vantage_verdicts": [str(v) for v in VANTAGE_VERDICTS], "ok": str(Verdict.OK)}


# The page's updater: reads /status.json, changes text and classes only (textContent, never HTML
# from the network), and tells the reader to reload when the set of services changed.
_SCRIPT = r"""
(function(){
  var T = JSON.parse(document.getElementById('texts').textContent);
  var blocks = {}; T.blocks.forEach(function(v){ blocks[v] = 1; });
  var known = {}; T.colours.forEach(function(v){ known[v] = 1; });
  function two(n){ return (n < 10 ? '0' : '') + n; }
  function when(t){ if (t === null || t === undefined) return '\u2014'; var d = new Date(t * 1000);
    return d.getUTCFullYear() + '-' + two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate()) + ' ' + two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ' UTC'; }
  function pct(s){ return (s === null || s === undefined) ? '\u2014' : Math.round(s * 100) + '%'; }
  function fmt(p, values){ return T.phrases[p].replace(/\{(\w+)\}/g, function(_, k){ return values[k]; }); }
  function keyOf(v){ return known[v] ? v : 'none'; }
  function setBadge(el, verdict){
    var k = keyOf(verdict);
    el.className = 'badge v-' + k;
    el.title = T.meanings[k] || '';
    el.textContent = T.names[k] || k;
    if (verdict) { var c = document.createElement('code'); c.textContent = verdict; el.appendChild(c); }
  }
  function sinceText(verdict, since){
    if (since === null || since === undefined || !verdict) return '';
    var p = verdict === 'ok' ? 'ok_since' : ((blocks[verdict] || verdict === 'partial') ? 'blocked_since' : 'state_since');
    return fmt(p, {time: when(since)});
  }
  function setBars(el, bars){
    while (el.firstChild) el.removeChild(el.firstChild);
    bars.forEach(function(b){
      var s = document.createElement('span'); var k = b.worst ? keyOf(b.worst) : 'none';
      s.className = 'bar v-' + k;
      s.title = when(b.start) + ' \u2013 ' + when(b.end) + ': ' + (b.worst ? T.phrases.reachable + ' ' + pct(b.ok_share) + ', ' + (T.names[k] || k) : T.names.none);
      el.appendChild(s);
    });
  }
  function setChanges(el, changes){
    while (el.firstChild) el.removeChild(el.firstChild);
    changes.forEach(function(c){
      var li = document.createElement('li'); var t = document.createElement('time'); t.textContent = when(c.at);
      var b = document.createElement('span'); setBadge(b, c.verdict);
      li.appendChild(t); li.appendChild(document.createTextNode(' ')); li.appendChild(b); el.appendChild(li);
    });
  }
  function apply(el, s, verdict){
    var f;
    if (verdict !== undefined) {
      f = el.querySelector('[data-f=verdict]'); if (f) setBadge(f, verdict);
      f = el.querySelector(':scope > [data-f=meaning], :scope > h2 ~ [data-f=meaning]'); if (f) f.textContent = T.meanings[keyOf(verdict)] || '';
    }
    if (!s) return;
    f = el.querySelector('[data-f=since]'); if (f) f.textContent = sinceText(verdict === undefined ? s.verdict : verdict, s.since);
    f = el.querySelector(':scope > [data-f=share]');
    if (f) f.textContent = s.verdict === null ? T.phrases.no_history : (s.share_7d === null ? T.phrases.not_measured : fmt('share', {day: pct(s.share_24h), week: pct(s.share_7d)}));
    f = el.querySelector(':scope > [data-f=bars_24h], :scope td > [data-f=bars_24h]'); if (f) setBars(f, s.bars_24h);
    f = el.querySelector(':scope > [data-f=bars_7d]'); if (f) setBars(f, s.bars_7d);
    f = el.querySelector(':scope [data-f=changes]'); if (f && el.tagName === 'ARTICLE') setChanges(f, s.changes);
  }
  function update(doc){
    var seen = {}; var missing = false; var history = doc.history || {};
    (doc.vantages || []).forEach(function(v){
      var hv = history[v.vantage] || {}; var hs = hv.services || {};
      var key = JSON.stringify([v.vantage, '', '']); seen[key] = 1;
      var el = document.querySelector('[data-k="' + CSS.escape(key) + '"]');
      if (!el) { missing = true; return; }
      apply(el, history[v.vantage], v.verdict);
      (v.services || []).forEach(function(s){
        var sk = JSON.stringify([v.vantage, s.service, '']); seen[sk] = 1;
        var se = document.querySelector('[data-k="' + CSS.escape(sk) + '"]');
        if (!se) { missing = true; return; }
        var sh = hs[s.service]; apply(se, sh, s.verdict);
        var down = se.querySelector(':scope > [data-f=down]');
        if (down) { down.hidden = !s.targets_down; down.textContent = s.targets_down ? fmt('targets_down', {down: s.targets_down, total: (s.targets || []).length}) : ''; }
        (s.targets || []).forEach(function(t){
          var tk = JSON.stringify([v.vantage, s.service, t.target]);
          var te = document.querySelector('[data-k="' + CSS.escape(tk) + '"]');
          if (!te) { missing = true; return; }
          apply(te, sh && sh.targets ? sh.targets[t.target] : null, t.verdict);
        });
      });
    });
    document.querySelectorAll('section.vantage[data-k], article.service[data-k]').forEach(function(el){
      if (!seen[el.getAttribute('data-k')]) missing = true;
    });
    var notice = document.getElementById('notice');
    notice.hidden = !missing; notice.textContent = missing ? T.phrases.reload : '';
    document.getElementById('updated').textContent = fmt('updated', {time: when(Date.now() / 1000)});
  }
  function refresh(){
    fetch('/status.json', {cache: 'no-store', credentials: 'same-origin'})
      .then(function(r){ return r.ok ? r.json() : null; })
      .then(function(doc){ if (doc) update(doc); })
      .catch(function(e){ if (window.console) console.warn('msgreach status update failed: ' + e); });
  }
  document.getElementById('updated').textContent = fmt('updated', {time: when(Date.now() / 1000)});
  window.msgreachRefresh = refresh;
  window.msgreachUpdate = update;
  setInterval(refresh, """ + str(REFRESH_SECONDS * 1000) + r""");
})();
"""
