"""throughput: timed downloads from a real HTTP(S) object server that throttles (by rate or by
SNI), stalls after N bytes, resets, drips and misbehaves; the control and decoy comparisons.

Rates here are relative: the floor is set far above what the throttled server sends and far
below what loopback delivers, so no assertion depends on the machine's speed."""

from __future__ import annotations

import pytest
from msgreach_helpers import measured
from servers import objects

from probe import failures
from probe.checks import throughput
from probe.checks.context import ControlPhase, Skip
from probe.model import CheckResult, Download, Fault, Finding, PacketCounts, TargetResult, ThroughputEvidence, Upload, Verdict
from probe.runner import run_round

LOOPBACK = "127.0.0.1"
HOST = "download.good.test"
SLOW_SNI = "slow.good.test"
FLOOR = 2_000_000  # bytes/s: loopback is far faster, the throttled server far slower
SLOW = 200_000  # the throttled server's rate


@pytest.fixture(scope="module")
def objs(env) -> dict:
    names_seen: dict[int, str] = {}
    stats: dict = {}

    async def start() -> dict:
        valid = env.leaves["valid"]
        context = objects.tls_context(str(valid.cert), str(valid.key), names_seen)
        ports = {}
        _, ports["tls"] = await env.fleet.serve(objects.handler({SLOW_SNI: SLOW}, names_seen, stats), LOOPBACK, context=context)
        all_slow = objects.tls_context(str(valid.cert), str(valid.key), names_seen)
        _, ports["tls_all_slow"] = await env.fleet.serve(
            objects.handler({SLOW_SNI: SLOW, "example.org": SLOW}, names_seen, stats), LOOPBACK, context=all_slow
        )
        _, ports["plain"] = await env.fleet.serve(objects.handler(stats=stats), LOOPBACK)
        return ports

    ports = env.loop.call(start())
    return {"ports": ports, "stats": stats}


def params(path: str = "/object", **overrides) -> throughput.Params:
    values = {"path": path, "floor_bytes_per_second": FLOOR, "stall_seconds": 0.5, "max_seconds": 1.0, **overrides}
    return throughput.Params(**values)


def control_facts(bytes_per_second: float | None, ok: bool = True, name: str = "download") -> ControlPhase:
    download = Download("127.0.0.9", 443, measured=bytes_per_second is not None, bytes_per_second=bytes_per_second)
    check = CheckResult("throughput", ok, None if ok else failures.STALLED, evidence=ThroughputEvidence("https://mirror.test/", throughput.MIN_SIZE, download=download))
    return ControlPhase(controls={name: TargetResult("controls", name, "mirror.test", Verdict.OK if ok else Verdict.THROTTLED, [check])})


def verdict_of(result: CheckResult) -> str | None:
    """What the check's Finding argues for the path (a throttle always rests on the control)."""
    return str(result.finding.technique) if result.finding is not None and result.finding.fault == Fault.PATH else None


FAST_CONTROL = control_facts(50_000_000.0)


def context(env, port: int, *, sni: str = HOST, facts: ControlPhase | None = FAST_CONTROL, tls: bool = True):
    # A bound for the repeats (real, decoy, real, decoy at max_seconds each) to fit in.
    ctx = env.context(sni, target={"addresses": [LOOPBACK], "ports": [port], "checks": ["tcp", "tls", "throughput"]}, phase=facts, timeout=5.0)
    if tls:
        ctx.results.append(CheckResult("tls", True))
        ctx.tls_endpoint = (LOOPBACK, port)
    return ctx


async def measure(env, objs, path: str = "/object", *, port: str = "tls", sni: str = HOST, facts=FAST_CONTROL, **overrides) -> CheckResult:
    ctx = context(env, objs["ports"][port], sni=sni, facts=facts)
    return await measured(ctx, throughput, params(path, **overrides))


# --- healthy downloads -----------------------------------------------------------------------------------


async def test_fast_download_reports_its_rate(env, objs):
    result = await measure(env, objs)
    assert result.ok, result
    ev = result.as_json()
    assert (ev["status_code"], ev["bytes"], ev["measured"], ev["complete"]) == (206, throughput.MIN_SIZE, True, True)
    assert ev["bytes_per_second"] >= FLOOR
    assert objs["stats"]["requests"][-1]["range"] == f"bytes=0-{throughput.MIN_SIZE - 1}"
    assert objs["stats"]["requests"][-1]["sni"] == HOST
    assert objs["stats"]["requests"][-1]["host"] == f"{HOST}:{objs['ports']['tls']}"


