"""The tls check's ClientHello matrix (issue 20; probe/checks/tls_matrix.py, probe/judge/tls.py):
a target with a `client` is measured with its real client's hello as well as Python's; on the
real hello's failure the other hellos, the key share toggled, the hello split and the decoy (same
hello) run, and a keyed claim needs the alternated repeats to agree. In front of a real TLS server
with the test CA, censors that read the ClientHello the way DPI does (tests/servers/fingerprint_censor.py)."""

from __future__ import annotations

import asyncio

import pytest
from msgreach_helpers import measured, verdict_of
from servers import fingerprint_censor

from probe import failures, fingerprint
from probe.checks import tls
from probe.net import Route

LOOPBACK = "127.0.0.1"
NAME = "fp.good.test"  # in the valid leaf's names


# Splitting is proven in the lab (tests/lab/test_hello_matrix.py), where the censor reads packets:
# a stream read here could join the two segments on a busy machine.


def _grease_first(hello: bytes) -> bool:
    return fingerprint_censor.matches(hello, "browser")


def _forgetful_front(backend: tuple[str, int], blocked, once):
    """Resets `blocked` hellos always, and `once` hellos after their first connection: the other
    hello passes once and fails on its repeat (no agreement)."""
    met: set[bool] = set()

    def decide(first: bytes) -> bool:
        if blocked(first):
            return True
        if once(first):
            if True in met:
                return True
            met.add(True)
        return False

    return fingerprint_censor.first_bytes_front(backend, decide, fingerprint_censor.FIRST_CIPHER_OFFSET + 2)


@pytest.fixture(scope="module")
def fronts(env) -> dict[str, int]:
    backend = (LOOPBACK, env.ports["web"])
    async def start() -> dict[str, int]:
        ports = {}
        for block in fingerprint_censor.BLOCKS:
            _, ports[block] = await env.fleet.serve(fingerprint_censor.handler(backend, block), LOOPBACK)
        _, ports["forgetful"] = await env.fleet.serve(
            _forgetful_front(backend, _grease_first, lambda h: fingerprint_censor.matches(h, "python")), LOOPBACK
        )
        return ports

    return env.loop.call(start())


async def _tls(env, port: int, client: str | None, *, decoy: str = "example.org", **params):
    target = {"client": client} if client else {}
    if params:
        target["params"] = {"tls": params}
    ctx = env.context(NAME, "web", target=target, timeout=3.0, decoy_sni=decoy)
    ctx.connected = [(LOOPBACK, port)]
    return await measured(ctx, tls, ctx.params_for("tls", tls.Params))


# --- the hellos -------------------------------------------------------------------------------------


async def test_each_hello_of_the_table_completes_and_says_what_it_sent(env):
    seen = {}
    for name in fingerprint.HELLOS:
        record = await fingerprint.hello_handshake(Route(), LOOPBACK, env.ports["web"], NAME, name, ca_bundles=(env.ca.pem,), timeout=3.0)
        assert record.failure is None, record
        assert record.hello == name and record.split is False and record.ja4 and record.ja4.startswith("t13")
        seen[name] = record
    assert len({r.ja4 for r in seen.values()}) == len(seen)  # five different hellos
    assert seen["chrome"].pq and seen["firefox"].pq and seen["safari_ios"].pq and not seen["chrome_android"].pq and not seen["openssl"].pq
    assert all(fingerprint.HELLOS[name].pq == record.pq for name, record in seen.items())  # the table says what each sends


async def test_the_key_share_is_toggled_and_the_split_hello_completes(env):
    port = env.ports["web"]
    without = await fingerprint.hello_handshake(Route(), LOOPBACK, port, NAME, "chrome", pq=False, ca_bundles=(env.ca.pem,), timeout=3.0)
    with_pq = await fingerprint.hello_handshake(Route(), LOOPBACK, port, NAME, "chrome_android", pq=True, ca_bundles=(env.ca.pem,), timeout=3.0)
    split = await fingerprint.hello_handshake(Route(), LOOPBACK, port, NAME, "openssl", split=True, ca_bundles=(env.ca.pem,), timeout=3.0)
    assert without.failure is None and without.pq is False
    assert with_pq.failure is None and with_pq.pq is True
    assert split.failure is None and split.split is True


