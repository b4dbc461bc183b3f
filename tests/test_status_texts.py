"""The status page's words: every verdict of probe.model explained in both languages, and the
language chosen from `?lang=` or Accept-Language."""

from __future__ import annotations

import pytest

from probe.model import SERVICE_VERDICTS, VANTAGE_VERDICTS
from probe.status_page import COLOURS
from probe.status_texts import LANGUAGES, MEANINGS, NAMES, PHRASES, choose_language

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
