"""Metrics and the listener: the contract's families, state sets with exactly one series at 1,
counters that count, no address of the vantage anywhere, `promtool check metrics` silent; and
/metrics, /healthz, /status.json and the status page served by the real listener."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections import defaultdict

import httpx
import pytest
from msgreach_contract import CONTRACT_FILE, METRIC_FAMILIES, SERVICE_VERDICTS, SHARED_CONTRACT_FILE, TARGET_VERDICTS, families_in_contract
from msgreach_helpers import free_port, require_tool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

import probe
from probe.history import History
from probe.metrics import State, registry_for
from probe.runner import run_all
from probe.server import Server

LOOPBACK = "127.0.0.1"
SOURCE = "127.0.0.77"  # the vantage's own address in these tests: it must never show


@pytest.fixture(scope="module")
def measured(env, tmp_path_factory):
    """Two rounds of two vantages (one offline), recorded into a State."""
    import asyncio

    env.resolve("m-ok.good.test")
    env.resolve("m-mitm.good.test")
    services = [
        {"name": "svc", "targets": [env.target("ok", "m-ok.good.test"), env.target("refused", "m-ok.good.test", "refused", addresses=[LOOPBACK])]},
        {"name": "mitm", "targets": [env.target("wrongname", "m-mitm.good.test", "wrongname")]},
    ]
    vantages = [
        env.vantage(name="home", source_address=SOURCE),
        # Offline: its only resolver answers nothing, so its controls fail.
        env.vantage(name="cut-off", country="YY", source_address=SOURCE, resolvers=[env.dead_dns.address]),
    ]
    config = env.load(tmp_path_factory.mktemp("metrics"), env.config(services, vantages=vantages, schedule={"timeouts": {"dns": 0.3}}))
    state = State(config)
    history = History()  # the verdict history feeds msgreach_target_verdict_since_timestamp_seconds
    for _ in range(2):
        for result in asyncio.run(run_all(config)):
            state.record(result)
            history.record(result)
    text = generate_latest(registry_for(state, history)).decode()
    return state, text


def _samples(text: str) -> dict[str, list]:
    found = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append(sample)
    return found


def test_every_contract_family_is_exposed(measured):
    _, text = measured
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    missing = [name for name in METRIC_FAMILIES if name not in declared]
    assert not missing, missing


def test_the_family_list_is_the_contracts():
    in_contract = families_in_contract(CONTRACT_FILE.read_text())
    assert in_contract == set(METRIC_FAMILIES)


@pytest.mark.skipif(not SHARED_CONTRACT_FILE.is_file(), reason="../shared/CONTRACT.md is not beside this checkout")
def test_the_repositorys_copy_of_the_contract_is_current():
    """docs/contract/CONTRACT.md is what the tests check against: it must be the shared one."""
    assert CONTRACT_FILE.read_text() == SHARED_CONTRACT_FILE.read_text(), "copy ../shared/CONTRACT.md to docs/contract/"


def test_every_series_has_a_vantage_label(measured):
    _, text = measured
    for name, samples in _samples(text).items():
        if name.startswith("msgreach_") and name != "msgreach_build_info":
            assert all("vantage" in s.labels for s in samples), name


def test_target_state_set_has_exactly_one_series_at_1(measured):
    state, text = measured
    by_target = defaultdict(dict)
    for sample in _samples(text)["msgreach_target_verdict"]:
        labels = sample.labels
        by_target[(labels["vantage"], labels["service"], labels["target"])][labels["verdict"]] = sample.value
    expected = {
        (name, service.service, target.target): target.verdict
        for name, result in state.latest.items()
        for service in result.services
        for target in service.targets
    }
    assert set(by_target) == set(expected)
    for key, series in by_target.items():
        assert set(series) == set(TARGET_VERDICTS), key  # the whole state set, every round
        assert [v for v, value in series.items() if value == 1] == [expected[key]], key
        assert all(value in (0, 1) for value in series.values())
    assert expected[("home", "svc", "ok")] == "ok"
    assert expected[("home", "svc", "refused")] == "ip_blocked"
    assert expected[("home", "mitm", "wrongname")] == "tls_mitm"
    assert expected[("cut-off", "svc", "ok")] == "vantage_offline"


def test_service_state_set_has_exactly_one_series_at_1(measured):
    _, text = measured
    by_service = defaultdict(dict)
    for sample in _samples(text)["msgreach_service_verdict"]:
        by_service[(sample.labels["vantage"], sample.labels["service"])][sample.labels["verdict"]] = sample.value
    assert set(by_service) == {("home", "svc"), ("home", "mitm"), ("cut-off", "svc"), ("cut-off", "mitm")}
    for key, series in by_service.items():
        assert set(series) == set(SERVICE_VERDICTS)
        assert sum(series.values()) == 1, key
    assert by_service[("home", "svc")]["partial"] == 1
    assert by_service[("home", "mitm")]["tls_mitm"] == 1
    assert by_service[("cut-off", "svc")]["vantage_offline"] == 1


def test_gauges_and_counters(env, measured):
    _, text = measured
    samples = _samples(text)

    def value(name: str, **labels) -> float:
        matching = [s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(matching) == 1, (name, labels, matching)
        return matching[0]

    assert value("msgreach_rounds_total", vantage="home") == 2
    assert value("msgreach_vantage_online", vantage="home") == 1
    assert value("msgreach_vantage_online", vantage="cut-off") == 0
    assert value("msgreach_service_reachable_ratio", vantage="home", service="svc") == 0.5
    assert value("msgreach_check_success", vantage="home", service="svc", target="ok", check="tls") == 1
    assert value("msgreach_check_success", vantage="home", service="svc", target="refused", check="tcp") == 0
    assert value("msgreach_check_failures_total", vantage="home", service="svc", target="refused", check="tcp", failure="connection_refused") == 2
    assert value("msgreach_check_duration_seconds", vantage="home", service="svc", target="ok", check="http") > 0
    # The certificate's expiry, also when it did not validate.
    assert value("msgreach_tls_cert_not_after_timestamp_seconds", vantage="home", service="mitm", target="wrongname") > time.time()
    assert value("msgreach_tls_cert_not_after_timestamp_seconds", vantage="home", service="svc", target="ok") > time.time()
    assert value("msgreach_vantage_info", vantage="cut-off", country="YY", asn="64500", network="loopback") == 1
    assert value("msgreach_build_info", version=probe.__version__) == 1
    assert value("msgreach_last_round_timestamp_seconds", vantage="home") <= time.time()
    assert value("msgreach_round_duration_seconds", vantage="home") > 0
    resolvers = {s.labels["resolver"] for s in samples["msgreach_dns_lookup_duration_seconds"] if s.labels["vantage"] == "home"}
    assert resolvers == {env.dns.address, env.control_dns.address}


def test_controls_appear_in_check_metrics_not_in_verdicts(measured):
    _, text = measured
    samples = _samples(text)
    assert any(s.labels["service"] == "controls" for s in samples["msgreach_check_success"])
    assert not any(s.labels["service"] == "controls" for s in samples["msgreach_target_verdict"])


def test_an_offline_vantage_exports_no_check_results_for_its_services(measured):
    _, text = measured
    samples = _samples(text)
    assert not any(s.labels["vantage"] == "cut-off" and s.labels["service"] != "controls" for s in samples["msgreach_check_success"])


def test_failure_labels_are_bounded(measured):
    _, text = measured
    for sample in _samples(text)["msgreach_check_failures_total"]:
        assert ":" not in sample.labels["failure"]


def test_no_address_of_the_vantage(measured):
    _, text = measured
    assert SOURCE not in text


def test_promtool_check_metrics_is_silent(measured):
    _, text = measured
    promtool = require_tool(shutil.which("promtool"), "promtool (Debian package prometheus)")
    completed = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "" and completed.stderr.strip() == ""


def test_state_keeps_counters_across_a_config_change(measured):
    """What a SIGHUP reload does to the state: a new config, the same counters."""
    from dataclasses import replace

    state, _ = measured
    before = dict(state.rounds)
    state_copy = State(state.config, dict(state.latest), state.failures.copy(), state.rounds.copy(), dict(state.finished_at))
    state_copy.config = replace(state.config, vantages=[state.config.vantages[0]])
    text = generate_latest(registry_for(state_copy)).decode()
    assert f'msgreach_rounds_total{{vantage="home"}} {float(before["home"])}' in text


# --- the listener --------------------------------------------------------------------------------




@pytest.fixture
async def listener(measured):
    state, _ = measured
    server = Server(state, state.config.listen)
    host, port = await server.start(f"{LOOPBACK}:{free_port()}")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", trust_env=False, timeout=5) as client:
        yield server, client
    await server.close()


async def test_listener_metrics(listener):
    _, client = listener
    response = await client.get("/metrics")  # httpx asks for gzip, as Prometheus does
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-encoding"] == "gzip" and response.headers["vary"] == "Accept, Accept-Encoding"
    assert int(response.headers["content-length"]) == response.num_bytes_downloaded
    assert "msgreach_rounds_total" in response.text
    assert SOURCE not in response.text
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and int(plain.headers["content-length"]) == len(plain.content)
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("process_")]  # noqa: E731 - the process' own lines move
    assert strip(plain.text) == strip(response.text)


async def test_a_page_that_fails_to_render_is_a_500_and_one_logged_traceback(listener, monkeypatch, caplog):
    server, client = listener

    def broken(query: str = "") -> None:
        raise KeyError("a reason template the page does not know")

    monkeypatch.setattr(server, "_status_json", broken)
    with caplog.at_level(logging.ERROR, logger="probe.server"):
        response = await client.get("/status.json")
    assert response.status_code == 500 and "internal error" in response.text
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [KeyError]
    assert (await client.get("/healthz")).status_code == 200  # the listener still answers


async def test_listener_healthz(listener):
    server, client = listener
    response = await client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert server.health() == (True, "ok")


async def test_healthz_fails_when_rounds_stop(measured):
    state, _ = measured
    stale = State(state.config, dict(state.latest), finished_at={name: time.time() - 10_000 for name in state.finished_at})
    server = Server(stale, state.config.listen, started_at=time.time() - 10_000)
    host, port = await server.start(f"{LOOPBACK}:{free_port()}")
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"http://{host}:{port}/healthz")
        assert response.status_code == 503
        assert "no round finished" in response.text
    finally:
        await server.close()


async def test_listener_status_page(listener):
    _, client = listener
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for words in ("Measuring point home", "Measuring point cut-off", "svc", "mitm", "partial", "tls_mitm", "vantage_offline", "ssl_invalid_hostname"):
        assert words in page, words
    assert SOURCE not in page


async def test_listener_status_json(listener):
    _, client = listener
    response = await client.get("/status.json")
    assert response.status_code == 200
    document = response.json()
    assert {v["vantage"] for v in document["vantages"]} == {"home", "cut-off"}


async def test_listener_refuses_what_it_does_not_serve(listener):
    _, client = listener
    assert (await client.get("/nope")).status_code == 404
    assert (await client.post("/metrics", content=b"x")).status_code == 405
    head = await client.head("/metrics")
    assert head.status_code == 200 and head.content == b""


async def test_results_held_packed_serve_the_same_bytes(measured, monkeypatch):
    """`run` holds each vantage's latest result packed between rounds (probe/kept.py): the page,
    /status.json, a target's JSON and /metrics served from it are the bytes served from the
    records themselves; a read after a release is a fresh copy, equal to the records."""
    from types import SimpleNamespace

    from probe import status_page

    state, _ = measured
    monkeypatch.setattr(status_page, "time", SimpleNamespace(time=lambda: 1_800_000_000.0))  # the page's "updated"

    def copy() -> State:
        return State(state.config, dict(state.latest), state.failures.copy(), state.rounds.copy(), dict(state.finished_at))

    live, packed = copy(), copy()
    packed.latest.pack()
    first = packed.latest["home"]
    packed.latest.release()
    again = packed.latest["home"]
    assert again == first == live.latest["home"] and again is not first
    assert packed.latest.verdicts("home") == {s.service: s.verdict for s in live.latest["home"].services}
    paths = ["/", "/?lang=ru", "/status.json", "/status.json?vantage=home&service=svc&target=ok", "/status.json?vantage=home&service=controls&target=ctl"]
    bodies: list[list[bytes]] = []
    for held in (live, packed):
        server = Server(held, held.config.listen, started_at=1.0)
        host, port = await server.start(f"{LOOPBACK}:{free_port()}")
        try:
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}", trust_env=False, timeout=5) as client:
                served = [(await client.get(path)).content for path in paths]
                metrics = (await client.get("/metrics", headers={"Accept-Encoding": "identity"})).text
                served.append("\n".join(line for line in metrics.splitlines() if not line.startswith("process_")).encode())
        finally:
            await server.close()
        bodies.append(served)
    assert bodies[0] == bodies[1]
    assert b"ssl_invalid_hostname" in bodies[1][2] and b"Measuring point home" in bodies[1][0]


async def test_status_page_escapes_names(env, tmp_path):
    services = [{"name": "<script>alert(1)</script>", "targets": [env.target("t", "control.good.test")]}]
    config = env.load(tmp_path, env.config(services))
    state = State(config)
    [result] = await run_all(config)
    state.record(result)
    from probe import status_page

    page = status_page.render(state, True, "ok")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    json.dumps(result.as_json())  # the evidence serialises


def test_metrics_are_rendered_once_per_change_not_per_scrape(measured):
    """A scrape serves the bytes rendered after the last round; a new round renders anew."""
    from probe.metrics import Exposition

    state, _ = measured
    exposition = Exposition(state)
    exposition.refresh(openmetrics=False)  # the text format (before a scrape it renders OpenMetrics, as Prometheus asks)
    rendered = exposition._cached[False][1]
    ours, process = exposition.render()
    assert exposition._cached[False][1] is rendered  # the second scrape rendered nothing new
    assert b"process_cpu_seconds_total" in process and b"process_" not in ours
    state.record(next(iter(state.latest.values())))
    exposition.refresh()
    assert exposition._cached[False][1] is not rendered
    assert b"msgreach_rounds_total" in exposition.render()[0]


def test_gzip_and_plain_scrapes_carry_the_same_text(measured):
    """Kept compressed, served as one gzip stream to whoever asks for it (Prometheus does), as
    text to the rest; both the same exposition, scrape after scrape (the cached stream is never
    finished by a scrape)."""
    import gzip

    from probe.metrics import Exposition, render

    state, _ = measured
    exposition = Exposition(state)
    for _ in range(2):
        plain = b"".join(exposition.render())
        unzipped = gzip.decompress(b"".join(exposition.render(gzip=True)))
        ours, process = plain.split(b"# HELP process_", 1)
        assert ours == render(exposition._collectors)
        assert unzipped.split(b"# HELP process_", 1)[0] == ours
    assert sum(map(len, exposition._cached[False].deflated)) * 5 < len(ours)


def test_a_gzip_scrape_is_one_whole_gzip_member(measured):
    """A gzip scrape is one gzip member, whole (a reader that stops after the first member, as
    many clients' decoders do, reads it all; its trailer's CRC-32 and length hold), in both
    formats, scrape after scrape; between scrapes only bytes are kept, no compressor's state."""
    import gzip
    import zlib

    from probe.metrics import Exposition

    state, _ = measured
    exposition = Exposition(state, History())
    for openmetrics in (False, True):
        for _ in range(2):
            body = b"".join(exposition.render(gzip=True, openmetrics=openmetrics))
            reader = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member, no more
            text = reader.decompress(body)
            assert reader.eof and reader.unused_data == b""
            assert gzip.decompress(body) == text  # checks the trailer
            plain = b"".join(exposition.render(openmetrics=openmetrics))
            assert text.split(b"# HELP process_")[0] == plain.split(b"# HELP process_")[0]  # the process' own lines move
            assert b"# HELP process_" in text and text.endswith(b"# EOF\n") == openmetrics
    assert all(type(piece) is bytes for kept in exposition._cached.values() for piece in kept.deflated)