# --- the judge ---------------------------------------------------------------------------------------


async def test_a_block_of_a_hello_the_app_does_not_send_is_ok_with_a_note(env, fronts):
    result = await _tls(env, fronts["python"], "android_app")
    assert verdict_of(result) == "ok" and result.ok
    evidence = result.evidence
    assert evidence.filtered_fingerprints == ["openssl"]
    assert evidence.browser.handshake.hello == "chrome_android" and evidence.browser.handshake.failure is None
    assert evidence.matrix is None  # the matrix runs only on the real hello's failure
    # the note rests on the pair repeated: the real hello passed again, Python's was cut again
    assert [(a.hello, a.failure) for a in evidence.repeats] == [("chrome_android", None), ("openssl", failures.CONNECTION_RESET)]


async def test_the_apps_hello_that_slipped_through_once_is_not_reach(env):
    """A censor that cuts the name for every hello but let the app's through once (a hello whose
    name fell across two segments of a censor that does not reassemble): the real hello fails on
    its repeat, so its pass is not read as reach (`ok`), nor Python's cut as a filtered fingerprint."""
    backend = (LOOPBACK, env.ports["web"])

    async def start() -> int:
        front = _forgetful_front(backend, lambda h: fingerprint_censor.matches(h, "python"), _grease_first)
        _, port = await env.fleet.serve(front, LOOPBACK)
        return port

    result = await _tls(env, env.loop.call(start()), "android_app")
    assert result.evidence.browser.handshake.failure is None  # the first pass happened
    assert not result.ok and verdict_of(result) != "ok" and result.evidence.filtered_fingerprints is None
    assert result.finding.reason.key == "no_agreement" and str(result.finding.fault) == "unseparated"
    assert [(a.hello, a.failure) for a in result.evidence.repeats] == [("chrome_android", failures.CONNECTION_RESET)]


async def test_pythons_hello_cut_once_is_no_filtered_fingerprint(env):
    """Python's hello cut on its first connection only (a lost packet, not a filter): ok, no note."""
    backend = (LOOPBACK, env.ports["web"])
    cut: list[bool] = []

    def decide(first: bytes) -> bool:
        if fingerprint_censor.matches(first, "python") and not cut:
            cut.append(True)
            return True
        return False

    async def start() -> int:
        front = fingerprint_censor.first_bytes_front(backend, decide, fingerprint_censor.FIRST_CIPHER_OFFSET + 2)
        _, port = await env.fleet.serve(front, LOOPBACK)
        return port

    result = await _tls(env, env.loop.call(start()), "android_app")
    assert cut and result.ok and verdict_of(result) == "ok"
    assert result.evidence.handshakes[-1].failure == failures.CONNECTION_RESET
    assert result.evidence.filtered_fingerprints is None
    assert [(a.hello, a.failure) for a in result.evidence.repeats] == [("chrome_android", None), ("openssl", None)]


async def test_a_block_of_the_apps_hello_is_keyed_on_the_fingerprint(env, fronts):
    result = await _tls(env, fronts["browser"], "android_app")
    assert verdict_of(result) == "tls_blocked"
    evidence = result.evidence
    assert evidence.keyed_on == "fingerprint"
    assert result.finding.differential == "other_hellos" and result.finding.reason.key == "keyed_on_fingerprint"
    assert {a.hello for a in evidence.matrix} == {"chrome", "safari_ios", "firefox", "chrome_android"}
    assert [a.hello for a in evidence.repeats] == ["chrome_android", "openssl"]  # real, other
    assert evidence.repeats[0].failure == failures.CONNECTION_RESET and evidence.repeats[1].failure is None
    assert evidence.decoy.hello == "chrome_android"  # the decoy carries the real hello
    assert evidence.split_evades is None  # this censor reassembles
    assert "firefox" in result.finding.reason.params["passing"] and "openssl" in result.finding.reason.params["passing"]