@pytest.mark.parametrize("query", ["norange=1", "delimit=chunked", "delimit=close"])
async def test_object_shapes_are_read_up_to_size(env, objs, query):
    result = await measure(env, objs, f"/object?{query}")
    assert result.ok and result.as_json()["complete"] and result.as_json()["bytes"] >= throughput.MIN_SIZE


async def test_plain_http(env, objs):
    ctx = env.context(HOST, target={"addresses": [LOOPBACK], "ports": [objs["ports"]["plain"]], "checks": ["tcp", "throughput"]}, phase=FAST_CONTROL)
    ctx.connected = [(LOOPBACK, objs["ports"]["plain"])]
    ctx.results.append(CheckResult("tcp", True))
    result = await measured(ctx, throughput, params(scheme="http"))
    assert result.ok and result.as_json()["url"].startswith("http://") and "sni" not in result.as_json()


async def test_endless_body_costs_size_bytes(env, objs):
    result = await measure(env, objs, "/object?size=1000000000&norange=1&delimit=close")
    assert result.ok and result.as_json()["bytes"] < throughput.MIN_SIZE + throughput.READ_SIZE


# --- throttling, stalls, interruptions --------------------------------------------------------------


async def test_rate_under_the_floor_is_throttled(env, objs):
    result = await measure(env, objs, f"/object?rate={SLOW}")
    assert (result.ok, result.failure, verdict_of(result)) == (False, failures.THROTTLED, "throttled")
    as_json = result.as_json()  # the evidence never overwrites the result's own fields
    assert (as_json["failure"], as_json["duration_seconds"]) == (failures.THROTTLED, round(result.duration_seconds, 4))
    ev = result.as_json()
    assert ev["time_capped"] and ev["measured"]
    assert 0 < ev["bytes_per_second"] < FLOOR and ev["bytes"] < throughput.MIN_SIZE
    assert ev["controls"] == {"download": 50_000_000.0}


async def test_stall_after_16_kb_is_reported_with_its_byte_count(env, objs):
    result = await measure(env, objs, "/object?stall_after=16384")
    assert (result.failure, verdict_of(result)) == (failures.STALLED, "throttled")
    assert result.as_json()["failure"] == failures.STALLED and result.as_json()["transfer_failure"] == failures.STALLED
    ev = result.as_json()
    assert ev["bytes"] == 16384
    assert 16384 < ev["stalled_at_bytes"] < 16384 + 1024  # the body plus the response headers
    assert ev["bytes_per_second"] < FLOOR
    # The freeze is named in the reason, beside the differential that makes it a throttle.
    assert "the 16–20 KB freeze" in str(result.finding.reason) and result.finding.differential == "control_download"
    # The repeats freeze the same way, and say so as a stall (not a transfer cut by their time cap).
    assert [ev[k]["failure"] for k in ("decoy", "again", "decoy_again")] == [failures.STALLED] * 3
    assert "not keyed on the name" in str(result.finding.reason) and "keyed_on" not in ev


async def test_a_stall_outside_the_freeze_window_is_not_called_the_freeze(env, objs):
    result = await measure(env, objs, "/object?stall_after=65536")
    assert result.failure == failures.STALLED and "stalled after" in str(result.finding.reason)
    assert "freeze" not in str(result.finding.reason)


async def test_stall_before_any_byte(env, objs):
    result = await measure(env, objs, "/object?stall_after=0")
    assert result.failure == failures.STALLED and result.as_json()["bytes"] == 0


async def test_reset_mid_transfer(env, objs):
    result = await measure(env, objs, "/object?reset_after=32768")
    assert (result.failure, verdict_of(result)) == (failures.CONNECTION_RESET, "throttled")
    assert result.as_json()["interrupted_at_bytes"] >= 32768


async def test_slow_drip_is_bounded_by_max_seconds(env, objs):
    result = await measure(env, objs, "/object?drip=1", stall_seconds=0.5, max_seconds=1.0)
    assert verdict_of(result) == "throttled" and result.as_json()["time_capped"]
    assert result.as_json()["bytes"] <= 10


# --- the decoy: is the throttling keyed on the name? ------------------------------------------------


