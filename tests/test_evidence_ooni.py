"""`msgreach evidence --format ooni` on an archive the real writer wrote: every target of every
nettest under every verdict, exported by the CLI, loaded with OONI's own parser (oonidata), and
the nettests' flags compared with the archive's verdicts (tests/ooni_agreement.py). The lab's
tests/lab/test_ooni_export.py does the same on real measurements of the shipped catalogs."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from msgreach_helpers import msgreach_command
from ooni_agreement import disagreements, load_measurement

from probe.config import Evidence, Vantage
from probe.evidence import SCHEMA, Archive, read
from probe.model import (
    BlockPage,
    ChatEvidence,
    ChatExchange,
    ChatHost,
    CheckResult,
    DNSEvidence,
    DNSQuery,
    Download,
    Fault,
    Finding,
    HTTPExchange,
    MTProtoEvidence,
    MTProtoProbe,
    ServiceResult,
    STUNBinding,
    STUNEvidence,
    TargetResult,
    TCPConnect,
    TCPEvidence,
    ThroughputEvidence,
    TLSEvidence,
    TLSHandshake,
    VantageResult,
    Verdict,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()
ADDRESS = "198.18.7.10"
ALL = [v for v in Verdict if v not in (Verdict.PARTIAL, Verdict.VANTAGE_OFFLINE)]


_Operation = TypeVar("_Operation", DNSQuery, TCPConnect, TLSHandshake, HTTPExchange, Download)


def _at(record: _Operation, transaction: int, t0: float, failed: str | None = None) -> _Operation:
    """`record` with the operation fields a check records (probe.checks.observe.recorded)."""
    record.transaction_id, record.t0, record.t, record.failed_operation = transaction, t0, t0 + record.duration_seconds, failed
    return record


def _failed(check: str, verdict: Verdict, failure: str, evidence: object) -> CheckResult:
    fault = {Verdict.DOWN: Fault.SERVER, Verdict.ERROR: Fault.MONITOR}.get(verdict, Fault.PATH)
    technique = verdict if verdict not in (Verdict.DOWN, Verdict.ERROR) else Verdict.IP_BLOCKED
    return CheckResult(check, False, failure, 0.2, Finding(technique, fault, reason=failure), evidence)


def _dns(verdict: Verdict) -> CheckResult:
    failing = verdict in (Verdict.DNS_BLOCKED, Verdict.DNS_TAMPERED)
    queries = [
        _at(
            DNSQuery("198.18.53.1", False, [] if verdict == Verdict.DNS_BLOCKED else [ADDRESS], "dns_nxdomain_error" if verdict == Verdict.DNS_BLOCKED else None, 0.01,
                     "withheld" if failing else "ok"),
            1, 0.0, "resolve" if verdict == Verdict.DNS_BLOCKED else None,
        ),
        _at(DNSQuery("tls://198.18.53.2", True, [ADDRESS, "2001:db8::10"], None, 0.02, "control"), 2, 0.0),
    ]
    evidence = DNSEvidence(queries, [ADDRESS], "dns")
    return _failed("dns", verdict, "dns_nxdomain_error", evidence) if failing else CheckResult("dns", True, None, 0.02, None, evidence)


def _web_checks(host: str, verdict: Verdict, scheme: str = "https") -> list[CheckResult]:
    """dns, tcp, tls, http, the first failing where the verdict's technique acts."""
    checks = [_dns(verdict)]
    if not checks[0].ok:
        return checks
    if verdict in (Verdict.IP_BLOCKED, Verdict.DOWN, Verdict.ERROR):
        failure = {Verdict.ERROR: "local_resource_exhausted"}.get(verdict, "generic_timeout_error")
        return [*checks, _failed("tcp", verdict, failure, TCPEvidence([TCPConnect(ADDRESS, 443, failure, 3.0)]))]
    checks.append(CheckResult("tcp", True, None, 0.01, None, TCPEvidence([_at(TCPConnect(ADDRESS, 443, None, 0.01), 3, 0.03)])))
    if scheme == "https":
        if verdict in (Verdict.SNI_BLOCKED, Verdict.TLS_BLOCKED, Verdict.TLS_MITM, Verdict.PROTOCOL_BLOCKED, Verdict.QUIC_BLOCKED, Verdict.UDP_BLOCKED, Verdict.THROTTLED):
            decoy = _at(TLSHandshake(ADDRESS, 443, "decoy.example", None, "TLSv1.3", duration_seconds=0.02), 7, 0.07)
            tls = TLSEvidence([_at(TLSHandshake(ADDRESS, 443, host, "connection_reset", duration_seconds=0.02), 6, 0.05, "tls_handshake")], decoy=decoy)
            return [*checks, _failed("tls", verdict, "connection_reset", tls)]
        checks.append(CheckResult("tls", True, None, 0.03, None, TLSEvidence([TLSHandshake(ADDRESS, 443, host, None, "TLSv1.3", "h2", duration_seconds=0.03)])))
    url = f"{scheme}://{host}/"
    if verdict == Verdict.HTTP_BLOCKED:
        page = HTTPExchange(url, ADDRESS, status_code=451, body_sample="blocked by order", body_length=16, blockpage=BlockPage("status", "451"))
        return [*checks, _failed("http", verdict, "http_blockpage", page)]
    return [*checks, CheckResult("http", True, None, 0.05, None, HTTPExchange(url, ADDRESS, status_code=200, body_sample=None, body_length=5))]


