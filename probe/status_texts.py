"""The status page's words, in English and Russian: what each verdict means to a volunteer, one
sentence each, and the page's own phrases. Plain data, so that a translator edits one file."""

from __future__ import annotations

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

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Can messengers be reached from here?",
        "vantage": "Measuring point",
        "last_round": "Last measured {time}, took {seconds} s.",
        "blocked_since": "Blocked since {time}",
        "ok_since": "Works since {time}",
        "state_since": "In this state since {time}",
        "share": "Reachable {day} of the last 24 hours, {week} of the last 7 days",
        "no_history": "No history yet",
        "not_measured": "Not measured in the last 7 days (the point was offline or the monitor failed)",
        "last_24h": "Last 24 hours (one bar per hour)",
        "last_7d": "Last 7 days (one bar per 6 hours)",
        "targets": "Servers checked",
        "changes": "Changes",
        "evidence": "details",
        "legend": "What the colours mean",
        "controls": "Control sites (they test this point's own connection)",
        "no_round": "No measurement has finished yet.",
        "monitor_problem": "The monitor has a problem: {reason}",
        "updated": "Updated {time}",
        "reload": "The list of services changed: reload the page.",
        "machine": "For programs:",
        "col_target": "server",
        "col_state": "state",
        "col_since": "since",
        "col_why": "why",
        "reachable": "reachable",
        "targets_down": "{down} of {total} targets down (for everyone: not a block)",
        "language": "Language",
    },
    "ru": {
        "title": "Доступны ли мессенджеры отсюда?",
        "vantage": "Точка измерения",
        "last_round": "Последнее измерение {time}, заняло {seconds} с.",
        "blocked_since": "Заблокирован с {time}",
        "ok_since": "Работает с {time}",
        "state_since": "В этом состоянии с {time}",
        "share": "Доступен {day} времени за последние 24 часа, {week} за 7 дней",
        "no_history": "Истории пока нет",
        "not_measured": "За последние 7 дней не измерялось (точка была не в сети или монитор не работал)",
        "last_24h": "Последние 24 часа (столбик — час)",
        "last_7d": "Последние 7 дней (столбик — 6 часов)",
        "targets": "Проверенные серверы",
        "changes": "Изменения",
        "evidence": "подробности",
        "legend": "Что означают цвета",
        "controls": "Контрольные сайты (проверяют подключение самой точки)",
        "no_round": "Ни одно измерение ещё не завершено.",
        "monitor_problem": "Проблема с монитором: {reason}",
        "updated": "Обновлено {time}",
        "reload": "Список сервисов изменился: обновите страницу.",
        "machine": "Для программ:",
        "col_target": "сервер",
        "col_state": "состояние",
        "col_since": "с",
        "col_why": "почему",
        "reachable": "доступен",
        "targets_down": "не работают {down} из {total} целей (у всех: это не блокировка)",
        "language": "Язык",
    },
}


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
