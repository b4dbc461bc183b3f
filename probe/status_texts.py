"""The status page's words, in English and Russian, and the mechanism that says a reason in
either language.

Plain data first, so that a translator edits one file: what each verdict is called and means,
the page's own phrases, the reason templates (a key and its parameters -> a sentence), the
failure strings in words, the checks' names. `say()` renders a `Reason` in a language; a key
without a template there falls back to the English text the reason carries, marked as English
(the page gives it `lang="en"`), never to nothing.

A template's parameters are rendered by their names' endings: `…failure` in words (FAILURES),
`…verdict` by its badge name (NAMES), `…check` by the check's name (CHECKS), a `Moment` as a
time the page shows in the reader's zone, a nested `Reason` rendered in the same language, a
list joined; anything else as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from probe import reasons as engine
from probe.model import HelperExchange
from probe.reasons import ENGLISH

LANGUAGES = ("en", "ru")

# Short names shown on the badges (the verdict's code is shown beside them).
NAMES: dict[str, dict[str, str]] = {
    "en": {
        "ok": "Works",
        "dns_blocked": "DNS block",
        "dns_tampered": "DNS forged",
        "ip_blocked": "IP block",
        "sni_blocked": "SNI block",
        "tls_blocked": "TLS block",
        "tls_mitm": "Intercepted",
        "http_blocked": "Block page",
        "protocol_blocked": "Protocol block",
        "quic_blocked": "QUIC block",
        "udp_blocked": "UDP block",
        "throttled": "Slowed down",
        "partial": "Partly works",
        "down": "Down for everyone",
        "error": "Not measured",
        "vantage_offline": "Point offline",
        "allowlist": "Allowlist regime",
        "none": "No data",
    },
    "ru": {
        "ok": "Работает",
        "dns_blocked": "Блокировка DNS",
        "dns_tampered": "Подмена DNS",
        "ip_blocked": "Блокировка по IP",
        "sni_blocked": "Блокировка по SNI",
        "tls_blocked": "Блокировка TLS",
        "tls_mitm": "Перехват",
        "http_blocked": "Страница блокировки",
        "protocol_blocked": "Блокировка протокола",
        "quic_blocked": "Блокировка QUIC",
        "udp_blocked": "Блокировка UDP",
        "throttled": "Замедление",
        "partial": "Работает частично",
        "down": "Не работает у всех",
        "error": "Не измерено",
        "vantage_offline": "Точка не в сети",
        "allowlist": "Белые списки",
        "none": "Нет данных",
    },
}

# One sentence each: what the verdict means for the person reading the page.
MEANINGS: dict[str, dict[str, str]] = {
    "en": {
        "ok": "Works: every check passed.",
        "dns_blocked": "Blocked by DNS: your provider's resolver hides the service's address while an independent resolver gives it.",
        "dns_tampered": "DNS forged: your provider's resolver gives a false address for the service.",
        "ip_blocked": "Blocked by address: connections to the service's servers are cut or dropped.",
        "sni_blocked": "Blocked by name (SNI): a secure connection that names the service is cut, the same one with another name works.",
        "tls_blocked": "Secure connection blocked: the encrypted handshake with the service fails.",
        "tls_mitm": "Intercepted: someone shows a false certificate for the service (a man in the middle).",
        "http_blocked": "Block page: the request gets a block page or is cut, while the same request for another site works.",
        "protocol_blocked": "The app's own protocol is blocked: the connection opens, then the app's traffic is cut.",
        "quic_blocked": "QUIC (HTTP/3) blocked: the fast UDP-based protocol fails while ordinary HTTPS works.",
        "udp_blocked": "UDP blocked: the UDP traffic calls use fails, while a control server answers.",
        "throttled": "Slowed down: downloads from the service crawl or stall, while a control download is fast.",
        "partial": "Partly works: some of the service's servers work, others are blocked.",
        "down": "Down for everyone: it fails from outside the country too, so it is not a block.",
        "error": "Not measured: the monitor had a problem of its own; this says nothing about the network.",
        "vantage_offline": "This point is offline: its own internet connection does not work, so nothing else can be judged.",
        "allowlist": "Only approved sites work: domestic sites open, no foreign one does (an 'allowlist' shutdown).",
        "none": "No measurement in this period.",
    },
    "ru": {
        "ok": "Работает: все проверки прошли.",
        "dns_blocked": "Блокировка DNS: DNS-сервер провайдера скрывает адрес сервиса, а независимый DNS-сервер его отдаёт.",
        "dns_tampered": "Подмена DNS: DNS-сервер провайдера отдаёт ложный адрес сервиса.",
        "ip_blocked": "Блокировка по адресу: соединения с серверами сервиса обрываются или теряются.",
        "sni_blocked": "Блокировка по имени (SNI): защищённое соединение с именем сервиса обрывается, с другим именем — проходит.",
        "tls_blocked": "Блокировка защищённого соединения: TLS-рукопожатие с сервисом не проходит.",
        "tls_mitm": "Перехват: кто-то подставляет поддельный сертификат сервиса (атака посредника).",
        "http_blocked": "Страница блокировки: на запрос приходит заглушка или он обрывается, а такой же запрос к другому сайту проходит.",
        "protocol_blocked": "Заблокирован протокол приложения: соединение открывается, затем трафик приложения обрывается.",
        "quic_blocked": "QUIC (HTTP/3) заблокирован: быстрый протокол поверх UDP не работает, обычный HTTPS работает.",
        "udp_blocked": "UDP заблокирован: UDP-трафик, которым пользуются звонки, не проходит, а контрольный сервер отвечает.",
        "throttled": "Замедление: загрузка с сервиса ползёт или останавливается, а контрольная загрузка идёт быстро.",
        "partial": "Работает частично: часть серверов сервиса доступна, часть заблокирована.",
        "down": "Не работает у всех: сервис недоступен и из-за рубежа, значит это не блокировка.",
        "error": "Не измерено: у монитора возникла своя проблема; о сети это ничего не говорит.",
        "vantage_offline": "Точка не в сети: у неё самой не работает интернет, поэтому о сервисах судить нельзя.",
        "allowlist": "Работают только разрешённые сайты: отечественные открываются, зарубежные — нет (режим «белых списков»).",
        "none": "В этот период измерений не было.",
    },
}

# The page's own labels and sentences (placeholders in braces are filled by `say`).
PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Can messengers be reached from here?",
        "vantage": "Measuring point",
        "last_round": "Last measured {time}, took {seconds} s.",
        "blocked_since": "Blocked since {time}",
        "ok_since": "Works since {time}",
        "state_since": "In this state since {time}",
        "share": "Reachable {share} of the {period}",
        "no_history": "No history yet",
        "not_measured": "Not measured in the {period} (the point was offline or the monitor failed)",
        "period_24h": "last 24 hours",
        "period_7d": "last 7 days",
        "period_30d": "last 30 days",
        "period_90d": "last 90 days",
        "strip_24h": "Last 24 hours (one bar per hour)",
        "strip_7d": "Last 7 days (one bar per 6 hours)",
        "strip_30d": "Last 30 days (one bar per day)",
        "strip_90d": "Last 90 days (one bar per 2 days)",
        "view": "History over",
        "view_24h": "24 hours",
        "view_7d": "7 days",
        "view_30d": "30 days",
        "view_90d": "90 days",
        "targets": "Servers checked, step by step",
        "changes": "Changes",
        "steps": "steps",
        "json": "JSON",
        "legend": "What the colours mean",
        "controls": "Control sites (they test this point's own connection)",
        "no_round": "No measurement has finished yet.",
        "updated": "Updated {time}",
        "times": "Times are in your time zone; point at one to see it in UTC.",
        "machine": "For programs:",
        "col_target": "server",
        "col_state": "state",
        "col_why": "why",
        "col_step": "step",
        "col_result": "result",
        "col_seen": "what was seen",
        "decided": "decided this",
        "passed": "passed",
        "reachable": "reachable",
        "targets_down": "{down} of {total} targets down (for everyone: not a block)",
        "language": "Language",
        "what_to_check": "What to check",
        "engine_says": "The monitor's own note",
        "untranslated": "not translated yet",
        "now": "Now",
    },
    "ru": {
        "title": "Доступны ли мессенджеры отсюда?",
        "vantage": "Точка измерения",
        "last_round": "Последнее измерение {time}, заняло {seconds} с.",
        "blocked_since": "Заблокирован с {time}",
        "ok_since": "Работает с {time}",
        "state_since": "В этом состоянии с {time}",
        "share": "Доступен {share} времени за {period}",
        "no_history": "Истории пока нет",
        "not_measured": "Не измерялось за {period} (точка была не в сети или монитор не работал)",
        "period_24h": "последние 24 часа",
        "period_7d": "последние 7 дней",
        "period_30d": "последние 30 дней",
        "period_90d": "последние 90 дней",
        "strip_24h": "Последние 24 часа (столбик — час)",
        "strip_7d": "Последние 7 дней (столбик — 6 часов)",
        "strip_30d": "Последние 30 дней (столбик — день)",
        "strip_90d": "Последние 90 дней (столбик — 2 дня)",
        "view": "История за",
        "view_24h": "24 часа",
        "view_7d": "7 дней",
        "view_30d": "30 дней",
        "view_90d": "90 дней",
        "targets": "Проверенные серверы, шаг за шагом",
        "changes": "Изменения",
        "steps": "шаги",
        "json": "JSON",
        "legend": "Что означают цвета",
        "controls": "Контрольные сайты (проверяют подключение самой точки)",
        "no_round": "Ни одно измерение ещё не завершено.",
        "updated": "Обновлено {time}",
        "times": "Время указано в вашем часовом поясе; наведите на него, чтобы увидеть UTC.",
        "machine": "Для программ:",
        "col_target": "сервер",
        "col_state": "состояние",
        "col_why": "почему",
        "col_step": "шаг",
        "col_result": "результат",
        "col_seen": "что увидели",
        "decided": "это и решило",
        "passed": "пройден",
        "reachable": "доступен",
        "targets_down": "не работают {down} из {total} целей (у всех: это не блокировка)",
        "language": "Язык",
        "what_to_check": "Что проверить",
        "engine_says": "Заметка монитора",
        "untranslated": "ещё не переведено",
        "now": "Сейчас",
    },
}

# Reason templates: what the page explains (the banner, the causes of an offline point, the
# steps and the differentials), by key. The judge's own reasons join them in REASONS below.
_PAGE_REASONS: dict[str, dict[str, str]] = {
    "en": {
        # notices above everything
        "notice.monitor_problem": "The monitor has a problem: {reason}",
        "notice.upload_held": (
            "Reports to the centre are held for {minutes} min: {why}. They wait on this machine and go out when the line lets them; "
            "keep the agent running (restarted, it sends only new samples)."
        ),
        "upload.line_stalls": "the line to the centre stalls (sends get no answer; a censor that freezes connections to hosting abroad does this)",
        "upload.centre_refuses": "the centre, or something on the way, refuses or cuts the sends",
        "notice.upload_lost": "{count} samples could not be delivered and were dropped by the agent (see its log).",
        "notice.upload_unknown": "Whether reports reach the centre is unknown: the local agent could not be read ({detail}).",
        # the banner
        "banner.no_round": "No measurement has finished yet: the first round takes up to a minute.",
        "banner.offline": "This point is offline since {time}: nothing else can be judged. {cause}",
        "banner.offline_now": "This point is offline: nothing else can be judged. {cause}",
        "banner.allowlist": "Only approved sites work since {time}: domestic sites open, foreign ones do not (a regional shutdown).",
        "banner.blocked": "Blocked now:",
        "banner.blocked_item": "{service} — {verdict} since {time}",
        "banner.partial_item": "{service} — partly ({verdict}) since {time}",
        "banner.blocked_item_now": "{service} — {verdict}",
        "banner.partial_item_now": "{service} — partly ({verdict})",
        "banner.works": "Nothing is blocked now: {services} can be reached.",
        "banner.none_measured": "No service could be measured in the last round.",
        "banner.down": "Down for everyone, not a block: {services}.",
        "banner.error": "Not measured (the monitor's own problem): {services}.",
        "list.and": "{first} and {last}",
        # why the point is offline, or under an allowlist: the cause, then what to check
        "cause.no_network": "Its connection does not work at all: even sites abroad fail at the {check} step ({failure}).",
        "cause.dns": "Names do not resolve: the DNS servers fail for every test site ({failure}).",
        "cause.connect": "Names resolve, but no connection to the test sites gets through ({failure}).",
        "cause.intercepted": "Secure connections are answered by someone else: the test sites' certificates are not theirs ({failure}).",
        "cause.portal": "Web requests get another answer than the test sites': a sign-in page or a filter answers instead.",
        "cause.other": "The test sites fail: {sites}.",
        "cause.unknown": "No test site passed, and none says why (the round may have been cut short).",
        "cause.allowlist": "Domestic test sites open while every foreign one fails (first: {check} — {failure}).",
        "cause.site": "{site}: {check} — {failure}",
        "advice.no_network": "Is the computer connected (Wi-Fi, cable, mobile data)? Does any website open in a browser? If nothing opens, restart the router.",
        "advice.dns": "Check the DNS settings of this computer and of the router; open a website in a browser to see whether names work at all.",
        "advice.connect": "Does this network only let traffic out through a proxy (office, school)? Is a firewall or a VPN client stopping it? Open a foreign website in a browser.",
        "advice.intercepted": (
            "An antivirus with HTTPS scanning, a company proxy or a captive portal (hotel, café, train Wi-Fi) sits in "
            "between: switch the scanning off, check the proxy settings, or open a browser and sign in."
        ),
        "advice.portal": "Open any website in a browser: if a sign-in page appears (hotel, café, train Wi-Fi), sign in; the monitor goes on by itself.",
        "advice.allowlist": "Nothing to fix on your side: only approved services work in this region now. The monitor goes on measuring and records how long it lasts.",
        # the steps of a target
        "step.connected": "{endpoint}: connected in {ms} ms",
        "step.failed_at": "{endpoint}: {failure}",
        "dns.answer": "{resolver}: {addresses}",
        "dns.answer_control": "{resolver} (control): {addresses}",
        "dns.failed": "{resolver}: {failure}",
        "dns.failed_control": "{resolver} (control): {failure}",
        "dns.pinned": "No lookup: the addresses are fixed in the catalog ({addresses}).",
        "dns.judged.withheld": "{line} — hides the name",
        "dns.judged.tampered": "{line} — a false address",
        "dns.judged.unhealthy": "{line} — this resolver fails other names too (ignored)",
        "dns.judged.global": "{line} — the control resolver agrees",
        "tls.handshake": "{endpoint}, name {sni}: {result}",
        "tls.completed": "handshake completed",
        "tls.certificate": "certificate for {names}, issued by {issuer}",
        "tls.decoy": "decoy name {sni} to the same address: {result}",
        "tls.client_hello": "the {client}'s own hello ({hello}): {result}",
        "tls.matrix": "other hellos to the same name: passed {passed}; cut {cut}",
        "tls.filtered": "cut, but not a hello the service's clients send: {hellos} (not a block of the service)",
        "tls.keyed_on": "keyed on the {key}: the repeated, alternated attempts agree",
        "tls.split_evades": "the same hello split across two TCP segments passes",
        "http.answer": "{url}: HTTP {status}",
        "http.no_answer": "{url}: {failure}",
        "http.redirect": "redirected ({status}) to {location}",
        "http.blockpage": "block page ({kind}: {match})",
        "http.decoy": "the same request with the decoy name {name}: {result}",
        "http.same_name": "the same request with the real name on a fresh connection: {result}",
        "http.answered": "answered",
        "step.works": "works",
        "step.fails": "fails",
        "step.failure": "{failure}",
        "mtproto.framing": "{framing}: {result}",
        "chat.host_ok": "{host}: works",
        "diff.control_sees_it": "A control vantage or the helper abroad fails the same way: the service is down, not blocked.",
        # the differential that decided, by differential and fault
        "diff.control_resolver.path": "An independent (control) resolver answers the name: your provider's resolver hides or forges it.",
        "diff.control_resolver.server": "The control resolver fails the name too: it does not resolve anywhere, so it is not a block.",
        "diff.decoy_sni.path": "The same address with a decoy name completes the handshake: the block is keyed on the service's name (SNI).",
        "diff.decoy_sni.server": "A decoy name to the same address fails the same way: the server's own fault, not a block.",
        "diff.tls+decoy_sni.path": "A decoy name fails too: the secure connection itself is cut on the way.",
        "diff.tls.path": "Ordinary HTTPS to the same host works: only QUIC is cut.",
        "diff.decoy_host.path": "The same request with a decoy name is answered: the block is keyed on the service's name.",
        "diff.other_family.path": "The same name connects over the other address family (IPv4 or IPv6): only one family is blocked.",
        "diff.decoy_host.server": "The same request with the real name on a fresh connection is answered: not a block.",
        "diff.blockpage_fingerprint.path": "The answer matches a known block page.",
        "diff.trust_store.server": "The certificate is the server's own but invalid (e.g. expired): not an interception.",
        "diff.control_stun.path": "A control STUN server answers: only the service's UDP is stopped.",
        "diff.control_stun.server": "The control STUN servers are silent too: UDP does not work here at all.",
        "diff.control_download.path": "A control download is fast: only this service is slowed.",
        "diff.transport.path": "The connection opens, then the app's own traffic is cut.",
        "diff.transport.server": "The server itself answered wrongly or not at all: not a block.",
        "diff.neutral_bytes.path": "Neutral bytes of the same size get through: the protocol's signature is what is stopped.",
        "diff.control_stream.path": "A control stream gets through: this stream is what is cut.",
        "diff.helper_plain.path": "The helper abroad receives a plain transfer: the path freezes this one.",
        "diff.helper_decoy_sni.path": "A transfer with a decoy name to the helper passes: the freeze is keyed on the name.",
        "fault.server": "The server itself fails (it answers garbage, closes or fails the decoy too): not a block.",
        "fault.monitor": "The monitor could not measure this (its own problem): no claim about the network.",
        "fault.unseparated": "Nothing could be compared with: the failure stands as this step saw it.",
        "unseparated.ip_blocked": "Every address and port fails; from here alone that cannot be told from a dead server: other measuring points and the helper abroad compare.",
        "unseparated.tls_blocked": "A decoy name is cut too: the secure connection itself is cut on the way, or the server is down (other measuring points and the helper abroad compare).",
        "unseparated.tls_mitm": "The certificate does not validate for the service's name, and nothing shows it is the server's own: someone may be intercepting.",
        "fault.path": "The comparison points at the path between you and the service.",
        "why.ok": "Every check passed.",
        "why.offline": "Not measured: this point is offline.",
        "why.failed": "{check} failed: {failure}.",
        "why.failed_plain": "{check} failed.",
    },
    "ru": {
        "notice.monitor_problem": "Проблема с монитором: {reason}",
        "notice.upload_held": (
            "Отчёты в центр задерживаются уже {minutes} мин: {why}. Они ждут на этой машине и уйдут, когда линия пропустит; "
            "не перезапускайте агент (после перезапуска он отправляет только новые данные)."
        ),
        "upload.line_stalls": "линия до центра зависает (отправки остаются без ответа; так действует цензор, замораживающий соединения с зарубежными хостингами)",
        "upload.centre_refuses": "центр или что-то на пути отклоняет или обрывает отправки",
        "notice.upload_lost": "{count} отсчётов не удалось доставить, агент их отбросил (см. его журнал).",
        "notice.upload_unknown": "Доходят ли отчёты до центра, неизвестно: не удалось прочитать локальный агент ({detail}).",
        "banner.no_round": "Ни одно измерение ещё не завершено: первое занимает до минуты.",
        "banner.offline": "Точка не в сети с {time}: о сервисах судить нельзя. {cause}",
        "banner.offline_now": "Точка не в сети: о сервисах судить нельзя. {cause}",
        "banner.allowlist": "С {time} работают только разрешённые сайты: отечественные открываются, зарубежные — нет (региональное отключение).",
        "banner.blocked": "Сейчас заблокированы:",
        "banner.blocked_item": "{service} — {verdict} с {time}",
        "banner.partial_item": "{service} — частично ({verdict}) с {time}",
        "banner.blocked_item_now": "{service} — {verdict}",
        "banner.partial_item_now": "{service} — частично ({verdict})",
        "banner.works": "Сейчас ничего не заблокировано: {services} доступны.",
        "banner.none_measured": "В последнем измерении ни один сервис не удалось проверить.",
        "banner.down": "Не работает у всех, это не блокировка: {services}.",
        "banner.error": "Не измерено (проблема самого монитора): {services}.",
        "list.and": "{first} и {last}",
        "cause.no_network": "Подключение не работает совсем: даже зарубежные сайты не проходят шаг «{check}» ({failure}).",
        "cause.dns": "Имена не разрешаются: DNS-серверы не отвечают ни для одного контрольного сайта ({failure}).",
        "cause.connect": "Имена разрешаются, но соединения с контрольными сайтами не проходят ({failure}).",
        "cause.intercepted": "На защищённые соединения отвечает кто-то другой: сертификаты контрольных сайтов поддельные ({failure}).",
        "cause.portal": "На веб-запросы приходит чужой ответ: вместо контрольных сайтов отвечает страница входа или фильтр.",
        "cause.other": "Контрольные сайты не открываются: {sites}.",
        "cause.unknown": "Ни один контрольный сайт не открылся, и ни один не сказал почему (возможно, измерение прервалось).",
        "cause.allowlist": "Отечественные контрольные сайты открываются, а все зарубежные — нет (первый сбой: {check} — {failure}).",
        "cause.site": "{site}: {check} — {failure}",
        "advice.no_network": "Подключён ли компьютер (Wi-Fi, кабель, мобильные данные)? Открывается ли хоть один сайт в браузере? Если ничего не открывается, перезагрузите роутер.",
        "advice.dns": "Проверьте настройки DNS на этом компьютере и на роутере; откройте сайт в браузере, чтобы понять, работают ли имена вообще.",
        "advice.connect": "Не выпускает ли эта сеть трафик только через прокси (работа, учёба)? Не мешает ли межсетевой экран или VPN-клиент? Откройте зарубежный сайт в браузере.",
        "advice.intercepted": (
            "Между вами и сайтами стоит антивирус с проверкой HTTPS, прокси организации или страница входа (гостиница, "
            "кафе, Wi-Fi в поезде): отключите проверку, проверьте настройки прокси или откройте браузер и войдите в сеть."
        ),
        "advice.portal": "Откройте любой сайт в браузере: если появится страница входа (гостиница, кафе, Wi-Fi в поезде), войдите; монитор продолжит сам.",
        "advice.allowlist": "С вашей стороны чинить нечего: в регионе сейчас работают только разрешённые сервисы. Монитор продолжает измерять и записывает, сколько это длится.",
        "step.connected": "{endpoint}: соединение за {ms} мс",
        "step.failed_at": "{endpoint}: {failure}",
        "dns.answer": "{resolver}: {addresses}",
        "dns.answer_control": "{resolver} (контрольный): {addresses}",
        "dns.failed": "{resolver}: {failure}",
        "dns.failed_control": "{resolver} (контрольный): {failure}",
        "dns.pinned": "Без DNS: адреса заданы в каталоге ({addresses}).",
        "dns.judged.withheld": "{line} — скрывает имя",
        "dns.judged.tampered": "{line} — ложный адрес",
        "dns.judged.unhealthy": "{line} — этот DNS-сервер не отвечает и на другие имена (не учитывается)",
        "dns.judged.global": "{line} — контрольный DNS-сервер согласен",
        "tls.handshake": "{endpoint}, имя {sni}: {result}",
        "tls.completed": "рукопожатие прошло",
        "tls.certificate": "сертификат для {names}, выдан {issuer}",
        "tls.decoy": "подставное имя {sni} на тот же адрес: {result}",
        "tls.client_hello": "собственное приветствие клиента {client} ({hello}): {result}",
        "tls.matrix": "другие приветствия с тем же именем: прошли {passed}; оборваны {cut}",
        "tls.filtered": "оборваны, но клиенты сервиса такие приветствия не отправляют: {hellos} (это не блокировка сервиса)",
        "tls.keyed_on": "по признаку {key}: повторные попытки поочерёдно дают то же",
        "tls.split_evades": "то же приветствие, разбитое на два TCP-сегмента, проходит",
        "http.answer": "{url}: HTTP {status}",
        "http.no_answer": "{url}: {failure}",
        "http.redirect": "перенаправление ({status}) на {location}",
        "http.blockpage": "страница блокировки ({kind}: {match})",
        "http.decoy": "тот же запрос с подставным именем {name}: {result}",
        "http.same_name": "тот же запрос с настоящим именем по новому соединению: {result}",
        "http.answered": "ответ получен",
        "step.works": "работает",
        "step.fails": "не работает",
        "step.failure": "{failure}",
        "mtproto.framing": "{framing}: {result}",
        "chat.host_ok": "{host}: работает",
        "diff.control_sees_it": "Контрольная точка или помощник за рубежом видят тот же сбой: сервис не работает у всех, это не блокировка.",
        "diff.control_resolver.path": "Независимый (контрольный) DNS-сервер отдаёт адрес: DNS-сервер провайдера его скрывает или подменяет.",
        "diff.control_resolver.server": "Контрольный DNS-сервер тоже не знает имени: оно не разрешается нигде, это не блокировка.",
        "diff.decoy_sni.path": "Тот же адрес с подставным именем проходит рукопожатие: блокировка настроена на имя сервиса (SNI).",
        "diff.decoy_sni.server": "Подставное имя на тот же адрес не проходит точно так же: это сбой самого сервера, а не блокировка.",
        "diff.tls+decoy_sni.path": "Подставное имя тоже не проходит: защищённое соединение обрывается по дороге.",
        "diff.tls.path": "Обычный HTTPS к тому же серверу работает: обрывается только QUIC.",
        "diff.decoy_host.path": "Тот же запрос с подставным именем получает ответ: блокировка настроена на имя сервиса.",
        "diff.other_family.path": "То же имя доступно по другому семейству адресов (IPv4 или IPv6): заблокировано только одно.",
        "diff.decoy_host.server": "Тот же запрос с настоящим именем по новому соединению получает ответ: это не блокировка.",
        "diff.blockpage_fingerprint.path": "Ответ совпадает с известной страницей блокировки.",
        "diff.trust_store.server": "Сертификат принадлежит самому серверу, но недействителен (например, истёк): это не перехват.",
        "diff.control_stun.path": "Контрольный STUN-сервер отвечает: останавливается только UDP-трафик сервиса.",
        "diff.control_stun.server": "Контрольные STUN-серверы тоже молчат: UDP здесь не работает вообще.",
        "diff.control_download.path": "Контрольная загрузка идёт быстро: замедлен только этот сервис.",
        "diff.transport.path": "Соединение открывается, затем собственный трафик приложения обрывается.",
        "diff.transport.server": "Сервер сам ответил неправильно или не ответил: это не блокировка.",
        "diff.neutral_bytes.path": "Нейтральные байты того же размера проходят: останавливается именно сигнатура протокола.",
        "diff.control_stream.path": "Контрольный поток проходит: обрывается именно этот поток.",
        "diff.helper_plain.path": "Помощник за рубежом получает обычную передачу: по дороге замораживается именно эта.",
        "diff.helper_decoy_sni.path": "Передача помощнику с подставным именем проходит: заморозка настроена на имя.",
        "fault.server": "Сбой самого сервера (он отвечает мусором, закрывает соединение или так же не проходит с подставным именем): это не блокировка.",
        "fault.monitor": "Монитор не смог это измерить (его собственная проблема): о сети это ничего не говорит.",
        "fault.unseparated": "Сравнить было не с чем: сбой засчитан так, как его увидел этот шаг.",
        "unseparated.ip_blocked": "Не отвечает ни один адрес и порт; отсюда одного не отличить от неработающего сервера: сравнивают другие точки и помощник за рубежом.",
        "unseparated.tls_blocked": "Подставное имя тоже обрывается: защищённое соединение режется по дороге, или сервер не работает (сравнивают другие точки и помощник за рубежом).",
        "unseparated.tls_mitm": "Сертификат не подходит к имени сервиса, и ничто не говорит, что он принадлежит самому серверу: возможно, соединение перехватывают.",
        "fault.path": "Сравнение указывает на путь между вами и сервисом.",
        "why.ok": "Все проверки прошли.",
        "why.offline": "Не измерялось: точка не в сети.",
        "why.failed": "Шаг «{check}» не прошёл: {failure}.",
        "why.failed_plain": "Шаг «{check}» не прошёл.",
    },
}

# The judge's own reasons (probe/reasons.py, whose ENGLISH is their English here too), in Russian:
# every key of it but `text` (a helper's or an older record's own words, shown as they are).
ENGINE_RU: dict[str, str] = {
    # a target, from its first failing check
    "check_failed": "{check}: {failure}",
    "monitor_could_not_measure": "монитор не смог измерить",
    "helper_line_failed": "{line}: монитор не смог измерить через помощника",
    "no_finding": "проверка не дала заключения (ошибка msgreach)",
    "differential": "(сравнение: {differential})",
    "no_differential": "ни одно сравнение не отличает блокировку от сбоя самого сервера",
    "no_check_ran": "ни одна проверка не выполнилась",
    "check_still_running": "проверка ещё шла",
    "round_deadline": "раунд закончился по времени",
    "retry_cut": "повторная проверка прервана концом раунда",
    "retry_inconclusive": "повторная проверка не прошла на той же проверке ({failure}), но её повторы не согласовались: остаётся эта попытка, чьи повторы согласовались",
    "family_blocked": "все адреса {family} недоступны, а по {other} соединение есть",
    "after_trigger": (
        "измерено через {seconds} с после нашей же пробы-триггера ({trigger}) к {destination}, в пределах паузы {cooldown} с: "
        "возможно, это временная блокировка, вызванная нами, а не свидетельство о цели"
    ),
    "control_fails_too": "{source} тоже не проходит шаг «{check}» ({failure})",
    "by_control_vantage": "контрольная точка",
    "by_helper": "помощник {helper}",
    "vantage_controls_failed": "контрольные сайты точки не открываются",
    "check_overran": "проверка вышла за все пределы времени",
    "check_crashed": "сама проверка упала (ошибка msgreach)",
    # a vantage, from its control sites
    "no_controls": "контрольные сайты не заданы",
    "no_international_controls": "зарубежные контрольные сайты не заданы",
    "allowlist": "отечественные контрольные сайты открываются, а все зарубежные — нет: {failed}",
    "allowlist_keyed": "по {family} белый список {keyed_on}",
    "keyed_on_name": "следует именам (отечественное имя проходит к зарубежному адресу; зарубежное имя или соединение без имени к отечественному адресу — нет)",
    "keyed_on_address": "следует адресам (к отечественному адресу проходит всё, отечественное имя за рубежом — нет)",
    "keyed_on_name_and_address": "требует и разрешённого имени, и отечественного адреса",
    "keyed_on_open": "не действует (все пробы прошли)",
    "allowlist_probe_stopped": "проба «{probe}» остановлена: {families}",
    "allowlist_domestic_name_foreign_address": "отечественное имя на зарубежном адресе",
    "allowlist_foreign_name_domestic_address": "зарубежное имя на отечественном адресе",
    "allowlist_domestic_address_no_name": "отечественный адрес без имени",
    "allowlist_family": "{family}: {outcome}",
    "probe_passed": "прошла",
    "probe_stopped": "остановлена",
    "probe_mixed": "то проходила, то нет",
    "probe_unmeasured": "не измерялась",
    "site_failed": "{site} ({check}: {failure})",
    "site_verdict": "{site} ({verdict})",
    "no_control_site_passes": "ни один контрольный сайт не проходит все проверки",
    # dns
    "resolver_answered": "{resolver} ответил: {failure}",
    "resolver_withholds": "{resolver} скрывает имя, которое контрольный DNS-сервер отдаёт",
    "control_resolver_agrees": "контрольный DNS-сервер тоже не знает имени",
    "no_resolver_answered": "ни один DNS-сервер не дал адреса, контрольный не ответил",
    # tcp
    "local_resource": "у монитора кончился локальный ресурс",
    "control_addresses_connect": "адреса от DNS-сервера провайдера не отвечают, а адреса от контрольного соединяются",
    "every_address_fails": "не отвечает ни один ожидаемый адрес и порт",
    # tls
    "invalid_certificate": "сертификат недействителен (например, истёк), но принадлежит самому серверу",
    "certificate_not_for_name": "сертификат не подходит к имени",
    "decoy_sni_passes": "подставное имя {decoy} на тот же адрес проходит",
    "server_fails_decoy": "сервер так же не проходит с подставным именем ({failure}): сбой самого сервера",
    "decoy_fails_too": "подставное имя тоже не проходит ({failure})",
    "server_answer_began": "сервер начал отвечать ({received} байт), затем рукопожатие не прошло ({failure}): сервер отвечает по капле или обрывает ответ сам, это не обрыв рукопожатия",
    "no_browser_handshake": "здесь не удалось сделать рукопожатие как у браузера",
    "keyed_on_client_hello": "блокировка по отпечатку ClientHello: приветствие браузера обрывается ({failure}), а приветствие Python на тот же адрес и имя проходит",
    "keyed_on_fingerprint": "блокировка по отпечатку ClientHello: приветствие клиента {client} ({hello}) обрывается ({failure}) дважды, а {passing} на тот же адрес и имя проходят дважды",
    "no_agreement": "рукопожатие не проходит ({failure}), но повторные попытки не согласуются: способ блокировки не назван",
    # http
    "blockpage": "страница блокировки ({kind}: {match})",
    "response_began": "сервер начал отвечать, затем ответ оборвался: это не обрыв запроса",
    "not_http": "сервер ответил не по HTTP",
    "same_name_answered": "тот же запрос с настоящим именем по новому соединению получает ответ",
    "decoy_answered": "тот же запрос с подставным именем {decoy} получает ответ",
    "decoy_request_fails": "запрос с подставным именем тоже не проходит ({failure})",
    # the service's own protocol after TCP connected
    "server_silent": "сервер подтвердил наши первые байты и так и не ответил",
    "no_tcp_to_dc": "нет TCP-соединения с дата-центром",
    "dc_not_mtproto": "{framings}: дата-центр ответил, но не по MTProto",
    "framings_failed": "{broken} не прошли после TCP-соединения ({failure})",
    "framings_failed_while": "{broken} не прошли после TCP-соединения ({failure}), а {passed} прошли",
    "framings_failed_obfuscated2": "{broken} не прошли после TCP-соединения ({failure}), а {passed} прошли: цензор узнаёт obfuscated2 (то, что шлют приложения)",
    "framings_failed_plain": "{broken} не прошли после TCP-соединения ({failure}), а {passed} прошли: цензор узнаёт первые байты обычного MTProto",
    "no_port_connected": "ни один порт не соединился",
    "chat_cut": "TCP-соединение открылось, затем обмен чата оборвался ({failure}, на этапе {stages})",
    "chat_server_answered": "сервер ответил на начало обмена чата: {failure}",
    "hosts_share": "{count} из {total} серверов: {reason}",
    # quic
    "aioquic_missing": "нет aioquic: QUIC не измерялся",
    "quic_no_tls_result": "нет результата TCP+TLS для сравнения (поставьте quic после tls)",
    "quic_tls_failed_too": "TCP+TLS к этому серверу тоже не проходит: сравнивать не с чем",
    "quic_request_failed": "рукопожатие QUIC прошло, затем запрос не прошёл ({failure})",
    "quic_server_ended": "сервер сам завершил рукопожатие QUIC ({failure})",
    "quic_singled_out": "QUIC к серверу не проходит ({failure}), а TCP+TLS к нему проходят",
    "quic_keyed_on_name": "QUIC к серверу не проходит ({failure}), а TCP+TLS к нему проходят, и подставное имя проходит рукопожатие QUIC на тот же адрес: блокировка по имени",
    "quic_keyed_on_quic": "QUIC к серверу не проходит ({failure}), а TCP+TLS к нему проходят, и подставное имя тоже не проходит ({decoy_failure}): блокируется сам QUIC",
    # stun
    "not_stun": "собеседник ответил, но не по STUN",
    "control_stun_silent": "контрольный STUN-сервер не ответил",
    "control_stun_answered": "нет ответа STUN ({failure}), а контрольный STUN-сервер {controls} ответил",
    "no_control_stun": "нет контрольного STUN-сервера для сравнения",
    "control_stun_peers_silent": "контрольные STUN-серверы тоже молчат",
    # throughput
    "transfer_froze": "загрузка замерла после {bytes} байт: заморозка на 16–20 КБ",
    "transfer_stalled": "загрузка остановилась после {bytes} байт",
    "transfer_cut": "загрузка оборвалась ({failure}) после {bytes} байт",
    "transfer_slow": "{rate} байт/с, ниже порога",
    "control_download_fast": "{how}, а контрольная загрузка {controls} шла быстро",
    "control_download_fast_sni_keyed": "{how}, а контрольная загрузка {controls} шла быстро; с подставным именем на тот же адрес тоже быстро: замедление по имени",
    "control_download_fast_decoy_slow": (
        "{how}, а контрольная загрузка {controls} шла быстро; с подставным именем на тот же адрес тоже медленно, дважды попеременно: "
        "не по имени"
    ),
    "transfer_froze_packets": "загрузка замерла после {bytes} байт ({packets} пакетов в обе стороны): заморозка на 16–20 КБ",
    "transfer_stalled_packets": "загрузка остановилась после {bytes} байт ({packets} пакетов в обе стороны)",
    "upload_froze_too": "{how}; отправка тоже замерла (на {packets} пакетах в обе стороны)",
    "upload_froze_download_flowed": (
        "отправка {kb} КБ дважды замерла ({acked} байт подтверждено, {packets} пакетов в обе стороны), а загрузка с того "
        "же адреса и имени шла ({download_packets} пакетов): заморозка по направлению"
    ),
    "upload_froze_fewer_packets": (
        "отправка {kb} КБ дважды замерла ({acked} байт подтверждено, {packets} пакетов в обе стороны); загрузка с того же адреса и имени "
        "шла, но пакетов в ней было меньше ({download_packets}): счёт в обе стороны, а не направление"
    ),
    "line_freeze": "передача замерла ({direction}), и эталон {controls} в этом раунде замер так же: заморозка линии, а не сервиса",
    # the helper checks
    "no_helper_configured": "для этого раунда не задан помощник (`helpers:`)",
    "line.helper_line_frozen": "связь с помощником за рубежом замерла после {kb} КБ",
    "line.helper_line_dripping": "ответ помощника шёл по капле: {kb} КБ за {seconds} с",
    "line.connection_reset": "связь с помощником за рубежом сброшена после {kb} КБ",
    "line.eof_error": "связь с помощником за рубежом закрылась после {kb} КБ",
    "line.generic_timeout_error": "помощник за рубежом не ответил за {seconds} с",
    "line.connection_refused": "помощник за рубежом не принял соединение",
    "line.helper_answer_too_large": "ответ помощника превысил допустимый размер ({kb} КБ) и отброшен",
    "line.helper_answer_unsigned": "ответ не подписан помощником (подделан по дороге или другой секрет)",
    "line.helper_answer_malformed": "ответ не по протоколу помощника",
    "line.helper_refused": "помощник отклонил запрос (HTTP {http})",
    "line.helper_no_time": "до конца раунда не осталось времени, чтобы спросить помощника",
    "line.other": "связь с помощником за рубежом не работает ({failure})",
    "stream.dropped": "потерян с первого пакета",
    "stream.cut": "оборван через {seconds} с",
    "stream.lost": "потеряно {share}",
    "stream.lost_and": "потеряно {share}, {how}",
    "stream_both_fail": "поток звонка: {call}; контрольный поток той же формы тоже не прошёл ({control}): дело в пути до помощника, а не в звонке",
    "stream_call_cut": "поток звонка {how}, а контрольный поток той же формы шёл дальше (поток звонка потерял {call_loss}, контрольный — {control_loss})",
    "stream_call_lossy": "поток звонка потерял {call_loss} пакетов (порог {floor}), а контрольный поток — {control_loss}",
    "stream_loss_by_chance": (
        "поток звонка потерял {call_loss} пакетов (порог {floor}), контрольный — {control_loss}: "
        "пакетов слишком мало, чтобы отличить это от просто плохой линии"
    ),
    "no_probes_sent": "ни одна проба не отправлена",
    "signature_seen": "дошло {arrived} из {size} байт",
    "signature_seen_failure": "дошло {arrived} из {size} байт, отправитель получил: {failure}",
    "signature_died": "первый пакет рукопожатия {protocol} не дошёл ({seen}), а нейтральные байты того же размера дошли",
    "signature_and_neutral_died": "до помощника не дошли ни сигнатура {protocol} ({seen}), ни нейтральные байты ({neutral_arrived} из {neutral_size})",
    "transfer_plain_failed": "даже обычная передача от помощника не прошла (на {kb} КБ): сравнивать не с чем",
    "transfer_no_time": "до конца раунда не осталось времени на передачи от помощника ({kinds}): сравнивать не с чем",
    "transfer_keyed_on_name": "TLS с адреса помощника с именем {sni} замер на {kb} КБ, а подставное имя {decoy} на тот же адрес прошло: заморозка по имени",
    "transfer_keyed_on_address": "TLS с адреса помощника замер на {kb} КБ при любом имени (и подставном), а обычный TCP с него прошёл: заморозка по адресу",
    "helper_upload_froze_keyed_on_direction": (
        "отправка помощнику ({kind}) замерла на {kb} КБ подтверждённых ({packets} пакетов в обе стороны), а все "
        "загрузки от него прошли ({download_packets} пакетов и больше): заморозка по направлению"
    ),
    "helper_upload_froze_fewer_packets": (
        "отправка помощнику ({kind}) замерла на {kb} КБ подтверждённых ({packets} пакетов в обе стороны); загрузки "
        "прошли с меньшим числом пакетов ({download_packets}): счёт в обе стороны, а не направление"
    ),
}

# Every template the page says, the judge's reasons included: their English is probe/reasons.py's
# (one English text), their Russian is ENGINE_RU.
_ENGINE_EN = {key: text for key, text in ENGLISH.items() if key != "text"}
assert not _ENGINE_EN.keys() & _PAGE_REASONS["en"].keys(), "a page key and a judge key are the same"
REASONS: dict[str, dict[str, str]] = {
    "en": {**_PAGE_REASONS["en"], **_ENGINE_EN},
    "ru": {**_PAGE_REASONS["ru"], **ENGINE_RU},
}

# Failure strings (probe/failures.py) in words.
FAILURES: dict[str, dict[str, str]] = {
    "en": {
        "connection_refused": "connection refused",
        "connection_reset": "connection reset",
        "connection_aborted": "connection aborted",
        "generic_timeout_error": "no answer in time",
        "eof_error": "connection closed",
        "host_unreachable": "host unreachable",
        "network_unreachable": "network unreachable",
        "dns_nxdomain_error": "the name does not exist (NXDOMAIN)",
        "dns_no_answer": "no address in the answer",
        "dns_refused_error": "the DNS server refused",
        "dns_servfail_error": "the DNS server failed (SERVFAIL)",
        "dns_bogon_error": "a private or reserved address",
        "dns_temporary_failure": "a temporary DNS failure",
        "dns_blockpage_address": "the address of a block page",
        "dns_inconsistent": "an address outside the service's networks",
        "dns_bad_response": "an answer that is not DNS",
        "ssl_invalid_hostname": "a certificate for another name",
        "ssl_unknown_authority": "a certificate from an unknown issuer",
        "ssl_invalid_certificate": "an invalid certificate",
        "ssl_failed_handshake": "the secure handshake failed",
        "http_blockpage": "a block page",
        "http_body_limit": "the answer was cut at the size limit",
        "protocol_error": "an answer in another protocol",
        "stalled": "the transfer stalled",
        "throttled": "slower than the floor",
        "udp_stream_cut": "the stream was cut",
        "udp_stream_loss": "too many packets lost",
        "signature_lost": "the protocol's first packets did not arrive",
        "check_unavailable": "this check cannot run here",
        "no_helper_configured": "no helper configured",
        "helper_line_frozen": "the line to the helper abroad froze",
        "helper_line_dripping": "the helper's answer dripped",
        "helper_answer_too_large": "the helper's answer was too large",
        "helper_answer_unsigned": "the helper's answer was not signed",
        "helper_answer_malformed": "the helper's answer was malformed",
        "helper_refused": "the helper refused the request",
        "helper_no_time": "no time left in the round to ask the helper",
        "helper_error": "the helper could not say",
        "local_resource_exhausted": "the monitor ran out of a local resource",
        "unknown_failure": "an unknown failure",
    },
    "ru": {
        "connection_refused": "соединение отклонено",
        "connection_reset": "соединение сброшено",
        "connection_aborted": "соединение прервано",
        "generic_timeout_error": "нет ответа вовремя",
        "eof_error": "соединение закрыто",
        "host_unreachable": "узел недоступен",
        "network_unreachable": "сеть недоступна",
        "dns_nxdomain_error": "имя не существует (NXDOMAIN)",
        "dns_no_answer": "в ответе нет адреса",
        "dns_refused_error": "DNS-сервер отказал",
        "dns_servfail_error": "сбой DNS-сервера (SERVFAIL)",
        "dns_bogon_error": "частный или зарезервированный адрес",
        "dns_temporary_failure": "временный сбой DNS",
        "dns_blockpage_address": "адрес страницы блокировки",
        "dns_inconsistent": "адрес вне сетей сервиса",
        "dns_bad_response": "ответ не по протоколу DNS",
        "ssl_invalid_hostname": "сертификат на другое имя",
        "ssl_unknown_authority": "сертификат неизвестного издателя",
        "ssl_invalid_certificate": "недействительный сертификат",
        "ssl_failed_handshake": "защищённое рукопожатие не прошло",
        "http_blockpage": "страница блокировки",
        "http_body_limit": "ответ обрезан по лимиту размера",
        "protocol_error": "ответ на другом протоколе",
        "stalled": "передача остановилась",
        "throttled": "медленнее порога",
        "udp_stream_cut": "поток оборван",
        "udp_stream_loss": "потеряно слишком много пакетов",
        "signature_lost": "первые пакеты протокола не дошли",
        "check_unavailable": "эту проверку здесь нельзя выполнить",
        "no_helper_configured": "помощник не настроен",
        "helper_line_frozen": "связь с помощником за рубежом замерла",
        "helper_line_dripping": "ответ помощника шёл по капле",
        "helper_answer_too_large": "ответ помощника слишком велик",
        "helper_answer_unsigned": "ответ помощника не подписан",
        "helper_answer_malformed": "ответ помощника не по протоколу",
        "helper_refused": "помощник отклонил запрос",
        "helper_no_time": "в раунде не осталось времени спросить помощника",
        "helper_error": "помощник не смог ответить",
        "local_resource_exhausted": "у монитора кончился локальный ресурс",
        "unknown_failure": "неизвестный сбой",
    },
}

# The checks as steps (the order of a target's checks is the pipeline's: DNS, TCP, TLS, HTTP, then
# the protocol checks).
CHECKS: dict[str, dict[str, str]] = {
    "en": {
        "dns": "DNS",
        "tcp": "TCP",
        "tls": "TLS",
        "http": "HTTP",
        "quic": "QUIC (HTTP/3)",
        "mtproto": "MTProto (Telegram's protocol)",
        "whatsapp_chat": "WhatsApp chat protocol",
        "stun": "STUN (calls over UDP)",
        "throughput": "download speed",
        "allowlist": "allowlist probe (name or address)",
        "udp_stream": "call-like UDP stream",
        "circumvention": "VPN/proxy signature",
        "helper_transfer": "transfer to the helper",
        "helper": "the helper abroad",
    },
    "ru": {
        "dns": "DNS",
        "tcp": "TCP",
        "tls": "TLS",
        "http": "HTTP",
        "quic": "QUIC (HTTP/3)",
        "mtproto": "MTProto (протокол Telegram)",
        "whatsapp_chat": "протокол чата WhatsApp",
        "stun": "STUN (звонки по UDP)",
        "throughput": "скорость загрузки",
        "allowlist": "проба белого списка (имя или адрес)",
        "udp_stream": "UDP-поток как при звонке",
        "circumvention": "сигнатура VPN/прокси",
        "helper_transfer": "передача помощнику",
        "helper": "помощник за рубежом",
    },
}


# --- saying a reason in a language ----------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A point in time inside a sentence: the page shows it in the reader's own time zone."""

    at: float

    def utc(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M UTC")


Param: TypeAlias = "str | int | float | Moment | Reason | Sequence[Param]"


@dataclass(frozen=True)
class Reason:
    """What to say, as a template key and its parameters. `english` is the text shown when no
    template exists for the key in the reader's language (the judge's reasons carry their own
    English rendering)."""

    key: str
    params: Mapping[str, Param] = field(default_factory=dict)
    english: str = ""


@dataclass(frozen=True)
class Said:
    """A rendered reason: text pieces and moments, the language they are in, and whether that is
    the language asked for (False: the English fallback)."""

    parts: tuple[str | Moment, ...]
    lang: str
    translated: bool = True

    def text(self) -> str:
        return "".join(p.utc() if isinstance(p, Moment) else p for p in self.parts)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def as_reason(value: object) -> Reason:
    """A reason as the engine gives it: the judge's (probe.reasons: its key and parameters, nested
    ones too, with its English as the fallback; `text`, a helper's or an older record's own
    words, as English only), or a plain English sentence (said as such, in every language)."""
    if isinstance(value, Reason):
        return value
    if isinstance(value, engine.Reason):
        if value.key == "text":
            return Reason("", {}, str(value))
        return Reason(value.key, {name: _from_engine(param) for name, param in value.params.items()}, str(value))
    return Reason("", {}, str(value) if value is not None else "")


def _from_engine(param: engine.ReasonParam) -> Param:
    if isinstance(param, engine.Reason):
        return as_reason(param)
    if isinstance(param, tuple):
        return [as_reason(item) for item in param]
    return param


def say(reason: Reason | engine.Reason | str, lang: str) -> Said:
    """The reason in `lang`; without a template there, in English (its own text or the English
    template), marked untranslated."""
    reason = as_reason(reason)
    template = REASONS.get(lang, {}).get(reason.key) or PHRASES.get(lang, {}).get(reason.key)
    if template is not None:
        parts = _fill(template, reason.params, lang)
        if parts is not None:
            return Said(parts, lang, True)
    if reason.english:
        return Said((reason.english,), "en", lang == "en")
    english = REASONS["en"].get(reason.key) or PHRASES["en"].get(reason.key)
    if english is not None:
        parts = _fill(english, reason.params, "en")
        if parts is not None:
            return Said(parts, "en", lang == "en")
    return Said((reason.key,), "en", False)


def words(reason: Reason | engine.Reason | str, lang: str) -> str:
    """The reason as plain text (times in UTC)."""
    return say(reason, lang).text()


def _fill(template: str, params: Mapping[str, Param], lang: str) -> tuple[str | Moment, ...] | None:
    parts: list[str | Moment] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[position : match.start()])
        name = match.group(1)
        if name not in params:
            return None  # a template that needs what the reason does not carry: fall back
        parts.extend(_param(name, params[name], lang))
        position = match.end()
    parts.append(template[position:])
    return tuple(_merge(parts))