def _dc_checks(verdict: Verdict) -> list[CheckResult]:
    if verdict in (Verdict.IP_BLOCKED, Verdict.DOWN, Verdict.ERROR):
        return [_failed("tcp", verdict, "connection_refused", TCPEvidence([TCPConnect("149.154.167.51", 443, "connection_refused", 0.01)]))]
    checks = [CheckResult("tcp", True, None, 0.01, None, TCPEvidence([TCPConnect("149.154.167.51", 443, None, 0.01)]))]
    probe = MTProtoProbe("149.154.167.51", 443, "obfuscated2", True, None if verdict == Verdict.OK else "eof_error")
    if verdict == Verdict.OK:
        return [*checks, CheckResult("mtproto", True, None, 0.1, None, MTProtoEvidence([probe], {"obfuscated2": True}))]
    return [*checks, _failed("mtproto", verdict, "eof_error", MTProtoEvidence([probe], {"obfuscated2": False}))]


def _chat_checks(verdict: Verdict) -> list[CheckResult]:
    ok = verdict == Verdict.OK
    failure = None if ok else "connection_reset"
    host = ChatHost("e1.whatsapp.net", [ADDRESS], "dns", exchanges=[ChatExchange(ADDRESS, 443, failure, "held" if ok else "first_bytes")], verdict=str(verdict), failure=failure)
    blocked = ["e1.whatsapp.net"] if verdict in (Verdict.PROTOCOL_BLOCKED, Verdict.IP_BLOCKED) else []
    evidence = ChatEvidence([host], 1 if ok else 0, blocked)
    return [CheckResult("whatsapp_chat", True, None, 2.0, None, evidence)] if ok else [_failed("whatsapp_chat", verdict, "connection_reset", evidence)]


def _stun_checks(verdict: Verdict) -> list[CheckResult]:
    ok = verdict == Verdict.OK
    binding = STUNBinding(ADDRESS, 19302, None if ok else "generic_timeout_error", 3, "success" if ok else None)
    evidence = STUNEvidence([binding], control_answered=verdict != Verdict.DOWN)
    return [CheckResult("stun", True, None, 0.1, None, evidence)] if ok else [_failed("stun", verdict, "generic_timeout_error", evidence)]


def _download_checks(verdict: Verdict) -> list[CheckResult]:
    checks = _web_checks("mirror.example", Verdict.OK)[:3]
    ok = verdict == Verdict.OK
    download = Download(ADDRESS, 443, None if ok else "generic_timeout_error", 200, 262144 if ok else 40000, measured=True, bytes_per_second=2e6 if ok else 9000.0)
    data = ThroughputEvidence("https://mirror.example/big.iso", 262144, download=_at(download, 8, 0.1, None if ok else "read"))
    if ok:
        return [*checks, CheckResult("throughput", True, None, 1.0, None, data)]
    return [*checks, _failed("throughput", verdict, "generic_timeout_error", data)]


def _target(service: str, name: str, host: str, verdict: Verdict, checks: list[CheckResult]) -> TargetResult:
    failed = next((c for c in checks if not c.ok), None)
    reason = f"{failed.check}: {failed.failure}" if failed else ""
    return TargetResult(service, name, host, verdict, checks, reason)