async def test_sni_keyed_throttling_is_proven_by_the_decoy(env, objs):
    result = await measure(env, objs, sni=SLOW_SNI)
    assert verdict_of(result) == "throttled"
    assert result.as_json()["decoy"]["sni"] == "example.org" and result.as_json()["decoy"]["measured"]
    assert result.as_json()["sni_keyed"] is True
    assert result.finding.differential == "control_download+decoy_sni" and "keyed on the name" in str(result.finding.reason)


async def test_throttling_of_every_name_is_not_sni_keyed(env, objs):
    result = await measure(env, objs, port="tls_all_slow", sni=SLOW_SNI)
    assert verdict_of(result) == "throttled" and result.as_json()["sni_keyed"] is False


async def test_decoy_can_be_turned_off(env, objs):
    result = await measure(env, objs, sni=SLOW_SNI, decoy=False)
    assert verdict_of(result) == "throttled" and "decoy" not in result.as_json()


# --- the control decides ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "throttled"),
    [
        (control_facts(100.0), False),  # the control is slow too: the line is slow
        (control_facts(None, ok=False), False),  # the control was not measured
        (ControlPhase(), False),  # no control transfer to compare with
        (FAST_CONTROL, True),
    ],
)
async def test_the_control_transfer_decides(env, objs, facts, throttled):
    result = await measure(env, objs, f"/object?rate={SLOW}", facts=facts, decoy=False)
    assert result.as_json()["slow"] and result.as_json()["control_fast"] is throttled
    assert (result.ok, verdict_of(result)) == ((False, "throttled") if throttled else (True, None))


async def test_a_control_barely_faster_is_no_proof(env, objs):
    # Both under 3x of each other: a bad line, not a throttle (5% loss makes every transfer crawl).
    result = await measure(env, objs, "/object?rate=1500000", facts=control_facts(2_500_000.0))
    assert result.as_json()["slow"] and result.ok and result.as_json()["control_fast"] is False
    result = await measure(env, objs, "/object?rate=1500000", facts=control_facts(2_500_000.0), control_ratio=1.2)
    assert verdict_of(result) == "throttled"


async def test_as_a_control_slowness_is_evidence_not_failure(env, objs):
    ctx = env.context(HOST, target={"addresses": [LOOPBACK], "ports": [objs["ports"]["tls"]]}, service=False)
    ctx.tls_endpoint = (LOOPBACK, objs["ports"]["tls"])
    result = await measured(ctx, throughput, params(f"/object?rate={SLOW}"))
    assert result.ok and result.as_json()["slow"] and result.as_json()["bytes_per_second"] < FLOOR
    assert "decoy" not in result.as_json() and "controls" not in result.as_json()


# --- an object that is not there is not a measurement -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/object?status=404", "HTTP 404"), ("/object?redirect=%2Fobject%3Fstatus%3D404", "HTTP 404"),
     ("/object?size=10000&delimit=close", "smaller than size"), ("/object?size=10000", "smaller than size"),
     ("/object?head_bytes=100000", "HTTP/1.x")],
)
async def test_missing_object_is_not_measured(env, objs, path, reason):
    result = await measure(env, objs, path)
    assert result.ok and result.as_json()["measured"] is False and reason in result.as_json()["reason"]
    assert "bytes_per_second" not in result.as_json()


# --- redirects: followed, to another host too ---------------------------------------------------------


async def test_redirect_on_the_same_host_is_followed(env, objs):
    result = await measure(env, objs, "/object?redirect=%2Fobject%3Fsize%3D300000")
    assert result.ok and result.as_json()["measured"] and result.as_json()["complete"]
    (hop,) = result.as_json()["redirects"]
    assert hop["status_code"] == 302 and hop["address"] == LOOPBACK
    assert result.as_json()["url"].endswith("/object?size=300000")


async def test_redirect_to_another_host_resolves_it_and_measures_there(env, objs):
    env.resolve("cdn.good.test", vantage={"a": ["127.0.0.1"]})
    port = objs["ports"]["tls"]
    location = f"https://cdn.good.test:{port}/object?rate={SLOW}"
    result = await measure(env, objs, "/object?redirect=" + location.replace(":", "%3A").replace("/", "%2F").replace("?", "%3F").replace("=", "%3D"))
    assert verdict_of(result) == "throttled"
    assert result.as_json()["url"] == location and result.as_json()["sni"] == "cdn.good.test"
    assert objs["stats"]["requests"][-1]["sni"] == "example.org"  # the decoy went to the final host's address
    assert result.as_json()["decoy"]["sni"] == "example.org"