async def test_no_agreement_over_the_repeats_claims_no_technique(env, fronts):
    result = await _tls(env, fronts["forgetful"], "android_app")
    assert not result.ok and result.evidence.keyed_on is None
    assert result.finding.reason.key == "no_agreement" and str(result.finding.fault) == "unseparated"


async def test_a_hello_that_slipped_through_once_leaves_the_name_to_its_own_pair(env):
    """A censor keyed on the name that let one other hello through once (its segments fell
    well): the fingerprint's second pair disagrees, the decoy's agrees: keyed on the name."""
    from servers.hostile import sni_of

    backend = (LOOPBACK, env.ports["web"])
    leaked: list[bool] = []

    def blocked(hello: bytes) -> bool:
        if sni_of(hello) != NAME:
            return False
        if fingerprint_censor.first_cipher(hello) == 0x1301 and hello[fingerprint_censor.FIRST_CIPHER_OFFSET + 3] == 0x03 and not leaked:
            leaked.append(True)  # Firefox's order (1301 1303 1302), once
            return False
        return True

    async def start() -> int:
        _, port = await env.fleet.serve(fingerprint_censor.first_bytes_front(backend, blocked, 400), LOOPBACK)
        return port

    result = await _tls(env, env.loop.call(start()), "android_app")
    assert leaked and verdict_of(result) == "sni_blocked" and result.evidence.keyed_on == "name"
    assert [(r.hello, r.sni, r.failure is None) for r in result.evidence.repeats] == [
        ("chrome_android", NAME, False), ("firefox", NAME, False), ("chrome_android", "example.org", True)]


async def test_a_target_without_a_client_keeps_pythons_hello_only(env, fronts):
    result = await _tls(env, fronts["browser"], None)
    assert result.ok and result.evidence.client is None and result.evidence.browser is None and result.evidence.matrix is None
    assert result.evidence.handshakes[-1].hello is None


async def test_the_sni_claim_needs_the_repeats_too(env):
    """Python's path: the decoy passes where the real name is reset, twice: keyed on the name."""
    from servers.hostile import sni_of

    backend = (LOOPBACK, env.ports["web"])

    async def start() -> int:
        front = fingerprint_censor.first_bytes_front(backend, lambda h: sni_of(h) == NAME, 300)
        _, port = await env.fleet.serve(front, LOOPBACK)
        return port

    port = env.loop.call(start())
    result = await _tls(env, port, None)
    assert verdict_of(result) == "sni_blocked" and result.evidence.keyed_on == "name"
    assert [r.sni for r in result.evidence.repeats] == [NAME, "example.org"]
    keyed = await _tls(env, port, "ios_app")
    assert verdict_of(keyed) == "sni_blocked" and keyed.evidence.keyed_on == "name"
    assert keyed.evidence.decoy.hello == "safari_ios"


# --- the server's own behaviour is never a block --------------------------------------------------------


@pytest.mark.parametrize("server", ["answer_then_reset", "answer_then_drip", "garbage_after_hello", "not_tls"])
async def test_a_quirky_server_is_down_whatever_hello_it_meets(env, server):
    """A server that begins its answer and resets or drips, or speaks garbage, does so for every
    hello and name: the matrix finds nothing that passes, no keyed claim, and the server is `down`."""
    result = await _tls(env, env.ports[server], "android_app")
    assert verdict_of(result) == "down", result.finding
    assert result.evidence.keyed_on is None and result.evidence.repeats is None
    assert result.evidence.matrix and all(a.failure is not None for a in result.evidence.matrix)


