"""The evidence archive on real files: line format, rotation bound, torn lines, concurrent
writers, `msgreach once` appending, and `msgreach evidence` reporting verdict changes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from mrfkit import REPO, free_port, http_get, msgreach_argv, msgreach_env, wait_for

from probe.config import Evidence, Vantage
from probe.evidence import SCRUBBED, Archive, archive_files, changes, print_changes, read, scrub
from probe.model import (
    BlockPage,
    Certificate,
    CheckResult,
    DNSEvidence,
    DNSQuery,
    Fault,
    Finding,
    HTTPExchange,
    HTTPProbe,
    Redirect,
    ServiceResult,
    TargetResult,
    TCPConnect,
    TCPEvidence,
    TLSEvidence,
    TLSHandshake,
    VantageResult,
    Verdict,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()


@dataclass
class Downloaded:
    """Stands in for the throughput check's record."""

    bytes_per_second: float
    bytes: int


def round_result(vantage: str, started_at: float, verdicts: dict[str, str], *, body: str = "", service: str = "telegram") -> VantageResult:
    """A round as the runner returns it (real result objects, typed evidence)."""
    targets = []
    for name, verdict in verdicts.items():
        ok = verdict == "ok"
        failure = None if ok else "generic_timeout_error"
        checks = [
            CheckResult("dns", True, None, 0.01, None, DNSEvidence([
                DNSQuery("system", False, ["149.154.167.51"], None, 0.01, "ok"),
                DNSQuery("tls://9.9.9.9", True, ["149.154.167.51", "2001:67c:4e8:f002::a"], None, 0.02, "control"),
            ], ["149.154.167.51"], "dns")),
            CheckResult("tcp", ok, failure, 5.0 if not ok else 0.03, None if ok else Finding(Verdict.IP_BLOCKED, Fault.UNSEPARATED, reason="connect timed out"),
                        TCPEvidence([TCPConnect("149.154.167.51", 443, failure, 0.03)])),
        ]
        if ok:
            certificate = Certificate("CN=x", "CN=y", "2026-01-01", "2030-01-01", 1.9e9, "ab" * 32)
            checks.append(CheckResult("tls", True, None, 0.05, None, TLSEvidence([TLSHandshake("149.154.167.51", 443, f"{name}.example", None, "TLSv1.3", "h2", certificate, None, 0.05)], certificate)))
            checks.append(CheckResult("http", True, None, 0.1, None, HTTPExchange(f"https://{name}.example/", "149.154.167.51", status_code=200, body_sample=body or "hello", body_length=5)))
            checks.append(CheckResult("throughput", True, None, 1.0, None, Downloaded(123456.0, 65536)))
        reason = "" if ok else "tcp: generic_timeout_error"
        targets.append(TargetResult(service, name, f"{name}.example", Verdict(verdict), checks, reason))
    service_verdict = "ok" if all(v == "ok" for v in verdicts.values()) else ("partial" if "ok" in verdicts.values() else "ip_blocked")
    return VantageResult(vantage, "ok", [ServiceResult(service, Verdict(service_verdict), targets)], [], started_at, 1.5)


