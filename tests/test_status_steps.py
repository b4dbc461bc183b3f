"""A target's evidence as steps, from real rounds against the loopback servers: what each step
saw, which step decided, and the differential said in words (tests/test_status_page_browser.py
shows them in a browser)."""

from __future__ import annotations

import asyncio

from probe.runner import run_all
from probe.status_steps import explain
from probe.status_texts import words


def _target(env, tmp_path, target):
    config = env.load(tmp_path, env.config([{"name": "svc", "targets": [target]}]))
    [result] = asyncio.run(run_all(config))
    return result.services[0].targets[0]


def test_a_server_that_speaks_no_tls_to_any_name_is_its_own_fault(env, tmp_path):
    env.resolve("st-not-tls.good.test")
    target = _target(env, tmp_path, env.target("web", "st-not-tls.good.test", "not_tls"))
    assert str(target.verdict) == "down"
    explained = explain(target)
    tls = next(s for s in explained.steps if s.check == "tls")
    assert tls.decided is not None and not tls.ok
    assert "fails the same way: the server's own fault, not a block" in words(tls.decided, "en")
    assert "сбой самого сервера" in words(tls.decided, "ru")
    assert [s.check for s in explained.steps][:3] == ["dns", "tcp", "tls"]
    assert all(s.decided is None for s in explained.steps if s is not tls)


def test_a_working_target_says_every_check_passed_with_what_each_saw(env, tmp_path):
    env.resolve("st-ok.good.test")
    target = _target(env, tmp_path, env.target("web", "st-ok.good.test"))
    explained = explain(target)
    assert [words(r, "en") for r in explained.why] == ["Every check passed."]
    seen = {s.check: [words(r, "en") for r in s.seen] for s in explained.steps}
    assert any("(control): 127.0.0.1" in line for line in seen["dns"])
    assert any("connected in" in line for line in seen["tcp"])
    assert any("handshake completed" in line for line in seen["tls"]) and any("issued by" in line for line in seen["tls"])
    assert any(line.startswith("https://st-ok.good.test") and "HTTP 200" in line for line in seen["http"])


def test_a_block_page_is_named_with_its_match(env, tmp_path):
    env.resolve("st-451.good.test")
    target = _target(env, tmp_path, env.target("web", "st-451.good.test", params={"http": {"path": "/451"}}))
    assert str(target.verdict) == "http_blocked"
    http = next(s for s in explain(target).steps if s.check == "http")
    lines = [words(r, "en") for r in http.seen]
    assert any("HTTP 451" in line for line in lines) and any(line.startswith("block page (status") for line in lines)
    assert http.decided is not None and words(http.decided, "en") == "The answer matches a known block page."


def test_a_block_without_a_differential_says_what_compares_instead(env, tmp_path):
    env.resolve("st-close.good.test")
    target = _target(env, tmp_path, env.target("web", "st-close.good.test", "hello_close"))
    assert str(target.verdict) == "tls_blocked"
    _, decided = explain(target).why
    assert words(decided, "en").startswith("A decoy name is cut too")