def test_openmetrics_when_asked_rendered_once_per_change(measured):
    """A scraper that asks for OpenMetrics (Prometheus does) gets the same samples in OpenMetrics,
    `# EOF` last, gzip or not, from a render kept until the state changes; after a round the
    format of the last scrape is the one rendered (the text is not made for nobody)."""
    import gzip

    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    from probe.metrics import Exposition

    state, _ = measured
    exposition = Exposition(state, History())
    text = b"".join(exposition.render()).decode()
    served = b"".join(exposition.render(openmetrics=True))
    zipped = gzip.decompress(b"".join(exposition.render(gzip=True, openmetrics=True)))
    assert zipped.split(b"# HELP process_")[0] == served.split(b"# HELP process_")[0]  # the process' own lines move between two scrapes
    assert zipped.endswith(b"# EOF\n") and b"# HELP process_" in zipped
    assert served.endswith(b"# EOF\n") and served.count(b"# EOF") == 1
    parsed = list(openmetrics_families(served.decode()))  # the strict OpenMetrics parser

    def samples(families) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples
                if not s.name.startswith("process_") and not s.name.endswith("_created")}

    assert samples(parsed) == samples(text_string_to_metric_families(text)) and len(samples(parsed)) > 50
    kept = exposition._cached[True][1]
    exposition.render(openmetrics=True)
    assert exposition._cached[True][1] is kept  # a second scrape rendered nothing new
    state.record(next(iter(state.latest.values())))
    exposition.refresh()  # after a round: the format last asked for, OpenMetrics here
    assert exposition._cached[True][1] is not kept and False not in exposition._cached