def test_one_line_per_target_in_ooni_vocabulary(tmp_path: Path) -> None:
    archive = Archive(Evidence(path=tmp_path / "ev.jsonl"), [Vantage(name="msk-1", country="ru", asn="AS12389", network="home")])
    assert archive.append(round_result("msk-1", T0, {"dc1": "ok", "dc2": "ip_blocked"})) == 2
    lines = (tmp_path / "ev.jsonl").read_text().splitlines()
    assert len(lines) == 2
    ok, blocked = (json.loads(line) for line in lines)
    assert ok["time"] == "2026-03-01T12:00:00.000Z" and ok["measurement_start_time"] == "2026-03-01 12:00:00"
    assert (ok["probe_cc"], ok["probe_asn"], ok["probe_network_name"]) == ("RU", "AS12389", "home")
    assert (ok["vantage"], ok["service"], ok["service_verdict"], ok["target"], ok["input"]) == ("msk-1", "telegram", "partial", "dc1", "dc1.example")
    keys = ok["test_keys"]
    assert keys["queries"][0] == {
        "engine": "getaddrinfo", "resolver_address": "", "hostname": "dc1.example",
        "answers": [{"answer_type": "A", "ipv4": "149.154.167.51"}], "failure": None, "t0": 0.0, "t": 0.01,
        "control": False, "judgement": "ok", "judgement_reason": None,
    }
    assert keys["queries"][1]["engine"] == "dot" and keys["queries"][1]["resolver_address"] == "9.9.9.9:853" and {"answer_type": "AAAA", "ipv6": "2001:67c:4e8:f002::a"} in keys["queries"][1]["answers"]
    assert keys["tcp_connect"][0]["ip"] == "149.154.167.51" and keys["tcp_connect"][0]["status"] == {"success": True, "failure": None}
    assert keys["tls_handshakes"][0]["address"] == "149.154.167.51:443" and keys["tls_handshakes"][0]["server_name"] == "dc1.example"
    assert keys["tls_handshakes"][0]["certificate"]["issuer"] == "CN=y"
    assert keys["requests"][0]["response"]["code"] == 200 and keys["requests"][0]["response"]["body"] is None  # ok: no body kept
    assert ok["throughput_bytes_per_second"] == 123456.0
    assert [c["check"] for c in keys["checks"]] == ["dns", "tcp", "tls", "http", "throughput"]
    assert keys["throughput"] == {"bytes_per_second": 123456.0, "bytes": 65536}  # evidence without an OONI list: under its check
    assert keys["dns"] == {"addresses": ["149.154.167.51"], "addresses_from": "dns"}  # the queries are written once, in `queries`
    assert keys["tls"]["certificate"]["issuer"] == "CN=y"
    assert "tcp" not in keys and "http" not in keys  # all of them in OONI's lists
    assert keys["checks"][1]["t0"] == 0.01 and keys["checks"][1]["t"] == 0.04  # reconstructed from durations
    assert keys["accessible"] is True and keys["blocking"] is False
    assert blocked["verdict"] == "ip_blocked" and blocked["reason"] == "tcp: generic_timeout_error"
    assert blocked["test_keys"]["blocking"] == "ip_blocked" and blocked["test_keys"]["tcp_connect"][0]["status"]["failure"] == "generic_timeout_error"
    # A failed check's finding is archived with it: what its evidence argued, and whose fault.
    assert blocked["test_keys"]["checks"][1]["finding"] == {"technique": "ip_blocked", "fault": "unseparated", "reason": "connect timed out"}
    assert "finding" not in keys["checks"][1]


@dataclass
class Stream:
    """Stands in for a protocol check's own record (mtproto, quic, stun…): not an OONI shape."""

    dc: int
    handshake: TLSHandshake
    bytes_received: int
    failure: str | None = None


