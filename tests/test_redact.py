"""The scrubber on the forms a vantage's address takes in text servers send back: dotted, glued
to host names, dashed and underscored as ISP host names write it; and what it must leave alone."""

from __future__ import annotations

import logging

import pytest

from probe.redact import SCRUBBED, LogScrubber, addresses_in, any_secret, scrub

S = SCRUBBED


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Your IP: 81.2.69.160", f"Your IP: {S}"),
        ("81-2-69-160", S),
        ("host 81-2-69-160.dynamic.isp.example", f"host {S}.dynamic.isp.example"),
        ("dsl-81-2-69-160.pppoe.rt.ru", f"dsl-{S}.pppoe.rt.ru"),
        ("ticket 81_2_69_160", f"ticket {S}"),
        ("81.2.69.160.dynamic2.isp.example", f"{S}.dynamic2.isp.example"),
        ("ip81.2.69.160", f"ip{S}"),
        ("http://warning.rt.ru/?ip=81.2.69.160&host=81-2-69-160.rt.ru&id=42", f"http://warning.rt.ru/?ip={S}&host={S}.rt.ru&id=42"),
        ("5-81-2-69-160", S),  # a longer run: one public address in it scrubs it all
        # left alone: private addresses in any form, dates, phone numbers, versions, UUIDs
        ("lan 10-1-2-3.lan 192_168_1_4 127.0.0.1", "lan 10-1-2-3.lan 192_168_1_4 127.0.0.1"),
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),
        ("call 8-800-555-35-35", "call 8-800-555-35-35"),
        ("version 1.2.3.4.5", "version 1.2.3.4.5"),
        ("123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
    ],
)
def test_forms_of_an_address(text: str, clean: str) -> None:
    assert scrub(text) == clean
    # What the archive asks before it scrubs a record: whether the scrub would change the text.
    assert any_secret(addresses_in(text)) == (clean != text)
    measured = {"81.2.69.160"}
    assert any_secret(addresses_in(text), allowed=measured) == (scrub(text, allowed=measured) != text)


def test_measured_remote_ends_stay_in_every_form_and_denied_ones_go() -> None:
    assert scrub("server 149-154-167-51.telegram.example", allowed={"149.154.167.51"}) == "server 149-154-167-51.telegram.example"
    assert scrub("bound 10-1-2-3", deny={"10.1.2.3"}) == f"bound {S}"
    assert not any_secret(addresses_in("server 149-154-167-51.telegram.example"), allowed={"149.154.167.51"})
    assert any_secret(addresses_in("bound 10-1-2-3"), deny={"10.1.2.3"})
    assert any_secret(addresses_in("mapped ::ffff:81.2.69.160"))  # as the scrub reads it: 81.2.69.160
    assert not any_secret(addresses_in("mapped ::ffff:81.2.69.160"), allowed={"81.2.69.160"})


def test_log_lines_lose_the_dashed_form(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("probe.test_redact")
    caplog.handler.addFilter(LogScrubber())
    with caplog.at_level(logging.INFO, logger="probe.test_redact"):
        logger.info("redirected to %s", "http://block.example/?h=81-2-69-160.dyn")
    assert caplog.records[-1].getMessage() == f"redirected to http://block.example/?h={S}.dyn"