@pytest.mark.parametrize("accept, wanted", [
    # Prometheus 2.x's default scrape protocols, then text-only scrapers.
    ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2", True),
    ("application/openmetrics-text; version=0.0.1", True), ("text/plain;version=0.0.4", False), ("", False), ("*/*", False),
    ("application/openmetrics-text;q=0", False),
])
def test_accept(accept, wanted):
    from probe.server import accepts_openmetrics

    assert accepts_openmetrics(accept) is wanted


@pytest.mark.parametrize("batch", [1, 2, 1000])
def test_families_written_in_batches_are_the_families_written_whole(measured, monkeypatch, batch):
    """/metrics is written a few samples at a time (HELP and TYPE once per family): the bytes of
    prometheus_client's generate_latest over the whole registry, whatever the batch size."""
    from probe import metrics

    state, _ = measured
    history = History()
    for result in state.latest.values():
        history.record(result)
    found = metrics.collectors(state, history)
    whole = CollectorRegistry(auto_describe=False)
    for collector in found:
        whole.register(collector)
    monkeypatch.setattr(metrics, "_BATCH", batch)
    assert metrics.render(found) == generate_latest(whole)
    assert generate_latest(whole).count(b"\n") > 100
    assert metrics.render(found, openmetrics=True) == generate_openmetrics(whole)