def test_every_check_is_archived_whatever_its_evidence(tmp_path: Path) -> None:
    """Typed observations go to OONI's lists wherever a check keeps them; everything else a
    check observed (a record of its own, a dict, a list) is kept under the check's name."""
    decoy = TLSHandshake("149.154.167.51", 443, "decoy.example", "connection_reset", duration_seconds=0.2)
    checks = [
        CheckResult("tls", False, "connection_reset", 0.5, Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni"),
                    TLSEvidence([TLSHandshake("149.154.167.51", 443, "t.example", "connection_reset", duration_seconds=0.1)], decoy=TLSHandshake("149.154.167.51", 443, "decoy.example", None, "TLSv1.3", duration_seconds=0.2))),
        CheckResult("mtproto", False, "eof_error", 1.0, Finding(Verdict.PROTOCOL_BLOCKED, Fault.PATH, "control_vantage"), Stream(2, decoy, 0, "eof_error")),
        CheckResult("stun", True, None, 0.3, None, {"binding": {"mapped": "yes"}, "rtt_ms": [1.5, 2.0]}),  # not typed yet
        CheckResult("quic", True, None, 0.1, None, [{"version": 1}]),
    ]
    target = TargetResult("telegram", "dc2", "t.example", Verdict.SNI_BLOCKED, checks, "tls: connection_reset")
    target.checks.append(CheckResult("http", False, "http_blockpage", 0.2, Finding(Verdict.HTTP_BLOCKED, Fault.PATH, "decoy_host"), HTTPExchange(
        "http://t.example/", "149.154.167.51", [Redirect(302, "http://warning.rt.ru/?id=1")], 302, "", 0, BlockPage("redirect", "warning.rt.ru"),
        decoy=HTTPProbe("149.154.167.51", 80, "decoy.example", None, 0.05), same_name=HTTPProbe("149.154.167.51", 80, "t.example", "connection_reset", 0.05),
    )))
    result = VantageResult("v", "ok", [ServiceResult("telegram", Verdict.SNI_BLOCKED, [target])], [], T0, 2.0)
    Archive(Evidence(path=tmp_path / "ev.jsonl")).append(result)
    keys = json.loads((tmp_path / "ev.jsonl").read_text())["test_keys"]
    handshakes = [(h["server_name"], h["failure"], h["decoy"]) for h in keys["tls_handshakes"]]
    assert handshakes == [("t.example", "connection_reset", False), ("decoy.example", None, True), ("decoy.example", "connection_reset", False)]
    assert keys["tls_handshakes"][2]["t0"] == 0.5 and keys["tls_handshakes"][2]["t"] == 0.7  # mtproto's own handshake, at its start
    assert keys["mtproto"] == {"dc": 2, "bytes_received": 0, "failure": "eof_error"}
    assert keys["stun"] == {"binding": {"mapped": "yes"}, "rtt_ms": [1.5, 2.0]}
    assert keys["quic"] == [{"version": 1}]
    assert "tls" not in keys and "http" not in keys  # all of it went to OONI's lists
    [request] = keys["requests"]
    assert request["response"] == {"code": 302, "body": "", "body_length": 0, "headers": {"Location": "http://warning.rt.ru/?id=1"}}
    assert request["redirects"] == [{"status_code": 302, "location": "http://warning.rt.ru/?id=1"}] and request["blockpage"] == {"kind": "redirect", "match": "warning.rt.ru"}
    assert (request["decoy"]["host"], request["same_name"]["failure"]) == ("decoy.example", "connection_reset")
    assert [c.get("finding", {}).get("technique") for c in keys["checks"]] == ["sni_blocked", "protocol_blocked", None, None, "http_blocked"]
    assert keys["checks"][0]["finding"]["differential"] == "decoy_sni"


def test_undisclosed_place_is_written_as_ooni_does(tmp_path: Path) -> None:
    archive = Archive(Evidence(path=tmp_path / "ev.jsonl"))
    archive.append(round_result("v", T0, {"a": "ok"}))
    line = json.loads((tmp_path / "ev.jsonl").read_text())
    assert (line["probe_cc"], line["probe_asn"], line["probe_network_name"]) == ("ZZ", "AS0", "")


def test_rotation_keeps_disk_use_bounded(tmp_path: Path) -> None:
    path = tmp_path / "state" / "evidence.jsonl"
    evidence = Evidence(path=path, max_bytes=4096, keep_files=3)
    archive = Archive(evidence)
    written = 0
    for index in range(300):
        written += archive.append(round_result("v", T0 + index * 60, {"a": "ok", "b": "ip_blocked"}))
    files = archive_files(path)
    assert [f.name for f in files] == ["evidence.jsonl.2", "evidence.jsonl.1", "evidence.jsonl"]
    sizes = [f.stat().st_size for f in files]
    assert all(size <= evidence.max_bytes for size in sizes), sizes
    total = sum(f.stat().st_size for f in path.parent.iterdir())
    assert total <= evidence.max_bytes * evidence.keep_files
    reading = read(path)
    assert reading.skipped == 0
    assert 0 < len(reading.records) < written  # old rounds were dropped...
    times = [r["time"] for r in reading.records]
    assert times == sorted(times) and times[-1] == "2026-03-01T16:59:00.000Z"  # ...the newest kept, in order