def _param(name: str, value: Param, lang: str) -> list[str | Moment]:
    if isinstance(value, Moment):
        return [value]
    if isinstance(value, Reason):
        return list(say(value, lang).parts)
    if isinstance(value, list | tuple):
        out: list[str | Moment] = []
        for index, item in enumerate(value):
            if index:
                out.append(", ")
            out.extend(_param(name, item, lang))
        return out
    text = str(value)
    if name.endswith("failure"):
        return [failure_words(text, lang)]
    if name.endswith("verdict"):
        return [NAMES[lang].get(text, text)]
    if name.endswith("check"):
        return [CHECKS[lang].get(text, text)]
    return [text]


def failure_words(failure: str, lang: str) -> str:
    """A failure string in words (`unknown_failure: …` keeps its detail)."""
    code, _, detail = failure.partition(": ")
    said = FAILURES[lang].get(code)
    if said is None:
        return failure
    return f"{said}: {detail}" if detail else said


def _merge(parts: list[str | Moment]) -> list[str | Moment]:
    merged: list[str | Moment] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return merged


def join_names(names: Sequence[str], lang: str) -> Reason | str:
    """`A, B and C` (`A, B и C`)."""
    if len(names) <= 1:
        return "".join(names)
    return Reason("list.and", {"first": ", ".join(names[:-1]), "last": names[-1]})



def choose_language(query: str, accept_language: str) -> str:
    """``?lang=ru|en`` wins; else the first of our languages in Accept-Language by its q; else en."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "lang" and value in LANGUAGES:
            return value
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, index, primary))
    return min(ranked)[2] if ranked else "en"


# --- the line to a helper abroad ----------------------------------------------------------------------
# What the vantage says of its line to each helper: its title, and a working line in words; a
# failed one is said by its exchange's reason (HelperExchange.failure_reason, templates `line.*`).

HELPER_LINE: dict[str, dict[str, str]] = {
    "en": {
        "title": "Helper abroad {helper}",
        "up": "the line works ({exchanges} exchanges in the last round, none over {kb} KB)",
    },
    "ru": {
        "title": "Помощник за рубежом {helper}",
        "up": "связь работает ({exchanges} обменов в последнем раунде, каждый не больше {kb} КБ)",
    },
}


def helper_line_words(lang: str, exchange: HelperExchange) -> str:
    """How an exchange with the helper failed, in `lang`."""
    return words(exchange.failure_reason(), lang)