def test_sample_lines_are_prometheus_clients_for_any_label_and_value(monkeypatch):
    """msgreach writes its own families' sample lines itself (issue #22: the library's writer was
    most of a round's /metrics refresh): byte for byte what prometheus_client writes, in both
    formats, for label values that need escaping or are not ASCII, and for every kind of value."""
    from probe import metrics

    odd = ['plain', 'quote " in it', "back\\slash", "new\nline", "кириллица ✓", "", "trailing\\", '\\"\n']
    values = [0, 1, 2, True, False, 0.0, 1.0, 0.25, -3.5, 1e-7, 12345678.0, 1.5e22, float("inf"), float("-inf"), float("nan"), 1_700_000_000.123]
    rows = [((a, b, f"t{i}"), v) for i, (a, b, v) in enumerate(zip(odd * 2, reversed(odd * 2), values, strict=False))]
    families = [
        metrics._Family("msgreach_odd", "Odd \\ labels\nand \"values\"", "gauge", ["vantage", "check", "a_target"], lambda: iter(rows)),
        metrics._Family("msgreach_odd_count", "A counter", "counter", ["zz", "aa"], lambda: iter([(("x", "y"), 3), (("only one",), 1)])),
        metrics._Family("msgreach_no_labels", "No labels", "gauge", [], lambda: iter([((), 0.5)])),
        metrics._Family("msgreach_empty", "No samples", "gauge", ["vantage"], lambda: iter([])),
    ]
    assert all(metrics._writes_lines(f) for f in families)

    class Families:
        def collect(self):
            return families

    whole = CollectorRegistry(auto_describe=False)
    whole.register(Families())
    for batch in (1, 3, 1000):
        monkeypatch.setattr(metrics, "_BATCH", batch)
        assert metrics.render([Families()]) == generate_latest(whole)
        assert metrics.render([Families()], openmetrics=True) == generate_openmetrics(whole)
    assert b'quote \\" in it' in generate_latest(whole) and "кириллица".encode() in generate_latest(whole)


@pytest.mark.parametrize("header, wanted", [
    ("gzip", True), ("gzip, deflate, br", True), ("deflate, gzip;q=0.5", True), ("x-gzip", True), ("GZIP", True),
    ("", False), ("identity", False), ("deflate", False), ("gzip;q=0", False), ("gzip;q=0.0", False), ("gzip;q=x", False),
])
def test_accept_encoding(header, wanted):
    from probe.server import accepts_gzip

    assert accepts_gzip(header) is wanted


def test_the_served_metrics_have_every_family(measured):
    """What `msgreach run` serves (Exposition) and what registry_for gives come from one list of
    collectors: the served /metrics once lacked msgreach_udp_stream_loss_ratio."""
    from probe.metrics import Exposition

    state, _ = measured
    history = History()
    served = b"".join(Exposition(state, history).render()).decode()
    families = {f.name for f in text_string_to_metric_families(served)}
    assert families == {f.name for f in text_string_to_metric_families(generate_latest(registry_for(state, history)).decode())}
    assert "msgreach_udp_stream_loss_ratio" in families and "msgreach_target_verdict_since_timestamp_seconds" in families