def test_a_line_larger_than_max_bytes_is_shrunk_not_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path, max_bytes=2048, keep_files=2))
    huge = round_result("v", T0, {"a": "ok"}, body="y" * 5000)
    huge.services[0].targets[0].checks[3].ok = False  # a failed http check keeps its body...
    archive.append(huge)
    line = json.loads(path.read_text())
    assert path.stat().st_size <= 2048
    assert line["truncated"] is True and line["verdict"] == "ok" and line["target"] == "a"  # ...unless too big


def test_smaller_keep_files_removes_the_surplus(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path, max_bytes=2048, keep_files=5))
    for index in range(60):
        archive.append(round_result("v", T0 + index, {"a": "ok"}))
    assert len(archive_files(path)) == 5
    Archive(Evidence(path=path, max_bytes=2048, keep_files=2)).append(round_result("v", T0 + 100, {"a": "ok"}))
    assert [f.name for f in archive_files(path)] == ["ev.jsonl.1", "ev.jsonl"]


def test_torn_last_line_is_skipped_and_earlier_lines_are_intact(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path))
    for index in range(3):
        archive.append(round_result("v", T0 + index * 60, {"a": "ok", "b": "ok"}))
    before = path.read_bytes()
    # What a kill in the middle of a write leaves: the start of a line, no newline.
    with open(path, "ab") as handle:
        handle.write(b'{"schema":"msgreach-evidence/1","time":"2026-03-01T12:03:00.000Z","vanta')
    reading = read(path)
    assert (len(reading.records), reading.skipped) == (6, 1)
    archive = Archive(Evidence(path=path))  # the restarted monitor
    archive.append(round_result("v", T0 + 240, {"a": "ok", "b": "ok"}))
    data = path.read_bytes()
    assert data.startswith(before)  # every earlier byte untouched
    reading = read(path)
    assert (len(reading.records), reading.skipped) == (8, 1)
    assert reading.records[-1]["time"] == "2026-03-01T12:04:00.000Z"


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    """`msgreach run` and a `msgreach once` may append at once: lines stay whole, rotation safe."""
    path = tmp_path / "ev.jsonl"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(Path(__file__).parent)!r}]
        from test_evidence import round_result, T0
        from probe.config import Evidence
        from probe.evidence import Archive
        archive = Archive(Evidence(path={str(path)!r}, max_bytes=512 * 1024, keep_files=8))
        for index in range(150):
            archive.append(round_result(sys.argv[1], T0 + index, {{"a": "ok", "b": "ip_blocked", "c": "ok"}}, body="z" * 300))
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, name], env=msgreach_env()) for name in ("w1", "w2", "w3")]
    assert [w.wait(120) for w in writers] == [0, 0, 0]
    files = archive_files(path)
    assert 1 < len(files) <= 8 and all(f.stat().st_size <= 512 * 1024 for f in files)  # rotated, bounded
    reading = read(path)
    assert reading.skipped == 0
    assert len(reading.records) == 3 * 150 * 3  # nothing lost across rotations, nothing torn
    for name in ("w1", "w2", "w3"):
        assert [r["time"] for r in reading.records if r["vantage"] == name and r["target"] == "a"] == sorted(
            {r["time"] for r in reading.records if r["vantage"] == name}
        )


