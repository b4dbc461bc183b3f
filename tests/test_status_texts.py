"""The status page's words: every verdict of probe.model explained in both languages, every
reason template in both with the same parameters, every failure string and check named, the
fallback to English when a template is missing, and the language chosen from `?lang=` or
Accept-Language."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probe.model import SERVICE_VERDICTS, VANTAGE_VERDICTS
from probe.status_page import COLOURS
from probe.status_texts import (
    CHECKS,
    FAILURES,
    LANGUAGES,
    MEANINGS,
    NAMES,
    PHRASES,
    REASONS,
    Moment,
    Reason,
    choose_language,
    say,
    words,
)

EVERY_STATE = {str(v) for v in SERVICE_VERDICTS} | {str(v) for v in VANTAGE_VERDICTS} | {"none"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_verdict_has_a_name_a_sentence_and_a_colour(lang):
    assert set(NAMES[lang]) == EVERY_STATE
    assert set(MEANINGS[lang]) == EVERY_STATE
    assert set(COLOURS) == EVERY_STATE
    for state, sentence in MEANINGS[lang].items():
        assert sentence.endswith(".") and sentence.count(". ") == 0, (lang, state, sentence)  # one sentence


def test_both_languages_have_the_same_phrases():
    assert set(PHRASES["en"]) == set(PHRASES["ru"])
    import re

    for key, text in PHRASES["en"].items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", PHRASES["ru"][key])), key


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        ("", "", "en"),
        ("", "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("", "en-GB,en;q=0.9,ru;q=0.8", "en"),
        ("", "de-DE,de;q=0.9,ru;q=0.5,en;q=0.4", "ru"),
        ("", "ru;q=0, en", "en"),
        ("", "fr", "en"),
        ("lang=ru", "en", "ru"),
        ("x=1&lang=en", "ru", "en"),
        ("lang=xx", "ru", "ru"),
    ],
)
def test_choose_language(query, header, expected):
    assert choose_language(query, header) == expected


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_reason_template_exists_in_both_languages_with_the_same_parameters():
    assert set(REASONS["en"]) == set(REASONS["ru"])
    for key, text in REASONS["en"].items():
        assert set(_PLACEHOLDER.findall(text)) == set(_PLACEHOLDER.findall(REASONS["ru"][key])), key
        if re.search("[A-Za-z]{3}", _PLACEHOLDER.sub("", text).replace("HTTP", "")):  # words, not only parameters
            assert text != REASONS["ru"][key], f"{key}: not translated"


def test_every_failure_string_and_check_has_words():
    from probe import failures
    from probe.checks import REGISTRY

    constants = {v for k, v in vars(failures).items() if k.isupper() and isinstance(v, str) and not k.startswith("_")}
    for lang in LANGUAGES:
        assert constants <= set(FAILURES[lang]), constants - set(FAILURES[lang])
        assert set(REGISTRY) | {"helper"} <= set(CHECKS[lang]), set(REGISTRY) - set(CHECKS[lang])


def test_every_key_the_page_says_has_a_template():
    """Keys written in the page's modules (literal, or a family built from a known set)."""
    from probe.history import VIEW_NAMES

    root = Path(__file__).resolve().parent.parent / "probe"
    used = set()
    for module in ("status_page.py", "status_steps.py", "status_causes.py"):
        used |= set(re.findall(r"Reason\(\s*\"([a-z_.]+)\"", (root / module).read_text()))
    used |= {f"cause.{k}" for k in ("no_network", "dns", "connect", "intercepted", "portal", "other", "unknown", "allowlist")}
    used |= {f"advice.{k}" for k in ("no_network", "dns", "connect", "intercepted", "portal", "allowlist")}
    used |= {f"period_{v}" for v in VIEW_NAMES} | {f"strip_{v}" for v in VIEW_NAMES} | {f"view_{v}" for v in VIEW_NAMES}
    used |= {f"dns.{kind}{role}" for kind in ("answer", "failed") for role in ("", "_control")}
    used |= {f"banner.{k}_now" for k in ("blocked_item", "partial_item")} | {"banner.offline_now"}
    assert used - {""}
    for lang in LANGUAGES:
        missing = {key for key in used if key not in REASONS[lang] and key not in PHRASES[lang]}
        assert not missing, (lang, missing)


