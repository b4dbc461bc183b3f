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
from probe.model import CheckResult, Download, Fault, Finding, TargetResult, ThroughputEvidence, Verdict
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
    ctx = env.context(sni, target={"addresses": [LOOPBACK], "ports": [port], "checks": ["tcp", "tls", "throughput"]}, phase=facts)
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
