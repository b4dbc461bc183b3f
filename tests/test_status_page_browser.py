"""The status page in a real browser (Debian's chromium + chromium-driver, driven by selenium):
what a volunteer sees on a wide screen and on a phone, in English and Russian, and that it
updates in place from /status.json.

The page is served by the real listener (probe.server.Server) fed with real rounds measured
against the loopback servers of tests/conftest.py: one configuration where every service works
and one where the `mitm` service meets a certificate for another name (tls_mitm). The history
holds a week of the first and the last two hours of the second (the same results recorded at
earlier times), so the page has bars, a "blocked since" and a list of changes to show.

Screenshots are kept in tests/artifacts/ (ignored by git). Without chromium the tests skip on a
developer's machine and fail in CI (CI=true).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from opstools import in_ci

from msgreach_helpers import free_port

from probe.history import History
from probe.metrics import State
from probe.runner import run_all
from probe.server import Server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SOURCE = "127.0.0.77"  # the vantage's own address: it must never show
RED, GREEN, SLATE = "rgb(198, 40, 40)", "rgb(27, 127, 59)", "rgb(38, 50, 56)"
WIDE, PHONE = (1280, 900), (390, 844)


def _require_browser() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "chromium and chromium-driver not installed (Debian: apt-get install chromium chromium-driver)"
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip")
    pytest.skip(message)




@pytest.fixture(scope="module")
def rounds(env, tmp_path_factory):
    """(all-ok results, results with mitm blocked), measured for real."""
    env.resolve("sp-ok.good.test")
    env.resolve("sp-mitm.good.test")

    def config(mitm_server: str):
        services = [
            {"name": "svc", "targets": [env.target("ok", "sp-ok.good.test")]},
            {"name": "mitm", "targets": [env.target("web", "sp-mitm.good.test", mitm_server)]},
        ]
        vantages = [
            env.vantage(name="home", source_address=SOURCE),
            env.vantage(name="cut-off", country="YY", source_address=SOURCE, resolvers=[env.dead_dns.address]),
        ]
        return env.load(tmp_path_factory.mktemp("status"), env.config(services, vantages=vantages, schedule={"timeouts": {"dns": 0.3}}))

    before_config = config("web")
    after_config = config("wrongname")
    before = asyncio.run(run_all(before_config))
    after = asyncio.run(run_all(after_config))
    assert {s.service: str(s.verdict) for s in after[0].services} == {"svc": "ok", "mitm": "tls_mitm"}
    assert {s.service: str(s.verdict) for s in before[0].services} == {"svc": "ok", "mitm": "ok"}
    return after_config, before, after


class _Served:
    """The real listener in a thread of its own (selenium is synchronous)."""

    def __init__(self, server: Server):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(server.start(f"127.0.0.1:{self.port}"))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def served(rounds, tmp_path):
    config, before, after = rounds
    now = time.time()
    history = History(tmp_path / "history.sqlite3", max_gap_seconds=2 * 3600)
    # A week of hourly rounds where everything worked, then mitm blocked for the last 2 hours.
    for hours_ago in range(7 * 24 - 1, 2, -1):
        for result in before:
            history.record(dataclasses.replace(result, started_at=now - hours_ago * 3600))
    for minutes_ago in (120, 60, 1):
        for result in after:
            history.record(dataclasses.replace(result, started_at=now - minutes_ago * 60))
    state = State(config)
    for result in after:
        state.record(dataclasses.replace(result, started_at=now - 60))
    served = _Served(Server(state, config.listen, history=history))
    yield served, state, before
    served.close()
    history.close()


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="msgreach-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(browser, url: str, size: tuple[int, int]) -> None:
    browser.set_window_size(*size)
    browser.get(url)


def _style(browser, element, prop: str) -> str:
    return browser.execute_script("return getComputedStyle(arguments[0])[arguments[1]]", element, prop)


def _service(browser, vantage: str, service: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, f"{vantage}-{service}")


def _shot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"status-page-{name}.png"
    # The whole page: as tall as its content.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    width = browser.execute_script("return window.innerWidth")
    size = browser.get_window_size()
    browser.set_window_size(size["width"], max(size["height"], min(height + 200, 6000)))
    browser.save_screenshot(str(path))
    browser.set_window_size(size["width"], size["height"])
    assert path.stat().st_size > 10_000, "an empty screenshot"
    assert width > 0
    return path


def test_wide_window_shows_states_in_words_colours_history_and_legend(browser, served):
    from selenium.webdriver.common.by import By

    server, _, _ = served
    _open(browser, server.url, WIDE)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Can messengers be reached from here?" in body
    assert "Measuring point home" in body and "Measuring point cut-off" in body
    assert "Health: ok" not in browser.page_source
    # The offline point says so in words, with its own colour.
    offline = browser.find_element(By.CSS_SELECTOR, "section.vantage[data-k*='cut-off'] h2 .badge")
    assert offline.text.startswith("Point offline") and _style(browser, offline, "backgroundColor") == SLATE
    assert "its own internet connection does not work" in body
    assert "Not measured in the last 7 days" in body and "Reachable 0%" not in body

    mitm = _service(browser, "home", "mitm")
    badge = mitm.find_element(By.CSS_SELECTOR, "h3 .badge")
    assert badge.text.startswith("Intercepted") and "tls_mitm" in badge.text
    assert _style(browser, badge, "backgroundColor") == RED
    assert "Blocked since" in mitm.text
    assert "Reachable" in mitm.text and "of the last 24 hours" in mitm.text
    bars = mitm.find_elements(By.CSS_SELECTOR, ":scope > .bars[data-f=bars_24h] > .bar")
    assert len(bars) == 24
    colours = [_style(browser, bar, "backgroundColor") for bar in bars]
    assert colours[-1] == RED and colours[-2] == RED  # the last two hours
    assert colours[0] == GREEN and colours.count(GREEN) >= 20
    assert all(bar.size["width"] > 5 and bar.size["height"] > 10 for bar in bars)  # visible bars
    week = mitm.find_elements(By.CSS_SELECTOR, ":scope > .bars[data-f=bars_7d] > .bar")
    assert len(week) == 28 and _style(browser, week[-1], "backgroundColor") == RED

    ok = _service(browser, "home", "svc").find_element(By.CSS_SELECTOR, "h3 .badge")
    assert ok.text.startswith("Works") and _style(browser, ok, "backgroundColor") == GREEN

    # The legend: every state in words, one sentence each, in distinct colours per kind.
    legend = browser.find_element(By.ID, "legend")
    for words in ("Only approved sites work", "Down for everyone", "Not measured", "Blocked by name (SNI)", "Slowed down"):
        assert words in legend.text, words
    kinds = {_style(browser, b, "backgroundColor") for b in legend.find_elements(By.CSS_SELECTOR, ".badge")}
    assert len(kinds) == 8  # ok, block, partial, down, error, offline, allowlist, no data

    # The changes, with times.
    mitm.find_element(By.XPATH, ".//details[summary[contains(., 'Changes')]]/summary").click()
    changes = mitm.find_elements(By.CSS_SELECTOR, "ol.changes li")
    assert [c.find_element(By.CSS_SELECTOR, ".badge code").text for c in changes[:2]] == ["tls_mitm", "ok"]
    assert all("UTC" in c.find_element(By.TAG_NAME, "time").text for c in changes[:2])

    # Nothing fetched from elsewhere, and no address of the vantage anywhere.
    origins = browser.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) <= {server.url.rstrip("/")}
    assert SOURCE not in browser.page_source
    _shot(browser, "wide")


def test_phone_window_has_no_horizontal_overflow(browser, served):
    from selenium.webdriver.common.by import By

    server, _, _ = served
    _open(browser, server.url, PHONE)
    for summary in browser.find_elements(By.CSS_SELECTOR, "details > summary"):
        browser.execute_script("arguments[0].parentElement.open = true", summary)  # evidence open too
    overflow = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1], f"the page is {overflow[0]} px wide in a {overflow[1]} px window"
    mitm = _service(browser, "home", "mitm")
    bars = mitm.find_elements(By.CSS_SELECTOR, ":scope > .bars[data-f=bars_24h] > .bar")
    assert len(bars) == 24 and all(bar.size["width"] >= 5 for bar in bars)
    assert bars[-1].location["x"] + bars[-1].size["width"] <= overflow[1]
    assert "Blocked since" in mitm.text
    _shot(browser, "phone")


def test_russian_by_accept_language_and_switchable(browser, served):
    from selenium.webdriver.common.by import By

    server, _, _ = served
    _open(browser, server.url + "?lang=ru", WIDE)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Доступны ли мессенджеры отсюда?" in body
    assert "Точка измерения home" in body and "Заблокирован с" in body and "Перехват" in body
    assert "Работают только разрешённые сайты" in body  # the legend explains allowlist
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru"
    browser.find_element(By.LINK_TEXT, "English").click()
    assert "Can messengers be reached from here?" in browser.find_element(By.TAG_NAME, "body").text


def test_accept_language_picks_russian(served):
    _, driver_path = _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    server, _, _ = served
    profile = tempfile.mkdtemp(prefix="msgreach-chromium-ru-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "ru-RU,ru,en"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        _open(driver, server.url, PHONE)
        assert "Доступны ли мессенджеры отсюда?" in driver.find_element(By.TAG_NAME, "body").text
        _shot(driver, "phone-ru")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_updates_in_place_from_status_json_without_a_reload(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, state, before = served
    _open(browser, server.url, WIDE)
    browser.execute_script("window.__sameDocument = true")
    mitm = _service(browser, "home", "mitm")
    evidence = mitm.find_element(By.CSS_SELECTOR, "table.targets details")
    browser.execute_script("arguments[0].parentElement.closest('details').open = true; arguments[0].open = true", evidence)
    assert mitm.find_element(By.CSS_SELECTOR, "h3 .badge").text.startswith("Intercepted")

    state.record(before[0])  # the next round: mitm works again
    server.server.history.record(before[0])
    browser.execute_script("window.msgreachRefresh()")
    WebDriverWait(browser, 15).until(lambda d: _service(d, "home", "mitm").find_element(By.CSS_SELECTOR, "h3 .badge").text.startswith("Works"))
    mitm = _service(browser, "home", "mitm")
    assert _style(browser, mitm.find_element(By.CSS_SELECTOR, "h3 .badge"), "backgroundColor") == GREEN
    assert "Works since" in mitm.text
    assert browser.execute_script("return window.__sameDocument === true"), "the page was reloaded"
    assert mitm.find_element(By.CSS_SELECTOR, "table.targets details").get_attribute("open") is not None  # still open
    assert "Updated" in browser.find_element(By.ID, "updated").text


def test_status_json_duration_and_history(served):
    import httpx

    server, _, _ = served
    document = httpx.get(server.url + "status.json", trust_env=False, timeout=10).json()
    assert document["duration_seconds"] > 0
    mitm = document["history"]["home"]["services"]["mitm"]
    assert mitm["verdict"] == "tls_mitm" and mitm["since"] is not None
    assert len(mitm["bars_24h"]) == 24 and len(mitm["bars_7d"]) == 28
    assert 0.9 < mitm["share_7d"] < 1.0
    offline = document["history"]["cut-off"]["services"]["mitm"]
    assert offline["verdict"] == "vantage_offline" and offline["share_7d"] is None  # offline time is not unreachable time
    assert SOURCE not in str(document)