def _round(index: int, verdict: Verdict) -> VantageResult:
    """Every kind of target, all with `verdict` (what the archive can hold, not what a judge
    would conclude of these observations: the export must follow the stored verdict)."""
    telegram = [
        _target("telegram", "dc2", "149.154.167.51", verdict, _dc_checks(verdict)),
        _target("telegram", "web", "web.telegram.org", verdict, _web_checks("web.telegram.org", verdict)),
        _target("telegram", "api", "api.telegram.org", verdict, _web_checks("api.telegram.org", verdict)[:3]),
    ]
    whatsapp = [
        _target("whatsapp", "chat", "e1.whatsapp.net", verdict, _chat_checks(verdict)),
        _target("whatsapp", "registration", "v.whatsapp.net", verdict, _web_checks("v.whatsapp.net", verdict)),
        _target("whatsapp", "web", "web.whatsapp.com", verdict, _web_checks("web.whatsapp.com", verdict)),
        _target("whatsapp", "web-http", "web.whatsapp.com", verdict, _web_checks("web.whatsapp.com", verdict, scheme="http")),
    ]
    signal = [_target("signal", "chat", "chat.signal.org", verdict, _web_checks("chat.signal.org", verdict))]
    controls = [
        _target("controls", "international", "www.example.org", verdict, _web_checks("www.example.org", verdict)),
        _target("controls", "download", "mirror.example", verdict, _download_checks(verdict)),
        _target("controls", "stun", "stun.example", verdict, _stun_checks(verdict)),
    ]
    services = [ServiceResult(name, verdict, targets) for name, targets in (("telegram", telegram), ("whatsapp", whatsapp), ("signal", signal))]
    return VantageResult("msk-1", "ok", services, controls, T0 + 60 * index, 3.0)