async def test_a_silent_server_is_not_named_a_technique_by_the_matrix(env):
    """Silence for every hello and name (a dead server, or a drop of everything): nothing passes,
    nothing is keyed; the check stays within its bound."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await _tls(env, env.ports["silent"], "browser")
    assert result.evidence.keyed_on is None and result.finding.fault != "path"
    assert loop.time() - started < 3 * 3.0 + 1  # the check's outer bound (timeout 3 s)


# --- the archive: the matrix is read again ------------------------------------------------------------


@pytest.mark.parametrize("front", ["python", "browser", "forgetful"])
async def test_the_matrix_is_judged_again_the_same_from_the_archives_observations(env, fronts, front):
    import json

    from probe import judge
    from probe.evidence import observations
    from probe.judge.analysis import RoundFacts

    result = await _tls(env, fronts[front], "android_app")
    stored = json.loads(json.dumps(observations.dump(result.evidence)))
    assert "ja4" not in json.dumps(stored)  # for people: kept once, in the OONI list
    again = judge.analyse("tls", observations.load(stored), RoundFacts())
    assert (again.ok, again.failure, again.finding) == (result.ok, result.failure, result.finding)
    assert (again.evidence.keyed_on, again.evidence.filtered_fingerprints, again.evidence.split_evades) == (
        result.evidence.keyed_on, result.evidence.filtered_fingerprints, result.evidence.split_evades)


async def test_each_hello_is_in_the_archive_and_in_the_ooni_export(env, fronts, tmp_path):
    from probe.config import Evidence, Vantage
    from probe.evidence import Archive, ooni, read
    from probe.model import ServiceResult, TargetResult, VantageResult

    result = await _tls(env, fronts["browser"], "android_app")
    target = TargetResult("whatsapp", "media", NAME, "tls_blocked", [result], "tls: connection_reset")
    path = tmp_path / "ev.jsonl"
    Archive(Evidence(path=path), [Vantage(name="msk-1")]).append(
        VantageResult("msk-1", "ok", [ServiceResult("whatsapp", "tls_blocked", [target])], [], 1_800_000_000.0, 3.0)
    )
    records = read(path).records
    stored = [h for h in records[0]["test_keys"]["tls_handshakes"] if "client_hello" in h]
    assert {h["client_hello"]["hello"] for h in stored} == {"openssl", "chrome", "chrome_android", "safari_ios", "firefox"}
    assert all(h["client_hello"]["ja4"] for h in stored if h["client_hello"]["hello"] != "openssl" or h["client_hello"]["split"])
    (measurement,) = list(ooni.measurements(records))
    tags = [tag for h in measurement["test_keys"]["tls_handshakes"] for tag in h["tags"]]
    assert "msgreach:hello=chrome_android" in tags and "msgreach:split_hello" in tags
    assert any(tag.startswith("msgreach:ja4=t13") for tag in tags)


@pytest.mark.parametrize(("front", "verdict", "says"), [
    ("python", "ok", "not a hello the service's clients send: openssl (not a block of the service)"),
    ("browser", "tls_blocked", "keyed on the fingerprint: the repeated, alternated attempts agree"),
    ("split", "tls_blocked", "split across two TCP segments passes"),
])  # fmt: skip
async def test_the_pages_steps_say_what_the_matrix_found(env, fronts, front, verdict, says):
    from probe.model import TargetResult
    from probe.status_steps import explain
    from probe.status_texts import say

    result = await _tls(env, fronts["browser" if front == "split" else front], "android_app")
    if front == "split":  # what the judge writes when the split hello passed (the lab's first-segment DPI)
        result.evidence.split_evades = True
    target = TargetResult("whatsapp", "media", NAME, verdict, [result], "")
    (step,) = explain(target).steps
    lines = [say(line, "en").text() for line in step.seen]
    assert any(says in line for line in lines), lines
    assert any(line.startswith("the android_app's own hello (chrome_android)") for line in lines), lines
    assert all(say(line, "ru").text() for line in step.seen)