def test_append_never_raises_when_the_disk_refuses(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    archive = Archive(Evidence(path=blocker / "ev.jsonl"))
    assert archive.append(round_result("v", T0, {"a": "ok"})) == 0
    assert archive.failing and archive.last_success is None  # what the monitor exports as metrics
    blocker.unlink()  # the disk takes writes again
    assert archive.append(round_result("v", T0, {"a": "ok"})) == 1
    assert not archive.failing and archive.last_success is not None


def test_scrub_removes_public_addresses_not_measured() -> None:
    text = {"body": "Your IP: 85.143.10.2 and 2a02:6b8:dead::2; server 149.154.167.51; lan 192.168.1.4", "n": 1}
    clean = scrub(text, allowed={"149.154.167.51"})
    assert clean == {"body": f"Your IP: {SCRUBBED} and {SCRUBBED}; server 149.154.167.51; lan 192.168.1.4", "n": 1}
    assert scrub("bind 10.1.2.3 failed", allowed={"10.1.2.3"}, deny={"10.1.2.3"}) == f"bind {SCRUBBED} failed"


# --- msgreach evidence -------------------------------------------------------------------------


def _archive_with_history(tmp_path: Path) -> Path:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path), [Vantage(name="msk-1", country="RU", asn="12389"), Vantage(name="spb-2")])
    for minute in range(10):
        dc2 = "ip_blocked" if 3 <= minute < 7 else "ok"
        archive.append(round_result("msk-1", T0 + minute * 60, {"dc1": "ok", "dc2": dc2}))
        archive.append(round_result("spb-2", T0 + minute * 60 + 5, {"dc1": "ok", "dc2": "ok"}))
        archive.append(round_result("msk-1", T0 + minute * 60, {"web": "ok"}, service="signal"))
    return path


def _args(**kwargs) -> argparse.Namespace:
    defaults = {"path": None, "since": None, "until": None, "services": None, "vantages": None, "format": "table", "config": None}
    return argparse.Namespace(**(defaults | kwargs))


def test_changes_by_service_and_vantage(tmp_path: Path) -> None:
    reading = read(_archive_with_history(tmp_path))
    groups = changes(reading.records, None, None)
    assert [(g["service"], g["vantage"]) for g in groups] == [("signal", "msk-1"), ("telegram", "msk-1"), ("telegram", "spb-2")]
    msk = groups[1]
    assert msk["place"] == "RU, AS12389" and msk["rounds"] == 10
    summary = [(c["time"], c["level"], c["target"], c["from"], c["to"]) for c in msk["changes"]]
    assert summary == [
        ("2026-03-01T12:03:00Z", "service", None, "ok", "partial"),
        ("2026-03-01T12:03:00Z", "target", "dc2", "ok", "ip_blocked"),
        ("2026-03-01T12:07:00Z", "service", None, "partial", "ok"),
        ("2026-03-01T12:07:00Z", "target", "dc2", "ip_blocked", "ok"),
    ]
    assert msk["changes"][1]["reason"] == "tcp: generic_timeout_error"
    assert groups[2]["changes"] == [] and groups[2]["at_end"] == "ok"
    # A period starting inside the block: the state before it is the starting point.
    since = datetime(2026, 3, 1, 12, 5, tzinfo=timezone.utc)
    inside = changes(reading.records, since, None, services=["telegram"], vantages=["msk-1"])
    assert len(inside) == 1 and inside[0]["at_start"] == "partial" and [c["to"] for c in inside[0]["changes"]] == ["ok", "ok"]


def test_evidence_command_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _archive_with_history(tmp_path)
    assert print_changes(_args(path=str(path), services=["telegram"]), None) == 0
    table = capsys.readouterr().out
    assert "telegram\n  vantage msk-1 (RU, AS12389): 4 change(s) in 10 round(s); ok at the start, ok at the end" in table
    assert "2026-03-01T12:03:00Z    dc2      ok -> ip_blocked   (tcp: generic_timeout_error)" in table
    assert "vantage spb-2: no change, ok throughout (10 round(s))" in table and "signal" not in table
    assert print_changes(_args(path=str(path), format="json", since="2026-03-01T12:06:30Z", until="2026-03-01T12:30:00Z", vantages=["msk-1"]), None) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["records"] == 50 and document["skipped_lines"] == 0
    telegram = next(g for g in document["groups"] if g["service"] == "telegram")
    assert [(c["level"], c["to"]) for c in telegram["changes"]] == [("service", "ok"), ("target", "ok")]