def test_every_target_under_every_verdict_loads_with_oonidata_and_agrees(tmp_path: Path) -> None:
    load_measurement()  # skip early (not under CI) when OONI's parser is not installed
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path), [Vantage(name="msk-1", country="RU", asn="12389", network="lab")])
    for index, verdict in enumerate(ALL):
        archive.append(_round(index, verdict))
    offline = _round(len(ALL), Verdict.VANTAGE_OFFLINE)
    for target in (t for s in offline.services for t in s.targets):
        target.checks.clear()  # under vantage_offline the services are not measured
    archive.append(offline)
    records = read(path).records
    export = subprocess.run([*msgreach_command(), "evidence", "--path", str(path), "--format", "ooni"], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0 and export.stderr == "", export.stderr
    lines = export.stdout.splitlines()
    assert len(lines) == 11 * len(ALL)  # every target of every round, none of the offline one
    problems, seen = disagreements(lines, records)
    assert problems == []
    assert {name for name, _ in seen} == {"telegram", "whatsapp", "signal", "stunreachability", "web_connectivity", "urlgetter"}
    assert {verdict for _, verdict in seen} == {str(v) for v in ALL}


def test_the_ooni_shapes_and_what_is_derived(tmp_path: Path) -> None:
    """One measurement read closely: base keys, OONI's lists with transaction ids and events,
    the nettest's flags, msgreach's own keys, and the annotations saying what was derived."""
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path), [Vantage(name="msk-1", country="RU", asn="AS12389")])
    archive.append(_round(0, Verdict.OK))
    archive.append(_round(1, Verdict.SNI_BLOCKED))
    since = "2026-03-01T12:01:00Z"
    export = subprocess.run([*msgreach_command(), "evidence", "--path", str(path), "--format", "ooni", "--service", "whatsapp", "--since", since], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    by_target = {m["annotations"]["msgreach_target"]: m for m in map(json.loads, export.stdout.splitlines())}
    assert sorted(by_target) == ["chat", "registration", "web", "web-http"]  # --service and --since apply
    web = by_target["web"]
    # The blocked round made no request (TLS failed first): its input is the URL the archive
    # shows for the target in its other rounds, the same in every round.
    assert (web["test_name"], web["input"], web["probe_cc"], web["probe_asn"], web["data_format_version"]) == ("whatsapp", "https://web.whatsapp.com/", "RU", "AS12389", "0.2.0")
    assert web["report_id"] == by_target["chat"]["report_id"]  # one report per vantage, round and nettest
    assert web["report_id"].startswith("20260301T120100Z_whatsapp_RU_12389_n0_")
    assert web["measurement_start_time"] == web["test_start_time"] == "2026-03-01 12:01:00"
    keys = web["test_keys"]
    assert (keys["whatsapp_web_status"], keys["whatsapp_web_failure"]) == ("blocked", "connection_reset")
    assert "registration_server_status" not in keys and "whatsapp_endpoints_status" not in keys
    assert [(q["query_type"], q["resolver_address"], q["tags"]) for q in keys["queries"]] == [
        ("A", "198.18.53.1:53", ["msgreach:judgement=ok"]),
        ("A", "198.18.53.2:853", ["msgreach:control_resolver", "msgreach:judgement=control"]),
        ("AAAA", "198.18.53.2:853", ["msgreach:control_resolver", "msgreach:judgement=control"]),
    ]
    [tcp] = keys["tcp_connect"]
    assert tcp["status"] == {"failure": None, "success": True}
    assert [(h["server_name"], h["failure"], h["tags"]) for h in keys["tls_handshakes"]] == [
        ("web.whatsapp.com", "connection_reset", []),
        ("decoy.example", None, ["msgreach:decoy_sni"]),
    ]
    ids = [q["transaction_id"] for q in keys["queries"]] + [tcp["transaction_id"]] + [h["transaction_id"] for h in keys["tls_handshakes"]]
    assert ids == [1, 2, 2, 3, 6, 7]  # as recorded (not by order of start); one lookup of A and AAAA is one transaction
    assert [(h["t0"], h["t"]) for h in keys["tls_handshakes"]] == [(0.05, 0.07), (0.07, 0.09)]  # recorded, not rebuilt from durations
    events = [(e["operation"], e["transaction_id"]) for e in keys["network_events"]]
    assert ("connect", 3) in events and ("tls_handshake_done", 6) in events and events.index(("tls_handshake_start", 6)) < events.index(("tls_handshake_done", 6))
    assert all(e["t"] >= f["t"] for f, e in zip(keys["network_events"], keys["network_events"][1:], strict=False))
    assert keys["x_msgreach"]["verdict"] == "sni_blocked" and [c["check"] for c in keys["x_msgreach"]["checks"]] == ["dns", "tcp", "tls"]
    assert keys["x_msgreach"]["checks"][2]["failed_operation"] == "tls_handshake"  # the failing record's, as the check recorded it
    assert web["annotations"]["msgreach_derived"] == "network_events,query_type"
    assert web["annotations"]["msgreach_schema"] == SCHEMA
    chat = by_target["chat"]["test_keys"]
    assert (chat["whatsapp_endpoints_status"], chat["whatsapp_endpoints_blocked"], chat["whatsapp_endpoints_dns_inconsistent"]) == ("blocked", ["e1.whatsapp.net"], [])
    assert chat["x_msgreach"]["observations"]["whatsapp_chat"]["hosts"][0]["host"] == "e1.whatsapp.net"
    assert by_target["web-http"]["input"] == "http://web.whatsapp.com/"


def test_a_blockpage_and_a_download_read_as_oonis_nettests_would(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path))
    archive.append(_round(0, Verdict.HTTP_BLOCKED))
    archive.append(_round(1, Verdict.THROTTLED))
    measurements = [json.loads(line) for line in _export(path)]
    page = next(m for m in measurements if m["test_name"] == "web_connectivity" and m["annotations"]["msgreach_verdict"] == "http_blocked")
    assert (page["test_keys"]["accessible"], page["test_keys"]["blocking"], page["input"]) == (False, "http-diff", "https://www.example.org/")
    [request] = page["test_keys"]["requests"]
    assert request["response"]["code"] == 451 and request["response"]["body"] == "blocked by order" and request["tags"] == ["msgreach:blockpage"]
    assert request["address"] == f"{ADDRESS}:443"
    download = next(m for m in measurements if m["test_name"] == "urlgetter" and m["annotations"]["msgreach_verdict"] == "throttled")
    assert download["input"] == "https://mirror.example/big.iso"
    assert (download["test_keys"]["failure"], download["test_keys"]["failed_operation"]) == ("generic_timeout_error", "read")  # as recorded
    assert "failed_operation" not in download["annotations"]["msgreach_derived"]
    stun = next(m for m in measurements if m["test_name"] == "stunreachability" and m["annotations"]["msgreach_verdict"] == "throttled")
    assert (stun["input"], stun["test_keys"]["endpoint"]) == ("stun://stun.example:19302", "stun.example:19302")


