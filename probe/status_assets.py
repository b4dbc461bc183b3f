"""The status page's inline style and script (probe/status_page.py renders the HTML).

The script has two jobs only, so that one renderer (Python) says everything:
- times: every `<time data-t>` is shown in the reader's own time zone and language, with UTC
  in its title; the bars' titles likewise;
- live: every 30 s it fetches the page itself (same language and view) and swaps the parts that
  change in place (notices, language links, main), keeping open panels open. Switching the
  history view does the same without a reload.
Nothing from the network is ever inserted as script: the fetched page is parsed by DOMParser
(which runs no script) and its nodes adopted.
"""

from __future__ import annotations

REFRESH_SECONDS = 30

STYLE = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:.75em;color:#1a1a1a;max-width:64em;line-height:1.4;overflow-wrap:anywhere}
header h1{font-size:1.4em;margin:.2em 0}
nav.lang{float:right;font-size:.95em}
nav a{margin-left:.4em}
nav a[aria-current]{font-weight:bold;text-decoration:none;color:#1a1a1a}
.meta,.times{font-size:.85em;color:#555;margin:.2em 0}
#notices{list-style:none;padding:0;margin:.4em 0}
#notices li{padding:.4em .6em;border-radius:6px;margin:.3em 0}
#notices li.problem{background:#fde2e2;border:1px solid #d88}
#notices li.info{background:#fff3cd;border:1px solid #e0c060}
#banner{border-radius:8px;padding:.6em .8em;margin:.6em 0;border-left:8px solid #888;background:#f4f4f4}
#banner p{margin:.25em 0}
#banner ul{margin:.2em 0 .3em;padding-left:1.3em}
#banner .headline{font-weight:600}
#banner .b-vantage+.b-vantage{border-top:1px solid rgba(0,0,0,.12);margin-top:.4em;padding-top:.3em}
#banner.b-block{border-left-color:#c62828;background:#fdecea}
#banner.b-ok{border-left-color:#1b7f3b;background:#e8f5e9}
#banner.b-offline{border-left-color:#263238;background:#eceff1}
#banner.b-allowlist{border-left-color:#8e24aa;background:#f3e5f5}
#banner .who{font-weight:700;margin-bottom:0}
nav.views{margin:.6em 0;font-size:.95em}
.vantage{border-top:3px solid #888;margin-top:1.2em;padding-top:.4em}
.vantage h2{font-size:1.2em;margin:.3em 0;display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.cause{background:#eceff1;border-radius:6px;padding:.4em .7em;margin:.4em 0}
.cause ul{margin:.2em 0;padding-left:1.2em;font-size:.9em}
.service{border:1px solid #ccc;border-radius:8px;padding:.6em .8em;margin:.8em 0}
.service p{margin:.15em 0}
.service h3{font-size:1.1em;margin:0 0 .3em;display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.badge{display:inline-block;border-radius:4px;padding:.1em .5em;font-weight:600;font-size:.95em}
.badge code{font-weight:normal;font-size:.8em;opacity:.85;margin-left:.3em}
.explain{margin:.2em 0 .4em;font-size:.95em}
.strip-label{font-size:.85em;color:#555;margin-top:.4em}
.bars{display:flex;gap:2px;height:1.6em;width:100%;max-width:100%}
.bars .bar{flex:1 1 0;min-width:0;border-radius:2px}
.bars.small{height:.8em;margin:.2em 0}
.bars.b90d{gap:1px}
.target{border-top:1px solid #ddd;padding:.4em 0}
.target .t-head{display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.target .why{margin:.2em 0;font-size:.93em}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.4em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.3em .4em;text-align:left;vertical-align:top}
table.steps th:nth-child(1),table.steps td:nth-child(1){width:22%}
table.steps th:nth-child(2),table.steps td:nth-child(2){width:26%}
table.steps ul{margin:0;padding-left:1.1em}
table.steps tr.decided td{background:#fff7e0}
table.steps .ok{color:#1b7f3b;font-weight:600}
table.steps .fail{color:#c62828;font-weight:600}
p.decided{margin:.3em 0 0;font-size:.95em}
.note{font-size:.85em;color:#444}
.untranslated{font-style:italic}
details{margin:.4em 0}
ol.changes{padding-left:1.4em;margin:.3em 0}
dl.legend{display:grid;grid-template-columns:auto 1fr;gap:.3em .6em;align-items:start}
dl.legend dt,dl.legend dd{margin:0}
footer{margin-top:2em;font-size:.85em;color:#555}
@media (max-width:40em){
  body{padding:.5em}
  table.steps thead{display:none}
  table.steps,table.steps tbody,table.steps tr,table.steps td{display:block;width:100% !important}
  table.steps tr{border:1px solid #ddd;margin:.4em 0}
  table.steps td{border:0}
}
"""

SCRIPT = r"""
(function(){
  var T = JSON.parse(document.getElementById('texts').textContent);
  // The year only when it is not this year's: "7 Dec, 09:02 GMT+3".
  function formatter(year){ var options = {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short'};
    if (year) options.year = 'numeric'; return new Intl.DateTimeFormat(T.lang, options); }
  var thisYear = formatter(false), otherYear = formatter(true), currentYear = new Date().getFullYear();
  function two(n){ return (n < 10 ? '0' : '') + n; }
  function utc(t){ var d = new Date(t * 1000);
    return d.getUTCFullYear() + '-' + two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate()) + ' ' + two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ' UTC'; }
  function shown(t){ var d = new Date(t * 1000); return (d.getFullYear() === currentYear ? thisYear : otherYear).format(d); }
  function localize(root){
    root.querySelectorAll('time[data-t]').forEach(function(el){
      var t = Number(el.getAttribute('data-t')); el.textContent = shown(t); el.title = utc(t);
    });
    root.querySelectorAll('.bars[data-s]').forEach(function(strip){
      var start = Number(strip.getAttribute('data-s')), width = Number(strip.getAttribute('data-w'));
      Array.prototype.forEach.call(strip.children, function(bar, i){
        var s = start + i * width, e = s + width, state = (bar.className.match(/v-(\w+)/) || [])[1] || 'none';
        var share = bar.getAttribute('data-p');
        var label = state === 'none' ? T.names.none : (share === null ? '' : T.reachable + ' ' + share + '%, ') + (T.names[state] || state);
        bar.title = shown(s) + ' \u2013 ' + shown(e) + ' (' + utc(s) + ' \u2013 ' + utc(e) + '): ' + label;
      });
    });
  }
  function stamp(){
    var el = document.getElementById('updated'); var now = Date.now() / 1000;
    var pieces = T.updated.split('{time}'); var t = document.createElement('time');
    t.setAttribute('data-t', String(now)); t.textContent = shown(now); t.title = utc(now);
    while (el.firstChild) el.removeChild(el.firstChild);
    el.appendChild(document.createTextNode(pieces[0])); el.appendChild(t); el.appendChild(document.createTextNode(pieces[1] || ''));
  }
  var SWAPPED = ['langs', 'notices', 'main'];
  function swap(html){
    var fresh = new DOMParser().parseFromString(html, 'text/html');
    var open = {};
    document.querySelectorAll('details[data-d]').forEach(function(d){ open[d.getAttribute('data-d')] = d.open; });
    SWAPPED.forEach(function(id){
      var now = document.getElementById(id), next = fresh.getElementById(id);
      if (!now || !next) return;
      next = document.importNode(next, true);
      next.querySelectorAll('details[data-d]').forEach(function(d){
        var key = d.getAttribute('data-d'); if (key in open) d.open = open[key];
      });
      now.replaceWith(next);
    });
    localize(document); stamp();
  }
  function refresh(){
    return fetch(location.pathname + location.search, {cache: 'no-store', credentials: 'same-origin', headers: {'Accept': 'text/html'}})
      .then(function(r){ return r.ok ? r.text() : null; })
      .then(function(html){ if (html) swap(html); })
      .catch(function(e){ if (window.console) console.warn('msgreach: page update failed: ' + e); });
  }
  document.addEventListener('click', function(event){
    var link = event.target.closest ? event.target.closest('a[data-view]') : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    history.replaceState(null, '', link.getAttribute('href'));
    refresh();
  });
  localize(document); stamp();
  window.msgreachRefresh = refresh;
  setInterval(refresh, REFRESH_MS);
})();
""".replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))