def test_evidence_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert print_changes(_args(path=str(tmp_path / "none.jsonl")), None) == 1
    assert print_changes(_args(path=str(_archive_with_history(tmp_path)), since="last tuesday"), None) == 2
    assert "neither an RFC 3339 time nor a duration" in capsys.readouterr().err


def test_once_appends_to_the_archive_and_cli_reports(tmp_path: Path, procs) -> None:
    """End to end on loopback: `msgreach once` writes lines, `msgreach evidence` reads them."""
    web, dns_port, control_port = free_port(), free_port(), free_port()
    servers = Path(__file__).parent / "mrf_servers.py"
    procs.start("web", [sys.executable, str(servers), "http", "--bind", "127.0.0.1", "--port", str(web)])
    procs.start("dns", [sys.executable, str(servers), "dns", "--bind", "127.0.0.1", "--port", str(dns_port), "--answer", "127.0.0.1"])
    procs.start("dns-control", [sys.executable, str(servers), "dns", "--bind", "127.0.0.1", "--port", str(control_port), "--answer", "127.0.0.1"])
    wait_for(lambda: http_get(f"http://127.0.0.1:{web}/")[0] == 200, 10, what="the test web server")
    config = tmp_path / "msgreach.yaml"
    config.write_text(textwrap.dedent(f"""
        vantages:
          - name: loop
            country: RU
            resolvers: ["127.0.0.1:{dns_port}", {{address: "127.0.0.1:{control_port}", control: true}}]
            bogon_exempt: ["127.0.0.0/8"]
        controls: [{{name: ctl, host: 127.0.0.1, ports: [{web}], checks: [tcp]}}]
        schedule: {{retries: 0}}
        services:
          - name: local
            targets:
              - {{name: web, host: web.mrf.test, ports: [{web}], checks: [dns, tcp, http], params: {{http: {{scheme: http}}}}}}
              - {{name: refused, host: 127.0.0.1, ports: [{free_port()}], checks: [tcp, http], params: {{http: {{scheme: http}}}}}}
        evidence: {{path: state/evidence.jsonl}}
    """))
    for _ in range(2):
        run = subprocess.run(msgreach_argv("once", "--config", str(config), "--format", "json"), env=msgreach_env(), capture_output=True, text=True, timeout=60)
        assert run.returncode == 3, run.stderr  # `refused` is ip_blocked: a block found
    records = read(tmp_path / "state" / "evidence.jsonl").records
    assert [(r["service"], r["target"]) for r in records if r["service"] == "controls"] == [("controls", "ctl")] * 2  # controls first
    lines = [r for r in records if r["service"] != "controls"]
    assert [(r["target"], r["verdict"]) for r in lines] == [("web", "ok"), ("refused", "ip_blocked")] * 2
    web_line = lines[0]
    assert [q["resolver_address"] for q in web_line["test_keys"]["queries"]] == [f"127.0.0.1:{dns_port}", f"127.0.0.1:{control_port}"]
    assert web_line["test_keys"]["queries"][0]["answers"] == [{"answer_type": "A", "ipv4": "127.0.0.1"}]
    assert web_line["test_keys"]["requests"][0]["response"]["code"] == 200
    assert lines[1]["test_keys"]["tcp_connect"][0]["status"]["failure"] == "connection_refused"
    report = subprocess.run(msgreach_argv("evidence", "--config", str(config), "--format", "json"), env=msgreach_env(), capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    groups = {g["service"]: g for g in json.loads(report.stdout)["groups"]}
    assert groups["local"]["targets_at_end"] == {"refused": "ip_blocked", "web": "ok"} and groups["controls"]["targets_at_end"] == {"ctl": "ok"}