def test_a_schema_1_record_is_exported_with_what_it_lacks_derived_and_said(tmp_path: Path) -> None:
    """A line written before operations carried their own fields: transaction ids by order of
    start, the failed operation from the failing check's name, both named as derived."""
    path = tmp_path / "ev.jsonl"
    tcp = '{"ip":"198.18.7.10","port":443,"status":{"failure":null,"success":true},"t0":0.0,"t":0.01}'
    tls = '{"address":"198.18.7.10:443","server_name":"x.example","failure":"connection_reset","t0":0.01,"t":0.03}'
    checks = '[{"check":"tcp","ok":true,"failure":null,"t0":0.0,"t":0.01},{"check":"tls","ok":false,"failure":"connection_reset","t0":0.01,"t":0.03}]'
    path.write_text(
        '{"schema":"msgreach-evidence/1","time":"2026-03-01T12:00:00Z","service":"other","target":"x","input":"x.example","verdict":"tls_blocked",'
        f'"test_keys":{{"checks":{checks},"tcp_connect":[{tcp}],"tls_handshakes":[{tls}]}}}}\n'
    )
    [line] = _export(path)
    measurement = json.loads(line)
    keys = measurement["test_keys"]
    assert (measurement["test_name"], keys["failure"], keys["failed_operation"]) == ("urlgetter", "connection_reset", "tls_handshake")
    assert [keys["tcp_connect"][0]["transaction_id"], keys["tls_handshakes"][0]["transaction_id"]] == [1, 2]
    assert measurement["annotations"]["msgreach_schema"] == "msgreach-evidence/1"
    assert measurement["annotations"]["msgreach_derived"] == "transaction_id,network_events,failed_operation"


def test_damaged_and_foreign_records_are_left_out_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    Archive(Evidence(path=path)).append(_round(0, Verdict.OK))
    with open(path, "a") as handle:
        tcp = '"tcp_connect":[{"ip":5,"port":"x","t0":NaN},7],"queries":"no"'
        handle.write('{"schema":"msgreach-evidence/1","time":"2026-03-01T12:01:00Z","target":"x","verdict":"ok","test_runtime":1e999,"test_keys":{"checks":[{"check":"tcp","ok":1}],' + tcp + "}}\n")
        handle.write('{"schema":"msgreach-evidence/1","time":"2026-03-01T12:02:00Z","target":"y","verdict":"ok"}\n')  # nothing measured
        handle.write('{"schema":"msgreach-evidence/1","time":"yesterday","target":"z","verdict":"ok","test_keys":{"checks":[{"check":"tcp"}]}}\n')
    lines = _export(path)  # valid JSON throughout: no NaN, no Infinity
    assert len(lines) == 12  # the first round's 11, and the damaged record with a check
    odd = json.loads(lines[-1])
    assert odd["test_name"] == "urlgetter" and odd["test_runtime"] == 0.0 and odd["test_keys"]["queries"] == []
    assert odd["test_keys"]["tcp_connect"] == [{"ip": "", "port": 0, "status": {"failure": None, "success": True}, "t0": 0.0, "t": 0.0, "tags": [], "transaction_id": 1}]


def _export(path: Path) -> list[str]:
    export = subprocess.run([*msgreach_command(), "evidence", "--path", str(path), "--format", "ooni"], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    return export.stdout.splitlines()


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    """`msgreach evidence --format ooni | head -1`: the export stops quietly, exit 0."""
    path = tmp_path / "ev.jsonl"
    archive = Archive(Evidence(path=path))
    for index in range(20):  # far more than a pipe holds
        archive.append(_round(index, Verdict.OK))
    export = subprocess.Popen([*msgreach_command(), "evidence", "--path", str(path), "--format", "ooni"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert export.stdout is not None and export.stderr is not None
    assert json.loads(export.stdout.readline())["test_name"] == "web_connectivity"  # a control, first
    export.stdout.close()
    assert export.wait(120) == 0
    assert export.stderr.read() == b""