def test_say_renders_parameters_by_their_kind():
    reason = Reason("banner.blocked_item", {"service": "Telegram", "verdict": "ip_blocked", "time": Moment(1_800_000_000)})
    ru = say(reason, "ru")
    assert ru.translated and ru.lang == "ru"
    assert ru.parts[0] == "Telegram — Блокировка по IP с " and ru.parts[1] == Moment(1_800_000_000)
    assert words(reason, "en") == "Telegram — IP block since 2027-01-15 08:00 UTC"
    nested = Reason("why.failed", {"check": "mtproto", "failure": "connection_reset"})
    assert words(nested, "ru") == "Шаг «MTProto (протокол Telegram)» не прошёл: соединение сброшено."
    assert words(Reason("step.failure", {"failure": "unknown_failure: ValueError: x"}), "ru") == "неизвестный сбой: ValueError: x"
    assert words(Reason("cause.other", {"sites": [Reason("cause.site", {"site": "a", "check": "tls", "failure": "eof_error"}), "b"]}), "en") == (
        "The test sites fail: a: TLS — connection closed, b."
    )


def test_without_a_template_the_english_reason_shows_marked_as_english():
    plain = say("the decoy SNI example.org to the same address passes", "ru")
    assert (plain.lang, plain.translated, plain.text()) == ("en", False, "the decoy SNI example.org to the same address passes")
    assert say("same", "en").translated  # English asked, English given
    missing = say(Reason("judge.some_future_key", {"decoy": "example.org"}, "the decoy passes"), "ru")
    assert missing.lang == "en" and missing.text() == "the decoy passes"
    short = say(Reason("banner.blocked_item", {"service": "X"}, "fallback"), "ru")  # a parameter missing
    assert short.text() == "fallback" and not short.translated


def test_a_reason_of_the_judge_is_said_in_the_readers_language_by_its_key():
    """The judge's reasons (probe.reasons: a key, parameters, nested reasons) are said from the
    page's templates; a key without one, or a helper's own words, show as English, marked."""
    from probe import reasons

    clause = reasons.Reason("control_fails_too", {"source": reasons.Reason("by_helper", {"helper": "abroad"}), "check": "tcp", "failure": "connection_refused"})
    assert str(clause) == "helper abroad fails tcp too (connection_refused)"  # the JSON's English, as the judge renders it
    assert words(clause, "en") == "helper abroad fails TCP too (connection refused)"
    said = say(clause, "ru")
    assert said.translated and said.text() == "помощник abroad тоже не проходит шаг «TCP» (соединение отклонено)"
    failed = (reasons.Reason("site_failed", {"site": "example", "check": "tls", "failure": "connection_reset"}),)
    assert words(reasons.Reason("allowlist", {"failed": failed}), "ru").endswith("зарубежные — нет: example (TLS: соединение сброшено)")
    future = say(reasons.Reason("judge.some_future_key", {"decoy": "example.org"}), "ru")
    assert (future.lang, future.translated) == ("en", False)
    helper_said = say(reasons.text("the helper's own words"), "ru")
    assert (helper_said.lang, helper_said.translated, helper_said.text()) == ("en", False, "the helper's own words")


def test_every_reason_the_judge_gives_has_one_english_text_and_a_russian_one():
    from probe import reasons

    root = Path(__file__).resolve().parent.parent / "probe"
    given = set()
    for path in [*(root / "judge").glob("*.py"), root / "model.py"]:
        given |= set(re.findall(r"Reason\(\s*\"([a-z_.0-9]+)\"", path.read_text()))
    given |= {key for key in reasons.ENGLISH if key.startswith("line.")}  # HelperExchange.failure_reason's family
    assert len(given) > 60 and given <= set(reasons.ENGLISH), given - set(reasons.ENGLISH)
    engine = set(reasons.ENGLISH) - {"text"}  # `text`: words shown as they are, in no template
    assert engine <= set(REASONS["ru"]), engine - set(REASONS["ru"])
    assert all(REASONS["en"][key] == reasons.ENGLISH[key] for key in engine)  # the page's English is the judge's


def test_the_pages_colours_come_in_the_same_order_in_every_process() -> None:
    """Block verdicts are a frozenset: their colour rules in its order made the page's bytes
    differ from one process to the next (string hashes are seeded per process)."""
    code = "from probe import status_page; print(list(status_page.COLOURS))"
    orders = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)}, capture_output=True, text=True,
                             check=True).stdout for seed in (1, 2, 3, 4)}
    assert len(orders) == 1, orders