async def test_redirect_to_a_name_that_does_not_resolve_is_not_measured(env, objs):
    result = await measure(env, objs, "/object?redirect=https%3A%2F%2Fnowhere.good.test%2Fx")
    assert result.ok and result.as_json()["measured"] is False and "did not resolve" in result.as_json()["reason"]


async def test_redirects_are_bounded(env, objs):
    chain = "/object?redirect=%2Fobject%3Fredirect%3D%252Fobject"  # two redirects, then the object
    assert (await measure(env, objs, chain, max_redirects=2)).as_json()["measured"]
    result = await measure(env, objs, chain, max_redirects=1)
    assert result.ok and result.as_json()["measured"] is False and "HTTP 302" in result.as_json()["reason"]
    assert len(result.as_json()["redirects"]) == 1


# --- parameters and prerequisites ---------------------------------------------------------------------


def test_params_refuse_an_unreachable_floor():
    with pytest.raises(ValueError, match="could never finish"):
        throughput.Params(size=1 << 20, floor_bytes_per_second=10_000, max_seconds=8)
    with pytest.raises(ValueError):
        throughput.Params(size=1000)  # under 256 KB


async def test_skipped_when_tls_failed(env, objs):
    ctx = context(env, objs["ports"]["tls"], tls=False)
    ctx.connected = [(LOOPBACK, objs["ports"]["tls"])]
    ctx.results.append(CheckResult("tls", False, failures.CONNECTION_RESET, 0.0, Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni")))
    with pytest.raises(Skip):
        await throughput.run(ctx, params())


# --- through the runner: the control target's transfer is the yardstick ------------------------------


def round_config(env, port: int, service_host: str, control_path: str, service_path: str = "/object") -> dict:
    common = {"floor_bytes_per_second": FLOOR, "stall_seconds": 0.5, "max_seconds": 1.0}
    control = {
        "name": "download", "host": "mirror.good.test", "addresses": [LOOPBACK], "ports": [port],
        "checks": ["tcp", "tls", "throughput"], "params": {"throughput": {"path": control_path, **common}},
    }  # fmt: skip
    service = {
        "name": "telegram",
        "targets": [
            {
                "name": "download", "host": service_host, "addresses": [LOOPBACK], "ports": [port],
                "checks": ["tcp", "tls", "throughput"], "params": {"throughput": {"path": service_path, **common}},
            }  # fmt: skip
        ],
    }
    return env.config([service], controls=[env.control_target(), control])


@pytest.mark.parametrize(("control_path", "verdict"), [("/object", "throttled"), ("/object?stall_after=16384", "ok")])
async def test_round_verdicts(env, objs, tmp_path, control_path, verdict):
    config = env.load(tmp_path, round_config(env, objs["ports"]["tls"], SLOW_SNI, control_path))
    result = await run_round(config, config.vantages[0])
    target = result.services[0].targets[0]
    assert target.verdict == verdict, target.reason
    check = next(c for c in target.checks if c.check == "throughput")
    assert check.evidence.download.bytes_per_second < FLOOR
    assert check.evidence.sni_keyed is (True if verdict == "throttled" else None)


async def test_round_ok_feeds_the_contract_metric(env, objs, tmp_path):
    from prometheus_client import generate_latest

    from probe.metrics import State, registry_for

    config = env.load(tmp_path, round_config(env, objs["ports"]["tls"], HOST, "/object"))
    result = await run_round(config, config.vantages[0])
    assert result.services[0].targets[0].verdict == "ok", result.services[0].targets[0].reason
    state = State(config)
    state.record(result)
    lines = [line for line in generate_latest(registry_for(state)).decode().splitlines() if line.startswith("msgreach_download_throughput_bytes_per_second{")]
    assert {('service="telegram"' in line, 'target="download"' in line) for line in lines} >= {(True, True)}
    assert all(float(line.rsplit(" ", 1)[1]) >= FLOOR for line in lines)  # the service's and the control's


async def test_a_stall_feeds_the_stall_offset_metric(env, objs, tmp_path):
    from prometheus_client import generate_latest

    from probe.metrics import State, registry_for

    config = env.load(tmp_path, round_config(env, objs["ports"]["tls"], HOST, "/object", "/object?stall_after=16384"))
    result = await run_round(config, config.vantages[0])
    target = result.services[0].targets[0]
    assert target.verdict == "throttled", target.reason
    state = State(config)
    state.record(result)
    text = generate_latest(registry_for(state)).decode()
    stalls = [line for line in text.splitlines() if line.startswith("msgreach_download_stall_offset_bytes{")]
    # One series, the service's: the control did not stall (a download that did not stall has none).
    (line,) = stalls
    assert 'service="telegram"' in line and 'target="download"' in line
    assert 16384 < float(line.rsplit(" ", 1)[1]) < 16384 + 1024
    assert "the 16–20 KB freeze" in str(next(c for c in target.checks if c.check == "throughput").finding.reason)


# --- issue 20: no keyed claim from one pair; uploads; the line's freeze --------------------------------


async def test_one_unlucky_transfer_makes_no_claim(env, objs):
    # A lossy line: the first transfer stalls, the decoy after it is fast, the real one again is
    # fast too. One pair would have read "keyed on the name"; the alternation agrees on nothing.
    result = await measure(env, objs, "/object?stall_once=unlucky-1")
    ev = result.as_json()
    assert result.ok and verdict_of(result) is None, result.finding
    assert ev["transfer_failure"] == failures.STALLED and ev["decoy"]["measured"] and ev["again"]["complete"]
    assert "decoy_again" not in ev and "keyed_on" not in ev


async def test_keyed_on_the_name_needs_both_decoys(env, objs):
    result = await measure(env, objs, sni=SLOW_SNI)
    ev = result.as_json()
    assert ev["keyed_on"] == "name" and ev["direction"] == "download"
    assert ev["again"]["sni"] == SLOW_SNI and ev["decoy_again"]["sni"] == "example.org"
    assert [r["sni"] for r in objs["stats"]["requests"][-4:]] == [SLOW_SNI, "example.org", SLOW_SNI, "example.org"]


async def test_repeats_that_do_not_fit_are_skipped_and_claim_nothing(env, objs):
    ctx = env.context(SLOW_SNI, target={"addresses": [LOOPBACK], "ports": [objs["ports"]["tls"]], "checks": ["tls", "throughput"]},
                      phase=FAST_CONTROL, timeout=0.6)  # a bound of 1.8 s: the 1 s download leaves too little
    ctx.results.append(CheckResult("tls", True))
    ctx.tls_endpoint = (LOOPBACK, objs["ports"]["tls"])
    result = await measured(ctx, throughput, params())
    ev = result.as_json()
    assert result.ok and "again" in ev["skipped"] and "keyed_on" not in ev


def freezing_controls() -> ControlPhase:
    fast = control_facts(50_000_000.0, name="download-international").controls
    download = Download("198.19.200.10", 443, failure=failures.STALLED, measured=True, bytes_per_second=900.0, stalled_at_bytes=16500)
    check = CheckResult("throughput", True, evidence=ThroughputEvidence("https://mirror.test/", throughput.MIN_SIZE, download=download, slow=True))
    frozen = TargetResult("controls", "download-domestic", "mirror.test", Verdict.OK, [check])
    return ControlPhase(controls={**fast, "download-domestic": frozen})


async def test_a_freeze_the_domestic_yardstick_shares_is_the_lines(env, objs):
    result = await measure(env, objs, "/object?stall_after=16384", facts=freezing_controls())
    ev = result.as_json()
    assert result.ok and verdict_of(result) is None
    assert ev["control_freezes"] == {"download-domestic": "download"} and ev["line_freeze"] == ["download-domestic"]
    assert "the line's freeze, not the service's" in ev["note"]
    # Without the yardstick's freeze the same transfer is throttled.
    assert verdict_of(await measure(env, objs, "/object?stall_after=16384")) == "throttled"


async def test_the_download_records_packets_both_ways(env, objs):
    ev = (await measure(env, objs)).as_json()
    packets = ev["packets"]
    assert packets["segs_in"] > 0 and packets["segs_out"] > 0 and packets["bytes_received"] >= throughput.MIN_SIZE


async def test_an_upload_is_measured_beside_the_download(env, objs):
    result = await measure(env, objs, upload_path="/upload", upload_bytes=96 * 1024)
    ev = result.as_json()
    assert result.ok and ev["upload"]["answered"] and ev["upload"]["status_code"] == 200
    assert objs["stats"]["uploads"][-1] == 96 * 1024
    assert ev["upload"]["acked_bytes"] >= 96 * 1024 and ev["upload"]["packets"]["segs_out"] > 0


@pytest.mark.parametrize("quirk", ["noread=1", "early=1"])
async def test_a_server_that_will_not_take_the_upload_is_no_freeze(env, objs, quirk):
    # A server that stops reading (its window shuts, it still acknowledges our probes) or answers
    # at once and closes: the server's own behaviour, never a freeze of the path. Plain HTTP, so
    # that no TLS layer of the server's reads on while its application does not.
    port = objs["ports"]["plain"]
    ctx = env.context(HOST, target={"addresses": [LOOPBACK], "ports": [port], "checks": ["tcp", "throughput"]}, phase=FAST_CONTROL, timeout=5.0)
    ctx.connected = [(LOOPBACK, port)]
    ctx.results.append(CheckResult("tcp", True))
    result = await measured(ctx, throughput, params(scheme="http", upload_path=f"/upload?{quirk}", upload_bytes=4 * 1024 * 1024, stall_seconds=2.0, max_seconds=3.0))
    ev = result.as_json()
    assert result.ok and verdict_of(result) is None, result.finding
    assert "upload_again" not in ev and "keyed_on" not in ev
    upload = ev["upload"]
    if quirk == "early=1":
        assert upload["answered"] and upload["status_code"] == 413
    else:
        assert upload["failure"] == failures.STALLED and upload["peer_answering"], upload


def _upload(failure: str | None, segs: int) -> Upload:
    counts = PacketCounts(segs_out=segs - 2, segs_in=2, bytes_acked=20_000, bytes_received=200)
    return Upload("192.0.2.1", 443, 65536, failure=failure, sni=HOST, acked_bytes=20_000, stalled_at_bytes=20_000 if failure else None,
                  answered=failure is None, packets=counts)


def _frozen_upload_evidence(download_segs: int) -> ThroughputEvidence:
    download = Download("192.0.2.1", 443, measured=True, complete=True, bytes_per_second=9e6,
                        packets=PacketCounts(segs_out=download_segs // 3, segs_in=download_segs - download_segs // 3, bytes_acked=300, bytes_received=262_500))
    return ThroughputEvidence("https://x.test/o", throughput.MIN_SIZE, download=download, slow=False, floor_bytes_per_second=FLOOR,
                              upload=_upload(failures.STALLED, 25), upload_again=_upload(failures.STALLED, 26))


def test_an_upload_frozen_twice_while_the_download_flowed_is_keyed_on_the_direction():
    from probe.judge.analysis import RoundFacts
    from probe.judge.throughput import analyse

    evidence = _frozen_upload_evidence(download_segs=190)
    analysis = analyse(evidence, RoundFacts())
    assert not analysis.ok and analysis.failure == failures.STALLED
    assert (evidence.keyed_on, evidence.direction, analysis.finding.differential) == ("direction", "upload", "download_same_address")
    assert "keyed on the direction" in str(analysis.finding.reason) and "26 packets" in str(analysis.finding.reason)
    # Fewer packets in the download than the upload froze at: a count both ways would explain it.
    evidence = _frozen_upload_evidence(download_segs=20)
    analysis = analyse(evidence, RoundFacts())
    assert evidence.keyed_on is None and "not the direction" in str(analysis.finding.reason)
    # Frozen once, then through: no claim.
    evidence = _frozen_upload_evidence(download_segs=190)
    evidence.upload_again = _upload(None, 50)
    assert analyse(evidence, RoundFacts()).ok and evidence.keyed_on is None


async def test_the_repeats_and_uploads_are_rejudged_from_the_archive(env, objs):
    # What the analyser reads (repeats, uploads, packets, the floor) is kept in the observations.
    from probe.evidence.observations import dump, load
    from probe.judge.analysis import RoundFacts
    from probe.judge.throughput import analyse

    result = await measure(env, objs, sni=SLOW_SNI, upload_path="/upload")
    stored = load(dump(result.evidence))
    assert stored.again is not None and stored.decoy_again is not None and stored.upload.packets is not None
    again = analyse(stored, RoundFacts())
    assert (again.ok, again.failure, str(again.finding.reason)) == (result.ok, result.failure, str(result.finding.reason))
    assert stored.keyed_on == "name"
    evidence = _frozen_upload_evidence(download_segs=190)
    stored = load(dump(evidence))
    assert not analyse(stored, RoundFacts()).ok and stored.keyed_on == "direction"
